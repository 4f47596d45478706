#include "stages/serve/server.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <httplib.h>

#include <cmath>
#include <cstdlib>
#include <sstream>

#include "pipeline/core/error.hpp"
#include "stages/serve/page.hpp"

namespace eo {

using json = nlohmann::json;

namespace {

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

// The request's body as a JSON object.
json body_of(const httplib::Request& req) {
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) throw ConfigError("the request's body is not a JSON object");
  return body;
}

std::string text_of(const json& body, const char* key, const std::string& otherwise) {
  if (!body.contains(key)) return otherwise;
  if (!body[key].is_string()) throw ConfigError(fmt::format("{}: {} is not text", key, clipped(body[key].dump())));
  return body[key].get<std::string>();
}

// Chip ids separated by commas; a bad one is a ConfigError naming it.
std::vector<ChipId> chip_ids(const std::string& text, const char* what) {
  std::vector<ChipId> out;
  std::stringstream in(text);
  for (std::string id; std::getline(in, id, ',');) {
    if (id.empty()) continue;
    try {
      out.push_back(parse_chip_id(id));
    } catch (const std::invalid_argument& e) {
      throw ConfigError(fmt::format("{} '{}': {}", what, id, e.what()));
    }
  }
  return out;
}

double number(const httplib::Request& req, const char* key) {
  const std::string v = req.get_param_value(key);
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !std::isfinite(x)) throw ConfigError(fmt::format("{} '{}': not a number", key, v));
  return x;
}

int k_of(const json& k) {
  if (!k.is_number_integer() || k.get<long long>() < 1 || k.get<long long>() > 1000)
    throw ConfigError(fmt::format("k {}: a whole number from 1 to 1000", k.is_discarded() ? "?" : k.dump()));
  return k.get<int>();
}

}  // namespace

ExplorerServer::ExplorerServer(const Explorer& explorer, ServerOptions options)
    : explorer_(explorer), options_(std::move(options)), server_(std::make_unique<httplib::Server>()) {
  httplib::Server& s = *server_;
  s.set_payload_max_length(options_.max_body);
  // Every answer the handlers cannot give is said as JSON: the user's mistakes as 400 or
  // 404, anything else as 500, naming what went wrong.
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const NotFound& e) {
      reply(res, 404, {{"error", e.what()}});
    } catch (const ConfigError& e) {
      reply(res, 400, {{"error", e.what()}});
    } catch (const json::exception& e) {
      reply(res, 400, {{"error", fmt::format("the request's JSON: {}", e.what())}});
    } catch (const std::exception& e) {
      reply(res, 500, {{"error", e.what()}});
    }
  });
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler's own answer
    const std::string why = res.status == 404 ? fmt::format("no such path: {}", req.path)
                            : res.status == 413 ? "the request's body is too large"
                                                : fmt::format("HTTP {}", res.status);
    res.set_content(json{{"error", why}}.dump(), "application/json");
  });

  for (const PageFile& f : page_files()) {
    std::string pattern;  // httplib's paths are regular expressions: the dots meant as dots
    for (char c : f.path) pattern += c == '.' ? std::string("\\.") : std::string(1, c);
    s.Get(pattern, [&f](const httplib::Request&, httplib::Response& res) { res.set_content(f.content, f.mime); });
  }
  if (!s.set_mount_point("/leaflet", options_.leaflet))
    throw std::runtime_error(fmt::format("serve: no Leaflet at {} (apt-get install libjs-leaflet)", options_.leaflet));
  // A cube on a read-only output is still explored; only exports (and the tile cache) fail.
  std::error_code ec;
  std::filesystem::create_directories(explorer_.exports(), ec);
  if (ec || !s.set_mount_point("/files", explorer_.exports().string()))
    spdlog::warn("serve: {}: {}; exports will fail", explorer_.exports().string(), ec ? ec.message() : "cannot serve it");
  s.Get(R"(/tiles/([a-z]+(?:-[0-9]{1,9})?)/([0-9]{1,2})/([0-9]{1,8})/([0-9]{1,8})\.png)",
        [this](const httplib::Request& req, httplib::Response& res) {
          const TileXYZ t = TileXYZ::checked(std::stoi(req.matches[2]), std::stoi(req.matches[3]), std::stoi(req.matches[4]));
          res.set_content(explorer_.tile(req.matches[1], t), "image/png");
        });
  s.Get("/api/cube", [this](const httplib::Request&, httplib::Response& res) { reply(res, 200, explorer_.cube()); });
  s.Get("/api/chip", [this](const httplib::Request& req, httplib::Response& res) {
    if (req.has_param("id")) {
      const auto ids = chip_ids(req.get_param_value("id"), "id");
      if (ids.size() != 1) throw ConfigError("id: one chip id");
      return reply(res, 200, explorer_.chip(ids[0]));
    }
    if (!req.has_param("lon") || !req.has_param("lat")) throw ConfigError("say which chip: id=ID, or lon=LON&lat=LAT");
    reply(res, 200, explorer_.chip_at({number(req, "lon"), number(req, "lat")}));
  });
  s.Get("/api/chip/image", [this](const httplib::Request& req, httplib::Response& res) {
    const auto ids = chip_ids(req.get_param_value("id"), "id");
    if (ids.size() != 1) throw ConfigError("id: one chip id");
    res.set_content(explorer_.chip_image(ids[0], req.has_param("modality") ? req.get_param_value("modality") : "s2rgb"),
                    "image/png");
  });
  s.Get("/api/similar", [this](const httplib::Request& req, httplib::Response& res) {
    Examples ex{chip_ids(req.get_param_value("id"), "id"), chip_ids(req.get_param_value("unlike"), "unlike")};
    const std::string k_text = req.get_param_value("k");
    const json k = json::parse(k_text, nullptr, false);
    if (req.has_param("k") && !k.is_number_integer()) throw ConfigError(fmt::format("k '{}': a whole number from 1 to 1000", k_text));
    reply(res, 200, explorer_.similar(ex, req.has_param("space") ? req.get_param_value("space") : "fused",
                                      req.has_param("k") ? k_of(k) : 20));
  });
  s.Post("/api/similar", [this](const httplib::Request& req, httplib::Response& res) {
    const json body = body_of(req);
    const auto ids = [&](const char* key) {
      std::vector<ChipId> out;
      for (const json& id : body.value(key, json::array())) {
        if (!id.is_string()) throw ConfigError(fmt::format("{}: {} is not a chip id", key, id.dump()));
        for (const ChipId& c : chip_ids(id.get<std::string>(), key)) out.push_back(c);
      }
      return out;
    };
    Examples ex{ids("positives"), ids("negatives")};
    reply(res, 200, explorer_.similar(ex, text_of(body, "space", "fused"), k_of(body.value("k", json(20)))));
  });
  s.Post("/api/train", [this](const httplib::Request& req, httplib::Response& res) {
    const json body = body_of(req);
    if (!body.contains("labels")) throw ConfigError("labels: the labels to train on, a GeoJSON FeatureCollection");
    reply(res, 200, explorer_.train(body["labels"], text_of(body, "property", "value")));
  });
  s.Post("/api/export", [this](const httplib::Request& req, httplib::Response& res) {
    const json body = body_of(req);
    reply(res, 200, explorer_.export_files(body.value("labels", json()), text_of(body, "name", ""), text_of(body, "map", "")));
  });
}

ExplorerServer::~ExplorerServer() = default;

int ExplorerServer::bind() {
  const int port = options_.port == 0 ? server_->bind_to_any_port(options_.host)
                                      : (server_->bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (port < 0)
    throw std::runtime_error(fmt::format("serve: cannot listen on {}:{} (taken by another program, or not an address of "
                                         "this machine)", options_.host, options_.port));
  return port;
}

void ExplorerServer::serve() { server_->listen_after_bind(); }

void ExplorerServer::stop() { server_->stop(); }

}  // namespace eo
