// Benchmark: forward throughput of each model preset (chips/s and achieved GFLOP/s) as a
// fraction of the matrix-multiply rate this same run measures, on this CPU (the median
// of three rounds).
//
//   bench_model OUT.json [--threads N]

#include <algorithm>
#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "pipeline/core/resources.hpp"
#include "stages/model/vit.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// The best of `repeats` timings after a warm-up, for the reference and the presets alike:
// on a shared machine the other processes only ever add time.
double seconds_of(const std::function<void()>& f, int repeats) {
  f();
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

// Multiply-adds x 2 of one single-channel image through a ViT encoder.
double encoder_flops(const eo::ModelConfig& c) {
  const double t = (c.input / c.patch) * (c.input / c.patch) + 1, d = c.dim;
  const double patch = 2.0 * c.patch * c.patch * d * (t - 1);
  const double block = 2.0 * t * d * 3 * d      // q, k, v
                       + 2.0 * 2 * t * t * d     // scores and weighted values
                       + 2.0 * t * d * d         // output projection
                       + 2.0 * 2 * t * d * d * c.mlp_ratio;  // MLP
  return patch + c.depth * block + 2.0 * d * c.embed;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace eo;
  if (argc < 2) {
    std::cerr << "usage: bench_model OUT.json [--threads N]\n";
    return 2;
  }
  const int threads = argc >= 4 ? std::stoi(argv[3]) : 2;
  torch::set_num_threads(threads);
  keep_freed_memory();
  torch::NoGradGuard no_grad;
  // The reference: float32 matrix products of 2048 x 2048, timed just before each preset
  // so that the ratio compares the two under the same load; three rounds, and the round
  // with the median ratio is reported, with the ratios of every round.
  const auto a = torch::randn({2048, 2048}), b = torch::randn({2048, 2048});
  auto matmul_gflops = [&] { return 2.0 * 2048 * 2048 * 2048 / seconds_of([&] { (void)torch::mm(a, b); }, 5) / 1e9; };
  constexpr int kRounds = 3;
  nlohmann::json out = {{"benchmark", "forward throughput per preset vs matmul"}, {"threads", threads},
                        {"rounds", kRounds}, {"presets", nlohmann::json::object()}};
  const int channels = 24;  // s2rgb 12 + s1amp 8 + s1coh 4: images per chip
  for (const std::string preset : {"nano", "tiny", "small", "base"}) {
    const ModelConfig c = ModelConfig::from_preset(*parse_choice<ModelPreset>(preset));
    ChannelEncoder enc(c, 1);
    enc->eval();
    const int batch = preset == "base" ? 16 : 32;
    const auto x = torch::randn({batch, 1, c.input, c.input});
    std::vector<nlohmann::json> rounds;
    for (int r = 0; r < kRounds; ++r) {
      const double mm = matmul_gflops();
      const double images_per_s = batch / seconds_of([&] { (void)enc->forward(x, {}); }, preset == "base" ? 2 : 4);
      const double gflops = encoder_flops(c) * images_per_s / 1e9;
      rounds.push_back({{"input", c.input}, {"parameters_per_encoder", parameter_count(*enc)},
                        {"images_per_s", images_per_s}, {"chips_per_s", images_per_s / channels}, {"gflops", gflops},
                        {"matmul_gflops", mm}, {"fraction_of_matmul", gflops / mm}});
    }
    std::sort(rounds.begin(), rounds.end(), [](const auto& p, const auto& q) {
      return p["fraction_of_matmul"].template get<double>() < q["fraction_of_matmul"].template get<double>();
    });
    nlohmann::json median = rounds[kRounds / 2];
    for (const auto& r : rounds) median["fraction_of_matmul_every_round"].push_back(r["fraction_of_matmul"]);
    out["presets"][preset] = median;
    std::cerr << fmt::format("{}: {:.1f} images/s, {:.1f} GFLOP/s = {:.2f} of matmul (rounds {:.2f} .. {:.2f})\n", preset,
                             median["images_per_s"].get<double>(), median["gflops"].get<double>(),
                             median["fraction_of_matmul"].get<double>(),
                             rounds.front()["fraction_of_matmul"].get<double>(),
                             rounds.back()["fraction_of_matmul"].get<double>());
  }
  std::ofstream(argv[1]) << out.dump(2) << '\n';
  std::cout << out.dump(2) << '\n';
}
