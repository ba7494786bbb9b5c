//! The UTF-8 / UTF-16 kernels of the 128-bit paths over any [`Vector128`]: the block classifiers
//! of `simd::utf` on four registers (64 bytes / 32 units), and its mask decoders, which take the
//! character starts from them (neither SSE2 nor the NEON path has a lane compaction to use).

use crate::simd::utf::{
    decode16_masked, decode8_masked, scan16, scan8, Classes16, Classes8, Decoded, Utf16Counts,
    Utf8Counts,
};
use crate::simd::vector::Vector128;

/// # Safety
/// The [`Vector128`] contract for `V`; `p` valid for reading 64 bytes.
#[inline(always)]
unsafe fn load4<V: Vector128>(p: *const u8) -> [V; 4] {
    const { assert!(V::BYTES == 16) };
    // SAFETY: the caller guarantees 64 readable bytes.
    unsafe { [0, 16, 32, 48].map(|k| V::load_unaligned(p.add(k))) }
}

/// # Safety
/// The [`Vector128`] contract for `V`; `p` valid for reading 64 bytes.
#[inline(always)]
unsafe fn classes8<V: Vector128>(p: *const u8) -> Classes8 {
    // SAFETY: forwarded.
    unsafe {
        let v = load4::<V>(p);
        let ge = |t: u8| V::bits64(v.map(|x| x.ge8(t)));
        let eq = |t: u8| V::bits64(v.map(|x| x.eq8(t)));
        Classes8::collect(V::bits64(v.map(|x| x.ge80_8())), ge, eq)
    }
}

/// Bit i set iff byte i of the 64 at `p` starts a character (is not 80..BF).
///
/// # Safety
/// The [`Vector128`] contract for `V`; `p` valid for reading 64 bytes.
#[inline(always)]
unsafe fn starts8<V: Vector128>(p: *const u8) -> u64 {
    // SAFETY: forwarded.
    unsafe { !V::bits64(load4::<V>(p).map(|x| x.cont8())) }
}

/// # Safety
/// The [`Vector128`] contract for `V`; `p` valid for reading 64 bytes.
#[inline(always)]
unsafe fn is_ascii<V: Vector128>(p: *const u8) -> bool {
    // SAFETY: forwarded.
    unsafe {
        let v = load4::<V>(p);
        !v[0].or(v[1]).or(v[2].or(v[3])).any_non_ascii8()
    }
}

/// # Safety
/// The [`Vector128`] contract for `V`; `p` valid for reading 32 units.
#[inline(always)]
unsafe fn classes16<V: Vector128>(p: *const u16) -> Classes16 {
    // SAFETY: forwarded (32 units are 64 bytes).
    unsafe {
        let v = load4::<V>(p.cast());
        let top = v.map(|x| x.and16(0xFC00));
        Classes16 {
            hi: V::bits32(top.map(|x| x.eq16(0xD800))),
            lo: V::bits32(top.map(|x| x.eq16(0xDC00))),
            ge80: V::ge16_bits(v, 0x80),
            ge800: V::ge16_bits(v, 0x800),
        }
    }
}

/// 64 bytes at `s` -> 64 u32 at `d`.
///
/// # Safety
/// The [`Vector128`] contract for `V`; `s` readable for 64 bytes, `d` writable for 64 u32.
#[inline(always)]
unsafe fn widen8<V: Vector128>(s: *const u8, d: *mut u32) {
    // SAFETY: forwarded; 4 x 16 bytes read, 16 x 16 bytes written.
    unsafe {
        for (k, v) in load4::<V>(s).into_iter().enumerate() {
            let (lo, hi) = (v.zext8_lo(), v.zext8_hi());
            let q = d.add(16 * k);
            lo.zext16_lo().store_unaligned(q.cast());
            lo.zext16_hi().store_unaligned(q.add(4).cast());
            hi.zext16_lo().store_unaligned(q.add(8).cast());
            hi.zext16_hi().store_unaligned(q.add(12).cast());
        }
    }
}

/// 32 units at `s` -> 32 u32 at `d`.
///
/// # Safety
/// The [`Vector128`] contract for `V`; `s` readable for 32 units, `d` writable for 32 u32.
#[inline(always)]
unsafe fn widen16<V: Vector128>(s: *const u16, d: *mut u32) {
    // SAFETY: forwarded; 4 x 16 bytes read, 8 x 16 bytes written.
    unsafe {
        for (k, v) in load4::<V>(s.cast()).into_iter().enumerate() {
            let q = d.add(8 * k);
            v.zext16_lo().store_unaligned(q.cast());
            v.zext16_hi().store_unaligned(q.add(4).cast());
        }
    }
}

/// `Kernels::utf8_scan`.
///
/// # Safety
/// The [`Vector128`] contract for `V`.
#[inline(always)]
pub(crate) unsafe fn utf8_scan<V: Vector128>(src: &[u8]) -> Option<Utf8Counts> {
    // SAFETY: forwarded; `scan8` only passes pointers to 64 readable bytes.
    unsafe { scan8(src, |p| classes8::<V>(p), |p| is_ascii::<V>(p)) }
}

/// `Kernels::utf16_scan`.
///
/// # Safety
/// The [`Vector128`] contract for `V`.
#[inline(always)]
pub(crate) unsafe fn utf16_scan<V: Vector128>(src: &[u16]) -> Option<Utf16Counts> {
    // SAFETY: forwarded; `scan16` only passes pointers to 32 readable units.
    unsafe { scan16(src, |p| classes16::<V>(p)) }
}

/// `Kernels::utf8_decode`.
///
/// # Safety
/// The [`Vector128`] contract for `V`.
#[inline(always)]
pub(crate) unsafe fn utf8_decode<V: Vector128>(src: &[u8], dst: &mut [u32]) -> Decoded {
    // SAFETY: forwarded; `decode8_masked` passes pointers to 64 readable bytes / 64 writable u32.
    unsafe {
        decode8_masked(
            src,
            dst,
            |p| starts8::<V>(p),
            |p| is_ascii::<V>(p),
            |s, d| widen8::<V>(s, d),
        )
    }
}

/// `Kernels::utf16_decode`.
///
/// # Safety
/// The [`Vector128`] contract for `V`.
#[inline(always)]
pub(crate) unsafe fn utf16_decode<V: Vector128>(src: &[u16], dst: &mut [u32]) -> Decoded {
    // SAFETY: forwarded; `decode16_masked` passes pointers to 32 readable units / 32 writable u32.
    unsafe { decode16_masked(src, dst, |p| classes16::<V>(p), |s, d| widen16::<V>(s, d)) }
}
