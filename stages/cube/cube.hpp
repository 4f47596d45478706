#pragma once
// cube: the Zarr v2 embedding cube of DESIGN.md §4, written by ourselves (JSON metadata
// with nlohmann_json, chunks compressed with c-blosc/zstd) so that zarr-python, xarray
// and GDAL read it as it is. One group per zone, per-modality and fused embedding arrays
// (y, x, dim) chunked (16, 16, dim) so that a chunk is a tile, a status array, chip-centre
// coordinates and the CRS. Chunks are written under a temporary name and renamed.

#include <bitset>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <array>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <xtensor/xtensor.hpp>

#include "pipeline/core/chip_batch.hpp"
#include "pipeline/core/choices.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/grid.hpp"
#include "pipeline/core/modality.hpp"

namespace eo {

// The status of a chip in the cube (DESIGN.md §4).
enum ChipStatus : std::uint8_t { kNotProcessed = 0, kEmbedded = 1, kNoData = 2, kFailed = 3 };

// What a cube holds: the layout every writer and every run must agree on, and the
// attributes that say where it came from.
struct CubeSpec {
  std::vector<Zone> zones;
  std::vector<Modality> modalities;  // one array each, plus `fused`
  int dim = 0;                       // embedding size
  CubeDtype dtype = CubeDtype::float32;
  int chip_pixels = 448;
  double pixel_size = 10;
  // Provenance for the root attributes: model name and hash, config hash, ...
  nlohmann::json provenance = nlohmann::json::object();

  std::vector<std::string> embedding_arrays() const;  // modality names, then "fused"
  std::vector<std::string> clear_arrays() const;      // "<modality>_clear"
};

// The Zarr `geoemb:` convention's attributes of a zone group (with the registrations of
// the conventions the group follows), so that a reader of that convention opens the cube
// without knowing us. They describe the group's `fused` array (docs/decisions.md): the
// model is provenance "model_card", the sources provenance "source_catalog" (file URIs).
nlohmann::json geoemb_attributes(const CubeSpec& spec);
// file:// URI of an absolute path, percent-encoded.
std::string file_uri(const std::filesystem::path& path);
// A moment as ISO 8601 UTC to the second ("2026-12-01T01:02:03Z"), as the cube and its
// STAC write times.
std::string utc_iso(std::chrono::system_clock::time_point t);

// Rows and columns of chips of a zone's grid: chunk (tile) indices are tile ids.
int zone_rows(Zone zone);
int zone_cols();
// The zone grid's affine transform, as the group's spatial:transform and the STAC's
// proj:transform write it: [a, b, x0, d, e, y0] with x = a col + x0, y = e row + y0.
std::array<double, 6> zone_transform(Zone zone);

// Creates the cube's metadata (groups, arrays, coordinates, attributes, consolidated
// metadata), or checks that an existing cube has the same layout and brings its
// provenance up to date. Run once, by one rank, before any chunk is written. Throws
// std::runtime_error naming the cube and the difference when the layouts disagree, or
// when the cube holds another model's embeddings (provenance "model_hash").
void create_cube(const std::filesystem::path& root, const CubeSpec& spec);

// One tile's results: for every chip of the tile ([row in tile][col in tile]) its status,
// and its embedding per array (NaN where the chip or the modality has none).
struct TileEmbeddings {
  TileId tile;
  std::vector<std::uint8_t> status = std::vector<std::uint8_t>(kChipsPerTile, kNotProcessed);
  std::map<std::string, xt::xtensor<float, 3>> arrays;  // name -> (16, 16, dim)
  // "<modality>_clear" -> (16, 16, seasons): clear observations per pixel, chip mean.
  std::map<std::string, xt::xtensor<float, 3>> clear;
  // Which inputs made the tile: per modality, per season, the observations (id, time).
  nlohmann::json provenance = nlohmann::json::object();

  TileEmbeddings(TileId t, const CubeSpec& spec);

  // Places each chip's embeddings of every modality ([chip][dim] in `chips`' order, NaN
  // where the chip has none of that modality) and their mean as `fused`. A chip with no
  // modality is no data.
  void add(const std::vector<ChipId>& chips, const std::map<Modality, std::vector<float>>& embeddings);
  // Keeps a row's observation counts per chip and the tile's inputs (provenance).
  void add_inputs(const ChipBatch& row);
  // The tile failed: nothing of it is kept, and its planned chips say so.
  void fail(const std::bitset<kChipsPerTile>& planned);
};

class CubeWriter {
 public:
  CubeWriter(std::filesystem::path root, CubeSpec spec);
  // Embedding chunks first, the status chunk last, each fsync'd and renamed into place:
  // a reader that sees a chip's status sees its embeddings. Chunks of arrays the tile
  // has nothing in are removed (a tile redone after a change leaves no stale chunk).
  // Returns the files written, as written, for the journal.
  std::vector<WrittenFile> write_tile(const TileEmbeddings& tile) const;
  // The tile's provenance file: <zone>/provenance/<tile id>.json beside the arrays (zarr
  // readers skip a folder that is neither array nor group).
  std::filesystem::path provenance_path(const TileId& tile) const;
  // The chunk of `array` (in the tile's zone group) holding the tile.
  std::filesystem::path chunk_path(const TileId& tile, const std::string& array) const;

 private:
  std::filesystem::path root_;
  CubeSpec spec_;
};

// Reads tiles back from a cube this project wrote, in any dtype (for `fewshot` and
// `render`; the tests read cubes with zarr-python, xarray and GDAL instead).
class CubeReader {
 public:
  // Throws std::runtime_error naming the cube when it is not one.
  explicit CubeReader(std::filesystem::path root);
  const CubeSpec& spec() const { return spec_; }  // layout and provenance; zones are the cube's
  // The tile as written; status 0 and NaN embeddings for a tile never written.
  TileEmbeddings read_tile(const TileId& tile) const;
  // One embedding array of the tile into `values` ([16][16][dim], NaN where none), in
  // float32 whatever the cube's dtype; false when the tile has no chunk of it.
  bool read_array(const TileId& tile, const std::string& name, float* values) const;
  // Only its statuses (kNotProcessed everywhere for a tile never written).
  std::vector<std::uint8_t> read_status(const TileId& tile) const;
  // Its provenance file's contents; an empty object when it has none.
  nlohmann::json read_provenance(const TileId& tile) const;
  // Its clear observations per chip and season, "<modality>_clear" -> (16, 16, seasons),
  // NaN where none were recorded.
  std::map<std::string, xt::xtensor<float, 3>> read_clear(const TileId& tile) const;
  // The tiles of a zone that a run has finished (their status chunk exists), in order.
  std::vector<TileId> written_tiles(Zone zone) const;
  std::filesystem::path chunk_path(const TileId& tile, const std::string& array) const;
  std::filesystem::path provenance_path(const TileId& tile) const;
  const std::filesystem::path& root() const { return root_; }

 private:
  std::filesystem::path root_;
  CubeSpec spec_;
};

// Zone groups present in an existing cube.
std::vector<Zone> cube_zones(const std::filesystem::path& root);

// float -> IEEE half, round to nearest even (for the float16 cube).
std::uint16_t float_to_half(float value);

}  // namespace eo
