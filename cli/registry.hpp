// Subcommand registry of the dsv4lab CLI. Each cmd_<name>.cpp registers one subcommand:
//
//   static const dsv4::cli::Register reg{30, [](CLI::App& root) -> dsv4::cli::RunFn {
//     auto* sub = root.add_subcommand("inspect", "Show groups, shapes, dtypes of a trace");
//     auto opts = std::make_shared<InspectOptions>();
//     sub->add_option("file", opts->file, "trace file")->required();
//     return [opts] { return dsv4::inspect_main(*opts); };
//   }};
//
// `order` fixes the position in --help. A run function returns the exit code; it may
// throw dsv4::Error, which main() turns into one line on stderr and the error's code.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace dsv4::cli {

using RunFn = std::function<int()>;
using SetupFn = std::function<RunFn(CLI::App& root)>;

struct Entry {
  int order;
  SetupFn setup;
};

std::vector<Entry>& registry();

struct Register {
  Register(int order, SetupFn setup) { registry().push_back({order, std::move(setup)}); }
};

/// The --json convention of every subcommand: `--json` prints JSON to stdout instead of
/// the human-readable table; `--json FILE` writes JSON to FILE and keeps the table.
/// `target` is left empty when the flag is absent, "-" for stdout.
CLI::Option* add_json_option(CLI::App& sub, std::string& target);

/// Write `text` to stdout when target is "-", else to the file (throws dsv4::Error on failure).
void emit_json(const std::string& target, const std::string& text);

}  // namespace dsv4::cli
