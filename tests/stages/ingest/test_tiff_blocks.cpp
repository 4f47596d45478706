// Our GeoTIFF block decoder against GDAL's own reads of files GDAL's GTiff and COG drivers
// wrote: every supported layout bit for bit (NaN payloads, infinities, edge blocks), the
// others left to GDAL, a rewritten file never served from the cache, a damaged one left to
// GDAL's error.

#include <gdal_priv.h>
#include <gdal_utils.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

#include "stages/ingest/gdal_mirror.hpp"
#include "stages/ingest/gdal_util.hpp"
#include "stages/ingest/tiff_blocks.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;

struct Case {
  GDALDataType type;
  std::vector<std::string> options;  // gdal_translate's
  int bands = 1;
  bool ours = true;  // decoded here, or left to GDAL
};

fs::path scratch() {
  const fs::path dir = fs::temp_directory_path() / ("eo_tiff_blocks_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

// A W x H raster of `bands` bands: a smooth field with noise, no-data runs, and (floats)
// NaN, infinities, negative zero and denormals; written by GDAL with `options`.
fs::path write(const fs::path& file, const Case& c, int width, int height, unsigned seed) {
  gdal_init();
  GDALDriver* mem = GetGDALDriverManager()->GetDriverByName("MEM");
  GdalDataset src(mem->Create("", width, height, c.bands, GDT_Float64, nullptr));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  for (int b = 1; b <= c.bands; ++b) {
    std::vector<double> v(static_cast<std::size_t>(width) * height);
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) {
        double value = 1000 + 800 * std::sin(x / 17.0 + b) * std::cos(y / 11.0) + 200 * u(rng);
        if (c.type == GDT_Int16) value -= 1500;
        if (c.type == GDT_Byte) value = std::fmod(value, 256);
        if (c.type == GDT_Float32) {
          value = (value - 1000) / 37.0;
          const double r = u(rng);
          if (r < 0.01) value = std::nan("");
          else if (r < 0.015) value = (r < 0.0125 ? 1 : -1) * INFINITY;
          else if (r < 0.02) value = -0.0;
          else if (r < 0.025) value = 1e-40;  // a float32 denormal
        }
        if (x % 50 < 3 && y % 40 < 5) value = 0;  // no-data runs
        v[static_cast<std::size_t>(y) * width + x] = value;
      }
    EXPECT_EQ(src->GetRasterBand(b)->RasterIO(GF_Write, 0, 0, width, height, v.data(), width, height, GDT_Float64, 0, 0),
              CE_None);
  }
  double gt[6] = {500000, 10, 0, 4100000, 0, -10};
  src->SetGeoTransform(gt);
  std::vector<std::string> args = {"-ot", GDALGetDataTypeName(c.type)};
  args.insert(args.end(), c.options.begin(), c.options.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  GDALTranslateOptions* opts = GDALTranslateOptionsNew(argv.data(), nullptr);
  fs::remove(file);
  GDALDatasetH out = GDALTranslate(file.c_str(), GDALDataset::ToHandle(src.get()), opts, nullptr);
  GDALTranslateOptionsFree(opts);
  EXPECT_NE(out, nullptr) << file << ": " << gdal_error();
  GDALClose(out);
  return file;
}

// Windows across the raster: all of it, single pixels at the corners, strips along the
// edges and random ones.
std::vector<std::array<int, 4>> windows(int width, int height, unsigned seed) {
  std::vector<std::array<int, 4>> out = {{0, 0, width, height}, {0, 0, 1, 1}, {width - 1, height - 1, 1, 1},
                                         {width - 5, 0, 5, height}, {0, height - 3, width, 3}};
  std::mt19937 rng(seed);
  for (int i = 0; i < 20; ++i) {
    const int x0 = static_cast<int>(rng() % width), y0 = static_cast<int>(rng() % height);
    out.push_back({x0, y0, 1 + static_cast<int>(rng() % (width - x0)), 1 + static_cast<int>(rng() % (height - y0))});
  }
  return out;
}

// Reads every window of every band through GDAL and through us; the bits must agree.
void expect_same_reads(const fs::path& file, bool ours) {
  GdalDataset ds = open_raster(file);
  const int width = ds->GetRasterXSize(), height = ds->GetRasterYSize();
  for (int b = 1; b <= ds->GetRasterCount(); ++b) {
    GDALRasterBand* band = ds->GetRasterBand(b);
    for (const auto& [x0, y0, w, h] : windows(width, height, static_cast<unsigned>(b))) {
      const std::size_t n = static_cast<std::size_t>(w) * h;
      std::vector<float> gdal(n), mine(n, 12345.f);
      ASSERT_EQ(band->RasterIO(GF_Read, x0, y0, w, h, gdal.data(), w, h, GDT_Float32, 0, 0), CE_None);
      const auto before = tiff_block_stats();
      ASSERT_EQ(read_tiff_window(*band, x0, y0, w, h, mine.data()), ours) << file << " band " << b;
      if (!ours) {
        EXPECT_EQ(tiff_block_stats().declined, before.declined + 1);
        continue;
      }
      ASSERT_EQ(std::memcmp(gdal.data(), mine.data(), n * sizeof(float)), 0)
          << file << " band " << b << " window " << x0 << "," << y0 << " " << w << "x" << h;
      if (band->GetRasterDataType() == GDT_Float32) continue;
      std::vector<std::int32_t> gi(n), mi(n, -7);  // how masks are read
      ASSERT_EQ(band->RasterIO(GF_Read, x0, y0, w, h, gi.data(), w, h, GDT_Int32, 0, 0), CE_None);
      ASSERT_TRUE(read_tiff_window(*band, x0, y0, w, h, mi.data()));
      ASSERT_EQ(gi, mi) << file << " band " << b;
    }
  }
}

TEST(TiffBlocks, EveryLayoutThatPublishersUseReadsAsGdalReadsIt) {
  const fs::path dir = scratch();
  const std::vector<std::string> tiled = {"-co", "TILED=YES", "-co", "BLOCKXSIZE=64", "-co", "BLOCKYSIZE=32"};
  const auto with = [](std::vector<std::string> a, std::initializer_list<std::string> more) {
    a.insert(a.end(), more);
    return a;
  };
  std::vector<Case> cases;
  for (GDALDataType t : {GDT_Byte, GDT_UInt16, GDT_Int16, GDT_Float32}) {
    const std::string predictor = t == GDT_Float32 ? "PREDICTOR=3" : "PREDICTOR=2";
    cases.push_back({t, with(tiled, {"-co", "COMPRESS=DEFLATE", "-co", predictor})});
    cases.push_back({t, with(tiled, {"-co", "COMPRESS=DEFLATE"})});
    cases.push_back({t, with(tiled, {"-co", "COMPRESS=NONE"})});
    cases.push_back({t, {"-co", "COMPRESS=DEFLATE", "-co", predictor, "-co", "BLOCKYSIZE=7"}});  // strips, a short last one
    cases.push_back({t, {"-co", "COMPRESS=NONE"}});
    // Several bands, by band and by pixel (the predictor then runs across a pixel's samples).
    cases.push_back({t, with(tiled, {"-co", "COMPRESS=DEFLATE", "-co", predictor, "-co", "INTERLEAVE=BAND"}), 3});
    cases.push_back({t, with(tiled, {"-co", "COMPRESS=DEFLATE", "-co", predictor, "-co", "INTERLEAVE=PIXEL"}), 3});
    // A cloud-optimised GeoTIFF with overviews, as Sentinel-2 and -1 COGs are published.
    cases.push_back({t, {"-of", "COG", "-co", "COMPRESS=DEFLATE", "-co", "PREDICTOR=YES", "-co", "BLOCKSIZE=128",
                         "-co", "OVERVIEWS=AUTO", "-co", "OVERVIEW_COUNT=2"}});
    // Left to GDAL: another compression.
    cases.push_back({t, with(tiled, {"-co", "COMPRESS=LZW"}), 1, false});
  }
  cases.push_back({GDT_Int32, with(tiled, {"-co", "COMPRESS=DEFLATE"}), 1, false});  // another sample type
  int i = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(GDALGetDataTypeName(c.type));
    const fs::path file = write(dir / ("case" + std::to_string(i++) + ".tif"), c, 203, 157, static_cast<unsigned>(i));
    expect_same_reads(file, c.ours);
  }
  fs::remove_all(dir);
}

TEST(TiffBlocks, ABlockReadTwiceIsDecodedOnce) {
  const fs::path dir = scratch();
  const fs::path file = write(dir / "a.tif", {GDT_UInt16, {"-co", "TILED=YES", "-co", "COMPRESS=DEFLATE"}}, 300, 300, 1);
  GdalDataset ds = open_raster(file);
  std::vector<float> v(100 * 100);
  const auto s0 = tiff_block_stats();
  ASSERT_TRUE(read_tiff_window(*ds->GetRasterBand(1), 200, 200, 100, 100, v.data()));  // 256 px tiles: 4 of them
  const auto s1 = tiff_block_stats();
  EXPECT_EQ(s1.decoded - s0.decoded, 4);
  GdalDataset again = open_raster(file);  // another dataset of the same file: what a neighbouring tile does
  ASSERT_TRUE(read_tiff_window(*again->GetRasterBand(1), 210, 210, 10, 10, v.data()));
  const auto s2 = tiff_block_stats();
  EXPECT_EQ(s2.decoded, s1.decoded);
  EXPECT_EQ(s2.reused - s1.reused, 1);
  fs::remove_all(dir);
}

TEST(TiffBlocks, AFileRewrittenUnderItsNameIsReadAnew) {
  const fs::path dir = scratch();
  const Case c{GDT_Float32, {"-co", "TILED=YES", "-co", "COMPRESS=DEFLATE", "-co", "PREDICTOR=3"}};
  const fs::path file = write(dir / "a.tif", c, 100, 80, 1);
  std::vector<float> first(100 * 80), second(100 * 80);
  {
    GdalDataset ds = open_raster(file);
    ASSERT_TRUE(read_tiff_window(*ds->GetRasterBand(1), 0, 0, 100, 80, first.data()));
  }
  write(file, c, 100, 80, 2);
  expect_same_reads(file, true);
  GdalDataset ds = open_raster(file);
  ASSERT_TRUE(read_tiff_window(*ds->GetRasterBand(1), 0, 0, 100, 80, second.data()));
  EXPECT_NE(std::memcmp(first.data(), second.data(), first.size() * sizeof(float)), 0);
  fs::remove_all(dir);
}

// With a GDAL other than the one the decoder was proven against, every window is left to
// GDAL (the reads stay GDAL's), and the log says so once.
TEST(TiffBlocks, AnotherGdalLeavesEveryWindowToGdal) {
  const fs::path dir = scratch();
  const fs::path file = write(dir / "a.tif", {GDT_UInt16, {"-co", "TILED=YES", "-co", "COMPRESS=DEFLATE"}}, 300, 300, 1);
  GdalDataset ds = open_raster(file);
  std::vector<float> v(100 * 100);
  std::ostringstream log;
  const auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
  pretend_gdal_version(3070000);
  const auto before = tiff_block_stats();
  EXPECT_FALSE(read_tiff_window(*ds->GetRasterBand(1), 0, 0, 100, 100, v.data()));
  EXPECT_FALSE(read_tiff_window(*ds->GetRasterBand(1), 100, 0, 100, 100, v.data()));
  EXPECT_EQ(tiff_block_stats().declined - before.declined, 2);
  expect_same_reads(file, false);  // every window of the file declined
  pretend_gdal_version(kMirroredGdalVersion);
  EXPECT_TRUE(read_tiff_window(*ds->GetRasterBand(1), 0, 0, 100, 100, v.data()));
  pretend_gdal_version(0);
  EXPECT_TRUE(read_tiff_window(*ds->GetRasterBand(1), 0, 0, 100, 100, v.data())) << "this machine's GDAL is the proven one";
  spdlog::set_default_logger(previous);
  const std::string text = log.str();
  const std::string line = "GDAL 3070000 is not the 3060200 that the GeoTIFF block decoder (GDAL's reads) was proven against";
  EXPECT_NE(text.find(line), std::string::npos) << text;
  EXPECT_EQ(text.find(line), text.rfind(line)) << "said more than once: " << text;
  fs::remove_all(dir);
}

TEST(TiffBlocks, ADamagedBlockIsLeftToGdalsError) {
  const fs::path dir = scratch();
  const fs::path file = write(dir / "a.tif", {GDT_UInt16, {"-co", "TILED=YES", "-co", "COMPRESS=DEFLATE"}}, 300, 300, 1);
  fs::resize_file(file, fs::file_size(file) / 2);  // a download cut short: its blocks point past the end
  GdalDataset ds = open_raster(file);
  std::vector<float> v(300 * 300);
  const auto before = tiff_block_stats();
  EXPECT_FALSE(read_tiff_window(*ds->GetRasterBand(1), 0, 0, 300, 300, v.data()));
  EXPECT_EQ(tiff_block_stats().declined, before.declined + 1);
  CPLErrorReset();
  EXPECT_NE(ds->GetRasterBand(1)->RasterIO(GF_Read, 0, 0, 300, 300, v.data(), 300, 300, GDT_Float32, 0, 0), CE_None);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace eo
