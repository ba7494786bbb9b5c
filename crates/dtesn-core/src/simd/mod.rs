//! SIMD primitives with runtime dispatch.
//!
//! Layout after memchr: the vector traits (`vector.rs`), each kernel written once over them
//! (`generic/`), one module per instruction set that implements the traits and instantiates the
//! generic code in its `#[target_feature]` functions (`x86_64/`, `aarch64/`), a portable scalar
//! module that every other path is tested against, and one `Kernels` table per path. The table in use is chosen once (best
//! path the CPU has, or `DTESN_SIMD=scalar|sse2|avx2|avx512|neon`) and cached in an atomic, so a
//! call costs one relaxed load plus an indirect call per primitive.
//!
//! Every primitive has the exact semantics of its scalar version in `scalar.rs`.

use std::sync::atomic::{AtomicPtr, Ordering};

pub mod scalar;
pub mod utf;
// Per-ISA paths. Private: their `KERNELS` may only be handed out by `available()`, after the
// module's `is_available()` has detected the CPU features its `#[target_feature]` code needs.
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod aarch64;
mod generic;
mod table;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod utf_tests;
mod vector;
#[cfg(target_arch = "x86_64")]
mod x86_64;

/// Element types the id output can have. Conversions assume the caller has range-checked values.
pub trait Elem: Copy + Default + PartialEq + std::fmt::Debug + Send + Sync + 'static {
    /// `v as Self` (values are pre-checked to fit).
    fn from_i32(v: i32) -> Self;
    /// `v as Self` (values are pre-checked to fit: padId).
    fn from_i64(v: i64) -> Self;
    fn widen_u8(k: &Kernels) -> fn(&[u8], i32, &mut [Self]);
    fn widen_u16(k: &Kernels) -> fn(&[u16], &mut [Self]);
    /// `dst.fill(v)`, through the path's wide stores for 32- and 64-bit integers.
    #[inline(always)]
    fn fill(_k: &Kernels, dst: &mut [Self], v: Self) {
        dst.fill(v)
    }
    /// The elements as u32, when they have u32's layout and every u32 below 2^31 is the same
    /// value (int32: code points can be decoded straight into it).
    #[inline(always)]
    fn as_u32(_dst: &mut [Self]) -> Option<&mut [u32]> {
        None
    }
}

/// One instruction set's implementations of every primitive.
pub struct Kernels {
    /// 'avx512' | 'avx2' | 'sse2' | 'neon' | 'scalar'
    pub name: &'static str,
    /// Index of the first byte >= 0x80, or `src.len()`.
    pub ascii_prefix: fn(&[u8]) -> usize,
    /// Index of the first unit >= 0x80, or `src.len()`.
    pub ascii_prefix_u16: fn(&[u16]) -> usize,
    /// Index of the first unit in 0xD800..=0xDFFF, or `src.len()`.
    pub bmp_prefix: fn(&[u16]) -> usize,
    /// Largest unit (0 for empty input).
    pub max_u16: fn(&[u16]) -> u16,
    /// `dst[i] = (src[i] as i32 + add) as T`; `dst.len() == src.len()`.
    pub widen_u8_i32: fn(&[u8], i32, &mut [i32]),
    pub widen_u8_i16: fn(&[u8], i32, &mut [i16]),
    pub widen_u8_u16: fn(&[u8], i32, &mut [u16]),
    pub widen_u8_u8: fn(&[u8], i32, &mut [u8]),
    pub widen_u8_f32: fn(&[u8], i32, &mut [f32]),
    pub widen_u8_i64: fn(&[u8], i32, &mut [i64]),
    /// `dst[i] = src[i] as T` (values pre-checked to fit); `dst.len() == src.len()`.
    pub widen_u16_i32: fn(&[u16], &mut [i32]),
    pub widen_u16_i16: fn(&[u16], &mut [i16]),
    pub widen_u16_u16: fn(&[u16], &mut [u16]),
    pub widen_u16_u8: fn(&[u16], &mut [u8]),
    pub widen_u16_f32: fn(&[u16], &mut [f32]),
    pub widen_u16_i64: fn(&[u16], &mut [i64]),
    /// `dst.fill(v)`: int32 and int64 masks' ones and non-zero pads (the crate's baseline
    /// compiles a fill of wide elements to 16-byte stores; zero fills are memset already).
    pub fill_i32: fn(&mut [i32], i32),
    pub fill_i64: fn(&mut [i64], i64),
    /// `Some(counts)` iff `src` is well-formed UTF-8.
    pub utf8_scan: fn(&[u8]) -> Option<utf::Utf8Counts>,
    /// `Some(counts)` iff `src` has no lone surrogate.
    pub utf16_scan: fn(&[u16]) -> Option<utf::Utf16Counts>,
    /// Decodes well-formed UTF-8 into code points from the start of `src` until `src` ends or
    /// `dst` is full; only whole characters are consumed. Returns (bytes consumed, code points
    /// written). Ill-formed input gives unspecified code points but stays in bounds.
    pub utf8_decode: fn(&[u8], &mut [u32]) -> utf::Decoded,
    /// The same for UTF-16 without lone surrogates (units consumed, code points written).
    pub utf16_decode: fn(&[u16], &mut [u32]) -> utf::Decoded,
}

macro_rules! elem {
    ($t:ty, $w8:ident, $w16:ident $(, { $($extra:tt)* })?) => {
        impl Elem for $t {
            #[inline(always)]
            fn from_i32(v: i32) -> Self {
                v as $t
            }
            #[inline(always)]
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn widen_u8(k: &Kernels) -> fn(&[u8], i32, &mut [Self]) {
                k.$w8
            }
            #[inline(always)]
            fn widen_u16(k: &Kernels) -> fn(&[u16], &mut [Self]) {
                k.$w16
            }
            $($($extra)*)?
        }
    };
}
elem!(i32, widen_u8_i32, widen_u16_i32, {
    #[inline(always)]
    fn fill(k: &Kernels, dst: &mut [i32], v: i32) {
        (k.fill_i32)(dst, v)
    }
    #[inline(always)]
    fn as_u32(dst: &mut [i32]) -> Option<&mut [u32]> {
        // SAFETY: i32 and u32 have the same size and alignment and every bit pattern is valid
        // for both; the new slice borrows `dst` exclusively for its lifetime.
        Some(unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<u32>(), dst.len()) })
    }
});
elem!(i16, widen_u8_i16, widen_u16_i16);
elem!(u16, widen_u8_u16, widen_u16_u16);
elem!(u8, widen_u8_u8, widen_u16_u8);
elem!(f32, widen_u8_f32, widen_u16_f32);
elem!(i64, widen_u8_i64, widen_u16_i64, {
    #[inline(always)]
    fn fill(k: &Kernels, dst: &mut [i64], v: i64) {
        (k.fill_i64)(dst, v)
    }
});

/// Every path this CPU can run, best first (`scalar` always last).
pub fn available() -> Vec<&'static Kernels> {
    #[allow(unused_mut)]
    let mut v: Vec<&'static Kernels> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if x86_64::avx512::is_available() {
            v.push(&x86_64::avx512::KERNELS);
        }
        if x86_64::avx2::is_available() {
            v.push(&x86_64::avx2::KERNELS);
        }
        if x86_64::sse2::is_available() {
            v.push(&x86_64::sse2::KERNELS);
        }
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    {
        if aarch64::neon::is_available() {
            v.push(&aarch64::neon::KERNELS);
        }
    }
    v.push(&scalar::KERNELS);
    v
}

static ACTIVE: AtomicPtr<Kernels> = AtomicPtr::new(std::ptr::null_mut());

/// The path in use: chosen on first call from `DTESN_SIMD` or the best available, then cached.
#[inline]
pub fn kernels() -> &'static Kernels {
    let p = ACTIVE.load(Ordering::Relaxed);
    if p.is_null() {
        return init();
    }
    // SAFETY: ACTIVE only ever holds pointers to `'static` Kernels tables (see `set_active`).
    unsafe { &*p }
}

#[cold]
fn init() -> &'static Kernels {
    let best = available()[0];
    let chosen = match std::env::var("DTESN_SIMD") {
        Ok(name) if !name.is_empty() => by_name(&name).unwrap_or(best),
        _ => best,
    };
    set_active(chosen);
    chosen
}

fn set_active(k: &'static Kernels) {
    ACTIVE.store(k as *const Kernels as *mut Kernels, Ordering::Relaxed);
}

/// The available path called `name`, if this CPU has it.
pub fn by_name(name: &str) -> Option<&'static Kernels> {
    available().into_iter().find(|k| k.name == name)
}

/// The path `DTESN_SIMD` asked for, when it names one this CPU does not have (for a warning).
pub fn env_request_unavailable() -> Option<String> {
    match std::env::var("DTESN_SIMD") {
        Ok(name) if !name.is_empty() && by_name(&name).is_none() => Some(name),
        _ => None,
    }
}

/// Switch the path in use (tests compare every path in one process). Errors name the choices.
pub fn select(name: &str) -> Result<&'static str, String> {
    match by_name(name) {
        Some(k) => {
            set_active(k);
            Ok(k.name)
        }
        None => Err(format!(
            "SIMD path '{}' is not available on this CPU; available: {}",
            name,
            available()
                .iter()
                .map(|k| k.name)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
