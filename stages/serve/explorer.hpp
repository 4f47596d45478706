#pragma once
// What `eo-pipeline serve` answers, apart from HTTP (stages/serve/server.hpp): the cube's
// outline, a chip (where it is, its status, what it was made from), the chips most like
// some chips, map layers as tiles, and a few-shot map trained on the page's labels, as
// JSON and PNG. The cube is only read; what is written (labels and maps the user exports,
// the tile cache) goes under the output folder's serve/.

#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/core/config.hpp"
#include "pipeline/core/utm.hpp"
#include "stages/cube/cube.hpp"
#include "stages/downstream/index.hpp"
#include "stages/downstream/models.hpp"
#include "stages/downstream/samples.hpp"
#include "stages/downstream/similar.hpp"
#include "stages/serve/tiles.hpp"

namespace eo {

// A chip or layer the question names that the cube does not have (the server's 404); a
// question that cannot be asked is a ConfigError (400).
class NotFound : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ExplorerOptions {
  int threads = 1;                  // of searches and fits
  FewshotConfig fewshot;            // the few-shot map's settings, as `fewshot --labels` uses them
  std::filesystem::path output;     // exports go to output/serve, the tile cache below it
};

class Explorer {
 public:
  // Reads the cube's embedded chips and their fused embeddings into memory (the PCA
  // colours, searches and fits need them all). Throws std::runtime_error naming the folder
  // when it is not a cube.
  Explorer(const std::filesystem::path& cube, ExplorerOptions options);
  ~Explorer();

  // Zones, modalities, dimensions, dtype, the embedded chips and their extent, the layers
  // (with the PCA's shares of the variance), the memory the vectors take.
  nlohmann::json cube() const;
  // A chip: id, zone, centre and footprint in lon/lat, status, and what its tile was made
  // from (per modality and season, the observations, and the chip's clear counts).
  nlohmann::json chip(const ChipId& id) const;
  nlohmann::json chip_at(LonLat p) const;
  // The k chips most like the examples' mean (minus the negatives') in `space` (fused, a
  // modality, or concat): from the index `eo-pipeline index` built when there is one and
  // it is the cube's, else exactly over the vectors in memory; and a heat layer of every
  // chip's score.
  nlohmann::json similar(const Examples& examples, const std::string& space, int k) const;
  // The few-shot map of `property` (1: the class, 0: not it; or any number) from the
  // page's labels, a GeoJSON FeatureCollection read as `fewshot --labels` reads a file
  // and fitted by the same code (fit_label_map): the layer, the labels' counts, the
  // held-out score on the test stripes, warnings.
  nlohmann::json train(const nlohmann::json& labels, const std::string& property) const;
  // Writes labels-<name>.geojson and, given a trained map's layer, map-<name>_<zone>.tif
  // and .png into output/serve; returns the files.
  nlohmann::json export_files(const nlohmann::json& labels, const std::string& name, const std::string& map_layer) const;
  // A chip's input composite as `prepare` stored it (OUTPUT/chips), its seasons side by
  // side as PNG: s2rgb in colour, another modality's first band in grey, each band
  // stretched from its 2nd to its 98th percentile, transparent where no data. NotFound
  // when there is no chip store of the chip, or the store has no such modality.
  std::string chip_image(const ChipId& id, const std::string& modality) const;
  // A layer's tile as PNG: pca, status, clear, grid and rgb-S (the Sentinel-2 composite of
  // season S, 0-3 from DJF, as `prepare` stored it in OUTPUT/chips; from zoom 9), kept in
  // the tile cache; heat-N and map-N (this run's searches and maps). NotFound for a layer
  // there is not.
  std::string tile(const std::string& layer, const TileXYZ& tile) const;
  std::filesystem::path exports() const { return options_.output / "serve"; }

 private:
  struct Trained;
  struct Composite;
  // A chip's stored Sentinel-2 composite of a season as colours; null where there is none.
  std::shared_ptr<const Composite> composite(const ChipId& id, int season) const;
  std::string composite_tile(int season, const TileXYZ& tile) const;
  const VectorsInMemory& vectors(const SearchSpace& space) const;
  const LoadedIndex& index(const SearchSpace& space) const;
  // The image modalities the chip store holds for the chip (none without a store).
  std::vector<std::string> chip_images(const ChipId& id) const;
  std::string add_layer(const std::string& kind, ChipLayer layer) const;

  std::filesystem::path path_;
  CubeReader cube_;
  ExplorerOptions options_;
  // Every embedded chip, where it lies (for the split) and its fused embedding (for the
  // fits and the PCA colours), in the order of cube_samples.
  std::vector<ChipId> chips_;
  std::set<ChipId> embedded_;  // the same, to look up
  LonLatBox extent_;           // of the tiles with embedded chips
  std::vector<Point> places_;
  Rows fused_;
  std::map<std::string, ChipLayer> layers_;  // pca, status, clear
  nlohmann::json pca_legend_;
  std::string clear_of_;  // the modality whose clear observations the clear layer shows
  float clear_max_ = 1;   // the most clear observations of a chip: the clear layer's top
  TileCache cache_;
  mutable std::mutex mutex_;  // guards what follows
  mutable std::map<std::string, std::unique_ptr<VectorsInMemory>> spaces_;
  mutable std::map<std::string, std::unique_ptr<LoadedIndex>> indexes_;
  mutable std::map<std::string, std::shared_ptr<const ChipLayer>> made_;  // heat-N, map-N
  mutable std::deque<std::string> made_order_;                             // the same, oldest first
  mutable std::map<std::string, std::shared_ptr<const Trained>> trained_;
  mutable std::map<std::pair<ChipId, int>, std::shared_ptr<const Composite>> composites_;  // the last 4,096 read
  mutable std::vector<std::pair<float, float>> rgb_stretch_;  // red, green, blue: from the first store read
  mutable int made_count_ = 0;
};

}  // namespace eo
