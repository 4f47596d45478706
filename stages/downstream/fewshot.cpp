#include "stages/downstream/fewshot.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <spdlog/spdlog.h>
#include <thread>
#include <tuple>

#include "pipeline/core/files.hpp"
#include "pipeline/core/parallel.hpp"
#include "pipeline/core/resources.hpp"
#include "stages/downstream/models.hpp"
#include "stages/downstream/picture.hpp"
#include "stages/downstream/probe.hpp"
#include "stages/downstream/split.hpp"

namespace eo {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct Result {
  std::string target, features, model;
  int n = 0, seed = 0;
  Scores scores;      // on the test stripes
  Scores validation;  // on the validation stripes: what the best model is chosen on
};

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? std::nan("") : s / static_cast<double>(v.size());
}

// Test R^2 against the number of training chips (log scale, ticked at the sizes of the
// sweep), a line per feature set (the best model at each size), the baselines dashed, the
// legend beside the plot.
void draw_curve(const fs::path& file, const std::string& target,
                const std::map<std::string, std::vector<std::pair<int, double>>>& lines) {
  const int w = 720, h = 480, left = 64, right = 150, top = 44, bottom = 56;
  double lo = 1, n_min = 1e9, n_max = 1;
  std::set<int> sizes;
  for (const auto& [f, pts] : lines)
    for (const auto& [n, r2] : pts) {
      lo = std::min(lo, r2);
      n_min = std::min(n_min, static_cast<double>(n)), n_max = std::max(n_max, static_cast<double>(n));
      sizes.insert(n);
    }
  lo = std::max(std::floor(std::min(lo, 0.8) * 10) / 10, -1.0);  // R² below -1 is off the plot
  n_min = std::max(1.0, n_min / 1.25), n_max *= 1.25;
  auto px = [&](double n) { return left + (std::log(n) - std::log(n_min)) / (std::log(n_max) - std::log(n_min)) * (w - left - right); };
  auto py = [&](double r2) { return h - bottom - (std::clamp(r2, lo, 1.0) - lo) / (1 - lo) * (h - top - bottom); };
  static const std::map<std::string, Rgb> colours = {{"s2rgb", {214, 39, 40}}, {"s1amp", {31, 119, 180}},
                                                     {"s1coh", {255, 127, 14}}, {"fused", {44, 160, 44}},
                                                     {kConcatenated, {148, 103, 189}},
                                                     {kBandStatistics, {0, 0, 0}}};
  save_figure(file, w, h, [&](Painter& p) {
    p.text(left, 12, fmt::format("{}: test R² against training chips", target), 14, Painter::Anchor::left, true);
    const Rgb grid = {228, 228, 228}, axis = {60, 60, 60};
    for (double r : nice_ticks(lo, 1.0, 6)) {
      p.line(left, py(r), w - right, py(r), grid);
      p.text(left - 6, py(r) - 7, fmt::format("{:.1f}", r), 10, Painter::Anchor::right);
    }
    for (int n : sizes) {  // ticks at the sizes the sweep fitted
      p.line(px(n), top, px(n), h - bottom, grid);
      p.line(px(n), h - bottom, px(n), h - bottom + 4, axis);
      p.text(px(n), h - bottom + 6, std::to_string(n), 10, Painter::Anchor::centre);
    }
    p.line(left, h - bottom, w - right, h - bottom, axis);
    p.line(left, top, left, h - bottom, axis);
    p.text((left + w - right) / 2.0, h - 22, "labelled training chips (log scale)", 11, Painter::Anchor::centre);
    p.vertical_text(16, (top + h - bottom) / 2.0, "test R²", 11);
    double legend = top;
    for (const auto& [f, pts] : lines) {
      // A modality's own band statistics: its colour, dashed like the pooled baseline.
      const bool baseline = f.starts_with(kBandStatistics);
      const std::string hue = f.starts_with(std::string(kBandStatistics) + "_") ? f.substr(std::strlen(kBandStatistics) + 1) : f;
      const Rgb colour = colours.count(hue) ? colours.at(hue) : Rgb{128, 0, 128};
      std::vector<std::array<double, 2>> line;
      for (const auto& [n, r2] : pts) line.push_back({px(n), py(r2)});
      p.polyline(line, colour, f == "fused" ? 3 : 2, baseline ? 6 : 0);
      for (const auto& pt : line) p.dot(pt[0], pt[1], 3, colour);
      p.line(w - right + 12, legend + 7, w - right + 40, legend + 7, colour, 2, baseline ? 6 : 0);
      p.text(w - right + 46, legend, f, 11);
      legend += 20;
    }
  });
}

std::vector<std::string> feature_sets_of(const FewshotInput& in) {
  std::vector<std::string> sets = in.cube->embedding_arrays();
  sets.push_back(kConcatenated);
  // The band-statistics baseline (when the samples have it), pooled and each modality's
  // own, the baseline its embedding is judged against.
  if (!in.samples.empty() && in.samples.front().features.count(kBandStatistics)) {
    sets.push_back(kBandStatistics);
    for (Modality m : in.cube->modalities) sets.push_back(band_statistics_of(m));
  }
  return sets;
}

// One fit of the sweep.
struct Job {
  std::size_t target;
  int n, seed;
  bool all;
  std::string features;
  ModelKind model;
};

// Every fit of the sweep, and each target's chips in the train, validation and test sets.
struct Sweep {
  std::vector<Job> jobs;
  std::vector<std::array<std::vector<std::size_t>, 3>> sets;  // train, validation, test per target
  json counts = json::object();
};

Sweep plan_sweep(const FewshotConfig& fewshot, const FewshotInput& in, const std::vector<SplitSet>& split,
                 const std::vector<std::string>& feature_sets) {
  const std::vector<ChipSample>& samples = in.samples;
  Sweep sweep;
  sweep.sets.resize(in.targets.size());
  for (std::size_t t = 0; t < in.targets.size(); ++t) {
    auto& [train, val, test] = sweep.sets[t];
    for (std::size_t i = 0; i < samples.size(); ++i) {
      if (std::isnan(samples[i].targets[t])) continue;
      (split[i] == SplitSet::train ? train : split[i] == SplitSet::validation ? val : test).push_back(i);
    }
    sweep.counts[in.targets[t].name] = {{"train", train.size()}, {"validation", val.size()}, {"test", test.size()}};
    if (train.size() < 2 || val.empty() || test.empty()) {
      spdlog::warn("fewshot: {}: too few labelled chips ({} train, {} validation, {} test): skipped", in.targets[t].name,
                   train.size(), val.size(), test.size());
      continue;
    }
    std::vector<int> sizes;
    for (int n : fewshot.sizes)
      if (static_cast<std::size_t>(n) < train.size()) sizes.push_back(n);
    sizes.push_back(static_cast<int>(train.size()));  // all
    for (int n : sizes)
      for (int seed = 0; seed < fewshot.seeds; ++seed)
        for (const std::string& f : feature_sets)
          for (ModelKind m : {ModelKind::ridge, ModelKind::gbt, ModelKind::rf})
            sweep.jobs.push_back({t, n, seed, n == static_cast<int>(train.size()), f, m});
  }
  return sweep;
}

// One fit: its training chips drawn from the target's, fitted, scored on the validation
// stripes (which also tuned its penalty or rounds) and on the test stripes.
Result fit_one(const FewshotConfig& fewshot, const FewshotInput& in, const Sweep& sweep, const Job& j) {
  const auto& [train, val, test] = sweep.sets[j.target];
  std::vector<std::size_t> chosen = train;
  std::mt19937_64 rng(static_cast<std::uint64_t>(j.seed) * 1000003u + static_cast<std::uint64_t>(j.n));
  std::shuffle(chosen.begin(), chosen.end(), rng);
  chosen.resize(static_cast<std::size_t>(j.n));
  const auto column = [&](const std::vector<std::size_t>& idx, Rows& x, std::vector<float>& y) {
    for (std::size_t i : idx) x.push_back(in.samples[i].features.at(j.features)), y.push_back(in.samples[i].targets[j.target]);
  };
  Rows xt, xv, xq;
  std::vector<float> yt, yv, yq;
  column(chosen, xt, yt);
  column(val, xv, yv);
  column(test, xq, yq);
  // One prediction of the validation chips, then the test chips.
  Rows query = xv;
  query.insert(query.end(), xq.begin(), xq.end());
  const double threshold = in.targets[j.target].proportion() ? fewshot.presence_threshold : std::nan("");
  const auto p = fit_predict(j.model, {&xt, &yt}, {&xv, &yv}, query, static_cast<std::uint64_t>(j.seed), 1, fewshot.max_bin);
  const auto test_from = p.begin() + static_cast<std::ptrdiff_t>(xv.size());
  Result r{in.targets[j.target].name, j.features, model_name(j.model), j.all ? -1 : j.n, j.seed, {}, {}};
  r.scores = score(yq, std::vector<float>(test_from, p.end()), threshold);
  r.validation = score(yv, std::vector<float>(p.begin(), test_from), threshold);
  return r;
}

// Every fit, side by side on every core, one thread each (so one fit's numbers do not
// depend on how many run beside it), the dearest first (forests, then boosting, on the
// most chips) so that the last to finish are short ones; results in the sweep's order.
std::vector<Result> run_sweep(const FewshotConfig& fewshot, const FewshotInput& in, const Sweep& sweep, int threads) {
  const std::vector<Job>& jobs = sweep.jobs;
  std::vector<Result> results(jobs.size());
  std::vector<std::size_t> by_cost(jobs.size());
  std::iota(by_cost.begin(), by_cost.end(), 0);
  const auto cost = [&](const Job& j) {
    return (j.model == ModelKind::rf ? 4.0 : j.model == ModelKind::gbt ? 2.0 : 0.1) * j.n *
           static_cast<double>(in.samples.front().features.at(j.features).size() + 16);
  };
  std::stable_sort(by_cost.begin(), by_cost.end(), [&](std::size_t a, std::size_t b) { return cost(jobs[a]) > cost(jobs[b]); });
  std::size_t done = 0;
  std::mutex mutex;
  const auto sweep_start = std::chrono::steady_clock::now();
  auto last_report = sweep_start;
  parallel_for(by_cost.size(), threads, [&](std::size_t o) {
    results[by_cost[o]] = fit_one(fewshot, in, sweep, jobs[by_cost[o]]);
    const std::lock_guard lock(mutex);  // a long sweep shows where it is
    const auto now = std::chrono::steady_clock::now();
    if (++done == by_cost.size() || now - last_report > std::chrono::seconds(10)) {
      last_report = now;
      spdlog::info("fewshot: {} of {} fits done in {:.0f} s", done, by_cost.size(),
                   std::chrono::duration<double>(now - sweep_start).count());
    }
  });
  return results;
}

// Every fit's scores, per seed.
void write_results_csv(const std::vector<Result>& results, const fs::path& file) {
  std::string csv = "target,features,model,n,seed,r2,rmse,f1,accuracy,validation_r2\n";
  for (const Result& r : results)
    csv += fmt::format("{},{},{},{},{},{:.4f},{:.4f},{:.4f},{:.4f},{:.4f}\n", r.target, r.features, r.model,
                       r.n < 0 ? "all" : std::to_string(r.n), r.seed, r.scores.r2, r.scores.rmse, r.scores.f1,
                       r.scores.accuracy, r.validation.r2);
  write_atomically(file, csv);
}

// The sweep's R^2 over seeds, per target, features, model and size (-1: all), on the test
// stripes and on the validation stripes.
class MeanR2 {
 public:
  explicit MeanR2(const std::vector<Result>& results) {
    for (const Result& r : results) {
      Fits& fits = r2_[{r.target, r.features, r.model, r.n}];
      fits.test.push_back(r.scores.r2);
      fits.validation.push_back(r.validation.r2);
    }
  }
  // The sizes fitted for a target (and features, when given).
  std::set<int> sizes(const std::string& target, const std::string& features = "") const {
    std::set<int> ns;
    for (const auto& [key, v] : r2_)
      if (std::get<0>(key) == target && (features.empty() || std::get<1>(key) == features)) ns.insert(std::get<3>(key));
    return ns;
  }
  std::optional<double> of(const std::string& target, const std::string& features, const char* model, int n) const {
    const auto it = r2_.find({target, features, model, n});
    if (it == r2_.end()) return std::nullopt;
    return mean_of(it->second.test);
  }
  // The best model per target, features and size: the one with the best mean R^2 on the
  // validation stripes. The test stripes choose nothing, so its mean test R^2, what the
  // claim is about, is not flattered by the choice.
  struct Best {
    double test = std::nan(""), validation = -std::numeric_limits<double>::infinity();
    std::string model;
  };
  Best best(const std::string& target, const std::string& features, int n) const {
    Best b;
    for (const char* m : {"ridge", "gbt", "rf"}) {
      const auto it = r2_.find({target, features, m, n});
      if (it == r2_.end()) continue;
      if (const double v = mean_of(it->second.validation); v > b.validation)
        b = {mean_of(it->second.test), v, m};
    }
    return b;
  }

 private:
  using Key = std::tuple<std::string, std::string, std::string, int>;  // target, features, model, n
  struct Fits {
    std::vector<double> test, validation;
  };
  std::map<Key, Fits> r2_;
};

// A target's table of mean R^2: a row per features and model, a column per size.
std::string target_table(const std::string& target, const std::vector<int>& order,
                         const std::vector<std::string>& feature_sets, const MeanR2& r2) {
  std::string md = fmt::format("\n## {}\n\n| features | model |", target);
  for (int n : order) md += n < 0 ? " all |" : fmt::format(" {} |", n);
  md += "\n|---|---|";
  for (std::size_t i = 0; i < order.size(); ++i) md += "---|";
  md += "\n";
  for (const std::string& f : feature_sets)
    for (const char* m : {"ridge", "gbt", "rf"}) {
      md += fmt::format("| {} | {} |", f, m);
      for (int n : order) {
        const auto v = r2.of(target, f, m, n);
        md += v ? fmt::format(" {:.3f} |", *v) : " |";
      }
      md += "\n";
    }
  return md;
}

// The claim at 250 chips: fused and concatenated against all chips and the band
// statistics, each modality against its own bands. Adds to the target's summary `per`.
std::string claim_at_250(const FewshotInput& in, json& per) {
  const double bands250 = per[kBandStatistics]["r2_250"].get<double>();
  std::string md = "\nTest R² of the model chosen on the validation stripes:";
  for (const char* f : {"fused", kConcatenated}) {
    const double at250 = per[f]["r2_250"].get<double>(), at_all = per[f]["r2_all"].get<double>();
    per[fmt::format("{}_250_over_all", f)] = at_all > 0 ? at250 / at_all : std::nan("");
    per[fmt::format("{}_beats_bands_at_250", f)] = at250 > bands250;
    md += fmt::format(" {} {:.3f} with 250 chips, {:.3f} with all ({:.0f}%);", f, at250, at_all,
                      at_all > 0 ? 100 * at250 / at_all : 0.0);
  }
  md += fmt::format(" band statistics {:.3f} with 250.\n", bands250);
  // Each modality against its own bands, the comparison the research claims per modality.
  std::string own;
  for (Modality m : in.cube->modalities) {
    const std::string b = band_statistics_of(m);
    if (!per.contains(b) || per[b]["r2_250"].is_null()) continue;
    const double emb = per[info(m).name]["r2_250"].get<double>(), raw = per[b]["r2_250"].get<double>();
    per[fmt::format("{}_beats_own_bands_at_250", info(m).name)] = emb > raw;
    own += fmt::format(" {} {:.3f} against its bands {:.3f};", info(m).name, emb, raw);
  }
  if (!own.empty()) md += "Each modality with 250 chips:" + own + "\n";
  return md;
}

// results.md's text (the means over seeds) and summary.json's targets.
std::string summarise(const FewshotConfig& fewshot, const FewshotInput& in, const std::vector<std::string>& feature_sets,
                      const MeanR2& r2, json& summary) {
  std::string md = fmt::format("# Few-shot results: {}\n\nCube `{}` (model {}); {} embedded chips, split by {} stripes at "
                               "{}° (60/20/20); mean test R² over {} seeds. Below the tables, each feature set's model is the one "
                               "with the best mean R² on the validation stripes.\n",
                               in.name, in.cube_path.string(), in.cube->provenance.value("model_version", std::string("?")),
                               in.samples.size(), fewshot.stripes, fewshot.split_angle, fewshot.seeds);
  for (const TargetSpec& target : in.targets) {
    const std::set<int> ns = r2.sizes(target.name);
    if (ns.empty()) continue;
    std::vector<int> order(ns.begin(), ns.end());
    if (order.front() == -1) std::rotate(order.begin(), order.begin() + 1, order.end());  // "all" last
    md += target_table(target.name, order, feature_sets, r2);
    json per = json::object();
    for (const std::string& f : feature_sets) {
      const auto all = r2.best(target.name, f, -1), at_250 = r2.best(target.name, f, 250);
      per[f] = {{"r2_all", all.test}, {"model_all", all.model}, {"validation_r2_all", all.validation},
                {"r2_250", ns.count(250) ? json(at_250.test) : json()}, {"model_250", at_250.model},
                {"validation_r2_250", ns.count(250) ? json(at_250.validation) : json()}};
    }
    if (ns.count(250) && per.contains(kBandStatistics)) md += claim_at_250(in, per);
    summary["targets"][target.name] = per;
  }
  return md;
}

// Learning curves: the best model's mean R^2 at each size, per feature set. Returns the files.
std::vector<std::string> draw_curves(const FewshotInput& in, const std::vector<std::string>& feature_sets,
                                     const MeanR2& r2, const json& counts, const fs::path& dir) {
  std::vector<std::string> files;
  for (const TargetSpec& target : in.targets) {
    std::map<std::string, std::vector<std::pair<int, double>>> lines;
    const int all_n = counts.contains(target.name) ? counts[target.name]["train"].get<int>() : 0;
    for (const std::string& f : feature_sets) {
      for (int n : r2.sizes(target.name, f)) lines[f].emplace_back(n < 0 ? all_n : n, r2.best(target.name, f, n).test);
      std::sort(lines[f].begin(), lines[f].end());
    }
    if (lines.empty() || lines.begin()->second.empty()) continue;
    const fs::path file = dir / fmt::format("curve_{}.png", target.name);
    draw_curve(file, target.name, lines);
    files.push_back(file.string());
  }
  return files;
}

}  // namespace

std::string balance_warning(const std::string& name, const std::vector<float>& labelled, const std::vector<float>& mapped) {
  const auto mean = [](const std::vector<float>& a) {
    double sum = 0;
    for (float v : a) sum += v;
    return sum / static_cast<double>(std::max<std::size_t>(1, a.size()));
  };
  const double l = mean(labelled), m = mean(mapped);
  if (std::abs(l - m) <= 0.05 || (l <= 2 * m && m <= 2 * l)) return "";
  return fmt::format("class {} is {:.0f}% of the labelled chips but {:.0f}% of the map: label the classes about as often "
                     "as the area has them, or the map leans towards the labels' balance", name, 100 * l, 100 * m);
}

std::vector<SplitSet> split_samples(const FewshotConfig& fewshot, const std::vector<ChipSample>& samples) {
  std::vector<Point> points;
  for (const ChipSample& s : samples) points.push_back(s.at);
  return stripe_split(points, fewshot.split_angle, fewshot.stripes);
}

std::optional<LabelMap> fit_label_map(const FewshotConfig& fewshot, const std::vector<ChipSample>& samples,
                                      std::size_t target, const std::vector<SplitSet>& split, const Rows& query,
                                      double threshold, int threads) {
  Rows xt, xv, x = query;  // the test chips are predicted with the map, in the same call
  std::vector<float> yt, yv, y_test;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const float y = samples[i].targets[target];
    if (std::isnan(y)) continue;
    const std::vector<float>& f = samples[i].features.at("fused");
    if (split[i] == SplitSet::train) xt.push_back(f), yt.push_back(y);
    else if (split[i] == SplitSet::validation) xv.push_back(f), yv.push_back(y);
    else x.push_back(f), y_test.push_back(y);
  }
  if (xt.size() < 2 || xv.empty()) return std::nullopt;
  std::vector<float> predicted = fit_predict(ModelKind::gbt, {&xt, &yt}, {&xv, &yv}, x, 0, threads, fewshot.max_bin);
  LabelMap out;
  out.train = xt.size(), out.validation = xv.size(), out.test_chips = y_test.size();
  const std::vector<float> on_test(predicted.begin() + static_cast<long>(query.size()), predicted.end());
  const double nan = std::nan("");
  out.test = y_test.empty() ? Scores{nan, nan, nan, nan} : score(y_test, on_test, threshold);
  predicted.resize(query.size());
  out.predicted = std::move(predicted);
  return out;
}

namespace {

// The map: every target predicted for every chip (of the samples, or of the whole cube)
// by gradient-boosted trees on the fused embeddings of all training chips, beside the
// observed targets, and each target's map scored on the test chips (into `scores`).
// Returns the files.
std::vector<std::string> write_maps(const FewshotConfig& fewshot, const FewshotInput& in, const std::vector<SplitSet>& split,
                                    int threads, const fs::path& dir, json& scores) {
  const std::vector<ChipSample>& samples = in.samples;
  const std::vector<TargetSpec>& targets = in.targets;
  const std::vector<ChipSample>& mapped = in.map_chips ? *in.map_chips : samples;
  std::vector<ChipId> chips;
  for (const ChipSample& s : mapped) chips.push_back(s.chip);
  auto maps = zone_rasters(chips, 2 * static_cast<int>(targets.size()));
  std::vector<std::string> band_names;
  for (const TargetSpec& target : targets) band_names.push_back("predicted_" + target.name);
  for (const TargetSpec& target : targets) band_names.push_back("observed_" + target.name);
  Rows everything;
  for (const ChipSample& s : mapped) everything.push_back(s.features.at("fused"));
  for (std::size_t t = 0; t < targets.size(); ++t) {
    const double threshold = targets[t].proportion() ? fewshot.presence_threshold : std::nan("");
    const auto map = fit_label_map(fewshot, samples, t, split, everything, threshold, threads);
    if (!map) continue;
    for (std::size_t i = 0; i < mapped.size(); ++i)
      maps.at(mapped[i].chip.zone).at(static_cast<int>(t), mapped[i].chip) = map->predicted[i];
    scores[targets[t].name] = {{"train", map->train}, {"validation", map->validation}, {"test", map->test_chips},
                               {"r2", map->test.r2}, {"rmse", map->test.rmse}, {"f1", map->test.f1},
                               {"accuracy", map->test.accuracy}};
    if (in.map_chips && targets[t].proportion()) {
      std::vector<float> labelled;  // what the map learnt from
      for (std::size_t i = 0; i < samples.size(); ++i)
        if (split[i] != SplitSet::test && !std::isnan(samples[i].targets[t])) labelled.push_back(samples[i].targets[t]);
      if (const std::string w = balance_warning(targets[t].name, labelled, map->predicted); !w.empty())
        spdlog::warn("fewshot: {}", w);
    }
    for (const ChipSample& s : samples)
      if (maps.count(s.chip.zone)) maps.at(s.chip.zone).at(static_cast<int>(targets.size() + t), s.chip) = s.targets[t];
  }
  std::vector<std::string> files;
  for (const auto& [zone, raster] : maps) {
    const fs::path file = dir / fmt::format("predicted_{}.tif", zone.name());
    raster.save_geotiff(file, band_names);
    files.push_back(file.string());
    if (!in.map_chips) continue;
    for (std::size_t t = 0; t < targets.size(); ++t) {
      const fs::path png = dir / fmt::format("predicted_{}_{}.png", targets[t].name, zone.name());
      save_chip_map(png, fmt::format("{} predicted from {} labelled chips, zone {}", targets[t].name, samples.size(),
                                     zone.name()), raster, static_cast<int>(t), targets[t].name);
      files.push_back(png.string());
    }
  }
  return files;
}

// A run again into the same folder, with other labels or targets: the pictures and maps
// of the run before that this one did not write again would pass for its own. Removed once
// this run's files are all published, so that a run that fails leaves the last one whole.
void remove_earlier_pictures(const fs::path& dir, const std::vector<std::string>& pictures) {
  const std::set<std::string> now(pictures.begin(), pictures.end());
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    const bool ours = (name.starts_with("curve_") && name.ends_with(".png")) ||
                      (name.starts_with("predicted_") && (name.ends_with(".png") || name.ends_with(".tif")));
    if (ours && e.is_regular_file() && !now.count(e.path().string())) fs::remove(e.path());
  }
}

}  // namespace

std::string run_fewshot_experiment(const FewshotConfig& fewshot, const FewshotInput& in, const fs::path& dir) {
  const std::vector<SplitSet> split = split_samples(fewshot, in.samples);
  const std::vector<std::string> feature_sets = feature_sets_of(in);
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  const Sweep sweep = plan_sweep(fewshot, in, split, feature_sets);
  const std::vector<Result> results = run_sweep(fewshot, in, sweep, threads);
  write_results_csv(results, dir / "results.csv");
  const MeanR2 r2(results);
  json summary = {{"cube", in.cube_path.string()}, {"chips", in.samples.size()}, {"split", sweep.counts},
                  {"targets", json::object()}};
  std::string md = summarise(fewshot, in, feature_sets, r2, summary);
  if (std::find(feature_sets.begin(), feature_sets.end(), kBandStatistics) != feature_sets.end()) {
    const ProbeResult probe = probe_embeddings(in.samples, split, in.cube->modalities);
    write_atomically(dir / "probe.csv", probe.csv());
    write_atomically(dir / "probe_components.csv", probe.components_csv());
    md += probe.markdown();
    summary["probe"] = probe.summary();
  }
  write_atomically(dir / "results.md", md);

  std::vector<std::string> pictures = draw_curves(in, feature_sets, r2, sweep.counts, dir);
  json map_scores = json::object();
  for (const std::string& f : write_maps(fewshot, in, split, threads, dir, map_scores)) pictures.push_back(f);
  summary["map_test_scores"] = map_scores;
  summary["files"] = pictures;
  summary["seconds"] = seconds_since(in.started);
  write_atomically(dir / "summary.json", summary.dump(2) + "\n");
  remove_earlier_pictures(dir, pictures);
  return md;
}

}  // namespace eo
