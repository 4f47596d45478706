#include "stages/ingest/tiff_blocks.hpp"

#include "stages/ingest/gdal_mirror.hpp"
#include "stages/ingest/remote.hpp"

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
#include <fmt/format.h>
#include <list>
#include <memory>
#include <type_traits>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace eo {

namespace {

// A file as it is now: a file replaced or rewritten under the same name is another file.
struct FileId {
  std::string name;  // a local file's device and inode; a remote file's URL and ETag
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
    std::size_t h = std::hash<std::string>()(k.file.name);
    for (std::uint64_t v : {static_cast<std::uint64_t>(k.file.mtime_ns), static_cast<std::uint64_t>(k.file.size),
                            static_cast<std::uint64_t>(k.index)})
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

// libtiff over GDAL's virtual files, for a remote file (its header from the remote reader's cache).
VSILFILE* vsi(thandle_t h) { return static_cast<VSILFILE*>(h); }
tmsize_t vsi_read(thandle_t h, void* buffer, tmsize_t n) {
  return static_cast<tmsize_t>(VSIFReadL(buffer, 1, static_cast<size_t>(n), vsi(h)));
}
tmsize_t vsi_write(thandle_t, void*, tmsize_t) { return 0; }
toff_t vsi_seek(thandle_t h, toff_t offset, int whence) {
  return VSIFSeekL(vsi(h), offset, whence) == 0 ? VSIFTellL(vsi(h)) : static_cast<toff_t>(-1);
}
int vsi_close(thandle_t h) { return VSIFCloseL(vsi(h)); }
toff_t vsi_size(thandle_t h) {
  const vsi_l_offset at = VSIFTellL(vsi(h));
  VSIFSeekL(vsi(h), 0, SEEK_END);
  const vsi_l_offset size = VSIFTellL(vsi(h));
  VSIFSeekL(vsi(h), at, SEEK_SET);
  return size;
}
int vsi_map(thandle_t, void**, toff_t*) { return 0; }
void vsi_unmap(thandle_t, void*, toff_t) {}

TIFF* open_tiff(const char* path, bool remote, TIFFOpenOptions* options) {
  if (!remote) return TIFFOpenExt(path, "rm", options);
  VSILFILE* f = VSIFOpenL(path, "rb");
  if (!f) return nullptr;
  TIFF* tif = TIFFClientOpenExt(path, "rm", f, vsi_read, vsi_write, vsi_seek, vsi_close, vsi_size, vsi_map, vsi_unmap, options);
  if (!tif) VSIFCloseL(f);  // libtiff closes the handle only once it has opened
  return tif;
}

// The layout of a file if this module decodes it.
std::shared_ptr<const Layout> read_layout(const char* path, bool remote) {
  TIFFOpenOptions* options = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(options, quiet, nullptr);
  TIFFOpenOptionsSetWarningHandlerExtR(options, quiet, nullptr);  // GeoTIFF's tags are not libtiff's
  TIFF* tif = open_tiff(path, remote, options);
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

// Bytes that a resize leaves uninitialised: what is read or decoded into them overwrites
// every one, and zeroing them first was another pass over every block.
template <typename T>
struct DefaultInit : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = DefaultInit<U>;
  };
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    if constexpr (sizeof...(Args) == 0) ::new (static_cast<void*>(p)) U;
    else ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
using Bytes = std::vector<std::uint8_t, DefaultInit<std::uint8_t>>;

using Block = std::shared_ptr<const Bytes>;

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
std::shared_ptr<const Layout> layout_of(const char* path, bool remote, const FileId& id) {
  static std::mutex mutex;
  static std::unordered_map<FileId, std::shared_ptr<const Layout>, FileIdHash> layouts;
  {
    std::lock_guard lock(mutex);
    if (const auto it = layouts.find(id); it != layouts.end()) return it->second;
  }
  auto layout = read_layout(path, remote);
  std::lock_guard lock(mutex);
  if (layouts.size() > 4096) layouts.clear();
  layouts.emplace(id, layout);
  return layout;
}

std::atomic<std::int64_t> windows_read{0}, windows_declined{0}, blocks_decoded{0}, blocks_reused{0};

// One block from its bytes as stored, decoded, or nullptr if it cannot be (short, corrupt):
// GDAL then reads the window and says what is wrong.
Block decode(const Layout& l, Bytes raw, const FileId& id, std::size_t index, bool remote) {
  const int rows = l.rows_in(index);
  const std::size_t expected = static_cast<std::size_t>(l.block_w) * rows * l.per_pixel() * l.bytes();
  auto out = std::make_shared<Bytes>();
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
  // An uncompressed local block costs a read from the page cache, not worth memory; a remote one a request.
  if (l.deflate || remote) cache().keep({id, index}, out);
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

// A band of a GeoTIFF this module decodes, with what it needs to read the band's blocks.
struct Decodable {
  std::string path;
  bool remote = false;
  FileId id;
  std::shared_ptr<const Layout> layout;
  // The band's blocks under a window, in row order: their index in the file and their
  // column and row in the band's grid of blocks.
  struct At {
    std::size_t index;
    int bx, by;
  };
  std::vector<At> blocks(int band, int x0, int y0, int width, int height) const {
    const Layout& l = *layout;
    const std::size_t plane = static_cast<std::size_t>(l.across) * l.down;
    std::vector<At> out;
    for (int by = y0 / l.block_h; by <= (y0 + height - 1) / l.block_h; ++by)
      for (int bx = x0 / l.block_w; bx <= (x0 + width - 1) / l.block_w; ++bx)
        out.push_back({(l.separate ? static_cast<std::size_t>(band - 1) * plane : 0) + static_cast<std::size_t>(by) * l.across +
                           static_cast<std::size_t>(bx),
                       bx, by});
    return out;
  }
};

// The band as this module reads it, if it does: a GeoTIFF of a layout it decodes, on local
// disk or remote (stages/ingest/remote), the window inside it.
std::optional<Decodable> decodable(GDALRasterBand& band, int x0, int y0, int width, int height) {
  GDALDataset* ds = band.GetDataset();
  if (!ds || !ds->GetDriver() || std::strcmp(ds->GetDriver()->GetDescription(), "GTiff") != 0) return std::nullopt;
  if (x0 < 0 || y0 < 0 || width <= 0 || height <= 0 || x0 + width > band.GetXSize() || y0 + height > band.GetYSize())
    return std::nullopt;
  Decodable d;
  d.path = ds->GetDescription();
  d.remote = is_remote_path(d.path);
  if (d.remote) {
    const auto object = remote_object_info(d.path);  // known since GDAL opened it: no request
    if (!object) return std::nullopt;
    d.id = {d.path + "\n" + object->etag, 0, object->size};
  } else {
    struct stat st {};
    if (d.path.starts_with("/vsi") || ::stat(d.path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    d.id = {fmt::format("{}:{}", st.st_dev, st.st_ino),
            static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec, static_cast<std::int64_t>(st.st_size)};
  }
  d.layout = layout_of(d.path.c_str(), d.remote, d.id);
  const int b = band.GetBand();
  const Layout* l = d.layout.get();
  if (!l || l->width != ds->GetRasterXSize() || l->height != ds->GetRasterYSize() || l->width != band.GetXSize() ||
      l->height != band.GetYSize() ||  // an overview's band is not
      l->spp != ds->GetRasterCount() || b < 1 || b > l->spp || band.GetRasterDataType() != gdal_type(l->sample))
    return std::nullopt;
  return d;
}

// The stored bytes of blocks of a file: a local one's read one by one, a remote one's all
// at once (one round trip for the window, or none after a prefetch). Empty where a block
// cannot be had (sparse, short, a failed request): GDAL then reads the window.
std::vector<Bytes> stored_bytes(const Decodable& d, const std::vector<std::size_t>& indices) {
  const Layout& l = *d.layout;
  std::vector<Bytes> raw(indices.size());
  std::vector<void*> buffers;
  std::vector<std::uint64_t> offsets;
  std::vector<std::size_t> sizes;
  for (std::size_t i = 0; i < indices.size(); ++i) {
    const std::uint64_t offset = l.offsets[indices[i]], count = l.counts[indices[i]];
    if (offset == 0 || count == 0) continue;  // a sparse block: GDAL fills it
    raw[i].resize(count);
    buffers.push_back(raw[i].data()), offsets.push_back(offset), sizes.push_back(count);
  }
  if (d.remote) {
    if (!buffers.empty() &&
        !read_remote_ranges(d.path, static_cast<int>(buffers.size()), buffers.data(), offsets.data(), sizes.data()))
      for (auto& r : raw) r.clear();
    return raw;
  }
  const int fd = ::open(d.path.c_str(), O_RDONLY | O_CLOEXEC);
  for (std::size_t i = 0; i < raw.size(); ++i)
    if (!raw[i].empty() && (fd < 0 || ::pread(fd, raw[i].data(), raw[i].size(), static_cast<off_t>(l.offsets[indices[i]])) !=
                                          static_cast<ssize_t>(raw[i].size())))
      raw[i].clear();
  if (fd >= 0) ::close(fd);
  return raw;
}

template <typename Out>
bool read_window(GDALRasterBand& band, int x0, int y0, int width, int height, Out* out) {
  if (!gdal_mirror_holds(GdalMirror::tiff_blocks)) {
    ++windows_declined;
    return false;
  }
  const auto d = decodable(band, x0, y0, width, height);
  // GDAL rounds floats to integers; a cast would not.
  if (!d || (std::is_integral_v<Out> && d->layout->sample == Sample::f32)) {
    ++windows_declined;
    return false;
  }
  const Layout& l = *d->layout;
  const int b = band.GetBand();
  const auto at = d->blocks(b, x0, y0, width, height);
  std::vector<Block> blocks(at.size());
  std::vector<std::size_t> missing;  // positions in `at`
  for (std::size_t i = 0; i < at.size(); ++i)
    if ((blocks[i] = cache().find({d->id, at[i].index}))) ++blocks_reused;
    else missing.push_back(i);
  std::vector<std::size_t> wanted;
  for (std::size_t i : missing) wanted.push_back(at[i].index);
  std::vector<Bytes> raw = stored_bytes(*d, wanted);
  for (std::size_t k = 0; k < missing.size(); ++k)
    if (!raw[k].empty() && !(blocks[missing[k]] = decode(l, std::move(raw[k]), d->id, wanted[k], d->remote))) break;
  const int component = l.separate ? 0 : b - 1;
  for (std::size_t i = 0; i < at.size(); ++i) {
    if (!blocks[i]) {
      ++windows_declined;
      return false;
    }
    copy_block(l, blocks[i]->data(), component, at[i].bx, at[i].by, x0, y0, width, height, out);
  }
  ++windows_read;
  return true;
}

}  // namespace

bool read_tiff_window(GDALRasterBand& band, int x0, int y0, int width, int height, float* out) {
  return read_window(band, x0, y0, width, height, out);
}

bool read_tiff_window(GDALRasterBand& band, int x0, int y0, int width, int height, std::int32_t* out) {
  return read_window(band, x0, y0, width, height, out);
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> remote_tiff_ranges(GDALRasterBand& band, int x0, int y0, int width,
                                                                        int height) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  const auto d = decodable(band, x0, y0, width, height);
  if (!d || !d->remote) return ranges;
  const Layout& l = *d->layout;
  for (const auto& block : d->blocks(band.GetBand(), x0, y0, width, height))
    if (l.offsets[block.index] != 0 && l.counts[block.index] != 0 && !cache().find({d->id, block.index}))
      ranges.emplace_back(l.offsets[block.index], l.counts[block.index]);
  return ranges;
}

void set_tiff_block_cache(std::size_t bytes) { cache().set_budget(bytes); }

TiffBlockStats tiff_block_stats() {
  return {windows_read.load(), windows_declined.load(), blocks_decoded.load(), blocks_reused.load()};
}

}  // namespace eo
