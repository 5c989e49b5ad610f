// Compressor oracle and bit-exact reference (see reference/compress.hpp for the contract).
#include "reference/compress.hpp"

#include "reference/parallel.hpp"
#include "reference/status.hpp"

#include <cmath>
#include <cstring>
#include <sstream>

namespace dsv4 {

const char* to_string(Dtype d) {
  switch (d) {
    case Dtype::f32: return "f32";
    case Dtype::bf16: return "bf16";
  }
  return "?";
}

std::size_t size_of(Dtype d) { return d == Dtype::bf16 ? 2 : 4; }

num::Schedule CompressConfig::schedule() const {
  num::Schedule s;
  s.warp_width = 32;  // a partition is 32 threads; the kernels use no shuffles
  s.threads = 32 * warps;
  s.vector_width = 2;
  s.warps_per_row = warps;
  s.merge = warps == 4 ? num::MergeOrder::warp0_in_order : num::MergeOrder::sequential;
  s.variant = compress_ratio == 4 ? "compress_cr4_overlap_nrw1"
              : warps == 4        ? "compress_cr128_nrw4"
                                  : "compress_cr128_nrw1";
  return s;
}

std::string CompressConfig::to_string() const {
  std::ostringstream o;
  o << "HD=" << head_dim << " CR=" << compress_ratio << " NN=" << tokens_per_step
    << " kv=" << dsv4::to_string(kv_dtype) << " state=" << dsv4::to_string(state_dtype)
    << " out=" << dsv4::to_string(out_dtype) << " NRW=" << warps << " page=" << page_size;
  return o.str();
}

namespace {

bool valid_dtype(Dtype d) { return d == Dtype::f32 || d == Dtype::bf16; }

void validate_config(const CompressConfig& c) {
  const std::string supported =
      "supported: HD in {128, 512}, CR in {4, 128}, NN in 1..8, kv/state/out dtype in {f32, bf16}, "
      "NRW 1 (any CR) or 4 (CR = 128), page_size a positive multiple of CR";
  auto fail = [&](Errc e, const std::string& what) {
    raise(e, "compressor config " + c.to_string() + ": " + what + " (" + supported + ")");
  };
  if (c.head_dim != 128 && c.head_dim != 512) fail(Errc::unsupported, "head_dim unsupported");
  if (c.compress_ratio != 4 && c.compress_ratio != 128) fail(Errc::unsupported, "compress_ratio unsupported");
  if (c.tokens_per_step < 1 || c.tokens_per_step > kCompressMaxTokensPerStep)
    fail(Errc::unsupported, "tokens_per_step out of range");
  if (!valid_dtype(c.kv_dtype)) fail(Errc::unsupported, "kv_dtype unsupported");
  if (!valid_dtype(c.state_dtype)) fail(Errc::unsupported, "state_dtype unsupported");
  if (!valid_dtype(c.out_dtype)) fail(Errc::unsupported, "out_dtype unsupported");
  if (c.warps != 1 && !(c.warps == 4 && c.compress_ratio == 128))
    fail(Errc::unsupported, "warps (NRW) unsupported for this compress_ratio");
  if (c.page_size <= 0 || c.page_size % c.compress_ratio != 0)
    fail(Errc::bad_input, "page_size " + std::to_string(c.page_size) + " is not a positive multiple of CR");
}

float load(const void* p, Dtype d, std::int64_t i) {
  if (d == Dtype::bf16) return num::bf16_to_float(static_cast<const std::uint16_t*>(p)[i]);
  return static_cast<const float*>(p)[i];
}

void store(void* p, Dtype d, std::int64_t i, float x) {
  if (d == Dtype::bf16)
    static_cast<std::uint16_t*>(p)[i] = num::float_to_bf16(x);
  else
    static_cast<float*>(p)[i] = x;
}

/// Per-request geometry of a call.
struct Request {
  std::int64_t row0 = 0;   // first kv_score row
  std::int64_t n = 0;      // tokens in this call
  std::int64_t len = 0;    // kv_len after the call
  std::int64_t start = 0;  // first new position
  std::int64_t first_window = 0;
  std::int64_t windows = 0;
};

Request request(const CompressConfig& c, const CompressStep& s, int b) {
  Request r;
  if (s.cu_seq_lens) {
    r.row0 = s.cu_seq_lens[b];
    r.n = static_cast<std::int64_t>(s.cu_seq_lens[b + 1]) - s.cu_seq_lens[b];
  } else {
    r.row0 = static_cast<std::int64_t>(b) * c.tokens_per_step;
    r.n = c.tokens_per_step;
  }
  r.len = s.kv_len[b];
  r.start = r.len - r.n;
  r.first_window = r.start / c.compress_ratio;
  r.windows = compress_windows(c.compress_ratio, r.len, r.n);
  return r;
}

/// Index of (position, column) of request b in state_kv / state_score.
std::int64_t state_index(const CompressConfig& c, const CompressState& st, int b, std::int64_t pos, int col) {
  const std::int64_t block = st.block_table[static_cast<std::int64_t>(b) * st.max_blocks + pos / c.page_size];
  return (block * c.page_size + pos % c.page_size) * c.state_dim() + col;
}

/// Store every new token of every request (the first half of a call).
void store_tokens(const CompressConfig& c, const CompressStep& s, const CompressState& st) {
  const int sd = c.state_dim();
  for (int b = 0; b < s.batch; ++b) {
    const Request r = request(c, s, b);
    for (std::int64_t t = 0; t < r.n; ++t) {
      const std::int64_t pos = r.start + t;
      const std::int64_t in = (r.row0 + t) * 2 * sd;
      const float* ape = s.ape + (pos % c.compress_ratio) * sd;
      for (int col = 0; col < sd; ++col) {
        const std::int64_t at = state_index(c, st, b, pos, col);
        store(st.state_kv, c.state_dtype, at, compress_math::round_to(c.state_dtype, load(s.kv_score, c.kv_dtype, in + col)));
        store(st.state_score, c.state_dtype, at,
              compress_math::stored_score(c.state_dtype, load(s.kv_score, c.kv_dtype, in + sd + col), ape[col]));
      }
    }
  }
}

/// A candidate (position, column) list of element d of window k, in reduction order.
/// Calls f(partition, position, column) for each; partitions are 0 unless NRW = 4.
template <class F>
void for_each_candidate(const CompressConfig& c, std::int64_t k, int d, F&& f) {
  if (c.compress_ratio == 4) {
    if (k >= 1)
      for (int i = 0; i < 4; ++i) f(0, 4 * k - 4 + i, d);
    for (int i = 0; i < 4; ++i) f(0, 4 * k + i, c.head_dim + d);
  } else {
    const int per = c.compress_ratio / c.warps;
    for (int w = 0; w < c.warps; ++w)
      for (int i = 0; i < per; ++i) f(w, c.compress_ratio * k + per * w + i, d);
  }
}

/// (request, window) pairs of a call, in output-row order.
struct WindowJob {
  int b;
  std::int64_t w;
};

std::vector<WindowJob> window_jobs(const CompressConfig& c, const CompressStep& s, std::int64_t& total) {
  std::vector<WindowJob> jobs;
  for (int b = 0; b < s.batch; ++b) {
    const Request r = request(c, s, b);
    for (std::int64_t w = 0; w < r.windows; ++w) jobs.push_back({b, w});
  }
  total = static_cast<std::int64_t>(jobs.size());
  return jobs;
}

CompressReport run_reference(const CompressConfig& c, const CompressStep& s, const CompressState& st, void* out,
                             std::uint8_t* empty) {
  compress_validate(c, s, st);
  if (!out && s.out_rows > 0) raise(Errc::bad_input, "compressor: out is null");
  store_tokens(c, s, st);

  CompressReport rep;
  rep.schedule = c.schedule();
  const auto jobs = window_jobs(c, s, rep.windows);
  if (jobs.empty()) return rep;
  if (!out) raise(Errc::bad_input, "compressor: out is null but windows are emitted");
  const int hd = c.head_dim;
  std::vector<int> empties(jobs.size(), 0);
  parallel_for(jobs.size(), [&](std::size_t lo, std::size_t hi) {
    for (std::size_t j = lo; j < hi; ++j) {
      const Request r = request(c, s, jobs[j].b);
      const std::int64_t k = r.first_window + jobs[j].w;
      const std::int64_t row = s.out_offsets[jobs[j].b] + jobs[j].w;
      for (int d = 0; d < hd; ++d) {
        compress_math::Acc part[4] = {compress_math::acc_init(), compress_math::acc_init(),
                                      compress_math::acc_init(), compress_math::acc_init()};
        for_each_candidate(c, k, d, [&](int w, std::int64_t pos, int col) {
          const std::int64_t at = state_index(c, st, jobs[j].b, pos, col);
          compress_math::step(part[w], load(st.state_score, c.state_dtype, at), load(st.state_kv, c.state_dtype, at));
        });
        for (int w = 1; w < c.warps; ++w) compress_math::fold(part[0], part[w]);
        const bool is_empty = compress_math::is_empty(part[0]);
        empties[j] += is_empty ? 1 : 0;
        store(out, c.out_dtype, row * hd + d, compress_math::finish(part[0]));
        if (empty) empty[row * hd + d] = is_empty ? 1 : 0;
      }
    }
  }, 4);
  for (std::size_t j = 0; j < jobs.size(); ++j) {
    if (empties[j] == 0) continue;
    const Request r = request(c, s, jobs[j].b);
    rep.empty.push_back({jobs[j].b, r.first_window + jobs[j].w, s.out_offsets[jobs[j].b] + jobs[j].w, empties[j]});
  }
  return rep;
}

}  // namespace

std::vector<std::int32_t> compress_output_offsets(const CompressConfig& config, int batch, const std::int32_t* kv_len,
                                                  const std::int32_t* cu_seq_lens) {
  if (batch < 0) raise(Errc::bad_input, "compress_output_offsets: batch < 0");
  if (batch > 0 && !kv_len) raise(Errc::bad_input, "compress_output_offsets: kv_len is null");
  if (config.compress_ratio <= 0) raise(Errc::bad_input, "compress_output_offsets: compress_ratio <= 0");
  std::vector<std::int32_t> off(static_cast<std::size_t>(batch) + 1, 0);
  for (int b = 0; b < batch; ++b) {
    const std::int64_t n = cu_seq_lens ? static_cast<std::int64_t>(cu_seq_lens[b + 1]) - cu_seq_lens[b]
                                       : config.tokens_per_step;
    if (kv_len[b] < n || n < 0)
      raise(Errc::bad_input, "compress_output_offsets: kv_len[" + std::to_string(b) + "] = " +
                                 std::to_string(kv_len[b]) + " is less than the request's " + std::to_string(n) +
                                 " new tokens");
    off[b + 1] = static_cast<std::int32_t>(off[b] + compress_windows(config.compress_ratio, kv_len[b], n));
  }
  return off;
}

void compress_validate(const CompressConfig& c, const CompressStep& s, const CompressState& st) {
  validate_config(c);
  const std::string who = "compressor: ";
  if (s.batch < 0) raise(Errc::bad_input, who + "batch < 0");
  if (s.batch == 0) return;
  if (!s.kv_len) raise(Errc::bad_input, who + "kv_len is null");
  if (!s.out_offsets) raise(Errc::bad_input, who + "out_offsets is null");
  if (!s.ape) raise(Errc::bad_input, who + "ape is null");
  if (!st.block_table) raise(Errc::bad_input, who + "block_table is null");
  if (st.max_blocks <= 0) raise(Errc::bad_input, who + "max_blocks <= 0");
  if (st.num_blocks <= 0) raise(Errc::bad_input, who + "num_blocks <= 0");
  if (!st.state_kv || !st.state_score) raise(Errc::bad_input, who + "state_kv or state_score is null");
  if (s.tokens < 0) raise(Errc::bad_input, who + "tokens < 0");
  if (s.tokens > 0 && !s.kv_score) raise(Errc::bad_input, who + "kv_score is null");
  if (s.cu_seq_lens) {
    if (s.cu_seq_lens[0] < 0) raise(Errc::bad_input, who + "cu_seq_lens[0] < 0");
    for (int b = 0; b < s.batch; ++b)
      if (s.cu_seq_lens[b + 1] < s.cu_seq_lens[b])
        raise(Errc::bad_input, who + "cu_seq_lens decreases at request " + std::to_string(b));
    if (s.cu_seq_lens[s.batch] > s.tokens)
      raise(Errc::bad_input, who + "cu_seq_lens[batch] = " + std::to_string(s.cu_seq_lens[s.batch]) +
                                 " exceeds the kv_score rows (tokens = " + std::to_string(s.tokens) + ")");
  } else if (static_cast<std::int64_t>(s.batch) * c.tokens_per_step > s.tokens) {
    raise(Errc::bad_input, who + "kv_score has " + std::to_string(s.tokens) + " rows, a decode step of batch " +
                               std::to_string(s.batch) + " x NN " + std::to_string(c.tokens_per_step) + " needs more");
  }
  if (s.out_offsets[0] < 0) raise(Errc::bad_input, who + "out_offsets[0] < 0");
  for (int b = 0; b < s.batch; ++b) {
    const std::string rb = "request " + std::to_string(b) + ": ";
    const Request r = request(c, s, b);
    if (r.len < r.n)
      raise(Errc::bad_input, who + rb + "kv_len[" + std::to_string(b) + "] = " + std::to_string(r.len) +
                                 " is less than the " + std::to_string(r.n) + " tokens of this step");
    if (s.out_offsets[b] + r.windows > s.out_offsets[b + 1])
      raise(Errc::bad_input, who + rb + "out_offsets[" + std::to_string(b + 1) + "] - out_offsets[" +
                                 std::to_string(b) + "] is smaller than its " + std::to_string(r.windows) +
                                 " emitted windows");
    // Pages touched: stores [start, len) and candidates from the first window's first position.
    std::int64_t lo = r.start;
    if (r.windows > 0) {
      const std::int64_t first_pos = r.first_window * c.compress_ratio - (c.compress_ratio == 4 && r.first_window > 0 ? 4 : 0);
      lo = std::min(lo, first_pos);
    }
    if (r.len == 0) continue;
    const std::int64_t last_page = (r.len - 1) / c.page_size;
    if (last_page >= st.max_blocks)
      raise(Errc::bad_input, who + rb + "kv_len " + std::to_string(r.len) + " needs page " + std::to_string(last_page) +
                                 " but block_table has max_blocks = " + std::to_string(st.max_blocks));
    for (std::int64_t page = lo / c.page_size; page <= last_page; ++page) {
      const std::int32_t id = st.block_table[static_cast<std::int64_t>(b) * st.max_blocks + page];
      if (id < 0 || id >= st.num_blocks)
        raise(Errc::bad_input, who + rb + "block_table[" + std::to_string(b) + "][" + std::to_string(page) + "] = " +
                                   std::to_string(id) + " is outside [0, num_blocks = " +
                                   std::to_string(st.num_blocks) + ")");
    }
  }
  if (s.out_offsets[s.batch] > s.out_rows)
    raise(Errc::bad_input, who + "out_offsets[batch] = " + std::to_string(s.out_offsets[s.batch]) +
                               " exceeds out_rows = " + std::to_string(s.out_rows));
}

CompressReport compress_decode_reference(const CompressConfig& config, const CompressStep& step,
                                         const CompressState& state, void* out, std::uint8_t* empty) {
  if (step.cu_seq_lens)
    raise(Errc::bad_input, "compress_decode_reference: cu_seq_lens must be null (use compress_prefill_reference)");
  return run_reference(config, step, state, out, empty);
}

CompressReport compress_prefill_reference(const CompressConfig& config, const CompressStep& step,
                                          const CompressState& state, void* out, std::uint8_t* empty) {
  if (!step.cu_seq_lens && step.batch > 0)
    raise(Errc::bad_input, "compress_prefill_reference: cu_seq_lens is null");
  return run_reference(config, step, state, out, empty);
}

CompressReport compress_oracle(const CompressConfig& c, const CompressStep& s, const CompressState& st, double* out) {
  compress_validate(c, s, st);
  store_tokens(c, s, st);
  CompressReport rep;
  rep.schedule = c.schedule();
  rep.schedule.variant = "oracle_float64";
  const auto jobs = window_jobs(c, s, rep.windows);
  if (jobs.empty()) return rep;
  if (!out) raise(Errc::bad_input, "compress_oracle: out is null but windows are emitted");
  const int hd = c.head_dim;
  std::vector<int> empties(jobs.size(), 0);
  parallel_for(jobs.size(), [&](std::size_t lo, std::size_t hi) {
    std::vector<double> sc, val;
    for (std::size_t j = lo; j < hi; ++j) {
      const Request r = request(c, s, jobs[j].b);
      const std::int64_t k = r.first_window + jobs[j].w;
      const std::int64_t row = s.out_offsets[jobs[j].b] + jobs[j].w;
      for (int d = 0; d < hd; ++d) {
        sc.clear();
        val.clear();
        for_each_candidate(c, k, d, [&](int, std::int64_t pos, int col) {
          const std::int64_t at = state_index(c, st, jobs[j].b, pos, col);
          sc.push_back(load(st.state_score, c.state_dtype, at));
          val.push_back(load(st.state_kv, c.state_dtype, at));
        });
        double m = -INFINITY;
        bool bad = false;
        for (double x : sc) {
          if (std::isnan(x) || x == INFINITY) bad = true;
          if (x > m) m = x;
        }
        double o = 0.0;
        if (bad) {
          o = NAN;
        } else if (m == -INFINITY) {
          ++empties[j];
        } else {
          double l = 0.0, a = 0.0;
          for (std::size_t i = 0; i < sc.size(); ++i) {
            // weight 0 for a -inf score; 0 * v still turns a NaN / inf value into NaN, as the
            // recurrence's fma(a, c, v * t) does.
            const double w = sc[i] == -INFINITY ? 0.0 : std::exp(sc[i] - m);
            l += w;
            a += w * val[i];
          }
          o = a / l;
        }
        out[row * hd + d] = o;
      }
    }
  }, 4);
  for (std::size_t j = 0; j < jobs.size(); ++j) {
    if (empties[j] == 0) continue;
    const Request r = request(c, s, jobs[j].b);
    rep.empty.push_back({jobs[j].b, r.first_window + jobs[j].w, s.out_offsets[jobs[j].b] + jobs[j].w, empties[j]});
  }
  return rep;
}

CompressStateBuffer::CompressStateBuffer(const CompressConfig& config, int batch, int blocks_per_request,
                                         std::vector<std::int32_t> block_ids) {
  if (batch < 0 || blocks_per_request <= 0)
    raise(Errc::bad_input, "CompressStateBuffer: batch < 0 or blocks_per_request <= 0");
  max_blocks_ = blocks_per_request;
  const std::size_t entries = static_cast<std::size_t>(batch) * blocks_per_request;
  num_blocks_ = std::max<std::int64_t>(1, static_cast<std::int64_t>(entries));
  if (block_ids.empty()) {
    block_ids.resize(entries);
    for (std::size_t i = 0; i < entries; ++i) block_ids[i] = static_cast<std::int32_t>(i);
  } else if (block_ids.size() != entries) {
    raise(Errc::bad_input, "CompressStateBuffer: block_ids must have batch * blocks_per_request entries");
  } else {
    for (std::int32_t id : block_ids) num_blocks_ = std::max<std::int64_t>(num_blocks_, std::int64_t{id} + 1);
  }
  table_ = std::move(block_ids);
  const std::size_t bytes = static_cast<std::size_t>(num_blocks_) * config.page_size * config.state_dim() *
                            size_of(config.state_dtype);
  kv_.assign(bytes, 0);
  score_.assign(bytes, 0);
}

CompressState CompressStateBuffer::view() {
  CompressState s;
  s.state_kv = kv_.data();
  s.state_score = score_.data();
  s.block_table = table_.data();
  s.num_blocks = num_blocks_;
  s.max_blocks = max_blocks_;
  return s;
}

}  // namespace dsv4
