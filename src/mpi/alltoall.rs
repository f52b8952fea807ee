//! One step of the data exchange: every rank sends a buffer to every other
//! rank (`MPI_Alltoallv`), after an `MPI_Alltoall` of the sizes that also
//! carries each rank's status, so that a rank that failed before the step
//! stops every rank at the same step instead of leaving them waiting.
//!
//! Why a dense all-to-all: in each step every rank has pieces for most
//! others (a time series needs every source chunk on every writer), the
//! sizes are known only after reading, and the collective lets the MPI
//! library pick its algorithm (pairwise or Bruck) and its transport
//! (shared memory on a node, the network between nodes). Pairs with
//! nothing to send cost one zero-sized entry.
//!
//! A rank that reaches a step before the others waits in the exchange of
//! sizes; it waits asleep between tests ([`wait_idle`]), so that its encoder
//! threads, which share its cores, go on encoding the round before.

use std::time::Duration;

use mpi::collective::CommunicatorCollectives;
use mpi::datatype::{Partition, PartitionMut};
use mpi::request::{Request, Scope};

use crate::mpi::ctx::MpiCtx;

/// Why a step did not exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// This rank reported a failure of its own.
    #[error("this rank failed")]
    Here,
    /// Another rank reported a failure.
    #[error("rank {0} failed during the exchange")]
    Peer(usize),
    /// A buffer is larger than one MPI message can count.
    #[error("an exchange buffer of {0} bytes exceeds what one MPI message can carry")]
    TooLarge(usize),
}

/// The size sent for "this rank failed".
const FAILED: i64 = -1;

/// What every rank sent to this one in a step.
#[derive(Debug, Default)]
pub struct Received {
    buf: Vec<u8>,
    counts: Vec<i32>,
    displs: Vec<i32>,
}

impl Received {
    /// The bytes rank `r` sent.
    pub fn from(&self, r: usize) -> &[u8] {
        let (Some(&c), Some(&d)) = (self.counts.get(r), self.displs.get(r)) else {
            return &[];
        };
        let (d, c) = (
            usize::try_from(d).unwrap_or(0),
            usize::try_from(c).unwrap_or(0),
        );
        self.buf.get(d..d + c).unwrap_or_default()
    }

    /// Bytes received in all.
    pub fn len(&self) -> usize {
        total(&self.counts)
    }

    /// Whether nothing was received.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl MpiCtx {
    /// Sends `counts[r]` bytes of `send` (the destinations' parts one after
    /// the other, in rank order) to rank `r`, for every rank (this rank's
    /// own part to itself), and returns what every rank sent to this one.
    /// Every rank must call it the same number of times; `ok: false` (this
    /// rank failed) makes every rank return an error at this step.
    ///
    /// # Errors
    /// [`StepError::Here`] when `ok` is false, [`StepError::Peer`] when
    /// another rank's was, [`StepError::TooLarge`] for a step over 2 GiB.
    pub fn all_to_all_bytes(
        &self,
        send: &[u8],
        counts: &[usize],
        ok: bool,
    ) -> Result<Received, StepError> {
        let n = self.size();
        let sum: usize = counts.iter().sum();
        let fits = i32::try_from(sum).is_ok() && sum <= send.len();
        let ok = ok && fits && counts.len() == n;
        let sizes: Vec<i64> = (0..n)
            .map(|r| {
                if ok {
                    i64::try_from(counts[r]).unwrap_or(FAILED)
                } else {
                    FAILED
                }
            })
            .collect();
        let mut incoming = vec![0i64; n];
        mpi::request::scope(|sc| {
            wait_idle(
                self.world()
                    .immediate_all_to_all_into(sc, &sizes[..], &mut incoming[..]),
            );
        });
        if !ok {
            return Err(if fits {
                StepError::Here
            } else {
                StepError::TooLarge(sum)
            });
        }
        if let Some(r) = incoming.iter().position(|&s| s < 0) {
            return Err(StepError::Peer(r));
        }
        let scounts: Vec<i32> = counts
            .iter()
            .map(|&c| i32::try_from(c).unwrap_or(0))
            .collect();
        let rcounts: Vec<i32> = incoming
            .iter()
            .map(|&s| i32::try_from(s).unwrap_or(i32::MAX))
            .collect();
        let sdispls = offsets(&scounts).ok_or(StepError::TooLarge(sum))?;
        let rdispls = offsets(&rcounts).ok_or(StepError::TooLarge(total(&rcounts)))?;
        // Never an empty allocation: MPI refuses the dangling pointer of an
        // empty Vec.
        let one = [0u8; 1];
        let send = if send.is_empty() { &one[..] } else { send };
        let mut buf = vec![0u8; total(&rcounts).max(1)];
        {
            let sp = Partition::new(send, &scounts[..], &sdispls[..]);
            let mut rp = PartitionMut::new(&mut buf[..], &rcounts[..], &rdispls[..]);
            self.world().all_to_all_varcount_into(&sp, &mut rp);
        }
        Ok(Received {
            buf,
            counts: rcounts,
            displs: rdispls,
        })
    }
}

/// Tests of a pending exchange of sizes before [`wait_idle`] sleeps.
const SPIN_TESTS: u32 = 200;
/// First sleep between two tests; each next one doubles, up to [`MAX_NAP`].
const FIRST_NAP: Duration = Duration::from_micros(10);
/// Longest sleep between two tests.
const MAX_NAP: Duration = Duration::from_micros(200);

/// Waits for `r` as `MPI_Wait` does, but sleeps between tests once it has
/// been pending for [`SPIN_TESTS`] tests, so that a rank waiting at a step
/// for a slower rank gives its core to its own encoder threads instead of
/// polling: `MPI_Wait` polls the transports, at 100 % of the core, for as
/// long as it waits. The sleeps grow from [`FIRST_NAP`] to [`MAX_NAP`],
/// which bounds what the wait adds once the last rank arrives.
///
/// For the exchange of sizes only: its messages are small, so one test
/// completes them once they are there. The data goes through a blocking
/// `MPI_Alltoallv`, whose large messages move only while a rank polls.
fn wait_idle<'a, D: ?Sized, S: Scope<'a>>(mut r: Request<'a, D, S>) {
    let mut tests = 0u32;
    let mut nap = FIRST_NAP;
    loop {
        match r.test() {
            Ok(_) => return,
            Err(pending) => r = pending,
        }
        tests = tests.saturating_add(1);
        if tests > SPIN_TESTS {
            std::thread::sleep(nap);
            nap = (nap * 2).min(MAX_NAP);
        }
    }
}

/// Sum of `counts`.
fn total(counts: &[i32]) -> usize {
    counts
        .iter()
        .map(|&c| usize::try_from(c).unwrap_or(0))
        .sum()
}

/// Displacements of consecutive buffers of `counts` bytes, or `None` when
/// they exceed what MPI counts in an `int`.
fn offsets(counts: &[i32]) -> Option<Vec<i32>> {
    let mut acc = 0i32;
    counts
        .iter()
        .map(|&c| {
            let d = acc;
            acc = acc.checked_add(c)?;
            Some(d)
        })
        .collect()
}
