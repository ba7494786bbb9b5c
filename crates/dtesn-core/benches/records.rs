//! Throughput of `records::parse_records` and `records::fill_rows` on a generated ~50 MB JSONL file
//! (one object per line, a 20-120 character `text` field among a few others) and on the same texts
//! as plain lines, beside counting the lines with `memchr` alone (the floor of any line splitter).
//!
//! `cargo bench --manifest-path crates/dtesn-core/Cargo.toml --bench records`
//!
//! Throughput is counted in input bytes. `chunks-1MiB` feeds the file in 1 MiB reads, the
//! unconsumed tail carried in front of the next one; `one-call` passes it whole;
//! `fill_rows/batches-of-1000` cuts it into 1,000-row batches in a reused arena, one call per
//! batch, as `vectorizeFile` does. The texts mix ASCII words, raw UTF-8 (accents, CJK, emoji) and
//! JSON escapes (quotes, `\n`, `\t`, backslashes); a quarter of the lines escape every non-ASCII
//! character as `\uXXXX` (surrogate pairs for emoji), as Python's `json.dumps` does by default.
//! Short warm-up and few samples keep the run near a minute; raise them with criterion's flags for
//! steadier numbers.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dtesn_core::records::{fill_rows, parse_records, Format, Records, RowArena, Scratch, Stop};

const SIZE: usize = 50 << 20;
const CHUNK: usize = 1 << 20;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "data",
    "pipeline",
    "and",
    "of",
    "to",
    "in",
    "is",
    "it",
    "text",
    "model",
    "token",
    "naïve",
    "café",
    "Straße",
    "μέτρο",
    "中文",
    "テキスト",
    "😀",
    "say \"hi\"",
    "tab\there",
    "line\nbreak",
    "back\\slash",
    "50%",
];

fn escape(text: &str, ascii_only: bool, out: &mut String) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if ascii_only && !c.is_ascii() => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
}

/// (JSONL file, lines file): line `i` of both carries the same text.
fn generate() -> (Vec<u8>, Vec<u8>) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut jsonl, mut lines) = (
        String::with_capacity(SIZE + 256),
        String::with_capacity(SIZE),
    );
    let mut id = 0u64;
    while jsonl.len() < SIZE {
        let target = 20 + rng.below(101) as usize;
        let mut text = String::new();
        while text.chars().count() < target {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        }
        jsonl.push_str(&format!("{{\"id\":{id},\"text\":\""));
        escape(&text, rng.below(4) == 0, &mut jsonl);
        jsonl.push_str(&format!(
            "\",\"lang\":\"en\",\"score\":0.{:02}}}\n",
            rng.below(100)
        ));
        lines.push_str(&text.replace(['\n', '\r'], " "));
        lines.push('\n');
        id += 1;
    }
    (jsonl.into_bytes(), lines.into_bytes())
}

/// Feeds `input` in CHUNK reads with the tail carried over; returns the number of rows.
fn chunked(input: &[u8], format: &Format, r: &mut Records, carry: &mut Vec<u8>) -> usize {
    carry.clear();
    let (mut pos, mut rows) = (0, 0);
    loop {
        let next = (pos + CHUNK).min(input.len());
        carry.extend_from_slice(&input[pos..next]);
        pos = next;
        let last = pos == input.len();
        parse_records(carry, format, last, r);
        rows += r.len();
        if last {
            return rows;
        }
        carry.drain(..r.consumed);
    }
}

/// The whole input (one call's worth) cut into batches of 1,000 rows the way `vectorizeFile` does:
/// one `fill_rows` call per batch into a reused arena; returns the number of rows.
fn batches(input: &[u8], format: &Format, arena: &mut (Vec<u8>, Vec<u32>, Vec<u32>)) -> usize {
    let (mut errors, mut scratch) = (Vec::new(), Scratch::new());
    let (mut pos, mut rows, mut line) = (0, 0, 1u32);
    loop {
        let mut a = RowArena {
            bytes: &mut arena.0,
            offsets: &mut arena.1,
            lines: &mut arena.2,
            rows: 0,
        };
        let f = fill_rows(
            &input[pos..],
            format,
            true,
            line,
            1000,
            false,
            usize::MAX,
            &mut a,
            &mut errors,
            &mut scratch,
        );
        assert_ne!(f.stop, Stop::Bytes, "the arena holds any 1,000 rows here");
        rows += a.rows;
        pos += f.consumed;
        line += f.line_count;
        if f.stop == Stop::Input {
            return rows;
        }
    }
}

fn records(c: &mut Criterion) {
    let (jsonl, lines) = generate();
    let field = Format::Jsonl {
        field: "text".to_string(),
    };
    let mut r = Records::new();
    let mut carry = Vec::with_capacity(2 * CHUNK);
    let mut arena = (vec![0u8; 1 << 20], vec![0u32; 1001], vec![0u32; 1000]);
    // Sanity: every JSONL line gives a row equal to the lines file's line.
    let rows = chunked(&jsonl, &field, &mut r, &mut carry);
    assert_eq!(rows, memchr::memchr_iter(b'\n', &lines).count());
    assert!(r.errors.is_empty());

    for (name, input, format) in [("jsonl", &jsonl, &field), ("lines", &lines, &Format::Lines)] {
        let mut g = c.benchmark_group(format!("records/{name}-{}MB", input.len() >> 20));
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(4));
        g.bench_function("memchr-count", |b| {
            b.iter(|| memchr::memchr_iter(b'\n', black_box(input)).count())
        });
        g.bench_function("parse_records/chunks-1MiB", |b| {
            b.iter(|| chunked(black_box(input), format, &mut r, &mut carry))
        });
        g.bench_function("parse_records/one-call", |b| {
            b.iter(|| {
                parse_records(black_box(input), format, true, &mut r);
                r.len()
            })
        });
        g.bench_function("fill_rows/batches-of-1000", |b| {
            b.iter(|| batches(black_box(input), format, &mut arena))
        });
        g.finish();
    }
}

criterion_group!(benches, records);
criterion_main!(benches);
