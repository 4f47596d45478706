// `prepare`'s sink: a tile's rows into its HDF5 chip store (stages/chipstore).

#include <algorithm>
#include <optional>

#include "pipeline/driver/sinks.hpp"
#include "stages/chip/chipper.hpp"
#include "stages/chipstore/chipstore.hpp"

namespace eo {
namespace {

class ChipStoreSink : public TileSink {
 public:
  ChipStoreSink(const Config& config, std::filesystem::path dir, const Normalisation& norm)
      : config_(config), dir_(std::move(dir)), norm_(norm) {}

  void begin(const TilePlan& tile, const std::string& fingerprint) override {
    chips_ = nodata_ = 0;
    writer_.reset();
    ChipStoreInfo store{tile.id, tile.chip_count(), config_.chip_pixels(), config_.pixel_size, config_.data.modalities,
                        {{"fingerprint", fingerprint}, {"config_hash", config_hash(config_)},
                         {"normalisation", norm_.to_json()}, {"software", "eo-pipeline " EO_VERSION}}};
    store.compress = config_.prepare.compression == Compression::deflate;
    writer_.emplace(dir_ / (tile.id.str() + ".h5"), std::move(store));
  }

  void add_row(const ChipBatch& row) override {
    const std::vector<bool> has_data = chips_with_data(row, config_.data.min_valid_fraction);
    const int with = static_cast<int>(std::count(has_data.begin(), has_data.end(), true));
    chips_ += with;
    nodata_ += static_cast<int>(has_data.size()) - with;
    writer_->append(row, has_data);
  }

  TileOutcome finish(const std::string& error) override {
    TileOutcome outcome{error.empty() ? TileStatus::done : TileStatus::failed, chips_, nodata_, error, {}};
    try {
      if (outcome.status == TileStatus::done && chips_ > 0) writer_->commit();
    } catch (const std::exception& e) {
      outcome = {TileStatus::failed, chips_, nodata_, e.what(), {}};
    }
    // Nothing to learn from: no file.
    if (outcome.status == TileStatus::done && chips_ == 0) outcome.status = TileStatus::nodata;
    writer_.reset();  // unpublished: its temporary goes
    return outcome;
  }

 private:
  const Config& config_;
  std::filesystem::path dir_;
  const Normalisation& norm_;
  std::optional<ChipStoreWriter> writer_;
  int chips_ = 0, nodata_ = 0;
};

}  // namespace

std::unique_ptr<TileSink> make_chip_store_sink(const Config& config, std::filesystem::path dir,
                                               const Normalisation& norm) {
  return std::make_unique<ChipStoreSink>(config, std::move(dir), norm);
}

}  // namespace eo
