#include "gpu/numerics.cuh"

namespace dsv4::gpu {

const char* to_string(NumFn f) {
  switch (f) {
    case NumFn::exp: return "exp";
    case NumFn::exp2: return "exp2";
    case NumFn::log: return "log";
    case NumFn::log2: return "log2";
    case NumFn::log1p: return "log1p";
    case NumFn::to_bf16: return "to_bf16";
    case NumFn::to_fp16: return "to_fp16";
    case NumFn::to_bf16x2: return "to_bf16x2";
    case NumFn::from_bf16: return "from_bf16";
    case NumFn::from_fp16: return "from_fp16";
    case NumFn::fma_sq: return "fma_sq";
    case NumFn::butterfly_sum: return "butterfly_sum";
    case NumFn::butterfly_max: return "butterfly_max";
  }
  return "?";
}

namespace {

DSV4_HD std::uint32_t eval_scalar(NumFn fn, std::uint32_t u) {
  const float x = num::from_bits(u);
  switch (fn) {
    case NumFn::exp: return num::bits(num::exp(x));
    case NumFn::exp2: return num::bits(num::exp2(x));
    case NumFn::log: return num::bits(num::log(x));
    case NumFn::log2: return num::bits(num::log2(x));
    case NumFn::log1p: return num::bits(num::log1p(x));
    case NumFn::to_bf16: return num::float_to_bf16(x);
    case NumFn::to_fp16: return num::float_to_fp16(x);
    case NumFn::to_bf16x2: return port::bf16x2_canon(x, -x);  // the host runs its integer form
    case NumFn::from_bf16: return num::bits(num::bf16_to_float(static_cast<std::uint16_t>(u)));
    case NumFn::from_fp16: return num::bits(num::fp16_to_float(static_cast<std::uint16_t>(u)));
    case NumFn::fma_sq: return num::bits(num::fma(x, x, -x));
    default: return 0;
  }
}

// Grid: 1-D, one thread per input (grid-stride loop); for the butterfly functions the
// trip count is rounded so every lane of a warp takes part in each shuffle.
__global__ void numerics_kernel(NumericsParams p) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  const bool warp_fn = p.fn == NumFn::butterfly_sum || p.fn == NumFn::butterfly_max;
  // n is a multiple of the warp size for the warp functions and the stride is a multiple
  // of the block size, so all lanes of a warp enter and leave the loop together.
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n;
       i += stride) {
    if (warp_fn) {
      const float v = num::from_bits(p.in[i]);
      const float r = p.fn == NumFn::butterfly_sum
                          ? port::warp_butterfly(v, [](float a, float b) { return a + b; })
                          : port::warp_butterfly(v, [](float a, float b) { return num::max_nan(a, b); });
      p.out[i] = num::bits(r);
    } else {
      p.out[i] = eval_scalar(p.fn, p.in[i]);
    }
  }
}

}  // namespace

std::uint32_t numerics_eval_host(NumFn fn, std::uint32_t x) { return eval_scalar(fn, x); }

Status numerics_eval(const NumericsParams& p, port::stream_t stream) {
  if (p.n == 0) return Status::success();
  if (!p.in || !p.out) return make_status(Errc::bad_input, "numerics_eval: null pointer");
  if ((p.fn == NumFn::butterfly_sum || p.fn == NumFn::butterfly_max) && p.n % port::kWarpSize != 0)
    return make_status(Errc::bad_input, "numerics_eval: n must be a multiple of the warp size for butterfly functions");
  const int threads = 256;
  const std::size_t blocks_needed = (p.n + threads - 1) / threads;
  const unsigned blocks = static_cast<unsigned>(blocks_needed < 65536 ? blocks_needed : 65536);
  numerics_kernel<<<blocks, threads, 0, stream>>>(p);
  return port::launch_status("numerics_kernel");
}

}  // namespace dsv4::gpu
