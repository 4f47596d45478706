// The catalog's spatial index and file format.

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <set>

#include "stages/ingest/catalog.hpp"

namespace eo {
namespace {

TEST(Catalog, SpatialIndexAgreesWithBruteForce) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> lon(-20, 20), lat(-10, 10), size(0.05, 3);
  Catalog c;
  for (int i = 0; i < 2000; ++i) {
    SourceRecord r;
    r.path = "/x/" + std::to_string(i) + ".tif";
    r.modality = i % 2 ? Modality::s1amp : Modality::s2rgb;
    r.season = i % 4;
    const double x = lon(rng), y = lat(rng);
    r.footprint = {x, y, x + size(rng), y + size(rng)};
    r.crs = "EPSG:4326";
    c.add(r);
  }
  for (int q = 0; q < 300; ++q) {
    const double x = lon(rng), y = lat(rng);
    const LonLatBox box{x, y, x + size(rng) / 2, y + size(rng) / 2};
    const Modality m = q % 2 ? Modality::s1amp : Modality::s2rgb;
    std::set<std::string> expect, got;
    for (const auto& r : c.records())
      if (r.modality == m && r.season == q % 4 && r.footprint.intersects(box)) expect.insert(r.path.string());
    for (const auto* r : c.query(m, q % 4, box)) got.insert(r->path.string());
    EXPECT_EQ(got, expect);
  }
}

TEST(Catalog, SaveLoadRoundTripAndRelativePaths) {
  const auto dir = std::filesystem::temp_directory_path() / ("eo_cat_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "sub");
  Catalog c;
  SourceRecord r;
  r.path = dir / "sub" / "a.tif";
  r.modality = Modality::s1coh;
  r.season = 2;
  r.time = season_interval(2021, 2);
  r.crs = "EPSG:4326";
  r.footprint = {1, 2, 3, 4};
  r.bands = {1};
  c.add(r);
  SourceRecord nc = r;
  nc.path = "NETCDF:\"" + (dir / "b.nc").string() + "\":coherence";
  c.add(nc);
  c.save(dir / "catalog.jsonl");
  std::ifstream in(dir / "catalog.jsonl");
  std::string first;
  std::getline(in, first);
  EXPECT_NE(first.find("\"path\":\"sub/a.tif\""), std::string::npos) << first;
  const Catalog back = Catalog::load(dir / "catalog.jsonl");
  ASSERT_EQ(back.records().size(), 2u);
  EXPECT_EQ(back.records()[0].path, dir / "sub" / "a.tif");
  EXPECT_EQ(back.records()[0].time, "2021-06-01/2021-08-31");
  EXPECT_EQ(back.records()[1].path, nc.path);
  EXPECT_EQ(underlying_file(nc.path), dir / "b.nc");
  std::filesystem::remove_all(dir);
}

TEST(Catalog, BadRecordNamesFileAndLine) {
  const auto file = std::filesystem::temp_directory_path() / ("eo_badcat_" + std::to_string(::getpid()) + ".jsonl");
  std::ofstream(file) << R"({"path":"a.tif","modality":"s2rgb","crs":"EPSG:4326","footprint":[0,0,1,1]})" << "\n"
                      << R"({"path":"b.tif","modality":"lidar","crs":"EPSG:4326","footprint":[0,0,1,1]})" << "\n";
  try {
    Catalog::load(file);
    FAIL();
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(file.string() + ":2: bad record"), std::string::npos) << m;
    EXPECT_NE(m.find("lidar"), std::string::npos) << m;
  }
  std::filesystem::remove(file);
  EXPECT_EQ(season_interval(2021, 0), "2020-12-01/2021-02-28");
}

}  // namespace
}  // namespace eo
