// `eo-pipeline plan`: the chips and tiles of a run, their areas, and how they split
// across ranks, before any compute is spent.

#include <chrono>
#include <fmt/format.h>
#include <iostream>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "pipeline/commands/commands.hpp"
#include "pipeline/core/plan.hpp"
#include "schedulers/partition.hpp"

namespace eo {

namespace {

nlohmann::json stats_json(const AreaStats& s) {
  return {{"tiles", s.tiles}, {"chips", s.chips}, {"gross_km2", s.gross_km2}, {"net_km2", s.net_km2},
          {"land_fraction", s.net_km2 / kEarthLandKm2}};
}

void print_row(const std::string& label, const AreaStats& s) {
  std::cout << fmt::format("  {:<14} {:>8} {:>10} {:>14.0f} {:>14.0f} {:>8.3f}%\n", label, s.tiles, s.chips,
                           s.gross_km2, s.net_km2, 100.0 * s.net_km2 / kEarthLandKm2);
}

void print_header(const std::string& what) {
  std::cout << fmt::format("  {:<14} {:>8} {:>10} {:>14} {:>14} {:>9}\n", what, "tiles", "chips", "km2 gross",
                           "km2 net", "of land");
}

}  // namespace

int run_plan(const PlanOptions& opts) {
  const auto config = start_command(opts.common, 0);
  if (!config) return kExitOk;

  const auto t0 = std::chrono::steady_clock::now();
  const Plan plan = make_plan(load_aois(*config));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const std::filesystem::path tiles_file =
      opts.tiles_file.empty() ? config->output / "plan" / "tiles.jsonl" : std::filesystem::path(opts.tiles_file);
  write_tiles_jsonl(plan, tiles_file);
  write_resolved_config(*config, tiles_file.parent_path() / "config.yaml");
  for (std::size_t a = 0; a < plan.aois.size(); ++a)
    spdlog::debug("AOI {} ({}): {} chips in {} tiles over {} zones", plan.aois[a].name, plan.aois[a].source,
                  plan.per_aoi[a].chips, plan.per_aoi[a].tiles, plan.per_aoi_zone[a].size());
  spdlog::info("planned {} tiles, {} chips in {:.2f} s; tile list in {}", plan.total.tiles, plan.total.chips,
               seconds, tiles_file.string());

  nlohmann::json summary = {{"config", config->source}, {"seconds", seconds}, {"tiles_file", tiles_file.string()},
                            {"total", stats_json(plan.total)}, {"chip_pixels", config->chip_pixels()},
                            {"pixel_size_m", config->pixel_size}};
  for (std::size_t a = 0; a < plan.aois.size(); ++a) {
    nlohmann::json zones;
    for (const auto& [zone, s] : plan.per_aoi_zone[a]) zones[zone.name()] = stats_json(s);
    summary["aois"][plan.aois[a].name] = stats_json(plan.per_aoi[a]);
    summary["aois"][plan.aois[a].name]["zones"] = zones;
    summary["aois"][plan.aois[a].name]["polygon_km2"] = spherical_area_km2(plan.aois[a].polygons);
  }
  for (const auto& [zone, s] : plan.per_zone) summary["zones"][zone.name()] = stats_json(s);

  if (!opts.json) {
    std::cout << fmt::format("Plan of {} ({} AOIs, chips of {} x {} px at {} m)\n", config->source, plan.aois.size(),
                             config->chip_pixels(), config->chip_pixels(), config->pixel_size);
    std::cout << "\nPer AOI (km2 net: zone-border overlap removed)\n";
    print_header("aoi");
    for (std::size_t a = 0; a < plan.aois.size(); ++a) print_row(plan.aois[a].name, plan.per_aoi[a]);
    std::cout << "\nPer UTM zone (all AOIs, shared chips counted once)\n";
    print_header("zone");
    for (const auto& [zone, s] : plan.per_zone) print_row(fmt::format("{} EPSG:{}", zone.name(), zone.epsg()), s);
    std::cout << '\n';
    print_row("total", plan.total);
    std::cout << fmt::format("\n{:.3f}% of Earth's land (148.9M km2). Tile list: {}\n",
                             100.0 * plan.total.net_km2 / kEarthLandKm2, tiles_file.string());
  }

  if (opts.ranks > 0) {
    const Partition scheme = opts.partition.value_or(config->partition);
    const CurveOrder order = opts.order.value_or(config->order);
    Assignment assignment;
    if (scheme == Partition::dynamic) {
      assignment = simulate_dynamic(plan.tiles, opts.ranks, order);
    } else if (scheme == Partition::slurm_array) {
      for (int task = 0; task < opts.ranks; ++task)
        assignment.push_back(slurm_array_tiles(plan.tiles, {task, opts.ranks}, order));
    } else {
      assignment = static_partition(plan.tiles, opts.ranks, order);
    }
    const Balance b = balance_of(assignment, plan.tiles);
    const char* unit = scheme == Partition::slurm_array ? "array task" : "rank";
    summary["partition"] = {{"scheme", name_str(scheme)}, {"ranks", opts.ranks}, {"chips", b.chips}, {"tiles", b.tiles},
                            {"imbalance", b.imbalance}};
    if (!opts.json) {
      std::cout << fmt::format("\nPartition {} over {} {}s ({} order){}\n", name_of(scheme), opts.ranks, unit,
                               name_of(order), scheme == Partition::dynamic ? ", simulated with equal cost per chip" : "");
      const std::size_t shown = std::min<std::size_t>(b.chips.size(), 64);
      for (std::size_t r = 0; r < shown; ++r)
        std::cout << fmt::format("  {} {:>5}: {:>7} chips in {:>5} tiles\n", unit, r, b.chips[r], b.tiles[r]);
      if (shown < b.chips.size()) std::cout << fmt::format("  ... {} more\n", b.chips.size() - shown);
      std::cout << fmt::format("  imbalance (max/mean chips): {:.4f}\n", b.imbalance);
    }
  }
  if (opts.json) std::cout << summary.dump(2) << '\n';
  return kExitOk;
}

}  // namespace eo
