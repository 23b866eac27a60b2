// See args.h.
#include "args.h"

#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <new>

namespace splash {
namespace addon {

void range_error(const std::string& field, const std::string& what) { throw ArgError{false, field + ": " + what}; }

void type_error(const std::string& field, const std::string& what) { throw ArgError{true, field + ": " + what}; }

std::string num(int64_t x) { return std::to_string(x); }

std::string at(const std::string& path, int64_t i) { return path + "[" + num(i) + "]"; }

const char* typed_array_name(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "TypedArray";
  }
}

namespace {

// Blocks of finished calls' copies, kept for the next calls (up to kMaxCached bytes in all).
class BlockCache {
 public:
  // A block of at least `bytes` (at most twice that, so that small copies do not pin big blocks), or a
  // new one; null when none can be allocated.
  uint8_t* take(size_t bytes, size_t* capacity) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.lower_bound(bytes);
      if (it != free_.end() && it->first <= 2 * bytes) {
        *capacity = it->first;
        uint8_t* block = it->second;
        cached_ -= it->first;
        free_.erase(it);
        return block;
      }
    }
    *capacity = bytes;
    return new (std::nothrow) uint8_t[bytes];
  }

  void give(uint8_t* block, size_t capacity) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cached_ + capacity <= kMaxCached) {
        free_.emplace(capacity, block);
        cached_ += capacity;
        return;
      }
    }
    delete[] block;
  }

 private:
  static constexpr size_t kMaxCached = size_t{256} << 20;
  std::mutex mu_;
  std::multimap<size_t, uint8_t*> free_;  // capacity → block
  size_t cached_ = 0;
};

BlockCache& block_cache() {
  // Leaked on purpose: a job may still free its copies while the process exits.
  static BlockCache* cache = new BlockCache();
  return *cache;
}

}  // namespace

OwnedBytes::OwnedBytes(OwnedBytes&& other) noexcept
    : block_(other.block_), capacity_(other.capacity_), size_(other.size_) {
  other.block_ = nullptr;
  other.capacity_ = other.size_ = 0;
}

OwnedBytes& OwnedBytes::operator=(OwnedBytes&& other) noexcept {
  if (this != &other) {
    if (block_ != nullptr) block_cache().give(block_, capacity_);
    block_ = other.block_;
    capacity_ = other.capacity_;
    size_ = other.size_;
    other.block_ = nullptr;
    other.capacity_ = other.size_ = 0;
  }
  return *this;
}

OwnedBytes::~OwnedBytes() {
  if (block_ != nullptr) block_cache().give(block_, capacity_);
}

OwnedBytes OwnedBytes::copy_of(const Span& span, const std::string& path) {
  OwnedBytes o;
  if (span.bytes == 0) return o;
  o.block_ = block_cache().take(span.bytes, &o.capacity_);
  if (o.block_ == nullptr) {
    range_error(path, "cannot allocate " + num(static_cast<int64_t>(span.bytes)) + " bytes for the call's copy");
  }
  std::memcpy(o.block_, span.data, span.bytes);
  o.size_ = span.bytes;
  return o;
}

Napi::Object Reader::object(const Napi::Object& o, const std::string& key, const std::string& path) {
  Napi::Value v = o.Get(key);
  if (!v.IsObject()) type_error(path, "expected an object");
  return v.As<Napi::Object>();
}

double Reader::number(const Napi::Object& o, const std::string& key, const std::string& path) {
  return number_value(o.Get(key), path);
}

double Reader::number_value(const Napi::Value& v, const std::string& path) {
  if (!v.IsNumber()) type_error(path, "expected a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (std::isnan(d)) range_error(path, "expected a number, got NaN");
  return d;
}

int64_t Reader::integer(const Napi::Object& o, const std::string& key, const std::string& path, int64_t lo, int64_t hi) {
  return integer_value(o.Get(key), path, lo, hi);
}

int64_t Reader::integer_value(const Napi::Value& v, const std::string& path, int64_t lo, int64_t hi) {
  const double d = number_value(v, path);
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != std::floor(d)) {
    range_error(path, "expected an integer in [" + num(lo) + ", " + num(hi) + "], got " + std::to_string(d));
  }
  return static_cast<int64_t>(d);
}

bool Reader::boolean(const Napi::Object& o, const std::string& key, const std::string& path) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return false;
  if (!v.IsBoolean()) type_error(path, "expected a boolean");
  return v.As<Napi::Boolean>().Value();
}

Span Reader::array(const Napi::Object& o, const std::string& key, const std::string& path, napi_typedarray_type type,
                   bool optional) {
  Napi::Value v = o.Get(key);
  if (optional && (v.IsNull() || v.IsUndefined())) return Span{};
  return array_value(v, path, type);
}

Span Reader::array_value(const Napi::Value& v, const std::string& path, napi_typedarray_type type) {
  if (!v.IsTypedArray()) type_error(path, std::string("expected a ") + typed_array_name(type));
  // The raw call: it also serves arrays on a SharedArrayBuffer, whose buffer napi_get_arraybuffer_info
  // refuses, and gives a null pointer for a detached buffer.
  napi_typedarray_type actual = napi_int8_array;
  size_t length = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(v.Env(), v, &actual, &length, &data, nullptr, nullptr) != napi_ok) {
    type_error(path, "cannot read the typed array");
  }
  if (actual != type) {
    type_error(path, std::string("expected a ") + typed_array_name(type) + ", got " + typed_array_name(actual));
  }
  Span s;
  s.length = static_cast<int64_t>(length);
  s.bytes = length * v.As<Napi::TypedArray>().ElementSize();
  if (s.length > 0 && data == nullptr) range_error(path, "the array's buffer is detached");
  s.data = s.length > 0 ? data : nullptr;
  return s;
}

Napi::Error to_js_error(Napi::Env env, const ArgError& e) {
  if (e.type_error) return Napi::TypeError::New(env, e.message);
  return Napi::RangeError::New(env, e.message);
}

Napi::Function guarded_function(Napi::Env env, const char* name, Napi::Value (*body)(const Napi::CallbackInfo&)) {
  return Napi::Function::New(
      env, [body](const Napi::CallbackInfo& info) { return guarded(info.Env(), [&] { return body(info); }); }, name);
}

}  // namespace addon
}  // namespace splash
