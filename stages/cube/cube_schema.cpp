// The cube's schema (DESIGN.md §4): a zone group's arrays and their CF attributes, the
// CRS, the geoemb: and proj:/spatial: attributes, the root's layout and provenance, and
// creating (or checking) a cube once, before any tile is written.

#include "pipeline/core/error.hpp"
#include "stages/cube/cube.hpp"

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cstring>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <stdexcept>

#include "pipeline/core/files.hpp"
#include "stages/cube/zarr.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using zarr::compress;
using zarr::numpy_dtype;
using zarr::read_json;
using zarr::write_chunk;
using zarr::zarray;

constexpr int kZoneCols = 224;  // eastings 0 .. 1,003,520 m hold every zone band and its border chips

// WKT1 of WGS 84 / UTM: every zone is the same text but for the zone's numbers, so the
// cube needs no projection library; the test compares it with GDAL's EPSG definition.
std::string utm_wkt(Zone zone) {
  return fmt::format(
      R"(PROJCS["WGS 84 / UTM zone {}{}",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,)"
      R"(AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],)"
      R"(UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AUTHORITY["EPSG","4326"]],)"
      R"(PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",{}],)"
      R"(PARAMETER["scale_factor",0.9996],PARAMETER["false_easting",500000],PARAMETER["false_northing",{}],)"
      R"(UNIT["metre",1,AUTHORITY["EPSG","9001"]],AXIS["Easting",EAST],AXIS["Northing",NORTH],AUTHORITY["EPSG","{}"]])",
      zone.number, zone.south ? 'S' : 'N', static_cast<int>(zone.central_meridian()), zone.south ? 10000000 : 0,
      zone.epsg());
}

struct ArrayMeta {
  json zarray, zattrs;
};

json crs_attribute(Zone zone) {
  return {{"wkt", utm_wkt(zone)}, {"url", fmt::format("http://www.opengis.net/def/crs/EPSG/0/{}", zone.epsg())}};
}

// Every array of a zone group, by path inside the group.
std::map<std::string, ArrayMeta> zone_arrays(Zone zone, const CubeSpec& spec) {
  const int rows = zone_rows(zone), cols = zone_cols(), t = kChipsPerTileSide;
  std::map<std::string, ArrayMeta> arrays;
  const json fill_nan = "NaN";
  auto grid_attrs = [&](json dims) {
    return json{{"_ARRAY_DIMENSIONS", dims}, {"grid_mapping", "spatial_ref"}, {"_CRS", crs_attribute(zone)}};
  };
  for (const std::string& name : spec.embedding_arrays()) {
    ArrayMeta a;
    const bool int8 = spec.dtype == CubeDtype::int8;
    a.zarray = zarray({rows, cols, spec.dim}, {t, t, spec.dim}, numpy_dtype(spec.dtype), int8 ? json(-128) : fill_nan);
    a.zattrs = grid_attrs({"y", "x", "dim"});
    a.zattrs["long_name"] = name == "fused" ? "mean of the available modalities' embeddings"
                                            : fmt::format("{} embedding", name);
    if (int8) {
      a.zattrs["scale_array"] = name + "_scale";
      a.zattrs["comment"] = fmt::format("embedding = {} * {}_scale (a scale per chip); -128 where there is none", name, name);
      ArrayMeta s;
      s.zarray = zarray({rows, cols}, {t, t}, "<f4", fill_nan);
      s.zattrs = grid_attrs({"y", "x"});
      s.zattrs["long_name"] = fmt::format("per-chip scale of {}", name);
      arrays[name + "_scale"] = s;
    }
    arrays[name] = a;
  }
  for (Modality m : spec.modalities) {
    ArrayMeta c;
    c.zarray = zarray({rows, cols, kSeasons}, {t, t, kSeasons}, "<f4", fill_nan);
    c.zattrs = grid_attrs({"y", "x", "season"});
    c.zattrs["long_name"] = fmt::format("clear {} observations per pixel, mean over the chip, per season", info(m).name);
    c.zattrs["seasons"] = {"DJF", "MAM", "JJA", "SON"};
    c.zattrs["comment"] = "the number of scenes composited at a pixel, averaged over the chip's pixels; "
                          "a seasonal product counts as one";
    arrays[std::string(info(m).name) + "_clear"] = c;
  }
  ArrayMeta status;
  status.zarray = zarray({rows, cols}, {t, t}, "|u1", 0);
  status.zattrs = grid_attrs({"y", "x"});
  status.zattrs["long_name"] = "chip status";
  // 0 (not processed) is the fill value, which CF readers such as xarray show as
  // missing; the flags are the states a processed chip can be in.
  status.zattrs["flag_values"] = {1, 2, 3};
  status.zattrs["flag_meanings"] = "embedded no_data failed";
  status.zattrs["comment"] = "0, the fill value (NaN once xarray decodes it): not processed yet";
  arrays["status"] = status;

  ArrayMeta x, y, ref;
  x.zarray = zarray({cols}, {cols}, "<f8", fill_nan);
  x.zattrs = {{"_ARRAY_DIMENSIONS", {"x"}}, {"standard_name", "projection_x_coordinate"},
              {"long_name", "easting of the chip centre"}, {"units", "m"}, {"axis", "X"}};
  y.zarray = zarray({rows}, {rows}, "<f8", fill_nan);
  y.zattrs = {{"_ARRAY_DIMENSIONS", {"y"}}, {"standard_name", "projection_y_coordinate"},
              {"long_name", "northing of the chip centre"}, {"units", "m"}, {"axis", "Y"}};
  arrays["x"] = x;
  arrays["y"] = y;
  // CF grid mapping variable (as rioxarray and QGIS look for it).
  // No fill value, and its one chunk written: readers see the value 0, not "missing".
  ref.zarray = zarray({}, {}, "<i4", nullptr);
  ref.zattrs = {{"_ARRAY_DIMENSIONS", json::array()}, {"grid_mapping_name", "transverse_mercator"},
                {"crs_wkt", utm_wkt(zone)}, {"spatial_ref", utm_wkt(zone)}, {"epsg", zone.epsg()},
                {"longitude_of_central_meridian", zone.central_meridian()}, {"latitude_of_projection_origin", 0.0},
                {"scale_factor_at_central_meridian", 0.9996}, {"false_easting", 500000.0},
                {"false_northing", zone.south ? 10000000.0 : 0.0},
                {"GeoTransform", fmt::format("0 {} 0 {} 0 -{}", kChipSizeM, zone.origin_northing(), kChipSizeM)}};
  arrays["spatial_ref"] = ref;
  return arrays;
}

json zone_attributes(Zone zone, const CubeSpec& spec) {
  json attrs = geoemb_attributes(spec);
  attrs.update(json{{"zone", zone.name()},
          {"epsg", zone.epsg()},
          {"crs_wkt", utm_wkt(zone)},
          {"proj:code", fmt::format("EPSG:{}", zone.epsg())},
          {"proj:epsg", zone.epsg()},
          {"spatial:dimensions", {"y", "x"}},
          {"spatial:transform", zone_transform(zone)},
          {"spatial:shape", {zone_rows(zone), zone_cols()}},
          {"spatial:registration", "pixel"},
          {"chip_size_m", kChipSizeM},
          {"tile_chips", kChipsPerTileSide}});
  return attrs;
}

json layout(const CubeSpec& spec) {
  json m = json::array();
  for (Modality x : spec.modalities) m.push_back(info(x).name);
  return {{"dim", spec.dim}, {"dtype", name_str(spec.dtype)}, {"modalities", m}, {"chip_pixels", spec.chip_pixels},
          {"pixel_size_m", spec.pixel_size}};
}

}  // namespace

std::string utc_iso(std::chrono::system_clock::time_point t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", std::chrono::floor<std::chrono::seconds>(t));
}

std::string file_uri(const fs::path& path) {
  std::string uri = "file://";
  for (const unsigned char c : path.lexically_normal().string()) {
    if (std::isalnum(c) || std::strchr("/-._~", c))
      uri += static_cast<char>(c);
    else
      uri += fmt::format("%{:02X}", c);
  }
  return uri;
}

json geoemb_attributes(const CubeSpec& spec) {
  const json& p = spec.provenance;
  const std::string model = p.contains("model_card") ? file_uri(p["model_card"].get<std::string>())
                                                     : "urn:eo-pipeline:model:" + p.value("model_version", std::string("unknown"));
  json sources = json::array();
  if (p.contains("source_catalog")) sources.push_back(file_uri(p["source_catalog"].get<std::string>()));
  else sources.push_back("urn:eo-pipeline:sources:unrecorded");
  json attrs = {
      {"zarr_conventions",
       {{{"schema_url", "https://raw.githubusercontent.com/geo-embeddings/embeddings-zarr-convention/refs/tags/v1/schema.json"},
         {"spec_url", "https://github.com/geo-embeddings/embeddings-zarr-convention/blob/v1/README.md"},
         {"uuid", "61c12cc5-0e28-4056-999a-480cf3fb7e4c"},
         {"name", "geoemb:"},
         {"description", "Geoembeddings convention for geospatial embedding arrays with model provenance"}},
        {{"uuid", "689b58e2-cf7b-45e0-9fff-9cfc0883d6b4"},
         {"schema_url", "https://raw.githubusercontent.com/zarr-conventions/spatial/refs/tags/v1/schema.json"},
         {"spec_url", "https://github.com/zarr-conventions/spatial/blob/v1/README.md"},
         {"name", "spatial"},
         {"description", "Spatial coordinate information"}},
        {{"uuid", "f17cb550-5864-4468-aeb7-f3180cfb622f"},
         {"schema_url", "https://raw.githubusercontent.com/zarr-conventions/geo-proj/refs/tags/v1/schema.json"},
         {"spec_url", "https://github.com/zarr-conventions/geo-proj/blob/v1/README.md"},
         {"name", "proj:"},
         {"description", "Coordinate reference system information for geospatial data"}}}},
      {"geoemb:type", "chip"},
      {"geoemb:dimensions", spec.dim},
      {"geoemb:model", model},
      {"geoemb:source_data", sources},
      {"geoemb:data_type", name_str(spec.dtype)},
      {"geoemb:gsd", spec.pixel_size},
      {"geoemb:chip_layout",
       {{"layout_type", "regular_grid"},
        {"chip_size", {spec.chip_pixels, spec.chip_pixels}},
        {"stride", {spec.chip_pixels, spec.chip_pixels}},
        {"grid_id", "eo-pipeline UTM chip grid (4480 m chips, rows down from a fixed origin)"}}},
      {"geoemb:build_version", EO_VERSION}};
  // A scale per chip, NaN where the chip has no embedding (DESIGN.md §4).
  if (spec.dtype == CubeDtype::int8)
    attrs["geoemb:quantization"] = {{"method", "per_chip_scale"},
                                    {"original_dtype", "float32"},
                                    {"quantized_dtype", "int8"},
                                    {"scale", {{"type", "array"}, {"array_name", "fused_scale"}, {"nodata", "NaN"}}}};
  return attrs;
}

std::vector<std::string> CubeSpec::embedding_arrays() const {
  std::vector<std::string> names;
  for (Modality m : modalities) names.push_back(info(m).name);
  names.push_back("fused");
  return names;
}

std::vector<std::string> CubeSpec::clear_arrays() const {
  std::vector<std::string> names;
  for (Modality m : modalities) names.push_back(std::string(info(m).name) + "_clear");
  return names;
}

int zone_rows(Zone zone) { return static_cast<int>(zone.origin_northing() / kChipSizeM); }
int zone_cols() { return kZoneCols; }
std::array<double, 6> zone_transform(Zone zone) { return {kChipSizeM, 0.0, 0.0, 0.0, -kChipSizeM, zone.origin_northing()}; }

std::vector<Zone> cube_zones(const fs::path& root) {
  std::vector<Zone> zones;
  if (!fs::is_directory(root)) return zones;
  for (const auto& e : fs::directory_iterator(root)) {
    if (!fs::exists(e.path() / ".zgroup")) continue;
    try {
      zones.push_back(parse_zone(e.path().filename().string()));
    } catch (const std::invalid_argument&) {
    }
  }
  std::sort(zones.begin(), zones.end());
  return zones;
}

void create_cube(const fs::path& root, const CubeSpec& spec_in) {
  CubeSpec spec = spec_in;
  std::string created = utc_iso(std::chrono::system_clock::now());
  // A cube of other settings there is the settings' fault (exit 2), not the run's.
  if (fs::exists(root / ".zattrs")) {
    const json old = read_json(root / ".zattrs");
    const json want = layout(spec);
    if (!old.contains("layout") || old["layout"] != want)
      throw StageConfigError("cube", fmt::format(
          "{} holds a cube of another layout ({}) than this run makes ({}): write to another output or remove it",
          root.string(), old.value("layout", json()).dump(), want.dump()));
    // One model's embeddings per cube: another model's would mix with these unseen.
    const json had = old.value("model_hash", json()), has = spec.provenance.value("model_hash", json());
    if (!had.is_null() && !has.is_null() && had != has)
      throw StageConfigError("cube", fmt::format(
          "{} holds the embeddings of model {} ({}); a new model writes a new cube, never into an old one: "
          "leave run.cube unset (each model then gets its own cube) or point it at a new path",
          root.string(), old.value("model_version", old.value("model", std::string("?"))), had.dump()));
    created = old.value("created", created);
    for (Zone z : cube_zones(root))  // zones of earlier plans stay
      if (std::find(spec.zones.begin(), spec.zones.end(), z) == spec.zones.end()) spec.zones.push_back(z);
  }
  std::sort(spec.zones.begin(), spec.zones.end());

  json consolidated = json::object();
  auto put = [&](const std::string& key, const json& value) {
    consolidated[key] = value;
    write_atomically(root / key, value.dump(2) + "\n");
  };
  json attrs = spec.provenance;
  attrs["Conventions"] = "CF-1.8";
  attrs["title"] = "eo-pipeline multi-modal chip embeddings";
  attrs["created"] = created;
  attrs["layout"] = layout(spec);
  attrs["chip_size_m"] = kChipSizeM;
  attrs["status_codes"] = {{"0", "not processed"}, {"1", "embedded"}, {"2", "no data"}, {"3", "failed"}};
  json zones = json::array();
  for (Zone z : spec.zones) zones.push_back(z.name());
  attrs["zones"] = zones;

  for (Zone zone : spec.zones) {
    const std::string g = zone.name();
    json group_consolidated = json::object();  // for readers that open the zone group alone
    auto put_in_group = [&](const std::string& key, const json& value) {
      consolidated[key] = value;
      group_consolidated[key.substr(g.size() + 1)] = value;
      write_atomically(root / key, value.dump(2) + "\n");
    };
    put_in_group(g + "/.zgroup", {{"zarr_format", 2}});
    put_in_group(g + "/.zattrs", zone_attributes(zone, spec));
    for (const auto& [name, meta] : zone_arrays(zone, spec)) {
      put_in_group(g + "/" + name + "/.zarray", meta.zarray);
      put_in_group(g + "/" + name + "/.zattrs", meta.zattrs);
    }
    // The coordinates: chip centres, metres in the zone's CRS.
    std::vector<double> x(static_cast<std::size_t>(zone_cols())), y(static_cast<std::size_t>(zone_rows(zone)));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = (static_cast<double>(i) + 0.5) * kChipSizeM;
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = zone.origin_northing() - (static_cast<double>(i) + 0.5) * kChipSizeM;
    write_chunk(root / g / "x" / "0", compress(x.data(), x.size() * 8, 8));
    write_chunk(root / g / "y" / "0", compress(y.data(), y.size() * 8, 8));
    const std::int32_t zero = 0;
    write_chunk(root / g / "spatial_ref" / "0", compress(&zero, 4, 4));
    write_atomically(root / g / ".zmetadata",
                     json{{"metadata", group_consolidated}, {"zarr_consolidated_format", 1}}.dump(2) + "\n");
  }
  put(".zgroup", {{"zarr_format", 2}});
  put(".zattrs", attrs);
  // Consolidated metadata last: readers that use it see every array at once.
  write_atomically(root / ".zmetadata",
                   json{{"metadata", consolidated}, {"zarr_consolidated_format", 1}}.dump(2) + "\n");
}

}  // namespace eo
