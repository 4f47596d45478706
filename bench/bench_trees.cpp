// The few-shot sweep's trees: xgboost's time per fit (one thread, the sweep's parameters)
// on the demo's shapes, 250 and 919 training rows of 64 and 192 features, at histogram
// bins per feature (fewshot.max_bin) 256, 64, 32 and 16, each against 256 in the same
// process, so the ratios are measured in one session.
// Usage: bench_trees OUT.json [--repeat N]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "pipeline/core/resources.hpp"
#include "stages/downstream/models.hpp"

using namespace eo;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: bench_trees OUT.json [--repeat N]\n";
    return 2;
  }
  const int repeat = argc >= 4 && std::string(argv[2]) == "--repeat" ? std::stoi(argv[3]) : 2;
  const int bins[] = {256, 64, 32, 16};
  nlohmann::json cases = nlohmann::json::array();
  for (const ModelKind kind : {ModelKind::gbt, ModelKind::rf})
    for (int n : {250, 919})
      for (int d : {64, 192}) {
        const int rounds = kind == ModelKind::gbt ? 400 : 1;
        std::mt19937 rng(static_cast<unsigned>(n + d));
        std::normal_distribution<float> g;
        Rows x(static_cast<std::size_t>(n), std::vector<float>(static_cast<std::size_t>(d)));
        Rows query(306, std::vector<float>(static_cast<std::size_t>(d)));
        for (Rows* rows : {&x, &query})
          for (auto& r : *rows)
            for (float& v : r) v = g(rng);
        std::vector<float> y;
        for (const auto& r : x) y.push_back(r[0] * r[0] + std::sin(3 * r[1]) + 0.3f * g(rng));
        nlohmann::json seconds = nlohmann::json::object();
        for (int b : bins) {
          double best = 1e30;
          for (int k = 0; k < repeat; ++k) {
            const auto t = std::chrono::steady_clock::now();
            XgboostTrees trees(x, y, sweep_tree_params(kind, static_cast<std::uint64_t>(k), b), 1);
            trees.boost(rounds);
            (void)trees.predict(query);
            best = std::min(best, seconds_since(t));
          }
          seconds[std::to_string(b)] = best;
        }
        nlohmann::json speedup = nlohmann::json::object();
        for (int b : bins) speedup[std::to_string(b)] = seconds["256"].get<double>() / seconds[std::to_string(b)].get<double>();
        cases.push_back({{"model", model_name(kind)}, {"rows", n}, {"features", d}, {"seconds_by_max_bin", seconds},
                         {"speedup_over_256", speedup}});
        std::cout << model_name(kind) << " n " << n << " d " << d << ": " << seconds.dump() << '\n';
      }
  const nlohmann::json out = {{"benchmark", "few-shot trees: xgboost 1.7 per fit by max_bin (one thread, best of repeats)"},
                              {"repeat", repeat}, {"cases", cases}};
  std::ofstream(argv[1]) << out.dump(2) << '\n';
  return 0;
}
