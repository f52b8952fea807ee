//! The job: the MPI context, collective agreement on failures and the
//! exchange helpers ([`ctx`]), and the machine's and the job's topology
//! (cores, nodes, binding; [`topology`]).

pub mod ctx;
pub mod topology;
