// dsv4lab replay: oracle, reference and GPU on every group and step of a trace, parity
// rules, and the report folder. Exit 0 all rules hold, 1 a rule failed, 2 bad input.
#include "cli/registry.hpp"
#include "reference/status.hpp"
#include "validation/replay.hpp"
#include "validation/report.hpp"

#include <cstdio>
#include <memory>

namespace {

struct ReplayCli {
  std::string trace;
  std::string report_dir;
  std::string policy = "strict";
  std::string topk_captured = "tie";
  std::string oracle_rows = "4";
  bool no_plots = false;
  bool quiet = false;
  dsv4::validation::ReplayOptions opt;
};

int replay_main(ReplayCli& c) {
  using namespace dsv4::validation;
  c.opt.policy = dsv4::parse_lse_policy(c.policy);
  c.opt.topk_captured = parse_topk_check(c.topk_captured, "--topk-captured");
  if (c.oracle_rows == "all") {
    c.opt.oracle_rows = -1;
  } else {
    try {
      std::size_t used = 0;
      c.opt.oracle_rows = std::stoll(c.oracle_rows, &used);
      if (used != c.oracle_rows.size() || c.opt.oracle_rows < 0) throw std::invalid_argument("");
    } catch (const std::exception&) {
      dsv4::raise(dsv4::Errc::bad_input, "--oracle-rows: expected a count >= 0 or 'all', got '" + c.oracle_rows + "'");
    }
  }
  c.opt.progress = !c.quiet;
  Report rep = replay_trace(c.trace, c.opt);
  rep.provenance.command = current_command_line();
  WriteOptions wo;
  wo.plots = !c.no_plots;
  const WriteResult w = write_report(rep, c.report_dir, wo);
  std::fputs(summary_table(rep).c_str(), stdout);
  for (const auto& f : rep.failures()) std::printf("FAILED %s\n", f.c_str());
  std::printf("report: %s\n", w.html.string().c_str());
  return rep.pass() ? 0 : 1;
}

const dsv4::cli::Register reg{30, [](CLI::App& root) -> dsv4::cli::RunFn {
  auto* sub = root.add_subcommand(
      "replay", "Replay a trace: oracle, reference and GPU per group and step, parity rules, report folder");
  auto c = std::make_shared<ReplayCli>();
  sub->add_option("trace", c->trace, "trace file (HDF5)")->required();
  sub->add_option("--report", c->report_dir, "report folder (report.json, report.md, report.html, plots)")->required();
  sub->add_option("--device", c->opt.device, "auto (GPU when present), cpu or cuda")->capture_default_str();
  sub->add_option("--ops", c->opt.ops, "groups to replay: indexer, merge, compressor (default: all)")->delimiter(',');
  sub->add_option("--save-outputs", c->opt.save_outputs,
                  "write every computed output to this HDF5 file (<dataset>_reference/_oracle/_gpu)");
  sub->add_option("--oracle-rows", c->oracle_rows,
                  "top-k rows per step the (slow, sorting) oracle checks, spread over the batch, or 'all'")
      ->capture_default_str();
  sub->add_option("--policy", c->policy, "LSE policy: strict or fa2_empty")->capture_default_str();
  sub->add_flag("--lse-includes-sink", c->opt.lse_includes_sink, "merged lse includes the sink");
  sub->add_option("--compress-warps", c->opt.compress_warps, "compressor reference NRW: 1, or 4 (CR = 128)")
      ->capture_default_str();
  sub->add_option("--atol", c->opt.atol, "override atol of the tolerance rules (default by dtype)");
  sub->add_option("--rtol", c->opt.rtol, "override rtol of the tolerance rules (default by dtype)");
  sub->add_option("--cos-min", c->opt.cos_min, "per-row cosine bound of the tolerance rules (default 0.99)");
  sub->add_option("--cos-mean", c->opt.cos_mean, "mean row cosine bound (default 0.999)");
  sub->add_option("--topk-captured", c->topk_captured, "rule for captured top-k: exact, set, tie or recall")
      ->capture_default_str();
  sub->add_option("--recall-min", c->opt.recall_min, "recall bound for --topk-captured recall")->capture_default_str();
  sub->add_option("--max-steps", c->opt.max_steps, "replay only the first N steps of each group");
  sub->add_flag("--measure", c->opt.measure, "time the GPU kernels (the report then varies run to run)");
  sub->add_option("--gpu-model", c->opt.gpu_model, "GPU of the cost-model predictions (empty: none)")
      ->capture_default_str();
  sub->add_flag("--no-plots", c->no_plots, "do not run plots.py");
  sub->add_flag("--quiet", c->quiet, "no progress on stderr");
  return [c] { return replay_main(*c); };
}};

}  // namespace
