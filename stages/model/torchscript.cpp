#include "stages/model/torchscript.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>

#include "pipeline/core/error.hpp"
#include "pipeline/core/files.hpp"

namespace eo {

void save_encoder_for_export(ChannelEncoder& encoder, const std::filesystem::path& state_file,
                             const std::filesystem::path& config_file) {
  c10::Dict<std::string, at::Tensor> state;
  for (const auto& item : encoder->named_parameters()) state.insert(item.key(), item.value().detach().to(torch::kCPU));
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(state));
  write_atomically(state_file, std::string(bytes.begin(), bytes.end()));
  const ModelConfig& c = encoder->config;
  const nlohmann::json j = {{"dim", c.dim}, {"depth", c.depth}, {"heads", c.heads}, {"mlp_ratio", c.mlp_ratio},
                            {"embed", c.embed}, {"patch", c.patch}, {"input", c.input}, {"pooling", name_str(c.pooling)},
                            {"channels", encoder->channel_embed.defined() ? encoder->channel_embed.size(0) : 0},
                            {"channel_proj", encoder->channel_proj.defined() ? encoder->channel_proj.size(0) : 0}};
  write_atomically(config_file, j.dump(2) + "\n");
}

namespace {

// TorchScript source of ChannelEncoderImpl::forward; the parameters are attributes named
// as in the C++ module with '.' as '_' (blocks.0.attn.in_proj_weight: blocks_0_attn_in_proj_weight).
std::string encoder_source(const ModelConfig& c) {
  const int grid = c.input / c.patch;
  std::string src = fmt::format(R"(
def block(self, x: Tensor, n1w: Tensor, n1b: Tensor, qkv_w: Tensor, qkv_b: Tensor, out_w: Tensor, out_b: Tensor,
          n2w: Tensor, n2b: Tensor, f1w: Tensor, f1b: Tensor, f2w: Tensor, f2b: Tensor) -> Tensor:
    n, t, d = x.size(0), x.size(1), x.size(2)
    h = torch.layer_norm(x, [d], n1w, n1b, 1e-5)
    qkv = torch.linear(h, qkv_w, qkv_b).view(n, t, 3, {heads}, d // {heads}).permute(2, 0, 3, 1, 4)
    q = qkv[0] * {scale:.17g}
    weights = torch.softmax(torch.matmul(q, qkv[1].transpose(-2, -1)), -1)
    x = x + torch.linear(torch.matmul(weights, qkv[2]).transpose(1, 2).reshape(n, t, d), out_w, out_b)
    return x + torch.linear(torch.gelu(torch.linear(torch.layer_norm(x, [d], n2w, n2b, 1e-5), f1w, f1b)), f2w, f2b)

def forward(self, x: Tensor{channel_arg}) -> Tensor:
    n = x.size(0)
    x = torch.conv2d(x, self.patch_embed_weight, self.patch_embed_bias, [{patch}, {patch}])
    gh, gw = x.size(2), x.size(3)
    x = x.flatten(2).transpose(1, 2)
    pos = self.pos_embed
    if gh != {grid} or gw != {grid}:
        patch_pos = pos[:, 1:].reshape(1, {grid}, {grid}, {dim}).permute(0, 3, 1, 2)
        patch_pos = torch.upsample_bicubic2d(patch_pos, [gh, gw], False)
        pos = torch.cat([pos[:, :1], patch_pos.permute(0, 2, 3, 1).reshape(1, gh * gw, {dim})], 1)
    x = torch.cat([self.cls_token.expand(n, 1, {dim}), x], 1) + pos
{add_channel})",
      fmt::arg("heads", c.heads), fmt::arg("scale", 1.0 / std::sqrt(static_cast<double>(c.dim / c.heads))),
      fmt::arg("patch", c.patch), fmt::arg("grid", grid), fmt::arg("dim", c.dim),
      fmt::arg("channel_arg", c.channel_embed || c.channel_proj ? ", channel: Tensor" : ""),
      fmt::arg("add_channel", c.channel_embed ? "    x = x + self.channel_embed[channel].unsqueeze(1)\n"
                                              : ""));
  for (int i = 0; i < c.depth; ++i)
    src += fmt::format(
        "    x = self.block(x, self.{0}norm1_weight, self.{0}norm1_bias, self.{0}attn_in_proj_weight, "
        "self.{0}attn_in_proj_bias, self.{0}attn_out_proj_weight, self.{0}attn_out_proj_bias, self.{0}norm2_weight, "
        "self.{0}norm2_bias, self.{0}fc1_weight, self.{0}fc1_bias, self.{0}fc2_weight, self.{0}fc2_bias)\n",
        fmt::format("blocks_{}_", i));
  src += fmt::format("    x = torch.layer_norm(x, [{}], self.norm_weight, self.norm_bias, 1e-5)\n", c.dim);
  src += c.pooling == Pooling::mean ? "    pooled = x[:, 1:].mean(1)\n" : "    pooled = x[:, 0]\n";
  src += c.channel_proj ? "    return torch.linear(pooled, self.proj_weight) + "
                          "torch.bmm(pooled.unsqueeze(1), self.channel_proj[channel]).squeeze(1)\n"
                        : "    return torch.linear(pooled, self.proj_weight)\n";
  return src;
}

}  // namespace

void export_torchscript(ChannelEncoder& encoder, const std::filesystem::path& file) {
  torch::jit::Module module("EoChannelEncoder");
  for (const auto& item : encoder->named_parameters()) {
    std::string name = item.key();
    std::replace(name.begin(), name.end(), '.', '_');
    module.register_parameter(name, item.value().detach().to(torch::kCPU).clone(), false);
  }
  module.define(encoder_source(encoder->config));
  module.eval();
  publish_file(file, [&](const std::filesystem::path& tmp) { module.save(tmp.string()); });
}

ScriptedEncoder::ScriptedEncoder(const std::filesystem::path& file) {
  try {
    module_ = torch::jit::load(file.string());
  } catch (const c10::Error& e) {
    throw StageError("model", fmt::format("{}: not a TorchScript encoder: {}", file.string(), e.what_without_backtrace()));
  }
  module_.eval();
  // Encoders without channel embeddings or projections (ours from before them, and most of
  // other people's) take the image alone.
  const auto has = [&](const char* name) { return module_.hasattr(name) && !module_.attr(name).isNone(); };
  takes_channel_ = has("channel_embed") || has("channel_proj");
}

torch::Tensor ScriptedEncoder::forward(const torch::Tensor& x, const torch::Tensor& channel) {
  if (takes_channel_) return module_.forward({x, channel}).toTensor();
  return module_.forward({x}).toTensor();
}

torch::Tensor ScriptedEncoder::encode_channels(const torch::Tensor& x, const torch::Tensor& mask) {
  // The embedding size is known only from an encoded image: a batch with no channel present gets [B, 0].
  return eo::encode_channels([this](const torch::Tensor& images, const torch::Tensor& channel) {
    return forward(images, channel);
  }, x, mask, 0);
}

}  // namespace eo
