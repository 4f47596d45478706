#pragma once
// Encoders as TorchScript: ours exported through the PyTorch mirror of the encoder
// (python/eo_encoder.py), and encoders scripted in Python (torch.jit) loaded for
// inference, so users can bring their own trained model.

#include <torch/script.h>

#include <filesystem>

#include "stages/model/vit.hpp"

namespace eo {

// One encoder's parameters (torch::pickle_save: torch.load reads them in Python) and its
// shape as JSON, the inputs of `eo_encoder.py export`.
void save_encoder_for_export(ChannelEncoder& encoder, const std::filesystem::path& state_file,
                             const std::filesystem::path& config_file);

// The encoder as TorchScript, written by LibTorch alone (no Python): its parameters and
// its forward pass in TorchScript source, the same computation as ChannelEncoder's, for
// any input size. Loads in Python with torch.jit.load and in C++ as a ScriptedEncoder.
void export_torchscript(ChannelEncoder& encoder, const std::filesystem::path& file);

// A TorchScript encoder taking [N, 1, H, W] (and, if it has channel embeddings, each
// row's channel index [N]) and returning [N, E].
class ScriptedEncoder {
 public:
  explicit ScriptedEncoder(const std::filesystem::path& file);  // throws naming the file
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& channel);
  // Channel-wise like encode_channels: mean over the channels present.
  torch::Tensor encode_channels(const torch::Tensor& x, const torch::Tensor& mask);
  torch::jit::script::Module& module() { return module_; }

 private:
  torch::jit::script::Module module_;
  bool takes_channel_ = false;  // it has channel embeddings, so forward takes (x, channel)
};

}  // namespace eo
