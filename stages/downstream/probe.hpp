#pragma once
// The probe of what each embedding holds (issue 28): how well a modality's embedding
// predicts that modality's own chip band statistics (each band and season's mean and
// spread), through ridge regression fitted on the training stripes (its penalty chosen on
// the validation stripes) and scored on the test stripes. It needs no labels, so it means
// the same on real data. It diagnoses, it is no target: band statistics also carry each
// scene's gain and haze, which an embedding should ignore.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/core/modality.hpp"
#include "stages/downstream/samples.hpp"

namespace eo {

struct ProbeColumn {
  Modality modality;
  std::string channel;  // "R_MAM"
  bool spread = false;  // the standard deviation, else the mean
  double r2 = 0;
  std::size_t test_chips = 0;
};

struct ProbeResult {
  std::vector<ProbeColumn> columns;
  // Per modality, the mean R² of its channels' means and of their spreads, and the lowest.
  nlohmann::json summary() const;
  std::string csv() const;
  std::string markdown() const;
};

// `samples` carry each modality's embedding (its name) and band statistics
// (band_statistics_of); `split` is the few-shot experiment's.
ProbeResult probe_embeddings(const std::vector<ChipSample>& samples, const std::vector<SplitSet>& split,
                             const std::vector<Modality>& modalities);

}  // namespace eo
