//! Access to the source files below the pipeline: a safe wrapper of the
//! netCDF-C library ([`library`]) and a pure parser of netCDF-3 headers
//! that checks a classic file before netCDF-C opens it ([`header`]).

pub mod header;
pub mod library;
