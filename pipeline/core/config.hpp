#pragma once
// The run configuration: a plain spec struct read from YAML, checked completely before
// any work starts. Every error names the file, the key path and the line.

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <cstdint>
#include <map>
#include <optional>

#include "pipeline/core/aoi.hpp"
#include "pipeline/core/choices.hpp"
#include "pipeline/core/error.hpp"  // ConfigError
#include "pipeline/core/modality.hpp"

namespace eo {

struct AoiSpec {
  std::string name;
  std::filesystem::path file;  // resolved against the config file's folder
  std::string wkt;             // inline alternative to file
  int line = 0;                // where the entry starts, for messages
};

// Where inputs come from and how they become chips.
struct DataConfig {
  std::filesystem::path catalog;  // empty: the synthetic world's, <output>/world/catalog.jsonl
  std::vector<Modality> modalities = {Modality::s2rgb, Modality::s1amp, Modality::s1coh};
  double min_valid_fraction = 0.5;  // per chip and channel; below it the channel is no data
  std::map<Modality, Resampling> resampling;  // per modality as given; see resampling_of
  int normalisation_files = 16;     // source files sampled per modality for the statistics

  // The warp's resampling for `m`: as given, else the modality's default.
  Resampling resampling_of(Modality m) const;
};

// GDAL's warper.
struct WarpConfig {
  int threads = 0;        // warper threads per rank; 0: cores / ranks on the node
  int cache_mb = 256;     // per rank, each: decoded GeoTIFF blocks (stages/ingest/tiff_blocks), GDAL's block cache
  int memory_mb = 256;    // warper working memory (gdalwarp -wm)
};

// The synthetic world of `eo-pipeline synth`.
struct SynthConfig {
  std::uint64_t seed = 1;
  // 1: products at their native resolution (S2 10 m, S1 amplitude 0.0001 deg, labels
  // 10 m); k: k times coarser, for small machines (the coherence stays at 3 arc-seconds).
  int resolution_scale = 1;
  double s1_tile_deg = 0.5;       // S1 amplitude tiles (degrees)
  double missing_fraction = 0.1;  // share of source tiles left out, per modality
  double cloud_fraction = 0.15;   // share of S2 pixels under cloud, per season
  // 0..1: how strongly each acquisition varies what it sees of the same ground, per
  // sensor and season (S2 gain and haze, S1 calibration and incidence angle, coherence
  // loss to weather), as real scenes do; 0: every acquisition shows the ground alike.
  double acquisition_effects = 0;
  int year = 2021;
  std::filesystem::path output;   // empty: <output>/world
  // products: one ready-made raster per modality, season and place. scenes: as real data
  // is published (per-date S2 L2A and S1 RTC scenes with STAC ItemCollections, the global
  // coherence dataset's tiles, WorldCover tiles), composited by the pipeline.
  WorldLayout layout = WorldLayout::products;
  int s2_scenes = 3;              // scenes layout: S2 acquisitions per season
  int s1_scenes = 2;              // scenes layout: S1 acquisitions per season
};

// The model (stages/model): a preset and what may be changed of it.
struct ModelSection {
  ModelPreset preset = ModelPreset::nano;
  int input = 0;                // pixels per side the encoders see; 0: the preset's
  int dim = 0;                  // transformer width; 0: the preset's
  int depth = 0;                // transformer blocks; 0: the preset's
  int embed = 0;                // embedding dimensions per modality (the cube's); 0: the preset's
  std::optional<Pooling> pooling;  // none: the preset's
  bool channel_embed = true;    // a learned embedding per channel (ModelConfig::channel_embed)
  bool channel_proj = true;     // a learned projection per channel (ModelConfig::channel_proj)
  // The weight of each modality's reconstruction of its own chip from its embedding, beside
  // the cross-modal contrastive loss (ModelConfig::reconstruction); 0: the paper's loss alone.
  // 10 kept the most of what each modality sees on the demo, with channel projections and
  // standardised means and spreads (docs/decisions.md).
  double reconstruction = 10;
  int reconstruction_grid = 4;  // cells per side of the chip the decoders reconstruct
  bool reconstruction_spread = true;        // and each cell's spread beside its mean
  bool reconstruction_standardised = true;  // each target in units of its spread across chips
  // The weight of each modality's decoding of its chip's band statistics from its embedding,
  // in whitened units (ModelConfig::chip_statistics); 0: none.
  double chip_statistics = 0;
  Device device = Device::cpu;
  bool bf16 = false;            // mixed precision where the device supports it
  // The checkpoint `run` embeds with (a step-N.pt beside its step-N.json); empty: the
  // newest intact one of OUTPUT/pretrain/checkpoints.
  std::filesystem::path checkpoint;
  // Instead of a checkpoint, TorchScript encoders taking [N, 1, H, W]: a folder with
  // <modality>.pt for each modality (as `eo-pipeline export` writes, or scripted in
  // Python), and optionally normalisation.json, the statistics they expect.
  std::filesystem::path torchscript;
};

struct PretrainConfig {
  int batch = 16;             // chips per rank per step
  int steps = 200;
  double lr = 1e-3;
  double weight_decay = 0.05;
  int warmup = 10;
  double clip = 1.0;
  bool augment = true;
  double crop_min = 0.6;      // augment: random square crops of this to 1 times the chip side
  int checkpoint_every = 50;  // steps; a checkpoint is also written at the end
  int threads = 0;            // torch threads per rank; 0: cores / ranks on the node
  std::uint64_t seed = 1;
};

struct PrepareConfig {
  int max_attempts = 3;  // a failed tile is retried by later runs up to this many times
  // Chip store values: deflate (shuffle + deflate, 1.6x smaller) or none (7x faster to
  // read back, for `run --inputs chip-stores` and pretraining). Same values either way.
  Compression compression = Compression::deflate;
};

// The main job, `run`: embeddings into the cube.
struct RunConfig {
  CubeDtype dtype = CubeDtype::float32;  // int8 with a scale per chip
  int batch = 4;                  // chips per forward pass; passes run in parallel on the threads
  int threads = 0;                // torch threads per rank; 0: cores / ranks on the node
  int max_attempts = 3;           // a failed tile is retried by later runs up to this many times
  bool prefetch = true;           // read and warp the next tile while the model works
  // per-row: each row's chips through the model `batch` at a time, passes in parallel on
  // the threads (the same bits whatever the ranks and threads). across-tiles: chips of
  // consecutive rows and tiles fill each batch, copies to the device overlapped (large
  // batches for a GPU; an embedding's last bits may depend on its batch-mates). auto:
  // across-tiles where model.device is cuda, per-row elsewhere.
  Batching batching = Batching::automatic;
  // sources: warp every tile from its inputs. chip-stores: embed the chips `prepare`
  // stored (OUTPUT/chips) where a tile's store was made from its current inputs, and warp
  // only the others; the cube is the same bit for bit, so a new model need not warp again.
  ChipSource inputs = ChipSource::sources;
  // Empty: one cube per model, OUTPUT/cubes/<model version>.zarr, and OUTPUT/cube.zarr a
  // link to the newest model's. Set: this path, refused when it holds another model's.
  std::filesystem::path cube;
};

// `fewshot`: classical models on a few labelled chips' embeddings.
struct FewshotConfig {
  std::vector<int> sizes = {25, 50, 100, 250, 500, 1000};  // training chips; "all" is added
  int seeds = 3;                   // random draws of the training chips per size
  double split_angle = 30;         // degrees from east of the stripes' direction of travel
  int stripes = 20;                // equal-count stripes, a multiple of 5 (3 train, 1 validation, 1 test)
  double presence_threshold = 0.1;  // a class is present in a chip at this proportion
  double min_label_valid = 0.5;    // chips with less of their label raster valid have no target
  // The trees' histogram bins per feature (xgboost's max_bin). 256 (xgboost's default)
  // gives the published numbers; 32 runs the demo's sweep 3.3x faster with other numbers
  // (best-model mean R² within 0.032 of them: README, "Few-shot").
  int max_bin = 256;
};

struct Config {
  std::string source;                  // config file, or "<embedded demo.yaml>"
  std::string name = "eo-run";
  std::filesystem::path output = "out";  // relative to the working directory
  double pixel_size = 10.0;            // metres; 4480 must be a whole multiple
  std::vector<AoiSpec> aois;
  Partition partition = Partition::static_split;
  CurveOrder order = CurveOrder::hilbert;
  LogLevel log_level = LogLevel::info;
  DataConfig data;
  WarpConfig warp;
  SynthConfig synth;
  PrepareConfig prepare;
  ModelSection model;
  PretrainConfig pretrain;
  RunConfig run;
  FewshotConfig fewshot;

  int chip_pixels() const { return static_cast<int>(4480.0 / pixel_size + 0.5); }
  std::filesystem::path world_dir() const { return synth.output.empty() ? output / "world" : synth.output; }
  std::filesystem::path catalog_path() const {
    return data.catalog.empty() ? world_dir() / "catalog.jsonl" : data.catalog;
  }
  Resampling resampling(Modality m) const { return data.resampling_of(m); }
};

// Hash of everything in the config that changes chip values (grid, data, warp
// resampling); not of logging, scheduling or output paths.
std::string config_hash(const Config& config);

// The embedded default, configs/demo.yaml compiled into the executable.
const std::string& embedded_demo_config();
inline constexpr const char* kEmbeddedDemoName = "<embedded demo.yaml>";

// Parse and check. `base_dir` resolves relative input paths.
Config parse_config(const std::string& text, const std::string& source, const std::filesystem::path& base_dir);
Config load_config(const std::filesystem::path& file);
// The embedded demo when `file` is empty.
Config load_config_or_demo(const std::string& file);

// Reads every AOI of the config; ConfigError names the config key and line on failure.
std::vector<Aoi> load_aois(const Config& config);

// The resolved config, defaults filled in, as YAML that parse_config reads back.
std::string to_yaml(const Config& config);

}  // namespace eo
