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

use crate::simd::vector::{BitMask, LaneMask, Vector};
use core::arch::x86_64::*;

crate::simd::table::kernels!("avx2");

/// Whether this CPU can run the path. `available()` hands out `KERNELS` only when this is true.
pub fn is_available() -> bool {
    is_x86_feature_detected!("avx2")
}

/// The AVX2 register for the generic kernels. The contract of `Vector` (see `simd::vector`)
/// holds whenever the caller has AVX2 enabled, which every method below needs and nothing else.
impl Vector for __m256i {
    const BYTES: usize = 32;
    const REALIGN: bool = true;
    type Mask = BitMask;

    #[inline(always)]
    unsafe fn load_unaligned(p: *const u8) -> Self {
        // SAFETY: the caller guarantees 32 readable bytes at `p`; `loadu` needs no alignment.
        unsafe { _mm256_loadu_si256(p.cast()) }
    }
    #[inline(always)]
    unsafe fn store_unaligned(self, p: *mut u8) {
        // SAFETY: the caller guarantees 32 writable bytes at `p`; `storeu` needs no alignment.
        unsafe { _mm256_storeu_si256(p.cast(), self) }
    }
    #[inline(always)]
    unsafe fn or(self, other: Self) -> Self {
        // SAFETY: the caller has AVX2 enabled (the trait's contract).
        unsafe { _mm256_or_si256(self, other) }
    }
    #[inline(always)]
    unsafe fn movemask(self) -> BitMask {
        // SAFETY: as in `or`.
        LaneMask(unsafe { _mm256_movemask_epi8(self) } as u32 as u64)
    }
    #[inline(always)]
    unsafe fn non_ascii8(self) -> BitMask {
        // SAFETY: as in `or`. The sign bit of a byte is set iff it is >= 0x80.
        unsafe { self.movemask() }
    }
    #[inline(always)]
    unsafe fn non_ascii16(self) -> BitMask {
        // The high bit of a u16 lane is set iff the unit is >= 0x80 (unsigned saturating add), so
        // the odd bits of the movemask mark those units.
        // SAFETY: as in `or`.
        let m = unsafe { _mm256_movemask_epi8(_mm256_adds_epu16(self, _mm256_set1_epi16(0x7F80))) };
        LaneMask((m as u32 & 0xAAAA_AAAA) as u64)
    }
    #[inline(always)]
    unsafe fn surrogates16(self) -> Self {
        // SAFETY: as in `or`.
        unsafe {
            _mm256_cmpeq_epi16(
                _mm256_and_si256(self, _mm256_set1_epi16(0xF800u16 as i16)),
                _mm256_set1_epi16(0xD800u16 as i16),
            )
        }
    }
    #[inline(always)]
    unsafe fn max16_init() -> Self {
        // SAFETY: as in `or`.
        unsafe { _mm256_setzero_si256() }
    }
    #[inline(always)]
    unsafe fn max16_acc(self, units: Self) -> Self {
        // SAFETY: as in `or`.
        unsafe { _mm256_max_epu16(self, units) }
    }
    #[inline(always)]
    unsafe fn max16_merge(self, other: Self) -> Self {
        // SAFETY: as in `or`.
        unsafe { _mm256_max_epu16(self, other) }
    }
    #[inline(always)]
    unsafe fn max16_reduce(self) -> u16 {
        // Largest lane: `minpos` on the complement finds the smallest complement.
        // SAFETY: as in `or` (AVX2 implies SSE4.1's `minpos`).
        unsafe {
            let m = _mm_max_epu16(
                _mm256_castsi256_si128(self),
                _mm256_extracti128_si256::<1>(self),
            );
            let inv = _mm_xor_si128(m, _mm_set1_epi32(-1));
            !(_mm_cvtsi128_si32(_mm_minpos_epu16(inv)) as u16)
        }
    }
}

mod imp {
    use crate::simd::generic::drive::{drive, to_boundary};
    use crate::simd::generic::{scan, small};
    use core::arch::x86_64::*;

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

    // Inputs below one 32-byte vector take the 128-bit path (two overlapping halves from 16
    // bytes on, SWAR below).

    #[target_feature(enable = "avx2")]
    pub fn ascii_prefix(src: &[u8]) -> usize {
        // SAFETY: AVX2 (and so SSE2) is enabled here.
        unsafe {
            scan::ascii_prefix::<__m256i>(src, |s| {
                scan::ascii_prefix::<__m128i>(s, small::ascii_prefix)
            })
        }
    }

    #[target_feature(enable = "avx2")]
    pub fn ascii_prefix_u16(src: &[u16]) -> usize {
        // SAFETY: AVX2 (and so SSE2) is enabled here.
        unsafe {
            scan::ascii_prefix_u16::<__m256i>(src, |s| {
                scan::ascii_prefix_u16::<__m128i>(s, small::ascii_prefix_u16)
            })
        }
    }

    #[target_feature(enable = "avx2")]
    pub fn bmp_prefix(src: &[u16]) -> usize {
        // SAFETY: AVX2 (and so SSE2) is enabled here.
        unsafe {
            scan::bmp_prefix::<__m256i>(src, |s| scan::bmp_prefix::<__m128i>(s, small::bmp_prefix))
        }
    }

    #[target_feature(enable = "avx2")]
    pub fn max_u16(src: &[u16]) -> u16 {
        // SAFETY: AVX2 (and so SSE2) is enabled here.
        unsafe { scan::max_u16::<__m256i>(src, |s| scan::max_u16::<__m128i>(s, small::max_u16)) }
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
    crate::simd::table::plain_widenings!("avx2");

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
    use crate::simd::utf::{
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
