// The model on one device (issue 17): the matrix-product rate (bf16 on CUDA, float32 on a
// CPU), a preset's forward pass over chips of 24 single-channel passes (chips/s and the
// fraction of that rate), the embeddings' agreement with the float32 result on the CPU,
// and a training step. Leaves the S2 encoder's parameters, an input and its CPU float32
// embeddings in DIR for mirror_bench.py (the PyTorch mirror of the same encoder).
//
//   bench_gpu --device cuda|cpu --preset paper|base|small|tiny|nano --batch B --dir DIR

#include <torch/torch.h>

#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "stages/model/vit.hpp"

namespace {

using Clock = std::chrono::steady_clock;

void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

// Seconds per call, the best of `repeats` after a warm-up.
double seconds_of(const torch::Device& d, const std::function<void()>& f, int repeats) {
  f();
  sync(d);
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = Clock::now();
    f();
    sync(d);
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

// Multiply-adds x 2 of one single-channel image through an encoder (as bench_model).
double encoder_flops(const eo::ModelConfig& c) {
  const double t = (c.input / c.patch) * (c.input / c.patch) + 1, d = c.dim;
  const double block = 2.0 * t * d * 3 * d + 2.0 * 2 * t * t * d + 2.0 * t * d * d + 2.0 * 2 * t * d * d * c.mlp_ratio;
  return 2.0 * c.patch * c.patch * d * (t - 1) + c.depth * block + 2.0 * d * c.embed;
}

void save(const torch::Tensor& t, const std::string& file) {
  const std::vector<char> bytes = torch::pickle_save(t.detach().to(torch::kCPU).contiguous());
  std::ofstream(file, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

int main(int argc, char** argv) {
  using namespace eo;
  std::string device_name = "cpu", preset = "tiny", dir = ".";
  int batch = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--device") device_name = v;
    else if (k == "--preset") preset = v;
    else if (k == "--batch") batch = std::stoi(v);
    else if (k == "--dir") dir = v;
    else { std::cerr << "unknown option " << k << '\n'; return 2; }
  }
  torch::manual_seed(1);
  const torch::Device device(device_name);
  const bool cuda = device.is_cuda();
  const auto known = parse_choice<ModelPreset>(preset);
  if (!known) {
    std::cerr << choice_problem<ModelPreset>(preset) << '\n';
    return 2;
  }
  ModelConfig c = ModelConfig::from_preset(*known);
  c.channel_embed = true;
  const std::vector<Modality> modalities = {Modality::s2rgb, Modality::s1amp, Modality::s1coh};
  MultiModal model(c, modalities);
  model->eval();
  nlohmann::json out = {{"device", device_name}, {"preset", preset}, {"input_px", c.input}, {"batch", batch},
                        {"cuda_device", cuda ? torch::cuda::device_count() : 0}};

  // The S2 encoder, its input and its float32 CPU embeddings, for the mirror.
  const int channels = info(Modality::s2rgb).channels();
  const torch::Tensor probe = torch::rand({2 * channels, 1, c.input, c.input});
  const torch::Tensor probe_channel = torch::arange(channels).repeat({2});
  torch::Tensor reference;
  {
    torch::NoGradGuard no_grad;
    reference = model->encoders.at(Modality::s2rgb)->forward(probe, probe_channel);
  }
  c10::Dict<std::string, at::Tensor> state;
  for (const auto& item : model->encoders.at(Modality::s2rgb)->named_parameters()) state.insert(item.key(), item.value().detach());
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(state));
  std::ofstream(dir + "/s2rgb_state.pkl", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  std::ofstream(dir + "/s2rgb_config.json") << nlohmann::json{{"dim", c.dim}, {"depth", c.depth}, {"heads", c.heads},
                                                              {"mlp_ratio", c.mlp_ratio}, {"embed", c.embed}, {"patch", c.patch},
                                                              {"input", c.input}, {"pooling", name_str(c.pooling)}, {"channels", channels}}.dump();
  save(probe, dir + "/probe.pkl");
  save(probe_channel, dir + "/probe_channel.pkl");
  save(reference, dir + "/reference.pkl");

  auto inputs = [&](torch::Dtype dtype) {
    std::map<Modality, torch::Tensor> x, masks;
    for (Modality m : modalities) {
      x[m] = torch::rand({batch, info(m).channels(), c.input, c.input}, torch::TensorOptions().device(device).dtype(dtype));
      masks[m] = torch::ones({batch, info(m).channels()}, torch::TensorOptions().device(device));
    }
    return std::make_pair(x, masks);
  };
  // The matrix-product rate, the forward pass, in bf16 on CUDA (float32 on a CPU).
  const torch::Dtype dtype = cuda ? torch::kBFloat16 : torch::kFloat32;
  model->to(device, dtype);
  const int n = cuda ? 8192 : 2048;
  const torch::Tensor a = torch::randn({n, n}, torch::TensorOptions().device(device).dtype(dtype)), b = torch::randn_like(a);
  const double mm = 2.0 * n * n * n / seconds_of(device, [&] { (void)torch::mm(a, b); }, 5);
  double forward = 0;
  torch::Tensor here;
  {
    torch::NoGradGuard no_grad;
    auto [x, masks] = inputs(dtype);
    forward = seconds_of(device, [&] { (void)model->forward(x, masks); }, 5);
    // The same S2 encoder on this device and precision against the CPU float32 embeddings.
    here = model->encoders.at(Modality::s2rgb)->forward(probe.to(device, dtype), probe_channel.to(device)).to(torch::kCPU, torch::kFloat32);
  }
  const double flops = 24.0 * encoder_flops(c) * batch / forward;
  const double cosine = torch::nn::functional::cosine_similarity(here, reference,
                                                                 torch::nn::functional::CosineSimilarityFuncOptions().dim(1)).min().item<double>();
  out.update({{"dtype", cuda ? "bf16" : "float32"}, {"matmul_tflops", mm / 1e12}, {"forward_s", forward},
              {"chips_per_s", batch / forward}, {"forward_tflops", flops / 1e12}, {"fraction_of_matmul", flops / mm},
              {"min_cosine_to_cpu_float32", cosine}});
  // A training step in float32: forward, InfoNCE over the modalities, backward, AdamW.
  model->to(device, torch::kFloat32);
  model->train();
  {
    auto [x, masks] = inputs(torch::kFloat32);
    torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-4));
    std::map<Modality, torch::Tensor> present;
    for (Modality m : modalities) present[m] = torch::ones({batch}, torch::TensorOptions().device(device).dtype(torch::kBool));
    out["training_step_s"] = seconds_of(device, [&] {
      opt.zero_grad();
      const auto e = model->forward(x, masks);
      info_nce(e, present, model->temperature_scale()).total.backward();
      opt.step();
    }, 3);
  }
  std::cout << out.dump(2) << '\n';
  return 0;
}
