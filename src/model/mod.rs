//! The plain data every stage shares: the structure of a netCDF file or of
//! the output ([`schema`]: types, attributes, variables, groups, fill
//! values), CF time units and calendars ([`cftime`]) and N-d block
//! arithmetic ([`block`]), a source file's storage pipeline as Zarr
//! codecs ([`source_codecs`]), and lossy compression: rounding floats
//! ([`bitround`]) and their bitwise information ([`bitinfo`]).

pub mod bitinfo;
pub mod bitround;
pub mod block;
pub mod cftime;
pub mod schema;
pub mod source_codecs;
