#include "stages/ingest/tiff_blocks.hpp"

#include "stages/ingest/gdal_mirror.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gdal_priv.h>
#include <libdeflate.h>
#include <tiffio.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <emmintrin.h>
#include <list>
#include <memory>
#include <type_traits>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace eo {

namespace {

// A file as it is now: a file replaced or rewritten under the same name is another file.
struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  std::int64_t mtime_ns = 0, size = 0;
  bool operator==(const FileId&) const = default;
};

struct BlockKey {
  FileId file;
  std::size_t index = 0;
  bool operator==(const BlockKey&) const = default;
};

struct BlockKeyHash {
  std::size_t operator()(const BlockKey& k) const {
    std::size_t h = std::hash<std::uint64_t>()(k.file.ino);
    for (std::uint64_t v : {static_cast<std::uint64_t>(k.file.dev), static_cast<std::uint64_t>(k.file.mtime_ns),
                            static_cast<std::uint64_t>(k.file.size), static_cast<std::uint64_t>(k.index)})
      h = h * 0x9E3779B97F4A7C15ull + std::hash<std::uint64_t>()(v);
    return h;
  }
};

enum class Sample { u8, u16, i16, f32 };

// The full-resolution image of a TIFF (its first directory), as far as decoding goes.
struct Layout {
  int width = 0, height = 0;
  int block_w = 0, block_h = 0, across = 0, down = 0;
  int spp = 1;
  bool separate = false;  // PLANARCONFIG_SEPARATE: one plane of blocks per band
  bool strips = false;    // the last strip holds only the rows left
  bool deflate = false;
  int predictor = 1;
  Sample sample = Sample::u8;
  std::vector<std::uint64_t> offsets, counts;

  int rows_in(std::size_t index) const {
    const int by = static_cast<int>((index % (static_cast<std::size_t>(across) * down)) / across);
    return strips ? std::min(block_h, height - by * block_h) : block_h;
  }
  int per_pixel() const { return separate ? 1 : spp; }
  int bytes() const { return sample == Sample::u8 ? 1 : sample == Sample::f32 ? 4 : 2; }  // per sample
};

int quiet(TIFF*, void*, const char*, const char*, va_list) { return 1; }

// The layout of a file if this module decodes it.
std::shared_ptr<const Layout> read_layout(const char* path) {
  TIFFOpenOptions* options = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(options, quiet, nullptr);
  TIFFOpenOptionsSetWarningHandlerExtR(options, quiet, nullptr);  // GeoTIFF's tags are not libtiff's
  TIFF* tif = TIFFOpenExt(path, "rm", options);
  TIFFOpenOptionsFree(options);
  if (!tif) return nullptr;
  auto layout = std::make_shared<Layout>();
  Layout& l = *layout;
  const auto field = [&](ttag_t tag, auto& value) { return TIFFGetFieldDefaulted(tif, tag, &value) == 1; };
  std::uint32_t width = 0, height = 0;
  std::uint16_t compression = 0, predictor = 1, bits = 0, format = 1, spp = 1, planar = 1, fill = 1;
  bool ok = !TIFFIsByteSwapped(tif) && field(TIFFTAG_IMAGEWIDTH, width) && field(TIFFTAG_IMAGELENGTH, height) &&
            field(TIFFTAG_COMPRESSION, compression) && field(TIFFTAG_BITSPERSAMPLE, bits) &&
            field(TIFFTAG_SAMPLEFORMAT, format) && field(TIFFTAG_SAMPLESPERPIXEL, spp) &&
            field(TIFFTAG_PLANARCONFIG, planar) && field(TIFFTAG_FILLORDER, fill) && fill == FILLORDER_MSB2LSB;
  if (ok && compression != COMPRESSION_NONE) field(TIFFTAG_PREDICTOR, predictor);
  ok = ok && (compression == COMPRESSION_NONE || compression == COMPRESSION_ADOBE_DEFLATE ||
              compression == COMPRESSION_DEFLATE);
  if (ok) {
    if (bits == 8 && format == SAMPLEFORMAT_UINT) l.sample = Sample::u8;
    else if (bits == 16 && format == SAMPLEFORMAT_UINT) l.sample = Sample::u16;
    else if (bits == 16 && format == SAMPLEFORMAT_INT) l.sample = Sample::i16;
    else if (bits == 32 && format == SAMPLEFORMAT_IEEEFP) l.sample = Sample::f32;
    else ok = false;
    ok = ok && (predictor == PREDICTOR_NONE || (predictor == PREDICTOR_HORIZONTAL && format != SAMPLEFORMAT_IEEEFP) ||
                (predictor == PREDICTOR_FLOATINGPOINT && format == SAMPLEFORMAT_IEEEFP));
  }
  std::uint64_t* offsets = nullptr;
  std::uint64_t* counts = nullptr;
  if (ok && TIFFIsTiled(tif)) {
    std::uint32_t tw = 0, th = 0;
    ok = field(TIFFTAG_TILEWIDTH, tw) && field(TIFFTAG_TILELENGTH, th) && tw > 0 && th > 0 &&
         TIFFGetField(tif, TIFFTAG_TILEOFFSETS, &offsets) == 1 && TIFFGetField(tif, TIFFTAG_TILEBYTECOUNTS, &counts) == 1;
    l.block_w = static_cast<int>(tw), l.block_h = static_cast<int>(th);
  } else if (ok) {
    std::uint32_t rows = 0;
    ok = field(TIFFTAG_ROWSPERSTRIP, rows) && TIFFGetField(tif, TIFFTAG_STRIPOFFSETS, &offsets) == 1 &&
         TIFFGetField(tif, TIFFTAG_STRIPBYTECOUNTS, &counts) == 1;
    l.block_w = static_cast<int>(width), l.block_h = static_cast<int>(std::min(rows, height));
    l.strips = true;
  }
  if (ok && width > 0 && height > 0 && l.block_w > 0 && l.block_h > 0) {
    l.width = static_cast<int>(width), l.height = static_cast<int>(height);
    l.across = (l.width + l.block_w - 1) / l.block_w, l.down = (l.height + l.block_h - 1) / l.block_h;
    l.spp = spp, l.separate = planar == PLANARCONFIG_SEPARATE && spp > 1;
    l.deflate = compression != COMPRESSION_NONE;
    l.predictor = predictor;
    const std::size_t n = static_cast<std::size_t>(l.across) * l.down * (l.separate ? spp : 1);
    ok = (l.strips ? TIFFNumberOfStrips(tif) : TIFFNumberOfTiles(tif)) == n;
    if (ok) l.offsets.assign(offsets, offsets + n), l.counts.assign(counts, counts + n);
  } else {
    ok = false;
  }
  TIFFClose(tif);
  return ok ? layout : nullptr;
}

// Prefix sums of 16 lanes at a time (SSE2): each lane adds all lanes before it in log steps,
// then the carry from the previous vector.
template <typename T>
__m128i lane_prefix(__m128i x) {
  if constexpr (sizeof(T) == 1) {
    x = _mm_add_epi8(x, _mm_slli_si128(x, 1));
    x = _mm_add_epi8(x, _mm_slli_si128(x, 2));
    x = _mm_add_epi8(x, _mm_slli_si128(x, 4));
    return _mm_add_epi8(x, _mm_slli_si128(x, 8));
  } else if constexpr (sizeof(T) == 2) {
    x = _mm_add_epi16(x, _mm_slli_si128(x, 2));
    x = _mm_add_epi16(x, _mm_slli_si128(x, 4));
    return _mm_add_epi16(x, _mm_slli_si128(x, 8));
  } else {
    x = _mm_add_epi32(x, _mm_slli_si128(x, 4));
    return _mm_add_epi32(x, _mm_slli_si128(x, 8));
  }
}

// v[i] += v[i - stride] along a row, modulo the type's width: libtiff's horAcc8/16/32 and
// the first half of its fpAcc.
template <typename T>
void accumulate(T* v, std::size_t n, int stride) {
  if (stride != 1) {
    for (std::size_t i = static_cast<std::size_t>(stride); i < n; ++i) v[i] = static_cast<T>(v[i] + v[i - stride]);
    return;
  }
  constexpr std::size_t lanes = 16 / sizeof(T);
  std::size_t i = 0;
  T carry = 0;
  for (; i + lanes <= n; i += lanes) {
    __m128i x = lane_prefix<T>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i)));
    __m128i c;
    if constexpr (sizeof(T) == 1) c = _mm_set1_epi8(static_cast<char>(carry));
    else if constexpr (sizeof(T) == 2) c = _mm_set1_epi16(static_cast<short>(carry));
    else c = _mm_set1_epi32(static_cast<int>(carry));
    x = sizeof(T) == 1 ? _mm_add_epi8(x, c) : sizeof(T) == 2 ? _mm_add_epi16(x, c) : _mm_add_epi32(x, c);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(v + i), x);
    carry = v[i + lanes - 1];
  }
  for (; i < n; ++i) carry = v[i] = static_cast<T>(v[i] + carry);
}

// Undoes the predictor of one block's rows in place.
void undo_predictor(const Layout& l, std::uint8_t* block, int rows) {
  if (l.predictor == PREDICTOR_NONE) return;
  const std::size_t samples = static_cast<std::size_t>(l.block_w) * l.per_pixel();
  const std::size_t row_bytes = samples * static_cast<std::size_t>(l.bytes());
  const int stride = l.per_pixel();
  std::vector<std::uint8_t> planes(l.predictor == PREDICTOR_FLOATINGPOINT ? row_bytes : 0);
  for (int r = 0; r < rows; ++r) {
    std::uint8_t* row = block + static_cast<std::size_t>(r) * row_bytes;
    if (l.predictor == PREDICTOR_HORIZONTAL) {
      if (l.bytes() == 1) accumulate(row, samples, stride);
      else accumulate(reinterpret_cast<std::uint16_t*>(row), samples, stride);
      continue;
    }
    // Floating point: the row's bytes were split into planes, most significant first, and
    // differenced as bytes; the sums put the planes back, then each value is reassembled
    // (little-endian: its lowest byte from the last plane).
    accumulate(row, row_bytes, stride);
    std::memcpy(planes.data(), row, row_bytes);
    const std::uint8_t *p0 = planes.data(), *p1 = p0 + samples, *p2 = p1 + samples, *p3 = p2 + samples;
    for (std::size_t i = 0; i < samples; ++i) {
      const std::uint32_t v = static_cast<std::uint32_t>(p3[i]) | static_cast<std::uint32_t>(p2[i]) << 8 |
                              static_cast<std::uint32_t>(p1[i]) << 16 | static_cast<std::uint32_t>(p0[i]) << 24;
      std::memcpy(row + i * 4, &v, 4);
    }
  }
}

using Block = std::shared_ptr<const std::vector<std::uint8_t>>;

// Decoded blocks, least recently used first out, within a budget of bytes.
class BlockCache {
 public:
  Block find(const BlockKey& key) {
    std::lock_guard lock(mutex_);
    const auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    order_.splice(order_.end(), order_, it->second.second);
    return it->second.first;
  }
  void keep(const BlockKey& key, const Block& block) {
    std::lock_guard lock(mutex_);
    if (block->size() > budget_ || map_.count(key)) return;
    order_.push_back(key);
    map_.emplace(key, std::make_pair(block, std::prev(order_.end())));
    used_ += block->size();
    trim();
  }
  void set_budget(std::size_t bytes) {
    std::lock_guard lock(mutex_);
    budget_ = bytes;
    trim();
  }

 private:
  void trim() {
    while (used_ > budget_ && !order_.empty()) {
      const auto it = map_.find(order_.front());
      used_ -= it->second.first->size();
      map_.erase(it);
      order_.pop_front();
    }
  }
  std::mutex mutex_;
  std::size_t budget_ = std::size_t{256} << 20, used_ = 0;  // warp.cache_mb's default until set
  std::list<BlockKey> order_;
  std::unordered_map<BlockKey, std::pair<Block, std::list<BlockKey>::iterator>, BlockKeyHash> map_;
};

BlockCache& cache() {
  static BlockCache c;
  return c;
}

struct FileIdHash {
  std::size_t operator()(const FileId& f) const { return BlockKeyHash()({f, 0}); }
};

// Layouts of the files seen (nullptr: a file left to GDAL); cleared when it grows large.
std::shared_ptr<const Layout> layout_of(const char* path, const FileId& id) {
  static std::mutex mutex;
  static std::unordered_map<FileId, std::shared_ptr<const Layout>, FileIdHash> layouts;
  {
    std::lock_guard lock(mutex);
    if (const auto it = layouts.find(id); it != layouts.end()) return it->second;
  }
  auto layout = read_layout(path);
  std::lock_guard lock(mutex);
  if (layouts.size() > 4096) layouts.clear();
  layouts.emplace(id, layout);
  return layout;
}

std::atomic<std::int64_t> windows_read{0}, windows_declined{0}, blocks_decoded{0}, blocks_reused{0};

// One block, decoded, or nullptr if it cannot be (sparse, short, not DEFLATE): GDAL then
// reads the window and says what is wrong.
Block decode(const Layout& l, int fd, const FileId& id, std::size_t index) {
  const BlockKey key{id, index};
  if (Block b = cache().find(key)) {
    ++blocks_reused;
    return b;
  }
  const std::uint64_t offset = l.offsets[index], count = l.counts[index];
  const int rows = l.rows_in(index);
  const std::size_t expected = static_cast<std::size_t>(l.block_w) * rows * l.per_pixel() * l.bytes();
  if (offset == 0 || count == 0) return nullptr;  // a sparse block: GDAL fills it
  std::vector<std::uint8_t> raw(count);
  if (::pread(fd, raw.data(), count, static_cast<off_t>(offset)) != static_cast<ssize_t>(count)) return nullptr;
  auto out = std::make_shared<std::vector<std::uint8_t>>();
  if (!l.deflate) {
    if (raw.size() < expected) return nullptr;
    raw.resize(expected);
    *out = std::move(raw);
  } else {
    thread_local std::unique_ptr<libdeflate_decompressor, void (*)(libdeflate_decompressor*)> d(
        libdeflate_alloc_decompressor(), libdeflate_free_decompressor);
    out->resize(expected);
    std::size_t got = 0;
    if (!d || libdeflate_zlib_decompress(d.get(), raw.data(), raw.size(), out->data(), expected, &got) != LIBDEFLATE_SUCCESS ||
        got != expected)
      return nullptr;
  }
  undo_predictor(l, out->data(), rows);
  ++blocks_decoded;
  if (l.deflate) cache().keep(key, out);  // an uncompressed block costs a read from the page cache: not worth memory
  return out;
}

template <typename Out>
void copy_block(const Layout& l, const std::uint8_t* block, int component, int bx, int by, int x0, int y0, int width,
                int height, Out* out) {
  const int bx0 = bx * l.block_w, by0 = by * l.block_h;
  const int cx0 = std::max(x0, bx0), cx1 = std::min({x0 + width, bx0 + l.block_w, l.width});
  const int cy0 = std::max(y0, by0), cy1 = std::min({y0 + height, by0 + l.block_h, l.height});
  const int step = l.per_pixel();
  const auto rows = [&](auto type_tag) {
    using T = decltype(type_tag);
    const T* values = reinterpret_cast<const T*>(block);
    for (int y = cy0; y < cy1; ++y) {
      const T* src = values + (static_cast<std::size_t>(y - by0) * l.block_w + (cx0 - bx0)) * step + component;
      Out* dst = out + static_cast<std::size_t>(y - y0) * width + (cx0 - x0);
      for (int x = 0; x < cx1 - cx0; ++x) dst[x] = static_cast<Out>(src[static_cast<std::size_t>(x) * step]);
    }
  };
  switch (l.sample) {
    case Sample::u8: rows(std::uint8_t{}); break;
    case Sample::u16: rows(std::uint16_t{}); break;
    case Sample::i16: rows(std::int16_t{}); break;
    case Sample::f32: rows(float{}); break;
  }
}

GDALDataType gdal_type(Sample s) {
  switch (s) {
    case Sample::u8: return GDT_Byte;
    case Sample::u16: return GDT_UInt16;
    case Sample::i16: return GDT_Int16;
    case Sample::f32: return GDT_Float32;
  }
  return GDT_Unknown;
}

template <typename Out>
bool read_window(GDALRasterBand& band, int x0, int y0, int width, int height, Out* out) {
  if (!gdal_mirror_holds(GdalMirror::tiff_blocks)) {
    ++windows_declined;
    return false;
  }
  GDALDataset* ds = band.GetDataset();
  if (!ds || !ds->GetDriver() || std::strcmp(ds->GetDriver()->GetDescription(), "GTiff") != 0) return false;
  const char* path = ds->GetDescription();
  struct stat st {};
  if (std::strncmp(path, "/vsi", 4) == 0 || ::stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return false;
  if (x0 < 0 || y0 < 0 || width <= 0 || height <= 0 || x0 + width > band.GetXSize() || y0 + height > band.GetYSize())
    return false;
  const FileId id{st.st_dev, st.st_ino, static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                  static_cast<std::int64_t>(st.st_size)};
  const auto layout = layout_of(path, id);
  const int b = band.GetBand();
  if (!layout || layout->width != ds->GetRasterXSize() || layout->height != ds->GetRasterYSize() ||
      layout->width != band.GetXSize() || layout->height != band.GetYSize() ||  // an overview's band is not
      layout->spp != ds->GetRasterCount() || b < 1 || b > layout->spp || band.GetRasterDataType() != gdal_type(layout->sample) ||
      (std::is_integral_v<Out> && layout->sample == Sample::f32)) {  // GDAL rounds floats to integers; a cast would not
    ++windows_declined;
    return false;
  }
  const Layout& l = *layout;
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    ++windows_declined;
    return false;
  }
  const std::size_t plane = static_cast<std::size_t>(l.across) * l.down;
  const int component = l.separate ? 0 : b - 1;
  bool ok = true;
  for (int by = y0 / l.block_h; ok && by <= (y0 + height - 1) / l.block_h; ++by)
    for (int bx = x0 / l.block_w; ok && bx <= (x0 + width - 1) / l.block_w; ++bx) {
      const std::size_t index = (l.separate ? static_cast<std::size_t>(b - 1) * plane : 0) +
                                static_cast<std::size_t>(by) * l.across + static_cast<std::size_t>(bx);
      const Block block = decode(l, fd, id, index);
      if (!block) ok = false;
      else copy_block(l, block->data(), component, bx, by, x0, y0, width, height, out);
    }
  ::close(fd);
  ok ? ++windows_read : ++windows_declined;
  return ok;
}

}  // namespace

bool read_tiff_window(GDALRasterBand& band, int x0, int y0, int width, int height, float* out) {
  return read_window(band, x0, y0, width, height, out);
}

bool read_tiff_window(GDALRasterBand& band, int x0, int y0, int width, int height, std::int32_t* out) {
  return read_window(band, x0, y0, width, height, out);
}

void set_tiff_block_cache(std::size_t bytes) { cache().set_budget(bytes); }

TiffBlockStats tiff_block_stats() {
  return {windows_read.load(), windows_declined.load(), blocks_decoded.load(), blocks_reused.load()};
}

}  // namespace eo
