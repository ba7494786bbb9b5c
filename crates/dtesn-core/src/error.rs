//! Errors of the core, with the exact messages of docs/SEMANTICS.md.

use std::fmt;

use crate::{Dtype, Encoding};

/// Which JavaScript error class a binding should throw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Type,
    Range,
}

/// Everything the core can refuse. `Display` gives the user-facing message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A lone surrogate in string row `row` at code unit `unit` (strict mode).
    LoneSurrogate {
        row: usize,
        unit: usize,
    },
    /// Ill-formed UTF-8 in byte row `row` at byte `byte` within the row (strict mode).
    InvalidUtf8 {
        row: usize,
        byte: usize,
    },
    /// A written id that does not fit the dtype.
    IdRange {
        row: usize,
        id: u32,
        dtype: Dtype,
    },
    /// A special token that cannot be stored in the dtype at all.
    SpecialRange {
        encoding: Encoding,
        id: u32,
        dtype: Dtype,
    },
    PadRange {
        pad_id: i64,
        dtype: Dtype,
    },
    MaxLengthBelowSpecials {
        encoding: Encoding,
        specials: u32,
    },
    /// A numeric option below its minimum (`maxLength`, `padToMultipleOf`).
    IntegerOption {
        name: &'static str,
        value: i64,
    },
    VocabWithEncoding {
        encoding: Encoding,
    },
    VocabNotScalar {
        index: usize,
        value: u32,
    },
    VocabRepeat {
        index: usize,
        first: usize,
        value: u32,
    },
    TooLarge {
        rows: usize,
        width: u64,
    },
    OffsetsEmpty,
    OffsetsDecreasing {
        index: usize,
        value: u64,
        prev: u64,
    },
    OffsetsOutOfRange {
        index: usize,
        value: u64,
        len: usize,
    },
    OutTooSmall {
        which: &'static str,
        len: usize,
        rows: usize,
        width: usize,
    },
    OutWrongType {
        which: &'static str,
        expected: &'static str,
        dtype: Dtype,
        got: &'static str,
    },
    Overlap {
        what: &'static str,
    },
    /// A fixed width (internal option) below the longest kept row.
    WidthTooSmall {
        width: u32,
        longest: u32,
    },
    /// A binding measured a different number of rows than it passed (a bug in the binding).
    MeasuredRows {
        measured: usize,
        rows: usize,
    },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::LoneSurrogate { .. }
            | Error::InvalidUtf8 { .. }
            | Error::VocabWithEncoding { .. }
            | Error::VocabNotScalar { .. }
            | Error::OutWrongType { .. } => ErrorKind::Type,
            _ => ErrorKind::Range,
        }
    }
}

fn quote_cp(cp: u32) -> String {
    match char::from_u32(cp) {
        Some(c) => c.to_string(),
        None => format!("\\u{{{cp:x}}}"),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::LoneSurrogate { row, unit } => write!(
                f,
                "row {row} contains a lone surrogate at code unit {unit} (options.invalid is 'error')"
            ),
            Error::InvalidUtf8 { row, byte } => write!(
                f,
                "row {row} is not valid UTF-8 at byte {byte} (options.invalid is 'error')"
            ),
            Error::IdRange { row, id, dtype } => write!(
                f,
                "row {row}: id {id} does not fit dtype '{}' (max {})",
                dtype.name(),
                dtype.max()
            ),
            Error::SpecialRange { encoding, id, dtype } => write!(
                f,
                "encoding '{}' special token {id} does not fit dtype '{}' (max {})",
                encoding.name(),
                dtype.name(),
                dtype.max()
            ),
            Error::PadRange { pad_id, dtype } => write!(
                f,
                "options.padId must be an integer in [{}, {}] for dtype '{}', got {pad_id}",
                dtype.min(),
                dtype.max(),
                dtype.name()
            ),
            Error::MaxLengthBelowSpecials { encoding, specials } => write!(
                f,
                "options.maxLength must be >= {specials} to hold the special tokens of encoding '{}'",
                encoding.name()
            ),
            Error::IntegerOption { name, value } => {
                write!(f, "options.{name} must be an integer >= 1, got {value}")
            }
            Error::VocabWithEncoding { encoding } => write!(
                f,
                "options.vocab is only valid with encoding 'codepoint', got '{}'",
                encoding.name()
            ),
            Error::VocabNotScalar { index, value } => write!(
                f,
                "options.vocab[{index}] must be a single code point, got U+{value:04X}"
            ),
            Error::VocabRepeat { index, first, value } => write!(
                f,
                "options.vocab[{index}] repeats '{}' (first at index {first})",
                quote_cp(value)
            ),
            Error::TooLarge { rows, width } => write!(
                f,
                "rows x width = {rows} x {width} exceeds 2147483647 elements"
            ),
            Error::OffsetsEmpty => write!(f, "offsets must have at least 1 element"),
            Error::OffsetsDecreasing { index, value, prev } => write!(
                f,
                "offsets must be non-decreasing: offsets[{index}] = {value} < offsets[{}] = {prev}",
                index - 1
            ),
            Error::OffsetsOutOfRange { index, value, len } => {
                write!(f, "offsets[{index}] = {value} exceeds bytes.length = {len}")
            }
            Error::OutTooSmall { which, len, rows, width } => write!(
                f,
                "options.out.{which} has {len} elements, the batch needs {rows} x {width} = {}",
                rows * width
            ),
            Error::OutWrongType { which, expected, dtype, got } => write!(
                f,
                "options.out.{which} must be a {expected} for dtype '{}', got {got}",
                dtype.name()
            ),
            Error::Overlap { what } => write!(f, "{what}"),
            Error::WidthTooSmall { width, longest } => {
                write!(f, "options.width = {width} is below the longest kept row ({longest} tokens)")
            }
            Error::MeasuredRows { measured, rows } => {
                write!(f, "internal error: {measured} rows measured for a batch of {rows}")
            }
        }
    }
}

impl std::error::Error for Error {}
