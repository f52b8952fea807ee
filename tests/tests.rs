//! Integration tests: they build netCDF inputs, run the real `zarrforge`
//! binary (as a singleton and under `mpirun` with 1, 2 and 3 ranks), and read
//! the stores back with zarrs to compare every value with netCDF-C's.

mod common;

mod attrs_json;
mod bad_input;
mod cli_docs;
mod convert;
mod ensemble;
mod exchange;
mod fuzz;
mod icechunk;
mod keepbits;
mod multifile;
mod passthrough;
mod real_files;
mod region;
mod reliability;
mod s3;
mod verify;
mod verify_backfill;
mod verify_keepbits;
mod verify_members;
#[path = "virtual.rs"]
mod virtual_refs;
mod workflow;
mod writes;
