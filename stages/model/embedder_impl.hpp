#pragma once
// Private to the model stage: what the Embedder (embedder.cpp), its Stream (stream.cpp)
// and the model's files (model_card.cpp) share.

#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <vector>

#include "pipeline/core/error.hpp"
#include "stages/model/embed.hpp"
#include "stages/model/torchscript.hpp"
#include "stages/model/vit.hpp"

namespace eo {

// A TorchScript model's encoder of one modality: DIR/<modality>.pt.
inline std::filesystem::path encoder_file(const std::filesystem::path& dir, Modality m) {
  return dir / (std::string(info(m).name) + ".pt");
}

// The checkpoint's model, on the CPU; ConfigError naming the file when it is not one.
MultiModal load_checkpoint_model(const ModelCard& card, const ModelConfig& mc);

// Refuses a row whose chips of a modality to embed have other channels than the
// statistics (StageError "embed"), before any of its chips is taken.
void check_channels(const ChipBatch& row, const Normalisation& norm, const std::vector<Modality>& modalities);

// A chip's embedding of modality `m` into `dst`. Throws StageError "embed" when the model
// gave a value that is not finite: a broken model, not a chip without data, so the tile
// fails with that reason instead of being journalled as no data.
inline void take_embedding(const float* src, std::size_t dim, float* dst, Modality m) {
  for (std::size_t i = 0; i < dim; ++i)
    if (!std::isfinite(src[i]))
      throw StageError("embed", fmt::format("the model's {} encoder returned {} for a chip with data (component {} of {}): "
                                            "the model is broken, not the data",
                                            info(m).name, src[i], i, dim));
  std::copy_n(src, dim, dst);
}

struct Embedder::Impl {
  ModelConfig model_config;
  MultiModal model{nullptr};                                         // a checkpoint, or
  std::map<Modality, std::unique_ptr<ScriptedEncoder>> scripted;     // TorchScript encoders
  std::vector<Modality> modalities;
  torch::Device device{torch::kCPU};
  int threads = 1;

  // L2-normalised embeddings per modality, [B, embed], as MultiModal::forward gives them.
  std::map<Modality, torch::Tensor> forward(const std::map<Modality, torch::Tensor>& x,
                                            const std::map<Modality, torch::Tensor>& masks) {
    if (model) return model->forward(x, masks);
    std::map<Modality, torch::Tensor> out;
    for (const auto& [m, t] : x)
      out[m] = torch::nn::functional::normalize(scripted.at(m)->encode_channels(t, masks.at(m)),
                                                torch::nn::functional::NormalizeFuncOptions().dim(1).eps(1e-8));
    return out;
  }
};

}  // namespace eo
