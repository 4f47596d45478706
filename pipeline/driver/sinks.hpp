#pragma once
// The sinks the per-tile commands hand the tile loop (driver/tile_loop.hpp): a tile's rows
// into its cube chunks (`run`), or into its chip store (`prepare`). Every sink passes the
// same conformance test (tests/pipeline/driver/test_sinks.cpp): a tile begun, its rows
// added and finished gives its outputs and an outcome; a failed tile publishes nothing
// but what says it failed; the same tile again gives what a first try would have.

#include <filesystem>
#include <memory>

#include "pipeline/core/config.hpp"
#include "pipeline/driver/tile_loop.hpp"
#include "stages/chip/normalise.hpp"
#include "stages/cube/cube.hpp"
#include "stages/model/embed.hpp"

namespace eo {

// Whether `run` fills the model's batches across rows and tiles: run.batching, where
// auto means across tiles on CUDA (large batches pay there) and row by row elsewhere.
bool batches_across_tiles(const Config& config);

// A tile's rows through the model into its cube chunks: row by row (each row's chips
// `run.batch` at a time, the same bits whatever the ranks and threads), or with
// `across_tiles` in full batches of chips of consecutive rows and tiles (Embedder::Stream;
// the sink defers: a tile is written, and journalled, once its last batch is back).
// Chips with less than `min_valid` of a channel valid have no data.
std::unique_ptr<TileSink> make_embed_sink(bool across_tiles, const RunConfig& run, double min_valid,
                                          const CubeSpec& spec, const Embedder& embedder, const Normalisation& norm,
                                          const CubeWriter& cube);

// A tile's rows into its chip store, `dir`/<tile>.h5, published when the tile has chips
// with data; the store records `norm` and the config's chip settings.
std::unique_ptr<TileSink> make_chip_store_sink(const Config& config, std::filesystem::path dir,
                                               const Normalisation& norm);

}  // namespace eo
