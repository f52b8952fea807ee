//! What a run tells its user while it runs ([`progress`]).

pub mod progress;
