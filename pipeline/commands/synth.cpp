// `eo-pipeline synth`: the synthetic multi-modal world over the config's plan.

#include <chrono>
#include <fmt/format.h>
#include <iostream>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "pipeline/commands/commands.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/hash.hpp"
#include "pipeline/core/plan.hpp"
#include "stages/synth/synth.hpp"

namespace eo {

namespace {

// What decides the world synth writes: its settings and the plan's tiles. Written beside
// the catalog, so that synth again with the same settings (the demo run twice) rewrites
// the same world, and anything else in the folder is not replaced unasked.
std::string world_fingerprint(const SynthConfig& s, const Plan& plan, const std::string& href_base) {
  Hasher h;
  if (!href_base.empty()) h.add(href_base);  // a world read from elsewhere has another catalog
  h.add(static_cast<std::int64_t>(s.seed)).add(std::int64_t{s.resolution_scale}).add(std::int64_t{s.year});
  for (double v : {s.s1_tile_deg, s.missing_fraction, s.cloud_fraction, s.acquisition_effects}) h.add(fmt::format("{}", v));
  h.add(name_str(s.layout)).add(std::int64_t{s.s2_scenes}).add(std::int64_t{s.s1_scenes});
  for (const TilePlan& t : plan.tiles) h.add(t.id.str());
  return h.hex();
}

}  // namespace

int run_synth(const SynthOptions& opts) {
  const auto config = start_command(opts.common, 0);
  if (!config) return kExitOk;
  const Plan plan = make_plan(load_aois(*config));
  const std::filesystem::path stamp = config->world_dir() / "synth.json", catalog = config->world_dir() / "catalog.jsonl";
  std::string href_base = opts.stac_hrefs;
  if (!href_base.empty()) {
    if (!href_base.starts_with("http://") && !href_base.starts_with("https://") && !href_base.starts_with("s3://"))
      throw ConfigError(fmt::format("--stac-hrefs {}: give an http(s):// or s3:// URL", href_base));
    if (config->synth.layout != WorldLayout::scenes)
      throw ConfigError("--stac-hrefs: only the scenes layout (synth.layout: scenes) publishes a STAC");
    if (!href_base.ends_with('/')) href_base += '/';
  }
  const std::string fingerprint = world_fingerprint(config->synth, plan, href_base);
  if (std::filesystem::exists(catalog) && !opts.force) {
    std::string written;
    if (std::filesystem::exists(stamp)) written = read_json_file(stamp).value("fingerprint", "");
    if (written != fingerprint)
      throw ConfigError(fmt::format("{} already holds a catalog{}; synth would replace it and the world's rasters. "
                                    "Give another output (--output or synth.output), or --force to replace them",
                                    catalog.string(), written.empty() ? " that synth did not write" : " of a world other settings made"));
  }
  spdlog::info("synthesising the world of {} tiles ({} chips) into {} at 1/{} native resolution (seed {})",
               plan.total.tiles, plan.total.chips, config->world_dir().string(), config->synth.resolution_scale,
               config->synth.seed);
  // Stamped first: synth interrupted and run again with the same settings goes ahead.
  write_atomically(stamp, nlohmann::json{{"fingerprint", fingerprint}}.dump() + "\n");
  const auto t0 = std::chrono::steady_clock::now();
  const synth::SynthReport report = synth::write_world(config->synth, config->world_dir(), plan,
                                                       [](const std::string& what) { spdlog::info("wrote {}", what); }, href_base);
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
