#include "stages/serve/explorer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "pipeline/core/error.hpp"
#include "stages/downstream/index.hpp"

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

}  // namespace

Explorer::Explorer(const fs::path& cube, int threads) : path_(cube), cube_(cube), threads_(std::max(1, threads)) {}

json Explorer::cube() const {
  const CubeSpec& spec = cube_.spec();
  json zones = json::array(), modalities = json::array();
  std::size_t embedded = 0;
  LonLatBox extent;
  for (Zone z : spec.zones) {
    zones.push_back(z.name());
    for (const TileId& t : cube_.written_tiles(z)) {
      const auto status = cube_.read_status(t);
      const auto n = std::count(status.begin(), status.end(), kEmbedded);
      if (n == 0) continue;
      embedded += static_cast<std::size_t>(n);
      extent.add(lonlat_bounds(t.zone, t.bounds()));
    }
  }
  for (Modality m : spec.modalities) modalities.push_back(info(m).name);
  json out = {{"cube", path_.string()}, {"zones", zones}, {"modalities", modalities}, {"dim", spec.dim},
              {"dtype", name_str(spec.dtype)}, {"embedded_chips", embedded},
              {"spaces", spec.embedding_arrays()}, {"model_version", spec.provenance.value("model_version", "")}};
  out["spaces"].push_back("concat");
  if (!extent.empty()) out["bbox"] = {extent.lon0, extent.lat0, extent.lon1, extent.lat1};
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
  out["made_from"] = made_from;
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
      const auto& zones = cube_.spec().zones;
      const std::uint8_t s = std::find(zones.begin(), zones.end(), c.zone) == zones.end()
                                 ? static_cast<std::uint8_t>(kNotProcessed)
                                 : cube_.read_status(tile_of(c))[static_cast<std::size_t>(index_in_tile(c))];
      if (s != kEmbedded)
        throw NotFound(fmt::format("chip {} is not an embedded chip of {} ({})", c.str(), path_.string(), status_name(s)));
    }
  const SearchSpace space = SearchSpace::of(cube_.spec(), path_, space_name);
  const std::vector<float> query = query_vector(cube_, space, examples);
  json out = {{"space", space.name}, {"k", k}};
  std::vector<Hit> hits;
  if (fs::exists(index_file(path_, space.name))) {
    try {
      hits = index_search(cube_, space, {query}, k, 0).at(0);
      out["search"] = "index";
    } catch (const ConfigError& e) {  // an index of the cube before it changed: not used
      out["index_refused"] = e.what();
    }
  }
  if (!out.contains("search")) {
    hits = exact_search(cube_, space, {query}, k, threads_).at(0);
    out["search"] = "exact";
  }
  json list = json::array();
  for (const Hit& h : hits) list.push_back({{"id", h.chip.str()}, {"score", h.score}, {"lonlat", lonlat_of(h.chip)}});
  out["hits"] = list;
  return out;
}

}  // namespace eo
