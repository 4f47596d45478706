#include "stages/downstream/index.hpp"

#include <faiss/AutoTune.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "pipeline/core/error.hpp"
#include "pipeline/core/config.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/hash.hpp"
#include "pipeline/core/resources.hpp"

namespace eo {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

fs::path card_file(const fs::path& cube, const std::string& space) { return cube / "index" / (space + ".json"); }

json to_json(const IndexCard& c) {
  return {{"space", c.space}, {"factory", c.factory}, {"dim", c.dim}, {"vectors", c.vectors}, {"nprobe", c.nprobe},
          {"fingerprint", c.fingerprint}, {"build_seconds", c.build_seconds}, {"bytes", c.bytes}};
}

IndexCard read_card(const fs::path& file) {
  const json j = json::parse(std::ifstream(file));
  IndexCard c;
  c.space = j.at("space");
  c.factory = j.at("factory");
  c.dim = j.at("dim");
  c.vectors = j.at("vectors");
  c.nprobe = j.at("nprobe");
  c.fingerprint = j.at("fingerprint");
  c.build_seconds = j.at("build_seconds");
  c.bytes = j.at("bytes");
  return c;
}

}  // namespace

fs::path index_file(const fs::path& cube, const std::string& space) { return cube / "index" / (space + ".faiss"); }

std::string cube_fingerprint(const CubeReader& cube, const SearchSpace& space) {
  Hasher h;
  h.add(space.name).add(name_str(cube.spec().dtype)).add(static_cast<std::int64_t>(space.dim));
  for (Zone z : cube.spec().zones)
    for (const TileId& t : cube.written_tiles(z)) {
      const fs::path status = cube.chunk_path(t, "status");
      h.add(t.str()).add(static_cast<std::int64_t>(fs::file_size(status)))
          .add(static_cast<std::int64_t>(fs::last_write_time(status).time_since_epoch().count()));
    }
  return h.hex();
}

IndexCard build_index(const CubeReader& cube, const SearchSpace& space, std::string factory, int nprobe, int threads) {
  const auto t0 = std::chrono::steady_clock::now();
  IndexCard card;
  card.space = space.name;
  card.dim = space.dim;
  card.fingerprint = cube_fingerprint(cube, space);
  // How many chips the index will hold: from the statuses alone, cheaply.
  std::int64_t chips = 0;
  for (Zone z : cube.spec().zones)
    for (const TileId& t : cube.written_tiles(z))
      for (std::uint8_t s : cube.read_status(t)) chips += s == kEmbedded;
  if (chips == 0) throw StageConfigError("index", fmt::format("{}: no embedded chip to index", cube.root().string()));
  if (factory == "auto") {
    if (chips <= 100000) {
      factory = "Flat";
    } else {
      const int lists = 1 << static_cast<int>(std::lround(std::log2(std::sqrt(static_cast<double>(chips)))));
      factory = fmt::format("IVF{},SQ8", lists);
    }
  }
  card.factory = factory;
  std::unique_ptr<faiss::Index> base;
  try {
    base.reset(faiss::index_factory(space.dim, factory.c_str(), faiss::METRIC_INNER_PRODUCT));
  } catch (const std::exception& e) {
    throw StageConfigError("index", fmt::format("index factory '{}': {}", factory, e.what()));
  }
  if (!base->is_trained) {
    // A sample of 40 chips a list (FAISS's own minimum is 39), chosen by chip id.
    const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(base.get());
    const std::int64_t want = ivf ? 40 * static_cast<std::int64_t>(ivf->nlist) : std::min<std::int64_t>(chips, 100000);
    const std::uint64_t stride = static_cast<std::uint64_t>(std::max<std::int64_t>(1, chips / want));
    std::vector<std::pair<std::int64_t, std::vector<float>>> sample;
    for_each_tile(cube, space, threads, [&](const TileVectors& t) {
      for (std::size_t c = 0; c < t.chips.size(); ++c) {
        const std::int64_t key = chip_key(t.chips[c]);
        if (Hasher().add(key).value() % stride != 0) continue;
        const float* v = t.values.data() + c * static_cast<std::size_t>(space.dim);
        sample.emplace_back(key, std::vector<float>(v, v + space.dim));
      }
    });
    std::sort(sample.begin(), sample.end());  // the same training set in the same order from any thread count
    std::vector<float> x;
    for (const auto& [key, v] : sample) x.insert(x.end(), v.begin(), v.end());
    base->train(static_cast<faiss::Index::idx_t>(sample.size()), x.data());
  }
  faiss::IndexIDMap index(base.get());
  for_each_tile(cube, space, threads, [&](const TileVectors& t) {
    std::vector<faiss::Index::idx_t> ids;
    for (const ChipId& c : t.chips) ids.push_back(chip_key(c));
    index.add_with_ids(static_cast<faiss::Index::idx_t>(ids.size()), t.values.data(), ids.data());
  });
  card.vectors = index.ntotal;
  if (const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(base.get()))
    card.nprobe = nprobe > 0 ? nprobe : std::max<int>(8, static_cast<int>(ivf->nlist / 64));
  const fs::path file = index_file(cube.root(), space.name);
  fs::create_directories(file.parent_path());
  publish_file(file, [&](const fs::path& tmp) { faiss::write_index(&index, tmp.c_str()); });
  card.bytes = fs::file_size(file);
  card.build_seconds = seconds_since(t0);
  write_atomically(card_file(cube.root(), space.name), to_json(card).dump(2) + "\n");
  return card;
}

LoadedIndex::LoadedIndex(const CubeReader& cube, const SearchSpace& space, int nprobe) {
  const fs::path file = index_file(cube.root(), space.name), card_path = card_file(cube.root(), space.name);
  if (!fs::exists(file) || !fs::exists(card_path))
    throw StageConfigError("index", fmt::format("{}: no index of the {} embeddings: run `eo-pipeline index` first", cube.root().string(),
                                  space.name));
  const IndexCard card = read_card(card_path);
  if (card.fingerprint != cube_fingerprint(cube, space))
    throw StageConfigError("index", fmt::format("{} is older than the cube (tiles were written since it was built): run "
                                  "`eo-pipeline index` again, or search exactly",
                                  file.string()));
  index_.reset(faiss::read_index(file.c_str()));
  if (index_->d != space.dim)
    throw StageConfigError("index", fmt::format("{}: {} dimensions, the {} embeddings {}", file.string(), index_->d, space.name, space.dim));
  if (card.nprobe > 0) faiss::ParameterSpace().set_index_parameter(index_.get(), "nprobe", nprobe > 0 ? nprobe : card.nprobe);
}

LoadedIndex::~LoadedIndex() = default;

std::vector<std::vector<Hit>> LoadedIndex::search(const std::vector<std::vector<float>>& queries, int k) const {
  const std::size_t nq = queries.size(), kk = static_cast<std::size_t>(k);
  std::vector<float> x;
  for (const auto& q : queries) x.insert(x.end(), q.begin(), q.end());
  std::vector<float> distances(nq * kk);
  std::vector<faiss::Index::idx_t> labels(nq * kk);
  index_->search(static_cast<faiss::Index::idx_t>(nq), x.data(), static_cast<faiss::Index::idx_t>(k), distances.data(), labels.data());
  std::vector<std::vector<Hit>> out(nq);
  for (std::size_t i = 0; i < nq; ++i)
    for (std::size_t j = 0; j < kk; ++j)
      if (labels[i * kk + j] >= 0) out[i].push_back({chip_of_key(labels[i * kk + j]), distances[i * kk + j]});
  return out;
}

std::vector<std::vector<Hit>> index_search(const CubeReader& cube, const SearchSpace& space,
                                           const std::vector<std::vector<float>>& queries, int k, int nprobe) {
  return LoadedIndex(cube, space, nprobe).search(queries, k);
}

}  // namespace eo
