// `eo-pipeline serve` on a finished cube, timed as the page uses it, over HTTP on this
// machine (bench/serve_bench.sh runs it on the demo's cube):
//   bench_serve CUBE LABELS_DIR WORK_DIR [LABELS]
// - tiles of the PCA layer at zooms 8, 10 and 12 over the cube, rendered (first request,
//   an empty cache under WORK_DIR) and then cached (second request);
// - clicks: a chip by place, then its 10 most similar chips (what the page asks on a click),
//   and a tile of the search's heat layer;
// - train to map: LABELS (default 200) chips spread over the cube, each labelled 1 where
//   the tree cover at its centre (the rasters of LABELS_DIR, read by GDAL) is 30% or more,
//   else 0; Train, then the map's tiles at zoom 9 over the cube.
// The explorer takes the embedded demo config's few-shot settings, as `serve` on the demo
// does. Prints one JSON object.

#include <gdal_priv.h>
#include <httplib.h>
#include <ogr_spatialref.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "pipeline/core/config.hpp"
#include "pipeline/core/resources.hpp"
#include "pipeline/core/utm.hpp"
#include "stages/serve/server.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace eo;

json spread(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  if (ms.empty()) return nullptr;
  const auto at = [&](double q) { return ms[std::min(ms.size() - 1, static_cast<std::size_t>(q * static_cast<double>(ms.size())))]; };
  return {{"count", ms.size()}, {"median_ms", at(0.5)}, {"p95_ms", at(0.95)}, {"max_ms", ms.back()}};
}

// The XYZ tiles at zoom z that cover a lon/lat box, at most `most` of them, evenly taken.
std::vector<TileXYZ> tiles_over(const json& bbox, int z, std::size_t most) {
  const double n = std::ldexp(1.0, z);
  const auto tx = [&](double lon) { return static_cast<int>((lon + 180) / 360 * n); };
  const auto ty = [&](double lat) { return static_cast<int>((1 - std::asinh(std::tan(lat * M_PI / 180)) / M_PI) / 2 * n); };
  std::vector<TileXYZ> all;
  for (int x = tx(bbox[0]); x <= tx(bbox[2]); ++x)
    for (int y = ty(bbox[3]); y <= ty(bbox[1]); ++y) all.push_back({z, x, y});
  std::vector<TileXYZ> out;
  for (std::size_t i = 0; i < std::min(most, all.size()); ++i) out.push_back(all[i * all.size() / std::min(most, all.size())]);
  return out;
}

// Tree cover (%) at a point from the rasters of a folder (lon/lat rasters), NaN where none.
class TreeCover {
 public:
  explicit TreeCover(const fs::path& dir) {
    GDALAllRegister();
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".tif") rasters_.emplace_back(GDALDataset::Open(e.path().c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
  }
  double at(LonLat p) const {
    for (const auto& ds : rasters_) {
      double gt[6];
      ds->GetGeoTransform(gt);
      const int col = static_cast<int>(std::floor((p.lon - gt[0]) / gt[1])), row = static_cast<int>(std::floor((p.lat - gt[3]) / gt[5]));
      if (col < 0 || row < 0 || col >= ds->GetRasterXSize() || row >= ds->GetRasterYSize()) continue;
      std::uint8_t v = 0;
      if (ds->GetRasterBand(1)->RasterIO(GF_Read, col, row, 1, 1, &v, 1, 1, GDT_Byte, 0, 0) != CE_None) continue;
      if (v <= 100) return v;
    }
    return std::nan("");
  }

 private:
  std::vector<std::unique_ptr<GDALDataset>> rasters_;
};

double ms_since(std::chrono::steady_clock::time_point t0) { return 1000 * seconds_since(t0); }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: bench_serve CUBE LABELS_DIR WORK_DIR [LABELS]\n";
    return 2;
  }
  const fs::path cube_path = argv[1], labels_dir = argv[2], work = argv[3];
  const std::size_t n_labels = argc > 4 ? std::stoul(argv[4]) : 200;
  fs::remove_all(work / "serve");
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const Config demo = load_config_or_demo("");
  const auto t_open = std::chrono::steady_clock::now();
  const Explorer explorer(cube_path, {threads, demo.fewshot, work});
  const double open_seconds = seconds_since(t_open);
  ExplorerServer server(explorer, {"127.0.0.1", 0});
  const int port = server.bind();
  std::thread answering([&] { server.serve(); });
  httplib::Client client("127.0.0.1", port);
  const auto get = [&](const std::string& path) {
    const auto r = client.Get(path);
    if (!r || r->status != 200) throw std::runtime_error(fmt::format("{}: {}", path, r ? r->body : "no answer"));
    return r->body;
  };
  const json cube = json::parse(get("/api/cube"));
  json out = {{"benchmark", "serve on a cube (bench/bench_serve.cpp)"}, {"cube", cube_path.string()},
              {"embedded_chips", cube["embedded_chips"]}, {"threads", threads}, {"open_seconds", open_seconds},
              {"vectors_in_memory_bytes_at_open", cube["vectors_in_memory_bytes"]}};

  // Tiles: rendered, then cached.
  json tiles = json::object();
  for (int z : {8, 10, 12}) {
    std::vector<double> rendered, cached;
    for (const TileXYZ& t : tiles_over(cube["bbox"], z, 40)) {
      const std::string path = fmt::format("/tiles/pca/{}.png", t.str());
      auto t0 = std::chrono::steady_clock::now();
      get(path);
      rendered.push_back(ms_since(t0));
      t0 = std::chrono::steady_clock::now();
      get(path);
      cached.push_back(ms_since(t0));
    }
    tiles[std::to_string(z)] = {{"rendered", spread(rendered)}, {"cached", spread(cached)}};
  }
  out["pca_tiles"] = tiles;

  // Clicks: the chip at a place, then the chips most like it, then a tile of its heat.
  const CubeReader reader(cube_path);
  std::vector<ChipId> chips = embedded_chips(reader);
  std::mt19937 rng(11);
  std::shuffle(chips.begin(), chips.end(), rng);
  std::vector<double> clicks, heat;
  for (std::size_t i = 0; i < std::min<std::size_t>(50, chips.size()); ++i) {
    const LonLat p = utm_inverse(chips[i].zone.number, chips[i].zone.south, chips[i].centre());
    const auto t0 = std::chrono::steady_clock::now();
    const json chip = json::parse(get(fmt::format("/api/chip?lon={:.7f}&lat={:.7f}", p.lon, p.lat)));
    const json similar = json::parse(get(fmt::format("/api/similar?id={}&k=10", chip["id"].get<std::string>())));
    clicks.push_back(ms_since(t0));
    const auto t1 = std::chrono::steady_clock::now();
    get(fmt::format("/tiles/{}/{}.png", similar["heat"]["layer"].get<std::string>(), tiles_over(cube["bbox"], 10, 1)[0].str()));
    heat.push_back(ms_since(t1));
  }
  out["click_to_similar"] = spread(clicks);
  out["heat_tile"] = spread(heat);

  // Train to map.
  const TreeCover trees(labels_dir);
  json features = json::array();
  std::size_t positives = 0;
  for (std::size_t i = 0; i < chips.size() && features.size() < n_labels; ++i) {
    const LonLat p = utm_inverse(chips[i].zone.number, chips[i].zone.south, chips[i].centre());
    const double cover = trees.at(p);
    if (std::isnan(cover)) continue;
    const int value = cover >= 30 ? 1 : 0;
    positives += static_cast<std::size_t>(value);
    features.push_back({{"type", "Feature"}, {"geometry", {{"type", "Point"}, {"coordinates", {p.lon, p.lat}}}},
                        {"properties", {{"trees", value}, {"chip", chips[i].str()}}}});
  }
  const std::string body = json{{"labels", {{"type", "FeatureCollection"}, {"features", features}}}, {"property", "trees"}}.dump();
  std::vector<double> train, train_to_map;
  json trained;
  for (int run = 0; run < 3; ++run) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = client.Post("/api/train", body, "application/json");
    if (!r || r->status != 200) throw std::runtime_error(fmt::format("train: {}", r ? r->body : "no answer"));
    train.push_back(ms_since(t0));
    trained = json::parse(r->body);
    for (const TileXYZ& t : tiles_over(cube["bbox"], 9, 100)) get(fmt::format("/tiles/{}/{}.png", trained["layer"].get<std::string>(), t.str()));
    train_to_map.push_back(ms_since(t0));
  }
  out["train"] = {{"labels", features.size()}, {"positives", positives}, {"labelled_chips", trained["labelled_chips"]},
                  {"held_out", trained["score"]}, {"train", trained["train"]}, {"validation", trained["validation"]},
                  {"test", trained["test"]}, {"map_tiles_at_zoom_9", tiles_over(cube["bbox"], 9, 100).size()},
                  {"fit", spread(train)}, {"fit_and_map_tiles", spread(train_to_map)}};
  out["vectors_in_memory_bytes"] = json::parse(get("/api/cube"))["vectors_in_memory_bytes"];
  out["peak_rss_mib"] = peak_rss_mib();
  server.stop();
  answering.join();
  std::cout << out.dump(2) << '\n';
  return 0;
}
