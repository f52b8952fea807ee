//! What a run tells its user: progress while it runs ([`progress`]) and
//! the report at its end ([`summary`]).

pub mod progress;
pub mod summary;
