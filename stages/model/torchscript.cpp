#include "stages/model/torchscript.hpp"

#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>

#include "pipeline/files.hpp"

namespace eo {

void save_encoder_for_export(ChannelEncoder& encoder, const std::filesystem::path& state_file,
                             const std::filesystem::path& config_file) {
  c10::Dict<std::string, at::Tensor> state;
  for (const auto& item : encoder->named_parameters()) state.insert(item.key(), item.value().detach().to(torch::kCPU));
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(state));
  write_atomically(state_file, std::string(bytes.begin(), bytes.end()));
  const ModelConfig& c = encoder->config;
  const nlohmann::json j = {{"dim", c.dim}, {"depth", c.depth}, {"heads", c.heads}, {"mlp_ratio", c.mlp_ratio},
                            {"embed", c.embed}, {"patch", c.patch}, {"input", c.input}, {"pooling", c.pooling}};
  write_atomically(config_file, j.dump(2) + "\n");
}

ScriptedEncoder::ScriptedEncoder(const std::filesystem::path& file) {
  try {
    module_ = torch::jit::load(file.string());
  } catch (const c10::Error& e) {
    throw std::runtime_error(fmt::format("{}: not a TorchScript encoder: {}", file.string(), e.what_without_backtrace()));
  }
  module_.eval();
}

torch::Tensor ScriptedEncoder::forward(const torch::Tensor& x) { return module_.forward({x}).toTensor(); }

torch::Tensor ScriptedEncoder::encode_channels(const torch::Tensor& x, const torch::Tensor& mask) {
  const auto b = x.size(0), c = x.size(1);
  const auto idx = mask.to(torch::kBool).reshape({b * c}).nonzero().squeeze(1);
  const auto flat = x.reshape({b * c, 1, x.size(2), x.size(3)});
  torch::Tensor out;
  if (idx.numel() > 0) {
    const auto encoded = forward(flat.index({idx}));
    out = torch::zeros({b * c, encoded.size(1)}, encoded.options()).index_put({idx}, encoded);
  } else {
    return torch::zeros({b, 0}, x.options());
  }
  const auto m = mask.to(x.dtype()).unsqueeze(2);
  return (out.reshape({b, c, -1}) * m).sum(1) / m.sum(1).clamp_min(1.0);
}

}  // namespace eo
