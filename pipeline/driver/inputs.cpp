#include "pipeline/driver/inputs.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <thread>

#include "pipeline/core/hash.hpp"
#include "schedulers/partition.hpp"
#include "stages/chip/chipper.hpp"

namespace eo {

int threads_per_rank(int configured, const Comm& comm) {
  if (configured > 0) return configured;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / comm.ranks_on_node());
}

std::string tile_fingerprint(const Catalog& catalog, const TilePlan& tile, const Config& config,
                             const std::string& extra) {
  Hasher h;
  h.add(tile.id.str()).add(chip_mask_hex(tile.chips)).add(config_hash(config)).add(kDataPathVersion).add(extra);
  for (const auto& path : tile_sources(catalog, tile, config.data.modalities)) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    const auto mtime = std::filesystem::last_write_time(path, ec);
    h.add(path.string()).add(static_cast<std::int64_t>(ec ? -1 : static_cast<std::int64_t>(size)))
        .add(static_cast<std::int64_t>(ec ? 0 : mtime.time_since_epoch().count()));
  }
  return h.hex();
}

Catalog load_catalog(const Config& config) {
  const auto file = config.catalog_path();
  if (!std::filesystem::is_regular_file(file))
    throw ConfigError(fmt::format("{}: data.catalog: no catalog at {} (run `eo-pipeline synth` for the synthetic "
                                  "world, or `eo-pipeline catalog` over a folder of real rasters)",
                                  config.source, file.string()));
  return Catalog::load(file);
}

Normalisation ensure_normalisation(const Config& config, const Catalog& catalog, const Comm& comm) {
  const auto file = config.output / "normalisation.json";
  if (comm.rank() == 0 && !std::filesystem::exists(file)) {
    spdlog::info("computing normalisation statistics from up to {} files per modality and season",
                 config.data.normalisation_files);
    compute_normalisation(catalog, config.data.modalities, config.data.normalisation_files,
                          [](const std::string& w) { spdlog::warn("{}", w); })
        .save(file);
  }
  comm.barrier();
  return Normalisation::load(file);
}

ScheduleSpec schedule_spec(const Config& config) {
  ScheduleSpec spec;
  spec.partition = config.partition;
  spec.order = parse_curve_order(config.order);
  return spec;
}

TileReadOptions tile_read_options(const Config& config, int threads) {
  return TileReadOptions::from(config.pixel_size, config.data, config.warp, threads);
}

std::filesystem::path cube_to_read(const Config& config, const std::string& option) {
  const std::filesystem::path cube = !option.empty()           ? std::filesystem::path(option)
                                     : !config.run.cube.empty() ? config.run.cube
                                                                : config.output / "cube.zarr";
  if (!std::filesystem::exists(cube / ".zattrs"))
    throw ConfigError(fmt::format("{}: no cube at {}: run `eo-pipeline run` first", config.source, cube.string()));
  return cube;
}

}  // namespace eo
