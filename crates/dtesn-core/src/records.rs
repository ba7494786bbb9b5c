//! Records: file bytes in, rows out, with no string per row.
//!
//! `vectorizeFile` reads a file in chunks of bounded size and calls [`parse_records`] once per
//! chunk; the rows come back as one UTF-8 buffer plus `u32` offsets, ready for `vectorizeBytes`.
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
//! Lines are split with `memchr` (SIMD). Each JSONL line is validated in full with `sonic-rs`'s
//! parser primitives (SIMD string scanning): the top-level object is walked key by key, other
//! values are skipped with full validation (plus a check of `\u` hex digits, which sonic-rs's
//! skipping leaves out), and only the field's string is unescaped, then appended to
//! [`Records::bytes`]; no DOM, no allocation per line. UTF-8 is validated once per chunk with
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
    /// Scratch for unescaped keys.
    key_buf: Vec<u8>,
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
            let mut utf8 = Utf8Cursor { valid_until: 0 };
            let mut key_buf = std::mem::take(&mut out.key_buf);
            out.line_count = for_each_line(region, |index, start, line| {
                if line.iter().all(|&b| matches!(b, b' ' | b'\t' | b'\r')) {
                    out.blank += 1;
                    return;
                }
                let row_start = out.bytes.len();
                let result = if utf8.is_valid(region, start, start + line.len()) {
                    // SAFETY: `is_valid` checked `region[start .. start + line.len()]`, which is
                    // `line`, to be well-formed UTF-8.
                    let text = unsafe { std::str::from_utf8_unchecked(line) };
                    extract(text, field, &mut out.bytes, &mut key_buf)
                } else {
                    // Rare: decode as TextDecoder would, then parse the replaced text.
                    let text = String::from_utf8_lossy(line);
                    extract(&text, field, &mut out.bytes, &mut key_buf)
                };
                match result {
                    Ok(()) => out.push_row(index),
                    Err(message) => {
                        out.bytes.truncate(row_start);
                        out.errors.push(RecordError {
                            line: index,
                            message,
                        });
                    }
                }
            });
            out.key_buf = key_buf;
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

/// UTF-8 validation of a region in as few calls as possible: one for the whole region when it is
/// well-formed (the common case), and from the start of a line again after each ill-formed one.
struct Utf8Cursor {
    /// `region[..valid_until]` is known to be well-formed up to the lines checked so far.
    valid_until: usize,
}

impl Utf8Cursor {
    /// Whether `region[start..end]` is well-formed; lines must be asked about in order.
    fn is_valid(&mut self, region: &[u8], start: usize, end: usize) -> bool {
        if end <= self.valid_until {
            return true;
        }
        // `start` is a character boundary ('\n' precedes it), so validation may start there.
        self.valid_until = match simdutf8::compat::from_utf8(&region[start..]) {
            Ok(_) => region.len(),
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
