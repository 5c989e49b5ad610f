#include "sim/distribution.hpp"

#include "reference/status.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace dsv4::sim {

std::uint64_t splitmix64(std::uint64_t& s) {
  std::uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t a, std::uint64_t b) {
  std::uint64_t s = seed;
  std::uint64_t x = splitmix64(s) ^ (a * 0xD1B54A32D192ED03ULL);
  x = splitmix64(x) ^ (b * 0x8CB92BA72F3D8DD7ULL);
  return splitmix64(x);
}

namespace {

/// Uniform double in [0, 1) from 53 random bits.
double unit(std::uint64_t& s) { return static_cast<double>(splitmix64(s) >> 11) * 0x1.0p-53; }

}  // namespace

int Distribution::sample(std::uint64_t& state) const {
  if (values.empty()) {
    const std::uint64_t span = static_cast<std::uint64_t>(hi - lo) + 1;
    return lo + static_cast<int>(static_cast<std::uint64_t>(unit(state) * static_cast<double>(span)) % span);
  }
  const double u = unit(state) * cumulative.back();
  const auto it = std::upper_bound(cumulative.begin(), cumulative.end(), u);
  const std::size_t i = std::min<std::size_t>(static_cast<std::size_t>(it - cumulative.begin()), values.size() - 1);
  return values[i];
}

Distribution prod_distribution() {
  Distribution d;
  d.spec = "prod";
  d.values = {4096, 8192, 16384, 32768, 65536, 131072};
  const double w[] = {35, 20, 15, 12, 10, 8};
  double c = 0;
  for (double x : w) d.cumulative.push_back(c += x);
  return d;
}

Distribution distribution_from_lengths(const std::string& spec, const std::vector<int>& lengths) {
  if (lengths.empty()) raise(Errc::bad_input, "distribution '" + spec + "' has no lengths");
  Distribution d;
  d.spec = spec;
  for (int l : lengths) {
    if (l < 0) raise(Errc::bad_input, "distribution '" + spec + "' has a negative length " + std::to_string(l));
    d.values.push_back(l);
    d.cumulative.push_back(static_cast<double>(d.values.size()));
  }
  return d;
}

namespace {

void collect_ints(const nlohmann::json& j, std::vector<int>& out, const std::string& path) {
  if (j.is_array()) {
    for (const auto& x : j) collect_ints(x, out, path);
  } else if (j.is_number_integer() || j.is_number_unsigned()) {
    out.push_back(j.get<int>());
  } else if (j.is_number_float() && j.get<double>() == static_cast<double>(static_cast<long long>(j.get<double>()))) {
    out.push_back(static_cast<int>(j.get<double>()));
  } else {
    raise(Errc::bad_input, "'" + path + "': expected integer lengths, found " + j.dump());
  }
}

}  // namespace

std::vector<int> read_lengths_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) raise(Errc::io, "cannot open lengths file '" + path + "' (--dist trace:FILE)");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::vector<int> out;
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && (text[first] == '[' || text[first] == '{')) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const std::exception& e) {
      raise(Errc::bad_input, "'" + path + "' is not valid JSON: " + e.what());
    }
    if (j.is_object()) {
      if (!j.contains("seq_lens")) raise(Errc::bad_input, "'" + path + "': JSON object without 'seq_lens'");
      j = j.at("seq_lens");
    }
    collect_ints(j, out, path);
  } else {
    std::string t = text;
    std::replace(t.begin(), t.end(), ',', ' ');
    std::istringstream is(t);
    std::string tok;
    while (is >> tok) {
      std::size_t used = 0;
      long long v = 0;
      try {
        v = std::stoll(tok, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != tok.size()) raise(Errc::bad_input, "'" + path + "': '" + tok + "' is not an integer length");
      out.push_back(static_cast<int>(v));
    }
  }
  if (out.empty()) raise(Errc::bad_input, "'" + path + "' holds no lengths");
  return out;
}

Distribution parse_distribution(const std::string& spec) {
  if (spec == "prod") return prod_distribution();
  if (spec.rfind("uniform:", 0) == 0) {
    const std::string r = spec.substr(8);
    const auto dash = r.find('-');
    Distribution d;
    d.spec = spec;
    try {
      if (dash == std::string::npos) throw std::invalid_argument("no dash");
      std::size_t a = 0, b = 0;
      d.lo = std::stoi(r.substr(0, dash), &a);
      d.hi = std::stoi(r.substr(dash + 1), &b);
      if (a != dash || b != r.size() - dash - 1) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      raise(Errc::bad_input, "--dist '" + spec + "': expected uniform:LO-HI with integers");
    }
    if (d.lo < 1 || d.hi < d.lo) raise(Errc::bad_input, "--dist '" + spec + "': need 1 <= LO <= HI");
    return d;
  }
  if (spec.rfind("trace:", 0) == 0) return distribution_from_lengths(spec, read_lengths_file(spec.substr(6)));
  raise(Errc::bad_input, "--dist '" + spec + "': supported: prod, uniform:LO-HI, trace:FILE");
}

}  // namespace dsv4::sim
