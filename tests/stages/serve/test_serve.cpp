// `eo-pipeline serve`'s API (issue 30) over a cube written here with known contents
// (tests/support/small_cube.hpp), through a real HTTP client (cpp-httplib): a chip by id
// and by place, with its status and footprint; the planted cluster found from one of its
// chips, exactly as the exact search finds it; questions that cannot be asked (a bad id,
// a chip the cube lacks, malformed JSON, a huge body, a path that climbs out) answered
// 4xx with a message; two clients at once; and the command itself started, asked and
// stopped by SIGTERM.

#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include "pipeline/core/utm.hpp"
#include "stages/serve/server.hpp"
#include "support/background.hpp"
#include "support/read_file.hpp"
#include "support/small_cube.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

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
    explorer_ = new Explorer(*dir_ / "cube.zarr", 2);
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
  for (const json& r : a) EXPECT_EQ(r, alone);
  for (const json& r : b) EXPECT_EQ(r["id"], planted_.cluster[2].str());
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

}  // namespace
}  // namespace eo
