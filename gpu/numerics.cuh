// Device evaluation of every numerics-core function, for host/device bit-equality tests.
#pragma once

#include "gpu/port.hpp"

#include <cstddef>
#include <cstdint>

namespace dsv4::gpu {

/// Which function numerics_eval applies to each input bit pattern.
enum class NumFn : int {
  exp, exp2, log, log2, log1p,
  to_bf16,    ///< float -> bf16 bits (zero-extended into the output word)
  to_fp16,    ///< float -> fp16 bits
  to_bf16x2,  ///< port::bf16x2_canon(x, -x): x in the low half, -x in the high half
  from_bf16,  ///< low 16 bits of the input word as bf16 -> float bits
  from_fp16,  ///< low 16 bits of the input word as fp16 -> float bits
  fma_sq,     ///< fma(x, x, -x) (exercises fma's single rounding)
  butterfly_sum,  ///< xor-butterfly sum over each warp's 32 inputs (lane order)
  butterfly_max,  ///< xor-butterfly max_nan over each warp's 32 inputs
};
inline constexpr int kNumFnCount = 13;
const char* to_string(NumFn f);

/// Host reference of one element (for the warp functions: of the whole warp group,
/// evaluated on the host by the emulation in reference/numerics/warp.hpp).
std::uint32_t numerics_eval_host(NumFn fn, std::uint32_t x);

struct NumericsParams {
  const std::uint32_t* in;   // [n] input bit patterns
  std::uint32_t* out;        // [n] output bit patterns
  std::size_t n;             // a multiple of 32 for the butterfly functions
  NumFn fn;
};

/// Evaluate params.fn on every input on the device. No allocation, no sync.
Status numerics_eval(const NumericsParams& params, port::stream_t stream);

}  // namespace dsv4::gpu
