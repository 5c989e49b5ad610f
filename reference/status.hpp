// Errors in dsv4lab. Library code reports failure by returning a Status (GPU launchers,
// anything on a hot path) or by throwing dsv4::Error (host library code); it never exits.
// Only the CLI turns them into exit codes: check_failed -> 1, bad_input / unsupported /
// io -> 2, device / internal -> 3.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace dsv4 {

enum class Errc {
  ok = 0,
  bad_input,     ///< the caller's data or arguments are invalid
  unsupported,   ///< a valid request outside the supported configurations
  io,            ///< a file could not be read or written
  check_failed,  ///< a parity / pass rule did not hold
  device,        ///< a GPU runtime error
  internal,      ///< a bug in dsv4lab
};

inline const char* to_string(Errc c) {
  switch (c) {
    case Errc::ok: return "ok";
    case Errc::bad_input: return "bad input";
    case Errc::unsupported: return "unsupported";
    case Errc::io: return "i/o error";
    case Errc::check_failed: return "check failed";
    case Errc::device: return "device error";
    case Errc::internal: return "internal error";
  }
  return "?";
}

/// Exit code the CLI uses for an error class.
inline int exit_code(Errc c) {
  switch (c) {
    case Errc::ok: return 0;
    case Errc::check_failed: return 1;
    case Errc::bad_input:
    case Errc::unsupported:
    case Errc::io: return 2;
    default: return 3;
  }
}

struct [[nodiscard]] Status {
  Errc code = Errc::ok;
  std::string message;

  bool ok() const { return code == Errc::ok; }
  explicit operator bool() const { return ok(); }
  static Status success() { return {}; }
};

inline Status make_status(Errc c, std::string msg) { return Status{c, std::move(msg)}; }

class Error : public std::runtime_error {
 public:
  Error(Errc code, const std::string& msg) : std::runtime_error(msg), code_(code) {}
  Errc code() const { return code_; }

 private:
  Errc code_;
};

[[noreturn]] inline void raise(Errc c, const std::string& msg) { throw Error(c, msg); }

/// Throw when a Status is not ok (host code that calls a Status-returning function).
inline void check(const Status& s) {
  if (!s.ok()) throw Error(s.code, s.message);
}

}  // namespace dsv4
