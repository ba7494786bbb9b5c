//! The widenings and fills with explicit zero-extension steps, over any [`Vector128`]: one input
//! vector per block (one output vector for the fills), driven by [`drive`] from the first
//! vector-aligned output element, the last block overlapping (it rewrites identical values).
//! Inputs shorter than a block go to the plain loops of `small`.

use super::drive::{drive, to_boundary};
use super::small;
use crate::simd::vector::Vector128;

/// Covers the common prefix of `src` and `dst` with `block(s, d)` on blocks of `step` elements
/// (pointers to `src[i..i + step]` and `dst[i..i + step]`), through [`drive`] from the first
/// vector-aligned output element; prefixes shorter than a block go to `short`.
///
/// # Safety
/// `block` must be sound on pointers to `step` readable `S` and `step` writable `T`.
#[inline(always)]
unsafe fn blocks<V: Vector128, S, T>(
    src: &[S],
    dst: &mut [T],
    step: usize,
    short: impl FnOnce(&[S], &mut [T]),
    block: impl Fn(*const S, *mut T),
) {
    let n = src.len().min(dst.len());
    if n < step {
        return short(&src[..n], &mut dst[..n]);
    }
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    // SAFETY: `drive` passes i + step <= n <= both lengths, so both pointers and the `step`
    // elements after them are in bounds.
    drive(n, step, to_boundary(d, V::BYTES), |i| unsafe {
        block(s.add(i), d.add(i))
    });
}

/// `scalar::widen_u8::<i32>`.
///
/// # Safety
/// The [`Vector128`] contract for `V`.
#[inline(always)]
pub(crate) unsafe fn widen_u8_i32<V: Vector128>(src: &[u8], add: i32, dst: &mut [i32]) {
    let (w, q) = (V::BYTES, V::BYTES / 4);
    // SAFETY: the contract is forwarded; a block is w bytes in, w i32 (four vectors) out.
    unsafe {
        let addv = V::splat32(add as u32);
        let short = |s: &[u8], d: &mut [i32]| small::widen_u8(s, add, d);
        blocks::<V, _, _>(src, dst, w, short, |s, d| {
            let v = V::load_unaligned(s);
            let (lo, hi) = (v.zext8_lo(), v.zext8_hi());
            let out = [
                lo.zext16_lo(),
                lo.zext16_hi(),
                hi.zext16_lo(),
                hi.zext16_hi(),
            ];
            for (k, x) in out.into_iter().enumerate() {
                x.add32(addv).store_unaligned(d.add(k * q).cast());
            }
        });
    }
}

/// `scalar::widen_u16::<i32>`.
///
/// # Safety
/// The [`Vector128`] contract for `V`.
#[inline(always)]
pub(crate) unsafe fn widen_u16_i32<V: Vector128>(src: &[u16], dst: &mut [i32]) {
    let h = V::BYTES / 2;
    // SAFETY: the contract is forwarded; a block is h units in, h i32 (two vectors) out.
    unsafe {
        blocks::<V, _, _>(src, dst, h, small::widen_u16, |s, d| {
            let v = V::load_unaligned(s.cast());
            v.zext16_lo().store_unaligned(d.cast());
            v.zext16_hi().store_unaligned(d.add(h / 2).cast());
        });
    }
}

/// `scalar::widen_u8::<u16>`: `(s + add) as u16 == s.wrapping_add(add as u16)` in 16-bit lanes.
///
/// # Safety
/// The [`Vector128`] contract for `V`.
#[inline(always)]
pub(crate) unsafe fn widen_u8_u16<V: Vector128>(src: &[u8], add: i32, dst: &mut [u16]) {
    let w = V::BYTES;
    // SAFETY: the contract is forwarded; a block is w bytes in, w u16 (two vectors) out.
    unsafe {
        let addv = V::splat16(add as u16);
        let short = |s: &[u8], d: &mut [u16]| small::widen_u8(s, add, d);
        blocks::<V, _, _>(src, dst, w, short, |s, d| {
            let v = V::load_unaligned(s);
            v.zext8_lo().add16(addv).store_unaligned(d.cast());
            v.zext8_hi()
                .add16(addv)
                .store_unaligned(d.add(w / 2).cast());
        });
    }
}

/// `scalar::widen_u8::<i64>`: zero-extended bytes + add in 64-bit lanes equal
/// `(s as i32 + add) as i64` (the callers' values fit in i32).
///
/// # Safety
/// The [`Vector128`] contract for `V`.
#[inline(always)]
pub(crate) unsafe fn widen_u8_i64<V: Vector128>(src: &[u8], add: i32, dst: &mut [i64]) {
    let (w, q) = (V::BYTES, V::BYTES / 8);
    // SAFETY: the contract is forwarded; a block is w bytes in, w i64 (eight vectors) out.
    unsafe {
        let addv = V::splat64(add as i64 as u64);
        let short = |s: &[u8], d: &mut [i64]| small::widen_u8(s, add, d);
        blocks::<V, _, _>(src, dst, w, short, |s, d| {
            let v = V::load_unaligned(s);
            for (h, x16) in [v.zext8_lo(), v.zext8_hi()].into_iter().enumerate() {
                for (k, x32) in [x16.zext16_lo(), x16.zext16_hi()].into_iter().enumerate() {
                    let at = d.add((4 * h + 2 * k) * q);
                    x32.zext32_lo().add64(addv).store_unaligned(at.cast());
                    x32.zext32_hi()
                        .add64(addv)
                        .store_unaligned(at.add(q).cast());
                }
            }
        });
    }
}

/// `scalar::widen_u16::<i64>`.
///
/// # Safety
/// The [`Vector128`] contract for `V`.
#[inline(always)]
pub(crate) unsafe fn widen_u16_i64<V: Vector128>(src: &[u16], dst: &mut [i64]) {
    let (h, q) = (V::BYTES / 2, V::BYTES / 8);
    // SAFETY: the contract is forwarded; a block is h units in, h i64 (four vectors) out.
    unsafe {
        blocks::<V, _, _>(src, dst, h, small::widen_u16, |s, d| {
            let v = V::load_unaligned(s.cast());
            let out = [v.zext16_lo(), v.zext16_hi()].map(|x| [x.zext32_lo(), x.zext32_hi()]);
            for (k, x) in out.into_iter().flatten().enumerate() {
                x.store_unaligned(d.add(k * q).cast());
            }
        });
    }
}

// Fills: LLVM leaves `slice::fill` of wide elements a scalar loop.

/// `dst.fill(v)` for 32- or 64-bit `T`, with `x` holding `v` in every lane.
///
/// # Safety
/// The [`Vector128`] contract for `V`; every `size_of::<T>()`-byte lane of `x` is `v`.
#[inline(always)]
pub(crate) unsafe fn fill<V: Vector128, T: Copy>(dst: &mut [T], v: T, x: V) {
    let (n, d, q) = (
        dst.len(),
        dst.as_mut_ptr(),
        V::BYTES / core::mem::size_of::<T>(),
    );
    if n < q {
        return dst.fill(v);
    }
    // SAFETY: the contract is forwarded; `drive` passes i + q <= n = dst.len(): one vector.
    unsafe {
        drive(n, q, to_boundary(d, V::BYTES), |i| {
            x.store_unaligned(d.add(i).cast())
        })
    }
}

/// `dst.fill(v)`.
///
/// # Safety
/// The [`Vector128`] contract for `V`.
#[inline(always)]
pub(crate) unsafe fn fill_i32<V: Vector128>(dst: &mut [i32], v: i32) {
    // SAFETY: forwarded; the splat holds `v` in every 32-bit lane.
    unsafe { fill(dst, v, V::splat32(v as u32)) }
}

/// `dst.fill(v)`.
///
/// # Safety
/// The [`Vector128`] contract for `V`.
#[inline(always)]
pub(crate) unsafe fn fill_i64<V: Vector128>(dst: &mut [i64], v: i64) {
    // SAFETY: forwarded; the splat holds `v` in every 64-bit lane.
    unsafe { fill(dst, v, V::splat64(v as u64)) }
}
