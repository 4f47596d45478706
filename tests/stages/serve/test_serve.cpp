// `eo-pipeline serve`'s API (issue 30) over a cube written here with known contents
// (tests/support/small_cube.hpp), through a real HTTP client (cpp-httplib): a chip by id
// and by place, with its status and footprint; the planted cluster found from one of its
// chips, exactly as the exact search finds it; the map's tiles, read back by GDAL's PNG
// driver, and their cache; a map trained on labels, the same as `fewshot --labels`'s code
// gives, exported and read back by GDAL; questions that cannot be asked (a bad id, a chip
// the cube lacks, malformed JSON, a huge body, a path that climbs out) answered 4xx with
// a message; two clients at once; the page and Leaflet served; and the command itself
// started, asked and stopped by SIGTERM.

#include <gdal_priv.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include "pipeline/core/utm.hpp"
#include "stages/chipstore/chipstore.hpp"
#include "stages/downstream/fewshot.hpp"
#include "stages/downstream/index.hpp"
#include "stages/downstream/labels.hpp"
#include "stages/serve/server.hpp"
#include "support/background.hpp"
#include "support/read_file.hpp"
#include "support/small_cube.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// The pixel that holds a point in the XYZ tile of zoom z that holds it (Web Mercator).
struct TilePixel {
  int z = 0, x = 0, y = 0, px = 0, py = 0;
  std::string path(const std::string& layer) const { return fmt::format("/tiles/{}/{}/{}/{}.png", layer, z, x, y); }
};
TilePixel tile_pixel(LonLat p, int z) {
  const double n = std::ldexp(1.0, z);
  const double x = (p.lon + 180) / 360 * n;
  const double y = (1 - std::asinh(std::tan(p.lat * M_PI / 180)) / M_PI) / 2 * n;
  return {z, static_cast<int>(x), static_cast<int>(y), static_cast<int>((x - std::floor(x)) * 256),
          static_cast<int>((y - std::floor(y)) * 256)};
}
LonLat centre_of(const ChipId& c) { return utm_inverse(c.zone.number, c.zone.south, c.centre()); }

// A PNG's pixels as GDAL's PNG driver reads them: [band][row][col], RGBA (cairo writes an
// opaque tile as RGB: its alpha is then 255).
std::vector<std::uint8_t> decode_png(const std::string& png) {
  const std::string name = fmt::format("/vsimem/tile_{}.png", reinterpret_cast<std::uintptr_t>(&png));
  VSIFCloseL(VSIFileFromMemBuffer(name.c_str(), reinterpret_cast<GByte*>(const_cast<char*>(png.data())), png.size(), FALSE));
  GDALAllRegister();
  std::unique_ptr<GDALDataset> ds(GDALDataset::Open(name.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
  std::vector<std::uint8_t> px;
  if (ds) {
    const int n = ds->GetRasterCount(), w = ds->GetRasterXSize(), h = ds->GetRasterYSize();
    px.assign(4 * static_cast<std::size_t>(w) * static_cast<std::size_t>(h), 255);
    if ((n != 3 && n != 4) || ds->RasterIO(GF_Read, 0, 0, w, h, px.data(), w, h, GDT_Byte, n, nullptr, 0, 0, 0) != CE_None)
      px.clear();
  }
  ds.reset();
  VSIUnlink(name.c_str());
  return px;
}
std::array<int, 4> rgba_at(const std::vector<std::uint8_t>& px, int col, int row) {
  std::array<int, 4> out{};
  for (std::size_t b = 0; b < 4; ++b) out[b] = px[b * 256 * 256 + static_cast<std::size_t>(row) * 256 + static_cast<std::size_t>(col)];
  return out;
}

// A request sent as written, over a socket: no client to tidy its path first.
std::string raw_get(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string answer;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) answer.append(buffer, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return answer;
}

class Serve : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / fmt::format("eo_serve_{}", ::getpid()));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    planted_ = test::write_cube(*dir_ / "cube.zarr", CubeDtype::float32);
    // The cluster's first chip's tile rewritten with what it was made from: one summer
    // scene, and 3.5 clear summer observations on that chip.
    const CubeReader reader(*dir_ / "cube.zarr");
    TileEmbeddings t = reader.read_tile(tile_of(planted_.cluster[0]));
    t.provenance = {{"modalities", {{"s2rgb", {{"JJA", {{{"id", "S2B_10SGF_20210704_0_L2A"}, {"time", "2021-07-04T18:59:19Z"}}}}}}}}};
    const int k = index_in_tile(planted_.cluster[0]);
    t.clear.at("s2rgb_clear")(static_cast<std::size_t>(k / kChipsPerTileSide), static_cast<std::size_t>(k % kChipsPerTileSide), 2) = 3.5f;
    CubeWriter(*dir_ / "cube.zarr", reader.spec()).write_tile(t);
    write_chip_store(tile_of(planted_.cluster[0]), *dir_ / "out" / "chips");
    explorer_ = new Explorer(*dir_ / "cube.zarr", {2, FewshotConfig{}, *dir_ / "out"});
    server_ = new ExplorerServer(*explorer_, {"127.0.0.1", 0, 64 * 1024});
    port_ = server_->bind();
    thread_ = new std::thread([] { server_->serve(); });
  }
  static void TearDownTestSuite() {
    server_->stop();
    thread_->join();
    delete thread_;
    delete server_;
    delete explorer_;
    fs::remove_all(*dir_);
    delete dir_;
  }
  // The tile's chip store as `prepare` leaves it: s2rgb of 8 x 8 pixels, summer only (the
  // other seasons no data), red growing eastwards and green southwards.
  static void write_chip_store(const TileId& tile, const fs::path& dir) {
    constexpr int size = 8;
    ChipBatch batch;
    batch.tile = tile;
    batch.size = size;
    ModalityChips mc{Modality::s2rgb, info(Modality::s2rgb).channels(), {}, {}, {}, {}};
    for (int k = 0; k < kChipsPerTile; ++k) {
      batch.chips.push_back(tile.chip(k));
      for (int c = 0; c < mc.channels; ++c)
        for (int y = 0; y < size; ++y)
          for (int x = 0; x < size; ++x)
            mc.values.push_back(c / 3 != 2 ? std::nanf("") : c % 3 == 0 ? 0.05f * static_cast<float>(x) : c % 3 == 1 ? 0.05f * static_cast<float>(y) : 0.2f);
      for (int c = 0; c < mc.channels; ++c) mc.valid.push_back(c / 3 == 2 ? 1.0f : 0.0f);
      for (int season = 0; season < kSeasons; ++season) mc.clear.push_back(season == 2 ? 1.0f : 0.0f);
    }
    mc.observations.assign(kSeasons, {});
    batch.modalities.push_back(std::move(mc));
    ChipStoreWriter w(dir / (tile.str() + ".h5"), {tile, kChipsPerTile, size, 560, {Modality::s2rgb}, {}});
    w.append(batch, std::vector<bool>(kChipsPerTile, true));
    w.commit();
  }
  static httplib::Client client() { return httplib::Client("127.0.0.1", port_); }
  // A GET's status and body as JSON (null when it is not JSON).
  static std::pair<int, json> get(const std::string& path) {
    auto c = client();
    const auto r = c.Get(path);
    if (!r) return {-1, nullptr};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  static std::pair<int, json> post(const std::string& path, const std::string& body) {
    auto c = client();
    const auto r = c.Post(path, body, "application/json");
    if (!r) return {-1, nullptr};
    return {r->status, json::parse(r->body, nullptr, false)};
  }

  static fs::path* dir_;
  static test::Planted planted_;
  static Explorer* explorer_;
  static ExplorerServer* server_;
  static std::thread* thread_;
  static int port_;
};
fs::path* Serve::dir_ = nullptr;
test::Planted Serve::planted_;
Explorer* Serve::explorer_ = nullptr;
ExplorerServer* Serve::server_ = nullptr;
std::thread* Serve::thread_ = nullptr;
int Serve::port_ = 0;

TEST_F(Serve, TheCubeAndAChipByIdAndByPlace) {
  const auto [status, cube] = get("/api/cube");
  ASSERT_EQ(status, 200) << cube.dump();
  EXPECT_EQ(cube["zones"], json({"10N", "11N"}));
  EXPECT_EQ(cube["dim"], test::kDim);
  EXPECT_EQ(cube["modalities"], json({"s2rgb", "s1amp"}));
  // 4 tiles of 256 chips, one in 11 not embedded (positions 5, 16, ..., 247: 23 a tile).
  EXPECT_EQ(cube["embedded_chips"], 4 * (256 - 23));

  const ChipId chip = planted_.cluster[0];
  const LonLat centre = utm_inverse(chip.zone.number, chip.zone.south, chip.centre());
  const auto [by_id_status, by_id] = get("/api/chip?id=" + chip.str());
  ASSERT_EQ(by_id_status, 200) << by_id.dump();
  EXPECT_EQ(by_id["id"], chip.str());
  EXPECT_EQ(by_id["status"], "embedded");
  EXPECT_NEAR(by_id["lonlat"][0].get<double>(), centre.lon, 1e-9);
  EXPECT_NEAR(by_id["lonlat"][1].get<double>(), centre.lat, 1e-9);
  ASSERT_EQ(by_id["footprint"].size(), 5u);
  EXPECT_EQ(by_id["made_from"]["s2rgb"]["observations"]["JJA"][0]["id"], "S2B_10SGF_20210704_0_L2A");
  EXPECT_EQ(by_id["made_from"]["s2rgb"]["clear_per_season"], json({nullptr, nullptr, 3.5, nullptr}));
  const auto [by_place_status, by_place] = get(fmt::format("/api/chip?lon={:.9f}&lat={:.9f}", centre.lon, centre.lat));
  ASSERT_EQ(by_place_status, 200) << by_place.dump();
  EXPECT_EQ(by_place["id"], chip.str());
  // A chip of the grid the run left without embeddings says so.
  const ChipId hole = TileId{Zone{10, false}, 72, 8}.chip(5);
  EXPECT_EQ(get("/api/chip?id=" + hole.str()).second["status"], "not processed");
}

TEST_F(Serve, ThePlantedClusterIsFoundFromOneOfItsChipsAsTheExactSearchFindsIt) {
  const ChipId chip = planted_.cluster[0];
  const auto [status, found] = get(fmt::format("/api/similar?id={}&k={}", chip.str(), test::kCluster));
  ASSERT_EQ(status, 200) << found.dump();
  EXPECT_EQ(found["search"], "exact");
  std::set<std::string> hits, cluster;
  for (const json& h : found["hits"]) hits.insert(h["id"].get<std::string>());
  for (const ChipId& c : planted_.cluster) cluster.insert(c.str());
  EXPECT_EQ(hits, cluster);
  EXPECT_EQ(found["hits"][0]["id"], chip.str());
  EXPECT_NEAR(found["hits"][0]["score"].get<double>(), 1.0, 1e-5);
  // The same through the library's exact search, and the same question as a POST.
  const CubeReader cube(*dir_ / "cube.zarr");
  const SearchSpace space = SearchSpace::of(cube.spec(), cube.root(), "fused");
  const auto exact = exact_search(cube, space, {query_vector(cube, space, {{chip}, {}})}, test::kCluster, 1).at(0);
  ASSERT_EQ(exact.size(), found["hits"].size());
  for (std::size_t i = 0; i < exact.size(); ++i) {
    EXPECT_EQ(found["hits"][i]["id"], exact[i].chip.str());
    EXPECT_FLOAT_EQ(found["hits"][i]["score"].get<float>(), exact[i].score);
  }
  const auto [post_status, posted] = post("/api/similar", json{{"positives", {chip.str()}}, {"k", test::kCluster}}.dump());
  ASSERT_EQ(post_status, 200) << posted.dump();
  EXPECT_EQ(posted["hits"], found["hits"]);
}

TEST_F(Serve, QuestionsThatCannotBeAskedGetA4xxThatSaysWhy) {
  const auto says = [](const std::pair<int, json>& r, int status, const std::string& words) {
    EXPECT_EQ(r.first, status) << r.second.dump();
    ASSERT_TRUE(r.second.is_object() && r.second.contains("error")) << r.second.dump();
    EXPECT_NE(r.second["error"].get<std::string>().find(words), std::string::npos) << r.second.dump();
  };
  says(get("/api/chip?id=nonsense"), 400, "id 'nonsense'");
  says(get("/api/chip?id=33N_0001_0001"), 404, "chip 33N_0001_0001: zone 33N is not in");
  says(get("/api/chip?lon=abc&lat=1"), 400, "lon 'abc': not a number");
  says(get("/api/chip?lon=20&lat=45"), 404, "no embedded chip there");
  says(get("/api/chip"), 400, "say which chip");
  const ChipId hole = TileId{Zone{10, false}, 72, 8}.chip(5);
  says(get("/api/similar?id=" + hole.str()), 404, fmt::format("chip {} is not an embedded chip", hole.str()));
  says(get("/api/similar?id=" + planted_.cluster[0].str() + "&k=0"), 400, "k 0: a whole number from 1 to 1000");
  says(get("/api/similar?id=" + planted_.cluster[0].str() + "&k=ten"), 400, "k 'ten'");
  says(get("/api/similar?id=" + planted_.cluster[0].str() + "&space=s1coh"), 400, "has no s1coh embeddings");
  says(post("/api/similar", "{\"positives\": [\"10N_1152_0128\""), 400, "not a JSON object");
  says(post("/api/similar", "{\"positives\": [42]}"), 400, "positives: 42 is not a chip id");
  says(post("/api/similar", std::string(100 * 1024, ' ')), 413, "too large");
  says(get("/nothing/here"), 404, "no such path: /nothing/here");
  // A path that climbs out of the server's tree is not followed anywhere.
  const auto climb = get("/api/../../../../etc/passwd");
  EXPECT_GE(climb.first, 400);
  EXPECT_LT(climb.first, 500);
  EXPECT_EQ(climb.second.dump().find("root:"), std::string::npos);
}

TEST_F(Serve, TwoClientsAtOnceGetTheSameAnswers) {
  const std::string path = fmt::format("/api/similar?id={}&k=5", planted_.cluster[1].str());
  const json alone = get(path).second;
  ASSERT_TRUE(alone.contains("hits")) << alone.dump();
  std::vector<json> a, b;
  std::thread first([&] {
    for (int i = 0; i < 10; ++i) a.push_back(get(path).second);
  });
  std::thread second([&] {
    for (int i = 0; i < 10; ++i) b.push_back(get(fmt::format("/api/chip?id={}", planted_.cluster[2].str())).second);
  });
  first.join();
  second.join();
  const auto hits = [](json r) { return r["hits"]; };  // each search has its own heat layer
  for (const json& r : a) EXPECT_EQ(hits(r), hits(alone));
  for (const json& r : b) EXPECT_EQ(r["id"], planted_.cluster[2].str());
}

TEST_F(Serve, AChipsInputCompositeComesFromItsChipStoreSeasonBySeasonAndOnTheMap) {
  const ChipId chip = planted_.cluster[0];
  EXPECT_EQ(get("/api/chip?id=" + chip.str()).second["images"], json({"s2rgb"}));
  auto cl = client();
  const auto r = cl.Get("/api/chip/image?id=" + chip.str() + "&modality=s2rgb");
  ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
  EXPECT_EQ(r->get_header_value("Content-Type"), "image/png");
  // Read back by GDAL: four seasons of 8 x 8 pixels side by side; summer (the third) in
  // colour, red growing eastwards, green southwards; the others transparent.
  const std::string name = "/vsimem/chip_image.png";
  VSIFCloseL(VSIFileFromMemBuffer(name.c_str(), reinterpret_cast<GByte*>(const_cast<char*>(r->body.data())), r->body.size(), FALSE));
  GDALAllRegister();
  std::unique_ptr<GDALDataset> ds(GDALDataset::Open(name.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
  ASSERT_TRUE(ds);
  ASSERT_EQ(ds->GetRasterXSize(), 32);
  ASSERT_EQ(ds->GetRasterYSize(), 8);
  ASSERT_EQ(ds->GetRasterCount(), 4);
  std::vector<std::uint8_t> px(4 * 32 * 8);
  ASSERT_EQ(ds->RasterIO(GF_Read, 0, 0, 32, 8, px.data(), 32, 8, GDT_Byte, 4, nullptr, 0, 0, 0), CE_None);
  ds.reset();
  VSIUnlink(name.c_str());
  const auto at = [&](int band, int x, int y) { return px[static_cast<std::size_t>(band * 256 + y * 32 + x)]; };
  EXPECT_EQ(at(3, 3, 3), 0);   // winter: no data
  EXPECT_EQ(at(3, 19, 3), 255);
  EXPECT_LT(at(0, 16, 4), at(0, 23, 4));
  EXPECT_LT(at(1, 20, 0), at(1, 20, 7));
  EXPECT_EQ(at(0, 16, 0), at(0, 16, 7));

  // The same composite on the map (layer rgb-2, summer): opaque over the chip, red growing
  // eastwards across it; nothing in winter, nothing over a chip of a tile without a store.
  const auto map_pixel = [&](const std::string& layer, const ChipId& c, double fx) {
    const Box b = c.bounds();
    const TilePixel at = tile_pixel(utm_inverse(c.zone.number, c.zone.south, {b.e0 + fx * (b.e1 - b.e0), c.centre().n}), 15);
    auto client_ = client();
    const auto tile = client_.Get(at.path(layer));
    EXPECT_TRUE(tile && tile->status == 200) << at.path(layer);
    const auto pixels = decode_png(tile ? tile->body : "");
    return pixels.empty() ? std::array<int, 4>{-1, -1, -1, -1} : rgba_at(pixels, at.px, at.py);
  };
  const auto west = map_pixel("rgb-2", chip, 0.1), east = map_pixel("rgb-2", chip, 0.9);
  EXPECT_EQ(west[3], 255);
  EXPECT_EQ(east[3], 255);
  EXPECT_LT(west[0], east[0]);
  EXPECT_EQ(map_pixel("rgb-0", chip, 0.5)[3], 0);
  EXPECT_EQ(map_pixel("rgb-2", planted_.cluster[5], 0.5)[3], 0);

  const auto [absent, why] = get("/api/chip/image?id=" + planted_.cluster[5].str());
  EXPECT_EQ(absent, 404);
  EXPECT_NE(why.value("error", "").find("not in a chip store"), std::string::npos) << why.dump();
  EXPECT_EQ(get("/api/chip?id=" + planted_.cluster[5].str()).second["images"], json::array());
  EXPECT_EQ(get("/api/chip/image?id=" + chip.str() + "&modality=s1amp").first, 404);
  EXPECT_EQ(get("/api/chip/image?id=" + chip.str() + "&modality=radar").first, 400);
}

// Embedded chips that are not of the planted cluster, spread over the cube's four tiles.
std::vector<ChipId> plain_chips(const std::vector<ChipId>& cluster, std::size_t n) {
  std::vector<ChipId> out;
  const TileId tiles[] = {TileId{Zone{10, false}, 72, 8}, TileId{Zone{10, false}, 72, 9}, TileId{Zone{11, false}, 72, 1},
                          TileId{Zone{11, false}, 73, 1}};
  for (int pos = 0; pos < kChipsPerTile && out.size() < n; pos += 17)
    for (const TileId& tile : tiles) {
      const ChipId c = tile.chip(pos);
      if (out.size() < n && pos % 11 != 5 && std::find(cluster.begin(), cluster.end(), c) == cluster.end()) out.push_back(c);
    }
  return out;
}

TEST_F(Serve, TilesShowEachChipInItsColourTheGridAndAreKeptOnDisk) {
  const json cube = get("/api/cube").second;
  ASSERT_TRUE(cube.contains("layers")) << cube.dump();
  ASSERT_EQ(cube["layers"]["pca"]["shares"].size(), 3u);
  const auto pixel = [&](const std::string& layer, const ChipId& c) {
    const TilePixel at = tile_pixel(centre_of(c), 12);
    auto cl = client();
    const auto r = cl.Get(at.path(layer));
    EXPECT_TRUE(r && r->status == 200 && r->get_header_value("Content-Type") == "image/png") << at.path(layer);
    const auto px = decode_png(r ? r->body : "");
    return px.size() == 4u * 256 * 256 ? rgba_at(px, at.px, at.py) : std::array<int, 4>{-1, -1, -1, -1};
  };
  // The planted cluster's chips are one colour (their embeddings are one vector, nearly);
  // the other chips many; a chip without embeddings none.
  const auto a = pixel("pca", planted_.cluster[0]), b = pixel("pca", planted_.cluster[5]);
  EXPECT_EQ(a[3], 255);
  for (std::size_t k = 0; k < 3; ++k) EXPECT_NEAR(a[k], b[k], 3) << k;
  std::set<std::array<int, 4>> colours;
  for (const ChipId& c : plain_chips(planted_.cluster, 10)) colours.insert(pixel("pca", c));
  EXPECT_GE(colours.size(), 5u);
  const ChipId hole = TileId{Zone{10, false}, 72, 8}.chip(5);
  EXPECT_EQ(pixel("pca", hole)[3], 0);
  // Status: embedded chips green; the hole, never processed, nothing.
  const auto embedded = pixel("status", planted_.cluster[0]);
  EXPECT_GT(embedded[3], 0);
  EXPECT_GT(embedded[1], embedded[0]);
  EXPECT_EQ(pixel("status", hole)[3], 0);

  // The grid: nothing at a chip's centre, a line on its western edge.
  const ChipId c = planted_.cluster[0];
  EXPECT_EQ(pixel("grid", c)[3], 0);
  const TilePixel edge = tile_pixel(utm_inverse(c.zone.number, c.zone.south, {c.bounds().e0, c.centre().n}), 12);
  auto cl = client();
  const auto grid = decode_png(cl.Get(edge.path("grid"))->body);
  ASSERT_EQ(grid.size(), 4u * 256 * 256);
  int line = 0;
  for (int dx = -1; dx <= 1; ++dx) line = std::max(line, rgba_at(grid, std::clamp(edge.px + dx, 0, 255), edge.py)[3]);
  EXPECT_GT(line, 0);

  // Kept on disk: the same bytes from the cache file and from a second request.
  const TilePixel at = tile_pixel(centre_of(c), 12);
  const std::string first = cl.Get(at.path("pca"))->body;
  std::vector<fs::path> cached;
  for (const auto& e : fs::recursive_directory_iterator(*dir_ / "out" / "serve" / "tile-cache"))
    if (e.path().string().ends_with(fmt::format("/pca/12/{}/{}.png", at.x, at.y))) cached.push_back(e.path());
  ASSERT_EQ(cached.size(), 1u);
  EXPECT_EQ(test::read_file(cached[0]), first);
  EXPECT_EQ(cl.Get(at.path("pca"))->body, first);
}

TEST_F(Serve, ASearchsHeatLayerIsBrightOnTheChipsMostLikeTheExample) {
  const auto [status, found] = get(fmt::format("/api/similar?id={}&k=5", planted_.cluster[0].str()));
  ASSERT_EQ(status, 200) << found.dump();
  const std::string layer = found["heat"]["layer"];
  EXPECT_EQ(found["hits"][0]["footprint"].size(), 5u);
  auto cl = client();
  const auto alpha = [&](const ChipId& c) {
    const TilePixel at = tile_pixel(centre_of(c), 12);
    const auto px = decode_png(cl.Get(at.path(layer))->body);
    return px.empty() ? -1 : rgba_at(px, at.px, at.py)[3];
  };
  EXPECT_GT(alpha(planted_.cluster[3]), 200);
  int transparent = 0;
  for (const ChipId& c : plain_chips(planted_.cluster, 20)) transparent += alpha(c) == 0;
  EXPECT_GE(transparent, 4);  // below the median score: no heat
}

TEST_F(Serve, AMapTrainedOnLabelsIsFewshotsMapAndItsExportReadsBack) {
  // The planted cluster's chips are the class (1), as many other chips are not (0).
  json features = json::array();
  const auto label = [&](const ChipId& c, int value) {
    const LonLat p = centre_of(c);
    features.push_back({{"type", "Feature"}, {"geometry", {{"type", "Point"}, {"coordinates", {p.lon, p.lat}}}},
                        {"properties", {{"planted", value}, {"chip", c.str()}}}});
  };
  for (const ChipId& c : planted_.cluster) label(c, 1);
  const std::vector<ChipId> others = plain_chips(planted_.cluster, 12);
  for (const ChipId& c : others) label(c, 0);
  const json labels = {{"type", "FeatureCollection"}, {"features", features}};
  const auto [status, trained] = post("/api/train", json{{"labels", labels}, {"property", "planted"}}.dump());
  ASSERT_EQ(status, 200) << trained.dump();
  EXPECT_EQ(trained["labelled_chips"], 24);
  EXPECT_EQ(trained["train"].get<int>() + trained["validation"].get<int>() + trained["test"].get<int>(), 24);
  ASSERT_FALSE(trained["score"]["accuracy"].is_null()) << trained.dump();
  EXPECT_GE(trained["score"]["accuracy"].get<double>(), 0.75) << trained.dump();

  const auto [exported_status, exported] =
      post("/api/export", json{{"labels", labels}, {"name", "planted"}, {"map", trained["layer"]}}.dump());
  ASSERT_EQ(exported_status, 200) << exported.dump();
  const fs::path out = *dir_ / "out" / "serve";
  std::set<std::string> files;
  for (const json& f : exported["files"]) files.insert(f.get<std::string>());
  for (const char* name : {"labels-planted.geojson", "map-planted_10N.tif", "map-planted_10N.png", "map-planted_11N.tif"})
    EXPECT_TRUE(files.count((out / name).string())) << name << " " << exported.dump();
  // The labels read back as they were sent, from disk and over HTTP.
  EXPECT_EQ(json::parse(test::read_file(out / "labels-planted.geojson")), labels);
  auto cl = client();
  const auto download = cl.Get("/files/labels-planted.geojson");
  ASSERT_TRUE(download && download->status == 200);
  EXPECT_EQ(json::parse(download->body), labels);

  // The exported map, read by GDAL, is what `fewshot --labels`'s code makes of the same
  // labels read from the exported file: one code path.
  const CubeReader cube(*dir_ / "cube.zarr");
  const UserLabels read = read_labels(out / "labels-planted.geojson", "planted", cube, 0.5);
  std::vector<ChipSample> everywhere = cube_samples(cube), labelled;
  Rows rows;
  for (const ChipSample& s : everywhere) {
    rows.push_back(s.features.at("fused"));
    if (read.chips.count(s.chip)) labelled.push_back(s), labelled.back().targets = read.chips.at(s.chip);
  }
  const FewshotConfig fewshot;
  const auto map = fit_label_map(fewshot, labelled, 0, split_samples(fewshot, labelled), rows, 0.5, 2);
  ASSERT_TRUE(map);
  std::map<ChipId, float> expected;
  for (std::size_t i = 0; i < everywhere.size(); ++i) expected[everywhere[i].chip] = map->predicted[i];
  GDALAllRegister();
  std::size_t compared = 0;
  for (const char* zone : {"10N", "11N"}) {
    const fs::path tif = out / fmt::format("map-planted_{}.tif", zone);
    std::unique_ptr<GDALDataset> ds(GDALDataset::Open(tif.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
    ASSERT_TRUE(ds) << tif;
    double gt[6];
    ASSERT_EQ(ds->GetGeoTransform(gt), CE_None);
    for (const auto& [chip, value] : expected) {
      if (chip.zone.name() != zone) continue;
      const int col = static_cast<int>(std::floor((chip.centre().e - gt[0]) / gt[1]));
      const int row = static_cast<int>(std::floor((chip.centre().n - gt[3]) / gt[5]));
      float v = 0;
      ASSERT_EQ(ds->GetRasterBand(1)->RasterIO(GF_Read, col, row, 1, 1, &v, 1, 1, GDT_Float32, 0, 0), CE_None);
      EXPECT_FLOAT_EQ(v, value) << chip.str();
      ++compared;
    }
  }
  EXPECT_EQ(compared, everywhere.size());
  // And it learnt the class: the cluster's mean well above the others'.
  double in = 0, out_of = 0;
  for (const ChipId& c : planted_.cluster) in += expected.at(c) / static_cast<double>(planted_.cluster.size());
  for (const ChipId& c : others) out_of += expected.at(c) / static_cast<double>(others.size());
  EXPECT_GT(in - out_of, 0.4) << in << " " << out_of;
}

TEST_F(Serve, LabelsThatCannotMakeAMapAreRefusedSayingWhy) {
  const auto says = [](const std::pair<int, json>& r, int status, const std::string& words) {
    EXPECT_EQ(r.first, status) << r.second.dump();
    ASSERT_TRUE(r.second.is_object() && r.second.contains("error")) << r.second.dump();
    EXPECT_NE(r.second["error"].get<std::string>().find(words), std::string::npos) << r.second.dump();
  };
  const auto labels = [&](std::size_t n, const std::function<json(std::size_t)>& value) {
    json features = json::array();
    for (std::size_t i = 0; i < n; ++i) {
      const LonLat p = centre_of(planted_.cluster[i % planted_.cluster.size()]);
      features.push_back({{"type", "Feature"}, {"geometry", {{"type", "Point"}, {"coordinates", {p.lon, p.lat}}}},
                          {"properties", {{"c", value(i)}}}});
    }
    return json{{"type", "FeatureCollection"}, {"features", features}};
  };
  says(post("/api/train", json{{"labels", labels(10, [](std::size_t) { return 1; })}, {"property", "c"}}.dump()), 400,
       "nothing varies");
  says(post("/api/train", json{{"labels", labels(3, [](std::size_t i) { return i % 2; })}, {"property", "c"}}.dump()), 400,
       "5 at least");
  says(post("/api/train", json{{"labels", labels(10, [](std::size_t i) { return i % 2 ? "a" : "b"; })}, {"property", "c"}}.dump()),
       400, "class names");
  says(post("/api/train", json{{"labels", "nothing"}, {"property", "c"}}.dump()), 400, "not a GeoJSON FeatureCollection");
  says(post("/api/train", json{{"labels", labels(10, [](std::size_t i) { return i % 2; })}, {"property", "d"}}.dump()), 400,
       "no property \"d\"");
  says(post("/api/train", "{}"), 400, "labels:");
  says(post("/api/export", json{{"labels", labels(2, [](std::size_t) { return 1; })}, {"name", "../up"}}.dump()), 400,
       "letters, digits");
  says(post("/api/export", json{{"labels", labels(2, [](std::size_t) { return 1; })}, {"name", "x"}, {"map", "map-999"}}.dump()),
       404, "no such map");
  says(get("/tiles/pca/23/0/0.png"), 400, "zoom 23 is not 0 to 22");
  says(get("/tiles/pca/2/4/0.png"), 400, "x and y run from 0 to 3");
  says(get("/tiles/nothing/2/0/0.png"), 404, "layer 'nothing': no such layer");
  EXPECT_FALSE(fs::exists(*dir_ / "out" / "serve" / "labels-x.geojson"));
}

TEST_F(Serve, ThePageAndLeafletAreServedAndNoPathClimbsOut) {
  auto cl = client();
  const auto page = cl.Get("/");
  ASSERT_TRUE(page && page->status == 200);
  EXPECT_NE(page->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(page->body.find("/leaflet/leaflet.js"), std::string::npos);
  EXPECT_NE(page->body.find("/app.js"), std::string::npos);
  const auto app = cl.Get("/app.js");
  ASSERT_TRUE(app && app->status == 200);
  EXPECT_NE(app->body.find("L.map("), std::string::npos);
  const auto leaflet = cl.Get("/leaflet/leaflet.js");
  ASSERT_TRUE(leaflet && leaflet->status == 200);
  EXPECT_EQ(leaflet->body, test::read_file("/usr/share/javascript/leaflet/leaflet.js"));
  // Paths that climb out of Leaflet's folder, the exports' or the tiles', plainly or
  // percent-encoded, sent as written.
  for (const std::string path : {"/leaflet/../../../../../etc/passwd", "/leaflet/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                                 "/files/../../../../../../etc/passwd", "/files/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
                                 "/tiles/../../../../etc/passwd", "/tiles/pca/1/0/..%2f..%2f..%2f..%2fetc%2fpasswd.png"}) {
    const std::string answer = raw_get(port_, path);
    ASSERT_FALSE(answer.empty()) << path;
    const int status = std::atoi(answer.c_str() + answer.find(' ') + 1);
    EXPECT_GE(status, 400) << path << "\n" << answer.substr(0, 200);
    EXPECT_LT(status, 500) << path;
    EXPECT_EQ(answer.find("root:"), std::string::npos) << path;
  }
}

// The page in a real browser (tests/python/browse_explorer.py drives Debian's chromium).
TEST_F(Serve, InChromiumAClickShowsAChipTenLabelsMakeAMapAndTheLabelsRoundTrip) {
  const auto lonlat = [](const ChipId& c) {
    const LonLat p = centre_of(c);
    return json{p.lon, p.lat};
  };
  json cluster = json::array(), positives = json::array(), negatives = json::array();
  for (const ChipId& c : planted_.cluster) cluster.push_back(c.str());
  for (std::size_t i = 1; i <= 5; ++i) positives.push_back(lonlat(planted_.cluster[i]));
  for (const ChipId& c : plain_chips(planted_.cluster, 40))
    if (negatives.size() < 5 && c.row % 3 == 0) negatives.push_back(lonlat(c));  // spread over the tile
  json plan = {{"inspect", {{"lonlat", lonlat(planted_.cluster[0])}, {"id", planted_.cluster[0].str()},
                                  {"item", "S2B_10SGF_20210704_0_L2A"}, {"similar", cluster}}},
                     {"positives", positives}, {"negatives", negatives}, {"class", "clicked"}};
  // A square a chip wide around a chip of the cube, for a polygon.
  const ChipId inside = plain_chips(planted_.cluster, 41).back();
  const Box b = inside.bounds();
  json& polygon = plan["polygon"] = json::array();
  for (const EastNorth& e : {EastNorth{b.e0, b.n0}, EastNorth{b.e1, b.n0}, EastNorth{b.e1, b.n1}, EastNorth{b.e0, b.n1}}) {
    const LonLat p = utm_inverse(inside.zone.number, inside.zone.south, e);
    polygon.push_back({p.lon, p.lat});
  }
  const fs::path browser = *dir_ / "browser";
  fs::create_directories(browser);
  std::ofstream(browser / "plan.json") << plan.dump();
  const std::string command = fmt::format("/usr/bin/python3 {}/tests/python/browse_explorer.py http://127.0.0.1:{}/ {} {} > {} 2>&1",
                                          EO_SOURCE_DIR, port_, (browser / "plan.json").string(), browser.string(),
                                          (browser / "log").string());
  const int status = std::system(command.c_str());
  EXPECT_EQ(status, 0) << test::read_file(browser / "log");
  EXPECT_TRUE(fs::exists(browser / "explorer_click.png"));
  EXPECT_TRUE(fs::exists(browser / "explorer_map.png"));
  EXPECT_TRUE(fs::exists(*dir_ / "out" / "serve" / "map-clicked_10N.tif"));
}

TEST_F(Serve, TheCommandServesUntilSigtermOnThisMachineOnly) {
  const fs::path log = *dir_ / "serve.log";
  test::Background serve(
      fmt::format("exec {} serve --cube {} --port 0 > {} 2>&1", EO_PIPELINE_EXE, (*dir_ / "cube.zarr").string(), log.string()));
  // The port it chose, from what it says.
  int port = 0;
  for (int i = 0; i < 200 && port == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const std::string said = test::read_file(log);
    const auto at = said.find("on http://127.0.0.1:");
    if (at != std::string::npos) port = std::atoi(said.c_str() + at + 20);
  }
  ASSERT_GT(port, 0) << test::read_file(log);
  httplib::Client c("127.0.0.1", port);
  const auto r = c.Get("/api/cube");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["dim"], test::kDim);
  const int status = serve.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << test::read_file(log);
  EXPECT_NE(test::read_file(log).find("stopped"), std::string::npos) << test::read_file(log);
}

// Last: it builds an index beside the cube, which the tests above search without.
TEST_F(Serve, WithAnIndexBuiltTheSearchIsTheIndexsAndFindsWhatTheExactSearchFinds) {
  const std::string path = fmt::format("/api/similar?id={}&k={}", planted_.cluster[2].str(), test::kCluster);
  const json exact = get(path).second;
  ASSERT_EQ(exact["search"], "exact") << exact.dump();
  const CubeReader cube(*dir_ / "cube.zarr");
  build_index(cube, SearchSpace::of(cube.spec(), cube.root(), "fused"), "Flat", 0, 1);
  const json indexed = get(path).second;
  EXPECT_EQ(indexed["search"], "index") << indexed.dump();
  std::set<std::string> a, b;
  for (const json& h : exact["hits"]) a.insert(h["id"].get<std::string>());
  for (const json& h : indexed["hits"]) b.insert(h["id"].get<std::string>());
  EXPECT_EQ(a, b);
  fs::remove_all(*dir_ / "cube.zarr" / "index");
}

}  // namespace
}  // namespace eo
