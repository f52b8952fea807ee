//! What this rank may run on, from hwloc: plain data, no MPI.

use serde::Serialize;

/// The rank's view of its node.
#[derive(Debug, Clone, Serialize)]
pub struct Topology {
    /// Processing units (hardware threads) this process is bound to.
    pub cpuset_pus: usize,
    /// Cores of the node.
    pub node_cores: usize,
    /// Processing units of the node.
    pub node_pus: usize,
    /// NUMA nodes of the node.
    pub numa_nodes: usize,
}

impl Topology {
    /// Reads the topology; falls back to the OS's view when hwloc fails.
    pub fn detect() -> Self {
        let fallback = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let Some(topo) = hwloc2::Topology::new() else {
            return Self {
                cpuset_pus: fallback,
                node_cores: fallback,
                node_pus: fallback,
                numa_nodes: 1,
            };
        };
        let count = |t: hwloc2::ObjectType| {
            topo.objects_with_type(&t)
                .map(|v| v.len())
                .unwrap_or(0)
                .max(1)
        };
        let node_cores = count(hwloc2::ObjectType::Core);
        let node_pus = count(hwloc2::ObjectType::PU);
        let numa_nodes = topo
            .object_at_root()
            .nodeset()
            .map_or(1, |n| usize::try_from(n.weight()).unwrap_or(1).max(1));
        let cpuset_pus = topo
            .get_cpubind(hwloc2::CpuBindFlags::CPUBIND_PROCESS)
            .map(|s| usize::try_from(s.weight()).unwrap_or(0))
            .filter(|&w| w > 0)
            .unwrap_or(fallback);
        Self {
            cpuset_pus,
            node_cores,
            node_pus,
            numa_nodes,
        }
    }

    /// Encoder threads for this rank: one per PU of its cpuset, but no more
    /// than its share of the node when `ranks_on_node` ranks share the same
    /// PUs (unbound or oversubscribed launches).
    pub fn encoder_threads(&self, ranks_on_node: usize) -> usize {
        let share = (self.node_pus / ranks_on_node.max(1)).max(1);
        self.cpuset_pus.min(share).max(1)
    }
}
