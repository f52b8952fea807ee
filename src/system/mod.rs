//! The process and its machine: facts about the run's environment
//! ([`environment`]), the stage a rank is in and what a crash or a panic
//! does ([`stage`]), termination signals ([`signals`]), the allocator's policy
//! for large buffers ([`heap`]) and the kill points of the fault-injection
//! tests ([`fault`]).

pub mod environment;
pub mod fault;
pub mod heap;
pub mod signals;
pub mod stage;
