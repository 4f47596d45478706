#include "stages/synth/products.hpp"

#include <algorithm>
#include <cmath>

namespace eo::synth {
namespace {

// Crop calendars: in which seasons (DJF, MAM, JJA, SON) a crop type is green, ripe or
// bare soil. 0 bare, 1 green, 2 ripe.
constexpr int kCalendar[4][4] = {{0, 1, 2, 0}, {1, 2, 0, 0}, {0, 0, 1, 2}, {1, 1, 1, 0}};

int crop_state(const Ground& g, int season) { return kCalendar[g.crop_type & 3][season]; }

double lin(double db) { return std::pow(10.0, db / 10.0); }

}  // namespace

std::array<double, 3> s2_mean(const Ground& g, int season) {
  const double t = g.texture;
  switch (g.cover) {
    case Cover::water: return {18, 32, 58};
    case Cover::tree: {
      static constexpr double c[4][3] = {{38, 58, 40}, {34, 82, 42}, {30, 72, 36}, {62, 64, 34}};
      return {c[season][0] + 8 * t, c[season][1] + 12 * t, c[season][2] + 6 * t};
    }
    case Cover::grass: {
      static constexpr double c[4][3] = {{96, 102, 80}, {82, 124, 62}, {124, 120, 72}, {112, 104, 76}};
      return {c[season][0] + 10 * t, c[season][1] + 10 * t, c[season][2] + 6 * t};
    }
    case Cover::crop: {
      static constexpr double c[3][3] = {{134, 102, 76}, {52, 118, 50}, {176, 152, 84}};
      const double* s = c[crop_state(g, season)];
      return {s[0] + 6 * t, s[1] + 8 * t, s[2] + 4 * t};
    }
    case Cover::built: return {150 + 60 * t, 146 + 58 * t, 142 + 56 * t};
    case Cover::bare: return {192 + 14 * t, 166 + 12 * t, 130 + 10 * t};
  }
  return {0, 0, 0};
}

std::array<double, 2> s1_mean_db(const Ground& g, int season) {
  const double wet = 0.8 * g.wetness + (season == 0 ? 0.8 : season == 2 ? -0.8 : 0.0);
  switch (g.cover) {
    case Cover::water: return {-22.0 + (season == 0 ? 2 : 0), -28};
    case Cover::tree: return {-7.5 + 0.5 * g.texture, -12.5 + 0.8 * g.texture};
    case Cover::grass: return {-11 + wet, -18 + wet};
    case Cover::crop: {
      static constexpr double c[3][2] = {{-12.5, -21}, {-9, -14.5}, {-10, -16.5}};
      const int s = crop_state(g, season);
      return {c[s][0] + wet, c[s][1] + wet};
    }
    case Cover::built: return {g.texture > 0.3 ? 3.0 : -5.0, g.texture > 0.3 ? -6.0 : -11.0};  // double bounce
    case Cover::bare: return {-15 + 0.5 * wet, -24 + 0.5 * wet};
  }
  return {-20, -26};
}

double coherence_mean(const Ground& g, int season) {
  switch (g.cover) {
    case Cover::water: return 0.06;
    case Cover::tree: return 0.18 + (season == 0 ? 0.06 : 0.0);
    case Cover::grass: return season == 0 ? 0.52 : season == 2 ? 0.34 : 0.42;
    case Cover::crop: {
      static constexpr double c[3] = {0.62, 0.22, 0.32};
      return c[crop_state(g, season)];
    }
    case Cover::built: return 0.78;
    case Cover::bare: return 0.70;
  }
  return 0.0;
}

std::array<std::uint8_t, 3> s2_sample(const Ground& g, int season, double u) {
  const auto m = s2_mean(g, season);
  const double n = (u - 0.5) * 10;  // sensor and composite noise, shared by the bands
  std::array<std::uint8_t, 3> out{};
  for (int b = 0; b < 3; ++b) out[static_cast<std::size_t>(b)] = static_cast<std::uint8_t>(std::clamp(std::lround(m[static_cast<std::size_t>(b)] + n), 1L, 255L));
  return out;
}

std::array<float, 2> s1_sample_db(const Ground& g, int season, const std::array<double, 8>& u) {
  // Multiplicative speckle of a 4-look intensity: the mean of 4 unit exponentials.
  const auto m = s1_mean_db(g, season);
  std::array<float, 2> out{};
  for (int p = 0; p < 2; ++p) {
    double gamma = 0;
    for (int k = 0; k < 4; ++k) gamma -= std::log(std::max(u[static_cast<std::size_t>(p * 4 + k)], 1e-12));
    out[static_cast<std::size_t>(p)] = static_cast<float>(10 * std::log10(lin(m[static_cast<std::size_t>(p)]) * gamma / 4));
  }
  return out;
}

}  // namespace eo::synth
