// `inspect`: a trace's provenance, groups, datasets and attributes as text or JSON; and
// the path of the embedded default trace.
#include "reference/status.hpp"
#include "traces/trace.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

namespace dsv4::trace {

namespace {

std::string dims_str(const std::vector<std::uint64_t>& d) {
  std::string s = "[";
  for (std::size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

nlohmann::ordered_json attr_json(const AttrValue& v) {
  if (const auto* i = std::get_if<std::int64_t>(&v)) return *i;
  if (const auto* d = std::get_if<double>(&v)) return *d;
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  if (const auto* vi = std::get_if<std::vector<std::int64_t>>(&v)) return *vi;
  return std::get<std::vector<double>>(v);
}

nlohmann::ordered_json attrs_json(const Attributes& a) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [k, v] : a) j[k] = attr_json(v);
  return j;
}

std::string attrs_line(const Attributes& a) {
  std::string s;
  for (const auto& [k, v] : a) {
    std::string val = to_string(v);
    if (val.size() > 60) val = val.substr(0, 57) + "...";
    s += (s.empty() ? "" : "  ") + k + "=" + val;
  }
  return s;
}

}  // namespace

std::string describe(const TraceReader& r) {
  const auto& p = r.provenance();
  std::ostringstream o;
  o << "file:      " << r.path() << "\n";
  o << "format:    " << kFormatName << " v" << p.format_version << "\n";
  o << "producer:  " << p.producer << "\n";
  o << "model:     " << p.model << "\n";
  if (p.seed) o << "seed:      " << *p.seed << "\n";
  if (!p.notes.empty()) o << "notes:     " << p.notes << "\n";
  if (!p.extra.empty()) o << "root attrs: " << attrs_line(p.extra) << "\n";
  o << "groups:    " << r.groups().size() << "\n";
  for (const auto& g : r.groups()) {
    o << "\n" << g.path << "  (" << to_string(g.kind) << ", " << g.steps << " steps)\n";
    if (!g.attrs.empty()) o << "  attrs: " << attrs_line(g.attrs) << "\n";
    for (const auto& d : g.datasets) {
      char line[256];
      std::snprintf(line, sizeof line, "  %-16s %-24s %-9s chunk %-20s %s", d.name.c_str(), dims_str(d.shape).c_str(),
                    to_string(d.dtype), d.chunk.empty() ? "-" : dims_str(d.chunk).c_str(), d.filters.c_str());
      o << line << "\n";
    }
  }
  return o.str();
}

std::string describe_json(const TraceReader& r) {
  const auto& p = r.provenance();
  nlohmann::ordered_json j;
  j["file"] = r.path();
  j["format"] = kFormatName;
  j["format_version"] = p.format_version;
  j["producer"] = p.producer;
  j["model"] = p.model;
  j["seed"] = p.seed ? nlohmann::ordered_json(*p.seed) : nlohmann::ordered_json(nullptr);
  j["notes"] = p.notes;
  j["attributes"] = attrs_json(p.extra);
  j["groups"] = nlohmann::ordered_json::array();
  for (const auto& g : r.groups()) {
    nlohmann::ordered_json gj;
    gj["kind"] = to_string(g.kind);
    gj["name"] = g.name;
    gj["path"] = g.path;
    gj["steps"] = g.steps;
    gj["attributes"] = attrs_json(g.attrs);
    gj["datasets"] = nlohmann::ordered_json::array();
    for (const auto& d : g.datasets) {
      nlohmann::ordered_json dj;
      dj["name"] = d.name;
      dj["dtype"] = to_string(d.dtype);
      dj["shape"] = d.shape;
      dj["chunk"] = d.chunk;
      dj["filters"] = d.filters;
      dj["attributes"] = attrs_json(d.attrs);
      gj["datasets"].push_back(std::move(dj));
    }
    j["groups"].push_back(std::move(gj));
  }
  return j.dump(2);
}

std::string default_trace_path() {
  std::error_code ec;
  if (const char* env = std::getenv("DSV4LAB_DEFAULT_TRACE"); env != nullptr && env[0] != '\0') {
    if (!std::filesystem::exists(env, ec))
      raise(Errc::io, std::string("DSV4LAB_DEFAULT_TRACE names a missing file: '") + env + "'");
    return env;
  }
#ifdef DSV4LAB_DEFAULT_TRACE_BUILD_PATH
  if (std::filesystem::exists(DSV4LAB_DEFAULT_TRACE_BUILD_PATH, ec)) return DSV4LAB_DEFAULT_TRACE_BUILD_PATH;
  raise(Errc::io, std::string("the embedded default trace is missing: '") + DSV4LAB_DEFAULT_TRACE_BUILD_PATH +
                      "' (build the target dsv4_default_trace, or set DSV4LAB_DEFAULT_TRACE)");
#else
  raise(Errc::io, "no embedded default trace in this build; set DSV4LAB_DEFAULT_TRACE");
#endif
}

}  // namespace dsv4::trace
