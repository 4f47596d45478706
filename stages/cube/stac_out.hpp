#pragma once
// The cube described in STAC: a Collection and one Item per tile, with the STAC Embedding
// extension's fields (emb:, geo-embeddings/embeddings-stac-specification v0.0.1) and the
// projection extension's. An Item per tile because the tile is the unit the cube is
// written, journalled and redone in: a nightly rerun rewrites the Items of the tiles it
// redid and no other, and each Item names the inputs of its tile alone.
//
// Layout, inside the cube so that it moves with it and every href is relative:
//   <cube>/stac/collection.json
//   <cube>/stac/items/<tile id>.json

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/core/grid.hpp"

namespace eo {

// A file an Item links to as its source data ("emb:source-data").
struct StacSource {
  std::string href;   // a local path (made relative to the Item) or a URL
  std::string title;  // "s2rgb DJF: <item id> (<asset>)"
};
// The sources of a tile, from its provenance as the cube records it.
using TileSources = std::function<std::vector<StacSource>(const TileId& tile, const nlohmann::json& provenance)>;

struct StacWritten {
  std::filesystem::path collection;
  std::size_t items = 0;
  std::size_t removed = 0;  // Items of tiles that no longer hold an embedding
};

// Writes (or brings up to date) the cube's STAC from what the cube holds now: an Item for
// every tile with at least one chip embedded. Each file is written atomically, the
// Collection last; Items of tiles that hold no embedding any more are removed.
StacWritten write_cube_stac(const std::filesystem::path& cube, const TileSources& sources);

// The Collection's path for a cube.
std::filesystem::path stac_collection_path(const std::filesystem::path& cube);

}  // namespace eo
