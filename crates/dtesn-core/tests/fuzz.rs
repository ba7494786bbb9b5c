//! Fuzzing on stable Rust: a bounded property-based loop (proptest) over random rows, row
//! offsets and options. Every SIMD path must give what the scalar path gives (ids, mask, lengths,
//! or the same error), the well-formed cases must equal the std-based reference of
//! tests/common, and the Unicode kernels must agree with std's decoders on arbitrary bytes and
//! units. A panic, a mismatch or a hang fails the test.
//!
//! `cargo test --release` runs DTESN_FUZZ_CASES cases per property (default 20,000, about a
//! second); `npm run fuzz:core` runs 100,000,000 (about two hours here; set the variable to taste).

mod common;

use common::{content, reference, AsI64};
use dtesn_core::simd::{self, available};
use dtesn_core::{
    plan, Dtype, Encoding, Invalid, MaskDtype, Options, Padding, Side, Unit, Utf16Rows, Utf8Rows,
    Vocab,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::sync::Mutex;

/// `simd::select` switches the whole process: the properties take turns.
static PATHS: Mutex<()> = Mutex::new(());

fn cases() -> u32 {
    std::env::var("DTESN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

/// Code points from every plane, ASCII most often.
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => (0x20u32..0x7F).prop_map(|c| char::from_u32(c).unwrap()),
        1 => any::<char>(),
        1 => (0x80u32..0x800).prop_map(|c| char::from_u32(c).unwrap()),
        1 => (0x10000u32..0x110000).prop_map(|c| char::from_u32(c).unwrap()),
    ]
}

/// Bytes that are mostly UTF-8 with damage: random bytes, truncated and overlong sequences,
/// encoded surrogates, values above U+10FFFF.
fn utf8ish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        6 => any_char().prop_map(|c| c.to_string().into_bytes()),
        1 => any::<u8>().prop_map(|b| vec![b]),
        1 => (any_char(), 1usize..4).prop_map(|(c, cut)| {
            let b = c.to_string().into_bytes();
            b[..cut.min(b.len())].to_vec()
        }),
        1 => prop::sample::select(vec![
            vec![0xC0, 0x80], vec![0xC1, 0xBF], vec![0xE0, 0x80, 0x80], vec![0xF0, 0x80, 0x80, 0x80],
            vec![0xED, 0xA0, 0x80], vec![0xED, 0xBF, 0xBF], vec![0xF4, 0x90, 0x80, 0x80],
            vec![0xF5, 0x80, 0x80, 0x80], vec![0xFF], vec![0x80],
        ]),
    ];
    prop::collection::vec(piece, 0..90).prop_map(|v| v.concat())
}

/// UTF-16 with lone surrogates of both kinds now and then.
fn utf16ish() -> impl Strategy<Value = Vec<u16>> {
    let piece = prop_oneof![
        8 => any_char().prop_map(|c| c.encode_utf16(&mut [0; 2]).to_vec()),
        1 => (0xD800u16..0xE000).prop_map(|u| vec![u]),
    ];
    prop::collection::vec(piece, 0..90).prop_map(|v| v.concat())
}

#[derive(Debug, Clone)]
struct Opts {
    encoding: Encoding,
    vocab: bool,
    max_length: u32,
    longest: bool,
    multiple: u32,
    pad_left: bool,
    trunc_left: bool,
    pad_id: i64,
    specials: bool,
    dtype: Dtype,
    mask: MaskDtype,
    strict: bool,
}

fn opts() -> impl Strategy<Value = Opts> {
    (
        prop::sample::select(vec![
            Encoding::Codepoint,
            Encoding::Utf8,
            Encoding::Utf16,
            Encoding::Byt5,
            Encoding::Canine,
        ]),
        any::<bool>(),
        2u32..300,
        any::<bool>(),
        1u32..5,
        (any::<bool>(), any::<bool>()),
        // Small pads, and for int64 the pads only it holds (narrower dtypes take them mod 4).
        prop_oneof![
            4 => 0i64..4,
            1 => prop::sample::select(vec![-1i64, i64::MIN, i64::MAX, 1 << 40, -(1 << 53)]),
        ],
        any::<bool>(),
        prop::sample::select(vec![
            Dtype::Int32,
            Dtype::Float32,
            Dtype::Uint16,
            Dtype::Int16,
            Dtype::Uint8,
            Dtype::Int64,
        ]),
        prop::sample::select(vec![MaskDtype::Uint8, MaskDtype::Int32, MaskDtype::Int64]),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(
                encoding,
                vocab,
                max_length,
                longest,
                multiple,
                (pad_left, trunc_left),
                pad_id,
                specials,
                dtype,
                mask,
                strict,
            )| Opts {
                encoding,
                vocab: vocab && encoding == Encoding::Codepoint,
                max_length,
                longest,
                multiple,
                pad_left,
                trunc_left,
                pad_id: if dtype == Dtype::Int64 {
                    pad_id
                } else {
                    pad_id.rem_euclid(4)
                },
                specials,
                dtype,
                mask,
                strict,
            },
        )
}

const VOCAB: &str = "abcdefghij é中😀\u{FFFD}";

fn options<'v>(o: &Opts, vocab: &'v Vocab) -> Options<'v> {
    let side = |left| if left { Side::Left } else { Side::Right };
    Options {
        encoding: o.encoding,
        vocab: o.vocab.then_some(vocab),
        max_length: o.max_length,
        padding: if o.longest {
            Padding::Longest
        } else {
            Padding::MaxLength
        },
        pad_to_multiple_of: o.multiple,
        padding_side: side(o.pad_left),
        truncation_side: side(o.trunc_left),
        pad_id: o.pad_id,
        add_special_tokens: o.specials,
        dtype: o.dtype,
        invalid: if o.strict {
            Invalid::Error
        } else {
            Invalid::Replace
        },
        width: None,
    }
}

/// Everything a batch gives: ids and mask (as i64: float32 ids are exact integers), lengths,
/// source lengths; or the error message.
type Outcome = Result<(Vec<i64>, Vec<i64>, Vec<i32>, Vec<i32>), String>;

fn outcome<U: Unit>(rows: &dtesn_core::Rows<U>, o: &Options, mask: MaskDtype) -> Outcome {
    fn run<T: dtesn_core::Id + AsI64, M: dtesn_core::Mask + AsI64, U: Unit>(
        rows: &dtesn_core::Rows<U>,
        o: &Options,
    ) -> Outcome {
        let p = plan(rows, o).map_err(|e| e.to_string())?;
        let mut ids = vec![T::from_i32(7); p.elements()];
        // Not 0 or 1: every element must be written.
        let mut mask = vec![M::ONE; p.elements()];
        mask.iter_mut().step_by(3).for_each(|m| *m = M::default());
        p.write(&mut ids, &mut mask).map_err(|e| e.to_string())?;
        let (mut l, mut s) = (vec![0; p.rows()], vec![0; p.rows()]);
        p.fill_lengths(&mut l, &mut s);
        let i64s = |v: Vec<_>| v.into_iter().map(AsI64::as_i64).collect();
        Ok((
            ids.into_iter().map(AsI64::as_i64).collect(),
            i64s(mask),
            l,
            s,
        ))
    }
    macro_rules! by_mask {
        ($t:ty) => {
            match mask {
                MaskDtype::Uint8 => run::<$t, u8, U>(rows, o),
                MaskDtype::Int32 => run::<$t, i32, U>(rows, o),
                MaskDtype::Int64 => run::<$t, i64, U>(rows, o),
            }
        };
    }
    match o.dtype {
        Dtype::Int32 => by_mask!(i32),
        Dtype::Int16 => by_mask!(i16),
        Dtype::Uint16 => by_mask!(u16),
        Dtype::Uint8 => by_mask!(u8),
        Dtype::Float32 => by_mask!(f32),
        Dtype::Int64 => by_mask!(i64),
    }
}

/// Splits `n` units into rows at the given cut points (sorted, deduplicated, clamped).
fn offsets(n: usize, cuts: &[usize]) -> Vec<u32> {
    let mut o: Vec<u32> = cuts.iter().map(|&c| (c % (n + 1)) as u32).collect();
    o.push(0);
    o.push(n as u32);
    o.sort_unstable();
    o
}

/// The batch on every path: each equals the scalar path; the scalar path equals the reference
/// (for ids that fit and `invalid: 'replace'`).
fn check_batch<U: Unit>(
    rows: &dtesn_core::Rows<U>,
    o: &Options,
    mask: MaskDtype,
    units16: &[Vec<u16>],
) {
    simd::select("scalar").unwrap();
    let want = outcome(rows, o, mask);
    for k in available() {
        simd::select(k.name).unwrap();
        let got = outcome(rows, o, mask);
        assert_eq!(got, want, "path {} vs scalar", k.name);
    }
    if let (Ok((ids, mask, l, s)), Invalid::Replace) = (&want, o.invalid) {
        let vocab: Option<Vec<u32>> = o.vocab.map(|v| v.codepoints().to_vec());
        let e = reference(
            &units16
                .iter()
                .map(|u| content(u, o.encoding, vocab.as_deref()))
                .collect::<Vec<_>>(),
            o,
        );
        assert_eq!(ids, &e.ids);
        assert_eq!(
            mask,
            &e.mask.iter().map(|&m| m as i64).collect::<Vec<_>>()
        );
        assert_eq!(l, &e.lengths);
        assert_eq!(s, &e.source);
    }
}

#[test]
fn fuzz_byte_batches() {
    let _g = PATHS.lock().unwrap_or_else(|e| e.into_inner());
    let vcps: Vec<u32> = VOCAB.chars().map(|c| c as u32).collect();
    let vocab = Vocab::new(&vcps).unwrap();
    let strat = (
        utf8ish(),
        prop::collection::vec(any::<usize>(), 0..6),
        opts(),
    );
    runner()
        .run(&strat, |(bytes, cuts, o)| {
            let offs = offsets(bytes.len(), &cuts);
            // An offset array may start past 0: drop the first row now and then.
            let offs = if cuts.len() % 2 == 1 {
                &offs[1..]
            } else {
                &offs[..]
            };
            let rows = Utf8Rows::new(&bytes, offs).unwrap();
            let units16: Vec<Vec<u16>> = offs
                .windows(2)
                .map(|w| {
                    String::from_utf8_lossy(&bytes[w[0] as usize..w[1] as usize])
                        .encode_utf16()
                        .collect()
                })
                .collect();
            check_batch(&rows, &options(&o, &vocab), o.mask, &units16);
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_string_batches() {
    let _g = PATHS.lock().unwrap_or_else(|e| e.into_inner());
    let vcps: Vec<u32> = VOCAB.chars().map(|c| c as u32).collect();
    let vocab = Vocab::new(&vcps).unwrap();
    let strat = (
        utf16ish(),
        prop::collection::vec(any::<usize>(), 0..6),
        opts(),
    );
    runner()
        .run(&strat, |(units, cuts, o)| {
            let offs = offsets(units.len(), &cuts);
            let rows = Utf16Rows::new(&units, &offs).unwrap();
            let units16: Vec<Vec<u16>> = offs
                .windows(2)
                .map(|w| units[w[0] as usize..w[1] as usize].to_vec())
                .collect();
            check_batch(&rows, &options(&o, &vocab), o.mask, &units16);
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_unicode_kernels_against_std() {
    let strat = (
        prop_oneof![utf8ish(), prop::collection::vec(any::<u8>(), 0..300)],
        utf16ish(),
        0usize..400,
    );
    runner()
        .run(&strat, |(bytes, units, cap)| {
            let want8 = std::str::from_utf8(&bytes).ok();
            let want16 = String::from_utf16(&units).ok();
            for k in available() {
                let c = (k.utf8_scan)(&bytes);
                prop_assert_eq!(
                    c.map(|c| c.chars),
                    want8.map(|s| s.chars().count()),
                    "{}",
                    k.name
                );
                let mut out = vec![0u32; cap];
                let (used, n) = (k.utf8_decode)(&bytes, &mut out);
                prop_assert!(used <= bytes.len() && n <= cap, "{}", k.name);
                if let Some(s) = want8 {
                    let cps: Vec<u32> = s.chars().map(|c| c as u32).take(cap).collect();
                    prop_assert_eq!(&out[..n], &cps[..], "{}", k.name);
                }
                let c = (k.utf16_scan)(&units);
                prop_assert_eq!(
                    c.map(|c| (c.chars, c.utf8_len)),
                    want16.as_ref().map(|s| (s.chars().count(), s.len())),
                    "{}",
                    k.name
                );
                let (used, n) = (k.utf16_decode)(&units, &mut out);
                prop_assert!(used <= units.len() && n <= cap, "{}", k.name);
                if let Some(s) = &want16 {
                    let cps: Vec<u32> = s.chars().map(|c| c as u32).take(cap).collect();
                    prop_assert_eq!(&out[..n], &cps[..], "{}", k.name);
                }
            }
            Ok(())
        })
        .unwrap();
}
