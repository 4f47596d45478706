#pragma once
// How each product sees the ground: the class signatures of the synthetic world. Means
// are exposed so that tests can check that warped chips carry them.

#include <array>
#include <cstdint>

#include "stages/synth/world.hpp"

namespace eo::synth {

// Sentinel-2 RGB composite of a season, 1..255 (0 is no data), before pixel noise.
std::array<double, 3> s2_mean(const Ground& g, int season);
// Sentinel-1 backscatter of a season in dB (VV, VH), before speckle.
std::array<double, 2> s1_mean_db(const Ground& g, int season);
// Sentinel-1 6-day coherence of a season, 0..1, before estimation noise.
double coherence_mean(const Ground& g, int season);

// With noise drawn from u (uniforms in [0, 1)): what the synthetic products store.
std::array<std::uint8_t, 3> s2_sample(const Ground& g, int season, double u);
std::array<float, 2> s1_sample_db(const Ground& g, int season, const std::array<double, 8>& u);

}  // namespace eo::synth
