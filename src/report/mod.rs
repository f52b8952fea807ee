//! What a run tells its user: progress while it runs ([`progress`]), the
//! machine-readable event stream ([`events`]), the report at its end
//! ([`summary`], its figures gathered over ranks by [`gather`]), warnings
//! and errors ([`console`]).

pub mod console;
pub mod events;
pub mod gather;
pub mod progress;
pub mod summary;
