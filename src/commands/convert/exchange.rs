//! The exchange path on one rank: for every round of the exchange plan,
//! read and decode this rank's share of the source blocks, send each piece
//! to the rank that writes its unit, place what arrives in this rank's
//! units, then encode and store them.
//!
//! The stages overlap on a rank. The main thread reads a step's blocks and
//! the encoder threads decode them while the main thread exchanges the
//! step before; the encoder threads encode and store the units of the
//! round before meanwhile, stepping aside for each decoding. Whether a
//! round is assembled while the one before is encoded is the plan's
//! ([`crate::pipeline::exchange::Sizing::overlap`]: two rounds in memory,
//! each half the round budget); otherwise the rounds follow one another.
//!
//! Every rank goes through the same rounds and steps; each step is one
//! all-to-all ([`MpiCtx::all_to_all_bytes`]) that also carries every rank's
//! status, so a failure (a read error, a full disk while storing the
//! previous round, SIGTERM) stops every rank at the same step: the failing
//! rank returns its error, the others meet it at the agreement that
//! follows. Pieces carry no header: both sides enumerate them from the
//! plan in the same order.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Instant;

use rayon::prelude::*;

use super::execute::{encoder_pool, finish, stored_part, Run, Shared};
use super::Job;
use crate::error::Error;
use crate::model::block::copy_block;
use crate::mpi::alltoall::StepError;
use crate::mpi::ctx::MpiCtx;
use crate::pipeline::exchange::{Block, Exchange, Piece, Round};
use crate::pipeline::plan::{ArrayPlan, Plan};
use crate::pipeline::read::{Pending, Reader, Values};
use crate::report::progress::RankStats;
use crate::store::encode::ArrayEncoder;
use crate::store::error::WriteError;
use crate::store::journal::{self, Journal};
use crate::store::opening::Opened;

/// One unit being assembled: its origin in the array, its shape and its
/// values (C order).
struct UnitBuf {
    start: Vec<u64>,
    shape: Vec<u64>,
    data: Vec<u8>,
}

/// What a rank needs through the rounds.
struct Side<'a> {
    ctx: &'a MpiCtx,
    job: &'a Job,
    plan: &'a Plan,
    x: &'a Exchange,
    opened: &'a Opened,
    me: usize,
}

/// Runs every round of the exchange plan on this rank.
///
/// # Errors
/// This rank's read, encode, store or exchange error.
pub(super) fn write_rounds(run: Run<'_>, monitor: &mut super::Monitor) -> Result<RankStats, Error> {
    let Run {
        ctx,
        cfg,
        job,
        plan,
        x,
        format: _,
        workers,
        opened,
    } = run;
    let me = usize::try_from(ctx.rank()).unwrap_or(0);
    let side = Side {
        ctx,
        job,
        plan,
        x,
        opened,
        me,
    };
    let mut journal = Journal::open(&cfg.output, &opened.run, ctx.rank())?;
    let encoders = encoders(run)?;
    let pool = encoder_pool(workers)?;
    let shared = Shared::default();
    let mut stats = RankStats::default();
    let mut reader = Reader::new(&job.ds);
    // Each block is read once per round: nothing to keep.
    reader.set_cache_limit(0);
    let total: u64 = x
        .rounds
        .iter()
        .map(|r| r.units_of(me).end - r.units_of(me).start)
        .sum();
    let mut stopped_by_peer = false;
    let backlog = Backlog::new();
    pool.in_place_scope(|sc| {
        let mut encoding = Encoding::new(&backlog, workers.threads);
        for round in &x.rounds {
            let Some(enc) = encoders.get(&round.array) else {
                continue;
            };
            let a = &plan.arrays[round.array];
            // Without overlap the units of a round are all encoded before
            // the next round's are made.
            if !x.sizing.overlap {
                stats.wait_s += encoding.wait_all(sc, &shared);
            }
            let mut threads = InScope {
                sc,
                encoding: &mut encoding,
                shared: &shared,
            };
            let outcome = side.round(round, enc, &mut reader, &mut threads, &shared, &mut stats);
            match outcome {
                Outcome::Assembled(units) => {
                    // At most two rounds in memory: the one before is
                    // finished before this one is handed over.
                    stats.wait_s += encoding.wait_all(sc, &shared);
                    encoding.add(enc, a, units);
                    encoding.resume(sc, &shared);
                }
                Outcome::Peer => {
                    stopped_by_peer = true;
                    encoding.clear();
                    break;
                }
                Outcome::Failed => {
                    encoding.clear();
                    break;
                }
            }
            if let Err(e) = journal.add(shared.drain()) {
                shared.fail(e.into());
            }
            side.count(round, monitor);
            stats.rounds += 1;
        }
        stats.wait_s += encoding.wait_all(sc, &shared);
    });
    let has_units = total > 0;
    finish(ctx, cfg, has_units, journal, shared, stats, stopped_by_peer)
}

/// An encoder for every array of the rounds.
fn encoders(run: Run<'_>) -> Result<HashMap<usize, ArrayEncoder>, Error> {
    let vars = run.job.ds.schema.vars();
    let mut encoders: HashMap<usize, ArrayEncoder> = HashMap::new();
    for r in &run.x.rounds {
        if let std::collections::hash_map::Entry::Vacant(e) = encoders.entry(r.array) {
            let a = &run.plan.arrays[r.array];
            e.insert(ArrayEncoder::new(
                &run.cfg.output,
                vars[a.var],
                a,
                run.format,
            )?);
        }
    }
    Ok(encoders)
}

/// How a round ended on this rank.
enum Outcome {
    /// Its units, assembled, to encode and store (none when this rank
    /// failed after the last step: the next round's first step, or the
    /// agreement after the last round, tells the others).
    Assembled(Vec<(u64, UnitBuf)>),
    /// Another rank failed.
    Peer,
    /// This rank failed (recorded in [`Shared`]) and every rank knows it.
    Failed,
}

/// A step's blocks being decoded on the encoder threads.
type Decoding = mpsc::Receiver<Result<Vec<Vec<u8>>, Error>>;

/// The encoder threads as a round's steps use them.
trait Threads {
    /// Decodes `pending`, blocks of the array at `path`, ahead of the
    /// encoding of the round before.
    fn decode(&mut self, path: &str, pending: Vec<Pending>) -> Decoding;
    /// Hands waiting units to idle encoder threads.
    fn resume(&mut self);
}

/// [`Threads`] over the scope of the rank's encoder pool.
struct InScope<'r, 's, 'b, 'a> {
    sc: &'r rayon::Scope<'s>,
    encoding: &'r mut Encoding<'b, 'a>,
    shared: &'s Shared,
}

impl<'b: 's, 's> Threads for InScope<'_, 's, 'b, '_> {
    fn decode(&mut self, path: &str, pending: Vec<Pending>) -> Decoding {
        self.encoding.decode(self.sc, self.shared, path, pending)
    }

    fn resume(&mut self) {
        self.encoding.resume(self.sc, self.shared);
    }
}

/// A unit assembled and waiting for an encoder thread.
struct Queued<'a> {
    enc: &'a ArrayEncoder,
    a: &'a ArrayPlan,
    k: u64,
    unit: UnitBuf,
}

/// What the encoder threads share with the main thread about the units
/// waiting to be encoded.
struct Backlog<'a> {
    queue: Mutex<VecDeque<Queued<'a>>>,
    /// Set while the main thread needs the encoder threads (to decode a
    /// step's blocks): the encoding loops return after their unit.
    paused: AtomicBool,
}

impl<'a> Backlog<'a> {
    fn new() -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            paused: AtomicBool::new(false),
        }
    }

    fn next(&self) -> Option<Queued<'a>> {
        if self.paused.load(Ordering::Acquire) {
            return None;
        }
        self.queue.lock().ok()?.pop_front()
    }

    fn is_empty(&self) -> bool {
        self.queue.lock().map_or(true, |q| q.is_empty())
    }

    fn clear(&self) {
        if let Ok(mut q) = self.queue.lock() {
            q.clear();
        }
    }

    /// On an encoder thread: encodes and stores waiting units until none
    /// waits, the threads are wanted for decoding, or the run failed.
    fn encode(&self, shared: &Shared) {
        while let Some(Queued { enc, a, k, unit }) = self.next() {
            if shared.failed() {
                break;
            }
            store_unit(enc, a, a.first_unit + k, k, unit, shared);
        }
    }
}

/// The assembled units on their way to the encoder threads, encoded by
/// one loop per thread while the main thread reads, packs, exchanges and
/// places the pieces of the next round. The loops step aside while the
/// next step's blocks are decoded on the same threads ([`Self::decode`]).
struct Encoding<'b, 'a> {
    backlog: &'b Backlog<'a>,
    loops: usize,
    threads: usize,
    done_tx: mpsc::Sender<()>,
    done_rx: mpsc::Receiver<()>,
}

impl<'b, 'a: 'b> Encoding<'b, 'a> {
    fn new(backlog: &'b Backlog<'a>, threads: usize) -> Self {
        let (done_tx, done_rx) = mpsc::channel();
        Self {
            backlog,
            loops: 0,
            threads: threads.max(1),
            done_tx,
            done_rx,
        }
    }

    fn add(&self, enc: &'a ArrayEncoder, a: &'a ArrayPlan, units: Vec<(u64, UnitBuf)>) {
        if let Ok(mut q) = self.backlog.queue.lock() {
            q.extend(
                units
                    .into_iter()
                    .map(|(k, unit)| Queued { enc, a, k, unit }),
            );
        }
    }

    /// Decodes `pending` (blocks of the array at `path`) on the encoder
    /// threads ahead of the encoding: the encoding loops return after the
    /// unit they are on, and the thread that decoded goes on encoding.
    fn decode<'s>(
        &self,
        sc: &rayon::Scope<'s>,
        shared: &'s Shared,
        path: &str,
        pending: Vec<Pending>,
    ) -> Decoding
    where
        'b: 's,
    {
        let (tx, rx) = mpsc::channel();
        let backlog = self.backlog;
        backlog.paused.store(true, Ordering::Release);
        let path = path.to_string();
        sc.spawn(move |_| {
            let decoded = decode(&path, pending);
            backlog.paused.store(false, Ordering::Release);
            let _ = tx.send(decoded);
            backlog.encode(shared);
        });
        rx
    }

    /// Starts an encoding loop on every idle encoder thread while units
    /// wait; drops them once any thread failed.
    fn resume<'s>(&mut self, sc: &rayon::Scope<'s>, shared: &'s Shared)
    where
        'b: 's,
    {
        while self.done_rx.try_recv().is_ok() {
            self.loops = self.loops.saturating_sub(1);
        }
        if shared.failed() {
            self.backlog.clear();
        }
        let backlog = self.backlog;
        while self.loops < self.threads && !backlog.is_empty() {
            self.loops += 1;
            let done = self.done_tx.clone();
            sc.spawn(move |_| {
                backlog.encode(shared);
                let _ = done.send(());
            });
        }
    }

    /// Waits until every queued unit is stored (or the run failed);
    /// returns the seconds waited.
    fn wait_all<'s>(&mut self, sc: &rayon::Scope<'s>, shared: &'s Shared) -> f64
    where
        'b: 's,
    {
        let t = Instant::now();
        self.backlog.paused.store(false, Ordering::Release);
        loop {
            self.resume(sc, shared);
            if self.loops == 0 {
                break;
            }
            if self.done_rx.recv().is_err() {
                break;
            }
            self.loops -= 1;
        }
        t.elapsed().as_secs_f64()
    }

    /// Drops the units not yet taken (the run stops).
    fn clear(&self) {
        self.backlog.clear();
    }
}

impl Side<'_> {
    /// Counts the pending units of `round` on this rank in the job's
    /// progress.
    fn count(&self, round: &Round, monitor: &mut super::Monitor) {
        let a = &self.plan.arrays[round.array];
        let (units, bytes) = round
            .units_of(self.me)
            .filter(|&k| self.pending(a, k))
            .fold((0u64, 0u64), |(n, b), k| {
                (n + 1, b + a.unit_bytes(&a.unit_indices(k)))
            });
        monitor.add(self.ctx, units, bytes);
    }

    /// One round on this rank: assembles its units over the steps and
    /// returns them. Each step's blocks are decoded on the encoder threads
    /// while the main thread exchanges the step before. A failure not yet
    /// told (it came after the last step) returns no units: the rank goes
    /// on through the steps of the next round with nothing to do, and its
    /// first step tells everyone.
    fn round(
        &self,
        round: &Round,
        enc: &ArrayEncoder,
        reader: &mut Reader<'_>,
        threads: &mut dyn Threads,
        shared: &Shared,
        stats: &mut RankStats,
    ) -> Outcome {
        let a = &self.plan.arrays[round.array];
        // The first step decodes while the units are made.
        let t = Instant::now();
        let mut next = (round.steps > 0).then(|| self.decode(round, 0, reader, threads, shared));
        stats.read_s += t.elapsed().as_secs_f64();
        let mut units = if shared.failed() {
            HashMap::new()
        } else {
            match self.units(round, enc) {
                Ok(u) => u,
                Err(e) => {
                    shared.fail(e);
                    HashMap::new()
                }
            }
        };
        for s in 0..round.steps {
            if let Some(sig) = crate::system::signals::received() {
                shared.fail(WriteError::Interrupted(crate::system::signals::name(sig)).into());
            }
            let t = Instant::now();
            let decoded = match next.take().map(|rx| rx.recv()) {
                Some(Ok(Ok(d))) => d,
                Some(Ok(Err(e))) => {
                    shared.fail(e);
                    Vec::new()
                }
                Some(Err(_)) => {
                    shared
                        .fail(WriteError::Threads(format!("decoding '{}' stopped", a.path)).into());
                    Vec::new()
                }
                None => Vec::new(),
            };
            if s + 1 < round.steps {
                next = Some(self.decode(round, s + 1, reader, threads, shared));
            }
            threads.resume();
            stats.read_s += t.elapsed().as_secs_f64();
            stats.bytes_read += decoded.iter().map(|d| d.len() as u64).sum::<u64>();
            match self.step(round, s, decoded, &mut units, threads, shared, stats) {
                Ok(()) => {}
                Err(StepError::Peer(_)) => return Outcome::Peer,
                Err(StepError::Here) => return Outcome::Failed,
                Err(e) => {
                    shared.fail(
                        WriteError::Exchange {
                            var: a.path.clone(),
                            source: e,
                        }
                        .into(),
                    );
                    return Outcome::Failed;
                }
            }
        }
        if shared.failed() {
            return Outcome::Assembled(Vec::new());
        }
        Outcome::Assembled(units.into_iter().collect())
    }

    /// Reads this rank's blocks of step `s` on this thread and starts
    /// decoding them on the encoder threads (nothing to decode once the
    /// run failed).
    fn decode(
        &self,
        round: &Round,
        s: usize,
        reader: &mut Reader<'_>,
        threads: &mut dyn Threads,
        shared: &Shared,
    ) -> Decoding {
        let a = &self.plan.arrays[round.array];
        let mut pending = Vec::new();
        if !shared.failed() {
            for b in &round.blocks[round.step_blocks(self.me, s)] {
                match reader.prepare(a.var, &b.start, &b.count) {
                    Ok(p) => pending.push(p),
                    Err(e) => {
                        shared.fail(e.into());
                        pending.clear();
                        break;
                    }
                }
            }
        }
        if pending.is_empty() {
            let (tx, rx) = mpsc::channel();
            let _ = tx.send(Ok(Vec::new()));
            return rx;
        }
        threads.decode(&a.path, pending)
    }

    /// The units this rank writes in `round`, ready to receive their
    /// pieces: zeros (every element gets a piece), or for a unit an append
    /// shares with the store, the stored part with the rest reset.
    fn units(&self, round: &Round, enc: &ArrayEncoder) -> Result<HashMap<u64, UnitBuf>, Error> {
        let a = &self.plan.arrays[round.array];
        let size = a.dtype.size();
        let mut out = HashMap::new();
        for k in round.units_of(self.me) {
            if !self.pending(a, k) {
                continue;
            }
            let idx = a.unit_indices(k);
            let (start, count) = a.unit_region(&idx);
            let (shape, data) = match (self.x.axis(round.array), self.job.append_from) {
                (Some(ax), Some(old)) if self.x.shares_with_store(a, round.array, k) => {
                    match stored_part(enc, a, &idx, ax, old)? {
                        (full, Values::Fixed(v)) => (full, v),
                        (_, Values::Strings(_)) => {
                            return Err(WriteError::KindMismatch {
                                var: a.path.clone(),
                            }
                            .into())
                        }
                    }
                }
                _ => {
                    let n = usize::try_from(count.iter().product::<u64>()).unwrap_or(0);
                    (count, vec![0u8; n * size])
                }
            };
            out.insert(k, UnitBuf { start, shape, data });
        }
        Ok(out)
    }

    fn pending(&self, a: &ArrayPlan, k: u64) -> bool {
        !journal::is_done(&self.opened.done, a.first_unit + k)
    }

    /// One step: place this rank's own pieces of its `decoded` blocks of
    /// step `s`, send the others', place what arrives.
    #[allow(clippy::too_many_arguments)] // the round's state, borrowed from `round`
    fn step(
        &self,
        round: &Round,
        s: usize,
        decoded: Vec<Vec<u8>>,
        units: &mut HashMap<u64, UnitBuf>,
        threads: &mut dyn Threads,
        shared: &Shared,
        stats: &mut RankStats,
    ) -> Result<(), StepError> {
        let mine = round.step_blocks(self.me, s);
        let ok = !shared.failed();
        let t = Instant::now();
        let (send, counts) = if ok {
            self.pack(round, mine, &decoded, units)
        } else {
            (Vec::new(), vec![0; self.ctx.size()])
        };
        drop(decoded);
        threads.resume();
        let received = self.ctx.all_to_all_bytes(&send, &counts, ok)?;
        stats.bytes_sent += send.len() as u64;
        drop(send);
        stats.bytes_received += received.len() as u64;
        threads.resume();
        for q in (0..self.ctx.size()).filter(|&q| q != self.me) {
            if let Err(e) = self.unpack(round, s, q, received.from(q), units) {
                shared.fail(e);
            }
        }
        stats.exchange_s += t.elapsed().as_secs_f64();
        Ok(())
    }

    /// Places the pieces of this rank's decoded `blocks` that its own units
    /// need and packs the others', destination after destination; returns
    /// the packed bytes and the bytes for each rank.
    fn pack(
        &self,
        round: &Round,
        blocks: std::ops::Range<usize>,
        decoded: &[Vec<u8>],
        units: &mut HashMap<u64, UnitBuf>,
    ) -> (Vec<u8>, Vec<usize>) {
        let a = &self.plan.arrays[round.array];
        let size = a.dtype.size();
        let pending = |k: u64| self.pending(a, k);
        // Every piece of these blocks, enumerated once.
        let mut pieces: Vec<(usize, Piece)> = Vec::new();
        for (j, b) in blocks.clone().enumerate() {
            self.x
                .pieces(self.plan, round, b, &pending, None, |p| pieces.push((j, p)));
        }
        let mut counts = vec![0usize; self.ctx.size()];
        for (_, p) in &pieces {
            if p.owner != self.me {
                counts[p.owner] += to_usize(p.region.len()) * size;
            }
        }
        let mut cursor: Vec<usize> = counts
            .iter()
            .scan(0usize, |acc, &c| {
                let d = *acc;
                *acc += c;
                Some(d)
            })
            .collect();
        let mut send = vec![0u8; counts.iter().sum()];
        let first = blocks.start;
        for (j, p) in pieces {
            let (Some(src), Some(block)) = (decoded.get(j), round.blocks.get(first + j)) else {
                continue;
            };
            let off = offset(&p.region, &block.start);
            let ext = &p.region.count;
            if p.owner == self.me {
                if let Some(u) = units.get_mut(&p.unit) {
                    let dst = offset(&p.region, &u.start);
                    copy_block(
                        src,
                        &block.count,
                        &off,
                        &mut u.data,
                        &u.shape,
                        &dst,
                        ext,
                        size,
                    );
                }
            } else {
                let len = to_usize(p.region.len()) * size;
                let c = cursor[p.owner];
                let zero = vec![0; ext.len()];
                copy_block(
                    src,
                    &block.count,
                    &off,
                    &mut send[c..c + len],
                    ext,
                    &zero,
                    ext,
                    size,
                );
                cursor[p.owner] += len;
            }
        }
        (send, counts)
    }

    /// Places in this rank's units the pieces rank `q` sent in step `s`.
    ///
    /// # Errors
    /// [`WriteError::ExchangeMismatch`] when `data` is not what the plan
    /// gives.
    fn unpack(
        &self,
        round: &Round,
        s: usize,
        q: usize,
        data: &[u8],
        units: &mut HashMap<u64, UnitBuf>,
    ) -> Result<(), Error> {
        let a = &self.plan.arrays[round.array];
        let size = a.dtype.size();
        let pending = |k: u64| self.pending(a, k);
        let mut at = 0usize;
        let mut short = false;
        for b in round.step_blocks(q, s) {
            self.x
                .pieces(self.plan, round, b, &pending, Some(self.me), |p| {
                    if short {
                        return;
                    }
                    let len = to_usize(p.region.len()) * size;
                    let Some(src) = data.get(at..at + len) else {
                        short = true;
                        return;
                    };
                    if let Some(u) = units.get_mut(&p.unit) {
                        let dst = offset(&p.region, &u.start);
                        let ext = &p.region.count;
                        let zero = vec![0; ext.len()];
                        copy_block(src, ext, &zero, &mut u.data, &u.shape, &dst, ext, size);
                    }
                    at += len;
                });
        }
        if short || at != data.len() {
            return Err(WriteError::ExchangeMismatch {
                var: a.path.clone(),
                from: q,
                got: data.len(),
                want: at,
            }
            .into());
        }
        Ok(())
    }
}

/// On the encoder threads: decodes the blocks of the array at `path`;
/// the values of each block in C order.
fn decode(path: &str, pending: Vec<Pending>) -> Result<Vec<Vec<u8>>, Error> {
    let done: Vec<Result<Values, _>> = pending.into_par_iter().map(Pending::finish).collect();
    done.into_iter()
        .map(|v| match v {
            Ok(Values::Fixed(b)) => Ok(b),
            Ok(Values::Strings(_)) => Err(WriteError::KindMismatch {
                var: path.to_string(),
            }
            .into()),
            Err(e) => Err(e.into()),
        })
        .collect()
}

/// On an encoder thread: encodes and stores one assembled unit and records
/// it.
fn store_unit(enc: &ArrayEncoder, a: &ArrayPlan, seq: u64, k: u64, u: UnitBuf, shared: &Shared) {
    let t = Instant::now();
    let idx = a.unit_indices(k);
    let result = crate::system::stage::catch(|| {
        let bytes = enc.encode(&idx, &u.shape, Values::Fixed(u.data))?;
        let te = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let n = bytes.len() as u64;
        enc.store(&idx, bytes)?;
        Ok::<_, WriteError>((n, te, t.elapsed().as_secs_f64()))
    })
    .unwrap_or_else(|p| Err(WriteError::Panic(p)));
    match result {
        Ok((n, te, tw)) => shared.stored(seq, n, te, tw),
        Err(e) => shared.fail(e.into()),
    }
}

/// The position of `inner` inside a box that starts at `outer`.
fn offset(inner: &Block, outer: &[u64]) -> Vec<u64> {
    inner.start.iter().zip(outer).map(|(i, o)| i - o).collect()
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
