#pragma once
// What `run`, `todo` and `finalize` agree on for an output: the plan, the inputs, the
// model and its version, the cube that model's embeddings go to, and what a run does
// with each tile now (from the journal and the tile's fingerprint).

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "pipeline/core/config.hpp"
#include "pipeline/core/plan.hpp"
#include "schedulers/comm.hpp"
#include "pipeline/core/chip_batch.hpp"
#include "stages/chip/normalise.hpp"
#include "stages/chipstore/chipstore.hpp"
#include "stages/cube/cube.hpp"
#include "stages/cube/stac_out.hpp"
#include "stages/ingest/catalog.hpp"
#include "stages/model/embed.hpp"

namespace eo {

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

// The tile's chip store (OUTPUT/chips/<tile>.h5), open, when `prepare` made it from the
// tile's current inputs with this config's chip settings, holding every modality of the
// run as the chip stage makes it; otherwise null, and `why` says why not. Throws when
// the store cannot be read.
std::unique_ptr<ChipStoreReader> current_chip_store(const Config& config, const Catalog& catalog, const TilePlan& tile,
                                                    std::string& why);

// Calls `row` for each row of the store's chips, with the config's modalities: the rows
// read_tile makes from the sources, read instead of warped.
void read_chip_store_rows(const ChipStoreReader& store, const std::vector<Modality>& modalities,
                          const std::function<void(ChipBatch&&)>& row);

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
