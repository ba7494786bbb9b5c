//! SSE2 path (128-bit vectors). SSE2 is part of the x86_64 baseline, but the path is still gated
//! on `is_x86_feature_detected!("sse2")` like the others so the pattern is uniform.
//!
//! Explicit intrinsics: the four scans (64 bytes per iteration: four vectors OR-ed for one test,
//! then the exact index from the movemasks) and the widenings u8 -> i32 (+add), u16 -> i32,
//! u8 -> u16 (+add), u8 -> i64 (+add), u16 -> i64 (unpacks with zero). u16 -> u16 is `copy_from_slice` (libc memcpy measured faster than a
//! 16-byte loop). The other widenings are plain loops compiled with
//! `#[target_feature(enable = "sse2")]` and left to LLVM's vectorizer.
//!
//! Tails: a vector loop, then one last vector that overlaps elements already handled
//! (re-checking known-good units or re-writing identical outputs is harmless), and SWAR / scalar
//! code for inputs shorter than one vector. Every load and store is unaligned, so any start
//! offset works; the widenings start their loop at the first 16-byte-aligned output element.

use super::utf::{Decoded, Utf16Counts, Utf8Counts};
use super::Kernels;

/// Generates the safe `fn` items stored in a `Kernels` table, each calling a `#[target_feature]`
/// implementation. Shared by the x86 paths (`super::sse2::wrap!`).
macro_rules! wrap {
    ($(fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? = $imp:path;)*) => {$(
        fn $name($($arg: $ty),*) $(-> $ret)? {
            // SAFETY: the only precondition of `$imp` is that the CPU supports the features of
            // its `#[target_feature]`, which are exactly those the module's `is_available()`
            // checks. This fn is private to its module and only reachable through that module's
            // `KERNELS`, which `simd::available()` hands out only after `is_available()` detected
            // those features at runtime.
            unsafe { $imp($($arg),*) }
        }
    )*};
}
pub(super) use wrap;

pub static KERNELS: Kernels = Kernels {
    name: "sse2",
    ascii_prefix,
    ascii_prefix_u16,
    bmp_prefix,
    max_u16,
    widen_u8_i32,
    widen_u8_i16,
    widen_u8_u16,
    widen_u8_u8,
    widen_u8_f32,
    widen_u8_i64,
    widen_u16_i32,
    widen_u16_i16,
    widen_u16_u16,
    widen_u16_u8,
    widen_u16_f32,
    widen_u16_i64,
    fill_i32,
    fill_i64,
    utf8_scan,
    utf16_scan,
    utf8_decode,
    utf16_decode,
};

/// Whether this CPU can run the path. `available()` hands out `KERNELS` only when this is true.
pub fn is_available() -> bool {
    is_x86_feature_detected!("sse2")
}

// Safe entry points stored in `KERNELS`. The module is private to `simd` and `KERNELS` is only
// handed out by `available()` after `is_available()` returned true.
wrap! {
    fn ascii_prefix(src: &[u8]) -> usize = imp::ascii_prefix;
    fn ascii_prefix_u16(src: &[u16]) -> usize = imp::ascii_prefix_u16;
    fn bmp_prefix(src: &[u16]) -> usize = imp::bmp_prefix;
    fn max_u16(src: &[u16]) -> u16 = imp::max_u16;
    fn widen_u8_i32(src: &[u8], add: i32, dst: &mut [i32]) = imp::widen_u8_i32;
    fn widen_u8_i16(src: &[u8], add: i32, dst: &mut [i16]) = imp::widen_u8_i16;
    fn widen_u8_u16(src: &[u8], add: i32, dst: &mut [u16]) = imp::widen_u8_u16;
    fn widen_u8_u8(src: &[u8], add: i32, dst: &mut [u8]) = imp::widen_u8_u8;
    fn widen_u8_f32(src: &[u8], add: i32, dst: &mut [f32]) = imp::widen_u8_f32;
    fn widen_u8_i64(src: &[u8], add: i32, dst: &mut [i64]) = imp::widen_u8_i64;
    fn widen_u16_i32(src: &[u16], dst: &mut [i32]) = imp::widen_u16_i32;
    fn widen_u16_i16(src: &[u16], dst: &mut [i16]) = imp::widen_u16_i16;
    fn widen_u16_u16(src: &[u16], dst: &mut [u16]) = imp::widen_u16_u16;
    fn widen_u16_u8(src: &[u16], dst: &mut [u8]) = imp::widen_u16_u8;
    fn widen_u16_f32(src: &[u16], dst: &mut [f32]) = imp::widen_u16_f32;
    fn widen_u16_i64(src: &[u16], dst: &mut [i64]) = imp::widen_u16_i64;
    fn fill_i32(dst: &mut [i32], v: i32) = imp::fill_i32;
    fn fill_i64(dst: &mut [i64], v: i64) = imp::fill_i64;
    fn utf8_scan(src: &[u8]) -> Option<Utf8Counts> = utf::utf8_scan;
    fn utf16_scan(src: &[u16]) -> Option<Utf16Counts> = utf::utf16_scan;
    fn utf8_decode(src: &[u8], dst: &mut [u32]) -> Decoded = utf::utf8_decode;
    fn utf16_decode(src: &[u16], dst: &mut [u32]) -> Decoded = utf::utf16_decode;
}

/// Short-input helpers shared by the x86 paths (plain Rust, no unsafe).
pub(super) mod small {
    const HI8: u64 = 0x8080_8080_8080_8080;
    const HI16: u64 = 0xFF80_FF80_FF80_FF80;

    #[inline(always)]
    fn u64_at(src: &[u8], i: usize) -> u64 {
        u64::from_le_bytes(src[i..i + 8].try_into().unwrap())
    }

    #[inline(always)]
    fn u32_at(src: &[u8], i: usize) -> u32 {
        u32::from_le_bytes(src[i..i + 4].try_into().unwrap())
    }

    /// `scalar::ascii_prefix` for any length, fastest for 4..=16 bytes (two overlapping words).
    #[inline(always)]
    pub fn ascii_prefix(src: &[u8]) -> usize {
        let n = src.len();
        if (8..=16).contains(&n) {
            let m = u64_at(src, 0) & HI8;
            if m != 0 {
                return m.trailing_zeros() as usize / 8;
            }
            let m = u64_at(src, n - 8) & HI8;
            if m != 0 {
                return n - 8 + m.trailing_zeros() as usize / 8;
            }
            return n;
        }
        if (4..8).contains(&n) {
            let m = u32_at(src, 0) & HI8 as u32;
            if m != 0 {
                return m.trailing_zeros() as usize / 8;
            }
            let m = u32_at(src, n - 4) & HI8 as u32;
            if m != 0 {
                return n - 4 + m.trailing_zeros() as usize / 8;
            }
            return n;
        }
        src.iter().position(|&b| b >= 0x80).unwrap_or(n)
    }

    #[inline(always)]
    fn units4(src: &[u16], i: usize) -> u64 {
        (src[i] as u64)
            | (src[i + 1] as u64) << 16
            | (src[i + 2] as u64) << 32
            | (src[i + 3] as u64) << 48
    }

    /// `scalar::ascii_prefix_u16` for any length, fastest below 8 units.
    #[inline(always)]
    pub fn ascii_prefix_u16(src: &[u16]) -> usize {
        let n = src.len();
        if (4..=8).contains(&n) {
            let m = units4(src, 0) & HI16;
            if m != 0 {
                return m.trailing_zeros() as usize / 16;
            }
            let m = units4(src, n - 4) & HI16;
            if m != 0 {
                return n - 4 + m.trailing_zeros() as usize / 16;
            }
            return n;
        }
        src.iter().position(|&u| u >= 0x80).unwrap_or(n)
    }

    /// `scalar::bmp_prefix` for any length.
    #[inline(always)]
    pub fn bmp_prefix(src: &[u16]) -> usize {
        src.iter()
            .position(|&u| (u & 0xF800) == 0xD800)
            .unwrap_or(src.len())
    }

    /// `scalar::max_u16` for any length.
    #[inline(always)]
    pub fn max_u16(src: &[u16]) -> u16 {
        src.iter().copied().max().unwrap_or(0)
    }

    /// `scalar::widen_u8` for any length (the short tails of the vector loops).
    #[inline(always)]
    pub fn widen_u8<T: super::super::Elem>(src: &[u8], add: i32, dst: &mut [T]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = T::from_i32(s as i32 + add);
        }
    }

    /// `scalar::widen_u16` for any length.
    #[inline(always)]
    pub fn widen_u16<T: super::super::Elem>(src: &[u16], dst: &mut [T]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = T::from_i32(s as i32);
        }
    }
}

/// The block loop of the x86 widenings that end with an overlapping block (plain Rust).
pub(super) mod drive {
    /// Elements of `T` from `d` to the next `align`-byte boundary (0 if already aligned).
    #[inline(always)]
    pub fn to_boundary<T>(d: *const T, align: usize) -> usize {
        ((align - d as usize % align) % align) / core::mem::size_of::<T>()
    }

    /// Covers `0..n` with calls `one(i)`, each handling elements `i..i + step`: once at 0
    /// (unaligned), then from `aligned` (in `0..step`: the first `i` whose output address is
    /// vector-aligned; stores that split cache lines cost about twice as much), four at a time,
    /// then one at a time, then once at `n - step` for a tail. Blocks that overlap rewrite
    /// identical values. Every `i` passed has `i + step <= n`; requires `n >= step`.
    #[inline(always)]
    pub fn drive(n: usize, step: usize, aligned: usize, one: impl Fn(usize)) {
        debug_assert!(n >= step && aligned < step);
        one(0);
        let mut i = if aligned == 0 { step } else { aligned };
        while i + 4 * step <= n {
            one(i);
            one(i + step);
            one(i + 2 * step);
            one(i + 3 * step);
            i += 4 * step;
        }
        while i + step <= n {
            one(i);
            i += step;
        }
        if i < n {
            one(n - step);
        }
    }
}

mod imp {
    use super::drive::{drive, to_boundary};
    use super::small;
    use core::arch::x86_64::*;

    const V8: usize = 16; // bytes per vector
    const V16: usize = 8; // u16 units per vector

    /// Unaligned 16-byte load.
    ///
    /// # Safety
    /// `p` must be valid for reading 16 bytes (any alignment).
    #[inline]
    #[target_feature(enable = "sse2")]
    unsafe fn load<T>(p: *const T) -> __m128i {
        // SAFETY: the caller guarantees 16 readable bytes at `p`; `loadu` needs no alignment.
        unsafe { _mm_loadu_si128(p.cast()) }
    }

    /// Unaligned 16-byte store.
    ///
    /// # Safety
    /// `p` must be valid for writing 16 bytes (any alignment).
    #[inline]
    #[target_feature(enable = "sse2")]
    unsafe fn store<T>(p: *mut T, v: __m128i) {
        // SAFETY: the caller guarantees 16 writable bytes at `p`; `storeu` needs no alignment.
        unsafe { _mm_storeu_si128(p.cast(), v) }
    }

    /// 16-bit lane mask (bit i set = byte i has its high bit set).
    #[inline]
    #[target_feature(enable = "sse2")]
    fn hi_bits(v: __m128i) -> u64 {
        _mm_movemask_epi8(v) as u32 as u64
    }

    /// High bit of every u16 lane set iff the unit is >= 0x80 (unsigned saturating add), so that
    /// `movemask & 0xAAAA` marks those units at bit 2*i+1.
    #[inline]
    #[target_feature(enable = "sse2")]
    fn non_ascii_u16(v: __m128i) -> __m128i {
        _mm_adds_epu16(v, _mm_set1_epi16(0x7F80))
    }

    /// Lanes that are surrogates ((u & 0xF800) == 0xD800) become 0xFFFF, others 0.
    #[inline]
    #[target_feature(enable = "sse2")]
    fn surrogates(v: __m128i) -> __m128i {
        _mm_cmpeq_epi16(
            _mm_and_si128(v, _mm_set1_epi16(0xF800u16 as i16)),
            _mm_set1_epi16(0xD800u16 as i16),
        )
    }

    #[target_feature(enable = "sse2")]
    pub fn ascii_prefix(src: &[u8]) -> usize {
        let n = src.len();
        if n < V8 {
            return small::ascii_prefix(src);
        }
        let p = src.as_ptr();
        let mut i = 0;
        while i + 4 * V8 <= n {
            // SAFETY: i + 64 <= n, so the four 16-byte loads at p+i..p+i+64 are in bounds.
            let (a, b, c, d) = unsafe {
                (
                    load(p.add(i)),
                    load(p.add(i + V8)),
                    load(p.add(i + 2 * V8)),
                    load(p.add(i + 3 * V8)),
                )
            };
            let any = _mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d));
            if _mm_movemask_epi8(any) != 0 {
                let m = hi_bits(a) | hi_bits(b) << 16 | hi_bits(c) << 32 | hi_bits(d) << 48;
                return i + m.trailing_zeros() as usize;
            }
            i += 4 * V8;
        }
        while i + V8 <= n {
            // SAFETY: i + 16 <= n.
            let m = hi_bits(unsafe { load(p.add(i)) });
            if m != 0 {
                return i + m.trailing_zeros() as usize;
            }
            i += V8;
        }
        if i < n {
            // Last vector overlaps bytes already known to be ASCII, so its first hit is the first.
            // SAFETY: n >= 16, so n-16..n is in bounds.
            let m = hi_bits(unsafe { load(p.add(n - V8)) });
            if m != 0 {
                return n - V8 + m.trailing_zeros() as usize;
            }
        }
        n
    }

    #[target_feature(enable = "sse2")]
    pub fn ascii_prefix_u16(src: &[u16]) -> usize {
        const ODD: u64 = 0xAAAA_AAAA_AAAA_AAAA;
        let n = src.len();
        if n < V16 {
            return small::ascii_prefix_u16(src);
        }
        let p = src.as_ptr();
        let mut i = 0;
        while i + 4 * V16 <= n {
            // SAFETY: i + 32 <= n units, so the four 8-unit loads are in bounds.
            let (a, b, c, d) = unsafe {
                (
                    load(p.add(i)),
                    load(p.add(i + V16)),
                    load(p.add(i + 2 * V16)),
                    load(p.add(i + 3 * V16)),
                )
            };
            let any = non_ascii_u16(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d)));
            if hi_bits(any) & ODD != 0 {
                let m = hi_bits(non_ascii_u16(a))
                    | hi_bits(non_ascii_u16(b)) << 16
                    | hi_bits(non_ascii_u16(c)) << 32
                    | hi_bits(non_ascii_u16(d)) << 48;
                return i + (m & ODD).trailing_zeros() as usize / 2;
            }
            i += 4 * V16;
        }
        while i + V16 <= n {
            // SAFETY: i + 8 <= n.
            let m = hi_bits(non_ascii_u16(unsafe { load(p.add(i)) })) & ODD;
            if m != 0 {
                return i + m.trailing_zeros() as usize / 2;
            }
            i += V16;
        }
        if i < n {
            // SAFETY: n >= 8, so units n-8..n are in bounds.
            let m = hi_bits(non_ascii_u16(unsafe { load(p.add(n - V16)) })) & ODD;
            if m != 0 {
                return n - V16 + m.trailing_zeros() as usize / 2;
            }
        }
        n
    }

    #[target_feature(enable = "sse2")]
    pub fn bmp_prefix(src: &[u16]) -> usize {
        let n = src.len();
        if n < V16 {
            return small::bmp_prefix(src);
        }
        let p = src.as_ptr();
        let mut i = 0;
        while i + 4 * V16 <= n {
            // SAFETY: i + 32 <= n units.
            let (a, b, c, d) = unsafe {
                (
                    load(p.add(i)),
                    load(p.add(i + V16)),
                    load(p.add(i + 2 * V16)),
                    load(p.add(i + 3 * V16)),
                )
            };
            let (a, b, c, d) = (surrogates(a), surrogates(b), surrogates(c), surrogates(d));
            let any = _mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d));
            if _mm_movemask_epi8(any) != 0 {
                let m = hi_bits(a) | hi_bits(b) << 16 | hi_bits(c) << 32 | hi_bits(d) << 48;
                return i + m.trailing_zeros() as usize / 2;
            }
            i += 4 * V16;
        }
        while i + V16 <= n {
            // SAFETY: i + 8 <= n.
            let m = hi_bits(surrogates(unsafe { load(p.add(i)) }));
            if m != 0 {
                return i + m.trailing_zeros() as usize / 2;
            }
            i += V16;
        }
        if i < n {
            // SAFETY: n >= 8.
            let m = hi_bits(surrogates(unsafe { load(p.add(n - V16)) }));
            if m != 0 {
                return n - V16 + m.trailing_zeros() as usize / 2;
            }
        }
        n
    }

    #[target_feature(enable = "sse2")]
    pub fn max_u16(src: &[u16]) -> u16 {
        let n = src.len();
        if n < V16 {
            return small::max_u16(src);
        }
        // SSE2 only has a signed 16-bit max: flip the sign bit to map u16 order onto i16 order.
        let bias = _mm_set1_epi16(i16::MIN);
        let p = src.as_ptr();
        let (mut m0, mut m1, mut m2, mut m3) = (bias, bias, bias, bias);
        let mut i = 0;
        while i + 4 * V16 <= n {
            // SAFETY: i + 32 <= n units.
            let (a, b, c, d) = unsafe {
                (
                    load(p.add(i)),
                    load(p.add(i + V16)),
                    load(p.add(i + 2 * V16)),
                    load(p.add(i + 3 * V16)),
                )
            };
            m0 = _mm_max_epi16(m0, _mm_xor_si128(a, bias));
            m1 = _mm_max_epi16(m1, _mm_xor_si128(b, bias));
            m2 = _mm_max_epi16(m2, _mm_xor_si128(c, bias));
            m3 = _mm_max_epi16(m3, _mm_xor_si128(d, bias));
            i += 4 * V16;
        }
        while i + V16 <= n {
            // SAFETY: i + 8 <= n.
            m0 = _mm_max_epi16(m0, _mm_xor_si128(unsafe { load(p.add(i)) }, bias));
            i += V16;
        }
        if i < n {
            // Max is idempotent, so re-reading units is harmless. SAFETY: n >= 8.
            m1 = _mm_max_epi16(m1, _mm_xor_si128(unsafe { load(p.add(n - V16)) }, bias));
        }
        let mut m = _mm_max_epi16(_mm_max_epi16(m0, m1), _mm_max_epi16(m2, m3));
        m = _mm_max_epi16(m, _mm_srli_si128::<8>(m));
        m = _mm_max_epi16(m, _mm_srli_si128::<4>(m));
        m = _mm_max_epi16(m, _mm_srli_si128::<2>(m));
        (_mm_cvtsi128_si32(m) as u16) ^ 0x8000
    }

    #[target_feature(enable = "sse2")]
    pub fn widen_u8_i32(src: &[u8], add: i32, dst: &mut [i32]) {
        let n = src.len().min(dst.len());
        if n < V8 {
            return small::widen_u8(&src[..n], add, &mut dst[..n]);
        }
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        let (z, addv) = (_mm_setzero_si128(), _mm_set1_epi32(add));
        // 16 bytes -> 16 i32 (four vectors). SAFETY: `drive` passes i + 16 <= n <= both lengths.
        drive(n, V8, to_boundary(d, 16), |i| unsafe {
            let v = load(s.add(i));
            let lo = _mm_unpacklo_epi8(v, z);
            let hi = _mm_unpackhi_epi8(v, z);
            store(d.add(i), _mm_add_epi32(_mm_unpacklo_epi16(lo, z), addv));
            store(d.add(i + 4), _mm_add_epi32(_mm_unpackhi_epi16(lo, z), addv));
            store(d.add(i + 8), _mm_add_epi32(_mm_unpacklo_epi16(hi, z), addv));
            store(
                d.add(i + 12),
                _mm_add_epi32(_mm_unpackhi_epi16(hi, z), addv),
            );
        });
    }

    #[target_feature(enable = "sse2")]
    pub fn widen_u16_i32(src: &[u16], dst: &mut [i32]) {
        let n = src.len().min(dst.len());
        if n < V16 {
            return small::widen_u16(&src[..n], &mut dst[..n]);
        }
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        let z = _mm_setzero_si128();
        // 8 units -> 8 i32 (two vectors). SAFETY: `drive` passes i + 8 <= n <= both lengths.
        drive(n, V16, to_boundary(d, 16), |i| unsafe {
            let v = load(s.add(i));
            store(d.add(i), _mm_unpacklo_epi16(v, z));
            store(d.add(i + 4), _mm_unpackhi_epi16(v, z));
        });
    }

    #[target_feature(enable = "sse2")]
    pub fn widen_u8_u16(src: &[u8], add: i32, dst: &mut [u16]) {
        let n = src.len().min(dst.len());
        if n < V8 {
            return small::widen_u8(&src[..n], add, &mut dst[..n]);
        }
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        // (s + add) as u16 == s.wrapping_add(add as u16) in 16-bit lanes.
        let (z, addv) = (_mm_setzero_si128(), _mm_set1_epi16(add as i16));
        // 16 bytes -> 16 u16 (two vectors). SAFETY: `drive` passes i + 16 <= n <= both lengths.
        drive(n, V8, to_boundary(d, 16), |i| unsafe {
            let v = load(s.add(i));
            store(d.add(i), _mm_add_epi16(_mm_unpacklo_epi8(v, z), addv));
            store(d.add(i + 8), _mm_add_epi16(_mm_unpackhi_epi8(v, z), addv));
        });
    }

    #[target_feature(enable = "sse2")]
    pub fn widen_u8_i64(src: &[u8], add: i32, dst: &mut [i64]) {
        let n = src.len().min(dst.len());
        if n < V8 {
            return small::widen_u8(&src[..n], add, &mut dst[..n]);
        }
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        // Zero-extended bytes + add in 64-bit lanes == (s as i32 + add) as i64 (no i32 overflow:
        // the callers' values fit).
        let (z, addv) = (_mm_setzero_si128(), _mm_set1_epi64x(add as i64));
        // 16 bytes -> 16 i64 (eight vectors). SAFETY: `drive` passes i + 16 <= n <= both lengths.
        drive(n, V8, to_boundary(d, 16), |i| unsafe {
            let v = load(s.add(i));
            let w16 = [_mm_unpacklo_epi8(v, z), _mm_unpackhi_epi8(v, z)];
            for (h, w) in w16.into_iter().enumerate() {
                let w32 = [_mm_unpacklo_epi16(w, z), _mm_unpackhi_epi16(w, z)];
                for (q, x) in w32.into_iter().enumerate() {
                    let at = d.add(i + 8 * h + 4 * q);
                    store(at, _mm_add_epi64(_mm_unpacklo_epi32(x, z), addv));
                    store(at.add(2), _mm_add_epi64(_mm_unpackhi_epi32(x, z), addv));
                }
            }
        });
    }

    #[target_feature(enable = "sse2")]
    pub fn widen_u16_i64(src: &[u16], dst: &mut [i64]) {
        let n = src.len().min(dst.len());
        if n < V16 {
            return small::widen_u16(&src[..n], &mut dst[..n]);
        }
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        let z = _mm_setzero_si128();
        // 8 units -> 8 i64 (four vectors). SAFETY: `drive` passes i + 8 <= n <= both lengths.
        drive(n, V16, to_boundary(d, 16), |i| unsafe {
            let v = load(s.add(i));
            let (lo, hi) = (_mm_unpacklo_epi16(v, z), _mm_unpackhi_epi16(v, z));
            store(d.add(i), _mm_unpacklo_epi32(lo, z));
            store(d.add(i + 2), _mm_unpackhi_epi32(lo, z));
            store(d.add(i + 4), _mm_unpacklo_epi32(hi, z));
            store(d.add(i + 6), _mm_unpackhi_epi32(hi, z));
        });
    }

    /// A plain copy: libc's memcpy picks the widest vectors the CPU has (and `rep movsb` for
    /// large sizes); it measured faster than a 16-byte load/store loop here.
    #[target_feature(enable = "sse2")]
    pub fn widen_u16_u16(src: &[u16], dst: &mut [u16]) {
        let n = src.len().min(dst.len());
        dst[..n].copy_from_slice(&src[..n]);
    }

    // Plain loops: LLVM vectorizes them with the SSE2 feature set enabled here.

    #[target_feature(enable = "sse2")]
    pub fn widen_u8_i16(src: &[u8], add: i32, dst: &mut [i16]) {
        small::widen_u8(src, add, dst)
    }

    #[target_feature(enable = "sse2")]
    pub fn widen_u8_u8(src: &[u8], add: i32, dst: &mut [u8]) {
        small::widen_u8(src, add, dst)
    }

    #[target_feature(enable = "sse2")]
    pub fn widen_u8_f32(src: &[u8], add: i32, dst: &mut [f32]) {
        small::widen_u8(src, add, dst)
    }

    #[target_feature(enable = "sse2")]
    pub fn widen_u16_i16(src: &[u16], dst: &mut [i16]) {
        small::widen_u16(src, dst)
    }

    #[target_feature(enable = "sse2")]
    pub fn widen_u16_u8(src: &[u16], dst: &mut [u8]) {
        small::widen_u16(src, dst)
    }

    #[target_feature(enable = "sse2")]
    pub fn widen_u16_f32(src: &[u16], dst: &mut [f32]) {
        small::widen_u16(src, dst)
    }

    // Fills: LLVM leaves `slice::fill` of wide elements a scalar loop.

    #[target_feature(enable = "sse2")]
    pub fn fill_i32(dst: &mut [i32], v: i32) {
        let (n, d) = (dst.len(), dst.as_mut_ptr());
        if n < 4 {
            return dst.fill(v);
        }
        let x = _mm_set1_epi32(v);
        // SAFETY: `drive` passes i + 4 <= n = dst.len().
        drive(n, 4, to_boundary(d, 16), |i| unsafe { store(d.add(i), x) });
    }

    #[target_feature(enable = "sse2")]
    pub fn fill_i64(dst: &mut [i64], v: i64) {
        let (n, d) = (dst.len(), dst.as_mut_ptr());
        if n < 2 {
            return dst.fill(v);
        }
        let x = _mm_set1_epi64x(v);
        // SAFETY: `drive` passes i + 2 <= n = dst.len().
        drive(n, 2, to_boundary(d, 16), |i| unsafe { store(d.add(i), x) });
    }
}

/// UTF-8 and UTF-16: the classifiers of `super::utf` on four 16-byte vectors (SSE2 has unsigned
/// byte max but no unsigned compare: `max(v, t) == v` is `v >= t`), and the decoders of
/// `super::utf` that take the character starts from them (SSE2 has no variable shuffle to
/// compact lanes with).
mod utf {
    use super::super::utf::{
        decode16_masked, decode8_masked, scan16, scan8, Classes16, Classes8, Decoded, Utf16Counts,
        Utf8Counts,
    };
    use core::arch::x86_64::*;

    /// # Safety
    /// `p` must be valid for reading 64 bytes.
    #[inline]
    #[target_feature(enable = "sse2")]
    unsafe fn load4(p: *const u8) -> [__m128i; 4] {
        // SAFETY: the caller guarantees 64 readable bytes.
        unsafe { [0, 16, 32, 48].map(|k| _mm_loadu_si128(p.add(k).cast())) }
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn mask4(v: [__m128i; 4]) -> u64 {
        let m = |x: __m128i| _mm_movemask_epi8(x) as u32 as u64;
        m(v[0]) | (m(v[1]) << 16) | (m(v[2]) << 32) | (m(v[3]) << 48)
    }

    /// # Safety
    /// `p` must be valid for reading 64 bytes.
    #[inline]
    #[target_feature(enable = "sse2")]
    unsafe fn classes8(p: *const u8) -> Classes8 {
        // SAFETY: forwarded.
        let v = unsafe { load4(p) };
        let ge = |t: u8| {
            let t = _mm_set1_epi8(t as i8);
            mask4(v.map(|x| _mm_cmpeq_epi8(_mm_max_epu8(x, t), x)))
        };
        let eq = |t: u8| {
            let t = _mm_set1_epi8(t as i8);
            mask4(v.map(|x| _mm_cmpeq_epi8(x, t)))
        };
        Classes8::collect(mask4(v), ge, eq)
    }

    /// Bit i set iff byte i of the 64 at `p` starts a character (is not 80..BF).
    ///
    /// # Safety
    /// `p` must be valid for reading 64 bytes.
    #[inline]
    #[target_feature(enable = "sse2")]
    unsafe fn starts8(p: *const u8) -> u64 {
        // SAFETY: forwarded.
        let v = unsafe { load4(p) };
        let c0 = _mm_set1_epi8(0xC0u8 as i8);
        // Continuation bytes are exactly those with the sign bit set below 0xC0 (signed: < -64).
        let cont = mask4(v.map(|x| _mm_cmplt_epi8(x, c0)));
        !cont
    }

    /// # Safety
    /// `p` must be valid for reading 64 bytes.
    #[inline]
    #[target_feature(enable = "sse2")]
    unsafe fn is_ascii(p: *const u8) -> bool {
        // SAFETY: forwarded.
        let v = unsafe { load4(p) };
        _mm_movemask_epi8(_mm_or_si128(
            _mm_or_si128(v[0], v[1]),
            _mm_or_si128(v[2], v[3]),
        )) == 0
    }

    /// # Safety
    /// `p` must be valid for reading 32 units.
    #[inline]
    #[target_feature(enable = "sse2")]
    unsafe fn classes16(p: *const u16) -> Classes16 {
        // SAFETY: the caller guarantees 32 readable units (64 bytes).
        let v = unsafe { load4(p.cast()) };
        let set = |x: u16| _mm_set1_epi16(x as i16);
        // 16-bit lane masks -> one bit per unit (packs keeps each word's sign).
        let bits = |f: &dyn Fn(__m128i) -> __m128i| {
            let lo = _mm_movemask_epi8(_mm_packs_epi16(f(v[0]), f(v[1]))) as u32;
            let hi = _mm_movemask_epi8(_mm_packs_epi16(f(v[2]), f(v[3]))) as u32;
            lo | (hi << 16)
        };
        let zero = _mm_setzero_si128();
        Classes16 {
            hi: bits(&|x| _mm_cmpeq_epi16(_mm_and_si128(x, set(0xFC00)), set(0xD800))),
            lo: bits(&|x| _mm_cmpeq_epi16(_mm_and_si128(x, set(0xFC00)), set(0xDC00))),
            ge80: !bits(&|x| _mm_cmpeq_epi16(_mm_and_si128(x, set(0xFF80)), zero)),
            ge800: !bits(&|x| _mm_cmpeq_epi16(_mm_and_si128(x, set(0xF800)), zero)),
        }
    }

    /// 64 bytes at `s` -> 64 u32 at `d`.
    ///
    /// # Safety
    /// `s` readable for 64 bytes, `d` writable for 64 u32.
    #[inline]
    #[target_feature(enable = "sse2")]
    unsafe fn widen8(s: *const u8, d: *mut u32) {
        let z = _mm_setzero_si128();
        // SAFETY: forwarded; 4 x 16 bytes read, 16 x 16 bytes written.
        unsafe {
            for (k, v) in load4(s).into_iter().enumerate() {
                let (lo, hi) = (_mm_unpacklo_epi8(v, z), _mm_unpackhi_epi8(v, z));
                let q = d.add(16 * k).cast::<__m128i>();
                _mm_storeu_si128(q, _mm_unpacklo_epi16(lo, z));
                _mm_storeu_si128(q.add(1), _mm_unpackhi_epi16(lo, z));
                _mm_storeu_si128(q.add(2), _mm_unpacklo_epi16(hi, z));
                _mm_storeu_si128(q.add(3), _mm_unpackhi_epi16(hi, z));
            }
        }
    }

    /// 32 units at `s` -> 32 u32 at `d`.
    ///
    /// # Safety
    /// `s` readable for 32 units, `d` writable for 32 u32.
    #[inline]
    #[target_feature(enable = "sse2")]
    unsafe fn widen16(s: *const u16, d: *mut u32) {
        let z = _mm_setzero_si128();
        // SAFETY: forwarded; 4 x 16 bytes read, 8 x 16 bytes written.
        unsafe {
            for (k, v) in load4(s.cast()).into_iter().enumerate() {
                let q = d.add(8 * k).cast::<__m128i>();
                _mm_storeu_si128(q, _mm_unpacklo_epi16(v, z));
                _mm_storeu_si128(q.add(1), _mm_unpackhi_epi16(v, z));
            }
        }
    }

    #[target_feature(enable = "sse2")]
    pub fn utf8_scan(src: &[u8]) -> Option<Utf8Counts> {
        // SAFETY: `scan8` only passes pointers to 64 readable bytes.
        unsafe { scan8(src, |p| classes8(p), |p| is_ascii(p)) }
    }

    #[target_feature(enable = "sse2")]
    pub fn utf16_scan(src: &[u16]) -> Option<Utf16Counts> {
        // SAFETY: `scan16` only passes pointers to 32 readable units.
        unsafe { scan16(src, |p| classes16(p)) }
    }

    #[target_feature(enable = "sse2")]
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

    #[target_feature(enable = "sse2")]
    pub fn utf16_decode(src: &[u16], dst: &mut [u32]) -> Decoded {
        // SAFETY: `decode16_masked` passes pointers to 32 readable units / 32 writable u32.
        unsafe { decode16_masked(src, dst, |p| classes16(p), |s, d| widen16(s, d)) }
    }
}
