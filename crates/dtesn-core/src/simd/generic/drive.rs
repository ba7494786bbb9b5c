//! The block loop of the widenings and fills that end with an overlapping block.

/// Elements of `T` from `d` to the next `align`-byte boundary (0 if already aligned).
#[inline(always)]
pub fn to_boundary<T>(d: *const T, align: usize) -> usize {
    ((align - d as usize % align) % align) / core::mem::size_of::<T>()
}

/// Covers `0..n` with calls `one(i)`, each handling elements `i..i + step`: once at 0
/// (unaligned), then from `aligned` (in `0..step`: the first `i` whose output address is
/// vector-aligned; stores that split cache lines cost about twice as much), four at a time,
/// then one at a time, then once at `n - step` for a tail. Blocks that overlap rewrite
/// identical values. Every `i` passed has `i + step <= n`; requires `n >= step`.
#[inline(always)]
pub fn drive(n: usize, step: usize, aligned: usize, one: impl Fn(usize)) {
    debug_assert!(n >= step && aligned < step);
    one(0);
    let mut i = if aligned == 0 { step } else { aligned };
    while i + 4 * step <= n {
        one(i);
        one(i + step);
        one(i + 2 * step);
        one(i + 3 * step);
        i += 4 * step;
    }
    while i + step <= n {
        one(i);
        i += step;
    }
    if i < n {
        one(n - step);
    }
}
