#pragma once
// Areas of interest: polygons in EPSG:4326 read from GeoJSON or WKT.

#include <filesystem>
#include <string>
#include <vector>

#include "pipeline/core/utm.hpp"

namespace eo {

using Ring = std::vector<LonLat>;        // closed: front() == back()
using Polygon = std::vector<Ring>;        // outer ring, then holes
using MultiPolygon = std::vector<Polygon>;

struct Aoi {
  std::string name;
  std::string source;  // file path or "inline WKT", for messages
  // Rings whose longitudes are made continuous: an AOI crossing the antimeridian is one
  // polygon with longitudes beyond +-180. The planner cuts it per UTM zone, which splits
  // it at the antimeridian as at every other zone border.
  MultiPolygon polygons;
  double min_lon = 0, max_lon = 0, min_lat = 0, max_lat = 0;
};

// Throw std::runtime_error naming `source` on malformed input or on latitudes outside
// the UTM domain (80 S to 84 N).
Aoi aoi_from_geojson(const std::string& text, const std::string& name, const std::string& source);
Aoi aoi_from_wkt(const std::string& text, const std::string& name, const std::string& source);
// By extension: .geojson/.json as GeoJSON, .wkt/.txt as WKT.
Aoi load_aoi(const std::filesystem::path& file, const std::string& name);

// Area of the polygons on the authalic sphere (edges straight in lon/lat), km^2, for reports.
double spherical_area_km2(const MultiPolygon& polygons);

// Sutherland-Hodgman clip of a ring against lon/lat box. Result closed, or empty.
Ring clip_ring(const Ring& ring, double min_lon, double max_lon, double min_lat, double max_lat);

}  // namespace eo
