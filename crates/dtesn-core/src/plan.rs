//! The two passes: [`plan`] checks and measures every row, [`Plan::write`] fills the buffers.

use crate::decode::{Kind, Sink};
use crate::simd::{self, Kernels};
use crate::{Encoding, Error, Id, Options, Padding, Rows, Side, Unit};

/// Largest number of elements a batch may have (JavaScript typed arrays and the int32 lengths).
pub const MAX_ELEMENTS: u64 = i32::MAX as u64;

/// An attention-mask element type (`u8`, `i32`, `i64`), tied to its [`MaskDtype`].
pub trait Mask: simd::Elem {
    const DTYPE: crate::MaskDtype;
    const ONE: Self;
}
impl Mask for u8 {
    const DTYPE: crate::MaskDtype = crate::MaskDtype::Uint8;
    const ONE: u8 = 1;
}
impl Mask for i32 {
    const DTYPE: crate::MaskDtype = crate::MaskDtype::Int32;
    const ONE: i32 = 1;
}
impl Mask for i64 {
    const DTYPE: crate::MaskDtype = crate::MaskDtype::Int64;
    const ONE: i64 = 1;
}

/// A checked batch: every row's length is known and nothing can fail but the buffer sizes.
pub struct Plan<'a, U: Unit> {
    src: &'a Rows<'a, U>,
    opts: &'a Options<'a>,
    k: &'static Kernels,
    m: Measured,
    width: usize,
}

/// Per-row content lengths (specials excluded, before truncation) and how each row becomes tokens
/// ([`Kind`]). Bindings fill it while they copy rows in (the row is then in cache) and
/// hand it to [`plan_measured`].
#[derive(Default)]
pub struct Measured {
    content: Vec<u32>,
    kind: Vec<Kind>,
}

impl Measured {
    pub fn with_capacity(rows: usize) -> Measured {
        Measured {
            content: Vec::with_capacity(rows),
            kind: Vec::with_capacity(rows),
        }
    }

    pub fn len(&self) -> usize {
        self.content.len()
    }

    pub fn is_empty(&self) -> bool {
        self.content.is_empty()
    }

    /// Forgets every row, keeping the allocations.
    pub fn clear(&mut self) {
        self.content.clear();
        self.kind.clear();
    }

    /// Measures the next row. `Err(at)` is the unit offset of the first invalid unit when
    /// `opts.invalid` is `Error`; the row is then recorded as empty.
    #[inline]
    pub fn push<U: Unit>(&mut self, row: &[U], opts: &Options) -> Result<(), usize> {
        let k = simd::kernels();
        // Well-formed rows are measured by the vector scans alone; only ill-formed ones decode.
        let (len, kind, res) = match U::measure(row, opts.encoding, k) {
            Some((n, kind)) => (n, kind, Ok(())),
            None => {
                let mut c = Count(0);
                match U::decode(row, opts, k, &mut c) {
                    Ok(()) => (c.0, Kind::Slow, Ok(())),
                    Err(at) => (0, Kind::Slow, Err(at)),
                }
            }
        };
        // A row longer than 2^31 tokens cannot be kept whole; its source length saturates.
        self.content.push(len.min(i32::MAX as usize) as u32);
        self.kind.push(kind);
        res
    }
}

/// Checks `opts` and every row of `src`, in the order docs/SEMANTICS.md gives, and measures the
/// batch. Nothing is written anywhere.
pub fn plan<'a, U: Unit>(
    src: &'a Rows<'a, U>,
    opts: &'a Options<'a>,
) -> Result<Plan<'a, U>, Error> {
    opts.validate()?;
    let mut m = Measured::with_capacity(src.len());
    for r in 0..src.len() {
        m.push(src.row(r), opts)
            .map_err(|at| U::strict_error(r, at))?;
    }
    plan_measured(src, opts, m)
}

/// [`plan`] for rows already measured (in order, every row, no invalid one).
pub fn plan_measured<'a, U: Unit>(
    src: &'a Rows<'a, U>,
    opts: &'a Options<'a>,
    m: Measured,
) -> Result<Plan<'a, U>, Error> {
    opts.validate()?;
    let rows = src.len();
    if m.len() != rows {
        return Err(Error::MeasuredRows {
            measured: m.len(),
            rows,
        });
    }
    let k = simd::kernels();
    let s = opts.special_count();
    let cap = opts.max_length - s;
    let limit = opts.dtype.max().min(u32::MAX as i64) as u32;
    if opts.max_content_id() > limit {
        for r in 0..rows {
            let len = m.content[r];
            let kept = len.min(cap);
            if kept == 0 {
                continue;
            }
            let skip = match opts.truncation_side {
                Side::Right => 0,
                Side::Left => len - kept,
            };
            let row = src.row(r);
            let bad = match m.kind[r] {
                Kind::Simple => U::simple_first_above(
                    &row[skip as usize..(skip + kept) as usize],
                    opts,
                    k,
                    limit,
                ),
                Kind::Valid => {
                    let mut win = Window::new(skip, kept);
                    let mut bad = None;
                    U::valid_tokens(row, opts.encoding, k, &mut |toks| {
                        if let Some((o, c)) = win.clip(toks.len()) {
                            bad = toks[o..o + c]
                                .iter()
                                .map(|&t| opts.vocab.map_or(t, |v| v.id(t) as u32))
                                .find(|&id| id > limit);
                        }
                        bad.is_none() && win.left > 0
                    });
                    bad
                }
                Kind::Slow => {
                    let mut rs = RangeCheck {
                        win: Window::new(skip, kept),
                        limit,
                        opts,
                        bad: None,
                    };
                    // Validity was checked when measuring.
                    let _ = U::decode(row, opts, k, &mut rs);
                    rs.bad
                }
            };
            if let Some(id) = bad {
                return Err(Error::IdRange {
                    row: r,
                    id,
                    dtype: opts.dtype,
                });
            }
        }
    }
    let longest = m.content.iter().map(|&c| c.min(cap) + s).max().unwrap_or(0) as u64;
    let width = match opts.width {
        Some(w) if (w as u64) < longest => {
            return Err(Error::WidthTooSmall {
                width: w,
                longest: longest as u32,
            });
        }
        Some(w) => w as u64,
        None => {
            let base = match opts.padding {
                Padding::Longest => longest,
                Padding::MaxLength => opts.max_length as u64,
            };
            let mult = opts.pad_to_multiple_of as u64;
            base.div_ceil(mult) * mult
        }
    };
    if rows as u64 * width > MAX_ELEMENTS {
        return Err(Error::TooLarge { rows, width });
    }
    Ok(Plan {
        src,
        opts,
        k,
        m,
        width: width as usize,
    })
}

impl<U: Unit> Plan<'_, U> {
    pub fn rows(&self) -> usize {
        self.m.content.len()
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// The measurements back, for reuse by the next batch.
    pub fn into_measured(self) -> Measured {
        self.m
    }

    /// `rows * width`.
    pub fn elements(&self) -> usize {
        self.rows() * self.width
    }

    /// Fills `lengths` (tokens kept, specials included) and `source_lengths` (before truncation).
    pub fn fill_lengths(&self, lengths: &mut [i32], source_lengths: &mut [i32]) {
        let s = self.opts.special_count();
        let cap = self.opts.max_length - s;
        for ((l, sl), &c) in lengths
            .iter_mut()
            .zip(source_lengths.iter_mut())
            .zip(&self.m.content)
        {
            *l = (c.min(cap) + s) as i32;
            *sl = c.saturating_add(s).min(i32::MAX as u32) as i32;
        }
    }

    /// Checks that `len` elements can hold the batch (`which` names the buffer in the error).
    pub fn check_out_len(&self, which: &'static str, len: usize) -> Result<(), Error> {
        if len < self.elements() {
            return Err(Error::OutTooSmall {
                which,
                len,
                rows: self.rows(),
                width: self.width,
            });
        }
        Ok(())
    }

    /// Writes ids and the attention mask (`rows x width`, row-major) into the first
    /// `elements()` entries of `ids` and `mask`. Every entry is written (no zero-fill assumed).
    /// The mask's element type is the caller's choice (`M`: u8, i32 or i64).
    pub fn write<T: Id, M: Mask>(&self, ids: &mut [T], mask: &mut [M]) -> Result<(), Error> {
        if T::DTYPE != self.opts.dtype {
            return Err(Error::OutWrongType {
                which: "ids",
                expected: self.opts.dtype.typed_array(),
                dtype: self.opts.dtype,
                got: T::DTYPE.typed_array(),
            });
        }
        self.check_out_len("ids", ids.len())?;
        self.check_out_len("attentionMask", mask.len())?;
        let w = self.width;
        if w == 0 {
            return Ok(());
        }
        for (r, (row, mrow)) in ids
            .chunks_exact_mut(w)
            .zip(mask.chunks_exact_mut(w))
            .take(self.rows())
            .enumerate()
        {
            self.write_row(r, row, mrow);
        }
        Ok(())
    }

    /// Writes row `r` (specials, kept tokens, padding) and its mask.
    #[inline]
    fn write_row<T: Id, M: Mask>(&self, r: usize, row: &mut [T], mrow: &mut [M]) {
        let w = row.len();
        let opts = self.opts;
        let (pre, post) = opts.specials();
        let s = (pre.len() + post.len()) as u32;
        let cap = opts.max_length - s;
        let pad = T::from_i64(opts.pad_id);
        let len = self.m.content[r];
        let kept = len.min(cap);
        let n = (kept + s) as usize;
        let skip = match opts.truncation_side {
            Side::Right => 0,
            Side::Left => len - kept,
        } as usize;
        let start = match opts.padding_side {
            Side::Right => 0,
            Side::Left => w - n,
        };
        // A zero pad (the default) is a constant fill, which LLVM turns into memset; other fills
        // of wide elements (int64 and int32 masks' ones, pads) go through the path's wide stores.
        if opts.pad_id == 0 {
            row[..start].fill(T::default());
            row[start + n..].fill(T::default());
        } else {
            T::fill(self.k, &mut row[..start], pad);
            T::fill(self.k, &mut row[start + n..], pad);
        }
        mrow[..start].fill(M::default());
        M::fill(self.k, &mut mrow[start..start + n], M::ONE);
        mrow[start + n..].fill(M::default());
        let toks = &mut row[start..start + n];
        let (head, rest) = toks.split_at_mut(pre.len());
        let (body, tail) = rest.split_at_mut(kept as usize);
        for (d, &id) in head.iter_mut().zip(pre) {
            *d = T::from_i32(id as i32);
        }
        for (d, &id) in tail.iter_mut().zip(post) {
            *d = T::from_i32(id as i32);
        }
        if kept == 0 {
            return;
        }
        let src = self.src.row(r);
        match self.m.kind[r] {
            Kind::Simple => U::write_simple(&src[skip..skip + kept as usize], opts, self.k, body),
            Kind::Valid => write_valid(src, opts, self.k, skip, body),
            Kind::Slow => self.write_slow(src, skip, body),
        }
    }

    /// Writes the kept tokens of an ill-formed row with the replacing decoder.
    fn write_slow<T: Id>(&self, src: &[U], skip: usize, body: &mut [T]) {
        let opts = self.opts;
        let mut ws = Write {
            win: Window::new(skip as u32, body.len() as u32),
            dst: body,
            pos: 0,
            k: self.k,
            vocab: opts.vocab,
        };
        // Validity was checked by `plan`.
        let _ = U::decode(src, opts, self.k, &mut ws);
    }
}

/// Writes the kept tokens of a well-formed row that needs decoding (`body` holds exactly the
/// kept ones, the first after `skip` content tokens). Code points into an int32 output are
/// decoded straight into it (and looked up there with a vocabulary); everything else goes
/// through the decoders' chunks.
fn write_valid<T: Id, U: Unit>(
    src: &[U],
    opts: &Options,
    k: &Kernels,
    skip: usize,
    body: &mut [T],
) {
    if skip == 0 && matches!(opts.encoding, Encoding::Codepoint | Encoding::Canine) {
        if let Some(dst) = T::as_u32(body) {
            let n = U::decode_code_points(src, k, dst);
            debug_assert_eq!(n, dst.len());
            if let Some(v) = opts.vocab {
                for x in dst.iter_mut() {
                    *x = v.id(*x) as u32;
                }
            }
            return;
        }
    }
    let mut win = Window::new(skip as u32, body.len() as u32);
    let mut pos = 0;
    U::valid_tokens(src, opts.encoding, k, &mut |toks| {
        if let Some((o, c)) = win.clip(toks.len()) {
            let dst = &mut body[pos..pos + c];
            let toks = &toks[o..o + c];
            match opts.vocab {
                Some(v) => dst
                    .iter_mut()
                    .zip(toks)
                    .for_each(|(d, &t)| *d = T::from_i32(v.id(t))),
                None => dst
                    .iter_mut()
                    .zip(toks)
                    .for_each(|(d, &t)| *d = T::from_i32(t as i32)),
            }
            pos += c;
        }
        win.left > 0
    });
}

/// The part of a row's token stream that is kept: skip `skip` tokens, then take `left`.
struct Window {
    skip: usize,
    left: usize,
}

impl Window {
    fn new(skip: u32, take: u32) -> Window {
        Window {
            skip: skip as usize,
            left: take as usize,
        }
    }

    /// For a run of `n` tokens: `(offset in the run, count)` of its kept part, if any.
    #[inline(always)]
    fn clip(&mut self, n: usize) -> Option<(usize, usize)> {
        if self.skip >= n {
            self.skip -= n;
            return None;
        }
        let off = self.skip;
        self.skip = 0;
        let cnt = (n - off).min(self.left);
        self.left -= cnt;
        Some((off, cnt))
    }
}

struct Count(usize);

impl Sink for Count {
    #[inline(always)]
    fn run16(&mut self, u: &[u16], _: u32) -> bool {
        self.0 += u.len();
        true
    }
    #[inline(always)]
    fn run8(&mut self, b: &[u8], _: u32) -> bool {
        self.0 += b.len();
        true
    }
    #[inline(always)]
    fn token(&mut self, _: u32) -> bool {
        self.0 += 1;
        true
    }
}

/// Finds the first kept token whose id exceeds `limit`.
struct RangeCheck<'o> {
    win: Window,
    limit: u32,
    opts: &'o Options<'o>,
    bad: Option<u32>,
}

impl RangeCheck<'_> {
    #[inline(always)]
    fn id(&self, t: u32) -> u32 {
        match self.opts.vocab {
            Some(v) => v.id(t) as u32,
            None => t,
        }
    }
    fn scan(&mut self, it: impl Iterator<Item = u32>) -> bool {
        for t in it {
            let id = self.id(t);
            if id > self.limit {
                self.bad = Some(id);
                return false;
            }
        }
        self.win.left > 0
    }
}

impl Sink for RangeCheck<'_> {
    fn run16(&mut self, u: &[u16], add: u32) -> bool {
        match self.win.clip(u.len()) {
            Some((o, c)) => self.scan(u[o..o + c].iter().map(|&x| x as u32 + add)),
            None => true,
        }
    }
    fn run8(&mut self, b: &[u8], add: u32) -> bool {
        match self.win.clip(b.len()) {
            Some((o, c)) => self.scan(b[o..o + c].iter().map(|&x| x as u32 + add)),
            None => true,
        }
    }
    fn token(&mut self, t: u32) -> bool {
        match self.win.clip(1) {
            Some((_, 1)) => self.scan(std::iter::once(t)),
            Some(_) => false,
            None => true,
        }
    }
}

/// Writes the kept tokens into a row.
struct Write<'d, 'v, T> {
    win: Window,
    dst: &'d mut [T],
    pos: usize,
    k: &'static Kernels,
    vocab: Option<&'v crate::Vocab>,
}

impl<T: Id> Sink for Write<'_, '_, T> {
    #[inline]
    fn run16(&mut self, u: &[u16], add: u32) -> bool {
        if let Some((o, c)) = self.win.clip(u.len()) {
            let src = &u[o..o + c];
            let dst = &mut self.dst[self.pos..self.pos + c];
            match self.vocab {
                Some(v) => dst
                    .iter_mut()
                    .zip(src)
                    .for_each(|(d, &x)| *d = T::from_i32(v.id16(x))),
                None if add == 0 => T::widen_u16(self.k)(src, dst),
                None => dst
                    .iter_mut()
                    .zip(src)
                    .for_each(|(d, &x)| *d = T::from_i32((x as u32 + add) as i32)),
            }
            self.pos += c;
        }
        self.win.left > 0
    }
    #[inline]
    fn run8(&mut self, b: &[u8], add: u32) -> bool {
        if let Some((o, c)) = self.win.clip(b.len()) {
            let src = &b[o..o + c];
            let dst = &mut self.dst[self.pos..self.pos + c];
            match self.vocab {
                Some(v) => dst
                    .iter_mut()
                    .zip(src)
                    .for_each(|(d, &x)| *d = T::from_i32(v.id16(x as u16))),
                None => T::widen_u8(self.k)(src, add as i32, dst),
            }
            self.pos += c;
        }
        self.win.left > 0
    }
    #[inline]
    fn token(&mut self, t: u32) -> bool {
        if let Some((_, 1)) = self.win.clip(1) {
            let id = match self.vocab {
                Some(v) => v.id(t),
                None => t as i32,
            };
            self.dst[self.pos] = T::from_i32(id);
            self.pos += 1;
        }
        self.win.left > 0
    }
}
