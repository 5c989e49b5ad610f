// Thin RAII layer over the HDF5 C API, used only inside traces/. Every HDF5 call the trace
// code makes goes through one function here, which checks the return value and throws
// dsv4::Error naming the file and the object, with HDF5's error stack appended. HDF5's
// automatic error printing is switched off the first time any of these is used.
#pragma once

#include "reference/status.hpp"
#include "traces/trace.hpp"

#include <hdf5.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace dsv4::trace::h5 {

/// Switch off HDF5's automatic error printing (idempotent).
void silence_errors();

/// An owned hid_t, closed with the close function matching its type.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      o.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();  ///< closes (errors ignored)
  /// Gives up ownership without closing.
  hid_t release() {
    const hid_t id = id_;
    id_ = H5I_INVALID_HID;
    return id;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

/// Names a place in a file for error messages: "file.h5:/indexer/L02/logits".
struct Where {
  std::string file;
  std::string object;
  std::string str() const { return file + ":" + (object.empty() ? "/" : object); }
};

/// Throw Error(code, "<file>:<object>: <what>[: HDF5: <stack>]"), clearing HDF5's stack.
[[noreturn]] void fail(Errc code, const Where& w, const std::string& what);

// ---- files -----------------------------------------------------------------------------
Handle create_file(const std::string& path);  ///< truncates; deterministic property lists
Handle open_file(const std::string& path);    ///< read-only
Handle open_image(std::span<const std::byte> image, const std::string& name);
void flush(const Handle& file, const Where& w);

// ---- groups / links --------------------------------------------------------------------
bool exists(const Handle& loc, const std::string& name, const Where& w);  ///< one path component
Handle open_group(const Handle& loc, const std::string& name, const Where& w);
Handle create_group(const Handle& loc, const std::string& name, const Where& w);
Handle open_or_create_group(const Handle& loc, const std::string& name, const Where& w);
/// Names of the children of a group, sorted; `groups_only` keeps only groups, else datasets only.
std::vector<std::string> children(const Handle& group, bool groups_only, const Where& w);

// ---- attributes -------------------------------------------------------------------------
Attributes read_attrs(const Handle& obj, const Where& w);
/// Writes (replacing) an attribute; a vector is 1-D unless `cols` > 0 (then [n/cols, cols]).
void write_attr(const Handle& obj, const std::string& name, const AttrValue& v, const Where& w,
                std::size_t cols = 0);

// ---- datasets ---------------------------------------------------------------------------
struct DatasetShape {
  DType dtype = DType::f32;
  std::vector<std::uint64_t> dims;
  std::vector<std::uint64_t> chunk;
  std::string filters;
};

Handle open_dataset(const Handle& group, const std::string& name, const Where& w);
/// Type, dims, chunk and filter description of an open dataset; throws bad_input on a type
/// dsv4lab does not store (wrong class / size, uint16 without a valid `dtype` attribute).
DatasetShape describe_dataset(const Handle& ds, const Where& w);
/// Step-major dataset [0, step_shape...], growable along axis 0, one step per chunk.
Handle create_step_dataset(const Handle& group, const std::string& name, DType t,
                           const std::vector<std::uint64_t>& step_shape, bool compress, int gzip_level,
                           const Where& w);
/// Fixed-shape contiguous dataset written at once.
void write_dataset(const Handle& group, const std::string& name, DType t, const std::vector<std::uint64_t>& dims,
                   const void* data, const Where& w);
/// Grows axis 0 by one and writes the step (`elements` must equal the per-step size).
void append_step(const Handle& ds, DType t, const std::vector<std::uint64_t>& step_shape, std::uint64_t step,
                 const void* data, const Where& w);
/// Reads step `step` of a step-major dataset into `out` (size = per-step elements).
void read_step(const Handle& ds, DType t, const std::vector<std::uint64_t>& dims, std::uint64_t step, void* out,
               const Where& w);
/// Reads a whole (small) dataset.
void read_all(const Handle& ds, DType t, void* out, const Where& w);

}  // namespace dsv4::trace::h5
