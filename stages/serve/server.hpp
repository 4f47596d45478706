#pragma once
// `eo-pipeline serve`'s HTTP server, on cpp-httplib: the page and a small JSON API over
// an Explorer.
//
//   GET  /  /app.js  /app.css                     the page (compiled in)
//   GET  /leaflet/...                             Leaflet, from Debian's libjs-leaflet
//   GET  /tiles/<layer>/<z>/<x>/<y>.png           a layer's tile (Explorer::tile)
//   GET  /api/cube                                the cube's outline and layers
//   GET  /api/chip?id=33N_0412_0107 | ?lon=&lat=  a chip
//   GET  /api/chip/image?id=ID[&modality=s2rgb]   its input composite, seasons side by side (PNG)
//   GET  /api/similar?id=A,B[&unlike=C][&k=20][&space=fused]
//   POST /api/similar  {"positives": [ids], "negatives": [ids], "k": 20, "space": "fused"}
//   POST /api/train    {"labels": FeatureCollection, "property": "forest"}
//   POST /api/export   {"labels": FeatureCollection, "name": "forest", "map": "map-3"}
//   GET  /files/...                               what export wrote
//
// Answers are JSON; a question that cannot be asked gets 400 and {"error": why}, a chip
// or layer the cube does not have 404, a body over the limit 413. It binds 127.0.0.1
// unless told otherwise: the cube is the user's, not the network's.

#include <memory>
#include <string>

#include "stages/serve/explorer.hpp"

namespace httplib {
class Server;
}

namespace eo {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8765;                      // 0: any free port
  std::size_t max_body = 4 * 1024 * 1024;  // bytes a request may send
  std::string leaflet = "/usr/share/javascript/leaflet";  // Debian's libjs-leaflet
};

class ExplorerServer {
 public:
  // Throws std::runtime_error when Leaflet is not where the options say.
  ExplorerServer(const Explorer& explorer, ServerOptions options);
  ~ExplorerServer();
  // Binds the address; returns the port. Throws std::runtime_error naming host and port
  // when it cannot (taken, not an address here).
  int bind();
  // Answers until stop() (from another thread).
  void serve();
  void stop();

 private:
  const Explorer& explorer_;
  ServerOptions options_;
  std::unique_ptr<httplib::Server> server_;
};

}  // namespace eo
