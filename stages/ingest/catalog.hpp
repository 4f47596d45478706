#pragma once
// The catalog of input rasters (JSON lines: path, modality, season, time, CRS, footprint)
// and its spatial index: the pipeline finds a tile's sources by footprint, never by
// listing directories at run time.

#include <filesystem>
#include <string>
#include <unordered_map>
#include <vector>

#include "pipeline/core/grid.hpp"
#include "pipeline/core/modality.hpp"

namespace eo {

struct SourceRecord {
  std::filesystem::path path;  // absolute once loaded; relative to the catalog in the file
  Modality modality = Modality::s2rgb;
  int season = 0;              // 0..3 (DJF, MAM, JJA, SON); 0 for label maps
  std::string time;            // ISO 8601 interval, e.g. 2021-03-01/2021-05-31
  std::string crs;             // as the file declares it: "EPSG:32610" or WKT
  LonLatBox footprint;         // EPSG:4326 bounds
  std::vector<int> bands;      // source band (1-based) for each band of the modality
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
// The file behind a path or connection string (for its size and time).
std::filesystem::path underlying_file(const std::filesystem::path& path);

// ISO 8601 interval of a season of a year: DJF runs from December of the year before.
std::string season_interval(int year, int season);

}  // namespace eo
