//! Every available path against the scalar reference, primitive by primitive.
//!
//! Lengths 0..=300 (every vector width, unroll factor and tail shape of every path), the special
//! unit at every position (and none), start offsets 0..64 into a larger buffer, random data, and
//! the widenings at the edges of each element type (only values that fit, as the callers
//! guarantee). Widen outputs are written into a padded buffer so that writes outside the
//! destination slice are caught too.

use super::{available, by_name, kernels, scalar, select, Elem, Kernels};

/// xorshift64* — small, deterministic, no dependency.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next() % (hi as u64 - lo as u64 + 1)) as u32
    }
}

/// Every path except the reference itself (all of them are compared with `scalar`).
fn paths() -> Vec<&'static Kernels> {
    available()
        .into_iter()
        .filter(|k| k.name != "scalar")
        .collect()
}

const MAX_LEN: usize = 300;

// ---------------------------------------------------------------------------------------------
// Scan checkers

fn check_u8_scans(paths: &[&Kernels], src: &[u8], what: &dyn Fn() -> String) {
    let want = scalar::ascii_prefix(src);
    for k in paths {
        let got = (k.ascii_prefix)(src);
        assert_eq!(
            got,
            want,
            "{}: ascii_prefix len {}: {}",
            k.name,
            src.len(),
            what()
        );
    }
}

fn check_u16_scans(paths: &[&Kernels], src: &[u16], what: &dyn Fn() -> String) {
    let want_a = scalar::ascii_prefix_u16(src);
    let want_b = scalar::bmp_prefix(src);
    let want_m = scalar::max_u16(src);
    for k in paths {
        let n = src.len();
        assert_eq!(
            (k.ascii_prefix_u16)(src),
            want_a,
            "{}: ascii_prefix_u16 len {n}: {}",
            k.name,
            what()
        );
        assert_eq!(
            (k.bmp_prefix)(src),
            want_b,
            "{}: bmp_prefix len {n}: {}",
            k.name,
            what()
        );
        assert_eq!(
            (k.max_u16)(src),
            want_m,
            "{}: max_u16 len {n}: {}",
            k.name,
            what()
        );
    }
}

/// Bytes >= 0x80 of every kind worth telling apart.
const SPECIAL_U8: [u8; 4] = [0x80, 0x81, 0xC3, 0xFF];

/// Units that must stop `ascii_prefix_u16` and/or `bmp_prefix`, or move `max_u16`: the first
/// non-ASCII unit, a high byte alone, the unit before / first / last of each surrogate kind /
/// after the surrogates, the sign bit alone, and the max.
const SPECIAL_U16: [u16; 12] = [
    0x0080, 0x00FF, 0x0100, 0x7FFF, 0x8000, 0xD7FF, 0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0xE000, 0xFFFF,
];

fn ascii_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    // Include 0x00 and 0x7F (the edges of "ASCII") often.
    (0..n)
        .map(|_| match rng.next() % 8 {
            0 => 0x00,
            1 => 0x7F,
            _ => rng.range(0, 0x7F) as u8,
        })
        .collect()
}

fn ascii_units(rng: &mut Rng, n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| match rng.next() % 8 {
            0 => 0x00,
            1 => 0x7F,
            _ => rng.range(0, 0x7F) as u16,
        })
        .collect()
}

/// Non-surrogate units of every magnitude, with the units next to the surrogate range often.
fn bmp_units(rng: &mut Rng, n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| match rng.next() % 8 {
            0 => 0xD7FF,
            1 => 0xE000,
            2 => 0xFFFF,
            3 => rng.range(0, 0x7F) as u16,
            _ => loop {
                let u = rng.range(0, 0xFFFF) as u16;
                if !(0xD800..=0xDFFF).contains(&u) {
                    break u;
                }
            },
        })
        .collect()
}

#[test]
fn available_lists_paths_best_first() {
    let names: Vec<&str> = available().iter().map(|k| k.name).collect();
    assert_eq!(names.last(), Some(&"scalar"), "{names:?}");
    let order = ["avx512", "avx2", "sse2", "neon", "scalar"];
    let ranks: Vec<usize> = names
        .iter()
        .map(|n| order.iter().position(|o| o == n).unwrap())
        .collect();
    assert!(
        ranks.windows(2).all(|w| w[0] < w[1]),
        "not best first, or a duplicate: {names:?}"
    );

    #[cfg(target_arch = "x86_64")]
    {
        let has = |n: &str| names.contains(&n);
        assert_eq!(has("sse2"), is_x86_feature_detected!("sse2"));
        assert_eq!(has("avx2"), is_x86_feature_detected!("avx2"));
        assert_eq!(
            has("avx512"),
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
        );
        assert!(!has("neon"));
    }
    #[cfg(target_arch = "aarch64")]
    assert_eq!(names[0], "neon");
}

#[test]
fn select_switches_the_active_path() {
    let before = kernels().name;
    for k in available() {
        assert_eq!(select(k.name), Ok(k.name));
        assert_eq!(kernels().name, k.name);
        assert!(std::ptr::eq(by_name(k.name).unwrap(), k));
    }
    let err = select("no-such-isa").unwrap_err();
    let names: Vec<&str> = available().iter().map(|k| k.name).collect();
    assert!(err.contains("'no-such-isa'"), "{err}");
    assert!(
        err.ends_with(&format!("available: {}", names.join(", "))),
        "{err}"
    );
    // A failed select leaves the active path alone.
    assert_eq!(kernels().name, "scalar");
    assert_eq!(select(before), Ok(before));
    assert_eq!(kernels().name, before);
}

#[test]
fn ascii_prefix_every_length_and_position() {
    let paths = paths();
    let mut rng = Rng::new(1);
    for len in 0..=MAX_LEN {
        let base = ascii_bytes(&mut rng, len);
        check_u8_scans(&paths, &base, &|| "no special".into());
        for pos in 0..len {
            for &sp in &SPECIAL_U8 {
                let mut s = base.clone();
                s[pos] = sp;
                check_u8_scans(&paths, &s, &|| format!("{sp:#x} at {pos}"));
                // A later special must not win over the first one.
                if pos + 1 < len {
                    let last = len - 1;
                    s[last] = 0xFF;
                    check_u8_scans(&paths, &s, &|| {
                        format!("{sp:#x} at {pos} and 0xff at {last}")
                    });
                }
            }
        }
        // All non-ASCII.
        check_u8_scans(&paths, &vec![0x80; len], &|| "all 0x80".into());
    }
}

#[test]
fn u16_scans_every_length_and_position() {
    let paths = paths();
    let mut rng = Rng::new(2);
    for len in 0..=MAX_LEN {
        for base in [ascii_units(&mut rng, len), bmp_units(&mut rng, len)] {
            check_u16_scans(&paths, &base, &|| "no special".into());
            for pos in 0..len {
                for &sp in &SPECIAL_U16 {
                    let mut s = base.clone();
                    s[pos] = sp;
                    check_u16_scans(&paths, &s, &|| {
                        format!("{sp:#x} at {pos} in {:?}", &base[..4.min(len)])
                    });
                }
            }
        }
        for &fill in &[0u16, 0x7F, 0x80, 0xD800, 0xDFFF, 0xFFFF] {
            check_u16_scans(&paths, &vec![fill; len], &|| format!("all {fill:#x}"));
        }
    }
}

#[test]
fn scans_every_start_offset() {
    let paths = paths();
    let mut rng = Rng::new(3);
    let bytes = ascii_bytes(&mut rng, 64 + MAX_LEN + 64);
    let units = bmp_units(&mut rng, 64 + MAX_LEN + 64);
    let ascii16 = ascii_units(&mut rng, 64 + MAX_LEN + 64);
    for off in 0..64 {
        for len in (0..=MAX_LEN).filter(|l| *l <= 140 || l % 7 == 0) {
            let positions = [
                None,
                Some(0),
                Some(len / 3),
                Some(len / 2),
                Some(len.saturating_sub(1)),
            ];
            for p in positions {
                let mut b = bytes.clone();
                let mut u = units.clone();
                let mut a = ascii16.clone();
                if let Some(p) = p.filter(|p| *p < len) {
                    b[off + p] = 0x80 | (p as u8);
                    u[off + p] = 0xD800 | (p as u16 & 0x7FF);
                    a[off + p] = 0x80 + p as u16;
                }
                // Specials just outside the slice on both sides must not be seen.
                b[off + len] = 0xFF;
                u[off + len] = 0xDFFF;
                a[off + len] = 0xFFFF;
                if off > 0 {
                    b[off - 1] = 0xFF;
                    u[off - 1] = 0xD800;
                    a[off - 1] = 0xFFFF;
                }
                let what = || format!("offset {off}, special at {p:?}");
                check_u8_scans(&paths, &b[off..off + len], &what);
                check_u16_scans(&paths, &u[off..off + len], &what);
                check_u16_scans(&paths, &a[off..off + len], &what);
            }
        }
    }
}

#[test]
fn scans_random() {
    let paths = paths();
    let mut rng = Rng::new(4);
    for round in 0..3000 {
        let len = match round % 4 {
            0 => rng.range(0, 64),
            1 => rng.range(0, 600),
            _ => rng.range(0, 5000),
        } as usize;
        // One special per `density` units on average, from "everywhere" to "almost never".
        let density = [1u64, 2, 16, 200, 5000, u64::MAX][round % 6];
        let b: Vec<u8> = (0..len)
            .map(|_| {
                if rng.next().is_multiple_of(density) {
                    rng.range(0x80, 0xFF) as u8
                } else {
                    rng.range(0, 0x7F) as u8
                }
            })
            .collect();
        let u: Vec<u16> = (0..len)
            .map(|_| {
                if rng.next().is_multiple_of(density) {
                    rng.range(0xD800, 0xDFFF) as u16
                } else if round % 2 == 0 {
                    rng.range(0, 0x7F) as u16
                } else {
                    bmp_units(&mut rng, 1)[0]
                }
            })
            .collect();
        let off = rng.range(0, len.min(63) as u32) as usize;
        let what = || format!("round {round}, off {off}");
        check_u8_scans(&paths, &b[off..], &what);
        check_u16_scans(&paths, &u[off..], &what);
        // Fully random units (any mix of ASCII, BMP, surrogates).
        let r: Vec<u16> = (0..len).map(|_| rng.next() as u16).collect();
        check_u16_scans(&paths, &r[off..], &what);
    }
}

#[test]
fn max_u16_finds_the_max_anywhere() {
    let paths = paths();
    let mut rng = Rng::new(5);
    for len in 1..=MAX_LEN {
        let base: Vec<u16> = (0..len).map(|_| rng.range(0, 0x7FFF) as u16).collect();
        for pos in 0..len {
            for &m in &[0x8000u16, 0xFFFF, 0x7FFF] {
                let mut s = base.clone();
                s[pos] = m;
                check_u16_scans(&paths, &s, &|| format!("{m:#x} at {pos}"));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Widen checkers

const PAD: usize = 9;

/// Runs `f` and the reference on the same padded destination (so writes outside
/// `dst[PAD + doff..][..n]` show up) and compares the whole buffers.
fn check_widen<S: Copy, T: Elem>(
    name: &str,
    path: &str,
    src: &[S],
    doff: usize,
    run: &dyn Fn(&[S], &mut [T]),
    reference: &dyn Fn(&[S], &mut [T]),
    what: &dyn Fn() -> String,
) {
    let n = src.len();
    let sentinel = T::from_i32(0x5A);
    let mut want = vec![sentinel; n + 2 * PAD + doff];
    let mut got = want.clone();
    reference(src, &mut want[PAD + doff..PAD + doff + n]);
    run(src, &mut got[PAD + doff..PAD + doff + n]);
    assert!(
        got == want,
        "{path}: {name} len {n}, dst offset {doff}: {}\n got {got:?}\nwant {want:?}",
        what()
    );
}

/// Every `widen_u8_*` of every path on `src` with `add`, for each type all values fit in.
fn check_widen_u8(
    paths: &[&Kernels],
    src: &[u8],
    add: i32,
    doff: usize,
    what: &dyn Fn() -> String,
) {
    let max = src.iter().copied().max().unwrap_or(0) as i64 + add as i64;
    let min = src.iter().copied().min().unwrap_or(0) as i64 + add as i64;
    let fits = |lo: i64, hi: i64| min >= lo && max <= hi;
    for k in paths {
        let p = k.name;
        macro_rules! go {
            ($field:ident, $t:ty) => {
                check_widen::<u8, $t>(
                    stringify!($field),
                    p,
                    src,
                    doff,
                    &|s, d| (k.$field)(s, add, d),
                    &|s, d| scalar::widen_u8::<$t>(s, add, d),
                    &|| format!("add {add}: {}", what()),
                )
            };
        }
        if fits(i32::MIN as i64, i32::MAX as i64) {
            go!(widen_u8_i32, i32);
            // f32 conversion is defined for every i32 (rounded to nearest even), so test all.
            go!(widen_u8_f32, f32);
            go!(widen_u8_i64, i64);
        }
        if fits(i16::MIN as i64, i16::MAX as i64) {
            go!(widen_u8_i16, i16);
        }
        if fits(0, u16::MAX as i64) {
            go!(widen_u8_u16, u16);
        }
        if fits(0, u8::MAX as i64) {
            go!(widen_u8_u8, u8);
        }
    }
}

/// Every `widen_u16_*` of every path on `src`, for each type all values fit in.
fn check_widen_u16(paths: &[&Kernels], src: &[u16], doff: usize, what: &dyn Fn() -> String) {
    let max = src.iter().copied().max().unwrap_or(0);
    for k in paths {
        let p = k.name;
        macro_rules! go {
            ($field:ident, $t:ty) => {
                check_widen::<u16, $t>(
                    stringify!($field),
                    p,
                    src,
                    doff,
                    &|s, d| (k.$field)(s, d),
                    &|s, d| scalar::widen_u16::<$t>(s, d),
                    what,
                )
            };
        }
        go!(widen_u16_i32, i32);
        go!(widen_u16_f32, f32);
        go!(widen_u16_i64, i64);
        go!(widen_u16_u16, u16);
        if max <= i16::MAX as u16 {
            go!(widen_u16_i16, i16);
        }
        if max <= u8::MAX as u16 {
            go!(widen_u16_u8, u8);
        }
    }
}

/// Adds worth testing: none, a typical offset, and those that put the results at the top (or
/// bottom) edge of each element type.
const ADDS: [i32; 10] = [
    0,
    3,
    1,
    -1,
    -255,
    i16::MAX as i32 - 255,
    u16::MAX as i32 - 255,
    i32::MAX - 255,
    i32::MIN,
    (1 << 24) + 1, // f32 rounding: above 2^24 not every integer is representable
];

#[test]
fn widen_u8_every_length_and_offset() {
    let paths = paths();
    let mut rng = Rng::new(6);
    for len in 0..=MAX_LEN {
        for (variant, &add) in [0, 3].iter().enumerate() {
            // Full range (u8 output only fits with add 0) and a range that fits u8 + 3.
            let hi = if variant == 0 { 255 } else { 252 };
            let mut src: Vec<u8> = (0..len).map(|_| rng.range(0, hi) as u8).collect();
            if len > 0 {
                src[rng.next() as usize % len] = hi as u8;
                src[rng.next() as usize % len] = 0;
            }
            let doff = len % 16;
            check_widen_u8(&paths, &src, add, doff, &|| "random".into());
            // The same values at the edge, at every position.
            if len <= 70 {
                for pos in 0..len {
                    let mut s = vec![1u8; len];
                    s[pos] = hi as u8;
                    check_widen_u8(&paths, &s, add, 0, &|| format!("{hi} at {pos}"));
                }
            }
        }
    }
}

#[test]
fn fill_every_length_and_offset() {
    // Every element of dst[PAD + off..][..n] set, nothing around it touched.
    for k in paths() {
        for len in 0..=MAX_LEN {
            for off in 0..9 {
                for v in [1i64, 0, -1, i64::MIN, i64::MAX, 0x1234_5678_9ABC_DEF0] {
                    let mut d = vec![0x5A5Ai64; len + 2 * PAD + off];
                    (k.fill_i64)(&mut d[PAD + off..PAD + off + len], v);
                    let mut want = vec![0x5A5Ai64; d.len()];
                    want[PAD + off..PAD + off + len].fill(v);
                    assert_eq!(
                        d, want,
                        "{}: fill_i64 len {len}, offset {off}, value {v}",
                        k.name
                    );
                    let v32 = v as i32;
                    let mut d = vec![0x5A5Ai32; len + 2 * PAD + off];
                    (k.fill_i32)(&mut d[PAD + off..PAD + off + len], v32);
                    let mut want = vec![0x5A5Ai32; d.len()];
                    want[PAD + off..PAD + off + len].fill(v32);
                    assert_eq!(
                        d, want,
                        "{}: fill_i32 len {len}, offset {off}, value {v32}",
                        k.name
                    );
                }
            }
        }
    }
}

#[test]
fn widen_u8_edge_values_and_adds() {
    let paths = paths();
    let mut rng = Rng::new(7);
    let all: Vec<u8> = (0..=255).collect();
    for &add in &ADDS {
        for len in (0..=MAX_LEN).step_by(3).chain([256, 257]) {
            let src: Vec<u8> = (0..len).map(|i| all[(i * 7 + len) % 256]).collect();
            check_widen_u8(&paths, &src, add, len % 5, &|| "all byte values".into());
            // Narrower ranges so that the narrow outputs fit for this add too.
            let lo = (-(add as i64)).clamp(0, 255) as u32;
            let hi = (255 - add as i64).clamp(0, 255) as u32;
            if lo <= hi {
                let s: Vec<u8> = (0..len).map(|_| rng.range(lo, hi) as u8).collect();
                check_widen_u8(&paths, &s, add, 0, &|| format!("range {lo}..={hi}"));
            }
        }
    }
}

#[test]
fn widen_u16_every_length_and_offset() {
    let paths = paths();
    let mut rng = Rng::new(8);
    for len in 0..=MAX_LEN {
        for hi in [0xFFFFu32, 0x7FFF, 0xFF] {
            let mut src: Vec<u16> = (0..len).map(|_| rng.range(0, hi) as u16).collect();
            if len > 0 {
                src[rng.next() as usize % len] = hi as u16;
                src[rng.next() as usize % len] = 0;
            }
            check_widen_u16(&paths, &src, len % 16, &|| format!("random <= {hi:#x}"));
            if len <= 70 {
                for pos in 0..len {
                    let mut s = vec![1u16; len];
                    s[pos] = hi as u16;
                    check_widen_u16(&paths, &s, 0, &|| format!("{hi:#x} at {pos}"));
                }
            }
        }
    }
}

#[test]
fn widen_every_start_offset() {
    let paths = paths();
    let mut rng = Rng::new(9);
    let bytes: Vec<u8> = (0..64 + MAX_LEN).map(|_| rng.next() as u8).collect();
    let units: Vec<u16> = (0..64 + MAX_LEN).map(|_| rng.next() as u16).collect();
    let narrow: Vec<u16> = (0..64 + MAX_LEN)
        .map(|_| rng.range(0, 255) as u16)
        .collect();
    for off in 0..64 {
        for len in (0..=MAX_LEN).filter(|l| *l <= 100 || l % 11 == 0) {
            let what = || format!("src offset {off}");
            let doff = (off * 5) % 64;
            for add in [0, 3] {
                check_widen_u8(&paths, &bytes[off..off + len], add, doff, &what);
            }
            check_widen_u16(&paths, &units[off..off + len], doff, &what);
            check_widen_u16(&paths, &narrow[off..off + len], doff, &what);
        }
    }
}

#[test]
fn widen_random() {
    let paths = paths();
    let mut rng = Rng::new(10);
    for round in 0..400 {
        let len = rng.range(0, 5000) as usize;
        let add = ADDS[round % ADDS.len()];
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check_widen_u8(&paths, &bytes, add, round % 7, &|| format!("round {round}"));
        let hi = [0xFFFFu32, 0x7FFF, 0xFF][round % 3];
        let units: Vec<u16> = (0..len).map(|_| rng.range(0, hi) as u16).collect();
        check_widen_u16(&paths, &units, round % 7, &|| format!("round {round}"));
    }
}

#[test]
fn widen_mismatched_lengths_write_the_common_prefix() {
    // The contract says `dst.len() == src.len()`; the paths still never touch more than the
    // shorter of the two, like the scalar zip.
    let paths = paths();
    let src: Vec<u8> = (0..200).map(|i| i as u8).collect();
    let src16: Vec<u16> = (0..200).map(|i| i as u16 * 300).collect();
    for k in &paths {
        for (sl, dl) in [(200, 37), (37, 200), (0, 5), (5, 0), (100, 99)] {
            let mut want = vec![-7i32; dl];
            let mut got = want.clone();
            scalar::widen_u8::<i32>(&src[..sl], 3, &mut want);
            (k.widen_u8_i32)(&src[..sl], 3, &mut got);
            assert_eq!(got, want, "{}: widen_u8_i32 src {sl} dst {dl}", k.name);
            let mut want = vec![-7i32; dl];
            let mut got = want.clone();
            scalar::widen_u16::<i32>(&src16[..sl], &mut want);
            (k.widen_u16_i32)(&src16[..sl], &mut got);
            assert_eq!(got, want, "{}: widen_u16_i32 src {sl} dst {dl}", k.name);
            let mut want = vec![7u16; dl];
            let mut got = want.clone();
            scalar::widen_u8::<u16>(&src[..sl], 3, &mut want);
            (k.widen_u8_u16)(&src[..sl], 3, &mut got);
            assert_eq!(got, want, "{}: widen_u8_u16 src {sl} dst {dl}", k.name);
            let mut want = vec![7u16; dl];
            let mut got = want.clone();
            scalar::widen_u16::<u16>(&src16[..sl], &mut want);
            (k.widen_u16_u16)(&src16[..sl], &mut got);
            assert_eq!(got, want, "{}: widen_u16_u16 src {sl} dst {dl}", k.name);
        }
    }
}

#[test]
fn short_input_helpers_match_scalar_at_any_length() {
    // The SWAR helpers the paths use below one vector are written for any length.
    use super::generic::small;
    let mut rng = Rng::new(11);
    for len in 0..=48 {
        let base = ascii_bytes(&mut rng, len);
        let base16 = ascii_units(&mut rng, len);
        for pos in (0..len).map(Some).chain([None]) {
            let (mut b, mut u) = (base.clone(), base16.clone());
            if let Some(p) = pos {
                b[p] = 0x80;
                u[p] = 0x80;
                if p + 2 < len {
                    b[p + 2] = 0xFF;
                    u[p + 2] = 0xD800;
                }
            }
            assert_eq!(
                small::ascii_prefix(&b),
                scalar::ascii_prefix(&b),
                "len {len} pos {pos:?}"
            );
            assert_eq!(
                small::ascii_prefix_u16(&u),
                scalar::ascii_prefix_u16(&u),
                "len {len} pos {pos:?}"
            );
            assert_eq!(
                small::bmp_prefix(&u),
                scalar::bmp_prefix(&u),
                "len {len} pos {pos:?}"
            );
            assert_eq!(
                small::max_u16(&u),
                scalar::max_u16(&u),
                "len {len} pos {pos:?}"
            );
        }
    }
}
