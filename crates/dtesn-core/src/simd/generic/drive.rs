//! The block loop of the widenings and fills.

/// Elements of `T` from `d` to the next `align`-byte boundary (0 if already aligned).
#[inline(always)]
pub fn to_boundary<T>(d: *const T, align: usize) -> usize {
    ((align - d as usize % align) % align) / core::mem::size_of::<T>()
}

/// Covers `0..n` with calls `one(i)`, each handling elements `i..i + step`, and `tail(i, r)` for
/// the last `r < step` elements: `one` once at 0 (unaligned), then from `aligned` (in `0..step`:
/// the first `i` whose output address is vector-aligned; stores that split cache lines cost
/// about twice as much), four at a time, then one at a time. Blocks that overlap rewrite
/// identical values. Every `one(i)` has `i + step <= n`, every `tail(i, r)` has `i + r == n` and
/// `0 < r < step`.
#[inline(always)]
pub fn drive_tail(
    n: usize,
    step: usize,
    aligned: usize,
    one: impl Fn(usize),
    tail: impl Fn(usize, usize),
) {
    debug_assert!(aligned < step);
    let mut i = 0;
    if n >= step {
        one(0);
        i = if aligned == 0 { step } else { aligned };
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
    }
    if i < n {
        tail(i, n - i);
    }
}

/// [`drive_tail`] whose tail is one more block at `n - step`, overlapping the one before; every
/// `i` passed has `i + step <= n`. Requires `n >= step`.
#[inline(always)]
pub fn drive(n: usize, step: usize, aligned: usize, one: impl Fn(usize)) {
    debug_assert!(n >= step);
    drive_tail(n, step, aligned, &one, |_, _| one(n - step));
}
