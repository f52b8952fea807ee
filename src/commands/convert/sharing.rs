//! Taking over the units that a slower rank has not started.
//!
//! Each rank starts with its share of the plan: a contiguous range of unit
//! numbers, balanced by bytes. Ranks still finish apart: a node or a core
//! is slower, an object store serves one client before another, a rank's
//! units compress worse. A rank that has started every unit of its range
//! asks the other ranks, one after the other, for some of theirs. The rank
//! asked cuts the units it has not started in two ([`Plan::tail_cut`]): it
//! keeps the first part and gives the second, about half their bytes, which
//! become the asking rank's own range (and may be given on again).
//!
//! Only the rank that holds a range decides what leaves it, and it never
//! starts a unit it gave, so every stored object keeps exactly one writer.
//! A rank answers between two units, while it waits for an answer of its
//! own and while it waits for the others at the end, so a request is always
//! answered. A rank that had nothing to give is not asked again, nor is a
//! rank whose share holds fewer than two units to write. Unit
//! numbers are the plan's and the journal records them whoever wrote them,
//! so a resumed run skips the units of every rank of the killed run.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::Duration;

use crate::mpi::ctx::MpiCtx;
use crate::pipeline::plan::Plan;

/// Longest pause between two looks for an answer or a request while this
/// rank waits.
const MOST_PAUSE: Duration = Duration::from_millis(1);

/// This rank's units and its part in passing them between ranks.
pub(super) struct Share<'a> {
    ctx: &'a MpiCtx,
    plan: &'a Plan,
    /// Whether a unit is to be written in this phase (neither finished by
    /// an earlier run nor left to another path).
    counts: &'a dyn Fn(u64) -> bool,
    /// The units this rank holds and has not started.
    own: Range<u64>,
    /// The ranks to ask next.
    ask: VecDeque<i32>,
    /// Units (that count) taken over from other ranks.
    pub(super) taken: u64,
    /// Whether this rank has met every other at the end.
    done: bool,
}

impl<'a> Share<'a> {
    /// This rank's share of `plan`; `counts` tells the units to write.
    pub(super) fn new(ctx: &'a MpiCtx, plan: &'a Plan, counts: &'a dyn Fn(u64) -> bool) -> Self {
        let me = ctx.rank();
        let size = i32::try_from(ctx.size()).unwrap_or(1);
        // Ranks ask their successors first, so that the ranks that finish
        // early do not all ask the same one; a rank whose share holds fewer
        // than two units to write could never give one.
        let ask = (1..size)
            .map(|k| (me + k) % size)
            .filter(|&r| {
                let range = plan.range_of(usize::try_from(r).unwrap_or(0));
                range.filter(|&s| counts(s)).nth(1).is_some()
            })
            .collect();
        Self {
            ctx,
            plan,
            counts,
            own: plan.range_of(usize::try_from(me).unwrap_or(0)),
            ask,
            taken: 0,
            done: false,
        }
    }

    /// The next unit this rank starts: one of its own, or else one taken
    /// over from another rank; `None` once no other rank gives any.
    /// Answers the requests that have arrived first; `poll` runs while this
    /// rank waits for an answer.
    pub(super) fn next(&mut self, poll: &mut dyn FnMut()) -> Option<u64> {
        self.serve();
        loop {
            if let Some(seq) = self.own.next() {
                return Some(seq);
            }
            let from = self.ask.pop_front()?;
            self.ctx.ask_for_units(from);
            let got = self.answer_of(from, poll);
            if !got.is_empty() {
                self.taken += self.counted(got.clone());
                self.own = got;
                // It may have more later; the others are asked first.
                self.ask.push_back(from);
            }
        }
    }

    /// Stops taking and giving units: this rank starts no more units (what
    /// it holds stays unwritten, as after a failure).
    pub(super) fn stop(&mut self) {
        self.own = self.own.end..self.own.end;
        self.ask.clear();
    }

    /// Waits until every rank has stopped asking, answering every request
    /// meanwhile (with nothing: this rank gives no more units); `poll` runs
    /// while it waits. Called once every unit was started, or after a
    /// failure; later calls do nothing.
    pub(super) fn finish(&mut self, poll: &mut dyn FnMut()) {
        if self.done {
            return;
        }
        self.stop();
        let ctx = self.ctx;
        ctx.wait_polling_within(MOST_PAUSE, || {
            self.serve();
            poll();
        });
        self.done = true;
    }

    /// Answers every request that has arrived: the last part of the units
    /// this rank has not started, or nothing when fewer than two are left.
    fn serve(&mut self) {
        for to in self.ctx.units_asked() {
            let give = match self.plan.tail_cut(self.own.clone(), self.counts) {
                Some(cut) => {
                    let give = cut..self.own.end;
                    self.own.end = cut;
                    give
                }
                None => self.own.end..self.own.end,
            };
            self.ctx.give_units(to, give);
        }
    }

    /// Rank `from`'s answer, waited for while answering other ranks.
    fn answer_of(&mut self, from: i32, poll: &mut dyn FnMut()) -> Range<u64> {
        let mut pause = Duration::from_micros(20);
        loop {
            if let Some(got) = self.ctx.units_given(from) {
                let end = self.plan.total_units;
                return got.start.min(end)..got.end.min(end);
            }
            self.serve();
            poll();
            std::thread::sleep(pause);
            pause = (pause * 2).min(MOST_PAUSE);
        }
    }

    fn counted(&self, units: Range<u64>) -> u64 {
        units.filter(|&s| (self.counts)(s)).count() as u64
    }
}
