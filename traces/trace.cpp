// Trace types and the streaming reader (format: traces/SCHEMA.md).
#include "traces/trace.hpp"

#include "traces/trace_internal.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace dsv4::trace {

// ---- small types -----------------------------------------------------------------------------

const char* to_string(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::bf16: return "bfloat16";
    case DType::f16: return "float16";
    case DType::i32: return "int32";
    case DType::i64: return "int64";
  }
  return "?";
}

std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32:
    case DType::i32: return 4;
    case DType::bf16:
    case DType::f16: return 2;
    case DType::i64: return 8;
  }
  return 4;
}

DType parse_dtype(const std::string& s, const std::string& what) {
  if (s == "float32" || s == "f32" || s == "fp32") return DType::f32;
  if (s == "bfloat16" || s == "bf16") return DType::bf16;
  if (s == "float16" || s == "f16" || s == "fp16") return DType::f16;
  if (s == "int32" || s == "i32") return DType::i32;
  if (s == "int64" || s == "i64") return DType::i64;
  raise(Errc::bad_input, what + ": unknown dtype '" + s + "' (supported: float32, bfloat16, float16, int32, int64)");
}

const char* to_string(GroupKind k) {
  switch (k) {
    case GroupKind::indexer: return "indexer";
    case GroupKind::merge: return "merge";
    case GroupKind::compressor: return "compressor";
  }
  return "?";
}

Array::Array(DType t, std::vector<std::uint64_t> shape_) : dtype(t), shape(std::move(shape_)) {
  storage_.assign((bytes() + 7) / 8, 0);
}

std::uint64_t Array::size() const {
  std::uint64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

namespace {
template <class T>
bool type_matches(DType t) {
  if constexpr (std::is_same_v<std::remove_const_t<T>, float>) return t == DType::f32;
  if constexpr (std::is_same_v<std::remove_const_t<T>, std::uint16_t>) return t == DType::bf16 || t == DType::f16;
  if constexpr (std::is_same_v<std::remove_const_t<T>, std::int32_t>) return t == DType::i32;
  if constexpr (std::is_same_v<std::remove_const_t<T>, std::int64_t>) return t == DType::i64;
  return false;
}
}  // namespace

template <class T>
std::span<T> Array::view() {
  if (!type_matches<T>(dtype)) raise(Errc::internal, std::string("Array::view: element type does not match dtype ") + to_string(dtype));
  return {reinterpret_cast<T*>(storage_.data()), static_cast<std::size_t>(size())};
}
template <class T>
std::span<const T> Array::view() const {
  if (!type_matches<T>(dtype)) raise(Errc::internal, std::string("Array::view: element type does not match dtype ") + to_string(dtype));
  return {reinterpret_cast<const T*>(storage_.data()), static_cast<std::size_t>(size())};
}
template std::span<float> Array::view<float>();
template std::span<std::uint16_t> Array::view<std::uint16_t>();
template std::span<std::int32_t> Array::view<std::int32_t>();
template std::span<std::int64_t> Array::view<std::int64_t>();
template std::span<const float> Array::view<float>() const;
template std::span<const std::uint16_t> Array::view<std::uint16_t>() const;
template std::span<const std::int32_t> Array::view<std::int32_t>() const;
template std::span<const std::int64_t> Array::view<std::int64_t>() const;

std::string to_string(const AttrValue& v) {
  auto num = [](double d) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.9g", d);
    return std::string(buf);
  };
  if (const auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&v)) return num(*d);
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  std::string out = "[";
  if (const auto* vi = std::get_if<std::vector<std::int64_t>>(&v)) {
    for (std::size_t i = 0; i < vi->size(); ++i) out += (i ? ", " : "") + std::to_string((*vi)[i]);
  } else if (const auto* vd = std::get_if<std::vector<double>>(&v)) {
    for (std::size_t i = 0; i < vd->size(); ++i) out += (i ? ", " : "") + num((*vd)[i]);
  }
  return out + "]";
}

std::int64_t indexer_row_len(const IndexerConfig& c, std::int32_t seq_len, std::uint64_t row) {
  const std::int64_t nn = c.next_n;
  const std::int64_t kv = static_cast<std::int64_t>(seq_len) - nn + static_cast<std::int64_t>(row % static_cast<std::uint64_t>(nn)) + 1;
  // floor division (kv may be negative for bad data)
  const std::int64_t cr = c.compress_ratio;
  return kv >= 0 ? kv / cr : -((-kv + cr - 1) / cr);
}

std::int64_t compressor_state_base(const CompressorConfig& c, std::int64_t kv_len) {
  const std::int64_t cr = c.compress_ratio;
  const std::int64_t first = (kv_len - c.next_n) / cr - (c.overlap() ? 1 : 0);
  return cr * std::max<std::int64_t>(0, first);
}

const h5::Handle& detail::GroupState::dataset(const std::string& name) const {
  auto it = datasets.find(name);
  if (it == datasets.end()) raise(Errc::internal, where(name).str() + ": dataset not open");
  return it->second;
}

// ---- reader: validation ------------------------------------------------------------------------

namespace {

using detail::FileState;
using detail::GroupState;

std::string dims_str(const std::vector<std::uint64_t>& d) {
  std::string s = "[";
  for (std::size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

// Largest step we read (bytes); a writer cannot exceed it (one step = one HDF5 chunk < 4 GiB).
constexpr std::uint64_t kMaxStepBytes = std::uint64_t{1} << 32;

class GroupChecker {
 public:
  explicit GroupChecker(GroupState& g) : g_(g) {}

  std::int64_t int_attr(const std::string& name, std::int64_t lo, std::int64_t hi) const {
    auto it = g_.info.attrs.find(name);
    if (it == g_.info.attrs.end()) raise(Errc::bad_input, g_.where().str() + ": missing attribute '" + name + "'");
    const auto* v = std::get_if<std::int64_t>(&it->second);
    if (v == nullptr) raise(Errc::bad_input, g_.where().str() + ": attribute '" + name + "' must be an integer");
    if (*v < lo || *v > hi)
      raise(Errc::bad_input, g_.where().str() + ": attribute '" + name + "' = " + std::to_string(*v) + " outside [" +
                                 std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return *v;
  }

  std::optional<std::string> str_attr(const std::string& name, bool required) const {
    auto it = g_.info.attrs.find(name);
    if (it == g_.info.attrs.end()) {
      if (required) raise(Errc::bad_input, g_.where().str() + ": missing attribute '" + name + "'");
      return std::nullopt;
    }
    const auto* v = std::get_if<std::string>(&it->second);
    if (v == nullptr) raise(Errc::bad_input, g_.where().str() + ": attribute '" + name + "' must be a string");
    return *v;
  }

  bool has(const std::string& name) const { return find(name) != nullptr; }

  const DatasetInfo* find(const std::string& name) const {
    for (const auto& d : g_.info.datasets)
      if (d.name == name) return &d;
    return nullptr;
  }

  /// Requires dataset `name` with one of `dtypes` and shape `expect` (0 entries = any, filled in).
  /// Returns the full shape. `step_major` adds the step axis check against the group's steps.
  std::vector<std::uint64_t> require(const std::string& name, std::initializer_list<DType> dtypes,
                                     std::vector<std::uint64_t> expect, bool step_major = true) {
    const DatasetInfo* d = find(name);
    if (d == nullptr) raise(Errc::bad_input, g_.where(name).str() + ": missing dataset");
    if (std::find(dtypes.begin(), dtypes.end(), d->dtype) == dtypes.end()) {
      std::string allowed;
      for (auto t : dtypes) allowed += (allowed.empty() ? "" : " or ") + std::string(to_string(t));
      raise(Errc::bad_input, g_.where(name).str() + ": wrong dtype " + to_string(d->dtype) + " (expected " + allowed + ")");
    }
    if (step_major) expect.insert(expect.begin(), 0);
    bool ok = d->shape.size() == expect.size();
    for (std::size_t i = 0; ok && i < expect.size(); ++i) {
      if (step_major && i == 0) continue;
      if (expect[i] != 0 && d->shape[i] != expect[i]) ok = false;
    }
    if (!ok) {
      std::string e = "[";
      for (std::size_t i = 0; i < expect.size(); ++i)
        e += (i ? ", " : "") + (step_major && i == 0 ? std::string("steps") : expect[i] ? std::to_string(expect[i]) : std::string("*"));
      raise(Errc::bad_input, g_.where(name).str() + ": wrong shape " + dims_str(d->shape) + " (expected " + e + "])");
    }
    if (step_major) {
      if (!steps_set_) {
        g_.info.steps = d->shape[0];
        steps_set_ = true;
      } else if (d->shape[0] != g_.info.steps) {
        raise(Errc::bad_input, g_.where(name).str() + ": " + std::to_string(d->shape[0]) + " steps, other datasets have " +
                                   std::to_string(g_.info.steps));
      }
      std::uint64_t bytes = dtype_size(d->dtype);
      for (std::size_t i = 1; i < d->shape.size(); ++i) {
        if (d->shape[i] == 0) raise(Errc::bad_input, g_.where(name).str() + ": empty dimension in shape " + dims_str(d->shape));
        if (bytes > kMaxStepBytes / d->shape[i]) raise(Errc::bad_input, g_.where(name).str() + ": one step exceeds 4 GiB");
        bytes *= d->shape[i];
      }
    } else {
      std::uint64_t bytes = dtype_size(d->dtype);
      for (auto x : d->shape) {
        if (x != 0 && bytes > kMaxStepBytes / x) raise(Errc::bad_input, g_.where(name).str() + ": dataset exceeds 4 GiB");
        bytes *= x;
      }
    }
    h5::Handle ds = h5::open_dataset(g_.group, name, g_.where(name));
    g_.datasets[name] = std::move(ds);
    g_.dims[name] = d->shape;
    return d->shape;
  }

  DType dtype_of(const std::string& name) const { return find(name)->dtype; }

 private:
  GroupState& g_;
  bool steps_set_ = false;
};

IndexerConfig validate_indexer(GroupState& g) {
  GroupChecker c(g);
  IndexerConfig cfg;
  cfg.k = static_cast<int>(c.int_attr("k", 1, 1 << 20));
  cfg.compress_ratio = static_cast<int>(c.int_attr("compress_ratio", 1, 1 << 16));
  cfg.next_n = static_cast<int>(c.int_attr("next_n", 1, 1 << 10));
  const auto ld = c.require("logits", {DType::f32, DType::bf16, DType::f16}, {0, 0});
  cfg.logit_dtype = c.dtype_of("logits");
  const std::uint64_t rows = ld[1];
  cfg.cols = ld[2];
  if (rows % static_cast<std::uint64_t>(cfg.next_n) != 0)
    raise(Errc::bad_input, g.where("logits").str() + ": rows " + std::to_string(rows) + " not a multiple of next_n " +
                               std::to_string(cfg.next_n));
  cfg.batch = rows / static_cast<std::uint64_t>(cfg.next_n);
  c.require("seq_lens", {DType::i32}, {cfg.batch});
  cfg.has_pre_idx = c.has("pre_idx");
  if (cfg.has_pre_idx) c.require("pre_idx", {DType::i32}, {cfg.batch, static_cast<std::uint64_t>(cfg.k)});
  cfg.has_topk = c.has("topk");
  if (cfg.has_topk) c.require("topk", {DType::i32}, {rows, static_cast<std::uint64_t>(cfg.k)});
  for (const auto& [k, v] : g.info.attrs)
    if (k != "k" && k != "compress_ratio" && k != "next_n") cfg.extra.emplace(k, v);
  return cfg;
}

MergeConfig validate_merge(GroupState& g) {
  GroupChecker c(g);
  MergeConfig cfg;
  const auto base = c.str_attr("lse_base", true);
  if (*base != "e") raise(Errc::bad_input, g.where().str() + ": lse_base must be \"e\" (natural log), found '" + *base + "'");
  cfg.lse_base = *base;
  const auto vd = c.require("v_partial", {DType::f32, DType::bf16}, {0, 0, 0, 0});
  cfg.v_dtype = c.dtype_of("v_partial");
  cfg.splits = vd[1];
  cfg.tokens = vd[2];
  cfg.heads = vd[3];
  cfg.head_dim = vd[4];
  c.require("lse_partial", {DType::f32}, {cfg.splits, cfg.tokens, cfg.heads});
  if (auto sc = c.str_attr("scopes", false)) {
    std::stringstream ss(*sc);
    for (std::string item; std::getline(ss, item, ',');) cfg.scopes.push_back(item);
    if (cfg.scopes.size() != cfg.splits)
      raise(Errc::bad_input, g.where().str() + ": attribute 'scopes' names " + std::to_string(cfg.scopes.size()) +
                                 " inputs but v_partial has " + std::to_string(cfg.splits) + " splits");
  }
  cfg.has_num_splits = c.has("num_splits");
  if (cfg.has_num_splits) c.require("num_splits", {DType::i32}, {cfg.tokens});
  if (c.has("sink")) {
    c.require("sink", {DType::f32}, {cfg.heads}, false);
    std::vector<float> s(cfg.heads);
    h5::read_all(g.dataset("sink"), DType::f32, s.data(), g.where("sink"));
    cfg.sink = std::move(s);
  }
  cfg.has_v = c.has("v");
  if (cfg.has_v) c.require("v", {DType::f32, DType::bf16}, {cfg.tokens, cfg.heads, cfg.head_dim});
  cfg.has_lse = c.has("lse");
  if (cfg.has_lse) c.require("lse", {DType::f32}, {cfg.tokens, cfg.heads});
  for (const auto& [k, v] : g.info.attrs)
    if (k != "lse_base" && k != "scopes") cfg.extra.emplace(k, v);
  return cfg;
}

CompressorConfig validate_compressor(GroupState& g) {
  GroupChecker c(g);
  CompressorConfig cfg;
  cfg.head_dim = static_cast<int>(c.int_attr("head_dim", 1, 1 << 14));
  cfg.compress_ratio = static_cast<int>(c.int_attr("compress_ratio", 1, 1 << 16));
  if (cfg.compress_ratio != 4 && cfg.compress_ratio != 128)
    raise(Errc::bad_input, g.where().str() + ": compress_ratio " + std::to_string(cfg.compress_ratio) + " (supported: 4, 128)");
  cfg.next_n = static_cast<int>(c.int_attr("next_n", 1, 1 << 10));
  auto fdt = [&](const std::string& name) {
    const DType t = parse_dtype(*c.str_attr(name, true), g.where().str() + "@" + name);
    if (t != DType::f32 && t != DType::bf16)
      raise(Errc::bad_input, g.where().str() + ": attribute '" + name + "' must be float32 or bfloat16");
    return t;
  };
  cfg.kv_dtype = fdt("kv_dtype");
  cfg.state_dtype = fdt("state_dtype");
  cfg.out_dtype = fdt("out_dtype");
  const auto sd = static_cast<std::uint64_t>(cfg.state_dim());
  const auto w = static_cast<std::uint64_t>(cfg.state_window());
  c.require("ape", {DType::f32}, {static_cast<std::uint64_t>(cfg.compress_ratio), sd}, false);
  cfg.ape.resize(static_cast<std::size_t>(cfg.compress_ratio) * sd);
  h5::read_all(g.dataset("ape"), DType::f32, cfg.ape.data(), g.where("ape"));
  const auto kd = c.require("kv_score", {cfg.kv_dtype}, {0, 2 * sd});
  const std::uint64_t tokens = kd[1];
  if (tokens % static_cast<std::uint64_t>(cfg.next_n) != 0)
    raise(Errc::bad_input, g.where("kv_score").str() + ": tokens " + std::to_string(tokens) + " not a multiple of next_n");
  cfg.batch = tokens / static_cast<std::uint64_t>(cfg.next_n);
  c.require("kv_len", {DType::i32}, {cfg.batch});
  c.require("state_base", {DType::i32}, {cfg.batch});
  c.require("state_kv", {cfg.state_dtype}, {cfg.batch, w, sd});
  c.require("state_score", {cfg.state_dtype}, {cfg.batch, w, sd});
  cfg.has_out = c.has("out");
  if (cfg.has_out)
    c.require("out", {cfg.out_dtype},
              {cfg.batch, static_cast<std::uint64_t>(cfg.max_outputs()), static_cast<std::uint64_t>(cfg.head_dim)});
  const bool nk = c.has("new_state_kv"), ns = c.has("new_state_score");
  if (nk != ns) raise(Errc::bad_input, g.where().str() + ": new_state_kv and new_state_score must both be present or both absent");
  cfg.has_new_state = nk;
  if (nk) {
    c.require("new_state_kv", {cfg.state_dtype}, {tokens, sd});
    c.require("new_state_score", {cfg.state_dtype}, {tokens, sd});
  }
  static const char* known[] = {"head_dim", "compress_ratio", "next_n", "kv_dtype", "state_dtype", "out_dtype"};
  for (const auto& [k, v] : g.info.attrs)
    if (std::find(std::begin(known), std::end(known), k) == std::end(known)) cfg.extra.emplace(k, v);
  return cfg;
}

/// Reads step s of dataset `name` into a fresh array of the dataset's dtype.
Array read_array(const GroupState& g, const std::string& name, std::uint64_t s) {
  const auto& dims = g.dims.at(name);
  const DatasetInfo* info = nullptr;
  for (const auto& d : g.info.datasets)
    if (d.name == name) info = &d;
  Array a(info->dtype, std::vector<std::uint64_t>(dims.begin() + 1, dims.end()));
  h5::read_step(g.dataset(name), a.dtype, dims, s, a.data(), g.where(name));
  return a;
}

template <class T>
std::vector<T> read_vec(const GroupState& g, const std::string& name, std::uint64_t s) {
  const Array a = read_array(g, name, s);
  auto v = a.view<T>();
  return std::vector<T>(v.begin(), v.end());
}

void check_step(const GroupState& g, std::uint64_t s) {
  if (s >= g.info.steps)
    raise(Errc::bad_input, g.where().str() + ": step " + std::to_string(s) + " out of range (" + std::to_string(g.info.steps) + " steps)");
}

void check_indices(const GroupState& g, const std::string& name, std::uint64_t s, const std::vector<std::int32_t>& v,
                   std::uint64_t cols, std::uint64_t width) {
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] < -1 || static_cast<std::int64_t>(v[i]) >= static_cast<std::int64_t>(cols))
      raise(Errc::bad_input, g.where(name).str() + ": step " + std::to_string(s) + " row " + std::to_string(i / width) +
                                 ": index " + std::to_string(v[i]) + " outside [-1, " + std::to_string(cols) + ")");
  }
}

}  // namespace

// ---- group readers ---------------------------------------------------------------------------------

const GroupInfo& IndexerGroup::info() const { return g_->info; }
std::uint64_t IndexerGroup::steps() const { return g_->info.steps; }

std::vector<std::int32_t> IndexerGroup::read_seq_lens(std::uint64_t s) const {
  check_step(*g_, s);
  std::vector<std::int32_t> lens = read_vec<std::int32_t>(*g_, "seq_lens", s);
  for (std::uint64_t r = 0; r < cfg_.rows(); ++r) {
    const std::int32_t sl = lens[r / static_cast<std::uint64_t>(cfg_.next_n)];
    const std::int64_t n = indexer_row_len(cfg_, sl, r);
    if (n < 0 || n > static_cast<std::int64_t>(cfg_.cols))
      raise(Errc::bad_input, g_->where("seq_lens").str() + ": step " + std::to_string(s) + " row " + std::to_string(r) +
                                 ": seq_len " + std::to_string(sl) + " implies " + std::to_string(n) + " columns, logits store " +
                                 std::to_string(cfg_.cols));
  }
  return lens;
}

IndexerStep IndexerGroup::read_step(std::uint64_t s) const {
  IndexerStep st;
  st.seq_lens = read_seq_lens(s);
  st.logits = read_array(*g_, "logits", s);
  if (cfg_.has_pre_idx) {
    st.pre_idx = read_vec<std::int32_t>(*g_, "pre_idx", s);
    check_indices(*g_, "pre_idx", s, *st.pre_idx, cfg_.cols, static_cast<std::uint64_t>(cfg_.k));
  }
  if (cfg_.has_topk) {
    st.topk = read_vec<std::int32_t>(*g_, "topk", s);
    check_indices(*g_, "topk", s, *st.topk, cfg_.cols, static_cast<std::uint64_t>(cfg_.k));
  }
  return st;
}

const GroupInfo& MergeGroup::info() const { return g_->info; }
std::uint64_t MergeGroup::steps() const { return g_->info.steps; }

MergeStep MergeGroup::read_step(std::uint64_t s) const {
  check_step(*g_, s);
  MergeStep st;
  st.v_partial = read_array(*g_, "v_partial", s);
  st.lse_partial = read_vec<float>(*g_, "lse_partial", s);
  if (cfg_.has_num_splits) {
    st.num_splits = read_vec<std::int32_t>(*g_, "num_splits", s);
    for (std::size_t t = 0; t < st.num_splits->size(); ++t) {
      const auto n = (*st.num_splits)[t];
      if (n < 0 || static_cast<std::uint64_t>(n) > cfg_.splits)
        raise(Errc::bad_input, g_->where("num_splits").str() + ": step " + std::to_string(s) + " token " + std::to_string(t) +
                                   ": " + std::to_string(n) + " outside [0, " + std::to_string(cfg_.splits) + "]");
    }
  }
  if (cfg_.has_v) st.v = read_array(*g_, "v", s);
  if (cfg_.has_lse) st.lse = read_vec<float>(*g_, "lse", s);
  return st;
}

const GroupInfo& CompressorGroup::info() const { return g_->info; }
std::uint64_t CompressorGroup::steps() const { return g_->info.steps; }

std::vector<std::int32_t> CompressorGroup::read_kv_len(std::uint64_t s) const {
  check_step(*g_, s);
  std::vector<std::int32_t> kv_len = read_vec<std::int32_t>(*g_, "kv_len", s);
  const std::vector<std::int32_t> base = read_vec<std::int32_t>(*g_, "state_base", s);
  for (std::size_t b = 0; b < kv_len.size(); ++b) {
    if (kv_len[b] < cfg_.next_n)
      raise(Errc::bad_input, g_->where("kv_len").str() + ": step " + std::to_string(s) + " request " + std::to_string(b) +
                                 ": kv_len " + std::to_string(kv_len[b]) + " < next_n " + std::to_string(cfg_.next_n));
    const std::int64_t want = compressor_state_base(cfg_, kv_len[b]);
    if (base[b] != want)
      raise(Errc::bad_input, g_->where("state_base").str() + ": step " + std::to_string(s) + " request " + std::to_string(b) +
                                 ": " + std::to_string(base[b]) + ", expected " + std::to_string(want) + " for kv_len " +
                                 std::to_string(kv_len[b]));
  }
  return kv_len;
}

CompressorStep CompressorGroup::read_step(std::uint64_t s) const {
  CompressorStep st;
  st.kv_len = read_kv_len(s);
  st.state_base.resize(st.kv_len.size());
  for (std::size_t b = 0; b < st.kv_len.size(); ++b)
    st.state_base[b] = static_cast<std::int32_t>(compressor_state_base(cfg_, st.kv_len[b]));
  st.kv_score = read_array(*g_, "kv_score", s);
  st.state_kv = read_array(*g_, "state_kv", s);
  st.state_score = read_array(*g_, "state_score", s);
  if (cfg_.has_out) st.out = read_array(*g_, "out", s);
  if (cfg_.has_new_state) {
    st.new_state_kv = read_array(*g_, "new_state_kv", s);
    st.new_state_score = read_array(*g_, "new_state_score", s);
  }
  return st;
}

// ---- TraceReader ------------------------------------------------------------------------------------

namespace {

struct Loaded {
  Provenance prov;
  std::vector<GroupInfo> groups;
};

Loaded load(const std::shared_ptr<FileState>& f) {
  Loaded out;
  h5::Handle root = h5::open_group(f->file, "/", f->where("/"));
  Attributes attrs = h5::read_attrs(root, f->where("/"));
  auto str = [&](const std::string& k, bool required) -> std::string {
    auto it = attrs.find(k);
    if (it == attrs.end()) {
      if (required) raise(Errc::bad_input, f->path + ": missing root attribute '" + k + "' (not a dsv4lab trace?)");
      return {};
    }
    const auto* s = std::get_if<std::string>(&it->second);
    if (s == nullptr) raise(Errc::bad_input, f->path + ": root attribute '" + k + "' must be a string");
    return *s;
  };
  const std::string format = str("format", true);
  if (format != kFormatName) raise(Errc::bad_input, f->path + ": format is '" + format + "', expected '" + kFormatName + "'");
  auto it = attrs.find("format_version");
  if (it == attrs.end()) raise(Errc::bad_input, f->path + ": missing root attribute 'format_version'");
  const auto* ver = std::get_if<std::int64_t>(&it->second);
  if (ver == nullptr) raise(Errc::bad_input, f->path + ": root attribute 'format_version' must be an integer");
  if (*ver > kFormatVersion)
    raise(Errc::bad_input, f->path + ": format_version " + std::to_string(*ver) + " is newer than this reader (" +
                               std::to_string(kFormatVersion) + "); upgrade dsv4lab");
  if (*ver < 1) raise(Errc::bad_input, f->path + ": bad format_version " + std::to_string(*ver));
  out.prov.format_version = static_cast<int>(*ver);
  out.prov.producer = str("producer", true);
  out.prov.model = str("model", true);
  out.prov.notes = str("notes", false);
  if (auto s = attrs.find("seed"); s != attrs.end()) {
    const auto* v = std::get_if<std::int64_t>(&s->second);
    if (v == nullptr) raise(Errc::bad_input, f->path + ": root attribute 'seed' must be an integer");
    out.prov.seed = *v;
  }
  for (const auto& [k, v] : attrs)
    if (k != "format" && k != "format_version" && k != "producer" && k != "model" && k != "notes" && k != "seed")
      out.prov.extra.emplace(k, v);

  for (GroupKind kind : {GroupKind::indexer, GroupKind::merge, GroupKind::compressor}) {
    const std::string top = to_string(kind);
    if (!h5::exists(root, top, f->where("/"))) continue;
    h5::Handle tg = h5::open_group(root, top, f->where("/" + top));
    for (const auto& name : h5::children(tg, true, f->where("/" + top))) {
      GroupInfo gi;
      gi.kind = kind;
      gi.name = name;
      gi.path = "/" + top + "/" + name;
      h5::Handle g = h5::open_group(tg, name, f->where(gi.path));
      gi.attrs = h5::read_attrs(g, f->where(gi.path));
      for (const auto& dn : h5::children(g, false, f->where(gi.path))) {
        const h5::Where dw = f->where(gi.path + "/" + dn);
        h5::Handle ds = h5::open_dataset(g, dn, dw);
        DatasetInfo di;
        di.name = dn;
        const auto shape = h5::describe_dataset(ds, dw);
        di.dtype = shape.dtype;
        di.shape = shape.dims;
        di.chunk = shape.chunk;
        di.filters = shape.filters;
        di.attrs = h5::read_attrs(ds, dw);
        gi.datasets.push_back(std::move(di));
      }
      out.groups.push_back(std::move(gi));
    }
  }
  return out;
}

std::shared_ptr<GroupState> group_state(const std::shared_ptr<FileState>& f, const GroupInfo& info) {
  auto g = std::make_shared<GroupState>();
  g->f = f;
  g->info = info;
  g->group = h5::open_group(f->file, info.path, f->where(info.path));
  return g;
}

}  // namespace

TraceReader::TraceReader(const std::string& path, ReadMode mode) {
  f_ = std::make_shared<FileState>();
  f_->path = path;
  f_->file = h5::open_file(path);
  init(mode);
}

TraceReader::TraceReader(std::span<const std::byte> image, const std::string& name, ReadMode mode) {
  f_ = std::make_shared<FileState>();
  f_->path = name;
  f_->file = h5::open_image(image, name);
  init(mode);
}

void TraceReader::init(ReadMode mode) {
  Loaded l = load(f_);
  prov_ = std::move(l.prov);
  groups_ = std::move(l.groups);
  for (auto& gi : groups_) {
    if (mode == ReadMode::outputs) {
      for (const auto& d : gi.datasets)
        if (!d.shape.empty()) gi.steps = std::max(gi.steps, d.shape[0]);
      continue;
    }
    // Validate every group's layout up front so a bad file fails at open.
    auto g = group_state(f_, gi);
    switch (gi.kind) {
      case GroupKind::indexer: validate_indexer(*g); break;
      case GroupKind::merge: validate_merge(*g); break;
      case GroupKind::compressor: validate_compressor(*g); break;
    }
    gi.steps = g->info.steps;
  }
  // The small per-step length datasets are checked at open too (one step at a time), so
  // lengths that imply more columns than stored fail before any replay starts.
  for (const auto& gi : groups_) {
    if (mode == ReadMode::outputs) break;
    if (gi.kind == GroupKind::indexer) {
      const auto g = indexer(gi.name);
      for (std::uint64_t s = 0; s < g.steps(); ++s) (void)g.read_seq_lens(s);
    } else if (gi.kind == GroupKind::compressor) {
      const auto g = compressor(gi.name);
      for (std::uint64_t s = 0; s < g.steps(); ++s) (void)g.read_kv_len(s);
    }
  }
}

Array TraceReader::read_dataset_step(const GroupInfo& group, const std::string& dataset, std::uint64_t s) const {
  auto g = group_state(f_, group);
  const DatasetInfo* info = nullptr;
  for (const auto& d : group.datasets)
    if (d.name == dataset) info = &d;
  if (info == nullptr) raise(Errc::bad_input, g->where(dataset).str() + ": missing dataset");
  if (info->shape.empty()) raise(Errc::bad_input, g->where(dataset).str() + ": not step-major (scalar)");
  if (s >= info->shape[0])
    raise(Errc::bad_input, g->where(dataset).str() + ": step " + std::to_string(s) + " out of range (" +
                               std::to_string(info->shape[0]) + " steps)");
  std::uint64_t bytes = dtype_size(info->dtype);
  for (std::size_t i = 1; i < info->shape.size(); ++i) {
    if (info->shape[i] != 0 && bytes > kMaxStepBytes / info->shape[i]) raise(Errc::bad_input, g->where(dataset).str() + ": one step exceeds 4 GiB");
    bytes *= info->shape[i];
  }
  h5::Handle ds = h5::open_dataset(g->group, dataset, g->where(dataset));
  Array a(info->dtype, std::vector<std::uint64_t>(info->shape.begin() + 1, info->shape.end()));
  h5::read_step(ds, a.dtype, info->shape, s, a.data(), g->where(dataset));
  return a;
}

TraceReader::~TraceReader() = default;
TraceReader::TraceReader(TraceReader&&) noexcept = default;
TraceReader& TraceReader::operator=(TraceReader&&) noexcept = default;

const std::string& TraceReader::path() const { return f_->path; }

std::vector<GroupInfo> TraceReader::groups(GroupKind kind) const {
  std::vector<GroupInfo> out;
  for (const auto& g : groups_)
    if (g.kind == kind) out.push_back(g);
  return out;
}

const GroupInfo* TraceReader::find(GroupKind kind, const std::string& name) const {
  for (const auto& g : groups_)
    if (g.kind == kind && g.name == name) return &g;
  return nullptr;
}

namespace {
const GroupInfo& require_group(const TraceReader& r, GroupKind kind, const std::string& name) {
  const GroupInfo* g = r.find(kind, name);
  if (g == nullptr) {
    std::string have;
    for (const auto& x : r.groups(kind)) have += (have.empty() ? "" : ", ") + x.name;
    raise(Errc::bad_input, r.path() + ": no group /" + to_string(kind) + "/" + name + " (present: " +
                               (have.empty() ? "none" : have) + ")");
  }
  return *g;
}
}  // namespace

IndexerGroup TraceReader::indexer(const std::string& name) const {
  IndexerGroup out;
  out.g_ = group_state(f_, require_group(*this, GroupKind::indexer, name));
  out.cfg_ = validate_indexer(*out.g_);
  return out;
}

MergeGroup TraceReader::merge(const std::string& name) const {
  MergeGroup out;
  out.g_ = group_state(f_, require_group(*this, GroupKind::merge, name));
  out.cfg_ = validate_merge(*out.g_);
  return out;
}

CompressorGroup TraceReader::compressor(const std::string& name) const {
  CompressorGroup out;
  out.g_ = group_state(f_, require_group(*this, GroupKind::compressor, name));
  out.cfg_ = validate_compressor(*out.g_);
  return out;
}

}  // namespace dsv4::trace
