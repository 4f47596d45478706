#pragma once
// GDAL's warper with its exact coordinate transformation evaluated on a lattice of the
// tile grid and interpolated between the nodes: for a source in another CRS (EPSG:4326
// coherence, a neighbouring UTM zone), whose per-pixel transformation (gdalwarp -et 0)
// costs more than the resampling itself.
//
// The nodes sit every kLatticeSpacing pixels of the zone's grid, at absolute positions,
// and a pixel's source position depends only on its own position and on the four nodes
// around it: the result is the same whatever the window, its strips, the ranks or the
// threads. The kernel, no-data handling and mosaicking stay GDAL's.

#include <string>

#include "stages/reproject/warp.hpp"

typedef void* GDALDatasetH;

namespace eo {

// Grid pixels between nodes; a power of two, so that node positions are exact.
inline constexpr int kLatticeSpacing = 8;

// Warps `bands` bands of `input` onto `dst` (a dataset over the window's buffer, whose
// pixels it overwrites where the input has data). `frame` is the file the input was
// cut from (the input itself when whole) and (frame_x, frame_y) the frame pixel of the
// input's pixel (0, 0): nodes are computed on the frame's grid, so a strip's cut-out and
// the whole file give the same positions. Throws naming `what` when GDAL fails.
void lattice_warp(GDALDatasetH input, GDALDatasetH frame, int frame_x, int frame_y, GDALDatasetH dst,
                  const GridWindow& window, const WarpSettings& settings, int bands, const std::string& what);

}  // namespace eo
