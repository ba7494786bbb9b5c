//! The x86_64 paths: one module per instruction set, each implementing the traits of
//! `super::vector` for its register and instantiating `super::generic` inside its own
//! `#[target_feature]` functions; what is genuinely ISA-specific (AVX-512 masked tails, the AVX2
//! and AVX-512 UTF decoders) stays in the module.

pub(super) mod avx2;
pub(super) mod avx512;
pub(super) mod sse2;

/// Generates the safe `fn` items stored in a `Kernels` table, each calling a `#[target_feature]`
/// implementation.
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

/// The module's `KERNELS` table called `$name`, over the `#[target_feature]` functions of its
/// `imp` (scans, widenings, fills) and `utf` (validation and decoding) submodules.
macro_rules! kernels {
    ($name:literal) => {
        pub static KERNELS: $crate::simd::Kernels = $crate::simd::Kernels {
            name: $name,
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

        use $crate::simd::utf::{Decoded, Utf16Counts, Utf8Counts};
        $crate::simd::x86_64::wrap! {
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
    };
}

/// The plain-loop widenings (`generic::small`, vectorized by LLVM for the enabling function's
/// ISA) as `#[target_feature(enable = $feat)]` functions of an `imp` module.
macro_rules! plain_widenings {
    ($feat:literal) => {
        #[target_feature(enable = $feat)]
        pub fn widen_u8_i16(src: &[u8], add: i32, dst: &mut [i16]) {
            small::widen_u8(src, add, dst)
        }

        #[target_feature(enable = $feat)]
        pub fn widen_u8_u8(src: &[u8], add: i32, dst: &mut [u8]) {
            small::widen_u8(src, add, dst)
        }

        #[target_feature(enable = $feat)]
        pub fn widen_u8_f32(src: &[u8], add: i32, dst: &mut [f32]) {
            small::widen_u8(src, add, dst)
        }

        #[target_feature(enable = $feat)]
        pub fn widen_u16_i16(src: &[u16], dst: &mut [i16]) {
            small::widen_u16(src, dst)
        }

        #[target_feature(enable = $feat)]
        pub fn widen_u16_u8(src: &[u16], dst: &mut [u8]) {
            small::widen_u16(src, dst)
        }

        #[target_feature(enable = $feat)]
        pub fn widen_u16_f32(src: &[u16], dst: &mut [f32]) {
            small::widen_u16(src, dst)
        }
    };
}

pub(crate) use {kernels, plain_widenings, wrap};
