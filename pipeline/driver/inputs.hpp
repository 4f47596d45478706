#pragma once
// What the per-tile commands (`prepare`, `run`) set up alike: the catalog, the
// fingerprint that says whether a tile's inputs changed, thread counts per rank, the
// normalisation statistics computed once per output, and the schedule.

#include <filesystem>
#include <string>

#include "pipeline/core/config.hpp"
#include "pipeline/core/plan.hpp"
#include "schedulers/comm.hpp"
#include "schedulers/tile_source.hpp"
#include "stages/chip/chipper.hpp"
#include "stages/chip/normalise.hpp"
#include "stages/ingest/catalog.hpp"

namespace eo {

// Threads per rank for a pool: `configured` when set, else the node's cores shared by
// the ranks on it.
int threads_per_rank(int configured, const Comm& comm);

// The data path's version: a new one when the chips the same inputs make change (a
// warp or composite change), so that `prepare` and `run` redo what an older build made,
// and `run --inputs chip-stores` never mixes an older build's chips with this one's.
// 2: per-axis kernel scale per source, the lattice warp (issue 17).
inline constexpr const char* kDataPathVersion = "data-path-2";

// Hash of the tile's planned chips, its input files (path, size, mtime), the config's
// chip-changing settings, the data path's version and `extra` (normalisation, model, ...).
std::string tile_fingerprint(const Catalog& catalog, const TilePlan& tile, const Config& config, const std::string& extra);

// The config's catalog; ConfigError saying how to make one when it is missing.
Catalog load_catalog(const Config& config);

// OUTPUT/normalisation.json, computed by rank 0 from the catalog when it is missing.
// Collective.
Normalisation ensure_normalisation(const Config& config, const Catalog& catalog, const Comm& comm);

// The config's schedule section.
ScheduleSpec schedule_spec(const Config& config);

// How the chip stage reads tiles under this config, with `threads` warper threads.
TileReadOptions tile_read_options(const Config& config, int threads);

// The cube `fewshot` and `render` read: --cube, else run.cube, else OUTPUT/cube.zarr;
// ConfigError when there is none.
std::filesystem::path cube_to_read(const Config& config, const std::string& option);

}  // namespace eo
