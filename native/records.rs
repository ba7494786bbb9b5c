//! N-API binding of the record reader (`dtesn_core::records`), with no JavaScript string per row:
//!
//! * `fillRows` (what `vectorizeFile` uses): the rows of a chunk's complete lines go straight into
//!   the caller's batch arena (bytes, `Uint32Array` offsets and line numbers, typically in a
//!   SharedArrayBuffer), stopping when the batch is full: one call per batch, no per-row
//!   JavaScript work, no copy of the rows out. Only a small result object crosses back.
//! * `parseRecords`: one chunk in, rows out as one UTF-8 buffer plus offsets (the input of
//!   `vectorizeBytes`). The rows are parsed into a per-thread `Records` whose allocations are
//!   reused from call to call, then copied once into fresh ArrayBuffers, so the returned arrays
//!   never alias memory a later call overwrites.
//!
//! The rules (lines, blank lines, JSONL extraction, errors) are in the core module's
//! documentation. Only error objects cost one JavaScript allocation each (their messages are
//! strings); rows never do.

use std::cell::RefCell;
use std::ptr;

use dtesn_core::records::{
    count_newlines, fill_rows, parse_records, Format, RecordError, Records, RowArena, Scratch, Stop, MAX_INPUT,
};
use dtesn_core::ErrorKind;
use napi::bindgen_prelude::{Env, Unknown};
use napi::{sys, JsValue};
use napi_derive::napi;

use crate::{
    check, describe, fresh, guard, is_nullish, throw, typed_array_of, with_scratch, HandleScope,
    NResult, Thrown,
};

thread_local! {
    /// Reused output of the core (one per thread: workers have their own).
    static RECORDS: RefCell<Records> = RefCell::new(Records::default());
    /// Reused buffers of `fillRows`.
    static FILL: RefCell<(Scratch, Vec<RecordError>)> = RefCell::new(Default::default());
}

/// The value of a JavaScript string (lone surrogates become U+FFFD), or `None` for a non-string.
fn string_value(env: sys::napi_env, v: sys::napi_value) -> NResult<Option<String>> {
    let mut len = 0usize;
    // SAFETY: v is a live handle; a null buffer asks only for the length in UTF-8 bytes.
    let st = unsafe { sys::napi_get_value_string_utf8(env, v, ptr::null_mut(), 0, &mut len) };
    if st == sys::Status::napi_string_expected {
        return Ok(None);
    }
    check(env, st, "reading a string argument")?;
    let mut buf = vec![0u8; len + 1];
    let mut written = 0usize;
    // SAFETY: buf is writable for len + 1 bytes (the string plus V8's terminating NUL).
    let st = unsafe {
        sys::napi_get_value_string_utf8(env, v, buf.as_mut_ptr().cast(), buf.len(), &mut written)
    };
    check(env, st, "reading a string argument")?;
    buf.truncate(written);
    Ok(Some(String::from_utf8(buf).unwrap_or_else(|e| {
        String::from_utf8_lossy(e.as_bytes()).into_owned()
    })))
}

fn type_error(env: sys::napi_env, msg: String) -> Thrown {
    throw(env, ErrorKind::Type, &msg)
}

fn number(env: sys::napi_env, x: f64) -> NResult<sys::napi_value> {
    let mut v = ptr::null_mut();
    // SAFETY: out pointer valid.
    check(
        env,
        unsafe { sys::napi_create_double(env, x, &mut v) },
        "building the result",
    )?;
    Ok(v)
}

fn object(env: sys::napi_env) -> NResult<sys::napi_value> {
    let mut v = ptr::null_mut();
    // SAFETY: out pointer valid.
    check(
        env,
        unsafe { sys::napi_create_object(env, &mut v) },
        "building the result",
    )?;
    Ok(v)
}

fn string(env: sys::napi_env, s: &str) -> NResult<sys::napi_value> {
    let mut v = ptr::null_mut();
    // SAFETY: the pointer and length describe `s`'s UTF-8 bytes, alive for the call.
    let st =
        unsafe { sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, &mut v) };
    check(env, st, "building the result")?;
    Ok(v)
}

fn set(
    env: sys::napi_env,
    obj: sys::napi_value,
    name: &'static [u8],
    v: sys::napi_value,
) -> NResult<()> {
    // SAFETY: `name` is a NUL-terminated literal (every caller passes b"...\0"); obj and v are live.
    let st = unsafe { sys::napi_set_named_property(env, obj, name.as_ptr().cast(), v) };
    check(env, st, "building the result")
}

/// A fresh typed array of `kind` holding a copy of `src`.
fn copy_out<T: Copy>(env: sys::napi_env, kind: i32, src: &[T]) -> NResult<sys::napi_value> {
    let (v, mem) = fresh(env, kind, std::mem::size_of::<T>(), src.len())?;
    // SAFETY: `mem` is the ArrayBuffer just allocated for exactly `src.len()` elements of `kind`,
    // which the callers match to `T` (u8 -> Uint8Array, u32 -> Uint32Array); nothing else refers
    // to it yet.
    unsafe { mem.slice_mut::<T>().copy_from_slice(src) };
    Ok(v)
}

/// `[{ line, message }]` of the errors.
fn errors_array(env: sys::napi_env, list: &[RecordError]) -> NResult<sys::napi_value> {
    let mut errors = ptr::null_mut();
    // SAFETY: out pointer valid.
    let st = unsafe { sys::napi_create_array_with_length(env, list.len(), &mut errors) };
    check(env, st, "building the result")?;
    for (i, e) in list.iter().enumerate() {
        // One scope per error keeps the handles of a chunk full of bad lines from piling up;
        // the array keeps the objects alive.
        let _scope = HandleScope::open(env)?;
        let item = object(env)?;
        set(env, item, b"line\0", number(env, e.line as f64)?)?;
        let msg = string(env, &e.message)?;
        set(env, item, b"message\0", msg)?;
        // SAFETY: errors is the array created above; i < its length.
        check(
            env,
            unsafe { sys::napi_set_element(env, errors, i as u32, item) },
            "building the result",
        )?;
    }
    Ok(errors)
}

/// The result object of one call.
fn result_object(env: sys::napi_env, r: &Records) -> NResult<sys::napi_value> {
    use sys::TypedarrayType as T;
    let obj = object(env)?;
    set(
        env,
        obj,
        b"bytes\0",
        copy_out(env, T::uint8_array, &r.bytes)?,
    )?;
    set(
        env,
        obj,
        b"offsets\0",
        copy_out(env, T::uint32_array, &r.offsets)?,
    )?;
    set(
        env,
        obj,
        b"lines\0",
        copy_out(env, T::uint32_array, &r.lines)?,
    )?;
    set(env, obj, b"consumed\0", number(env, r.consumed as f64)?)?;
    set(env, obj, b"lineCount\0", number(env, r.line_count as f64)?)?;
    set(env, obj, b"blank\0", number(env, r.blank as f64)?)?;
    let errors = errors_array(env, &r.errors)?;
    set(env, obj, b"errors\0", errors)?;
    Ok(obj)
}

/// The `format` and `field` arguments, checked.
fn read_format(
    env: sys::napi_env,
    format: sys::napi_value,
    field: sys::napi_value,
) -> NResult<Format> {
    let choices = "'lines', 'jsonl'";
    let jsonl = match string_value(env, format)?.as_deref() {
        Some("lines") => false,
        Some("jsonl") => true,
        Some(other) => {
            return Err(type_error(
                env,
                format!("format must be one of {choices}, got '{other}'"),
            ))
        }
        None => {
            let t = describe(env, format)?;
            return Err(type_error(
                env,
                format!("format must be one of {choices}, got {t}"),
            ));
        }
    };
    Ok(if jsonl {
        match string_value(env, field)? {
            Some(field) => Format::Jsonl { field },
            None => {
                let t = describe(env, field)?;
                return Err(type_error(
                    env,
                    format!("field must be a string for format 'jsonl', got {t}"),
                ));
            }
        }
    } else {
        if !is_nullish(env, field)? {
            let t = describe(env, field)?;
            return Err(type_error(
                env,
                format!("field must be null for format 'lines', got {t}"),
            ));
        }
        Format::Lines
    })
}

fn parse_records_impl(
    env: sys::napi_env,
    chunk: sys::napi_value,
    format: sys::napi_value,
    field: sys::napi_value,
    is_last: sys::napi_value,
) -> NResult<sys::napi_value> {
    // Arguments in order. None of these calls can run JavaScript (no getters, no coercion), so the
    // chunk's memory stays valid and unchanged until the core has read it.
    let t = typed_array_of(env, chunk, "chunk", sys::TypedarrayType::uint8_array, "")?;
    let format = read_format(env, format, field)?;
    let mut last = false;
    // SAFETY: is_last is a live handle; out pointer valid.
    if unsafe { sys::napi_get_value_bool(env, is_last, &mut last) } != sys::Status::napi_ok {
        let t = describe(env, is_last)?;
        return Err(type_error(
            env,
            format!("isLast must be a boolean, got {t}"),
        ));
    }
    if t.len > MAX_INPUT {
        let msg = format!(
            "chunk has {} bytes; parseRecords takes at most {MAX_INPUT} per call",
            t.len
        );
        return Err(throw(env, ErrorKind::Range, &msg));
    }
    let run = |r: &mut Records| -> NResult<sys::napi_value> {
        {
            // SAFETY: the kind was checked to be Uint8Array; the slice is only read, and only
            // inside this block, before any call that allocates in (or returns to) JavaScript.
            let input: &[u8] = unsafe { t.slice() };
            parse_records(input, &format, last, r);
        }
        result_object(env, r)
    };
    // Do not pin a huge buffer forever after one giant chunk.
    with_scratch(
        &RECORDS,
        |r| r.bytes.capacity() > (64 << 20) || r.offsets.capacity() > (16 << 20),
        run,
    )
}

/// Turns one chunk of a file into rows without a JavaScript string per row: `'lines'` makes every
/// line a row; `'jsonl'` takes the string `field` of the JSON object on each non-blank line. Only
/// complete lines are consumed (all of them when `isLast`): pass `chunk.subarray(consumed)` again
/// in front of the next chunk. Row `i` is `bytes[offsets[i] .. offsets[i+1])`, from line
/// `lines[i]` of this chunk; lines that give no row are listed in `errors` (JSONL only).
#[napi(
    js_name = "parseRecords",
    ts_args_type = "chunk: Uint8Array, format: 'lines' | 'jsonl', field: string | null, isLast: boolean",
    ts_return_type = "{ bytes: Uint8Array; offsets: Uint32Array; lines: Uint32Array; consumed: number; lineCount: number; blank: number; errors: Array<{ line: number; message: string }> }"
)]
pub fn parse_records_js(
    env: Env,
    chunk: Unknown,
    format: Unknown,
    field: Unknown,
    is_last: Unknown,
) -> napi::Result<Unknown<'static>> {
    let (c, f, fi, l) = (chunk.raw(), format.raw(), field.raw(), is_last.raw());
    guard(&env, |e| parse_records_impl(e, c, f, fi, l))
}

/// A non-negative integer argument (at most 2^53), or a TypeError/RangeError naming it.
fn index_arg(env: sys::napi_env, v: sys::napi_value, what: &str) -> NResult<u64> {
    let mut x = 0f64;
    // SAFETY: v is a live handle; out pointer valid.
    if unsafe { sys::napi_get_value_double(env, v, &mut x) } != sys::Status::napi_ok {
        let t = describe(env, v)?;
        return Err(type_error(env, format!("{what} must be a number, got {t}")));
    }
    if !((0.0..=9007199254740992.0).contains(&x) && x.fract() == 0.0) {
        // As JavaScript prints it (Rust would say "inf" and "NaN").
        let got = match x {
            f64::INFINITY => "Infinity".to_string(),
            f64::NEG_INFINITY => "-Infinity".to_string(),
            _ => x.to_string(),
        };
        let msg = format!("{what} must be a non-negative integer, got {got}");
        return Err(throw(env, ErrorKind::Range, &msg));
    }
    Ok(x as u64)
}

fn bool_arg(env: sys::napi_env, v: sys::napi_value, what: &str) -> NResult<bool> {
    let mut b = false;
    // SAFETY: v is a live handle; out pointer valid.
    if unsafe { sys::napi_get_value_bool(env, v, &mut b) } != sys::Status::napi_ok {
        let t = describe(env, v)?;
        return Err(type_error(
            env,
            format!("{what} must be a boolean, got {t}"),
        ));
    }
    Ok(b)
}

/// Arguments of `fillRows`, in order.
type FillArgs = [sys::napi_value; 12];

fn fill_rows_impl(env: sys::napi_env, a: FillArgs) -> NResult<sys::napi_value> {
    use sys::TypedarrayType as T;
    // Every argument is read (none can run JavaScript: no getters, no coercion) before any memory
    // is touched, so the typed arrays stay valid and unchanged until we return.
    let input = typed_array_of(env, a[0], "input", T::uint8_array, "")?;
    let last = bool_arg(env, a[1], "isLast")?;
    let format = read_format(env, a[2], a[3])?;
    let first_line = index_arg(env, a[4], "firstLine")? as u32; // line numbers wrap, as in a Uint32Array
    let max_rows = index_arg(env, a[5], "maxRows")?;
    let stop_at_error = bool_arg(env, a[6], "stopAtError")?;
    let max_errors = index_arg(env, a[7], "maxErrors")?;
    let bytes = typed_array_of(env, a[8], "bytes", T::uint8_array, "")?;
    let offsets = typed_array_of(env, a[9], "offsets", T::uint32_array, "")?;
    let lines = typed_array_of(env, a[10], "lines", T::uint32_array, "")?;
    let rows = index_arg(env, a[11], "rows")?;
    if input.len > MAX_INPUT {
        let msg = format!(
            "input has {} bytes; fillRows takes at most {MAX_INPUT} per call",
            input.len
        );
        return Err(throw(env, ErrorKind::Range, &msg));
    }
    if bytes.len > u32::MAX as usize {
        let msg = format!(
            "bytes has {} bytes; offsets are 32-bit, so at most {}",
            bytes.len,
            u32::MAX
        );
        return Err(throw(env, ErrorKind::Range, &msg));
    }
    let capacity = offsets.len.saturating_sub(1).min(lines.len);
    if rows > capacity as u64 {
        let msg = format!("rows ({rows}) exceeds the arena's capacity ({capacity} rows)");
        return Err(throw(env, ErrorKind::Range, &msg));
    }
    let rows = rows as usize;
    // The arena is written while the input is read: no two of them may share memory.
    let parts = [
        (&input, "input"),
        (&bytes, "bytes"),
        (&offsets, "offsets"),
        (&lines, "lines"),
    ];
    for (i, (x, xn)) in parts.iter().enumerate() {
        for (y, yn) in &parts[i + 1..] {
            let ((a0, a1), (b0, b1)) = (x.byte_range(), y.byte_range());
            if a0 < b1 && b0 < a1 {
                return Err(type_error(
                    env,
                    format!("{xn} and {yn} must not share memory"),
                ));
            }
        }
    }
    let run = |(scratch, errors): &mut (Scratch, Vec<RecordError>)| -> NResult<sys::napi_value> {
        let filled = {
            // SAFETY: kinds checked above (u8, u8, u32, u32); the four ranges do not overlap, so
            // the one shared slice and the three exclusive ones alias nothing; they live only in
            // this block, before anything that allocates in (or returns to) JavaScript.
            let (input, bytes, offsets, lines): (&[u8], &mut [u8], &mut [u32], &mut [u32]) = unsafe {
                (
                    input.slice(),
                    bytes.slice_mut(),
                    offsets.slice_mut(),
                    lines.slice_mut(),
                )
            };
            let mut arena = RowArena {
                bytes,
                offsets,
                lines,
                rows,
            };
            let f = fill_rows(
                input,
                &format,
                last,
                first_line,
                usize::try_from(max_rows).unwrap_or(usize::MAX),
                stop_at_error,
                usize::try_from(max_errors).unwrap_or(usize::MAX),
                &mut arena,
                errors,
                scratch,
            );
            (f, arena.rows)
        };
        let (f, rows) = filled;
        let obj = object(env)?;
        set(env, obj, b"consumed\0", number(env, f.consumed as f64)?)?;
        set(env, obj, b"lineCount\0", number(env, f.line_count as f64)?)?;
        set(env, obj, b"blank\0", number(env, f.blank as f64)?)?;
        set(env, obj, b"rows\0", number(env, rows as f64)?)?;
        let stop = match f.stop {
            Stop::Input => "input",
            Stop::Rows => "rows",
            Stop::Bytes => "bytes",
            Stop::Error => "error",
            Stop::Errors => "errors",
        };
        set(env, obj, b"stop\0", string(env, stop)?)?;
        set(env, obj, b"need\0", number(env, f.need as f64)?)?;
        set(env, obj, b"errors\0", errors_array(env, errors)?)?;
        Ok(obj)
    };
    with_scratch(&FILL, |s| s.0.capacity_bytes() > (64 << 20), run)
}

/// Appends the rows of `input`'s complete lines (all of them when `isLast`) to a caller's arena
/// in place: row bytes into `bytes` from `offsets[rows]` on, their ends into `offsets`, their line
/// numbers (`firstLine` + the line's index, wrapping at 2^32) into `lines`. Stops after `maxRows`
/// rows or when the arena is full (`stop: 'rows'`), before a row that does not fit in `bytes`
/// (`'bytes'`, `need` = its length), at the first bad line when `stopAtError` (`'error'`: the
/// line is the last of `errors` and not consumed), after `maxErrors` bad lines (`'errors'`: their
/// lines consumed), or at the end (`'input'`). Returns the bytes
/// and lines consumed, the blank lines among them, the arena's rows now, and the bad lines
/// (`line`: index from the start of `input`). One call per batch, no per-row JavaScript work;
/// the rules are those of `parseRecords`.
#[napi(
    js_name = "fillRows",
    ts_args_type = "input: Uint8Array, isLast: boolean, format: 'lines' | 'jsonl', field: string | null, firstLine: number, maxRows: number, stopAtError: boolean, maxErrors: number, bytes: Uint8Array, offsets: Uint32Array, lines: Uint32Array, rows: number",
    ts_return_type = "{ consumed: number; lineCount: number; blank: number; rows: number; stop: 'input' | 'rows' | 'bytes' | 'error' | 'errors'; need: number; errors: Array<{ line: number; message: string }> }"
)]
#[allow(clippy::too_many_arguments)]
pub fn fill_rows_js(
    env: Env,
    input: Unknown,
    is_last: Unknown,
    format: Unknown,
    field: Unknown,
    first_line: Unknown,
    max_rows: Unknown,
    stop_at_error: Unknown,
    max_errors: Unknown,
    bytes: Unknown,
    offsets: Unknown,
    lines: Unknown,
    rows: Unknown,
) -> napi::Result<Unknown<'static>> {
    let a = [
        input.raw(),
        is_last.raw(),
        format.raw(),
        field.raw(),
        first_line.raw(),
        max_rows.raw(),
        stop_at_error.raw(),
        max_errors.raw(),
        bytes.raw(),
        offsets.raw(),
        lines.raw(),
        rows.raw(),
    ];
    guard(&env, |e| fill_rows_impl(e, a))
}

/// The number of newline bytes (0x0A) in a Uint8Array: the lines before a byte offset of a file, for the
/// absolute line numbers of `vectorizeFile`'s `range` (memchr's vectorized count).
#[napi(
    js_name = "countNewlines",
    ts_args_type = "bytes: Uint8Array",
    ts_return_type = "number"
)]
pub fn count_newlines_js(env: Env, bytes: Unknown) -> napi::Result<Unknown<'static>> {
    let b = bytes.raw();
    guard(&env, |e| {
        let t = typed_array_of(e, b, "bytes", sys::TypedarrayType::uint8_array, "")?;
        // SAFETY: a Uint8Array (checked above), read only while nothing runs JavaScript.
        let n = count_newlines(unsafe { t.slice::<u8>() });
        number(e, n as f64)
    })
}
