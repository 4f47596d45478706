#pragma once
// Two pieces of the hot path mirror GDAL's arithmetic (DESIGN.md §7): the lattice warp's
// kernel (stages/reproject/lattice_kernel) repeats GDAL's warper, the GeoTIFF block
// decoder (stages/ingest/tiff_blocks) GDAL's reads. Each was proven bit for bit against
// one GDAL, the one their tests ran on; with any other, nothing holds them to the
// library, so they stand aside and GDAL's own path runs, and the first time says so in
// one line of the log.

namespace eo {

enum class GdalMirror { lattice_kernel, tiff_blocks };

// The GDAL the mirrors were proven against (GDAL_VERSION_NUM's form): Debian 12's 3.6.2.
inline constexpr int kMirroredGdalVersion = 3060200;

// Whether `mirror` may run with the GDAL this process runs.
bool gdal_mirror_holds(GdalMirror mirror);

// For tests: act as if the running GDAL were `version_num`; 0 returns to the real one.
// The log line is said again after each call.
void pretend_gdal_version(int version_num);

}  // namespace eo
