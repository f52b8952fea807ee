//! The job: the MPI context, collective agreement on failures and the
//! broadcast and gather helpers ([`ctx`]), one step of the data exchange
//! between ranks ([`alltoall`]), and the machine's and the job's topology
//! (cores, nodes, binding; [`topology`]).

pub mod alltoall;
pub mod ctx;
pub mod topology;
