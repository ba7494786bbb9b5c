//! dtesn-core: character-level vectorization of text batches into padded id arrays.
//!
//! Pure Rust, no N-API. The contract (tokens, truncation, padding, dtypes, error messages) is
//! docs/SEMANTICS.md at the repository root; the TypeScript fallback implements the same one.
//!
//! Work is split in two passes so that nothing is written before every check has passed:
//! [`plan`] validates and measures every row (validity, lengths, id ranges, batch size), then
//! [`Plan::write`] fills caller-provided buffers. Rows that map one unit to one token (ASCII, BMP
//! without surrogates, valid UTF-8 for byte encodings) are written with SIMD widening kernels
//! chosen once at run time (see [`simd`]); everything else goes through a per-character decoder.

pub mod records;
pub mod simd;

#[doc(hidden)]
pub mod decode;
mod error;
mod plan;
mod vocab;

pub use error::{Error, ErrorKind};
pub use plan::{plan, plan_measured, Mask, Measured, Plan};
pub use vocab::Vocab;

/// What each id is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Unicode scalar values.
    Codepoint,
    /// UTF-8 bytes.
    Utf8,
    /// UTF-16 code units as they are.
    Utf16,
    /// UTF-8 byte + 3, then EOS 1 (ByT5: pad 0, eos 1, unk 2).
    Byt5,
    /// Code points between CLS 0xE000 and SEP 0xE001 (CANINE).
    Canine,
}

impl Encoding {
    pub fn parse(s: &str) -> Option<Encoding> {
        Some(match s {
            "codepoint" => Encoding::Codepoint,
            "utf8" => Encoding::Utf8,
            "utf16" => Encoding::Utf16,
            "byt5" => Encoding::Byt5,
            "canine" => Encoding::Canine,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Encoding::Codepoint => "codepoint",
            Encoding::Utf8 => "utf8",
            Encoding::Utf16 => "utf16",
            Encoding::Byt5 => "byt5",
            Encoding::Canine => "canine",
        }
    }

    /// (prefix, suffix) special tokens.
    pub fn specials(self) -> (&'static [u32], &'static [u32]) {
        match self {
            Encoding::Byt5 => (&[], &[1]),
            Encoding::Canine => (&[0xE000], &[0xE001]),
            _ => (&[], &[]),
        }
    }

    /// Largest content id the encoding can produce without a vocabulary.
    fn max_content_id(self) -> u32 {
        match self {
            Encoding::Codepoint | Encoding::Canine => 0x10FFFF,
            Encoding::Utf16 => 0xFFFF,
            // The largest byte of well-formed UTF-8 is 0xF4.
            Encoding::Utf8 => 0xF4,
            Encoding::Byt5 => 0xF4 + 3,
        }
    }
}

/// Element type of the ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    Int32,
    Int16,
    Uint16,
    Uint8,
    Float32,
    /// What ONNX Runtime and Hugging Face exports take (`BigInt64Array` in JavaScript).
    Int64,
}

impl Dtype {
    pub fn parse(s: &str) -> Option<Dtype> {
        Some(match s {
            "int32" => Dtype::Int32,
            "int16" => Dtype::Int16,
            "uint16" => Dtype::Uint16,
            "uint8" => Dtype::Uint8,
            "float32" => Dtype::Float32,
            "int64" => Dtype::Int64,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::Int32 => "int32",
            Dtype::Int16 => "int16",
            Dtype::Uint16 => "uint16",
            Dtype::Uint8 => "uint8",
            Dtype::Float32 => "float32",
            Dtype::Int64 => "int64",
        }
    }

    pub fn min(self) -> i64 {
        match self {
            Dtype::Int32 => i32::MIN as i64,
            Dtype::Int16 => i16::MIN as i64,
            Dtype::Uint16 | Dtype::Uint8 => 0,
            Dtype::Float32 => -(1 << 24),
            Dtype::Int64 => i64::MIN,
        }
    }

    /// Largest integer stored exactly.
    pub fn max(self) -> i64 {
        match self {
            Dtype::Int32 => i32::MAX as i64,
            Dtype::Int16 => i16::MAX as i64,
            Dtype::Uint16 => u16::MAX as i64,
            Dtype::Uint8 => u8::MAX as i64,
            Dtype::Float32 => 1 << 24,
            Dtype::Int64 => i64::MAX,
        }
    }

    /// Name of the JavaScript typed array that holds it.
    pub fn typed_array(self) -> &'static str {
        match self {
            Dtype::Int32 => "Int32Array",
            Dtype::Int16 => "Int16Array",
            Dtype::Uint16 => "Uint16Array",
            Dtype::Uint8 => "Uint8Array",
            Dtype::Float32 => "Float32Array",
            Dtype::Int64 => "BigInt64Array",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::Uint8 => 1,
            Dtype::Int16 | Dtype::Uint16 => 2,
            Dtype::Int32 | Dtype::Float32 => 4,
            Dtype::Int64 => 8,
        }
    }
}

/// Element type of the attention mask (1 on tokens, 0 on padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskDtype {
    Uint8,
    Int32,
    Int64,
}

impl MaskDtype {
    pub fn parse(s: &str) -> Option<MaskDtype> {
        Some(match s {
            "uint8" => MaskDtype::Uint8,
            "int32" => MaskDtype::Int32,
            "int64" => MaskDtype::Int64,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            MaskDtype::Uint8 => "uint8",
            MaskDtype::Int32 => "int32",
            MaskDtype::Int64 => "int64",
        }
    }

    /// Name of the JavaScript typed array that holds it.
    pub fn typed_array(self) -> &'static str {
        match self {
            MaskDtype::Uint8 => "Uint8Array",
            MaskDtype::Int32 => "Int32Array",
            MaskDtype::Int64 => "BigInt64Array",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            MaskDtype::Uint8 => 1,
            MaskDtype::Int32 => 4,
            MaskDtype::Int64 => 8,
        }
    }
}

/// An output element type, tied to its [`Dtype`].
pub trait Id: simd::Elem {
    const DTYPE: Dtype;
}
impl Id for i32 {
    const DTYPE: Dtype = Dtype::Int32;
}
impl Id for i16 {
    const DTYPE: Dtype = Dtype::Int16;
}
impl Id for u16 {
    const DTYPE: Dtype = Dtype::Uint16;
}
impl Id for u8 {
    const DTYPE: Dtype = Dtype::Uint8;
}
impl Id for f32 {
    const DTYPE: Dtype = Dtype::Float32;
}
impl Id for i64 {
    const DTYPE: Dtype = Dtype::Int64;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

impl Side {
    pub fn parse(s: &str) -> Option<Side> {
        match s {
            "left" => Some(Side::Left),
            "right" => Some(Side::Right),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// Width is the longest kept row.
    Longest,
    /// Width is `max_length`.
    MaxLength,
}

impl Padding {
    pub fn parse(s: &str) -> Option<Padding> {
        match s {
            "longest" => Some(Padding::Longest),
            "max-length" => Some(Padding::MaxLength),
            _ => None,
        }
    }
}

/// What a lone surrogate or ill-formed UTF-8 becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// U+FFFD, as TextEncoder/TextDecoder do.
    Replace,
    /// Refuse the batch, naming the row.
    Error,
}

impl Invalid {
    pub fn parse(s: &str) -> Option<Invalid> {
        match s {
            "replace" => Some(Invalid::Replace),
            "error" => Some(Invalid::Error),
            _ => None,
        }
    }
}

/// Options of one call; see docs/SEMANTICS.md. `Default` gives the documented defaults.
#[derive(Clone, Copy)]
pub struct Options<'v> {
    pub encoding: Encoding,
    pub vocab: Option<&'v Vocab>,
    pub max_length: u32,
    pub padding: Padding,
    pub pad_to_multiple_of: u32,
    pub padding_side: Side,
    pub truncation_side: Side,
    /// Checked against `dtype`'s range by [`Options::validate`].
    pub pad_id: i64,
    pub add_special_tokens: bool,
    pub dtype: Dtype,
    pub invalid: Invalid,
    /// Fixed batch width instead of the one `padding` gives (internal: the pipeline splits one
    /// batch into shards that must share its width). Must hold every kept row.
    pub width: Option<u32>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            encoding: Encoding::Codepoint,
            vocab: None,
            max_length: 512,
            padding: Padding::Longest,
            pad_to_multiple_of: 1,
            padding_side: Side::Right,
            truncation_side: Side::Right,
            pad_id: 0,
            add_special_tokens: true,
            dtype: Dtype::Int32,
            invalid: Invalid::Replace,
            width: None,
        }
    }
}

impl Options<'_> {
    /// (prefix, suffix) special tokens in effect.
    pub fn specials(&self) -> (&'static [u32], &'static [u32]) {
        if self.add_special_tokens {
            self.encoding.specials()
        } else {
            (&[], &[])
        }
    }

    pub(crate) fn special_count(&self) -> u32 {
        let (a, b) = self.specials();
        (a.len() + b.len()) as u32
    }

    /// Option-level checks (those that need no rows), in the documented order.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_length == 0 || self.max_length > i32::MAX as u32 {
            return Err(Error::IntegerOption {
                name: "maxLength",
                value: self.max_length as i64,
            });
        }
        if self.pad_to_multiple_of == 0 || self.pad_to_multiple_of > i32::MAX as u32 {
            return Err(Error::IntegerOption {
                name: "padToMultipleOf",
                value: self.pad_to_multiple_of as i64,
            });
        }
        if self.vocab.is_some() && self.encoding != Encoding::Codepoint {
            return Err(Error::VocabWithEncoding {
                encoding: self.encoding,
            });
        }
        let s = self.special_count();
        if self.max_length < s {
            return Err(Error::MaxLengthBelowSpecials {
                encoding: self.encoding,
                specials: s,
            });
        }
        let pad = self.pad_id;
        if pad < self.dtype.min() || pad > self.dtype.max() {
            return Err(Error::PadRange {
                pad_id: pad,
                dtype: self.dtype,
            });
        }
        let (pre, post) = self.specials();
        for &id in pre.iter().chain(post) {
            if id as i64 > self.dtype.max() {
                return Err(Error::SpecialRange {
                    encoding: self.encoding,
                    id,
                    dtype: self.dtype,
                });
            }
        }
        Ok(())
    }

    /// Largest content id this call can write, which decides whether rows need a range check.
    pub(crate) fn max_content_id(&self) -> u32 {
        match self.vocab {
            Some(v) => v.max_id(),
            None => self.encoding.max_content_id(),
        }
    }
}

/// A batch of rows of `U` units (UTF-16 code units or UTF-8 bytes) in one buffer.
pub struct Rows<'a, U> {
    data: &'a [U],
    offsets: &'a [u32],
}

/// Rows of a string batch (UTF-16 code units).
pub type Utf16Rows<'a> = Rows<'a, u16>;
/// Rows of a byte batch (UTF-8).
pub type Utf8Rows<'a> = Rows<'a, u8>;

impl<'a, U> Rows<'a, U> {
    /// Row `i` is `data[offsets[i] .. offsets[i + 1]]`. Refuses offsets that are empty,
    /// decreasing or past the end, naming the first bad index.
    pub fn new(data: &'a [U], offsets: &'a [u32]) -> Result<Self, Error> {
        if offsets.is_empty() {
            return Err(Error::OffsetsEmpty);
        }
        let mut prev = 0u32;
        for (i, &o) in offsets.iter().enumerate() {
            if i > 0 && o < prev {
                return Err(Error::OffsetsDecreasing {
                    index: i,
                    value: o as u64,
                    prev: prev as u64,
                });
            }
            if o as usize > data.len() {
                return Err(Error::OffsetsOutOfRange {
                    index: i,
                    value: o as u64,
                    len: data.len(),
                });
            }
            prev = o;
        }
        Ok(Rows { data, offsets })
    }

    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn row(&self, i: usize) -> &'a [U] {
        &self.data[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }
}

/// A unit of input: UTF-16 code units (`u16`, strings) or UTF-8 bytes (`u8`). Decoding, the
/// one-unit-one-token fast path and the range checks are specialised per unit type.
pub trait Unit: Copy + Send + Sync + 'static + private::Sealed {
    #[doc(hidden)]
    fn strict_error(row: usize, at: usize) -> Error;
    #[doc(hidden)]
    fn decode<S: decode::Sink>(
        row: &[Self],
        opts: &Options,
        k: &simd::Kernels,
        sink: &mut S,
    ) -> Result<(), usize>;
    /// How `row` becomes tokens: `Some((content length, kind))` when it is well formed (no lone
    /// surrogate, valid UTF-8), `None` when it needs the replacing decoder (or is an error).
    #[doc(hidden)]
    fn measure(row: &[Self], enc: Encoding, k: &simd::Kernels) -> Option<(usize, decode::Kind)>;
    /// Hands the content tokens of a well-formed row to `f` in chunks, in order, while `f`
    /// returns true (vocabulary lookup is the caller's).
    #[doc(hidden)]
    fn valid_tokens(
        row: &[Self],
        enc: Encoding,
        k: &simd::Kernels,
        f: &mut dyn FnMut(&[u32]) -> bool,
    );
    /// Decodes the code points of a well-formed row (`codepoint`, `canine`) from its start into
    /// `dst` until it is full or the row ends; returns how many were written.
    #[doc(hidden)]
    fn decode_code_points(row: &[Self], k: &simd::Kernels, dst: &mut [u32]) -> usize;
    /// Writes the tokens `src` (a window of a simple row) into `dst`.
    #[doc(hidden)]
    fn write_simple<T: Id>(src: &[Self], opts: &Options, k: &simd::Kernels, dst: &mut [T]);
    /// The first id above `limit` in `src` (a window of a simple row), if any.
    #[doc(hidden)]
    fn simple_first_above(
        src: &[Self],
        opts: &Options,
        k: &simd::Kernels,
        limit: u32,
    ) -> Option<u32>;
}

mod private {
    pub trait Sealed {}
    impl Sealed for u16 {}
    impl Sealed for u8 {}
}

impl Unit for u16 {
    fn strict_error(row: usize, at: usize) -> Error {
        Error::LoneSurrogate { row, unit: at }
    }
    fn decode<S: decode::Sink>(
        row: &[u16],
        opts: &Options,
        k: &simd::Kernels,
        sink: &mut S,
    ) -> Result<(), usize> {
        decode::decode16(row, opts.encoding, opts.invalid == Invalid::Error, k, sink)
    }
    #[inline]
    fn measure(r: &[u16], enc: Encoding, k: &simd::Kernels) -> Option<(usize, decode::Kind)> {
        use decode::Kind::{Simple, Valid};
        match enc {
            Encoding::Utf16 => Some((r.len(), Simple)),
            Encoding::Codepoint | Encoding::Canine => {
                // No surrogate before `p`: the scan can start there with a clean state.
                let p = (k.bmp_prefix)(r);
                if p == r.len() {
                    return Some((p, Simple));
                }
                (k.utf16_scan)(&r[p..]).map(|c| (p + c.chars, Valid))
            }
            Encoding::Utf8 | Encoding::Byt5 => {
                let p = (k.ascii_prefix_u16)(r);
                if p == r.len() {
                    return Some((p, Simple));
                }
                (k.utf16_scan)(&r[p..]).map(|c| (p + c.utf8_len, Valid))
            }
        }
    }
    fn valid_tokens(
        r: &[u16],
        enc: Encoding,
        k: &simd::Kernels,
        f: &mut dyn FnMut(&[u32]) -> bool,
    ) {
        decode::valid_tokens16(r, enc, k, f)
    }
    #[inline]
    fn decode_code_points(r: &[u16], k: &simd::Kernels, dst: &mut [u32]) -> usize {
        (k.utf16_decode)(r, dst).1
    }
    #[inline]
    fn write_simple<T: Id>(src: &[u16], opts: &Options, k: &simd::Kernels, dst: &mut [T]) {
        let add = decode::byte_add(opts.encoding);
        match opts.vocab {
            Some(v) => {
                for (d, &u) in dst.iter_mut().zip(src) {
                    *d = T::from_i32(v.id16(u));
                }
            }
            None if add == 0 => T::widen_u16(k)(src, dst),
            None => {
                for (d, &u) in dst.iter_mut().zip(src) {
                    *d = T::from_i32(u as i32 + add as i32);
                }
            }
        }
    }
    fn simple_first_above(
        src: &[u16],
        opts: &Options,
        k: &simd::Kernels,
        limit: u32,
    ) -> Option<u32> {
        let add = decode::byte_add(opts.encoding);
        match opts.vocab {
            Some(v) => src
                .iter()
                .map(|&u| v.id(u as u32) as u32)
                .find(|&id| id > limit),
            None => {
                if ((k.max_u16)(src) as u32 + add) <= limit {
                    return None;
                }
                src.iter().map(|&u| u as u32 + add).find(|&id| id > limit)
            }
        }
    }
}

impl Unit for u8 {
    fn strict_error(row: usize, at: usize) -> Error {
        Error::InvalidUtf8 { row, byte: at }
    }
    fn decode<S: decode::Sink>(
        row: &[u8],
        opts: &Options,
        k: &simd::Kernels,
        sink: &mut S,
    ) -> Result<(), usize> {
        decode::decode8(row, opts.encoding, opts.invalid == Invalid::Error, k, sink)
    }
    #[inline]
    fn measure(r: &[u8], enc: Encoding, k: &simd::Kernels) -> Option<(usize, decode::Kind)> {
        use decode::Kind::{Simple, Valid};
        // ASCII before `p`: the scan can start there with a clean state.
        let p = (k.ascii_prefix)(r);
        if p == r.len() {
            return Some((p, Simple));
        }
        let c = (k.utf8_scan)(&r[p..])?;
        // Well-formed UTF-8 maps byte for byte onto the byte encodings.
        Some(match enc {
            Encoding::Utf8 | Encoding::Byt5 => (r.len(), Simple),
            Encoding::Codepoint | Encoding::Canine => (p + c.chars, Valid),
            Encoding::Utf16 => (p + c.chars + c.astral, Valid),
        })
    }
    fn valid_tokens(r: &[u8], enc: Encoding, k: &simd::Kernels, f: &mut dyn FnMut(&[u32]) -> bool) {
        decode::valid_tokens8(r, enc, k, f)
    }
    #[inline]
    fn decode_code_points(r: &[u8], k: &simd::Kernels, dst: &mut [u32]) -> usize {
        (k.utf8_decode)(r, dst).1
    }
    #[inline]
    fn write_simple<T: Id>(src: &[u8], opts: &Options, k: &simd::Kernels, dst: &mut [T]) {
        match opts.vocab {
            Some(v) => {
                for (d, &b) in dst.iter_mut().zip(src) {
                    *d = T::from_i32(v.id16(b as u16));
                }
            }
            None => T::widen_u8(k)(src, decode::byte_add(opts.encoding) as i32, dst),
        }
    }
    fn simple_first_above(
        src: &[u8],
        opts: &Options,
        _k: &simd::Kernels,
        limit: u32,
    ) -> Option<u32> {
        let add = decode::byte_add(opts.encoding);
        match opts.vocab {
            Some(v) => src
                .iter()
                .map(|&b| v.id(b as u32) as u32)
                .find(|&id| id > limit),
            None => src.iter().map(|&b| b as u32 + add).find(|&id| id > limit),
        }
    }
}
