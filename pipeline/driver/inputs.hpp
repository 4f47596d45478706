#pragma once
// What the per-tile commands set up, in the order they set it up: `prepare` and `run`
// alike (the catalog, the fingerprint that says whether a tile's inputs changed, threads
// per rank, the normalisation statistics computed once per output, the schedule), then
// what `run`, `todo` and `finalize` agree on for an output (the plan, the inputs, the
// model and its version, the cube its embeddings go to, the cube's STAC), and the
// downstream commands' cube.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "pipeline/core/config.hpp"
#include "pipeline/core/lock.hpp"
#include "pipeline/core/plan.hpp"
#include "schedulers/comm.hpp"
#include "schedulers/tile_source.hpp"
#include "stages/chip/chipper.hpp"
#include "stages/chip/normalise.hpp"
#include "stages/cube/cube.hpp"
#include "stages/ingest/catalog.hpp"
#include "stages/model/embed.hpp"

namespace eo {

// Threads per rank for a pool: `configured` when set, else the node's cores shared by
// the ranks on it.
int threads_per_rank(int configured, const Comm& comm);

// The data path's version: a new one when the chips the same inputs make change (a
// warp or composite change), so that `prepare` and `run` redo what an older build made,
// and `run --inputs chip-stores` never mixes an older build's chips with this one's.
// 2: per-axis kernel scale per source, the lattice warp (issue 17).
inline constexpr const char* kDataPathVersion = "data-path-2";

// Hash of the tile's planned chips, its input files (path, the publisher's version where
// the catalog has one; a local file's size and mtime, a remote one's size and ETag where
// the catalog has none), the config's
// chip-changing settings, the data path's version and `extra` (normalisation, model, ...).
std::string tile_fingerprint(const Catalog& catalog, const TilePlan& tile, const Config& config, const std::string& extra);

// The output's lock (DESIGN.md §5), taken by rank 0 for `what` (the command, its ranks)
// and held while `lock` lives: one `run` or `prepare` writes an output at a time, and the
// tasks of one SLURM job array share it. Returns why it was refused, on every rank, or "".
// Collective.
std::string take_output_lock(const Config& config, const std::string& what, const Comm& comm,
                             std::optional<OutputLock>& lock);

// The config's catalog; ConfigError saying how to make one when it is missing.
Catalog load_catalog(const Config& config);

// OUTPUT/normalisation.json, computed by rank 0 from the catalog when it is missing.
// Collective.
Normalisation ensure_normalisation(const Config& config, const Catalog& catalog, const Comm& comm);

// The config's schedule section.
ScheduleSpec schedule_spec(const Config& config);

// How the chip stage reads tiles under this config, with `threads` warper threads.
TileReadOptions tile_read_options(const Config& config, int threads);

// The cube `fewshot`, `render` and `similar` read: --cube, else run.cube, else OUTPUT/cube.zarr;
// ConfigError when there is none.
std::filesystem::path cube_to_read(const Config& config, const std::string& option);

// ---- `run`'s, `todo`'s and `finalize`'s

struct RunInputs {
  Plan plan;
  Catalog catalog;
  ModelCard card;
  Normalisation norm;
  std::string model_hash;     // the checkpoint's and its normalisation statistics'
  std::string model_version;  // <preset>-<checkpoint>-<hash prefix>: names the model's cube
  CubeSpec spec;
  std::filesystem::path cube;  // where this model's embeddings go
};

// Reads the plan, catalog and model. Collective: the output's normalisation statistics
// may be computed once, by rank 0.
RunInputs load_run_inputs(const Config& config, const Comm& comm);

// The fingerprint `run` records for a tile: its inputs, and the model and the cube's
// dtype, which change what its chunks hold.
std::string run_fingerprint(const RunInputs& in, const Config& config, const TilePlan& tile);

// Creates (or checks) the model's cube and, for the default path, points OUTPUT/cube.zarr
// at it. By the one setting the output up, before any tile is written.
void set_up_cube(const Config& config, const RunInputs& in);

// Writes the cube's STAC (stages/cube/stac_out.hpp) from what it holds now, linking each
// tile's Item to the catalogued files of the observations its provenance names. By one
// process, once no rank writes tiles any more (the end of `run`, or `finalize`). Returns
// the report's entry: the collection and its items, or the error (logged) that stopped it.
nlohmann::json describe_cube(const RunInputs& in);

// An environment variable's value, or `fallback` when it is unset or empty.
std::string env_or(const char* name, const std::string& fallback);

// A SLURM array and the arrays finalize resubmits after it are one chain: EO_RUN_CHAIN
// (set by slurm/submit.sh), else the array's job id. The reports of its tasks gather in
// OUTPUT/run/tasks/<chain>/ for finalize.
std::string array_chain();
std::filesystem::path array_reports_dir(const std::filesystem::path& output, const std::string& chain);

}  // namespace eo
