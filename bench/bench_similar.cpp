// Similarity search at scale (bench/similar_bench.sh runs it; each step its own process
// so that its peak memory is its own):
//   bench_similar make CUBE DIM CHIPS THREADS       a synthetic float32 cube: CHIPS chips
//       of DIM clustered values (2,000 centres, noise 0.6 of a centre's spread), zones 10N..
//   bench_similar queries CUBE N OUT.json           N chip ids spread over the cube
//   bench_similar exact CUBE QUERIES K BATCH THREADS OUT.json
//       exact search, BATCH queries a pass over the cube; hits and timings; then 8
//       queries one a pass
//   bench_similar index CUBE FACTORY NPROBE THREADS QUERIES K EXACT.json OUT.json
//       builds the index, reads it once, searches it (all queries at once, and at each
//       nprobe of a sweep), recall@K against the exact hits
//   bench_similar memory CUBE QUERIES K THREADS EXACT.json
//       what `serve` searches: the vectors read into memory once (VectorsInMemory), then
//       all queries at once and one at a time (a click each), recall@K against the exact
//       hits
// Every step prints one JSON object.

#include <fmt/format.h>

#include <fstream>
#include <iostream>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "pipeline/core/parallel.hpp"
#include "pipeline/core/resources.hpp"
#include "stages/cube/cube.hpp"
#include "stages/downstream/index.hpp"
#include "stages/downstream/similar.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace eo;

// Tiles in row-major order over zones 10N, 11N, ... from row 60, column 0 of each.
std::vector<TileId> bench_tiles(std::int64_t chips) {
  std::vector<TileId> tiles;
  const int per_zone_rows = 60, per_zone_cols = zone_cols() / kChipsPerTileSide;  // 60 x 14 tiles a zone
  for (std::int64_t i = 0; static_cast<std::int64_t>(tiles.size()) * kChipsPerTile < chips; ++i) {
    const int zone = static_cast<int>(i / (per_zone_rows * per_zone_cols)), within = static_cast<int>(i % (per_zone_rows * per_zone_cols));
    tiles.push_back(TileId{Zone{10 + zone, false}, 60 + within / per_zone_cols, within % per_zone_cols});
  }
  return tiles;
}

int make(const fs::path& cube, int dim, std::int64_t chips, int threads) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<TileId> tiles = bench_tiles(chips);
  CubeSpec spec;
  for (const TileId& t : tiles)
    if (std::find(spec.zones.begin(), spec.zones.end(), t.zone) == spec.zones.end()) spec.zones.push_back(t.zone);
  spec.modalities = {Modality::s2rgb};
  spec.dim = dim;
  spec.provenance = {{"model", "bench"}, {"model_hash", "bench"}, {"model_version", "bench"}};
  fs::remove_all(cube);
  create_cube(cube, spec);
  const CubeWriter writer(cube, spec);
  std::mt19937 centres_rng(1);
  std::normal_distribution<float> normal(0, 1);
  constexpr int kCentres = 2000;
  std::vector<float> centres(static_cast<std::size_t>(kCentres) * dim);
  for (float& v : centres) v = normal(centres_rng);
  parallel_for(tiles.size(), threads, [&](std::size_t i) {
    std::mt19937 rng(static_cast<unsigned>(i) + 7);
    std::normal_distribution<float> noise(0, 0.6f);
    std::uniform_int_distribution<int> pick(0, kCentres - 1);
    TileEmbeddings t(tiles[i], spec);
    std::vector<ChipId> ids;
    std::map<Modality, std::vector<float>> emb;
    auto& v = emb[Modality::s2rgb];
    for (int pos = 0; pos < kChipsPerTile; ++pos) {
      ids.push_back(tiles[i].chip(pos));
      const float* c = centres.data() + static_cast<std::size_t>(pick(rng)) * dim;
      for (int d = 0; d < dim; ++d) v.push_back(c[d] + noise(rng));
    }
    t.add(ids, emb);
    writer.write_tile(t);
  });
  std::cout << json{{"step", "make"}, {"cube", cube.string()}, {"dim", dim}, {"chips", tiles.size() * kChipsPerTile},
                    {"tiles", tiles.size()}, {"seconds", seconds_since(t0)}, {"peak_rss_mib", peak_rss_mib()}}
                   .dump()
            << '\n';
  return 0;
}

std::vector<ChipId> read_queries(const fs::path& file) {
  std::vector<ChipId> out;
  for (const auto& id : json::parse(std::ifstream(file))) out.push_back(parse_chip_id(id.get<std::string>()));
  return out;
}

// The share of the exact hits that `hits` found.
double recall(const std::vector<std::vector<Hit>>& hits, const json& exact) {
  double found = 0, wanted = 0;
  for (std::size_t i = 0; i < hits.size(); ++i) {
    std::set<std::string> truth;
    for (const auto& id : exact.at(i)) truth.insert(id.get<std::string>());
    for (const Hit& h : hits[i]) found += truth.count(h.chip.str());
    wanted += static_cast<double>(truth.size());
  }
  return found / wanted;
}

json hits_json(const std::vector<std::vector<Hit>>& hits) {
  json out = json::array();
  for (const auto& list : hits) {
    json ids = json::array();
    for (const Hit& h : list) ids.push_back(h.chip.str());
    out.push_back(ids);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> a(argv + 1, argv + argc);
  if (a.empty()) {
    std::cerr << "usage: see the top of bench/bench_similar.cpp\n";
    return 2;
  }
  if (a[0] == "make" && a.size() == 5) return make(a[1], std::stoi(a[2]), std::stoll(a[3]), std::stoi(a[4]));
  const CubeReader cube(a.at(1));
  const SearchSpace space = SearchSpace::of(cube.spec(), cube.root(), "fused");
  if (a[0] == "queries" && a.size() == 4) {
    const int n = std::stoi(a[2]);
    std::vector<TileId> tiles;
    for (Zone z : cube.spec().zones)
      for (const TileId& t : cube.written_tiles(z)) tiles.push_back(t);
    json ids = json::array();
    for (int i = 0; i < n; ++i) {
      const TileId& t = tiles[static_cast<std::size_t>(i) * tiles.size() / static_cast<std::size_t>(n)];
      ids.push_back(t.chip((i * 37) % kChipsPerTile).str());
    }
    std::ofstream(a[3]) << ids.dump() << '\n';
    std::cout << json{{"step", "queries"}, {"queries", n}}.dump() << '\n';
    return 0;
  }
  const auto t_start = std::chrono::steady_clock::now();
  std::vector<std::vector<float>> queries;
  const bool exact_or_memory = a[0] == "exact" || a[0] == "memory";
  for (const ChipId& c : read_queries(a.at(exact_or_memory ? 2 : 5))) queries.push_back(query_vector(cube, space, {{c}, {}}));
  const double query_vectors_seconds = seconds_since(t_start);
  const int k = std::stoi(a.at(exact_or_memory ? 3 : 6));
  if (a[0] == "memory" && a.size() == 6) {
    const int threads = std::stoi(a[4]);
    const json exact = json::parse(std::ifstream(a[5]));
    const auto t0 = std::chrono::steady_clock::now();
    const VectorsInMemory vectors(cube, space, threads);
    const double load = seconds_since(t0);
    const auto t1 = std::chrono::steady_clock::now();
    const auto all = vectors.search(queries, k);
    const double batch = seconds_since(t1);
    std::vector<std::vector<Hit>> one_by_one;
    std::vector<double> latency;
    for (const auto& q : queries) {
      const auto t = std::chrono::steady_clock::now();
      one_by_one.push_back(vectors.search({q}, k).at(0));
      latency.push_back(seconds_since(t));
    }
    std::sort(latency.begin(), latency.end());
    double singles = 0;
    for (double l : latency) singles += l;
    std::cout << json{{"step", "memory"}, {"chips", vectors.chips().size()}, {"bytes", vectors.bytes()},
                      {"threads", threads}, {"load_seconds", load}, {"queries", queries.size()}, {"k", k},
                      {"batch_seconds", batch}, {"batch_queries_per_second", static_cast<double>(queries.size()) / batch},
                      {"batch_recall_at_k", recall(all, exact)},
                      {"single_queries_per_second", static_cast<double>(queries.size()) / singles},
                      {"single_median_ms", 1000 * latency[latency.size() / 2]},
                      {"single_recall_at_k", recall(one_by_one, exact)}, {"peak_rss_mib", peak_rss_mib()}}
                     .dump()
              << '\n';
    return 0;
  }
  if (a[0] == "exact" && a.size() == 7) {
    keep_freed_memory();
    const std::size_t batch = std::stoul(a[4]);
    const int threads = std::stoi(a[5]);
    std::vector<std::vector<Hit>> hits;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t first = 0; first < queries.size(); first += batch) {
      const std::vector<std::vector<float>> some(queries.begin() + static_cast<long>(first),
                                                 queries.begin() + static_cast<long>(std::min(queries.size(), first + batch)));
      for (auto& h : exact_search(cube, space, some, k, threads)) hits.push_back(std::move(h));
    }
    const double s = seconds_since(t0);
    std::ofstream(a[6]) << hits_json(hits).dump() << '\n';
    // One query a pass, as `similar` sends it: the first 8 queries.
    std::vector<double> singles;
    for (std::size_t i = 0; i < std::min<std::size_t>(8, queries.size()); ++i) {
      const auto t = std::chrono::steady_clock::now();
      exact_search(cube, space, {queries[i]}, k, threads);
      singles.push_back(seconds_since(t));
    }
    std::sort(singles.begin(), singles.end());
    std::cout << json{{"step", "exact"}, {"queries", queries.size()}, {"batch", batch}, {"threads", threads},
                      {"seconds", s}, {"queries_per_second", static_cast<double>(queries.size()) / s},
                      {"single_queries", singles.size()}, {"single_median_ms", 1000 * singles[singles.size() / 2]},
                      {"query_vectors_seconds", query_vectors_seconds}, {"peak_rss_mib", peak_rss_mib()}}
                     .dump()
              << '\n';
    return 0;
  }
  if (a[0] == "index" && a.size() == 9) {
    const IndexCard card = build_index(cube, space, a[2], std::stoi(a[3]), std::stoi(a[4]));
    const double build_rss = peak_rss_mib();
    const json exact = json::parse(std::ifstream(a[7]));
    const auto t_load = std::chrono::steady_clock::now();
    const LoadedIndex index(cube, space);
    const double load = seconds_since(t_load);
    const auto t0 = std::chrono::steady_clock::now();
    const auto hits = index.search(queries, k);
    const double s = seconds_since(t0);
    std::vector<double> singles;  // one query at a time, as a command or a click sends it
    for (const auto& q : queries) {
      const auto t = std::chrono::steady_clock::now();
      index.search({q}, k);
      singles.push_back(seconds_since(t));
    }
    std::sort(singles.begin(), singles.end());
    // Other numbers of lists searched: the speed and recall each gives.
    json sweep = json::array();
    if (card.nprobe > 0)
      for (int nprobe : {4, 8, 12, 16, 24, 32, 48, 64}) {
        const LoadedIndex other(cube, space, nprobe);
        const auto t = std::chrono::steady_clock::now();
        const auto found = other.search(queries, k);
        const double seconds = seconds_since(t);
        sweep.push_back({{"nprobe", nprobe}, {"queries_per_second", static_cast<double>(queries.size()) / seconds},
                         {"recall_at_k", recall(found, exact)}});
      }
    std::ofstream(a[8]) << hits_json(hits).dump() << '\n';
    std::cout << json{{"step", "index"}, {"factory", card.factory}, {"nprobe", card.nprobe}, {"vectors", card.vectors},
                      {"build_seconds", card.build_seconds}, {"bytes", card.bytes}, {"build_peak_rss_mib", build_rss},
                      {"load_seconds", load}, {"queries", queries.size()}, {"search_seconds", s},
                      {"single_median_ms", 1000 * singles[singles.size() / 2]},
                      {"queries_per_second", static_cast<double>(queries.size()) / s},
                      {"recall_at_k", recall(hits, exact)}, {"k", k}, {"nprobe_sweep", sweep}, {"peak_rss_mib", peak_rss_mib()}}
                     .dump()
              << '\n';
    return 0;
  }
  std::cerr << "usage: see the top of bench/bench_similar.cpp\n";
  return 2;
}
