// CUDA / HIP portability layer. Kernels and launchers include this instead of
// cuda_runtime.h or hip_runtime.h, and use the names below.
#pragma once

#include "reference/numerics/numerics.hpp"
#include "reference/status.hpp"

#include <string>

#if defined(__HIPCC__)
#include <hip/hip_runtime.h>
#define DSV4_GPU_HIP 1
#else
#include <cooperative_groups.h>
#include <cuda_runtime.h>
#define DSV4_GPU_HIP 0
#endif

// Warp width of the device pass (a compile-time constant): 32 on NVIDIA, the
// wavefront size (64 on gfx90a) on AMD.
#if DSV4_GPU_HIP && defined(__AMDGCN_WAVEFRONT_SIZE)
#define DSV4_WARP_SIZE __AMDGCN_WAVEFRONT_SIZE
#elif DSV4_GPU_HIP
#define DSV4_WARP_SIZE 64
#else
#define DSV4_WARP_SIZE 32
#endif

namespace dsv4::port {

#if DSV4_GPU_HIP
using stream_t = hipStream_t;
using error_t = hipError_t;
using graph_t = hipGraph_t;
using graph_exec_t = hipGraphExec_t;
inline constexpr error_t kSuccess = hipSuccess;
inline const char* error_string(error_t e) { return hipGetErrorString(e); }
inline error_t last_error() { return hipGetLastError(); }
inline error_t peek_error() { return hipPeekAtLastError(); }
#else
using stream_t = cudaStream_t;
using error_t = cudaError_t;
using graph_t = cudaGraph_t;
using graph_exec_t = cudaGraphExec_t;
inline constexpr error_t kSuccess = cudaSuccess;
inline const char* error_string(error_t e) { return cudaGetErrorString(e); }
inline error_t last_error() { return cudaGetLastError(); }
inline error_t peek_error() { return cudaPeekAtLastError(); }
#endif

inline constexpr int kWarpSize = DSV4_WARP_SIZE;

/// Most blocks of one thread-block cluster a kernel may use (blocks that run together and read
/// each other's shared memory): 8, the portable cluster size of sm_90; 1 under HIP (no clusters).
inline constexpr int kMaxClusterBlocks = DSV4_GPU_HIP ? 1 : 8;

/// Status of the launch that just happened (configuration errors are reported at once;
/// execution errors surface at the next synchronisation).
inline Status launch_status(const char* kernel) {
  const error_t e = last_error();
  if (e == kSuccess) return Status::success();
  return make_status(Errc::device, std::string(kernel) + ": launch failed: " + error_string(e));
}

/// Let `kernel` take `bytes` of dynamic shared memory per block (past the default 48 KB; no
/// device query, allowed while a stream is captured).
template <class Kernel>
inline error_t allow_dynamic_smem(Kernel* kernel, std::size_t bytes) {
#if DSV4_GPU_HIP
  return hipFuncSetAttribute(reinterpret_cast<const void*>(kernel), hipFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(bytes));
#else
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
#endif
}

/// Turn a runtime API result into a Status naming what was called.
inline Status api_status(error_t e, const char* what) {
  if (e == kSuccess) return Status::success();
  return make_status(Errc::device, std::string(what) + ": " + error_string(e));
}

#if defined(__CUDACC__) || defined(__HIPCC__)
/// Value of `v` held by lane (this lane ^ mask).
template <class T>
__device__ __forceinline__ T shfl_xor(T v, int mask) {
#if DSV4_GPU_HIP
  return __shfl_xor(v, mask);
#else
  return __shfl_xor_sync(0xffffffffu, v, mask);
#endif
}

/// Value of `v` held by lane `src`.
template <class T>
__device__ __forceinline__ T shfl(T v, int src) {
#if DSV4_GPU_HIP
  return __shfl(v, src);
#else
  return __shfl_sync(0xffffffffu, v, src);
#endif
}

/// Value of `v` held by lane (this lane - delta); lanes below delta get their own.
template <class T>
__device__ __forceinline__ T shfl_up(T v, unsigned delta) {
#if DSV4_GPU_HIP
  return __shfl_up(v, delta);
#else
  return __shfl_up_sync(0xffffffffu, v, delta);
#endif
}

/// xor butterfly over the whole warp: lane i takes op(v_i, v_{i^offset}) for offset
/// = W/2 ... 1; the same order reference/numerics/warp.hpp emulates.
template <class T, class Op>
__device__ __forceinline__ T warp_butterfly(T v, Op op) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset >= 1; offset /= 2) v = op(v, shfl_xor(v, offset));
  return v;
}

__device__ __forceinline__ unsigned lane_id() { return threadIdx.x % kWarpSize; }

/// Sum of v over the (fully active) warp, every lane gets it: one instruction from sm_80 on.
__device__ __forceinline__ unsigned warp_sum(unsigned v) {
#if !DSV4_GPU_HIP && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  return __reduce_add_sync(0xffffffffu, v);
#else
  return warp_butterfly(v, [](unsigned a, unsigned b) { return a + b; });
#endif
}

/// Bit i set when lane i of the (fully active) warp has `pred` true; 64-bit on both sides.
__device__ __forceinline__ unsigned long long ballot(bool pred) {
#if DSV4_GPU_HIP
  return static_cast<unsigned long long>(__ballot(pred));
#else
  return static_cast<unsigned long long>(__ballot_sync(0xffffffffu, pred));
#endif
}

/// bf16 bits of lo (low half) and hi (high half), each rounded to nearest even: num::float_to_bf16
/// of each for every non-NaN float (a NaN's result is the conversion's own; bf16x2_canon makes
/// it canonical). One conversion instruction for the pair from sm_80 on.
__host__ __device__ __forceinline__ std::uint32_t bf16x2_rn(float lo, float hi) {
#if !DSV4_GPU_HIP && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  std::uint32_t w;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(w) : "f"(hi), "f"(lo));  // first operand -> high half
  return w;
#else
  return num::float_to_bf16(lo) | (std::uint32_t{num::float_to_bf16(hi)} << 16);
#endif
}

/// bf16x2_rn with every NaN made the canonical quiet NaN 0x7fc0: num::float_to_bf16 of each,
/// NaN canonical.
__host__ __device__ __forceinline__ std::uint32_t bf16x2_canon(float lo, float hi) {
  std::uint32_t w = bf16x2_rn(lo, hi);
  if (num::is_nan(lo)) w = (w & 0xffff0000u) | 0x7fc0u;
  if (num::is_nan(hi)) w = (w & 0x0000ffffu) | 0x7fc00000u;
  return w;
}

// Thread-block clusters (sm_90). A kernel launched without a cluster is a cluster of one block,
// and so is every block under HIP or before sm_90: rank 0 of 1, and the barriers below reduce
// to the block barrier.
#if !DSV4_GPU_HIP && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define DSV4_GPU_CLUSTERS 1
#else
#define DSV4_GPU_CLUSTERS 0
#endif

// Per-thread asynchronous copies from global into shared memory (sm_80's cp.async): a thread
// copies 4, 8 or 16 bytes without holding registers, commits its copies in groups, and waits
// until at most N of its groups are still in flight; what it copied is then visible to it.
// DSV4_GPU_ASYNC is 0 under HIP and before sm_80, where callers load through registers.
#if !DSV4_GPU_HIP && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define DSV4_GPU_ASYNC 1
/// The shared-memory address of a generic pointer into shared memory.
__device__ __forceinline__ unsigned smem_addr(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

template <int Bytes>
__device__ __forceinline__ void copy_async(void* dst, const void* src) {
  static_assert(Bytes == 4 || Bytes == 8 || Bytes == 16);
  asm volatile("cp.async.ca.shared.global [%0], [%1], %2;" ::"r"(smem_addr(dst)), "l"(src), "n"(Bytes) : "memory");
}
__device__ __forceinline__ void commit_async() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wait_async() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}
#else
#define DSV4_GPU_ASYNC 0
#endif

// Bulk copies from global into shared memory (sm_90's copy engine): one thread starts them,
// one instruction per contiguous range and no registers held, and every thread of the block
// may wait for them. DSV4_GPU_BULK is 0 under HIP and before sm_90, where callers load
// through registers instead.
#if !DSV4_GPU_HIP && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define DSV4_GPU_BULK 1
/// The barrier the copies complete on (one use per launch: phase 0).
struct BulkBarrier {
  unsigned long long word;
};

/// Set `b` up for copies of `bytes` in all (called once, by the thread that then issues them;
/// the other threads see it after a block barrier).
__device__ __forceinline__ void bulk_begin(BulkBarrier& b, unsigned bytes) {
  const unsigned a = smem_addr(&b);
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(a) : "memory");
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  asm volatile("{ .reg .b64 st; mbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1; }" ::"r"(a), "r"(bytes)
               : "memory");
}

/// Copy `bytes` (a multiple of 16; both addresses 16-byte aligned) from `src` to `dst`.
__device__ __forceinline__ void bulk_copy(void* dst, const void* src, unsigned bytes, BulkBarrier& b) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                   smem_addr(dst)),
               "l"(src), "r"(bytes), "r"(smem_addr(&b))
               : "memory");
}

/// Wait until every copy on `b` has landed; its bytes are then visible to this thread.
__device__ __forceinline__ void bulk_wait(BulkBarrier& b) {
  const unsigned a = smem_addr(&b);
  unsigned done = 0;
  do {
    asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0; selp.u32 %0, 1, 0, p; }"
                 : "=r"(done)
                 : "r"(a)
                 : "memory");
  } while (!done);
}

#else
#define DSV4_GPU_BULK 0
#endif

#if DSV4_GPU_CLUSTERS
__device__ __forceinline__ unsigned cluster_blocks() { return cooperative_groups::this_cluster().num_blocks(); }
__device__ __forceinline__ unsigned cluster_rank() { return cooperative_groups::this_cluster().block_rank(); }

/// Barrier of every thread of the cluster; shared-memory writes before it are visible to
/// every block of the cluster after it.
__device__ __forceinline__ void cluster_sync() { cooperative_groups::this_cluster().sync(); }

/// The same barrier split in two: every thread arrives once (release), and later waits for
/// all the cluster's threads to have arrived (acquire); other work may run in between.
__device__ __forceinline__ void cluster_arrive() { __cluster_barrier_arrive(); }
__device__ __forceinline__ void cluster_wait() { __cluster_barrier_wait(); }

/// Adds v to the shared-memory counter `p` (an address in this block's shared memory) of
/// cluster block `rank`, without waiting for it (visible to that block after a cluster barrier).
__device__ __forceinline__ void cluster_add(unsigned* p, unsigned rank, unsigned v) {
  const unsigned local = static_cast<unsigned>(__cvta_generic_to_shared(p));
  unsigned remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(local), "r"(rank));
  asm volatile("red.shared::cluster.add.u32 [%0], %1;" ::"r"(remote), "r"(v) : "memory");
}

/// The address of `p` (this block's shared memory) in the shared memory of cluster block `rank`.
template <class T>
__device__ __forceinline__ T* cluster_map(T* p, unsigned rank) {
  return cooperative_groups::this_cluster().map_shared_rank(p, rank);
}
#else  // one block: rank 0 of 1
__device__ __forceinline__ unsigned cluster_blocks() { return 1; }
__device__ __forceinline__ unsigned cluster_rank() { return 0; }
__device__ __forceinline__ void cluster_sync() { __syncthreads(); }
__device__ __forceinline__ void cluster_arrive() {}
__device__ __forceinline__ void cluster_wait() {}
__device__ __forceinline__ void cluster_add(unsigned* p, unsigned, unsigned v) { atomicAdd(p, v); }
template <class T>
__device__ __forceinline__ T* cluster_map(T* p, unsigned) { return p; }
#endif
#endif

}  // namespace dsv4::port
