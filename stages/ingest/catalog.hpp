#pragma once
// The catalog of input rasters (JSON lines: path, modality, season, time, CRS, footprint)
// and its spatial index: the pipeline finds a tile's sources by footprint, never by
// listing directories at run time.

#include <filesystem>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "pipeline/core/choice.hpp"
#include "pipeline/core/grid.hpp"
#include "pipeline/core/modality.hpp"

namespace eo {

// Which pixels of a scene are clear: a classification layer (Sentinel-2's SCL) and the
// classes that are kept; every other class is never used.
struct MaskSpec {
  std::filesystem::path path;  // absolute once loaded
  int band = 1;
  std::vector<int> valid;      // classes kept
  std::string version;         // as SourceRecord::version, of the mask's file
  bool operator==(const MaskSpec&) const = default;
};

// How a file's values (after scale and offset) relate to what the modality holds.
// Sentinel-1 backscatter is composited in linear power and handed on in dB.
enum class Units {
  native,        // as the modality holds them (reflectance, dB, coherence, classes)
  linear_power,  // gamma0 in linear power (Planetary Computer's sentinel-1-rtc)
  amplitude_dn,  // the global seasonal coherence dataset's AMP: dB = 20 log10(DN) - 83
};
template <>
struct ChoiceTable<Units> {
  static constexpr std::string_view what = "a unit of a catalog record";
  static constexpr ChoiceName<Units> names[] = {
      {"native", Units::native}, {"linear_power", Units::linear_power}, {"amplitude_dn", Units::amplitude_dn}};
};

// One file, or one band of one scene: real scenes come one file per band (each S2 band
// its own COG, VV and VH apart), so a record may hold only some of the modality's bands.
struct SourceRecord {
  std::filesystem::path path;  // absolute once loaded; relative to the catalog in the file
  Modality modality = Modality::s2rgb;
  int season = 0;              // 0..3 (DJF, MAM, JJA, SON); 0 for label maps
  std::string time;            // ISO 8601 instant of a scene, or interval of a product
  std::string crs;             // as the file declares it: "EPSG:32610" or WKT
  LonLatBox footprint;         // EPSG:4326 bounds
  // For each band of the modality, the file's band (1-based) holding it; 0: not here.
  std::vector<int> bands;
  // Scene identity: records of one item are one observation. Empty for a product, whose
  // files of one season form one observation (a mosaic).
  std::string item;
  std::string collection;
  std::string asset;           // the STAC asset key, for messages
  // Overrides of the file's own scale/offset/no-data (STAC raster:bands, a mapping).
  std::optional<double> scale, offset, nodata;
  Units units = Units::native;
  std::optional<MaskSpec> mask;
  std::optional<double> cloud_cover;  // eo:cloud_cover, percent
  // What the publisher says of the file's version (STAC: the item's `updated`, the asset's
  // file:checksum and file:size), "" when nothing: a changed version redoes the tiles the
  // file reaches without asking the object store (DESIGN.md §5).
  std::string version;

  // Groups records into observations: the item, or the product's time.
  std::string observation() const { return item.empty() ? "product " + time : item; }
  // "FILE" or "FILE (item I, asset A)", for messages.
  std::string describe() const;
};

class Catalog {
 public:
  // Throws std::runtime_error naming the file and line of a bad record.
  static Catalog load(const std::filesystem::path& file);
  void save(const std::filesystem::path& file) const;  // paths written relative to it

  void add(SourceRecord record);
  // Sources of a modality and season whose footprint intersects `box`, in catalog order.
  std::vector<const SourceRecord*> query(Modality modality, int season, const LonLatBox& box) const;
  const std::vector<SourceRecord>& records() const { return records_; }
  const std::filesystem::path& file() const { return file_; }

 private:
  std::vector<SourceRecord> records_;
  std::filesystem::path file_;
  // 1-degree cells -> records whose footprint touches them
  std::unordered_map<std::int64_t, std::vector<std::size_t>> cells_;
};

// Describes a raster as a catalog record by opening it with GDAL (CRS and footprint).
// `bands` empty: bands 1..n of the modality.
SourceRecord describe_raster(const std::filesystem::path& path, Modality modality, int season, const std::string& time,
                             std::vector<int> bands = {});

// GDAL connection strings such as NETCDF:"/data/x.nc":coherence name a part of a file.
bool is_connection_string(const std::string& path);
// Paths kept as written, never made absolute or relative: connection strings and GDAL's
// virtual file systems (/vsicurl/https://..., /vsis3/bucket/key).
bool is_verbatim_path(const std::string& path);
// The file behind a path or connection string (for its size and time).
std::filesystem::path underlying_file(const std::filesystem::path& path);

// What is wrong with a footprint as a box in degrees, or "" when nothing is: finite,
// latitudes within +-90 and south below north, the west edge within +-180 and the east
// edge east of it by at most a turn (continuous across the antimeridian). Values far
// outside are taken for metres, the common mistake, and said so.
std::string footprint_problem(const LonLatBox& box);

// ISO 8601 interval of a season of a year: DJF runs from December of the year before.
std::string season_interval(int year, int season);
// The season (0 DJF .. 3 SON) of an ISO 8601 date or instant; throws std::invalid_argument.
int season_of(const std::string& datetime);

}  // namespace eo
