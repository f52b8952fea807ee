//! The stages one chunk goes through before it is stored, in order:
//! [`inputs`] (paths and globs) → [`scan`] (each rank reads the structure of
//! its share of the files) → [`combine`] (the files as one dataset) →
//! [`select`] (variables, names, attributes) → [`plan`] (pure: chunk grid →
//! one writer rank per chunk or shard) → [`exchange`] (pure: for layouts that
//! cut across the source chunks, the rounds, the blocks each rank reads once
//! and the pieces the ranks send each other) → [`read`] (parallel HDF5
//! hyperslab or raw-chunk reads, netCDF-C for netCDF-3); [`quantize`]
//! (`--keepbits`: which variables are rounded, and the bits found from
//! the data in one read pass). With `--virtual`,
//! [`virtualize`] (pure) decides which variables are referenced in place.
//! The store side follows in
//! [`crate::store`].

pub mod combine;
pub mod exchange;
pub mod inputs;
pub mod plan;
pub mod quantize;
pub mod read;
pub mod scan;
pub mod select;
pub mod virtualize;
