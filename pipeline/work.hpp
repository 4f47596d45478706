#pragma once
// What the per-tile commands (`prepare`, `run`) share: the tiles a rank takes, the
// fingerprint that says whether a tile's inputs changed, thread counts per rank, and the
// normalisation statistics computed once per output.

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/config.hpp"
#include "pipeline/plan.hpp"
#include "schedulers/comm.hpp"
#include "stages/chip/normalise.hpp"
#include "stages/ingest/catalog.hpp"

namespace eo {

// Threads per rank for a pool: `configured` when set, else the node's cores shared by
// the ranks on it.
int threads_per_rank(int configured, const Comm& comm);

// Hash of the tile's planned chips, its input files (path, size, mtime), the config's
// chip-changing settings and `extra` (normalisation, model, ...).
std::string tile_fingerprint(const Catalog& catalog, const TilePlan& tile, const Config& config, const std::string& extra);

// The config's catalog; ConfigError saying how to make one when it is missing.
Catalog load_catalog(const Config& config);

// OUTPUT/normalisation.json, computed by rank 0 from the catalog when it is missing.
// Collective.
Normalisation ensure_normalisation(const Config& config, const Catalog& catalog, const Comm& comm);

// The tiles this rank works on, in order: a fixed list (static, slurm-array) or a queue
// shared by all ranks (dynamic). Collective to create.
class TileSource {
 public:
  TileSource(const Config& config, const Plan& plan, const Comm& comm);
  std::optional<std::size_t> next();
  // The tiles of the whole job: the plan's, or an array task's block.
  std::size_t job_tiles() const { return job_tiles_; }

 private:
  std::optional<DynamicQueue> queue_;
  std::vector<std::size_t> list_;
  std::size_t pos_ = 0;
  std::size_t job_tiles_ = 0;
};

// Files named `.tmp.*` that a killed run left in `dir`, removed.
void remove_stale_temporaries(const std::filesystem::path& dir);

double seconds_since(std::chrono::steady_clock::time_point t0);
double peak_rss_mib();
// Resident memory now (/proc/self/statm), to see whether it grows from tile to tile.
double current_rss_mib();

}  // namespace eo
