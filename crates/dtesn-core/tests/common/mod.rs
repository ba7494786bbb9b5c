//! The obviously-correct reference the integration tests compare the core with: std's decoders,
//! then truncation, specials and padding spelled out (docs/SEMANTICS.md).
#![allow(dead_code)]

use dtesn_core::{Encoding, Options, Padding, Side};

pub fn content(units: &[u16], enc: Encoding, vocab: Option<&[u32]>) -> Vec<i64> {
    let s = String::from_utf16_lossy(units);
    let cps = || s.chars().map(|c| c as i64);
    match enc {
        Encoding::Codepoint => match vocab {
            Some(v) => s
                .chars()
                .map(|c| {
                    v.iter()
                        .position(|&x| x == c as u32)
                        .map(|i| i as i64 + 2)
                        .unwrap_or(1)
                })
                .collect(),
            None => cps().collect(),
        },
        Encoding::Canine => cps().collect(),
        Encoding::Utf8 => s.bytes().map(|b| b as i64).collect(),
        Encoding::Byt5 => s.bytes().map(|b| b as i64 + 3).collect(),
        Encoding::Utf16 => units.iter().map(|&u| u as i64).collect(),
    }
}

/// An id or mask element as the reference's i64 (float32 ids are exact integers).
pub trait AsI64: Copy {
    fn as_i64(self) -> i64;
}
macro_rules! as_i64 {
    ($($t:ty),*) => {$(impl AsI64 for $t {
        fn as_i64(self) -> i64 {
            self as i64
        }
    })*};
}
as_i64!(i32, i16, u16, u8, f32, i64);

pub struct Expected {
    pub ids: Vec<i64>,
    pub mask: Vec<u8>,
    pub width: usize,
    pub lengths: Vec<i32>,
    pub source: Vec<i32>,
}

pub fn reference(rows: &[Vec<i64>], o: &Options) -> Expected {
    let (pre, post) = o.specials();
    let s = pre.len() + post.len();
    let cap = o.max_length as usize - s;
    let kept: Vec<Vec<i64>> = rows
        .iter()
        .map(|c| {
            let k = c.len().min(cap);
            let body = match o.truncation_side {
                Side::Right => &c[..k],
                Side::Left => &c[c.len() - k..],
            };
            pre.iter()
                .map(|&x| x as i64)
                .chain(body.iter().copied())
                .chain(post.iter().map(|&x| x as i64))
                .collect()
        })
        .collect();
    let base = match o.padding {
        Padding::Longest => kept.iter().map(|k| k.len()).max().unwrap_or(0),
        Padding::MaxLength => o.max_length as usize,
    };
    let m = o.pad_to_multiple_of as usize;
    let width = base.div_ceil(m) * m;
    let mut ids = vec![];
    let mut mask = vec![];
    for k in &kept {
        let padn = width - k.len();
        let pad = std::iter::repeat_n(o.pad_id, padn);
        match o.padding_side {
            Side::Right => {
                ids.extend(k.iter().copied().chain(pad));
                mask.extend(std::iter::repeat_n(1, k.len()).chain(std::iter::repeat_n(0, padn)));
            }
            Side::Left => {
                ids.extend(pad.chain(k.iter().copied()));
                mask.extend(std::iter::repeat_n(0, padn).chain(std::iter::repeat_n(1, k.len())));
            }
        }
    }
    Expected {
        ids,
        mask,
        width,
        lengths: kept.iter().map(|k| k.len() as i32).collect(),
        source: rows.iter().map(|c| (c.len() + s) as i32).collect(),
    }
}

pub fn offsets_of<U>(rows: &[Vec<U>]) -> Vec<u32> {
    let mut o = vec![0u32];
    for r in rows {
        o.push(o.last().unwrap() + r.len() as u32);
    }
    o
}
