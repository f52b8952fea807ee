//! The subcommands, each stringing the stages together: [`convert`] (and
//! its per-rank unit loop), [`verify`] (an independent comparison of a store
//! with its sources), [`inspect`] (structure and plan, nothing written) and
//! [`bench`] (a generated dataset converted and measured).

pub mod bench;
pub mod convert;
pub mod inspect;
pub mod verify;
