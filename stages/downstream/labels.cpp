#include "stages/downstream/labels.hpp"

#include <gdal_priv.h>
#include <ogr_spatialref.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "pipeline/core/error.hpp"
#include "pipeline/core/config.hpp"
#include "pipeline/core/files.hpp"
#include "stages/downstream/similar.hpp"

namespace eo {

namespace fs = std::filesystem;
using json = nlohmann::json;

UserLabels geojson_labels(const json& doc, const std::string& source, const std::string& property, const CubeReader& cube) {
  if (!doc.is_object() || doc.value("type", "") != "FeatureCollection" || !doc.contains("features") || !doc["features"].is_array())
    throw StageConfigError("labels", fmt::format("{}: not a GeoJSON FeatureCollection", source));
  // First the labels as read: where (the chips) and what (a number or a class).
  struct Label {
    std::vector<ChipId> chips;
    double value = 0;
    std::string cls;
  };
  std::vector<Label> labels;
  bool numbers = false, classes = false;
  std::size_t outside = 0, outside_swapped = 0;
  const GeoJsonCrs crs(doc, source, "labels");
  const ChipsByPlace all(embedded_chips(cube));
  for (std::size_t i = 0; i < doc["features"].size(); ++i) {
    const json& f = doc["features"][i];
    const std::string where = fmt::format("{}: feature {}", source, i);
    const json props = f.contains("properties") && f["properties"].is_object() ? f["properties"] : json::object();
    if (!props.contains(property))
      throw StageConfigError("labels", fmt::format("{}: no property \"{}\" (the label; --label-property names another)", where, property));
    Label label;
    const json& v = props[property];
    if (v.is_number()) {
      label.value = v.get<double>();
      // Labels are fitted in single precision: a value beyond it (1e39) would turn every
      // score into nonsense.
      if (!std::isfinite(static_cast<float>(label.value)))
        throw StageConfigError("labels", fmt::format("{}: \"{}\" is {}, beyond what a label can be (finite, at most {:g} in magnitude)",
                                                     where, property, v.dump(), std::numeric_limits<float>::max()));
      numbers = true;
    } else if (v.is_string()) {
      label.cls = v.get<std::string>();
      classes = true;
    } else {
      throw StageConfigError("labels", fmt::format("{}: \"{}\" is {}, neither a number nor a class name", where, property, clipped(v.dump())));
    }
    if (numbers && classes)
      throw StageConfigError("labels", fmt::format("{}: \"{}\" mixes numbers and class names across features", where, property));
    json geometry;
    try {
      geometry = crs.lonlat(f.at("geometry"));
      label.chips = chips_of_geometry(cube, geometry, all);
    } catch (const std::exception& e) {
      throw StageConfigError("labels", fmt::format("{}: {}", where, detail_of(e)));
    }
    if (label.chips.empty()) {  // labels often reach beyond the cube: counted and reported, not an error
      ++outside;
      // Where it would fall read the other way round: a file written as latitude, longitude.
      try {
        outside_swapped += !crs.declared() && !chips_of_geometry(cube, swapped_axes(geometry), all).empty();
      } catch (const std::exception&) {  // not a place either way
      }
      continue;
    }
    labels.push_back(std::move(label));
  }
  UserLabels out;
  out.labels = doc["features"].size();
  out.outside = outside;
  out.outside_swapped = outside_swapped;
  std::vector<std::string> names;
  if (numbers) {
    if (!labels.empty() && std::all_of(labels.begin(), labels.end(), [&](const Label& l) { return l.value == labels[0].value; }))
      throw StageConfigError("labels", fmt::format("{}: every label on the cube's chips is {} = {:g}: nothing varies, so nothing "
                                                   "can be learnt", source, property, labels[0].value));
    names.push_back(property);
    out.targets.push_back({property, Modality::treecover, -1});
  } else {
    std::set<std::string> seen;
    for (const Label& l : labels) seen.insert(l.cls);
    // One class is nothing to tell apart: the model would learn a constant.
    if (seen.size() == 1)
      throw StageConfigError("labels", fmt::format("{}: every label on the cube's chips is of class \"{}\": a few-shot map needs "
                                                   "two classes at least (label some chips that are not {} too)",
                                                   source, *seen.begin(), *seen.begin()));
    int code = 0;
    for (const std::string& c : seen) {
      names.push_back(c);
      out.targets.push_back({c, Modality::worldcover, code++});
    }
  }
  // Then per chip: the mean of its numbers, or the share of its labels in each class.
  std::map<ChipId, std::vector<double>> sums;
  std::map<ChipId, int> count;
  for (const Label& l : labels)
    for (const ChipId& c : l.chips) {
      auto& s = sums.try_emplace(c, std::vector<double>(names.size(), 0.0)).first->second;
      if (numbers) s[0] += l.value;
      else s[static_cast<std::size_t>(std::find(names.begin(), names.end(), l.cls) - names.begin())] += 1;
      ++count[c];
    }
  for (const auto& [chip, s] : sums) {
    std::vector<float> v;
    for (double x : s) v.push_back(static_cast<float>(x / count[chip]));
    out.chips[chip] = v;
  }
  return out;
}

namespace {

UserLabels raster_labels(const fs::path& file, const CubeReader& cube, double min_valid) {
  const std::unique_ptr<GDALDataset> ds(GDALDataset::Open(file.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
  if (!ds) throw StageConfigError("labels", fmt::format("{}: neither GeoJSON nor a raster GDAL can open: {}", file.string(), CPLGetLastErrorMsg()));
  const OGRSpatialReference* srs = ds->GetSpatialRef();
  double gt[6];
  if (!srs || ds->GetGeoTransform(gt) != CE_None || gt[2] != 0 || gt[4] != 0)
    throw StageConfigError("labels", fmt::format("{}: a label raster needs a CRS and a north-up geotransform", file.string()));
  GDALRasterBand* band = ds->GetRasterBand(1);
  int has_nodata = 0;
  const double nodata = band->GetNoDataValue(&has_nodata);
  UserLabels out;
  out.targets.push_back({file.stem().string(), Modality::treecover, -1});
  std::map<int, std::unique_ptr<OGRCoordinateTransformation>> to_raster;  // by EPSG
  for (const ChipId& chip : embedded_chips(cube)) {
    auto& t = to_raster[chip.zone.epsg()];
    if (!t) {
      OGRSpatialReference zone;
      zone.importFromEPSG(chip.zone.epsg());
      zone.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
      OGRSpatialReference target(*srs);
      target.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
      t.reset(OGRCreateCoordinateTransformation(&zone, &target));
    }
    // The chip's footprint in the raster's pixels (its corners and edge midpoints).
    const Box b = chip.bounds();
    double x0 = 1e300, y0 = 1e300, x1 = -1e300, y1 = -1e300;
    for (double fx : {0.0, 0.5, 1.0})
      for (double fy : {0.0, 0.5, 1.0}) {
        double x = b.e0 + fx * (b.e1 - b.e0), y = b.n0 + fy * (b.n1 - b.n0);
        if (!t->Transform(1, &x, &y)) continue;
        const double px = (x - gt[0]) / gt[1], py = (y - gt[3]) / gt[5];
        x0 = std::min(x0, px), x1 = std::max(x1, px), y0 = std::min(y0, py), y1 = std::max(y1, py);
      }
    const int c0 = std::max(0, static_cast<int>(std::floor(x0))), c1 = std::min(ds->GetRasterXSize(), static_cast<int>(std::ceil(x1)));
    const int r0 = std::max(0, static_cast<int>(std::floor(y0))), r1 = std::min(ds->GetRasterYSize(), static_cast<int>(std::ceil(y1)));
    const double whole = std::max(1.0, (x1 - x0) * (y1 - y0));
    if (c1 <= c0 || r1 <= r0) continue;
    std::vector<double> px(static_cast<std::size_t>(c1 - c0) * static_cast<std::size_t>(r1 - r0));
    if (band->RasterIO(GF_Read, c0, r0, c1 - c0, r1 - r0, px.data(), c1 - c0, r1 - r0, GDT_Float64, 0, 0) != CE_None)
      throw StageConfigError("labels", fmt::format("{}: {}", file.string(), CPLGetLastErrorMsg()));
    double sum = 0;
    std::size_t n = 0;
    for (double v : px) {
      if (std::isnan(v) || (has_nodata && v == nodata)) continue;
      if (!std::isfinite(static_cast<float>(v)))
        throw StageConfigError("labels", fmt::format("{}: a pixel in rows {}..{}, columns {}..{} is {}, beyond what a label can be "
                                                     "(finite, at most {:g} in magnitude; or the raster's nodata value)",
                                                     file.string(), r0, r1 - 1, c0, c1 - 1, v, std::numeric_limits<float>::max()));
      sum += v, ++n;
    }
    if (static_cast<double>(n) < min_valid * whole) continue;
    out.chips[chip] = {static_cast<float>(sum / static_cast<double>(n))};
  }
  out.labels = out.chips.size();
  return out;
}

}  // namespace

UserLabels read_labels(const fs::path& file, const std::string& property, const CubeReader& cube, double min_valid) {
  if (!fs::exists(file)) throw StageConfigError("labels", fmt::format("{}: no such labels file", file.string()));
  try {
    require_regular_file(file);  // a FIFO would block GDAL's open of a label raster
  } catch (const std::runtime_error& e) {
    throw StageConfigError("labels", e.what());
  }
  const std::string ext = file.extension().string();
  GDALAllRegister();
  return ext == ".geojson" || ext == ".json" ? geojson_labels(read_user_json_file(file), file.string(), property, cube)
                                             : raster_labels(file, cube, min_valid);
}

std::vector<ChipSample> cube_samples(const CubeReader& cube) {
  std::vector<ChipSample> out;
  ChipPlane plane;
  const std::vector<std::string> arrays = cube.spec().embedding_arrays();
  for (Zone z : cube.spec().zones)
    for (const TileId& t : cube.written_tiles(z)) {
      const TileEmbeddings tile = cube.read_tile(t);
      for (int k = 0; k < kChipsPerTile; ++k)
        if (tile.status[static_cast<std::size_t>(k)] == kEmbedded) {
          out.push_back(embedded_sample(tile, k, arrays));
          out.back().at = plane.at(out.back().chip);
        }
    }
  return out;
}

}  // namespace eo
