#include "stages/model/vit.hpp"

#include <cmath>
#include <fmt/format.h>
#include <stdexcept>

namespace eo {

nlohmann::json ModelConfig::to_json() const {
  return {{"preset", preset}, {"input", input}, {"patch", patch}, {"dim", dim}, {"depth", depth},
          {"heads", heads}, {"mlp_ratio", mlp_ratio}, {"embed", embed}, {"pooling", name_str(pooling)},
          {"channel_embed", channel_embed}, {"channel_proj", channel_proj}, {"reconstruction", reconstruction},
          {"reconstruction_grid", reconstruction_grid}, {"reconstruction_spread", reconstruction_spread},
          {"reconstruction_standardised", reconstruction_standardised}, {"chip_statistics", chip_statistics}};
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j) {
  ModelConfig c = from_preset(parse_choice_or_throw<ModelPreset>(j.at("preset").get<std::string>(), "preset"),
                              j.at("input").get<int>());
  j.at("patch").get_to(c.patch);
  j.at("dim").get_to(c.dim);
  j.at("depth").get_to(c.depth);
  j.at("heads").get_to(c.heads);
  j.at("mlp_ratio").get_to(c.mlp_ratio);
  j.at("embed").get_to(c.embed);
  c.pooling = parse_choice_or_throw<Pooling>(j.at("pooling").get<std::string>(), "pooling");
  c.channel_embed = j.value("channel_embed", false);  // absent in checkpoints from before it
  c.channel_proj = j.value("channel_proj", false);    // likewise
  c.reconstruction = j.value("reconstruction", 0.0);  // likewise
  c.reconstruction_grid = j.value("reconstruction_grid", 4);
  c.reconstruction_spread = j.value("reconstruction_spread", false);
  c.reconstruction_standardised = j.value("reconstruction_standardised", false);
  c.chip_statistics = j.value("chip_statistics", 0.0);
  return c;
}

torch::Tensor resize_to_input(const torch::Tensor& chips, int input) {
  if (chips.size(2) == input && chips.size(3) == input) return chips;
  return torch::nn::functional::interpolate(chips, torch::nn::functional::InterpolateFuncOptions()
                                                       .size(std::vector<int64_t>{input, input})
                                                       .mode(torch::kBilinear)
                                                       .align_corners(false));
}

double activation_bytes_per_sample(const ModelConfig& m, int channels) {
  const double side = m.input / m.patch, tokens = side * side + 1;
  const double per_layer = tokens * m.dim * (16.0 + 2.0 * m.mlp_ratio) + 3.0 * m.heads * tokens * tokens;
  return 4.0 * channels * (m.depth * per_layer + static_cast<double>(m.input) * m.input);
}

torch::Device torch_device(Device device) { return device == Device::cuda ? torch::kCUDA : torch::kCPU; }

ModelConfig ModelConfig::from_preset(ModelPreset preset, int input) {
  ModelConfig c;
  c.preset = name_str(preset);
  switch (preset) {
    case ModelPreset::nano: c.dim = 64; c.depth = 2; c.heads = 2; c.embed = 64; c.input = 112; break;
    case ModelPreset::tiny: c.dim = 192; c.depth = 12; c.heads = 3; c.embed = 256; c.input = 224; break;
    case ModelPreset::small: c.dim = 384; c.depth = 12; c.heads = 6; c.embed = 512; c.input = 224; break;
    case ModelPreset::base: c.dim = 768; c.depth = 12; c.heads = 12; c.embed = 768; c.input = 224; break;
    case ModelPreset::paper: c.dim = 768; c.depth = 12; c.heads = 12; c.embed = 768; c.input = 448; break;
  }
  if (input > 0) c.input = input;
  if (c.input % c.patch != 0)
    throw std::invalid_argument(fmt::format("input {} px is not a multiple of the {} px patch", c.input, c.patch));
  return c;
}

namespace {

// Multi-head self-attention with torch::nn::MultiheadAttention's parameters (and names,
// so checkpoints and the PyTorch mirror's nn.MultiheadAttention read the same state), on
// batch-first tokens: LibTorch's own module runs sequence-first through many small
// unfused steps and reaches a quarter of the matmul rate on narrow presets.
struct AttentionImpl : torch::nn::Module {
  AttentionImpl(int dim, int head_count) : heads(head_count) {
    in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * dim, dim}));
    in_proj_bias = register_parameter("in_proj_bias", torch::zeros({3 * dim}));
    out_proj = register_module("out_proj", torch::nn::Linear(dim, dim));
    torch::NoGradGuard no_grad;
    torch::nn::init::xavier_uniform_(in_proj_weight);
    torch::nn::init::zeros_(out_proj->bias);
  }

  // x: [N, tokens, dim]
  torch::Tensor forward(const torch::Tensor& x) {
    const auto n = x.size(0), t = x.size(1), d = x.size(2), hd = d / heads;
    const auto qkv = torch::nn::functional::linear(x, in_proj_weight, in_proj_bias)
                         .view({n, t, 3, heads, hd}).permute({2, 0, 3, 1, 4})  // [3, N, heads, tokens, hd]
                         .contiguous();  // BLAS runs the batched products 3x faster on dense heads
    const auto q = qkv[0] * (1.0 / std::sqrt(static_cast<double>(hd))), k = qkv[1], v = qkv[2];
    const auto weights = torch::softmax(torch::matmul(q, k.transpose(-2, -1)), -1);
    return out_proj(torch::matmul(weights, v).transpose(1, 2).reshape({n, t, d}));
  }
  int heads;
  torch::Tensor in_proj_weight, in_proj_bias;
  torch::nn::Linear out_proj{nullptr};
};
TORCH_MODULE(Attention);

struct BlockImpl : torch::nn::Module {
  BlockImpl(int dim, int heads, int mlp_ratio)
      : norm1(register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})))),
        attn(register_module("attn", Attention(dim, heads))),
        norm2(register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})))),
        fc1(register_module("fc1", torch::nn::Linear(dim, dim * mlp_ratio))),
        fc2(register_module("fc2", torch::nn::Linear(dim * mlp_ratio, dim))) {}

  // x: [N, tokens, dim]
  torch::Tensor forward(torch::Tensor x) {
    x = x + attn(norm1(x));
    return x + fc2(torch::gelu(fc1(norm2(x))));
  }
  torch::nn::LayerNorm norm1{nullptr};
  Attention attn{nullptr};
  torch::nn::LayerNorm norm2{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Block);

std::string pair_name(Modality a, Modality b) { return fmt::format("{}-{}", info(a).name, info(b).name); }

}  // namespace

ChannelEncoderImpl::ChannelEncoderImpl(const ModelConfig& c, int channels) : config(c) {
  const int grid = c.input / c.patch;
  patch_embed = register_module("patch_embed",
                                torch::nn::Conv2d(torch::nn::Conv2dOptions(1, c.dim, c.patch).stride(c.patch)));
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, c.dim}));
  pos_embed = register_parameter("pos_embed", torch::randn({1, grid * grid + 1, c.dim}) * 0.02);
  if (c.channel_embed) channel_embed = register_parameter("channel_embed", torch::randn({channels, c.dim}) * 0.02);
  if (c.channel_proj) channel_proj = register_parameter("channel_proj", torch::zeros({channels, c.dim, c.embed}));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int i = 0; i < c.depth; ++i) blocks->push_back(Block(c.dim, c.heads, c.mlp_ratio));
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.dim})));
  proj = register_module("proj", torch::nn::Linear(torch::nn::LinearOptions(c.dim, c.embed).bias(false)));
}

torch::Tensor ChannelEncoderImpl::forward(torch::Tensor x, const torch::Tensor& channel) {
  const auto n = x.size(0);
  x = patch_embed(x);                       // [N, dim, gh, gw]
  const auto gh = x.size(2), gw = x.size(3);
  x = x.flatten(2).transpose(1, 2);         // [N, gh*gw, dim]
  torch::Tensor pos = pos_embed;
  const int grid = config.input / config.patch;
  if (gh != grid || gw != grid) {
    // another input size: interpolate the learned grid of position embeddings
    auto patch_pos = pos.index({torch::indexing::Slice(), torch::indexing::Slice(1)})
                         .reshape({1, grid, grid, config.dim}).permute({0, 3, 1, 2});
    patch_pos = torch::nn::functional::interpolate(
        patch_pos, torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{gh, gw})
                       .mode(torch::kBicubic).align_corners(false));
    pos = torch::cat({pos.index({torch::indexing::Slice(), torch::indexing::Slice(0, 1)}),
                      patch_pos.permute({0, 2, 3, 1}).reshape({1, gh * gw, config.dim})}, 1);
  }
  x = torch::cat({cls_token.expand({n, 1, config.dim}), x}, 1) + pos;
  if (channel_embed.defined()) {
    TORCH_CHECK(channel.defined(), "an encoder with channel embeddings needs each row's channel index");
    x = x + channel_embed.index({channel}).unsqueeze(1);
  }
  for (auto& block : *blocks) x = block->as<BlockImpl>()->forward(x);
  x = norm(x);
  const auto pooled = config.pooling == Pooling::mean ? x.index({torch::indexing::Slice(), torch::indexing::Slice(1)}).mean(1)
                                                : x.select(1, 0);
  if (!channel_proj.defined()) return proj(pooled);
  TORCH_CHECK(channel.defined(), "an encoder with channel projections needs each row's channel index");
  // Every channel's projection of every row, then each row's own through a one-hot: the
  // gradient of an index into channel_proj accumulates in an order that varies with the
  // CPU threads, and checkpoints would no longer be byte-identical; this is matrix products.
  const auto all = torch::einsum("nd,cde->nce", {pooled, channel_proj});
  const auto own = torch::one_hot(channel, channel_proj.size(0)).to(pooled.scalar_type()).unsqueeze(2);
  return proj(pooled) + (all * own).sum(1);
}

torch::Tensor encode_channels(const EncodeChannel& encode, const torch::Tensor& x, const torch::Tensor& mask,
                              int64_t embed) {
  const auto b = x.size(0), c = x.size(1);
  const auto idx = mask.to(torch::kBool).reshape({b * c}).nonzero().squeeze(1);
  if (idx.numel() == 0) return torch::zeros({b, embed}, x.options());
  // Only the channels present go through the encoder.
  const auto flat = x.reshape({b * c, 1, x.size(2), x.size(3)});
  const auto encoded = encode(flat.index({idx}), idx.remainder(c));
  const auto out = torch::zeros({b * c, encoded.size(1)}, x.options()).index_put({idx}, encoded);
  const auto m = mask.to(x.dtype()).unsqueeze(2);  // [B, C, 1]
  return (out.reshape({b, c, -1}) * m).sum(1) / m.sum(1).clamp_min(1.0);
}

torch::Tensor encode_channels(ChannelEncoder& encoder, const torch::Tensor& x, const torch::Tensor& mask) {
  return encode_channels([&](const torch::Tensor& images, const torch::Tensor& channel) {
    return encoder->forward(images, channel);
  }, x, mask, encoder->config.embed);
}

MultiModalImpl::MultiModalImpl(const ModelConfig& c, const std::vector<Modality>& mods) : config(c), modalities(mods) {
  for (Modality m : mods) encoders.emplace(m, register_module(info(m).name, ChannelEncoder(c, info(m).channels())));
  if (c.reconstruction > 0)
    for (Modality m : mods) {
      const int outputs = info(m).channels() * c.reconstruction_grid * c.reconstruction_grid * (c.reconstruction_spread ? 2 : 1);
      decoders.emplace(m, register_module(fmt::format("decoder_{}", info(m).name), torch::nn::Linear(c.embed, outputs)));
    }
  if (c.chip_statistics > 0)
    for (Modality m : mods)
      statistics_decoders.emplace(m, register_module(fmt::format("statistics_{}", info(m).name),
                                                     torch::nn::Linear(c.embed, 2 * info(m).channels())));
  // CLIP's initial temperature 0.07
  logit_scale = register_parameter("logit_scale", torch::full({1}, std::log(1 / 0.07)));
}

std::map<Modality, torch::Tensor> MultiModalImpl::forward(const std::map<Modality, torch::Tensor>& x,
                                                          const std::map<Modality, torch::Tensor>& masks) {
  std::map<Modality, torch::Tensor> out;
  for (const auto& [m, t] : x) {
    auto& enc = encoders.at(m);
    out[m] = torch::nn::functional::normalize(encode_channels(enc, t, masks.at(m)),
                                              torch::nn::functional::NormalizeFuncOptions().dim(1).eps(1e-8));
  }
  return out;
}

torch::Tensor MultiModalImpl::temperature_scale() { return logit_scale.clamp_max(std::log(100.0)).exp(); }

torch::Tensor MultiModalImpl::reconstruct(Modality m, const torch::Tensor& embedding) {
  const int g = config.reconstruction_grid;
  const int rows = config.reconstruction_spread ? 2 * g : g;
  return decoders.at(m)->forward(embedding).view({embedding.size(0), info(m).channels(), rows, g});
}

torch::Tensor MultiModalImpl::decode_statistics(Modality m, const torch::Tensor& embedding) {
  return statistics_decoders.at(m)->forward(embedding);
}

torch::Tensor reconstruction_target(const torch::Tensor& chips, int grid, bool spread) {
  torch::NoGradGuard no_grad;
  const auto mean = torch::adaptive_avg_pool2d(chips, {grid, grid});
  if (!spread) return mean;
  const auto variance = torch::adaptive_avg_pool2d(chips.square(), {grid, grid}) - mean.square();
  return torch::cat({mean, variance.clamp_min(0).sqrt()}, 2);
}

torch::Tensor reconstruction_error(const torch::Tensor& reconstructed, const torch::Tensor& target,
                                   const torch::Tensor& mask) {
  return ((reconstructed - target).square().mean({2, 3}) * mask).sum();
}

torch::Tensor statistics_target(const torch::Tensor& chips) {
  return reconstruction_target(chips, 1, true).reshape({chips.size(0), -1});  // [B, C, 2, 1]: mean, spread
}

torch::Tensor statistics_present(const torch::Tensor& mask) { return mask.repeat_interleave(2, 1); }

torch::Tensor statistics_covariance(const torch::Tensor& values, const torch::Tensor& present) {
  constexpr double kShrink = 0.05;
  torch::NoGradGuard no_grad;
  const auto p = present.to(torch::kFloat64), t = values.to(torch::kFloat64) * p;
  const auto pairs = p.t().matmul(p).clamp_min(2);  // [K, K]: chips with both
  const auto sums = t.t().matmul(p);                // [i, j]: the sum of i over the chips with both
  const auto cov = (t.t().matmul(t) - sums * sums.t() / pairs) / (pairs - 1);
  // Each correlation shrunk by kShrink, each variance kept (at least 1e-6: a statistic that
  // never varies would otherwise weigh without bound).
  const auto variance = cov.diagonal().clamp_min(1e-6);
  const auto shrunk = cov * (1 - kShrink) + torch::diag(variance - cov.diagonal() * (1 - kShrink));
  const auto [eigenvalues, vectors] = torch::linalg_eigh(shrunk);
  const auto floored = eigenvalues.clamp_min(kShrink * variance.min().item<double>());
  return vectors.matmul(torch::diag(floored)).matmul(vectors.t()).to(values.scalar_type());
}

torch::Tensor whitened_error(const torch::Tensor& decoded, const torch::Tensor& target, const torch::Tensor& present,
                             const torch::Tensor& covariance) {
  // Each chip's covariance among the statistics it has, with the missing ones' rows and
  // columns those of an identity and their errors zero: the same distance as the inverse
  // of the part among those present.
  torch::Tensor inverse;
  {
    torch::NoGradGuard no_grad;
    const auto p = present.to(covariance.dtype());
    const auto both = p.unsqueeze(2) * p.unsqueeze(1);  // [B, 2C, 2C]
    inverse = torch::linalg_inv(covariance.unsqueeze(0) * both + torch::diag_embed(1 - p));
  }
  const auto e = (decoded - target) * present;
  return torch::einsum("bi,bij,bj->b", {e, inverse, e}).sum();
}

LossParts info_nce(const std::map<Modality, torch::Tensor>& gathered, const std::map<Modality, torch::Tensor>& present,
                   const torch::Tensor& scale) {
  LossParts parts;
  std::vector<torch::Tensor> losses;
  for (auto a = gathered.begin(); a != gathered.end(); ++a)
    for (auto b = std::next(a); b != gathered.end(); ++b) {
      const auto both = (present.at(a->first) & present.at(b->first)).nonzero().squeeze(1);
      if (both.numel() < 2) continue;  // no negatives: nothing to contrast
      const auto za = a->second.index({both}), zb = b->second.index({both});
      const auto logits = scale * za.matmul(zb.t());
      const auto target = torch::arange(both.numel(), torch::TensorOptions().dtype(torch::kLong).device(za.device()));
      const auto loss = (torch::nn::functional::cross_entropy(logits, target) +
                         torch::nn::functional::cross_entropy(logits.t(), target)) / 2;
      parts.per_pair[pair_name(a->first, b->first)] = loss.item<double>();
      losses.push_back(loss);
    }
  parts.total = losses.empty() ? torch::zeros({}, scale.options()) * scale.sum() : torch::stack(losses).mean();
  return parts;
}

std::int64_t parameter_count(torch::nn::Module& module) {
  std::int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace eo
