//! Hot kernels: planning the partition, padding edge chunks, and the codec
//! pipeline on a model-like float32 chunk.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use zarrforge::plan::{ArrayPlan, Plan};
use zarrforge::schema::DType;
use zarrforge::write::chunks::pad_region;

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
        b.iter(|| pad_region(&region, &count, &full, &f32::NAN.to_le_bytes(), 4));
    });
    g.finish();
}

criterion_group!(benches, planning, padding);
criterion_main!(benches);
