//! The UTF-8 / UTF-16 scans and decoders of every path against the scalar reference, and the
//! scalar reference against std: exhaustively on short sequences (every 1-, 2- and 3-byte
//! string, every code point), malformed bytes at every position of a 64-byte block and across
//! block ends, rows of every length 0..=300 over all planes, lone surrogates, and decoding into
//! every small output capacity (the early stop when the output is full).

use super::tests::Rng;
use super::utf::{self, Classes16, Classes8, Utf16Check, Utf8Check, Utf8Counts};
use super::{available, Kernels};

fn paths() -> Vec<&'static Kernels> {
    available()
        .into_iter()
        .filter(|k| k.name != "scalar")
        .collect()
}

/// What std says about `b`: its counts when it is valid UTF-8.
fn std_counts8(b: &[u8]) -> Option<Utf8Counts> {
    let s = std::str::from_utf8(b).ok()?;
    Some(Utf8Counts {
        chars: s.chars().count(),
        astral: s.chars().filter(|&c| c as u32 >= 0x10000).count(),
    })
}

type Decoder<U> = fn(&[U], &mut [u32]) -> utf::Decoded;

/// The decoders of every path on `src` (well formed, code points `chars`) into outputs of every
/// capacity in `caps`, against the scalar decoder `scalar`; `whole(prefix)` counts the characters
/// of a consumed prefix (`None` if it ends inside one).
fn check_decode<U: Copy + std::fmt::Debug>(
    paths: &[&Kernels],
    src: &[U],
    chars: &[u32],
    caps: &[usize],
    scalar: Decoder<U>,
    path: fn(&Kernels) -> Decoder<U>,
    whole: impl Fn(&[U]) -> Option<usize>,
) {
    for &cap in caps {
        let mut want = vec![0u32; cap];
        let (wu, wn) = scalar(src, &mut want);
        assert_eq!(wn, cap.min(chars.len()));
        assert_eq!(&want[..wn], &chars[..wn], "scalar decode {src:x?}");
        // Whole characters only: the units consumed encode exactly the code points written.
        assert_eq!(whole(&src[..wu]), Some(wn));
        for k in paths {
            let mut got = vec![0xDEADu32; cap + 8];
            let (gu, gn) = path(k)(src, &mut got[..cap]);
            assert_eq!((gu, gn), (wu, wn), "{}: decode cap {cap} {src:x?}", k.name);
            assert_eq!(&got[..gn], &want[..wn], "{}: decode cap {cap}", k.name);
            assert!(
                got[cap..].iter().all(|&x| x == 0xDEAD),
                "{}: wrote past dst",
                k.name
            );
        }
    }
}

/// Output capacities: exactly the characters, or (`small`) every small one and those around the
/// vector widths.
fn caps(chars: usize, small: bool) -> Vec<usize> {
    if !small {
        return vec![chars];
    }
    let mut v: Vec<usize> = (0..=chars.min(20)).collect();
    v.extend([
        15,
        16,
        17,
        31,
        32,
        33,
        63,
        64,
        65,
        chars.saturating_sub(1),
        chars + 5,
    ]);
    v
}

/// Every path's scan and (for valid input) decode of `b` against std and the scalar path;
/// `decode_caps` also decodes into outputs of small capacities.
fn check8(paths: &[&Kernels], b: &[u8], decode_caps: bool) {
    let want = std_counts8(b);
    assert_eq!(utf::utf8_scan_scalar(b), want, "scalar scan {b:x?}");
    for k in paths {
        assert_eq!((k.utf8_scan)(b), want, "{}: scan {b:x?}", k.name);
    }
    let Some(c) = want else {
        // Ill-formed input: the decoders only have to stay in bounds and end.
        for k in paths {
            let mut out = vec![0u32; b.len() + 1];
            let (used, n) = (k.utf8_decode)(b, &mut out);
            assert!(used <= b.len() && n <= out.len(), "{}", k.name);
        }
        return;
    };
    let chars: Vec<u32> = std::str::from_utf8(b)
        .unwrap()
        .chars()
        .map(|c| c as u32)
        .collect();
    check_decode(
        paths,
        b,
        &chars,
        &caps(c.chars, decode_caps),
        utf::utf8_decode_scalar,
        |k| k.utf8_decode,
        |p| std::str::from_utf8(p).ok().map(|s| s.chars().count()),
    );
}

fn check16(paths: &[&Kernels], u: &[u16], decode_caps: bool) {
    let want = String::from_utf16(u).ok().map(|s| utf::Utf16Counts {
        chars: s.chars().count(),
        utf8_len: s.len(),
    });
    assert_eq!(utf::utf16_scan_scalar(u), want, "scalar scan {u:x?}");
    for k in paths {
        assert_eq!((k.utf16_scan)(u), want, "{}: scan {u:x?}", k.name);
    }
    let Some(c) = want else {
        for k in paths {
            let mut out = vec![0u32; u.len() + 1];
            let (used, n) = (k.utf16_decode)(u, &mut out);
            assert!(used <= u.len() && n <= out.len(), "{}", k.name);
        }
        return;
    };
    let chars: Vec<u32> = char::decode_utf16(u.iter().copied())
        .map(|c| c.unwrap() as u32)
        .collect();
    check_decode(
        paths,
        u,
        &chars,
        &caps(c.chars, decode_caps),
        utf::utf16_decode_scalar,
        |k| k.utf16_decode,
        |p| String::from_utf16(p).ok().map(|s| s.chars().count()),
    );
}

#[test]
fn every_short_byte_sequence_at_every_block_position() {
    let paths = paths();
    // 1- and 2-byte strings at every offset of a block (and across its end), in ASCII.
    for a in 0..=255u8 {
        for b in 0..=255u8 {
            for at in [0usize, 1, 31, 62, 63, 64] {
                let mut row = vec![b'x'; at];
                row.extend([a, b]);
                row.extend(b"yz");
                check8(&paths, &row, false);
                check8(&paths, &row[..at + 1], false);
                check8(&paths, &row[..at + 2], false);
            }
        }
    }
}

#[test]
fn every_three_byte_sequence_across_a_block_end() {
    let paths = paths();
    let mut row = vec![b'a'; 70];
    for x in 0..(1u32 << 24) {
        let [a, b, c, _] = x.to_le_bytes();
        row[62..65].copy_from_slice(&[a, b, c]);
        let want = std_counts8(&row);
        for k in &paths {
            assert_eq!((k.utf8_scan)(&row), want, "{}: {a:x} {b:x} {c:x}", k.name);
        }
        if a >= 0xE0 && want.is_some() {
            check8(&paths, &row, false);
        }
    }
}

#[test]
fn every_code_point_at_every_alignment() {
    let paths = paths();
    for cp in (0..=0x10FFFFu32).filter_map(char::from_u32) {
        let mut buf = [0u8; 4];
        let enc = cp.encode_utf8(&mut buf).as_bytes();
        // 60..=63: the sequence ends in the first block or crosses into the second.
        let at = 60 + (cp as usize % 4);
        let mut row = vec![b'.'; at];
        row.extend(enc);
        check8(&paths, &row, false);
        // Truncated: every proper prefix of a multi-byte sequence is an error.
        for cut in 1..enc.len() {
            assert_eq!((paths[0].utf8_scan)(&row[..at + cut]), None);
        }
        let units: Vec<u16> = cp.encode_utf16(&mut [0u16; 2]).to_vec();
        let mut row16 = vec![0x2Eu16; 30 + (cp as usize % 3)];
        row16.extend(&units);
        check16(&paths, &row16, false);
    }
}

#[test]
fn four_byte_sequences_of_boundary_bytes() {
    let paths = paths();
    let pool = [
        0x00u8, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1,
        0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF,
    ];
    for &a in &pool {
        for &b in &pool {
            for &c in &pool {
                for &d in &pool {
                    for at in [0usize, 61] {
                        let mut row = vec![b'q'; at];
                        row.extend([a, b, c, d]);
                        check8(&paths, &row, false);
                    }
                }
            }
        }
    }
}

/// Valid rows of mixed text: ASCII, 2-, 3- and 4-byte characters from every plane.
fn random_text(rng: &mut Rng, chars: usize) -> String {
    (0..chars)
        .map(|_| {
            let cp = match rng.below(8) {
                0..=3 => 0x20 + rng.below(0x5F) as u32,
                4 => 0x80 + rng.below(0x780) as u32,
                5 => 0x800 + rng.below(0xF800) as u32,
                _ => 0x10000 + rng.below(0x100000) as u32,
            };
            char::from_u32(cp).unwrap_or('\u{FFFD}')
        })
        .collect()
}

#[test]
fn rows_of_every_length_with_a_bad_byte_anywhere() {
    let paths = paths();
    let mut rng = Rng::new(0x1234_5678_9ABC_DEF1);
    let bad = [
        0x80u8, 0xBF, 0xC0, 0xC1, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xF5, 0xFF,
    ];
    for len in 0..=300usize {
        let s = random_text(&mut rng, len);
        let b = s.as_bytes();
        check8(&paths, b, len % 16 == 0);
        // Cut anywhere (a truncated sequence at the row end).
        check8(&paths, &b[..rng.below(b.len() as u64 + 1) as usize], false);
        if len <= 130 {
            for pos in 0..b.len() {
                let mut m = b.to_vec();
                m[pos] = bad[(pos + len) % bad.len()];
                check8(&paths, &m, false);
            }
        }
    }
}

#[test]
fn decoding_into_every_small_output() {
    let paths = paths();
    let mut rng = Rng::new(77);
    for len in [1usize, 5, 15, 16, 17, 40, 63, 64, 65, 100, 129] {
        for _ in 0..8 {
            let s = random_text(&mut rng, len);
            check8(&paths, s.as_bytes(), true);
            let u: Vec<u16> = s.encode_utf16().collect();
            check16(&paths, &u, true);
        }
    }
}

#[test]
fn utf16_rows_of_every_length_with_lone_surrogates() {
    let paths = paths();
    let mut rng = Rng::new(0xFEED_F00D_1234_5679);
    for len in 0..=300usize {
        let s = random_text(&mut rng, len);
        let u: Vec<u16> = s.encode_utf16().collect();
        check16(&paths, &u, false);
        for _ in 0..6 {
            if u.is_empty() {
                break;
            }
            let mut m = u.clone();
            let pos = rng.below(m.len() as u64) as usize;
            m[pos] = [0xD800, 0xDBFF, 0xDC00, 0xDFFF][rng.below(4) as usize];
            check16(&paths, &m, false);
            // A pair split by a cut at the row end.
            check16(&paths, &u[..rng.below(u.len() as u64 + 1) as usize], false);
        }
    }
    // Surrogates at both sides of every block boundary.
    for at in 0..70usize {
        for &(a, b) in &[
            (0xD800u16, 0xDC00u16),
            (0xDBFF, 0xDFFF),
            (0xDC00, 0xD800),
            (0xD800, 0x41),
        ] {
            let mut m = vec![0x41u16; at];
            m.extend([a, b]);
            check16(&paths, &m, false);
            check16(&paths, &m[..at + 1], false);
        }
    }
}

#[test]
fn the_mask_algorithms_match_the_scalar_scans() {
    // The generic block checks of utf.rs on byte-by-byte classes, independent of any ISA.
    let mut rng = Rng::new(99);
    for len in 0..=200usize {
        let s = random_text(&mut rng, len);
        let mut b = s.into_bytes();
        if len % 3 == 0 && !b.is_empty() {
            let p = rng.below(b.len() as u64) as usize;
            b[p] = rng.below(256) as u8;
        }
        let mut st = Utf8Check::default();
        for chunk in b.chunks(64) {
            let mut blk = [0u8; 64];
            blk[..chunk.len()].copy_from_slice(chunk);
            st.block(&Classes8::of(&blk), utf::low_bits(chunk.len()));
        }
        assert_eq!(st.finish(), utf::utf8_scan_scalar(&b), "{b:x?}");
        let u: Vec<u16> = String::from_utf8_lossy(&b).encode_utf16().collect();
        let mut u = u;
        if len % 4 == 1 && !u.is_empty() {
            let p = rng.below(u.len() as u64) as usize;
            u[p] = 0xD800 + rng.below(0x800) as u16;
        }
        let mut st = Utf16Check::default();
        for chunk in u.chunks(32) {
            let mut blk = [0u16; 32];
            blk[..chunk.len()].copy_from_slice(chunk);
            st.block(&Classes16::of(&blk), utf::low_bits(chunk.len()) as u32);
        }
        assert_eq!(st.finish(), utf::utf16_scan_scalar(&u), "{u:x?}");
    }
}
