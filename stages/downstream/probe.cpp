#include "stages/downstream/probe.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <map>

#include "stages/downstream/models.hpp"

namespace eo {
namespace {

bool finite_row(const std::vector<float>& row) {
  return std::all_of(row.begin(), row.end(), [](float v) { return std::isfinite(v); });
}

// R² on the test stripes of one column of a modality's band statistics, from its embedding.
ProbeColumn probe_column(const std::vector<ChipSample>& samples, const std::vector<SplitSet>& split, Modality m,
                         std::size_t column) {
  const std::string embedding = info(m).name, bands = band_statistics_of(m);
  Rows x[3];
  std::vector<float> y[3];
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const auto& f = samples[i].features;
    const auto e = f.find(embedding), b = f.find(bands);
    if (e == f.end() || b == f.end() || !finite_row(e->second) || !std::isfinite(b->second[column])) continue;
    const auto set = static_cast<std::size_t>(split[i]);
    x[set].push_back(e->second);
    y[set].push_back(b->second[column]);
  }
  ProbeColumn c{m, info(m).channel_name(static_cast<int>(column / 2)), column % 2 == 1,
                std::numeric_limits<double>::quiet_NaN(), y[2].size()};
  if (x[0].size() < 2 || x[1].empty() || x[2].empty()) return c;
  const auto predicted = fit_predict(ModelKind::ridge, {&x[0], &y[0]}, {&x[1], &y[1]}, x[2], 0, 1);
  c.r2 = score(y[2], predicted, std::nan("")).r2;
  return c;
}

struct Means {
  double means = 0, spreads = 0, lowest_mean = std::numeric_limits<double>::infinity();
  int n_means = 0, n_spreads = 0;
};

std::map<Modality, Means> per_modality(const std::vector<ProbeColumn>& columns) {
  std::map<Modality, Means> out;
  for (const ProbeColumn& c : columns) {
    if (std::isnan(c.r2)) continue;
    Means& m = out[c.modality];
    if (c.spread) {
      m.spreads += c.r2, ++m.n_spreads;
    } else {
      m.means += c.r2, ++m.n_means;
      m.lowest_mean = std::min(m.lowest_mean, c.r2);
    }
  }
  for (auto& [modality, m] : out) {
    m.means = m.n_means ? m.means / m.n_means : std::nan("");
    m.spreads = m.n_spreads ? m.spreads / m.n_spreads : std::nan("");
  }
  return out;
}

}  // namespace

ProbeResult probe_embeddings(const std::vector<ChipSample>& samples, const std::vector<SplitSet>& split,
                             const std::vector<Modality>& modalities) {
  ProbeResult r;
  for (Modality m : modalities)
    for (std::size_t column = 0; column < 2 * static_cast<std::size_t>(info(m).channels()); ++column)
      r.columns.push_back(probe_column(samples, split, m, column));
  return r;
}

nlohmann::json ProbeResult::summary() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [m, s] : per_modality(columns))
    j[info(m).name] = {{"r2_means", s.means}, {"r2_spreads", s.spreads}, {"lowest_r2_mean", s.lowest_mean}};
  return j;
}

std::string ProbeResult::csv() const {
  std::string out = "modality,channel,statistic,r2,test_chips\n";
  for (const ProbeColumn& c : columns)
    out += fmt::format("{},{},{},{:.4f},{}\n", info(c.modality).name, c.channel, c.spread ? "sd" : "mean", c.r2,
                       c.test_chips);
  return out;
}

std::string ProbeResult::markdown() const {
  std::string md = "\n## What each embedding holds\n\nR² on the test stripes of each modality's own chip band statistics "
                   "(each band and season), predicted linearly (ridge) from that modality's embedding: a probe that "
                   "needs no labels. It diagnoses; band statistics also carry each scene's gain and haze.\n\n"
                   "| embedding | means (mean R²) | lowest mean | spreads (mean R²) |\n|---|---|---|---|\n";
  for (const auto& [m, s] : per_modality(columns))
    md += fmt::format("| {} | {:.3f} | {:.3f} | {:.3f} |\n", info(m).name, s.means, s.lowest_mean, s.spreads);
  return md;
}

}  // namespace eo
