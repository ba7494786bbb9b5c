//! Unicode at vector speed: validation, counting and decoding of UTF-8 and UTF-16 rows, written
//! once over per-ISA *block classifiers* (the memchr `generic/` pattern).
//!
//! **Validation and counting** work on bit masks. An ISA path classifies a block of 64 bytes
//! (UTF-8) or 32 units (UTF-16) with a dozen vector compares into one bit per byte / unit
//! ([`Classes8`], [`Classes16`]), and the code here checks them with a few 64-bit operations per
//! block, carrying the bits that cross a block end:
//!
//! - UTF-8 is well formed iff the continuation bytes (80..BF) are exactly the positions a leading
//!   byte asks for (C0.. asks for 1 more, E0.. for 2, F0.. for 3), no byte is C0, C1 or F5..FF,
//!   and the second byte after E0 / ED / F0 / F4 is in A0..BF / 80..9F / 90..BF / 80..8F (Unicode
//!   Table 3-7). This is the same rule as the lookup tables of Keiser & Lemire, "Validating UTF-8
//!   in less than one instruction per byte" (2021), stated on masks instead of nibble tables so
//!   that every ISA here (SSE2 has no byte shuffle) can run it.
//! - UTF-16 has no lone surrogate iff the low surrogates are exactly the positions after the high
//!   ones.
//! - Code points are the bytes that are not continuations, or the units minus the high
//!   surrogates; astral characters are the bytes >= F0; a UTF-16 row's UTF-8 length adds one byte
//!   per unit >= 0x80 and one more per unit >= 0x800 that is not a surrogate.
//!
//! **Decoding** of rows already validated: AVX-512 and AVX2 compute every lane's code point as if
//! it started a character and compact the lanes that do (`vpcompressd`; `vpermd` with a table);
//! the SSE2 and NEON paths use [`decode8_masked`] / [`decode16_masked`] here: vector classes give
//! the mask of character starts, all-ASCII (all-BMP) blocks are widened, and the others are
//! assembled without data-dependent branches, one set bit at a time.
//!
//! The scalar reference of each function is in this file too (`*_scalar`): plain per-character
//! code that every path is tested against, as `scalar::KERNELS` uses it.

use crate::decode::{decode_utf8_one, REPLACEMENT};

/// A well-formed UTF-8 row's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utf8Counts {
    /// Code points.
    pub chars: usize,
    /// Code points above U+FFFF (4-byte sequences): each is two UTF-16 units.
    pub astral: usize,
}

/// A UTF-16 row without lone surrogates: its counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utf16Counts {
    /// Code points (units minus surrogate pairs).
    pub chars: usize,
    /// Bytes of its UTF-8 encoding.
    pub utf8_len: usize,
}

/// Bit `i` describes byte `i` of a 64-byte block: `geXX` is "byte >= 0xXX", `eqXX` "byte == 0xXX".
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Classes8 {
    pub ge80: u64,
    pub ge90: u64,
    pub gea0: u64,
    pub gec0: u64,
    pub gec2: u64,
    pub gee0: u64,
    pub gef0: u64,
    pub gef5: u64,
    pub eqe0: u64,
    pub eqed: u64,
    pub eqf0: u64,
    pub eqf4: u64,
}

impl Classes8 {
    /// From the mask of bytes >= 0x80 and `ge(t)` / `eq(t)`, the masks of bytes >= t / == t (each
    /// ISA passes its compares).
    #[inline(always)]
    pub fn collect(ge80: u64, ge: impl Fn(u8) -> u64, eq: impl Fn(u8) -> u64) -> Classes8 {
        Classes8 {
            ge80,
            ge90: ge(0x90),
            gea0: ge(0xA0),
            gec0: ge(0xC0),
            gec2: ge(0xC2),
            gee0: ge(0xE0),
            gef0: ge(0xF0),
            gef5: ge(0xF5),
            eqe0: eq(0xE0),
            eqed: eq(0xED),
            eqf0: eq(0xF0),
            eqf4: eq(0xF4),
        }
    }

    /// The same classes computed byte by byte (tests compare every classifier with it).
    #[cfg(test)]
    pub fn of(block: &[u8; 64]) -> Classes8 {
        let mask = |f: &dyn Fn(u8) -> bool| {
            block
                .iter()
                .enumerate()
                .fold(0u64, |m, (i, &b)| m | ((f(b) as u64) << i))
        };
        Classes8::collect(
            mask(&|b| b >= 0x80),
            |t| mask(&|b| b >= t),
            |t| mask(&|b| b == t),
        )
    }

    #[inline(always)]
    fn cont(&self) -> u64 {
        self.ge80 & !self.gec0
    }
}

/// Validation and counting state across the blocks of one UTF-8 row.
#[derive(Default)]
pub(crate) struct Utf8Check {
    /// Continuation positions asked for by the previous block's last bytes (bits 0..=2).
    req: u64,
    /// Bit 0: the previous block ended in E0 / ED / F0 / F4.
    e0: u64,
    ed: u64,
    f0: u64,
    f4: u64,
    /// Any bit set: ill-formed.
    err: u64,
    chars: usize,
    astral: usize,
}

impl Utf8Check {
    /// A block of 64 ASCII bytes.
    #[inline(always)]
    pub fn ascii(&mut self) {
        self.err |= self.req;
        self.req = 0;
        self.e0 = 0;
        self.ed = 0;
        self.f0 = 0;
        self.f4 = 0;
        self.chars += 64;
    }

    /// A block whose bytes at positions `real` (a low mask: bytes past a row's end are padding,
    /// zero) are the row's.
    #[inline(always)]
    pub fn block(&mut self, c: &Classes8, real: u64) {
        let cont = c.cont();
        let req = (c.gec0 << 1) | (c.gee0 << 2) | (c.gef0 << 3) | self.req;
        let bad = c.gef5
            | (c.gec0 & !c.gec2)
            | (((c.eqe0 << 1) | self.e0) & !c.gea0)
            | (((c.eqed << 1) | self.ed) & c.gea0)
            | (((c.eqf0 << 1) | self.f0) & !c.ge90)
            | (((c.eqf4 << 1) | self.f4) & c.ge90);
        self.err |= (req ^ cont) | bad;
        self.req = (c.gec0 >> 63) | (c.gee0 >> 62) | (c.gef0 >> 61);
        self.e0 = c.eqe0 >> 63;
        self.ed = c.eqed >> 63;
        self.f0 = c.eqf0 >> 63;
        self.f4 = c.eqf4 >> 63;
        self.chars += (!cont & real).count_ones() as usize;
        self.astral += c.gef0.count_ones() as usize;
    }

    #[inline(always)]
    pub fn finish(self) -> Option<Utf8Counts> {
        (self.err | self.req == 0).then_some(Utf8Counts {
            chars: self.chars,
            astral: self.astral,
        })
    }
}

/// The low `n` bits set, `n <= 64`.
#[inline(always)]
pub(crate) fn low_bits(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// Validates and counts a UTF-8 row with `classify` (64 bytes at a pointer -> classes) and
/// `is_ascii` (64 bytes at a pointer -> all below 0x80). The last partial block is copied into a
/// zeroed block (zero is ASCII: it never completes a sequence, so a truncated one stays an error).
///
/// # Safety
/// `classify` and `is_ascii` must be sound to call on any pointer valid for 64 bytes.
#[inline(always)]
pub(crate) unsafe fn scan8(
    src: &[u8],
    classify: impl Fn(*const u8) -> Classes8,
    is_ascii: impl Fn(*const u8) -> bool,
) -> Option<Utf8Counts> {
    // SAFETY: forwarded; the tail classifier reads only the zeroed copy.
    unsafe {
        scan8_with_tail(src, &classify, is_ascii, |rest| {
            let mut pad = [0u8; 64];
            pad[..rest.len()].copy_from_slice(rest);
            classify(pad.as_ptr())
        })
    }
}

/// [`scan8`] with the last partial block (1..=63 bytes) classified by `tail` as if zero-padded
/// (AVX-512 does it with a masked load instead of a copy).
///
/// # Safety
/// As [`scan8`].
#[inline(always)]
pub(crate) unsafe fn scan8_with_tail(
    src: &[u8],
    classify: impl Fn(*const u8) -> Classes8,
    is_ascii: impl Fn(*const u8) -> bool,
    tail: impl Fn(&[u8]) -> Classes8,
) -> Option<Utf8Counts> {
    let mut st = Utf8Check::default();
    let mut chunks = src.chunks_exact(64);
    for b in &mut chunks {
        if is_ascii(b.as_ptr()) {
            st.ascii();
        } else {
            st.block(&classify(b.as_ptr()), u64::MAX);
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        st.block(&tail(rest), low_bits(rest.len()));
    }
    st.finish()
}

/// Bit `i` describes unit `i` of a 32-unit block.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Classes16 {
    /// D800..=DBFF
    pub hi: u32,
    /// DC00..=DFFF
    pub lo: u32,
    pub ge80: u32,
    pub ge800: u32,
}

impl Classes16 {
    #[cfg(test)]
    pub fn of(block: &[u16; 32]) -> Classes16 {
        let mut c = Classes16::default();
        for (i, &u) in block.iter().enumerate() {
            c.hi |= (((u & 0xFC00) == 0xD800) as u32) << i;
            c.lo |= (((u & 0xFC00) == 0xDC00) as u32) << i;
            c.ge80 |= ((u >= 0x80) as u32) << i;
            c.ge800 |= ((u >= 0x800) as u32) << i;
        }
        c
    }
}

#[derive(Default)]
pub(crate) struct Utf16Check {
    /// Bit 0: the previous block ended in a high surrogate.
    carry: u32,
    err: u32,
    chars: usize,
    utf8_len: usize,
}

impl Utf16Check {
    /// A block of 32 units whose positions `real` are the row's (the others are zero padding).
    #[inline(always)]
    pub fn block(&mut self, c: &Classes16, real: u32) {
        self.err |= ((c.hi << 1) | self.carry) ^ c.lo;
        self.carry = c.hi >> 31;
        let n = real.count_ones() as usize;
        self.chars += n - c.hi.count_ones() as usize;
        self.utf8_len +=
            n + c.ge80.count_ones() as usize + (c.ge800 & !(c.hi | c.lo)).count_ones() as usize;
    }

    #[inline(always)]
    pub fn finish(self) -> Option<Utf16Counts> {
        (self.err | self.carry == 0).then_some(Utf16Counts {
            chars: self.chars,
            utf8_len: self.utf8_len,
        })
    }
}

/// Validates and counts a UTF-16 row with `classify` (32 units at a pointer -> classes).
///
/// # Safety
/// `classify` must be sound to call on any pointer valid for 32 units.
#[inline(always)]
pub(crate) unsafe fn scan16(
    src: &[u16],
    classify: impl Fn(*const u16) -> Classes16,
) -> Option<Utf16Counts> {
    // SAFETY: forwarded; the tail classifier reads only the zeroed copy.
    unsafe {
        scan16_with_tail(src, &classify, |rest| {
            let mut pad = [0u16; 32];
            pad[..rest.len()].copy_from_slice(rest);
            classify(pad.as_ptr())
        })
    }
}

/// [`scan16`] with the last partial block (1..=31 units) classified by `tail` as if zero-padded.
///
/// # Safety
/// As [`scan16`].
#[inline(always)]
pub(crate) unsafe fn scan16_with_tail(
    src: &[u16],
    classify: impl Fn(*const u16) -> Classes16,
    tail: impl Fn(&[u16]) -> Classes16,
) -> Option<Utf16Counts> {
    let mut st = Utf16Check::default();
    let mut chunks = src.chunks_exact(32);
    for b in &mut chunks {
        st.block(&classify(b.as_ptr()), u32::MAX);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        st.block(&tail(rest), low_bits(rest.len()) as u32);
    }
    st.finish()
}

// ---------------------------------------------------------------------------------------------
// Decoding helpers shared by the paths.

/// The code point of the sequence whose bytes are the low bytes of `w` (little endian: byte 0
/// is the leading byte), for a well-formed sequence; branch-free (`b0 < 0x80` is a select).
#[inline(always)]
pub(crate) fn assemble8(w: u32) -> u32 {
    let b0 = w & 0xFF;
    let x = ((b0 & 0x1F) << 18)
        | (((w >> 8) & 0x3F) << 12)
        | (((w >> 16) & 0x3F) << 6)
        | ((w >> 24) & 0x3F);
    // By the leading byte's top nibble: C/D 2 bytes, E 3, F 4 (8..B never lead a valid row).
    const SHIFT: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 12, 12, 12, 12, 12, 12, 6, 0];
    const MASK: [u32; 16] = [
        0, 0, 0, 0, 0, 0, 0, 0, 0x7FF, 0x7FF, 0x7FF, 0x7FF, 0x7FF, 0x7FF, 0xFFFF, 0x1FFFFF,
    ];
    let k = (b0 >> 4) as usize;
    let multi = (x >> SHIFT[k]) & MASK[k];
    if b0 < 0x80 {
        b0
    } else {
        multi
    }
}

/// The code point of `u` given the unit after it (`next`): a pair's if `u` is a high surrogate.
#[inline(always)]
pub(crate) fn assemble16(u: u32, next: u32) -> u32 {
    let pair = (u << 10) + next - ((0xD800 << 10) + 0xDC00 - 0x10000);
    if (u & 0xFC00) == 0xD800 {
        pair
    } else {
        u
    }
}

/// Where decoding stopped: `(units consumed, code points written)`.
pub type Decoded = (usize, usize);

/// Decodes valid UTF-8 into code points, 64 bytes at a time, with `starts` for the mask of bytes
/// that start a character (not 80..BF) and `widen` for all-ASCII blocks (64 bytes -> 64 u32). Stops at the end of `src` or once `dst`
/// is full (only whole characters are consumed). On ill-formed input it stays in bounds and
/// returns, with unspecified code points.
///
/// # Safety
/// `starts`, `is_ascii` and `widen` must be sound on any pointers valid for 64 bytes / 64 u32.
#[inline(always)]
pub(crate) unsafe fn decode8_masked(
    src: &[u8],
    dst: &mut [u32],
    starts: impl Fn(*const u8) -> u64,
    is_ascii: impl Fn(*const u8) -> bool,
    widen: impl Fn(*const u8, *mut u32),
) -> Decoded {
    let n = src.len();
    let mut i = 0;
    let mut w = 0;
    // Full blocks with 3 bytes of look-ahead inside `src`.
    while i + 67 <= n && w + 64 <= dst.len() {
        let p = src[i..].as_ptr();
        if is_ascii(p) {
            // SAFETY: 64 bytes at p (i + 67 <= n) and 64 u32 at dst[w..] (w + 64 <= len).
            widen(p, dst[w..].as_mut_ptr());
            w += 64;
        } else {
            w = emit8(&src[i..i + 67], starts(p), dst, w);
        }
        i += 64;
    }
    // The rest: blocks copied into a zeroed buffer (64 bytes + look-ahead).
    while i < n && w < dst.len() {
        let take = (n - i).min(64);
        let mut pad = [0u8; 67];
        pad[..take.min(n - i)].copy_from_slice(&src[i..i + take]);
        let extra = (n - i - take).min(3);
        pad[take..take + extra].copy_from_slice(&src[i + take..i + take + extra]);
        let starts = starts(pad.as_ptr()) & low_bits(take);
        let before = w;
        let room = dst.len() - w;
        if (starts.count_ones() as usize) > room {
            // Stop after `room` characters: at the start of the next one.
            let mut m = starts;
            for _ in 0..room {
                m &= m - 1;
            }
            w = emit8(&pad, starts & !m, dst, w);
            return (i + m.trailing_zeros() as usize, w);
        }
        w = emit8(&pad, starts, dst, w);
        debug_assert!(w >= before);
        i += take;
    }
    // Skip the continuation bytes of a character that started before the stop.
    while i < n && (src[i] & 0xC0) == 0x80 {
        i += 1;
    }
    (i.min(n), w)
}

/// Writes the code points starting at the set bits of `starts` (block offsets; `b` holds the
/// block and at least 3 bytes after the last start) into `dst[w..]` while there is room; returns
/// the new `w`.
#[inline(always)]
fn emit8(b: &[u8], mut starts: u64, dst: &mut [u32], mut w: usize) -> usize {
    while starts != 0 && w < dst.len() {
        let j = starts.trailing_zeros() as usize;
        starts &= starts - 1;
        let word = match b.get(j..j + 4) {
            Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
            None => b[j] as u32,
        };
        dst[w] = assemble8(word);
        w += 1;
    }
    w
}

/// Decodes UTF-16 without lone surrogates into code points, 32 units at a time; `classify` gives
/// the surrogate masks, blocks without surrogates are widened. Contract as [`decode8_masked`].
///
/// # Safety
/// `classify` and `widen` must be sound on any pointers valid for 32 units / 32 u32.
#[inline(always)]
pub(crate) unsafe fn decode16_masked(
    src: &[u16],
    dst: &mut [u32],
    classify: impl Fn(*const u16) -> Classes16,
    widen: impl Fn(*const u16, *mut u32),
) -> Decoded {
    let n = src.len();
    let mut i = 0;
    let mut w = 0;
    while i < n && w < dst.len() {
        let take = (n - i).min(32);
        let full = take == 32 && i + 33 <= n;
        let mut pad = [0u16; 33];
        let b: &[u16] = if full {
            &src[i..i + 33]
        } else {
            let extra = (n - i - take).min(1);
            pad[..take + extra].copy_from_slice(&src[i..i + take + extra]);
            &pad
        };
        let c = classify(b.as_ptr());
        if (c.hi | c.lo) == 0 && take == 32 && w + 32 <= dst.len() {
            widen(b.as_ptr(), dst[w..].as_mut_ptr());
            w += 32;
            i += 32;
            continue;
        }
        let mut keep = !c.lo as u64 & low_bits(take);
        while keep != 0 {
            if w == dst.len() {
                return (i + keep.trailing_zeros() as usize, w);
            }
            let j = keep.trailing_zeros() as usize;
            keep &= keep - 1;
            dst[w] = assemble16(b[j] as u32, b[j + 1] as u32);
            w += 1;
        }
        i += take;
    }
    // A low surrogate whose high one was the last unit consumed.
    if i < n && i > 0 && (src[i] & 0xFC00) == 0xDC00 && (src[i - 1] & 0xFC00) == 0xD800 {
        i += 1;
    }
    (i, w)
}

// ---------------------------------------------------------------------------------------------
// Scalar references.

pub fn utf8_scan_scalar(src: &[u8]) -> Option<Utf8Counts> {
    let mut i = 0;
    let (mut chars, mut astral) = (0, 0);
    while i < src.len() {
        if src[i] < 0x80 {
            i += 1;
        } else {
            let (_, used, ok) = decode_utf8_one(&src[i..]);
            if !ok {
                return None;
            }
            astral += (used == 4) as usize;
            i += used;
        }
        chars += 1;
    }
    Some(Utf8Counts { chars, astral })
}

pub fn utf16_scan_scalar(src: &[u16]) -> Option<Utf16Counts> {
    let mut i = 0;
    let (mut chars, mut utf8_len) = (0, 0);
    while i < src.len() {
        let u = src[i];
        if (u & 0xF800) == 0xD800 {
            match src.get(i + 1) {
                Some(&l) if u < 0xDC00 && (l & 0xFC00) == 0xDC00 => {
                    utf8_len += 4;
                    i += 2;
                }
                _ => return None,
            }
        } else {
            utf8_len += match u {
                0..=0x7F => 1,
                0x80..=0x7FF => 2,
                _ => 3,
            };
            i += 1;
        }
        chars += 1;
    }
    Some(Utf16Counts { chars, utf8_len })
}

pub fn utf8_decode_scalar(src: &[u8], dst: &mut [u32]) -> Decoded {
    let (mut i, mut w) = (0, 0);
    while i < src.len() && w < dst.len() {
        let (cp, used) = if src[i] < 0x80 {
            (src[i] as u32, 1)
        } else {
            let (cp, used, _) = decode_utf8_one(&src[i..]);
            (cp, used)
        };
        dst[w] = cp;
        w += 1;
        i += used;
    }
    (i, w)
}

pub fn utf16_decode_scalar(src: &[u16], dst: &mut [u32]) -> Decoded {
    let (mut i, mut w) = (0, 0);
    while i < src.len() && w < dst.len() {
        let u = src[i] as u32;
        let (cp, used) = match src.get(i + 1) {
            Some(&l) if (u & 0xFC00) == 0xD800 && (l & 0xFC00) == 0xDC00 => {
                (assemble16(u, l as u32), 2)
            }
            _ if (u & 0xF800) == 0xD800 => (REPLACEMENT, 1),
            _ => (u, 1),
        };
        dst[w] = cp;
        w += 1;
        i += used;
    }
    (i, w)
}

/// For each 8-bit lane mask, the indices of its set bits first (`vpermd` compaction), the rest
/// zero.
#[cfg(target_arch = "x86_64")]
pub(crate) static COMPACT8: [[u32; 8]; 256] = {
    let mut t = [[0u32; 8]; 256];
    let mut m = 0;
    while m < 256 {
        let mut k = 0;
        let mut j = 0;
        while j < 8 {
            if m & (1 << j) != 0 {
                t[m][k] = j as u32;
                k += 1;
            }
            j += 1;
        }
        m += 1;
    }
    t
};
