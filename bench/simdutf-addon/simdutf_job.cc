// The vectorize bench's outside reference: dtesn's default job (code points, right truncation at
// maxLength, padding 'longest' with 0, attention mask, lengths) done with simdutf, the library
// Node and Bun transcode with, in one N-API call per batch. Each row is validated and transcoded
// once into a reused UTF-32 arena (simdutf::convert_utf8_to_utf32 / convert_utf16le_to_utf32,
// both validating), then the batch is copied out with its width. Ill-formed input throws (the
// workloads have none; dtesn's replacement semantics are not simdutf's). For the benchmark only
// (see build.mjs): never shipped.
#include <napi.h>
#include <simdutf.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

template <typename T>
T* TypedData(napi_env env, napi_value v, napi_typedarray_type want, size_t* len) {
  napi_typedarray_type type;
  void* data = nullptr;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, len, &data, &ab, &off) != napi_ok || type != want) {
    return nullptr;
  }
  return static_cast<T*>(data);
}

struct Out {
  int32_t* ids;
  uint8_t* mask;
  int32_t* lens;
  size_t ids_len, mask_len, lens_len;
};

bool ReadOut(const Napi::CallbackInfo& info, size_t first, Out* o) {
  o->ids = TypedData<int32_t>(info.Env(), info[first], napi_int32_array, &o->ids_len);
  o->mask = TypedData<uint8_t>(info.Env(), info[first + 1], napi_uint8_array, &o->mask_len);
  o->lens = TypedData<int32_t>(info.Env(), info[first + 2], napi_int32_array, &o->lens_len);
  return o->ids && o->mask && o->lens;
}

// The reused UTF-32 arena and each row's start / code point count in it.
std::vector<char32_t> arena;
std::vector<size_t> starts, counts;
std::vector<char16_t> units;

// Copies the transcoded rows into rows x width (width = longest row, at most max_length).
Napi::Value Emit(Napi::Env env, size_t rows, size_t max_length, const Out& o) {
  size_t width = 0;
  for (size_t i = 0; i < rows; i++) width = std::max(width, std::min(counts[i], max_length));
  if (o.ids_len < rows * width || o.mask_len < rows * width || o.lens_len < rows) {
    Napi::RangeError::New(env, "simdutf job: output buffers too small").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  for (size_t i = 0; i < rows; i++) {
    const size_t n = std::min(counts[i], width);
    int32_t* row = o.ids + i * width;
    std::memcpy(row, arena.data() + starts[i], n * sizeof(int32_t));
    std::memset(row + n, 0, (width - n) * sizeof(int32_t));
    std::memset(o.mask + i * width, 1, n);
    std::memset(o.mask + i * width + n, 0, width - n);
    o.lens[i] = static_cast<int32_t>(n);
  }
  return Napi::Number::New(env, static_cast<double>(width));
}

// codepointsBytes(bytes: Uint8Array, offsets: Uint32Array, maxLength, ids, mask, lengths): width
Napi::Value CodepointsBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t nbytes = 0, noffs = 0;
  const uint8_t* bytes = info.Length() >= 6 ? TypedData<uint8_t>(env, info[0], napi_uint8_array, &nbytes) : nullptr;
  const uint32_t* offs = bytes ? TypedData<uint32_t>(env, info[1], napi_uint32_array, &noffs) : nullptr;
  Out o;
  if (!offs || noffs < 1 || !info[2].IsNumber() || !ReadOut(info, 3, &o)) {
    Napi::TypeError::New(env, "codepointsBytes(bytes, offsets, maxLength, ids, mask, lengths)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const size_t rows = noffs - 1;
  const size_t max_length = info[2].As<Napi::Number>().Int64Value();
  if (offs[rows] > nbytes) {
    Napi::RangeError::New(env, "offsets exceed bytes").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // A row of n bytes has at most n code points.
  if (arena.size() < nbytes - offs[0]) arena.resize(nbytes - offs[0]);
  starts.resize(rows);
  counts.resize(rows);
  size_t at = 0;
  for (size_t i = 0; i < rows; i++) {
    const size_t len = offs[i + 1] - offs[i];
    const size_t n = simdutf::convert_utf8_to_utf32(reinterpret_cast<const char*>(bytes + offs[i]), len, arena.data() + at);
    if (n == 0 && len > 0) {
      Napi::TypeError::New(env, "row " + std::to_string(i) + " is not valid UTF-8").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    starts[i] = at;
    counts[i] = n;
    at += n;
  }
  return Emit(env, rows, max_length, o);
}

// codepointsStrings(texts: string[], maxLength, ids, mask, lengths): width
Napi::Value CodepointsStrings(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Out o;
  if (info.Length() < 5 || !info[0].IsArray() || !info[1].IsNumber() || !ReadOut(info, 2, &o)) {
    Napi::TypeError::New(env, "codepointsStrings(texts, maxLength, ids, mask, lengths)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  napi_value arr = info[0];
  uint32_t rows = 0;
  napi_get_array_length(env, arr, &rows);
  const size_t max_length = info[1].As<Napi::Number>().Int64Value();
  starts.resize(rows);
  counts.resize(rows);
  size_t at = 0;
  napi_handle_scope scope = nullptr;
  for (uint32_t i = 0; i < rows; i++) {
    if ((i & 4095) == 0) {  // keep the handle arena small on huge batches
      if (scope) napi_close_handle_scope(env, scope);
      napi_open_handle_scope(env, &scope);
    }
    napi_value v;
    size_t copied = 0;
    if (units.size() < 4096) units.resize(4096);
    // One copy into the reused buffer; a row that may not have fitted is measured and copied again.
    if (napi_get_element(env, arr, i, &v) != napi_ok ||
        napi_get_value_string_utf16(env, v, units.data(), units.size(), &copied) != napi_ok) {
      if (scope) napi_close_handle_scope(env, scope);
      Napi::TypeError::New(env, "texts[i] must be a string").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (copied + 1 >= units.size()) {
      size_t len = 0;
      napi_get_value_string_utf16(env, v, nullptr, 0, &len);
      units.resize(len + 1);
      napi_get_value_string_utf16(env, v, units.data(), units.size(), &copied);
    }
    const size_t len = copied;
    // A row of n units has at most n code points.
    if (arena.size() < at + len) arena.resize(2 * (at + len));
    const size_t n = simdutf::convert_utf16le_to_utf32(units.data(), copied, arena.data() + at);
    if (n == 0 && copied > 0) {
      if (scope) napi_close_handle_scope(env, scope);
      Napi::TypeError::New(env, "row " + std::to_string(i) + " has a lone surrogate").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    starts[i] = at;
    counts[i] = n;
    at += n;
  }
  if (scope) napi_close_handle_scope(env, scope);
  return Emit(env, rows, max_length, o);
}

// The implementation simdutf chose at run time (e.g. 'icelake', 'haswell', 'westmere').
Napi::Value Implementation(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), simdutf::get_active_implementation()->name());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("codepointsBytes", Napi::Function::New(env, CodepointsBytes, "codepointsBytes"));
  exports.Set("codepointsStrings", Napi::Function::New(env, CodepointsStrings, "codepointsStrings"));
  exports.Set("implementation", Napi::Function::New(env, Implementation, "implementation"));
  exports.Set("version", Napi::String::New(env, SIMDUTF_VERSION));
  return exports;
}

}  // namespace

NODE_API_MODULE(dtesn_bench_simdutf, Init)
