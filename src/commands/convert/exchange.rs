//! The exchange path on one rank: for every round of the exchange plan,
//! read and decode this rank's share of the source blocks, send each piece
//! to the rank that writes its unit, place what arrives in this rank's
//! units, then encode and store them.
//!
//! Every rank goes through the same rounds and steps; each step is one
//! all-to-all ([`MpiCtx::all_to_all_bytes`]) that also carries every rank's
//! status, so a failure (a read error, a full disk while storing the
//! previous round, SIGTERM) stops every rank at the same step: the failing
//! rank returns its error, the others meet it at the agreement that
//! follows. Pieces carry no header: both sides enumerate them from the
//! plan in the same order.

use std::collections::HashMap;
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
        format,
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
    let vars = job.ds.schema.vars();
    let mut encoders: HashMap<usize, ArrayEncoder> = HashMap::new();
    for r in &x.rounds {
        if let std::collections::hash_map::Entry::Vacant(e) = encoders.entry(r.array) {
            let a = &plan.arrays[r.array];
            e.insert(ArrayEncoder::new(&cfg.output, vars[a.var], a, format)?);
        }
    }
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
    for round in &x.rounds {
        let Some(enc) = encoders.get(&round.array) else {
            continue;
        };
        match side.round(round, enc, &mut reader, &pool, &shared, &mut stats) {
            Ok(true) => {}
            Ok(false) => {
                stopped_by_peer = true;
                break;
            }
            Err(()) => break,
        }
        if let Err(e) = journal.add(shared.drain()) {
            shared.fail(e.into());
        }
        let a = &plan.arrays[round.array];
        let (units, bytes) = round
            .units_of(me)
            .filter(|k| !journal::is_done(&opened.done, a.first_unit + k))
            .fold((0u64, 0u64), |(n, b), k| {
                (n + 1, b + a.unit_bytes(&a.unit_indices(k)))
            });
        monitor.add(ctx, units, bytes);
        stats.rounds += 1;
    }
    let has_units = total > 0;
    finish(ctx, cfg, has_units, journal, shared, stats, stopped_by_peer)
}

impl Side<'_> {
    /// One round on this rank: assemble its units over the steps, then
    /// encode and store them on the encoder threads. `Ok(false)`: another
    /// rank failed; `Err(())`: this rank failed (recorded in `shared`) and
    /// every rank knows it. A failure not yet told (it came after the last
    /// step) returns `Ok(true)`: the rank goes on through the steps of the
    /// next round with nothing to do, and its first step tells everyone.
    fn round(
        &self,
        round: &Round,
        enc: &ArrayEncoder,
        reader: &mut Reader<'_>,
        pool: &rayon::ThreadPool,
        shared: &Shared,
        stats: &mut RankStats,
    ) -> Result<bool, ()> {
        let a = &self.plan.arrays[round.array];
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
            match self.step(round, s, &mut units, reader, pool, shared, stats) {
                Ok(()) => {}
                Err(StepError::Peer(_)) => return Ok(false),
                Err(StepError::Here) => return Err(()),
                Err(e) => {
                    shared.fail(
                        WriteError::Exchange {
                            var: a.path.clone(),
                            source: e,
                        }
                        .into(),
                    );
                    return Err(());
                }
            }
        }
        // A failure after the last step is told to the others at the next
        // round's first step (or at the agreement after the last round).
        if shared.failed() {
            return Ok(true);
        }
        let first = a.first_unit;
        let units: Vec<(u64, UnitBuf)> = units.into_iter().collect();
        pool.install(|| {
            units.into_par_iter().for_each(|(k, u)| {
                if shared.failed() {
                    return;
                }
                store_unit(enc, a, first + k, k, u, shared);
            });
        });
        Ok(true)
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

    /// One step: decode this rank's blocks of step `s`, place its own
    /// pieces, send the others', place what arrives.
    #[allow(clippy::too_many_arguments)] // the round's state, borrowed from `round`
    fn step(
        &self,
        round: &Round,
        s: usize,
        units: &mut HashMap<u64, UnitBuf>,
        reader: &mut Reader<'_>,
        pool: &rayon::ThreadPool,
        shared: &Shared,
        stats: &mut RankStats,
    ) -> Result<(), StepError> {
        let a = &self.plan.arrays[round.array];
        let mine = round.step_blocks(self.me, s);
        let t = Instant::now();
        let decoded = if shared.failed() {
            Vec::new()
        } else {
            match decode(reader, pool, a, &round.blocks[mine.clone()]) {
                Ok(d) => d,
                Err(e) => {
                    shared.fail(e);
                    Vec::new()
                }
            }
        };
        stats.read_s += t.elapsed().as_secs_f64();
        stats.bytes_read += decoded.iter().map(|d| d.len() as u64).sum::<u64>();
        let ok = !shared.failed();
        let t = Instant::now();
        let (send, counts) = if ok {
            self.pack(round, mine, &decoded, units)
        } else {
            (Vec::new(), vec![0; self.ctx.size()])
        };
        drop(decoded);
        let received = self.ctx.all_to_all_bytes(&send, &counts, ok)?;
        stats.bytes_sent += send.len() as u64;
        drop(send);
        stats.bytes_received += received.len() as u64;
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

/// Reads `blocks` of array `a` on this thread and decodes them on the
/// encoder threads; the values of each block in C order.
fn decode(
    reader: &mut Reader<'_>,
    pool: &rayon::ThreadPool,
    a: &ArrayPlan,
    blocks: &[Block],
) -> Result<Vec<Vec<u8>>, Error> {
    let mut pending = Vec::with_capacity(blocks.len());
    for b in blocks {
        pending.push(reader.prepare(a.var, &b.start, &b.count)?);
    }
    let done: Vec<Result<Values, _>> =
        pool.install(|| pending.into_par_iter().map(Pending::finish).collect());
    done.into_iter()
        .map(|v| match v {
            Ok(Values::Fixed(b)) => Ok(b),
            Ok(Values::Strings(_)) => Err(WriteError::KindMismatch {
                var: a.path.clone(),
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
