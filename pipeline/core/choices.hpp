#pragma once
// The choices of the config and the command line, each with its one table of names
// (pipeline/core/choice.hpp): the first name of a value is the canonical one, and the
// canonical names are the ones outputs and hashes always carried, so that a typed config
// hashes and writes as the strings did.

#include "pipeline/core/choice.hpp"

namespace eo {

// GDAL's warp resampling (gdalwarp -r); every one of GDAL 3.6's is accepted.
enum class Resampling { near, bilinear, cubic, cubicspline, lanczos, average, rms, mode, max, min, med, q1, q3, sum };
template <>
struct ChoiceTable<Resampling> {
  static constexpr std::string_view what = "a resampling method";
  static constexpr ChoiceName<Resampling> names[] = {
      {"near", Resampling::near},                              {"nearest", Resampling::near},
      {"bilinear", Resampling::bilinear},                      {"cubic", Resampling::cubic},
      {"cubicspline", Resampling::cubicspline},                {"lanczos", Resampling::lanczos},
      {"average", Resampling::average},                        {"rms", Resampling::rms},
      {"mode", Resampling::mode},                              {"max", Resampling::max},
      {"min", Resampling::min},                                {"med", Resampling::med},
      {"median", Resampling::med},                             {"q1", Resampling::q1},
      {"q3", Resampling::q3},                                  {"sum", Resampling::sum}};
};

// How the plan's tiles are shared among ranks (schedule.partition).
enum class Partition { static_split, dynamic, slurm_array };
template <>
struct ChoiceTable<Partition> {
  static constexpr std::string_view what = "a partition";
  static constexpr ChoiceName<Partition> names[] = {{"static", Partition::static_split},
                                       {"dynamic", Partition::dynamic},
                                       {"slurm-array", Partition::slurm_array}};
};

// The space-filling curve that keeps a rank's tiles together (schedule.order).
enum class CurveOrder { hilbert, morton };
template <>
struct ChoiceTable<CurveOrder> {
  static constexpr std::string_view what = "a curve order";
  static constexpr ChoiceName<CurveOrder> names[] = {{"hilbert", CurveOrder::hilbert},
                                       {"morton", CurveOrder::morton}};
};

enum class LogLevel { debug, info, warn, error };
template <>
struct ChoiceTable<LogLevel> {
  static constexpr std::string_view what = "a log level";
  static constexpr ChoiceName<LogLevel> names[] = {{"debug", LogLevel::debug}, {"info", LogLevel::info},
                                       {"warn", LogLevel::warn},                        {"warning", LogLevel::warn},
                                       {"error", LogLevel::error}};
};

// How the synthetic world is published (synth.layout).
enum class WorldLayout { products, scenes };
template <>
struct ChoiceTable<WorldLayout> {
  static constexpr std::string_view what = "a world layout";
  static constexpr ChoiceName<WorldLayout> names[] = {{"products", WorldLayout::products},
                                       {"scenes", WorldLayout::scenes}};
};

// Chip store values (prepare.compression).
enum class Compression { deflate, none };
template <>
struct ChoiceTable<Compression> {
  static constexpr std::string_view what = "a chip store compression";
  static constexpr ChoiceName<Compression> names[] = {{"deflate", Compression::deflate},
                                       {"none", Compression::none}};
};

enum class ModelPreset { nano, tiny, small, base, paper };
template <>
struct ChoiceTable<ModelPreset> {
  static constexpr std::string_view what = "a model preset";
  static constexpr ChoiceName<ModelPreset> names[] = {{"nano", ModelPreset::nano}, {"tiny", ModelPreset::tiny},
                                       {"small", ModelPreset::small},                      {"base", ModelPreset::base},
                                       {"paper", ModelPreset::paper}};
};

// An encoder's summary of its tokens: the class token's, or the mean of the patches'.
enum class Pooling { cls, mean };
template <>
struct ChoiceTable<Pooling> {
  static constexpr std::string_view what = "a pooling";
  static constexpr ChoiceName<Pooling> names[] = {{"cls", Pooling::cls}, {"mean", Pooling::mean}};
};

enum class Device { cpu, cuda };
template <>
struct ChoiceTable<Device> {
  static constexpr std::string_view what = "a device";
  static constexpr ChoiceName<Device> names[] = {{"cpu", Device::cpu}, {"cuda", Device::cuda}};
};

// The cube's embedding values (run.dtype); int8 with a scale per chip.
enum class CubeDtype { float32, float16, int8 };
template <>
struct ChoiceTable<CubeDtype> {
  static constexpr std::string_view what = "an embedding dtype";
  static constexpr ChoiceName<CubeDtype> names[] = {{"float32", CubeDtype::float32},
                                       {"float16", CubeDtype::float16},
                                       {"int8", CubeDtype::int8}};
};

// How `run` fills the model's batches (run.batching).
enum class Batching { automatic, per_row, across_tiles };
template <>
struct ChoiceTable<Batching> {
  static constexpr std::string_view what = "a batching";
  static constexpr ChoiceName<Batching> names[] = {{"auto", Batching::automatic},
                                       {"per-row", Batching::per_row},
                                       {"across-tiles", Batching::across_tiles}};
};

// Where `run` takes a tile's chips from (run.inputs).
enum class ChipSource { sources, chip_stores };
template <>
struct ChoiceTable<ChipSource> {
  static constexpr std::string_view what = "an input of run";
  static constexpr ChoiceName<ChipSource> names[] = {{"sources", ChipSource::sources},
                                       {"chip-stores", ChipSource::chip_stores}};
};

}  // namespace eo
