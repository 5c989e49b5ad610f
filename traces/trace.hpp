// Trace files (HDF5, format version 1; DESIGN §4, exact layouts in traces/SCHEMA.md).
//
// Reading: open a file, look at its groups, then stream one step at a time:
//
//   dsv4::trace::TraceReader r(path);                 // validates root attributes + every group layout
//   for (const auto& g : r.groups(GroupKind::indexer)) {
//     auto ix = r.indexer(g.name);                      // g.name: "L02"
//     for (std::uint64_t s = 0; s < ix.steps(); ++s) {
//       IndexerStep st = ix.read_step(s);               // memory: one step of one group
//       // st.logits.data(), st.logits.dtype, st.seq_lens, st.pre_idx, st.topk ...
//     }
//   }
//
// Writing: TraceWriter creates a file (root provenance attributes), then per group a writer
// that appends steps. The same class writes replay outputs (`replay --save-outputs`):
// mirror_group() + step_dataset("topk_reference", ...) + append().
//
// Every failure throws dsv4::Error whose one-line message names the file and the HDF5 object
// (and the step / row when the data is at fault): Errc::io when the file cannot be opened
// or read, Errc::bad_input when it is not a valid trace. HDF5's own error printing is
// silenced; its error stack becomes part of the message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace dsv4::trace {

inline constexpr int kFormatVersion = 1;
inline constexpr const char* kFormatName = "dsv4lab-trace";

/// Element type of a stored array. bf16/f16 are stored as uint16 bit patterns with the
/// dataset attribute dtype = "bfloat16" | "float16".
enum class DType { f32, bf16, f16, i32, i64 };
const char* to_string(DType t);  ///< "float32", "bfloat16", "float16", "int32", "int64"
std::size_t dtype_size(DType t);
/// Parse "float32" | "bfloat16" | "float16" | "int32" | "int64" (also "f32", "bf16", "fp16"); throws bad_input.
DType parse_dtype(const std::string& s, const std::string& what);

/// A dense array of one step (the step axis removed). Storage is 8-byte aligned.
struct Array {
  DType dtype = DType::f32;
  std::vector<std::uint64_t> shape;

  Array() = default;
  Array(DType t, std::vector<std::uint64_t> shape_);  ///< zero-filled
  std::uint64_t size() const;                          ///< number of elements
  std::size_t bytes() const { return static_cast<std::size_t>(size()) * dtype_size(dtype); }
  void* data() { return storage_.data(); }
  const void* data() const { return storage_.data(); }
  /// Typed view; T must match the dtype (float for f32, std::uint16_t for bf16/f16,
  /// std::int32_t for i32, std::int64_t for i64), else throws Errc::internal.
  template <class T> std::span<T> view();
  template <class T> std::span<const T> view() const;

 private:
  std::vector<std::uint64_t> storage_;
};

/// Attribute value as stored (ints widened to int64, floats to double).
using AttrValue = std::variant<std::int64_t, double, std::string, std::vector<std::int64_t>, std::vector<double>>;
using Attributes = std::map<std::string, AttrValue>;
std::string to_string(const AttrValue& v);

enum class GroupKind { indexer, merge, compressor };
const char* to_string(GroupKind k);  ///< "indexer", "merge", "compressor"

struct DatasetInfo {
  std::string name;                  ///< e.g. "logits"
  DType dtype = DType::f32;
  std::vector<std::uint64_t> shape;  ///< full shape, step axis first
  std::vector<std::uint64_t> chunk;  ///< empty when contiguous
  std::string filters;               ///< e.g. "shuffle+gzip(1)" or "none"
  Attributes attrs;
};

struct GroupInfo {
  GroupKind kind = GroupKind::indexer;
  std::string name;  ///< "L02"
  std::string path;  ///< "/indexer/L02"
  std::uint64_t steps = 0;
  Attributes attrs;
  std::vector<DatasetInfo> datasets;  ///< sorted by name
};

/// Root attributes. Unknown root attributes are kept in `extra`.
struct Provenance {
  int format_version = kFormatVersion;
  std::string producer;
  std::string model;
  std::optional<std::int64_t> seed;
  std::string notes;
  Attributes extra;
};

// ---- indexer top-k: /indexer/<layer> ----------------------------------------------------

struct IndexerConfig {
  int k = 0;
  int compress_ratio = 1;
  int next_n = 1;
  std::uint64_t batch = 0;
  std::uint64_t cols = 0;  ///< stored columns (the layer's maximum N_r; columns >= N_r ignored)
  DType logit_dtype = DType::f32;  ///< f32, bf16 or f16
  bool has_pre_idx = false;
  bool has_topk = false;
  Attributes extra;  ///< other group attributes (e.g. planted positions)
  std::uint64_t rows() const { return batch * static_cast<std::uint64_t>(next_n); }
};

struct IndexerStep {
  Array logits;                                ///< [rows, cols], f32/bf16/f16 (row stride = cols)
  std::vector<std::int32_t> seq_lens;          ///< [batch] uncompressed lengths
  std::optional<std::vector<std::int32_t>> pre_idx;  ///< [batch, k], previous step's top-k
  std::optional<std::vector<std::int32_t>> topk;     ///< [rows, k], captured, any order, -1 padding
};

/// Valid length N_r of row r (DESIGN §3.3); may be negative or > cols for bad data.
std::int64_t indexer_row_len(const IndexerConfig& c, std::int32_t seq_len, std::uint64_t row);

// ---- LSE merge: /merge/<name> ------------------------------------------------------------

struct MergeConfig {
  std::uint64_t splits = 0, tokens = 0, heads = 0, head_dim = 0;  ///< D = head_dim
  DType v_dtype = DType::f32;                  ///< f32 or bf16 (v_partial and captured v)
  std::vector<std::string> scopes;             ///< empty for plain split-KV partials
  std::string lse_base = "e";
  std::optional<std::vector<float>> sink;      ///< [heads], applied after the merge
  bool has_num_splits = false;
  bool has_v = false;
  bool has_lse = false;
  Attributes extra;
};

struct MergeStep {
  Array v_partial;                               ///< [splits, tokens, heads, D] f32 or bf16
  std::vector<float> lse_partial;                ///< [splits, tokens, heads], natural log
  std::optional<std::vector<std::int32_t>> num_splits;  ///< [tokens]
  std::optional<Array> v;                        ///< [tokens, heads, D], captured
  std::optional<std::vector<float>> lse;         ///< [tokens, heads], captured
};

// ---- compressor: /compressor/<name> (SCHEMA.md) -------------------------------------------

struct CompressorConfig {
  int head_dim = 0;        ///< HD: 128 or 512
  int compress_ratio = 0;  ///< CR: 4 (overlap) or 128
  int next_n = 1;          ///< NN: tokens per request per step
  std::uint64_t batch = 0;
  DType kv_dtype = DType::f32;     ///< kv_score dtype: f32 or bf16
  DType state_dtype = DType::f32;  ///< f32 or bf16
  DType out_dtype = DType::f32;    ///< f32 or bf16
  std::vector<float> ape;          ///< [CR, SD] fp32
  bool has_out = false;
  bool has_new_state = false;
  Attributes extra;
  bool overlap() const { return compress_ratio == 4; }
  int state_dim() const { return overlap() ? 2 * head_dim : head_dim; }        ///< SD
  int state_window() const { return overlap() ? 2 * compress_ratio : compress_ratio; }  ///< W
  int max_outputs() const { return (next_n + compress_ratio - 1) / compress_ratio; }    ///< per request per step
  std::uint64_t tokens() const { return batch * static_cast<std::uint64_t>(next_n); }
};

struct CompressorStep {
  Array kv_score;                      ///< [tokens, 2*SD] kv dtype, row b*NN + t
  std::vector<std::int32_t> kv_len;    ///< [batch], after the step
  std::vector<std::int32_t> state_base;  ///< [batch], absolute position of state row 0
  Array state_kv;                      ///< [batch, W, SD] state dtype, positions state_base + j
  Array state_score;                   ///< [batch, W, SD] state dtype (ape already added)
  std::optional<Array> out;            ///< [batch, max_outputs, HD] out dtype, captured
  std::optional<Array> new_state_kv;   ///< [tokens, SD] state dtype, captured stores
  std::optional<Array> new_state_score;  ///< [tokens, SD] state dtype, captured stores
};

/// First absolute position a step must find in the prior state (SCHEMA.md).
std::int64_t compressor_state_base(const CompressorConfig& c, std::int64_t kv_len);

// ---- reader --------------------------------------------------------------------------------

namespace detail {
struct FileState;
struct GroupState;
}  // namespace detail

/// Reads one group step by step. Keeps the file open (shared with the reader).
class IndexerGroup {
 public:
  const GroupInfo& info() const;
  const IndexerConfig& config() const { return cfg_; }
  std::uint64_t steps() const;
  /// Reads step s; checks every row's N_r against [0, cols] (bad_input naming step and row).
  IndexerStep read_step(std::uint64_t s) const;
  /// Only the seq_lens of step s (checked the same way); cheap, e.g. for the simulator.
  std::vector<std::int32_t> read_seq_lens(std::uint64_t s) const;

 private:
  friend class TraceReader;
  std::shared_ptr<detail::GroupState> g_;
  IndexerConfig cfg_;
};

class MergeGroup {
 public:
  const GroupInfo& info() const;
  const MergeConfig& config() const { return cfg_; }
  std::uint64_t steps() const;
  /// Reads step s; checks num_splits in [0, splits].
  MergeStep read_step(std::uint64_t s) const;

 private:
  friend class TraceReader;
  std::shared_ptr<detail::GroupState> g_;
  MergeConfig cfg_;
};

class CompressorGroup {
 public:
  const GroupInfo& info() const;
  const CompressorConfig& config() const { return cfg_; }
  std::uint64_t steps() const;
  /// Reads step s; checks kv_len >= next_n and state_base == compressor_state_base(kv_len).
  CompressorStep read_step(std::uint64_t s) const;
  /// Only the kv_len of step s (checked the same way).
  std::vector<std::int32_t> read_kv_len(std::uint64_t s) const;

 private:
  friend class TraceReader;
  std::shared_ptr<detail::GroupState> g_;
  CompressorConfig cfg_;
};

/// `trace`: every group must follow SCHEMA.md. `outputs`: a file of `replay --save-outputs`
/// (groups hold only `<dataset>_reference` etc.); groups are listed, not validated, and
/// read with read_dataset_step().
enum class ReadMode { trace, outputs };

class TraceReader {
 public:
  /// Opens `path` read-only and validates the root attributes and (mode trace) every group's
  /// layout (required datasets, dtypes, shapes) and per-step lengths (seq_lens, kv_len).
  /// Throws dsv4::Error (io / bad_input). Not thread-safe (HDF5 serial build): one thread
  /// reads at a time.
  explicit TraceReader(const std::string& path, ReadMode mode = ReadMode::trace);
  /// Opens an in-memory file image (`name` is used in messages).
  TraceReader(std::span<const std::byte> image, const std::string& name, ReadMode mode = ReadMode::trace);
  ~TraceReader();
  TraceReader(TraceReader&&) noexcept;
  TraceReader& operator=(TraceReader&&) noexcept;

  const std::string& path() const;
  const Provenance& provenance() const { return prov_; }
  const std::vector<GroupInfo>& groups() const { return groups_; }  ///< indexer, merge, compressor; by name
  std::vector<GroupInfo> groups(GroupKind kind) const;
  const GroupInfo* find(GroupKind kind, const std::string& name) const;

  IndexerGroup indexer(const std::string& name) const;  ///< throws bad_input if absent
  MergeGroup merge(const std::string& name) const;
  CompressorGroup compressor(const std::string& name) const;

  /// Step s of any step-major dataset of a group (e.g. "topk_reference" in an outputs file).
  Array read_dataset_step(const GroupInfo& group, const std::string& dataset, std::uint64_t s) const;

 private:
  void init(ReadMode mode);
  std::shared_ptr<detail::FileState> f_;
  Provenance prov_;
  std::vector<GroupInfo> groups_;
};

// ---- writer --------------------------------------------------------------------------------

struct WriteOptions {
  bool compress = true;  ///< shuffle + gzip, one step per chunk
  int gzip_level = 1;
};

/// Appends one step at a time to one step-major dataset [steps, shape...].
class StepDataset {
 public:
  StepDataset() = default;
  /// Appends one step; `a` must have the dataset's dtype and per-step shape.
  void append(const Array& a);
  void append(std::span<const std::int32_t> v);  ///< int32 dataset
  void append(std::span<const float> v);         ///< float32 dataset
  std::uint64_t steps() const { return steps_; }

 private:
  friend class TraceWriter;
  void append_raw(const void* p, DType t, std::uint64_t elements);
  std::shared_ptr<detail::GroupState> g_;
  std::string name_;
  DType dtype_ = DType::f32;
  std::vector<std::uint64_t> shape_;
  std::uint64_t steps_ = 0;
};

class IndexerWriter {
 public:
  void append(const IndexerStep& s);  ///< checks presence of optional datasets against the config
 private:
  friend class TraceWriter;
  IndexerConfig cfg_;
  StepDataset logits_, seq_lens_, pre_idx_, topk_;
};

class MergeWriter {
 public:
  void append(const MergeStep& s);
 private:
  friend class TraceWriter;
  MergeConfig cfg_;
  StepDataset v_partial_, lse_partial_, num_splits_, v_, lse_;
};

class CompressorWriter {
 public:
  void append(const CompressorStep& s);
 private:
  friend class TraceWriter;
  CompressorConfig cfg_;
  StepDataset kv_score_, kv_len_, state_base_, state_kv_, state_score_, out_, new_state_kv_, new_state_score_;
};

/// Creates (truncates) a trace file. Deterministic: no timestamps, fixed library version
/// bounds, so the same calls give the same bytes.
class TraceWriter {
 public:
  TraceWriter(const std::string& path, const Provenance& prov, WriteOptions opts = {});
  ~TraceWriter();
  TraceWriter(TraceWriter&&) noexcept;
  TraceWriter& operator=(TraceWriter&&) noexcept;

  /// Group attributes come from the config (+ cfg.extra).
  IndexerWriter add_indexer(const std::string& name, const IndexerConfig& cfg);
  MergeWriter add_merge(const std::string& name, const MergeConfig& cfg);
  CompressorWriter add_compressor(const std::string& name, const CompressorConfig& cfg);

  /// For replay --save-outputs: create group info.path with info's attributes (no datasets).
  void mirror_group(const GroupInfo& info);
  /// A new step-major dataset `name` in group `group_path` ("/indexer/L02"), created on demand.
  StepDataset step_dataset(const std::string& group_path, const std::string& name, DType dtype,
                           std::vector<std::uint64_t> step_shape);
  /// Set (or replace) an attribute on a group ("/" for the root).
  void set_attr(const std::string& object_path, const std::string& name, const AttrValue& v);

  const std::string& path() const;
  /// Flush and close; further use throws. Also done by the destructor (errors swallowed there).
  void close();

 private:
  std::shared_ptr<detail::FileState> f_;
  WriteOptions opts_;
};

// ---- inspect and the embedded default ------------------------------------------------------

/// Human-readable summary: provenance, groups, datasets (shape, dtype, chunk, filters), attributes.
std::string describe(const TraceReader& r);
/// The same as JSON text (stable key order).
std::string describe_json(const TraceReader& r);

/// Reads every step of every group through the typed readers (so every data check runs).
/// Returns the number of group-steps read; throws like read_step().
std::uint64_t verify_all(const TraceReader& r);
/// One step of one dataset ("/indexer/L00/logits") as JSON: {"dataset", "step", "dtype",
/// "shape", "values": [...], "bits": [...] (float dtypes: the raw bit patterns)}; NaN and
/// ±inf values are the strings "nan", "inf", "-inf". Non-step datasets (ape, sink) ignore `step`.
std::string dump_json(const TraceReader& r, const std::string& dataset_path, std::uint64_t step);

/// Path of the embedded default trace: env DSV4LAB_DEFAULT_TRACE when set, else the file
/// generated at build time. Throws io when neither exists.
std::string default_trace_path();

}  // namespace dsv4::trace
