// `eo-pipeline fewshot`: the research's claim, measured: classical models trained on a
// few labelled chips' embeddings against the same models on all training chips, and
// against simple band statistics. Targets come from the label rasters reprojected onto
// the chip grid; the split is spatial (stripes at an angle).

#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <spdlog/spdlog.h>
#include <thread>

#include "pipeline/commands.hpp"
#include "pipeline/files.hpp"
#include "pipeline/work.hpp"
#include "stages/chip/chipper.hpp"
#include "stages/cube/cube.hpp"
#include "stages/downstream/models.hpp"
#include "stages/downstream/split.hpp"
#include "stages/downstream/targets.hpp"

namespace eo {

namespace fs = std::filesystem;
using json = nlohmann::json;

void add_fewshot_command(CLI::App& app, FewshotOptions& opts) {
  auto* cmd = app.add_subcommand("fewshot", "few-shot models on the cube's embeddings against all labels and a band-statistics baseline");
  add_common_options(*cmd, opts.common);
  cmd->add_option("--cube", opts.cube, "the cube (default: run.cube, else OUTPUT/cube.zarr)");
}

namespace {

constexpr const char* kBaseline = "bands";  // the band-statistics features

struct Sample {
  ChipId chip;
  Point at;                     // metres, local to the AOI
  std::vector<float> targets;   // per target, NaN = none
  std::map<std::string, std::vector<float>> features;  // per feature set
};

// Every embedded chip of the plan with its targets and features.
std::vector<Sample> collect(const Config& config, const Plan& plan, const Catalog& catalog, const CubeReader& cube,
                            const std::vector<TargetSpec>& targets) {
  TileReadOptions read = TileReadOptions::from(config, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  read.modalities = cube.spec().modalities;
  for (Modality m : kLabelModalities) read.modalities.push_back(m);
  for (Modality m : read.modalities) read.resampling[m] = config.resampling(m);
  const std::vector<Modality> images = cube.spec().modalities;
  const std::vector<std::string> arrays = cube.spec().embedding_arrays();
  const std::size_t dim = static_cast<std::size_t>(cube.spec().dim);

  std::vector<Sample> out;
  double lon0 = 0, lat0 = 0;
  bool origin = false;
  for (std::size_t t = 0; t < plan.tiles.size(); ++t) {
    const TilePlan& tile = plan.tiles[t];
    const TileEmbeddings emb = cube.read_tile(tile.id);
    if (std::none_of(emb.status.begin(), emb.status.end(), [](std::uint8_t s) { return s == kEmbedded; })) continue;
    read_tile(catalog, tile, read, [&](ChipBatch&& row) {
      const auto y = chip_targets(row, targets, config.fewshot.min_label_valid);
      const auto stats = band_statistics(row, images);
      for (std::size_t k = 0; k < row.chips.size(); ++k) {
        const int pos = index_in_tile(row.chips[k]);
        if (emb.status[static_cast<std::size_t>(pos)] != kEmbedded) continue;
        Sample s;
        s.chip = row.chips[k];
        const LonLatBox box = lonlat_bounds(s.chip.zone, s.chip.bounds());
        const double lon = (box.lon0 + box.lon1) / 2, lat = (box.lat0 + box.lat1) / 2;
        if (!origin) lon0 = lon, lat0 = lat, origin = true;
        // Equirectangular about the first chip: good to a few per cent over an AOI, and
        // continuous across UTM zones, which the zones' own metres are not.
        s.at = {(lon - lon0) * 111320.0 * std::cos(lat0 * M_PI / 180), (lat - lat0) * 110540.0};
        s.targets = y[k];
        const std::size_t yy = static_cast<std::size_t>(pos / kChipsPerTileSide), xx = static_cast<std::size_t>(pos % kChipsPerTileSide);
        for (const std::string& a : arrays) {
          const float* v = &emb.arrays.at(a)(yy, xx, 0);
          s.features[a].assign(v, v + dim);
        }
        s.features[kBaseline] = stats[k];
        out.push_back(std::move(s));
      }
    });
    spdlog::info("fewshot: read tile {} ({}/{}), {} chips so far", tile.id.str(), t + 1, plan.tiles.size(), out.size());
  }
  return out;
}

struct Result {
  std::string target, features, model;
  int n = 0, seed = 0;
  Scores scores;
};

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? std::nan("") : s / static_cast<double>(v.size());
}

}  // namespace

int run_fewshot(const FewshotOptions& opts) {
  const auto config = start_command(opts.common, 0);
  if (!config) return kExitOk;
  const fs::path cube_path = !opts.cube.empty() ? fs::path(opts.cube)
                             : !config->run.cube.empty() ? config->run.cube
                                                         : config->output / "cube.zarr";
  if (!fs::exists(cube_path / ".zattrs"))
    throw ConfigError(fmt::format("{}: no cube at {}: run `eo-pipeline run` first", config->source, cube_path.string()));
  const CubeReader cube(cube_path);
  const Plan plan = make_plan(load_aois(*config));
  const Catalog catalog = load_catalog(*config);
  const std::vector<TargetSpec> targets = default_targets();
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<Sample> samples = collect(*config, plan, catalog, cube, targets);
  if (samples.size() < 20)
    throw ConfigError(fmt::format("{}: only {} embedded chips in {}: too few for the few-shot experiments",
                                  config->source, samples.size(), cube_path.string()));
  std::vector<Point> points;
  for (const Sample& s : samples) points.push_back(s.at);
  const std::vector<SplitSet> split = stripe_split(points, config->fewshot.split_angle, config->fewshot.stripes);

  std::vector<std::string> feature_sets = cube.spec().embedding_arrays();
  feature_sets.push_back(kBaseline);
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<Result> results;
  json counts = json::object();
  for (std::size_t t = 0; t < targets.size(); ++t) {
    std::vector<std::size_t> train, val, test;
    for (std::size_t i = 0; i < samples.size(); ++i) {
      if (std::isnan(samples[i].targets[t])) continue;
      (split[i] == SplitSet::train ? train : split[i] == SplitSet::validation ? val : test).push_back(i);
    }
    counts[targets[t].name] = {{"train", train.size()}, {"validation", val.size()}, {"test", test.size()}};
    if (train.size() < 2 || val.empty() || test.empty()) {
      spdlog::warn("fewshot: {}: too few labelled chips ({} train, {} validation, {} test): skipped", targets[t].name,
                   train.size(), val.size(), test.size());
      continue;
    }
    auto column = [&](const std::vector<std::size_t>& idx, const std::string& f, Rows& x, std::vector<float>& y) {
      x.clear(), y.clear();
      for (std::size_t i : idx) x.push_back(samples[i].features.at(f)), y.push_back(samples[i].targets[t]);
    };
    std::vector<int> sizes;
    for (int n : config->fewshot.sizes)
      if (static_cast<std::size_t>(n) < train.size()) sizes.push_back(n);
    sizes.push_back(static_cast<int>(train.size()));  // all
    const double threshold = targets[t].proportion() ? config->fewshot.presence_threshold : std::nan("");
    for (int n : sizes)
      for (int seed = 0; seed < config->fewshot.seeds; ++seed) {
        std::vector<std::size_t> chosen = train;
        std::mt19937_64 rng(static_cast<std::uint64_t>(seed) * 1000003u + static_cast<std::uint64_t>(n));
        std::shuffle(chosen.begin(), chosen.end(), rng);
        chosen.resize(static_cast<std::size_t>(n));
        for (const std::string& f : feature_sets) {
          Rows xt, xv, xq;
          std::vector<float> yt, yv, yq;
          column(chosen, f, xt, yt);
          column(val, f, xv, yv);
          column(test, f, xq, yq);
          for (ModelKind m : {ModelKind::ridge, ModelKind::gbt, ModelKind::rf}) {
            const auto p = fit_predict(m, {&xt, &yt}, {&xv, &yv}, xq, static_cast<std::uint64_t>(seed), threads);
            results.push_back({targets[t].name, f, model_name(m), n == static_cast<int>(train.size()) ? -1 : n, seed,
                               score(yq, p, threshold)});
          }
        }
      }
    spdlog::info("fewshot: {} done ({} train, {} validation, {} test chips)", targets[t].name, train.size(), val.size(),
                 test.size());
  }

  // The results, per seed (CSV) and as means over seeds (Markdown, JSON).
  const fs::path dir = config->output / "fewshot";
  std::string csv = "target,features,model,n,seed,r2,rmse,f1,accuracy\n";
  for (const Result& r : results)
    csv += fmt::format("{},{},{},{},{},{:.4f},{:.4f},{:.4f},{:.4f}\n", r.target, r.features, r.model,
                       r.n < 0 ? "all" : std::to_string(r.n), r.seed, r.scores.r2, r.scores.rmse, r.scores.f1,
                       r.scores.accuracy);
  write_atomically(dir / "results.csv", csv);

  using Key = std::tuple<std::string, std::string, std::string, int>;  // target, features, model, n
  std::map<Key, std::vector<double>> r2, f1;
  for (const Result& r : results) {
    r2[{r.target, r.features, r.model, r.n}].push_back(r.scores.r2);
    f1[{r.target, r.features, r.model, r.n}].push_back(r.scores.f1);
  }
  // The best model's mean R^2 per target, features and size: what the claim is about.
  auto best = [&](const std::string& target, const std::string& features, int n) {
    double b = -std::numeric_limits<double>::infinity();
    std::string which;
    for (const char* m : {"ridge", "gbt", "rf"}) {
      const auto it = r2.find({target, features, m, n});
      if (it != r2.end() && mean_of(it->second) > b) b = mean_of(it->second), which = m;
    }
    return std::pair(b, which);
  };
  std::string md = fmt::format("# Few-shot results: {}\n\nCube `{}` (model {}); {} embedded chips, split by {} stripes at "
                               "{}° (60/20/20); mean test R² over {} seeds.\n",
                               config->name, cube_path.string(), cube.spec().provenance.value("model_version", std::string("?")),
                               samples.size(), config->fewshot.stripes, config->fewshot.split_angle, config->fewshot.seeds);
  json summary = {{"cube", cube_path.string()}, {"chips", samples.size()}, {"split", counts}, {"targets", json::object()}};
  for (const TargetSpec& target : targets) {
    std::set<int> ns;
    for (const auto& [key, v] : r2)
      if (std::get<0>(key) == target.name) ns.insert(std::get<3>(key));
    if (ns.empty()) continue;
    std::vector<int> order(ns.begin(), ns.end());
    if (order.front() == -1) std::rotate(order.begin(), order.begin() + 1, order.end());  // "all" last
    md += fmt::format("\n## {}\n\n| features | model |", target.name);
    for (int n : order) md += n < 0 ? " all |" : fmt::format(" {} |", n);
    md += "\n|---|---|";
    for (std::size_t i = 0; i < order.size(); ++i) md += "---|";
    md += "\n";
    for (const std::string& f : feature_sets)
      for (const char* m : {"ridge", "gbt", "rf"}) {
        md += fmt::format("| {} | {} |", f, m);
        for (int n : order) {
          const auto it = r2.find({target.name, f, m, n});
          md += it == r2.end() ? " |" : fmt::format(" {:.3f} |", mean_of(it->second));
        }
        md += "\n";
      }
    json per = json::object();
    for (const std::string& f : feature_sets) {
      const auto [at_all, model_all] = best(target.name, f, -1);
      const auto [at_250, model_250] = best(target.name, f, 250);
      per[f] = {{"r2_all", at_all}, {"model_all", model_all}, {"r2_250", ns.count(250) ? json(at_250) : json()},
                {"model_250", model_250}};
    }
    summary["targets"][target.name] = per;
    if (ns.count(250)) {
      const double fused250 = per["fused"]["r2_250"].get<double>(), fused_all = per["fused"]["r2_all"].get<double>(),
                   bands250 = per[kBaseline]["r2_250"].get<double>();
      summary["targets"][target.name]["fused_250_over_all"] = fused_all > 0 ? fused250 / fused_all : std::nan("");
      summary["targets"][target.name]["fused_beats_bands_at_250"] = fused250 > bands250;
      md += fmt::format("\nBest model: fused embeddings reach {:.3f} with 250 chips and {:.3f} with all ({:.0f}%); band "
                        "statistics {:.3f} with 250.\n",
                        fused250, fused_all, fused_all > 0 ? 100 * fused250 / fused_all : 0.0, bands250);
    }
  }
  write_atomically(dir / "results.md", md);
  summary["seconds"] = seconds_since(t0);
  write_atomically(dir / "summary.json", summary.dump(2) + "\n");
  std::cout << md << "\nresults: " << (dir / "results.csv").string() << ", " << (dir / "results.md").string() << ", "
            << (dir / "summary.json").string() << '\n';
  return kExitOk;
}

}  // namespace eo
