//! Records: file bytes in, rows out, with no string per row.
//!
//! [`parse_records`] turns one chunk of a file into rows: one UTF-8 buffer plus `u32` offsets,
//! ready for `vectorizeBytes`. [`fill_rows`] gives the same rows but writes them into a caller's
//! arena and stops when a batch is full: `vectorizeFile` reads a file or stream in chunks of bounded
//! size and makes one call per batch, straight into the batch's shared memory.
//!
//! # Lines
//!
//! A line ends at `'\n'`; one trailing `'\r'` is stripped (`"a\r\r\n"` is `"a\r"`). The bytes after
//! the last `'\n'` of a chunk are not consumed unless `is_last`: the caller carries them into the
//! next chunk. At the end of the input a final line without `'\n'` is a line, and an input that
//! ends in `'\n'` has no extra empty line after it (so `""` has 0 lines and `"\n"` has 1).
//!
//! # Formats
//!
//! * [`Format::Lines`]: every line is a row, empty lines included, so row `i` is line `i`. Bytes
//!   pass through unchecked: ill-formed UTF-8 is left for `vectorizeBytes`, which decodes it
//!   exactly like `TextDecoder` (splitting on the `'\n'` byte before decoding gives the same rows
//!   as decoding first, since `'\n'` never occurs inside a UTF-8 sequence).
//! * [`Format::Jsonl`]: each non-blank line must be a JSON object (RFC 8259, as `JSON.parse`
//!   accepts it) whose `field` is a JSON string; the row is that string, unescaped, as UTF-8. A
//!   line of JSON whitespace only (`' '`, `'\t'`, `'\r'`) is blank: not a row and not an error,
//!   just counted in [`Records::blank`]. Every other line is either a row or an error, so
//!   `rows + errors + blank == line_count`.
//!
//! # What JSONL rows equal
//!
//! A row equals what `JSON.parse(line)[field]` gives on the text `TextDecoder` decodes from the
//! file, once it is UTF-8 again, except for lone surrogates:
//! * ill-formed UTF-8 anywhere in a line is first replaced by U+FFFD exactly as `TextDecoder`
//!   does (one per maximal subpart), so rows are always well-formed UTF-8;
//! * an escaped lone surrogate (`"\ud800"`, or a high surrogate escape not followed by a low one)
//!   becomes U+FFFD. `vectorize` turns a lone surrogate of a JavaScript string into U+FFFD for every
//!   encoding but `'utf16'`, so the ids are identical for all other encodings; with `'utf16'` the
//!   JavaScript string would give the surrogate's own code unit where the row gives 0xFFFD, and
//!   `invalid: 'error'` cannot see these any more. Escaped pairs (`"\ud83d\ude00"`) are joined.
//! * when a key repeats, the last occurrence wins, as in `JSON.parse`. Keys are unescaped before
//!   they are compared; a key with a lone surrogate escape compares as if it held U+FFFD.
//!
//! Not supported: arrays/objects nested deeper than [`MAX_DEPTH`] levels (an error for the line:
//! the validator recurses, and this bounds its stack to well under 1 MiB), and inputs longer than
//! [`MAX_INPUT`] bytes per call (offsets are `u32`; a panic, bindings check first). A UTF-8 byte
//! order mark is not stripped: at the start of a JSONL file it makes the first line an error, so
//! the caller should skip it.
//!
//! # Errors
//!
//! A line that is not valid JSON, not an object, lacks the field, or whose field is not a string
//! gives a [`RecordError`] with the line number and a message such as
//! `invalid JSON: EOF while parsing at column 17`, `line is an array, not an object`,
//! `field 'text' is missing` or `field 'text' is a number, not a string`. Columns are 1-based
//! byte positions within the line (after U+FFFD replacement when the line had ill-formed UTF-8).
//!
//! # Cost
//!
//! Lines are split with `memchr` (SIMD). A JSONL line of the common shape (a flat object whose
//! keys and string values have no escapes; numbers, `true`, `false`, `null`) is read in one pass
//! by a small scanner (`plain_field`: eight bytes per step for strings) and its field's bytes are
//! the row as they are: on the 1M-line file of bench/file.bench.ts (94 MB, every line of that
//! shape) that is about 100 ns a line (~0.9 GB/s) where the full path takes about 250 (~0.35
//! GB/s), measured side by side on 2 shared cores. It only accepts what `JSON.parse` accepts and
//! gives up on anything else (escapes, nesting, any error, a missing or non-string field), which
//! then goes to the full path, so it cannot change a row or an error; the unit tests check it
//! against the full path on every mutation of sample lines. The full path validates the line with
//! `sonic-rs`'s parser primitives (SIMD string scanning): the top-level object is walked key by
//! key, other values are skipped with full validation (plus a check of `\u` hex digits, which
//! sonic-rs's skipping leaves out), and only the field's string is unescaped, then appended to the
//! rows; no DOM, no allocation per line. UTF-8 is validated in 64 KiB windows with
//! `simdutf8` rather than per line (sonic-rs would validate each `&[u8]` line with the slower
//! `std` validator). Measured alternatives (a sonic-rs DOM, simd-json's tape, serde visitors over
//! sonic-rs or serde_json) were at best about as fast on short lines, and each differed from
//! `JSON.parse` somewhere (lone surrogates, unchecked escapes). [`Format::Lines`] copies each line
//! into [`Records::bytes`]: rows must be contiguous for `vectorizeBytes`' offsets, so the `'\n'`
//! (and `'\r'`) between them cannot stay. That copy and the two `u32` pushes per row are most of
//! the cost of `Lines` (about 2 GB/s against 13 GB/s for counting lines with `memchr` alone).
//! Figures: `benches/records.rs`.

use memchr::{memchr, memchr_iter, memrchr};
use sonic_rs::error::ErrorCode;
use sonic_rs::parser::{ParseStatus, Parser};
use sonic_rs::reader::Reader;
use sonic_rs::Read;

/// Largest input of one [`parse_records`] call. JSONL rows can be up to 3 times longer than their
/// line (each ill-formed byte becomes a 3-byte U+FFFD), and offsets are `u32`.
pub const MAX_INPUT: usize = u32::MAX as usize / 3;

/// Deepest nesting of arrays and objects accepted in a JSONL line. The `sonic-rs` validator
/// recurses once per level (about 128 bytes of stack each in release builds); lines nested deeper
/// are reported as errors instead of risking the stack of the thread (a Node.js worker has 4 MiB).
/// Unoptimized builds of sonic-rs use tens of KiB per level, so a debug build of the addon can
/// still overflow on lines nested a few hundred deep.
pub const MAX_DEPTH: usize = 1000;

/// How lines become rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// Every line is a row.
    Lines,
    /// Every non-blank line is a JSON object; the row is its string field `field`.
    Jsonl { field: String },
}

/// A line that did not give a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    /// 0-based line index within the chunk.
    pub line: u32,
    pub message: String,
}

/// The rows of one chunk. Reuse one across calls: [`parse_records`] clears it and keeps the
/// allocations.
#[derive(Clone, Debug, Default)]
pub struct Records {
    /// The rows' UTF-8 bytes, back to back (for JSONL: the unescaped field values).
    pub bytes: Vec<u8>,
    /// Row `i` is `bytes[offsets[i] as usize .. offsets[i + 1] as usize]`; `rows + 1` entries,
    /// the first 0 (also when there are no rows).
    pub offsets: Vec<u32>,
    /// For each row, its 0-based line index within the chunk.
    pub lines: Vec<u32>,
    /// Lines that gave no row, in line order.
    pub errors: Vec<RecordError>,
    /// JSONL lines of whitespace only (always 0 for [`Format::Lines`]).
    pub blank: u32,
    /// Bytes of the input fully processed: up to and including the last `'\n'`, or everything when
    /// `is_last`. The caller passes `input[consumed..]` again, in front of the next chunk.
    pub consumed: usize,
    /// Lines consumed (rows + errors + blank).
    pub line_count: u32,
    /// Buffers reused from call to call.
    scratch: Scratch,
}

impl Records {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i`'s bytes.
    pub fn row(&self, i: usize) -> &[u8] {
        &self.bytes[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// Empties every field, keeping the allocations.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.offsets.clear();
        self.offsets.push(0);
        self.lines.clear();
        self.errors.clear();
        self.blank = 0;
        self.consumed = 0;
        self.line_count = 0;
    }

    fn push_row(&mut self, line: u32) {
        // Cannot truncate: the input is at most MAX_INPUT bytes and rows are at most 3 times
        // longer than their lines.
        self.offsets.push(self.bytes.len() as u32);
        self.lines.push(line);
    }
}

/// Turns the complete lines of `input` (all of it when `is_last`) into rows; see the module docs
/// for the rules. `out` is cleared first; its allocations are reused.
///
/// # Panics
/// When `input.len() > MAX_INPUT`.
pub fn parse_records(input: &[u8], format: &Format, is_last: bool, out: &mut Records) {
    assert!(
        input.len() <= MAX_INPUT,
        "parse_records: input of {} bytes exceeds MAX_INPUT ({MAX_INPUT})",
        input.len()
    );
    out.clear();
    let end = if is_last {
        input.len()
    } else {
        memrchr(b'\n', input).map_or(0, |i| i + 1)
    };
    let region = &input[..end];
    out.consumed = end;
    match format {
        Format::Lines => {
            // Upper bound: every byte but the terminators ends up in `bytes`.
            out.bytes.reserve(region.len());
            out.line_count = for_each_line(region, |index, _, line| {
                out.bytes.extend_from_slice(line);
                out.push_row(index);
            });
        }
        Format::Jsonl { field } => {
            let mut reader = JsonlReader::new(field, std::mem::take(&mut out.scratch));
            out.line_count = for_each_line(region, |index, start, line| {
                match reader.read(region, start, line) {
                    Line::Blank => out.blank += 1,
                    Line::Row(range) => {
                        out.bytes.extend_from_slice(&line[range]);
                        out.push_row(index);
                    }
                    Line::Decoded => {
                        out.bytes.extend_from_slice(&reader.scratch.row);
                        out.push_row(index);
                    }
                    Line::Error(message) => out.errors.push(RecordError {
                        line: index,
                        message,
                    }),
                }
            });
            out.scratch = reader.scratch;
        }
    }
}

/// Calls `f(index, start, line)` for every line of `region` (`line` without its terminator and
/// trailing `'\r'`, `start` its offset in `region`); returns the number of lines.
#[inline]
fn for_each_line(region: &[u8], mut f: impl FnMut(u32, usize, &[u8])) -> u32 {
    let strip = |line: &'_ [u8]| -> usize {
        match line.last() {
            Some(b'\r') => line.len() - 1,
            _ => line.len(),
        }
    };
    let mut start = 0usize;
    let mut index = 0u32;
    for nl in memchr_iter(b'\n', region) {
        let line = &region[start..nl];
        f(index, start, &line[..strip(line)]);
        index += 1;
        start = nl + 1;
    }
    if start < region.len() {
        let line = &region[start..];
        f(index, start, &line[..strip(line)]);
        index += 1;
    }
    index
}

/// Buffers a reader reuses from line to line (and, kept by the caller, from call to call).
#[derive(Clone, Debug, Default)]
pub struct Scratch {
    /// Unescaped keys.
    key: Vec<u8>,
    /// A row the full parser decoded (escapes, replaced ill-formed UTF-8).
    row: Vec<u8>,
}

impl Scratch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held by the buffers (a caller may drop them after a giant line).
    pub fn capacity_bytes(&self) -> usize {
        self.key.capacity() + self.row.capacity()
    }
}

/// What one JSONL line gave.
enum Line {
    Blank,
    /// The row is these bytes of the line, as they are.
    Row(std::ops::Range<usize>),
    /// The row is in `Scratch::row`.
    Decoded,
    Error(String),
}

/// Reads the lines of one region in order.
struct JsonlReader<'f> {
    field: &'f str,
    utf8: Utf8Cursor,
    scratch: Scratch,
}

impl<'f> JsonlReader<'f> {
    fn new(field: &'f str, scratch: Scratch) -> Self {
        Self {
            field,
            utf8: Utf8Cursor { valid_until: 0 },
            scratch,
        }
    }

    /// Classifies `line` (`region[start..]`, without its terminator).
    fn read(&mut self, region: &[u8], start: usize, line: &[u8]) -> Line {
        if line.iter().all(|&b| matches!(b, b' ' | b'\t' | b'\r')) {
            return Line::Blank;
        }
        let Scratch { key, row } = &mut self.scratch;
        row.clear();
        let result = if self.utf8.is_valid(region, start, start + line.len()) {
            if let Some(range) = plain_field(line, self.field.as_bytes()) {
                return Line::Row(range);
            }
            // SAFETY: `is_valid` checked `region[start .. start + line.len()]`, which is `line`,
            // to be well-formed UTF-8.
            let text = unsafe { std::str::from_utf8_unchecked(line) };
            extract(text, self.field, row, key)
        } else {
            // Rare: decode as TextDecoder would, then parse the replaced text.
            let text = String::from_utf8_lossy(line);
            extract(&text, self.field, row, key)
        };
        match result {
            Ok(()) => Line::Decoded,
            Err(message) => Line::Error(message),
        }
    }
}

/// The common shape of a JSONL record, read in one pass without the full parser: a flat object
/// whose keys and string values have no escapes, other values being numbers, `true`, `false` or
/// `null`. Returns where the field's string sits in `line` when the line has exactly that shape
/// and the field's last occurrence is a string; `None` for anything else (escapes, nesting, a
/// missing or non-string field, any syntax error), which the full parser then decides, so this
/// can only make a line faster, never change what it gives. `line` must be well-formed UTF-8.
fn plain_field(line: &[u8], field: &[u8]) -> Option<std::ops::Range<usize>> {
    let mut i = skip_ws(line, 0);
    if line.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(line, i + 1);
    let mut found = None;
    loop {
        if line.get(i) != Some(&b'"') {
            return None; // '}' of an empty object (no field), or not a key
        }
        let key_end = plain_string_end(line, i + 1)?;
        let is_field = &line[i + 1..key_end] == field;
        i = skip_ws(line, key_end + 1);
        if line.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(line, i + 1);
        i = match *line.get(i)? {
            b'"' => {
                let end = plain_string_end(line, i + 1)?;
                if is_field {
                    found = Some(i + 1..end);
                }
                end + 1
            }
            _ if is_field => return None, // not a string: the full parser names what it is
            b't' if line[i..].starts_with(b"true") => i + 4,
            b'f' if line[i..].starts_with(b"false") => i + 5,
            b'n' if line[i..].starts_with(b"null") => i + 4,
            _ => number_end(line, i)?,
        };
        i = skip_ws(line, i);
        match line.get(i) {
            Some(b',') => i = skip_ws(line, i + 1),
            Some(b'}') => break,
            _ => return None,
        }
    }
    if skip_ws(line, i + 1) != line.len() {
        return None;
    }
    found
}

/// The index of the first byte at or after `i` that is not JSON whitespace.
#[inline]
fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = s.get(i) {
        i += 1;
    }
    i
}

/// The index of the `'"'` closing a string whose contents start at `i`, if no backslash or
/// control character (< 0x20, which JSON forbids raw) comes first. Eight bytes per step (SWAR).
#[inline]
fn plain_string_end(s: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(word) = s.get(i..i + 8) {
        let w = u64::from_le_bytes(word.try_into().ok()?);
        let quote = w ^ (ONES * b'"' as u64);
        let slash = w ^ (ONES * b'\\' as u64);
        // A byte's high bit is set where it is zero (in `quote`/`slash`) or below 0x20 (in `w`).
        // Borrows can only add false hits above a true one, so the lowest hit is exact.
        let hits = (quote.wrapping_sub(ONES) & !quote)
            | (slash.wrapping_sub(ONES) & !slash)
            | (w.wrapping_sub(ONES * 0x20) & !w);
        let hits = hits & HIGH;
        if hits != 0 {
            let at = i + (hits.trailing_zeros() / 8) as usize;
            return (s[at] == b'"').then_some(at);
        }
        i += 8;
    }
    while let Some(&b) = s.get(i) {
        match b {
            b'"' => return Some(i),
            b'\\' | 0..=0x1f => return None,
            _ => i += 1,
        }
    }
    None
}

/// The end of a JSON number starting at `i` (RFC 8259 grammar), or `None`.
#[inline]
fn number_end(s: &[u8], mut i: usize) -> Option<usize> {
    let digits = |mut i: usize| {
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    if s.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match *s.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(i + 1),
        _ => return None,
    };
    if s.get(i) == Some(&b'.') {
        let d = digits(i + 1);
        if d == i + 1 {
            return None;
        }
        i = d;
    }
    if let Some(b'e' | b'E') = s.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = s.get(i) {
            i += 1;
        }
        let d = digits(i);
        if d == i {
            return None;
        }
        i = d;
    }
    Some(i)
}

/// Caller-owned storage that [`fill_rows`] appends rows to: typically one batch's rows in memory
/// the caller hands on as is (a `SharedArrayBuffer` the worker pool reads in place).
pub struct RowArena<'a> {
    /// The rows' bytes, back to back.
    pub bytes: &'a mut [u8],
    /// Row `i` is `bytes[offsets[i] .. offsets[i + 1]]`; `offsets[0]` is the caller's (usually 0)
    /// and `offsets[rows]` is where the next row goes.
    pub offsets: &'a mut [u32],
    /// The line number of each row (`first_line` of the call plus the line's index).
    pub lines: &'a mut [u32],
    /// Rows already in the arena.
    pub rows: usize,
}

impl RowArena<'_> {
    /// Rows the arena can hold.
    pub fn capacity(&self) -> usize {
        self.offsets.len().saturating_sub(1).min(self.lines.len())
    }
}

/// Why [`fill_rows`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Every complete line (all of them when `is_last`) is consumed.
    Input,
    /// `max_rows` rows were added, or the arena's row capacity is reached.
    Rows,
    /// The next row (`Filled::need` bytes) does not fit in the arena's bytes; its line is not
    /// consumed.
    Bytes,
    /// A line gave an error and `stop_at_error` was set: the error is the last of `errors`, its
    /// line is not consumed (`consumed` is where it starts).
    Error,
    /// `max_errors` bad lines were recorded in `errors` (lines consumed, as without the limit).
    Errors,
}

/// What one [`fill_rows`] call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Filled {
    /// Bytes of the input consumed: whole lines, each a row, blank, or an error in `errors`.
    pub consumed: usize,
    /// Lines consumed.
    pub line_count: u32,
    /// Blank JSONL lines among them.
    pub blank: u32,
    pub stop: Stop,
    /// With [`Stop::Bytes`]: the length of the row that did not fit.
    pub need: usize,
}

/// Like [`parse_records`], but appends the rows to `arena` and stops when it is full (or after
/// `max_rows` rows, or at the first error when `stop_at_error`, or after `max_errors` errors, so
/// that a caller can bound what it keeps of a file of bad lines), so that one call per batch turns
/// file bytes into a batch in place: a caller cuts batches exactly, calls again with
/// `input[consumed..]` (and `first_line + line_count`), and never copies a row itself. Rows and
/// errors are exactly those of [`parse_records`]; `errors` (cleared first) get line indexes
/// relative to `input`, rows get `first_line + index` in `arena.lines` (wrapping).
///
/// # Panics
/// When `input.len() > MAX_INPUT` or `arena.bytes` has more than `u32::MAX` bytes.
#[allow(clippy::too_many_arguments)]
pub fn fill_rows(
    input: &[u8],
    format: &Format,
    is_last: bool,
    first_line: u32,
    max_rows: usize,
    stop_at_error: bool,
    max_errors: usize,
    arena: &mut RowArena<'_>,
    errors: &mut Vec<RecordError>,
    scratch: &mut Scratch,
) -> Filled {
    assert!(
        input.len() <= MAX_INPUT,
        "fill_rows: input of {} bytes exceeds MAX_INPUT ({MAX_INPUT})",
        input.len()
    );
    assert!(
        arena.bytes.len() <= u32::MAX as usize,
        "fill_rows: an arena of more than u32::MAX bytes"
    );
    errors.clear();
    let end = if is_last {
        input.len()
    } else {
        memrchr(b'\n', input).map_or(0, |i| i + 1)
    };
    let region = &input[..end];
    let limit = arena.rows + max_rows.min(arena.capacity().saturating_sub(arena.rows));
    let mut filled = Filled {
        consumed: 0,
        line_count: 0,
        blank: 0,
        stop: Stop::Input,
        need: 0,
    };
    let field = match format {
        Format::Jsonl { field } => field.as_str(),
        Format::Lines => "",
    };
    let mut reader = JsonlReader::new(field, std::mem::take(scratch));
    let mut start = 0usize;
    while start < region.len() {
        if arena.rows >= limit {
            filled.stop = Stop::Rows;
            break;
        }
        let next = memchr(b'\n', &region[start..]).map_or(region.len(), |k| start + k + 1);
        let mut line = &region[start..next];
        if line.last() == Some(&b'\n') {
            line = &line[..line.len() - 1];
        }
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        let index = filled.line_count;
        let got = match format {
            Format::Lines => Line::Row(0..line.len()),
            Format::Jsonl { .. } => reader.read(region, start, line),
        };
        let row: &[u8] = match &got {
            Line::Blank => {
                filled.blank += 1;
                &[]
            }
            Line::Row(range) => &line[range.clone()],
            Line::Decoded => &reader.scratch.row,
            Line::Error(_) => &[],
        };
        let mut errors_full = false;
        match got {
            Line::Row(_) | Line::Decoded => {
                let at = arena.offsets[arena.rows] as usize;
                if at > arena.bytes.len() || row.len() > arena.bytes.len() - at {
                    filled.stop = Stop::Bytes;
                    filled.need = row.len();
                    break;
                }
                arena.bytes[at..at + row.len()].copy_from_slice(row);
                arena.lines[arena.rows] = first_line.wrapping_add(index);
                arena.rows += 1;
                // Fits: at + row.len() <= bytes.len() <= u32::MAX.
                arena.offsets[arena.rows] = (at + row.len()) as u32;
            }
            Line::Blank => {}
            Line::Error(message) => {
                errors.push(RecordError {
                    line: index,
                    message,
                });
                if stop_at_error {
                    filled.stop = Stop::Error;
                    break;
                }
                errors_full = errors.len() >= max_errors;
            }
        }
        filled.line_count += 1;
        start = next;
        if errors_full {
            filled.stop = Stop::Errors;
            break;
        }
    }
    filled.consumed = start;
    *scratch = reader.scratch;
    filled
}

/// UTF-8 validation of a region in a few large calls: windows of [`UTF8_WINDOW`] bytes (or a whole
/// line, if longer) from the start of the first line not yet known to be well-formed, so a caller
/// that stops early (`fill_rows` at the end of a batch) does not validate the rest of its input
/// again and again.
struct Utf8Cursor {
    /// `region[..valid_until]` is known to be well-formed up to the lines checked so far.
    valid_until: usize,
}

const UTF8_WINDOW: usize = 64 << 10;

impl Utf8Cursor {
    /// Whether `region[start..end]` is well-formed; lines must be asked about in order.
    fn is_valid(&mut self, region: &[u8], start: usize, end: usize) -> bool {
        if end <= self.valid_until {
            return true;
        }
        // `start` is a character boundary ('\n' precedes it), so validation may start there. A
        // window that cuts a character ends before it (valid_up_to), after `end` unless the line
        // itself is ill-formed.
        let stop = region.len().min(end.max(start.saturating_add(UTF8_WINDOW)));
        self.valid_until = match simdutf8::compat::from_utf8(&region[start..stop]) {
            Ok(_) => stop,
            Err(e) => start + e.valid_up_to(),
        };
        end <= self.valid_until
    }
}

/// What the field's last occurrence held.
enum Found {
    Missing,
    /// A string, already appended to `out`.
    Str,
    /// Another kind of value (for the message).
    Other(&'static str),
}

/// Validates one JSONL line and appends its field's string to `out` (anything appended is the
/// caller's to truncate on error).
fn extract(line: &str, field: &str, out: &mut Vec<u8>, buf: &mut Vec<u8>) -> Result<(), String> {
    check_depth(line.as_bytes())?;
    let row_start = out.len();
    let mut p = Parser::new(Read::from(line)).utf8_lossy();
    match p.skip_space() {
        Some(b'{') => {}
        _ => return Err(not_an_object(line)),
    }
    let mut found = Found::Missing;
    match p.skip_space() {
        Some(b'}') => {}
        Some(b'"') => loop {
            // Keys are unescaped (and their escapes checked) by parse_str; lone surrogates become
            // U+FFFD because of utf8_lossy.
            let is_field = &*p.parse_str(buf).map_err(json_error)? == field;
            match p.skip_space() {
                Some(b':') => {}
                None => return Err(json_error(p.error(ErrorCode::EofWhileParsing))),
                Some(_) => return Err(json_error(p.error(ErrorCode::ExpectedColon))),
            }
            // A string field is unescaped by parse_str, which checks every escape (also the hex
            // digits) and, with utf8_lossy, turns lone surrogates into U+FFFD (joining pairs).
            // A repeated field replaces the earlier value, as in JSON.parse.
            if is_field && p.skip_space_peek() == Some(b'"') {
                p.skip_space();
                let at = p.read.index() - 1;
                let s = match p.parse_str(buf) {
                    Ok(s) => s,
                    Err(e) => {
                        // skip_one places some errors (control characters) more precisely;
                        // it does not check \u hex digits, which parse_str does.
                        p.read.set_index(at);
                        return Err(json_error(p.skip_one(true).err().unwrap_or(e)));
                    }
                };
                out.truncate(row_start);
                out.extend_from_slice(s.as_bytes());
                found = Found::Str;
            } else {
                let (raw, status) = p.skip_one(true).map_err(json_error)?;
                if status == ParseStatus::HasEscaped || matches!(raw.first(), Some(b'{' | b'[')) {
                    check_hex_escapes(line, raw)?;
                }
                if is_field {
                    out.truncate(row_start);
                    found = Found::Other(kind(raw));
                }
            }
            match p.skip_space() {
                Some(b'}') => break,
                Some(b',') => match p.skip_space() {
                    Some(b'"') => {}
                    None => return Err(json_error(p.error(ErrorCode::EofWhileParsing))),
                    Some(_) => return Err(json_error(p.error(ErrorCode::ExpectObjectKeyOrEnd))),
                },
                None => return Err(json_error(p.error(ErrorCode::EofWhileParsing))),
                Some(_) => return Err(json_error(p.error(ErrorCode::ExpectedObjectCommaOrEnd))),
            }
        },
        None => return Err(json_error(p.error(ErrorCode::EofWhileParsing))),
        Some(_) => return Err(json_error(p.error(ErrorCode::ExpectObjectKeyOrEnd))),
    }
    if p.skip_space().is_some() {
        return Err(json_error(p.error(ErrorCode::TrailingCharacters)));
    }
    match found {
        Found::Str => Ok(()),
        Found::Missing => Err(format!("field '{field}' is missing")),
        Found::Other(what) => Err(format!("field '{field}' is {what}, not a string")),
    }
}

/// What a (valid) raw JSON value is, for messages.
fn kind(raw: &[u8]) -> &'static str {
    match raw.first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// The message for a line that does not start with '{': invalid JSON if it is, else what it is.
fn not_an_object(line: &str) -> String {
    let mut p = Parser::new(Read::from(line)).utf8_lossy();
    let raw = match p.skip_one(true) {
        Ok((raw, _)) => raw,
        Err(e) => return json_error(e),
    };
    if let Err(message) = check_hex_escapes(line, raw) {
        return message;
    }
    if p.skip_space().is_some() {
        return json_error(p.error(ErrorCode::TrailingCharacters));
    }
    format!("line is {}, not an object", kind(raw))
}

/// `invalid JSON: <what> at column <c>` from a sonic-rs error (its Display adds the line number
/// and a snippet, which a one-line JSONL message does not need).
#[cold]
fn json_error(e: sonic_rs::Error) -> String {
    let full = e.to_string();
    let what = full.split(" at line ").next().unwrap_or(&full);
    let what = what.lines().next().unwrap_or(what);
    // "Invalid number" -> "invalid number", but "EOF while parsing" stays.
    let mut chars = what.chars();
    let what = match (chars.next(), chars.next()) {
        (Some(a), Some(b)) if b.is_lowercase() => {
            a.to_lowercase().chain([b]).chain(chars).collect()
        }
        (None, _) => String::from("syntax error"),
        _ => what.to_string(),
    };
    format!("invalid JSON: {what} at column {}", e.offset() + 1)
}

/// sonic-rs checks every escape it skips except the four hex digits of `\u`; this checks those in
/// `raw` (a value `skip_one` accepted, so every backslash in it starts an escape inside a string).
fn check_hex_escapes(line: &str, raw: &[u8]) -> Result<(), String> {
    let base = raw.as_ptr() as usize - line.as_ptr() as usize;
    let mut i = 0;
    while let Some(k) = memchr(b'\\', raw.get(i..).unwrap_or_default()) {
        i += k;
        if raw.get(i + 1) == Some(&b'u') {
            let hex = raw.get(i + 2..i + 6).unwrap_or_default();
            if hex.len() != 4 || !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(format!(
                    "invalid JSON: invalid \\u escape (4 hex digits expected) at column {}",
                    base + i + 1
                ));
            }
            i += 6;
        } else {
            i += 2;
        }
    }
    Ok(())
}

/// Refuses lines nested deeper than [`MAX_DEPTH`] before the recursive validator sees them. Costs
/// nothing for lines shorter than `MAX_DEPTH` bytes, one vectorized count for longer ones, and a
/// string-aware scan only when that count exceeds `MAX_DEPTH`.
fn check_depth(line: &[u8]) -> Result<(), String> {
    if line.len() <= MAX_DEPTH {
        return Ok(());
    }
    let opens = line
        .iter()
        .map(|&b| (b == b'[' || b == b'{') as usize)
        .sum::<usize>();
    if opens <= MAX_DEPTH {
        return Ok(());
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in line.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!(
                        "arrays and objects nested deeper than {MAX_DEPTH} levels are not supported (column {})",
                        i + 1
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Number of `'\n'` bytes in `bytes`: the lines before an offset of a file, for the absolute line
/// numbers of a byte range (`vectorizeFile`'s `range`). memchr's vectorized count, several GB/s.
pub fn count_newlines(bytes: &[u8]) -> usize {
    memchr_iter(b'\n', bytes).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the full parser gives for a line (well-formed UTF-8).
    fn full(line: &str, field: &str) -> Result<Vec<u8>, String> {
        let (mut out, mut key) = (Vec::new(), Vec::new());
        extract(line, field, &mut out, &mut key).map(|()| out)
    }

    /// `plain_field` may only answer what the full parser answers; returns whether it answered.
    fn agrees(line: &str, field: &str) -> bool {
        match plain_field(line.as_bytes(), field.as_bytes()) {
            Some(range) => {
                assert_eq!(
                    full(line, field).as_deref(),
                    Ok(&line.as_bytes()[range]),
                    "{line:?}"
                );
                true
            }
            None => false,
        }
    }

    #[test]
    fn plain_field_takes_the_common_shape() {
        for line in [
            r#"{"id":1,"text":"hello"}"#,
            r#"{"text":""}"#,
            r#" { "text" : "a b" , "n" : -0.5e+10 , "t" : true , "f" : false , "z" : null } "#,
            "{\t\"text\"\r:\"x\"}",
            r#"{"text":"first","text":"last"}"#,
            r#"{"a":0,"b":-0,"c":1.25,"d":2E-3,"e":1e999,"text":"é 😀 中文"}"#,
            r#"{"text":"a very long string that needs more than a few words of eight bytes each"}"#,
            "{\"text\":\"'quotes' and / slashes \u{7f}\"}",
        ] {
            assert!(agrees(line, "text"), "{line:?} should take the fast path");
        }
    }

    #[test]
    fn plain_field_leaves_everything_else_to_the_full_parser() {
        for line in [
            r#"{"text":"esc\"aped"}"#,
            r#"{"text":"a\nb"}"#,
            r#"{"te\u0078t":"x"}"#,
            "{\"text\":\"tab\there\"}",
            r#"{"text":"x","n":{"text":"nested"}}"#,
            r#"{"text":"x","a":[1,2]}"#,
            r#"{"text":5}"#,
            r#"{"text":"s","text":5}"#,
            r#"{"other":"x"}"#,
            r#"{}"#,
            r#"{"text":"x",}"#,
            r#"{"text":"x"} x"#,
            r#"{"text":"x""#,
            r#"{"text":"x"#,
            r#"{"text" "x"}"#,
            r#"{"a":01,"text":"x"}"#,
            r#"{"a":1.,"text":"x"}"#,
            r#"{"a":.5,"text":"x"}"#,
            r#"{"a":1e,"text":"x"}"#,
            r#"{"a":+1,"text":"x"}"#,
            r#"{"a":tru,"text":"x"}"#,
            r#"{"a":nulls,"text":"x"}"#,
            r#"["text","x"]"#,
            r#""text""#,
        ] {
            assert!(
                !agrees(line, "text"),
                "{line:?} should go to the full parser"
            );
        }
    }

    /// Every prefix, every one-byte deletion and every replacement by a structural byte of some
    /// lines of the common shape: whenever the fast path answers, it answers like the full parser.
    #[test]
    fn plain_field_agrees_with_the_full_parser_on_mutations() {
        let lines = [
            r#"{"id":12,"text":"hello world","ok":true,"x":null,"f":false,"n":-1.5e3}"#,
            r#" {"text" : "a" , "text":"b"} "#,
        ];
        let bytes = b"{}[]\":,.-+eE0159tfnul \t\\ax";
        let (mut answered, mut tried) = (0, 0);
        for line in lines {
            let b = line.as_bytes();
            let mut variants: Vec<Vec<u8>> = Vec::new();
            for i in 0..=b.len() {
                variants.push(b[..i].to_vec());
                if i < b.len() {
                    let mut v = b.to_vec();
                    v.remove(i);
                    variants.push(v);
                    for &c in bytes {
                        let mut v = b.to_vec();
                        v[i] = c;
                        variants.push(v);
                        let mut v = b.to_vec();
                        v.insert(i, c);
                        variants.push(v);
                    }
                }
            }
            for v in variants {
                let text = std::str::from_utf8(&v).unwrap();
                tried += 1;
                answered += agrees(text, "text") as usize;
            }
        }
        assert!(answered > 100 && answered < tried, "{answered} of {tried}");
    }
}
