#pragma once
// reproject: GDAL warp of a modality's sources onto a window of a tile's grid, in the
// tile's UTM zone at the configured pixel size, with per-modality resampling and no-data
// carried through as NaN.

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "pipeline/core/chip_batch.hpp"
#include "pipeline/core/grid.hpp"
#include "pipeline/core/modality.hpp"
#include "stages/ingest/catalog.hpp"
#include "stages/ingest/remote.hpp"

class GDALRasterBand;

namespace eo {

// A north-up window of a zone's grid.
struct GridWindow {
  Zone zone;
  double west = 0, north = 0;  // top-left corner, zone CRS metres
  double pixel = 10;           // metres
  int width = 0, height = 0;

  Box box() const { return {west, north - height * pixel, west + width * pixel, north}; }
  LonLatBox lonlat_box() const;
};

// The window covering chips [col0, col0 + cols) x [row0, row0 + rows) of a tile.
GridWindow chip_window(const TileId& tile, double pixel, int row0, int rows, int col0, int cols);

struct WarpSettings {
  Resampling resampling = Resampling::bilinear;
  int threads = 1;      // GDAL warper threads
  int memory_mb = 256;  // warper working memory
  // Columns of a window a composite reads at a time: a source block's width (COGs' 512),
  // so that the blocks two neighbouring panes share are still decoded when the second
  // reads them (ModalitySources::composite).
  int pane_width = 512;
  // A composite's pane holds every observation's bands of pane_width columns and as many
  // rows as fit in pane_mb: the composite's memory, the same whatever the scenes a season
  // holds (more scenes, fewer rows). 0: one row at a time.
  int pane_mb = 32;
  // Destination pixels per source pixel along each axis (gdalwarp -wo XSCALE/YSCALE),
  // which size the kernel; 0: from each source's own pixel size per axis (SourceSet::
  // scaled), never from the window or the other sources of a query. GDAL's own estimate
  // is per chunk, and for a rotated source (another UTM zone) depends on the chunk's
  // shape: a row of chips would differ from the same pixels of a whole tile.
  double xscale = 0, yscale = 0;
};

// One modality on a window: [channel][row][col] float32, NaN where no source has data.
struct WarpedModality {
  Modality modality;
  int channels = 0, width = 0, height = 0;
  std::vector<float> data;
  // Per season: clear observations of each pixel [season][row][col], and which
  // observations the season's composite was made of (in time order).
  std::vector<std::uint16_t> clear;
  std::vector<std::vector<ObservationInfo>> observations;
  float at(int channel, int row, int col) const {
    return data[(static_cast<std::size_t>(channel) * height + row) * width + col];
  }
};

// Sources read without GDAL's warper so far in this process, their grid agreeing with
// the window's (for tests and benchmarks).
std::int64_t aligned_reads();
// Sources in another CRS warped with the transformation on a lattice (lattice.hpp).
std::int64_t lattice_warps();

// The gdalwarp arguments used for a window, so that a test can give the very same ones
// to the gdalwarp program; resampling_arguments without the target grid, for warping
// into an existing file.
std::vector<std::string> warp_arguments(const GridWindow& window, const WarpSettings& settings);
std::vector<std::string> resampling_arguments(const WarpSettings& settings);

// Opens catalog records as warp inputs for some of the modality's bands (all by default):
// those bands, as Float32 with scale/offset applied (an in-memory VRT when needed) and
// no-data carried as NaN. A record with a mask (Sentinel-2's SCL) has the pixels of
// masked classes set to no-data at the file's own resolution before any resampling, so a
// cloudy pixel never reaches a clear one through the resampling kernel. Checks that each
// file's CRS is the one the catalog declares. Throws std::runtime_error naming the file
// (and its item and asset).
// One band of an opened file as the warp reads it, with its no-data value.
struct BandSource {
  GDALRasterBand* band = nullptr;
  std::optional<double> nodata;
};

class SourceSet {
 public:
  explicit SourceSet(const std::vector<const SourceRecord*>& records, std::vector<int> bands = {});
  // One scene's bands, one file each (each S2 band its own COG, VV and VH apart), on one
  // grid with one mask: read together into one input, masked once and warped in one go.
  // Throws NotStackable when the files' grids, CRS or masks differ.
  struct Stack {};
  struct NotStackable : std::runtime_error {
    using std::runtime_error::runtime_error;
  };
  SourceSet(const std::vector<const SourceRecord*>& records, Stack);
  ~SourceSet();
  SourceSet(const SourceSet&) = delete;
  SourceSet& operator=(const SourceSet&) = delete;
  bool empty() const { return inputs_.empty(); }
  const std::vector<int>& bands() const { return bands_; }  // modality bands, 0-based
  bool masked() const;
  // The settings with the kernel's scale fixed from source `source`'s own pixel size per
  // axis in metres (a geographic source's at its centre, on the WGS84 ellipsoid).
  WarpSettings scaled(const WarpSettings& settings, const GridWindow& window, std::size_t source = 0) const;
  std::size_t size() const { return inputs_.size(); }
  // Valid (unmasked) values of one of the set's bands (1-based) of one source, read
  // decimated to at most size x size (GDAL picks overviews), for statistics.
  std::vector<float> sample(std::size_t source, int band, int size) const;
  // Warps onto the window into out (bands x height x width); throws naming the culprit file.
  void warp(const GridWindow& window, const WarpSettings& settings, float* out, int bands);
  // The bytes of remote files that warps onto the windows will read and are not decoded
  // yet, each with the index of the first window that needs it (for a RemotePrefetch).
  void remote_ranges(const std::vector<GridWindow>& windows, const WarpSettings& settings, std::vector<RemoteRange>& out) const;

 private:
  void open();
  void close();
  // Sources [first, first + count) read over the window (with a kernel's margin), masked,
  // as one in-memory raster of all their bands; null when they do not reach the window.
  struct Cutout;
  std::unique_ptr<Cutout> cutout(std::size_t first, std::size_t count, const GridWindow& window,
                                 const WarpSettings& settings) const;
  // The bands sources [first, first + count) hand to a read, in order.
  std::vector<BandSource> band_sources(std::size_t first, std::size_t count) const;
  // Sources [first, first + count) on a grid that agrees with the window's (see aligned()
  // in warp.cpp), read and copied into out where they have values.
  void copy_aligned(std::size_t first, std::size_t count, const GridWindow& window, int step, long x0, long y0, float* out,
                    int bands) const;
  bool stacked_ = false;
  std::vector<std::vector<int>> source_bands_;  // per source, the file's bands the set reads
  std::vector<bool> unscaled_;                   // per source, whether its VRT unscales the file's values
  std::vector<std::pair<double, double>> pixel_m_;  // per source, its pixel's width and height in metres
  std::pair<double, double> affine_{1.0, 0.0};  // the catalog's scale and offset, after the warp
  std::vector<int> bands_;
  std::vector<const SourceRecord*> records_;
  std::vector<void*> datasets_;  // opened files (GDALDatasetH)
  std::vector<void*> inputs_;    // what the warper reads (the file or its VRT)
  std::vector<void*> masks_;     // opened mask files, nullptr where a record has none
};

// The sources of every season of a modality over an area, opened once and warped onto
// any number of windows inside it (the rows of chips of a tile). A season's scenes are
// composited per pixel (ModalityInfo::reduce), in a fixed order (time, then item), in
// panes of settings.pane_width columns small enough that all observations of a pane fit
// in settings.pane_mb; a season made of one product is warped as it is.
class ModalitySources {
 public:
  ModalitySources(const Catalog& catalog, Modality modality, const LonLatBox& area);
  ~ModalitySources();
  ModalitySources(ModalitySources&&) noexcept;
  WarpedModality warp(const GridWindow& window, const WarpSettings& settings) const;
  // The same into `out`, whose buffers are reused: a window's are hundreds of MB at 10 m,
  // which glibc maps afresh for every allocation that size, and the kernel faults in and
  // zeroes every page of each (5% of `run`'s time at the paper's settings).
  void warp(const GridWindow& window, const WarpSettings& settings, WarpedModality& out) const;
  // Per season, the observations over the area, in composite order.
  std::vector<std::vector<ObservationInfo>> observations() const;
  // SourceSet::remote_ranges of every season's sources.
  void remote_ranges(const std::vector<GridWindow>& windows, const WarpSettings& settings, std::vector<RemoteRange>& out) const;

 private:
  struct Observation;
  void composite(const std::vector<Observation>& season, const GridWindow& window, const WarpSettings& settings,
                 float* out, std::uint16_t* clear) const;
  Modality modality_;
  std::vector<std::vector<Observation>> seasons_;
};

// The medians a composite takes of the files' own values, for its test: `values` holds
// n_obs rows of `pixels` values (NaN: no observation), the result one median a pixel
// (NaN where none is valid).
std::vector<float> medians_by_network(const std::vector<float>& values, std::size_t n_obs, std::size_t pixels);

// Source footprints are bounds from sampled edges: a query pads its box so that a
// source reaching a window by a few metres is not missed.
LonLatBox padded(const LonLatBox& box);

// All seasons of a modality on one window.
WarpedModality warp_modality(const Catalog& catalog, Modality modality, const GridWindow& window,
                             const WarpSettings& settings);

// Sets the block caches of this process (MB): GDAL's, and the decoded GeoTIFF blocks of
// stages/ingest/tiff_blocks, each.
void set_gdal_cache(int megabytes);

}  // namespace eo
