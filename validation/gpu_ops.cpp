#include "validation/gpu_ops.hpp"

#include "reference/status.hpp"

#if defined(DSV4LAB_HAVE_CUDA)
#include "gpu/compress.cuh"
#include "gpu/lse_merge.cuh"
#include "gpu/topk.cuh"

#include <cuda_runtime.h>

#include <algorithm>
#include <functional>
#include <map>
#endif

namespace dsv4::validation {

#if defined(DSV4LAB_HAVE_CUDA)

namespace {

void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) raise(Errc::device, std::string(what) + ": " + cudaGetErrorString(e));
}

}  // namespace

GpuInfo gpu_probe() {
  GpuInfo g;
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    g.why = e != cudaSuccess ? std::string("no CUDA device (") + cudaGetErrorString(e) + ")" : "no CUDA device";
    cudaGetLastError();
    return g;
  }
  int dev = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    g.why = "cannot query the CUDA device";
    cudaGetLastError();
    return g;
  }
  g.available = true;
  g.name = prop.name;
  g.sm_count = prop.multiProcessorCount;
  return g;
}

struct GpuRunner::Impl {
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  int sm_count = 0;
  struct Buf {
    void* p = nullptr;
    std::size_t bytes = 0;
  };
  std::map<std::string, Buf> bufs;

  void* get(const std::string& name, std::size_t bytes) {
    Buf& b = bufs[name];
    if (b.bytes < bytes) {
      if (b.p) cuda_check(cudaFree(b.p), "cudaFree");
      b.p = nullptr;
      b.bytes = 0;
      cuda_check(cudaMalloc(&b.p, bytes), ("cudaMalloc " + name).c_str());
      b.bytes = bytes;
    }
    return b.bytes ? b.p : nullptr;
  }
  void* upload(const std::string& name, const void* host, std::size_t bytes) {
    if (!host || bytes == 0) return nullptr;
    void* d = get(name, bytes);
    cuda_check(cudaMemcpyAsync(d, host, bytes, cudaMemcpyHostToDevice, stream), ("upload " + name).c_str());
    return d;
  }
  double timed(bool measure, const std::function<Status()>& launch) {
    if (measure) cuda_check(cudaEventRecord(start, stream), "cudaEventRecord");
    check(launch());
    if (measure) cuda_check(cudaEventRecord(stop, stream), "cudaEventRecord");
    cuda_check(cudaStreamSynchronize(stream), "kernel execution");
    float ms = 0;
    if (measure) cuda_check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    return static_cast<double>(ms) * 1000.0;
  }
};

GpuRunner::GpuRunner() : impl_(std::make_unique<Impl>()) {
  const GpuInfo g = gpu_probe();
  if (!g.available) raise(Errc::device, "GPU replay: " + g.why);
  impl_->sm_count = g.sm_count;
  cuda_check(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking), "cudaStreamCreate");
  cuda_check(cudaEventCreate(&impl_->start), "cudaEventCreate");
  cuda_check(cudaEventCreate(&impl_->stop), "cudaEventCreate");
}

GpuRunner::~GpuRunner() {
  if (!impl_) return;
  for (auto& [name, b] : impl_->bufs)
    if (b.p) cudaFree(b.p);
  if (impl_->start) cudaEventDestroy(impl_->start);
  if (impl_->stop) cudaEventDestroy(impl_->stop);
  if (impl_->stream) cudaStreamDestroy(impl_->stream);
}

double GpuRunner::topk(const TopkProblem& p, std::int32_t* out, bool measure) {
  topk_validate(p);
  Impl& m = *impl_;
  gpu::TopkParams q;
  const std::size_t logit_bytes =
      static_cast<std::size_t>(p.rows > 0 ? (p.rows - 1) * p.row_stride + p.cols : 0) * element_bytes(p.dtype);
  q.logits = m.upload("topk.logits", p.logits, logit_bytes);
  q.dtype = p.dtype;
  q.rows = p.rows;
  q.cols = p.cols;
  q.row_stride = p.row_stride;
  q.seq_lens = static_cast<const std::int32_t*>(
      m.upload("topk.seq_lens", p.seq_lens, static_cast<std::size_t>(p.batch) * sizeof(std::int32_t)));
  q.batch = p.batch;
  q.next_n = p.next_n;
  q.compress_ratio = p.compress_ratio;
  q.k = p.k;
  const std::size_t out_bytes = static_cast<std::size_t>(p.rows) * static_cast<std::size_t>(p.k) * sizeof(std::int32_t);
  q.out = static_cast<std::int32_t*>(m.get("topk.out", std::max<std::size_t>(out_bytes, 4)));
  q.blocks_per_row = 0;
  q.sm_count = m.sm_count;
  const std::size_t ws_bytes = gpu::topk_workspace_bytes(p.rows, p.cols, p.k, 0);
  void* ws = ws_bytes ? m.get("topk.workspace", ws_bytes) : nullptr;
  const double us = m.timed(measure, [&] { return gpu::topk_launch(q, ws, ws_bytes, m.stream); });
  if (out_bytes) cuda_check(cudaMemcpy(out, q.out, out_bytes, cudaMemcpyDeviceToHost), "download top-k");
  return us;
}

double GpuRunner::merge(const MergeProblem& p, void* v_out, float* lse_out, bool measure) {
  merge_validate(p);
  Impl& m = *impl_;
  const bool packed = p.split_offsets != nullptr;
  const std::size_t rows_in = static_cast<std::size_t>(packed ? p.splits * p.heads : p.splits * p.tokens * p.heads);
  const std::size_t eb = vdtype_bytes(p.v_dtype);
  MergeProblem d = p;
  d.v_partial = m.upload("merge.v_partial", p.v_partial, rows_in * static_cast<std::size_t>(p.D) * eb);
  d.lse_partial = static_cast<const float*>(m.upload("merge.lse_partial", p.lse_partial, rows_in * sizeof(float)));
  d.num_splits = static_cast<const std::int32_t*>(
      m.upload("merge.num_splits", p.num_splits, static_cast<std::size_t>(p.tokens) * sizeof(std::int32_t)));
  d.split_offsets = static_cast<const std::int32_t*>(m.upload(
      "merge.split_offsets", p.split_offsets, static_cast<std::size_t>(p.tokens + 1) * sizeof(std::int32_t)));
  d.sink = static_cast<const float*>(
      m.upload("merge.sink", p.sink, static_cast<std::size_t>(p.heads) * sizeof(float)));
  const std::size_t rows_out = static_cast<std::size_t>(p.tokens * p.heads);
  const std::size_t v_bytes = rows_out * static_cast<std::size_t>(p.D) * eb;
  void* dv = m.get("merge.v_out", std::max<std::size_t>(v_bytes, 16));
  float* dl = static_cast<float*>(m.get("merge.lse_out", std::max<std::size_t>(rows_out * sizeof(float), 4)));
  gpu::MergeParams q = gpu::make_merge_params(d, dv, dl);
  q.sm_count = m.sm_count;
  const std::size_t ws_bytes = gpu::merge_workspace_bytes(q);
  void* ws = ws_bytes ? m.get("merge.workspace", ws_bytes) : nullptr;
  const double us = m.timed(measure, [&] { return gpu::merge_launch(q, ws, ws_bytes, m.stream); });
  if (v_bytes) cuda_check(cudaMemcpy(v_out, dv, v_bytes, cudaMemcpyDeviceToHost), "download merged v");
  if (lse_out && rows_out)
    cuda_check(cudaMemcpy(lse_out, dl, rows_out * sizeof(float), cudaMemcpyDeviceToHost), "download merged lse");
  return us;
}

bool GpuRunner::compress_supported(const CompressConfig& config) { return gpu::compress_gpu_supports(config); }

double GpuRunner::compress_decode(const CompressConfig& cfg, const CompressStep& step, const CompressState& state,
                                  void* out, bool measure) {
  compress_validate(cfg, step, state);
  Impl& m = *impl_;
  const std::size_t sd = static_cast<std::size_t>(cfg.state_dim());
  const std::size_t state_bytes =
      static_cast<std::size_t>(state.num_blocks) * static_cast<std::size_t>(cfg.page_size) * sd * size_of(cfg.state_dtype);
  gpu::CompressDecodeParams q;
  q.config = cfg;
  q.batch = step.batch;
  q.kv_score = m.upload("compress.kv_score", step.kv_score,
                        static_cast<std::size_t>(step.tokens) * 2 * sd * size_of(cfg.kv_dtype));
  q.ape = static_cast<const float*>(
      m.upload("compress.ape", step.ape, static_cast<std::size_t>(cfg.compress_ratio) * sd * sizeof(float)));
  const std::size_t b = static_cast<std::size_t>(step.batch);
  q.kv_len = static_cast<const std::int32_t*>(m.upload("compress.kv_len", step.kv_len, b * sizeof(std::int32_t)));
  q.out_offsets = static_cast<const std::int32_t*>(
      m.upload("compress.out_offsets", step.out_offsets, (b + 1) * sizeof(std::int32_t)));
  const std::size_t out_bytes = static_cast<std::size_t>(step.out_rows) * static_cast<std::size_t>(cfg.head_dim) *
                                size_of(cfg.out_dtype);
  q.out = m.get("compress.out", std::max<std::size_t>(out_bytes, 16));
  q.state = state;
  q.state.state_kv = m.upload("compress.state_kv", state.state_kv, state_bytes);
  q.state.state_score = m.upload("compress.state_score", state.state_score, state_bytes);
  q.state.block_table = static_cast<const std::int32_t*>(m.upload(
      "compress.block_table", state.block_table, b * static_cast<std::size_t>(state.max_blocks) * sizeof(std::int32_t)));
  const double us = m.timed(measure, [&] { return gpu::compress_decode_launch(q, m.stream); });
  if (out_bytes) cuda_check(cudaMemcpy(out, q.out, out_bytes, cudaMemcpyDeviceToHost), "download compressor output");
  cuda_check(cudaMemcpy(state.state_kv, q.state.state_kv, state_bytes, cudaMemcpyDeviceToHost), "download state_kv");
  cuda_check(cudaMemcpy(state.state_score, q.state.state_score, state_bytes, cudaMemcpyDeviceToHost),
             "download state_score");
  return us;
}

#else  // no CUDA

GpuInfo gpu_probe() {
  GpuInfo g;
  g.why = "dsv4lab was built without CUDA";
  return g;
}

struct GpuRunner::Impl {};

GpuRunner::GpuRunner() { raise(Errc::unsupported, "GPU replay: dsv4lab was built without CUDA"); }
GpuRunner::~GpuRunner() = default;
double GpuRunner::topk(const TopkProblem&, std::int32_t*, bool) {
  raise(Errc::unsupported, "GPU replay: dsv4lab was built without CUDA");
}
double GpuRunner::merge(const MergeProblem&, void*, float*, bool) {
  raise(Errc::unsupported, "GPU replay: dsv4lab was built without CUDA");
}
bool GpuRunner::compress_supported(const CompressConfig&) { return false; }
double GpuRunner::compress_decode(const CompressConfig&, const CompressStep&, const CompressState&, void*, bool) {
  raise(Errc::unsupported, "GPU replay: dsv4lab was built without CUDA");
}

#endif

}  // namespace dsv4::validation
