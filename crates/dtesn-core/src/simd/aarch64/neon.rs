//! NEON path (128-bit vectors) for aarch64.
//!
//! NEON is part of the aarch64 baseline (`target_feature = "neon"` is on for every aarch64 Linux,
//! macOS and Windows target), so this module is compiled only when that cfg holds and needs no
//! runtime detection (`is_available()` is always true), and `available()` lists the path first
//! on aarch64.
//!
//! Everything but the u16 -> u16 copy is the generic code over `uint8x16_t` (the `Vector` and
//! `Vector128` impls below): the scans (OR-ed vectors reduced with `umaxv`, the exact index from
//! a `shrn`-narrowed lane mask), the widenings u8 -> i32 (+add), u16 -> i32, u8 -> u16 (+add),
//! u8 -> i64 (+add), u16 -> i64 (`uxtl`/`uxtl2` chains), the fills, and the UTF-8 / UTF-16 block
//! classifiers (compare results turned into bit masks by weighting each lane with its bit and
//! three pairwise adds) and mask decoders. The other widenings are plain loops that LLVM
//! vectorizes with NEON.
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

use crate::simd::vector::{LaneMask, NibbleMask, Vector, Vector128};
use core::arch::aarch64::*;

crate::simd::table::kernels!("neon");
use imp::utf;

/// The NEON register for the generic kernels. The contract of `Vector` (see `simd::vector`) holds
/// whenever the caller has NEON enabled, which every method below needs and nothing else.
impl Vector for uint8x16_t {
    const BYTES: usize = 16;
    const REALIGN: bool = false;
    type Mask = NibbleMask;

    #[inline(always)]
    unsafe fn load_unaligned(p: *const u8) -> Self {
        // SAFETY: the caller guarantees 16 readable bytes; `ld1` of bytes needs no alignment.
        unsafe { vld1q_u8(p) }
    }
    #[inline(always)]
    unsafe fn store_unaligned(self, p: *mut u8) {
        // SAFETY: the caller guarantees 16 writable bytes; `st1` of bytes needs no alignment.
        unsafe { vst1q_u8(p, self) }
    }
    #[inline(always)]
    unsafe fn or(self, other: Self) -> Self {
        // SAFETY: the caller has NEON enabled (the trait's contract).
        unsafe { vorrq_u8(self, other) }
    }
    #[inline(always)]
    unsafe fn movemask(self) -> NibbleMask {
        // `shrn` by 4 keeps one nibble per byte lane: a 64-bit summary of the 16 lanes.
        // SAFETY: as in `or`.
        LaneMask(unsafe {
            vget_lane_u64::<0>(vreinterpret_u64_u8(vshrn_n_u16::<4>(vreinterpretq_u16_u8(
                self,
            ))))
        })
    }
    #[inline(always)]
    unsafe fn non_ascii8(self) -> NibbleMask {
        // SAFETY: as in `or`.
        unsafe { vcgeq_u8(self, vdupq_n_u8(0x80)).movemask() }
    }
    #[inline(always)]
    unsafe fn any_non_ascii8(self) -> bool {
        // SAFETY: as in `or`.
        unsafe { vmaxvq_u8(self) >= 0x80 }
    }
    #[inline(always)]
    unsafe fn non_ascii16(self) -> NibbleMask {
        // SAFETY: as in `or`.
        unsafe {
            let ge = vcgeq_u16(vreinterpretq_u16_u8(self), vdupq_n_u16(0x80));
            vreinterpretq_u8_u16(ge).movemask()
        }
    }
    #[inline(always)]
    unsafe fn surrogates16(self) -> Self {
        // SAFETY: as in `or`.
        unsafe {
            let u = vreinterpretq_u16_u8(self);
            let s = vceqq_u16(vandq_u16(u, vdupq_n_u16(0xF800)), vdupq_n_u16(0xD800));
            vreinterpretq_u8_u16(s)
        }
    }
    #[inline(always)]
    unsafe fn any_set(self) -> bool {
        // SAFETY: as in `or`.
        unsafe { vmaxvq_u8(self) != 0 }
    }
    #[inline(always)]
    unsafe fn max16_init() -> Self {
        // SAFETY: as in `or`.
        unsafe { vdupq_n_u8(0) }
    }
    #[inline(always)]
    unsafe fn max16_acc(self, units: Self) -> Self {
        // SAFETY: as in `or`.
        unsafe {
            vreinterpretq_u8_u16(vmaxq_u16(
                vreinterpretq_u16_u8(self),
                vreinterpretq_u16_u8(units),
            ))
        }
    }
    #[inline(always)]
    unsafe fn max16_merge(self, other: Self) -> Self {
        // SAFETY: forwarded.
        unsafe { self.max16_acc(other) }
    }
    #[inline(always)]
    unsafe fn max16_reduce(self) -> u16 {
        // SAFETY: as in `or`.
        unsafe { vmaxvq_u16(vreinterpretq_u16_u8(self)) }
    }
}

/// Always true: the module only exists when NEON is enabled at compile time.
pub fn is_available() -> bool {
    true
}

/// The 128-bit steps of the generic widenings and UTF classifiers; the contract as above.
impl Vector128 for uint8x16_t {
    #[inline(always)]
    unsafe fn zext8_lo(self) -> Self {
        // SAFETY: the caller has NEON enabled (the trait's contract); likewise below.
        unsafe { vreinterpretq_u8_u16(vmovl_u8(vget_low_u8(self))) }
    }
    #[inline(always)]
    unsafe fn zext8_hi(self) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { vreinterpretq_u8_u16(vmovl_high_u8(self)) }
    }
    #[inline(always)]
    unsafe fn zext16_lo(self) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { vreinterpretq_u8_u32(vmovl_u16(vget_low_u16(vreinterpretq_u16_u8(self)))) }
    }
    #[inline(always)]
    unsafe fn zext16_hi(self) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { vreinterpretq_u8_u32(vmovl_high_u16(vreinterpretq_u16_u8(self))) }
    }
    #[inline(always)]
    unsafe fn zext32_lo(self) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { vreinterpretq_u8_u64(vmovl_u32(vget_low_u32(vreinterpretq_u32_u8(self)))) }
    }
    #[inline(always)]
    unsafe fn zext32_hi(self) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { vreinterpretq_u8_u64(vmovl_high_u32(vreinterpretq_u32_u8(self))) }
    }
    #[inline(always)]
    unsafe fn splat16(v: u16) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { vreinterpretq_u8_u16(vdupq_n_u16(v)) }
    }
    #[inline(always)]
    unsafe fn splat32(v: u32) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { vreinterpretq_u8_u32(vdupq_n_u32(v)) }
    }
    #[inline(always)]
    unsafe fn splat64(v: u64) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { vreinterpretq_u8_u64(vdupq_n_u64(v)) }
    }
    #[inline(always)]
    unsafe fn add16(self, other: Self) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe {
            vreinterpretq_u8_u16(vaddq_u16(
                vreinterpretq_u16_u8(self),
                vreinterpretq_u16_u8(other),
            ))
        }
    }
    #[inline(always)]
    unsafe fn add32(self, other: Self) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe {
            vreinterpretq_u8_u32(vaddq_u32(
                vreinterpretq_u32_u8(self),
                vreinterpretq_u32_u8(other),
            ))
        }
    }
    #[inline(always)]
    unsafe fn add64(self, other: Self) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe {
            vreinterpretq_u8_u64(vaddq_u64(
                vreinterpretq_u64_u8(self),
                vreinterpretq_u64_u8(other),
            ))
        }
    }
    #[inline(always)]
    unsafe fn ge80_8(self) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { self.ge8(0x80) }
    }
    #[inline(always)]
    unsafe fn ge8(self, t: u8) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { vcgeq_u8(self, vdupq_n_u8(t)) }
    }
    #[inline(always)]
    unsafe fn eq8(self, t: u8) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { vceqq_u8(self, vdupq_n_u8(t)) }
    }
    #[inline(always)]
    unsafe fn cont8(self) -> Self {
        // Continuation bytes are exactly those below 0xC0 as signed bytes (< -64).
        // SAFETY: as in `zext8_lo`.
        unsafe { vcltq_s8(vreinterpretq_s8_u8(self), vdupq_n_s8(-64)) }
    }
    #[inline(always)]
    unsafe fn and16(self, m: u16) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { vandq_u8(self, vreinterpretq_u8_u16(vdupq_n_u16(m))) }
    }
    #[inline(always)]
    unsafe fn eq16(self, t: u16) -> Self {
        // SAFETY: as in `zext8_lo`.
        unsafe { vreinterpretq_u8_u16(vceqq_u16(vreinterpretq_u16_u8(self), vdupq_n_u16(t))) }
    }
    // No movemask: each lane is weighted with its bit and summed by three pairwise adds.
    #[inline(always)]
    unsafe fn bits64(m: [Self; 4]) -> u64 {
        // SAFETY: as in `zext8_lo`; WEIGHTS is 16 readable bytes.
        unsafe {
            let w = vld1q_u8(WEIGHTS.as_ptr());
            let a = m.map(|x| vandq_u8(x, w));
            let s = vpaddq_u8(vpaddq_u8(a[0], a[1]), vpaddq_u8(a[2], a[3]));
            let s = vpaddq_u8(s, s);
            vgetq_lane_u64::<0>(vreinterpretq_u64_u8(s))
        }
    }
    #[inline(always)]
    unsafe fn bits32(m: [Self; 4]) -> u32 {
        // SAFETY: as in `bits64`.
        unsafe {
            let w = vld1q_u8(WEIGHTS.as_ptr());
            let m = m.map(|x| vmovn_u16(vreinterpretq_u16_u8(x)));
            let a = vandq_u8(vcombine_u8(m[0], m[1]), w);
            let b = vandq_u8(vcombine_u8(m[2], m[3]), w);
            let s = vpaddq_u8(a, b);
            let s = vpaddq_u8(s, s);
            let s = vpaddq_u8(s, s);
            vgetq_lane_u32::<0>(vreinterpretq_u32_u8(s))
        }
    }
    #[inline(always)]
    unsafe fn ge16_bits(v: [Self; 4], t: u16) -> u32 {
        // SAFETY: as in `zext8_lo`.
        unsafe {
            Self::bits32(
                v.map(|x| vreinterpretq_u8_u16(vcgeq_u16(vreinterpretq_u16_u8(x), vdupq_n_u16(t)))),
            )
        }
    }
}

const WEIGHTS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];

mod imp {
    use crate::simd::generic::drive::drive;
    use core::arch::aarch64::*;

    crate::simd::table::generic128!("neon", core::arch::aarch64::uint8x16_t);

    // Plain loops: LLVM vectorizes them with NEON.
    crate::simd::table::plain_widenings!("neon");

    /// A copy in blocks of four 8-unit vectors.
    #[target_feature(enable = "neon")]
    pub fn widen_u16_u16(src: &[u16], dst: &mut [u16]) {
        let n = src.len().min(dst.len());
        if n < 32 {
            return dst[..n].copy_from_slice(&src[..n]);
        }
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        drive(n, 32, 0, |i| {
            // SAFETY: `drive` passes i + 32 <= n <= both lengths: four 8-unit loads and stores;
            // u16 pointers from slices are u16-aligned, as `ld1`/`st1` of u16 lanes need.
            unsafe {
                let (a, b, c, e) = (
                    vld1q_u16(s.add(i)),
                    vld1q_u16(s.add(i + 8)),
                    vld1q_u16(s.add(i + 16)),
                    vld1q_u16(s.add(i + 24)),
                );
                vst1q_u16(d.add(i), a);
                vst1q_u16(d.add(i + 8), b);
                vst1q_u16(d.add(i + 16), c);
                vst1q_u16(d.add(i + 24), e);
            }
        });
    }
}
