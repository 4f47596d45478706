#pragma once
// The multi-modal CLIP/ViT of DESIGN.md §1 in LibTorch's C++ frontend: one ViT encoder
// per modality over single channels, channel-wise encoding with channel masks, and the
// symmetric InfoNCE loss over every pair of modalities, beside each modality's
// reconstruction of its chip from its embedding. LibTorch is included only here
// and in stages/model's sources (and their tests).

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "pipeline/core/choices.hpp"
#include "pipeline/core/modality.hpp"

namespace eo {

struct ModelConfig {
  std::string preset = "nano";  // the model's name: its preset's, or a TorchScript model's
  int input = 112;      // pixels per side the encoders see (chips are resampled to it)
  int patch = 16;
  int dim = 64;         // transformer width
  int depth = 2;
  int heads = 2;
  int mlp_ratio = 4;
  int embed = 64;       // shared embedding size
  Pooling pooling = Pooling::cls;
  // A learned embedding per channel (band and season), added to the channel's tokens: without
  // it the shared encoder cannot tell red from blue or VV from VH (docs/decisions.md).
  bool channel_embed = false;
  // A learned projection per channel beside the shared one: the channel's pooled tokens go
  // through proj + channel_proj[channel], so that the mean over the channels can keep each
  // channel's part in its own directions (docs/decisions.md). Starts at zero: the shared
  // projection alone.
  bool channel_proj = false;
  // Pretraining's weight of the modalities' reconstructions (beside the contrastive loss):
  // each modality's embedding decodes, through a linear layer, its chip's channels averaged
  // over a grid of reconstruction_grid² cells. A purely cross-modal loss keeps only what the
  // modalities share; this keeps what one of them alone sees (docs/decisions.md). 0: none,
  // and no decoders.
  double reconstruction = 0;
  int reconstruction_grid = 4;
  // The decoders reconstruct each cell's spread (standard deviation) beside its mean: the
  // texture within a cell (parcels, speckle) that the means leave out.
  bool reconstruction_spread = false;
  // Each channel's cell means (and spreads) are reconstructed in units of their own spread
  // across chips: otherwise the squared error weighs what varies most between chips and
  // leaves out small differences (between seasons, in texture) that tell land covers apart.
  bool reconstruction_standardised = false;
  // Pretraining's weight of each modality's decoding, through a linear layer, of its chip's
  // band statistics (each channel's mean and spread over the chip) from its embedding, the
  // error measured in whitened units (a Mahalanobis distance under the statistics'
  // covariance across chips): every direction in which chips differ counts as much as any
  // other, so that a small one (a season against the next) is kept beside the large ones
  // (bright against dark) that a squared error favours. 0: none, and no decoders.
  double chip_statistics = 0;
  Device device = Device::cpu;
  bool bf16 = false;

  // nano (CPU demo and tests), tiny, small, base; paper = base/16 at 448 px.
  static ModelConfig from_preset(ModelPreset preset, int input = 0);
  // The shape, as a checkpoint's sidecar records it (device and precision are the run's).
  nlohmann::json to_json() const;
  static ModelConfig from_json(const nlohmann::json& j);  // throws nlohmann::json::exception
};

// A lower bound on the memory one sample's forward pass keeps for the backward pass, in
// bytes, for a sample of `channels` channels (each channel is a sequence of its own): per
// layer and channel, the tokens' activations (attention's projections, the MLP's hidden
// layer, the norms and residuals, about (16 + 2 mlp_ratio) floats per token and width)
// and the attention maps (3 per head); and the chips resized to the input.
double activation_bytes_per_sample(const ModelConfig& model, int channels);

// LibTorch's device for the config's.
torch::Device torch_device(Device device);

// Chips [B, C, S, S] resampled (bilinear) to the encoders' input size, as in training.
torch::Tensor resize_to_input(const torch::Tensor& chips, int input);

// A ViT over one channel: patch embedding, learned position embeddings (interpolated for
// other input sizes), pre-norm transformer blocks, CLS or mean pooling, projection.
struct ChannelEncoderImpl : torch::nn::Module {
  // `channels`: how many channels the modality has, for the channel embeddings.
  ChannelEncoderImpl(const ModelConfig& c, int channels);
  // [N, 1, H, W] and each row's channel index [N] -> [N, embed]
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& channel);

  ModelConfig config;
  torch::nn::Conv2d patch_embed{nullptr};
  torch::Tensor cls_token, pos_embed, channel_embed;  // channel_embed: [channels, dim], if used
  torch::Tensor channel_proj;                         // [channels, dim, embed], if used
  torch::nn::ModuleList blocks;
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear proj{nullptr};
};
TORCH_MODULE(ChannelEncoder);

// One encoder of single channels: images [N, 1, H, W] and their channel indices [N] -> [N, E].
using EncodeChannel = std::function<torch::Tensor(const torch::Tensor& images, const torch::Tensor& channel)>;

// Channel-wise encoding: [B, C, H, W] -> [B*C, 1, H, W] -> encoder -> mean over the
// channels present (mask [B, C], 1 present). A row with no channel present gets zeros;
// `embed` is their size when no row has any.
torch::Tensor encode_channels(const EncodeChannel& encode, const torch::Tensor& x, const torch::Tensor& mask,
                              int64_t embed);
torch::Tensor encode_channels(ChannelEncoder& encoder, const torch::Tensor& x, const torch::Tensor& mask);

struct MultiModalImpl : torch::nn::Module {
  MultiModalImpl(const ModelConfig& c, const std::vector<Modality>& modalities);
  // L2-normalised embeddings per modality, [B, embed].
  std::map<Modality, torch::Tensor> forward(const std::map<Modality, torch::Tensor>& x,
                                            const std::map<Modality, torch::Tensor>& masks);
  torch::Tensor temperature_scale();  // exp(logit_scale), clamped to at most 100
  // A modality's decoder (config.reconstruction > 0): embeddings [B, embed] -> [B, C, g, g]
  // ([B, C, 2g, g] with the spreads: means above, spreads below).
  torch::Tensor reconstruct(Modality m, const torch::Tensor& embedding);
  // A modality's band statistics decoder (config.chip_statistics > 0): [B, embed] -> [B, 2C].
  torch::Tensor decode_statistics(Modality m, const torch::Tensor& embedding);

  ModelConfig config;
  std::vector<Modality> modalities;
  std::map<Modality, ChannelEncoder> encoders;
  // training's only: `run` and the export leave them
  std::map<Modality, torch::nn::Linear> decoders, statistics_decoders;
  torch::Tensor logit_scale;
};
TORCH_MODULE(MultiModal);

struct LossParts {
  torch::Tensor total;                            // mean over the pairs with data
  std::map<std::string, double> per_pair;         // "s2rgb-s1amp" -> value
};

// What a modality's decoder reconstructs: its chips [B, C, H, W] averaged over g x g cells,
// [B, C, g, g], and with `spread` each cell's standard deviation below them, [B, C, 2g, g].
torch::Tensor reconstruction_target(const torch::Tensor& chips, int grid, bool spread);

// A chip's band statistics, [B, C, H, W] -> [B, 2C]: each channel's mean and spread over
// the chip, in turn.
torch::Tensor statistics_target(const torch::Tensor& chips);

// Which of a chip's statistics are present: both of each channel present, mask [B, C] -> [B, 2C].
torch::Tensor statistics_present(const torch::Tensor& mask);

// The covariance of statistics across chips (values and present [N, K]), each pair over the
// chips that have both, shrunk by a twentieth towards its diagonal so that no direction
// weighs more than 20 times a statistic in units of its own spread, and made positive
// definite (pairs over different chips need not make a positive definite whole). [K, K].
torch::Tensor statistics_covariance(const torch::Tensor& values, const torch::Tensor& present);

// The statistics' squared error in whitened units, summed over the chips: for each chip,
// (s - t)' S⁻¹ (s - t) over the statistics present (`present` [B, 2C], 1 or 0), with S the
// part of `covariance` ([2C, 2C], across chips) among them.
torch::Tensor whitened_error(const torch::Tensor& decoded, const torch::Tensor& target, const torch::Tensor& present,
                             const torch::Tensor& covariance);

// The squared error of each channel's reconstruction, averaged over its cells, summed over
// the channels present (mask [B, C]): a rank's share of the global batch's sum.
torch::Tensor reconstruction_error(const torch::Tensor& reconstructed, const torch::Tensor& target,
                                   const torch::Tensor& mask);

// Symmetric InfoNCE over every pair of modalities present in both rows, averaged.
// `gathered` are the global batch's embeddings (all ranks) in which this rank's rows
// [offset, offset + B) are the local tensors, so negatives come from the global batch
// while gradients flow through the local part only; `present` says which rows have the
// modality (global too).
LossParts info_nce(const std::map<Modality, torch::Tensor>& gathered, const std::map<Modality, torch::Tensor>& present,
                   const torch::Tensor& scale);

std::int64_t parameter_count(torch::nn::Module& module);

}  // namespace eo
