// `eo-pipeline synth`: the synthetic multi-modal world over the config's plan.

#include <chrono>
#include <fmt/format.h>
#include <iostream>
#include <spdlog/spdlog.h>

#include "pipeline/commands/commands.hpp"
#include "pipeline/core/plan.hpp"
#include "stages/synth/synth.hpp"

namespace eo {

void add_synth_command(CLI::App& app, SynthOptions& opts) {
  auto* cmd = app.add_subcommand("synth", "write a synthetic multi-modal world (S2, S1, coherence, labels) and its catalog");
  add_common_options(*cmd, opts.common);
}

int run_synth(const SynthOptions& opts) {
  const auto config = start_command(opts.common, 0);
  if (!config) return kExitOk;
  const Plan plan = make_plan(load_aois(*config));
  spdlog::info("synthesising the world of {} tiles ({} chips) into {} at 1/{} native resolution (seed {})",
               plan.total.tiles, plan.total.chips, config->world_dir().string(), config->synth.resolution_scale,
               config->synth.seed);
  const auto t0 = std::chrono::steady_clock::now();
  const synth::SynthReport report = synth::write_world(config->synth, config->world_dir(), plan,
                                                       [](const std::string& what) { spdlog::info("wrote {}", what); });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  write_resolved_config(*config, config->world_dir() / "config.yaml");
  std::string files;
  for (const auto& [m, n] : report.files) files += fmt::format(" {} {}", m, n);
  std::string missing;
  for (const auto& [m, n] : report.left_out) missing += fmt::format(" {} {}", m, n);
  std::cout << fmt::format("Synthetic world: files{}; source tiles left out (missing data){}; {:.1f} MB in {:.1f} s\n"
                           "Catalog: {}\n",
                           files, missing.empty() ? " none" : missing, report.bytes / 1e6, seconds, report.catalog.string());
  return kExitOk;
}

}  // namespace eo
