#include "stages/synth/world.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace eo::synth {
namespace {

std::uint64_t mix(std::uint64_t x) {  // splitmix64 finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// Inverse error function (Giles' single-precision approximation, plenty here).
double inverse_erf(double x) {
  double w = -std::log((1.0 - x) * (1.0 + x)), p;
  if (w < 5.0) {
    w -= 2.5;
    p = 2.81022636e-08;
    for (double c : {3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
                     -0.00417768164, 0.246640727, 1.50140941})
      p = c + p * w;
  } else {
    w = std::sqrt(w) - 3.0;
    p = -0.000200214257;
    for (double c : {0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
                     0.00943887047, 1.00167406, 2.83297682})
      p = c + p * w;
  }
  return p * x;
}

double smooth(double t) { return t * t * t * (t * (t * 6 - 15) + 10); }

// Sizes of the structures, metres: they give class proportions that change from chip
// (4.48 km) to chip and structure inside a chip.
constexpr double kRelief = 30000, kMoisture = 14000, kUrban = 9000, kFarmland = 7000, kRiver = 18000;
constexpr double kParcelW = 420, kParcelH = 260, kBlock = 70;

}  // namespace

double hash_unit(std::uint64_t seed, std::int64_t a, std::int64_t b, std::uint64_t stream) {
  const std::uint64_t h = mix(seed ^ mix(static_cast<std::uint64_t>(a) * 0x9e3779b97f4a7c15ULL ^
                                         mix(static_cast<std::uint64_t>(b) + 0x632be59bd9b4e019ULL * (stream + 1))));
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

World::World(std::uint64_t seed, LonLat origin)
    : seed_(seed), origin_(origin),
      metres_per_deg_lon_(111320.0 * std::cos(origin.lat * std::numbers::pi / 180.0)),
      metres_per_deg_lat_(110574.0) {}

double World::noise(double x, double y, std::uint32_t layer) const {
  const double fx = std::floor(x), fy = std::floor(y);
  const auto ix = static_cast<std::int64_t>(fx), iy = static_cast<std::int64_t>(fy);
  const double tx = smooth(x - fx), ty = smooth(y - fy);
  auto v = [&](std::int64_t a, std::int64_t b) { return hash_unit(seed_, a, b, layer) * 2 - 1; };
  const double top = v(ix, iy) + tx * (v(ix + 1, iy) - v(ix, iy));
  const double bottom = v(ix, iy + 1) + tx * (v(ix + 1, iy + 1) - v(ix, iy + 1));
  return top + ty * (bottom - top);
}

double World::fbm(double x, double y, double scale_m, int octaves, std::uint32_t layer) const {
  double sum = 0, amp = 1, norm = 0, f = 1 / scale_m;
  for (int o = 0; o < octaves; ++o) {
    sum += amp * noise(x * f, y * f, layer * 16 + static_cast<std::uint32_t>(o));
    norm += amp;
    amp *= 0.5;
    f *= 2.03;
  }
  return sum / norm;
}

std::pair<double, double> World::metres(LonLat p) const {
  return {(p.lon - origin_.lon) * metres_per_deg_lon_, (p.lat - origin_.lat) * metres_per_deg_lat_};
}

bool World::cloud(LonLat p, int season, double fraction) const {
  if (fraction <= 0) return false;
  const auto [x, y] = metres(p);
  // fbm is roughly normal with sigma ~0.25: the threshold for a tail of `fraction`
  const double z = std::sqrt(2.0) * inverse_erf(1 - 2 * fraction);
  return fbm(x, y, 5000, 4, 20 + static_cast<std::uint32_t>(season)) > 0.25 * z;
}

double World::acquisition(LonLat p, double scale_m, std::uint32_t layer) const {
  const auto [x, y] = metres(p);
  return std::clamp(fbm(x, y, scale_m, 3, 40 + layer), -0.5, 0.5);
}

Ground World::at(LonLat p) const {
  const auto [x, y] = metres(p);
  Ground g;
  const double relief = fbm(x, y, kRelief, 4, 1);
  const double moisture = fbm(x, y, kMoisture, 4, 2);
  const double urban = fbm(x, y, kUrban, 3, 3);
  const double farmland = fbm(x, y, kFarmland, 3, 4);
  const double river = std::abs(fbm(x, y, kRiver, 4, 5));
  g.wetness = static_cast<float>(std::clamp(moisture * 1.6, -1.0, 1.0));

  if (relief < -0.30 || river < 0.012) {
    g.cover = Cover::water;
  } else if (urban > 0.30) {
    g.cover = Cover::built;
    // city blocks: roofs and streets on a grid, with gardens
    const double bx = x / kBlock, by = y / kBlock;
    const double street = std::min(std::abs(bx - std::round(bx)), std::abs(by - std::round(by)));
    const double roof = hash_unit(seed_, static_cast<std::int64_t>(std::floor(bx)), static_cast<std::int64_t>(std::floor(by)), 11);
    g.texture = static_cast<float>(street < 0.12 ? -0.6 : roof * 2 - 1);
    g.tree_percent = static_cast<float>(roof > 0.85 ? 40 : 5);
  } else if (moisture > 0.12) {
    g.cover = Cover::tree;
    const double canopy = fbm(x, y, 60, 2, 6);
    g.texture = static_cast<float>(canopy);
    g.tree_percent = static_cast<float>(std::clamp(70 + 60 * moisture + 25 * canopy, 35.0, 100.0));
  } else if (moisture < -0.32) {
    g.cover = Cover::bare;
    g.texture = static_cast<float>(fbm(x, y, 150, 2, 7));
  } else if (farmland > 0.0) {
    // parcels on a slightly rotated grid, each with its own crop; hedges between them
    const double a = 0.35, u = (x * std::cos(a) + y * std::sin(a)) / kParcelW, w = (-x * std::sin(a) + y * std::cos(a)) / kParcelH;
    const auto pu = static_cast<std::int64_t>(std::floor(u)), pw = static_cast<std::int64_t>(std::floor(w));
    const double edge = std::min({u - std::floor(u), std::ceil(u) - u, w - std::floor(w), std::ceil(w) - w});
    if (edge * kParcelH < 8) {
      g.cover = Cover::grass;
      g.tree_percent = 10;
    } else {
      g.cover = Cover::crop;
      g.crop_type = static_cast<int>(hash_unit(seed_, pu, pw, 12) * 4);
      g.texture = static_cast<float>(std::sin((u - std::floor(u)) * 60) * 0.5);  // rows
      g.tree_percent = 1;
    }
  } else {
    g.cover = Cover::grass;
    g.texture = static_cast<float>(fbm(x, y, 90, 2, 8));
    g.tree_percent = static_cast<float>(std::clamp(8 + 15 * moisture + 10 * g.texture, 0.0, 30.0));
  }
  return g;
}

}  // namespace eo::synth
