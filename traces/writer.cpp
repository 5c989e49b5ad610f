// Trace writer (format: traces/SCHEMA.md). Deterministic output: no timestamps, fixed
// library version bounds, attributes and datasets created in a fixed order.
#include "traces/trace.hpp"

#include "traces/trace_internal.hpp"

#include <algorithm>
#include <sstream>

namespace dsv4::trace {

using detail::FileState;
using detail::GroupState;

namespace {

std::string dims_str(const std::vector<std::uint64_t>& d) {
  std::string s = "[";
  for (std::size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

void require_open(const std::shared_ptr<FileState>& f) {
  if (!f || !f->file.valid()) raise(Errc::internal, "trace writer used after close()");
}

void check_name(const std::string& name, const std::string& what) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    raise(Errc::bad_input, what + ": bad group name '" + name + "' (non-empty, no '/')");
}

}  // namespace

// ---- StepDataset ------------------------------------------------------------------------------

void StepDataset::append_raw(const void* p, DType t, std::uint64_t elements) {
  if (!g_) raise(Errc::internal, "StepDataset used before creation");
  require_open(g_->f);
  const auto w = g_->where(name_);
  if (t != dtype_) raise(Errc::bad_input, w.str() + ": appending " + to_string(t) + " to a " + to_string(dtype_) + " dataset");
  std::uint64_t n = 1;
  for (auto d : shape_) n *= d;
  if (elements != n)
    raise(Errc::bad_input, w.str() + ": step " + std::to_string(steps_) + " has " + std::to_string(elements) +
                               " elements, expected " + dims_str(shape_));
  h5::append_step(g_->dataset(name_), dtype_, shape_, steps_, p, w);
  ++steps_;
}

void StepDataset::append(const Array& a) {
  if (g_ && a.shape != shape_)
    raise(Errc::bad_input, g_->where(name_).str() + ": step " + std::to_string(steps_) + " has shape " + dims_str(a.shape) +
                               ", expected " + dims_str(shape_));
  append_raw(a.data(), a.dtype, a.size());
}

void StepDataset::append(std::span<const std::int32_t> v) { append_raw(v.data(), DType::i32, v.size()); }
void StepDataset::append(std::span<const float> v) { append_raw(v.data(), DType::f32, v.size()); }

// ---- TraceWriter --------------------------------------------------------------------------------

TraceWriter::TraceWriter(const std::string& path, const Provenance& prov, WriteOptions opts) : opts_(opts) {
  f_ = std::make_shared<FileState>();
  f_->path = path;
  f_->writable = true;
  f_->file = h5::create_file(path);
  h5::Handle root = h5::open_group(f_->file, "/", f_->where("/"));
  const auto w = f_->where("/");
  h5::write_attr(root, "format", std::string(kFormatName), w);
  h5::write_attr(root, "format_version", std::int64_t{prov.format_version}, w);
  h5::write_attr(root, "producer", prov.producer, w);
  h5::write_attr(root, "model", prov.model, w);
  if (prov.seed) h5::write_attr(root, "seed", *prov.seed, w);
  if (!prov.notes.empty()) h5::write_attr(root, "notes", prov.notes, w);
  for (const auto& [k, v] : prov.extra) h5::write_attr(root, k, v, w);
}

TraceWriter::~TraceWriter() {
  try {
    close();
  } catch (...) {
  }
}

TraceWriter::TraceWriter(TraceWriter&&) noexcept = default;
TraceWriter& TraceWriter::operator=(TraceWriter&&) noexcept = default;

const std::string& TraceWriter::path() const { return f_->path; }

void TraceWriter::close() {
  if (!f_ || !f_->file.valid()) return;
  h5::flush(f_->file, f_->where("/"));
  if (H5Fclose(f_->file.release()) < 0) h5::fail(Errc::io, f_->where("/"), "close failed");
}

namespace {

std::shared_ptr<GroupState> make_group(const std::shared_ptr<FileState>& f, GroupKind kind, const std::string& name,
                                       bool must_be_new) {
  require_open(f);
  const std::string top = to_string(kind);
  h5::Handle root = h5::open_group(f->file, "/", f->where("/"));
  h5::Handle tg = h5::open_or_create_group(root, top, f->where("/" + top));
  auto g = std::make_shared<GroupState>();
  g->f = f;
  g->info.kind = kind;
  g->info.name = name;
  g->info.path = "/" + top + "/" + name;
  if (h5::exists(tg, name, f->where(g->info.path))) {
    if (must_be_new) raise(Errc::bad_input, f->where(g->info.path).str() + ": group already exists");
    g->group = h5::open_group(tg, name, f->where(g->info.path));
  } else {
    g->group = h5::create_group(tg, name, f->where(g->info.path));
  }
  return g;
}

void put(const std::shared_ptr<GroupState>& g, const std::string& k, const AttrValue& v) {
  h5::write_attr(g->group, k, v, g->where());
}

// Planted coordinates are rows of fixed width (SCHEMA.md): stored as 2-D attributes.
std::size_t attr_cols(const std::string& k) {
  if (k == "planted_nan_lse" || k == "planted_inf_lse") return 4;
  if (k == "planted_neg_inf_score" || k == "planted_ties") return 3;
  return 0;
}

void put_extra(const std::shared_ptr<GroupState>& g, const Attributes& extra) {
  for (const auto& [k, v] : extra) h5::write_attr(g->group, k, v, g->where(), attr_cols(k));
}

}  // namespace

StepDataset TraceWriter::step_dataset(const std::string& group_path, const std::string& name, DType dtype,
                                      std::vector<std::uint64_t> step_shape) {
  require_open(f_);
  // group_path: "/<kind>/<name>" or any absolute path; created on demand.
  if (group_path.empty() || group_path[0] != '/') raise(Errc::bad_input, f_->path + ": group path must be absolute: '" + group_path + "'");
  h5::Handle cur = h5::open_group(f_->file, "/", f_->where("/"));
  std::string sofar;
  std::stringstream ss(group_path.substr(1));
  for (std::string part; std::getline(ss, part, '/');) {
    if (part.empty()) continue;
    sofar += "/" + part;
    cur = h5::open_or_create_group(cur, part, f_->where(sofar));
  }
  auto g = std::make_shared<GroupState>();
  g->f = f_;
  g->info.path = sofar.empty() ? "/" : sofar;
  g->group = std::move(cur);
  const auto w = g->where(name);
  if (h5::exists(g->group, name, g->where())) raise(Errc::bad_input, w.str() + ": dataset already exists");
  g->datasets[name] = h5::create_step_dataset(g->group, name, dtype, step_shape, opts_.compress, opts_.gzip_level, w);
  StepDataset d;
  d.g_ = g;
  d.name_ = name;
  d.dtype_ = dtype;
  d.shape_ = std::move(step_shape);
  return d;
}

void TraceWriter::mirror_group(const GroupInfo& info) {
  require_open(f_);
  auto g = make_group(f_, info.kind, info.name, false);
  for (const auto& [k, v] : info.attrs) h5::write_attr(g->group, k, v, g->where(), attr_cols(k));
}

void TraceWriter::set_attr(const std::string& object_path, const std::string& name, const AttrValue& v) {
  require_open(f_);
  h5::Handle obj = h5::open_group(f_->file, object_path, f_->where(object_path));
  h5::write_attr(obj, name, v, f_->where(object_path), attr_cols(name));
}

IndexerWriter TraceWriter::add_indexer(const std::string& name, const IndexerConfig& cfg) {
  check_name(name, f_->path + ": indexer");
  const std::string where = f_->path + ":/indexer/" + name;
  if (cfg.k < 1 || cfg.compress_ratio < 1 || cfg.next_n < 1 || cfg.batch == 0 || cfg.cols == 0)
    raise(Errc::bad_input, where + ": k, compress_ratio, next_n, batch and cols must be positive");
  if (cfg.logit_dtype != DType::f32 && cfg.logit_dtype != DType::bf16 && cfg.logit_dtype != DType::f16)
    raise(Errc::bad_input, where + ": logits must be float32, bfloat16 or float16");
  auto g = make_group(f_, GroupKind::indexer, name, true);
  put(g, "k", std::int64_t{cfg.k});
  put(g, "compress_ratio", std::int64_t{cfg.compress_ratio});
  put(g, "next_n", std::int64_t{cfg.next_n});
  put_extra(g, cfg.extra);
  IndexerWriter w;
  w.cfg_ = cfg;
  const auto k = static_cast<std::uint64_t>(cfg.k);
  w.logits_ = step_dataset(g->info.path, "logits", cfg.logit_dtype, {cfg.rows(), cfg.cols});
  w.seq_lens_ = step_dataset(g->info.path, "seq_lens", DType::i32, {cfg.batch});
  if (cfg.has_pre_idx) w.pre_idx_ = step_dataset(g->info.path, "pre_idx", DType::i32, {cfg.batch, k});
  if (cfg.has_topk) w.topk_ = step_dataset(g->info.path, "topk", DType::i32, {cfg.rows(), k});
  return w;
}

void IndexerWriter::append(const IndexerStep& s) {
  const std::string where = "/indexer step " + std::to_string(logits_.steps());
  if (s.pre_idx.has_value() != cfg_.has_pre_idx) raise(Errc::bad_input, where + ": pre_idx presence differs from the group config");
  if (s.topk.has_value() != cfg_.has_topk) raise(Errc::bad_input, where + ": topk presence differs from the group config");
  if (s.seq_lens.size() != cfg_.batch) raise(Errc::bad_input, where + ": seq_lens has " + std::to_string(s.seq_lens.size()) + " entries, batch is " + std::to_string(cfg_.batch));
  for (std::uint64_t r = 0; r < cfg_.rows(); ++r) {
    const std::int64_t n = indexer_row_len(cfg_, s.seq_lens[r / static_cast<std::uint64_t>(cfg_.next_n)], r);
    if (n < 0 || n > static_cast<std::int64_t>(cfg_.cols))
      raise(Errc::bad_input, where + " row " + std::to_string(r) + ": N_r = " + std::to_string(n) + " outside [0, " +
                                 std::to_string(cfg_.cols) + "]");
  }
  logits_.append(s.logits);
  seq_lens_.append(std::span<const std::int32_t>(s.seq_lens));
  if (cfg_.has_pre_idx) pre_idx_.append(std::span<const std::int32_t>(*s.pre_idx));
  if (cfg_.has_topk) topk_.append(std::span<const std::int32_t>(*s.topk));
}

MergeWriter TraceWriter::add_merge(const std::string& name, const MergeConfig& cfg) {
  check_name(name, f_->path + ": merge");
  const std::string where = f_->path + ":/merge/" + name;
  if (cfg.splits == 0 || cfg.tokens == 0 || cfg.heads == 0 || cfg.head_dim == 0)
    raise(Errc::bad_input, where + ": splits, tokens, heads and head_dim must be positive");
  if (cfg.v_dtype != DType::f32 && cfg.v_dtype != DType::bf16) raise(Errc::bad_input, where + ": v must be float32 or bfloat16");
  if (!cfg.scopes.empty() && cfg.scopes.size() != cfg.splits) raise(Errc::bad_input, where + ": one scope name per split");
  if (cfg.sink && cfg.sink->size() != cfg.heads) raise(Errc::bad_input, where + ": sink needs one value per head");
  auto g = make_group(f_, GroupKind::merge, name, true);
  put(g, "lse_base", std::string("e"));
  if (!cfg.scopes.empty()) {
    std::string s;
    for (const auto& x : cfg.scopes) s += (s.empty() ? "" : ",") + x;
    put(g, "scopes", s);
  }
  put_extra(g, cfg.extra);
  MergeWriter w;
  w.cfg_ = cfg;
  const std::string p = g->info.path;
  w.v_partial_ = step_dataset(p, "v_partial", cfg.v_dtype, {cfg.splits, cfg.tokens, cfg.heads, cfg.head_dim});
  w.lse_partial_ = step_dataset(p, "lse_partial", DType::f32, {cfg.splits, cfg.tokens, cfg.heads});
  if (cfg.has_num_splits) w.num_splits_ = step_dataset(p, "num_splits", DType::i32, {cfg.tokens});
  if (cfg.sink) h5::write_dataset(g->group, "sink", DType::f32, {cfg.heads}, cfg.sink->data(), g->where("sink"));
  if (cfg.has_v) w.v_ = step_dataset(p, "v", cfg.v_dtype, {cfg.tokens, cfg.heads, cfg.head_dim});
  if (cfg.has_lse) w.lse_ = step_dataset(p, "lse", DType::f32, {cfg.tokens, cfg.heads});
  return w;
}

void MergeWriter::append(const MergeStep& s) {
  const std::string where = "/merge step " + std::to_string(v_partial_.steps());
  if (s.num_splits.has_value() != cfg_.has_num_splits) raise(Errc::bad_input, where + ": num_splits presence differs from the group config");
  if (s.v.has_value() != cfg_.has_v) raise(Errc::bad_input, where + ": v presence differs from the group config");
  if (s.lse.has_value() != cfg_.has_lse) raise(Errc::bad_input, where + ": lse presence differs from the group config");
  if (s.num_splits)
    for (auto n : *s.num_splits)
      if (n < 0 || static_cast<std::uint64_t>(n) > cfg_.splits) raise(Errc::bad_input, where + ": num_splits value " + std::to_string(n) + " outside [0, splits]");
  v_partial_.append(s.v_partial);
  lse_partial_.append(std::span<const float>(s.lse_partial));
  if (s.num_splits) num_splits_.append(std::span<const std::int32_t>(*s.num_splits));
  if (s.v) v_.append(*s.v);
  if (s.lse) lse_.append(std::span<const float>(*s.lse));
}

CompressorWriter TraceWriter::add_compressor(const std::string& name, const CompressorConfig& cfg) {
  check_name(name, f_->path + ": compressor");
  const std::string where = f_->path + ":/compressor/" + name;
  if (cfg.compress_ratio != 4 && cfg.compress_ratio != 128) raise(Errc::bad_input, where + ": compress_ratio must be 4 or 128");
  if (cfg.head_dim < 1 || cfg.next_n < 1 || cfg.batch == 0) raise(Errc::bad_input, where + ": head_dim, next_n and batch must be positive");
  for (DType t : {cfg.kv_dtype, cfg.state_dtype, cfg.out_dtype})
    if (t != DType::f32 && t != DType::bf16) raise(Errc::bad_input, where + ": kv/state/out dtypes must be float32 or bfloat16");
  const auto sd = static_cast<std::uint64_t>(cfg.state_dim());
  const auto cr = static_cast<std::uint64_t>(cfg.compress_ratio);
  if (cfg.ape.size() != cr * sd) raise(Errc::bad_input, where + ": ape must hold [compress_ratio, state_dim] = " + std::to_string(cr * sd) + " values");
  auto g = make_group(f_, GroupKind::compressor, name, true);
  put(g, "head_dim", std::int64_t{cfg.head_dim});
  put(g, "compress_ratio", std::int64_t{cfg.compress_ratio});
  put(g, "next_n", std::int64_t{cfg.next_n});
  put(g, "kv_dtype", std::string(to_string(cfg.kv_dtype)));
  put(g, "state_dtype", std::string(to_string(cfg.state_dtype)));
  put(g, "out_dtype", std::string(to_string(cfg.out_dtype)));
  put_extra(g, cfg.extra);
  h5::write_dataset(g->group, "ape", DType::f32, {cr, sd}, cfg.ape.data(), g->where("ape"));
  CompressorWriter w;
  w.cfg_ = cfg;
  const std::string p = g->info.path;
  const auto win = static_cast<std::uint64_t>(cfg.state_window());
  w.kv_score_ = step_dataset(p, "kv_score", cfg.kv_dtype, {cfg.tokens(), 2 * sd});
  w.kv_len_ = step_dataset(p, "kv_len", DType::i32, {cfg.batch});
  w.state_base_ = step_dataset(p, "state_base", DType::i32, {cfg.batch});
  w.state_kv_ = step_dataset(p, "state_kv", cfg.state_dtype, {cfg.batch, win, sd});
  w.state_score_ = step_dataset(p, "state_score", cfg.state_dtype, {cfg.batch, win, sd});
  if (cfg.has_out)
    w.out_ = step_dataset(p, "out", cfg.out_dtype,
                          {cfg.batch, static_cast<std::uint64_t>(cfg.max_outputs()), static_cast<std::uint64_t>(cfg.head_dim)});
  if (cfg.has_new_state) {
    w.new_state_kv_ = step_dataset(p, "new_state_kv", cfg.state_dtype, {cfg.tokens(), sd});
    w.new_state_score_ = step_dataset(p, "new_state_score", cfg.state_dtype, {cfg.tokens(), sd});
  }
  return w;
}

void CompressorWriter::append(const CompressorStep& s) {
  const std::string where = "/compressor step " + std::to_string(kv_score_.steps());
  if (s.out.has_value() != cfg_.has_out) raise(Errc::bad_input, where + ": out presence differs from the group config");
  if (s.new_state_kv.has_value() != cfg_.has_new_state || s.new_state_score.has_value() != cfg_.has_new_state)
    raise(Errc::bad_input, where + ": new_state presence differs from the group config");
  if (s.kv_len.size() != cfg_.batch || s.state_base.size() != cfg_.batch)
    raise(Errc::bad_input, where + ": kv_len and state_base need one entry per request");
  for (std::size_t b = 0; b < cfg_.batch; ++b) {
    if (s.kv_len[b] < cfg_.next_n) raise(Errc::bad_input, where + ": kv_len[" + std::to_string(b) + "] < next_n");
    if (s.state_base[b] != compressor_state_base(cfg_, s.kv_len[b]))
      raise(Errc::bad_input, where + ": state_base[" + std::to_string(b) + "] does not match kv_len (see SCHEMA.md)");
  }
  kv_score_.append(s.kv_score);
  kv_len_.append(std::span<const std::int32_t>(s.kv_len));
  state_base_.append(std::span<const std::int32_t>(s.state_base));
  state_kv_.append(s.state_kv);
  state_score_.append(s.state_score);
  if (s.out) out_.append(*s.out);
  if (cfg_.has_new_state) {
    new_state_kv_.append(*s.new_state_kv);
    new_state_score_.append(*s.new_state_score);
  }
}

}  // namespace dsv4::trace
