#pragma once
// Private to the model stage: what the Embedder (embedder.cpp), its Stream (stream.cpp)
// and the model's files (model_card.cpp) share.

#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <memory>
#include <vector>

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
