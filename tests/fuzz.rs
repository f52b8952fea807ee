//! Property tests (proptest) of the parsers and the planner: random input
//! never panics, valid input round-trips, and every plan gives each chunk
//! exactly one owner.

use proptest::prelude::*;
use std::path::Path;
use zarrforge::cli::config::{Codec, ConvertConfig, DimSizes};
use zarrforge::cli::recipe::Recipe;
use zarrforge::model::schema::DType;
use zarrforge::pipeline::plan::{ArrayPlan, Plan};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn chunk_specs_never_panic(spec in ".{0,40}") {
        let _ = DimSizes::parse("--chunks", &spec);
    }

    #[test]
    fn valid_chunk_specs_round_trip(
        dims in proptest::collection::btree_map("[a-z][a-z0-9_]{0,6}", 1u64..100_000, 0..5)
    ) {
        let text: Vec<String> = dims.iter().map(|(d, n)| format!("{d}={n}")).collect();
        let parsed = DimSizes::parse("--chunks", &text.join(",")).unwrap();
        for (d, n) in &dims {
            prop_assert_eq!(parsed.get(d), Some(*n));
        }
        prop_assert_eq!(parsed.0.len(), dims.len());
    }

    #[test]
    fn codec_specs_never_panic(spec in "[a-z0-9:]{0,30}") {
        let _ = Codec::parse(&spec);
    }

    #[test]
    fn codecs_round_trip_through_their_text(
        kind in 0usize..5, level in -5i32..23, clevel in 0u8..10, cname in 0usize..5, shuffle in 0usize..3
    ) {
        let names = ["blosclz", "lz4", "lz4hc", "zlib", "zstd"];
        let shuffles = ["noshuffle", "shuffle", "bitshuffle"];
        let text = match kind {
            0 => format!("zstd:{level}"),
            1 => format!("gzip:{}", level.rem_euclid(10)),
            2 => format!("zlib:{}", level.rem_euclid(10)),
            3 => format!("blosc:{}:{clevel}:{}", names[cname], shuffles[shuffle]),
            _ => "none".to_string(),
        };
        let c = Codec::parse(&text).unwrap();
        prop_assert_eq!(Codec::parse(&c.to_string()).unwrap(), c);
    }

    #[test]
    fn recipes_never_panic(text in "[a-z_=\\[\\]{}\"., 0-9\n]{0,120}") {
        let p = Path::new("fuzz.toml");
        if let Ok(r) = Recipe::parse(p, &text) {
            let mut cfg = ConvertConfig::new(vec![], "o.zarr".into());
            let _ = r.apply(p, &mut cfg);
        }
    }

    #[test]
    fn recipe_key_values_never_panic(
        key in prop::sample::select(vec![
            "inputs", "codec", "chunks", "shards", "zarr_format", "concat_dim", "time_units",
            "include", "rename", "attributes", "history", "append_mode", "target_chunk_mib",
        ]),
        value in prop::sample::select(vec![
            "3", "-1", "\"zstd:3\"", "\"x\"", "[]", "[\"a\"]", "{ time = 0 }", "{ time = 24 }",
            "\"time=24\"", "true", "1.5", "{ a = \"b\" }", "[1, 2]", "\"skip-existing\"",
        ]),
    ) {
        let p = Path::new("fuzz.toml");
        if let Ok(r) = Recipe::parse(p, &format!("{key} = {value}\n")) {
            let mut cfg = ConvertConfig::new(vec![], "o.zarr".into());
            let _ = r.apply(p, &mut cfg);
        }
    }

    /// Random arrays, chunk and shard shapes, ranks and finished units:
    /// every element is in exactly one unit, every unit has exactly one
    /// owner, the ranges are contiguous and cover the sequence.
    #[test]
    fn plans_give_each_chunk_one_owner(
        arrays in proptest::collection::vec(
            proptest::collection::vec((0u64..9, 1u64..5, 1u64..3), 0..4), 1..4),
        ranks in 1usize..12,
        skip_mod in 1u64..5,
    ) {
        let mut plans = Vec::new();
        for (i, dims) in arrays.iter().enumerate() {
            let shape: Vec<u64> = dims.iter().map(|d| d.0).collect();
            let chunks: Vec<u64> = dims.iter().map(|d| d.1).collect();
            let shards: Vec<u64> = dims.iter().map(|d| d.1 * d.2).collect();
            let sharded = i % 2 == 1 && !dims.is_empty();
            plans.push(ArrayPlan::new(
                i, format!("a{i}"), DType::F32, shape, chunks,
                sharded.then_some(shards), 0,
            ));
        }
        for skipping in [false, true] {
            let plan = if skipping {
                Plan::partition_skipping(
                    Plan::renumber(plans.clone(), 1).arrays, ranks, |s| s % skip_mod == 0)
            } else {
                Plan::renumber(plans.clone(), ranks)
            };
            prop_assert_eq!(plan.bounds[0], 0);
            prop_assert_eq!(plan.bounds[ranks], plan.total_units);
            prop_assert!(plan.bounds.windows(2).all(|w| w[0] <= w[1]));
            let mut seen = vec![0u32; usize::try_from(plan.total_units).unwrap()];
            let mut covered: Vec<Vec<u32>> = plan
                .arrays
                .iter()
                .map(|a| vec![0u32; usize::try_from(a.shape.iter().product::<u64>()).unwrap()])
                .collect();
            for r in 0..ranks {
                for u in plan.units_of(r) {
                    seen[usize::try_from(u.seq).unwrap()] += 1;
                    let a = &plan.arrays[u.array];
                    let (start, count) = a.unit_region(&u.indices);
                    // Mark every element of the unit's region.
                    let n: u64 = count.iter().product();
                    for k in 0..n {
                        let mut rem = k;
                        let mut flat = 0u64;
                        for d in 0..count.len() {
                            let stride: u64 = count[d + 1..].iter().product();
                            let i = rem / stride;
                            rem %= stride;
                            flat = flat * a.shape[d] + start[d] + i;
                        }
                        covered[u.array][usize::try_from(flat).unwrap()] += 1;
                    }
                }
            }
            prop_assert!(seen.iter().all(|&c| c == 1), "units owned {:?}", seen);
            for c in &covered {
                prop_assert!(c.iter().all(|&x| x == 1), "elements covered {:?}", c);
            }
        }
    }
}

/// A classic header with two dimensions, attributes and two variables (a
/// record variable and a fixed one), followed by its data.
fn classic_file() -> Vec<u8> {
    fn name(v: &mut Vec<u8>, s: &[u8]) {
        v.extend((s.len() as u32).to_be_bytes());
        v.extend(s);
        while !v.len().is_multiple_of(4) {
            v.push(0);
        }
    }
    let u = |v: &mut Vec<u8>, x: u32| v.extend(x.to_be_bytes());
    let mut v = b"CDF\x01".to_vec();
    u(&mut v, 3);
    u(&mut v, 0x0A);
    u(&mut v, 2);
    name(&mut v, b"time");
    u(&mut v, 0);
    name(&mut v, b"x");
    u(&mut v, 4);
    u(&mut v, 0x0C);
    u(&mut v, 1);
    name(&mut v, b"title");
    u(&mut v, 2);
    u(&mut v, 5);
    v.extend(b"hello\0\0\0");
    u(&mut v, 0x0B);
    u(&mut v, 2);
    let header_end = v.len() as u32 + 36 + 40;
    for (n, dims, t, begin) in [
        (&b"s"[..], &[1u32][..], 3u32, header_end),
        (&b"v"[..], &[0, 1][..], 5, header_end + 8),
    ] {
        name(&mut v, n);
        u(&mut v, dims.len() as u32);
        for d in dims {
            u(&mut v, *d);
        }
        u(&mut v, 0);
        u(&mut v, 0);
        u(&mut v, t);
        u(&mut v, 16);
        u(&mut v, begin);
    }
    assert_eq!(v.len() as u32, header_end, "header size");
    v.resize(header_end as usize + 8 + 3 * 16, 7);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The netCDF-3 header check never panics and never accepts a file
    /// shorter than the data its header describes, whatever the bytes.
    #[test]
    fn netcdf3_headers_never_panic(
        flips in proptest::collection::vec((0usize..200, 0u8..8), 0..6),
        words in proptest::collection::vec((0usize..50, prop::sample::select(vec![0u32, 1, 0x7fff_ffff, 0xffff_ffff, 0x8000_0000, 0x1000])), 0..3),
        cut in proptest::option::of(0usize..250),
    ) {
        let mut f = classic_file();
        assert!(zarrforge::netcdf::header::check_bytes(&f).is_ok());
        for (at, bit) in flips {
            if at < f.len() {
                f[at] ^= 1 << bit;
            }
        }
        for (w, x) in words {
            let at = w * 4;
            if at + 4 <= f.len() {
                f[at..at + 4].copy_from_slice(&x.to_be_bytes());
            }
        }
        if let Some(c) = cut {
            f.truncate(c.min(f.len()));
        }
        if let Ok(info) = zarrforge::netcdf::header::check_bytes(&f) {
            prop_assert!(info.required_len <= f.len() as u64);
        }
    }
}
