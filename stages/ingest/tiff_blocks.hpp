#pragma once
// Reads windows of GeoTIFF bands by decoding their blocks ourselves, for the layouts the
// publishers of Sentinel-1/2 COGs use (tiled or striped, DEFLATE or none, horizontal or
// floating-point predictor, 8/16-bit integers or 32-bit floats, little-endian), and keeps
// the decoded blocks across tiles. Why: libtiff undoes the predictors a byte or a sample at
// a time through memory (~5 cycles each; the floating-point one is a quarter of `run`'s
// time on the demo), and GDAL's block cache dies with each dataset, so a block under the
// border of two tiles was decoded twice. The values are the file's bits, as GDAL reads
// them (tested against GDAL's RasterIO); any other layout is left to GDAL, and so is
// every file where the running GDAL is not the one that was proven (gdal_mirror.hpp).
// Remote files (stages/ingest/remote) are decoded the same way, the blocks of a window
// fetched all at once.

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

class GDALRasterBand;

namespace eo {

// Reads [x0, x0 + width) x [y0, y0 + height) of `band` into `out` (row-major), if the
// band is of a GeoTIFF this module decodes; false, with nothing read, otherwise (the
// caller reads through GDAL, which also gives the error for a damaged file).
bool read_tiff_window(GDALRasterBand& band, int x0, int y0, int width, int height, float* out);
bool read_tiff_window(GDALRasterBand& band, int x0, int y0, int width, int height, std::int32_t* out);

// The byte ranges of a remote band's blocks under a window that are not decoded already,
// for a prefetch ahead of the reads (stages/ingest/remote); none for a local file or a
// layout this module does not know.
std::vector<std::pair<std::uint64_t, std::uint64_t>> remote_tiff_ranges(GDALRasterBand& band, int x0, int y0, int width,
                                                                        int height);

// The decoded blocks kept (per process, all threads), in bytes; 0 keeps none.
void set_tiff_block_cache(std::size_t bytes);

struct TiffBlockStats {
  std::int64_t windows = 0;   // windows read here
  std::int64_t declined = 0;  // windows left to GDAL (another layout)
  std::int64_t decoded = 0;   // blocks decoded
  std::int64_t reused = 0;    // blocks served from the cache
};
TiffBlockStats tiff_block_stats();

}  // namespace eo
