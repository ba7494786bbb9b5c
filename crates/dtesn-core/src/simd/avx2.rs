//! AVX2 path (256-bit vectors), used when `is_x86_feature_detected!("avx2")`.
//!
//! Explicit intrinsics: the four scans (128 bytes per iteration: four vectors OR-ed for one
//! test, then the exact index from the vectors' movemasks) and the widenings u8 -> i32 (+add,
//! `vpmovzxbd`), u16 -> i32 (`vpmovzxwd`), u8 -> u16 (+add, `vpmovzxbw`), u8 -> i64 (+add,
//! `vpmovzxbq`), u16 -> i64 (`vpmovzxwq`). u16 -> u16 is
//! `copy_from_slice` (libc memcpy measured faster than a 32-byte loop). The other widenings are
//! plain loops compiled with `#[target_feature(enable = "avx2")]` (LLVM emits ymm code for them).
//!
//! Alignment: any start offset works (all accesses are unaligned loads/stores), but after one
//! unaligned first vector the loops go on from the first 32-byte-aligned element of the input
//! (scans) or output (widenings), re-doing a few elements, because accesses that split cache
//! lines cost up to twice as much.
//!
//! Tails: a last vector overlapping data already handled (re-checking known-good units or
//! re-writing identical outputs is harmless); inputs shorter than one vector go to 128-bit or
//! SWAR code.

use super::sse2::{small, wrap};
use super::utf::{Decoded, Utf16Counts, Utf8Counts};
use super::Kernels;

pub static KERNELS: Kernels = Kernels {
    name: "avx2",
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
    is_x86_feature_detected!("avx2")
}

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

mod imp {
    use super::super::sse2::drive::{drive, to_boundary};
    use super::small;
    use core::arch::x86_64::*;

    const V16: usize = 16; // u16 units per vector
    const ODD: u64 = 0xAAAA_AAAA_AAAA_AAAA;

    /// Unaligned 32-byte load.
    ///
    /// # Safety
    /// `p` must be valid for reading 32 bytes (any alignment).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load<T>(p: *const T) -> __m256i {
        // SAFETY: the caller guarantees 32 readable bytes at `p`; `loadu` needs no alignment.
        unsafe { _mm256_loadu_si256(p.cast()) }
    }

    /// Unaligned 16-byte load.
    ///
    /// # Safety
    /// `p` must be valid for reading 16 bytes (any alignment).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load128<T>(p: *const T) -> __m128i {
        // SAFETY: the caller guarantees 16 readable bytes at `p`; `loadu` needs no alignment.
        unsafe { _mm_loadu_si128(p.cast()) }
    }

    /// Unaligned 8-byte load into the low half of a vector.
    ///
    /// # Safety
    /// `p` must be valid for reading 8 bytes (any alignment).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load64<T>(p: *const T) -> __m128i {
        // SAFETY: the caller guarantees 8 readable bytes at `p`; `movq` needs no alignment.
        unsafe { _mm_loadl_epi64(p.cast()) }
    }

    /// Unaligned 32-byte store.
    ///
    /// # Safety
    /// `p` must be valid for writing 32 bytes (any alignment).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn store<T>(p: *mut T, v: __m256i) {
        // SAFETY: the caller guarantees 32 writable bytes at `p`; `storeu` needs no alignment.
        unsafe { _mm256_storeu_si256(p.cast(), v) }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn or4(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn hi_bits(v: __m256i) -> u64 {
        _mm256_movemask_epi8(v) as u32 as u64
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn hi_bits128(v: __m128i) -> u64 {
        _mm_movemask_epi8(v) as u32 as u64
    }

    /// The high bit of a u16 lane is set iff the unit is >= 0x80 (unsigned saturating add), so
    /// `movemask & ODD` marks those units at bit 2*i+1.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn non_ascii_u16(v: __m256i) -> __m256i {
        _mm256_adds_epu16(v, _mm256_set1_epi16(0x7F80))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn non_ascii_u16_128(v: __m128i) -> __m128i {
        _mm_adds_epu16(v, _mm_set1_epi16(0x7F80))
    }

    /// Surrogate lanes ((u & 0xF800) == 0xD800) become 0xFFFF, others 0.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn surrogates(v: __m256i) -> __m256i {
        _mm256_cmpeq_epi16(
            _mm256_and_si256(v, _mm256_set1_epi16(0xF800u16 as i16)),
            _mm256_set1_epi16(0xD800u16 as i16),
        )
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn surrogates128(v: __m128i) -> __m128i {
        _mm_cmpeq_epi16(
            _mm_and_si128(v, _mm_set1_epi16(0xF800u16 as i16)),
            _mm_set1_epi16(0xD800u16 as i16),
        )
    }

    /// Index of the first hit among the `n` elements of `E` (u8 or u16) at `p`, or `n`.
    /// `mask(v)` is the movemask of a vector's hits (element `j` hit: bit `j * size_of::<E>()`
    /// is the lowest bit set for it), `any(a, b, c, d)` tells whether four vectors have a hit,
    /// `mask128` is `mask` for a 128-bit vector (inputs of half a vector up to one vector, as
    /// two overlapping halves) and `small()` handles shorter inputs.
    ///
    /// # Safety
    /// `p` must be valid for reading `n` elements of `E`.
    #[inline(always)]
    unsafe fn scan<E>(
        p: *const E,
        n: usize,
        mask: impl Fn(__m256i) -> u64,
        any: impl Fn(__m256i, __m256i, __m256i, __m256i) -> bool,
        mask128: impl Fn(__m128i) -> u64,
        small: impl Fn() -> usize,
    ) -> usize {
        let size = core::mem::size_of::<E>();
        let (per, div) = (32 / size, size as u32);
        let at = |i: usize, m: u64| i + (m.trailing_zeros() / div) as usize;
        if n < per {
            if n < per / 2 {
                return small();
            }
            // SAFETY: per/2 <= n, so both halves (0..per/2 and n-per/2..n) are in bounds.
            let (a, b) = unsafe { (load128(p), load128(p.add(n - per / 2))) };
            let m = mask128(a);
            if m != 0 {
                return at(0, m);
            }
            let m = mask128(b);
            return if m != 0 { at(n - per / 2, m) } else { n };
        }
        // One unaligned vector, then go on from the first 32-byte-aligned element (re-checking
        // a few clean ones) so that the loads of the main loop never split cache lines.
        // SAFETY: n >= per.
        let m = mask(unsafe { load(p) });
        if m != 0 {
            return at(0, m);
        }
        let mut i = match to_boundary(p, 32) {
            0 => per,
            b => b,
        };
        while i + 4 * per <= n {
            // SAFETY: i + 4*per <= n: four full vectors in bounds.
            let (a, b, c, d) = unsafe {
                (
                    load(p.add(i)),
                    load(p.add(i + per)),
                    load(p.add(i + 2 * per)),
                    load(p.add(i + 3 * per)),
                )
            };
            if any(a, b, c, d) {
                let m = mask(a) | mask(b) << 32;
                if m != 0 {
                    return at(i, m);
                }
                return at(i + 2 * per, mask(c) | mask(d) << 32);
            }
            i += 4 * per;
        }
        if i + 2 * per <= n {
            // SAFETY: i + 2*per <= n: two full vectors in bounds.
            let (a, b) = unsafe { (load(p.add(i)), load(p.add(i + per))) };
            let m = mask(a) | mask(b) << 32;
            if m != 0 {
                return at(i, m);
            }
            i += 2 * per;
        }
        if i + per <= n {
            // SAFETY: i + per <= n.
            let m = mask(unsafe { load(p.add(i)) });
            if m != 0 {
                return at(i, m);
            }
            i += per;
        }
        if i < n {
            // Overlaps elements already known to be clean, so its first hit is the first one.
            // SAFETY: n >= per, so n-per..n is in bounds.
            let m = mask(unsafe { load(p.add(n - per)) });
            if m != 0 {
                return at(n - per, m);
            }
        }
        n
    }

    #[target_feature(enable = "avx2")]
    pub fn ascii_prefix(src: &[u8]) -> usize {
        // SAFETY: `src` is valid for `src.len()` bytes.
        unsafe {
            scan(
                src.as_ptr(),
                src.len(),
                |v| hi_bits(v),
                |a, b, c, d| _mm256_movemask_epi8(or4(a, b, c, d)) != 0,
                |v| hi_bits128(v),
                || small::ascii_prefix(src),
            )
        }
    }

    #[target_feature(enable = "avx2")]
    pub fn ascii_prefix_u16(src: &[u16]) -> usize {
        let hi = _mm256_set1_epi16(0xFF80u16 as i16);
        // SAFETY: `src` is valid for `src.len()` units.
        unsafe {
            scan(
                src.as_ptr(),
                src.len(),
                |v| hi_bits(non_ascii_u16(v)) & ODD,
                |a, b, c, d| _mm256_testz_si256(or4(a, b, c, d), hi) == 0,
                |v| hi_bits128(non_ascii_u16_128(v)) & ODD,
                || small::ascii_prefix_u16(src),
            )
        }
    }

    #[target_feature(enable = "avx2")]
    pub fn bmp_prefix(src: &[u16]) -> usize {
        // SAFETY: `src` is valid for `src.len()` units.
        unsafe {
            scan(
                src.as_ptr(),
                src.len(),
                |v| hi_bits(surrogates(v)),
                |a, b, c, d| {
                    _mm256_movemask_epi8(or4(
                        surrogates(a),
                        surrogates(b),
                        surrogates(c),
                        surrogates(d),
                    )) != 0
                },
                |v| hi_bits128(surrogates128(v)),
                || small::bmp_prefix(src),
            )
        }
    }

    #[target_feature(enable = "avx2")]
    pub fn max_u16(src: &[u16]) -> u16 {
        let n = src.len();
        let p = src.as_ptr();
        if n < V16 {
            if n < V16 / 2 {
                return small::max_u16(src);
            }
            // SAFETY: 8 <= n: units 0..8 and n-8..n are in bounds.
            let m = unsafe { _mm_max_epu16(load128(p), load128(p.add(n - 8))) };
            return hmax128(m);
        }
        let z = _mm256_setzero_si256();
        // One unaligned vector, then 32-byte-aligned loads (max is idempotent). SAFETY: n >= 16.
        let (mut m0, mut m1, mut m2, mut m3) = (unsafe { load(p) }, z, z, z);
        let mut i = match to_boundary(p, 32) {
            0 => V16,
            b => b,
        };
        while i + 4 * V16 <= n {
            // SAFETY: i + 64 <= n units: four full vectors.
            unsafe {
                m0 = _mm256_max_epu16(m0, load(p.add(i)));
                m1 = _mm256_max_epu16(m1, load(p.add(i + V16)));
                m2 = _mm256_max_epu16(m2, load(p.add(i + 2 * V16)));
                m3 = _mm256_max_epu16(m3, load(p.add(i + 3 * V16)));
            }
            i += 4 * V16;
        }
        while i + V16 <= n {
            // SAFETY: i + 16 <= n.
            m0 = _mm256_max_epu16(m0, unsafe { load(p.add(i)) });
            i += V16;
        }
        if i < n {
            // Max is idempotent, so re-reading units is harmless. SAFETY: n >= 16.
            m1 = _mm256_max_epu16(m1, unsafe { load(p.add(n - V16)) });
        }
        let m = _mm256_max_epu16(_mm256_max_epu16(m0, m1), _mm256_max_epu16(m2, m3));
        hmax128(_mm_max_epu16(
            _mm256_castsi256_si128(m),
            _mm256_extracti128_si256::<1>(m),
        ))
    }

    /// Largest u16 lane: `minpos` on the complement finds the smallest complement.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hmax128(m: __m128i) -> u16 {
        let inv = _mm_xor_si128(m, _mm_set1_epi32(-1));
        !(_mm_cvtsi128_si32(_mm_minpos_epu16(inv)) as u16)
    }

    #[target_feature(enable = "avx2")]
    pub fn widen_u8_i32(src: &[u8], add: i32, dst: &mut [i32]) {
        let n = src.len().min(dst.len());
        if n < 8 {
            return small::widen_u8(&src[..n], add, &mut dst[..n]);
        }
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        let addv = _mm256_set1_epi32(add);
        // 8 bytes -> 8 i32. SAFETY: `drive` passes i + 8 <= n <= both lengths.
        drive(n, 8, to_boundary(d, 32), |i| unsafe {
            store(
                d.add(i),
                _mm256_add_epi32(_mm256_cvtepu8_epi32(load64(s.add(i))), addv),
            );
        });
    }

    #[target_feature(enable = "avx2")]
    pub fn widen_u16_i32(src: &[u16], dst: &mut [i32]) {
        let n = src.len().min(dst.len());
        if n < 8 {
            return small::widen_u16(&src[..n], &mut dst[..n]);
        }
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        // 8 units -> 8 i32. SAFETY: `drive` passes i + 8 <= n <= both lengths.
        drive(n, 8, to_boundary(d, 32), |i| unsafe {
            store(d.add(i), _mm256_cvtepu16_epi32(load128(s.add(i))));
        });
    }

    #[target_feature(enable = "avx2")]
    pub fn widen_u8_u16(src: &[u8], add: i32, dst: &mut [u16]) {
        let n = src.len().min(dst.len());
        if n < 16 {
            return small::widen_u8(&src[..n], add, &mut dst[..n]);
        }
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        // (s + add) as u16 == s.wrapping_add(add as u16) in 16-bit lanes.
        let addv = _mm256_set1_epi16(add as i16);
        // 16 bytes -> 16 u16. SAFETY: `drive` passes i + 16 <= n <= both lengths.
        drive(n, 16, to_boundary(d, 32), |i| unsafe {
            store(
                d.add(i),
                _mm256_add_epi16(_mm256_cvtepu8_epi16(load128(s.add(i))), addv),
            );
        });
    }

    #[target_feature(enable = "avx2")]
    pub fn widen_u8_i64(src: &[u8], add: i32, dst: &mut [i64]) {
        let n = src.len().min(dst.len());
        if n < 8 {
            return small::widen_u8(&src[..n], add, &mut dst[..n]);
        }
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        // Zero-extended bytes + add in 64-bit lanes == (s as i32 + add) as i64.
        let addv = _mm256_set1_epi64x(add as i64);
        // 8 bytes -> 8 i64 (`vpmovzxbq` twice). SAFETY: `drive` passes i + 8 <= n <= both lengths.
        drive(n, 8, to_boundary(d, 32), |i| unsafe {
            let v = load64(s.add(i));
            store(d.add(i), _mm256_add_epi64(_mm256_cvtepu8_epi64(v), addv));
            store(
                d.add(i + 4),
                _mm256_add_epi64(_mm256_cvtepu8_epi64(_mm_srli_si128::<4>(v)), addv),
            );
        });
    }

    #[target_feature(enable = "avx2")]
    pub fn widen_u16_i64(src: &[u16], dst: &mut [i64]) {
        let n = src.len().min(dst.len());
        if n < 8 {
            return small::widen_u16(&src[..n], &mut dst[..n]);
        }
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        // 8 units -> 8 i64 (`vpmovzxwq` twice). SAFETY: `drive` passes i + 8 <= n <= both lengths.
        drive(n, 8, to_boundary(d, 32), |i| unsafe {
            let v = load128(s.add(i));
            store(d.add(i), _mm256_cvtepu16_epi64(v));
            store(d.add(i + 4), _mm256_cvtepu16_epi64(_mm_srli_si128::<8>(v)));
        });
    }

    /// A plain copy: libc's memcpy picks the widest vectors the CPU has (and `rep movsb` for
    /// large sizes); it measured faster than a 32-byte load/store loop here.
    #[target_feature(enable = "avx2")]
    pub fn widen_u16_u16(src: &[u16], dst: &mut [u16]) {
        let n = src.len().min(dst.len());
        dst[..n].copy_from_slice(&src[..n]);
    }

    // Plain loops: LLVM vectorizes them with the AVX2 feature set enabled here.

    #[target_feature(enable = "avx2")]
    pub fn widen_u8_i16(src: &[u8], add: i32, dst: &mut [i16]) {
        small::widen_u8(src, add, dst)
    }

    #[target_feature(enable = "avx2")]
    pub fn widen_u8_u8(src: &[u8], add: i32, dst: &mut [u8]) {
        small::widen_u8(src, add, dst)
    }

    #[target_feature(enable = "avx2")]
    pub fn widen_u8_f32(src: &[u8], add: i32, dst: &mut [f32]) {
        small::widen_u8(src, add, dst)
    }

    #[target_feature(enable = "avx2")]
    pub fn widen_u16_i16(src: &[u16], dst: &mut [i16]) {
        small::widen_u16(src, dst)
    }

    #[target_feature(enable = "avx2")]
    pub fn widen_u16_u8(src: &[u16], dst: &mut [u8]) {
        small::widen_u16(src, dst)
    }

    #[target_feature(enable = "avx2")]
    pub fn widen_u16_f32(src: &[u16], dst: &mut [f32]) {
        small::widen_u16(src, dst)
    }

    // Fills: LLVM leaves `slice::fill` of wide elements a scalar loop.

    #[target_feature(enable = "avx2")]
    pub fn fill_i32(dst: &mut [i32], v: i32) {
        let (n, d) = (dst.len(), dst.as_mut_ptr());
        if n < 8 {
            return dst.fill(v);
        }
        let x = _mm256_set1_epi32(v);
        // SAFETY: `drive` passes i + 8 <= n = dst.len().
        drive(n, 8, to_boundary(d, 32), |i| unsafe { store(d.add(i), x) });
    }

    #[target_feature(enable = "avx2")]
    pub fn fill_i64(dst: &mut [i64], v: i64) {
        let (n, d) = (dst.len(), dst.as_mut_ptr());
        if n < 4 {
            return dst.fill(v);
        }
        let x = _mm256_set1_epi64x(v);
        // SAFETY: `drive` passes i + 4 <= n = dst.len().
        drive(n, 4, to_boundary(d, 32), |i| unsafe { store(d.add(i), x) });
    }
}

/// UTF-8 and UTF-16: the classifiers of `super::utf` on two 32-byte vectors (a compare and a
/// movemask per class), and the decoders: 8 lanes per step, each lane's code point computed as if
/// a character started there, the lanes that do start one compacted with `vpermd` and the
/// `COMPACT8` table, stored with `vpmaskmovd`. The last step reads from a zeroed copy of the
/// tail, so no access goes past either slice.
mod utf {
    use super::super::utf::{
        scan16, scan8, Classes16, Classes8, Decoded, Utf16Counts, Utf8Counts, COMPACT8,
    };
    use core::arch::x86_64::*;

    /// # Safety
    /// `p` must be valid for reading 64 bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn classes8(p: *const u8) -> Classes8 {
        // SAFETY: the caller guarantees 64 readable bytes.
        let (a, b) = unsafe {
            (
                _mm256_loadu_si256(p.cast()),
                _mm256_loadu_si256(p.add(32).cast()),
            )
        };
        let mask = |x: __m256i, y: __m256i| {
            (_mm256_movemask_epi8(x) as u32 as u64)
                | ((_mm256_movemask_epi8(y) as u32 as u64) << 32)
        };
        let ge = |t: u8| {
            let t = _mm256_set1_epi8(t as i8);
            mask(
                _mm256_cmpeq_epi8(_mm256_max_epu8(a, t), a),
                _mm256_cmpeq_epi8(_mm256_max_epu8(b, t), b),
            )
        };
        let eq = |t: u8| {
            let t = _mm256_set1_epi8(t as i8);
            mask(_mm256_cmpeq_epi8(a, t), _mm256_cmpeq_epi8(b, t))
        };
        Classes8::collect(mask(a, b), ge, eq)
    }

    /// # Safety
    /// `p` must be valid for reading 64 bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn is_ascii(p: *const u8) -> bool {
        // SAFETY: the caller guarantees 64 readable bytes.
        let v = unsafe {
            _mm256_or_si256(
                _mm256_loadu_si256(p.cast()),
                _mm256_loadu_si256(p.add(32).cast()),
            )
        };
        _mm256_movemask_epi8(v) == 0
    }

    /// # Safety
    /// `p` must be valid for reading 32 units.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn classes16(p: *const u16) -> Classes16 {
        // SAFETY: the caller guarantees 32 readable units (64 bytes).
        let (a, b) = unsafe {
            (
                _mm256_loadu_si256(p.cast()),
                _mm256_loadu_si256(p.add(16).cast()),
            )
        };
        // 16-bit lane masks of a and b -> one bit per unit (packs keeps the sign of each word).
        let bits = |x: __m256i, y: __m256i| {
            let packed = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi16(x, y));
            _mm256_movemask_epi8(packed) as u32
        };
        let set = |v: u16| _mm256_set1_epi16(v as i16);
        let top = |x: __m256i| _mm256_and_si256(x, set(0xFC00));
        let zero = _mm256_setzero_si256();
        let none = |x: __m256i, m: u16| _mm256_cmpeq_epi16(_mm256_and_si256(x, set(m)), zero);
        Classes16 {
            hi: bits(
                _mm256_cmpeq_epi16(top(a), set(0xD800)),
                _mm256_cmpeq_epi16(top(b), set(0xD800)),
            ),
            lo: bits(
                _mm256_cmpeq_epi16(top(a), set(0xDC00)),
                _mm256_cmpeq_epi16(top(b), set(0xDC00)),
            ),
            ge80: !bits(none(a, 0xFF80), none(b, 0xFF80)),
            ge800: !bits(none(a, 0xF800), none(b, 0xF800)),
        }
    }

    #[target_feature(enable = "avx2")]
    pub fn utf8_scan(src: &[u8]) -> Option<Utf8Counts> {
        // SAFETY: `scan8` only passes pointers to 64 readable bytes.
        unsafe { scan8(src, |p| classes8(p), |p| is_ascii(p)) }
    }

    #[target_feature(enable = "avx2")]
    pub fn utf16_scan(src: &[u16]) -> Option<Utf16Counts> {
        // SAFETY: `scan16` only passes pointers to 32 readable units.
        unsafe { scan16(src, |p| classes16(p)) }
    }

    /// Stores the lanes of `cp` selected by the 8-bit `keep`, in order, at `d[w..]`, at most
    /// `cap - w` of them: `Ok(new w)`, or `Err((lane of the first start not stored, cap))`.
    ///
    /// # Safety
    /// `d` must be valid for writing `cap` u32.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn put(
        d: *mut u32,
        cap: usize,
        w: usize,
        keep: u32,
        cp: __m256i,
    ) -> Result<usize, (usize, usize)> {
        let cnt = keep.count_ones() as usize;
        // SAFETY: COMPACT8 rows are 8 u32 (32 bytes); keep < 256.
        let idx = unsafe { _mm256_loadu_si256(COMPACT8[keep as usize & 0xFF].as_ptr().cast()) };
        let packed = _mm256_permutevar8x32_epi32(cp, idx);
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let (take, res) = if w + cnt <= cap {
            (cnt, Ok(w + cnt))
        } else {
            let room = cap - w;
            let mut rest = keep;
            for _ in 0..room {
                rest &= rest - 1;
            }
            (room, Err((rest.trailing_zeros() as usize, cap)))
        };
        let m = _mm256_cmpgt_epi32(_mm256_set1_epi32(take as i32), lanes);
        // SAFETY: lanes w..w+take of `d` are in bounds (w + take <= cap); `vpmaskmovd` does not
        // access masked-off lanes.
        unsafe { _mm256_maskstore_epi32(d.add(w).cast(), m, packed) };
        res
    }

    /// Mask of the lanes of 32-bit compare results.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn lanes8(v: __m256i) -> u32 {
        _mm256_movemask_ps(_mm256_castsi256_ps(v)) as u32
    }

    #[target_feature(enable = "avx2")]
    pub fn utf8_decode(src: &[u8], dst: &mut [u32]) -> Decoded {
        let (n, cap) = (src.len(), dst.len());
        let d = dst.as_mut_ptr();
        let set = _mm256_set1_epi32;
        let (mut i, mut w) = (0usize, 0usize);
        let mut pad = [0u8; 16];
        while i < n {
            let avail = n - i;
            if avail >= 16 && w + 16 <= cap {
                // SAFETY: i + 16 <= n.
                let v = unsafe { _mm_loadu_si128(src[i..].as_ptr().cast()) };
                if _mm_movemask_epi8(v) == 0 {
                    // ASCII: every byte is a character.
                    // SAFETY: d[w..w + 16] is in bounds (w + 16 <= cap).
                    unsafe {
                        _mm256_storeu_si256(d.add(w).cast(), _mm256_cvtepu8_epi32(v));
                        _mm256_storeu_si256(
                            d.add(w + 8).cast(),
                            _mm256_cvtepu8_epi32(_mm_srli_si128::<8>(v)),
                        );
                    }
                    w += 16;
                    i += 16;
                    continue;
                }
            }
            let p = if avail >= 11 {
                src[i..].as_ptr()
            } else {
                pad.fill(0);
                pad[..avail].copy_from_slice(&src[i..]);
                pad.as_ptr()
            };
            // SAFETY: p has 11 readable bytes (8 lanes + 3 look-ahead): inside src, or the pad.
            let (b0, b1, b2, b3) = unsafe {
                let at = |k: usize| _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.add(k).cast()));
                (at(0), at(1), at(2), at(3))
            };
            let lanes = if avail >= 8 {
                0xFF
            } else {
                (1u32 << avail) - 1
            };
            let starts = !lanes8(_mm256_cmpeq_epi32(
                _mm256_and_si256(b0, set(0xC0)),
                set(0x80),
            )) & lanes;
            let m3f = set(0x3F);
            let c2 = _mm256_or_si256(
                _mm256_slli_epi32::<6>(_mm256_and_si256(b0, set(0x1F))),
                _mm256_and_si256(b1, m3f),
            );
            let x3 = _mm256_or_si256(_mm256_slli_epi32::<6>(c2), _mm256_and_si256(b2, m3f));
            let x4 = _mm256_or_si256(_mm256_slli_epi32::<6>(x3), _mm256_and_si256(b3, m3f));
            let cp = _mm256_blendv_epi8(b0, c2, _mm256_cmpgt_epi32(b0, set(0xBF)));
            let cp = _mm256_blendv_epi8(
                cp,
                _mm256_and_si256(x3, set(0xFFFF)),
                _mm256_cmpgt_epi32(b0, set(0xDF)),
            );
            let cp = _mm256_blendv_epi8(
                cp,
                _mm256_and_si256(x4, set(0x1F_FFFF)),
                _mm256_cmpgt_epi32(b0, set(0xEF)),
            );
            // SAFETY: `d` holds `cap` u32.
            match unsafe { put(d, cap, w, starts, cp) } {
                Ok(nw) => w = nw,
                Err((lane, nw)) => return (i + lane, nw),
            }
            i += 8;
        }
        (n, w)
    }

    #[target_feature(enable = "avx2")]
    pub fn utf16_decode(src: &[u16], dst: &mut [u32]) -> Decoded {
        let (n, cap) = (src.len(), dst.len());
        let d = dst.as_mut_ptr();
        let set = _mm256_set1_epi32;
        let (mut i, mut w) = (0usize, 0usize);
        let mut pad = [0u16; 16];
        while i < n {
            let avail = n - i;
            if avail >= 16 && w + 16 <= cap {
                // SAFETY: i + 16 <= n.
                let v = unsafe { _mm256_loadu_si256(src[i..].as_ptr().cast()) };
                let sur = _mm256_cmpeq_epi16(
                    _mm256_and_si256(v, _mm256_set1_epi16(0xF800u16 as i16)),
                    _mm256_set1_epi16(0xD800u16 as i16),
                );
                if _mm256_movemask_epi8(sur) == 0 {
                    // No surrogate: the units are the code points.
                    // SAFETY: d[w..w + 16] is in bounds (w + 16 <= cap).
                    unsafe {
                        _mm256_storeu_si256(
                            d.add(w).cast(),
                            _mm256_cvtepu16_epi32(_mm256_castsi256_si128(v)),
                        );
                        _mm256_storeu_si256(
                            d.add(w + 8).cast(),
                            _mm256_cvtepu16_epi32(_mm256_extracti128_si256::<1>(v)),
                        );
                    }
                    w += 16;
                    i += 16;
                    continue;
                }
            }
            let p = if avail >= 9 {
                src[i..].as_ptr()
            } else {
                pad.fill(0);
                pad[..avail].copy_from_slice(&src[i..]);
                pad.as_ptr()
            };
            // SAFETY: p has 9 readable units (8 lanes + 1 look-ahead): inside src, or the pad.
            let (u, next) = unsafe {
                (
                    _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast())),
                    _mm256_cvtepu16_epi32(_mm_loadu_si128(p.add(1).cast())),
                )
            };
            let lanes = if avail >= 8 {
                0xFF
            } else {
                (1u32 << avail) - 1
            };
            let top = _mm256_and_si256(u, set(0xFC00));
            let hi = _mm256_cmpeq_epi32(top, set(0xD800));
            let lo = lanes8(_mm256_cmpeq_epi32(top, set(0xDC00)));
            let pair = _mm256_sub_epi32(
                _mm256_add_epi32(_mm256_slli_epi32::<10>(u), next),
                set((0xD800 << 10) + 0xDC00 - 0x10000),
            );
            let cp = _mm256_blendv_epi8(u, pair, hi);
            // SAFETY: `d` holds `cap` u32.
            match unsafe { put(d, cap, w, !lo & lanes, cp) } {
                Ok(nw) => w = nw,
                Err((lane, nw)) => return (i + lane, nw),
            }
            i += 8;
        }
        (n, w)
    }
}
