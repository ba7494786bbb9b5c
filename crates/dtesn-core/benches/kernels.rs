//! Throughput of each SIMD path's hot primitives, beside `copy_from_slice` (memcpy) of the same
//! number of bytes, on an L1/L2-resident input (16 KiB) and a memory-bound one (16 MiB).
//!
//! `cargo bench --manifest-path crates/dtesn-core/Cargo.toml --bench kernels`
//!
//! Throughput is counted in *input* bytes (so a scan and a widening of the same text compare
//! directly); widen_u8_i32 writes 4x and widen_u16_i32 2x that many bytes. Scan inputs contain no
//! hit, so the whole input is read. Runs in well under a minute (short warm-up and measurement,
//! few samples); for steadier numbers raise them with criterion's CLI flags, e.g.
//! `-- --measurement-time 5`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dtesn_core::simd::available;

const SIZES: [(&str, usize); 2] = [("16KiB", 16 << 10), ("16MiB", 16 << 20)];

fn kernels(c: &mut Criterion) {
    for (label, bytes) in SIZES {
        // ASCII text (no byte >= 0x80): ascii_prefix and widen_u8_* read all of it.
        let text: Vec<u8> = (0..bytes)
            .map(|i| b"the quick brown fox jumps over "[i % 31])
            .collect();
        // CJK units (no surrogate): bmp_prefix and widen_u16_* read all of it.
        let units: Vec<u16> = (0..bytes / 2).map(|i| 0x4E00 + (i % 4096) as u16).collect();
        let mut out_i32 = vec![0i32; bytes];
        let mut out_u8 = vec![0u8; bytes];

        let mut g = c.benchmark_group(label);
        g.throughput(Throughput::Bytes(bytes as u64));
        if bytes > 1 << 20 {
            g.sample_size(10)
                .warm_up_time(Duration::from_millis(200))
                .measurement_time(Duration::from_millis(900));
        } else {
            g.sample_size(20)
                .warm_up_time(Duration::from_millis(200))
                .measurement_time(Duration::from_millis(500));
        }

        g.bench_function("memcpy", |b| {
            b.iter(|| out_u8.copy_from_slice(black_box(&text)))
        });
        for k in available() {
            g.bench_function(format!("ascii_prefix/{}", k.name), |b| {
                b.iter(|| (k.ascii_prefix)(black_box(&text)))
            });
            g.bench_function(format!("bmp_prefix/{}", k.name), |b| {
                b.iter(|| (k.bmp_prefix)(black_box(&units)))
            });
            g.bench_function(format!("widen_u8_i32/{}", k.name), |b| {
                b.iter(|| (k.widen_u8_i32)(black_box(&text), 3, black_box(&mut out_i32[..bytes])))
            });
            g.bench_function(format!("widen_u16_i32/{}", k.name), |b| {
                b.iter(|| {
                    (k.widen_u16_i32)(black_box(&units), black_box(&mut out_i32[..bytes / 2]))
                })
            });
        }
        g.finish();
    }
}

/// The whole byte path (plan + write) on workload-(a)-like rows: 100,000 ASCII rows of 20-120
/// bytes into int32 x 128 with the mask, reusing the output. Throughput counts the bytes written
/// (ids + mask), the figure to hold against memcpy's.
fn vectorize(c: &mut Criterion) {
    use dtesn_core::{plan, Options, Padding, Utf8Rows};
    let mut seed = 0x2545F4914F6CDD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut bytes = Vec::new();
    let mut offsets = vec![0u32];
    for _ in 0..100_000 {
        let len = 20 + (next() % 101) as usize;
        bytes.extend((0..len).map(|_| b"etaoin shrdlu cmfwyp "[(next() % 21) as usize]));
        offsets.push(bytes.len() as u32);
    }
    let rows = Utf8Rows::new(&bytes, &offsets).unwrap();
    let opts = Options {
        max_length: 128,
        padding: Padding::MaxLength,
        ..Options::default()
    };
    let mut ids = vec![0i32; 100_000 * 128];
    let mut mask = vec![0u8; 100_000 * 128];
    let mut g = c.benchmark_group("vectorize");
    g.throughput(Throughput::Bytes((ids.len() * 5) as u64));
    g.measurement_time(Duration::from_secs(3)).sample_size(20);
    for k in available() {
        dtesn_core::simd::select(k.name).unwrap();
        g.bench_function(format!("bytes-a-int32x128/{}", k.name), |b| {
            b.iter(|| {
                let p = plan(&rows, &opts).unwrap();
                p.write(&mut ids, &mut mask).unwrap();
                black_box(&ids);
            })
        });
    }
    dtesn_core::simd::select(available()[0].name).unwrap();
    g.bench_function("memcpy-same-bytes", |b| {
        let src = vec![7u8; ids.len() * 5];
        let mut dst = vec![0u8; ids.len() * 5];
        b.iter(|| {
            dst.copy_from_slice(&src);
            black_box(&dst);
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().nresamples(10_000).without_plots();
    targets = kernels, vectorize
}
criterion_main!(benches);
