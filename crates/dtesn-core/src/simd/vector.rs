//! The vector operations the generic kernels (`generic/`) are written over, after memchr's
//! `vector.rs`: each ISA implements them once for its register type (`x86_64/`, `aarch64/`), and
//! each algorithm is written once over the traits.
//!
//! Every method is `#[inline(always)]` in the implementations and none has `#[target_feature]`,
//! so that it is inlined into the `#[target_feature]` function that instantiates the generic
//! code and compiles to that function's ISA.
//!
//! # Safety
//!
//! All methods are `unsafe`: they are vendor intrinsics. A caller must run inside a function
//! whose enabled target features include the implementing type's ISA (SSE2 for `__m128i`, AVX2
//! for `__m256i`, NEON for `uint8x16_t`), on a CPU that has them. Methods taking pointers state
//! what must be readable or writable there; none needs alignment.

/// A movemask: the lanes of a compare result as bits of a scalar, lowest address lowest.
///
/// x86's `movemask` gives one bit per byte; NEON has no such instruction and uses one nibble per
/// byte (`shrn` by 4), which is cheaper than packing down to bits. Offsets are therefore asked of
/// the mask rather than computed from bit positions.
pub(crate) trait MoveMask: Copy {
    fn has_non_zero(self) -> bool;
    /// Byte offset of the first byte whose lane is set; the mask must be non-zero.
    fn first_offset(self) -> usize;
}

/// A movemask with `1 << SHIFT` bits per byte: x86's (`BitMask`) and NEON's (`NibbleMask`).
#[derive(Clone, Copy)]
pub(crate) struct LaneMask<const SHIFT: u32>(pub u64);

/// One bit per byte (x86 `movemask`).
#[cfg(target_arch = "x86_64")]
pub(crate) type BitMask = LaneMask<0>;

/// Four bits per byte (NEON `shrn` of a 16-byte compare result).
#[cfg(target_arch = "aarch64")]
pub(crate) type NibbleMask = LaneMask<2>;

impl<const SHIFT: u32> MoveMask for LaneMask<SHIFT> {
    #[inline(always)]
    fn has_non_zero(self) -> bool {
        self.0 != 0
    }
    #[inline(always)]
    fn first_offset(self) -> usize {
        (self.0.trailing_zeros() >> SHIFT) as usize
    }
}

/// A SIMD register and the operations the scans need. See the module docs for the contract that
/// every method shares.
pub(crate) trait Vector: Copy {
    /// Bytes in the register.
    const BYTES: usize;
    /// Whether the loops, after one unaligned first vector, go on from the first `BYTES`-aligned
    /// address (wide registers: then no load splits a cache line).
    const REALIGN: bool;
    type Mask: MoveMask;

    /// # Safety
    /// See the module docs; `p` must be valid for reading `BYTES` bytes.
    unsafe fn load_unaligned(p: *const u8) -> Self;
    /// # Safety
    /// See the module docs; `p` must be valid for writing `BYTES` bytes.
    unsafe fn store_unaligned(self, p: *mut u8);
    /// # Safety
    /// See the module docs.
    unsafe fn or(self, other: Self) -> Self;
    /// The mask of a compare result (every lane all ones or all zeros).
    ///
    /// # Safety
    /// See the module docs.
    unsafe fn movemask(self) -> Self::Mask;

    /// Bytes >= 0x80.
    ///
    /// # Safety
    /// See the module docs.
    unsafe fn non_ascii8(self) -> Self::Mask;
    /// Whether any byte is >= 0x80 (`non_ascii8` has a bit set).
    ///
    /// # Safety
    /// See the module docs.
    #[inline(always)]
    unsafe fn any_non_ascii8(self) -> bool {
        // SAFETY: forwarded.
        unsafe { self.non_ascii8() }.has_non_zero()
    }
    /// u16 lanes >= 0x80 (the mask may mark either byte of such a lane; offsets are divided by
    /// two).
    ///
    /// # Safety
    /// See the module docs.
    unsafe fn non_ascii16(self) -> Self::Mask;
    /// Lanes holding a surrogate ((u & 0xF800) == 0xD800) set to 0xFFFF, others 0.
    ///
    /// # Safety
    /// See the module docs.
    unsafe fn surrogates16(self) -> Self;
    /// Whether any lane of a compare result is set.
    ///
    /// # Safety
    /// See the module docs.
    #[inline(always)]
    unsafe fn any_set(self) -> bool {
        // SAFETY: forwarded.
        unsafe { self.movemask() }.has_non_zero()
    }

    /// Largest u16 lane, in an accumulator form the ISA picks (SSE2 has only a signed max):
    /// `max16_init` is the accumulator of no units, `max16_acc` adds a vector of raw units,
    /// `max16_merge` joins two accumulators and `max16_reduce` gives the largest unit.
    ///
    /// # Safety
    /// See the module docs.
    unsafe fn max16_init() -> Self;
    /// # Safety
    /// See the module docs.
    unsafe fn max16_acc(self, units: Self) -> Self;
    /// # Safety
    /// See the module docs.
    unsafe fn max16_merge(self, other: Self) -> Self;
    /// # Safety
    /// See the module docs.
    unsafe fn max16_reduce(self) -> u16;
}

/// The 128-bit registers (SSE2, NEON): the zero-extension steps of the widenings and the 64-byte
/// block masks of the UTF classifiers, which the generic code runs on four registers at a time.
/// Same contract as [`Vector`] (see the module docs).
pub(crate) trait Vector128: Vector {
    /// The low (`_lo`) or high (`_hi`) half's u8 / u16 / u32 lanes zero-extended to twice their
    /// width.
    ///
    /// # Safety
    /// See the module docs.
    unsafe fn zext8_lo(self) -> Self;
    /// # Safety
    /// See the module docs.
    unsafe fn zext8_hi(self) -> Self;
    /// # Safety
    /// See the module docs.
    unsafe fn zext16_lo(self) -> Self;
    /// # Safety
    /// See the module docs.
    unsafe fn zext16_hi(self) -> Self;
    /// # Safety
    /// See the module docs.
    unsafe fn zext32_lo(self) -> Self;
    /// # Safety
    /// See the module docs.
    unsafe fn zext32_hi(self) -> Self;
    /// `v` in every u16 / u32 / u64 lane.
    ///
    /// # Safety
    /// See the module docs.
    unsafe fn splat16(v: u16) -> Self;
    /// # Safety
    /// See the module docs.
    unsafe fn splat32(v: u32) -> Self;
    /// # Safety
    /// See the module docs.
    unsafe fn splat64(v: u64) -> Self;
    /// Wrapping lane-wise addition of u16 / u32 / u64 lanes.
    ///
    /// # Safety
    /// See the module docs.
    unsafe fn add16(self, other: Self) -> Self;
    /// # Safety
    /// See the module docs.
    unsafe fn add32(self, other: Self) -> Self;
    /// # Safety
    /// See the module docs.
    unsafe fn add64(self, other: Self) -> Self;

    /// Byte lanes >= 0x80, in a form [`Vector128::bits64`] reads.
    ///
    /// # Safety
    /// See the module docs.
    unsafe fn ge80_8(self) -> Self;
    /// Byte lanes >= `t` / == `t` / in 80..=BF (continuation bytes) set to 0xFF, others 0.
    ///
    /// # Safety
    /// See the module docs.
    unsafe fn ge8(self, t: u8) -> Self;
    /// # Safety
    /// See the module docs.
    unsafe fn eq8(self, t: u8) -> Self;
    /// # Safety
    /// See the module docs.
    unsafe fn cont8(self) -> Self;
    /// `self & m` / `self == t` in u16 lanes (compare lanes 0xFFFF or 0).
    ///
    /// # Safety
    /// See the module docs.
    unsafe fn and16(self, m: u16) -> Self;
    /// # Safety
    /// See the module docs.
    unsafe fn eq16(self, t: u16) -> Self;
    /// Bit `i` set iff byte `i` of the four registers in order is set (a compare result or
    /// [`Vector128::ge80_8`]).
    ///
    /// # Safety
    /// See the module docs.
    unsafe fn bits64(m: [Self; 4]) -> u64;
    /// Bit `i` set iff u16 lane `i` of the four registers in order is set (a compare result).
    ///
    /// # Safety
    /// See the module docs.
    unsafe fn bits32(m: [Self; 4]) -> u32;
    /// Bit `i` set iff u16 lane `i` of the four registers in order is >= `t`, a power of two.
    ///
    /// # Safety
    /// See the module docs.
    unsafe fn ge16_bits(v: [Self; 4], t: u16) -> u32;
}
