#pragma once
// Places like these: the chips of a cube whose embeddings are most like some example
// chips (positives, and negatives to move away from), by cosine similarity. Exact search
// streams the cube tile by tile through BLAS, so memory stays a few tiles whatever the
// cube's size; an approximate FAISS index (stages/downstream/index.hpp) answers the
// same question for cubes where a pass over every chip is too slow.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/core/grid.hpp"
#include "stages/cube/cube.hpp"

class OGRCoordinateTransformation;

namespace eo {

// What a search compares (as in `fewshot`): an embedding array of the cube ("fused" or a
// modality), or "concat", the modalities' unit vectors side by side (a missing modality
// adds nothing).
struct SearchSpace {
  std::string name = "fused";
  int dim = 0;
  // Throws ConfigError naming the cube when it has no such array.
  static SearchSpace of(const CubeSpec& spec, const std::filesystem::path& cube, const std::string& name);
};

// A tile's embedded chips that have the searched embedding, as unit vectors.
struct TileVectors {
  std::vector<ChipId> chips;
  std::vector<float> values;  // [chip][dim]
};
TileVectors tile_vectors(const CubeReader& cube, const SearchSpace& space, const TileId& tile);

// Example chips: the query is the mean of the positives' unit vectors minus the mean of
// the negatives', so a chip's score is its mean cosine to the positives minus its mean
// cosine to the negatives.
struct Examples {
  std::vector<ChipId> positives, negatives;
};
// Throws ConfigError naming the chip and the cube when an example has no such embedding.
std::vector<float> query_vector(const CubeReader& cube, const SearchSpace& space, const Examples& examples);

// The embedded chip at a point, from the zone whose band holds it first, then the cube's
// other zones (their grids overlap at the borders). Throws ConfigError naming the point
// and the cube's zones when no zone of the cube has an embedded chip there.
ChipId chip_at_lonlat(const CubeReader& cube, LonLat p);

// Every embedded chip of the cube.
std::vector<ChipId> embedded_chips(const CubeReader& cube);

// A GeoJSON's positions as longitude and latitude. RFC 7946 knows only WGS 84 longitude,
// latitude, but files from QGIS and older ogr2ogr still carry GeoJSON 2008's `crs` member
// naming their CRS (UTM metres, say): it is honoured. Without one, a position that is not
// degrees is refused, saying what it looks like.
class GeoJsonCrs {
 public:
  // Throws ConfigError of `stage` naming `source` when the `crs` member cannot be read.
  GeoJsonCrs(const nlohmann::json& doc, const std::string& source, const std::string& stage);
  // The geometry with its positions in longitude and latitude. Throws ConfigError when a
  // position is not degrees or cannot be transformed.
  nlohmann::json lonlat(const nlohmann::json& geometry) const;
  bool declared() const { return !name_.empty(); }

 private:
  std::string name_;                                 // the `crs` member's, "" when none
  std::shared_ptr<OGRCoordinateTransformation> to_;  // null without a crs member
};
// The geometry with each position's two numbers swapped: what a file written as latitude,
// longitude meant.
nlohmann::json swapped_axes(const nlohmann::json& geometry);

// Chips by where their centres lie (cells of a tenth of a degree), so that matching a
// polygon to chips costs the chips near it, not every chip: labels are matched in time
// that grows with labels plus chips, not with their product.
class ChipsByPlace {
 public:
  explicit ChipsByPlace(std::vector<ChipId> chips);
  // Every chip whose centre lies in `box`, and some near it, in the order they were given.
  std::vector<std::size_t> near(const LonLatBox& box) const;
  const ChipId& chip(std::size_t i) const { return chips_[i]; }
  LonLat centre(std::size_t i) const { return centres_[i]; }

 private:
  std::vector<ChipId> chips_;
  std::vector<LonLat> centres_;
  std::unordered_map<std::int64_t, std::vector<std::size_t>> cells_;
};

// The embedded chips a GeoJSON geometry names: a Point's chip (chip_at_lonlat), or every
// chip of `embedded` whose centre a Polygon or MultiPolygon holds; empty when there is
// none. Throws ConfigError for another geometry type.
std::vector<ChipId> chips_of_geometry(const CubeReader& cube, const nlohmann::json& geometry, const ChipsByPlace& embedded);

// Examples from a GeoJSON FeatureCollection: Point features (the chip there), Polygon and
// MultiPolygon features (every chip whose centre is inside), or a "chip" property (a
// chip id); property "label" "negative" (or false, 0) for negatives, else positive.
// Throws ConfigError naming the file and the feature.
Examples read_examples(const CubeReader& cube, const std::filesystem::path& file);

// Calls `fn` with every written tile's vectors (tiles that have none are skipped), one
// call at a time and in the cube's order of tiles (zone by zone), while `threads`
// threads read and decode the tiles ahead: an index built from them is the same file
// for any number of threads.
void for_each_tile(const CubeReader& cube, const SearchSpace& space, int threads,
                   const std::function<void(const TileVectors&)>& fn);

struct Hit {
  ChipId chip;
  float score = 0;
};

// The k best chips for each query (rows of `queries`, [query][dim]), best first, ties by
// chip id, over every written tile of every zone, `threads` tiles at a time. `each`, when
// given, sees every tile's chips and scores ([chip][query]), e.g. for a map.
using TileScores = std::function<void(const std::vector<ChipId>& chips, const std::vector<float>& scores)>;
std::vector<std::vector<Hit>> exact_search(const CubeReader& cube, const SearchSpace& space,
                                           const std::vector<std::vector<float>>& queries, int k, int threads,
                                           const TileScores& each = {});

// A search space's unit vectors held in memory, for a server that answers search after
// search: chips x dim x 4 bytes (256 MB for 1,000,000 chips of 64 dimensions).
class VectorsInMemory {
 public:
  // `threads`: of the reading, and of every search.
  VectorsInMemory(const CubeReader& cube, const SearchSpace& space, int threads);
  // The k best chips for each query, ranked as exact_search ranks them, `threads_` blocks
  // of chips at a time. `scores`, given one query, gets every chip's score, in chips()'s
  // order.
  std::vector<std::vector<Hit>> search(const std::vector<std::vector<float>>& queries, int k,
                                       std::vector<float>* scores = nullptr) const;
  const std::vector<ChipId>& chips() const { return chips_; }
  std::size_t bytes() const { return values_.size() * sizeof(float); }

 private:
  int dim_ = 0, threads_ = 1;
  std::vector<ChipId> chips_;
  std::vector<float> values_;  // [chip][dim]
};

// The hits as GeoJSON: a Feature per hit, its footprint in lon/lat, with rank, chip id,
// zone and score.
nlohmann::json hits_geojson(const std::vector<Hit>& hits, const std::string& space);

// The similarity of every scored chip as a map per zone: a GeoTIFF of the scores on the
// chip grid and a PNG (hits outlined black, examples white); returns the files written.
std::vector<std::filesystem::path> write_similarity_maps(const std::vector<Hit>& scored, const std::vector<Hit>& hits,
                                                         const Examples& examples, const std::filesystem::path& dir);

// Chip ids as the 64-bit keys FAISS stores, and back.
std::int64_t chip_key(const ChipId& chip);
ChipId chip_of_key(std::int64_t key);

}  // namespace eo
