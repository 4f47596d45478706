// A tile's embeddings (placing chips, fusing modalities) and the cube's reader and
// writer of tiles.

#include "pipeline/core/error.hpp"
#include "stages/cube/cube.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <stdexcept>

#include "pipeline/core/files.hpp"
#include "stages/cube/zarr.hpp"

namespace eo {

namespace fs = std::filesystem;
using json = nlohmann::json;
using zarr::chunk_file;
using zarr::compress;
using zarr::provenance_file;
using zarr::read_chunk;
using zarr::read_json;
using zarr::write_chunk;

TileEmbeddings::TileEmbeddings(TileId t, const CubeSpec& spec) : tile(t) {
  const std::size_t side = kChipsPerTileSide, dim = static_cast<std::size_t>(spec.dim);
  for (const std::string& name : spec.embedding_arrays())
    arrays.emplace(name, xt::xtensor<float, 3>::from_shape({side, side, dim}));
  for (auto& [name, a] : arrays) a.fill(std::nanf(""));
  for (const std::string& name : spec.clear_arrays()) {
    clear.emplace(name, xt::xtensor<float, 3>::from_shape({side, side, static_cast<std::size_t>(kSeasons)}));
    clear.at(name).fill(std::nanf(""));
  }
}

void TileEmbeddings::add_inputs(const ChipBatch& row) {
  for (const ModalityChips& mc : row.modalities) {
    const auto it = clear.find(std::string(info(mc.modality).name) + "_clear");
    if (it == clear.end()) continue;
    const std::size_t seasons = static_cast<std::size_t>(info(mc.modality).seasons);
    if (mc.clear.size() == row.chips.size() * seasons)
      for (std::size_t k = 0; k < row.chips.size(); ++k) {
        const int pos = index_in_tile(row.chips[k]);
        for (std::size_t s = 0; s < seasons; ++s)
          it->second(static_cast<std::size_t>(pos / kChipsPerTileSide), static_cast<std::size_t>(pos % kChipsPerTileSide), s) =
              mc.clear[k * seasons + s];
      }
    if (provenance.contains("modalities") && provenance["modalities"].contains(info(mc.modality).name)) continue;
    nlohmann::json seasons_json = nlohmann::json::object();  // the same in every row: kept from the first
    for (std::size_t s = 0; s < mc.observations.size(); ++s) {
      nlohmann::json list = nlohmann::json::array();
      for (const ObservationInfo& o : mc.observations[s]) list.push_back({{"id", o.id}, {"time", o.time}});
      seasons_json[season_name(static_cast<int>(s))] = list;
    }
    provenance["modalities"][info(mc.modality).name] = seasons_json;
  }
}

void TileEmbeddings::add(const std::vector<ChipId>& chips, const std::map<Modality, std::vector<float>>& embeddings) {
  auto& fused = arrays.at("fused");
  const std::size_t dim = fused.shape(2);
  std::vector<float> sum(dim);
  for (std::size_t k = 0; k < chips.size(); ++k) {
    const int pos = index_in_tile(chips[k]);
    const std::size_t y = static_cast<std::size_t>(pos / kChipsPerTileSide), x = static_cast<std::size_t>(pos % kChipsPerTileSide);
    int present = 0;
    std::fill(sum.begin(), sum.end(), 0.0f);
    for (const auto& [m, values] : embeddings) {
      const float* v = values.data() + k * dim;
      if (std::isnan(v[0])) continue;
      std::copy_n(v, dim, &arrays.at(info(m).name)(y, x, 0));
      for (std::size_t i = 0; i < dim; ++i) sum[i] += v[i];
      ++present;
    }
    if (present > 0)
      for (std::size_t i = 0; i < dim; ++i) fused(y, x, i) = sum[i] / static_cast<float>(present);
    status[static_cast<std::size_t>(pos)] = present > 0 ? kEmbedded : kNoData;
  }
}

void TileEmbeddings::fail(const std::bitset<kChipsPerTile>& planned) {
  for (auto& [name, a] : arrays) a.fill(std::nanf(""));
  for (auto& [name, a] : clear) a.fill(std::nanf(""));
  provenance = nlohmann::json::object();
  for (std::size_t i = 0; i < status.size(); ++i) status[i] = planned[i] ? kFailed : kNotProcessed;
}

CubeReader::CubeReader(fs::path root) : root_(std::move(root)) {
  if (!fs::exists(root_ / ".zattrs")) throw StageError("cube", fmt::format("{}: not a cube (no .zattrs)", root_.string()));
  const json attrs = read_json(root_ / ".zattrs");
  try {
    const json& l = attrs.at("layout");
    spec_.dim = l.at("dim").get<int>();
    spec_.dtype = parse_choice_or_throw<CubeDtype>(l.at("dtype").get<std::string>(), "dtype");
    for (const auto& m : l.at("modalities")) spec_.modalities.push_back(parse_modality(m.get<std::string>()));
    spec_.chip_pixels = l.at("chip_pixels").get<int>();
    spec_.pixel_size = l.at("pixel_size_m").get<double>();
  } catch (const std::exception& e) {
    throw StageError("cube", fmt::format("{}: no layout this version reads: {}", root_.string(), e.what()));
  }
  spec_.zones = cube_zones(root_);
  spec_.provenance = attrs;
}

TileEmbeddings CubeReader::read_tile(const TileId& tile) const {
  TileEmbeddings t(tile, spec_);
  t.status = read_status(tile);
  for (auto& [name, values] : t.arrays) read_array(tile, name, values.data());
  return t;
}

bool CubeReader::read_array(const TileId& tile, const std::string& name, float* values) const {
  const std::size_t dim = static_cast<std::size_t>(spec_.dim), n = kChipsPerTile * dim;
  const std::size_t width = spec_.dtype == CubeDtype::float32 ? 4 : spec_.dtype == CubeDtype::float16 ? 2 : 1;
  const auto raw = read_chunk(chunk_file(root_, tile, name), n * width);
  if (!raw) {
    std::fill_n(values, n, std::nanf(""));
    return false;
  }
  if (spec_.dtype == CubeDtype::float32) {
    std::memcpy(values, raw->data(), n * 4);
  } else if (spec_.dtype == CubeDtype::float16) {
    for (std::size_t i = 0; i < n; ++i) {
      std::uint16_t h;
      std::memcpy(&h, raw->data() + 2 * i, 2);
      values[i] = zarr::half_to_float(h);
    }
  } else {
    const auto scales = read_chunk(chunk_file(root_, tile, name + "_scale"), kChipsPerTile * 4);
    if (!scales) throw StageError("cube", fmt::format("{}: the chunk's scales are missing", chunk_file(root_, tile, name).string()));
    for (std::size_t i = 0; i < n; ++i) {
      const auto q = static_cast<std::int8_t>((*raw)[i]);
      float scale;
      std::memcpy(&scale, scales->data() + 4 * (i / dim), 4);
      values[i] = q == -128 ? std::nanf("") : static_cast<float>(q) * scale;
    }
  }
  return true;
}

fs::path CubeReader::chunk_path(const TileId& tile, const std::string& array) const {
  return chunk_file(root_, tile, array);
}

std::vector<std::uint8_t> CubeReader::read_status(const TileId& tile) const {
  std::vector<std::uint8_t> status(kChipsPerTile, kNotProcessed);
  if (const auto raw = read_chunk(chunk_file(root_, tile, "status"), kChipsPerTile))
    std::copy(raw->begin(), raw->end(), status.begin());
  return status;
}

std::map<std::string, xt::xtensor<float, 3>> CubeReader::read_clear(const TileId& tile) const {
  auto clear = TileEmbeddings(tile, spec_).clear;
  for (auto& [name, values] : clear)
    if (const auto raw = read_chunk(chunk_file(root_, tile, name), values.size() * 4)) std::memcpy(values.data(), raw->data(), values.size() * 4);
  return clear;
}

json CubeReader::read_provenance(const TileId& tile) const {
  const fs::path file = provenance_path(tile);
  return fs::exists(file) ? read_json(file) : json::object();
}

fs::path CubeReader::provenance_path(const TileId& tile) const { return provenance_file(root_, tile); }

std::vector<TileId> CubeReader::written_tiles(Zone zone) const {
  std::vector<TileId> tiles;
  const fs::path dir = root_ / zone.name() / "status";
  if (!fs::is_directory(dir)) return tiles;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    int row = 0, col = 0;
    char dot = 0, rest = 0;
    // Chunk files are "ROW.COL"; temporaries and .zarray are not.
    if (std::sscanf(name.c_str(), "%d%c%d%c", &row, &dot, &col, &rest) == 3 && dot == '.')
      tiles.push_back(TileId{zone, row, col});
  }
  std::sort(tiles.begin(), tiles.end());
  return tiles;
}

CubeWriter::CubeWriter(fs::path root, CubeSpec spec) : root_(std::move(root)), spec_(std::move(spec)) {}

fs::path CubeWriter::provenance_path(const TileId& tile) const { return provenance_file(root_, tile); }

fs::path CubeWriter::chunk_path(const TileId& tile, const std::string& array) const {
  return chunk_file(root_, tile, array);
}

std::vector<WrittenFile> CubeWriter::write_tile(const TileEmbeddings& t) const {
  std::vector<WrittenFile> written;
  for (const std::string& name : spec_.embedding_arrays()) {
    const auto& values = t.arrays.at(name);
    const fs::path file = chunk_path(t.tile, name);
    const bool any = std::any_of(values.begin(), values.end(), [](float v) { return !std::isnan(v); });
    const fs::path scale_file = chunk_path(t.tile, name + "_scale");
    if (!any) {  // nothing to store: the chunk reads as fill value
      fs::remove(file);
      if (spec_.dtype == CubeDtype::int8) fs::remove(scale_file);
      continue;
    }
    std::vector<float> scales;
    written.push_back(write_chunk(file, zarr::encode(values, spec_.dtype, &scales), "cube-chunk"));
    if (spec_.dtype == CubeDtype::int8) written.push_back(write_chunk(scale_file, compress(scales.data(), scales.size() * 4, 4)));
  }
  for (const auto& [name, values] : t.clear) {
    const fs::path file = chunk_path(t.tile, name);
    if (std::all_of(values.begin(), values.end(), [](float v) { return std::isnan(v); }))
      fs::remove(file);
    else
      written.push_back(write_chunk(file, compress(values.data(), values.size() * 4, 4)));
  }
  const fs::path provenance = provenance_path(t.tile);
  if (t.provenance.empty()) {
    fs::remove(provenance);
  } else {
    fs::create_directories(provenance.parent_path());
    nlohmann::json doc = t.provenance;
    doc["tile"] = t.tile.str();
    const std::string text = doc.dump(1) + "\n";
    write_atomically(provenance, text);
    written.push_back(written_file(provenance, text));
  }
  written.push_back(write_chunk(chunk_path(t.tile, "status"), compress(t.status.data(), t.status.size(), 1), "cube-chunk"));
  return written;
}

}  // namespace eo
