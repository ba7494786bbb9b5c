//! N-API binding of the record reader (`dtesn_core::records`): one chunk of file bytes in, rows
//! out as one UTF-8 buffer plus `Uint32Array` offsets (the input of `vectorizeBytes`), with no
//! JavaScript string per row. The rules (lines, blank lines, JSONL extraction, errors) are in the
//! core module's documentation.
//!
//! Costs: the rows are parsed into a per-thread `Records` whose allocations are reused from call to
//! call, then copied once into fresh ArrayBuffers (`napi_create_arraybuffer`), so the returned
//! arrays never alias memory a later call overwrites. That copy is a memcpy of the output, small
//! next to the parse. Only error objects cost one JavaScript allocation each (their messages are
//! strings); rows never do. For `'lines'` the rows are copied too: `vectorizeBytes` wants the rows
//! back to back, and in the chunk the `'\n'` (and `'\r'`) between them are in the way.

use std::cell::RefCell;
use std::ptr;

use dtesn_core::records::{parse_records, Format, Records, MAX_INPUT};
use dtesn_core::ErrorKind;
use napi::bindgen_prelude::{Env, Unknown};
use napi::{sys, JsValue};
use napi_derive::napi;

use crate::{
    check, describe, fresh, guard, is_nullish, throw, typed_array_of, HandleScope, NResult,
};

thread_local! {
    /// Reused output of the core (one per thread: workers have their own).
    static RECORDS: RefCell<Records> = RefCell::new(Records::new());
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

fn type_error(env: sys::napi_env, msg: String) -> NResult<sys::napi_value> {
    Err(throw(env, ErrorKind::Type, &msg))
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

/// The result object of one call.
fn result_object(env: sys::napi_env, r: &Records) -> NResult<sys::napi_value> {
    use sys::TypedarrayType as T;
    let mut obj = ptr::null_mut();
    // SAFETY: out pointer valid.
    check(
        env,
        unsafe { sys::napi_create_object(env, &mut obj) },
        "building the result",
    )?;
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
    let mut errors = ptr::null_mut();
    // SAFETY: out pointer valid.
    let st = unsafe { sys::napi_create_array_with_length(env, r.errors.len(), &mut errors) };
    check(env, st, "building the result")?;
    for (i, e) in r.errors.iter().enumerate() {
        // One scope per error keeps the handles of a chunk full of bad lines from piling up;
        // the array keeps the objects alive.
        let _scope = HandleScope::open(env)?;
        let mut item = ptr::null_mut();
        // SAFETY: out pointer valid.
        check(
            env,
            unsafe { sys::napi_create_object(env, &mut item) },
            "building the result",
        )?;
        set(env, item, b"line\0", number(env, e.line as f64)?)?;
        let mut msg = ptr::null_mut();
        // SAFETY: the pointer and length describe the message's UTF-8 bytes, alive for the call.
        let st = unsafe {
            sys::napi_create_string_utf8(
                env,
                e.message.as_ptr().cast(),
                e.message.len() as isize,
                &mut msg,
            )
        };
        check(env, st, "building the result")?;
        set(env, item, b"message\0", msg)?;
        // SAFETY: errors is the array created above; i < its length.
        check(
            env,
            unsafe { sys::napi_set_element(env, errors, i as u32, item) },
            "building the result",
        )?;
    }
    set(env, obj, b"errors\0", errors)?;
    Ok(obj)
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
    let choices = "'lines', 'jsonl'";
    let jsonl = match string_value(env, format)?.as_deref() {
        Some("lines") => false,
        Some("jsonl") => true,
        Some(other) => {
            return type_error(
                env,
                format!("format must be one of {choices}, got '{other}'"),
            )
        }
        None => {
            let t = describe(env, format)?;
            return type_error(env, format!("format must be one of {choices}, got {t}"));
        }
    };
    let format = if jsonl {
        match string_value(env, field)? {
            Some(field) => Format::Jsonl { field },
            None => {
                let t = describe(env, field)?;
                return type_error(
                    env,
                    format!("field must be a string for format 'jsonl', got {t}"),
                );
            }
        }
    } else {
        if !is_nullish(env, field)? {
            let t = describe(env, field)?;
            return type_error(
                env,
                format!("field must be null for format 'lines', got {t}"),
            );
        }
        Format::Lines
    };
    let mut last = false;
    // SAFETY: is_last is a live handle; out pointer valid.
    if unsafe { sys::napi_get_value_bool(env, is_last, &mut last) } != sys::Status::napi_ok {
        let t = describe(env, is_last)?;
        return type_error(env, format!("isLast must be a boolean, got {t}"));
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
    RECORDS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut r) => {
            let out = run(&mut r);
            // Do not pin a huge buffer forever after one giant chunk.
            if r.bytes.capacity() > (64 << 20) || r.offsets.capacity() > (16 << 20) {
                *r = Records::new();
            }
            out
        }
        // Cannot happen (no JavaScript runs inside), but a private buffer is always correct.
        Err(_) => run(&mut Records::new()),
    })
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
