// Reading a call's arguments from JS, for every binding (CPU, GPU, schedules): typed values with
// messages that name the field and the expected and actual value, typed arrays checked for their
// element type, owned copies of arrays for calls that outlive the JS call, and the one wrapper that
// turns every C++ failure of an entry point into a JS exception instead of a process abort.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>

namespace splash {
namespace addon {

// A bad argument: becomes a JS TypeError or RangeError at the boundary.
struct ArgError {
  bool type_error;
  std::string message;
};

[[noreturn]] void range_error(const std::string& field, const std::string& what);
[[noreturn]] void type_error(const std::string& field, const std::string& what);

std::string num(int64_t x);
std::string at(const std::string& path, int64_t i);  // path[i]
const char* typed_array_name(napi_typedarray_type t);

// A typed array's memory as JS holds it right now (valid only during the JS call).
struct Span {
  void* data = nullptr;
  int64_t length = 0;  // elements
  size_t bytes = 0;
};

// Bytes a call owns: a copy of a JS array, so that detaching or freeing the array while the call runs
// elsewhere cannot pull memory from under a kernel. The memory comes from a process-wide cache of
// recently used blocks: fresh pages fault in one by one, which costs several times the copy itself.
class OwnedBytes {
 public:
  OwnedBytes() = default;
  OwnedBytes(OwnedBytes&& other) noexcept;
  OwnedBytes& operator=(OwnedBytes&& other) noexcept;
  ~OwnedBytes();
  // A copy of `span`; an allocation failure is a RangeError naming `path` and the size.
  static OwnedBytes copy_of(const Span& span, const std::string& path);
  void* data() const { return block_; }
  size_t size() const { return size_; }

 private:
  uint8_t* block_ = nullptr;
  size_t capacity_ = 0;  // of the block, which may exceed size_ when it came from the cache
  size_t size_ = 0;
};

// Reads fields of JS objects; every failure throws ArgError naming the path.
class Reader {
 public:
  Napi::Object object(const Napi::Object& o, const std::string& key, const std::string& path);
  double number(const Napi::Object& o, const std::string& key, const std::string& path);
  double number_value(const Napi::Value& v, const std::string& path);
  int64_t integer(const Napi::Object& o, const std::string& key, const std::string& path, int64_t lo, int64_t hi);
  int64_t integer_value(const Napi::Value& v, const std::string& path, int64_t lo, int64_t hi);
  // undefined and null read as false
  bool boolean(const Napi::Object& o, const std::string& key, const std::string& path);
  // A typed array of `type`; null / undefined give an empty span when `optional`.
  Span array(const Napi::Object& o, const std::string& key, const std::string& path, napi_typedarray_type type,
             bool optional = false);
  Span array_value(const Napi::Value& v, const std::string& path, napi_typedarray_type type);
};

// The JS error for an ArgError.
Napi::Error to_js_error(Napi::Env env, const ArgError& e);

// Runs an entry point's body and converts whatever it throws (ArgError, std::bad_alloc, any
// std::exception) into a JS exception: node-addon-api only converts Napi::Error, and anything else
// escaping a callback would terminate the process.
template <class Body>
Napi::Value guarded(Napi::Env env, Body body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const ArgError& e) {
    throw to_js_error(env, e);
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(env, "out of memory: the call's working set could not be allocated");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  } catch (...) {
    throw Napi::Error::New(env, "native call failed");
  }
}

// Napi::Function::New for an entry point whose body runs under guarded().
Napi::Function guarded_function(Napi::Env env, const char* name, Napi::Value (*body)(const Napi::CallbackInfo&));

}  // namespace addon
}  // namespace splash
