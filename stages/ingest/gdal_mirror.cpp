#include "stages/ingest/gdal_mirror.hpp"

#include <gdal.h>

#include <atomic>
#include <cstdlib>
#include <spdlog/spdlog.h>

namespace eo {
namespace {

std::atomic<int> pretended{0};
std::atomic<bool> said[2] = {false, false};

int running_version() {
  static const int real = std::atoi(GDALVersionInfo("VERSION_NUM"));
  const int p = pretended.load();
  return p != 0 ? p : real;
}

const char* what(GdalMirror mirror) {
  return mirror == GdalMirror::lattice_kernel ? "the lattice warp's kernel (GDAL's warper arithmetic)"
                                              : "the GeoTIFF block decoder (GDAL's reads)";
}

}  // namespace

bool gdal_mirror_holds(GdalMirror mirror) {
  const int version = running_version();
  if (version == kMirroredGdalVersion) return true;
  if (!said[static_cast<int>(mirror)].exchange(true))
    spdlog::info("GDAL {} is not the {} that {} was proven against: GDAL's own path runs instead", version,
                 kMirroredGdalVersion, what(mirror));
  return false;
}

void pretend_gdal_version(int version_num) {
  pretended = version_num;
  for (auto& s : said) s = false;
}

}  // namespace eo
