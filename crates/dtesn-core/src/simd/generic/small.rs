//! Short inputs (below one vector) and the plain-loop widenings: plain Rust, no unsafe, shared by
//! every path (in a `#[target_feature]` caller the plain loops are vectorized for that ISA).

const HI8: u64 = 0x8080_8080_8080_8080;
const HI16: u64 = 0xFF80_FF80_FF80_FF80;

#[inline(always)]
fn u64_at(src: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(src[i..i + 8].try_into().unwrap())
}

#[inline(always)]
fn u32_at(src: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(src[i..i + 4].try_into().unwrap())
}

/// The first hit of `n` elements covered by two overlapping words of `k` elements, at 0 and at
/// `n - k`: `word(i)` is the word at element `i` with only its hits' bits kept, `bits` per element.
#[inline(always)]
fn two_words(n: usize, k: usize, bits: u32, word: impl Fn(usize) -> u64) -> usize {
    let m = word(0);
    if m != 0 {
        return (m.trailing_zeros() / bits) as usize;
    }
    let m = word(n - k);
    if m != 0 {
        return n - k + (m.trailing_zeros() / bits) as usize;
    }
    n
}

/// `scalar::ascii_prefix` for any length, fastest for 4..=16 bytes (two overlapping words).
#[inline(always)]
pub fn ascii_prefix(src: &[u8]) -> usize {
    let n = src.len();
    if (8..=16).contains(&n) {
        return two_words(n, 8, 8, |i| u64_at(src, i) & HI8);
    }
    if (4..8).contains(&n) {
        return two_words(n, 4, 8, |i| (u32_at(src, i) & HI8 as u32) as u64);
    }
    src.iter().position(|&b| b >= 0x80).unwrap_or(n)
}

#[inline(always)]
fn units4(src: &[u16], i: usize) -> u64 {
    (src[i] as u64)
        | (src[i + 1] as u64) << 16
        | (src[i + 2] as u64) << 32
        | (src[i + 3] as u64) << 48
}

/// `scalar::ascii_prefix_u16` for any length, fastest below 8 units.
#[inline(always)]
pub fn ascii_prefix_u16(src: &[u16]) -> usize {
    let n = src.len();
    if (4..=8).contains(&n) {
        return two_words(n, 4, 16, |i| units4(src, i) & HI16);
    }
    src.iter().position(|&u| u >= 0x80).unwrap_or(n)
}

/// `scalar::bmp_prefix` for any length.
#[inline(always)]
pub fn bmp_prefix(src: &[u16]) -> usize {
    src.iter()
        .position(|&u| (u & 0xF800) == 0xD800)
        .unwrap_or(src.len())
}

/// `scalar::max_u16` for any length.
#[inline(always)]
pub fn max_u16(src: &[u16]) -> u16 {
    src.iter().copied().max().unwrap_or(0)
}

/// `scalar::widen_u8` for any length (the short tails of the vector loops).
#[inline(always)]
pub fn widen_u8<T: crate::simd::Elem>(src: &[u8], add: i32, dst: &mut [T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = T::from_i32(s as i32 + add);
    }
}

/// `scalar::widen_u16` for any length.
#[inline(always)]
pub fn widen_u16<T: crate::simd::Elem>(src: &[u16], dst: &mut [T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = T::from_i32(s as i32);
    }
}
