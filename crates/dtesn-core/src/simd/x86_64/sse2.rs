//! SSE2 path (128-bit vectors). SSE2 is part of the x86_64 baseline, but the path is still gated
//! on `is_x86_feature_detected!("sse2")` like the others so the pattern is uniform.
//!
//! Everything is the generic code over `__m128i` (the `Vector` and `Vector128` impls below):
//! the scans, the widenings u8 -> i32 (+add), u16 -> i32, u8 -> u16 (+add), u8 -> i64 (+add),
//! u16 -> i64 (unpacks with zero), the fills, and the UTF-8 / UTF-16 block classifiers and mask
//! decoders. u16 -> u16 is `copy_from_slice` (libc memcpy measured faster than a 16-byte loop).
//! The other widenings are plain loops compiled with `#[target_feature(enable = "sse2")]` and
//! left to LLVM's vectorizer.
//!
//! Tails: a vector loop, then one last vector that overlaps elements already handled
//! (re-checking known-good units or re-writing identical outputs is harmless), and SWAR / scalar
//! code for inputs shorter than one vector. Every load and store is unaligned, so any start
//! offset works; the widenings start their loop at the first 16-byte-aligned output element.

use crate::simd::vector::{BitMask, LaneMask, Vector, Vector128};
use core::arch::x86_64::*;

crate::simd::table::kernels!("sse2");
use imp::utf;

/// Whether this CPU can run the path. `available()` hands out `KERNELS` only when this is true.
pub fn is_available() -> bool {
    is_x86_feature_detected!("sse2")
}

/// The SSE2 register for the generic kernels. The contract of `Vector` (see `simd::vector`)
/// holds whenever the caller has SSE2 enabled, which every method below needs and nothing else.
impl Vector for __m128i {
    const BYTES: usize = 16;
    // Splitting a cache line costs 16-byte accesses little.
    const REALIGN: bool = false;
    type Mask = BitMask;

    #[inline(always)]
    unsafe fn load_unaligned(p: *const u8) -> Self {
        // SAFETY: the caller guarantees 16 readable bytes at `p`; `loadu` needs no alignment.
        unsafe { _mm_loadu_si128(p.cast()) }
    }
    #[inline(always)]
    unsafe fn store_unaligned(self, p: *mut u8) {
        // SAFETY: the caller guarantees 16 writable bytes at `p`; `storeu` needs no alignment.
        unsafe { _mm_storeu_si128(p.cast(), self) }
    }
    #[inline(always)]
    unsafe fn or(self, other: Self) -> Self {
        // SAFETY: the caller has SSE2 enabled (the trait's contract).
        unsafe { _mm_or_si128(self, other) }
    }
    #[inline(always)]
    unsafe fn movemask(self) -> BitMask {
        // SAFETY: as in `or`.
        LaneMask(unsafe { _mm_movemask_epi8(self) } as u32 as u64)
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
        let m = unsafe { _mm_movemask_epi8(_mm_adds_epu16(self, _mm_set1_epi16(0x7F80))) };
        LaneMask((m as u32 & 0xAAAA) as u64)
    }
    #[inline(always)]
    unsafe fn surrogates16(self) -> Self {
        // SAFETY: as in `or`.
        unsafe {
            _mm_cmpeq_epi16(
                _mm_and_si128(self, _mm_set1_epi16(0xF800u16 as i16)),
                _mm_set1_epi16(0xD800u16 as i16),
            )
        }
    }
    // SSE2 only has a signed 16-bit max: the accumulator holds the units with their sign bit
    // flipped, which maps u16 order onto i16 order.
    #[inline(always)]
    unsafe fn max16_init() -> Self {
        // SAFETY: as in `or`.
        unsafe { _mm_set1_epi16(i16::MIN) }
    }
    #[inline(always)]
    unsafe fn max16_acc(self, units: Self) -> Self {
        // SAFETY: as in `or`.
        unsafe { _mm_max_epi16(self, _mm_xor_si128(units, _mm_set1_epi16(i16::MIN))) }
    }
    #[inline(always)]
    unsafe fn max16_merge(self, other: Self) -> Self {
        // SAFETY: as in `or`.
        unsafe { _mm_max_epi16(self, other) }
    }
    #[inline(always)]
    unsafe fn max16_reduce(self) -> u16 {
        // SAFETY: as in `or`.
        unsafe {
            let mut m = self;
            m = _mm_max_epi16(m, _mm_srli_si128::<8>(m));
            m = _mm_max_epi16(m, _mm_srli_si128::<4>(m));
            m = _mm_max_epi16(m, _mm_srli_si128::<2>(m));
            (_mm_cvtsi128_si32(m) as u16) ^ 0x8000
        }
    }
}

/// The 128-bit steps of the generic widenings and UTF classifiers; the contract as above.
impl Vector128 for __m128i {
    #[inline(always)]
    unsafe fn zext8_lo(self) -> Self {
        // SAFETY: the caller has SSE2 enabled (the trait's contract); likewise below.
        unsafe { _mm_unpacklo_epi8(self, _mm_setzero_si128()) }
    }
    #[inline(always)]
    unsafe fn zext8_hi(self) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { _mm_unpackhi_epi8(self, _mm_setzero_si128()) }
    }
    #[inline(always)]
    unsafe fn zext16_lo(self) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { _mm_unpacklo_epi16(self, _mm_setzero_si128()) }
    }
    #[inline(always)]
    unsafe fn zext16_hi(self) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { _mm_unpackhi_epi16(self, _mm_setzero_si128()) }
    }
    #[inline(always)]
    unsafe fn zext32_lo(self) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { _mm_unpacklo_epi32(self, _mm_setzero_si128()) }
    }
    #[inline(always)]
    unsafe fn zext32_hi(self) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { _mm_unpackhi_epi32(self, _mm_setzero_si128()) }
    }
    #[inline(always)]
    unsafe fn splat16(v: u16) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { _mm_set1_epi16(v as i16) }
    }
    #[inline(always)]
    unsafe fn splat32(v: u32) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { _mm_set1_epi32(v as i32) }
    }
    #[inline(always)]
    unsafe fn splat64(v: u64) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { _mm_set1_epi64x(v as i64) }
    }
    #[inline(always)]
    unsafe fn add16(self, other: Self) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { _mm_add_epi16(self, other) }
    }
    #[inline(always)]
    unsafe fn add32(self, other: Self) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { _mm_add_epi32(self, other) }
    }
    #[inline(always)]
    unsafe fn add64(self, other: Self) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { _mm_add_epi64(self, other) }
    }
    #[inline(always)]
    unsafe fn ge80_8(self) -> Self {
        // `movemask` reads the sign bits, which are exactly the bytes >= 0x80.
        self
    }
    #[inline(always)]
    unsafe fn ge8(self, t: u8) -> Self {
        // SSE2 has an unsigned byte max but no unsigned compare: `max(v, t) == v` is `v >= t`.
        // SAFETY: as in `zext8_lo`.
        unsafe { _mm_cmpeq_epi8(_mm_max_epu8(self, _mm_set1_epi8(t as i8)), self) }
    }
    #[inline(always)]
    unsafe fn eq8(self, t: u8) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { _mm_cmpeq_epi8(self, _mm_set1_epi8(t as i8)) }
    }
    #[inline(always)]
    unsafe fn cont8(self) -> Self {
        // Continuation bytes are exactly those with the sign bit set below 0xC0 (signed: < -64).
        // SAFETY: as in `zext8_lo`.
        unsafe { _mm_cmplt_epi8(self, _mm_set1_epi8(0xC0u8 as i8)) }
    }
    #[inline(always)]
    unsafe fn and16(self, m: u16) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { _mm_and_si128(self, _mm_set1_epi16(m as i16)) }
    }
    #[inline(always)]
    unsafe fn eq16(self, t: u16) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { _mm_cmpeq_epi16(self, _mm_set1_epi16(t as i16)) }
    }
    #[inline(always)]
    unsafe fn bits64(m: [Self; 4]) -> u64 {
        // SAFETY: as in `zext8_lo`.
        let b = m.map(|x| unsafe { _mm_movemask_epi8(x) } as u32 as u64);
        b[0] | (b[1] << 16) | (b[2] << 32) | (b[3] << 48)
    }
    #[inline(always)]
    unsafe fn bits32(m: [Self; 4]) -> u32 {
        // 16-bit lane masks -> one bit per unit (`packs` keeps each word's sign).
        // SAFETY: as in `zext8_lo`.
        unsafe {
            let lo = _mm_movemask_epi8(_mm_packs_epi16(m[0], m[1])) as u32;
            let hi = _mm_movemask_epi8(_mm_packs_epi16(m[2], m[3])) as u32;
            lo | (hi << 16)
        }
    }
    #[inline(always)]
    unsafe fn ge16_bits(v: [Self; 4], t: u16) -> u32 {
        // No unsigned 16-bit compare either: `v >= t` (a power of two) iff `v & !(t - 1) != 0`.
        // SAFETY: as in `zext8_lo`.
        unsafe {
            let z = _mm_setzero_si128();
            !Self::bits32(v.map(|x| _mm_cmpeq_epi16(x.and16(!(t - 1)), z)))
        }
    }
}

mod imp {
    crate::simd::table::generic128!("sse2", core::arch::x86_64::__m128i);

    /// A plain copy: libc's memcpy picks the widest vectors the CPU has (and `rep movsb` for
    /// large sizes); it measured faster than a 16-byte load/store loop here.
    #[target_feature(enable = "sse2")]
    pub fn widen_u16_u16(src: &[u16], dst: &mut [u16]) {
        let n = src.len().min(dst.len());
        dst[..n].copy_from_slice(&src[..n]);
    }

    // Plain loops: LLVM vectorizes them with the SSE2 feature set enabled here.
    crate::simd::table::plain_widenings!("sse2");
}
