//! What this rank may run on, from hwloc: plain data, no MPI.
//!
//! [`Topology`] is one rank's view of its node; [`JobTopology`] is the
//! job's (nodes, ranks per node, threads per rank), assembled from every
//! rank's view by [`crate::mpi::ctx::MpiCtx::job_topology`].

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
    /// OS indexes of the PUs of the binding, ordered for spreading threads:
    /// the first PU of every core, then the second of every core, ...
    pub cpuset: Vec<u32>,
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
                cpuset: Vec::new(),
            };
        };
        let count =
            |t: hwloc2::ObjectType| topo.objects_with_type(&t).map_or(0, |v| v.len()).max(1);
        let node_cores = count(hwloc2::ObjectType::Core);
        let node_pus = count(hwloc2::ObjectType::PU);
        let numa_nodes = topo
            .object_at_root()
            .nodeset()
            .map_or(1, |n| usize::try_from(n.weight()).unwrap_or(1).max(1));
        let bound: Vec<u32> = topo
            .get_cpubind(hwloc2::CpuBindFlags::CPUBIND_PROCESS)
            .map(|s| s.into_iter().collect())
            .unwrap_or_default();
        // The PUs of the binding, core by core.
        let per_core: Vec<Vec<u32>> = topo
            .objects_with_type(&hwloc2::ObjectType::Core)
            .map(|cores| {
                cores
                    .iter()
                    .filter_map(|c| c.cpuset())
                    .map(|set| set.into_iter().filter(|pu| bound.contains(pu)).collect())
                    .collect()
            })
            .unwrap_or_default();
        let mut cpuset = spread(&per_core);
        // PUs outside any core object (unusual): keep them last.
        for pu in &bound {
            if !cpuset.contains(pu) {
                cpuset.push(*pu);
            }
        }
        let cpuset_pus = if bound.is_empty() {
            fallback
        } else {
            bound.len()
        };
        Self {
            cpuset_pus,
            node_cores,
            node_pus,
            numa_nodes,
            cpuset,
        }
    }

    /// Whether the launcher bound this rank to a part of its node (srun
    /// with task affinity or cgroups, `mpirun --bind-to core`).
    pub fn is_bound(&self) -> bool {
        !self.cpuset.is_empty() && self.cpuset_pus < self.node_pus
    }

    /// Encoder threads for this rank: one per PU of its cpuset, but no more
    /// than its share of the node when `ranks_on_node` ranks share the same
    /// PUs (unbound or oversubscribed launches).
    pub fn encoder_threads(&self, ranks_on_node: usize) -> usize {
        let share = (self.node_pus / ranks_on_node.max(1)).max(1);
        self.cpuset_pus.min(share).max(1)
    }

    /// The PU (OS index) encoder thread `i` is bound to: threads of a bound
    /// rank are spread over its cpuset, one core after the other; an unbound
    /// rank's threads are left to the OS (pinning them would stack the
    /// threads of every rank on the node's first PUs).
    pub fn thread_pu(&self, i: usize) -> Option<u32> {
        if self.is_bound() {
            self.cpuset.get(i % self.cpuset.len()).copied()
        } else {
            None
        }
    }
}

/// Orders PUs grouped by core so that consecutive threads land on distinct
/// cores: the first PU of every core, then the second, ...
fn spread(per_core: &[Vec<u32>]) -> Vec<u32> {
    let deepest = per_core.iter().map(Vec::len).max().unwrap_or(0);
    (0..deepest)
        .flat_map(|k| per_core.iter().filter_map(move |pus| pus.get(k).copied()))
        .collect()
}

/// Binds the calling thread to one PU (OS index). Returns whether the OS
/// accepted it; a refusal only costs locality.
pub fn bind_current_thread(pu: u32) -> bool {
    let Ok(pu) = usize::try_from(pu) else {
        return false;
    };
    // SAFETY: `set` is a plain bit set on the stack, initialised by
    // CPU_ZERO before use; sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        if pu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
            return false;
        }
        libc::CPU_SET(pu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw const set) == 0
    }
}

/// The job's topology: how its ranks and threads sit on its nodes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobTopology {
    /// Nodes of the job.
    pub nodes: usize,
    /// Fewest ranks on a node.
    pub ranks_per_node_min: usize,
    /// Most ranks on a node.
    pub ranks_per_node_max: usize,
    /// Fewest encoder threads of a rank.
    pub threads_per_rank_min: usize,
    /// Most encoder threads of a rank.
    pub threads_per_rank_max: usize,
    /// Rank 0's host name.
    pub host: String,
    /// Cores of rank 0's node.
    pub node_cores: usize,
    /// PUs of rank 0's node.
    pub node_pus: usize,
    /// NUMA nodes of rank 0's node.
    pub numa_nodes: usize,
    /// PUs rank 0 may run on.
    pub rank0_cpuset_pus: usize,
    /// Whether rank 0's encoder threads are bound to PUs of its cpuset.
    pub threads_bound: bool,
    /// Most busy threads (ranks × encoder threads) of a node over its PUs.
    pub max_node_load: f64,
    /// Most encoder threads of a rank over the PUs of its cpuset.
    pub max_rank_load: f64,
}

impl JobTopology {
    /// Whether some node runs more encoder threads than it has PUs, or
    /// some rank more than its cpuset has.
    pub fn oversubscribed(&self) -> bool {
        self.max_node_load > 1.0 || self.max_rank_load > 1.0
    }

    /// One line for people.
    pub fn line(&self) -> String {
        let range = |a: usize, b: usize| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        };
        format!(
            "{} node(s), {} rank(s) per node, {} thread(s) per rank ({}); node {}: {} cores, {} PUs, {} NUMA node(s); rank 0 may run on {} PU(s)",
            self.nodes,
            range(self.ranks_per_node_min, self.ranks_per_node_max),
            range(self.threads_per_rank_min, self.threads_per_rank_max),
            if self.threads_bound { "bound to cores" } else { "not bound" },
            self.host,
            self.node_cores,
            self.node_pus,
            self.numa_nodes,
            self.rank0_cpuset_pus
        )
    }

    /// The warning for an oversubscribed node, with the fix.
    pub fn warning(&self) -> Option<String> {
        if self.max_node_load > 1.0 {
            Some(format!(
                "zarrforge: warning: oversubscribed: a node runs {:.1}x as many encoder threads as it has PUs ({} rank(s) per node x {} thread(s)); use fewer ranks per node or --threads, and bind ranks to cores (srun --cpu-bind=cores, mpirun --bind-to core)",
                self.max_node_load, self.ranks_per_node_max, self.threads_per_rank_max
            ))
        } else if self.max_rank_load > 1.0 {
            Some(format!(
                "zarrforge: warning: oversubscribed: a rank runs {:.1}x as many encoder threads as the PUs it is bound to; give each rank as many cores as threads (srun --cpus-per-task=N, mpirun --map-by slot:PE=N) or lower --threads",
                self.max_rank_load
            ))
        } else {
            None
        }
    }
}

/// The layout of a job planned for another launch (`zarrforge plan
/// --ranks N`): what is known of it from the flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedJob {
    /// Ranks.
    pub ranks: usize,
    /// Ranks per node (`--ranks-per-node`), when given.
    pub ranks_per_node: Option<usize>,
    /// Nodes: the ranks over the ranks per node, when those are given.
    pub nodes: Option<usize>,
    /// Encoder threads per rank the plan assumes.
    pub threads_per_rank: usize,
    /// Where that thread count comes from, in words.
    pub threads_from: String,
}

impl PlannedJob {
    /// A job of `ranks` ranks, `ranks_per_node` of them per node when
    /// known, with `threads_per_rank` threads (`threads_from` says why).
    pub fn new(
        ranks: usize,
        ranks_per_node: Option<usize>,
        threads_per_rank: usize,
        threads_from: String,
    ) -> Self {
        let ranks_per_node = ranks_per_node.map(|k| k.clamp(1, ranks.max(1)));
        Self {
            ranks,
            ranks_per_node,
            nodes: ranks_per_node.map(|k| ranks.div_ceil(k)),
            threads_per_rank,
            threads_from,
        }
    }

    /// One line for people.
    pub fn line(&self) -> String {
        let nodes = match (self.nodes, self.ranks_per_node) {
            (Some(n), Some(k)) => {
                let last = self.ranks - (n - 1) * k;
                if last == k {
                    format!(" on {n} node(s), {k} rank(s) per node")
                } else {
                    format!(" on {n} node(s), {k} rank(s) per node ({last} on the last)")
                }
            }
            _ => "; node count not known (--ranks-per-node gives it)".to_string(),
        };
        format!(
            "{} rank(s){nodes}; {} thread(s) per rank ({})",
            self.ranks, self.threads_per_rank, self.threads_from
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planned_job_says_what_is_known_of_its_nodes() {
        let j = PlannedJob::new(64, None, 2, "--threads".into());
        assert_eq!(j.nodes, None);
        assert_eq!(
            j.line(),
            "64 rank(s); node count not known (--ranks-per-node gives it); 2 thread(s) per rank (--threads)"
        );
        let j = PlannedJob::new(64, Some(16), 2, "--threads".into());
        assert_eq!(j.nodes, Some(4));
        assert!(j
            .line()
            .starts_with("64 rank(s) on 4 node(s), 16 rank(s) per node; "));
        let j = PlannedJob::new(66, Some(16), 2, "--threads".into());
        assert_eq!(j.nodes, Some(5));
        assert!(j
            .line()
            .contains("on 5 node(s), 16 rank(s) per node (2 on the last)"));
        // More ranks per node than ranks: one node.
        let j = PlannedJob::new(4, Some(16), 2, "--threads".into());
        assert_eq!((j.nodes, j.ranks_per_node), (Some(1), Some(4)));
    }

    #[test]
    fn spread_takes_one_pu_per_core_first() {
        let per_core = vec![vec![0, 4], vec![1, 5], vec![2], vec![]];
        assert_eq!(spread(&per_core), vec![0, 1, 2, 4, 5]);
        assert!(spread(&[]).is_empty());
    }

    fn topo(cpuset: Vec<u32>, node_pus: usize) -> Topology {
        Topology {
            cpuset_pus: cpuset.len().max(1),
            node_cores: node_pus,
            node_pus,
            numa_nodes: 1,
            cpuset,
        }
    }

    #[test]
    fn threads_follow_the_binding() {
        // Bound to 2 of 8 PUs: threads alternate over them.
        let t = topo(vec![2, 3], 8);
        assert!(t.is_bound());
        assert_eq!(t.encoder_threads(4), 2);
        assert_eq!(
            (0..3).map(|i| t.thread_pu(i)).collect::<Vec<_>>(),
            vec![Some(2), Some(3), Some(2)]
        );
        // Unbound: a share of the node, threads not pinned.
        let t = topo((0..8).collect(), 8);
        assert!(!t.is_bound());
        assert_eq!(t.encoder_threads(2), 4);
        assert_eq!(t.encoder_threads(16), 1);
        assert_eq!(t.thread_pu(0), None);
    }

    #[test]
    fn oversubscription_is_named() {
        let mut j = JobTopology {
            nodes: 1,
            ranks_per_node_min: 4,
            ranks_per_node_max: 4,
            threads_per_rank_min: 1,
            threads_per_rank_max: 1,
            node_pus: 2,
            max_node_load: 2.0,
            ..JobTopology::default()
        };
        assert!(j.warning().is_some_and(|w| w.contains("2.0x")));
        assert!(j.line().contains("4 rank(s) per node"));
        j.max_node_load = 1.0;
        assert!(j.warning().is_none());
        // Two threads on a rank bound to one PU.
        j.max_rank_load = 2.0;
        assert!(j.warning().is_some_and(|w| w.contains("bound to")));
    }
}
