// Shared state of the trace reader and writer (not part of the public API).
#pragma once

#include "traces/h5.hpp"
#include "traces/trace.hpp"

#include <map>
#include <memory>
#include <string>

namespace dsv4::trace::detail {

struct FileState {
  h5::Handle file;
  std::string path;
  bool writable = false;
  h5::Where where(const std::string& object) const { return {path, object}; }
};

struct GroupState {
  std::shared_ptr<FileState> f;
  GroupInfo info;
  h5::Handle group;
  std::map<std::string, h5::Handle> datasets;  ///< open datasets by name
  std::map<std::string, std::vector<std::uint64_t>> dims;  ///< their full shapes (reader)

  h5::Where where(const std::string& ds = {}) const { return f->where(ds.empty() ? info.path : info.path + "/" + ds); }
  const h5::Handle& dataset(const std::string& name) const;
};

}  // namespace dsv4::trace::detail
