// dsv4lab: one binary, thin subcommands (see registry.hpp). Exit codes: 0 success,
// 1 a parity / pass rule failed, 2 bad input, 3 device or internal error.
#include "cli/registry.hpp"
#include "reference/status.hpp"

#include <dsv4lab/build_info.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>

namespace dsv4::cli {

std::vector<Entry>& registry() {
  static std::vector<Entry> entries;
  return entries;
}

CLI::Option* add_json_option(CLI::App& sub, std::string& target) {
  return sub.add_option_function<std::vector<std::string>>(
                "--json",
                [&target](const std::vector<std::string>& v) { target = v.empty() || v[0].empty() ? "-" : v[0]; },
                "print JSON to stdout, or with FILE write JSON there")
      ->expected(0, 1)
      ->type_name("[FILE]");
}

void emit_json(const std::string& target, const std::string& text) {
  if (target == "-") {
    std::cout << text << std::endl;
    return;
  }
  std::ofstream out(target, std::ios::binary);
  if (!out) raise(Errc::io, "cannot write JSON to '" + target + "'");
  out << text << '\n';
  if (!out) raise(Errc::io, "write failed: '" + target + "'");
}

}  // namespace dsv4::cli

namespace {

std::string version_text() {
  std::string s = std::string("dsv4lab ") + dsv4::build::kVersion + " (" + dsv4::build::kGitCommit + ")\n" +
                  "  compiler: " + dsv4::build::kCxxCompiler + ", build: " + dsv4::build::kBuildType + "\n";
#if defined(DSV4LAB_HAVE_CUDA)
  s += std::string("  CUDA: ") + dsv4::build::kCudaCompiler + " (kernels built)\n";
#else
  s += "  CUDA: not built\n";
#endif
  s += std::string("  flags: ") + dsv4::build::kFlags;
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dsv4;
  CLI::App app{"dsv4lab: reference numerics, kernels, trace replay, parity reports and cost model\n"
               "for the decode kernels of DeepSeek-style sparse attention (top-k, LSE merge, compressor).\n"
               "Exit codes: 0 ok, 1 a parity check failed, 2 bad input, 3 device/internal error."};
  app.set_version_flag("--version", version_text());
  app.require_subcommand(1);
  auto& entries = cli::registry();
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.order < b.order; });
  std::vector<std::pair<CLI::App*, cli::RunFn>> runs;
  for (auto& e : entries) {
    const std::size_t before = app.get_subcommands({}).size();
    cli::RunFn fn = e.setup(app);
    auto subs = app.get_subcommands({});
    if (subs.size() > before) runs.emplace_back(subs.back(), std::move(fn));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  std::string name = "dsv4lab";
  try {
    for (auto& [sub, fn] : runs) {
      if (sub->parsed()) {
        name += " " + sub->get_name();
        return fn();
      }
    }
    std::fprintf(stderr, "dsv4lab: no subcommand given (see --help)\n");
    return 2;
  } catch (const dsv4::Error& e) {
    std::fprintf(stderr, "%s: error: %s\n", name.c_str(), e.what());
    return dsv4::exit_code(e.code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: internal error: %s\n", name.c_str(), e.what());
    return 3;
  }
}
