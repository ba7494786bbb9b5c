// The "crossing floor": the least work a native addon can do to turn a JS string[] into a padded
// rows x width Int32Array of UTF-16 code units (+ attention mask + lengths). One native call; per
// row: napi_get_element + napi_get_value_string_utf16 into ONE reused buffer, then widen to int32
// with right padding 0. No validation beyond argument shapes, no encoding logic: anything a real
// vectorizer does costs more than this. Built locally for the benchmark only (see build.mjs).
#include <napi.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace {

template <typename T>
T* TypedData(Napi::Env env, napi_value v, napi_typedarray_type want, size_t* len) {
  napi_typedarray_type type;
  void* data = nullptr;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, len, &data, &ab, &off) != napi_ok || type != want) {
    return nullptr;
  }
  return static_cast<T*>(data);
}

// floorUtf16(texts: string[], width: number, ids: Int32Array, mask: Uint8Array, lengths: Int32Array): void
// Rows longer than `width` code units are cut at `width` (right truncation).
Napi::Value FloorUtf16(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[0].IsArray() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "floorUtf16(texts, width, ids, mask, lengths)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  napi_value arr = info[0];
  uint32_t rows = 0;
  napi_get_array_length(env, arr, &rows);
  const int64_t width = info[1].As<Napi::Number>().Int64Value();
  size_t idsLen = 0, maskLen = 0, lensLen = 0;
  int32_t* ids = TypedData<int32_t>(env, info[2], napi_int32_array, &idsLen);
  uint8_t* mask = TypedData<uint8_t>(env, info[3], napi_uint8_array, &maskLen);
  int32_t* lens = TypedData<int32_t>(env, info[4], napi_int32_array, &lensLen);
  if (width < 0 || !ids || !mask || !lens || idsLen < rows * (size_t)width || maskLen < rows * (size_t)width ||
      lensLen < rows) {
    Napi::RangeError::New(env, "floorUtf16: bad output buffers").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  static std::vector<char16_t> buf;  // the one reused buffer
  if (buf.size() < (size_t)width + 1) buf.resize((size_t)width + 1);
  const size_t w = (size_t)width;
  napi_handle_scope scope = nullptr;
  for (uint32_t i = 0; i < rows; i++) {
    if ((i & 4095) == 0) {  // keep the handle arena small on huge batches
      if (scope) napi_close_handle_scope(env, scope);
      napi_open_handle_scope(env, &scope);
    }
    napi_value v;
    size_t n = 0;
    if (napi_get_element(env, arr, i, &v) != napi_ok ||
        napi_get_value_string_utf16(env, v, buf.data(), w + 1, &n) != napi_ok) {
      if (scope) napi_close_handle_scope(env, scope);
      Napi::TypeError::New(env, "floorUtf16: texts[i] must be a string").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int32_t* row = ids + (size_t)i * w;
    uint8_t* m = mask + (size_t)i * w;
    const char16_t* src = buf.data();
    for (size_t j = 0; j < n; j++) row[j] = (int32_t)(uint16_t)src[j];
    std::memset(row + n, 0, (w - n) * sizeof(int32_t));
    std::memset(m, 1, n);
    std::memset(m + n, 0, w - n);
    lens[i] = (int32_t)n;
  }
  if (scope) napi_close_handle_scope(env, scope);
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("floorUtf16", Napi::Function::New(env, FloorUtf16, "floorUtf16"));
  return exports;
}

}  // namespace

NODE_API_MODULE(dtesn_bench_floor, Init)
