//! The output side: Zarr metadata ([`metadata`]), chunk encoding and storing
//! ([`chunks`]), the store layout and safety checks ([`store`]) and the
//! metadata commit by rank 0 ([`commit`]).

pub mod chunks;
pub mod commit;
pub mod metadata;
pub mod store;
