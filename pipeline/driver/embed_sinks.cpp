// `run`'s sinks: a tile's rows through the model (stages/model) into the tile's cube
// chunks (stages/cube), row by row or in batches across rows and tiles.

#include <deque>
#include <map>
#include <optional>

#include "pipeline/core/error.hpp"
#include "pipeline/driver/sinks.hpp"
#include "stages/chip/chipper.hpp"

namespace eo {
namespace {

// What a tile came to, once its embeddings are all placed: its cube chunks written (a
// failed tile's status chunk says so).
TileOutcome conclude(TileEmbeddings& out, const TilePlan& tile, const std::string& error, const CubeWriter& cube) {
  TileOutcome outcome;
  if (!error.empty()) {
    out.fail(tile.chips);
    outcome.status = TileStatus::failed;
    outcome.error = error;
  } else {
    for (std::uint8_t s : out.status) {
      outcome.chips += s == kEmbedded;
      outcome.nodata_chips += s == kNoData;
    }
    outcome.status = outcome.chips > 0 ? TileStatus::done : TileStatus::nodata;
  }
  outcome.files = cube.write_tile(out);
  return outcome;
}

// Row by row.
class EmbedSink : public TileSink {
 public:
  EmbedSink(const RunConfig& run, double min_valid, const CubeSpec& spec, const Embedder& embedder,
            const Normalisation& norm, const CubeWriter& cube)
      : run_(run), min_valid_(min_valid), spec_(spec), embedder_(embedder), norm_(norm), cube_(cube) {}

  void begin(const TilePlan& tile, const std::string&) override {
    tile_ = &tile;
    out_.emplace(tile.id, spec_);
  }

  void add_row(const ChipBatch& row) override {
    try {
      out_->add(row.chips, embedder_.embed(row, chips_with_data(row, min_valid_), norm_, min_valid_, run_.batch));
      out_->add_inputs(row);
    } catch (const StageError&) {
      throw;
    } catch (const std::exception& e) {  // LibTorch's own, say
      throw StageError("embed", e.what());
    }
  }

  TileOutcome finish(const std::string& error) override { return conclude(*out_, *tile_, error, cube_); }

 private:
  const RunConfig& run_;
  double min_valid_;
  const CubeSpec& spec_;
  const Embedder& embedder_;
  const Normalisation& norm_;
  const CubeWriter& cube_;
  const TilePlan* tile_ = nullptr;
  std::optional<TileEmbeddings> out_;
};

// Across rows and tiles: a tile's last chips wait for the next tile's first.
class StreamSink : public TileSink {
 public:
  StreamSink(const RunConfig& run, double min_valid, const CubeSpec& spec, const Embedder& embedder,
             const Normalisation& norm, const CubeWriter& cube)
      : min_valid_(min_valid), spec_(spec), cube_(cube),
        stream_(embedder, norm, min_valid, run.batch,
                [this](std::uint64_t tag, const std::vector<ChipId>& chips, const std::map<Modality, std::vector<float>>& e) {
                  Tile& t = tiles_.at(tag);
                  if (t.error.empty()) t.out.add(chips, e);
                  t.outstanding -= chips.size();
                },
                [this](std::uint64_t tag, std::size_t chips, const std::string& why) {
                  Tile& t = tiles_.at(tag);
                  if (t.error.empty()) t.error = StageError("embed", why).what();
                  t.outstanding -= chips;
                }) {}

  void begin(const TilePlan& tile, const std::string&) override {
    current_ = next_++;
    tiles_.emplace(current_, Tile{&tile, TileEmbeddings(tile.id, spec_), 0, {}});
  }

  void add_row(const ChipBatch& row) override {
    Tile& t = tiles_.at(current_);
    if (!t.error.empty()) return;  // a batch with its chips failed: the tile has failed
    t.out.add_inputs(row);
    t.outstanding += row.chips.size();  // before add(): chips may come back within it
    try {
      stream_.add(current_, row, chips_with_data(row, min_valid_));
    } catch (const std::exception& e) {  // refused whole, before any chip was taken
      t.outstanding -= row.chips.size();
      throw StageError("embed", detail_of(e));
    }
  }

  TileOutcome finish(const std::string& error) override {
    Tile& t = tiles_.at(current_);
    if (t.error.empty()) t.error = error;
    order_.push_back(current_);
    return {};
  }

  bool deferred() const override { return true; }

  std::vector<TileOutcome> completed(bool all) override {
    if (all) stream_.flush();
    std::vector<TileOutcome> done;
    while (!order_.empty() && tiles_.at(order_.front()).outstanding == 0) {
      Tile& t = tiles_.at(order_.front());
      done.push_back(conclude(t.out, *t.plan, t.error, cube_));
      tiles_.erase(order_.front());
      order_.pop_front();
    }
    return done;
  }

 private:
  struct Tile {
    const TilePlan* plan;
    TileEmbeddings out;
    std::size_t outstanding = 0;  // chips handed to the stream, not back yet
    std::string error;
  };
  double min_valid_;
  const CubeSpec& spec_;
  const CubeWriter& cube_;
  std::map<std::uint64_t, Tile> tiles_;
  std::deque<std::uint64_t> order_;  // handed over by finish(), oldest first
  std::uint64_t next_ = 0, current_ = 0;
  Embedder::Stream stream_;  // last: its callbacks use the members above
};

}  // namespace

bool batches_across_tiles(const Config& config) {
  return config.run.batching == Batching::across_tiles ||
         (config.run.batching == Batching::automatic && config.model.device == Device::cuda);
}

std::unique_ptr<TileSink> make_embed_sink(bool across_tiles, const RunConfig& run, double min_valid,
                                          const CubeSpec& spec, const Embedder& embedder, const Normalisation& norm,
                                          const CubeWriter& cube) {
  if (across_tiles) return std::make_unique<StreamSink>(run, min_valid, spec, embedder, norm, cube);
  return std::make_unique<EmbedSink>(run, min_valid, spec, embedder, norm, cube);
}

}  // namespace eo
