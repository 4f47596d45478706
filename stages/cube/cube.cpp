// Over 400 lines: the cube's Zarr v2 format (metadata, chunk encoding in three dtypes,
// chunk paths) is written and read back here, so the format is spelled in one file.
#include "stages/cube/cube.hpp"

#include <blosc.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <xtensor/xview.hpp>

#include "pipeline/core/failpoint.hpp"
#include "pipeline/core/files.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

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

json compressor() { return {{"id", "blosc"}, {"cname", "zstd"}, {"clevel", 5}, {"shuffle", 1}, {"blocksize", 0}}; }

std::string numpy_dtype(CubeDtype d) {
  switch (d) {
    case CubeDtype::float16: return "<f2";
    case CubeDtype::int8: return "|i1";
    default: return "<f4";
  }
}

json zarray(std::vector<int> shape, std::vector<int> chunks, const std::string& dtype, json fill) {
  return {{"zarr_format", 2}, {"shape", shape}, {"chunks", chunks}, {"dtype", dtype}, {"compressor", compressor()},
          {"fill_value", fill}, {"order", "C"}, {"filters", nullptr}, {"dimension_separator", "."}};
}

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
  const double n0 = zone.origin_northing();
  json attrs = geoemb_attributes(spec);
  attrs.update(json{{"zone", zone.name()},
          {"epsg", zone.epsg()},
          {"crs_wkt", utm_wkt(zone)},
          {"proj:code", fmt::format("EPSG:{}", zone.epsg())},
          {"proj:epsg", zone.epsg()},
          {"spatial:dimensions", {"y", "x"}},
          {"spatial:transform", {kChipSizeM, 0.0, 0.0, 0.0, -kChipSizeM, n0}},
          {"spatial:shape", {zone_rows(zone), zone_cols()}},
          {"spatial:registration", "pixel"},
          {"chip_size_m", kChipSizeM},
          {"tile_chips", kChipsPerTileSide}});
  return attrs;
}

json layout(const CubeSpec& spec) {
  json m = json::array();
  for (Modality x : spec.modalities) m.push_back(info(x).name);
  return {{"dim", spec.dim}, {"dtype", cube_dtype_name(spec.dtype)}, {"modalities", m}, {"chip_pixels", spec.chip_pixels},
          {"pixel_size_m", spec.pixel_size}};
}

json read_json(const fs::path& file) {
  std::ifstream in(file);
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw std::runtime_error(fmt::format("{}: not readable JSON: {}", file.string(), e.what()));
  }
}


std::vector<char> compress(const void* data, std::size_t bytes, std::size_t typesize) {
  std::vector<char> out(bytes + BLOSC_MAX_OVERHEAD);
  // One internal thread and the context API: the same bytes every time, from any thread.
  const int n = blosc_compress_ctx(5, BLOSC_SHUFFLE, typesize, bytes, data, out.data(), out.size(), "zstd", 0, 1);
  if (n <= 0) throw std::runtime_error(fmt::format("blosc failed to compress a chunk ({})", n));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// Published (pipeline/core/files.hpp): a reader sees the old chunk or the new one, never
// a part of one. `crash_point` names the failpoint between the chunk's two halves (for
// the crash tests, which stop us in the middle of a chunk).
void write_chunk(const fs::path& file, const std::vector<char>& bytes, const char* crash_point = nullptr) {
  publish_file(file, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    const std::size_t half = std::max<std::size_t>(1, bytes.size() / 2);
    out.write(bytes.data(), static_cast<std::streamsize>(std::min(half, bytes.size())));
    if (half < bytes.size()) {
      out.flush();
      if (crash_point) failpoint(crash_point);
      out.write(bytes.data() + half, static_cast<std::streamsize>(bytes.size() - half));
    }
    if (!out.flush()) throw std::runtime_error(fmt::format("cannot write {}: {}", tmp.string(), std::strerror(errno)));
  });
}

std::vector<char> encode(const xt::xtensor<float, 3>& values, CubeDtype dtype, std::vector<float>* scales) {
  const std::size_t n = values.size();
  if (dtype == CubeDtype::float32) return compress(values.data(), n * 4, 4);
  if (dtype == CubeDtype::float16) {
    std::vector<std::uint16_t> half(n);
    for (std::size_t i = 0; i < n; ++i) half[i] = float_to_half(values.data()[i]);
    return compress(half.data(), n * 2, 2);
  }
  // int8 with a scale per chip: the largest magnitude maps to 127; -128 means none.
  const std::size_t dim = values.shape(2), chips = n / dim;
  std::vector<std::int8_t> q(n);
  scales->assign(chips, std::nanf(""));
  for (std::size_t c = 0; c < chips; ++c) {
    const float* v = values.data() + c * dim;
    if (std::isnan(v[0])) {
      std::fill_n(q.data() + c * dim, dim, std::int8_t{-128});
      continue;
    }
    float peak = 0;
    for (std::size_t i = 0; i < dim; ++i) peak = std::max(peak, std::abs(v[i]));
    const float scale = peak > 0 ? peak / 127.0f : 1.0f;
    (*scales)[c] = scale;
    for (std::size_t i = 0; i < dim; ++i)
      q[c * dim + i] = static_cast<std::int8_t>(std::clamp(std::lround(v[i] / scale), -127L, 127L));
  }
  return compress(q.data(), n, 1);
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
         {"name", "spatial:"},
         {"description", "Spatial coordinate information"}},
        {{"uuid", "f17cb550-5864-4468-aeb7-f3180cfb622f"},
         {"schema_url", "https://raw.githubusercontent.com/zarr-experimental/geo-proj/refs/tags/v1/schema.json"},
         {"spec_url", "https://github.com/zarr-experimental/geo-proj/blob/v1/README.md"},
         {"name", "proj:"},
         {"description", "Coordinate reference system information for geospatial data"}}}},
      {"geoemb:type", "chip"},
      {"geoemb:dimensions", spec.dim},
      {"geoemb:model", model},
      {"geoemb:source_data", sources},
      {"geoemb:data_type", cube_dtype_name(spec.dtype)},
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

CubeDtype parse_cube_dtype(const std::string& name) {
  if (name == "float32") return CubeDtype::float32;
  if (name == "float16") return CubeDtype::float16;
  if (name == "int8") return CubeDtype::int8;
  throw std::invalid_argument(fmt::format("unknown cube dtype '{}' (float32, float16 or int8)", name));
}

std::string cube_dtype_name(CubeDtype dtype) {
  switch (dtype) {
    case CubeDtype::float16: return "float16";
    case CubeDtype::int8: return "int8";
    default: return "float32";
  }
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
  if (fs::exists(root / ".zattrs")) {
    const json old = read_json(root / ".zattrs");
    const json want = layout(spec);
    if (!old.contains("layout") || old["layout"] != want)
      throw std::runtime_error(fmt::format(
          "{} holds a cube of another layout ({}) than this run makes ({}): write to another output or remove it",
          root.string(), old.value("layout", json()).dump(), want.dump()));
    // One model's embeddings per cube: another model's would mix with these unseen.
    const json had = old.value("model_hash", json()), has = spec.provenance.value("model_hash", json());
    if (!had.is_null() && !has.is_null() && had != has)
      throw std::runtime_error(fmt::format(
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

TileEmbeddings::TileEmbeddings(TileId t, const CubeSpec& spec) : tile(t) {
  const std::size_t side = kChipsPerTileSide, dim = static_cast<std::size_t>(spec.dim);
  for (const std::string& name : spec.embedding_arrays())
    arrays.emplace(name, xt::xtensor<float, 3>::from_shape({side, side, dim}));
  for (auto& [name, a] : arrays) a.fill(std::nanf(""));
  for (const std::string& name : spec.clear_arrays()) {
    clear.emplace(name, xt::xtensor<float, 3>::from_shape({side, side, static_cast<std::size_t>(kSeasons)}));
    clear.at(name).fill(std::nanf(""));
  }
}

void TileEmbeddings::add_inputs(const ChipBatch& row) {
  for (const ModalityChips& mc : row.modalities) {
    const auto it = clear.find(std::string(info(mc.modality).name) + "_clear");
    if (it == clear.end()) continue;
    const std::size_t seasons = static_cast<std::size_t>(info(mc.modality).seasons);
    if (mc.clear.size() == row.chips.size() * seasons)
      for (std::size_t k = 0; k < row.chips.size(); ++k) {
        const int pos = index_in_tile(row.chips[k]);
        for (std::size_t s = 0; s < seasons; ++s)
          it->second(static_cast<std::size_t>(pos / kChipsPerTileSide), static_cast<std::size_t>(pos % kChipsPerTileSide), s) =
              mc.clear[k * seasons + s];
      }
    if (provenance.contains("modalities") && provenance["modalities"].contains(info(mc.modality).name)) continue;
    nlohmann::json seasons_json = nlohmann::json::object();  // the same in every row: kept from the first
    for (std::size_t s = 0; s < mc.observations.size(); ++s) {
      nlohmann::json list = nlohmann::json::array();
      for (const ObservationInfo& o : mc.observations[s]) list.push_back({{"id", o.id}, {"time", o.time}});
      seasons_json[season_name(static_cast<int>(s))] = list;
    }
    provenance["modalities"][info(mc.modality).name] = seasons_json;
  }
}

void TileEmbeddings::add(const std::vector<ChipId>& chips, const std::map<Modality, std::vector<float>>& embeddings) {
  auto& fused = arrays.at("fused");
  const std::size_t dim = fused.shape(2);
  std::vector<float> sum(dim);
  for (std::size_t k = 0; k < chips.size(); ++k) {
    const int pos = index_in_tile(chips[k]);
    const std::size_t y = static_cast<std::size_t>(pos / kChipsPerTileSide), x = static_cast<std::size_t>(pos % kChipsPerTileSide);
    int present = 0;
    std::fill(sum.begin(), sum.end(), 0.0f);
    for (const auto& [m, values] : embeddings) {
      const float* v = values.data() + k * dim;
      if (std::isnan(v[0])) continue;
      std::copy_n(v, dim, &arrays.at(info(m).name)(y, x, 0));
      for (std::size_t i = 0; i < dim; ++i) sum[i] += v[i];
      ++present;
    }
    if (present > 0)
      for (std::size_t i = 0; i < dim; ++i) fused(y, x, i) = sum[i] / static_cast<float>(present);
    status[static_cast<std::size_t>(pos)] = present > 0 ? kEmbedded : kNoData;
  }
}

void TileEmbeddings::fail(const std::bitset<kChipsPerTile>& planned) {
  for (auto& [name, a] : arrays) a.fill(std::nanf(""));
  for (auto& [name, a] : clear) a.fill(std::nanf(""));
  provenance = nlohmann::json::object();
  for (std::size_t i = 0; i < status.size(); ++i) status[i] = planned[i] ? kFailed : kNotProcessed;
}

namespace {

fs::path chunk_file(const fs::path& root, const TileId& tile, const std::string& array) {
  const bool grid2d = array == "status" || array.ends_with("_scale");
  return root / tile.zone.name() / array /
         (grid2d ? fmt::format("{}.{}", tile.row, tile.col) : fmt::format("{}.{}.0", tile.row, tile.col));
}

fs::path provenance_file(const fs::path& root, const TileId& tile) {
  return root / tile.zone.name() / "provenance" / (tile.str() + ".json");
}

// A chunk's bytes, or nothing when the chunk was never written.
std::optional<std::vector<char>> read_chunk(const fs::path& file, std::size_t bytes) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  const std::vector<char> packed((std::istreambuf_iterator<char>(in)), {});
  std::vector<char> out(bytes);
  const int n = blosc_decompress_ctx(packed.data(), out.data(), out.size(), 1);
  if (n != static_cast<int>(bytes))
    throw std::runtime_error(fmt::format("{}: not a chunk of {} bytes (blosc says {})", file.string(), bytes, n));
  return out;
}

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {  // subnormal: mant * 2^-24
    const float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
}

}  // namespace

CubeReader::CubeReader(fs::path root) : root_(std::move(root)) {
  if (!fs::exists(root_ / ".zattrs")) throw std::runtime_error(fmt::format("{}: not a cube (no .zattrs)", root_.string()));
  const json attrs = read_json(root_ / ".zattrs");
  try {
    const json& l = attrs.at("layout");
    spec_.dim = l.at("dim").get<int>();
    spec_.dtype = parse_cube_dtype(l.at("dtype").get<std::string>());
    for (const auto& m : l.at("modalities")) spec_.modalities.push_back(parse_modality(m.get<std::string>()));
    spec_.chip_pixels = l.at("chip_pixels").get<int>();
    spec_.pixel_size = l.at("pixel_size_m").get<double>();
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{}: no layout this version reads: {}", root_.string(), e.what()));
  }
  spec_.zones = cube_zones(root_);
  spec_.provenance = attrs;
}

TileEmbeddings CubeReader::read_tile(const TileId& tile) const {
  TileEmbeddings t(tile, spec_);
  t.status = read_status(tile);
  for (auto& [name, values] : t.arrays) read_array(tile, name, values.data());
  return t;
}

bool CubeReader::read_array(const TileId& tile, const std::string& name, float* values) const {
  const std::size_t dim = static_cast<std::size_t>(spec_.dim), n = kChipsPerTile * dim;
  const std::size_t width = spec_.dtype == CubeDtype::float32 ? 4 : spec_.dtype == CubeDtype::float16 ? 2 : 1;
  const auto raw = read_chunk(chunk_file(root_, tile, name), n * width);
  if (!raw) {
    std::fill_n(values, n, std::nanf(""));
    return false;
  }
  if (spec_.dtype == CubeDtype::float32) {
    std::memcpy(values, raw->data(), n * 4);
  } else if (spec_.dtype == CubeDtype::float16) {
    for (std::size_t i = 0; i < n; ++i) {
      std::uint16_t h;
      std::memcpy(&h, raw->data() + 2 * i, 2);
      values[i] = half_to_float(h);
    }
  } else {
    const auto scales = read_chunk(chunk_file(root_, tile, name + "_scale"), kChipsPerTile * 4);
    if (!scales) throw std::runtime_error(fmt::format("{}: the chunk's scales are missing", chunk_file(root_, tile, name).string()));
    for (std::size_t i = 0; i < n; ++i) {
      const auto q = static_cast<std::int8_t>((*raw)[i]);
      float scale;
      std::memcpy(&scale, scales->data() + 4 * (i / dim), 4);
      values[i] = q == -128 ? std::nanf("") : static_cast<float>(q) * scale;
    }
  }
  return true;
}

fs::path CubeReader::chunk_path(const TileId& tile, const std::string& array) const {
  return chunk_file(root_, tile, array);
}

std::vector<std::uint8_t> CubeReader::read_status(const TileId& tile) const {
  std::vector<std::uint8_t> status(kChipsPerTile, kNotProcessed);
  if (const auto raw = read_chunk(chunk_file(root_, tile, "status"), kChipsPerTile))
    std::copy(raw->begin(), raw->end(), status.begin());
  return status;
}

json CubeReader::read_provenance(const TileId& tile) const {
  const fs::path file = provenance_path(tile);
  return fs::exists(file) ? read_json(file) : json::object();
}

fs::path CubeReader::provenance_path(const TileId& tile) const { return provenance_file(root_, tile); }

std::vector<TileId> CubeReader::written_tiles(Zone zone) const {
  std::vector<TileId> tiles;
  const fs::path dir = root_ / zone.name() / "status";
  if (!fs::is_directory(dir)) return tiles;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    int row = 0, col = 0;
    char dot = 0, rest = 0;
    // Chunk files are "ROW.COL"; temporaries and .zarray are not.
    if (std::sscanf(name.c_str(), "%d%c%d%c", &row, &dot, &col, &rest) == 3 && dot == '.')
      tiles.push_back(TileId{zone, row, col});
  }
  std::sort(tiles.begin(), tiles.end());
  return tiles;
}

CubeWriter::CubeWriter(fs::path root, CubeSpec spec) : root_(std::move(root)), spec_(std::move(spec)) {}

fs::path CubeWriter::provenance_path(const TileId& tile) const { return provenance_file(root_, tile); }

fs::path CubeWriter::chunk_path(const TileId& tile, const std::string& array) const {
  return chunk_file(root_, tile, array);
}

void CubeWriter::write_tile(const TileEmbeddings& t) const {
  for (const std::string& name : spec_.embedding_arrays()) {
    const auto& values = t.arrays.at(name);
    const fs::path file = chunk_path(t.tile, name);
    const bool any = std::any_of(values.begin(), values.end(), [](float v) { return !std::isnan(v); });
    const fs::path scale_file = chunk_path(t.tile, name + "_scale");
    if (!any) {  // nothing to store: the chunk reads as fill value
      fs::remove(file);
      if (spec_.dtype == CubeDtype::int8) fs::remove(scale_file);
      continue;
    }
    std::vector<float> scales;
    write_chunk(file, encode(values, spec_.dtype, &scales), "cube-chunk");
    if (spec_.dtype == CubeDtype::int8) write_chunk(scale_file, compress(scales.data(), scales.size() * 4, 4));
  }
  for (const auto& [name, values] : t.clear) {
    const fs::path file = chunk_path(t.tile, name);
    if (std::all_of(values.begin(), values.end(), [](float v) { return std::isnan(v); }))
      fs::remove(file);
    else
      write_chunk(file, compress(values.data(), values.size() * 4, 4));
  }
  const fs::path provenance = provenance_path(t.tile);
  if (t.provenance.empty()) {
    fs::remove(provenance);
  } else {
    fs::create_directories(provenance.parent_path());
    nlohmann::json doc = t.provenance;
    doc["tile"] = t.tile.str();
    write_atomically(provenance, doc.dump(1) + "\n");
  }
  write_chunk(chunk_path(t.tile, "status"), compress(t.status.data(), t.status.size(), 1), "cube-chunk");
}

std::uint16_t float_to_half(float value) {
  const std::uint32_t f = std::bit_cast<std::uint32_t>(value);
  const std::uint32_t sign = (f >> 16) & 0x8000u;
  const std::uint32_t abs = f & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);  // NaN
  if (abs >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // overflow (rounds up) and inf
  if (abs < 0x38800000u) {                                                     // subnormal or zero in half
    if (abs < 0x33000000u) return static_cast<std::uint16_t>(sign);            // below half the smallest subnormal
    const std::uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const int shift = 126 - static_cast<int>(abs >> 23);  // value = mant * 2^(e-150) = half_mant * 2^-24
    const std::uint32_t half_mant = mant >> shift;
    const std::uint32_t rest = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    const std::uint32_t rounded = half_mant + (rest > halfway || (rest == halfway && (half_mant & 1u)));
    return static_cast<std::uint16_t>(sign | rounded);
  }
  // Normal: rebias the exponent, round the mantissa to 10 bits (ties to even).
  const std::uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  return static_cast<std::uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

}  // namespace eo
