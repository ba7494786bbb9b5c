//! The Unicode kernels alone, per SIMD path, in GB/s of input: validation + counting (`*_scan`)
//! and decoding to code points (`*_decode`), beside memcpy of the same bytes and, with
//! `--features simdutf`, simdutf's validating transcoders (the library Node and Bun use).
//!
//! `cargo bench -p dtesn-core --bench decode --features simdutf`
//!
//! Input: the bundled UDHR corpus (samples/udhr.jsonl, its "text" fields: 165 language variants),
//! as UTF-8 and as UTF-16. Two shapes: `whole` (all paragraphs as one 2.6 MB buffer: the kernels'
//! throughput) and `rows` (one call per paragraph, 20-3,000 bytes, median ~100: what a batch of
//! rows costs, call overhead and tails included). `scan+decode` is what the plan and write passes
//! do to a row; simdutf's `convert_*_to_utf32` validates and transcodes in one call.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dtesn_core::simd::available;

/// The corpus's paragraphs (the "text" field of each JSONL line; the file escapes nothing but
/// quotes and backslashes, which this unescapes).
fn paragraphs() -> Vec<String> {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples/udhr.jsonl");
    let text = std::fs::read_to_string(file).expect("samples/udhr.jsonl");
    text.lines()
        .filter_map(|l| {
            let at = l.find("\"text\":\"")? + 8;
            let body = &l[at..l.len().checked_sub(2)?];
            let mut s = String::with_capacity(body.len());
            let mut it = body.chars();
            while let Some(c) = it.next() {
                if c == '\\' {
                    match it.next() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some(o) => s.push(o),
                        None => {}
                    }
                } else {
                    s.push(c);
                }
            }
            Some(s)
        })
        .collect()
}

fn configure(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(900));
}

fn decode(c: &mut Criterion) {
    let rows = paragraphs();
    let whole8: Vec<u8> = rows.concat().into_bytes();
    let whole16: Vec<u16> = rows.concat().encode_utf16().collect();
    let rows8: Vec<&[u8]> = rows.iter().map(|r| r.as_bytes()).collect();
    let rows16: Vec<Vec<u16>> = rows.iter().map(|r| r.encode_utf16().collect()).collect();
    let mut out = vec![0u32; whole8.len()];
    let mut copy8 = vec![0u8; whole8.len()];
    let mut copy16 = vec![0u16; whole16.len()];

    let mut g = c.benchmark_group("utf8-whole");
    configure(&mut g);
    g.throughput(Throughput::Bytes(whole8.len() as u64));
    g.bench_function("memcpy", |b| {
        b.iter(|| copy8.copy_from_slice(black_box(&whole8)))
    });
    for k in available() {
        g.bench_function(format!("scan/{}", k.name), |b| {
            b.iter(|| (k.utf8_scan)(black_box(&whole8)))
        });
        g.bench_function(format!("decode/{}", k.name), |b| {
            b.iter(|| (k.utf8_decode)(black_box(&whole8), &mut out))
        });
    }
    #[cfg(feature = "simdutf")]
    {
        g.bench_function("simdutf validate_utf8", |b| {
            b.iter(|| simdutf::validate_utf8(black_box(&whole8)))
        });
        g.bench_function("simdutf convert_utf8_to_utf32", |b| {
            // SAFETY: `out` holds one u32 per input byte, the most a conversion can write.
            b.iter(|| unsafe {
                simdutf::convert_utf8_to_utf32(whole8.as_ptr(), whole8.len(), out.as_mut_ptr())
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("utf8-rows");
    configure(&mut g);
    g.throughput(Throughput::Bytes(whole8.len() as u64));
    for k in available() {
        g.bench_function(format!("scan+decode/{}", k.name), |b| {
            b.iter(|| {
                let mut n = 0;
                for r in &rows8 {
                    let c = (k.utf8_scan)(black_box(r)).map_or(0, |c| c.chars);
                    n += (k.utf8_decode)(r, &mut out[..c]).1;
                }
                n
            })
        });
    }
    #[cfg(feature = "simdutf")]
    g.bench_function("simdutf convert_utf8_to_utf32", |b| {
        b.iter(|| {
            let mut n = 0;
            for r in &rows8 {
                // SAFETY: `out` has room for one u32 per byte of any row.
                n += unsafe {
                    simdutf::convert_utf8_to_utf32(black_box(r).as_ptr(), r.len(), out.as_mut_ptr())
                };
            }
            n
        })
    });
    g.finish();

    let mut g = c.benchmark_group("utf16-whole");
    configure(&mut g);
    g.throughput(Throughput::Bytes(2 * whole16.len() as u64));
    g.bench_function("memcpy", |b| {
        b.iter(|| copy16.copy_from_slice(black_box(&whole16)))
    });
    for k in available() {
        g.bench_function(format!("scan/{}", k.name), |b| {
            b.iter(|| (k.utf16_scan)(black_box(&whole16)))
        });
        g.bench_function(format!("decode/{}", k.name), |b| {
            b.iter(|| (k.utf16_decode)(black_box(&whole16), &mut out))
        });
    }
    #[cfg(feature = "simdutf")]
    g.bench_function("simdutf convert_utf16le_to_utf32", |b| {
        // SAFETY: `out` holds at least one u32 per input unit.
        b.iter(|| unsafe {
            simdutf::convert_utf16le_to_utf32(whole16.as_ptr(), whole16.len(), out.as_mut_ptr())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("utf16-rows");
    configure(&mut g);
    g.throughput(Throughput::Bytes(2 * whole16.len() as u64));
    for k in available() {
        g.bench_function(format!("scan+decode/{}", k.name), |b| {
            b.iter(|| {
                let mut n = 0;
                for r in &rows16 {
                    let c = (k.utf16_scan)(black_box(r)).map_or(0, |c| c.chars);
                    n += (k.utf16_decode)(r, &mut out[..c]).1;
                }
                n
            })
        });
    }
    #[cfg(feature = "simdutf")]
    g.bench_function("simdutf convert_utf16le_to_utf32", |b| {
        b.iter(|| {
            let mut n = 0;
            for r in &rows16 {
                // SAFETY: `out` has room for one u32 per unit of any row.
                n += unsafe {
                    simdutf::convert_utf16le_to_utf32(
                        black_box(r).as_ptr(),
                        r.len(),
                        out.as_mut_ptr(),
                    )
                };
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
