//! The two passes: [`plan`] checks and measures every row, [`Plan::write`] fills the buffers.

use crate::decode::Sink;
use crate::simd::{self, Kernels};
use crate::{Error, Id, Options, Padding, Side, Source};

/// Largest number of elements a batch may have (JavaScript typed arrays and the int32 lengths).
pub const MAX_ELEMENTS: u64 = i32::MAX as u64;

/// A checked batch: every row's length is known and nothing can fail but the buffer sizes.
pub struct Plan<'a, S: Source> {
    src: &'a S,
    opts: &'a Options<'a>,
    k: &'static Kernels,
    /// Content tokens per row (specials excluded), before truncation.
    content: Vec<u32>,
    /// Rows that map one unit to one token.
    simple: Vec<bool>,
    width: usize,
}

/// Checks `opts` and every row of `src`, in the order docs/SEMANTICS.md gives, and measures the
/// batch. Nothing is written anywhere.
pub fn plan<'a, S: Source>(src: &'a S, opts: &'a Options<'a>) -> Result<Plan<'a, S>, Error> {
    opts.validate()?;
    let k = simd::kernels();
    let rows = src.rows();
    let specials = opts.specials();
    let s = (specials.0.len() + specials.1.len()) as u32;
    let cap = opts.max_length - s;
    let limit = opts.dtype.max().min(u32::MAX as i64) as u32;
    let check_range = opts.max_content_id() > limit;

    let mut content = Vec::with_capacity(rows);
    let mut simple = Vec::with_capacity(rows);
    let mut range_err: Option<Error> = None;
    let mut longest = 0u32;
    for r in 0..rows {
        let (len, is_simple) = match src.simple_len(r, opts.encoding, k) {
            Some(n) => (n, true),
            None => {
                let mut c = Count(0);
                src.decode(r, opts, k, &mut c).map_err(|at| src.strict_error(r, at))?;
                (c.0, false)
            }
        };
        // A row longer than 2^31 tokens cannot be kept whole; its source length saturates.
        let len = len.min(i32::MAX as usize) as u32;
        let kept = len.min(cap);
        let skip = match opts.truncation_side {
            Side::Right => 0,
            Side::Left => len - kept,
        };
        if check_range && range_err.is_none() && kept > 0 {
            let bad = if is_simple {
                src.simple_first_above(r, opts, k, skip as usize, kept as usize, limit)
            } else {
                let mut rs = RangeCheck { win: Window::new(skip, kept), limit, opts, bad: None };
                // Validity was checked by the count above.
                let _ = src.decode(r, opts, k, &mut rs);
                rs.bad
            };
            if let Some(id) = bad {
                range_err = Some(Error::IdRange { row: r, id, dtype: opts.dtype });
            }
        }
        longest = longest.max(kept + s);
        content.push(len);
        simple.push(is_simple);
    }
    if let Some(e) = range_err {
        return Err(e);
    }
    let base = match opts.padding {
        Padding::Longest => longest as u64,
        Padding::MaxLength => opts.max_length as u64,
    };
    let m = opts.pad_to_multiple_of as u64;
    let width = base.div_ceil(m) * m;
    if rows as u64 * width > MAX_ELEMENTS {
        return Err(Error::TooLarge { rows, width });
    }
    Ok(Plan { src, opts, k, content, simple, width: width as usize })
}

impl<S: Source> Plan<'_, S> {
    pub fn rows(&self) -> usize {
        self.content.len()
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// `rows * width`.
    pub fn elements(&self) -> usize {
        self.rows() * self.width
    }

    fn special_count(&self) -> u32 {
        let (a, b) = self.opts.specials();
        (a.len() + b.len()) as u32
    }

    /// Fills `lengths` (tokens kept, specials included) and `source_lengths` (before truncation).
    pub fn fill_lengths(&self, lengths: &mut [i32], source_lengths: &mut [i32]) {
        let s = self.special_count();
        let cap = self.opts.max_length - s;
        for ((l, sl), &c) in lengths.iter_mut().zip(source_lengths.iter_mut()).zip(&self.content) {
            *l = (c.min(cap) + s) as i32;
            *sl = c.saturating_add(s).min(i32::MAX as u32) as i32;
        }
    }

    /// Checks that `len` elements can hold the batch (`which` names the buffer in the error).
    pub fn check_out_len(&self, which: &'static str, len: usize) -> Result<(), Error> {
        if len < self.elements() {
            return Err(Error::OutTooSmall { which, len, rows: self.rows(), width: self.width });
        }
        Ok(())
    }

    /// Writes ids and the attention mask (`rows x width`, row-major) into the first
    /// `elements()` entries of `ids` and `mask`. Every entry is written (no zero-fill assumed).
    pub fn write<T: Id>(&self, ids: &mut [T], mask: &mut [u8]) -> Result<(), Error> {
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
        let opts = self.opts;
        let (pre, post) = opts.specials();
        let s = (pre.len() + post.len()) as u32;
        let cap = opts.max_length - s;
        let pad = T::from_i32(opts.pad_id);
        let vocab = opts.vocab;
        for (r, (row, mrow)) in ids.chunks_exact_mut(w).zip(mask.chunks_exact_mut(w)).enumerate() {
            if r >= self.rows() {
                break;
            }
            let len = self.content[r];
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
            row[..start].fill(pad);
            row[start + n..].fill(pad);
            mrow[..start].fill(0);
            mrow[start..start + n].fill(1);
            mrow[start + n..].fill(0);
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
                continue;
            }
            if self.simple[r] {
                self.src.write_simple(r, opts, self.k, skip, body);
            } else {
                let mut ws = Write { win: Window::new(skip as u32, kept), dst: body, pos: 0, k: self.k, vocab };
                // Validity was checked by `plan`.
                let _ = self.src.decode(r, opts, self.k, &mut ws);
            }
        }
        Ok(())
    }
}

/// The part of a row's token stream that is kept: skip `skip` tokens, then take `left`.
struct Window {
    skip: usize,
    left: usize,
}

impl Window {
    fn new(skip: u32, take: u32) -> Window {
        Window { skip: skip as usize, left: take as usize }
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
                Some(v) => dst.iter_mut().zip(src).for_each(|(d, &x)| *d = T::from_i32(v.id(x as u32))),
                None if add == 0 => T::widen_u16(self.k)(src, dst),
                None => dst.iter_mut().zip(src).for_each(|(d, &x)| *d = T::from_i32((x as u32 + add) as i32)),
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
                Some(v) => dst.iter_mut().zip(src).for_each(|(d, &x)| *d = T::from_i32(v.id(x as u32))),
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
