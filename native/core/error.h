// The one error type of the native core. Kernels and checks throw kfac::Error;
// the binding turns it into the matching typed JS error. Nothing here exits or aborts.
#pragma once
#include <stdexcept>
#include <string>

namespace kfac {

enum class ErrorCode {
  InvalidArgument,  // a value out of range, a wrong type or option
  Shape,            // shapes that do not fit together
  DType,            // an element type that the op does not take
  Device,           // tensors on the wrong or mixed devices
  Disposed,         // a tensor used after dispose()
  NotFinite,        // NaN or Inf where a finite value is required
  OutOfMemory,      // an allocation that failed or was refused as absurd
  Numerical,        // a decomposition that did not converge
  Internal,         // a broken invariant inside the library
};

inline const char* error_code_name(ErrorCode c) {
  switch (c) {
    case ErrorCode::InvalidArgument: return "ERR_INVALID_ARGUMENT";
    case ErrorCode::Shape: return "ERR_SHAPE";
    case ErrorCode::DType: return "ERR_DTYPE";
    case ErrorCode::Device: return "ERR_DEVICE";
    case ErrorCode::Disposed: return "ERR_DISPOSED";
    case ErrorCode::NotFinite: return "ERR_NOT_FINITE";
    case ErrorCode::OutOfMemory: return "ERR_OUT_OF_MEMORY";
    case ErrorCode::Numerical: return "ERR_NUMERICAL";
    case ErrorCode::Internal: return "ERR_INTERNAL";
  }
  return "ERR_INTERNAL";
}

class Error : public std::runtime_error {
 public:
  // argument: which argument was wrong ("" when none); expected/got: short phrases.
  Error(ErrorCode code, std::string message, std::string argument = "", std::string expected = "",
        std::string got = "")
      : std::runtime_error(message),
        code_(code),
        argument_(std::move(argument)),
        expected_(std::move(expected)),
        got_(std::move(got)) {}

  ErrorCode code() const { return code_; }
  const std::string& argument() const { return argument_; }
  const std::string& expected() const { return expected_; }
  const std::string& got() const { return got_; }

 private:
  ErrorCode code_;
  std::string argument_, expected_, got_;
};

// Builds "<arg>: expected <expected>, got <got>" and throws it.
[[noreturn]] void throw_arg(ErrorCode code, const std::string& argument, const std::string& expected,
                            const std::string& got);

}  // namespace kfac
