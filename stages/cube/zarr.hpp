#pragma once
// The cube's Zarr v2 format, private to the cube stage: array metadata, chunks compressed
// with c-blosc (Blosc/zstd), written under a temporary name and renamed, read back, and
// where each tile's chunks lie. The cube's schema (cube_schema.cpp) and its tiles
// (cube_tiles.cpp) write and read through these alone.

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>
#include <xtensor/xtensor.hpp>

#include "pipeline/core/files.hpp"
#include "stages/cube/cube.hpp"

namespace eo::zarr {

using json = nlohmann::json;

// A Zarr v2 array's .zarray: C order, Blosc/zstd, "." between chunk indices.
json zarray(std::vector<int> shape, std::vector<int> chunks, const std::string& dtype, json fill);
// numpy's name of the dtype ("<f4", "<f2", "|i1").
std::string numpy_dtype(CubeDtype dtype);
json read_json(const std::filesystem::path& file);

std::vector<char> compress(const void* data, std::size_t bytes, std::size_t typesize);
// Published (pipeline/core/files.hpp): a reader sees the old chunk or the new one, never
// a part of one. `crash_point` names the failpoint between the chunk's two halves (for
// the crash tests, which stop us in the middle of a chunk).
WrittenFile write_chunk(const std::filesystem::path& file, const std::vector<char>& bytes, const char* crash_point = nullptr);
// A chunk's bytes, or nothing when the chunk was never written.
std::optional<std::vector<char>> read_chunk(const std::filesystem::path& file, std::size_t bytes);

// A tile's embeddings as a chunk in `dtype`; int8 puts each chip's scale in `scales`.
std::vector<char> encode(const xt::xtensor<float, 3>& values, CubeDtype dtype, std::vector<float>* scales);
float half_to_float(std::uint16_t h);

// Where a tile's chunk of an array lies, and its provenance.
std::filesystem::path chunk_file(const std::filesystem::path& root, const TileId& tile, const std::string& array);
std::filesystem::path provenance_file(const std::filesystem::path& root, const TileId& tile);

}  // namespace eo::zarr
