// A bounded fuzz test of the readers of what users give (issue 32): AOI GeoJSON and WKT,
// the config's YAML, catalog JSON lines, STAC JSON and labels GeoJSON. Valid inputs of
// each kind are mutated, a fixed number of times with a fixed seed, as careless and
// hostile users do: bytes changed, tokens inserted (numbers of every extreme, deep
// nesting, structure), spans cut or repeated. Each reader must return or throw a
// std::exception; a crash, a hang (the test's time limit) or memory beyond the cap set
// here fails the test. The inputs that failed are kept for reproducing.

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "pipeline/core/aoi.hpp"
#include "pipeline/core/config.hpp"
#include "pipeline/core/resources.hpp"
#include "stages/cube/cube.hpp"
#include "stages/downstream/labels.hpp"
#include "stages/ingest/catalog.hpp"
#include "stages/ingest/stac.hpp"
#include "support/temp_dir.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;

constexpr int kInputsPerReader = 5000;
constexpr std::size_t kMaxInput = 1 << 20;
constexpr rlim_t kMemoryCap = rlim_t{4} << 30;  // address space, bytes

class Mutator {
 public:
  explicit Mutator(std::uint64_t seed) : rng_(seed) {}

  std::string operator()(std::string s) {
    const int n = 1 + pick(4);
    for (int i = 0; i < n; ++i) {
      switch (pick(6)) {
        case 0:  // a byte changed
          if (!s.empty()) s[pos(s)] = kAlphabet[pick(static_cast<int>(kAlphabet.size()))];
          break;
        case 1:  // a token inserted (twice as often as the others)
        case 2:
          s.insert(pos(s), kTokens[static_cast<std::size_t>(pick(static_cast<int>(kTokens.size())))]);
          break;
        case 3:  // a span cut
          if (!s.empty()) {
            const std::size_t at = pos(s);
            s.erase(at, static_cast<std::size_t>(pick(64)));
          }
          break;
        case 4:  // a span repeated
          if (!s.empty()) {
            const std::size_t at = pos(s), len = std::min<std::size_t>(s.size() - at, static_cast<std::size_t>(1 + pick(200)));
            const std::string span = s.substr(at, len);
            for (int k = pick(50); k > 0 && s.size() < kMaxInput; --k) s.insert(at, span);
          }
          break;
        default: {  // nesting, deep or not
          const int depth = pick(2) ? 1 + pick(10) : 1 + pick(100000);
          const std::size_t at = pos(s);
          const char open = pick(2) ? '[' : '{';
          s.insert(at, std::string(static_cast<std::size_t>(depth), open));
          break;
        }
      }
    }
    if (s.size() > kMaxInput) s.resize(kMaxInput);
    return s;
  }

 private:
  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  std::size_t pos(const std::string& s) { return std::uniform_int_distribution<std::size_t>(0, s.size())(rng_); }

  static inline const std::string kAlphabet = "{}[]():,\"'\\ \n\t-+.eE0123456789abcxyzNA#&*!|>%@";
  static inline const std::vector<std::string> kTokens = {
      "1e999", "-1e999", "1e308", "-1e308", "1e39", "NaN", "nan", "Infinity", "-0", "1e-320", "600000", "4109800",
      "18446744073709551616", "-9223372036854775809", "null", "true", "\"\"", "[]", "{}", ",", ":", "\"type\"",
      "\"GeometryCollection\"", "\"geometries\"", "\"Polygon\"", "\"MultiPolygon\"", "\"coordinates\"", "\"bbox\"",
      "\"footprint\"", "\"links\"", "\"child\"", "\"href\"", "\"../../../etc/passwd\"", "\"/proc/self/environ\"",
      "\"/vsistdin/\"", "EMPTY", "POLYGON", "((", "))", "&a [*a, *a, *a]", "<<: *a", "!!binary", "- ", "  ", "\n  - ",
      "\xff\xfe", std::string("\0", 1)};
  std::mt19937_64 rng_;
};

struct Reader {
  std::string name;
  std::string seed;
  std::function<void(const std::string&)> read;  // returns, or throws std::exception
};

class ParsersFuzz : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::fresh_temp_dir("fuzz");
    rlimit cap{kMemoryCap, kMemoryCap};
    ASSERT_EQ(::setrlimit(RLIMIT_AS, &cap), 0);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path file(const std::string& name, const std::string& text) const {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  // The seed, then mutated inputs, through `r`; returns how many it accepted. The seed
  // must be: the mutations start from inputs that get deep into the reader. A bad_alloc
  // (memory beyond the cap) fails, with the input kept for reproducing.
  int fuzz(const Reader& r, std::uint64_t seed) {
    Mutator mutate(seed);
    int accepted = 0;
    double slowest = 0;
    for (int i = 0; i < kInputsPerReader; ++i) {
      const std::string input = i == 0 ? r.seed : mutate(r.seed);
      const auto t0 = std::chrono::steady_clock::now();
      try {
        r.read(input);
        ++accepted;
      } catch (const std::bad_alloc&) {
        const fs::path kept = fs::temp_directory_path() / fmt::format("eo_fuzz_{}_{}.txt", r.name, i);
        std::ofstream(kept, std::ios::binary) << input;
        ADD_FAILURE() << r.name << ": input " << i << " took memory beyond the cap; kept as " << kept.string();
      } catch (const std::exception& e) {
        if (i == 0) ADD_FAILURE() << r.name << ": the seed input is refused: " << e.what();
      }
      slowest = std::max(slowest, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::printf("%s: %d of %d inputs accepted; slowest %.3f s\n", r.name.c_str(), accepted, kInputsPerReader, slowest);
    return accepted;
  }
  fs::path dir_;
};

const std::string kAoiGeoJson = R"({"type": "FeatureCollection", "features": [
  {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates":
    [[[-121.5, 36.0], [-120.0, 36.0], [-120.0, 37.0], [-121.5, 37.0], [-121.5, 36.0]],
     [[-121.0, 36.5], [-120.9, 36.5], [-120.9, 36.6], [-121.0, 36.6], [-121.0, 36.5]]]}},
  {"type": "Feature", "properties": {}, "geometry": {"type": "GeometryCollection", "geometries": [
    {"type": "MultiPolygon", "coordinates": [[[[-119.0, 36.0], [-118.9, 36.0], [-118.9, 36.1], [-119.0, 36.0]]]]}]}}]})";

const std::string kLabelsGeoJson = R"({"type": "FeatureCollection", "features": [
  {"type": "Feature", "properties": {"value": 3.5}, "geometry": {"type": "Polygon", "coordinates":
    [[[-121.5, 36.0], [-120.0, 36.0], [-120.0, 37.0], [-121.5, 37.0], [-121.5, 36.0]]]}},
  {"type": "Feature", "properties": {"value": 1e6}, "geometry": {"type": "MultiPolygon", "coordinates":
    [[[[-119.0, 36.0], [-118.9, 36.0], [-118.9, 36.1], [-119.0, 36.0]]]]}},
  {"type": "Feature", "properties": {"value": -2}, "geometry": {"type": "Point", "coordinates": [-120.5, 36.5]}}]})";

TEST_F(ParsersFuzz, NoReaderCrashesHangsOrTakesUnboundedMemory) {
  // An empty cube of one zone: the labels reader walks all of its input against it.
  CubeSpec spec;
  spec.zones = {parse_zone("10N")};
  spec.modalities = {Modality::s2rgb};
  spec.dim = 4;
  create_cube(dir_ / "cube.zarr", spec);
  const CubeReader cube(dir_ / "cube.zarr");

  const std::vector<Reader> readers = {
      {"aoi-geojson", kAoiGeoJson, [](const std::string& s) { aoi_from_geojson(s, "a", "fuzz"); }},
      {"aoi-wkt",
       "MULTIPOLYGON(((-121.5 36.0, -120.0 36.0, -120.0 37.0, -121.5 37.0, -121.5 36.0), (-121.0 36.5, -120.9 36.5, "
       "-120.9 36.6, -121.0 36.6, -121.0 36.5)), ((-119 36, -118.9 36, -118.9 36.1, -119 36)))",
       [](const std::string& s) { aoi_from_wkt(s, "a", "fuzz"); }},
      {"config-yaml",
       "name: fuzz\noutput: out\ngrid:\n  pixel_size: 40\naois:\n  - name: a\n    wkt: POLYGON((-121.3 36.6, -121.2 36.6, "
       "-121.2 36.7, -121.3 36.6))\ndata:\n  modalities: [s2rgb, s1amp]\n  resampling: {s2rgb: bilinear}\nmodel:\n  preset: "
       "nano\n  reconstruction: 10\npretrain:\n  batch: 8\n  steps: 4\nrun:\n  dtype: float16\nfewshot:\n  sizes: [10, 20]\n",
       [&](const std::string& s) { parse_config(s, "fuzz.yaml", dir_); }},
      {"catalog-jsonl",
       R"({"path": "a.tif", "modality": "s2rgb", "season": 1, "crs": "EPSG:32610", "footprint": [-121.3, 36.6, -121.2, 36.7], "bands": [3, 2, 1], "time": "2021-04-01", "scale": 0.0001, "mask": {"path": "m.tif", "band": 1, "valid": [4, 5]}}
{"path": "NETCDF:\"c.nc\":coherence", "modality": "s1coh", "season": 2, "crs": "EPSG:4326", "footprint": [179.5, 60, 180.5, 61], "units": "linear_power"}
)",
       [&](const std::string& s) { Catalog::load(file("catalog.jsonl", s)); }},
      {"stac-json",
       R"({"type": "FeatureCollection", "features": [
  {"type": "Feature", "stac_version": "1.0.0", "id": "S2B_10SFF_20210704_0_L2A", "collection": "sentinel-2-l2a",
   "bbox": [-121.3, 36.6, -120.1, 37.6], "geometry": {"type": "Polygon", "coordinates": [[[-121.3, 36.6], [-120.1, 36.6], [-120.1, 37.6], [-121.3, 36.6]]]},
   "properties": {"datetime": "2021-07-04T19:03:21Z", "proj:epsg": 32610, "eo:cloud_cover": 3.2, "earthsearch:boa_offset_applied": true},
   "assets": {"red": {"href": "red.tif", "raster:bands": [{"scale": 0.0001, "offset": -0.1}]}, "green": {"href": "green.tif"},
              "blue": {"href": "blue.tif"}, "scl": {"href": "scl.tif"}}, "links": [{"rel": "child", "href": "fuzz.json"}]},
  {"type": "Feature", "stac_version": "1.0.0", "id": "rtc", "collection": "sentinel-1-rtc", "bbox": [179.5, 60, -179.5, 61],
   "properties": {"datetime": "2021-07-04T01:58:13Z", "proj:epsg": 32601}, "assets": {"vv": {"href": "vv.tif"}, "vh": {"href": "vh.tif"}}}]})",
       [&](const std::string& s) { read_stac(file("stac.json", s)); }},
      {"labels-geojson", kLabelsGeoJson, [&](const std::string& s) { read_labels(file("labels.geojson", s), "value", cube, 0.5); }},
  };
  std::uint64_t seed = 32;
  for (const Reader& r : readers) {
    const int accepted = fuzz(r, seed++);
    EXPECT_LT(accepted, kInputsPerReader) << r.name << " refuses nothing";
  }
  EXPECT_LT(peak_rss_mib(), 2048) << "the readers' memory grew with their inputs";
}

}  // namespace
}  // namespace eo
