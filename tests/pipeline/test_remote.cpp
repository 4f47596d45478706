// Remote inputs (issue 29): the demo's kind of world read over HTTP, S3 and signed blob
// URLs from an object store the test starts (tests/support/object_store.py), with the
// faults object stores produce. What is read must be what the same files on disk give,
// a fault must cost a retry and not a tile, a missing object only the tiles it reaches,
// a changed one exactly those tiles' work again, and no token may appear in any output.

#include <arpa/inet.h>
#include <cpl_conv.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "pipeline/driver/inputs.hpp"
#include "stages/chip/chipper.hpp"
#include "stages/ingest/gdal_util.hpp"
#include "stages/ingest/remote.hpp"
#include "stages/ingest/tiff_blocks.hpp"
#include "support/background.hpp"
#include "support/read_file.hpp"
#include "support/run.hpp"
#include "support/run_world.hpp"
#include "support/world.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;


// The object store as a child process, stopped when the test is done with it.
class ObjectStore {
 public:
  ObjectStore(const fs::path& root, const fs::path& dir, const std::string& args)
      : dir_(prepared(dir)),
        process_(fmt::format("exec /usr/bin/python3 {}/tests/support/object_store.py {} --port-file {} --log {} {} 2>{}",
                             EO_SOURCE_DIR, root.string(), (dir_ / "port").string(), (dir_ / "log.jsonl").string(), args,
                             (dir_ / "stderr").string())) {
    for (int i = 0; i < 300 && !fs::exists(dir_ / "port"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    port_ = std::stoi(test::read_file(dir_ / "port"));
  }
  std::string url() const { return fmt::format("http://127.0.0.1:{}", port_); }
  int port() const { return port_; }
  std::vector<json> requests() const {
    std::vector<json> out;
    std::ifstream in(dir_ / "log.jsonl");
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
    return out;
  }

 private:
  // The store's folder, without the port and log of a store before.
  static fs::path prepared(const fs::path& dir) {
    fs::create_directories(dir);
    fs::remove(dir / "port");
    fs::remove(dir / "log.jsonl");
    return dir;
  }
  fs::path dir_;
  test::Background process_;
  int port_ = 0;
};

// nginx from Debian serving a folder over TLS with HTTP/2, as CDNs and cloud object
// stores do (the test store speaks HTTP/1.1 only), under a certificate made for it here.
// Each request is logged with its protocol and its connection.
class Https {
 public:
  Https(const fs::path& root, const fs::path& dir) : dir_(dir) {
    fs::create_directories(dir_ / "temp");
    const auto cert = test::run(fmt::format(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
        "-keyout {0}/key.pem -out {0}/cert.pem",
        dir_.string()));
    if (cert.code != 0) throw std::runtime_error("openssl: " + cert.output);
    port_ = free_port();
    std::ofstream(dir_ / "nginx.conf") << fmt::format(R"(daemon off;
{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{}}
http {{
  log_format connections '$server_protocol $connection $status $request_uri';
  access_log {d}/access.log connections;
  client_body_temp_path {d}/temp/body;
  proxy_temp_path {d}/temp/proxy;
  fastcgi_temp_path {d}/temp/fastcgi;
  uwsgi_temp_path {d}/temp/uwsgi;
  scgi_temp_path {d}/temp/scgi;
  server {{
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {d}/cert.pem;
    ssl_certificate_key {d}/key.pem;
    root {root};
  }}
}}
)", fmt::arg("user", geteuid() == 0 ? "user root;" : ""), fmt::arg("d", dir_.string()), fmt::arg("port", port_),
                                                   fmt::arg("root", root.string()));
    process_.emplace(fmt::format("exec nginx -p {0} -c {0}/nginx.conf -e {0}/error.log 2>{0}/stderr", dir_.string()));
    for (int i = 0; i < 200 && !accepts(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!accepts()) throw std::runtime_error("nginx did not start: " + test::read_file(dir_ / "stderr") + test::read_file(dir_ / "error.log"));
  }
  std::string url() const { return fmt::format("https://127.0.0.1:{}", port_); }
  fs::path certificate() const { return dir_ / "cert.pem"; }
  struct Request {
    std::string protocol;
    long connection;
    int status;
    std::string uri;
  };
  std::vector<Request> requests() const {
    std::vector<Request> out;
    std::ifstream in(dir_ / "access.log");
    for (Request q; in >> q.protocol >> q.connection >> q.status >> q.uri;) out.push_back(q);
    return out;
  }

 private:
  static int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t n = sizeof a;
    bind(fd, reinterpret_cast<sockaddr*>(&a), n);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
    close(fd);
    return ntohs(a.sin_port);
  }
  bool accepts() const {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port_));
    const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    return ok;
  }
  fs::path dir_;
  std::optional<test::Background> process_;
  int port_ = 0;
};

// Two patches in different zones, coherence cells and Sentinel-2 tiles: some files reach
// some of the tiles and not all, so that "only the tiles it reaches" can be told.
constexpr const char* kTwoPatches =
    "MULTIPOLYGON(((-120.55 37.40, -120.45 37.40, -120.45 37.50, -120.55 37.50, -120.55 37.40)),"
    "((-119.05 36.40, -118.95 36.40, -118.95 36.50, -119.05 36.50, -119.05 36.40)))";

class Remote : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    world_ = test::make_world("remote", kTwoPatches, "  layout: scenes\n").release();
    // The reference: the same files read from disk.
    const auto r = test::run(fmt::format("{} prepare {} -q", EO_PIPELINE_EXE, world_->config_file.string()));
    ASSERT_EQ(r.code, 0) << r.output;
    // Path-style S3 and the blob container read the world under a name of their own.
    fs::create_directory_symlink(world_->config.world_dir(), world_->dir / "eo-bucket");
    fs::create_directory_symlink(world_->config.world_dir(), world_->dir / "blob");
  }
  static void TearDownTestSuite() {
    fs::remove_all(world_->dir);
    delete world_;
  }
  void SetUp() override {
    name_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ = world_->dir / name_;
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }

  // The world's catalog with every path (and mask) as `prefix` + its path in the world.
  fs::path remote_catalog(const std::string& prefix) {
    const fs::path world = world_->config.world_dir();
    Catalog remote;
    for (SourceRecord r : world_->catalog.records()) {
      r.path = prefix + r.path.lexically_relative(world).string();
      if (r.mask) r.mask->path = prefix + r.mask->path.lexically_relative(world).string();
      remote.add(std::move(r));
    }
    const fs::path file = dir_ / "catalog.jsonl";
    remote.save(file);
    return file;
  }
  // The world's config with its output in dir_/`out` (its synth section last).
  std::string yaml_into(const std::string& out) {
    std::string yaml = test::read_file(world_->config_file);
    yaml.replace(yaml.find("output: "), yaml.find('\n', yaml.find("output: ")) - yaml.find("output: "),
                 "output: " + (dir_ / out).string());
    return yaml;
  }
  // A config reading `catalog` into dir_/`out`.
  fs::path config(const fs::path& catalog, const std::string& out = "out") {
    const fs::path file = dir_ / (out + ".yaml");
    std::ofstream(file) << yaml_into(out) << "  output: " << world_->config.world_dir().string() << "\ndata:\n  catalog: "
                        << catalog.string() << "\n";
    return file;
  }
  test::RunResult prepare(const fs::path& config, const std::string& env = "") {
    return test::run(fmt::format("{} EO_HTTP_RETRY_S=0.05 EO_HTTP_TIMEOUT_S=20 {} prepare {}", env, EO_PIPELINE_EXE, config.string()));
  }
  // The chip stores against those read from disk: every value, every attribute but the
  // fingerprint, which names the inputs by their paths.
  void expect_same_chips(const fs::path& out) {
    const auto r = test::run(fmt::format("/usr/bin/python3 {}/tests/python/compare_chip_stores.py {} {} --ignore-attr fingerprint",
                                         EO_SOURCE_DIR, (world_->config.output / "chips").string(), (out / "chips").string()));
    EXPECT_EQ(r.code, 0) << r.output;
  }
  json report(const fs::path& out) { return json::parse(test::read_file(out / "prepare" / "report.json")); }

  // The tiles that read each file of the world (its path in the world), as the
  // fingerprint's tile_sources names them.
  static std::map<std::string, std::set<std::string>> tiles_reading() {
    std::map<std::string, std::set<std::string>> reached;
    for (const TilePlan& t : world_->plan.tiles)
      for (const fs::path& path : tile_sources(world_->catalog, t, world_->config.data.modalities))
        reached[path.lexically_relative(world_->config.world_dir()).string()].insert(t.id.str());
    return reached;
  }
  // A Sentinel-2 green band that some tiles read and not all.
  static const SourceRecord& green_of_some_tiles() {
    const auto reached = tiles_reading();
    for (const SourceRecord& r : world_->catalog.records())
      if (r.asset == "green" &&
          reached.at(r.path.lexically_relative(world_->config.world_dir()).string()).size() < world_->plan.tiles.size())
        return r;
    throw std::runtime_error("every green band of the world reaches every tile: the test would not tell");
  }

  static test::TestWorld* world_;
  std::string name_;
  fs::path dir_;
};
test::TestWorld* Remote::world_ = nullptr;

TEST_F(Remote, OverHttpTheChipsAreThoseOfTheFilesOnDisk) {
  ObjectStore store(world_->config.world_dir(), dir_ / "store", "");
  const auto r = prepare(config(remote_catalog("/vsicurl/" + store.url() + "/")));
  ASSERT_EQ(r.code, 0) << r.output;
  expect_same_chips(dir_ / "out");
  // Byte ranges only (no whole-file GET), and no side-car file asked for.
  for (const json& q : store.requests()) {
    EXPECT_TRUE(q["range"].is_string()) << q.dump();
    EXPECT_EQ(q["status"], 206) << q.dump();
  }
}

TEST_F(Remote, OverHttpsTheRequestsShareHttp2ConnectionsAndTheChipsAreThoseOfTheFilesOnDisk) {
  Https server(world_->config.world_dir(), dir_ / "nginx");
  const fs::path cfg = config(remote_catalog("/vsicurl/" + server.url() + "/"));
  // A certificate nobody said to trust stops the run at once, and says why.
  const auto untrusted = prepare(cfg);
  EXPECT_NE(untrusted.code, 0) << untrusted.output;
  EXPECT_NE(untrusted.output.find("certificate"), std::string::npos) << untrusted.output;
  EXPECT_NE(untrusted.output.find(server.url() + "/"), std::string::npos) << untrusted.output;
  const std::size_t refused = server.requests().size();

  const auto r = prepare(cfg, "CURL_CA_BUNDLE=" + server.certificate().string());
  ASSERT_EQ(r.code, 0) << r.output;
  expect_same_chips(dir_ / "out");
  const auto requests = server.requests();
  ASSERT_GT(requests.size(), refused);
  for (const auto& q : requests) {
    EXPECT_EQ(q.protocol, "HTTP/2.0") << "connection " << q.connection;
    EXPECT_EQ(q.status, 206) << "connection " << q.connection;
  }
  // Multiplexed: the heads of 20 files asked for at once, from one thread, go over one
  // connection (HTTP/1.1 would open one per request in flight).
  std::vector<RemoteRange> heads;
  for (const auto& e : fs::recursive_directory_iterator(world_->config.world_dir()))
    if (e.path().extension() == ".tif" && heads.size() < 20)
      heads.push_back({"/vsicurl/" + server.url() + "/" + e.path().lexically_relative(world_->config.world_dir()).string(), 0, 1000, 0});
  ASSERT_EQ(heads.size(), 20u);
  CPLSetThreadLocalConfigOption("CURL_CA_BUNDLE", server.certificate().c_str());
  fetch_remote(heads);
  CPLSetThreadLocalConfigOption("CURL_CA_BUNDLE", nullptr);
  const auto after = server.requests();
  ASSERT_EQ(after.size(), requests.size() + heads.size());
  std::set<long> connections;
  for (std::size_t i = requests.size(); i < after.size(); ++i) connections.insert(after[i].connection);
  EXPECT_EQ(connections.size(), 1u);
}

TEST_F(Remote, ARemoteBandIsDecodedHereAsGdalReadsTheFileOnDisk) {
  ObjectStore store(world_->config.world_dir(), dir_ / "store", "");
  const SourceRecord& green = green_of_some_tiles();
  GdalDataset remote = open_raster("/vsicurl/" + store.url() + "/" + green.path.lexically_relative(world_->config.world_dir()).string());
  GdalDataset local = open_raster(green.path);
  GDALRasterBand& band = *remote->GetRasterBand(1);
  const int w = band.GetXSize(), h = band.GetYSize();
  // Before the read, every block of the window is wanted by a prefetch; after it, none.
  EXPECT_FALSE(remote_tiff_ranges(band, 0, 0, w, h).empty());
  const std::int64_t decoded = tiff_block_stats().windows;
  std::vector<float> got(static_cast<std::size_t>(w) * h), want(got.size());
  ASSERT_TRUE(read_tiff_window(band, 0, 0, w, h, got.data())) << take_remote_failure();
  EXPECT_EQ(tiff_block_stats().windows, decoded + 1);
  ASSERT_EQ(local->GetRasterBand(1)->RasterIO(GF_Read, 0, 0, w, h, want.data(), w, h, GDT_Float32, 0, 0), CE_None);
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0);
  EXPECT_TRUE(remote_tiff_ranges(band, 0, 0, w, h).empty());
}

TEST_F(Remote, APrefetchFetchesEachByteOnceAndNoFurtherThanAStepAheadOfTheReads) {
  fs::path largest;
  for (const auto& e : fs::recursive_directory_iterator(world_->config.world_dir()))
    if (e.path().extension() == ".tif" && (largest.empty() || e.file_size() > fs::file_size(largest))) largest = e.path();
  // Under a name no other test serves: a store started earlier in this process may have had
  // the same port, and what was read from its URL is still in the process's caches.
  const fs::path root = dir_ / "prefetch";
  fs::create_directories(root);
  fs::copy_file(largest, root / "prefetched.tif", fs::copy_options::overwrite_existing);
  // Latency, so that reads and the prefetch meet while its requests are on the way.
  ObjectStore store(root, dir_ / "store", "--latency-ms 30");
  const std::int64_t size = static_cast<std::int64_t>(fs::file_size(largest));
  constexpr std::int64_t kChunk = 64 * 1024;
  ASSERT_GE(size / 4, kChunk) << "the steps' ranges would share a chunk";
  const std::string path = "/vsicurl/" + store.url() + "/prefetched.tif";
  const std::string bytes = test::read_file(largest);
  std::vector<RemoteRange> ranges;
  for (int step = 0; step < 4; ++step) ranges.push_back({path, step * (size / 4), 1000, step});
  {
    RemotePrefetch prefetch(ranges);
    prefetch.reached(0);  // steps 0 and 1 may be fetched, not 2 or 3
    for (int step = 0; step < 2; ++step) {
      std::string got(1000, '\0');
      void* buffers[] = {got.data()};
      const auto offset = static_cast<std::uint64_t>(ranges[step].offset);
      const std::size_t n = got.size();
      ASSERT_TRUE(read_remote_ranges(path, 1, buffers, &offset, &n)) << take_remote_failure();
      EXPECT_EQ(got, bytes.substr(offset, n)) << "step " << step;
    }
  }
  // One request per chunk read, whoever made it first; none for the steps not reached.
  std::multiset<std::string> asked, expected;
  for (const json& q : store.requests()) asked.insert(q["range"].get<std::string>());
  for (int step = 0; step < 2; ++step)
    for (std::int64_t c = ranges[step].offset / kChunk; c <= (ranges[step].offset + ranges[step].length - 1) / kChunk; ++c)
      expected.insert(fmt::format("bytes={}-{}", c * kChunk, c * kChunk + kChunk - 1));
  EXPECT_EQ(asked, expected);
}

TEST_F(Remote, SynthPublishesItsWorldToBeReadWhereItIsServed) {
  // synth --stac-hrefs URL: the STAC, and the catalog made from it, name every file under
  // the URL; the world served from there is read over HTTP and gives the chips of the same
  // world on disk.
  const fs::path served = dir_ / "served";
  fs::create_directories(served);
  ObjectStore store(served, dir_ / "store", "");
  const fs::path file = dir_ / "synth.yaml";
  std::ofstream(file) << yaml_into("out") << "  output: " << served.string() << "\n";
  const auto refused = test::run(fmt::format("{} synth {} --stac-hrefs ftp://host/world -q", EO_PIPELINE_EXE, file.string()));
  EXPECT_EQ(refused.code, 2) << refused.output;
  EXPECT_NE(refused.output.find("--stac-hrefs ftp://host/world: give an http(s):// or s3:// URL"), std::string::npos)
      << refused.output;
  const auto s = test::run(fmt::format("{} synth {} --stac-hrefs {} -q", EO_PIPELINE_EXE, file.string(), store.url()));
  ASSERT_EQ(s.code, 0) << s.output;
  const Catalog catalog = Catalog::load(served / "catalog.jsonl");
  ASSERT_EQ(catalog.records().size(), world_->catalog.records().size());
  for (const SourceRecord& r : catalog.records()) {
    EXPECT_TRUE(r.path.string().starts_with("/vsicurl/" + store.url() + "/")) << r.path;
    if (r.mask) EXPECT_TRUE(r.mask->path.string().starts_with("/vsicurl/" + store.url() + "/")) << r.mask->path;
  }
  EXPECT_TRUE(store.requests().empty()) << "synth read what it had just written from the store";
  const auto r = prepare(file);
  ASSERT_EQ(r.code, 0) << r.output;
  expect_same_chips(dir_ / "out");
  EXPECT_FALSE(store.requests().empty());
}

TEST_F(Remote, OverS3PathStyleUnsignedTheChipsAreThoseOfTheFilesOnDisk) {
  ObjectStore store(world_->dir, dir_ / "store", "");
  const auto r = prepare(config(remote_catalog("/vsis3/eo-bucket/")),
                         fmt::format("AWS_S3_ENDPOINT=127.0.0.1:{} AWS_HTTPS=NO AWS_VIRTUAL_HOSTING=FALSE AWS_NO_SIGN_REQUEST=YES",
                                     store.port()));
  ASSERT_EQ(r.code, 0) << r.output;
  expect_same_chips(dir_ / "out");
  const auto requests = store.requests();
  ASSERT_FALSE(requests.empty());
  for (const json& q : requests) EXPECT_TRUE(q["path"].get<std::string>().starts_with("/eo-bucket/")) << q.dump();
}

TEST_F(Remote, SignedS3WithCredentialsFromTheEnvironmentOrAProfileAndRequesterPays) {
  // The store checks AWS Signature Version 4 with its own secret (recomputed in Python from
  // the request as it arrived, not by libcurl) and wants the requester-pays header.
  const std::string secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  ObjectStore store(world_->dir, dir_ / "store", "--s3-key AKIDEXAMPLE:" + secret + " --requester-pays");
  const std::string s3 = fmt::format("AWS_S3_ENDPOINT=127.0.0.1:{} AWS_HTTPS=NO AWS_VIRTUAL_HOSTING=FALSE AWS_REGION=us-west-2 "
                                     "AWS_REQUEST_PAYER=requester",
                                     store.port());
  const fs::path catalog = remote_catalog("/vsis3/eo-bucket/");
  auto r = prepare(config(catalog, "env"), s3 + " AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=" + secret);
  ASSERT_EQ(r.code, 0) << r.output;
  expect_same_chips(dir_ / "env");
  const fs::path credentials = dir_ / "credentials";
  std::ofstream(credentials) << "[default]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = other\n\n"
                             << "[eo]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = " << secret << "\n";
  r = prepare(config(catalog, "profile"), s3 + " AWS_SHARED_CREDENTIALS_FILE=" + credentials.string() + " AWS_PROFILE=eo");
  ASSERT_EQ(r.code, 0) << r.output;
  expect_same_chips(dir_ / "profile");
  const auto requests = store.requests();
  ASSERT_FALSE(requests.empty());
  for (const json& q : requests) EXPECT_EQ(q["status"], 206) << q.dump();
  // Another secret: every request refused, the tiles fail saying so, and no secret is shown.
  r = prepare(config(catalog, "wrong"), s3 + " AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=not-the-secret");
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("HTTP 403 Forbidden"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("not-the-secret"), std::string::npos) << r.output;
  EXPECT_EQ(store.requests().back()["fault"], "signature: the signature does not match");
}

TEST_F(Remote, TheCubeFromRemoteInputsIsTheCubeFromTheFilesOnDisk) {
  // A model of two steps trained on the files on disk; `run` then warps every tile from its
  // sources, once from disk and once over HTTP, into cubes that must be the same bytes. The
  // cube names its catalog: both runs read theirs from one path (remote_catalog's).
  ObjectStore store(world_->config.world_dir(), dir_ / "store", "--latency-ms 5");
  const fs::path checkpoint = dir_ / "local" / "pretrain" / "checkpoints" / "step-000002.pt";
  const auto write_config = [&](const std::string& out, const fs::path& catalog) {
    const fs::path file = dir_ / (out + ".yaml");
    std::ofstream(file) << yaml_into(out) << "  output: " << world_->config.world_dir().string() << "\ndata:\n  catalog: "
                        << catalog.string() << "\npretrain:\n  steps: 2\n  batch: 8\n  threads: 1\nmodel:\n  checkpoint: "
                        << checkpoint.string() << "\n";
    return file;
  };
  const fs::path catalog = remote_catalog(world_->config.world_dir().string() + "/");  // the files on disk
  const fs::path local = write_config("local", catalog);
  for (const char* step : {"prepare", "pretrain", "run"}) {
    const auto r = test::run(fmt::format("{} {} {} -q", EO_PIPELINE_EXE, step, local.string()));
    ASSERT_EQ(r.code, 0) << step << ": " << r.output;
  }
  ASSERT_EQ(remote_catalog("/vsicurl/" + store.url() + "/"), catalog);  // over the local one, at its path
  const auto r = test::run(fmt::format("EO_HTTP_RETRY_S=0.05 {} run {} -q", EO_PIPELINE_EXE, write_config("remote", catalog).string()));
  ASSERT_EQ(r.code, 0) << r.output;
  // The same bytes but for each STAC item's links to its sources: the files on disk, and
  // the URLs (as URLs) over HTTP.
  std::size_t sources = 0;
  const auto without_sources = [&](std::map<std::string, std::string> files, const std::string& prefix) {
    for (auto& [name, bytes] : files) {
      if (!name.starts_with("stac/items/")) continue;
      json item = json::parse(bytes), links = json::array();
      for (const json& l : item["links"])
        if (l["rel"] != "emb:source-data") links.push_back(l);
        else if (!prefix.empty() && ++sources) EXPECT_TRUE(l["href"].get<std::string>().starts_with(prefix)) << l.dump();
      item["links"] = links;
      bytes = item.dump();
    }
    return files;
  };
  const auto reference = without_sources(test::cube_files(dir_ / "local" / "cube.zarr"), "");
  ASSERT_GT(reference.size(), 3u);
  EXPECT_EQ(test::cube_difference(reference, without_sources(test::cube_files(dir_ / "remote" / "cube.zarr"), store.url() + "/")), "");
  EXPECT_GT(sources, 0u);
  EXPECT_FALSE(store.requests().empty());
}

TEST_F(Remote, FaultsAreRetriedAndNoTileIsLostOrDamaged) {
  ObjectStore store(world_->config.world_dir(), dir_ / "store", "--p503 0.01 --once 429,reset,truncate --seed 3");
  const auto r = prepare(config(remote_catalog("/vsicurl/" + store.url() + "/")));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(report(dir_ / "out")["done"], static_cast<int>(world_->plan.tiles.size()));
  expect_same_chips(dir_ / "out");
  std::map<std::string, int> faults;
  const auto requests = store.requests();
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const json& q = requests[i];
    if (q["fault"].is_null()) continue;
    ++faults[q["fault"].get<std::string>()];
    if (q["fault"] == "429") {
      // Retry-After: 1 is honoured: the same range asked for again no sooner.
      for (std::size_t k = i + 1; k < requests.size(); ++k)
        if (requests[k]["path"] == q["path"] && requests[k]["range"] == q["range"]) {
          EXPECT_GE(requests[k]["t"].get<double>() - q["t"].get<double>(), 0.99);
          break;
        }
    }
  }
  EXPECT_EQ(faults["429"], 1);
  EXPECT_EQ(faults["reset"], 1);
  EXPECT_EQ(faults["truncate"], 1);
  EXPECT_GE(faults["503"], 1) << "at 1%, some of the requests were to fail";
}

TEST_F(Remote, AMissingObjectFailsOnlyTheTilesThatNeedItAndNamesIt) {
  // One asset of one scene answers 404; the tiles that read it are those tile_sources names.
  const SourceRecord& green = green_of_some_tiles();
  const std::string file = green.path.lexically_relative(world_->config.world_dir()).string();
  const std::set<std::string> needing = tiles_reading().at(file);

  ObjectStore store(world_->config.world_dir(), dir_ / "store", "--not-found " + file);
  const auto r = prepare(config(remote_catalog("/vsicurl/" + store.url() + "/")));
  EXPECT_EQ(r.code, 1) << r.output;
  const json rep = report(dir_ / "out");
  std::set<std::string> failed;
  for (const json& f : rep["failures"]) {
    failed.insert(f["tile"].get<std::string>());
    const std::string error = f["error"].get<std::string>();
    for (const std::string& part : {fmt::format("{}/{}", store.url(), file), "item " + green.item,
                                    std::string("asset green"), std::string("HTTP 404")})
      EXPECT_NE(error.find(part), std::string::npos) << "'" << part << "' not in: " << error;
  }
  EXPECT_EQ(failed, needing);
  EXPECT_EQ(rep["done"], static_cast<int>(world_->plan.tiles.size() - needing.size()));
}

TEST_F(Remote, AnObjectChangedBetweenRunsRedoesExactlyItsTiles) {
  // The copy of the world the store serves: one file of it is written anew between runs.
  const fs::path served = dir_ / "served";
  fs::copy(world_->config.world_dir(), served, fs::copy_options::recursive);
  ObjectStore store(served, dir_ / "store", "");
  const fs::path cfg = config(remote_catalog("/vsicurl/" + store.url() + "/"));
  ASSERT_EQ(prepare(cfg).code, 0);

  // A file that some tiles read and not all.
  auto reached = tiles_reading();
  const std::string file = green_of_some_tiles().path.lexically_relative(world_->config.world_dir()).string();
  // The same bytes written again: a new ETag, as an object store gives a re-upload.
  const std::string bytes = test::read_file(served / file);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::ofstream(served / file, std::ios::binary | std::ios::trunc) << bytes;

  const auto r = prepare(cfg);
  ASSERT_EQ(r.code, 0) << r.output;
  const json rep = report(dir_ / "out");
  EXPECT_EQ(rep["done"], static_cast<int>(reached[file].size())) << file;
  EXPECT_EQ(rep["skipped_done"], static_cast<int>(world_->plan.tiles.size() - reached[file].size()));
}

TEST_F(Remote, AnObjectChangedDuringARunIsNamedAndTheNextRunGivesTheCleanResult) {
  // The object a run reads in the most pieces: its new version comes after the first,
  // inside its reads, whatever order the run reads objects in.
  std::map<std::string, int> reads;
  {
    ObjectStore count(world_->config.world_dir(), dir_ / "count", "");
    ASSERT_EQ(prepare(config(remote_catalog("/vsicurl/" + count.url() + "/"), "count")).code, 0);
    for (const json& q : count.requests()) reads[q["path"].get<std::string>()] += q["range"].is_string();
  }
  const auto most = std::max_element(reads.begin(), reads.end(), [](auto& a, auto& b) { return a.second < b.second; });
  ASSERT_GE(most->second, 2) << most->first;
  // Then it is uploaded anew (a new ETag, the same bytes). Nothing read must mix the two
  // versions: a tile that meets the change fails, and so does the normalisation
  // statistics' sample, whose statistics are kept for good once written (a file it cannot
  // read now is not left out of them, as a broken one is); each names the object.
  ObjectStore store(world_->config.world_dir(), dir_ / "store", fmt::format("--new-etag-after {}=1", most->first));
  const fs::path cfg = config(remote_catalog("/vsicurl/" + store.url() + "/"));
  const auto changed = prepare(cfg);
  EXPECT_EQ(changed.code, 1) << changed.output;
  EXPECT_NE(changed.output.find("the object changed during the run"), std::string::npos) << changed.output;
  EXPECT_NE(changed.output.find(store.url() + most->first), std::string::npos) << changed.output;
  // The next run reads the new objects from their start: every tile, and the chips (their
  // normalisation statistics too) of a clean run.
  const auto again = prepare(cfg);
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_EQ(report(dir_ / "out")["done"], static_cast<int>(world_->plan.tiles.size()));
  expect_same_chips(dir_ / "out");
}

TEST_F(Remote, ThePublishersVersionDecidesWithoutAskingTheStore) {
  // A catalog whose records carry the STAC's version, pointing at a port nobody listens
  // on: the fingerprints are made without a request, and a new version of one file
  // changes the fingerprints of exactly the tiles it reaches.
  Catalog catalog;
  for (SourceRecord r : world_->catalog.records()) {
    r.path = "/vsicurl/http://127.0.0.1:9/" + r.path.lexically_relative(world_->config.world_dir()).string();
    r.version = "updated 2026-01-01T00:00:00Z; size 100";
    if (r.mask) {
      r.mask->path = "/vsicurl/http://127.0.0.1:9/" + r.mask->path.lexically_relative(world_->config.world_dir()).string();
      r.mask->version = "size 10";
    }
    catalog.add(std::move(r));
  }
  const std::int64_t before = remote_requests();
  std::vector<std::string> first;
  for (const TilePlan& t : world_->plan.tiles) first.push_back(tile_fingerprint(catalog, t, world_->config, ""));
  EXPECT_EQ(remote_requests(), before);

  Catalog changed;
  const SourceRecord& green = green_of_some_tiles();
  for (SourceRecord r : catalog.records()) {
    if (r.item == green.item && r.asset == "green") r.version = "updated 2026-02-01T00:00:00Z; size 100";
    changed.add(std::move(r));
  }
  const auto reading = tiles_reading().at(green.path.lexically_relative(world_->config.world_dir()).string());
  for (std::size_t i = 0; i < world_->plan.tiles.size(); ++i) {
    const TilePlan& t = world_->plan.tiles[i];
    EXPECT_EQ(tile_fingerprint(changed, t, world_->config, "") != first[i], reading.count(t.id.str()) == 1) << t.id.str();
  }
}

TEST_F(Remote, SignedBlobsNeedATokenAndNoTokenAppearsInAnyOutput) {
  // Planetary Computer's way: a SAS token per container from the token endpoint; the
  // store revokes the first after 40 uses, so the reader must fetch another on the 403.
  ObjectStore store(world_->dir, dir_ / "store", "--sas-prefix /blob/ --sas-revoke-after 40");
  const fs::path catalog = remote_catalog("/vsicurl/" + store.url() + "/blob/");
  const std::string sas = fmt::format("EO_SAS_HOSTS={0}/ EO_SAS_TOKEN_URL={0}/api/sas/v1/token", store.url());

  // Unsigned: every blob is refused, and the message says so.
  const auto refused = prepare(config(catalog, "unsigned"), fmt::format("EO_SAS_HOSTS=none"));
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(report(dir_ / "unsigned")["failures"][0]["error"].get<std::string>().find("HTTP 403"), std::string::npos);

  const auto r = prepare(config(catalog), sas);
  ASSERT_EQ(r.code, 0) << r.output;
  expect_same_chips(dir_ / "out");
  int tokens = 0;
  for (const json& q : store.requests()) tokens += q["path"].get<std::string>().starts_with("/api/sas/v1/token/");
  EXPECT_GE(tokens, 2) << "the revoked token was to be replaced";
  EXPECT_LE(tokens, 4) << "a token is kept until it expires or is refused";

  // The tokens' signatures are SECRET<n>x...: in no file written and in no message.
  EXPECT_EQ(r.output.find("SECRET"), std::string::npos) << r.output;
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "out"))
    if (e.is_regular_file()) EXPECT_EQ(test::read_file(e.path()).find("SECRET"), std::string::npos) << e.path();

  // Items saved signed (planetary_computer.sign): the catalog keeps the hrefs without it.
  const SourceRecord& green = green_of_some_tiles();
  const std::string href = fmt::format("{}/blob/{}?st=2026-12-07&se=2026-12-08&sp=rl&sig=SECRETxSAVED", store.url(),
                                       green.path.lexically_relative(world_->config.world_dir()).string());
  std::ofstream(dir_ / "signed.json") << json{
      {"type", "FeatureCollection"},
      {"features",
       {{{"type", "Feature"}, {"stac_version", "1.0.0"}, {"id", green.item}, {"collection", "sentinel-2-l2a"},
         {"bbox", {green.footprint.lon0, green.footprint.lat0, green.footprint.lon1, green.footprint.lat1}},
         {"properties", {{"datetime", green.time}, {"proj:epsg", 32610}}},
         {"assets", {{"B04", {{"href", href}}}, {"B03", {{"href", href}}}, {"B02", {{"href", href}}},
                     {"SCL", {{"href", href}}}}}}}}}.dump();
  const auto catalogued = test::run(fmt::format("{} {} catalog --stac {} --out {}", sas, EO_PIPELINE_EXE,
                                                (dir_ / "signed.json").string(), (dir_ / "signed.jsonl").string()));
  ASSERT_EQ(catalogued.code, 0) << catalogued.output;
  const std::string lines = test::read_file(dir_ / "signed.jsonl");
  EXPECT_NE(lines.find(fmt::format("{}/blob/", store.url())), std::string::npos) << lines;
  EXPECT_EQ(lines.find("SECRET"), std::string::npos) << lines;
  EXPECT_EQ(catalogued.output.find("SECRET"), std::string::npos) << catalogued.output;
}

}  // namespace
}  // namespace eo
