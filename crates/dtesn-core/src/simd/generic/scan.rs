//! The prefix scans and the u16 max over any [`Vector`].
//!
//! Shape: (on wide registers) one unaligned vector, then from the first aligned address; four
//! vectors per iteration OR-ed for one test, then the exact index from the first vector with a
//! hit; one vector at a time; and a last vector that overlaps elements already known to be clean
//! (so its first hit is the first one). Inputs shorter than one vector go to `short`.

use super::drive::to_boundary;
use crate::simd::vector::{MoveMask, Vector};

/// Byte offset of the first hit in the `n >= V::BYTES` bytes at `p`, or `n`. `hits` is a
/// vector's mask; `any4` tells whether four vectors hold a hit.
///
/// # Safety
/// The [`Vector`] contract for `V`; `p` valid for reading `n` bytes.
#[inline(always)]
unsafe fn first_hit<V: Vector>(
    p: *const u8,
    n: usize,
    hits: impl Fn(V) -> V::Mask,
    any4: impl Fn(V, V, V, V) -> bool,
) -> usize {
    let w = V::BYTES;
    debug_assert!(n >= w);
    // SAFETY: every load below reads `w` bytes at an offset `o` with `o + w <= n`.
    let at = |o: usize| unsafe { V::load_unaligned(p.add(o)) };
    let mut i = 0;
    if V::REALIGN {
        let m = hits(at(0));
        if m.has_non_zero() {
            return m.first_offset();
        }
        i = match to_boundary(p, w) {
            0 => w,
            b => b,
        };
    }
    while i + 4 * w <= n {
        let (a, b, c, d) = (at(i), at(i + w), at(i + 2 * w), at(i + 3 * w));
        if any4(a, b, c, d) {
            for (k, v) in [a, b, c, d].into_iter().enumerate() {
                let m = hits(v);
                if m.has_non_zero() {
                    return i + k * w + m.first_offset();
                }
            }
        }
        i += 4 * w;
    }
    while i + w <= n {
        let m = hits(at(i));
        if m.has_non_zero() {
            return i + m.first_offset();
        }
        i += w;
    }
    if i < n {
        let m = hits(at(n - w));
        if m.has_non_zero() {
            return n - w + m.first_offset();
        }
    }
    n
}

/// `scalar::ascii_prefix`; `short` for inputs below one vector.
///
/// # Safety
/// The [`Vector`] contract for `V`.
#[inline(always)]
pub(crate) unsafe fn ascii_prefix<V: Vector>(src: &[u8], short: impl Fn(&[u8]) -> usize) -> usize {
    if src.len() < V::BYTES {
        return short(src);
    }
    // SAFETY: the contract is forwarded; `src` is readable for its length. Non-ASCII is closed
    // under OR, so one test of the OR-ed vectors sees any hit.
    unsafe {
        first_hit::<V>(
            src.as_ptr(),
            src.len(),
            |v| v.non_ascii8(),
            |a, b, c, d| a.or(b).or(c.or(d)).any_non_ascii8(),
        )
    }
}

/// Index of the first hit among the units of `src` (`hits` / `any4` as in [`first_hit`]), or
/// `short(src)` for inputs below one vector.
///
/// # Safety
/// The [`Vector`] contract for `V`.
#[inline(always)]
unsafe fn first_hit16<V: Vector>(
    src: &[u16],
    short: impl Fn(&[u16]) -> usize,
    hits: impl Fn(V) -> V::Mask,
    any4: impl Fn(V, V, V, V) -> bool,
) -> usize {
    if 2 * src.len() < V::BYTES {
        return short(src);
    }
    // SAFETY: forwarded; `src` is readable for `2 * len` bytes.
    unsafe { first_hit::<V>(src.as_ptr().cast(), 2 * src.len(), hits, any4) / 2 }
}

/// `scalar::ascii_prefix_u16`; `short` for inputs below one vector.
///
/// # Safety
/// The [`Vector`] contract for `V`.
#[inline(always)]
pub(crate) unsafe fn ascii_prefix_u16<V: Vector>(
    src: &[u16],
    short: impl Fn(&[u16]) -> usize,
) -> usize {
    // SAFETY: forwarded. Units >= 0x80 are closed under OR, like non-ASCII bytes.
    unsafe {
        first_hit16::<V>(
            src,
            short,
            |v| v.non_ascii16(),
            |a, b, c, d| a.or(b).or(c.or(d)).non_ascii16().has_non_zero(),
        )
    }
}

/// `scalar::bmp_prefix`; `short` for inputs below one vector.
///
/// # Safety
/// The [`Vector`] contract for `V`.
#[inline(always)]
pub(crate) unsafe fn bmp_prefix<V: Vector>(src: &[u16], short: impl Fn(&[u16]) -> usize) -> usize {
    // SAFETY: forwarded. Surrogates are not closed under OR, so the four vectors' compare
    // results are OR-ed instead.
    unsafe {
        first_hit16::<V>(
            src,
            short,
            |v| v.surrogates16().movemask(),
            |a, b, c, d| {
                let s = |x: V| x.surrogates16();
                s(a).or(s(b)).or(s(c).or(s(d))).any_set()
            },
        )
    }
}

/// `scalar::max_u16`; `short` for inputs below one vector. Re-reading units (the realigned
/// start, the overlapping last vector) is harmless: max is idempotent.
///
/// # Safety
/// The [`Vector`] contract for `V`.
#[inline(always)]
pub(crate) unsafe fn max_u16<V: Vector>(src: &[u16], short: impl Fn(&[u16]) -> u16) -> u16 {
    let (n, w) = (2 * src.len(), V::BYTES);
    if n < w {
        return short(src);
    }
    let p = src.as_ptr().cast::<u8>();
    // SAFETY: the contract is forwarded; every load reads `w` bytes at `o` with `o + w <= n`.
    unsafe {
        let at = |o: usize| V::load_unaligned(p.add(o));
        let z = V::max16_init();
        let (mut m0, mut m1, mut m2, mut m3) = (z, z, z, z);
        let mut i = 0;
        if V::REALIGN {
            m0 = m0.max16_acc(at(0));
            i = match to_boundary(p, w) {
                0 => w,
                b => b,
            };
        }
        while i + 4 * w <= n {
            m0 = m0.max16_acc(at(i));
            m1 = m1.max16_acc(at(i + w));
            m2 = m2.max16_acc(at(i + 2 * w));
            m3 = m3.max16_acc(at(i + 3 * w));
            i += 4 * w;
        }
        while i + w <= n {
            m0 = m0.max16_acc(at(i));
            i += w;
        }
        if i < n {
            m1 = m1.max16_acc(at(n - w));
        }
        m0.max16_merge(m1)
            .max16_merge(m2.max16_merge(m3))
            .max16_reduce()
    }
}
