//! N-API binding of dtesn-pipeline: argument reading, checks, errors, and calls into dtesn-core.
//! No algorithm lives here.
//!
//! The TypeScript facade (src/) validates options and passes a normalized options object; this
//! layer still checks everything it relies on for memory safety (types, lengths, overlaps), so a
//! direct call with bad arguments throws instead of misbehaving. Errors are thrown as real
//! TypeError / RangeError with the messages of docs/SEMANTICS.md; no panic crosses the boundary
//! (every entry point runs under `catch_unwind`).
//!
//! Costs, measured on a 2-core x86_64 (see BENCHMARKS.md): reading strings one by one costs two
//! N-API calls per row (`napi_get_element` + `napi_get_value_string_utf16`), most of a batch's
//! time, so the facade concatenates the rows in JavaScript and `vectorizeJoined` copies each
//! 64 K-unit chunk with one call into a reused per-thread UTF-16 arena, which the core runs on;
//! byte input
//! (`vectorizeBytes`) needs no per-row crossing at all. The result is one ArrayBuffer (the
//! facade's slab for small batches, else a fresh one; large ones are Node Buffers, not
//! zero-filled: every byte is written before JavaScript sees it) over which the facade makes the
//! typed arrays; callers that pass `out` buffers skip most of the allocation and its page faults.

use std::cell::RefCell;
use std::ffi::{c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use dtesn_core::{
    plan, plan_measured, simd, Dtype, Encoding, Error as CoreError, ErrorKind, Id, Invalid, Mask,
    MaskDtype, Measured, Options, Padding, Plan, Side, Unit, Utf16Rows, Utf8Rows, Vocab,
};
use napi::bindgen_prelude::{Env, Status, Unknown};
use napi::{sys, JsValue};
use napi_derive::napi;

mod abi;
pub mod records;

use abi::*;

/// An exception is pending in JavaScript; unwind to the entry point and return.
pub(crate) struct Thrown;
pub(crate) type NResult<T> = Result<T, Thrown>;

/// Throws `msg` as a TypeError or RangeError.
pub(crate) fn throw(env: sys::napi_env, kind: ErrorKind, msg: &str) -> Thrown {
    let msg = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: env is the live environment of the current call; msg is a valid C string that
    // outlives the call; a null code is allowed.
    unsafe {
        match kind {
            ErrorKind::Type => sys::napi_throw_type_error(env, ptr::null(), msg.as_ptr()),
            ErrorKind::Range => sys::napi_throw_range_error(env, ptr::null(), msg.as_ptr()),
        };
    }
    Thrown
}

fn throw_core(env: sys::napi_env, e: &CoreError) -> Thrown {
    throw(env, e.kind(), &e.to_string())
}

/// Turns a failed N-API status into a thrown error (or keeps the exception already pending,
/// e.g. from a getter that threw).
pub(crate) fn check(env: sys::napi_env, status: sys::napi_status, what: &str) -> NResult<()> {
    if status == sys::Status::napi_ok {
        return Ok(());
    }
    let mut pending = false;
    // SAFETY: env is live; `pending` is a valid out pointer.
    unsafe { sys::napi_is_exception_pending(env, &mut pending) };
    if pending {
        return Err(Thrown);
    }
    let msg = CString::new(format!(
        "dtesn: N-API call failed while {what} (status {status})"
    ))
    .unwrap_or_default();
    // SAFETY: as in `throw`.
    unsafe { sys::napi_throw_error(env, ptr::null(), msg.as_ptr()) };
    Err(Thrown)
}

pub(crate) fn type_of(env: sys::napi_env, v: sys::napi_value) -> NResult<i32> {
    let mut t = 0;
    // SAFETY: env and v are live handles of this call; `t` is a valid out pointer.
    check(
        env,
        unsafe { sys::napi_typeof(env, v, &mut t) },
        "reading a type",
    )?;
    Ok(t)
}

/// `typeof v` as JavaScript spells it, with `null` for null.
pub(crate) fn describe(env: sys::napi_env, v: sys::napi_value) -> NResult<&'static str> {
    use sys::ValueType as V;
    Ok(match type_of(env, v)? {
        V::napi_undefined => "undefined",
        V::napi_null => "null",
        V::napi_boolean => "boolean",
        V::napi_number => "number",
        V::napi_string => "string",
        V::napi_symbol => "symbol",
        V::napi_function => "function",
        V::napi_bigint => "bigint",
        _ => "object",
    })
}

pub(crate) fn is_nullish(env: sys::napi_env, v: sys::napi_value) -> NResult<bool> {
    let t = type_of(env, v)?;
    Ok(t == sys::ValueType::napi_undefined || t == sys::ValueType::napi_null)
}

/// A typed array's element type, length, data and buffer. Obtained only after every call that
/// can run JavaScript (getters), so the memory cannot be detached or resized while we use it.
pub(crate) struct TypedArray {
    kind: i32,
    len: usize,
    data: *mut u8,
    buffer: sys::napi_value,
    byte_offset: usize,
}

impl TypedArray {
    fn elem_size(&self) -> usize {
        use sys::TypedarrayType as T;
        match self.kind {
            T::int8_array | T::uint8_array | T::uint8_clamped_array => 1,
            T::int16_array | T::uint16_array => 2,
            T::int32_array | T::uint32_array | T::float32_array => 4,
            _ => 8,
        }
    }
    fn byte_range(&self) -> (usize, usize) {
        let start = self.data as usize;
        (start, start + self.len * self.elem_size())
    }
    /// The elements as a slice.
    ///
    /// # Safety
    /// `kind` must be the typed-array kind of `T`, and no other live slice may alias this memory
    /// mutably (callers check overlaps first).
    pub(crate) unsafe fn slice<'a, T>(&self) -> &'a [T] {
        if self.len == 0 || self.data.is_null() {
            return &[];
        }
        // SAFETY: N-API guarantees `data` points at `len` elements of this array's type, and the
        // caller guarantees T matches the type and that nothing aliases it mutably.
        unsafe { std::slice::from_raw_parts(self.data as *const T, self.len) }
    }
    /// # Safety
    /// As `slice`, and no other slice of this memory may be live.
    pub(crate) unsafe fn slice_mut<'a, T>(&self) -> &'a mut [T] {
        if self.len == 0 || self.data.is_null() {
            return &mut [];
        }
        // SAFETY: see `slice`; exclusivity is the caller's guarantee (overlap checks).
        unsafe { std::slice::from_raw_parts_mut(self.data as *mut T, self.len) }
    }
}

fn class_name(kind: i32) -> &'static str {
    use sys::TypedarrayType as T;
    match kind {
        T::int8_array => "Int8Array",
        T::uint8_array => "Uint8Array",
        T::uint8_clamped_array => "Uint8ClampedArray",
        T::int16_array => "Int16Array",
        T::uint16_array => "Uint16Array",
        T::int32_array => "Int32Array",
        T::uint32_array => "Uint32Array",
        T::float32_array => "Float32Array",
        T::float64_array => "Float64Array",
        T::bigint64_array => "BigInt64Array",
        _ => "BigUint64Array",
    }
}

/// " for dtype 'D'", the suffix of the `out.ids` type error.
fn dtype_suffix(d: Dtype) -> &'static str {
    match d {
        Dtype::Int32 => " for dtype 'int32'",
        Dtype::Int16 => " for dtype 'int16'",
        Dtype::Uint16 => " for dtype 'uint16'",
        Dtype::Uint8 => " for dtype 'uint8'",
        Dtype::Float32 => " for dtype 'float32'",
        Dtype::Int64 => " for dtype 'int64'",
    }
}

/// " for maskDtype 'M'", the suffix of the `out.attentionMask` type error.
fn mask_suffix(m: MaskDtype) -> &'static str {
    match m {
        MaskDtype::Uint8 => " for maskDtype 'uint8'",
        MaskDtype::Int32 => " for maskDtype 'int32'",
        MaskDtype::Int64 => " for maskDtype 'int64'",
    }
}

fn mask_kind(m: MaskDtype) -> i32 {
    use sys::TypedarrayType as T;
    match m {
        MaskDtype::Uint8 => T::uint8_array,
        MaskDtype::Int32 => T::int32_array,
        MaskDtype::Int64 => T::bigint64_array,
    }
}

fn dtype_kind(d: Dtype) -> i32 {
    use sys::TypedarrayType as T;
    match d {
        Dtype::Int32 => T::int32_array,
        Dtype::Int16 => T::int16_array,
        Dtype::Uint16 => T::uint16_array,
        Dtype::Uint8 => T::uint8_array,
        Dtype::Float32 => T::float32_array,
        Dtype::Int64 => T::bigint64_array,
    }
}

/// Reads a typed array, or throws `TypeError: <what> must be a <expected>, got <T>`.
fn typed_array(
    env: sys::napi_env,
    v: sys::napi_value,
    what: &str,
    expected: &str,
    suffix: &str,
) -> NResult<TypedArray> {
    let mut is = false;
    // SAFETY: v is live; is is a valid out pointer.
    check(
        env,
        unsafe { sys::napi_is_typedarray(env, v, &mut is) },
        "checking a typed array",
    )?;
    if is {
        let mut t = TypedArray {
            kind: 0,
            len: 0,
            data: ptr::null_mut(),
            buffer: ptr::null_mut(),
            byte_offset: 0,
        };
        let mut data: *mut c_void = ptr::null_mut();
        // SAFETY: v is a typed array (checked above); every out pointer is valid.
        let st = unsafe {
            sys::napi_get_typedarray_info(
                env,
                v,
                &mut t.kind,
                &mut t.len,
                &mut data,
                &mut t.buffer,
                &mut t.byte_offset,
            )
        };
        check(env, st, "reading a typed array")?;
        t.data = data.cast();
        if t.data.is_null() && t.len > 0 {
            return Err(throw(env, ErrorKind::Type, &format!("{what} is detached")));
        }
        // Slices of the elements need their alignment (V8 aligns backing stores and typed
        // arrays' offsets; a host that did not would otherwise be undefined behaviour here).
        if !(t.data as usize).is_multiple_of(t.elem_size()) {
            return Err(throw(
                env,
                ErrorKind::Range,
                &format!("{what} is not aligned to its element size"),
            ));
        }
        return Ok(t);
    }
    let got = describe(env, v)?;
    Err(throw(
        env,
        ErrorKind::Type,
        &format!("{what} must be a {expected}{suffix}, got {got}"),
    ))
}

/// An expected typed array of one kind. The message parts are only formatted when it throws (this
/// runs several times per call; formatting eagerly was ~7% of a 10-row batch).
pub(crate) fn typed_array_of(
    env: sys::napi_env,
    v: sys::napi_value,
    what: &str,
    kind: i32,
    suffix: &str,
) -> NResult<TypedArray> {
    let expected = class_name(kind);
    let t = typed_array(env, v, what, expected, suffix)?;
    if t.kind != kind {
        return Err(throw(
            env,
            ErrorKind::Type,
            &format!(
                "{what} must be a {expected}{suffix}, got {}",
                class_name(t.kind)
            ),
        ));
    }
    Ok(t)
}

/// Scalar options, read before anything that hands out raw memory.
struct ReadOptions {
    encoding: Encoding,
    max_length: u32,
    padding: Padding,
    pad_to_multiple_of: u32,
    padding_side: Side,
    truncation_side: Side,
    pad_id: i64,
    add_special_tokens: bool,
    dtype: Dtype,
    mask: MaskDtype,
    invalid: Invalid,
    width: Option<u32>,
    vocab: Option<sys::napi_value>,
    out_ids: Option<sys::napi_value>,
    out_mask: Option<sys::napi_value>,
    /// The facade's slab for small outputs and the offset its free part starts at (see `emit`).
    slab: Option<Slab>,
    /// The packed array itself: `emit` writes the width and the slab offset used back into it.
    packed: TypedArray,
}

/// Free memory at the end of an ArrayBuffer the facade keeps for small batches' outputs.
struct Slab {
    buffer: sys::napi_value,
    data: *mut u8,
    len: usize,
    offset: usize,
}

/// Throws `TypeError: <must>, got <T>` unless the N-API predicate `is` holds for `v`.
fn require(
    env: sys::napi_env,
    v: sys::napi_value,
    is: unsafe extern "C" fn(sys::napi_env, sys::napi_value, *mut bool) -> sys::napi_status,
    must: &str,
) -> NResult<()> {
    let mut yes = false;
    // SAFETY: v is a live handle; out pointer valid; `is` is an N-API predicate.
    check(env, unsafe { is(env, v, &mut yes) }, "checking an argument")?;
    if yes {
        return Ok(());
    }
    let t = describe(env, v)?;
    Err(throw(env, ErrorKind::Type, &format!("{must}, got {t}")))
}

/// The slab argument: an ArrayBuffer, and a free offset inside it that is a multiple of 8.
fn slab_of(env: sys::napi_env, v: sys::napi_value, offset: i32) -> NResult<Slab> {
    require(
        env,
        v,
        sys::napi_is_arraybuffer,
        "slab must be an ArrayBuffer",
    )?;
    let mut data: *mut c_void = ptr::null_mut();
    let mut len = 0usize;
    // SAFETY: v is an ArrayBuffer (checked above); out pointers valid.
    check(
        env,
        unsafe { sys::napi_get_arraybuffer_info(env, v, &mut data, &mut len) },
        "reading the slab",
    )?;
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    if offset % 8 != 0 || offset > len {
        return Err(throw(
            env,
            ErrorKind::Range,
            &format!("slab offset {offset} is not a multiple of 8 inside the slab ({len} bytes)"),
        ));
    }
    Ok(Slab {
        buffer: v,
        data: data.cast(),
        len,
        offset,
    })
}

// The packed options' field indices, enum codes, OPTIONS_LEN / PACKED_LEN, SMALL_BATCH_BYTES
// (outputs up to this size share one ArrayBuffer, see `emit`), SLAB_MAX_BYTES (outputs up to this
// size go into the facade's slab when it has room) and MAX_OUTPUT_BYTES (the most bytes of new
// arrays one call allocates): generated into native/abi.rs from native/abi.json, as the facade's
// side (src/vectorize/abi.generated.ts).

/// Reads the options the facade packed into an Int32Array (one N-API call instead of a dozen
/// property reads, which cost more than the work on small batches): encoding, maxLength, padding,
/// padToMultipleOf, paddingSide, truncationSide, padId (its low 32 bits), addSpecialTokens,
/// dtype, invalid, width (-1 for none), padId's high 32 bits, maskDtype (indices FIELD_* and
/// codes from native/abi.rs). Codes follow the order of the option's values in docs/SEMANTICS.md.
fn read_options(env: sys::napi_env, args: OptionArgs) -> NResult<ReadOptions> {
    let [packed, vocab, out_ids, out_mask, slab] = args;
    let t = typed_array_of(
        env,
        packed,
        "options",
        sys::TypedarrayType::int32_array,
        " (packed)",
    )?;
    if t.len != PACKED_LEN {
        return Err(throw(
            env,
            ErrorKind::Range,
            &format!(
                "options (packed) must have {PACKED_LEN} fields, got {}",
                t.len
            ),
        ));
    }
    // SAFETY: an Int32Array of PACKED_LEN elements (checked above); copied out at once.
    let f: [i32; OPTIONS_LEN] = unsafe { &t.slice::<i32>()[..OPTIONS_LEN] }
        .try_into()
        .unwrap_or([0; OPTIONS_LEN]);
    let bad = |i: usize| {
        throw(
            env,
            ErrorKind::Range,
            &format!("options (packed) field {i} is out of range: {}", f[i]),
        )
    };
    let pick = |i: usize, n: i32| {
        if (0..n).contains(&f[i]) {
            Ok(f[i])
        } else {
            Err(bad(i))
        }
    };
    let side = |i: usize| pick(i, SIDE_COUNT).map(|c| SIDE_BY_CODE[c as usize]);
    let encoding = ENCODING_BY_CODE[pick(FIELD_ENCODING, ENCODING_COUNT)? as usize];
    let dtype = DTYPE_BY_CODE[pick(FIELD_DTYPE, DTYPE_COUNT)? as usize];
    let mask = MASK_BY_CODE[pick(FIELD_MASK_DTYPE, MASK_COUNT)? as usize];
    if f[FIELD_MAX_LENGTH] < 1 {
        return Err(throw_core(
            env,
            &CoreError::IntegerOption {
                name: "maxLength",
                value: f[FIELD_MAX_LENGTH] as i64,
            },
        ));
    }
    if f[FIELD_PAD_TO_MULTIPLE_OF] < 1 {
        return Err(throw_core(
            env,
            &CoreError::IntegerOption {
                name: "padToMultipleOf",
                value: f[FIELD_PAD_TO_MULTIPLE_OF] as i64,
            },
        ));
    }
    if f[FIELD_WIDTH] < -1 {
        return Err(bad(FIELD_WIDTH));
    }
    // SAFETY: as above; the field after the width is the slab offset the facade set.
    let slab_offset = unsafe { t.slice::<i32>()[FIELD_SLAB_OFFSET] };
    let opt = |v: sys::napi_value| -> NResult<Option<sys::napi_value>> {
        Ok(if is_nullish(env, v)? { None } else { Some(v) })
    };
    Ok(ReadOptions {
        encoding,
        max_length: f[FIELD_MAX_LENGTH] as u32,
        padding: PADDING_BY_CODE[pick(FIELD_PADDING, PADDING_COUNT)? as usize],
        pad_to_multiple_of: f[FIELD_PAD_TO_MULTIPLE_OF] as u32,
        padding_side: side(FIELD_PADDING_SIDE)?,
        truncation_side: side(FIELD_TRUNCATION_SIDE)?,
        pad_id: (i64::from(f[FIELD_PAD_ID_HIGH]) << 32) | i64::from(f[FIELD_PAD_ID_LOW] as u32),
        add_special_tokens: BOOL_BY_CODE[pick(FIELD_ADD_SPECIAL_TOKENS, BOOL_COUNT)? as usize],
        dtype,
        mask,
        invalid: INVALID_BY_CODE[pick(FIELD_INVALID, INVALID_COUNT)? as usize],
        width: (f[FIELD_WIDTH] >= 0).then_some(f[FIELD_WIDTH] as u32),
        vocab: opt(vocab)?,
        out_ids: opt(out_ids)?,
        out_mask: opt(out_mask)?,
        slab: match opt(slab)? {
            None => None,
            Some(v) => Some(slab_of(env, v, slab_offset)?),
        },
        packed: t,
    })
}

thread_local! {
    /// Reused UTF-16 arena and offsets for string batches (one per thread: workers have their own).
    static ARENA: RefCell<(Vec<u16>, Vec<u32>, Measured)> = RefCell::new((Vec::new(), Vec::new(), Measured::default()));
    /// The arena of a string batch handed over in parts (`stageTexts`, then `vectorizeStaged`):
    /// apart from ARENA, so that a call made from JavaScript between the parts (a getter on
    /// `texts` calling back in; the facade gives such calls the unstaged path) cannot clear it.
    static STAGE: RefCell<(Vec<u16>, Vec<u32>, Measured)> = RefCell::new((Vec::new(), Vec::new(), Measured::default()));
    /// The last vocabulary compiled on this thread; reused when the next call passes the same one.
    static VOCAB: RefCell<Option<std::rc::Rc<Vocab>>> = const { RefCell::new(None) };
}

/// Runs `f` on this thread's reused scratch in `key` (its allocations survive between calls), or
/// on a fresh one when it is already in use (re-entered from JavaScript, e.g. a getter calling
/// back in). Afterwards a scratch that `too_big` judges oversized is dropped, so that one giant
/// batch does not pin its memory for the life of the thread.
pub(crate) fn with_scratch<T: Default, R>(
    key: &'static std::thread::LocalKey<RefCell<T>>,
    too_big: impl FnOnce(&T) -> bool,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => {
            let r = f(&mut s);
            if too_big(&s) {
                *s = T::default();
            }
            r
        }
        Err(_) => f(&mut T::default()),
    })
}

/// Compiles (or reuses) the vocabulary. Its code points are copied out at once, so the typed array
/// may be touched afterwards.
fn vocab(env: sys::napi_env, v: Option<sys::napi_value>) -> NResult<Option<std::rc::Rc<Vocab>>> {
    let Some(v) = v else { return Ok(None) };
    let t = typed_array_of(
        env,
        v,
        "options.vocab",
        sys::TypedarrayType::uint32_array,
        " of code points",
    )?;
    // SAFETY: kind checked to be Uint32Array; we only read, and copy before any JS can run.
    let cps: &[u32] = unsafe { t.slice() };
    VOCAB.with(|cell| {
        let mut cache = cell.borrow_mut();
        if let Some(hit) = cache.as_ref().filter(|c| c.codepoints() == cps) {
            return Ok(Some(hit.clone()));
        }
        let compiled = std::rc::Rc::new(Vocab::new(cps).map_err(|e| throw_core(env, &e))?);
        *cache = Some(compiled.clone());
        Ok(Some(compiled))
    })
}

/// Creates a typed array of `len` elements of `elem` bytes on a fresh buffer (see `region`: a large
/// one is not zero-filled): the caller must write every element before JavaScript sees it.
pub(crate) fn fresh(
    env: sys::napi_env,
    kind: i32,
    elem: usize,
    len: usize,
) -> NResult<(sys::napi_value, TypedArray)> {
    let (buffer, data, _) = region(env, elem * len)?;
    let mut arr = ptr::null_mut();
    // SAFETY: the buffer holds exactly `len` elements from offset 0.
    check(
        env,
        unsafe { sys::napi_create_typedarray(env, kind, len, buffer, 0, &mut arr) },
        "allocating the output",
    )?;
    Ok((
        arr,
        TypedArray {
            kind,
            len,
            data,
            buffer,
            byte_offset: 0,
        },
    ))
}

/// Core options from the options read off the JavaScript object.
fn core_options<'v>(ro: &ReadOptions, vocab: Option<&'v Vocab>) -> Options<'v> {
    Options {
        encoding: ro.encoding,
        vocab,
        max_length: ro.max_length,
        padding: ro.padding,
        pad_to_multiple_of: ro.pad_to_multiple_of,
        padding_side: ro.padding_side,
        truncation_side: ro.truncation_side,
        pad_id: ro.pad_id,
        add_special_tokens: ro.add_special_tokens,
        dtype: ro.dtype,
        invalid: ro.invalid,
        width: ro.width,
    }
}

/// One fresh ArrayBuffer of `size` bytes for a batch's outputs and its data pointer. Small ones (and
/// huge ones) come from `napi_create_arraybuffer` (zero-filled, but cheaper to make than a Buffer); large ones are
/// Node Buffers, which are not zero-filled (like Buffer.allocUnsafe): every byte of every part is
/// written by the kernels before JavaScript sees it, and zero-filling a fresh output first was a
/// fifth of a 1,000-row call's time (perf, workload (a)). The gaps between parts are the caller's
/// to clear.
fn region(env: sys::napi_env, size: usize) -> NResult<(sys::napi_value, *mut u8, bool)> {
    let mut data: *mut c_void = ptr::null_mut();
    let mut buffer = ptr::null_mut();
    // Past 2 GiB too: a Buffer cannot be that large on every Node.js (Node 20: 4 GiB, and the
    // parts' alignment may add a few bytes to MAX_OUTPUT_BYTES); V8's zeroed pages cost nothing
    // until written, and every part is written anyway.
    if size <= SMALL_BATCH_BYTES || size > i32::MAX as usize {
        // SAFETY: out pointers are valid; V8 allocates `size` zeroed bytes (or fails with a status).
        check(
            env,
            unsafe { sys::napi_create_arraybuffer(env, size, &mut data, &mut buffer) },
            "allocating the output",
        )?;
        return Ok((buffer, data.cast(), true));
    }
    let mut node_buffer = ptr::null_mut();
    // SAFETY: out pointers are valid; Node allocates `size` bytes (or fails with a status).
    check(
        env,
        unsafe { sys::napi_create_buffer(env, size, &mut data, &mut node_buffer) },
        "allocating the output",
    )?;
    let (mut kind, mut len, mut off) = (0i32, 0usize, 0usize);
    let mut data0: *mut c_void = ptr::null_mut();
    // SAFETY: node_buffer is the Uint8Array just made; every out pointer is valid.
    check(
        env,
        unsafe {
            sys::napi_get_typedarray_info(
                env,
                node_buffer,
                &mut kind,
                &mut len,
                &mut data0,
                &mut buffer,
                &mut off,
            )
        },
        "allocating the output",
    )?;
    if off != 0 || data0 != data {
        return Err(throw(
            env,
            ErrorKind::Range,
            "internal: the output Buffer is not at the start of its ArrayBuffer",
        ));
    }
    Ok((buffer, data.cast(), false))
}

/// Writes a checked plan into the caller's buffers and one fresh ArrayBuffer, and returns that
/// buffer; the batch's width goes into the packed options array (field FIELD_OUT_WIDTH), and the
/// facade makes the typed arrays over the buffer (`batchOf` in src/vectorize/backends.ts: creating them and
/// a result array here through N-API was a third of a 10-row call). Layout of the buffer, each part
/// starting at a multiple of 8: ids (unless the caller passed out.ids), attentionMask (unless
/// out.attentionMask), lengths, sourceLengths. `inputs` are the byte ranges the outputs must not
/// overlap (byte input and offsets).
fn emit<U: Unit>(
    env: sys::napi_env,
    p: &Plan<'_, U>,
    ro: &ReadOptions,
    out_ids: Option<TypedArray>,
    out_mask: Option<TypedArray>,
    inputs: &[(&TypedArray, &'static str)],
) -> NResult<sys::napi_value> {
    let n = p.elements();
    let rows = p.rows();
    let elem = ro.dtype.size();
    let melem = ro.mask.size();
    // No rows, and maxLength rounded up past i32 (the width goes back in an Int32Array field).
    if p.width() > i32::MAX as usize {
        return Err(throw(
            env,
            ErrorKind::Range,
            &format!(
                "rows x width = {rows} x {}: the width exceeds 2147483647",
                p.width()
            ),
        ));
    }
    // The new arrays must fit what every supported Node.js can allocate (MAX_OUTPUT_BYTES in
    // src/vectorize/options.ts; the fallback refuses the same calls with the same message).
    let need = if out_ids.is_none() { n as u64 * elem as u64 } else { 0 }
        + if out_mask.is_none() { n as u64 * melem as u64 } else { 0 }
        + rows as u64 * 8;
    if need > MAX_OUTPUT_BYTES {
        return Err(throw(
            env,
            ErrorKind::Range,
            &format!(
                "rows x width = {rows} x {} needs {need} bytes of new arrays, more than {MAX_OUTPUT_BYTES} (4 GiB): pass options.out buffers, or fewer rows",
                p.width()
            ),
        ));
    }
    if let Some(t) = &out_ids {
        p.check_out_len("ids", t.len)
            .map_err(|e| throw_core(env, &e))?;
    }
    if let Some(t) = &out_mask {
        p.check_out_len("attentionMask", t.len)
            .map_err(|e| throw_core(env, &e))?;
    }
    let overlap = |a: &TypedArray, b: &TypedArray, na: usize, nb: usize| {
        // Only the parts that are written or read matter.
        let (a0, _) = a.byte_range();
        let (b0, b1) = b.byte_range();
        let a1 = a0 + na * a.elem_size();
        let b1 = if nb == usize::MAX {
            b1
        } else {
            b0 + nb * b.elem_size()
        };
        na > 0 && b1 > b0 && a0 < b1 && b0 < a1
    };
    if let (Some(i), Some(m)) = (&out_ids, &out_mask) {
        if overlap(i, m, n, n) {
            return Err(throw(
                env,
                ErrorKind::Range,
                "options.out.ids and options.out.attentionMask overlap",
            ));
        }
    }
    for (which, t) in [("ids", &out_ids), ("attentionMask", &out_mask)] {
        if let Some(t) = t {
            for (input, name) in inputs {
                if overlap(t, input, n, usize::MAX) {
                    return Err(throw(
                        env,
                        ErrorKind::Range,
                        &format!("options.out.{which} overlaps the input {name}"),
                    ));
                }
            }
        }
    }
    let kind = dtype_kind(ro.dtype);
    // The layout (the facade computes the same offsets, see `batchOf`).
    let mut size = 0usize;
    let mut place = |bytes: usize| {
        size = size.div_ceil(8) * 8;
        let at = size;
        size += bytes;
        at
    };
    let ids_at = out_ids.is_none().then(|| place(n * elem));
    let mask_at = out_mask.is_none().then(|| place(n * melem));
    let lens_at = place(rows * 4);
    let src_at = place(rows * 4);
    // Small outputs go into the facade's slab when its free part has room and no out array or
    // input lies there (a caller may have made a view of a whole slab from an earlier result):
    // allocating an ArrayBuffer per call, and V8 freeing it on another thread, were half of a
    // 10-row call (malloc lock contention with the sweeper thread; perf, workload (a)).
    let in_slab = ro.slab.as_ref().filter(|sl| {
        let a0 = sl.data as usize + sl.offset;
        let a1 = a0 + size;
        let clear = |t: &TypedArray| {
            let (b0, b1) = t.byte_range();
            b1 <= a0 || a1 <= b0
        };
        size <= SLAB_MAX_BYTES
            && size <= sl.len - sl.offset
            && !sl.data.is_null()
            && out_ids.as_ref().is_none_or(clear)
            && out_mask.as_ref().is_none_or(clear)
            && inputs.iter().all(|(t, _)| clear(t))
    });
    let (buffer, data, zeroed, base) = match in_slab {
        // SAFETY: offset + size <= len (checked above): the region is inside the slab. Its free
        // part has never been handed out, and was zero-filled when JavaScript made it.
        Some(sl) => (
            sl.buffer,
            unsafe { sl.data.add(sl.offset) },
            true,
            sl.offset,
        ),
        None => {
            let (b, d, z) = region(env, size)?;
            (b, d, z, usize::MAX)
        }
    };
    let part = |at: usize, kind: i32, len: usize| TypedArray {
        kind,
        len,
        // SAFETY: `at <= size`: inside the region (or both zero, data may then be null).
        data: if data.is_null() {
            ptr::null_mut()
        } else {
            unsafe { data.add(at) }
        },
        buffer,
        byte_offset: if base == usize::MAX { at } else { base + at },
    };
    if !zeroed && !data.is_null() {
        // The alignment gaps between parts are never written by the kernels: clear them, so that
        // the buffer shows no stale memory. Parts themselves are written in full below.
        let mut parts = Vec::with_capacity(4);
        if let Some(at) = ids_at {
            parts.push((at, n * elem));
        }
        if let Some(at) = mask_at {
            parts.push((at, n * melem));
        }
        parts.push((lens_at, rows * 4));
        parts.push((src_at, rows * 4));
        let mut end = 0usize;
        for (at, len) in parts {
            // SAFETY: end <= at <= size: the gap [end, at) is inside the allocation.
            unsafe { ptr::write_bytes(data.add(end), 0, at - end) };
            end = at + len;
        }
        // SAFETY: end <= size.
        unsafe { ptr::write_bytes(data.add(end), 0, size - end) };
    }
    let ids_mem = match (out_ids, ids_at) {
        (Some(t), _) => t,
        (None, Some(at)) => part(at, kind, n),
        (None, None) => return Err(throw(env, ErrorKind::Range, "internal: no ids buffer")),
    };
    let mask_mem = match (out_mask, mask_at) {
        (Some(t), _) => t,
        (None, Some(at)) => part(at, mask_kind(ro.mask), n),
        (None, None) => return Err(throw(env, ErrorKind::Range, "internal: no mask buffer")),
    };
    let lengths_mem = part(lens_at, sys::TypedarrayType::int32_array, rows);
    let source_mem = part(src_at, sys::TypedarrayType::int32_array, rows);
    let width = i32::try_from(p.width())
        .map_err(|_| throw(env, ErrorKind::Range, "internal: width exceeds 2147483647"))?;
    // SAFETY: every buffer below was checked (kind, length, no overlap with each other or the
    // inputs) or freshly allocated for exactly this call; no JavaScript runs until we return, so
    // nothing can detach or alias them meanwhile. The packed options array is the facade's own
    // Int32Array of PACKED_LEN elements (checked by read_options), not an output or an input.
    unsafe {
        p.fill_lengths(lengths_mem.slice_mut(), source_mem.slice_mut());
        let written = match ro.mask {
            MaskDtype::Uint8 => write_ids::<u8, U>(p, ro.dtype, &ids_mem, &mask_mem, n),
            MaskDtype::Int32 => write_ids::<i32, U>(p, ro.dtype, &ids_mem, &mask_mem, n),
            MaskDtype::Int64 => write_ids::<i64, U>(p, ro.dtype, &ids_mem, &mask_mem, n),
        };
        written.map_err(|e| throw_core(env, &e))?;
        let packed = ro.packed.slice_mut::<i32>();
        packed[FIELD_OUT_WIDTH] = width;
        // The slab offset is below the slab's length, itself an ArrayBuffer's (<= 2^53), and
        // the facade's slabs are small; anything else reads as "not in the slab".
        packed[FIELD_SLAB_OFFSET] = i32::try_from(base).unwrap_or(-1);
    }
    Ok(buffer)
}

/// # Safety
/// `ids` must be a typed array of `dtype`'s kind and `mask` one of `M`'s kind, each with at least
/// `n` elements, not aliasing each other.
unsafe fn write_ids<M: Mask, U: Unit>(
    p: &Plan<'_, U>,
    dtype: Dtype,
    ids: &TypedArray,
    mask: &TypedArray,
    n: usize,
) -> Result<(), CoreError> {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        let mask: &mut [M] = &mut mask.slice_mut::<M>()[..n];
        match dtype {
            Dtype::Int32 => write::<i32, M, U>(p, ids, mask, n),
            Dtype::Int16 => write::<i16, M, U>(p, ids, mask, n),
            Dtype::Uint16 => write::<u16, M, U>(p, ids, mask, n),
            Dtype::Uint8 => write::<u8, M, U>(p, ids, mask, n),
            Dtype::Float32 => write::<f32, M, U>(p, ids, mask, n),
            Dtype::Int64 => write::<i64, M, U>(p, ids, mask, n),
        }
    }
}

/// # Safety
/// `ids` must be a typed array of `T`'s kind with at least `n` elements, not aliasing `mask`.
unsafe fn write<T: Id, M: Mask, U: Unit>(
    p: &Plan<'_, U>,
    ids: &TypedArray,
    mask: &mut [M],
    n: usize,
) -> Result<(), CoreError> {
    // SAFETY: forwarded from this function's contract.
    let ids: &mut [T] = unsafe { &mut ids.slice_mut::<T>()[..n] };
    p.write(ids, mask)
}

/// Calls `f(i, arr[i])` for i in 0..len while it returns true. Every napi_get_element makes a
/// handle; a fresh scope every 4096 elements keeps V8's handle blocks small and hot.
fn each_element(
    env: sys::napi_env,
    arr: sys::napi_value,
    len: u32,
    mut f: impl FnMut(u32, sys::napi_value) -> NResult<bool>,
) -> NResult<()> {
    let mut scope = HandleScope::open(env)?;
    for i in 0..len {
        if i % 4096 == 4095 {
            drop(scope);
            scope = HandleScope::open(env)?;
        }
        let mut v = ptr::null_mut();
        // SAFETY: arr is live; out pointer valid. May run a getter (then an exception may be pending).
        check(
            env,
            unsafe { sys::napi_get_element(env, arr, i, &mut v) },
            "reading texts",
        )?;
        if !f(i, v)? {
            break;
        }
    }
    drop(scope);
    Ok(())
}

/// Plans and writes UTF-16 rows already measured into `m` (whose buffers it hands back for the
/// next call).
fn emit_utf16(
    env: sys::napi_env,
    ro: &ReadOptions,
    opts: &Options,
    arena: &[u16],
    offsets: &[u32],
    m: &mut Measured,
) -> NResult<sys::napi_value> {
    let (ids, mask) = out_buffers(env, ro)?;
    let src = Utf16Rows::new(arena, offsets).map_err(|e| throw_core(env, &e))?;
    let p = plan_measured(&src, opts, std::mem::take(m)).map_err(|e| throw_core(env, &e))?;
    let r = emit(env, &p, ro, ids, mask, &[]);
    *m = p.into_measured();
    r
}

/// A handle scope closed on drop (also on early returns).
pub(crate) struct HandleScope {
    env: sys::napi_env,
    scope: sys::napi_handle_scope,
}

impl HandleScope {
    pub(crate) fn open(env: sys::napi_env) -> NResult<HandleScope> {
        let mut scope = ptr::null_mut();
        // SAFETY: env is live; out pointer valid.
        check(
            env,
            unsafe { sys::napi_open_handle_scope(env, &mut scope) },
            "opening a handle scope",
        )?;
        Ok(HandleScope { env, scope })
    }
}

impl Drop for HandleScope {
    fn drop(&mut self) {
        // SAFETY: scopes are closed in reverse order of opening (one live at a time here).
        unsafe { sys::napi_close_handle_scope(self.env, self.scope) };
    }
}

/// `[packed options, vocab, outIds, outMask, slab]` as the facade passes them.
type OptionArgs = [sys::napi_value; 5];

fn option_args(a: [&Unknown; 5]) -> OptionArgs {
    a.map(|u| u.raw())
}

/// Vectorizes rows the facade has concatenated: `chunks` is an array of strings whose
/// concatenation is every row in order, `lengths` the rows' lengths in UTF-16 units (`rows` of
/// them). One `napi_get_value_string_utf16` per chunk instead of two N-API calls per row: the
/// per-string crossing was most of a batch's cost (a 1,000-row batch of workload (a) spent
/// ~250 of ~300 us reading strings). The facade has already checked that every row is a string.
fn vectorize_joined_impl(
    env: sys::napi_env,
    chunks: sys::napi_value,
    lengths: sys::napi_value,
    rows: sys::napi_value,
    o: OptionArgs,
    staged: bool,
) -> NResult<sys::napi_value> {
    let ro = read_options(env, o)?;
    let voc = vocab(env, ro.vocab)?;
    let opts = core_options(&ro, voc.as_deref());
    let lens = typed_array_of(
        env,
        lengths,
        "lengths",
        sys::TypedarrayType::uint32_array,
        "",
    )?;
    let mut n = 0u32;
    // SAFETY: rows is a live handle; out pointer valid.
    check(
        env,
        unsafe { sys::napi_get_value_uint32(env, rows, &mut n) },
        "reading rows",
    )?;
    if n as usize > lens.len {
        return Err(throw(
            env,
            ErrorKind::Range,
            "internal: more rows than lengths",
        ));
    }
    let mut count = 0u32;
    // SAFETY: chunks is a live handle; out pointer valid (fails with a status on a non-array).
    check(
        env,
        unsafe { sys::napi_get_array_length(env, chunks, &mut count) },
        "reading texts",
    )?;
    let run_with =
        |(arena, offsets, m): &mut (Vec<u16>, Vec<u32>, Measured)| -> NResult<sys::napi_value> {
            m.clear();
            // A staged batch's first rows are in the arena already (see `stage_texts`).
            if !staged {
                arena.clear();
            }
            let base = arena.len();
            offsets.clear();
            offsets.reserve(n as usize + 1);
            offsets.push(0);
            // Offsets first (the lengths are copied out before any JavaScript could run).
            let mut end = 0u64;
            // SAFETY: a Uint32Array of at least n elements (checked above); read at once.
            for &len in unsafe { &lens.slice::<u32>()[..n as usize] } {
                end += u64::from(len);
                let e = u32::try_from(end).map_err(|_| {
                    throw(
                        env,
                        ErrorKind::Range,
                        "texts hold more than 4294967295 UTF-16 code units in total; split the batch",
                    )
                })?;
                offsets.push(e);
            }
            let total = end as usize;
            if base > total {
                return Err(throw(
                    env,
                    ErrorKind::Range,
                    &format!("internal: {base} units staged, the rows hold {total}"),
                ));
            }
            // One unit more than the rows need, so a chunk longer than its rows shows as a
            // mismatch below instead of being cut short unnoticed; one more for V8's NUL.
            arena.reserve(total + 2 - base);
            let cap = total + 2;
            let mut at = base;
            // Rows are measured as soon as their chunk is copied, while they are still in cache.
            let mut row = 0usize;
            let mut invalid = None;
            each_element(env, chunks, count, |_, v| {
                let mut copied = 0usize;
                // SAFETY: the destination is the arena's spare capacity past `at`, `cap - at`
                // units long (at < cap: see the check below); V8 writes at most that many units
                // including the terminating NUL and reports how many text units it copied.
                check(
                    env,
                    unsafe {
                        sys::napi_get_value_string_utf16(
                            env,
                            v,
                            arena.as_mut_ptr().add(at),
                            cap - at,
                            &mut copied,
                        )
                    },
                    "reading texts",
                )?;
                at += copied;
                if at > total {
                    return Ok(false);
                }
                // SAFETY: V8 initialised the first `at` units (at <= total < capacity).
                unsafe { arena.set_len(at) };
                while row < n as usize && offsets[row + 1] as usize <= at {
                    let units = &arena[offsets[row] as usize..offsets[row + 1] as usize];
                    if let Err(unit) = m.push(units, &opts) {
                        invalid = invalid.or(Some((row, unit)));
                    }
                    row += 1;
                }
                Ok(true)
            })?;
            if at != total {
                return Err(throw(
                    env,
                    ErrorKind::Range,
                    &format!("internal: the joined texts hold {at} units, the rows {total}"),
                ));
            }
            // Rows no chunk reached past: empty rows at the end, and staged rows when no chunk
            // came after them.
            while row < n as usize {
                let units = &arena[offsets[row] as usize..offsets[row + 1] as usize];
                if let Err(unit) = m.push(units, &opts) {
                    invalid = invalid.or(Some((row, unit)));
                }
                row += 1;
            }
            if let Some((row, unit)) = invalid {
                return Err(throw_core(env, &CoreError::LoneSurrogate { row, unit }));
            }
            emit_utf16(env, &ro, &opts, arena, offsets, m)
        };
    with_scratch(
        if staged { &STAGE } else { &ARENA },
        |a| a.0.capacity() > (64 << 20),
        run_with,
    )
}

/// Appends the strings `chunks` to this thread's staged arena (emptied first when `first`): the
/// first parts of a large string batch, handed over while the facade joins the rest, so that its
/// joined strings die young instead of being promoted by V8's scavenges while the batch is read.
fn stage_texts_impl(
    env: sys::napi_env,
    chunks: sys::napi_value,
    first: bool,
) -> NResult<sys::napi_value> {
    let mut count = 0u32;
    // SAFETY: chunks is a live handle; out pointer valid (fails with a status on a non-array).
    check(
        env,
        unsafe { sys::napi_get_array_length(env, chunks, &mut count) },
        "reading texts",
    )?;
    STAGE.with(|cell| {
        let Ok(mut st) = cell.try_borrow_mut() else {
            return Err(throw(
                env,
                ErrorKind::Range,
                "internal: staged arena in use",
            ));
        };
        let arena = &mut st.0;
        if first {
            arena.clear();
        }
        each_element(env, chunks, count, |_, v| {
            let mut len = 0usize;
            // SAFETY: a null buffer asks for the length only.
            check(
                env,
                unsafe { sys::napi_get_value_string_utf16(env, v, ptr::null_mut(), 0, &mut len) },
                "reading texts",
            )?;
            let at = arena.len();
            arena.reserve(len + 1);
            let mut copied = 0usize;
            // SAFETY: the destination is the arena's spare capacity past `at`, at least len + 1
            // units (reserved above); V8 writes at most that many, the NUL included.
            check(
                env,
                unsafe {
                    sys::napi_get_value_string_utf16(
                        env,
                        v,
                        arena.as_mut_ptr().add(at),
                        len + 1,
                        &mut copied,
                    )
                },
                "reading texts",
            )?;
            // SAFETY: V8 initialised `copied <= len` units past `at`.
            unsafe { arena.set_len(at + copied.min(len)) };
            Ok(true)
        })?;
        let mut undef = ptr::null_mut();
        // SAFETY: out pointer valid.
        check(
            env,
            unsafe { sys::napi_get_undefined(env, &mut undef) },
            "returning",
        )?;
        Ok(undef)
    })
}

fn out_buffers(
    env: sys::napi_env,
    ro: &ReadOptions,
) -> NResult<(Option<TypedArray>, Option<TypedArray>)> {
    let ids = match ro.out_ids {
        Some(v) => Some(typed_array_of(
            env,
            v,
            "options.out.ids",
            dtype_kind(ro.dtype),
            dtype_suffix(ro.dtype),
        )?),
        None => None,
    };
    let mask = match ro.out_mask {
        Some(v) => Some(typed_array_of(
            env,
            v,
            "options.out.attentionMask",
            mask_kind(ro.mask),
            mask_suffix(ro.mask),
        )?),
        None => None,
    };
    Ok((ids, mask))
}

/// The `bytes` (Uint8Array) and `offsets` (Uint32Array) of a byte batch, type-checked.
fn byte_input(
    env: sys::napi_env,
    bytes: sys::napi_value,
    offsets: sys::napi_value,
) -> NResult<(TypedArray, TypedArray)> {
    let b = typed_array_of(env, bytes, "bytes", sys::TypedarrayType::uint8_array, "")?;
    let o = typed_array_of(
        env,
        offsets,
        "offsets",
        sys::TypedarrayType::uint32_array,
        "",
    )?;
    Ok((b, o))
}

fn vectorize_bytes_impl(
    env: sys::napi_env,
    bytes: sys::napi_value,
    offsets: sys::napi_value,
    o: OptionArgs,
) -> NResult<sys::napi_value> {
    let ro = read_options(env, o)?;
    // Nothing below runs JavaScript, so the memory read here stays valid until we return.
    let (b, o) = byte_input(env, bytes, offsets)?;
    let voc = vocab(env, ro.vocab)?;
    let (ids, mask) = out_buffers(env, &ro)?;
    // SAFETY: kinds checked above; outputs are checked not to overlap these before any write.
    let (data, offs): (&[u8], &[u32]) = unsafe { (b.slice(), o.slice()) };
    let src = Utf8Rows::new(data, offs).map_err(|e| throw_core(env, &e))?;
    let opts = core_options(&ro, voc.as_deref());
    let p = plan(&src, &opts).map_err(|e| throw_core(env, &e))?;
    emit(env, &p, &ro, ids, mask, &[(&b, "bytes"), (&o, "offsets")])
}

fn measure_bytes_impl(
    env: sys::napi_env,
    bytes: sys::napi_value,
    offsets: sys::napi_value,
    o: OptionArgs,
) -> NResult<sys::napi_value> {
    let ro = read_options(env, o)?;
    let (b, o) = byte_input(env, bytes, offsets)?;
    let voc = vocab(env, ro.vocab)?;
    // SAFETY: kinds checked above; only read.
    let (data, offs): (&[u8], &[u32]) = unsafe { (b.slice(), o.slice()) };
    let src = Utf8Rows::new(data, offs).map_err(|e| throw_core(env, &e))?;
    let opts = core_options(&ro, voc.as_deref());
    let p = plan(&src, &opts).map_err(|e| throw_core(env, &e))?;
    let mut v = ptr::null_mut();
    // SAFETY: out pointer valid.
    check(
        env,
        unsafe { sys::napi_create_double(env, p.width() as f64, &mut v) },
        "building the result",
    )?;
    Ok(v)
}

/// Runs an entry point, turning panics into a JavaScript Error so none crosses the boundary.
pub(crate) fn guard(
    env: &Env,
    f: impl FnOnce(sys::napi_env) -> NResult<sys::napi_value>,
) -> napi::Result<Unknown<'static>> {
    let raw = env.raw();
    match catch_unwind(AssertUnwindSafe(|| f(raw))) {
        // SAFETY: the value was created in this call's handle scope and is returned to it.
        Ok(Ok(v)) => Ok(unsafe { Unknown::from_raw_unchecked(raw, v) }),
        Ok(Err(Thrown)) => Err(napi::Error::new(Status::PendingException, String::new())),
        Err(_) => Err(napi::Error::new(
            Status::GenericFailure,
            "dtesn: internal error (panic) in the native core".to_string(),
        )),
    }
}

/// Vectorizes rows joined by the facade (see `vectorize_joined_impl`). Internal: the facade checks
/// the rows are strings, concatenates them into `chunks`, passes their lengths and the packed
/// options (`packOptions` in src/vectorize/backends.ts), and makes the VectorBatch from the returned
/// ArrayBuffer and the width written into the packed array (see `emit`).
/// `staged: true`: the batch's first rows were handed over by `stageTexts`, `chunks` are the rest
/// (`lengths` and `rows` are still the whole batch's).
#[napi(
    ts_args_type = "chunks: string[], lengths: Uint32Array, rows: number, options: Int32Array, vocab: Uint32Array | null, outIds: unknown, outMask: Uint8Array | null, slab: ArrayBuffer | null, staged?: boolean",
    ts_return_type = "ArrayBuffer"
)]
// The JavaScript call's positional arguments, one by one (an options object would cost a lookup
// per field on every call).
#[allow(clippy::too_many_arguments)]
pub fn vectorize_joined(
    env: Env,
    chunks: Unknown,
    lengths: Unknown,
    rows: Unknown,
    options: Unknown,
    vocab: Unknown,
    out_ids: Unknown,
    out_mask: Unknown,
    slab: Unknown,
    staged: Option<bool>,
) -> napi::Result<Unknown<'static>> {
    let (c, l, r) = (chunks.raw(), lengths.raw(), rows.raw());
    let o = option_args([&options, &vocab, &out_ids, &out_mask, &slab]);
    let staged = staged.unwrap_or(false);
    guard(&env, |e| vectorize_joined_impl(e, c, l, r, o, staged))
}

/// Appends strings to the staged arena of a large string batch (see `stage_texts_impl`).
#[napi(
    ts_args_type = "chunks: string[], first: boolean",
    ts_return_type = "void"
)]
pub fn stage_texts(env: Env, chunks: Unknown, first: bool) -> napi::Result<Unknown<'static>> {
    let c = chunks.raw();
    guard(&env, |e| stage_texts_impl(e, c, first))
}

/// Vectorizes UTF-8 rows `bytes[offsets[i] .. offsets[i+1])`. Internal: see `vectorizeJoined`.
#[napi(
    ts_args_type = "bytes: unknown, offsets: unknown, options: Int32Array, vocab: Uint32Array | null, outIds: unknown, outMask: Uint8Array | null, slab: ArrayBuffer | null",
    ts_return_type = "ArrayBuffer"
)]
// The JavaScript call's positional arguments, one by one (an options object would cost a lookup
// per field on every call).
#[allow(clippy::too_many_arguments)]
pub fn vectorize_bytes(
    env: Env,
    bytes: Unknown,
    offsets: Unknown,
    options: Unknown,
    vocab: Unknown,
    out_ids: Unknown,
    out_mask: Unknown,
    slab: Unknown,
) -> napi::Result<Unknown<'static>> {
    let (b, of) = (bytes.raw(), offsets.raw());
    let o = option_args([&options, &vocab, &out_ids, &out_mask, &slab]);
    guard(&env, |e| vectorize_bytes_impl(e, b, of, o))
}

/// The width `vectorizeBytes` would give these rows (all checks included, nothing written).
/// Internal: the pipeline measures shards in workers, then writes them with one shared width.
#[napi(
    ts_args_type = "bytes: unknown, offsets: unknown, options: Int32Array, vocab: Uint32Array | null",
    ts_return_type = "number"
)]
pub fn measure_bytes(
    env: Env,
    bytes: Unknown,
    offsets: Unknown,
    options: Unknown,
    vocab: Unknown,
) -> napi::Result<Unknown<'static>> {
    let (b, of) = (bytes.raw(), offsets.raw());
    let mut null = ptr::null_mut();
    // SAFETY: out pointer valid.
    unsafe { sys::napi_get_null(env.raw(), &mut null) };
    let o = [options.raw(), vocab.raw(), null, null, null];
    guard(&env, |e| measure_bytes_impl(e, b, of, o))
}

/// The SIMD path in use, e.g. 'avx512'.
#[napi]
pub fn simd_path() -> String {
    simd::kernels().name.to_string()
}

/// Every SIMD path this CPU can run, best first.
#[napi]
pub fn available_simd() -> Vec<String> {
    simd::available()
        .iter()
        .map(|k| k.name.to_string())
        .collect()
}

/// When `DTESN_SIMD` names a path this CPU lacks: that name (the facade warns).
#[napi]
pub fn simd_request_unavailable() -> Option<String> {
    simd::env_request_unavailable()
}

/// Switches the SIMD path for the whole process (tests compare every path in one process).
#[napi]
pub fn select_simd(name: String) -> napi::Result<String> {
    simd::select(&name)
        .map(str::to_string)
        .map_err(|e| napi::Error::new(Status::InvalidArg, e))
}
