#include "pipeline/work.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <thread>

#include "pipeline/hash.hpp"
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
  h.add(tile.id.str()).add(chip_mask_hex(tile.chips)).add(config_hash(config)).add(extra);
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

TileSource::TileSource(const Config& config, const Plan& plan, const Comm& comm) : job_tiles_(plan.tiles.size()) {
  const CurveOrder order = parse_curve_order(config.order);
  if (config.partition == "dynamic") {
    queue_.emplace(comm, curve_order(plan.tiles, order));
  } else if (config.partition == "slurm-array") {
    const ArrayTask task = array_task_from_env();
    std::vector<TilePlan> block;
    std::vector<std::size_t> index = slurm_array_tiles(plan.tiles, task, order);
    job_tiles_ = index.size();
    for (std::size_t i : index) block.push_back(plan.tiles[i]);
    // Named: a range-for over a temporary's element outlives the temporary (until C++23).
    const Assignment within = static_partition(block, comm.size(), order);
    for (std::size_t i : within[static_cast<std::size_t>(comm.rank())]) list_.push_back(index[i]);
  } else {
    list_ = static_partition(plan.tiles, comm.size(), order)[static_cast<std::size_t>(comm.rank())];
  }
}

std::optional<std::size_t> TileSource::next() {
  if (queue_) return queue_->next();
  if (pos_ < list_.size()) return list_[pos_++];
  return std::nullopt;
}

void remove_stale_temporaries(const std::filesystem::path& dir) {
  if (!std::filesystem::is_directory(dir)) return;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename().string().rfind(".tmp.", 0) == 0) {
      spdlog::info("removing {}, left by an interrupted run", e.path().string());
      std::filesystem::remove(e.path());
    }
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double current_rss_mib() {
  long pages = 0, resident = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

}  // namespace eo
