//! Throughput of `records::parse_records` (placeholder while the bench is written).
use criterion::{criterion_group, criterion_main, Criterion};
fn records(_c: &mut Criterion) {}
criterion_group!(benches, records);
criterion_main!(benches);
