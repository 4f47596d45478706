#include "pipeline/driver/readers.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "pipeline/driver/inputs.hpp"

namespace eo {

namespace fs = std::filesystem;

std::unique_ptr<ChipStoreReader> current_chip_store(const Config& config, const Catalog& catalog, const TilePlan& tile,
                                                    std::string& why) {
  const fs::path file = config.output / "chips" / (tile.id.str() + ".h5");
  if (!fs::exists(file)) {
    why = file.string() + ": none (prepare found no data there, or has not reached the tile)";
    return nullptr;
  }
  auto store = std::make_unique<ChipStoreReader>(file);
  // The fingerprint prepare gave it, with the statistics it recorded (they do not change
  // the stored values, only what pretraining does with them).
  const std::string norm = Normalisation::from_json(store->info().attributes.at("normalisation"), file.string()).hash();
  if (store->info().attributes.at("fingerprint") != tile_fingerprint(catalog, tile, config, norm)) {
    why = file.string() + ": made from other inputs or chip settings";
    return nullptr;
  }
  for (Modality m : config.data.modalities)
    if (!store->exact(m)) {
      why = fmt::format("{}: {} is not stored exactly (a store from before composites)", file.string(), info(m).name);
      return nullptr;
    }
  return store;
}

void read_chip_store_rows(const ChipStoreReader& store, const std::vector<Modality>& modalities,
                          const std::function<void(ChipBatch&&)>& row) {
  const std::vector<ChipId>& chips = store.chips();
  const auto row_of = [](const ChipId& c) { return index_in_tile(c) / kChipsPerTileSide; };
  for (std::size_t first = 0, next = 0; first < chips.size(); first = next) {
    next = first + 1;
    while (next < chips.size() && row_of(chips[next]) == row_of(chips[first])) ++next;
    ChipBatch batch = store.read(first, next - first);
    std::vector<ModalityChips> ordered;
    for (Modality m : modalities)
      for (ModalityChips& mc : batch.modalities)
        if (mc.modality == m) ordered.push_back(std::move(mc));
    batch.modalities = std::move(ordered);
    row(std::move(batch));
  }
}

TileReader run_tile_reader(const Config& config, const Catalog& catalog, const TileReadOptions& options,
                           ReadCounts& counts) {
  return [&config, &catalog, options, &counts](const TilePlan& t, const std::function<void(ChipBatch&&)>& row) {
    if (config.run.inputs == ChipSource::chip_stores) {
      std::string why;
      std::unique_ptr<ChipStoreReader> store;
      try {
        store = current_chip_store(config, catalog, t, why);
      } catch (const std::exception& e) {
        spdlog::warn("tile {}: the chip store cannot be read ({}); warping the tile from its sources", t.id.str(), e.what());
      }
      if (store) {
        ++counts.from_stores;
        read_chip_store_rows(*store, config.data.modalities, row);
        return;
      }
      if (!why.empty()) spdlog::info("tile {}: warped from its sources: chip store {}", t.id.str(), why);
    }
    ++counts.from_sources;
    read_tile(catalog, t, options, row);
  };
}

}  // namespace eo
