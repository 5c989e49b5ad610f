// Host and device evaluate every numerics-core function on the same inputs and must
// agree bit for bit (all NaNs count as equal, see num::same_bits): 2^27 strided bit patterns plus every special value per function
// (about 1.5 * 10^9 evaluations in all) in `gpu`, all 2^32 inputs in `long`.
#define BOOST_TEST_MODULE gpu_numerics
#include <boost/test/unit_test.hpp>

#include "gpu/numerics.cuh"
#include "gpu_test_util.hpp"
#include "reference/parallel.hpp"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <random>
#include <span>

using namespace dsv4;
using dsv4::gpu::NumFn;

namespace {

std::vector<std::uint32_t> special_inputs() {
  std::vector<std::uint32_t> v;
  for (std::uint32_t s : {0u, 0x80000000u}) {
    for (std::uint32_t u : {0x0u, 0x1u, 0x2u, 0x7fffffu, 0x800000u, 0x800001u, 0x3f800000u, 0x3f7fffffu,
                            0x3f800001u, 0x7f7fffffu, 0x7f800000u, 0x7f800001u, 0x7fc00000u, 0x7fffffffu,
                            0x42b17217u, 0x42b17218u, 0x42cff1b5u, 0x42d00000u, 0x43000000u, 0x43160000u,
                            0x3f3504f3u, 0x3fb504f3u, 0x3e95f61au, 0x3ed413ccu, 0x33000000u, 0x38800000u}) {
      v.push_back(u | s);
    }
  }
  for (int n = -149; n <= 127; ++n) {
    const float p = std::ldexp(1.0f, n);
    v.push_back(num::bits(p));
    v.push_back(num::bits(static_cast<float>(n)));
    v.push_back(num::bits(static_cast<float>(n) + 0.5f));
  }
  while (v.size() % 32) v.push_back(0);
  return v;
}

struct Mismatch {
  std::size_t count = 0;
  std::uint32_t first_in = 0, first_dev = 0, first_host = 0;
};

/// Run fn over `inputs` on the device and compare with the host, in chunks of `chunk`.
Mismatch compare(NumFn fn, const std::vector<std::uint32_t>& inputs) {
  test::DeviceBuffer<std::uint32_t> din, dout;
  din.upload(inputs);
  dout.resize(inputs.size());
  dout.fill_bytes(0xA5);
  DSV4_STATUS_REQUIRE(gpu::numerics_eval({din.get(), dout.get(), inputs.size(), fn}, nullptr));
  DSV4_CUDA_REQUIRE(cudaDeviceSynchronize());
  const auto got = dout.download();
  Mismatch m;
  std::mutex mu;
  const bool warp_fn = fn == NumFn::butterfly_sum || fn == NumFn::butterfly_max;
  const std::size_t groups = warp_fn ? inputs.size() / 32 : inputs.size();
  parallel_for(groups, [&](std::size_t b, std::size_t e) {
    Mismatch local;
    for (std::size_t g = b; g < e; ++g) {
      if (warp_fn) {
        float lanes[32];
        for (int l = 0; l < 32; ++l) lanes[l] = num::from_bits(inputs[g * 32 + l]);
        const float r = fn == NumFn::butterfly_sum ? num::butterfly_sum(std::span<float>(lanes, 32))
                                                   : num::butterfly_max(std::span<float>(lanes, 32));
        for (int l = 0; l < 32; ++l) {
          if (!num::same_bits(num::from_bits(got[g * 32 + l]), r)) {
            if (local.count++ == 0) { local.first_in = inputs[g * 32]; local.first_dev = got[g * 32 + l]; local.first_host = num::bits(r); }
          }
        }
      } else {
        const std::uint32_t want = gpu::numerics_eval_host(fn, inputs[g]);
        // Float-valued results compare under the NaN rule of num::same_bits; the 16-bit
        // conversion results (to_bf16, to_fp16, to_bf16x2) compare exactly.
        const bool equal = (fn == NumFn::to_bf16 || fn == NumFn::to_fp16 || fn == NumFn::to_bf16x2)
                               ? got[g] == want
                               : num::same_bits(num::from_bits(got[g]), num::from_bits(want));
        if (!equal && local.count++ == 0) { local.first_in = inputs[g]; local.first_dev = got[g]; local.first_host = want; }
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    if (local.count && m.count == 0) { m.first_in = local.first_in; m.first_dev = local.first_dev; m.first_host = local.first_host; }
    m.count += local.count;
  });
  return m;
}

void run_all(std::uint64_t step, const char* what) {
  const auto specials = special_inputs();
  std::size_t total = 0, mismatches = 0;
  for (int f = 0; f < gpu::kNumFnCount; ++f) {
    const NumFn fn = static_cast<NumFn>(f);
    // Inputs: the specials, then bit patterns k * step (+ a random offset per chunk).
    std::mt19937_64 rng(test::base_seed() + f);
    const std::uint64_t chunk = 1ull << 27;  // 512 MiB per buffer pair at most
    Mismatch m = compare(fn, specials);
    std::size_t count = specials.size(), bad = m.count;
    Mismatch first = m;
    for (std::uint64_t start = 0; start < (1ull << 32); start += chunk * step) {
      std::vector<std::uint32_t> in;
      in.reserve(chunk);
      const std::uint32_t jitter = step > 1 ? static_cast<std::uint32_t>(rng() % step) : 0;
      for (std::uint64_t k = 0; k < chunk && start + k * step < (1ull << 32); ++k)
        in.push_back(static_cast<std::uint32_t>(start + k * step + jitter));
      while (in.size() % 32) in.push_back(0);
      const Mismatch mm = compare(fn, in);
      if (mm.count && bad == 0) first = mm;
      bad += mm.count;
      count += in.size();
    }
    std::printf("gpu numerics %-14s %-10s inputs %12zu  mismatches %zu\n", gpu::to_string(fn), what, count, bad);
    BOOST_CHECK_MESSAGE(bad == 0, gpu::to_string(fn) << ": " << bad << " host/device mismatches; first input 0x" << std::hex
                                                       << first.first_in << " device 0x" << first.first_dev << " host 0x" << first.first_host);
    total += count;
    mismatches += bad;
  }
  std::printf("gpu numerics total: %zu evaluations, %zu mismatches\n", total, mismatches);
}

}  // namespace

BOOST_AUTO_TEST_CASE(host_device_bit_equality) { run_all(32, "strided"); }

BOOST_AUTO_TEST_CASE(host_device_exhaustive, *boost::unit_test::label("long")) { run_all(1, "all 2^32"); }
