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

// One principal component of a modality's band statistics (standardised on the training
// stripes): its share of their variance, and the R² of its score from the embedding. A
// column's R² weighs the directions in which chips differ by their variance; a land cover
// may lie in one with a ten-thousandth of it (cropland in the demo: summer's against autumn's
// cross-polarisation ratio), which a probe of the columns cannot see is lost.
struct ProbeComponent {
  Modality modality;
  int rank = 0;  // 0: the largest
  double variance_share = 0;
  double r2 = 0;
};

struct ProbeResult {
  std::vector<ProbeColumn> columns;
  std::vector<ProbeComponent> components;
  std::string components_csv() const;
  // Per modality, the mean R² of its channels' means and of their spreads, and the lowest;
  // and of its components by their share of the variance (at least 10%, 1-10%, 0.1-1%,
  // under 0.1%).
  nlohmann::json summary() const;
  std::string csv() const;
  std::string markdown() const;
};

// `samples` carry each modality's embedding (its name) and band statistics
// (band_statistics_of); `split` is the few-shot experiment's.
ProbeResult probe_embeddings(const std::vector<ChipSample>& samples, const std::vector<SplitSet>& split,
                             const std::vector<Modality>& modalities);

}  // namespace eo
