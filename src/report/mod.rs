//! What a run tells its user: progress while it runs ([`progress`]), the
//! machine-readable event stream ([`events`]), the report at its end
//! ([`summary`]), warnings and errors ([`console`]).

pub mod console;
pub mod events;
pub mod progress;
pub mod summary;
