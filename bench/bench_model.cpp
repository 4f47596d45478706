// Benchmark: forward throughput of each model preset (chips/s and achieved GFLOP/s) as a
// fraction of the matrix-multiply rate this same run measures, on this CPU.
//
//   bench_model OUT.json [--threads N]

#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "stages/model/vit.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_of(const std::function<void()>& f, int repeats) {
  f();  // warm-up
  const auto t0 = Clock::now();
  for (int i = 0; i < repeats; ++i) f();
  return std::chrono::duration<double>(Clock::now() - t0).count() / repeats;
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
  keep_tensor_memory();
  torch::NoGradGuard no_grad;
  // The reference: float32 matrix products of the size the transformer blocks run.
  const auto a = torch::randn({2048, 2048}), b = torch::randn({2048, 2048});
  const double mm_s = seconds_of([&] { (void)torch::mm(a, b); }, 10);
  const double mm_gflops = 2.0 * 2048 * 2048 * 2048 / mm_s / 1e9;
  nlohmann::json out = {{"benchmark", "forward throughput per preset vs matmul"}, {"threads", threads},
                        {"matmul_gflops", mm_gflops}, {"presets", nlohmann::json::object()}};
  const int channels = 24;  // s2rgb 12 + s1amp 8 + s1coh 4: images per chip
  for (const std::string preset : {"nano", "tiny", "small", "base"}) {
    const ModelConfig c = ModelConfig::from_preset(preset);
    ChannelEncoder enc(c);
    enc->eval();
    const int batch = preset == "base" ? 16 : 32;
    const auto x = torch::randn({batch, 1, c.input, c.input});
    const double s = seconds_of([&] { (void)enc->forward(x); }, preset == "base" ? 3 : 5);
    const double images_per_s = batch / s;
    const double gflops = encoder_flops(c) * images_per_s / 1e9;
    out["presets"][preset] = {{"input", c.input}, {"parameters_per_encoder", parameter_count(*enc)},
                              {"images_per_s", images_per_s}, {"chips_per_s", images_per_s / channels},
                              {"gflops", gflops}, {"fraction_of_matmul", gflops / mm_gflops}};
    std::cerr << fmt::format("{}: {:.1f} images/s, {:.1f} GFLOP/s = {:.2f} of matmul\n", preset, images_per_s, gflops,
                             gflops / mm_gflops);
  }
  std::ofstream(argv[1]) << out.dump(2) << '\n';
  std::cout << out.dump(2) << '\n';
}
