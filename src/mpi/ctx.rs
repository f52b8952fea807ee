//! The MPI universe, owned in one place and dropped last, plus the few
//! collectives the pipeline needs (broadcast of bytes, gather of statuses).
//!
//! Only the main thread of a rank calls MPI (`MPI_THREAD_FUNNELED`).

use mpi::collective::CommunicatorCollectives;
use mpi::datatype::PartitionMut;
use mpi::point_to_point::{Destination, Source};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::Root;

/// Offsets of consecutive buffers of `lens` bytes, and their total.
fn displacements(lens: &[i32]) -> (Vec<i32>, usize) {
    let displs = lens
        .iter()
        .scan(0i32, |acc, &l| {
            let d = *acc;
            *acc = acc.saturating_add(l);
            Some(d)
        })
        .collect();
    let total = lens.iter().map(|&l| usize::try_from(l).unwrap_or(0)).sum();
    (displs, total)
}

/// The task count a launcher announced in the environment when it is more
/// than one: a singleton world then means the launcher and the MPI library
/// do not speak the same process-management interface.
fn launched_as_many() -> Option<(&'static str, u64)> {
    [
        "SLURM_STEP_NUM_TASKS",
        "PMI_SIZE",
        "PMIX_SIZE",
        "OMPI_COMM_WORLD_SIZE",
    ]
    .into_iter()
    .find_map(|var| {
        let n: u64 = std::env::var(var).ok()?.trim().parse().ok()?;
        (n > 1).then_some((var, n))
    })
}

/// Makes Open MPI read files through ROMIO, unless the user chose its I/O
/// component (`OMPI_MCA_io`). Call before MPI is initialised, while the
/// process has one thread. Other MPI libraries ignore the variable.
///
/// Open MPI's default component, OMPIO, takes a POSIX named semaphore
/// called after the file's base name (`/dev/shm/sem.OMPIO_<name>`, its
/// shared-file-pointer component `sm`) at every open. A rank killed while
/// it holds it (a job killed by Slurm or by mpirun when another rank died)
/// leaves it taken, and from then on every open of a file of that name on
/// that node waits forever: the resume of the killed job hangs. Its other
/// shared-file-pointer components create test and lock files next to the
/// inputs, which may be read-only. ROMIO makes a shared file pointer only
/// when one is used, and zarrforge never uses one.
fn prefer_romio() {
    if std::env::var_os("OMPI_MCA_io").is_none() {
        std::env::set_var("OMPI_MCA_io", "^ompio");
    }
}

/// Started alone (no launcher's rank in the environment), makes `PMIx` keep
/// its job data in the process (`PMIX_MCA_gds=hash`) unless the user chose
/// a data store. Call before MPI is initialised, while the process has one
/// thread.
///
/// A singleton's MPI start-up runs a `PMIx` server beside it; with the
/// default shared-memory store, singletons started at the same instant on
/// one node (a workflow engine's tasks, a test suite) can trip over each
/// other's segments and print "PMIX ERROR: NO-PERMISSIONS" lines among the
/// run's own messages. A single process has nobody to share its job data
/// with, so the in-process store costs nothing.
fn prefer_hash_store() {
    if !launched(&env) && std::env::var_os("PMIX_MCA_gds").is_none() {
        std::env::set_var("PMIX_MCA_gds", "hash");
    }
}

/// On one node, makes Open MPI take its shared-memory transport without
/// probing the network libraries (`OMPI_MCA_pml=ob1`) unless the user chose
/// a messaging layer (`OMPI_MCA_pml` or `OMPI_MCA_mtl`). Call before MPI is
/// initialised, while the process has one thread. Other MPI libraries
/// ignore the variable.
///
/// Open MPI's default selection opens libfabric (and PSM) to see whether a
/// fast network is there: about 0.2 s of every run's start, a fifth of a
/// pass-through conversion. Between ranks of one node the messages go
/// through shared memory (`vader`) whichever layer is chosen, so nothing is
/// lost; a job spanning nodes keeps the default selection.
fn prefer_node_transport() {
    let set = |v: &str| std::env::var_os(v).is_some();
    if !set("OMPI_MCA_pml") && !set("OMPI_MCA_mtl") && one_node(&env) {
        std::env::set_var("OMPI_MCA_pml", "ob1");
    }
}

/// Whether the launch is known to be on one node, from the environment
/// (`var`) the launcher gives each rank: a singleton (no launcher), Open
/// MPI's local size equal to its world size, or Slurm's node count of 1.
fn one_node(var: &dyn Fn(&str) -> Option<String>) -> bool {
    if let (Some(world), Some(local)) = (
        var("OMPI_COMM_WORLD_SIZE"),
        var("OMPI_COMM_WORLD_LOCAL_SIZE"),
    ) {
        return world.trim() == local.trim();
    }
    if let Some(n) = var("SLURM_STEP_NUM_NODES").or_else(|| var("SLURM_NNODES")) {
        return n.trim() == "1";
    }
    !launched(var)
}

/// The environment variable `v` (lossily decoded), `None` when unset.
fn env(v: &str) -> Option<String> {
    std::env::var_os(v).map(|x| x.to_string_lossy().into_owned())
}

/// Whether a launcher started this process: one of the rank variables of
/// Open MPI, `PMIx` or PMI is in the environment (`var`).
fn launched(var: &dyn Fn(&str) -> Option<String>) -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"]
        .iter()
        .any(|v| var(v).is_some())
}

/// Message tag of the early failure notice.
const FAILURE_TAG: i32 = 4077;

/// Message tag of a rank's progress counters (to rank 0).
const PROGRESS_TAG: i32 = 4078;
/// Tag of the byte messages between two ranks ([`MpiCtx::send_bytes`]).
const BYTES_TAG: i32 = 4079;

/// Tag of a request for units to take over ([`MpiCtx::ask_for_units`]).
const ASK_TAG: i32 = 4080;
/// Tag of the answer to such a request ([`MpiCtx::give_units`]).
const GIVE_TAG: i32 = 4081;

/// Words of a progress message.
pub const PROGRESS_WORDS: usize = 4;

/// Owns the MPI universe and the world communicator.
pub struct MpiCtx {
    world: SimpleCommunicator,
    node: SimpleCommunicator,
    // Dropped last: finalises MPI.
    _universe: mpi::environment::Universe,
}

impl MpiCtx {
    /// Initialises MPI (also as a singleton without `mpirun`).
    ///
    /// # Errors
    /// [`MpiError`] when MPI was already initialised or cannot start.
    pub fn init() -> Result<Self, MpiError> {
        prefer_romio();
        prefer_hash_store();
        prefer_node_transport();
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)
            .ok_or_else(|| MpiError("MPI is already initialised".into()))?;
        let world = universe.world();
        if world.size() == 1 {
            if let Some((var, n)) = launched_as_many() {
                return Err(MpiError(format!(
                    "the launcher started {n} tasks ({var}={n}) but MPI sees a single rank: each task would convert alone; the launcher's MPI plugin does not match this MPI library (with Slurm: srun --mpi=pmix, see srun --mpi=list; or use this MPI's mpirun)"
                )));
            }
        }
        let node = world.split_shared(world.rank());
        Ok(Self {
            world,
            node,
            _universe: universe,
        })
    }

    /// This rank.
    pub fn rank(&self) -> i32 {
        self.world.rank()
    }

    /// Number of ranks.
    pub fn size(&self) -> usize {
        usize::try_from(self.world.size()).unwrap_or(1)
    }

    /// Whether this is rank 0.
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// The world communicator.
    pub fn world(&self) -> &SimpleCommunicator {
        &self.world
    }

    /// Number of ranks on this node (shared-memory communicator).
    pub fn ranks_on_node(&self) -> usize {
        usize::try_from(self.node.size()).unwrap_or(1)
    }

    /// Number of distinct nodes of the job.
    pub fn nodes(&self) -> usize {
        let leader = i32::from(self.node.rank() == 0);
        let mut n = 0i32;
        self.world
            .all_reduce_into(&leader, &mut n, mpi::collective::SystemOperation::sum());
        usize::try_from(n).unwrap_or(1)
    }

    /// The job's topology from every rank's view (collective): nodes, ranks
    /// per node, encoder threads per rank and the busiest node's load.
    pub fn job_topology(
        &self,
        topo: &crate::mpi::topology::Topology,
        threads: usize,
        threads_bound: bool,
    ) -> crate::mpi::topology::JobTopology {
        let op_min = mpi::collective::SystemOperation::min;
        let op_max = mpi::collective::SystemOperation::max;
        let reduce = |x: u64, op: mpi::collective::SystemOperation| {
            let mut out = 0u64;
            self.world.all_reduce_into(&x, &mut out, op);
            usize::try_from(out).unwrap_or(usize::MAX)
        };
        let on_node = u64::try_from(self.ranks_on_node()).unwrap_or(1);
        let t = u64::try_from(threads).unwrap_or(1);
        // Busy threads of this node over its PUs, then the job's maximum.
        let mut node_threads = 0u64;
        self.node.all_reduce_into(
            &t,
            &mut node_threads,
            mpi::collective::SystemOperation::sum(),
        );
        #[allow(clippy::cast_precision_loss)]
        let load = node_threads as f64 / topo.node_pus.max(1) as f64;
        #[allow(clippy::cast_precision_loss)]
        let rank_load = threads as f64 / topo.cpuset_pus.max(1) as f64;
        crate::mpi::topology::JobTopology {
            nodes: self.nodes(),
            ranks_per_node_min: reduce(on_node, op_min()),
            ranks_per_node_max: reduce(on_node, op_max()),
            threads_per_rank_min: reduce(t, op_min()),
            threads_per_rank_max: reduce(t, op_max()),
            host: crate::system::environment::hostname(),
            node_cores: topo.node_cores,
            node_pus: topo.node_pus,
            numa_nodes: topo.numa_nodes,
            rank0_cpuset_pus: topo.cpuset_pus,
            threads_bound,
            max_node_load: self.max_f64(load),
            max_rank_load: self.max_f64(rank_load),
        }
    }

    /// Broadcasts bytes from rank 0; `data` is used on rank 0 only.
    pub fn bcast_bytes(&self, data: Vec<u8>) -> Vec<u8> {
        let root = self.world.process_at_rank(0);
        let mut len = u64::try_from(data.len()).unwrap_or(0);
        root.broadcast_into(&mut len);
        let mut buf = if self.is_root() {
            data
        } else {
            vec![0u8; usize::try_from(len).unwrap_or(0)]
        };
        // Every rank knows the length now; an empty buffer is not sent
        // (MPI refuses the dangling pointer of an empty Vec).
        if !buf.is_empty() {
            root.broadcast_into(&mut buf[..]);
        }
        buf
    }

    /// Gathers each rank's bytes on rank 0 (`None` on the other ranks).
    pub fn gather_bytes(&self, data: Vec<u8>) -> Option<Vec<Vec<u8>>> {
        // A leading byte, so no rank sends an empty buffer.
        let mut bytes = Vec::with_capacity(data.len() + 1);
        bytes.push(1u8);
        bytes.extend(data);
        let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
        let root = self.world.process_at_rank(0);
        if !self.is_root() {
            root.gather_into(&len);
            root.gather_varcount_into(&bytes[..]);
            return None;
        }
        let mut lens = vec![0i32; self.size()];
        root.gather_into_root(&len, &mut lens[..]);
        let (displs, total) = displacements(&lens);
        let mut all = vec![0u8; total];
        {
            let mut part = PartitionMut::new(&mut all[..], &lens[..], &displs[..]);
            root.gather_varcount_into_root(&bytes[..], &mut part);
        }
        Some(
            lens.iter()
                .zip(&displs)
                .map(|(&l, &d)| {
                    let (d, l) = (
                        usize::try_from(d).unwrap_or(0),
                        usize::try_from(l).unwrap_or(0),
                    );
                    all.get(d + 1..d + l)
                        .map(<[u8]>::to_vec)
                        .unwrap_or_default()
                })
                .collect(),
        )
    }

    /// Sends bytes to rank `to` (received by [`MpiCtx::recv_bytes`]); `None`
    /// says "nothing: this rank failed". Blocks until `to` receives.
    pub fn send_bytes(&self, to: i32, data: Option<&[u8]>) {
        let mut bytes = Vec::with_capacity(data.map_or(0, <[u8]>::len) + 1);
        bytes.push(u8::from(data.is_some()));
        bytes.extend_from_slice(data.unwrap_or_default());
        self.world
            .process_at_rank(to)
            .synchronous_send_with_tag(&bytes[..], BYTES_TAG);
    }

    /// Receives the bytes rank `from` sends with [`MpiCtx::send_bytes`].
    pub fn recv_bytes(&self, from: i32) -> Option<Vec<u8>> {
        let (mut bytes, _) = self
            .world
            .process_at_rank(from)
            .receive_vec_with_tag::<u8>(BYTES_TAG);
        if bytes.first() == Some(&1) {
            bytes.remove(0);
            Some(bytes)
        } else {
            None
        }
    }

    /// Tells every other rank that this rank failed, so that they stop
    /// their work early and meet it at the next agreement. One byte per rank
    /// (sent eagerly by MPI implementations; nobody has to receive it).
    pub fn notify_failure(&self) {
        let me = self.rank();
        for r in 0..self.world.size() {
            if r != me {
                self.world
                    .process_at_rank(r)
                    .send_with_tag(&1u8, FAILURE_TAG);
            }
        }
    }

    /// Whether another rank has reported a failure (see
    /// [`MpiCtx::notify_failure`]). Never blocks.
    pub fn failure_pending(&self) -> bool {
        let mut seen = false;
        while let Some((msg, _)) = self
            .world
            .any_process()
            .immediate_matched_probe_with_tag(FAILURE_TAG)
        {
            let (_, _): (u8, _) = msg.matched_receive();
            seen = true;
        }
        seen
    }

    /// Sends this rank's progress counters to rank 0 (a few words, sent
    /// eagerly by MPI implementations: the call returns at once, whether
    /// rank 0 receives them now or later). Rank 0 sends nothing.
    pub fn send_progress(&self, words: &[u64; PROGRESS_WORDS]) {
        if !self.is_root() {
            self.world
                .process_at_rank(0)
                .send_with_tag(&words[..], PROGRESS_TAG);
        }
    }

    /// On rank 0: every progress message that has arrived, as (rank,
    /// counters), oldest first. Never blocks; elsewhere, nothing.
    pub fn drain_progress(&self) -> Vec<(i32, [u64; PROGRESS_WORDS])> {
        let mut out = Vec::new();
        if !self.is_root() {
            return out;
        }
        while let Some((msg, status)) = self
            .world
            .any_process()
            .immediate_matched_probe_with_tag(PROGRESS_TAG)
        {
            let mut words = [0u64; PROGRESS_WORDS];
            let _ = msg.matched_receive_into(&mut words[..]);
            out.push((status.source_rank(), words));
        }
        out
    }

    /// Asks rank `to` for some of the units it has not started (answered
    /// by [`MpiCtx::give_units`]). One byte, sent eagerly: the call returns
    /// at once.
    pub fn ask_for_units(&self, to: i32) {
        self.world.process_at_rank(to).send_with_tag(&1u8, ASK_TAG);
    }

    /// The ranks that have asked this rank for units since the last call
    /// (each request taken once). Never blocks.
    pub fn units_asked(&self) -> Vec<i32> {
        let mut out = Vec::new();
        while let Some((msg, status)) = self
            .world
            .any_process()
            .immediate_matched_probe_with_tag(ASK_TAG)
        {
            let (_, _): (u8, _) = msg.matched_receive();
            out.push(status.source_rank());
        }
        out
    }

    /// Answers rank `to`'s request: the units `units` (a range of unit
    /// numbers, empty for none) are now its own. Two words, sent eagerly.
    pub fn give_units(&self, to: i32, units: std::ops::Range<u64>) {
        self.world
            .process_at_rank(to)
            .send_with_tag(&[units.start, units.end][..], GIVE_TAG);
    }

    /// Rank `from`'s answer to this rank's request, once it has arrived.
    /// Never blocks.
    pub fn units_given(&self, from: i32) -> Option<std::ops::Range<u64>> {
        let (msg, _) = self
            .world
            .process_at_rank(from)
            .immediate_matched_probe_with_tag(GIVE_TAG)?;
        let mut words = [0u64; 2];
        let _ = msg.matched_receive_into(&mut words[..]);
        Some(words[0]..words[1])
    }

    /// Waits until every rank has called it, calling `poll` every few
    /// milliseconds meanwhile (a non-blocking barrier): rank 0 keeps
    /// printing the job's progress while it waits for the other ranks.
    pub fn wait_polling(&self, poll: impl FnMut()) {
        self.wait_polling_within(std::time::Duration::from_millis(50), poll);
    }

    /// [`MpiCtx::wait_polling`] with `poll` called at least every `most`
    /// (pauses from a fortieth of `most`, doubling up to `most`).
    pub fn wait_polling_within(&self, most: std::time::Duration, mut poll: impl FnMut()) {
        let mut req = self.world.immediate_barrier();
        let mut pause = (most / 40)
            .max(std::time::Duration::from_micros(50))
            .min(most);
        loop {
            match req.test() {
                Ok(_) => return,
                Err(r) => req = r,
            }
            poll();
            std::thread::sleep(pause);
            pause = (pause * 2).min(most);
        }
    }

    /// Rank 0 computes a value and broadcasts it; every rank gets it, or
    /// every rank fails, with rank 0's own error when it has one. The value
    /// travels as bincode (attribute values may be NaN or infinite, which
    /// JSON cannot carry); `exchange` makes the error of a value that cannot
    /// be encoded or decoded.
    ///
    /// # Errors
    /// `f`'s error on rank 0; [`RankError::from_ranks`] elsewhere.
    pub fn from_root<T, E>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
        exchange: impl Fn(String) -> E,
    ) -> Result<T, E>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
        E: RankError,
    {
        let config = bincode::config::standard();
        let local: Result<T, E> = if self.is_root() {
            let value = f();
            let payload = match &value {
                Ok(v) => {
                    bincode::serde::encode_to_vec(v, config).map_err(|e| exchange(e.to_string()))
                }
                Err(_) => Ok(Vec::new()),
            };
            match payload {
                Ok(bytes) => {
                    self.bcast_bytes(bytes);
                    value
                }
                Err(e) => {
                    self.bcast_bytes(Vec::new());
                    Err(e)
                }
            }
        } else {
            let bytes = self.bcast_bytes(Vec::new());
            if bytes.is_empty() {
                // Rank 0 failed; its message arrives through the agreement.
                Err(exchange("no data from rank 0".into()))
            } else {
                bincode::serde::decode_from_slice::<T, _>(&bytes, config)
                    .map(|(s, _)| s)
                    .map_err(|e| exchange(e.to_string()))
            }
        };
        // Every rank learns whether every rank has the value: no rank goes
        // on to a collective that another rank will never reach.
        let failures = self.gather_failures(local.as_ref().err().map(E::failure));
        if failures.is_empty() || (self.is_root() && local.is_err()) {
            return local;
        }
        // Rank 0's own message when it has one, else every rank's.
        let root: Vec<RankFailure> = failures.iter().filter(|f| f.rank == 0).cloned().collect();
        Err(E::from_ranks(if root.is_empty() { failures } else { root }))
    }

    /// Exchanges each rank's status; every rank gets the failures of all
    /// ranks, in rank order.
    pub fn gather_failures(&self, local: Option<Failure>) -> Vec<RankFailure> {
        // One status byte first (0 ok, else the exit status, with the high
        // bit set when resumable), so no rank sends an empty buffer.
        let status = local.as_ref().map_or(0u8, |f| {
            (f.status.clamp(1, 0x7f)) | if f.resumable { 0x80 } else { 0 }
        });
        let mut bytes = vec![status];
        bytes.extend(local.map(|f| f.message.into_bytes()).unwrap_or_default());
        bytes.truncate(1 << 20);
        let len = i32::try_from(bytes.len()).unwrap_or(1);
        let bytes = &bytes[..];
        let mut lens = vec![0i32; self.size()];
        self.world.all_gather_into(&len, &mut lens[..]);
        let (displs, total) = displacements(&lens);
        let mut all = vec![0u8; total];
        {
            let mut part = PartitionMut::new(&mut all[..], &lens[..], &displs[..]);
            self.world.all_gather_varcount_into(bytes, &mut part);
        }
        lens.iter()
            .zip(&displs)
            .enumerate()
            .filter_map(|(r, (&l, &d))| {
                let (d, l) = (
                    usize::try_from(d).unwrap_or(0),
                    usize::try_from(l).unwrap_or(0),
                );
                let msg = all.get(d..d + l)?;
                let status = *msg.first()?;
                if status == 0 {
                    return None;
                }
                Some(RankFailure {
                    rank: i32::try_from(r).unwrap_or(i32::MAX),
                    failure: Failure {
                        status: status & 0x7f,
                        resumable: status & 0x80 != 0,
                        message: String::from_utf8_lossy(&msg[1..]).into_owned(),
                    },
                })
            })
            .collect()
    }

    /// A collective checkpoint: fails on every rank when any rank failed.
    ///
    /// # Errors
    /// [`RankError::from_ranks`] with the message of each failing rank.
    pub fn agree<T, E: RankError>(&self, local: Result<T, E>) -> Result<T, E> {
        let failures = self.gather_failures(local.as_ref().err().map(E::failure));
        match local {
            Ok(v) if failures.is_empty() => Ok(v),
            Ok(_) => Err(E::from_ranks(failures)),
            Err(e) if self.size() == 1 => Err(e),
            Err(_) => Err(E::from_ranks(failures)),
        }
    }

    /// Maximum of a value over all ranks.
    pub fn max_f64(&self, x: f64) -> f64 {
        let mut out = 0f64;
        self.world
            .all_reduce_into(&x, &mut out, mpi::collective::SystemOperation::max());
        out
    }

    /// The sums of `xs` element by element over all ranks (every rank
    /// gives as many), on rank 0; `None` on the other ranks.
    pub fn sum_u64s_to_root(&self, xs: &[u64]) -> Option<Vec<u64>> {
        let root = self.world.process_at_rank(0);
        if self.is_root() {
            let mut out = vec![0u64; xs.len()];
            root.reduce_into_root(xs, &mut out[..], mpi::collective::SystemOperation::sum());
            Some(out)
        } else {
            root.reduce_into(xs, mpi::collective::SystemOperation::sum());
            None
        }
    }

    /// Sum of a value over all ranks.
    pub fn sum_u64(&self, x: u64) -> u64 {
        let mut out = 0u64;
        self.world
            .all_reduce_into(&x, &mut out, mpi::collective::SystemOperation::sum());
        out
    }
}

/// MPI could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MpiError(pub String);

/// An error the ranks can agree on ([`MpiCtx::agree`]): what this rank
/// tells the others, and the error made of every failing rank's message.
pub trait RankError: Sized {
    /// This rank's failure as the other ranks are told of it.
    fn failure(&self) -> Failure;
    /// The error every rank returns when `failures` failed.
    fn from_ranks(failures: Vec<RankFailure>) -> Self;
}

/// How a rank failed, as the ranks tell each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The exit status this failure gives (1 to 127; see
    /// `crate::error::ExitStatus`).
    pub status: u8,
    /// Whether the same command with `--resume` can finish the run.
    pub resumable: bool,
    /// The error chain on one line.
    pub message: String,
}

/// One rank's failure, gathered from every rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankFailure {
    /// The rank.
    pub rank: i32,
    /// What it reported.
    pub failure: Failure,
}

#[cfg(test)]
mod tests {
    use super::one_node;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn one_node_is_read_from_the_launchers_variables() {
        assert!(one_node(&env(&[])), "a singleton");
        let mpirun = |w, l| {
            env(&[
                ("OMPI_COMM_WORLD_SIZE", w),
                ("OMPI_COMM_WORLD_LOCAL_SIZE", l),
            ])
        };
        assert!(one_node(&mpirun("3", "3")));
        assert!(!one_node(&mpirun("4", "2")), "two nodes");
        assert!(one_node(&env(&[
            ("PMIX_RANK", "0"),
            ("SLURM_STEP_NUM_NODES", "1")
        ])));
        assert!(!one_node(&env(&[
            ("PMIX_RANK", "0"),
            ("SLURM_STEP_NUM_NODES", "2")
        ])));
        assert!(!one_node(&env(&[
            ("PMIX_RANK", "0"),
            ("SLURM_NNODES", "4")
        ])));
        assert!(!one_node(&env(&[("PMI_RANK", "0")])), "an unknown launcher");
    }
}
