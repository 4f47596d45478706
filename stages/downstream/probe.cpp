#include "stages/downstream/probe.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <map>

#include "stages/downstream/models.hpp"
#include "stages/downstream/pca.hpp"

namespace eo {
namespace {

bool finite_row(const std::vector<float>& row) {
  return std::all_of(row.begin(), row.end(), [](float v) { return std::isfinite(v); });
}

// R² on the test stripes of a value of each chip's band statistics (NaN: none), predicted
// from its embedding by ridge fitted on the training stripes; NaN with too few chips.
struct Probed {
  double r2 = std::numeric_limits<double>::quiet_NaN();
  std::size_t test_chips = 0;
};
template <typename Value>
Probed probe_value(const std::vector<ChipSample>& samples, const std::vector<SplitSet>& split, Modality m,
                   const Value& value) {
  const std::string embedding = info(m).name, bands = band_statistics_of(m);
  Rows x[3];
  std::vector<float> y[3];
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const auto& f = samples[i].features;
    const auto e = f.find(embedding), b = f.find(bands);
    if (e == f.end() || b == f.end() || !finite_row(e->second)) continue;
    const float v = value(b->second);
    if (!std::isfinite(v)) continue;
    const auto set = static_cast<std::size_t>(split[i]);
    x[set].push_back(e->second);
    y[set].push_back(v);
  }
  Probed p{std::numeric_limits<double>::quiet_NaN(), y[2].size()};
  if (x[0].size() < 2 || x[1].empty() || x[2].empty()) return p;
  const auto predicted = fit_predict(ModelKind::ridge, {&x[0], &y[0]}, {&x[1], &y[1]}, x[2], 0, 1);
  p.r2 = score(y[2], predicted, std::nan("")).r2;
  return p;
}

// The principal components of a modality's band statistics, standardised on the training
// chips that have all of them, each probed as a value of every chip that has all of them.
std::vector<ProbeComponent> probe_components(const std::vector<ChipSample>& samples, const std::vector<SplitSet>& split,
                                             Modality m) {
  const std::string bands = band_statistics_of(m);
  Rows train;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const auto b = samples[i].features.find(bands);
    if (split[i] == SplitSet::train && b != samples[i].features.end() && finite_row(b->second)) train.push_back(b->second);
  }
  const std::size_t d = 2 * static_cast<std::size_t>(info(m).channels());
  if (train.size() < 2 * d) return {};
  std::vector<double> mean(d, 0), sd(d, 0);
  for (const auto& row : train)
    for (std::size_t j = 0; j < d; ++j) mean[j] += row[j] / static_cast<double>(train.size());
  for (const auto& row : train)
    for (std::size_t j = 0; j < d; ++j) sd[j] += (row[j] - mean[j]) * (row[j] - mean[j]) / static_cast<double>(train.size());
  for (double& s : sd) s = s > 0 ? std::sqrt(s) : 1;
  const auto standardised = [&](const std::vector<float>& row) {
    std::vector<double> z(d);
    for (std::size_t j = 0; j < d; ++j) z[j] = (row[j] - mean[j]) / sd[j];
    return z;
  };
  Rows z;
  for (const auto& row : train) {
    const auto s = standardised(row);
    z.emplace_back(s.begin(), s.end());
  }
  const Pca pca = fit_pca(z, static_cast<int>(d));
  double total = 0;
  for (double v : pca.variance) total += v;
  std::vector<ProbeComponent> out;
  for (std::size_t k = 0; k < pca.axes.size(); ++k) {
    const auto score_on_axis = [&](const std::vector<float>& row) {
      if (!finite_row(row)) return std::numeric_limits<float>::quiet_NaN();
      const auto z = standardised(row);
      double s = 0;
      for (std::size_t j = 0; j < d; ++j) s += z[j] * pca.axes[k][j];
      return static_cast<float>(s);
    };
    out.push_back({m, static_cast<int>(k), pca.variance[k] / total, probe_value(samples, split, m, score_on_axis).r2});
  }
  return out;
}

// Share-of-variance bins of the components, as the summary and the table give them.
constexpr double kBins[] = {0.1, 0.01, 0.001, 0};
std::string bin_name(std::size_t bin) {
  static const char* names[] = {"at_least_10pct", "1_to_10pct", "0_1_to_1pct", "under_0_1pct"};
  return names[bin];
}
std::size_t bin_of(double share) {
  std::size_t b = 0;
  while (share < kBins[b]) ++b;
  return b;
}

// Per modality, each bin's components' mean R² (NaN: no component in the bin) and count.
std::map<Modality, std::array<std::pair<double, int>, 4>> per_bin(const std::vector<ProbeComponent>& components) {
  std::map<Modality, std::array<std::pair<double, int>, 4>> out;
  for (const ProbeComponent& c : components) {
    if (std::isnan(c.r2)) continue;
    auto& bin = out[c.modality][bin_of(c.variance_share)];
    bin.first += c.r2, ++bin.second;
  }
  for (auto& [m, bins] : out)
    for (auto& [sum, n] : bins) sum = n ? sum / n : std::nan("");
  return out;
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
    for (std::size_t column = 0; column < 2 * static_cast<std::size_t>(info(m).channels()); ++column) {
      const Probed p = probe_value(samples, split, m, [&](const std::vector<float>& bands) { return bands[column]; });
      r.columns.push_back({m, info(m).channel_name(static_cast<int>(column / 2)), column % 2 == 1, p.r2, p.test_chips});
    }
  for (Modality m : modalities) {
    const auto components = probe_components(samples, split, m);
    r.components.insert(r.components.end(), components.begin(), components.end());
  }
  return r;
}

nlohmann::json ProbeResult::summary() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [m, s] : per_modality(columns))
    j[info(m).name] = {{"r2_means", s.means}, {"r2_spreads", s.spreads}, {"lowest_r2_mean", s.lowest_mean}};
  for (const auto& [m, bins] : per_bin(components))
    for (std::size_t b = 0; b < bins.size(); ++b)
      j[info(m).name]["components_" + bin_name(b)] = {{"mean_r2", bins[b].second ? nlohmann::json(bins[b].first) : nlohmann::json()},
                                                      {"count", bins[b].second}};
  return j;
}

std::string ProbeResult::components_csv() const {
  std::string out = "modality,component,variance_share,r2\n";
  for (const ProbeComponent& c : components)
    out += fmt::format("{},{},{:.6f},{:.4f}\n", info(c.modality).name, c.rank + 1, c.variance_share, c.r2);
  return out;
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
  const auto bins = per_bin(components);
  if (bins.empty()) return md;
  md += "\nThe same statistics by principal component (standardised on the training stripes), grouped by their share "
        "of the variance: mean R² of the components' scores (how many). A column's R² weighs directions by their "
        "variance; a land cover may lie in one with a ten-thousandth of it.\n\n"
        "| embedding | ≥ 10% | 1-10% | 0.1-1% | < 0.1% |\n|---|---|---|---|---|\n";
  for (const auto& [m, b] : bins) {
    md += fmt::format("| {}", info(m).name);
    for (const auto& [r2, n] : b) md += n ? fmt::format(" | {:.3f} ({})", r2, n) : std::string(" | -");
    md += " |\n";
  }
  return md;
}

}  // namespace eo
