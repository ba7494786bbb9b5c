//! The macros that build each path's `KERNELS` table and the `#[target_feature]` functions that
//! instantiate the generic kernels: the per-ISA modules differ only in their feature string and
//! register type.

/// Generates the safe `fn` items stored in a `Kernels` table, each calling a `#[target_feature]`
/// implementation.
macro_rules! wrap {
    ($(fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? = $imp:path;)*) => {$(
        fn $name($($arg: $ty),*) $(-> $ret)? {
            // SAFETY: the only precondition of `$imp` is that the CPU supports the features of
            // its `#[target_feature]`, which are exactly those the module's `is_available()`
            // checks (at run time on x86_64; NEON is in the compile-time baseline of every
            // target the aarch64 module is built for). This fn is private to its module and only
            // reachable through that module's `KERNELS`, which `simd::available()` hands out only
            // after `is_available()` returned true.
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
        $crate::simd::table::wrap! {
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
            $crate::simd::generic::small::widen_u8(src, add, dst)
        }

        #[target_feature(enable = $feat)]
        pub fn widen_u8_u8(src: &[u8], add: i32, dst: &mut [u8]) {
            $crate::simd::generic::small::widen_u8(src, add, dst)
        }

        #[target_feature(enable = $feat)]
        pub fn widen_u8_f32(src: &[u8], add: i32, dst: &mut [f32]) {
            $crate::simd::generic::small::widen_u8(src, add, dst)
        }

        #[target_feature(enable = $feat)]
        pub fn widen_u16_i16(src: &[u16], dst: &mut [i16]) {
            $crate::simd::generic::small::widen_u16(src, dst)
        }

        #[target_feature(enable = $feat)]
        pub fn widen_u16_u8(src: &[u16], dst: &mut [u8]) {
            $crate::simd::generic::small::widen_u16(src, dst)
        }

        #[target_feature(enable = $feat)]
        pub fn widen_u16_f32(src: &[u16], dst: &mut [f32]) {
            $crate::simd::generic::small::widen_u16(src, dst)
        }
    };
}

/// Inside a path's `imp` module: the `#[target_feature(enable = $feat)]` functions that are the
/// generic kernels over the 128-bit register `$v` (a `Vector128`): the scans, the widenings and
/// fills with explicit steps, and in `imp::utf` the UTF-8 / UTF-16 kernels. The module adds
/// `widen_u16_u16` and `plain_widenings!`.
macro_rules! generic128 {
    ($feat:literal, $v:ty) => {
        $crate::simd::table::generic128! { @fns $feat, $v, scan;
            fn ascii_prefix(src: &[u8]) -> usize;
            fn ascii_prefix_u16(src: &[u16]) -> usize;
            fn bmp_prefix(src: &[u16]) -> usize;
        }
        $crate::simd::table::generic128! { @fns $feat, $v, widen;
            fn widen_u8_i32(src: &[u8], add: i32, dst: &mut [i32]);
            fn widen_u16_i32(src: &[u16], dst: &mut [i32]);
            fn widen_u8_u16(src: &[u8], add: i32, dst: &mut [u16]);
            fn widen_u8_i64(src: &[u8], add: i32, dst: &mut [i64]);
            fn widen_u16_i64(src: &[u16], dst: &mut [i64]);
            fn fill_i32(dst: &mut [i32], v: i32);
            fn fill_i64(dst: &mut [i64], v: i64);
        }

        #[target_feature(enable = $feat)]
        pub fn max_u16(src: &[u16]) -> u16 {
            // SAFETY: the register's instruction set is enabled here.
            unsafe {
                $crate::simd::generic::scan::max_u16::<$v>(src, $crate::simd::generic::small::max_u16)
            }
        }

        pub mod utf {
            use $crate::simd::utf::{Decoded, Utf16Counts, Utf8Counts};
            $crate::simd::table::generic128! { @fns $feat, $v, utf;
                fn utf8_scan(src: &[u8]) -> Option<Utf8Counts>;
                fn utf16_scan(src: &[u16]) -> Option<Utf16Counts>;
                fn utf8_decode(src: &[u8], dst: &mut [u32]) -> Decoded;
                fn utf16_decode(src: &[u16], dst: &mut [u32]) -> Decoded;
            }
        }
    };
    // Each `fn` calls the generic function of the same name in `generic::$m`; the scans pass the
    // `small` helper of the same name for inputs below one vector.
    (@fns $feat:literal, $v:ty, scan; $(fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {$(
        #[target_feature(enable = $feat)]
        pub fn $name($($arg: $ty),*) -> $ret {
            // SAFETY: the register's instruction set is enabled here.
            unsafe {
                $crate::simd::generic::scan::$name::<$v>($($arg,)* $crate::simd::generic::small::$name)
            }
        }
    )*};
    (@fns $feat:literal, $v:ty, $m:ident; $(fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;)*) => {$(
        #[target_feature(enable = $feat)]
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            // SAFETY: the register's instruction set is enabled here.
            unsafe { $crate::simd::generic::$m::$name::<$v>($($arg),*) }
        }
    )*};
}

pub(crate) use {generic128, kernels, plain_widenings, wrap};
