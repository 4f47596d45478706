#pragma once
// embed: a trained model applied to chips, for `run`, without LibTorch in the interface
// (DESIGN.md §6). The model is a pretraining checkpoint with its sidecar (model shape,
// modalities, content hash).

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/core/chip_batch.hpp"
#include "pipeline/core/config.hpp"
#include "stages/chip/normalise.hpp"

namespace eo {

struct ModelCard {
  std::filesystem::path checkpoint;  // step-N.pt, or the folder of TorchScript encoders
  bool torchscript = false;          // model.torchscript: <modality>.pt in `checkpoint`
  std::string name;                  // the preset
  std::string hash;                  // content hash of the checkpoint
  int dim = 0;                       // embedding size
  std::vector<Modality> modalities;  // what it was trained on
  std::string normalisation;         // hash of the statistics it was trained with
  nlohmann::json model;              // its shape, as the sidecar records it
};

// A checkpoint's sidecar (CHECKPOINT with .json); ConfigError naming it when missing or unreadable.
nlohmann::json read_sidecar(const std::filesystem::path& checkpoint);

// The newest intact checkpoint (its file matches the hash its sidecar recorded) in a
// folder, if any.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& dir);

// The model a run uses: model.torchscript, model.checkpoint, or the newest intact
// checkpoint of OUTPUT/pretrain/checkpoints. ConfigError when there is none or it cannot
// be read.
ModelCard find_model(const Config& config);

// The statistics the model expects, if they travel with it: normalisation.json beside
// the checkpoint, or in the TorchScript folder.
std::filesystem::path model_normalisation_file(const ModelCard& card);

// The model's encoders as TorchScript, DIR/<modality>.pt, with the statistics it was
// trained with (DIR/normalisation.json) and DIR/model.json (shape, modalities, source
// checkpoint): what model.torchscript reads. Returns the files written.
std::vector<std::filesystem::path> export_model(const ModelCard& card, const Normalisation& norm,
                                                const std::filesystem::path& dir);

class Embedder {
 public:
  // `modalities`: those to embed (a subset of the model's).
  Embedder(const ModelCard& card, const ModelSection& model, std::vector<Modality> modalities, int threads);
  ~Embedder();
  Embedder(const Embedder&) = delete;
  Embedder& operator=(const Embedder&) = delete;

  // Embeddings of the chips of `batch` marked in `use`, per modality, [chip][dim] in the
  // batch's chip order; the rows of chips not used, or without a channel of the modality
  // with at least `min_valid` valid pixels, are NaN. Chips go through the model
  // `batch_chips` at a time, passes in parallel on the threads, so the result depends on
  // neither the number of threads nor how tiles are shared out among ranks.
  std::map<Modality, std::vector<float>> embed(const ChipBatch& batch, const std::vector<bool>& use,
                                               const Normalisation& norm, double min_valid, int batch_chips) const;
  int dim() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace eo
