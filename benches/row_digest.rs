//! Throughput of the per-row hot path: binary COPY bytes → batches (decode) → canonical rows +
//! blake3 digests (digest), on rows of 10 mixed columns like a typical orders table, and on narrow
//! (2-column) rows where per-call overhead dominates. Reported in MB/s of COPY data and rows/s.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use pgsalvage::hash::digest::{digest_batch, RowCodec};
use pgsalvage::rows::batch::CopyDecoder;
use pgsalvage::shape::TypeKind;

const ROWS: usize = 20_000;

/// One column's binary value for row `i`, or `None` for NULL.
type Gen = fn(u64) -> Option<Vec<u8>>;

fn wide() -> Vec<(TypeKind, Gen)> {
    vec![
        (TypeKind::Int(8), |i| {
            Some((i as i64).to_be_bytes().to_vec())
        }),
        (TypeKind::Int(4), |i| {
            Some(((i % 1000) as i32).to_be_bytes().to_vec())
        }),
        (TypeKind::Text, |i| {
            Some(format!("customer-{i}@example.com").into_bytes())
        }),
        (TypeKind::Numeric, |i| Some(numeric(i % 100_000, 2))),
        (TypeKind::TimestampTz, |i| {
            Some((i as i64 * 1_000_003).to_be_bytes().to_vec())
        }),
        (TypeKind::Bool, |i| {
            if i % 7 == 0 {
                None
            } else {
                Some(vec![(i % 2) as u8])
            }
        }),
        (TypeKind::Float8, |i| {
            Some((i as f64 / 3.0).to_bits().to_be_bytes().to_vec())
        }),
        (TypeKind::Uuid, |i| {
            Some((i as u128 * 0x9E37_79B9_7F4A_7C15).to_be_bytes().to_vec())
        }),
        (TypeKind::Jsonb, |i| {
            Some(format!("\x01{{\"gift\": true, \"n\": {}}}", i % 50).into_bytes())
        }),
        (TypeKind::Bytea, |i| Some(i.to_le_bytes().repeat(2))),
    ]
}

fn narrow() -> Vec<(TypeKind, Gen)> {
    vec![
        (TypeKind::Int(8), |i| {
            Some((i as i64).to_be_bytes().to_vec())
        }),
        (TypeKind::Int(4), |i| {
            Some((i as i32).to_be_bytes().to_vec())
        }),
    ]
}

/// numeric's binary form of `units / 10^scale` (non-negative, scale 2).
fn numeric(units: u64, scale: u16) -> Vec<u8> {
    let (int, frac) = (units / 100, units % 100);
    let mut digits = Vec::new();
    let mut n = int;
    while n > 0 {
        digits.insert(0, (n % 10_000) as i16);
        n /= 10_000;
    }
    let weight = digits.len() as i16 - 1;
    digits.push((frac * 100) as i16);
    let mut out = Vec::new();
    out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&scale.to_be_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out
}

fn copy_stream(cols: &[(TypeKind, Gen)]) -> Vec<u8> {
    let mut out = b"PGCOPY\n\xff\r\n\0".to_vec();
    out.extend_from_slice(&[0; 8]);
    for i in 0..ROWS as u64 {
        out.extend_from_slice(&(cols.len() as i16).to_be_bytes());
        for (_, gen) in cols {
            match gen(i) {
                Some(v) => {
                    out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    out.extend_from_slice(&v);
                }
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

fn bench_shape(c: &mut Criterion, name: &str, cols: Vec<(TypeKind, Gen)>) {
    let stream = copy_stream(&cols);
    let codec = RowCodec {
        kinds: cols.iter().map(|(k, _)| k.clone()).collect(),
        nkey: 1,
    };
    let mut group = c.benchmark_group(format!("row_digest/{name}"));
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function(BenchmarkId::new("decode", ROWS), |b| {
        b.iter(|| {
            let mut d = CopyDecoder::new(cols.len());
            for chunk in stream.chunks(64 * 1024) {
                d.push(chunk).unwrap();
            }
            d.finish().unwrap().unwrap().len()
        })
    });
    let mut d = CopyDecoder::new(cols.len());
    d.push(&stream).unwrap();
    let batch = d.finish().unwrap().unwrap();
    group.bench_function(BenchmarkId::new("canonical+blake3", ROWS), |b| {
        b.iter(|| digest_batch(&codec, batch.clone()).unwrap().len())
    });
    group.finish();
    let mut rows = c.benchmark_group(format!("row_digest/{name}/rows"));
    rows.throughput(Throughput::Elements(ROWS as u64));
    rows.bench_function(BenchmarkId::new("decode+canonical+blake3", ROWS), |b| {
        b.iter(|| {
            let mut d = CopyDecoder::new(cols.len());
            d.push(&stream).unwrap();
            digest_batch(&codec, d.finish().unwrap().unwrap())
                .unwrap()
                .len()
        })
    });
    rows.finish();
}

fn benches(c: &mut Criterion) {
    bench_shape(c, "wide10", wide());
    bench_shape(c, "narrow2", narrow());
}

criterion_group! {
    name = row_digest;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_main!(row_digest);
