//! The plain data every stage shares: the structure of a netCDF file or of
//! the output ([`schema`]: types, attributes, variables, groups, fill
//! values), CF time units and calendars ([`cftime`]) and N-d block
//! arithmetic ([`block`]).

pub mod block;
pub mod cftime;
pub mod schema;
