// Fuzz: byte mutations of valid trace files (compressed and uncompressed, all three group
// kinds). Every case must end in a valid read of every step or a dsv4::Error, never a crash,
// a hang or another exception. A short smoke runs in `unit`; >= 1e5 cases under `long`.
// Replay one case: DSV4LAB_SEED=<seed printed on failure>.
#define BOOST_TEST_MODULE traces_fuzz
#include <boost/test/unit_test.hpp>

#include "reference/status.hpp"
#include "test_util.hpp"
#include "traces/synth.hpp"
#include "traces/trace.hpp"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <unistd.h>

using namespace dsv4;
using namespace dsv4::trace;
namespace fs = std::filesystem;

// HDF5 1.10 leaks metadata-cache entries on some error paths while rejecting corrupt files
// (inside libhdf5, after every handle of ours is closed); under LeakSanitizer only those are
// suppressed. No effect in builds without the sanitizer.
extern "C" const char* __lsan_default_suppressions() { return "leak:libhdf5"; }

namespace {

std::vector<std::byte> make_valid(bool compress) {
  const fs::path p = fs::temp_directory_path() / ("dsv4lab-fuzz-" + std::to_string(::getpid()) + (compress ? "-z" : "-u") + ".h5");
  SynthOptions o;
  o.preset = "v4-flash";
  o.layers = 1;
  o.steps = 2;
  o.batch = 2;
  o.next_n = 2;
  o.seq_len = 2100;  // N_r = 524 .. 525 > K = 512
  o.merge_heads = 2;
  o.merge_head_dim = 8;
  o.max_splits = 3;
  o.compressors = {{"idx", 128, 4}};
  o.state_dtype = DType::bf16;
  o.plant = {"nan-lse", "ties"};
  o.write.compress = compress;
  synth_trace(p.string(), o);
  std::ifstream in(p, std::ios::binary);
  std::vector<char> raw{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  fs::remove(p);
  std::vector<std::byte> out(raw.size());
  std::memcpy(out.data(), raw.data(), raw.size());
  return out;
}


struct Tally {
  std::uint64_t valid = 0, errors = 0;
};

/// One mutated image: 1..8 edits of one of: flip a bit, random byte, 0x00 / 0xff run,
/// copy a run from elsewhere, truncate.
std::vector<std::byte> mutate(const std::vector<std::byte>& base, std::mt19937_64& g) {
  std::vector<std::byte> m = base;
  const int edits = 1 + static_cast<int>(g() % 8);
  for (int e = 0; e < edits && !m.empty(); ++e) {
    const std::size_t at = g() % m.size();
    switch (g() % 6) {
      case 0: m[at] ^= static_cast<std::byte>(1u << (g() % 8)); break;
      case 1: m[at] = static_cast<std::byte>(g()); break;
      case 2: {
        const std::size_t len = std::min<std::size_t>(1 + g() % 16, m.size() - at);
        std::fill_n(m.begin() + static_cast<std::ptrdiff_t>(at), len, std::byte{0});
        break;
      }
      case 3: {
        const std::size_t len = std::min<std::size_t>(1 + g() % 16, m.size() - at);
        std::fill_n(m.begin() + static_cast<std::ptrdiff_t>(at), len, std::byte{0xff});
        break;
      }
      case 4: {
        const std::size_t from = g() % m.size();
        const std::size_t len = std::min<std::size_t>({1 + g() % 64, m.size() - at, m.size() - from});
        std::memmove(m.data() + at, m.data() + from, len);
        break;
      }
      default: m.resize(at); break;
    }
  }
  return m;
}

void run_cases(std::uint64_t seed, std::uint64_t cases, Tally& t) {
  for (bool compress : {true, false}) {
    const auto base = make_valid(compress);
    BOOST_REQUIRE_GT(verify_all(TraceReader(base, "base.h5")), 0u);  // the unmutated file is valid
    for (std::uint64_t i = 0; i < cases / 2; ++i) {
      const std::uint64_t cs = seed * 1000003ull + i * 2 + (compress ? 1 : 0);
      std::mt19937_64 g(cs);
      const auto m = mutate(base, g);
      BOOST_TEST_CHECKPOINT("fuzz case seed " << cs << " (compress " << compress << ")");
      try {
        TraceReader r(m, "fuzz.h5");
        verify_all(r);
        ++t.valid;
      } catch (const Error& e) {
        ++t.errors;
        const std::string msg = e.what();
        if (msg.find('\n') != std::string::npos || msg.find("fuzz.h5") == std::string::npos)
          BOOST_ERROR("case seed " << cs << ": error message not one line naming the file: " << msg);
      } catch (const std::exception& e) {
        BOOST_ERROR("case seed " << cs << ": unexpected exception: " << e.what());
      }
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(fuzz_smoke) {
  Tally t;
  const std::uint64_t seed = test::seed(1);
  run_cases(seed, 400, t);
  BOOST_TEST_MESSAGE("fuzz smoke seed " << seed << ": " << t.valid << " valid reads, " << t.errors << " clean errors");
  BOOST_TEST(t.valid + t.errors == 400u);
  BOOST_TEST(t.errors > 0u);  // the mutations do reach the checks
}

BOOST_AUTO_TEST_CASE(fuzz_100k, *boost::unit_test::label("long")) {
  Tally t;
  const std::uint64_t seed = test::seed(2);
  run_cases(seed, 100000, t);
  std::printf("fuzz seed %llu: %llu valid reads, %llu clean errors\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(t.valid), static_cast<unsigned long long>(t.errors));
  BOOST_TEST(t.valid + t.errors == 100000u);
}
