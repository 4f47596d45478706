#pragma once
// Our resampling on the lattice: GDAL's warper arithmetic for bilinear and nearest (its
// GWKGeneralCase), without its per-pixel overheads, bit for bit. A mirror of a library's
// arithmetic on the hot path (DESIGN.md §7), guarded to the GDAL it was proven against
// (stages/ingest/gdal_mirror.hpp): with another GDAL, lattice_kernel_is_ours says no and
// GDAL's warper runs.

#include "stages/reproject/lattice_nodes.hpp"

namespace eo::lattice {

// A cut-out of the input: band planes of width x height, NaN where a band has no data.
struct Pixels {
  const float* values;
  int width, height, bands;
  std::size_t plane() const { return static_cast<std::size_t>(width) * height; }
  float at(int band, long offset) const { return values[band * plane() + static_cast<std::size_t>(offset)]; }
};

// Each window pixel's centre to input pixel through the lattice, a pixel off the input
// or whose own input pixel has no band with data left alone, else each band's value
// where its kernel (settings.resampling: bilinear or near) has weight, into `out`.
void resample(const Lattice& l, const Pixels& in, float* out, const GridWindow& window, const WarpSettings& settings);

}  // namespace eo::lattice
