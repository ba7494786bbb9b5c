//! Every SIMD path and the decoder fast paths against an obviously-correct reference built on std.

mod common;

use common::{content, offsets_of, reference, AsI64, Expected};
use dtesn_core::{
    plan, simd, Dtype, Encoding, Error, Id, Invalid, Mask, Options, Padding, Side, Utf16Rows,
    Utf8Rows, Vocab,
};

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

fn run<T: Id + AsI64, M: Mask + AsI64>(units: &[Vec<u16>], o: &Options, vocab: Option<&[u32]>) {
    let expect = reference(
        &units
            .iter()
            .map(|u| content(u, o.encoding, vocab))
            .collect::<Vec<_>>(),
        o,
    );
    // strings
    let flat: Vec<u16> = units.concat();
    let offs = offsets_of(units);
    let rows = Utf16Rows::new(&flat, &offs).unwrap();
    check::<T, M, _>(&rows, o, &expect);
    // the same text as UTF-8 bytes (lone surrogates became U+FFFD in both)
    if o.encoding != Encoding::Utf16 || units.iter().all(|u| String::from_utf16(u).is_ok()) {
        let bytes: Vec<Vec<u8>> = units
            .iter()
            .map(|u| String::from_utf16_lossy(u).into_bytes())
            .collect();
        let flat8 = bytes.concat();
        let offs8 = offsets_of(&bytes);
        let rows8 = Utf8Rows::new(&flat8, &offs8).unwrap();
        check::<T, M, _>(&rows8, o, &expect);
    }
}

fn check<T: Id + AsI64, M: Mask + AsI64, U: dtesn_core::Unit>(
    src: &dtesn_core::Rows<U>,
    o: &Options,
    e: &Expected,
) {
    let p = plan(src, o).unwrap();
    assert_eq!(p.width(), e.width);
    let mut ids = vec![T::from_i32(-7); p.elements()];
    let mut mask = vec![M::ONE; p.elements()];
    p.write(&mut ids, &mut mask).unwrap();
    let got: Vec<i64> = ids.iter().map(|&x| x.as_i64()).collect();
    assert_eq!(got, e.ids, "ids, simd {}", simd::kernels().name);
    let got: Vec<u8> = mask.iter().map(|&x| x.as_i64() as u8).collect();
    assert_eq!(got, e.mask);
    let mut l = vec![0; p.rows()];
    let mut s = vec![0; p.rows()];
    p.fill_lengths(&mut l, &mut s);
    assert_eq!(l, e.lengths);
    assert_eq!(s, e.source);
}

fn random_units(rng: &mut Rng, len: usize) -> Vec<u16> {
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        match rng.below(10) {
            0..=5 => v.push(0x20 + rng.below(0x5F) as u16),
            6 => v.push(0x80 + rng.below(0x780) as u16),
            7 => v.push(0x800 + rng.below(0xD000) as u16),
            8 => {
                let c = 0x10000 + rng.below(0x100000) as u32 - 0x10000;
                v.push(0xD800 + (c >> 10) as u16);
                v.push(0xDC00 + (c & 0x3FF) as u16);
            }
            _ => v.push(0xD800 + rng.below(0x800) as u16),
        }
    }
    v
}

#[test]
fn every_path_matches_reference() {
    let mut rng = Rng(0x9E3779B97F4A7C15);
    let vocab_cps: Vec<u32> = "abcdefghij é中😀".chars().map(|c| c as u32).collect();
    let vocab = Vocab::new(&vocab_cps).unwrap();
    for k in simd::available() {
        simd::select(k.name).unwrap();
        for iter in 0..400 {
            let n = rng.below(6) as usize;
            let ascii_only = iter % 3 == 0;
            let units: Vec<Vec<u16>> = (0..n)
                .map(|_| {
                    let len = rng.below(if iter % 7 == 0 { 300 } else { 40 }) as usize;
                    if ascii_only {
                        (0..len).map(|_| 0x20 + rng.below(0x5F) as u16).collect()
                    } else {
                        random_units(&mut rng, len)
                    }
                })
                .collect();
            let enc = [
                Encoding::Codepoint,
                Encoding::Utf8,
                Encoding::Utf16,
                Encoding::Byt5,
                Encoding::Canine,
            ][rng.below(5) as usize];
            let use_vocab = enc == Encoding::Codepoint && rng.below(3) == 0;
            let o = Options {
                encoding: enc,
                vocab: use_vocab.then_some(&vocab),
                max_length: 2 + rng.below(60) as u32,
                padding: if rng.below(2) == 0 {
                    Padding::Longest
                } else {
                    Padding::MaxLength
                },
                pad_to_multiple_of: 1 + rng.below(4) as u32,
                padding_side: if rng.below(2) == 0 {
                    Side::Left
                } else {
                    Side::Right
                },
                truncation_side: if rng.below(2) == 0 {
                    Side::Left
                } else {
                    Side::Right
                },
                pad_id: rng.below(5) as i64,
                add_special_tokens: rng.below(4) != 0,
                dtype: Dtype::Int32,
                invalid: Invalid::Replace,
                width: None,
            };
            let v = use_vocab.then_some(&vocab_cps[..]);
            run::<i32, u8>(&units, &o, v);
            run::<f32, u8>(
                &units,
                &Options {
                    dtype: Dtype::Float32,
                    ..o
                },
                v,
            );
            // int64 ids (ONNX models' input), with pads only it can hold, and wide masks.
            let wide = Options {
                dtype: Dtype::Int64,
                pad_id: [o.pad_id, -1, i64::MIN, i64::MAX, 1 << 40][iter % 5],
                ..o
            };
            run::<i64, i64>(&units, &wide, v);
            run::<i64, u8>(&units, &wide, v);
            run::<i32, i32>(&units, &o, v);
        }
    }
}

#[test]
fn golden_vectors() {
    let k = simd::available()[0];
    simd::select(k.name).unwrap();
    let hello: Vec<u16> = "hello".encode_utf16().collect();
    let offs = [0u32, 5];
    let rows = Utf16Rows::new(&hello, &offs).unwrap();
    let o = Options {
        encoding: Encoding::Byt5,
        ..Options::default()
    };
    let p = plan(&rows, &o).unwrap();
    let mut ids = vec![0i32; p.elements()];
    let mut mask = vec![0u8; p.elements()];
    p.write(&mut ids, &mut mask).unwrap();
    assert_eq!(ids, [107, 104, 111, 111, 114, 1]);
    assert_eq!(mask, [1; 6]);
}

#[test]
fn narrow_dtypes_refuse_ids_that_do_not_fit() {
    let text: Vec<u16> = "ab\u{100}c".encode_utf16().collect();
    let offs = [0u32, 2, 4];
    let rows = Utf16Rows::new(&text, &offs).unwrap();
    let o = Options {
        dtype: Dtype::Uint8,
        ..Options::default()
    };
    let e = plan(&rows, &o).err().unwrap();
    assert_eq!(
        e,
        Error::IdRange {
            row: 1,
            id: 256,
            dtype: Dtype::Uint8
        }
    );
    assert_eq!(
        e.to_string(),
        "row 1: id 256 does not fit dtype 'uint8' (max 255)"
    );
    // cut away by truncation: only written ids are checked
    let o = Options {
        dtype: Dtype::Uint8,
        max_length: 1,
        truncation_side: Side::Left,
        ..Options::default()
    };
    let p = plan(&rows, &o).unwrap();
    let mut ids = vec![0u8; p.elements()];
    let mut mask = vec![0u8; p.elements()];
    p.write(&mut ids, &mut mask).unwrap();
    assert_eq!(ids, [98, 99]);
}

#[test]
fn int64_ids_and_wide_masks() {
    let k = simd::available()[0];
    simd::select(k.name).unwrap();
    let text: Vec<u16> = "hello\u{1F600}".encode_utf16().collect();
    let offs = [0u32, 5, 7];
    let rows = Utf16Rows::new(&text, &offs).unwrap();
    let o = Options {
        encoding: Encoding::Canine,
        dtype: Dtype::Int64,
        pad_id: -(1 << 40),
        ..Options::default()
    };
    let p = plan(&rows, &o).unwrap();
    let mut ids = vec![0i64; p.elements()];
    let mut mask = vec![7i64; p.elements()];
    p.write(&mut ids, &mut mask).unwrap();
    let pad = -(1i64 << 40);
    assert_eq!(
        ids,
        [
            0xE000, 104, 101, 108, 108, 111, 0xE001, //
            0xE000, 0x1F600, 0xE001, pad, pad, pad, pad
        ]
    );
    assert_eq!(mask, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
    // Every i64 is a valid pad for int64, and the ids buffer must be i64.
    assert!(plan(
        &rows,
        &Options {
            pad_id: i64::MIN,
            ..o
        }
    )
    .is_ok());
    let mut narrow = vec![0i32; p.elements()];
    let mut mask8 = vec![0u8; p.elements()];
    assert_eq!(
        p.write(&mut narrow, &mut mask8).err().unwrap().to_string(),
        "options.out.ids must be a BigInt64Array for dtype 'int64', got Int32Array"
    );
    // A pad that fits int64 but not int32.
    let e = plan(
        &rows,
        &Options {
            dtype: Dtype::Int32,
            pad_id: 1 << 40,
            ..o
        },
    )
    .err()
    .unwrap();
    assert_eq!(
        e.to_string(),
        "options.padId must be an integer in [-2147483648, 2147483647] for dtype 'int32', got 1099511627776"
    );
}
