//! The plain data every stage shares: the structure of a netCDF file or of
//! the output ([`schema`]: types, attributes, variables, groups, fill
//! values), CF time units and calendars ([`cftime`]) and N-d block
//! arithmetic ([`block`]), and a source file's storage pipeline as Zarr
//! codecs ([`source_codecs`]).

pub mod block;
pub mod cftime;
pub mod schema;
pub mod source_codecs;
