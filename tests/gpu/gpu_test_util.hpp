// Helpers shared by the gpu tests: device buffers, error checks, seeds.
#pragma once

#include "gpu/port.hpp"
#include "test_util.hpp"

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace dsv4::test {

#define DSV4_CUDA_REQUIRE(expr)                                                                \
  do {                                                                                         \
    const cudaError_t dsv4_e_ = (expr);                                                        \
    BOOST_REQUIRE_MESSAGE(dsv4_e_ == cudaSuccess, #expr << ": " << cudaGetErrorString(dsv4_e_)); \
  } while (0)

#define DSV4_STATUS_REQUIRE(expr)                                  \
  do {                                                             \
    const ::dsv4::Status dsv4_s_ = (expr);                         \
    BOOST_REQUIRE_MESSAGE(dsv4_s_.ok(), #expr << ": " << dsv4_s_.message); \
  } while (0)

/// SMs of the current device, queried once (launch parameters that size grids take it).
inline int device_sm_count() {
  static const int n = [] {
    int dev = 0, v = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev);
    return v;
  }();
  return n;
}

/// A device buffer of T (RAII), filled from / copied to host vectors.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n) { resize(n); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { if (p_) cudaFree(p_); }
  void resize(std::size_t n) {
    if (p_) cudaFree(p_);
    p_ = nullptr;
    n_ = n;
    if (n) DSV4_CUDA_REQUIRE(cudaMalloc(&p_, n * sizeof(T)));
  }
  void upload(const std::vector<T>& h) {
    if (h.size() != n_) resize(h.size());
    if (n_) DSV4_CUDA_REQUIRE(cudaMemcpy(p_, h.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> h(n_);
    if (n_) DSV4_CUDA_REQUIRE(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
  /// Fill every byte with `byte` (poison outputs before a launch). Synchronous: cudaMemset
  /// is asynchronous and runs on the legacy default stream, which a launch on a
  /// cudaStreamNonBlocking stream (the graph tests) does not wait for, so a late memset could
  /// overwrite the kernel's results.
  void fill_bytes(int byte) {
    if (!n_) return;
    DSV4_CUDA_REQUIRE(cudaMemset(p_, byte, n_ * sizeof(T)));
    DSV4_CUDA_REQUIRE(cudaDeviceSynchronize());
  }
  T* get() const { return p_; }
  std::size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

/// Seed for randomized tests: DSV4LAB_SEED replays one seed (test::seed with the gpu
/// suites' default).
inline std::uint64_t base_seed(std::uint64_t fallback = 20261121) { return seed(fallback); }

}  // namespace dsv4::test
