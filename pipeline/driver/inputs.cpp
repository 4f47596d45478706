#include "pipeline/driver/inputs.hpp"

#include <fmt/format.h>
#include <set>
#include <spdlog/spdlog.h>
#include <thread>

#include "pipeline/core/files.hpp"
#include "pipeline/core/hash.hpp"
#include "schedulers/partition.hpp"
#include "stages/cube/stac_out.hpp"
#include "stages/ingest/remote.hpp"

namespace eo {

namespace fs = std::filesystem;

int threads_per_rank(int configured, const Comm& comm) {
  if (configured > 0) return configured;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / comm.ranks_on_node());
}

std::string tile_fingerprint(const Catalog& catalog, const TilePlan& tile, const Config& config,
                             const std::string& extra) {
  Hasher h;
  h.add(tile.id.str()).add(chip_mask_hex(tile.chips)).add(config_hash(config)).add(kDataPathVersion).add(extra);
  for (const auto& [path, version] : tile_inputs(catalog, tile, config.data.modalities)) {
    h.add(path.string());
    if (!version.empty()) h.add(version);  // only then: fingerprints of files with none stay as they were
    if (is_remote_path(path.string())) {
      // What the publisher says is enough; else the object store's size and ETag (one
      // request per object per run, whose bytes the reading needs anyway).
      if (!version.empty()) continue;
      const auto object = remote_object_info(path.string());
      take_remote_failure();  // unreadable: the tile is tried, and its read says why
      h.add(object ? object->size : -1).add(object ? object->etag : "");
      continue;
    }
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    const auto mtime = std::filesystem::last_write_time(path, ec);
    h.add(static_cast<std::int64_t>(ec ? -1 : static_cast<std::int64_t>(size)))
        .add(static_cast<std::int64_t>(ec ? 0 : mtime.time_since_epoch().count()));
  }
  return h.hex();
}

namespace {

// The tasks of one SLURM job array share the output (see OutputLock); a plain run has it
// alone.
std::string lock_group(const Config& config) {
  if (config.partition != Partition::slurm_array) return "";
  const std::string job = env_or("SLURM_ARRAY_JOB_ID", "");
  if (job.empty())
    throw ConfigError("SLURM_ARRAY_JOB_ID is not set: the slurm-array partition runs inside a SLURM job array "
                      "(see slurm/submit.sh)");
  return "slurm-array-" + job;
}

}  // namespace

std::string take_output_lock(const Config& config, const std::string& what, const Comm& comm,
                             std::optional<OutputLock>& lock) {
  return comm.rank_zero_tries([&]() -> std::string {
    try {
      lock.emplace(config.output / "run.lock", what, lock_group(config));
    } catch (const LockedError& e) {
      return e.what();
    }
    return "";
  });
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
  comm.rank_zero_tries([&] {
    if (fs::exists(file)) return;
    spdlog::info("computing normalisation statistics from up to {} files per modality and season",
                 config.data.normalisation_files);
    compute_normalisation(catalog, config.data.modalities, config.data.normalisation_files,
                          [](const std::string& w) { spdlog::warn("{}", w); }, threads_per_rank(config.warp.threads, comm))
        .save(file);
  });
  return Normalisation::load(file);
}

ScheduleSpec schedule_spec(const Config& config) {
  ScheduleSpec spec;
  spec.partition = config.partition;
  spec.order = config.order;
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

namespace {

// The model's statistics, saved beside its checkpoints by `pretrain` (or exported with
// it); older checkpoints, and TorchScript encoders without them, fall back to the
// output's, which must then be the ones the model was trained with.
Normalisation model_normalisation(const ModelCard& card, const Config& config, const Catalog& catalog, const Comm& comm) {
  const fs::path beside = model_normalisation_file(card);
  const Normalisation norm = fs::exists(beside) ? Normalisation::load(beside) : ensure_normalisation(config, catalog, comm);
  if (!card.normalisation.empty() && norm.hash() != card.normalisation)
    throw ConfigError(fmt::format("{}: the model was trained with other normalisation statistics than {} holds",
                                  card.checkpoint.string(), fs::exists(beside) ? beside.string()
                                                                              : (config.output / "normalisation.json").string()));
  return norm;
}

}  // namespace

RunInputs load_run_inputs(const Config& config, const Comm& comm) {
  RunInputs in;
  in.plan = make_plan(load_aois(config));
  in.catalog = load_catalog(config);
  in.card = find_model(config);
  for (Modality m : config.data.modalities)
    if (std::find(in.card.modalities.begin(), in.card.modalities.end(), m) == in.card.modalities.end())
      throw ConfigError(fmt::format("{}: data.modalities: {} is not a modality of the model {}", config.source,
                                    info(m).name, in.card.checkpoint.string()));
  in.norm = model_normalisation(in.card, config, in.catalog, comm);
  in.model_hash = Hasher().add(in.card.hash).add(in.norm.hash()).hex();
  in.model_version = fmt::format("{}-{}-{}", in.card.name, in.card.checkpoint.stem().string(), in.model_hash.substr(0, 8));
  in.cube = config.run.cube.empty() ? config.output / "cubes" / (in.model_version + ".zarr") : config.run.cube;

  CubeSpec& spec = in.spec;
  for (const TilePlan& t : in.plan.tiles)
    if (std::find(spec.zones.begin(), spec.zones.end(), t.id.zone) == spec.zones.end()) spec.zones.push_back(t.id.zone);
  spec.modalities = config.data.modalities;
  spec.dim = in.card.dim;
  spec.dtype = config.run.dtype;
  spec.chip_pixels = config.chip_pixels();
  spec.pixel_size = config.pixel_size;
  spec.provenance = {{"model", in.card.name}, {"model_version", in.model_version}, {"model_hash", in.model_hash},
                     {"checkpoint", fs::absolute(in.card.checkpoint).string()}, {"config_hash", config_hash(config)},
                     {"config_name", config.name}, {"software", "eo-pipeline " EO_VERSION}};
  // What the cube's descriptions (geoemb:, STAC) link to as its model and its sources.
  const fs::path card = fs::path(in.card.checkpoint).replace_extension(".json");
  spec.provenance["model_card"] = fs::absolute(fs::exists(card) ? card : in.card.checkpoint).lexically_normal().string();
  spec.provenance["source_catalog"] = fs::absolute(config.catalog_path()).lexically_normal().string();
  return in;
}

std::string run_fingerprint(const RunInputs& in, const Config& config, const TilePlan& tile) {
  return tile_fingerprint(in.catalog, tile, config, Hasher().add(in.model_hash).add(name_str(config.run.dtype)).hex());
}

void set_up_cube(const Config& config, const RunInputs& in) {
  create_cube(in.cube, in.spec);
  if (!config.run.cube.empty()) return;
  // OUTPUT/cube.zarr, the path DESIGN.md §4 gives, names the newest model's cube; older
  // models' cubes stay under cubes/. A relative link, so the output can be moved.
  const fs::path link = config.output / "cube.zarr", target = fs::path("cubes") / in.cube.filename();
  std::error_code ec;
  if (fs::is_symlink(link, ec) && fs::read_symlink(link, ec) == target) return;
  if (fs::exists(fs::symlink_status(link, ec)) && !fs::is_symlink(link, ec)) {
    spdlog::warn("{} is not a link (an output of an older eo-pipeline?): left alone; this model's cube is {}",
                 link.string(), in.cube.string());
    return;
  }
  PendingFile pending(link);  // a reader sees the old cube or the new one
  fs::create_directory_symlink(target, pending.temporary());
  pending.publish();
  spdlog::info("{} now names {}", link.string(), in.cube.string());
}

nlohmann::json describe_cube(const RunInputs& in) {
  const TileSources sources = [&](const TileId& tile, const nlohmann::json& provenance) {
    std::vector<StacSource> out;
    std::set<std::filesystem::path> files;
    const LonLatBox box = lonlat_bounds(tile.zone, tile.bounds());
    if (!provenance.contains("modalities")) return out;
    for (const auto& [name, seasons] : provenance["modalities"].items()) {
      const Modality m = parse_modality(name);
      for (const auto& [season_text, observations] : seasons.items()) {
        int season = 0;
        while (season < kSeasons && season_name(season) != season_text) ++season;
        std::set<std::string> ids;
        for (const auto& o : observations) ids.insert(o.value("id", std::string()));
        for (const SourceRecord* r : in.catalog.query(m, season, box)) {
          if (!ids.count(r->observation())) continue;
          const std::string what = fmt::format("{} {}: {}", name, season_text, r->observation());
          if (files.insert(r->path).second)
            out.push_back({r->path.string(), r->asset.empty() ? what : what + " (" + r->asset + ")"});
          if (r->mask && files.insert(r->mask->path).second) out.push_back({r->mask->path.string(), what + " (mask)"});
        }
      }
    }
    return out;
  };
  try {
    const StacWritten written = write_cube_stac(in.cube, sources);
    return {{"collection", written.collection.string()}, {"items", written.items}};
  } catch (const std::exception& e) {
    spdlog::error("the cube's STAC was not written: {}", e.what());
    return {{"error", e.what()}};
  }
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::string array_chain() {
  const std::string chain = env_or("EO_RUN_CHAIN", env_or("SLURM_ARRAY_JOB_ID", ""));
  if (chain.empty()) throw ConfigError("neither EO_RUN_CHAIN nor SLURM_ARRAY_JOB_ID is set: not inside a SLURM job array");
  if (chain.find_first_of("/\\ ") != std::string::npos || chain.starts_with("."))
    throw ConfigError(fmt::format("EO_RUN_CHAIN='{}' is not a plain name", chain));
  return chain;
}

fs::path array_reports_dir(const fs::path& output, const std::string& chain) { return output / "run" / "tasks" / chain; }

}  // namespace eo
