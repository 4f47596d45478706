// Similarity search on cubes written here with known contents: the nearest chip to a chip
// is itself; a planted cluster of near-identical chips is found whole, across tiles and
// zones; float16 and int8 cubes rank alike within their quantisation's bound; the exact
// search agrees with numpy's brute force over what zarr-python reads; the FAISS index
// agrees with the exact search and refuses a cube changed since; the command writes
// GeoJSON GDAL reads; a missing chip, a point outside every zone, a cube without the
// asked modality and a stale index are clear errors. A user's labels in UTM metres under
// a crs member name the chips they name in degrees; careless positions and labels with
// nothing to learn are named.

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <fstream>
#include <random>
#include <set>

#include "pipeline/core/config.hpp"
#include "stages/cube/cube.hpp"
#include "pipeline/core/utm.hpp"
#include "stages/downstream/index.hpp"
#include "stages/downstream/labels.hpp"
#include "stages/downstream/similar.hpp"
#include "support/run.hpp"
#include "support/small_cube.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

using test::kCluster;
using test::kDim;
using test::Planted;
using test::write_cube;

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / fmt::format("eo_similar_{}_{}", name, ::getpid());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::set<ChipId> chips_of(const std::vector<Hit>& hits) {
  std::set<ChipId> out;
  for (const Hit& h : hits) out.insert(h.chip);
  return out;
}

class Similar : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(temp_dir("cubes"));
    for (CubeDtype d : {CubeDtype::float32, CubeDtype::float16, CubeDtype::int8})
      planted_ = write_cube(*dir_ / (name_str(d) + ".zarr"), d);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static fs::path cube(CubeDtype d) { return *dir_ / (name_str(d) + ".zarr"); }
  static fs::path* dir_;
  static Planted planted_;
};
fs::path* Similar::dir_ = nullptr;
Planted Similar::planted_;

TEST_F(Similar, TheNearestChipToAChipIsItselfInEverySpace) {
  const CubeReader reader(cube(CubeDtype::float32));
  for (const char* name : {"fused", "s2rgb", "s1amp", "concat"}) {
    SCOPED_TRACE(name);
    const SearchSpace space = SearchSpace::of(reader.spec(), reader.root(), name);
    for (const ChipId& chip : {ChipId{Zone{10, false}, 72 * 16 + 3, 8 * 16 + 4}, ChipId{Zone{11, false}, 73 * 16 + 15, 16 + 15}}) {
      const auto hits = exact_search(reader, space, {query_vector(reader, space, {{chip}, {}})}, 3, 2).at(0);
      ASSERT_EQ(hits.size(), 3u);
      EXPECT_EQ(hits[0].chip, chip);
      EXPECT_NEAR(hits[0].score, 1.0f, 1e-5);
      EXPECT_LT(hits[1].score, hits[0].score);
    }
  }
}

TEST_F(Similar, APlantedClusterIsFoundWholeInEveryDtypeWithinTheQuantisationBound) {
  std::vector<Hit> reference;
  for (CubeDtype d : {CubeDtype::float32, CubeDtype::float16, CubeDtype::int8}) {
    SCOPED_TRACE(name_str(d));
    const CubeReader reader(cube(d));
    for (const char* name : {"fused", "s1amp", "concat"}) {
      SCOPED_TRACE(name);
      const SearchSpace space = SearchSpace::of(reader.spec(), reader.root(), name);
      const auto hits = exact_search(reader, space, {query_vector(reader, space, {{planted_.cluster[0]}, {}})}, kCluster + 5, 3).at(0);
      const std::set<ChipId> top = chips_of(std::vector<Hit>(hits.begin(), hits.begin() + kCluster));
      EXPECT_EQ(top, std::set<ChipId>(planted_.cluster.begin(), planted_.cluster.end()));
      EXPECT_GT(hits[kCluster - 1].score, 0.99f);
      EXPECT_LT(hits[kCluster].score, 0.9f);
    }
    // Scores of the same chips in the same order as float32's, within the dtype's bound:
    // float16 keeps 11 bits; int8 a step of max|v| / 127 per chip, so a unit vector of 32
    // values moves by at most sqrt(32) / 254 and a cosine of two by twice that.
    const SearchSpace space = SearchSpace::of(reader.spec(), reader.root(), "fused");
    const ChipId q{Zone{10, false}, 72 * 16 + 3, 8 * 16 + 4};
    const auto hits = exact_search(reader, space, {query_vector(reader, space, {{q}, {}})}, 40, 1).at(0);
    if (d == CubeDtype::float32) {
      reference = hits;
      continue;
    }
    const double bound = d == CubeDtype::float16 ? 2e-3 : 2 * std::sqrt(static_cast<double>(kDim)) / 254;
    std::map<ChipId, float> ref;
    for (const Hit& h : reference) ref[h.chip] = h.score;
    int compared = 0;
    for (const Hit& h : hits)
      if (ref.count(h.chip)) {
        EXPECT_NEAR(h.score, ref[h.chip], bound) << h.chip.str();
        ++compared;
      }
    EXPECT_GT(compared, 30);
    // Where float32's scores are further apart than twice the bound, the order is the same.
    for (std::size_t i = 0; i + 1 < hits.size() && i + 1 < reference.size(); ++i)
      if (reference[i].score - reference[i + 1].score > 2 * bound) {
        EXPECT_EQ(hits[i].chip, reference[i].chip) << "rank " << i;
        break;
      }
  }
}

// Negatives push their look-alikes down: the cluster asked for with one of its own chips
// as a negative scores every other cluster chip near zero.
TEST_F(Similar, NegativesMoveTheSearchAway) {
  const CubeReader reader(cube(CubeDtype::float32));
  const SearchSpace space = SearchSpace::of(reader.spec(), reader.root(), "fused");
  const ChipId other{Zone{10, false}, 72 * 16 + 3, 8 * 16 + 4};
  const auto hits = exact_search(reader, space, {query_vector(reader, space, {{other}, {planted_.cluster[0]}})}, 300, 2).at(0);
  for (const Hit& h : hits)
    if (std::count(planted_.cluster.begin(), planted_.cluster.end(), h.chip)) EXPECT_LT(h.score, 0) << h.chip.str();
  EXPECT_EQ(hits.at(0).chip, other);
}

// numpy's brute force over the fused array as zarr-python reads it gives the same ten
// chips and scores.
TEST_F(Similar, TheExactSearchIsNumpysBruteForce) {
  for (CubeDtype d : {CubeDtype::float32, CubeDtype::int8}) {
    SCOPED_TRACE(name_str(d));
    const CubeReader reader(cube(d));
    const SearchSpace space = SearchSpace::of(reader.spec(), reader.root(), "fused");
    const ChipId q{Zone{11, false}, 72 * 16 + 2, 16 + 9};
    const auto hits = exact_search(reader, space, {query_vector(reader, space, {{q}, {}})}, 10, 3).at(0);
    const auto r = test::run(fmt::format(
        "/usr/bin/python3 -c \"\n"
        "import numpy as np, zarr\n"
        "root = zarr.open_group('{0}', mode='r'); rows = []\n"
        "for zone in ('10N', '11N'):\n"
        "    g = root[zone]; status = g['status'][:]; e = g['fused'][:].astype(np.float64)\n"
        "    if '{1}' == 'int8': e = np.where(e == -128, np.nan, e) * g['fused_scale'][:][..., None]\n"
        "    for y, x in zip(*np.nonzero(status == 1)):\n"
        "        rows.append(('%s_%04d_%04d' % (zone, y, x), e[y, x]))\n"
        "ids = [r[0] for r in rows]; m = np.array([r[1] for r in rows])\n"
        "m = m / np.linalg.norm(m, axis=1, keepdims=True)\n"
        "s = m @ m[ids.index('{2}')]\n"
        "for i in np.argsort(-s, kind='stable')[:10]: print(ids[i], '%.6f' % s[i])\n"
        "\"",
        reader.root().string(), name_str(d), q.str()));
    ASSERT_EQ(r.code, 0) << r.output;
    std::istringstream lines(r.output);
    for (const Hit& h : hits) {
      std::string id;
      double score = 0;
      lines >> id >> score;
      EXPECT_EQ(id, h.chip.str());
      EXPECT_NEAR(score, h.score, 1e-5);
    }
  }
}

TEST_F(Similar, TheIndexAnswersAsTheExactSearchAndRefusesAChangedCube) {
  const fs::path copy = *dir_ / "indexed.zarr";
  fs::copy(cube(CubeDtype::float32), copy, fs::copy_options::recursive);
  const CubeReader reader(copy);
  const SearchSpace space = SearchSpace::of(reader.spec(), reader.root(), "fused");
  std::vector<std::vector<float>> queries;
  const TileVectors some = tile_vectors(reader, space, TileId{Zone{10, false}, 72, 8});
  for (std::size_t i = 0; i < 20; ++i) queries.push_back(query_vector(reader, space, {{some.chips.at(i * 11)}, {}}));
  queries.back() = query_vector(reader, space, {{planted_.cluster[0]}, {}});
  const auto exact = exact_search(reader, space, queries, 10, 2);
  for (const char* factory : {"Flat", "IVF8,Flat"}) {
    SCOPED_TRACE(factory);
    const IndexCard card = build_index(reader, space, factory, 8, 2);  // IVF: every list visited
    EXPECT_EQ(card.vectors, 4 * (kChipsPerTile - 23));  // 23 of each tile not embedded
    // The same file from any number of threads (the vectors go in in the cube's order).
    const auto bytes = [&] {
      std::ifstream in(index_file(copy, "fused"), std::ios::binary);
      return std::string(std::istreambuf_iterator<char>(in), {});
    };
    const std::string built = bytes();
    for (int threads : {1, 4, 4, 4}) {
      build_index(reader, space, factory, 8, threads);
      EXPECT_TRUE(bytes() == built) << "the index built on " << threads << " threads differs from the one on 2";
    }
    const auto approx = index_search(reader, space, queries, 10, 0);
    for (std::size_t i = 0; i < queries.size(); ++i) {
      ASSERT_EQ(approx[i].size(), 10u);
      EXPECT_EQ(chips_of(approx[i]), chips_of(exact[i])) << "query " << i;
      EXPECT_NEAR(approx[i][0].score, exact[i][0].score, 1e-5);
    }
  }
  // A tile rewritten after the index was built: the index is stale, and says so.
  const TileId tile{Zone{10, false}, 72, 8};
  TileEmbeddings t(tile, reader.spec());
  t.status.assign(kChipsPerTile, kFailed);
  CubeWriter(copy, reader.spec()).write_tile(t);
  try {
    index_search(reader, space, queries, 10, 0);
    ADD_FAILURE() << "a stale index answered";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("older than the cube"), std::string::npos) << e.what();
  }
}

TEST_F(Similar, BadQueriesAreClearErrors) {
  const CubeReader reader(cube(CubeDtype::float32));
  const SearchSpace fused = SearchSpace::of(reader.spec(), reader.root(), "fused");
  const auto message = [&](const std::function<void()>& f) {
    try {
      f();
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { query_vector(reader, fused, {{ChipId{Zone{10, false}, 5, 5}}, {}}); })
                .find("chip 10N_0005_0005 has no fused embedding in " + reader.root().string()),
            std::string::npos);
  const SearchSpace s1amp = SearchSpace::of(reader.spec(), reader.root(), "s1amp");
  EXPECT_NE(message([&] { query_vector(reader, s1amp, {{planted_.missing_s1amp}, {}}); }).find("embedded, but not in this modality"),
            std::string::npos);
  EXPECT_NE(message([&] { chip_at_lonlat(reader, {20.0, 45.0}); }).find("lon/lat 20.000000,45.000000: no embedded chip there in any zone of"),
            std::string::npos);
  EXPECT_NE(message([&] { SearchSpace::of(reader.spec(), reader.root(), "s1coh"); }).find("has no s1coh embeddings (it holds s2rgb, s1amp, fused, or concat)"),
            std::string::npos);
  EXPECT_NE(message([&] { index_search(reader, fused, {{}}, 5, 0); }).find("no index of the fused embeddings"), std::string::npos);
}

// A user's labels (fewshot --labels) on a cube in zone 31, at longitudes 0-6 E, where a
// latitude, longitude pair is a place too: positions in UTM metres under a crs member name
// the chips that degrees name; without the member they are refused as metres; swapped,
// they fall outside, and how many would fall on chips the other way round is counted;
// one class, or one value, is refused.
TEST(Labels, ACrsMemberIsHonouredAndCarelessPositionsAreNamed) {
  const fs::path dir = temp_dir("labels");
  CubeSpec spec;
  spec.zones = {Zone{31, false}};
  spec.modalities = {Modality::s2rgb};
  spec.dim = 8;
  spec.chip_pixels = 112;
  spec.pixel_size = 40;
  spec.provenance = {{"model", "test"}, {"model_hash", "m1"}, {"model_version", "test-m1"}};
  create_cube(dir / "cube.zarr", spec);
  const TileId tile{Zone{31, false}, 72, 8};
  TileEmbeddings t(tile, spec);
  std::vector<ChipId> chips;
  std::map<Modality, std::vector<float>> emb;
  for (int pos = 0; pos < kChipsPerTile; ++pos) {
    chips.push_back(tile.chip(pos));
    for (int i = 0; i < spec.dim; ++i) emb[Modality::s2rgb].push_back(static_cast<float>(pos % 7 + i));
  }
  t.add(chips, emb);
  CubeWriter(dir / "cube.zarr", spec).write_tile(t);
  const CubeReader cube(dir / "cube.zarr");

  // 30 chips' centres, as longitude, latitude and as UTM 31N metres.
  const auto labels = [&](const std::string& name, const std::function<json(const EastNorth&, const LonLat&)>& position,
                          const json& crs, const std::function<json(int)>& value) {
    json doc = {{"type", "FeatureCollection"}, {"features", json::array()}};
    if (!crs.is_null()) doc["crs"] = crs;
    for (int i = 0; i < 30; ++i) {
      const EastNorth c = chips[static_cast<std::size_t>(i * 7)].centre();
      doc["features"].push_back({{"type", "Feature"},
                                 {"geometry", {{"type", "Point"}, {"coordinates", position(c, utm_inverse(31, false, c))}}},
                                 {"properties", {{"value", value(i)}}}});
    }
    std::ofstream(dir / name) << doc.dump();
    return dir / name;
  };
  const auto degrees = [](const EastNorth&, const LonLat& p) { return json::array({p.lon, p.lat}); };
  const auto metres = [](const EastNorth& c, const LonLat&) { return json::array({c.e, c.n}); };
  const auto latlon = [](const EastNorth&, const LonLat& p) { return json::array({p.lat, p.lon}); };
  const auto number = [](int i) { return json(i); };
  const json utm = {{"type", "name"}, {"properties", {{"name", "urn:ogc:def:crs:EPSG::32631"}}}};

  const UserLabels in_degrees = read_labels(labels("degrees.geojson", degrees, nullptr, number), "value", cube, 0.5);
  ASSERT_EQ(in_degrees.chips.size(), 30u);
  const UserLabels in_metres = read_labels(labels("metres.geojson", metres, utm, number), "value", cube, 0.5);
  EXPECT_EQ(in_metres.chips, in_degrees.chips);
  const UserLabels swapped = read_labels(labels("swapped.geojson", latlon, nullptr, number), "value", cube, 0.5);
  EXPECT_TRUE(swapped.chips.empty());
  EXPECT_EQ(swapped.outside, 30u);
  EXPECT_EQ(swapped.outside_swapped, 30u);

  const auto message = [&](const fs::path& file) {
    try {
      read_labels(file, "value", cube, 0.5);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string bare = message(labels("bare.geojson", metres, nullptr, number));
  EXPECT_NE(bare.find("bare.geojson: feature 0: position ["), std::string::npos) << bare;
  EXPECT_NE(bare.find("is not longitude and latitude in degrees (metres, it seems)"), std::string::npos) << bare;
  const std::string link = message(labels("link.geojson", metres, json{{"type", "link"}, {"properties", {{"href", "x.prj"}}}}, number));
  EXPECT_NE(link.find("link.geojson: crs {\"properties\""), std::string::npos) << link;
  EXPECT_NE(link.find("is not one read here"), std::string::npos) << link;
  const std::string unknown = message(labels("unknown.geojson", metres, json{{"type", "name"}, {"properties", {{"name", "EPSG:99999999"}}}}, number));
  EXPECT_NE(unknown.find("crs \"EPSG:99999999\" is not a CRS that PROJ knows"), std::string::npos) << unknown;
  const std::string one_class = message(labels("forest.geojson", degrees, nullptr, [](int) { return json("forest"); }));
  EXPECT_NE(one_class.find("forest.geojson: every label on the cube's chips is of class \"forest\""), std::string::npos) << one_class;
  const std::string constant = message(labels("flat.geojson", degrees, nullptr, [](int) { return json(3); }));
  EXPECT_NE(constant.find("flat.geojson: every label on the cube's chips is value = 3: nothing varies"), std::string::npos) << constant;
  fs::remove_all(dir);
}

// The command: examples from GeoJSON (a point and a chip property as positives, a
// negative), hits as GeoJSON that GDAL reads, a map per zone; bad input named.
TEST_F(Similar, TheCommandWritesHitsAndMapsAndNamesBadInput) {
  const fs::path out = *dir_ / "out", examples = *dir_ / "examples.geojson";
  const ChipId first = planted_.cluster[0], other_chip{Zone{10, false}, 72 * 16 + 3, 8 * 16 + 4};
  const EastNorth c = first.centre();
  const LonLat p = utm_inverse(first.zone.number, first.zone.south, c);
  std::ofstream(examples) << json{{"type", "FeatureCollection"},
                                  {"features",
                                   {{{"type", "Feature"}, {"geometry", {{"type", "Point"}, {"coordinates", {p.lon, p.lat}}}},
                                     {"properties", json::object()}},
                                    {{"type", "Feature"}, {"geometry", nullptr},
                                     {"properties", {{"chip", planted_.cluster[1].str()}}}},
                                    {{"type", "Feature"}, {"geometry", nullptr},
                                     {"properties", {{"chip", "10N_1155_0131"}, {"label", "negative"}}}}}}}
                                 .dump();
  const std::string base = fmt::format("{} similar --cube {} --output {} ", EO_PIPELINE_EXE,
                                       cube(CubeDtype::int8).string(), (*dir_ / "cfg").string());
  const auto r = test::run(base + fmt::format("--examples {} -k {} --out {}", examples.string(), kCluster, out.string()));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("(2 positives, 1 negatives)"), std::string::npos) << r.output;
  const auto ogr = test::run(fmt::format("ogrinfo -al -q {} | grep -c 'chip (String) = '", (out / "hits.geojson").string()));
  EXPECT_EQ(ogr.output, fmt::format("{}\n", kCluster)) << ogr.output;
  const auto ids = test::run(fmt::format("ogrinfo -al -q {} | grep 'chip (String) = ' | sed 's/.*= //' | sort",
                                         (out / "hits.geojson").string()));
  std::vector<std::string> want;
  for (const ChipId& x : planted_.cluster) want.push_back(x.str());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(ids.output, fmt::format("{}\n", fmt::join(want, "\n")));
  for (const char* zone : {"10N", "11N"}) {
    EXPECT_TRUE(fs::exists(out / fmt::format("similarity_{}.png", zone)));
    const auto info = test::run(fmt::format("gdalinfo -stats {}", (out / fmt::format("similarity_{}.tif", zone)).string()));
    EXPECT_NE(info.output.find(fmt::format("EPSG\",326{}", zone == std::string("10N") ? "10" : "11")), std::string::npos)
        << info.output;
  }

  const auto bad = [&](const std::string& args, const std::string& says) {
    const auto b = test::run(base + args);
    EXPECT_EQ(b.code, 2) << args << ": " << b.output;
    EXPECT_NE(b.output.find(says), std::string::npos) << args << ": " << b.output;
  };
  // From the command line too: a chip outside the cluster, unlike one of the cluster,
  // scores the whole cluster below zero.
  const auto unlike = test::run(base + fmt::format("--chip {} --unlike {} -k 1000 --out {} --json", other_chip.str(),
                                                   planted_.cluster[1].str(), (out / "unlike").string()));
  ASSERT_EQ(unlike.code, 0) << unlike.output;
  const json hits = json::parse(std::ifstream(out / "unlike" / "hits.geojson"));
  for (const json& f : hits["features"])
    if (std::count(planted_.cluster.begin(), planted_.cluster.end(), parse_chip_id(f["properties"]["chip"].get<std::string>())))
      EXPECT_LT(f["properties"]["score"].get<double>(), 0) << f.dump();
  bad("--chip 10N_0005_0005", "chip 10N_0005_0005 has no fused embedding");
  bad("--chip " + first.str() + " --unlike nonsense", "--unlike nonsense:");
  bad("--chip nonsense", "--chip nonsense:");
  bad("--lonlat=20,45", "lon/lat 20.000000,45.000000: no embedded chip there in any zone");
  bad("--chip " + first.str() + " --modality s1coh", "has no s1coh embeddings");
  std::ofstream(*dir_ / "bad.geojson") << R"({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, "properties": {}}]})";
  bad("--examples " + (*dir_ / "bad.geojson").string(), "bad.geojson: feature 0: a LineString");
  bad("", "say what to look for");
}

}  // namespace
}  // namespace eo
