#include "stages/downstream/targets.hpp"

#include <cmath>
#include <limits>

namespace eo {

std::vector<TargetSpec> default_targets() {
  return {{"tree", Modality::worldcover, 10},
          {"cropland", Modality::worldcover, 40},
          {"built_up", Modality::worldcover, 50},
          {"water", Modality::worldcover, 80},
          {"tree_cover_pct", Modality::treecover, -1}};
}

std::vector<std::vector<float>> chip_targets(const ChipBatch& batch, const std::vector<TargetSpec>& specs,
                                             double min_valid) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::size_t pixels = static_cast<std::size_t>(batch.size) * batch.size;
  std::vector<std::vector<float>> out(batch.chips.size(), std::vector<float>(specs.size(), nan));
  for (std::size_t t = 0; t < specs.size(); ++t) {
    const ModalityChips* m = batch.find(specs[t].source);
    if (!m) continue;
    for (std::size_t k = 0; k < batch.chips.size(); ++k) {
      const float* v = m->values.data() + k * batch.chip_values(*m);  // the first (only) channel
      std::size_t valid = 0, hits = 0;
      double sum = 0;
      for (std::size_t i = 0; i < pixels; ++i) {
        if (std::isnan(v[i])) continue;
        ++valid;
        sum += v[i];
        hits += specs[t].proportion() && std::lround(v[i]) == specs[t].class_code;
      }
      if (valid == 0 || static_cast<double>(valid) < min_valid * static_cast<double>(pixels)) continue;
      out[k][t] = static_cast<float>(specs[t].proportion() ? static_cast<double>(hits) / valid : sum / valid);
    }
  }
  return out;
}

std::vector<std::vector<float>> band_statistics(const ChipBatch& batch, const std::vector<Modality>& modalities) {
  const std::size_t pixels = static_cast<std::size_t>(batch.size) * batch.size;
  std::vector<std::vector<float>> out(batch.chips.size());
  for (Modality modality : modalities) {
    const ModalityChips* m = batch.find(modality);
    const int channels = info(modality).channels();
    for (std::size_t k = 0; k < batch.chips.size(); ++k)
      for (int c = 0; c < channels; ++c) {
        double sum = 0, sq = 0;
        std::size_t n = 0;
        if (m) {
          const float* v = m->values.data() + k * batch.chip_values(*m) + static_cast<std::size_t>(c) * pixels;
          for (std::size_t i = 0; i < pixels; ++i)
            if (!std::isnan(v[i])) {
              sum += v[i];
              sq += static_cast<double>(v[i]) * v[i];
              ++n;
            }
        }
        const double mean = n ? sum / n : std::nan(""), var = n ? std::max(0.0, sq / n - mean * mean) : std::nan("");
        out[k].push_back(static_cast<float>(mean));
        out[k].push_back(static_cast<float>(std::sqrt(var)));
      }
  }
  return out;
}

}  // namespace eo
