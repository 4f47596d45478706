#pragma once
// The input products the pipeline knows (DESIGN.md §1): what a channel of each is, how it
// is stored, and how it is resampled by default.

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/core/choices.hpp"

namespace eo {

enum class Modality { s2rgb, s1amp, s1coh, worldcover, treecover };

inline constexpr std::array<Modality, 3> kImageModalities = {Modality::s2rgb, Modality::s1amp, Modality::s1coh};
inline constexpr std::array<Modality, 2> kLabelModalities = {Modality::worldcover, Modality::treecover};
inline constexpr int kSeasons = 4;  // DJF, MAM, JJA, SON

// How the observations (scenes) of a season become one value per pixel (DESIGN.md §2).
enum class Reduce {
  median,         // of the clear observations (Sentinel-2)
  mean_power_db,  // mean in linear power, handed on in dB (Sentinel-1 backscatter)
  mean,           // (coherence)
  first,          // the first in time order that has a value (label maps)
};

struct ModalityInfo {
  Modality modality;
  const char* name;
  std::vector<std::string> bands;  // per season
  int seasons;                     // 4 for seasonal products, 1 for label maps
  Resampling resampling;           // the warp's default
  bool integer;                    // stored as uint8 in the chip store (else float32): class maps
  Reduce reduce;                   // how a season's observations are composited
  int channels() const { return static_cast<int>(bands.size()) * seasons; }
  // "R_MAM", "VV_DJF", "coh_SON", "class"
  std::string channel_name(int channel) const;
};

const ModalityInfo& info(Modality m);
Modality parse_modality(std::string_view name);  // throws std::invalid_argument
const char* season_name(int season);              // "DJF", "MAM", "JJA", "SON"

}  // namespace eo
