//! NEON path (128-bit vectors) for aarch64.
//!
//! NEON is part of the aarch64 baseline (`target_feature = "neon"` is on for every aarch64 Linux,
//! macOS and Windows target), so this module is compiled only when that cfg holds and needs no
//! runtime detection and no `#[target_feature]` wrappers: the functions go into `KERNELS`
//! directly, and `available()` lists the path first on aarch64.
//!
//! Explicit `std::arch::aarch64` intrinsics: the four scans (64 bytes per iteration: four vectors
//! OR-ed and reduced with `umaxv`, then the exact index from a narrowed lane mask) and the
//! widenings u8 -> i32 (+add), u16 -> i32, u8 -> u16 (+add), u16 -> u16, u8 -> i64 (+add),
//! u16 -> i64 (`uxtl`/`uxtl2` chains). The
//! other widenings are plain loops that LLVM vectorizes with NEON.
//!
//! Tails: a last vector overlapping data already handled (re-checking known-good units or
//! re-writing identical outputs is harmless); inputs shorter than one vector use SWAR / scalar
//! code. All loads and stores are unaligned-safe (`ld1`/`st1`), so any start offset works.
//!
//! Compile-checked with `cargo clippy --target aarch64-unknown-linux-gnu`, and the tests in
//! `tests.rs` were run under user-mode QEMU (Debian packages `qemu-user-static`,
//! `gcc-aarch64-linux-gnu`), with
//! `CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc` and
//! `CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L /usr/aarch64-linux-gnu"`
//! `cargo test --target aarch64-unknown-linux-gnu --lib simd::`.

use super::utf::{Decoded, Utf16Counts, Utf8Counts};
use super::{scalar, Kernels};

pub static KERNELS: Kernels = Kernels {
    name: "neon",
    ascii_prefix,
    ascii_prefix_u16,
    bmp_prefix,
    max_u16,
    widen_u8_i32,
    // Plain loops; NEON is on for the whole crate, so LLVM vectorizes them with it.
    widen_u8_i16: scalar::widen_u8::<i16>,
    widen_u8_u16,
    widen_u8_u8: scalar::widen_u8::<u8>,
    widen_u8_f32: scalar::widen_u8::<f32>,
    widen_u8_i64,
    widen_u16_i32,
    widen_u16_i16: scalar::widen_u16::<i16>,
    widen_u16_u16,
    widen_u16_u8: scalar::widen_u16::<u8>,
    widen_u16_f32: scalar::widen_u16::<f32>,
    widen_u16_i64,
    fill_i32,
    fill_i64,
    utf8_scan,
    utf16_scan,
    utf8_decode,
    utf16_decode,
};

/// Always true: the module only exists when NEON is enabled at compile time.
pub fn is_available() -> bool {
    true
}

macro_rules! wrap {
    ($(fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? = $imp:path;)*) => {$(
        fn $name($($arg: $ty),*) $(-> $ret)? {
            // SAFETY: `$imp`'s only precondition is a CPU with NEON. This module is compiled only
            // with `cfg(target_feature = "neon")`, i.e. for targets whose baseline includes NEON,
            // so every CPU that can run this binary has it.
            unsafe { $imp($($arg),*) }
        }
    )*};
}

wrap! {
    fn ascii_prefix(src: &[u8]) -> usize = imp::ascii_prefix;
    fn ascii_prefix_u16(src: &[u16]) -> usize = imp::ascii_prefix_u16;
    fn bmp_prefix(src: &[u16]) -> usize = imp::bmp_prefix;
    fn max_u16(src: &[u16]) -> u16 = imp::max_u16;
    fn widen_u8_i32(src: &[u8], add: i32, dst: &mut [i32]) = imp::widen_u8_i32;
    fn widen_u8_u16(src: &[u8], add: i32, dst: &mut [u16]) = imp::widen_u8_u16;
    fn widen_u16_i32(src: &[u16], dst: &mut [i32]) = imp::widen_u16_i32;
    fn widen_u16_u16(src: &[u16], dst: &mut [u16]) = imp::widen_u16_u16;
    fn widen_u8_i64(src: &[u8], add: i32, dst: &mut [i64]) = imp::widen_u8_i64;
    fn widen_u16_i64(src: &[u16], dst: &mut [i64]) = imp::widen_u16_i64;
    fn fill_i32(dst: &mut [i32], v: i32) = imp::fill_i32;
    fn fill_i64(dst: &mut [i64], v: i64) = imp::fill_i64;
    fn utf8_scan(src: &[u8]) -> Option<Utf8Counts> = utf::utf8_scan;
    fn utf16_scan(src: &[u16]) -> Option<Utf16Counts> = utf::utf16_scan;
    fn utf8_decode(src: &[u8], dst: &mut [u32]) -> Decoded = utf::utf8_decode;
    fn utf16_decode(src: &[u16], dst: &mut [u32]) -> Decoded = utf::utf16_decode;
}

mod imp {
    use super::scalar;
    use core::arch::aarch64::*;

    const V8: usize = 16; // bytes per vector
    const V16: usize = 8; // u16 units per vector

    /// Bit 4*i+3 (and the 3 below it) set iff byte lane i of `mask` is 0xFF: a 64-bit summary of a
    /// 16-lane compare result (`shrn` by 4 keeps one nibble per byte).
    #[inline]
    #[target_feature(enable = "neon")]
    fn nibble_mask(mask: uint8x16_t) -> u64 {
        vget_lane_u64::<0>(vreinterpret_u64_u8(vshrn_n_u16::<4>(vreinterpretq_u16_u8(
            mask,
        ))))
    }

    /// Byte i of the result is 0xFF iff u16 lane i of `mask` is 0xFFFF: a 64-bit summary of an
    /// 8-lane compare result.
    #[inline]
    #[target_feature(enable = "neon")]
    fn byte_mask(mask: uint16x8_t) -> u64 {
        vget_lane_u64::<0>(vreinterpret_u64_u8(vmovn_u16(mask)))
    }

    /// Index of the first byte >= 0x80 in `v`, or None.
    #[inline]
    #[target_feature(enable = "neon")]
    fn first_hi8(v: uint8x16_t) -> Option<usize> {
        let m = nibble_mask(vcgeq_u8(v, vdupq_n_u8(0x80)));
        (m != 0).then(|| m.trailing_zeros() as usize / 4)
    }

    #[inline]
    #[target_feature(enable = "neon")]
    fn non_ascii16(v: uint16x8_t) -> uint16x8_t {
        vcgeq_u16(v, vdupq_n_u16(0x80))
    }

    #[inline]
    #[target_feature(enable = "neon")]
    fn surrogates(v: uint16x8_t) -> uint16x8_t {
        vceqq_u16(vandq_u16(v, vdupq_n_u16(0xF800)), vdupq_n_u16(0xD800))
    }

    /// Index of the first set lane of an 8-lane compare result, or None.
    #[inline]
    #[target_feature(enable = "neon")]
    fn first16(mask: uint16x8_t) -> Option<usize> {
        let m = byte_mask(mask);
        (m != 0).then(|| m.trailing_zeros() as usize / 8)
    }

    /// Unaligned 16-byte load.
    ///
    /// # Safety
    /// `p` must be valid for reading 16 bytes.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn ld8(p: *const u8) -> uint8x16_t {
        // SAFETY: the caller guarantees 16 readable bytes; `ld1` has no alignment requirement
        // beyond the element's (1).
        unsafe { vld1q_u8(p) }
    }

    /// Unaligned 8-unit load.
    ///
    /// # Safety
    /// `p` must be valid for reading 8 u16 units and aligned for u16.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn ld16(p: *const u16) -> uint16x8_t {
        // SAFETY: the caller guarantees 8 readable units at a u16-aligned address (it comes from a
        // `&[u16]`).
        unsafe { vld1q_u16(p) }
    }

    #[target_feature(enable = "neon")]
    pub fn ascii_prefix(src: &[u8]) -> usize {
        let n = src.len();
        if n < V8 {
            return ascii_prefix_small(src);
        }
        let p = src.as_ptr();
        let mut i = 0;
        while i + 4 * V8 <= n {
            // SAFETY: i + 64 <= n: four 16-byte loads in bounds.
            let (a, b, c, d) = unsafe {
                (
                    ld8(p.add(i)),
                    ld8(p.add(i + V8)),
                    ld8(p.add(i + 2 * V8)),
                    ld8(p.add(i + 3 * V8)),
                )
            };
            if vmaxvq_u8(vorrq_u8(vorrq_u8(a, b), vorrq_u8(c, d))) >= 0x80 {
                for (k, v) in [a, b, c, d].into_iter().enumerate() {
                    if let Some(j) = first_hi8(v) {
                        return i + k * V8 + j;
                    }
                }
            }
            i += 4 * V8;
        }
        while i + V8 <= n {
            // SAFETY: i + 16 <= n.
            if let Some(j) = first_hi8(unsafe { ld8(p.add(i)) }) {
                return i + j;
            }
            i += V8;
        }
        if i < n {
            // Overlaps bytes already known to be ASCII, so its first hit is the first one.
            // SAFETY: n >= 16, so n-16..n is in bounds.
            if let Some(j) = first_hi8(unsafe { ld8(p.add(n - V8)) }) {
                return n - V8 + j;
            }
        }
        n
    }

    /// `scalar::ascii_prefix` for short inputs: two overlapping words when there are 8..16 bytes.
    fn ascii_prefix_small(src: &[u8]) -> usize {
        const HI: u64 = 0x8080_8080_8080_8080;
        let n = src.len();
        if (8..=16).contains(&n) {
            let m = u64::from_le_bytes(src[..8].try_into().unwrap()) & HI;
            if m != 0 {
                return m.trailing_zeros() as usize / 8;
            }
            let m = u64::from_le_bytes(src[n - 8..].try_into().unwrap()) & HI;
            if m != 0 {
                return n - 8 + m.trailing_zeros() as usize / 8;
            }
            return n;
        }
        scalar::ascii_prefix(src)
    }

    /// Shared shape of the two u16 prefix scans: `hit` turns a vector into a compare result.
    #[inline]
    #[target_feature(enable = "neon")]
    fn scan16(
        src: &[u16],
        hit: impl Fn(uint16x8_t) -> uint16x8_t,
        small: fn(&[u16]) -> usize,
    ) -> usize {
        let n = src.len();
        if n < V16 {
            return small(src);
        }
        let p = src.as_ptr();
        let mut i = 0;
        while i + 4 * V16 <= n {
            // SAFETY: i + 32 <= n units: four 8-unit loads in bounds.
            let (a, b, c, d) = unsafe {
                (
                    ld16(p.add(i)),
                    ld16(p.add(i + V16)),
                    ld16(p.add(i + 2 * V16)),
                    ld16(p.add(i + 3 * V16)),
                )
            };
            let (a, b, c, d) = (hit(a), hit(b), hit(c), hit(d));
            if vmaxvq_u16(vorrq_u16(vorrq_u16(a, b), vorrq_u16(c, d))) != 0 {
                for (k, v) in [a, b, c, d].into_iter().enumerate() {
                    if let Some(j) = first16(v) {
                        return i + k * V16 + j;
                    }
                }
            }
            i += 4 * V16;
        }
        while i + V16 <= n {
            // SAFETY: i + 8 <= n.
            if let Some(j) = first16(hit(unsafe { ld16(p.add(i)) })) {
                return i + j;
            }
            i += V16;
        }
        if i < n {
            // SAFETY: n >= 8, so n-8..n is in bounds.
            if let Some(j) = first16(hit(unsafe { ld16(p.add(n - V16)) })) {
                return n - V16 + j;
            }
        }
        n
    }

    #[target_feature(enable = "neon")]
    pub fn ascii_prefix_u16(src: &[u16]) -> usize {
        scan16(src, |v| non_ascii16(v), scalar::ascii_prefix_u16)
    }

    #[target_feature(enable = "neon")]
    pub fn bmp_prefix(src: &[u16]) -> usize {
        scan16(src, |v| surrogates(v), scalar::bmp_prefix)
    }

    #[target_feature(enable = "neon")]
    pub fn max_u16(src: &[u16]) -> u16 {
        let n = src.len();
        if n < V16 {
            return scalar::max_u16(src);
        }
        let p = src.as_ptr();
        let z = vdupq_n_u16(0);
        let (mut m0, mut m1, mut m2, mut m3) = (z, z, z, z);
        let mut i = 0;
        while i + 4 * V16 <= n {
            // SAFETY: i + 32 <= n units.
            unsafe {
                m0 = vmaxq_u16(m0, ld16(p.add(i)));
                m1 = vmaxq_u16(m1, ld16(p.add(i + V16)));
                m2 = vmaxq_u16(m2, ld16(p.add(i + 2 * V16)));
                m3 = vmaxq_u16(m3, ld16(p.add(i + 3 * V16)));
            }
            i += 4 * V16;
        }
        while i + V16 <= n {
            // SAFETY: i + 8 <= n.
            m0 = vmaxq_u16(m0, unsafe { ld16(p.add(i)) });
            i += V16;
        }
        if i < n {
            // Max is idempotent, so re-reading units is harmless. SAFETY: n >= 8.
            m1 = vmaxq_u16(m1, unsafe { ld16(p.add(n - V16)) });
        }
        vmaxvq_u16(vmaxq_u16(vmaxq_u16(m0, m1), vmaxq_u16(m2, m3)))
    }

    /// Runs `body(i)` for `i = 0, step, ...` while `i + step <= n`, then once more at `n - step` if a
    /// tail is left (callers make that re-do harmless); requires `n >= step`.
    #[inline]
    #[target_feature(enable = "neon")]
    fn blocks(n: usize, step: usize, mut body: impl FnMut(usize)) {
        debug_assert!(n >= step);
        let mut i = 0;
        while i + step <= n {
            body(i);
            i += step;
        }
        if i < n {
            body(n - step);
        }
    }

    #[target_feature(enable = "neon")]
    pub fn widen_u8_i32(src: &[u8], add: i32, dst: &mut [i32]) {
        let n = src.len().min(dst.len());
        if n < V8 {
            return scalar::widen_u8(&src[..n], add, &mut dst[..n]);
        }
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        let addv = vdupq_n_s32(add);
        let w = |x: uint32x4_t| vaddq_s32(vreinterpretq_s32_u32(x), addv);
        blocks(n, V8, |i| {
            // SAFETY: `blocks` passes i + 16 <= n <= both lengths: 16 bytes in, 16 i32 out.
            unsafe {
                let v = ld8(s.add(i));
                let lo = vmovl_u8(vget_low_u8(v));
                let hi = vmovl_high_u8(v);
                vst1q_s32(d.add(i), w(vmovl_u16(vget_low_u16(lo))));
                vst1q_s32(d.add(i + 4), w(vmovl_high_u16(lo)));
                vst1q_s32(d.add(i + 8), w(vmovl_u16(vget_low_u16(hi))));
                vst1q_s32(d.add(i + 12), w(vmovl_high_u16(hi)));
            }
        });
    }

    #[target_feature(enable = "neon")]
    pub fn widen_u16_i32(src: &[u16], dst: &mut [i32]) {
        let n = src.len().min(dst.len());
        if n < 16 {
            return scalar::widen_u16(&src[..n], &mut dst[..n]);
        }
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        let w = |x: uint32x4_t| vreinterpretq_s32_u32(x);
        blocks(n, 16, |i| {
            // SAFETY: `blocks` passes i + 16 <= n <= both lengths: 16 units in, 16 i32 out.
            unsafe {
                let a = ld16(s.add(i));
                let b = ld16(s.add(i + 8));
                vst1q_s32(d.add(i), w(vmovl_u16(vget_low_u16(a))));
                vst1q_s32(d.add(i + 4), w(vmovl_high_u16(a)));
                vst1q_s32(d.add(i + 8), w(vmovl_u16(vget_low_u16(b))));
                vst1q_s32(d.add(i + 12), w(vmovl_high_u16(b)));
            }
        });
    }

    #[target_feature(enable = "neon")]
    pub fn widen_u8_u16(src: &[u8], add: i32, dst: &mut [u16]) {
        let n = src.len().min(dst.len());
        if n < V8 {
            return scalar::widen_u8(&src[..n], add, &mut dst[..n]);
        }
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        // (s + add) as u16 == s.wrapping_add(add as u16) in 16-bit lanes.
        let addv = vdupq_n_u16(add as u16);
        blocks(n, V8, |i| {
            // SAFETY: `blocks` passes i + 16 <= n <= both lengths: 16 bytes in, 16 u16 out.
            unsafe {
                let v = ld8(s.add(i));
                vst1q_u16(d.add(i), vaddq_u16(vmovl_u8(vget_low_u8(v)), addv));
                vst1q_u16(d.add(i + 8), vaddq_u16(vmovl_high_u8(v), addv));
            }
        });
    }

    #[target_feature(enable = "neon")]
    pub fn widen_u8_i64(src: &[u8], add: i32, dst: &mut [i64]) {
        let n = src.len().min(dst.len());
        if n < V8 {
            return scalar::widen_u8(&src[..n], add, &mut dst[..n]);
        }
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        // Zero-extended bytes + add in 64-bit lanes == (s as i32 + add) as i64.
        let addv = vdupq_n_s64(add as i64);
        let w = |x: uint64x2_t| vaddq_s64(vreinterpretq_s64_u64(x), addv);
        blocks(n, V8, |i| {
            // SAFETY: `blocks` passes i + 16 <= n <= both lengths: 16 bytes in, 16 i64 out.
            unsafe {
                let v = ld8(s.add(i));
                for (h, x16) in [vmovl_u8(vget_low_u8(v)), vmovl_high_u8(v)].into_iter().enumerate() {
                    for (q, x32) in [vmovl_u16(vget_low_u16(x16)), vmovl_high_u16(x16)]
                        .into_iter()
                        .enumerate()
                    {
                        let at = d.add(i + 8 * h + 4 * q);
                        vst1q_s64(at, w(vmovl_u32(vget_low_u32(x32))));
                        vst1q_s64(at.add(2), w(vmovl_high_u32(x32)));
                    }
                }
            }
        });
    }

    #[target_feature(enable = "neon")]
    pub fn widen_u16_i64(src: &[u16], dst: &mut [i64]) {
        let n = src.len().min(dst.len());
        if n < V16 {
            return scalar::widen_u16(&src[..n], &mut dst[..n]);
        }
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        let w = |x: uint64x2_t| vreinterpretq_s64_u64(x);
        blocks(n, V16, |i| {
            // SAFETY: `blocks` passes i + 8 <= n <= both lengths: 8 units in, 8 i64 out.
            unsafe {
                let a = ld16(s.add(i));
                let (lo, hi) = (vmovl_u16(vget_low_u16(a)), vmovl_high_u16(a));
                vst1q_s64(d.add(i), w(vmovl_u32(vget_low_u32(lo))));
                vst1q_s64(d.add(i + 2), w(vmovl_high_u32(lo)));
                vst1q_s64(d.add(i + 4), w(vmovl_u32(vget_low_u32(hi))));
                vst1q_s64(d.add(i + 6), w(vmovl_high_u32(hi)));
            }
        });
    }

    // Fills: LLVM leaves `slice::fill` of wide elements a scalar loop.

    #[target_feature(enable = "neon")]
    pub fn fill_i32(dst: &mut [i32], v: i32) {
        let (n, d) = (dst.len(), dst.as_mut_ptr());
        if n < 8 {
            return dst.fill(v);
        }
        let x = vdupq_n_s32(v);
        blocks(n, 8, |i| {
            // SAFETY: `blocks` passes i + 8 <= n = dst.len(): two 4-lane stores.
            unsafe {
                vst1q_s32(d.add(i), x);
                vst1q_s32(d.add(i + 4), x);
            }
        });
    }

    #[target_feature(enable = "neon")]
    pub fn fill_i64(dst: &mut [i64], v: i64) {
        let (n, d) = (dst.len(), dst.as_mut_ptr());
        if n < 4 {
            return dst.fill(v);
        }
        let x = vdupq_n_s64(v);
        blocks(n, 4, |i| {
            // SAFETY: `blocks` passes i + 4 <= n = dst.len(): two 2-lane stores.
            unsafe {
                vst1q_s64(d.add(i), x);
                vst1q_s64(d.add(i + 2), x);
            }
        });
    }

    #[target_feature(enable = "neon")]
    pub fn widen_u16_u16(src: &[u16], dst: &mut [u16]) {
        let n = src.len().min(dst.len());
        if n < 4 * V16 {
            return dst[..n].copy_from_slice(&src[..n]);
        }
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        blocks(n, 4 * V16, |i| {
            // SAFETY: `blocks` passes i + 32 <= n <= both lengths: four 8-unit loads and stores.
            unsafe {
                let (a, b, c, e) = (
                    ld16(s.add(i)),
                    ld16(s.add(i + 8)),
                    ld16(s.add(i + 16)),
                    ld16(s.add(i + 24)),
                );
                vst1q_u16(d.add(i), a);
                vst1q_u16(d.add(i + 8), b);
                vst1q_u16(d.add(i + 16), c);
                vst1q_u16(d.add(i + 24), e);
            }
        });
    }
}

/// UTF-8 and UTF-16: the classifiers of `super::utf` on four 16-byte vectors (compare results
/// turned into bit masks by weighting each lane with its bit and three pairwise adds), and the
/// decoders of `super::utf` that take the character starts from them.
mod utf {
    use super::super::utf::{
        decode16_masked, decode8_masked, scan16, scan8, Classes16, Classes8, Decoded, Utf16Counts,
        Utf8Counts,
    };
    use core::arch::aarch64::*;

    const WEIGHTS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];

    /// # Safety
    /// `p` must be valid for reading 64 bytes.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn load4(p: *const u8) -> [uint8x16_t; 4] {
        // SAFETY: the caller guarantees 64 readable bytes; `ld1` needs no alignment.
        unsafe { [0, 16, 32, 48].map(|k| vld1q_u8(p.add(k))) }
    }

    /// Bit i set iff byte lane i (of the four vectors in order) is 0xFF.
    #[inline]
    #[target_feature(enable = "neon")]
    fn bits64(m: [uint8x16_t; 4]) -> u64 {
        // SAFETY: WEIGHTS is 16 readable bytes.
        let w = unsafe { vld1q_u8(WEIGHTS.as_ptr()) };
        let a = m.map(|x| vandq_u8(x, w));
        let s = vpaddq_u8(vpaddq_u8(a[0], a[1]), vpaddq_u8(a[2], a[3]));
        let s = vpaddq_u8(s, s);
        vgetq_lane_u64::<0>(vreinterpretq_u64_u8(s))
    }

    /// Bit i set iff u16 lane i (of the four vectors in order) is 0xFFFF.
    #[inline]
    #[target_feature(enable = "neon")]
    fn bits32(m: [uint16x8_t; 4]) -> u32 {
        // SAFETY: WEIGHTS is 16 readable bytes.
        let w = unsafe { vld1q_u8(WEIGHTS.as_ptr()) };
        let a = vandq_u8(vcombine_u8(vmovn_u16(m[0]), vmovn_u16(m[1])), w);
        let b = vandq_u8(vcombine_u8(vmovn_u16(m[2]), vmovn_u16(m[3])), w);
        let s = vpaddq_u8(a, b);
        let s = vpaddq_u8(s, s);
        let s = vpaddq_u8(s, s);
        vgetq_lane_u32::<0>(vreinterpretq_u32_u8(s))
    }

    /// # Safety
    /// `p` must be valid for reading 64 bytes.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn classes8(p: *const u8) -> Classes8 {
        // SAFETY: forwarded.
        let v = unsafe { load4(p) };
        let ge = |t: u8| bits64(v.map(|x| vcgeq_u8(x, vdupq_n_u8(t))));
        let eq = |t: u8| bits64(v.map(|x| vceqq_u8(x, vdupq_n_u8(t))));
        Classes8::collect(ge(0x80), ge, eq)
    }

    /// Bit i set iff byte i of the 64 at `p` starts a character (is not 80..BF).
    ///
    /// # Safety
    /// `p` must be valid for reading 64 bytes.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn starts8(p: *const u8) -> u64 {
        // SAFETY: forwarded.
        let v = unsafe { load4(p) };
        // Continuation bytes are exactly those below 0xC0 as signed bytes (< -64).
        !bits64(v.map(|x| vcltq_s8(vreinterpretq_s8_u8(x), vdupq_n_s8(-64))))
    }

    /// # Safety
    /// `p` must be valid for reading 64 bytes.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn is_ascii(p: *const u8) -> bool {
        // SAFETY: forwarded.
        let v = unsafe { load4(p) };
        vmaxvq_u8(vorrq_u8(vorrq_u8(v[0], v[1]), vorrq_u8(v[2], v[3]))) < 0x80
    }

    /// # Safety
    /// `p` must be valid for reading 32 units.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn classes16(p: *const u16) -> Classes16 {
        // SAFETY: the caller guarantees 32 readable units (64 bytes).
        let v = unsafe { load4(p.cast()) }.map(|x| vreinterpretq_u16_u8(x));
        let top = v.map(|x| vandq_u16(x, vdupq_n_u16(0xFC00)));
        Classes16 {
            hi: bits32(top.map(|x| vceqq_u16(x, vdupq_n_u16(0xD800)))),
            lo: bits32(top.map(|x| vceqq_u16(x, vdupq_n_u16(0xDC00)))),
            ge80: bits32(v.map(|x| vcgeq_u16(x, vdupq_n_u16(0x80)))),
            ge800: bits32(v.map(|x| vcgeq_u16(x, vdupq_n_u16(0x800)))),
        }
    }

    /// 64 bytes at `s` -> 64 u32 at `d`.
    ///
    /// # Safety
    /// `s` readable for 64 bytes, `d` writable for 64 u32.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn widen8(s: *const u8, d: *mut u32) {
        // SAFETY: forwarded; 64 bytes read, 64 u32 written.
        unsafe {
            for (k, v) in load4(s).into_iter().enumerate() {
                let (lo, hi) = (vmovl_u8(vget_low_u8(v)), vmovl_high_u8(v));
                let q = d.add(16 * k);
                vst1q_u32(q, vmovl_u16(vget_low_u16(lo)));
                vst1q_u32(q.add(4), vmovl_high_u16(lo));
                vst1q_u32(q.add(8), vmovl_u16(vget_low_u16(hi)));
                vst1q_u32(q.add(12), vmovl_high_u16(hi));
            }
        }
    }

    /// 32 units at `s` -> 32 u32 at `d`.
    ///
    /// # Safety
    /// `s` readable for 32 units, `d` writable for 32 u32.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn widen16(s: *const u16, d: *mut u32) {
        // SAFETY: forwarded; 32 units read, 32 u32 written.
        unsafe {
            for (k, v) in load4(s.cast()).into_iter().enumerate() {
                let v = vreinterpretq_u16_u8(v);
                let q = d.add(8 * k);
                vst1q_u32(q, vmovl_u16(vget_low_u16(v)));
                vst1q_u32(q.add(4), vmovl_high_u16(v));
            }
        }
    }

    #[target_feature(enable = "neon")]
    pub fn utf8_scan(src: &[u8]) -> Option<Utf8Counts> {
        // SAFETY: `scan8` only passes pointers to 64 readable bytes.
        unsafe { scan8(src, |p| classes8(p), |p| is_ascii(p)) }
    }

    #[target_feature(enable = "neon")]
    pub fn utf16_scan(src: &[u16]) -> Option<Utf16Counts> {
        // SAFETY: `scan16` only passes pointers to 32 readable units.
        unsafe { scan16(src, |p| classes16(p)) }
    }

    #[target_feature(enable = "neon")]
    pub fn utf8_decode(src: &[u8], dst: &mut [u32]) -> Decoded {
        // SAFETY: `decode8_masked` passes pointers to 64 readable bytes / 64 writable u32.
        unsafe {
            decode8_masked(
                src,
                dst,
                |p| starts8(p),
                |p| is_ascii(p),
                |s, d| widen8(s, d),
            )
        }
    }

    #[target_feature(enable = "neon")]
    pub fn utf16_decode(src: &[u16], dst: &mut [u32]) -> Decoded {
        // SAFETY: `decode16_masked` passes pointers to 32 readable units / 32 writable u32.
        unsafe { decode16_masked(src, dst, |p| classes16(p), |s, d| widen16(s, d)) }
    }
}
