#include "stages/ingest/stac.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <functional>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <stdexcept>

#include "pipeline/core/error.hpp"
#include "pipeline/core/files.hpp"
#include "stages/ingest/remote.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::optional<double> number(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return std::nullopt;
  return j[key].get<double>();
}

// "EPSG:32633" from proj:code or proj:epsg of an asset, else of the item; "" when neither.
std::string crs_of(const json& item, const json& asset) {
  for (const json* j : {&asset, &item.at("properties")}) {
    if (j->contains("proj:code") && (*j)["proj:code"].is_string()) return (*j)["proj:code"].get<std::string>();
    if (j->contains("proj:epsg") && (*j)["proj:epsg"].is_number_integer())
      return fmt::format("EPSG:{}", (*j)["proj:epsg"].get<int>());
  }
  return "";
}

// Footprint from the item's bbox, else its geometry's coordinates.
std::optional<LonLatBox> footprint_of(const json& item) {
  if (item.contains("bbox") && item["bbox"].is_array() && (item["bbox"].size() == 4 || item["bbox"].size() == 6)) {
    const auto& b = item["bbox"];
    const std::size_t k = b.size() / 2;
    LonLatBox box{b[0].get<double>(), b[1].get<double>(), b[k].get<double>(), b[k + 1].get<double>()};
    // STAC writes a bbox across the antimeridian west > east: made continuous.
    if (box.lon0 > box.lon1 && box.lon0 <= 180 && box.lon1 >= -180) box.lon1 += 360;
    return box;
  }
  if (!item.contains("geometry") || !item["geometry"].is_object()) return std::nullopt;
  LonLatBox box;
  std::function<void(const json&)> walk = [&](const json& c) {
    if (c.is_array() && c.size() >= 2 && c[0].is_number() && c[1].is_number())
      box.add(LonLat{c[0].get<double>(), c[1].get<double>()});
    else if (c.is_array())
      for (const auto& x : c) walk(x);
  };
  walk(item["geometry"].value("coordinates", json()));
  if (box.empty()) return std::nullopt;
  return box;
}

std::string datetime_of(const json& props) {
  if (props.contains("datetime") && props["datetime"].is_string()) return props["datetime"].get<std::string>();
  if (props.contains("start_datetime") && props["start_datetime"].is_string()) {
    std::string t = props["start_datetime"].get<std::string>();
    if (props.contains("end_datetime") && props["end_datetime"].is_string()) t += "/" + props["end_datetime"].get<std::string>();
    return t;
  }
  return "";
}

// The mapping of an item: its collection's, told apart by asset keys where two
// publishers name one collection (Earth Search's red vs Planetary Computer's B04).
const CollectionMapping* mapping_for(const std::string& collection, const json& assets,
                                     const std::vector<CollectionMapping>& mappings) {
  for (const auto* list : {&mappings, &known_collections()})
    for (const CollectionMapping& m : *list)
      if (m.collection == collection && assets.contains(m.assets.front())) return &m;
  for (const auto* list : {&mappings, &known_collections()})
    for (const CollectionMapping& m : *list)
      if (m.collection == collection) return &m;
  return nullptr;
}

// Scale and offset of an asset's values: raster:bands where the item says, the mapping's
// defaults where not, and Sentinel-2's processing-baseline offset by its publisher's rule.
void scaling(const CollectionMapping& m, const json& item, const json& asset, SourceRecord& r) {
  json band = json::object();
  if (asset.contains("raster:bands") && asset["raster:bands"].is_array() && !asset["raster:bands"].empty())
    band = asset["raster:bands"][0];
  r.scale = number(band, "scale") ? number(band, "scale") : m.scale;
  r.offset = number(band, "offset") ? number(band, "offset") : m.offset;
  r.nodata = number(band, "nodata") ? number(band, "nodata") : m.nodata;
  const json& props = item.at("properties");
  if (m.offset_rule == CollectionMapping::OffsetRule::earth_search) {
    // earthsearch:boa_offset_applied true: the DN are already harmonised to the old
    // baseline, and raster:bands' offset (still -0.1 on such items) must not be applied.
    if (props.value("earthsearch:boa_offset_applied", false)) r.offset = 0.0;
  } else if (m.offset_rule == CollectionMapping::OffsetRule::planetary_computer) {
    // Planetary Computer's items carry no raster:bands scaling: DN + 1000 from baseline 04.00 on.
    const std::string baseline = props.value("s2:processing_baseline", std::string("00.00"));
    r.offset = std::strtod(baseline.c_str(), nullptr) >= 4.0 ? -0.1 : 0.0;
  }
}

// What the publisher says of an asset's version: the item's `updated`, the asset's
// file:checksum and file:size (the STAC file extension); "" when it says nothing.
std::string version_of(const json& item, const json& asset) {
  std::string v;
  const json& props = item.at("properties");
  if (props.contains("updated") && props["updated"].is_string()) v += "updated " + props["updated"].get<std::string>();
  if (asset.contains("file:checksum") && asset["file:checksum"].is_string())
    v += (v.empty() ? "" : "; ") + std::string("checksum ") + asset["file:checksum"].get<std::string>();
  if (asset.contains("file:size") && asset["file:size"].is_number_integer())
    v += (v.empty() ? "" : "; ") + fmt::format("size {}", asset["file:size"].get<std::int64_t>());
  return v;
}

// The product an item holds, by which a scene published by two catalogs is known as one:
// Sentinel-2's s2:product_uri (the ESA product's name), else the platform, the time to
// the second and the MGRS tile; "" when the item does not say enough.
std::string product_of(const json& props, Modality modality) {
  const auto text = [&](const char* key) {
    return props.contains(key) && props[key].is_string() ? props[key].get<std::string>() : std::string();
  };
  const auto number_text = [&](const char* key) {
    return props.contains(key) && props[key].is_number() ? fmt::format("{}", props[key].get<double>()) : text(key);
  };
  std::string uri = text("s2:product_uri");
  if (uri.ends_with(".SAFE")) uri.resize(uri.size() - 5);
  if (!uri.empty()) return fmt::format("{} {}", info(modality).name, uri);
  std::string platform = text("platform");
  std::transform(platform.begin(), platform.end(), platform.begin(), ::tolower);
  std::string tile = text("s2:mgrs_tile");
  // The MGRS extension names a tile only by all three parts; a zone alone is not a tile.
  if (tile.empty() && props.contains("mgrs:utm_zone") && !text("mgrs:latitude_band").empty() &&
      !text("mgrs:grid_square").empty())
    tile = number_text("mgrs:utm_zone") + text("mgrs:latitude_band") + text("mgrs:grid_square");
  const std::string time = datetime_of(props).substr(0, 19);  // publishers write fractions of a second differently
  if (platform.empty() || tile.empty() || time.size() < 19) return "";
  return fmt::format("{} {} {} {}", info(modality).name, platform, time, tile);
}

struct Walker {
  const std::vector<CollectionMapping>& mappings;
  StacReport report;
  std::set<fs::path> seen;
  std::map<std::string, std::string> products;  // product -> "item I of FILE" that holds it

  void problem(const fs::path& file, const std::string& item, const std::string& what) {
    report.problems.push_back(item.empty() ? fmt::format("{}: {}", file.string(), what)
                                           : fmt::format("{}: item {}: {}", file.string(), item, what));
  }

  void item(const json& it, const fs::path& file, const std::string& parent_collection) {
    ++report.items;
    const std::string id = it.value("id", std::string());
    if (id.empty() || !it.contains("assets") || !it["assets"].is_object() || !it.contains("properties"))
      return problem(file, id, "not a STAC item (no id, assets or properties)");
    const std::string collection = it.value("collection", parent_collection);
    const json& assets = it["assets"];
    const CollectionMapping* m = mapping_for(collection, assets, mappings);
    if (!m) return problem(file, id, fmt::format("collection '{}' is not one eo-pipeline knows; describe it with "
                                                 "`catalog --collections FILE`", collection));
    const std::string time = datetime_of(it["properties"]);
    int season = 0;
    if (info(m->modality).seasons > 1) {
      try {
        season = season_of(time);
      } catch (const std::exception& e) {
        return problem(file, id, fmt::format("datetime: {}", e.what()));
      }
    }
    const auto footprint = footprint_of(it);
    if (!footprint) return problem(file, id, "no bbox or geometry");
    if (const std::string wrong = footprint_problem(*footprint); !wrong.empty()) return problem(file, id, wrong);
    std::optional<MaskSpec> mask;
    if (!m->mask_asset.empty()) {
      if (!assets.contains(m->mask_asset) || !assets[m->mask_asset].contains("href"))
        return problem(file, id, fmt::format("asset {}: missing; {} of {} need it as their cloud mask", m->mask_asset,
                                             m->collection, m->publisher));
      mask = MaskSpec{gdal_path_of_href(assets[m->mask_asset]["href"].get<std::string>(), file.parent_path()), 1, m->mask_valid,
                      version_of(it, assets[m->mask_asset])};
    }
    // An item without one of the bands is left out whole: a composite whose bands come from
    // different scenes mixes their clear pixels and their acquisitions' gain.
    for (std::size_t b = 0; b < m->assets.size(); ++b) {
      const std::string& key = m->assets[b];
      if (!assets.contains(key) || !assets[key].contains("href"))
        return problem(file, id, fmt::format("asset {}: missing ({} band {} of {}); the item is left out for all of {}", key,
                                             m->collection, info(m->modality).bands[b], info(m->modality).name,
                                             info(m->modality).name));
    }
    if (const std::string product = product_of(it["properties"], m->modality); !product.empty()) {
      const std::string here = fmt::format("item {} of {}", id, file.string());
      const auto [kept, first] = products.emplace(product, here);
      if (!first) {
        report.duplicates.push_back(fmt::format("{}: item {}: the same product ({}) as {}, which is kept", file.string(), id,
                                                product, kept->second));
        return;
      }
    }
    const auto cloud = number(it["properties"], "eo:cloud_cover");
    int used = 0;
    for (std::size_t b = 0; b < m->assets.size(); ++b) {
      const std::string& key = m->assets[b];
      const json& asset = assets[key];
      SourceRecord r;
      r.path = gdal_path_of_href(asset["href"].get<std::string>(), file.parent_path());
      r.modality = m->modality;
      r.season = season;
      r.time = time;
      r.crs = crs_of(it, asset);
      if (r.crs.empty()) {
        problem(file, id, fmt::format("asset {}: no proj:code or proj:epsg", key));
        continue;
      }
      r.footprint = *footprint;
      r.bands.assign(m->assets.size(), 0);
      r.bands[b] = 1;
      r.item = id;
      r.collection = collection;
      r.asset = key;
      r.units = m->units;
      r.mask = mask;
      r.cloud_cover = cloud;
      r.version = version_of(it, asset);
      scaling(*m, it, asset, r);
      report.records.push_back(std::move(r));
      ++used;
    }
    report.used += used > 0;
  }

  struct Linked {
    fs::path file, from;  // `from` empty: the root
    std::string collection;
  };

  // A catalog's documents, depth first in the order of their links, walked with a stack
  // of its own: a chain of child catalogs as long as a file system holds does not
  // exhaust the call stack. A linked document that cannot be read is a problem of the
  // document linking it; the first one, an error.
  void walk(const fs::path& root) {
    std::vector<Linked> stack{{root, {}, ""}};
    while (!stack.empty()) {
      const Linked doc = std::move(stack.back());
      stack.pop_back();
      std::vector<Linked> children;
      try {
        children = document(doc.file, doc.collection);
      } catch (const std::exception& e) {
        if (doc.from.empty()) throw;
        problem(doc.from, "", detail_of(e));
      }
      stack.insert(stack.end(), std::make_move_iterator(children.rbegin()), std::make_move_iterator(children.rend()));
    }
  }

  // Reads `file`'s items; returns the documents it links to.
  std::vector<Linked> document(const fs::path& file, const std::string& parent_collection) {
    std::vector<Linked> links;
    const fs::path canonical = fs::weakly_canonical(file);
    if (!seen.insert(canonical).second) return links;  // catalogs may link back
    const json j = read_json_file(file);
    if (!j.is_object() || !j.contains("type"))
      throw StageError("ingest", fmt::format("{}: not STAC (no \"type\"; expected FeatureCollection, Feature, Catalog or Collection)",
                                           file.string()));
    const std::string type = j["type"].get<std::string>();
    if (type == "FeatureCollection") {
      for (const auto& f : j.value("features", json::array())) item(f, file, parent_collection);
    } else if (type == "Feature") {
      item(j, file, parent_collection);
    } else if (type == "Catalog" || type == "Collection") {
      const std::string collection = type == "Collection" ? j.value("id", parent_collection) : parent_collection;
      for (const auto& link : j.value("links", json::array())) {
        const std::string rel = link.value("rel", std::string());
        if (rel != "item" && rel != "child") continue;
        const std::string href = link.value("href", std::string());
        if (href.starts_with("http://") || href.starts_with("https://")) {
          problem(file, "", fmt::format("link {} is remote; eo-pipeline reads static catalogs on disk "
                                        "(save a search with stac-client instead)", href));
          continue;
        }
        try {
          links.push_back({gdal_path_of_href(href, file.parent_path()), file, collection});
        } catch (const std::exception& e) {
          problem(file, "", detail_of(e));
        }
      }
    } else {
      throw StageError("ingest", fmt::format("{}: STAC type '{}' is not one eo-pipeline reads", file.string(), type));
    }
    return links;
  }
};

}  // namespace

const std::vector<int>& s2_clear_classes() {
  static const std::vector<int> classes = {2, 4, 5, 6, 7, 11};
  return classes;
}

const std::vector<CollectionMapping>& known_collections() {
  static const std::vector<CollectionMapping> known = [] {
    std::vector<CollectionMapping> k;
    CollectionMapping es;
    es.collection = "sentinel-2-l2a";
    es.publisher = "Earth Search";
    es.modality = Modality::s2rgb;
    es.assets = {"red", "green", "blue"};
    es.mask_asset = "scl";
    es.mask_valid = s2_clear_classes();
    es.scale = 0.0001, es.offset = 0.0, es.nodata = 0.0;
    es.offset_rule = CollectionMapping::OffsetRule::earth_search;
    k.push_back(es);
    CollectionMapping c1 = es;
    c1.collection = "sentinel-2-c1-l2a";
    c1.offset_rule = CollectionMapping::OffsetRule::as_published;  // collection 1 is reprocessed: its raster:bands are right as published
    k.push_back(c1);
    CollectionMapping pc = es;
    pc.publisher = "Planetary Computer";
    pc.assets = {"B04", "B03", "B02"};
    pc.mask_asset = "SCL";
    pc.offset_rule = CollectionMapping::OffsetRule::planetary_computer;
    k.push_back(pc);
    CollectionMapping rtc;
    rtc.collection = "sentinel-1-rtc";
    rtc.publisher = "Planetary Computer";
    rtc.modality = Modality::s1amp;
    rtc.assets = {"vv", "vh"};
    rtc.nodata = -32768.0;
    rtc.units = Units::linear_power;
    k.push_back(rtc);
    CollectionMapping wc;
    wc.collection = "esa-worldcover";
    wc.publisher = "Planetary Computer";
    wc.modality = Modality::worldcover;
    wc.assets = {"map"};
    wc.nodata = 0.0;
    k.push_back(wc);
    return k;
  }();
  return known;
}

std::string gdal_path_of_href(const std::string& href, const fs::path& base) {
  if (href.starts_with("file://")) return href.substr(7);
  if (href.starts_with("http://") || href.starts_with("https://")) return "/vsicurl/" + unsigned_href(href);
  if (href.starts_with("s3://")) return "/vsis3/" + href.substr(5);
  if (href.starts_with("/vsi") || fs::path(href).is_absolute()) return href;
  return (base / href).lexically_normal().string();
}

std::vector<CollectionMapping> load_collection_mappings(const fs::path& file) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(file.string());
  } catch (const YAML::Exception& e) {
    throw StageError("ingest", fmt::format("{}:{}: not YAML: {}", file.string(), e.mark.line + 1, e.msg));
  }
  std::vector<CollectionMapping> out;
  const YAML::Node list = root["collections"];
  if (!list || !list.IsSequence()) throw StageError("ingest", fmt::format("{}: needs a list 'collections'", file.string()));
  for (std::size_t i = 0; i < list.size(); ++i) {
    const YAML::Node n = list[i];
    const auto where = [&](const std::string& key, const YAML::Node& at) {
      return fmt::format("{}:{}: collections[{}].{}", file.string(), at.Mark().line + 1, i, key);
    };
    try {
      static const std::set<std::string> keys = {"collection", "modality", "bands", "mask", "scale", "offset", "nodata", "units"};
      for (const auto& kv : n)
        if (!keys.count(kv.first.as<std::string>()))
          throw StageError("ingest", fmt::format("{}: unknown key; known keys: collection, modality, bands, mask, scale, "
                                               "offset, nodata, units", where(kv.first.as<std::string>(), kv.first)));
      CollectionMapping m;
      m.publisher = file.filename().string();
      for (const char* key : {"collection", "modality", "bands"})
        if (!n[key]) throw StageError("ingest", fmt::format("{}: missing", where(key, n)));
      m.collection = n["collection"].as<std::string>();
      try {
        m.modality = parse_modality(n["modality"].as<std::string>());
      } catch (const std::exception& e) {
        throw StageError("ingest", fmt::format("{}: {}", where("modality", n["modality"]), e.what()));
      }
      const ModalityInfo& mi = info(m.modality);
      for (const std::string& band : mi.bands) {
        if (!n["bands"][band])
          throw StageError("ingest", fmt::format("{}: no asset for band {} of {}", where("bands", n["bands"]), band, mi.name));
        m.assets.push_back(n["bands"][band].as<std::string>());
      }
      if (n["bands"].size() != mi.bands.size())
        throw StageError("ingest", fmt::format("{}: {} has bands {}, the mapping names {}", where("bands", n["bands"]), mi.name,
                                             fmt::join(mi.bands, ", "), n["bands"].size()));
      if (const YAML::Node mask = n["mask"]) {
        if (!mask["asset"] || !mask["valid"])
          throw StageError("ingest", fmt::format("{}: needs asset and valid (the classes kept)", where("mask", mask)));
        m.mask_asset = mask["asset"].as<std::string>();
        m.mask_valid = mask["valid"].as<std::vector<int>>();
      }
      if (n["scale"]) m.scale = n["scale"].as<double>();
      if (n["offset"]) m.offset = n["offset"].as<double>();
      if (n["nodata"]) m.nodata = n["nodata"].as<double>();
      if (n["units"]) {
        const std::string units = n["units"].as<std::string>();
        const auto parsed = parse_choice<Units>(units);
        if (!parsed) throw StageError("ingest", fmt::format("{}: {}", where("units", n["units"]), choice_problem<Units>(units)));
        m.units = *parsed;
      }
      out.push_back(std::move(m));
    } catch (const YAML::Exception& e) {
      throw StageError("ingest", fmt::format("{}:{}: collections[{}]: {}", file.string(), e.mark.line + 1, i, e.msg));
    }
  }
  return out;
}

StacReport read_stac(const std::vector<fs::path>& files, const std::vector<CollectionMapping>& mappings) {
  Walker w{mappings, {}, {}, {}};
  for (const fs::path& file : files) w.walk(file);
  return std::move(w.report);
}

StacReport read_stac(const fs::path& file, const std::vector<CollectionMapping>& mappings) {
  return read_stac(std::vector<fs::path>{file}, mappings);
}

std::optional<SourceRecord> global_coherence_record(const fs::path& file, Modality modality, const std::string& coherence) {
  static const std::regex name(R"(^([NS])(\d{2})([EW])(\d{3})_(winter|spring|summer|fall)_(vv|vh|hh|hv)_([A-Za-z0-9]+)\.tif$)");
  std::smatch m;
  const std::string base = file.filename().string();
  if (!std::regex_match(base, m, name)) return std::nullopt;
  const std::string pol = m[6].str(), metric = m[7].str();
  SourceRecord r;
  r.modality = modality;
  if (modality == Modality::s1coh) {
    if (metric != coherence || pol != "vv") return std::nullopt;
    r.bands = {1};
    r.scale = 0.01;  // coherence x 100 as a byte
  } else if (modality == Modality::s1amp) {
    if (metric != "AMP" || (pol != "vv" && pol != "vh")) return std::nullopt;
    r.bands = pol == "vv" ? std::vector<int>{1, 0} : std::vector<int>{0, 1};
    r.units = Units::amplitude_dn;
  } else {
    return std::nullopt;
  }
  static const std::map<std::string, int> seasons = {{"winter", 0}, {"spring", 1}, {"summer", 2}, {"fall", 3}};
  r.season = seasons.at(m[5].str());
  r.time = season_interval(2020, r.season);  // the dataset's year: December 2019 to November 2020
  r.path = fs::absolute(file);
  r.crs = "EPSG:4326";
  r.nodata = 0;  // the dataset's no data, every file
  // The tile is named by its upper-left corner: N48W090 covers 47..48 N, 90..89 W.
  const double lat = (m[1].str() == "N" ? 1 : -1) * std::stod(m[2].str());
  const double lon = (m[3].str() == "E" ? 1 : -1) * std::stod(m[4].str());
  r.footprint = {lon, lat - 1, lon + 1, lat};
  return r;
}

}  // namespace eo
