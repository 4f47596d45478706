#pragma once
// GDAL's warper with its exact coordinate transformation evaluated on a lattice of the
// tile grid and interpolated between the nodes: for a source in another CRS (EPSG:4326
// coherence, a neighbouring UTM zone), whose per-pixel transformation (gdalwarp -et 0)
// costs more than the resampling itself.
//
// The nodes sit every kLatticeSpacing pixels of the zone's grid, at absolute positions,
// and a pixel's source position depends only on its own position and on the four nodes
// around it: the result is the same whatever the window, its strips, the ranks or the
// threads. The kernel, no-data handling and mosaicking are GDAL's: its warper's, or for
// bilinear and nearest, the same arithmetic in our own loop (bit for bit, tested).

#include <string>

#include "stages/reproject/warp.hpp"

typedef void* GDALDatasetH;

namespace eo {

// Grid pixels between nodes; a power of two, so that node positions are exact.
inline constexpr int kLatticeSpacing = 8;

// Whether the lattice warp resamples with our own kernel (GDAL's arithmetic without its
// per-pixel overheads) rather than GDAL's warper.
bool lattice_kernel_is_ours(Resampling resampling);

// Warps `bands` bands of `input` onto `dst` (a dataset over the window's buffer `out`,
// whose pixels it overwrites where the input has data). `frame` is the file the input was
// cut from (the input itself when whole) and (frame_x, frame_y) the frame pixel of the
// input's pixel (0, 0): nodes are computed on the frame's grid, so a strip's cut-out and
// the whole file give the same positions. With `pixels`, the input's own band planes
// (NaN where a band has no data), a kernel of lattice_kernel_is_ours resamples them
// itself; GDAL's warper does every other. Throws naming `what` when GDAL fails.
void lattice_warp(GDALDatasetH input, GDALDatasetH frame, int frame_x, int frame_y, GDALDatasetH dst,
                  const GridWindow& window, const WarpSettings& settings, int bands, const std::string& what,
                  const float* pixels = nullptr, float* out = nullptr);

}  // namespace eo
