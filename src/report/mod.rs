//! What a run tells its user: progress while it runs ([`progress`]), the
//! report at its end ([`summary`]), warnings and errors ([`console`]).

pub mod console;
pub mod progress;
pub mod summary;
