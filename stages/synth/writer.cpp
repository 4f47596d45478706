#include "stages/synth/writer.hpp"

#include "stages/ingest/stac.hpp"

namespace eo::synth {

// Where the world exists: around each planned tile's chips, with a margin.
std::vector<LonLatBox> plan_areas(const Plan& plan) {
  std::vector<LonLatBox> areas;
  for (const TilePlan& t : plan.tiles) {
    LonLatBox b;
    for (int i = 0; i < kChipsPerTile; ++i)
      if (t.chips.test(static_cast<std::size_t>(i))) b.add(lonlat_bounds(t.id.zone, t.id.chip(i).bounds(), 1));
    areas.push_back(b.grown(kMarginDeg));
  }
  return areas;
}

LonLatBox bounds_of(const std::vector<LonLatBox>& areas) {
  LonLatBox b;
  for (const LonLatBox& a : areas) b.add(a);
  return b;
}

SynthReport Writer::run() {
  gdal_init();
  if (synth_.layout == WorldLayout::scenes) {
    // As real data is published, and catalogued the way a user's is (`eo-pipeline
    // catalog --stac ...`, `--layout global-coherence`): the demo exercises that path.
    s2_scenes();
    s1_scenes();
    coherence_tiles();
    worldcover_tiles();
    labels({Modality::treecover});
    write_item_collections();
  } else {
    s2();
    s1_amplitude();
    coherence();
    labels({Modality::worldcover, Modality::treecover});
  }
  report_.catalog = dir_ / "catalog.jsonl";
  catalog_.save(report_.catalog);
  return report_;
}

bool Writer::left_out(Modality m, const std::string& tile) {
  const auto key = static_cast<std::int64_t>(Hasher().add(tile).value());
  if (hash_unit(synth_.seed, key, 0, 100 + static_cast<int>(m)) >= synth_.missing_fraction) return false;
  ++report_.left_out[info(m).name];
  return true;
}

void Writer::record(const std::filesystem::path& path, Modality m, int season) {
  SourceRecord r = describe_raster(path, m, season, info(m).seasons > 1 ? season_interval(synth_.year, season) : std::to_string(synth_.year));
  r.path = catalogued(path);
  catalog_.add(std::move(r));
  ++report_.files[info(m).name];
  report_.bytes += std::filesystem::file_size(path);
}

void Writer::count(const std::filesystem::path& path, Modality m) {
  ++report_.files[info(m).name];
  report_.bytes += std::filesystem::file_size(path);
}

World world_of(const SynthConfig& synth, const Plan& plan) {
  double lon0 = 1e300, lon1 = -1e300, lat0 = 1e300, lat1 = -1e300;
  for (const Aoi& a : plan.aois) {
    lon0 = std::min(lon0, a.min_lon); lon1 = std::max(lon1, a.max_lon);
    lat0 = std::min(lat0, a.min_lat); lat1 = std::max(lat1, a.max_lat);
  }
  return World(synth.seed, {(lon0 + lon1) / 2, (lat0 + lat1) / 2});
}

SynthReport write_world(const SynthConfig& synth, const std::filesystem::path& dir, const Plan& plan,
                        const std::function<void(const std::string&)>& progress, const std::string& href_base) {
  return Writer(synth, dir, plan, progress, href_base).run();
}

}  // namespace eo::synth
