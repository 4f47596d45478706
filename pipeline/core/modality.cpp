#include "pipeline/core/modality.hpp"

#include <fmt/format.h>
#include <stdexcept>

namespace eo {

const ModalityInfo& info(Modality m) {
  static const std::array<ModalityInfo, 5> table = {{
      {Modality::s2rgb, "s2rgb", {"R", "G", "B"}, kSeasons, Resampling::bilinear, false, Reduce::median},
      {Modality::s1amp, "s1amp", {"VV", "VH"}, kSeasons, Resampling::bilinear, false, Reduce::mean_power_db},
      {Modality::s1coh, "s1coh", {"coh"}, kSeasons, Resampling::bilinear, false, Reduce::mean},
      {Modality::worldcover, "worldcover", {"class"}, 1, Resampling::mode, true, Reduce::first},
      {Modality::treecover, "treecover", {"percent"}, 1, Resampling::average, false, Reduce::first},
  }};
  return table[static_cast<std::size_t>(m)];
}

Modality parse_modality(std::string_view name) {
  for (Modality m : {Modality::s2rgb, Modality::s1amp, Modality::s1coh, Modality::worldcover, Modality::treecover})
    if (name == info(m).name) return m;
  throw std::invalid_argument(
      fmt::format("'{}' is not a modality (s2rgb, s1amp, s1coh, worldcover, treecover)", name));
}

const char* season_name(int season) {
  static const char* names[kSeasons] = {"DJF", "MAM", "JJA", "SON"};
  return names[season];
}

std::string ModalityInfo::channel_name(int channel) const {
  const std::string& band = bands[static_cast<std::size_t>(channel) % bands.size()];
  if (seasons == 1) return band;
  return fmt::format("{}_{}", band, season_name(channel / static_cast<int>(bands.size())));
}

}  // namespace eo
