#pragma once
// embed: a trained model applied to chips, for `run`, without LibTorch in the interface
// (DESIGN.md §6). The model is a pretraining checkpoint with its sidecar (model shape,
// modalities, content hash).

#include <cstdint>
#include <filesystem>
#include <functional>
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

  class Stream;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Chips of any rows of any tiles through the model `batch` at a time, for a device where
// large batches pay (CUDA): a tile's last chips wait for the next tile's first. Each
// chip is normalised into a host staging batch (pinned on CUDA); a full batch is copied
// to the device and run without waiting, and its embeddings are copied back while the
// host fills the next one, so copies and the host's work overlap the model's. Results
// come back per batch and per tag (the caller's tile), in the form Embedder::embed gives
// them; a batch the model fails on fails every tag in it. On the CPU the same code runs
// synchronously (tests); there an embedding's last bits may depend on its batch-mates,
// which is why `run` uses it only where asked or on CUDA.
class Embedder::Stream {
 public:
  using Embedded = std::function<void(std::uint64_t tag, const std::vector<ChipId>& chips,
                                      const std::map<Modality, std::vector<float>>& embeddings)>;
  using Failed = std::function<void(std::uint64_t tag, std::size_t chips, const std::string& why)>;

  Stream(const Embedder& embedder, const Normalisation& norm, double min_valid, int batch, Embedded embedded,
         Failed failed);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Stages the chips of `row` marked in `use` (a chip not used gets NaN embeddings at
  // once); runs every batch that fills.
  void add(std::uint64_t tag, const ChipBatch& row, const std::vector<bool>& use);
  // Runs what is staged and waits for every batch's embeddings.
  void flush();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace eo
