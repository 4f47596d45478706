#pragma once
// The latent land-cover field of the synthetic world: one deterministic function of
// (lon, lat) from which every product (S2, S1 amplitude, coherence, labels) is drawn, so
// that they share information without being copies of one another.

#include <cstdint>
#include <utility>

#include "pipeline/core/utm.hpp"

namespace eo::synth {

// WorldCover-like codes.
enum class Cover : std::uint8_t {
  tree = 10, grass = 30, crop = 40, built = 50, bare = 60, water = 80
};

struct Ground {
  Cover cover = Cover::grass;
  float tree_percent = 0;  // 0..100
  float texture = 0;       // -1..1, fine structure (buildings, canopy gaps, field rows)
  int crop_type = 0;       // 0..3 for cropland parcels: sets the crop calendar
  float wetness = 0;       // -1..1, slow field: soil moisture, season shifts
};

class World {
 public:
  // `origin` anchors the local metric frame; the world is defined everywhere.
  World(std::uint64_t seed, LonLat origin);
  Ground at(LonLat p) const;
  // Whether a cloud covers the point in a season's composite; about `fraction` of the
  // ground is covered, in patches of a few kilometres.
  bool cloud(LonLat p, int season, double fraction) const;
  // What a sensor adds to the ground in one season's acquisition (`layer`: sensor and
  // season): a smooth field in -0.5..0.5 varying over `scale_m` metres.
  double acquisition(LonLat p, double scale_m, std::uint32_t layer) const;

 private:
  double noise(double x, double y, std::uint32_t layer) const;  // value noise, -1..1
  double fbm(double x, double y, double scale_m, int octaves, std::uint32_t layer) const;
  std::pair<double, double> metres(LonLat p) const;  // east and north of the origin

  std::uint64_t seed_;
  LonLat origin_;
  double metres_per_deg_lon_, metres_per_deg_lat_;
};

// Deterministic per-sample noise in [0, 1) from integer coordinates and a stream id.
double hash_unit(std::uint64_t seed, std::int64_t a, std::int64_t b, std::uint64_t stream);

}  // namespace eo::synth
