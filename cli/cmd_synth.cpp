// dsv4lab synth: write a synthetic trace (traces/synth.hpp).
#include "cli/registry.hpp"
#include "reference/status.hpp"
#include "traces/synth.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <memory>
#include <sstream>

namespace {

struct SynthCli {
  dsv4::trace::SynthOptions o;
  std::string out;
  std::string ops = "indexer,merge,compressor";
  std::string plant;
  std::string compressors;
  std::string logit_dtype = "float32", kv_dtype = "bfloat16", state_dtype = "float32", out_dtype = "bfloat16";
  std::int64_t seq_len = 0;
  double hit_rate = 0;
  bool no_topk = false, no_compress = false;
  std::string json;
};

int synth_main(SynthCli& c) {
  using namespace dsv4::trace;
  auto& o = c.o;
  o.indexer = o.merge = o.compressor = false;
  std::stringstream ss(c.ops);
  for (std::string item; std::getline(ss, item, ',');) {
    if (item == "indexer") o.indexer = true;
    else if (item == "merge") o.merge = true;
    else if (item == "compressor") o.compressor = true;
    else if (!item.empty()) dsv4::raise(dsv4::Errc::bad_input, "--ops: unknown op '" + item + "' (supported: indexer, merge, compressor)");
  }
  o.plant = parse_plants(c.plant);
  if (!c.compressors.empty()) o.compressors = parse_compressors(c.compressors);
  o.logit_dtype = parse_dtype(c.logit_dtype, "--logit-dtype");
  o.kv_dtype = parse_dtype(c.kv_dtype, "--kv-dtype");
  o.state_dtype = parse_dtype(c.state_dtype, "--state-dtype");
  o.out_dtype = parse_dtype(c.out_dtype, "--out-dtype");
  if (c.seq_len > 0) o.seq_len = c.seq_len;
  if (c.hit_rate > 0) o.hit_rate = c.hit_rate;
  o.write_topk = !c.no_topk;
  o.write.compress = !c.no_compress;
  const SynthSummary s = synth_trace(c.out, o);
  if (!c.json.empty()) {
    nlohmann::ordered_json j;
    j["file"] = s.path;
    j["groups"] = s.groups;
    j["layers"] = nlohmann::ordered_json::array();
    for (const auto& l : s.layers)
      j["layers"].push_back({{"group", l.group}, {"cols", l.cols}, {"target_hit_rate", l.target_hit_rate},
                             {"achieved_hit_rate", std::isnan(l.achieved_hit_rate) ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(l.achieved_hit_rate)},
                             {"noise_scale", l.noise_scale}});
    dsv4::cli::emit_json(c.json, j.dump(2));
    if (c.json == "-") return 0;
  }
  std::printf("wrote %s (%zu groups)\n", s.path.c_str(), s.groups.size());
  if (!s.layers.empty()) std::printf("  %-14s %8s %8s %8s %8s\n", "indexer", "cols", "target", "hit", "noise c");
  for (const auto& l : s.layers) {
    if (std::isnan(l.achieved_hit_rate))
      std::printf("  %-14s %8llu %8.3f %8s %8.4f\n", l.group.c_str(), static_cast<unsigned long long>(l.cols), l.target_hit_rate, "n/a", l.noise_scale);
    else
      std::printf("  %-14s %8llu %8.3f %8.3f %8.4f\n", l.group.c_str(), static_cast<unsigned long long>(l.cols), l.target_hit_rate,
                  l.achieved_hit_rate, l.noise_scale);
  }
  for (const auto& g : s.groups)
    if (g.rfind("/indexer/", 0) != 0) std::printf("  %s\n", g.c_str());
  return 0;
}

const dsv4::cli::Register reg{10, [](CLI::App& root) -> dsv4::cli::RunFn {
  auto* sub = root.add_subcommand("synth", "Write a synthetic trace (indexer logits, merge and compressor groups)");
  auto c = std::make_shared<SynthCli>();
  auto& o = c->o;
  sub->add_option("--out,-o", c->out, "output trace file (.h5)")->required();
  sub->add_option("--preset", o.preset, "v4-flash (K 512, ratio 4), v4-pro (K 1024, ratio 4), v3.2 (K 2048, ratio 1)")
      ->capture_default_str();
  sub->add_option("--layers", o.layers, "indexer layers")->capture_default_str();
  sub->add_option("--steps", o.steps, "decode steps")->capture_default_str();
  sub->add_option("--batch", o.batch, "requests")->capture_default_str();
  sub->add_option("--next-n", o.next_n, "query tokens per request per step (1..8)")->capture_default_str();
  sub->add_option("--seed", o.seed, "random seed (same seed and options: same bytes)")->capture_default_str();
  sub->add_option("--seq-len", c->seq_len, "fixed initial sequence length (default: the production mix 4096..131072)");
  sub->add_option("--max-seq-len", o.max_seq_len, "drop mix lengths above this")->capture_default_str();
  sub->add_option("--logit-dtype", c->logit_dtype, "indexer logits: float32, bfloat16, float16")->capture_default_str();
  sub->add_option("--hit-rate", c->hit_rate, "target top-k overlap between steps (default: the preset's per-layer targets)");
  sub->add_option("--ops", c->ops, "groups to write: indexer,merge,compressor")->capture_default_str();
  sub->add_flag("--no-topk", c->no_topk, "do not store the exact top-k as captured output");
  sub->add_option("--merge-heads", o.merge_heads, "merge groups: heads per GPU")->capture_default_str();
  sub->add_option("--merge-dim", o.merge_head_dim, "merge groups: head dim D")->capture_default_str();
  sub->add_option("--max-splits", o.max_splits, "split-KV merge group: most splits per token")->capture_default_str();
  sub->add_option("--compressors", c->compressors, "compressor groups NAME:HD:RATIO,... (default csa:512:4,hca:512:128,idx:128:4)");
  sub->add_option("--kv-dtype", c->kv_dtype, "compressor kv_score dtype")->capture_default_str();
  sub->add_option("--state-dtype", c->state_dtype, "compressor state dtype")->capture_default_str();
  sub->add_option("--out-dtype", c->out_dtype, "compressor output dtype")->capture_default_str();
  sub->add_option("--plant", c->plant, "plant special values at recorded positions: nan-lse,inf-lse,neg-inf-score,ties");
  sub->add_option("--notes", o.notes, "free text stored in the root attribute notes");
  sub->add_flag("--no-compress", c->no_compress, "store without shuffle+gzip");
  sub->add_option("--gzip-level", o.write.gzip_level, "gzip level 0..9")->capture_default_str();
  dsv4::cli::add_json_option(*sub, c->json);
  return [c] { return synth_main(*c); };
}};

}  // namespace
