// Every sink of the tile loop passes one conformance test (TensorStore's way with its
// drivers): `run`'s row-by-row and across-tiles sinks (for every run.batching, with
// TorchScript encoders exported by LibTorch) and `prepare`'s chip store sink (for every
// prepare.compression). A tile begun, its rows added and finished comes to an outcome
// that counts its chips and leaves its outputs; a failed tile leaves only what says it
// failed and keeps its error; the same tile again gives, file for file, what a clean
// first try gives; two tiles in a row come out in order.

#include <gtest/gtest.h>

#include <algorithm>
#include <fmt/format.h>
#include <fstream>
#include <functional>
#include <random>
#include <set>

#include "pipeline/core/error.hpp"
#include "pipeline/driver/sinks.hpp"
#include "stages/chip/chipper.hpp"
#include "stages/chipstore/chipstore.hpp"
#include "stages/model/torchscript.hpp"
#include "support/plans.hpp"
#include "support/temp_dir.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;

const std::string kConfig = R"(name: sinks
grid:
  pixel_size: 560
aois:
  - name: a
    wkt: POLYGON((-121 36.6, -120.9 36.6, -120.9 36.7, -121 36.7, -121 36.6))
model:
  input: 16
run:
  batch: 3
)";

// The rows of a tile's planned chips, one row of the tile's grid each, with values drawn
// from the tile's id: every third chip has no valid pixel of any channel.
std::vector<ChipBatch> rows_of(const TilePlan& tile, const Config& config) {
  std::mt19937 random(static_cast<unsigned>(std::hash<std::string>()(tile.id.str())));
  const int size = config.chip_pixels();
  std::vector<ChipBatch> rows;
  for (int r = 0; r < kChipsPerTileSide; ++r) {
    ChipBatch row{tile.id, size, {}, {}};
    for (int c = 0; c < kChipsPerTileSide; ++c)
      if (tile.chips[static_cast<std::size_t>(r * kChipsPerTileSide + c)]) row.chips.push_back(tile.id.chip(r * kChipsPerTileSide + c));
    if (row.chips.empty()) continue;
    for (Modality m : config.data.modalities) {
      ModalityChips mc;
      mc.modality = m;
      mc.channels = info(m).channels();
      mc.values.resize(row.chips.size() * row.chip_values(mc));
      for (float& v : mc.values) v = static_cast<float>(random() % 1000) / 100.0f;
      for (std::size_t k = 0; k < row.chips.size(); ++k) {
        const bool empty = index_in_tile(row.chips[k]) % 3 == 0;
        for (int ch = 0; ch < mc.channels; ++ch) mc.valid.push_back(empty ? 0.0f : 1.0f);
        for (int s = 0; s < info(m).seasons; ++s) mc.clear.push_back(empty ? 0.0f : 2.0f);
        if (empty)
          std::fill_n(mc.values.begin() + static_cast<long>(k * row.chip_values(mc)), row.chip_values(mc),
                      std::numeric_limits<float>::quiet_NaN());
      }
      mc.observations.resize(static_cast<std::size_t>(info(m).seasons), {{"scene-" + tile.id.str(), "2021-05-01"}});
      row.modalities.push_back(std::move(mc));
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

// Every file under `dir`, by its path inside it, with its bytes.
std::map<std::string, std::string> files_under(const fs::path& dir) {
  std::map<std::string, std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) {
      std::ifstream in(e.path(), std::ios::binary);
      out[fs::relative(e.path(), dir).string()] = std::string(std::istreambuf_iterator<char>(in), {});
    }
  return out;
}

// One kind of sink over an output folder of its own.
struct SinkKind {
  std::string name;
  // A sink writing into `out` (made by the kind's set-up the first time).
  std::function<std::unique_ptr<TileSink>(const fs::path& out)> make;
  // What the tile's outputs say of it: chips with data, or -1 when they say it failed.
  std::function<int(const fs::path& out, const TilePlan& tile)> outputs_say;
};

class Sinks : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(test::fresh_temp_dir("sinks"));
    config_ = new Config(parse_config(kConfig, "sinks.yaml", "."));
    // A model to embed with: three nano encoders, as TorchScript (model.torchscript).
    torch::manual_seed(2);
    fs::create_directories(*dir_ / "model");
    for (Modality m : config_->data.modalities) {
      ChannelEncoder enc(ModelConfig::from_preset(ModelPreset::nano, 16), info(m).channels());
      enc->eval();
      export_torchscript(enc, *dir_ / "model" / (std::string(info(m).name) + ".pt"));
    }
    config_->model.torchscript = *dir_ / "model";
    card_ = new ModelCard(find_model(*config_));
    norm_ = new Normalisation();
    for (Modality m : config_->data.modalities) norm_->channels[m].assign(info(m).channels(), {4.0, 2.0});
    plan_ = new Plan(test::demo_plan());
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_, delete config_, delete card_, delete norm_, delete plan_;
  }

  // `run`'s sinks: batching as given, writing a cube in `dtype`.
  static SinkKind embed_kind(Batching batching, CubeDtype dtype) {
    auto state = std::make_shared<EmbedState>();
    state->config = *config_;
    state->config.run.batching = batching;
    state->spec.modalities = config_->data.modalities;
    state->spec.dim = card_->dim;
    state->spec.dtype = dtype;
    state->spec.chip_pixels = config_->chip_pixels();
    state->spec.pixel_size = config_->pixel_size;
    for (const TilePlan& t : plan_->tiles)
      if (std::find(state->spec.zones.begin(), state->spec.zones.end(), t.id.zone) == state->spec.zones.end())
        state->spec.zones.push_back(t.id.zone);
    state->embedder = std::make_unique<Embedder>(*card_, config_->model, config_->data.modalities, 2);
    return {fmt::format("embed, {}, {}", name_of(batching), name_of(dtype)),
            [state](const fs::path& out) {
              const fs::path cube = out / "cube.zarr";
              if (!fs::exists(cube)) create_cube(cube, state->spec);
              state->writers.push_back(std::make_unique<CubeWriter>(cube, state->spec));
              return make_embed_sink(batches_across_tiles(state->config), state->config.run,
                                     state->config.data.min_valid_fraction, state->spec, *state->embedder, *norm_,
                                     *state->writers.back());
            },
            [](const fs::path& out, const TilePlan& tile) {
              const std::vector<std::uint8_t> status = CubeReader(out / "cube.zarr").read_status(tile.id);
              int embedded = 0;
              for (std::size_t i = 0; i < status.size(); ++i) {
                if (!tile.chips[i]) continue;
                if (status[i] == kFailed) return -1;
                embedded += status[i] == kEmbedded;
              }
              return embedded;
            }};
  }

  static SinkKind chip_store_kind(Compression compression) {
    auto config = std::make_shared<Config>(*config_);
    config->prepare.compression = compression;
    return {fmt::format("chip store, {}", name_of(compression)),
            [config](const fs::path& out) { return make_chip_store_sink(*config, out / "chips", *norm_); },
            [](const fs::path& out, const TilePlan& tile) {
              const fs::path file = out / "chips" / (tile.id.str() + ".h5");
              if (!fs::exists(file)) return -1;
              const auto status = ChipStoreReader(file).status();
              return static_cast<int>(std::count(status.begin(), status.end(), 1));
            }};
  }

  // Begin, the rows (the first `rows` of them), finish with `error`; the outcome,
  // fetched from a deferring sink once the tile is handed over.
  static TileOutcome drive(TileSink& sink, const TilePlan& tile, const std::string& error, std::size_t rows = 100) {
    sink.begin(tile, "fingerprint-" + tile.id.str());
    const auto all = rows_of(tile, *config_);
    for (std::size_t r = 0; r < std::min(rows, all.size()); ++r) sink.add_row(all[r]);
    const TileOutcome outcome = sink.finish(error);
    if (!sink.deferred()) return outcome;
    auto done = sink.completed(true);
    EXPECT_EQ(done.size(), 1u);
    return done.empty() ? TileOutcome{} : done.front();
  }

  static std::vector<SinkKind> kinds() {
    std::vector<SinkKind> out;
    for (Batching b : choice_values<Batching>()) out.push_back(embed_kind(b, CubeDtype::float32));
    out.push_back(embed_kind(Batching::per_row, CubeDtype::int8));
    for (Compression c : choice_values<Compression>()) out.push_back(chip_store_kind(c));
    return out;
  }

  struct EmbedState {
    Config config;
    CubeSpec spec;
    std::unique_ptr<Embedder> embedder;
    std::vector<std::unique_ptr<CubeWriter>> writers;
  };
  static fs::path* dir_;
  static Config* config_;
  static ModelCard* card_;
  static Normalisation* norm_;
  static Plan* plan_;
};
fs::path* Sinks::dir_ = nullptr;
Config* Sinks::config_ = nullptr;
ModelCard* Sinks::card_ = nullptr;
Normalisation* Sinks::norm_ = nullptr;
Plan* Sinks::plan_ = nullptr;

// Chips with data in the tile's rows, and chips without.
std::pair<int, int> expected_counts(const TilePlan& tile, const Config& config) {
  int with = 0, without = 0;
  for (const ChipBatch& row : rows_of(tile, config))
    for (std::size_t k = 0; k < row.chips.size(); ++k)
      ++(chip_has_data(row, k, config.data.min_valid_fraction) ? with : without);
  return {with, without};
}

TEST_F(Sinks, EverySinkConforms) {
  const TilePlan& tile = plan_->tiles.at(0);
  const TilePlan& next = plan_->tiles.at(1);
  const auto [with, without] = expected_counts(tile, *config_);
  ASSERT_GT(with, 0);
  ASSERT_GT(without, 0);
  int kind_number = 0;
  for (const SinkKind& kind : kinds()) {
    SCOPED_TRACE(kind.name);
    const fs::path root = *dir_ / fmt::format("kind{}", kind_number++);

    // A clean tile: its outcome counts its chips, its outputs hold them.
    const fs::path clean = root / "clean";
    TileOutcome o = drive(*kind.make(clean), tile, "");
    EXPECT_EQ(o.status, TileStatus::done);
    EXPECT_EQ(o.chips, with);
    EXPECT_EQ(o.nodata_chips, without);
    EXPECT_EQ(o.error, "");
    EXPECT_EQ(kind.outputs_say(clean, tile), with);

    // A failed tile (its reader gave up after a row): failed, with the reader's error,
    // and its outputs say so.
    const fs::path retried = root / "retried";
    o = drive(*kind.make(retried), tile, "read: cannot open the scene", 1);
    EXPECT_EQ(o.status, TileStatus::failed);
    EXPECT_EQ(o.error, "read: cannot open the scene");
    EXPECT_EQ(kind.outputs_say(retried, tile), -1);

    // The same tile again (a later run, a new sink): what the clean try gave, file for file.
    o = drive(*kind.make(retried), tile, "");
    EXPECT_EQ(o.status, TileStatus::done);
    EXPECT_EQ(o.chips, with);
    const auto want = files_under(clean), got = files_under(retried);
    EXPECT_EQ(got.size(), want.size());
    for (const auto& [file, bytes] : want) {
      if (fs::path(file).filename().string().starts_with(".z")) continue;  // the cube's metadata: its creation time
      EXPECT_TRUE(got.count(file) && got.at(file) == bytes) << file << " differs from the clean try's";
    }

    // Two tiles through one sink, the second after the first: outcomes in order, each
    // tile's chips its own.
    const fs::path both = root / "both";
    const auto sink = kind.make(both);
    std::vector<TileOutcome> outcomes;
    for (const TilePlan* t : {&tile, &next}) {
      sink->begin(*t, "f");
      for (const ChipBatch& row : rows_of(*t, *config_)) sink->add_row(row);
      const TileOutcome one = sink->finish("");
      if (!sink->deferred()) outcomes.push_back(one);
      for (const TileOutcome& d : sink->completed(false)) outcomes.push_back(d);
    }
    for (const TileOutcome& d : sink->completed(true)) outcomes.push_back(d);
    ASSERT_EQ(outcomes.size(), 2u);
    EXPECT_EQ(outcomes[0].chips, with);
    EXPECT_EQ(outcomes[1].chips, expected_counts(next, *config_).first);
    EXPECT_EQ(kind.outputs_say(both, tile), with);
    EXPECT_EQ(kind.outputs_say(both, next), expected_counts(next, *config_).first);
  }
}

// A row the model cannot take fails the tile with the stage's name; the sink goes on.
TEST_F(Sinks, ARowTheModelCannotTakeFailsTheTileNamingTheStage) {
  for (Batching b : {Batching::per_row, Batching::across_tiles}) {
    SCOPED_TRACE(name_str(b));
    const SinkKind kind = embed_kind(b, CubeDtype::float32);
    const fs::path out = *dir_ / ("bad_row_" + name_str(b));
    const auto sink = kind.make(out);
    const TilePlan& tile = plan_->tiles.at(0);
    auto rows = rows_of(tile, *config_);
    rows.front().modalities.front().channels = 5;  // not the model's
    sink->begin(tile, "f");
    try {
      sink->add_row(rows.front());
      ADD_FAILURE() << "a row of 5 channels taken";
    } catch (const StageError& e) {
      EXPECT_EQ(e.stage(), "embed");
    }
    TileOutcome o = sink->finish(std::string("embed: refused"));
    if (sink->deferred()) o = sink->completed(true).at(0);
    EXPECT_EQ(o.status, TileStatus::failed);
    EXPECT_EQ(kind.outputs_say(out, tile), -1);
  }
}

// run.batching: auto batches across tiles only on CUDA; model.device cuda without a CUDA
// LibTorch is a configuration error that says so.
TEST_F(Sinks, BatchingAndDeviceChoices) {
  Config c = *config_;
  const std::map<Batching, std::pair<bool, bool>> across = {{Batching::automatic, {false, true}},
                                                            {Batching::per_row, {false, false}},
                                                            {Batching::across_tiles, {true, true}}};
  ASSERT_EQ(across.size(), choice_values<Batching>().size());
  for (const auto& [batching, expected] : across) {
    c.run.batching = batching;
    c.model.device = Device::cpu;
    EXPECT_EQ(batches_across_tiles(c), expected.first) << name_of(batching);
    c.model.device = Device::cuda;
    EXPECT_EQ(batches_across_tiles(c), expected.second) << name_of(batching);
  }
  if (!torch::cuda::is_available()) {
    try {
      Embedder(*card_, c.model, c.data.modalities, 1);
      ADD_FAILURE() << "cuda accepted without a CUDA device";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("model.device is cuda"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace eo
