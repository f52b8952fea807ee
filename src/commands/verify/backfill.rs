//! Stores rewritten in a region (`convert --region`: a backfill), verified
//! against all their sources: `verify OLD... --backfill NEW... STORE`.
//!
//! The files of each `--backfill` (in the order the backfills were run)
//! are a *generation* after the old files':
//!
//! * every generation is placed on its own along the concatenation
//!   dimension (within each member with `--new-dim`), by its coordinate
//!   values like any source: the steps of a backfill file must all be steps
//!   of the store, and a backfill file without coordinate values (or a
//!   store without that coordinate) cannot be placed;
//! * where a file's steps are also a later generation's, the later file's
//!   values are the expected ones there, for every variable along the
//!   concatenation dimension (of the same member: a region is rewritten
//!   for every member); overlaps within a generation stay as they are;
//! * variables without that dimension, and the attributes, are the old
//!   files' (a region write leaves them as they are).

use super::source::FileScan;

/// A file's run of steps along the concatenation axis (of one member).
pub(crate) trait Steps: Clone {
    /// The file (index into the scans).
    fn file(&self) -> usize;
    /// Its index along the new dimension, if any.
    fn member(&self) -> Option<u64>;
    /// Its first store index and its number of steps.
    fn span(&self) -> (u64, u64);
    /// The same run cut to the `len` steps from store index `at`.
    #[must_use]
    fn cut(&self, at: u64, len: u64) -> Self;
}

/// The generation of every file: 0 for the old files, `k` for the files of
/// the `k`-th `--backfill`. Empty: no backfill, every file is an old one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Generations {
    of_file: Vec<usize>,
}

impl Generations {
    /// `counts`: the number of files of each generation, the old files
    /// first; the files are numbered in that order.
    pub(crate) fn new(counts: &[usize]) -> Self {
        if counts.len() < 2 {
            return Self::default();
        }
        Self {
            of_file: (counts.iter().enumerate())
                .flat_map(|(g, &n)| std::iter::repeat_n(g, n))
                .collect(),
        }
    }

    /// The generation of file `i`.
    pub(crate) fn of(&self, i: usize) -> usize {
        self.of_file.get(i).copied().unwrap_or(0)
    }

    /// The files of `set` by generation (each in the order of `set`,
    /// generations without files left out).
    pub(crate) fn split(&self, set: Vec<usize>) -> Vec<Vec<usize>> {
        if self.of_file.is_empty() {
            return vec![set];
        }
        let last = set.iter().map(|&i| self.of(i)).max().unwrap_or(0);
        (0..=last)
            .map(|g| set.iter().copied().filter(|&i| self.of(i) == g).collect())
            .filter(|s: &Vec<usize>| !s.is_empty())
            .collect()
    }

    /// The files of `set` that can be placed along `dim`: all the old
    /// files; a backfill's only by coordinate values (the store's coordinate
    /// exists: `coord`), the others are differences.
    pub(crate) fn placeable(
        &self,
        scans: &[FileScan],
        set: &[usize],
        dim: &str,
        coord: bool,
        diffs: &mut Vec<String>,
    ) -> Vec<usize> {
        set.iter()
            .copied()
            .filter(|&i| {
                if self.of(i) == 0 {
                    return true;
                }
                let s = &scans[i];
                let along = s.dim_len(dim).is_some_and(|n| n > 0);
                let values = s.coords.iter().any(|c| c.0 == dim && !c.1.is_empty());
                let ok = !along || (coord && values);
                if !ok {
                    diffs.push(format!(
                        "{}: a backfill file is placed by its '{dim}' values: {}",
                        s.path.display(),
                        if coord {
                            format!("it has none, so its steps are not in the store's '{dim}' coordinate")
                        } else {
                            format!("the store has no '{dim}' coordinate to find them in")
                        }
                    ));
                }
                ok
            })
            .collect()
    }

    /// The files of `holders` of their earliest generation (the old files
    /// holding a variable or group, if any): the ones whose attributes and
    /// values without the concatenation dimension the store keeps.
    pub(crate) fn first(&self, holders: &[usize]) -> Vec<usize> {
        let Some(g) = holders.iter().map(|&i| self.of(i)).min() else {
            return Vec::new();
        };
        holders
            .iter()
            .copied()
            .filter(|&i| self.of(i) == g)
            .collect()
    }

    /// The pieces of one variable along the concatenation axis, each cut
    /// to the steps that no piece of a later generation (of the same
    /// member) holds.
    pub(crate) fn supersede<P: Steps>(&self, pieces: Vec<P>) -> Vec<P> {
        if self.of_file.is_empty() {
            return pieces;
        }
        let mut out = Vec::with_capacity(pieces.len());
        for p in &pieces {
            let g = self.of(p.file());
            let later: Vec<(u64, u64)> = (pieces.iter())
                .filter(|q| q.member() == p.member() && self.of(q.file()) > g)
                .map(|q| (q.span().0, q.span().0 + q.span().1))
                .collect();
            let (at, len) = p.span();
            for (a, b) in remaining((at, at + len), later) {
                out.push(p.cut(a, b - a));
            }
        }
        out
    }
}

/// The parts of `a..b` that no span covers.
fn remaining((a, b): (u64, u64), mut spans: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    spans.sort_unstable();
    let mut out = Vec::new();
    let mut at = a;
    for (x, y) in spans {
        if y <= at || x >= b {
            continue;
        }
        if x > at {
            out.push((at, x));
        }
        at = at.max(y);
    }
    if at < b {
        out.push((at, b));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of steps, and where its first step is in its file.
    #[derive(Clone)]
    struct Run {
        file: usize,
        at: u64,
        len: u64,
        from: u64,
        member: Option<u64>,
    }

    impl Steps for Run {
        fn file(&self) -> usize {
            self.file
        }

        fn member(&self) -> Option<u64> {
            self.member
        }

        fn span(&self) -> (u64, u64) {
            (self.at, self.len)
        }

        fn cut(&self, at: u64, len: u64) -> Self {
            Self {
                at,
                len,
                from: self.from + (at - self.at),
                ..self.clone()
            }
        }
    }

    fn piece(file: usize, at: u64, len: u64, member: Option<u64>) -> Run {
        Run {
            file,
            at,
            len,
            from: 0,
            member,
        }
    }

    #[test]
    fn later_backfills_supersede_earlier_steps() {
        assert_eq!(
            remaining((0, 10), vec![(3, 5), (4, 7)]),
            vec![(0, 3), (7, 10)]
        );
        assert_eq!(remaining((0, 10), vec![(0, 10)]), vec![]);
        assert_eq!(remaining((5, 10), vec![(0, 2), (12, 14)]), vec![(5, 10)]);
        // Two old files of 10 steps; a backfill of 10..17, then one of
        // 15..20.
        let g = Generations::new(&[2, 1, 1]);
        assert_eq!(
            g.split(vec![3, 0, 2, 1]),
            vec![vec![0, 1], vec![2], vec![3]]
        );
        assert_eq!(g.first(&[2, 3]), vec![2]);
        let cut = g.supersede(vec![
            piece(0, 0, 10, None),
            piece(1, 10, 10, None),
            piece(2, 10, 7, None),
            piece(3, 15, 5, None),
        ]);
        let at: Vec<(usize, u64, u64, u64)> =
            cut.iter().map(|p| (p.file, p.at, p.len, p.from)).collect();
        assert_eq!(at, vec![(0, 0, 10, 0), (2, 10, 5, 0), (3, 15, 5, 0)]);
        // Within a member only; without backfills, nothing changes.
        let cut = g.supersede(vec![piece(1, 10, 10, Some(0)), piece(2, 12, 2, Some(1))]);
        assert_eq!(cut.len(), 2);
        let one = Generations::new(&[2]);
        assert_eq!(one, Generations::default());
        assert_eq!(one.split(vec![1, 0]), vec![vec![1, 0]]);
        let cut =
            Generations::new(&[1, 1]).supersede(vec![piece(0, 0, 10, None), piece(1, 4, 2, None)]);
        let at: Vec<(u64, u64, u64)> = cut.iter().map(|p| (p.at, p.len, p.from)).collect();
        assert_eq!(at, vec![(0, 4, 0), (6, 4, 6), (4, 2, 0)]);
    }
}
