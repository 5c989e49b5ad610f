// `inspect`: a trace's provenance, groups, datasets and attributes as text or JSON; and
// the path of the embedded default trace.
#include "reference/status.hpp"
#include "traces/trace.hpp"
#include "reference/numerics/numerics.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
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

std::uint64_t verify_all(const TraceReader& r) {
  std::uint64_t n = 0;
  for (const auto& g : r.groups()) {
    switch (g.kind) {
      case GroupKind::indexer: {
        auto x = r.indexer(g.name);
        for (std::uint64_t s = 0; s < x.steps(); ++s, ++n) (void)x.read_step(s);
        break;
      }
      case GroupKind::merge: {
        auto x = r.merge(g.name);
        for (std::uint64_t s = 0; s < x.steps(); ++s, ++n) (void)x.read_step(s);
        break;
      }
      case GroupKind::compressor: {
        auto x = r.compressor(g.name);
        for (std::uint64_t s = 0; s < x.steps(); ++s, ++n) (void)x.read_step(s);
        break;
      }
    }
  }
  return n;
}

namespace {

nlohmann::ordered_json float_json(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  return x;
}

}  // namespace

std::string dump_json(const TraceReader& r, const std::string& dataset_path, std::uint64_t step) {
  const auto slash = dataset_path.rfind('/');
  if (slash == std::string::npos || slash == 0) raise(Errc::bad_input, "--dump: expected /<kind>/<group>/<dataset>, got '" + dataset_path + "'");
  const std::string gpath = dataset_path.substr(0, slash), name = dataset_path.substr(slash + 1);
  const GroupInfo* gi = nullptr;
  for (const auto& g : r.groups())
    if (g.path == gpath) gi = &g;
  if (gi == nullptr) raise(Errc::bad_input, r.path() + ":" + gpath + ": no such group");
  nlohmann::ordered_json j;
  j["dataset"] = dataset_path;
  // (ordered_json keys live in a vector: build arrays locally, insert them last)
  auto put_floats = [&](const std::vector<float>& v, std::vector<std::uint64_t> shape) {
    nlohmann::ordered_json vals = nlohmann::ordered_json::array(), bits = nlohmann::ordered_json::array();
    for (float x : v) {
      vals.push_back(float_json(x));
      std::uint32_t u;
      std::memcpy(&u, &x, 4);
      bits.push_back(u);
    }
    j["dtype"] = "float32";
    j["shape"] = std::move(shape);
    j["values"] = std::move(vals);
    j["bits"] = std::move(bits);
  };
  if (gi->kind == GroupKind::compressor && name == "ape") {
    const auto c = r.compressor(gi->name).config();
    put_floats(c.ape, {static_cast<std::uint64_t>(c.compress_ratio), static_cast<std::uint64_t>(c.state_dim())});
    return j.dump();
  }
  if (gi->kind == GroupKind::merge && name == "sink") {
    const auto c = r.merge(gi->name).config();
    if (!c.sink) raise(Errc::bad_input, r.path() + ":" + dataset_path + ": missing dataset");
    put_floats(*c.sink, {c.heads});
    return j.dump();
  }
  const Array a = r.read_dataset_step(*gi, name, step);
  j["step"] = step;
  if (a.dtype == DType::f32) {
    put_floats(std::vector<float>(a.view<float>().begin(), a.view<float>().end()), a.shape);
    return j.dump();
  }
  nlohmann::ordered_json vals = nlohmann::ordered_json::array(), bits = nlohmann::ordered_json::array();
  if (a.dtype == DType::bf16 || a.dtype == DType::f16) {
    for (std::uint16_t u : a.view<std::uint16_t>()) {
      vals.push_back(float_json(a.dtype == DType::bf16 ? num::bf16_to_float(u) : num::fp16_to_float(u)));
      bits.push_back(u);
    }
  } else if (a.dtype == DType::i32) {
    for (auto x : a.view<std::int32_t>()) vals.push_back(x);
  } else {
    for (auto x : a.view<std::int64_t>()) vals.push_back(x);
  }
  j["dtype"] = to_string(a.dtype);
  j["shape"] = a.shape;
  j["values"] = std::move(vals);
  if (!bits.empty()) j["bits"] = std::move(bits);
  return j.dump();
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
