#include "stages/cube/stac_out.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <set>

#include "pipeline/core/files.hpp"
#include "stages/cube/cube.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kEmbeddingExtension = "https://stac-extensions.github.io/embeddings/v0.0.1/schema.json";
constexpr const char* kProjectionExtension = "https://stac-extensions.github.io/projection/v2.0.0/schema.json";
constexpr const char* kProcessingExtension = "https://stac-extensions.github.io/processing/v1.2.0/schema.json";
// What the embeddings asset holds: the zone's group, opened by xarray whole.
constexpr const char* kEmbeddingsTitle =
    "the zone's Zarr group (xr.open_zarr opens it): fused and per-modality embeddings (y, x, dim) and status (y, x)";
constexpr const char* kItemAssetsExtension = "https://stac-extensions.github.io/item-assets/v1.0.0/schema.json";
constexpr const char* kZarr = "application/vnd+zarr";
constexpr const char* kJson = "application/json";

// Link targets as hrefs from a folder inside the cube: URLs as they are (GDAL's
// /vsicurl/ and /vsis3/ paths turned back into them); files of the cube relative, so the
// cube can be moved; other files absolute, because the cube is reached through the
// OUTPUT/cube.zarr link as well, from which a relative path out of it resolves (as STAC
// clients resolve it, by text) to another place.
class Hrefs {
 public:
  Hrefs(const fs::path& cube, const fs::path& dir) : cube_(fs::weakly_canonical(cube)), dir_(fs::weakly_canonical(dir)) {}
  std::string operator()(const std::string& target) const {
    // GDAL's names of remote files (a catalog's) as the URLs they stand for, with no query
    // string: a signed URL's signature is a secret, and expires.
    if (target.starts_with("/vsicurl/")) {
      const std::string url = target.substr(9);
      return url.substr(0, url.find('?'));
    }
    if (target.starts_with("/vsis3/")) return "s3://" + target.substr(7);
    if (target.find("://") != std::string::npos) return target;
    // Inside the cube, relative (the cube moves as one); outside it, a file:// URI, as the
    // geoemb: attributes name the model and the sources: never a bare absolute path.
    const fs::path path = fs::weakly_canonical(target), inside = path.lexically_relative(cube_);
    if (inside.empty() || *inside.begin() == "..") return file_uri(path);
    return path.lexically_relative(dir_).generic_string();
  }

 private:
  fs::path cube_, dir_;
};

// Published only when the text is new: a rerun rewrites the Items of the tiles it redid,
// not every Item of the cube.
void write_if_changed(const fs::path& file, const std::string& text) {
  std::ifstream in(file, std::ios::binary);
  if (in && std::string(std::istreambuf_iterator<char>(in), {}) == text) return;
  write_atomically(file, text);
}

// The time span of the observations a tile's provenance lists: scenes are instants, a
// seasonal product the interval of dates "A/B" (from the start of A to the end of B).
struct Span {
  std::string start, end;
  void add(const std::string& time) {
    const auto slash = time.find('/');
    std::string a = time.substr(0, slash), b = slash == std::string::npos ? a : time.substr(slash + 1);
    if (a.size() == 10) a += "T00:00:00Z";
    if (b.size() == 10) b += "T23:59:59Z";
    if (start.empty() || a < start) start = a;
    if (end.empty() || b > end) end = b;
  }
  void add(const Span& o) {
    if (!o.start.empty()) add(o.start + "/" + o.end);
  }
};

Span provenance_span(const json& provenance) {
  Span span;
  if (!provenance.contains("modalities")) return span;
  for (const auto& [modality, seasons] : provenance["modalities"].items())
    for (const auto& [season, observations] : seasons.items())
      for (const json& o : observations) span.add(o.value("time", std::string()));
  return span;
}

// The media type of a source file, from its name.
std::string media_type(const std::string& file) {
  const std::string ext = fs::path(file).extension().string();
  if (ext == ".tif" || ext == ".tiff") return "image/tiff; application=geotiff";
  if (ext == ".nc") return "application/netcdf";
  if (ext == ".jp2") return "image/jp2";
  return "";
}

json link(const std::string& rel, const std::string& href, const std::string& type, const std::string& title = "") {
  json l = {{"rel", rel}, {"href", href}};
  if (!type.empty()) l["type"] = type;
  if (!title.empty()) l["title"] = title;
  return l;
}

// The link to the model: its card, or the URN geoemb: names it by when the cube has none.
json model_link(const Hrefs& href, const json& provenance, const json& geoemb) {
  const std::string title = "model " + provenance.value("model_version", std::string("?"));
  if (provenance.contains("model_card"))
    return link("emb:model", href(provenance["model_card"].get<std::string>()), kJson,
                title + ": the checkpoint's card (preset, shape, hash)");
  return link("emb:model", geoemb["geoemb:model"].get<std::string>(), "", title);
}

json describe_quantization(const Hrefs& href, const json& geoemb, const fs::path& zone_dir) {
  json q = geoemb["geoemb:quantization"];
  q.erase("scale");  // an array of the store, which the extension's numbers cannot hold: the link says it
  q["link"] = link("describedby", href((zone_dir / "fused_scale").string()), kZarr,
                   "embedding = q * fused_scale[y, x], one scale per chip (each array <a> has its own <a>_scale); "
                   "q = clamp(round(v / scale), -127, 127) with scale = max|v| / 127; q = -128 and a NaN scale: "
                   "no embedding");
  return q;
}

// What every Item and the Collection of one cube share.
struct CubeStac {
  explicit CubeStac(const fs::path& cube_path)
      : path(cube_path), cube(cube_path), spec(cube.spec()), provenance(spec.provenance), geoemb(geoemb_attributes(spec)),
        dir(cube_path / "stac"), items_dir(dir / "items"), from_item(cube_path, items_dir), from_collection(cube_path, dir),
        model_version(provenance.value("model_version", std::string("unknown"))),
        collection_id("eo-pipeline-" + model_version) {
    for (Modality m : spec.modalities) modalities.push_back(info(m).name);
    runtime = {{"model_version", model_version}, {"chip_pixels", spec.chip_pixels},
               {"pixel_size_m", spec.pixel_size}, {"modalities", modalities}};
  }
  fs::path path;
  CubeReader cube;
  const CubeSpec& spec;
  const json& provenance;
  json geoemb;
  fs::path dir, items_dir;
  Hrefs from_item, from_collection;
  std::string model_version, collection_id;
  std::vector<std::string> modalities;
  json runtime;
};

// A tile's Item: its footprint, its time span (of the observations its provenance names,
// else when it was made), where it lies in the zone's grid, its chips' counts.
json tile_properties(const CubeStac& c, const TileId& tile, const std::vector<std::uint8_t>& status,
                     const json& tile_provenance, Span& time) {
  const auto count = [&](std::uint8_t s) { return std::count(status.begin(), status.end(), s); };
  const Box b = tile.bounds();
  json properties = {
      {"processing:datetime",
       utc_iso(std::chrono::file_clock::to_sys(fs::last_write_time(c.cube.chunk_path(tile, "status"))))},
      {"processing:software", {{"eo-pipeline", EO_VERSION}}},
      {"proj:code", fmt::format("EPSG:{}", tile.zone.epsg())},
      {"proj:shape", {kChipsPerTileSide, kChipsPerTileSide}},
      {"proj:transform", {kChipSizeM, 0.0, b.e0, 0.0, -kChipSizeM, b.n1}},
      {"proj:bbox", {b.e0, b.n0, b.e1, b.n1}},
      {"emb:runtime_parameters", c.runtime},
      {"eo-pipeline:chips", {{"embedded", count(kEmbedded)}, {"no_data", count(kNoData)}, {"failed", count(kFailed)}}},
      {"eo-pipeline:chunk", {tile.row, tile.col}}};
  const Span span = provenance_span(tile_provenance);
  if (span.start.empty()) {  // no observation recorded: the time it was made
    properties["datetime"] = properties["processing:datetime"];
    time.add(properties["datetime"].get<std::string>());
  } else {
    properties["datetime"] = nullptr;
    properties["start_datetime"] = span.start;
    properties["end_datetime"] = span.end;
    time.add(span);
  }
  if (c.spec.dtype == CubeDtype::int8)
    properties["emb:quantization"] = describe_quantization(c.from_item, c.geoemb, c.path / tile.zone.name());
  return properties;
}

// A tile's assets: its zone's group (what xr.open_zarr opens), each array of which the
// tile is one chunk, and its provenance. An array asset's proj:shape and proj:transform
// are the whole zone array's, which is what its href holds; the Item's own describe the
// tile.
json tile_assets(const CubeStac& c, const TileId& tile, const json& tile_provenance) {
  const fs::path zone_dir = c.path / tile.zone.name();
  const std::string chunk = fmt::format("chunk {}.{}.0", tile.row, tile.col);
  // The zone group's grid (its spatial:shape and spatial:transform).
  const json zone_grid = {{"proj:shape", {zone_rows(tile.zone), zone_cols()}}, {"proj:transform", zone_transform(tile.zone)}};
  json assets = json::object();
  const auto array_asset = [&](const fs::path& href, const std::string& title) {
    json a = {{"href", c.from_item(href.string())}, {"type", kZarr}, {"roles", {"data"}}, {"title", title}};
    a.update(zone_grid);
    return a;
  };
  assets["embeddings"] = array_asset(zone_dir, fmt::format("{}; this tile is {} of each", kEmbeddingsTitle, chunk));
  for (Modality m : c.spec.modalities)
    assets[info(m).name] = array_asset(zone_dir / info(m).name, fmt::format("{} embeddings (y, x, dim), {}", info(m).name, chunk));
  assets["fused"] = array_asset(zone_dir / "fused", fmt::format("fused embeddings (y, x, dim): the mean of the modalities' "
                                                                 "embeddings a chip has, {}", chunk));
  assets["status"] = array_asset(zone_dir / "status", fmt::format("chip status (y, x), chunk {}.{}: 1 embedded, 2 no data, "
                                                                  "3 failed", tile.row, tile.col));
  if (!tile_provenance.empty())
    assets["provenance"] = {{"href", c.from_item(c.cube.provenance_path(tile).string())},
                            {"type", kJson}, {"roles", {"metadata"}},
                            {"title", "the observations composited per modality and season"}};
  return assets;
}

json tile_item(const CubeStac& c, const TileId& tile, const std::vector<std::uint8_t>& status, const TileSources& sources,
               LonLatBox& extent, Span& time) {
  const json tile_provenance = c.cube.read_provenance(tile);
  json ring = json::array();
  for (const LonLat& p : footprint_lonlat(tile.zone, tile.bounds(), 8)) ring.push_back({p.lon, p.lat});
  const LonLatBox box = lonlat_bounds(tile.zone, tile.bounds());
  extent.add(box);
  json links = {link("root", "../collection.json", kJson), link("parent", "../collection.json", kJson),
                link("collection", "../collection.json", kJson), model_link(c.from_item, c.provenance, c.geoemb)};
  for (const StacSource& s : sources ? sources(tile, tile_provenance) : std::vector<StacSource>{})
    links.push_back(link("emb:source-data", c.from_item(s.href), media_type(s.href), s.title));
  return {{"type", "Feature"}, {"stac_version", "1.0.0"},
          {"stac_extensions", {kEmbeddingExtension, kProjectionExtension, kProcessingExtension}},
          {"id", tile.str()}, {"collection", c.collection_id},
          {"geometry", {{"type", "Polygon"}, {"coordinates", {ring}}}},
          {"bbox", {box.lon0, box.lat0, box.lon1, box.lat1}},
          {"properties", tile_properties(c, tile, status, tile_provenance, time)}, {"links", links},
          {"assets", tile_assets(c, tile, tile_provenance)}};
}

json collection_of(const CubeStac& c, const LonLatBox& extent, const Span& time, const json& zones,
                   const json& item_links) {
  json links = {link("root", "./collection.json", kJson), model_link(c.from_collection, c.provenance, c.geoemb)};
  if (c.provenance.contains("source_catalog"))
    links.push_back(link("emb:source-data", c.from_collection(c.provenance["source_catalog"].get<std::string>()),
                         "application/x-ndjson", "the catalog of input scenes and products the run read"));
  else
    links.push_back(link("emb:source-data", c.geoemb["geoemb:source_data"][0].get<std::string>(), "", "sources not recorded"));
  for (const json& l : item_links) links.push_back(l);

  const std::string created = c.provenance.value("created", utc_iso(std::chrono::system_clock::now()));
  return {
      {"type", "Collection"}, {"stac_version", "1.0.0"},
      {"stac_extensions", {kEmbeddingExtension, kProjectionExtension, kItemAssetsExtension}},
      {"id", c.collection_id},
      {"title", fmt::format("eo-pipeline chip embeddings, model {}", c.model_version)},
      {"description", fmt::format("One {}-dimensional embedding per {} m chip of the UTM chip grid, for each of {} and "
                                  "their mean (fused), made by eo-pipeline with model {}. The embeddings are the Zarr "
                                  "cube around this catalog; one Item per tile of 16 x 16 chips.",
                                  c.spec.dim, kChipSizeM, fmt::join(c.modalities, ", "), c.model_version)},
      {"license", "proprietary"},
      {"extent",
       {{"spatial", {{"bbox", json::array({extent.empty() ? json::array({-180.0, -90.0, 180.0, 90.0})
                                                           : json::array({extent.lon0, extent.lat0, extent.lon1, extent.lat1})})}}},
        {"temporal", {{"interval", json::array({time.start.empty() ? json::array({created, nullptr})
                                                                     : json::array({time.start, time.end})})}}}}},
      {"emb:type", "chip"},
      {"emb:dimensions", c.spec.dim},
      {"data_type", name_str(c.spec.dtype)},
      {"gsd", c.spec.pixel_size},
      {"emb:chip_layout", c.geoemb["geoemb:chip_layout"]},
      {"emb:temporal_resolution", "one embedding over four seasonal composites (DJF, MAM, JJA, SON)"},
      {"emb:fit_for_use", {"classification", "regression", "retrieval"}},
      {"summaries", {{"proj:code", zones.empty() ? json::array({"unknown"}) : zones}}},
      {"item_assets",
       {{"embeddings", {{"type", kZarr}, {"roles", {"data"}}, {"title", kEmbeddingsTitle}}}}},
      {"links", links}};
}

}  // namespace

fs::path stac_collection_path(const fs::path& cube) { return cube / "stac" / "collection.json"; }

StacWritten write_cube_stac(const fs::path& cube_path, const TileSources& sources) {
  const CubeStac c(cube_path);
  fs::create_directories(c.items_dir);
  StacWritten written;
  written.collection = stac_collection_path(cube_path);
  json item_links = json::array(), zones = json::array();
  LonLatBox extent;
  Span time;
  std::set<std::string> kept;
  for (Zone zone : c.spec.zones) {
    bool any = false;
    for (const TileId& tile : c.cube.written_tiles(zone)) {
      const std::vector<std::uint8_t> status = c.cube.read_status(tile);
      if (std::count(status.begin(), status.end(), kEmbedded) == 0) continue;
      any = true;
      const std::string id = tile.str();
      write_if_changed(c.items_dir / (id + ".json"), tile_item(c, tile, status, sources, extent, time).dump(2) + "\n");
      kept.insert(id + ".json");
      item_links.push_back(link("item", "./items/" + id + ".json", kJson, id));
      ++written.items;
    }
    if (any) zones.push_back(fmt::format("EPSG:{}", zone.epsg()));
  }
  for (const auto& e : fs::directory_iterator(c.items_dir))
    if (!kept.count(e.path().filename().string())) written.removed += fs::remove(e.path());
  write_if_changed(written.collection, collection_of(c, extent, time, zones, item_links).dump(2) + "\n");
  return written;
}

}  // namespace eo
