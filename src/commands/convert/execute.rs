//! The per-rank unit loop: read → encode → store for every unit the plan
//! gives this rank.
//!
//! The rank's main thread reads (HDF5 and MPI are used from it only) and
//! hands each unit to a pool of encoder threads, with at most the memory
//! budget's number of units in flight. Finished units go into the rank's
//! journal, so a resumed run skips them. The loop stops early on an error
//! of its own, on another rank's failure and on SIGTERM/SIGINT.

use std::sync::mpsc::SyncSender;
use std::sync::Mutex;
use std::time::Instant;

use super::budget::{self, Budget};
use super::sharing::Share;
use super::Job;
use crate::cli::config::{Codec, ConvertConfig, VirtualOutput, ZarrFormat};
use crate::error::Error;
use crate::model::block::{place, place_items};
use crate::model::schema::DType;
use crate::mpi::ctx::MpiCtx;
use crate::mpi::topology::{JobTopology, Topology};
use crate::pipeline::exchange::Exchange;
use crate::pipeline::plan::{ArrayPlan, Plan, Unit};
use crate::pipeline::read::refs::ChunkPlace;
use crate::pipeline::read::{Pending, Reader, Values};
use crate::report::progress::RankStats;
use crate::store::encode::ArrayEncoder;
use crate::store::error::WriteError;
use crate::store::journal::{self, Journal};
use crate::store::opening::Opened;
use crate::store::storage::VirtualRef;

/// A rank's encoder threads and the PUs they are pinned to (none: not
/// pinned).
pub(super) struct Workers {
    pub(super) threads: usize,
    pub(super) pins: Vec<u32>,
    pub(super) budget: Budget,
}

/// The rank's encoder threads (pinned inside its cpuset when it is bound),
/// its memory budget (which also sizes HDF5's chunk cache), and the job's
/// topology; rank 0 warns of oversubscription.
pub(super) fn workers(
    ctx: &MpiCtx,
    cfg: &ConvertConfig,
    topo: &Topology,
    plan: &Plan,
) -> Result<(Workers, JobTopology), Error> {
    let threads = cfg
        .threads
        .unwrap_or_else(|| topo.encoder_threads(ctx.ranks_on_node()))
        .max(1);
    // Encoder threads of a bound rank are pinned inside its cpuset.
    let pins: Vec<u32> = (0..threads).filter_map(|i| topo.thread_pu(i)).collect();
    let topology = ctx.job_topology(topo, threads, !pins.is_empty());
    let budget = memory_budget(cfg, plan, threads)?;
    // Uploads to object storage, and chunks queued for a directory's
    // writer threads, are bounded by a share of the budget.
    let output = &cfg.output;
    if crate::store::storage::is_remote(output) || !crate::store::storage::is_object(output) {
        crate::store::storage::open(output)?.set_inflight_bytes(
            cfg.max_memory
                .map_or(crate::store::storage::INFLIGHT_DEFAULT_BYTES, |m| {
                    (m / 8).clamp(16 << 20, 1 << 30)
                }),
        );
    }
    // Each open dataset gets its own HDF5 chunk cache: the budget's share.
    crate::pipeline::read::hdf5::set_chunk_cache_bytes(
        usize::try_from(budget::hdf5_cache_per_dataset(budget.hdf5_cache)).unwrap_or(0),
    );
    let workers = Workers {
        threads,
        pins,
        budget,
    };
    Ok((workers, topology))
}

/// The rank's memory budget for this plan (`--max-memory`).
pub(super) fn memory_budget(
    cfg: &ConvertConfig,
    plan: &Plan,
    threads: usize,
) -> Result<Budget, Error> {
    let Some(max) = cfg.max_memory else {
        return Ok(Budget::unlimited(threads));
    };
    let largest = largest_unit(plan);
    Ok(Budget::fit(max, threads, largest.0, largest.1)?)
}

/// The largest unit of `plan`: uncompressed bytes and its array's path.
pub(super) fn largest_unit(plan: &Plan) -> (u64, &str) {
    plan.arrays
        .iter()
        .map(|a| {
            let n: u64 = a.unit_shape().iter().product();
            (n.saturating_mul(a.dtype.size() as u64), a.path.as_str())
        })
        .max_by_key(|(b, _)| *b)
        .unwrap_or((0, ""))
}

/// What the encoder threads and the main thread share.
#[derive(Default)]
pub(super) struct Shared {
    /// The first error of any thread; the loop stops at it.
    failure: Mutex<Option<Error>>,
    /// Units, bytes and seconds of the encoder threads.
    stats: Mutex<RankStats>,
    /// Units stored since the journal last recorded them.
    finished: Mutex<Vec<u64>>,
}

impl Shared {
    pub(super) fn failed(&self) -> bool {
        self.failure.lock().map_or(true, |g| g.is_some())
    }

    pub(super) fn fail(&self, e: Error) {
        if let Ok(mut g) = self.failure.lock() {
            g.get_or_insert(e);
        }
    }

    pub(super) fn drain(&self) -> Vec<u64> {
        self.finished
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    /// Unit `seq` was stored: `bytes` written, `encode_s` and `write_s` spent.
    pub(super) fn referenced(&self) {
        if let Ok(mut st) = self.stats.lock() {
            st.references += 1;
        }
    }

    pub(super) fn stored(&self, seq: u64, bytes: u64, encode_s: f64, write_s: f64) {
        if let Ok(mut st) = self.stats.lock() {
            st.units += 1;
            st.bytes_written += bytes;
            st.encode_s += encode_s;
            st.write_s += write_s;
        }
        if let Ok(mut f) = self.finished.lock() {
            f.push(seq);
        }
    }
}

/// One unit read on the main thread, ready for an encoder thread.
struct ReadUnit {
    /// The unit's shape (edge units included) as the values hold it.
    count: Vec<u64>,
    payload: Payload,
}

/// What an encoder thread gets of a unit.
enum Payload {
    /// `--codec source`: the unit is exactly one stored source chunk, to
    /// be stored as it is.
    Stored(Vec<u8>),
    /// The values, or a raw read to finish on the encoder thread.
    Values(Pending),
    /// `--virtual`: a reference to the chunk's bytes in its input file
    /// (`None`: the chunk was never written and reads as the fill value).
    Virtual(Option<VirtualRef>),
}

/// What both write phases of a rank (direct units, exchange rounds) work
/// from.
#[derive(Clone, Copy)]
pub(super) struct Run<'a> {
    pub(super) ctx: &'a MpiCtx,
    pub(super) cfg: &'a ConvertConfig,
    pub(super) job: &'a Job,
    pub(super) plan: &'a Plan,
    pub(super) x: &'a Exchange,
    pub(super) format: ZarrFormat,
    pub(super) workers: &'a Workers,
    pub(super) opened: &'a Opened,
}

/// Reads, encodes and stores the units of this rank that take the direct
/// path: its share of the plan, and the units it takes over from slower
/// ranks ([`Share`]). Reads on this thread, encodes and writes on `threads`
/// workers with a bounded number of units in flight.
///
/// Whatever happens on this rank (an error, a panic), it answers the
/// other ranks' requests for units until every rank has stopped asking.
pub(super) fn write_units(run: Run<'_>, monitor: &mut super::Monitor) -> Result<RankStats, Error> {
    let (x, opened) = (run.x, run.opened);
    let counts = |seq: u64| {
        !x.is_exchanged(run.plan.unit(seq).array) && !journal::is_done(&opened.done, seq)
    };
    let mut share = Share::new(run.ctx, run.plan, &counts);
    let stats = crate::system::stage::guarded(|| share_units(run, monitor, &mut share));
    share.finish(&mut || monitor.tick(run.ctx));
    stats.map(|mut s| {
        s.units_taken = share.taken;
        s
    })
}

/// [`write_units`] on `share`.
fn share_units(
    run: Run<'_>,
    monitor: &mut super::Monitor,
    share: &mut Share<'_>,
) -> Result<RankStats, Error> {
    let Run {
        ctx,
        cfg,
        job,
        plan,
        x,
        format,
        workers,
        opened,
    } = run;
    let mut journal = Journal::open(&cfg.output, &opened.run, ctx.rank())?;
    let vars = job.ds.schema.vars();
    let encoders = plan
        .arrays
        .iter()
        .map(|a| ArrayEncoder::new(&cfg.output, vars[a.var], a, format))
        .collect::<Result<Vec<_>, _>>()?;
    let pool = encoder_pool(workers)?;
    let (tok_tx, tok_rx) = slots(workers.budget.in_flight);
    let shared = Shared::default();
    let mut stats = RankStats::default();
    let mut reader = Reader::new(&job.ds);
    reader.set_cache_limit(usize::try_from(workers.budget.chunk_cache).unwrap_or(usize::MAX));
    // Another rank's failure stops this rank's work early (it meets the
    // failing rank at the agreement); so does SIGTERM/SIGINT.
    let mut stopped_by_peer = false;

    let mut started = 0u64;
    pool.in_place_scope(|s| {
        loop {
            if let Some(why) = stop(ctx, &shared, &mut journal) {
                stopped_by_peer = matches!(why, Stop::Peer);
                share.stop();
                break;
            }
            let Some(seq) = share.next(&mut || monitor.tick(ctx)) else {
                break;
            };
            let unit = plan.unit(seq);
            // The units of the exchange path come later, in rounds.
            if x.is_exchanged(unit.array) {
                continue;
            }
            if journal::is_done(&opened.done, unit.seq) {
                stats.units_resumed += 1;
                continue;
            }
            started += 1;
            crate::system::fault::pace("unit");
            let t = Instant::now();
            let a = &plan.arrays[unit.array];
            let refs = cfg.virtual_refs.as_ref();
            let read = match read_unit(&mut reader, job, a, &encoders, &unit, refs) {
                Ok(r) => r,
                Err(e) => {
                    shared.fail(e);
                    break;
                }
            };
            stats.read_s += t.elapsed().as_secs_f64();
            let bytes = read_bytes(&read, plan.arrays[unit.array].dtype);
            stats.bytes_read += bytes;
            let t = Instant::now();
            if tok_rx.recv().is_err() {
                break;
            }
            stats.wait_s += t.elapsed().as_secs_f64();
            let enc = &encoders[unit.array];
            let (shared, tok_tx) = (&shared, tok_tx.clone());
            s.spawn(move |_| encode_and_store(enc, &unit, read, shared, &tok_tx));
            monitor.add(ctx, 1, bytes);
        }
        // Encoding goes on while this rank waits for the others to stop
        // asking for units.
        share.finish(&mut || monitor.tick(ctx));
    });
    finish(
        ctx,
        cfg,
        started > 0,
        journal,
        shared,
        stats,
        stopped_by_peer,
    )
}

/// `n` (at least one) tokens of a unit in flight: taken before a unit goes
/// to an encoder thread, given back once it is stored.
fn slots(n: usize) -> (SyncSender<()>, std::sync::mpsc::Receiver<()>) {
    let n = n.max(1);
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(n);
    for _ in 0..n {
        let _ = tx.send(());
    }
    (tx, rx)
}

/// Why the loop stops before the next unit.
enum Stop {
    /// Another rank failed: this rank meets it at the agreement.
    Peer,
    /// This rank failed or was signalled (the failure is recorded).
    Here,
}

/// Whether to stop before the next unit; records what finished since the
/// last unit in the journal.
fn stop(ctx: &MpiCtx, shared: &Shared, journal: &mut Journal) -> Option<Stop> {
    if shared.failed() {
        return Some(Stop::Here);
    }
    if ctx.failure_pending() {
        return Some(Stop::Peer);
    }
    if let Some(sig) = crate::system::signals::received() {
        shared.fail(WriteError::Interrupted(crate::system::signals::name(sig)).into());
        return Some(Stop::Here);
    }
    if let Err(e) = journal.add(shared.drain()) {
        shared.fail(e.into());
        return Some(Stop::Here);
    }
    None
}

/// The pool of encoder threads, pinned to `workers.pins` when there are
/// pins.
pub(super) fn encoder_pool(workers: &Workers) -> Result<rayon::ThreadPool, WriteError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers.threads)
        .thread_name(|i| format!("zarrforge-encode-{i}"))
        .start_handler({
            let pins = workers.pins.clone();
            move |i| {
                if let Some(&pu) = pins.get(i) {
                    crate::mpi::topology::bind_current_thread(pu);
                }
            }
        })
        .build()
        .map_err(|e| WriteError::Threads(e.to_string()))
}

/// Reads one unit on the main thread: a stored source chunk to copy as it
/// is (`--codec source`), the completion of a unit an append shares with
/// the store, or the unit's values from the input files.
fn read_unit(
    reader: &mut Reader<'_>,
    job: &Job,
    a: &ArrayPlan,
    encoders: &[ArrayEncoder],
    unit: &Unit,
    refs: Option<&VirtualOutput>,
) -> Result<ReadUnit, Error> {
    let (start, count) = a.unit_region(&unit.indices);
    if let Some(payload) = virtual_unit(reader, job, a, &start, &count, refs)? {
        return Ok(ReadUnit { count, payload });
    }
    // `--codec source`: a unit that is exactly one stored source chunk is
    // copied as it is.
    if a.shards.is_none() && job.append_from.is_none() && job.region.is_none() {
        if let Some(b) = reader.stored_chunk(a.var, &start, &count, a.unit_shape(), &a.codec)? {
            return Ok(ReadUnit {
                count,
                payload: Payload::Stored(b),
            });
        }
    }
    let axis = job.ds.sources.get(a.var).and_then(|s| s.axis);
    let (count, values) = match (job.append_from, axis) {
        (Some(old), Some(k)) if start[k] < old => {
            let (c, v) = complete_unit(reader, &encoders[unit.array], a, &unit.indices, k, old)?;
            (c, Pending::Ready(v))
        }
        (None, Some(k))
            if job
                .region
                .as_ref()
                .is_some_and(|r| start[k] < r.start || start[k] + count[k] > r.end) =>
        {
            let r = job.region.as_ref().map_or((0, 0), |r| (r.start, r.end));
            let (c, v) = region_unit(reader, &encoders[unit.array], a, &unit.indices, k, r)?;
            (c, Pending::Ready(v))
        }
        _ => {
            let values = reader.prepare(a.var, &start, &count)?;
            (count, values)
        }
    };
    Ok(ReadUnit {
        count,
        payload: Payload::Values(values),
    })
}

/// `--virtual`: the reference of a unit of a referenced array (a
/// [`Payload::Virtual`]); `None` when the unit's values are to be copied
/// (not a referenced array, or a chunk stored with a filter skipped).
fn virtual_unit(
    reader: &mut Reader<'_>,
    job: &Job,
    a: &ArrayPlan,
    start: &[u64],
    count: &[u64],
    refs: Option<&VirtualOutput>,
) -> Result<Option<Payload>, Error> {
    let (Codec::Virtual(_), Some(refs)) = (&a.codec, refs) else {
        return Ok(None);
    };
    let Some(layout) = job
        .ds
        .sources
        .get(a.var)
        .and_then(|s| s.stored.as_ref())
        .and_then(|st| st.layout.as_ref())
    else {
        return Ok(None);
    };
    Ok(match reader.chunk_place(a.var, layout, start, count)? {
        ChunkPlace::Copy => None,
        // A chunk never written reads as the variable's fill value: the
        // array's own when the variable has a `_FillValue`; otherwise
        // netCDF's default, which the array does not hold (its fill value
        // is what a copy pads with), so the chunk is copied.
        ChunkPlace::Missing => {
            let declared = job
                .ds
                .schema
                .vars()
                .get(a.var)
                .is_some_and(|v| crate::model::schema::fill_bytes(v).is_some());
            declared.then_some(Payload::Virtual(None))
        }
        ChunkPlace::At {
            file,
            offset,
            length,
        } => {
            let f = job.ds.files.get(file as usize);
            let path = f.map(|f| f.canonical.clone()).unwrap_or_default();
            let url = refs.url(&path);
            let modified = f
                .and_then(|f| u32::try_from(f.mtime_ns.div_euclid(1_000_000_000)).ok())
                .map(|s| s.saturating_add(1));
            Some(Payload::Virtual(Some(VirtualRef {
                url,
                offset,
                length,
                modified,
            })))
        }
    })
}

/// Bytes of source data a read unit stands for.
fn read_bytes(read: &ReadUnit, dtype: DType) -> u64 {
    match &read.payload {
        Payload::Values(Pending::Ready(Values::Fixed(b))) => b.len() as u64,
        Payload::Values(Pending::Ready(Values::Strings(v))) => {
            v.iter().map(|x| x.len() as u64).sum()
        }
        Payload::Stored(_) | Payload::Values(Pending::Raw(_)) => {
            read.count.iter().product::<u64>() * dtype.size() as u64
        }
        Payload::Virtual(_) => 0,
    }
}

/// On an encoder thread: finishes the read, encodes and stores one unit,
/// records it, and gives its place in flight back.
fn encode_and_store(
    enc: &ArrayEncoder,
    unit: &Unit,
    read: ReadUnit,
    shared: &Shared,
    tok_tx: &SyncSender<()>,
) {
    let t = Instant::now();
    let result = crate::system::stage::catch(|| {
        let bytes = match read.payload {
            Payload::Virtual(reference) => {
                if let Some(r) = reference {
                    enc.store_virtual(&unit.indices, r)?;
                    shared.referenced();
                }
                return Ok((0, t.elapsed().as_secs_f64(), 0.0));
            }
            Payload::Stored(b) => b,
            Payload::Values(pending) => {
                let values = pending
                    .finish()
                    .map_err(|e| WriteError::Read(Box::new(e)))?;
                enc.encode(&unit.indices, &read.count, values)?
            }
        };
        let t_enc = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let n = bytes.len() as u64;
        enc.store(&unit.indices, bytes)?;
        Ok::<_, WriteError>((n, t_enc, t.elapsed().as_secs_f64()))
    })
    .unwrap_or_else(|p| Err(WriteError::Panic(p)));
    match result {
        Ok((n, te, tw)) => shared.stored(unit.seq, n, te, tw),
        Err(e) => shared.fail(e.into()),
    }
    let _ = tok_tx.send(());
}

/// After the loop: records what finished (also on failure: a resumed run
/// skips it), tells the other ranks of a failure at once, makes this rank's
/// chunks durable (when it has units) and returns its statistics.
pub(super) fn finish(
    ctx: &MpiCtx,
    cfg: &ConvertConfig,
    has_units: bool,
    mut journal: Journal,
    shared: Shared,
    mut stats: RankStats,
    stopped_by_peer: bool,
) -> Result<RankStats, Error> {
    let recorded = journal.add(shared.drain()).and_then(|()| journal.flush());
    let failure = shared.failure.into_inner().ok().flatten();
    if let Some(e) = failure {
        // Tell the other ranks now rather than at the end of their work.
        ctx.notify_failure();
        return Err(e);
    }
    recorded?;
    if stopped_by_peer {
        return Ok(stats);
    }
    if has_units {
        crate::store::storage::open(&cfg.output)?.sync()?;
    }
    let encoded = shared.stats.into_inner().unwrap_or_default();
    stats.units = encoded.units;
    stats.bytes_written = encoded.bytes_written;
    stats.references = encoded.references;
    stats.encode_s = encoded.encode_s;
    stats.write_s = encoded.write_s;
    Ok(stats)
}

/// The unit at `indices` of an append whose part before `old` (along axis
/// `k`) an earlier run wrote: the stored unit is read back and the new part
/// is read from the input files into it. Returns the whole unit.
fn complete_unit(
    reader: &mut Reader<'_>,
    enc: &ArrayEncoder,
    a: &ArrayPlan,
    indices: &[u64],
    k: usize,
    old: u64,
) -> Result<(Vec<u64>, Values), Error> {
    let (start, count) = a.unit_region(indices);
    let (full, mut unit) = stored_part(enc, a, indices, k, old)?;
    let end = start[k] + count[k];
    overlay(
        reader,
        a,
        (&mut unit, &full),
        (&start, &count),
        k,
        (old, end),
    )?;
    Ok((full, unit))
}

/// Replaces the steps `[lo, hi)` along axis `k` of `unit` (of shape
/// `full`, the unit at `start`/`count`) with the inputs' values.
fn overlay(
    reader: &mut Reader<'_>,
    a: &ArrayPlan,
    (unit, full): (&mut Values, &[u64]),
    (start, count): (&[u64], &[u64]),
    k: usize,
    (lo, hi): (u64, u64),
) -> Result<(), Error> {
    if lo >= hi {
        return Ok(());
    }
    let mut s = start.to_vec();
    s[k] = lo;
    let mut c = count.to_vec();
    c[k] = hi - lo;
    let mut origin = vec![0u64; full.len()];
    origin[k] = lo - start[k];
    let new = reader.read(a.var, &s, &c)?;
    match (unit, new) {
        (Values::Fixed(dst), Values::Fixed(p)) => {
            place(dst, full, &p, &c, &origin, a.dtype.size());
        }
        (Values::Strings(dst), Values::Strings(p)) => {
            place_items(dst, full, &p, &c, &origin);
        }
        _ => {
            return Err(WriteError::KindMismatch {
                var: a.path.clone(),
            }
            .into())
        }
    }
    Ok(())
}

/// A unit that a region write (`--region`) covers in part: the unit as
/// the store holds it, with the steps of the region `[lo, hi)` along axis
/// `k` replaced by the inputs'. Returns the unit shape and its values.
fn region_unit(
    reader: &mut Reader<'_>,
    enc: &ArrayEncoder,
    a: &ArrayPlan,
    indices: &[u64],
    k: usize,
    (lo, hi): (u64, u64),
) -> Result<(Vec<u64>, Values), Error> {
    let (start, count) = a.unit_region(indices);
    let (full, mut unit) = stored_unit(enc, a, indices)?;
    let (lo, hi) = (lo.max(start[k]), hi.min(start[k] + count[k]));
    overlay(reader, a, (&mut unit, &full), (&start, &count), k, (lo, hi))?;
    Ok((full, unit))
}

/// The whole unit at `indices` as the store holds it (the fill value
/// where it holds none), and its shape.
fn stored_unit(
    enc: &ArrayEncoder,
    a: &ArrayPlan,
    indices: &[u64],
) -> Result<(Vec<u64>, Values), Error> {
    let full = enc.unit_shape().to_vec();
    let total = usize::try_from(full.iter().product::<u64>()).unwrap_or(0);
    let unit = match enc.load(indices)? {
        Some(v) => v,
        None if a.dtype == DType::String => Values::Strings(vec![String::new(); total]),
        None => Values::Fixed(enc.pad().repeat(total)),
    };
    Ok((full, unit))
}

/// The whole unit at `indices` as an earlier run stored it, with
/// everything from `old` on (along axis `k`) reset to the fill value: the
/// part of an append's unit that the inputs do not give. Returns the unit
/// shape and its values.
pub(super) fn stored_part(
    enc: &ArrayEncoder,
    a: &ArrayPlan,
    indices: &[u64],
    k: usize,
    old: u64,
) -> Result<(Vec<u64>, Values), Error> {
    let (start, _) = a.unit_region(indices);
    let (full, mut unit) = stored_unit(enc, a, indices)?;
    // Anything after `old` (left by a run that did not commit) is reset.
    let mut tail = full.clone();
    tail[k] = full[k].saturating_sub(old - start[k]);
    let mut origin = vec![0u64; full.len()];
    origin[k] = old - start[k];
    let n_tail = usize::try_from(tail.iter().product::<u64>()).unwrap_or(0);
    match &mut unit {
        Values::Fixed(dst) => {
            let pad = enc.pad().repeat(n_tail);
            place(dst, &full, &pad, &tail, &origin, a.dtype.size());
        }
        Values::Strings(dst) => {
            place_items(dst, &full, &vec![String::new(); n_tail], &tail, &origin);
        }
    }
    Ok((full, unit))
}
