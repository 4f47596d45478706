// The few-shot sweep's trees, HistTrees against xgboost's C API (one thread each, the same
// parameters, data and seed), on the demo's shapes: 250 and 919 training rows of 64 and 192
// features. Each pair runs in turn in one process, so the ratio is measured in one session;
// the predictions of every pair must be equal, bit for bit, or the benchmark fails.
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
#include "stages/downstream/hist_trees.hpp"
#include "stages/downstream/models.hpp"

using namespace eo;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: bench_trees OUT.json [--repeat N]\n";
    return 2;
  }
  const int repeat = argc >= 4 && std::string(argv[2]) == "--repeat" ? std::stoi(argv[3]) : 2;
  nlohmann::json cases = nlohmann::json::array();
  for (const char* model : {"gbt", "rf"})
    for (int n : {250, 919})
      for (int d : {64, 192}) {
        const ModelKind kind = std::string(model) == "gbt" ? ModelKind::gbt : ModelKind::rf;
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
        double ours = 1e30, theirs = 1e30;
        for (int k = 0; k < repeat; ++k) {
          const TreeParams p = sweep_tree_params(kind, static_cast<std::uint64_t>(k), 256);
          auto t = std::chrono::steady_clock::now();
          XgboostTrees xgboost(x, y, p, 1);
          xgboost.boost(rounds);
          const std::vector<float> reference = xgboost.predict(query);
          theirs = std::min(theirs, seconds_since(t));
          t = std::chrono::steady_clock::now();
          HistTrees trees(x, y, p);
          trees.boost(rounds);
          const std::vector<float> mine = trees.predict(query);
          ours = std::min(ours, seconds_since(t));
          if (mine != reference) {
            std::cerr << "bench_trees: " << model << " n " << n << " d " << d << ": predictions differ from xgboost's\n";
            return 1;
          }
        }
        cases.push_back({{"model", model}, {"rows", n}, {"features", d}, {"xgboost_s", theirs}, {"ours_s", ours},
                         {"speedup", theirs / ours}, {"predictions_equal", true}});
        std::cout << model << " n " << n << " d " << d << ": xgboost " << theirs << " s, ours " << ours << " s ("
                  << theirs / ours << "x)\n";
      }
  const nlohmann::json out = {{"benchmark", "few-shot trees: HistTrees against xgboost 1.7 (one thread, best of repeats)"},
                              {"repeat", repeat}, {"cases", cases}};
  std::ofstream(argv[1]) << out.dump(2) << '\n';
  return 0;
}
