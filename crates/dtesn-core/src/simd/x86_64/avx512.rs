//! AVX-512 path (512-bit vectors, mask registers), used when the CPU has AVX512F, AVX512BW and
//! AVX512VL (BW for the byte/word ops and masks, VL for the 128/256-bit masked loads).
//!
//! Explicit intrinsics: the four scans (256 bytes per iteration: four vectors OR-ed for one
//! test, then the exact index from the lane masks) and the widenings u8 -> i32 (+add,
//! `vpmovzxbd`), u16 -> i32 (`vpmovzxwd`), u8 -> u16 (+add, `vpmovzxbw`), u16 -> u16 (copy),
//! u8 -> i64 (+add, `vpmovzxbq`), u16 -> i64 (`vpmovzxwq`). The
//! other widenings are plain loops compiled with
//! `#[target_feature(enable = "avx512f,avx512bw,avx512vl")]`, which LLVM vectorizes with zmm
//! registers.
//!
//! Alignment: any start offset works (all accesses are unaligned or masked), but after one
//! unaligned first vector the loops go on from the first 64-byte-aligned element of the input
//! (scans) or output (widenings), re-doing a few elements: with 64-byte vectors every unaligned
//! access splits two cache lines, which costs up to half the throughput.
//!
//! Tails and short inputs: masked loads and stores covering exactly the remaining elements (the
//! masked-off lanes are never accessed, so no read or write goes past the slices), so there is
//! no scalar code at all.

crate::simd::table::kernels!("avx512");

/// Whether this CPU can run the path. `available()` hands out `KERNELS` only when this is true.
pub fn is_available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
}

mod imp {
    use crate::simd::generic::drive::{drive_tail, to_boundary};
    use core::arch::x86_64::*;

    const V8: usize = 64; // bytes per vector
    const V16: usize = 32; // u16 units per vector

    /// The low `r` bits set, `r < 64`.
    #[inline(always)]
    fn low64(r: usize) -> u64 {
        debug_assert!(r < 64);
        (1u64 << r) - 1
    }

    /// The low `r` bits set, `r < 32`.
    #[inline(always)]
    fn low32(r: usize) -> u32 {
        debug_assert!(r < 32);
        (1u32 << r) - 1
    }

    /// The low `r` bits set, `r < 16`.
    #[inline(always)]
    fn low16(r: usize) -> u16 {
        debug_assert!(r < 16);
        (1u16 << r) - 1
    }

    /// Unaligned 64-byte load.
    ///
    /// # Safety
    /// `p` must be valid for reading 64 bytes (any alignment).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn load<T>(p: *const T) -> __m512i {
        // SAFETY: the caller guarantees 64 readable bytes at `p`; `loadu` needs no alignment.
        unsafe { _mm512_loadu_si512(p.cast()) }
    }

    /// Unaligned 64-byte store.
    ///
    /// # Safety
    /// `p` must be valid for writing 64 bytes (any alignment).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn store<T>(p: *mut T, v: __m512i) {
        // SAFETY: the caller guarantees 64 writable bytes at `p`; `storeu` needs no alignment.
        unsafe { _mm512_storeu_si512(p.cast(), v) }
    }

    /// Loads bytes `p[0..r]`, `r < 64`, zeroing the other lanes.
    ///
    /// # Safety
    /// `p` must be valid for reading `r` bytes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn load_partial_u8(p: *const u8, r: usize) -> __m512i {
        // SAFETY: lanes r.. are masked off and masked loads never access masked-off lanes (no
        // read, no fault); lanes 0..r are readable by the caller's guarantee.
        unsafe { _mm512_maskz_loadu_epi8(low64(r), p.cast()) }
    }

    /// Loads units `p[0..r]`, `r < 32`, zeroing the other lanes.
    ///
    /// # Safety
    /// `p` must be valid for reading `r` u16 units.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn load_partial_u16(p: *const u16, r: usize) -> __m512i {
        // SAFETY: as in `load_partial_u8`: only lanes 0..r are accessed, and they are readable.
        unsafe { _mm512_maskz_loadu_epi16(low32(r), p.cast()) }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn or4(a: __m512i, b: __m512i, c: __m512i, d: __m512i) -> __m512i {
        _mm512_or_si512(_mm512_or_si512(a, b), _mm512_or_si512(c, d))
    }

    /// Scan with `hits(a)` (lane mask of one vector) and `any(a, b)` (whether two vectors have a
    /// hit); `per` lanes of `E` per vector and `load_partial` for the `< per` element tail.
    ///
    /// # Safety
    /// `p` must be valid for reading `n` elements.
    #[inline(always)]
    unsafe fn scan<E>(
        p: *const E,
        n: usize,
        per: usize,
        hits: impl Fn(__m512i) -> u64,
        any: impl Fn(__m512i, __m512i, __m512i, __m512i) -> bool,
        load_partial: impl Fn(*const E, usize) -> __m512i,
    ) -> usize {
        let mut i = 0;
        if n >= per {
            // One unaligned vector, then go on from the first 64-byte-aligned element
            // (re-checking a few clean ones) so that the main loop's loads never split cache
            // lines. SAFETY: n >= per.
            let m = hits(unsafe { load(p) });
            if m != 0 {
                return m.trailing_zeros() as usize;
            }
            i = match to_boundary(p, 64) {
                0 => per,
                b => b,
            };
        }
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
                for (k, v) in [a, b, c, d].into_iter().enumerate() {
                    let m = hits(v);
                    if m != 0 {
                        return i + k * per + m.trailing_zeros() as usize;
                    }
                }
            }
            i += 4 * per;
        }
        while i + per <= n {
            // SAFETY: i + per <= n.
            let m = hits(unsafe { load(p.add(i)) });
            if m != 0 {
                return i + m.trailing_zeros() as usize;
            }
            i += per;
        }
        if i < n {
            // Zeroed lanes are never hits (0 is ASCII, not a surrogate).
            let m = hits(load_partial(p.wrapping_add(i), n - i));
            if m != 0 {
                return i + m.trailing_zeros() as usize;
            }
        }
        n
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub fn ascii_prefix(src: &[u8]) -> usize {
        // SAFETY: `src` is valid for `src.len()` bytes; `scan` passes `load_partial` a pointer
        // and count inside it.
        unsafe {
            scan(
                src.as_ptr(),
                src.len(),
                V8,
                |v| _mm512_movepi8_mask(v),
                |a, b, c, d| _mm512_movepi8_mask(or4(a, b, c, d)) != 0,
                |p, r| load_partial_u8(p, r),
            )
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub fn ascii_prefix_u16(src: &[u16]) -> usize {
        let hi = _mm512_set1_epi16(0xFF80u16 as i16);
        // SAFETY: `src` is valid for `src.len()` units; `scan` passes `load_partial` a pointer
        // and count inside it.
        unsafe {
            scan(
                src.as_ptr(),
                src.len(),
                V16,
                |v| _mm512_test_epi16_mask(v, hi) as u64,
                |a, b, c, d| _mm512_test_epi16_mask(or4(a, b, c, d), hi) != 0,
                |p, r| load_partial_u16(p, r),
            )
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub fn bmp_prefix(src: &[u16]) -> usize {
        let (f8, d8) = (
            _mm512_set1_epi16(0xF800u16 as i16),
            _mm512_set1_epi16(0xD800u16 as i16),
        );
        let sur = |v: __m512i| _mm512_cmpeq_epi16_mask(_mm512_and_si512(v, f8), d8);
        // SAFETY: `src` is valid for `src.len()` units; `scan` passes `load_partial` a pointer
        // and count inside it.
        unsafe {
            scan(
                src.as_ptr(),
                src.len(),
                V16,
                |v| sur(v) as u64,
                |a, b, c, d| (sur(a) | sur(b) | sur(c) | sur(d)) != 0,
                |p, r| load_partial_u16(p, r),
            )
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub fn max_u16(src: &[u16]) -> u16 {
        let n = src.len();
        let p = src.as_ptr();
        let (mut m0, mut m1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
        let mut i = 0;
        if n >= V16 {
            // One unaligned vector, then 64-byte-aligned loads (max is idempotent).
            // SAFETY: n >= 32.
            m0 = unsafe { load(p) };
            i = match to_boundary(p, 64) {
                0 => V16,
                b => b,
            };
        }
        while i + 2 * V16 <= n {
            // SAFETY: i + 64 <= n units: two full vectors.
            unsafe {
                m0 = _mm512_max_epu16(m0, load(p.add(i)));
                m1 = _mm512_max_epu16(m1, load(p.add(i + V16)));
            }
            i += 2 * V16;
        }
        if i + V16 <= n {
            // SAFETY: i + 32 <= n.
            m0 = _mm512_max_epu16(m0, unsafe { load(p.add(i)) });
            i += V16;
        }
        if i < n {
            // Zeroed lanes never raise an unsigned max. SAFETY: units i..n are in bounds.
            m1 = _mm512_max_epu16(m1, unsafe { load_partial_u16(p.add(i), n - i) });
        }
        let m = _mm512_max_epu16(m0, m1);
        let m = _mm256_max_epu16(_mm512_castsi512_si256(m), _mm512_extracti64x4_epi64::<1>(m));
        let m = _mm_max_epu16(_mm256_castsi256_si128(m), _mm256_extracti128_si256::<1>(m));
        // Largest lane: `minpos` on the complement finds the smallest complement.
        !(_mm_cvtsi128_si32(_mm_minpos_epu16(_mm_xor_si128(m, _mm_set1_epi32(-1)))) as u16)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub fn widen_u8_i32(src: &[u8], add: i32, dst: &mut [i32]) {
        let n = src.len().min(dst.len());
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        let addv = _mm512_set1_epi32(add);
        drive_tail(
            n,
            16,
            to_boundary(d, 64),
            // 16 bytes -> 16 i32. SAFETY: `drive_tail` passes i + 16 <= n <= both lengths.
            |i| unsafe {
                let v = _mm512_cvtepu8_epi32(_mm_loadu_si128(s.add(i).cast()));
                store(d.add(i), _mm512_add_epi32(v, addv));
            },
            // SAFETY: masked-off lanes are never accessed; the enabled lanes are src[i..n] and
            // dst[i..n] (`drive_tail` passes i + r == n), in bounds since n <= both lengths.
            |i, r| unsafe {
                let k = low16(r);
                let v = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, s.add(i).cast()));
                _mm512_mask_storeu_epi32(d.add(i), k, _mm512_add_epi32(v, addv));
            },
        );
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub fn widen_u16_i32(src: &[u16], dst: &mut [i32]) {
        let n = src.len().min(dst.len());
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        drive_tail(
            n,
            16,
            to_boundary(d, 64),
            // 16 units -> 16 i32. SAFETY: `drive_tail` passes i + 16 <= n <= both lengths.
            |i| unsafe {
                store(
                    d.add(i),
                    _mm512_cvtepu16_epi32(_mm256_loadu_si256(s.add(i).cast())),
                )
            },
            // SAFETY: masked-off lanes are never accessed; the enabled lanes are src[i..n] and
            // dst[i..n] (`drive_tail` passes i + r == n), in bounds since n <= both lengths.
            |i, r| unsafe {
                let k = low16(r);
                let v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, s.add(i).cast()));
                _mm512_mask_storeu_epi32(d.add(i), k, v);
            },
        );
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub fn widen_u8_u16(src: &[u8], add: i32, dst: &mut [u16]) {
        let n = src.len().min(dst.len());
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        // (s + add) as u16 == s.wrapping_add(add as u16) in 16-bit lanes.
        let addv = _mm512_set1_epi16(add as i16);
        drive_tail(
            n,
            32,
            to_boundary(d, 64),
            // 32 bytes -> 32 u16. SAFETY: `drive_tail` passes i + 32 <= n <= both lengths.
            |i| unsafe {
                let v = _mm512_cvtepu8_epi16(_mm256_loadu_si256(s.add(i).cast()));
                store(d.add(i), _mm512_add_epi16(v, addv));
            },
            // SAFETY: masked-off lanes are never accessed; the enabled lanes are src[i..n] and
            // dst[i..n] (`drive_tail` passes i + r == n), in bounds since n <= both lengths.
            |i, r| unsafe {
                let k = low32(r);
                let v = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(k, s.add(i).cast()));
                _mm512_mask_storeu_epi16(d.add(i).cast(), k, _mm512_add_epi16(v, addv));
            },
        );
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub fn widen_u8_i64(src: &[u8], add: i32, dst: &mut [i64]) {
        let n = src.len().min(dst.len());
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        // Zero-extended bytes + add in 64-bit lanes == (s as i32 + add) as i64.
        let addv = _mm512_set1_epi64(add as i64);
        drive_tail(
            n,
            8,
            to_boundary(d, 64),
            // 8 bytes -> 8 i64 (`vpmovzxbq`). SAFETY: `drive_tail` passes i + 8 <= n <= both lengths.
            |i| unsafe {
                let v = _mm512_cvtepu8_epi64(_mm_loadl_epi64(s.add(i).cast()));
                store(d.add(i), _mm512_add_epi64(v, addv));
            },
            // SAFETY: masked-off lanes are never accessed; the enabled lanes are src[i..n] and
            // dst[i..n] (`drive_tail` passes i + r == n, r < 8), in bounds since n <= both lengths.
            |i, r| unsafe {
                let k = low16(r);
                let v = _mm512_cvtepu8_epi64(_mm_maskz_loadu_epi8(k, s.add(i).cast()));
                _mm512_mask_storeu_epi64(d.add(i), k as u8, _mm512_add_epi64(v, addv));
            },
        );
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub fn widen_u16_i64(src: &[u16], dst: &mut [i64]) {
        let n = src.len().min(dst.len());
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        drive_tail(
            n,
            8,
            to_boundary(d, 64),
            // 8 units -> 8 i64 (`vpmovzxwq`). SAFETY: `drive_tail` passes i + 8 <= n <= both lengths.
            |i| unsafe {
                store(
                    d.add(i),
                    _mm512_cvtepu16_epi64(_mm_loadu_si128(s.add(i).cast())),
                )
            },
            // SAFETY: masked-off lanes are never accessed; the enabled lanes are src[i..n] and
            // dst[i..n] (`drive_tail` passes i + r == n, r < 8), in bounds since n <= both lengths.
            |i, r| unsafe {
                let k = low16(r) as u8;
                let v = _mm512_cvtepu16_epi64(_mm_maskz_loadu_epi16(k, s.add(i).cast()));
                _mm512_mask_storeu_epi64(d.add(i), k, v);
            },
        );
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub fn widen_u16_u16(src: &[u16], dst: &mut [u16]) {
        let n = src.len().min(dst.len());
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        drive_tail(
            n,
            V16,
            to_boundary(d, 64),
            // SAFETY: `drive_tail` passes i + 32 <= n <= both lengths: 64 bytes at s+i and d+i.
            |i| unsafe { store(d.add(i), load(s.add(i))) },
            // SAFETY: masked-off lanes are never accessed; the enabled lanes are src[i..n] and
            // dst[i..n] (`drive_tail` passes i + r == n), in bounds since n <= both lengths.
            |i, r| unsafe {
                let k = low32(r);
                _mm512_mask_storeu_epi16(
                    d.add(i).cast(),
                    k,
                    _mm512_maskz_loadu_epi16(k, s.add(i).cast()),
                );
            },
        );
    }

    // Plain loops: LLVM vectorizes them with the AVX-512 feature set enabled here.
    crate::simd::table::plain_widenings!("avx512f,avx512bw,avx512vl");

    // Fills: LLVM leaves `slice::fill` of wide elements a scalar loop.

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub fn fill_i32(dst: &mut [i32], v: i32) {
        let (n, d) = (dst.len(), dst.as_mut_ptr());
        let x = _mm512_set1_epi32(v);
        drive_tail(
            n,
            16,
            to_boundary(d, 64),
            // SAFETY: `drive_tail` passes i + 16 <= n = dst.len().
            |i| unsafe { store(d.add(i), x) },
            // SAFETY: only the enabled lanes, dst[i..n] (`drive_tail` passes i + r == n), are written.
            |i, r| unsafe { _mm512_mask_storeu_epi32(d.add(i), low16(r), x) },
        );
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub fn fill_i64(dst: &mut [i64], v: i64) {
        let (n, d) = (dst.len(), dst.as_mut_ptr());
        let x = _mm512_set1_epi64(v);
        drive_tail(
            n,
            8,
            to_boundary(d, 64),
            // SAFETY: `drive_tail` passes i + 8 <= n = dst.len().
            |i| unsafe { store(d.add(i), x) },
            // SAFETY: only the enabled lanes, dst[i..n] (`drive_tail` passes i + r == n, r < 8), are written.
            |i, r| unsafe { _mm512_mask_storeu_epi64(d.add(i), low16(r) as u8, x) },
        );
    }
}

/// UTF-8 and UTF-16: the classifiers of `super::utf` on 64-byte vectors (one compare per class
/// straight into a mask register), and the decoders: 16 lanes per step, each lane's code point
/// computed as if a character started there (from the byte or unit and the 1-3 after it), then
/// the lanes that do start one compacted with `vpcompressd` and stored with a lane mask. Tails
/// use masked loads, so no access goes past either slice.
mod utf {
    use crate::simd::utf::{
        scan16_with_tail, scan8_with_tail, Classes16, Classes8, Decoded, Utf16Counts, Utf8Counts,
    };
    use core::arch::x86_64::*;

    /// # Safety
    /// `p` must be valid for reading 64 bytes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn classes8(p: *const u8) -> Classes8 {
        // SAFETY: the caller guarantees 64 readable bytes.
        classes8_of(unsafe { _mm512_loadu_si512(p.cast()) })
    }

    /// The classes of `rest` (< 64 bytes) zero-padded: a masked load, no copy.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn classes8_tail(rest: &[u8]) -> Classes8 {
        let k = (1u64 << rest.len().min(63)) - 1;
        // SAFETY: only the lanes below rest.len() are accessed (masked-off lanes are not), and
        // those are `rest`.
        classes8_of(unsafe { _mm512_maskz_loadu_epi8(k, rest.as_ptr().cast()) })
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn classes8_of(v: __m512i) -> Classes8 {
        let ge = |t: u8| _mm512_cmpge_epu8_mask(v, _mm512_set1_epi8(t as i8));
        let eq = |t: u8| _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(t as i8));
        Classes8::collect(_mm512_movepi8_mask(v), ge, eq)
    }

    /// # Safety
    /// `p` must be valid for reading 64 bytes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn is_ascii(p: *const u8) -> bool {
        // SAFETY: the caller guarantees 64 readable bytes.
        _mm512_movepi8_mask(unsafe { _mm512_loadu_si512(p.cast()) }) == 0
    }

    /// # Safety
    /// `p` must be valid for reading 32 units.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn classes16(p: *const u16) -> Classes16 {
        // SAFETY: the caller guarantees 32 readable units (64 bytes).
        classes16_of(unsafe { _mm512_loadu_si512(p.cast()) })
    }

    /// The classes of `rest` (< 32 units) zero-padded: a masked load, no copy.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn classes16_tail(rest: &[u16]) -> Classes16 {
        let k = (1u32 << rest.len().min(31)) - 1;
        // SAFETY: only the lanes below rest.len() are accessed, and those are `rest`.
        classes16_of(unsafe { _mm512_maskz_loadu_epi16(k, rest.as_ptr().cast()) })
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn classes16_of(v: __m512i) -> Classes16 {
        let top = _mm512_and_si512(v, _mm512_set1_epi16(0xFC00u16 as i16));
        Classes16 {
            hi: _mm512_cmpeq_epi16_mask(top, _mm512_set1_epi16(0xD800u16 as i16)),
            lo: _mm512_cmpeq_epi16_mask(top, _mm512_set1_epi16(0xDC00u16 as i16)),
            ge80: _mm512_test_epi16_mask(v, _mm512_set1_epi16(0xFF80u16 as i16)),
            ge800: _mm512_test_epi16_mask(v, _mm512_set1_epi16(0xF800u16 as i16)),
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub fn utf8_scan(src: &[u8]) -> Option<Utf8Counts> {
        // SAFETY: `scan8_with_tail` only passes pointers to 64 readable bytes.
        unsafe { scan8_with_tail(src, |p| classes8(p), |p| is_ascii(p), |r| classes8_tail(r)) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub fn utf16_scan(src: &[u16]) -> Option<Utf16Counts> {
        // SAFETY: `scan16_with_tail` only passes pointers to 32 readable units.
        unsafe { scan16_with_tail(src, |p| classes16(p), |r| classes16_tail(r)) }
    }

    /// The low `r` bits, `r <= 16`.
    #[inline(always)]
    fn low16(r: usize) -> u16 {
        if r >= 16 {
            u16::MAX
        } else {
            (1u16 << r) - 1
        }
    }

    /// Stores the lanes of `cp` selected by `keep` (a mask of lanes with a character start), in
    /// order, at `d[w..]`, at most `cap - w` of them. `Ok(new w)`, or `Err((lane of the first
    /// start not stored, new w))` when `dst` filled up.
    ///
    /// # Safety
    /// `d` must be valid for writing `cap` u32.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn put(
        d: *mut u32,
        cap: usize,
        w: usize,
        keep: u16,
        cp: __m512i,
    ) -> Result<usize, (usize, usize)> {
        let cnt = keep.count_ones() as usize;
        let packed = _mm512_maskz_compress_epi32(keep, cp);
        if w + cnt <= cap {
            // SAFETY: lanes w..w+cnt of `d` are in bounds (w + cnt <= cap); masked-off lanes are
            // never accessed.
            unsafe { _mm512_mask_storeu_epi32(d.add(w).cast(), low16(cnt), packed) };
            return Ok(w + cnt);
        }
        let room = cap - w;
        let mut rest = keep;
        for _ in 0..room {
            rest &= rest - 1;
        }
        // SAFETY: lanes w..cap of `d` are in bounds.
        unsafe { _mm512_mask_storeu_epi32(d.add(w).cast(), low16(room), packed) };
        Err((rest.trailing_zeros() as usize, cap))
    }

    /// Bytes `p[k..k + 16]` zero-extended to 16 u32 lanes, only the first `avail - k` of them read.
    ///
    /// # Safety
    /// `p` must be valid for reading `avail` bytes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn bytes_at(p: *const u8, k: usize, avail: usize) -> __m512i {
        let v = if avail >= k + 16 {
            // SAFETY: k + 16 <= avail.
            unsafe { _mm_loadu_si128(p.add(k).cast()) }
        } else {
            // SAFETY: only lanes below avail - k are accessed (masked-off lanes are not), and
            // those lie inside the `avail` readable bytes; the address itself is never
            // dereferenced beyond them.
            unsafe {
                _mm_maskz_loadu_epi8(low16(avail.saturating_sub(k)), p.wrapping_add(k).cast())
            }
        };
        _mm512_cvtepu8_epi32(v)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub fn utf8_decode(src: &[u8], dst: &mut [u32]) -> Decoded {
        let (n, cap) = (src.len(), dst.len());
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        let set = _mm512_set1_epi32;
        let (mut i, mut w) = (0usize, 0usize);
        while i < n {
            let avail = n - i;
            // SAFETY: bytes i..n are readable; `bytes_at` reads no more than `avail` from s+i.
            let b0 = unsafe { bytes_at(s.add(i), 0, avail) };
            if avail >= 16 && w + 16 <= cap && _mm512_cmpge_epu32_mask(b0, set(0x80)) == 0 {
                // ASCII: every byte is a character.
                // SAFETY: d[w..w + 16] is in bounds (w + 16 <= cap).
                unsafe { _mm512_storeu_si512(d.add(w).cast(), b0) };
                w += 16;
                i += 16;
                continue;
            }
            // SAFETY: as above.
            let (b1, b2, b3) = unsafe {
                let p = s.add(i);
                (
                    bytes_at(p, 1, avail),
                    bytes_at(p, 2, avail),
                    bytes_at(p, 3, avail),
                )
            };
            let starts =
                _mm512_cmpneq_epi32_mask(_mm512_and_si512(b0, set(0xC0)), set(0x80)) & low16(avail);
            let m3f = set(0x3F);
            let c2 = _mm512_or_si512(
                _mm512_slli_epi32::<6>(_mm512_and_si512(b0, set(0x1F))),
                _mm512_and_si512(b1, m3f),
            );
            let x3 = _mm512_or_si512(_mm512_slli_epi32::<6>(c2), _mm512_and_si512(b2, m3f));
            let x4 = _mm512_or_si512(_mm512_slli_epi32::<6>(x3), _mm512_and_si512(b3, m3f));
            let cp = _mm512_mask_mov_epi32(b0, _mm512_cmpge_epu32_mask(b0, set(0xC0)), c2);
            let cp =
                _mm512_mask_and_epi32(cp, _mm512_cmpge_epu32_mask(b0, set(0xE0)), x3, set(0xFFFF));
            let cp = _mm512_mask_and_epi32(
                cp,
                _mm512_cmpge_epu32_mask(b0, set(0xF0)),
                x4,
                set(0x1F_FFFF),
            );
            // SAFETY: `d` holds `cap` u32.
            match unsafe { put(d, cap, w, starts, cp) } {
                Ok(nw) => w = nw,
                Err((lane, nw)) => return (i + lane, nw),
            }
            i += 16;
        }
        (n, w)
    }

    /// Units `p[k..k + 16]` zero-extended to 16 u32 lanes, only the first `avail - k` read.
    ///
    /// # Safety
    /// `p` must be valid for reading `avail` units.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn units_at(p: *const u16, k: usize, avail: usize) -> __m512i {
        let v = if avail >= k + 16 {
            // SAFETY: k + 16 <= avail.
            unsafe { _mm256_loadu_si256(p.add(k).cast()) }
        } else {
            // SAFETY: as in `bytes_at`: only lanes below avail - k are accessed.
            unsafe {
                _mm256_maskz_loadu_epi16(low16(avail.saturating_sub(k)), p.wrapping_add(k).cast())
            }
        };
        _mm512_cvtepu16_epi32(v)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub fn utf16_decode(src: &[u16], dst: &mut [u32]) -> Decoded {
        let (n, cap) = (src.len(), dst.len());
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        let set = _mm512_set1_epi32;
        let (mut i, mut w) = (0usize, 0usize);
        while i < n {
            let avail = n - i;
            // SAFETY: units i..n are readable; `units_at` reads no more than `avail` from s+i.
            let u = unsafe { units_at(s.add(i), 0, avail) };
            let top = _mm512_and_si512(u, set(0xFC00));
            let hi = _mm512_cmpeq_epi32_mask(top, set(0xD800));
            let lo = _mm512_cmpeq_epi32_mask(top, set(0xDC00));
            if (hi | lo) == 0 && avail >= 16 && w + 16 <= cap {
                // No surrogate: the units are the code points.
                // SAFETY: d[w..w + 16] is in bounds (w + 16 <= cap).
                unsafe { _mm512_storeu_si512(d.add(w).cast(), u) };
                w += 16;
                i += 16;
                continue;
            }
            // SAFETY: as above.
            let next = unsafe { units_at(s.add(i), 1, avail) };
            let pair = _mm512_sub_epi32(
                _mm512_add_epi32(_mm512_slli_epi32::<10>(u), next),
                set((0xD800 << 10) + 0xDC00 - 0x10000),
            );
            let cp = _mm512_mask_mov_epi32(u, hi, pair);
            // A low surrogate in lane 0 belongs to a pair that ended the previous step.
            let keep = !lo & low16(avail);
            // SAFETY: `d` holds `cap` u32.
            match unsafe { put(d, cap, w, keep, cp) } {
                Ok(nw) => w = nw,
                Err((lane, nw)) => return (i + lane, nw),
            }
            i += 16;
        }
        (n, w)
    }
}
