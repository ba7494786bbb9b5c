//! Row decoders: turn one row (UTF-16 units or UTF-8 bytes) into content tokens for an encoding,
//! as runs that map 1:1 onto tokens (the SIMD fast path) and single tokens (everything else).

use crate::simd::Kernels;
use crate::Encoding;

/// Receives a row's content tokens in order. Each method returns `false` to stop early.
pub trait Sink {
    /// Units that become tokens `unit + add` one for one.
    fn run16(&mut self, units: &[u16], add: u32) -> bool;
    /// Bytes that become tokens `byte + add` one for one.
    fn run8(&mut self, bytes: &[u8], add: u32) -> bool;
    fn token(&mut self, id: u32) -> bool;
}

pub(crate) const REPLACEMENT: u32 = 0xFFFD;

/// How a measured row becomes tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One unit, one token (ASCII; BMP without surrogates; valid UTF-8 for the byte encodings).
    Simple,
    /// Well formed, decoded with the vector decoders ([`valid_tokens8`], [`valid_tokens16`]).
    Valid,
    /// Ill-formed (`invalid: 'replace'`): the per-character decoders of this module.
    Slow,
}

/// Code points decoded per chunk by [`valid_tokens8`] and [`valid_tokens16`] (on the stack).
const CHUNK: usize = 256;

/// The content tokens of a well-formed UTF-8 row, in chunks (see `Unit::valid_tokens`).
pub(crate) fn valid_tokens8(
    row: &[u8],
    enc: Encoding,
    k: &Kernels,
    f: &mut dyn FnMut(&[u32]) -> bool,
) {
    let mut cps = [0u32; CHUNK];
    let mut units = [0u32; 2 * CHUNK];
    let mut i = 0;
    while i < row.len() {
        let (used, n) = (k.utf8_decode)(&row[i..], &mut cps);
        i += used;
        let go = match enc {
            Encoding::Utf16 => {
                let mut m = 0;
                for &cp in &cps[..n] {
                    if cp >= 0x10000 {
                        let c = cp - 0x10000;
                        units[m] = 0xD800 + (c >> 10);
                        units[m + 1] = 0xDC00 + (c & 0x3FF);
                        m += 2;
                    } else {
                        units[m] = cp;
                        m += 1;
                    }
                }
                f(&units[..m])
            }
            _ => f(&cps[..n]),
        };
        if !go || used == 0 {
            return;
        }
    }
}

/// The content tokens of a UTF-16 row without lone surrogates, in chunks.
pub(crate) fn valid_tokens16(
    row: &[u16],
    enc: Encoding,
    k: &Kernels,
    f: &mut dyn FnMut(&[u32]) -> bool,
) {
    if let Encoding::Utf8 | Encoding::Byt5 = enc {
        return utf8_tokens16(row, byte_add(enc), f);
    }
    let mut cps = [0u32; CHUNK];
    let mut i = 0;
    while i < row.len() {
        let (used, n) = (k.utf16_decode)(&row[i..], &mut cps);
        i += used;
        if !f(&cps[..n]) || used == 0 {
            return;
        }
    }
}

/// The UTF-8 bytes (+ `add`) of a UTF-16 row without lone surrogates, in chunks, encoded unit by
/// unit (a call to the ASCII scan per run cost more than the runs of mixed text).
fn utf8_tokens16(row: &[u16], add: u32, f: &mut dyn FnMut(&[u32]) -> bool) {
    let mut buf = [0u32; 4 * CHUNK];
    let (mut i, mut m) = (0, 0);
    while i < row.len() {
        // Room for one more character.
        if m + 4 > buf.len() {
            if !f(&buf[..m]) {
                return;
            }
            m = 0;
        }
        let u = row[i] as u32;
        if u < 0x80 {
            buf[m] = u + add;
            m += 1;
            i += 1;
            continue;
        }
        if u < 0x800 {
            buf[m] = (0xC0 | (u >> 6)) + add;
            buf[m + 1] = (0x80 | (u & 0x3F)) + add;
            m += 2;
            i += 1;
        } else if (u & 0xFC00) == 0xD800 && i + 1 < row.len() {
            let cp = 0x10000 + ((u - 0xD800) << 10) + (row[i + 1] as u32).wrapping_sub(0xDC00);
            buf[m] = (0xF0 | (cp >> 18)) + add;
            buf[m + 1] = (0x80 | ((cp >> 12) & 0x3F)) + add;
            buf[m + 2] = (0x80 | ((cp >> 6) & 0x3F)) + add;
            buf[m + 3] = (0x80 | (cp & 0x3F)) + add;
            m += 4;
            i += 2;
        } else {
            // BMP outside the surrogates (the row has no lone one: see `Kind::Valid`).
            buf[m] = (0xE0 | (u >> 12)) + add;
            buf[m + 1] = (0x80 | ((u >> 6) & 0x3F)) + add;
            buf[m + 2] = (0x80 | (u & 0x3F)) + add;
            m += 3;
            i += 1;
        }
    }
    if m > 0 {
        f(&buf[..m]);
    }
}

/// Offset added to UTF-8 bytes by the encoding (ByT5 shifts by its 3 special ids).
#[inline]
pub(crate) fn byte_add(enc: Encoding) -> u32 {
    if enc == Encoding::Byt5 {
        3
    } else {
        0
    }
}

/// Decodes one UTF-16 row. `Err(unit)` is the first lone surrogate when `strict`.
pub(crate) fn decode16<S: Sink>(
    row: &[u16],
    enc: Encoding,
    strict: bool,
    k: &Kernels,
    s: &mut S,
) -> Result<(), usize> {
    let mut i = 0;
    match enc {
        Encoding::Utf16 => {
            s.run16(row, 0);
        }
        Encoding::Codepoint | Encoding::Canine => loop {
            let n = (k.bmp_prefix)(&row[i..]);
            if n > 0 {
                if !s.run16(&row[i..i + n], 0) {
                    return Ok(());
                }
                i += n;
            }
            if i >= row.len() {
                return Ok(());
            }
            let (cp, used) = match surrogate_pair(row, i) {
                Some(cp) => (cp, 2),
                None if strict => return Err(i),
                None => (REPLACEMENT, 1),
            };
            if !s.token(cp) {
                return Ok(());
            }
            i += used;
        },
        Encoding::Utf8 | Encoding::Byt5 => {
            let add = byte_add(enc);
            loop {
                let n = (k.ascii_prefix_u16)(&row[i..]);
                if n > 0 {
                    if !s.run16(&row[i..i + n], add) {
                        return Ok(());
                    }
                    i += n;
                }
                if i >= row.len() {
                    return Ok(());
                }
                let u = row[i] as u32;
                let (cp, used) = if (0xD800..=0xDFFF).contains(&u) {
                    match surrogate_pair(row, i) {
                        Some(cp) => (cp, 2),
                        None if strict => return Err(i),
                        None => (REPLACEMENT, 1),
                    }
                } else {
                    (u, 1)
                };
                let mut buf = [0u8; 4];
                let bytes = encode_utf8(cp, &mut buf);
                for &b in bytes {
                    if !s.token(b as u32 + add) {
                        return Ok(());
                    }
                }
                i += used;
            }
        }
    }
    Ok(())
}

/// The code point of a valid high+low pair starting at `i`, or `None` for a lone surrogate.
#[inline]
fn surrogate_pair(row: &[u16], i: usize) -> Option<u32> {
    let hi = row[i] as u32;
    if (0xD800..=0xDBFF).contains(&hi) {
        if let Some(&lo) = row.get(i + 1) {
            let lo = lo as u32;
            if (0xDC00..=0xDFFF).contains(&lo) {
                return Some(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
            }
        }
    }
    None
}

#[inline]
fn encode_utf8(cp: u32, buf: &mut [u8; 4]) -> &[u8] {
    // cp is a scalar value here (surrogates were replaced), so this cannot fail.
    match char::from_u32(cp) {
        Some(c) => c.encode_utf8(buf).as_bytes(),
        None => {
            buf[..3].copy_from_slice(&[0xEF, 0xBF, 0xBD]);
            &buf[..3]
        }
    }
}

/// Decodes one code point at the start of `b` (`b[0] >= 0x80`) as the WHATWG UTF-8 decoder does:
/// `(code point or U+FFFD, bytes consumed, well-formed)`. An ill-formed maximal subpart is consumed
/// whole and gives one U+FFFD; the byte that broke it is not consumed.
#[inline]
pub(crate) fn decode_utf8_one(b: &[u8]) -> (u32, usize, bool) {
    let b0 = b[0];
    let (need, mut lo, mut hi, init) = match b0 {
        0xC2..=0xDF => (1, 0x80, 0xBF, b0 as u32 & 0x1F),
        0xE0 => (2, 0xA0, 0xBF, b0 as u32 & 0x0F),
        0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF, b0 as u32 & 0x0F),
        0xED => (2, 0x80, 0x9F, b0 as u32 & 0x0F),
        0xF0 => (3, 0x90, 0xBF, b0 as u32 & 0x07),
        0xF1..=0xF3 => (3, 0x80, 0xBF, b0 as u32 & 0x07),
        0xF4 => (3, 0x80, 0x8F, b0 as u32 & 0x07),
        _ => return (REPLACEMENT, 1, false),
    };
    let mut cp = init;
    for i in 1..=need {
        match b.get(i) {
            Some(&c) if (lo..=hi).contains(&c) => {
                cp = (cp << 6) | (c as u32 & 0x3F);
                lo = 0x80;
                hi = 0xBF;
            }
            _ => return (REPLACEMENT, i, false),
        }
    }
    (cp, need + 1, true)
}

/// Decodes one UTF-8 row as if it were first decoded to a string. `Err(byte)` is the start of the
/// first ill-formed subpart when `strict`.
pub(crate) fn decode8<S: Sink>(
    row: &[u8],
    enc: Encoding,
    strict: bool,
    k: &Kernels,
    s: &mut S,
) -> Result<(), usize> {
    let add = byte_add(enc);
    let mut i = 0;
    loop {
        let n = (k.ascii_prefix)(&row[i..]);
        if n > 0 {
            if !s.run8(&row[i..i + n], add) {
                return Ok(());
            }
            i += n;
        }
        if i >= row.len() {
            return Ok(());
        }
        let (cp, used, ok) = decode_utf8_one(&row[i..]);
        if !ok && strict {
            return Err(i);
        }
        let go = match enc {
            Encoding::Codepoint | Encoding::Canine => s.token(cp),
            Encoding::Utf16 => {
                if cp >= 0x10000 {
                    let c = cp - 0x10000;
                    s.token(0xD800 + (c >> 10)) && s.token(0xDC00 + (c & 0x3FF))
                } else {
                    s.token(cp)
                }
            }
            Encoding::Utf8 | Encoding::Byt5 => {
                if ok {
                    s.run8(&row[i..i + used], add)
                } else {
                    s.token(0xEF + add) && s.token(0xBF + add) && s.token(0xBD + add)
                }
            }
        };
        if !go {
            return Ok(());
        }
        i += used;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whatwg(bytes: &[u8]) -> Vec<u32> {
        // Reference: std's lossy decoding follows the same maximal-subpart rule.
        String::from_utf8_lossy(bytes)
            .chars()
            .map(|c| c as u32)
            .collect()
    }

    struct Collect(Vec<u32>);
    impl Sink for Collect {
        fn run16(&mut self, u: &[u16], add: u32) -> bool {
            self.0.extend(u.iter().map(|&x| x as u32 + add));
            true
        }
        fn run8(&mut self, b: &[u8], add: u32) -> bool {
            self.0.extend(b.iter().map(|&x| x as u32 + add));
            true
        }
        fn token(&mut self, id: u32) -> bool {
            self.0.push(id);
            true
        }
    }

    #[test]
    fn maximal_subparts_match_std_lossy() {
        let k = &crate::simd::scalar::KERNELS;
        let cases: &[&[u8]] = &[
            b"abc",
            &[0xE2, 0x82],
            &[0xE2, 0x82, 0x41],
            &[0xED, 0xA0, 0x80],
            &[0xF4, 0x90, 0x80, 0x80],
            &[0xC0, 0xAF],
            &[0x80, 0x80],
            &[0xF0, 0x9F, 0x98, 0x80, 0xF0, 0x9F],
            &[0xFF, 0x61, 0xE0, 0x80],
        ];
        for &c in cases {
            let mut out = Collect(vec![]);
            decode8(c, Encoding::Codepoint, false, k, &mut out).unwrap();
            assert_eq!(out.0, whatwg(c), "{c:x?}");
        }
        // exhaustive over all 1..=3 byte sequences of interesting bytes
        let pool = [
            0x00u8, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xE1,
            0xED, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xFF,
        ];
        for &a in &pool {
            for &b in &pool {
                for &c in &pool {
                    for &d in &pool {
                        let s = [a, b, c, d];
                        let mut out = Collect(vec![]);
                        decode8(&s, Encoding::Codepoint, false, k, &mut out).unwrap();
                        assert_eq!(out.0, whatwg(&s), "{s:x?}");
                        let strict =
                            decode8(&s, Encoding::Codepoint, true, k, &mut Collect(vec![]));
                        assert_eq!(strict.is_ok(), std::str::from_utf8(&s).is_ok(), "{s:x?}");
                    }
                }
            }
        }
    }

    #[test]
    fn strict_reports_first_bad_byte() {
        let k = &crate::simd::scalar::KERNELS;
        let r = decode8(
            b"ab\xE2\x82c",
            Encoding::Utf8,
            true,
            k,
            &mut Collect(vec![]),
        );
        assert_eq!(r, Err(2));
        let r = decode16(
            &[0x61, 0xDC00, 0x62],
            Encoding::Codepoint,
            true,
            k,
            &mut Collect(vec![]),
        );
        assert_eq!(r, Err(1));
        let r = decode16(
            &[0x61, 0xDC00],
            Encoding::Utf16,
            true,
            k,
            &mut Collect(vec![]),
        );
        assert_eq!(r, Ok(()));
    }
}
