#pragma once
// PROJ (through GDAL's OSR) and OGR as independent oracles for our own grid maths.

#include <gdal/ogr_geometry.h>
#include <gdal/ogr_spatialref.h>

#include <memory>
#include <stdexcept>
#include <vector>

#include "pipeline/core/grid.hpp"

namespace eo::test {

class ProjTransform {
 public:
  ProjTransform(int from_epsg, int to_epsg) {
    src_.importFromEPSG(from_epsg);
    dst_.importFromEPSG(to_epsg);
    src_.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);  // lon, lat
    dst_.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    ct_.reset(OGRCreateCoordinateTransformation(&src_, &dst_));
    if (!ct_) throw std::runtime_error("no PROJ transformation");
  }
  void operator()(double& x, double& y) const {
    if (!ct_->Transform(1, &x, &y)) throw std::runtime_error("PROJ transform failed");
  }

 private:
  OGRSpatialReference src_, dst_;
  std::unique_ptr<OGRCoordinateTransformation> ct_;
};

// The chip's footprint in EPSG:4326 computed by PROJ, densified, as an OGR polygon with
// longitudes made continuous (as ours are).
inline std::unique_ptr<OGRPolygon> proj_footprint(const ChipId& chip, int per_edge = 8) {
  const ProjTransform to_lonlat(chip.zone.epsg(), 4326);
  const Box b = chip.bounds();
  const double xs[4] = {b.e0, b.e1, b.e1, b.e0}, ys[4] = {b.n0, b.n0, b.n1, b.n1};
  OGRLinearRing ring;
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < per_edge; ++i) {
      const double t = static_cast<double>(i) / per_edge;
      double x = xs[k] + t * (xs[(k + 1) % 4] - xs[k]), y = ys[k] + t * (ys[(k + 1) % 4] - ys[k]);
      to_lonlat(x, y);
      const double cm = chip.zone.central_meridian();
      while (x - cm > 180) x -= 360;
      while (x - cm < -180) x += 360;
      ring.addPoint(x, y);
    }
  ring.closeRings();
  auto poly = std::make_unique<OGRPolygon>();
  poly->addRing(&ring);
  return poly;
}

inline std::unique_ptr<OGRPolygon> lonlat_box(double lon0, double lat0, double lon1, double lat1) {
  OGRLinearRing ring;
  ring.addPoint(lon0, lat0);
  ring.addPoint(lon1, lat0);
  ring.addPoint(lon1, lat1);
  ring.addPoint(lon0, lat1);
  ring.closeRings();
  auto poly = std::make_unique<OGRPolygon>();
  poly->addRing(&ring);
  return poly;
}

}  // namespace eo::test
