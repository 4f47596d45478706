#include "stages/cube/zarr.hpp"

#include <blosc.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "pipeline/core/error.hpp"
#include "pipeline/core/failpoint.hpp"
#include "pipeline/core/files.hpp"

namespace eo {
namespace zarr {
namespace {

namespace fs = std::filesystem;

json compressor() { return {{"id", "blosc"}, {"cname", "zstd"}, {"clevel", 5}, {"shuffle", 1}, {"blocksize", 0}}; }

}  // namespace

std::string numpy_dtype(CubeDtype d) {
  switch (d) {
    case CubeDtype::float16: return "<f2";
    case CubeDtype::int8: return "|i1";
    default: return "<f4";
  }
}

json zarray(std::vector<int> shape, std::vector<int> chunks, const std::string& dtype, json fill) {
  return {{"zarr_format", 2}, {"shape", shape}, {"chunks", chunks}, {"dtype", dtype}, {"compressor", compressor()},
          {"fill_value", fill}, {"order", "C"}, {"filters", nullptr}, {"dimension_separator", "."}};
}

json read_json(const fs::path& file) {
  std::ifstream in(file);
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw StageError("cube", fmt::format("{}: not readable JSON: {}", file.string(), e.what()));
  }
}


std::vector<char> compress(const void* data, std::size_t bytes, std::size_t typesize) {
  std::vector<char> out(bytes + BLOSC_MAX_OVERHEAD);
  // One internal thread and the context API: the same bytes every time, from any thread.
  const int n = blosc_compress_ctx(5, BLOSC_SHUFFLE, typesize, bytes, data, out.data(), out.size(), "zstd", 0, 1);
  if (n <= 0) throw StageError("cube", fmt::format("blosc failed to compress a chunk ({})", n));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

WrittenFile write_chunk(const fs::path& file, const std::vector<char>& bytes, const char* crash_point) {
  publish_file(file, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    const std::size_t half = std::max<std::size_t>(1, bytes.size() / 2);
    out.write(bytes.data(), static_cast<std::streamsize>(std::min(half, bytes.size())));
    if (half < bytes.size()) {
      out.flush();
      if (crash_point) failpoint(crash_point);
      out.write(bytes.data() + half, static_cast<std::streamsize>(bytes.size() - half));
    }
    if (!out.flush()) throw StageError("cube", fmt::format("cannot write {}: {}", tmp.string(), std::strerror(errno)));
  });
  return written_file(file, std::string_view(bytes.data(), bytes.size()));
}

std::optional<std::vector<char>> read_chunk(const fs::path& file, std::size_t bytes) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  const std::vector<char> packed((std::istreambuf_iterator<char>(in)), {});
  // blosc's decompressor trusts the header's lengths: a truncated or empty file is
  // checked against its real length first.
  std::size_t holds = 0;
  if (packed.size() < BLOSC_MIN_HEADER_LENGTH || blosc_cbuffer_validate(packed.data(), packed.size(), &holds) != 0 ||
      holds != bytes)
    throw StageError("cube", fmt::format("{}: not a chunk of {} bytes ({} bytes on disk, not a whole blosc chunk of that size)",
                                         file.string(), bytes, packed.size()));
  std::vector<char> out(bytes);
  const int n = blosc_decompress_ctx(packed.data(), out.data(), out.size(), 1);
  if (n != static_cast<int>(bytes))
    throw StageError("cube", fmt::format("{}: not a chunk of {} bytes (blosc says {})", file.string(), bytes, n));
  return out;
}

std::vector<char> encode(const xt::xtensor<float, 3>& values, CubeDtype dtype, std::vector<float>* scales) {
  const std::size_t n = values.size();
  if (dtype == CubeDtype::float32) return compress(values.data(), n * 4, 4);
  if (dtype == CubeDtype::float16) {
    std::vector<std::uint16_t> half(n);
    for (std::size_t i = 0; i < n; ++i) half[i] = float_to_half(values.data()[i]);
    return compress(half.data(), n * 2, 2);
  }
  // int8 with a scale per chip: the largest magnitude maps to 127; -128 means none.
  const std::size_t dim = values.shape(2), chips = n / dim;
  std::vector<std::int8_t> q(n);
  scales->assign(chips, std::nanf(""));
  for (std::size_t c = 0; c < chips; ++c) {
    const float* v = values.data() + c * dim;
    if (std::isnan(v[0])) {
      std::fill_n(q.data() + c * dim, dim, std::int8_t{-128});
      continue;
    }
    float peak = 0;
    for (std::size_t i = 0; i < dim; ++i) peak = std::max(peak, std::abs(v[i]));
    const float scale = peak > 0 ? peak / 127.0f : 1.0f;
    (*scales)[c] = scale;
    for (std::size_t i = 0; i < dim; ++i)
      q[c * dim + i] = static_cast<std::int8_t>(std::clamp(std::lround(v[i] / scale), -127L, 127L));
  }
  return compress(q.data(), n, 1);
}

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {  // subnormal: mant * 2^-24
    const float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
}

fs::path chunk_file(const fs::path& root, const TileId& tile, const std::string& array) {
  const bool grid2d = array == "status" || array.ends_with("_scale");
  return root / tile.zone.name() / array /
         (grid2d ? fmt::format("{}.{}", tile.row, tile.col) : fmt::format("{}.{}.0", tile.row, tile.col));
}

fs::path provenance_file(const fs::path& root, const TileId& tile) {
  return root / tile.zone.name() / "provenance" / (tile.str() + ".json");
}

}  // namespace zarr

std::uint16_t float_to_half(float value) {
  const std::uint32_t f = std::bit_cast<std::uint32_t>(value);
  const std::uint32_t sign = (f >> 16) & 0x8000u;
  const std::uint32_t abs = f & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);  // NaN
  if (abs >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // overflow (rounds up) and inf
  if (abs < 0x38800000u) {                                                     // subnormal or zero in half
    if (abs < 0x33000000u) return static_cast<std::uint16_t>(sign);            // below half the smallest subnormal
    const std::uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const int shift = 126 - static_cast<int>(abs >> 23);  // value = mant * 2^(e-150) = half_mant * 2^-24
    const std::uint32_t half_mant = mant >> shift;
    const std::uint32_t rest = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    const std::uint32_t rounded = half_mant + (rest > halfway || (rest == halfway && (half_mant & 1u)));
    return static_cast<std::uint16_t>(sign | rounded);
  }
  // Normal: rebias the exponent, round the mantissa to 10 bits (ties to even).
  const std::uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  return static_cast<std::uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

}  // namespace eo
