// Provenance of a report (DESIGN §5): what built the binary, what ran, on which input.
// Nothing here depends on the wall clock, so the same inputs give the same report bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dsv4::validation {

/// Incremental SHA-256 (FIPS 180-4). Uses the x86 SHA extensions when the CPU has them
/// (a trace of several GB hashes in seconds), else portable code; both give the same digest.
class Sha256 {
 public:
  explicit Sha256(bool allow_hardware = true);
  /// True when this CPU has the SHA extensions and the build can use them.
  static bool hardware_available();
  void update(std::span<const std::uint8_t> data);
  void update(std::string_view s);
  /// Finish and return the 32-byte digest (the object must not be updated afterwards).
  std::array<std::uint8_t, 32> digest();
  /// Finish and return the digest as 64 lowercase hex digits.
  std::string hex_digest();

 private:
  void block(const std::uint8_t* p);
  void blocks(const std::uint8_t* p, std::size_t n);  ///< n whole 64-byte blocks
  bool hw_ = false;
  std::array<std::uint32_t, 8> h_;
  std::array<std::uint8_t, 64> buf_{};
  std::size_t used_ = 0;
  std::uint64_t length_ = 0;  ///< bytes hashed so far
};

/// SHA-256 of a byte string, hex.
std::string sha256_hex(std::string_view data);
/// SHA-256 of a file's bytes, hex (throws dsv4::Error io naming the file).
std::string sha256_file(const std::filesystem::path& file);

/// Shell-quote one argument (POSIX sh): unchanged when it needs no quoting.
std::string shell_quote(std::string_view arg);
/// The exact command line, each argument shell-quoted, joined by spaces.
std::string command_line(int argc, const char* const* argv);
std::string command_line(const std::vector<std::string>& args);
/// This process's command line (from /proc/self/cmdline on Linux; empty elsewhere).
std::string current_command_line();

struct Provenance {
  std::string version;        ///< dsv4lab version
  std::string git_commit;     ///< commit the binary was built from ("-dirty" with local changes)
  std::string build_type;
  std::string build_flags;
  std::string cxx_compiler;
  std::string cuda_compiler;  ///< nvcc version, empty when the kernels were not built
  std::string gpu;            ///< GPU name the replay ran on, "none" when it did not use one
  std::string trace;          ///< trace path as given on the command line
  std::string trace_sha256;
  std::vector<std::int64_t> seeds;  ///< seeds of the trace / run (may be empty)
  std::string command;        ///< the command that reproduces the report
};

/// Fill the build fields from the generated build_info header.
Provenance build_provenance();

}  // namespace dsv4::validation
