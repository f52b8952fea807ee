//! Hot kernels: planning the partition, padding edge chunks, decoding and
//! assembling source chunks, and the codec pipeline on a model-like
//! float32 unit.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use zarrforge::model::block::pad_region;
use zarrforge::model::schema::DType;
use zarrforge::pipeline::plan::{ArrayPlan, Plan};

fn array(shape: &[u64], chunks: &[u64]) -> ArrayPlan {
    ArrayPlan::new(
        0,
        "v".into(),
        DType::F32,
        shape.to_vec(),
        chunks.to_vec(),
        None,
        0,
    )
}

fn planning(c: &mut Criterion) {
    // 8760 hourly steps of a 0.25° grid in 24 x 181 x 360 chunks: 29 200 units.
    let a = array(&[8760, 721, 1440], &[24, 181, 360]);
    let mut g = c.benchmark_group("plan");
    g.throughput(Throughput::Elements(a.num_units()));
    g.bench_function("partition_29k_units_512_ranks", |b| {
        b.iter(|| Plan::partition(vec![a.clone()], 512));
    });
    g.finish();
}

fn padding(c: &mut Criterion) {
    let count = [24u64, 1, 360];
    let full = [24u64, 181, 360];
    let region = vec![1u8; 24 * 360 * 4];
    let mut g = c.benchmark_group("assemble");
    g.throughput(Throughput::Bytes((24 * 181 * 360 * 4) as u64));
    g.bench_function("pad_edge_chunk_24x181x360_f32", |b| {
        b.iter_batched(
            || region.clone(),
            |r| pad_region(r, &count, &full, &f32::NAN.to_le_bytes(), 4),
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

/// A smooth field with noise rounded to 0.01, like the generated dataset.
fn field(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            let x =
                273.15 + 30.0 * ((i % 720) as f32 / 115.0).sin() + ((i * 7919 % 101) as f32) * 0.01;
            ((x * 100.0).round() / 100.0).to_le_bytes()
        })
        .collect()
}

fn source_chunks(c: &mut Criterion) {
    use std::io::Write;
    use zarrforge::model::block::copy_block;
    use zarrforge::pipeline::read::raw::{decode, RawFilter, RawLayout};
    use zarrforge::pipeline::read::unshuffle::unshuffle;
    // One source chunk of 361 x 720 float32: shuffle + deflate level 4.
    let plain = field(361 * 720);
    let n = plain.len() / 4;
    let mut shuffled = vec![0u8; plain.len()];
    for i in 0..n {
        for b in 0..4 {
            shuffled[b * n + i] = plain[i * 4 + b];
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(4));
    z.write_all(&shuffled).unwrap();
    let raw = z.finish().unwrap();
    let layout = RawLayout {
        chunk: vec![1, 361, 720],
        filters: vec![RawFilter::Shuffle, RawFilter::Deflate],
        elem: 4,
        fill: vec![0; 4],
        level: Some(4),
    };
    let mut g = c.benchmark_group("source_chunk");
    g.throughput(Throughput::Bytes(plain.len() as u64));
    g.bench_function("inflate_unshuffle_361x720_f32", |b| {
        b.iter(|| decode(Some((raw.clone(), 0)), &layout).unwrap());
    });
    g.bench_function("unshuffle_361x720_f32", |b| {
        b.iter(|| unshuffle(&shuffled, 4));
    });
    // Copy a 181 x 360 quarter into a 24 x 181 x 360 unit.
    let mut unit = vec![0u8; 24 * 181 * 360 * 4];
    g.throughput(Throughput::Bytes((181 * 360 * 4) as u64));
    g.bench_function("assemble_quarter_into_unit", |b| {
        b.iter(|| {
            copy_block(
                &plain,
                &[1, 361, 720],
                &[0, 180, 360],
                &mut unit,
                &[24, 181, 360],
                &[5, 0, 0],
                &[1, 181, 360],
                4,
            );
        });
    });
    g.finish();
}

fn encoding(c: &mut Criterion) {
    use zarrforge::cli::config::{Codec, ZarrFormat};
    use zarrforge::model::schema::Var;
    use zarrforge::pipeline::read::Values;
    use zarrforge::store::encode::ArrayEncoder;
    let shape = [24u64, 181, 360];
    let data = field(24 * 181 * 360);
    let var = Var {
        name: "t".into(),
        path: "t".into(),
        dtype: DType::F32,
        dims: vec!["time".into(), "lat".into(), "lon".into()],
        shape: shape.to_vec(),
        source_chunks: None,
        filters: vec![],
        big_endian: false,
        attrs: vec![],
        via_netcdf: false,
    };
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    for codec in ["zstd:3", "blosc:lz4:5:shuffle", "zlib:4"] {
        let a = array(&shape, &shape).with_codec(Codec::parse(codec).unwrap());
        let enc = ArrayEncoder::new(
            std::path::Path::new("/nonexistent"),
            &var,
            &a,
            ZarrFormat::V3,
        )
        .unwrap();
        g.bench_function(format!("unit_24x181x360_f32_{codec}"), |b| {
            b.iter(|| {
                enc.encode(&[0, 0, 0], &shape, Values::Fixed(data.clone()))
                    .unwrap()
            });
        });
    }
    g.finish();
}

criterion_group!(benches, planning, padding, source_chunks, encoding);
criterion_main!(benches);
