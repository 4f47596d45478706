// The Zarr cube as the real readers see it: tiles written by CubeWriter in each dtype,
// read back by zarr-python, xarray and GDAL (tests/python/check_cube.py, run with
// Debian's /usr/bin/python3), with the coordinates and CRS checked through GDAL's
// projection engine.

#include <gtest/gtest.h>

#include <algorithm>
#include <bitset>
#include <cmath>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "pipeline/core/files.hpp"
#include "stages/cube/cube.hpp"
#include "stages/cube/stac_out.hpp"
#include "support/run.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / fmt::format("eo_cube_{}_{}", name, ::getpid());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

CubeSpec spec_of(CubeDtype dtype) {
  CubeSpec spec;
  spec.zones = {Zone{10, false}, Zone{33, true}};
  spec.modalities = {Modality::s2rgb, Modality::s1amp};
  spec.dim = 8;
  spec.dtype = dtype;
  spec.chip_pixels = 112;
  spec.pixel_size = 40;
  spec.provenance = {{"model", "test"}, {"model_hash", "m1"}, {"model_version", "test-m1"}};
  return spec;
}

// Two tiles, one per hemisphere, with every status and a missing modality, and a chip
// of a tile never written; returns what check_cube.py expects.
json write_tiles(const fs::path& cube, const CubeSpec& spec) {
  const CubeWriter writer(cube, spec);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0, 0.3f);
  json chips = json::array();
  const TileId tiles[] = {tile_of(chip_at(Zone{10, false}, {745000, 4100000})),
                          tile_of(chip_at(Zone{33, true}, {500000, 7000000}))};
  for (const TileId& tile : tiles) {
    TileEmbeddings t(tile, spec);
    for (int pos = 0; pos < kChipsPerTile; ++pos) {
      const int y = pos / kChipsPerTileSide, x = pos % kChipsPerTileSide;
      const std::uint8_t status = static_cast<std::uint8_t>(pos % 5 == 4 ? 0 : pos % 5 == 3 ? 1 : pos % 5);
      t.status[static_cast<std::size_t>(pos)] = status;
      json values = json::object();
      for (const std::string& name : spec.embedding_arrays()) {
        // Every seventh embedded chip lacks s1amp (the writer stores what it is given; fused
        // is TileEmbeddings::add's, tested below).
        const bool present = status == kEmbedded && !(name == "s1amp" && pos % 7 == 0);
        if (!present) {
          values[name] = nullptr;
          continue;
        }
        json v = json::array();
        for (int i = 0; i < spec.dim; ++i) {
          const float value = normal(rng) * (pos % 3 == 0 ? 10.0f : 1.0f);  // scales differ per chip
          t.arrays.at(name)(static_cast<std::size_t>(y), static_cast<std::size_t>(x), static_cast<std::size_t>(i)) = value;
          v.push_back(value);
        }
        values[name] = v;
      }
      if (pos % 9 != 0 && pos != 255) continue;  // a sample of the chips is enough for the readers
      const ChipId chip = tile.chip(pos);
      const LonLatBox b = lonlat_bounds(chip.zone, chip.bounds());
      chips.push_back({{"zone", chip.zone.name()}, {"row", chip.row}, {"col", chip.col}, {"status", status},
                       {"values", values}, {"lonlat_bounds", {b.lon0, b.lat0, b.lon1, b.lat1}}});
    }
    writer.write_tile(t);
  }
  // A chip of a tile never written: not processed, no values.
  const ChipId far = chip_at(Zone{10, false}, {300000, 5000000});
  const LonLatBox b = lonlat_bounds(far.zone, far.bounds());
  json none = json::object();
  for (const std::string& name : spec.embedding_arrays()) none[name] = nullptr;
  chips.push_back({{"zone", "10N"}, {"row", far.row}, {"col", far.col}, {"status", 0}, {"values", none},
                   {"lonlat_bounds", {b.lon0, b.lat0, b.lon1, b.lat1}}});
  return chips;
}

TEST(Cube, RealReadersSeeWhatWasWritten) {
  for (CubeDtype dtype : {CubeDtype::float32, CubeDtype::float16, CubeDtype::int8}) {
    SCOPED_TRACE(name_str(dtype));
    const fs::path dir = temp_dir(name_str(dtype)), cube = dir / "cube.zarr";
    const CubeSpec spec = spec_of(dtype);
    create_cube(cube, spec);
    const json expected = {{"cube", cube.string()}, {"dtype", name_str(dtype)}, {"dim", spec.dim},
                           {"arrays", spec.embedding_arrays()}, {"chips", write_tiles(cube, spec)}};
    std::ofstream(dir / "expected.json") << expected.dump();
    const auto r = test::run(fmt::format("/usr/bin/python3 {}/tests/python/check_cube.py {}", EO_SOURCE_DIR,
                                         (dir / "expected.json").string()));
    EXPECT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("CUBE OK"), std::string::npos) << r.output;

    const auto info = test::run("gdalmdiminfo " + cube.string());
    EXPECT_EQ(info.code, 0) << info.output;
    for (const char* name : {"\"s2rgb\"", "\"fused\"", "\"status\"", "EPSG\\\",\\\"32733"})
      EXPECT_NE(info.output.find(name), std::string::npos) << name << " not in gdalmdiminfo's view";

    // A reader of the geoemb: convention, which knows nothing of ours, reads the same.
    const auto geoemb = test::run(fmt::format("/usr/bin/python3 {}/tests/python/read_geoemb.py {}", EO_SOURCE_DIR,
                                              (dir / "expected.json").string()));
    EXPECT_EQ(geoemb.code, 0) << geoemb.output;
    EXPECT_NE(geoemb.output.find("GEOEMB OK"), std::string::npos) << geoemb.output;
    // ... and would say so if the cube held something else.
    json wrong = expected;
    for (json& chip : wrong["chips"])
      if (!chip["values"]["fused"].is_null()) {
        chip["values"]["fused"][0] = chip["values"]["fused"][0].get<double>() + 1.0;
        break;
      }
    std::ofstream(dir / "wrong.json") << wrong.dump();
    EXPECT_EQ(test::run(fmt::format("/usr/bin/python3 {}/tests/python/read_geoemb.py {}", EO_SOURCE_DIR,
                                    (dir / "wrong.json").string())).code, 1);
    fs::remove_all(dir);
  }
}

// The cube's STAC, written from what the cube holds: valid against the STAC 1.0 and
// Embedding extension schemas, every href resolving, its emb: fields those of the cube and
// of the groups' geoemb: attributes (tests/python/check_stac.py); an Item per tile with
// an embedding, and none left for a tile redone as failed.
TEST(Cube, StacDescribesTheCubeAndFollowsIt) {
  for (CubeDtype dtype : {CubeDtype::float32, CubeDtype::int8}) {
    SCOPED_TRACE(name_str(dtype));
    const fs::path dir = temp_dir("stac_" + name_str(dtype)), cube = dir / "cube.zarr";
    CubeSpec spec = spec_of(dtype);
    std::ofstream(dir / "model.json") << "{}";
    std::ofstream(dir / "catalog.jsonl") << "";
    std::ofstream(dir / "scene.tif") << "";
    spec.provenance["model_card"] = (dir / "model.json").string();
    spec.provenance["source_catalog"] = (dir / "catalog.jsonl").string();
    create_cube(cube, spec);
    write_tiles(cube, spec);
    const TileSources sources = [&](const TileId& tile, const json&) {
      return std::vector<StacSource>{{(dir / "scene.tif").string(), "the scene of " + tile.str()},
                                     {"https://example.com/scene.tif", "a remote source"}};
    };
    const auto check = [&] {
      const auto r = test::run(fmt::format("/usr/bin/python3 {}/tests/python/check_stac.py {}", EO_SOURCE_DIR, cube.string()));
      EXPECT_EQ(r.code, 0) << r.output;
      return r.output;
    };
    StacWritten written = write_cube_stac(cube, sources);
    EXPECT_EQ(written.items, 2u);
    EXPECT_NE(check().find("STAC OK 2"), std::string::npos);

    // The check can fail: an Item that says the wrong embedding size.
    const TileId south = tile_of(chip_at(Zone{33, true}, {500000, 7000000}));
    const fs::path item = cube / "stac" / "items" / (south.str() + ".json");
    ASSERT_TRUE(fs::exists(item));
    json doc = json::parse(std::ifstream(item));
    doc["properties"]["proj:code"] = "EPSG:32610";
    std::ofstream(item) << doc.dump();
    EXPECT_NE(test::run(fmt::format("/usr/bin/python3 {}/tests/python/check_stac.py {}", EO_SOURCE_DIR, cube.string())).code, 0);

    // The tile redone and failed: its Item goes, the rest stays true.
    TileEmbeddings failed(south, spec);
    failed.status.assign(kChipsPerTile, kFailed);
    CubeWriter(cube, spec).write_tile(failed);
    written = write_cube_stac(cube, sources);
    EXPECT_EQ(written.items, 1u);
    EXPECT_EQ(written.removed, 1u);
    EXPECT_FALSE(fs::exists(item));
    EXPECT_NE(check().find("STAC OK 1"), std::string::npos);
    fs::remove_all(dir);
  }
}

TEST(Cube, MetadataIsCreatedOnceAndLayoutChangesAreRefused) {
  const fs::path dir = temp_dir("layout"), cube = dir / "cube.zarr";
  CubeSpec spec = spec_of(CubeDtype::float32);
  create_cube(cube, spec);
  const auto first = json::parse(std::ifstream(cube / ".zattrs"));
  // Another config of the same model and layout: provenance updated, creation time kept,
  // zones of the earlier plan kept beside a new one.
  spec.provenance["config_hash"] = "c2";
  spec.zones = {Zone{11, false}};
  create_cube(cube, spec);
  const auto second = json::parse(std::ifstream(cube / ".zattrs"));
  EXPECT_EQ(second["created"], first["created"]);
  EXPECT_EQ(second["config_hash"], "c2");
  EXPECT_EQ(second["zones"], json({"10N", "11N", "33S"}));
  // Another model: never into this cube, whatever the layout.
  spec.provenance = {{"model", "test"}, {"model_hash", "m2"}, {"model_version", "test-m2"}};
  try {
    create_cube(cube, spec);
    ADD_FAILURE() << "another model's embeddings were let into the cube";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("test-m1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("new cube"), std::string::npos) << e.what();
  }
  spec.provenance = spec_of(CubeDtype::float32).provenance;
  // Another embedding size or dtype in the same cube: refused, naming the cube.
  spec.dim = 16;
  try {
    create_cube(cube, spec);
    ADD_FAILURE() << "a cube of another layout was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(cube.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("layout"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Cube, ATileRedoneAsFailedKeepsNoStaleEmbeddings) {
  const fs::path dir = temp_dir("redo"), cube = dir / "cube.zarr";
  const CubeSpec spec = spec_of(CubeDtype::int8);
  create_cube(cube, spec);
  const CubeWriter writer(cube, spec);
  const TileId tile{Zone{10, false}, 73, 10};
  TileEmbeddings t(tile, spec);
  t.status[0] = kEmbedded;
  for (const auto& name : spec.embedding_arrays())
    for (int i = 0; i < spec.dim; ++i) t.arrays.at(name)(0, 0, static_cast<std::size_t>(i)) = 0.5f;
  writer.write_tile(t);
  for (const auto& name : spec.embedding_arrays()) {
    EXPECT_TRUE(fs::exists(writer.chunk_path(tile, name)));
    EXPECT_TRUE(fs::exists(writer.chunk_path(tile, name + "_scale")));
  }
  TileEmbeddings failed(tile, spec);
  failed.status[0] = kFailed;
  writer.write_tile(failed);
  for (const auto& name : spec.embedding_arrays()) {
    EXPECT_FALSE(fs::exists(writer.chunk_path(tile, name))) << name;
    EXPECT_FALSE(fs::exists(writer.chunk_path(tile, name + "_scale"))) << name;
  }
  EXPECT_TRUE(fs::exists(writer.chunk_path(tile, "status")));
  // A chunk a killed writer left under its temporary name is removed; real chunks stay.
  std::ofstream(cube / "10N" / "status" / (std::string(kTemporaryPrefix) + "123.73.10")) << "torn";
  EXPECT_EQ(remove_stale_temporaries(cube, true), 1);
  EXPECT_TRUE(fs::exists(writer.chunk_path(tile, "status")));
  fs::remove_all(dir);
}

// What made a tile: clear-observation counts per chip, modality and season as arrays
// (y, x, season) beside the embeddings, and the tile's scenes in a provenance file that
// zarr readers step over.
TEST(Cube, ClearCountsAndProvenanceAreForTheRealReaders) {
  const fs::path dir = temp_dir("provenance"), cube = dir / "cube.zarr";
  const CubeSpec spec = spec_of(CubeDtype::float32);
  create_cube(cube, spec);
  const TileId tile = tile_of(chip_at(Zone{10, false}, {745000, 4100000}));
  ChipBatch row;
  row.tile = tile;
  row.chips = {tile.chip(17), tile.chip(18)};
  ModalityChips s2{Modality::s2rgb, 12, {}, {}, {0.5f, 1, 2, 3, 4.25f, 5, 6, 7}, {}};
  s2.observations = {{}, {}, {{"S2B_10SGF_20210704_0_L2A", "2021-07-04T18:59:21Z"}, {"S2A_10SGF_20210719_0_L2A", "2021-07-19T18:59:19Z"}}, {}};
  row.modalities.push_back(s2);
  TileEmbeddings t(tile, spec);
  t.status[17] = t.status[18] = kEmbedded;
  t.add_inputs(row);
  const CubeWriter writer(cube, spec);
  writer.write_tile(t);
  const ChipId c18 = tile.chip(18);
  const auto r = test::run(fmt::format(
      "/usr/bin/python3 -c \"import json, xarray as xr, zarr\n"
      "ds = xr.open_zarr('{0}', group='10N')\n"
      "a = ds['s2rgb_clear']\n"
      "print('dims', a.dims, a.shape[2])\n"
      "print('chip', a.isel(y={1}, x={2}).values.tolist(), bool(a.isel(y={1}, x={2} + 1).isnull().all()))\n"
      "print('arrays', sorted(zarr.open_group('{0}', mode='r')['10N'].array_keys()))\n"
      "p = json.load(open('{0}/10N/provenance/{3}.json'))\n"
      "print('scenes', [o['id'] for o in p['modalities']['s2rgb']['JJA']], p['tile'])\"",
      cube.string(), c18.row, c18.col, tile.str()));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("dims ('y', 'x', 'season') 4"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("chip [4.25, 5.0, 6.0, 7.0] True"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'s2rgb_clear'"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("provenance'"), std::string::npos) << "the provenance folder is not an array: " << r.output;
  EXPECT_NE(r.output.find("scenes ['S2B_10SGF_20210704_0_L2A', 'S2A_10SGF_20210719_0_L2A'] " + tile.str()), std::string::npos) << r.output;
  // A failed redo keeps neither counts nor provenance.
  TileEmbeddings failed(tile, spec);
  failed.fail(std::bitset<kChipsPerTile>().set(17).set(18));
  writer.write_tile(failed);
  EXPECT_FALSE(fs::exists(writer.chunk_path(tile, "s2rgb_clear")));
  EXPECT_FALSE(fs::exists(writer.provenance_path(tile)));
  fs::remove_all(dir);
}

// A row's embeddings placed in the tile: each modality where the chip has it, `fused` the
// mean of those it has (worked here by hand), no data where it has none; a failed tile
// keeps nothing and marks its planned chips.
TEST(TileEmbeddings, PlacesChipsAndFusesTheModalitiesTheyHave) {
  CubeSpec spec = spec_of(CubeDtype::float32);
  spec.dim = 2;
  const TileId tile{Zone{10, false}, 73, 10};
  TileEmbeddings t(tile, spec);
  const float nan = std::nanf("");
  const std::vector<ChipId> chips = {tile.chip(17), tile.chip(0), tile.chip(255)};
  const std::map<Modality, std::vector<float>> emb = {{Modality::s2rgb, {1, 2, 5, 6, nan, nan}},
                                                      {Modality::s1amp, {3, 8, nan, nan, nan, nan}}};
  t.add(chips, emb);
  const auto& s2 = t.arrays.at("s2rgb");
  const auto& s1 = t.arrays.at("s1amp");
  const auto& fused = t.arrays.at("fused");
  EXPECT_EQ(t.status[17], kEmbedded);
  EXPECT_EQ(s2(1, 1, 0), 1.0f);
  EXPECT_EQ(s1(1, 1, 1), 8.0f);
  EXPECT_EQ(fused(1, 1, 0), 2.0f);  // (1 + 3) / 2
  EXPECT_EQ(fused(1, 1, 1), 5.0f);  // (2 + 8) / 2
  EXPECT_EQ(t.status[0], kEmbedded);
  EXPECT_EQ(fused(0, 0, 0), 5.0f) << "one modality: fused is that modality";
  EXPECT_TRUE(std::isnan(s1(0, 0, 0)));
  EXPECT_EQ(t.status[255], kNoData);
  EXPECT_TRUE(std::isnan(fused(15, 15, 0)));
  EXPECT_EQ(t.status[1], kNotProcessed) << "a chip not in the row is left alone";

  std::bitset<kChipsPerTile> planned;
  planned.set(17).set(0).set(255);
  t.fail(planned);
  EXPECT_EQ(t.status[17], kFailed);
  EXPECT_EQ(t.status[255], kFailed);
  EXPECT_EQ(t.status[1], kNotProcessed);
  for (const auto& [name, a] : t.arrays)
    EXPECT_TRUE(std::all_of(a.begin(), a.end(), [](float v) { return std::isnan(v); })) << name << " kept values";
}

TEST(Cube, HalfPrecisionRoundsToNearestEven) {
  EXPECT_EQ(float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half(-2.0f), 0xc000);
  EXPECT_EQ(float_to_half(0.1f), 0x2e66);
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);         // rounds up to infinity
  EXPECT_EQ(float_to_half(6.103515625e-05f), 0x0400);  // smallest normal
  EXPECT_EQ(float_to_half(5.9604645e-08f), 0x0001);    // smallest subnormal
  EXPECT_EQ(float_to_half(2.9802322e-08f), 0x0000);    // half of it: ties to even, 0
  EXPECT_EQ(float_to_half(1.0f + 1.0f / 2048), 0x3c00);  // a tie: to even
  EXPECT_EQ(float_to_half(1.0f + 3.0f / 2048), 0x3c02);  // a tie: to even, up
  EXPECT_EQ(float_to_half(std::nanf("")) & 0x7c00, 0x7c00);
  EXPECT_NE(float_to_half(std::nanf("")) & 0x03ff, 0);
}

}  // namespace
}  // namespace eo
