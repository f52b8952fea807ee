use super::*;
use crate::model::schema::{DType, Var};
use crate::pipeline::combine::Segment;

const MIB: u64 = 1 << 20;

fn source(shape: &[u64], chunks: Option<&[u64]>, files: &[u64]) -> VarSource {
    let mut segments = Vec::new();
    let mut start = 0;
    for (i, &len) in files.iter().enumerate() {
        segments.push(Segment {
            file: u32::try_from(i).unwrap(),
            start,
            len,
            recode: None,
        });
        start += len;
    }
    VarSource {
        var: Var {
            name: "v".into(),
            path: "v".into(),
            dtype: DType::F32,
            dims: (0..shape.len()).map(|d| format!("d{d}")).collect(),
            shape: shape.to_vec(),
            source_chunks: chunks.map(<[u64]>::to_vec),
            filters: vec![],
            big_endian: false,
            attrs: vec![],
            via_netcdf: false,
        },
        axis: if files.is_empty() { None } else { Some(0) },
        segments,
        stored: None,
        stack: None,
        inline: None,
    }
}

fn plan_of(shape: &[u64], units: &[u64], ranks: usize) -> Plan {
    let a = ArrayPlan::new(
        0,
        "v".into(),
        DType::F32,
        shape.to_vec(),
        units.to_vec(),
        None,
        0,
    );
    Plan::partition(vec![a], ranks)
}

fn sizing(round: u64, step: u64) -> Sizing {
    Sizing {
        round_bytes: round,
        step_bytes: step,
        overlap: false,
    }
}

/// Every element of every pending unit's needed region is fed by exactly
/// one piece of one block read by exactly one rank, and each piece lies in
/// its block and its unit.
fn check_cover(x: &Exchange, plan: &Plan, done: &dyn Fn(u64) -> bool) {
    let a = &plan.arrays[0];
    let mut fed: HashMap<u64, Vec<u8>> = HashMap::new();
    for round in &x.rounds {
        // Readers and owners cover the round exactly once.
        assert_eq!(round.readers[0], 0);
        assert_eq!(*round.readers.last().unwrap(), round.blocks.len());
        assert_eq!(round.owners[0], round.units.start);
        assert_eq!(*round.owners.last().unwrap(), round.units.end);
        let mut seen = vec![0u32; round.blocks.len()];
        for r in 0..x.ranks {
            for s in 0..round.steps {
                for b in round.step_blocks(r, s) {
                    seen[b] += 1;
                }
            }
        }
        assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
        let pending = |k: u64| !done(k);
        // The pieces for one owner are the full list's, in the same order.
        for (b, _) in round.blocks.iter().enumerate() {
            let mut all = Vec::new();
            x.pieces(plan, round, b, &pending, None, |p| all.push(p));
            for r in 0..x.ranks {
                let mut mine = Vec::new();
                x.pieces(plan, round, b, &pending, Some(r), |p| mine.push(p));
                let want: Vec<Piece> = all.iter().filter(|p| p.owner == r).cloned().collect();
                assert_eq!(mine, want);
            }
        }
        for (b, block) in round.blocks.iter().enumerate() {
            x.pieces(plan, round, b, &pending, None, |p| {
                assert!(round.units.contains(&p.unit));
                assert_eq!(p.owner, round.owner(p.unit));
                assert!(!done(p.unit));
                assert!(intersect(&p.region, block) == Some(p.region.clone()));
                let need = x.needed(a, 0, p.unit);
                assert!(intersect(&p.region, &need) == Some(p.region.clone()));
                let counts = fed
                    .entry(p.unit)
                    .or_insert_with(|| vec![0; usize::try_from(need.len()).unwrap()]);
                let n = need.len();
                for j in 0..p.region.len() {
                    let e = unravel(j, &p.region.count);
                    let off = (0..e.len()).fold(0, |acc, d| {
                        acc * need.count[d] + e[d] + p.region.start[d] - need.start[d]
                    });
                    assert!(off < n);
                    counts[usize::try_from(off).unwrap()] += 1;
                }
            });
        }
    }
    for k in 0..a.num_units() {
        let need = x.needed(a, 0, k);
        if done(k) || need.is_empty() {
            assert!(!fed.contains_key(&k));
            continue;
        }
        let counts = fed.get(&k).unwrap_or_else(|| panic!("unit {k} not fed"));
        assert!(counts.iter().all(|&c| c == 1), "unit {k}: {counts:?}");
    }
}

#[test]
fn the_time_series_layout_takes_the_exchange_path_and_aligned_ones_do_not() {
    let src = [source(&[384, 361, 720], Some(&[1, 361, 720]), &[24; 16])];
    let pencil = plan_of(&[384, 361, 720], &[384, 19, 36], 2);
    let r = routes(&src, &pencil, ExchangeMode::Auto, 192 * MIB, 32 * MIB);
    assert_eq!(r[0].path, Path::Exchange);
    assert!(r[0].amplification > 300.0, "{r:?}");
    let aligned = plan_of(&[384, 361, 720], &[24, 181, 360], 2);
    let r = routes(&src, &aligned, ExchangeMode::Auto, 192 * MIB, 32 * MIB);
    assert_eq!(r[0].path, Path::Direct, "{r:?}");
    // Small units inside one source chunk: the cache serves neighbours.
    let small = plan_of(&[384, 361, 720], &[1, 19, 36], 2);
    let r = routes(&src, &small, ExchangeMode::Auto, 192 * MIB, 32 * MIB);
    assert_eq!(r[0].path, Path::Direct, "{r:?}");
    let r = routes(&src, &small, ExchangeMode::Always, 192 * MIB, 32 * MIB);
    assert_eq!(r[0].path, Path::Exchange);
    let r = routes(&src, &pencil, ExchangeMode::Never, 192 * MIB, 32 * MIB);
    assert_eq!(r[0].path, Path::Direct);
}

#[test]
fn one_round_per_variable_when_it_fits_and_every_block_once() {
    let src = [source(&[384, 361, 720], Some(&[1, 361, 720]), &[24; 16])];
    let plan = plan_of(&[384, 361, 720], &[384, 19, 36], 2);
    let r = routes(&src, &plan, ExchangeMode::Auto, 192 * MIB, 32 * MIB);
    let x = Exchange::new(&src, &plan, r, 2, sizing(256 * MIB, 32 * MIB), None, |_| {
        false
    })
    .unwrap();
    assert_eq!(x.rounds.len(), 1);
    assert_eq!(x.rounds[0].blocks.len(), 384);
    let t = x.traffic(&plan, |_| false);
    assert_eq!(t.passes, 1);
    let total: u64 = 384 * 361 * 720 * 4;
    assert_eq!(t.decoded.iter().sum::<u64>(), total);
    // About half the data crosses between the two ranks.
    let sent: u64 = t.sent.iter().sum();
    assert!(sent > total * 45 / 100 && sent < total * 55 / 100, "{sent}");
    assert!(
        imbalance(&t.decoded) < 1.01 && imbalance(&t.written) < 1.06,
        "{t:?}"
    );
}

#[test]
fn rounds_follow_slabs_so_a_longer_series_is_still_one_pass() {
    // Four time slabs of units; one slab fits the combined budget.
    let src = [source(&[1536, 361, 720], Some(&[1, 361, 720]), &[24; 64])];
    let plan = plan_of(&[1536, 361, 720], &[384, 19, 36], 2);
    let r = routes(&src, &plan, ExchangeMode::Auto, 192 * MIB, 32 * MIB);
    let x = Exchange::new(&src, &plan, r, 2, sizing(256 * MIB, 32 * MIB), None, |_| {
        false
    })
    .unwrap();
    assert_eq!(x.rounds.len(), 4);
    let t = x.traffic(&plan, |_| false);
    assert_eq!(t.passes, 1);
    assert!(t.round_peak.iter().all(|&p| p <= 256 * MIB), "{t:?}");
    // A budget below one slab: bands of units, each block read per band.
    let r = routes(&src, &plan, ExchangeMode::Auto, 192 * MIB, 32 * MIB);
    let x = Exchange::new(&src, &plan, r, 2, sizing(64 * MIB, 8 * MIB), None, |_| {
        false
    })
    .unwrap();
    let t = x.traffic(&plan, |_| false);
    assert!(t.passes > 1 && t.passes <= 8, "{}", t.passes);
    assert!(t.round_peak.iter().all(|&p| p <= 64 * MIB), "{t:?}");
}

#[test]
fn pieces_cover_every_unit_exactly_once() {
    // Shape, source chunks, file lengths, unit shape.
    type Layout<'a> = (&'a [u64], Option<&'a [u64]>, &'a [u64], &'a [u64]);
    let layouts: &[Layout<'_>] = &[
        (&[10, 7, 9], Some(&[1, 7, 9]), &[4, 6], &[10, 3, 4]),
        (&[10, 7, 9], Some(&[3, 2, 5]), &[4, 6], &[4, 7, 2]),
        (&[10, 7, 9], None, &[3, 3, 4], &[5, 2, 9]),
        (&[10, 7, 9], Some(&[10, 7, 9]), &[], &[3, 3, 3]),
        (&[13], Some(&[5]), &[6, 7], &[4]),
    ];
    for &(shape, chunks, files, units) in layouts {
        let src = [source(shape, chunks, files)];
        for ranks in 1..=4 {
            let plan = plan_of(shape, units, ranks);
            for (round, step, block) in [(1 << 20, 1 << 20, 1 << 20), (600, 100, 64)] {
                let r = routes(&src, &plan, ExchangeMode::Always, 0, block);
                let x = Exchange::new(&src, &plan, r, ranks, sizing(round, step), None, |_| false)
                    .unwrap();
                check_cover(&x, &plan, &|_| false);
                let done = |k: u64| k % 3 == 1;
                let r = routes(&src, &plan, ExchangeMode::Always, 0, block);
                let x =
                    Exchange::new(&src, &plan, r, ranks, sizing(round, step), None, done).unwrap();
                check_cover(&x, &plan, &done);
            }
        }
    }
}

#[test]
fn an_append_reads_only_the_new_steps() {
    let src = [source(&[10, 4], Some(&[1, 4]), &[4, 3, 3])];
    let mut a = ArrayPlan::new(0, "v".into(), DType::F32, vec![10, 4], vec![4, 2], None, 0);
    a.restrict(Some(0), 7);
    let plan = Plan::renumber(vec![a], 2);
    let r = routes(&src, &plan, ExchangeMode::Always, 0, MIB);
    let x = Exchange::new(&src, &plan, r, 2, sizing(MIB, MIB), Some(7), |_| false).unwrap();
    let a = &plan.arrays[0];
    assert!(x.shares_with_store(a, 0, 0));
    assert_eq!(x.needed(a, 0, 0).start, vec![7, 0]);
    assert!(x
        .rounds
        .iter()
        .flat_map(|r| &r.blocks)
        .all(|b| b.start[0] >= 7));
    check_cover(&x, &plan, &|_| false);
}

#[test]
fn a_unit_larger_than_the_round_budget_is_refused() {
    let src = [source(&[100, 100], Some(&[1, 100]), &[])];
    let plan = plan_of(&[100, 100], &[100, 100], 2);
    let r = routes(&src, &plan, ExchangeMode::Always, 0, MIB);
    let e = Exchange::new(&src, &plan, r, 2, sizing(1000, 1000), None, |_| false).unwrap_err();
    assert_eq!(e, ("v".to_string(), 40_000));
}

#[test]
fn split_is_even_and_contiguous() {
    assert_eq!(split(&[1, 1, 1, 1], 2), vec![0, 2, 4]);
    assert_eq!(split(&[0, 0, 0], 2), vec![0, 2, 3]);
    assert_eq!(split(&[5], 3), vec![0, 0, 1, 1]);
    assert_eq!(split(&[], 2), vec![0, 0, 0]);
}

#[test]
fn blocks_are_capped() {
    assert_eq!(cap(vec![1, 361, 720], 4, 32 * MIB), vec![1, 361, 720]);
    let c = cap(vec![100, 1000, 1000], 4, 32 * MIB);
    assert!(c.iter().product::<u64>() * 4 <= 32 * MIB, "{c:?}");
    assert_eq!(cap(vec![1000, 1000], 4, 1), vec![1, 1]);
}
