//! What the user asks for: the command line ([`args`]), recipe files
//! ([`recipe`]) and the validated configuration every stage reads
//! ([`config`]).

pub mod args;
pub mod config;
pub mod error;
pub mod recipe;
