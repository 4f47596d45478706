#include "stages/serve/explorer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <regex>

#include "pipeline/core/error.hpp"
#include "pipeline/core/files.hpp"
#include "stages/chipstore/chipstore.hpp"
#include "stages/downstream/fewshot.hpp"
#include "stages/downstream/index.hpp"
#include "stages/downstream/labels.hpp"
#include "stages/downstream/picture.hpp"
#include "stages/downstream/render.hpp"

namespace eo {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const char* status_name(std::uint8_t s) {
  switch (s) {
    case kEmbedded: return "embedded";
    case kNoData: return "no data";
    case kFailed: return "failed";
    default: return "not processed";
  }
}

json lonlat_of(const ChipId& c) {
  const LonLat p = utm_inverse(c.zone.number, c.zone.south, c.centre());
  return {p.lon, p.lat};
}

// The chip's footprint as a closed lon/lat ring (its corners).
json footprint_of(const ChipId& c) {
  const Box b = c.bounds();
  json ring = json::array();
  for (const EastNorth& e : {EastNorth{b.e0, b.n0}, EastNorth{b.e1, b.n0}, EastNorth{b.e1, b.n1}, EastNorth{b.e0, b.n1}, EastNorth{b.e0, b.n0}}) {
    const LonLat p = utm_inverse(c.zone.number, c.zone.south, e);
    ring.push_back({p.lon, p.lat});
  }
  return ring;
}

// HDF5 (the chip stores) is not built to be called from two threads at once.
std::mutex& hdf5_mutex() {
  static std::mutex m;
  return m;
}

// The chip's position in its tile's chip store, and the store, when there is one.
struct StoredChip {
  std::unique_ptr<ChipStoreReader> store;
  std::size_t index = 0;
};
StoredChip stored_chip(const fs::path& output, const ChipId& id) {
  const fs::path file = output / "chips" / (tile_of(id).str() + ".h5");
  StoredChip out;
  if (!fs::exists(file)) return out;
  auto store = std::make_unique<ChipStoreReader>(file);
  const auto& chips = store->chips();
  const auto at = std::find(chips.begin(), chips.end(), id);
  if (at == chips.end() || store->status()[static_cast<std::size_t>(at - chips.begin())] != 1) return out;
  out.index = static_cast<std::size_t>(at - chips.begin());
  out.store = std::move(store);
  return out;
}

// A band shown as bytes: from its 2nd (0) to its 98th (255) percentile.
std::pair<float, float> percentile_stretch(std::vector<float> values) {
  std::sort(values.begin(), values.end());
  const float lo = values.empty() ? 0 : values[values.size() * 2 / 100];
  const float hi = values.empty() ? 1 : values[std::min(values.size() - 1, values.size() * 98 / 100)];
  return {lo, hi > lo ? hi : lo + 1};
}
std::uint8_t stretched(float v, std::pair<float, float> range) {
  return static_cast<std::uint8_t>(std::lround(255 * std::clamp((v - range.first) / (range.second - range.first), 0.0f, 1.0f)));
}

// The colour ramp of the maps, for values in [0, 1].
Rgba ramp_rgba(double t, std::uint8_t alpha) {
  const Rgb c = ramp(std::clamp(t, 0.0, 1.0));
  return {c[0], c[1], c[2], alpha};
}

}  // namespace

// A chip's stored composite of a season, as colours: [row][col], alpha 0 where no data.
struct Explorer::Composite {
  int size = 0;
  std::vector<Rgba> pixels;
};

// A map trained from the page's labels, kept for its export.
struct Explorer::Trained {
  std::string property;
  std::vector<float> predicted;  // per chip of chips_
  std::size_t labels = 0;
};

Explorer::Explorer(const fs::path& cube, ExplorerOptions options)
    : path_(cube), cube_(cube), options_(std::move(options)),
      cache_(options_.output / "serve" / "tile-cache" /
             fmt::format("{}-style{}", cube_fingerprint(cube_, SearchSpace::of(cube_.spec(), cube, "fused")).substr(0, 16), kTileStyle)) {
  options_.threads = std::max(1, options_.threads);
  // Only the fused embedding is kept: the fits and the colours use it, and the cube's
  // other arrays would take several times the memory.
  for (ChipSample& s : cube_samples(cube_)) {
    chips_.push_back(s.chip);
    embedded_.insert(s.chip);
    places_.push_back(s.at);
    fused_.push_back(std::move(s.features.at("fused")));
  }
  if (chips_.size() >= 3) {
    const PcaColours pc = pca_colours(fused_);
    std::vector<Rgba> colours;
    for (const Rgb& c : pc.colours) colours.push_back({c[0], c[1], c[2], 255});
    layers_["pca"] = ChipLayer(chips_, colours);
    pca_legend_ = {{"shares", pc.share}, {"stretch", "each component from its 2nd (dark) to its 98th percentile (bright)"}};
  }
  // The status of every chip of the written tiles, and the clear observations of the
  // embedded ones (Sentinel-2's where the cube has it, else its first modality's), summed
  // over the seasons.
  const auto& modalities = cube_.spec().modalities;
  if (!modalities.empty())
    clear_of_ = info(std::find(modalities.begin(), modalities.end(), Modality::s2rgb) != modalities.end() ? Modality::s2rgb
                                                                                                         : modalities[0]).name;
  std::vector<ChipId> all, clear_chips;
  std::vector<Rgba> status_colours;
  std::vector<float> clear;
  for (Zone z : cube_.spec().zones)
    for (const TileId& t : cube_.written_tiles(z)) {
      const auto status = cube_.read_status(t);
      const auto counts = cube_.read_clear(t);
      if (std::find(status.begin(), status.end(), kEmbedded) != status.end()) extent_.add(lonlat_bounds(t.zone, t.bounds()));
      for (int k = 0; k < kChipsPerTile; ++k) {
        const std::uint8_t st = status[static_cast<std::size_t>(k)];
        all.push_back(t.chip(k));
        status_colours.push_back(st == kEmbedded ? Rgba{40, 160, 60, 110} : st == kFailed ? Rgba{220, 30, 30, 220}
                                 : st == kNoData ? Rgba{130, 130, 130, 200} : Rgba{0, 0, 0, 0});
        const auto it = counts.find(clear_of_ + "_clear");
        if (st != kEmbedded || it == counts.end()) continue;
        const auto& c = it->second;
        float sum = 0;
        for (std::size_t season = 0; season < c.shape()[2]; ++season) {
          const float v = c(static_cast<std::size_t>(k / kChipsPerTileSide), static_cast<std::size_t>(k % kChipsPerTileSide), season);
          if (!std::isnan(v)) sum += v;
        }
        clear_chips.push_back(t.chip(k));
        clear.push_back(sum);
      }
    }
  layers_["status"] = ChipLayer(all, status_colours);
  const float most = clear.empty() ? 1.0f : std::max(1.0f, *std::max_element(clear.begin(), clear.end()));
  std::vector<Rgba> clear_colours;
  for (float v : clear) clear_colours.push_back(ramp_rgba(v / most, 220));
  layers_["clear"] = ChipLayer(clear_chips, clear_colours);
  clear_max_ = most;
}

Explorer::~Explorer() = default;

json Explorer::cube() const {
  const CubeSpec& spec = cube_.spec();
  json zones = json::array(), modalities = json::array();
  for (Zone z : spec.zones) zones.push_back(z.name());
  for (Modality m : spec.modalities) modalities.push_back(info(m).name);
  json out = {{"cube", path_.string()}, {"zones", zones}, {"modalities", modalities}, {"dim", spec.dim},
              {"dtype", name_str(spec.dtype)}, {"embedded_chips", chips_.size()},
              {"spaces", spec.embedding_arrays()}, {"model_version", spec.provenance.value("model_version", "")}};
  out["spaces"].push_back("concat");
  if (!extent_.empty()) out["bbox"] = {extent_.lon0, extent_.lat0, extent_.lon1, extent_.lat1};
  out["layers"] = {{"pca", pca_legend_}, {"status", {{"embedded", "green"}, {"no data", "grey"}, {"failed", "red"}}},
                   {"clear", {{"max", clear_max_}, {"of", clear_of_}}},
                   {"grid", json::object()}};
  std::size_t bytes = 0;
  for (const auto& v : fused_) bytes += v.size() * sizeof(float);
  {
    const std::lock_guard lock(mutex_);
    for (const auto& [name, v] : spaces_) bytes += v->bytes();
  }
  out["vectors_in_memory_bytes"] = bytes;
  return out;
}

json Explorer::chip(const ChipId& id) const {
  const auto& zones = cube_.spec().zones;
  if (std::find(zones.begin(), zones.end(), id.zone) == zones.end())
    throw NotFound(fmt::format("chip {}: zone {} is not in {}", id.str(), id.zone.name(), path_.string()));
  const TileId tile = tile_of(id);
  const int k = index_in_tile(id);
  json out = {{"id", id.str()}, {"zone", id.zone.name()}, {"lonlat", lonlat_of(id)}, {"footprint", footprint_of(id)},
              {"status", status_name(cube_.read_status(tile)[static_cast<std::size_t>(k)])}, {"tile", tile.str()}};
  // What the tile was made from, and how many clear observations this chip had.
  json made_from = json::object();
  const json provenance = cube_.read_provenance(tile).value("modalities", json::object());
  for (const auto& [modality, seasons] : provenance.items()) made_from[modality]["observations"] = seasons;
  for (const auto& [name, counts] : cube_.read_clear(tile)) {
    const std::string modality = name.substr(0, name.rfind("_clear"));
    json per_season = json::array();
    for (std::size_t s = 0; s < counts.shape()[2]; ++s) {
      const float v = counts(static_cast<std::size_t>(k / kChipsPerTileSide), static_cast<std::size_t>(k % kChipsPerTileSide), s);
      per_season.push_back(std::isnan(v) ? json(nullptr) : json(v));
    }
    made_from[modality]["clear_per_season"] = per_season;
  }
  // The same, season by season in the year's order, for a table.
  for (auto& [modality, m] : made_from.items()) {
    json seasons = json::array();
    const json& clear = m.contains("clear_per_season") ? m["clear_per_season"] : json::array();
    for (int s = 0; s < 4; ++s) {
      const json& observations = m.contains("observations") ? m["observations"] : json::object();
      seasons.push_back({{"season", season_name(s)},
                         {"observations", observations.value(season_name(s), json::array())},
                         {"clear", s < static_cast<int>(clear.size()) ? clear[static_cast<std::size_t>(s)] : json(nullptr)}});
    }
    m["seasons"] = seasons;
  }
  out["made_from"] = made_from;
  out["images"] = chip_images(id);
  return out;
}

json Explorer::chip_at(LonLat p) const {
  try {
    return chip(chip_at_lonlat(cube_, p));
  } catch (const ConfigError& e) {  // on no embedded chip of any zone
    throw NotFound(e.what());
  }
}

json Explorer::similar(const Examples& examples, const std::string& space_name, int k) const {
  if (examples.positives.empty()) throw ConfigError("similar: no chip to look for (give one or more ids)");
  for (const auto* list : {&examples.positives, &examples.negatives})
    for (const ChipId& c : *list) {
      if (embedded_.count(c)) continue;
      const auto& zones = cube_.spec().zones;  // read only to say what the chip is
      const std::uint8_t s = std::find(zones.begin(), zones.end(), c.zone) == zones.end()
                                 ? static_cast<std::uint8_t>(kNotProcessed)
                                 : cube_.read_status(tile_of(c))[static_cast<std::size_t>(index_in_tile(c))];
      throw NotFound(fmt::format("chip {} is not an embedded chip of {} ({})", c.str(), path_.string(), status_name(s)));
    }
  const SearchSpace space = SearchSpace::of(cube_.spec(), path_, space_name);
  const std::vector<float> query = query_vector(cube_, space, examples);
  json out = {{"space", space.name}, {"k", k}};
  std::vector<Hit> hits;
  if (fs::exists(index_file(path_, space.name))) {
    try {
      hits = index(space).search({query}, k).at(0);
      out["search"] = "index";
    } catch (const ConfigError& e) {  // an index of the cube before it changed: not used
      out["index_refused"] = e.what();
    }
  }
  // Every chip's score, for the heat layer (and the hits, without an index).
  const VectorsInMemory& in_memory = vectors(space);
  std::vector<float> scores;
  std::vector<Hit> exact = in_memory.search({query}, k, &scores).at(0);
  if (!out.contains("search")) {
    hits = std::move(exact);
    out["search"] = "exact";
  }
  json list = json::array();
  for (const Hit& h : hits)
    list.push_back({{"id", h.chip.str()}, {"score", h.score}, {"lonlat", lonlat_of(h.chip)}, {"footprint", footprint_of(h.chip)}});
  out["hits"] = list;
  // The heat: from the median score (transparent) to the best (bright and opaque).
  double lo = 0, hi = 1;
  if (!scores.empty()) {
    std::vector<float> median = scores;  // a linear selection, not a sort: a million scores a click
    std::nth_element(median.begin(), median.begin() + static_cast<long>(median.size() / 2), median.end());
    lo = median[median.size() / 2], hi = *std::max_element(scores.begin(), scores.end());
  }
  std::vector<Rgba> colours;
  for (float v : scores) {
    const double t = hi > lo ? (v - lo) / (hi - lo) : 0;
    colours.push_back(t <= 0 ? Rgba{} : ramp_rgba(t, static_cast<std::uint8_t>(60 + 170 * t)));
  }
  out["heat"] = {{"layer", add_layer("heat", ChipLayer(in_memory.chips(), colours))}, {"from", lo}, {"to", hi}};
  return out;
}

const VectorsInMemory& Explorer::vectors(const SearchSpace& space) const {
  const std::lock_guard lock(mutex_);
  auto& v = spaces_[space.name];
  if (!v) v = std::make_unique<VectorsInMemory>(cube_, space, options_.threads);
  return *v;
}

const LoadedIndex& Explorer::index(const SearchSpace& space) const {
  const std::lock_guard lock(mutex_);
  auto& i = indexes_[space.name];
  if (!i) i = std::make_unique<LoadedIndex>(cube_, space);  // a refusal is not kept: asked again, it is checked again
  return *i;
}

std::string Explorer::add_layer(const std::string& kind, ChipLayer layer) const {
  const std::lock_guard lock(mutex_);
  const std::string name = fmt::format("{}-{}", kind, ++made_count_);
  made_[name] = std::make_shared<const ChipLayer>(std::move(layer));
  made_order_.push_back(name);
  // A session's searches and maps: the last 16 are kept.
  while (made_order_.size() > 16) {
    trained_.erase(made_order_.front());
    made_.erase(made_order_.front());
    made_order_.pop_front();
  }
  return name;
}

json Explorer::train(const json& labels_doc, const std::string& property) const {
  const UserLabels labels = geojson_labels(labels_doc, "the page's labels", property, cube_);
  if (labels.targets.size() != 1)
    throw ConfigError(fmt::format("labels: \"{}\" holds class names; label each chip 1 (of the class) or 0 (not of it)", property));
  std::vector<ChipSample> labelled;
  for (std::size_t i = 0; i < chips_.size(); ++i)
    if (const auto it = labels.chips.find(chips_[i]); it != labels.chips.end())
      labelled.push_back({chips_[i], places_[i], it->second, {{"fused", fused_[i]}}});
  // Stripes of 3 training chips, 1 to choose the trees' rounds, 1 to score the map.
  if (labelled.size() < 5)
    throw ConfigError(fmt::format("labels: {} labelled chips of the cube; a map needs 5 at least (3 to fit it, 1 to choose "
                                  "its size, 1 to score it)", labelled.size()));
  bool binary = true;
  for (const ChipSample& s : labelled) binary = binary && (s.targets[0] == 0 || s.targets[0] == 1);
  const double threshold = binary ? 0.5 : std::nan("");
  const std::vector<SplitSet> split = split_samples(options_.fewshot, labelled);
  const auto map = fit_label_map(options_.fewshot, labelled, 0, split, fused_, threshold, options_.threads);
  if (!map) throw ConfigError(fmt::format("labels: {} labelled chips left too few to fit (2) or choose the size (1)", labelled.size()));
  json warnings = json::array();
  if (labels.outside > 0) warnings.push_back(fmt::format("{} of {} labels fall on no embedded chip: left out", labels.outside, labels.labels));
  if (binary) {
    std::vector<float> y;  // what the map learnt from
    for (std::size_t i = 0; i < labelled.size(); ++i)
      if (split[i] != SplitSet::test) y.push_back(labelled[i].targets[0]);
    if (const std::string w = balance_warning(property, y, map->predicted); !w.empty()) warnings.push_back(w);
  }
  const auto [lo_it, hi_it] = std::minmax_element(map->predicted.begin(), map->predicted.end());
  const double lo = binary ? 0.0 : *lo_it, hi = binary ? 1.0 : std::max(*hi_it, *lo_it + 1e-6f);
  std::vector<Rgba> colours;
  for (float v : map->predicted) colours.push_back(ramp_rgba((v - lo) / (hi - lo), 210));
  const std::string layer = add_layer("map", ChipLayer(chips_, colours));
  {
    const std::lock_guard lock(mutex_);
    trained_[layer] = std::make_shared<const Trained>(Trained{property, map->predicted, labelled.size()});
  }
  const auto number = [](double v) { return std::isnan(v) ? json(nullptr) : json(v); };
  return {{"layer", layer}, {"property", property}, {"labels", labels.labels}, {"labelled_chips", labelled.size()},
          {"train", map->train}, {"validation", map->validation}, {"test", map->test_chips},
          {"score", {{"r2", number(map->test.r2)}, {"rmse", number(map->test.rmse)}, {"f1", number(map->test.f1)},
                     {"accuracy", number(map->test.accuracy)}}},
          {"range", {lo, hi}}, {"chips", chips_.size()}, {"warnings", warnings}};
}

json Explorer::export_files(const json& labels, const std::string& name, const std::string& map_layer) const {
  if (!std::regex_match(name, std::regex("[A-Za-z0-9_-]{1,64}")))
    throw ConfigError(fmt::format("name '{}': letters, digits, _ and - only (it names the files)", clipped(name)));
  if (!labels.is_object() || labels.value("type", "") != "FeatureCollection")
    throw ConfigError("labels: not a GeoJSON FeatureCollection");
  std::shared_ptr<const Trained> map;
  if (!map_layer.empty()) {
    const std::lock_guard lock(mutex_);
    const auto it = trained_.find(map_layer);
    if (it == trained_.end()) throw NotFound(fmt::format("map {}: no such map of this session (train one first)", map_layer));
    map = it->second;
  }
  const fs::path dir = exports();
  json files = json::array();
  const fs::path geojson = dir / fmt::format("labels-{}.geojson", name);
  write_atomically(geojson, labels.dump(2) + "\n");
  files.push_back(geojson.string());
  if (map) {
    auto rasters = zone_rasters(chips_, 1);
    for (std::size_t i = 0; i < chips_.size(); ++i) rasters.at(chips_[i].zone).at(0, chips_[i]) = map->predicted[i];
    for (const auto& [zone, raster] : rasters) {
      const fs::path tif = dir / fmt::format("map-{}_{}.tif", name, zone.name());
      raster.save_geotiff(tif, {"predicted_" + map->property});
      const fs::path png = dir / fmt::format("map-{}_{}.png", name, zone.name());
      save_chip_map(png, fmt::format("{} predicted from {} labelled chips, zone {}", map->property, map->labels, zone.name()),
                    raster, 0, map->property);
      files.push_back(tif.string());
      files.push_back(png.string());
    }
  }
  return {{"files", files}};
}

std::vector<std::string> Explorer::chip_images(const ChipId& id) const {
  const std::lock_guard lock(hdf5_mutex());
  std::vector<std::string> out;
  const StoredChip chip = stored_chip(options_.output, id);
  if (!chip.store) return out;
  for (Modality m : chip.store->info().modalities)
    if (std::find(kImageModalities.begin(), kImageModalities.end(), m) != kImageModalities.end()) out.push_back(info(m).name);
  return out;
}

std::string Explorer::chip_image(const ChipId& id, const std::string& modality_name) const {
  Modality m;
  try {
    m = parse_modality(modality_name);
  } catch (const std::invalid_argument& e) {
    throw ConfigError(fmt::format("modality '{}': {}", clipped(modality_name), e.what()));
  }
  ChipBatch batch;
  {
    const std::lock_guard lock(hdf5_mutex());
    const StoredChip chip = stored_chip(options_.output, id);
    if (!chip.store)
      throw NotFound(fmt::format("chip {}: not in a chip store under {} (`prepare` writes them)", id.str(),
                                 (options_.output / "chips").string()));
    batch = chip.store->read(chip.index, 1);
  }
  const ModalityChips* mc = batch.find(m);
  if (!mc) throw NotFound(fmt::format("chip {}: its chip store has no {}", id.str(), modality_name));
  const ModalityInfo& mi = info(m);
  const int size = batch.size, seasons = mi.seasons, width = size * seasons;
  const std::size_t plane = static_cast<std::size_t>(size) * static_cast<std::size_t>(size);
  // The bands shown (red, green, blue; or one band as grey) and each one's stretch over
  // every season.
  const std::vector<int> bands = m == Modality::s2rgb ? std::vector<int>{0, 1, 2} : std::vector<int>{0};
  std::vector<std::pair<float, float>> stretch;
  for (int b : bands) {
    std::vector<float> v;
    for (int s = 0; s < seasons; ++s) {
      const float* px = mc->values.data() + static_cast<std::size_t>(s * static_cast<int>(mi.bands.size()) + b) * plane;
      for (std::size_t i = 0; i < plane; ++i)
        if (!std::isnan(px[i])) v.push_back(px[i]);
    }
    stretch.push_back(percentile_stretch(std::move(v)));
  }
  std::vector<Rgba> pixels(static_cast<std::size_t>(width) * static_cast<std::size_t>(size));
  for (int s = 0; s < seasons; ++s)
    for (std::size_t i = 0; i < plane; ++i) {
      std::array<std::uint8_t, 3> c{};
      bool data = true;
      for (std::size_t k = 0; k < bands.size(); ++k) {
        const float v = mc->values[static_cast<std::size_t>(s * static_cast<int>(mi.bands.size()) + bands[k]) * plane + i];
        data = data && !std::isnan(v);
        c[k] = stretched(v, stretch[k]);
      }
      if (bands.size() == 1) c[1] = c[2] = c[0];
      const std::size_t row = i / static_cast<std::size_t>(size), col = i % static_cast<std::size_t>(size) + static_cast<std::size_t>(s * size);
      if (data) pixels[row * static_cast<std::size_t>(width) + col] = {c[0], c[1], c[2], 255};
    }
  return encode_png(pixels, width, size);
}

std::shared_ptr<const Explorer::Composite> Explorer::composite(const ChipId& id, int season) const {
  const auto key = std::make_pair(id, season);
  {
    const std::lock_guard lock(mutex_);
    if (const auto it = composites_.find(key); it != composites_.end()) return it->second;
  }
  std::shared_ptr<Composite> out;
  {
    const std::lock_guard lock(hdf5_mutex());
    const StoredChip chip = stored_chip(options_.output, id);
    const auto& stored = chip.store ? chip.store->info().modalities : std::vector<Modality>{};
    if (std::find(stored.begin(), stored.end(), Modality::s2rgb) != stored.end()) {
      const std::size_t bands = info(Modality::s2rgb).bands.size();
      const auto season_band = [&](const ModalityChips& mc, std::size_t b, std::size_t plane) {
        return mc.values.data() + (static_cast<std::size_t>(season) * bands + b) * plane;
      };
      if (rgb_stretch_.empty()) {
        // One stretch for every chip, so that the chips of the map join up: each band's
        // 2nd to 98th percentile over a sample of the first store read (every 8th chip,
        // every 7th pixel).
        std::vector<std::vector<float>> values(3);
        for (std::size_t i = 0; i < chip.store->chips().size(); i += 8) {
          const ChipBatch b = chip.store->read(i, 1);
          const ModalityChips* mc = b.find(Modality::s2rgb);
          const std::size_t plane = static_cast<std::size_t>(b.size) * static_cast<std::size_t>(b.size);
          for (std::size_t band = 0; band < 3; ++band)
            for (std::size_t p = 0; p < plane; p += 7)
              if (const float v = season_band(*mc, band, plane)[p]; !std::isnan(v)) values[band].push_back(v);
        }
        for (auto& v : values) rgb_stretch_.push_back(percentile_stretch(std::move(v)));
      }
      const ChipBatch batch = chip.store->read(chip.index, 1);
      const ModalityChips& mc = *batch.find(Modality::s2rgb);
      const std::size_t plane = static_cast<std::size_t>(batch.size) * static_cast<std::size_t>(batch.size);
      out = std::make_shared<Composite>();
      out->size = batch.size;
      out->pixels.resize(plane);
      for (std::size_t p = 0; p < plane; ++p) {
        std::array<std::uint8_t, 3> c{};
        bool data = true;
        for (std::size_t band = 0; band < 3; ++band) {
          const float v = season_band(mc, band, plane)[p];
          data = data && !std::isnan(v);
          c[band] = stretched(v, rgb_stretch_[band]);
        }
        if (data) out->pixels[p] = {c[0], c[1], c[2], 255};
      }
    }
  }
  const std::lock_guard lock(mutex_);
  if (composites_.size() >= 4096) composites_.clear();
  composites_[key] = out;  // none, too: a chip without a store is not looked for again
  return out;
}

std::string Explorer::composite_tile(int season, const TileXYZ& t) const {
  // Below zoom 9 a chip is a few pixels: nothing is read.
  if (t.z < 9) return render_tile(t, [](LonLat) { return std::optional<Rgba>(); });
  std::map<ChipId, std::shared_ptr<const Composite>> chips;  // this tile's
  return render_tile(t, [&](LonLat p) -> std::optional<Rgba> {
    std::optional<Rgba> found;
    look_in_zones(cube_.spec().zones, p, [&](Zone z) {
      const EastNorth e = utm_forward(z.number, z.south, p);
      const ChipId c = eo::chip_at(z, e);
      if (!embedded_.count(c)) return false;
      auto it = chips.find(c);
      if (it == chips.end()) it = chips.emplace(c, composite(c, season)).first;
      if (it->second) {
        const Composite& comp = *it->second;
        const Box b = c.bounds();
        const int col = std::clamp(static_cast<int>((e.e - b.e0) / (b.e1 - b.e0) * comp.size), 0, comp.size - 1);
        const int row = std::clamp(static_cast<int>((b.n1 - e.n) / (b.n1 - b.n0) * comp.size), 0, comp.size - 1);
        const Rgba px = comp.pixels[static_cast<std::size_t>(row) * static_cast<std::size_t>(comp.size) + static_cast<std::size_t>(col)];
        if (px.a > 0) found = px;
      }
      return true;  // the chip is here: its composite, or nothing
    });
    return found;
  });
}

std::string Explorer::tile(const std::string& layer, const TileXYZ& t) const {
  if (layer.size() == 5 && layer.starts_with("rgb-") && layer[4] >= '0' && layer[4] <= '3')
    return cache_.get(layer, t, [&] { return composite_tile(layer[4] - '0', t); });
  if (layer == "grid") return cache_.get(layer, t, [&] { return render_grid_tile(t); });
  if (const auto it = layers_.find(layer); it != layers_.end())
    return cache_.get(layer, t, [&] { return render_tile(it->second, t); });
  std::shared_ptr<const ChipLayer> made;
  {
    const std::lock_guard lock(mutex_);
    if (const auto it = made_.find(layer); it != made_.end()) made = it->second;
  }
  if (!made) throw NotFound(fmt::format("layer '{}': no such layer (pca, status, clear, grid, rgb-0 to rgb-3, or a search's or map's)", clipped(layer)));
  return render_tile(*made, t);
}

}  // namespace eo
