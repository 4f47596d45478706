#pragma once
// Data-parallel contrastive pretraining over the HDF5 chip stores: a shuffled,
// rank-disjoint sampler, satellite-chip augmentations, AdamW with warm-up and cosine
// decay, gradient clipping, and gradients summed over ranks with MPI_Allreduce in
// buckets while embeddings are all-gathered so negatives come from the global batch.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <string>
#include <vector>

#include "pipeline/core/chip_batch.hpp"
#include "pipeline/core/config.hpp"
#include "schedulers/comm.hpp"
#include "stages/chip/normalise.hpp"
#include "stages/model/vit.hpp"

namespace eo {

// Chips of the chip stores, normalised, ready for the model.
struct ChipSample {
  std::map<Modality, std::vector<float>> values;  // [C, S, S], no data as 0
  std::map<Modality, std::vector<float>> mask;    // [C], 1 where the channel is present
};

// One chip's values of one modality normalised into `values` ([C, S, S], no data as 0),
// and its channel mask into `mask` ([C], 1 where at least `min_valid` of it is valid).
void normalise_chip(const ModalityChips& mc, std::size_t chip, std::size_t plane, const std::vector<ChannelStats>& stats,
                    double min_valid, float* values, float* mask);

class ChipDataset {
 public:
  // All chips with data of the given stores; channels with fewer than `min_valid`
  // valid pixels are masked out.
  ChipDataset(const std::vector<std::filesystem::path>& stores, const Normalisation& norm,
              const std::vector<Modality>& modalities, double min_valid);
  // Samples made elsewhere (tests).
  ChipDataset(std::vector<ChipSample> samples, std::vector<Modality> modalities, int size)
      : samples_(std::move(samples)), modalities_(std::move(modalities)), size_(size) {}
  std::size_t size() const { return samples_.size(); }
  int chip_pixels() const { return size_; }
  const ChipSample& at(std::size_t i) const { return samples_[i]; }
  const std::vector<Modality>& modalities() const { return modalities_; }

 private:
  std::vector<ChipSample> samples_;
  std::vector<Modality> modalities_;
  int size_ = 0;
};

// The config's pretrain section (threads resolved to a count) and where it runs.
struct TrainConfig : PretrainConfig {
  Device device = Device::cpu;
  bool bf16 = false;
  TrainConfig() { threads = 1; }
};

struct StepResult {
  double loss = 0;  // the contrastive loss, plus the decoders' errors times their weights
  // The loss's terms by name: each pair of modalities' contrastive loss ("s2rgb-s1amp") and
  // each modality's reconstruction error ("rec_s2rgb", when reconstruction is on) and
  // band statistics error ("stats_s2rgb", when model.chip_statistics is on).
  std::map<std::string, double> terms;
  double reconstruction = 0;  // the reconstructions' mean error, unweighted
  double statistics = 0;      // the band statistics decoders' mean error, unweighted
  double lr = 0;
  double data_s = 0, forward_s = 0, backward_s = 0, allreduce_s = 0;
};

class Trainer {
 public:
  Trainer(const ModelConfig& model, const TrainConfig& train, const ChipDataset& data, const Comm& comm);
  StepResult step();  // one optimisation step over the global batch
  // The loss of the next global batch and its gradients, summed over ranks, without
  // stepping: what step() does before clipping and the optimizer.
  StepResult compute_gradients();
  int steps_done() const { return step_; }
  // Model, optimizer and sampler state (the sampler is a function of the step), written
  // to a temporary name and renamed.
  void save(const std::filesystem::path& file);
  void load(const std::filesystem::path& file);
  MultiModal& model() { return model_; }
  // The global batch `step` of the sampler, as this rank's share: [rank*b, (rank+1)*b).
  std::vector<std::size_t> batch_indices(int step) const;
  // The model's inputs and channel masks for a list of samples (augmented by `step` and
  // global position).
  using Batch = std::pair<std::map<Modality, torch::Tensor>, std::map<Modality, torch::Tensor>>;
  Batch make_batch(const std::vector<std::size_t>& indices, int step, std::size_t first_position) const;

 private:
  double learning_rate(int step) const;
  std::size_t first_position(int step) const;  // of this rank's rows in the global batch
  Batch load_batch(int step) const;
  void allreduce_gradients();
  // Calls fn with the model's inputs and masks of up to 512 chips spread evenly over the
  // data, 32 at a time, as step 0 would augment them: the sample the decoders' targets are
  // measured on.
  void for_each_sample_batch(const std::function<void(const std::map<Modality, torch::Tensor>&,
                                                      const std::map<Modality, torch::Tensor>&)>& fn) const;
  std::map<Modality, torch::Tensor> target_scales() const;
  std::map<Modality, torch::Tensor> statistics_covariances() const;
  torch::Tensor decoder_loss(const std::map<Modality, torch::Tensor>& embeddings, const Batch& batch, StepResult& r);

  ModelConfig model_config_;
  TrainConfig config_;
  const ChipDataset& data_;
  Comm comm_;
  MultiModal model_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  // Per modality (model.reconstruction_standardised), each channel's reconstruction targets'
  // spread across chips, [C, rows, 1]: a function of the data, the same on every rank.
  std::map<Modality, torch::Tensor> target_scale_;
  // Per modality (model.chip_statistics), the covariance of the chips' band statistics
  // across chips, [2C, 2C]: likewise the same on every rank.
  std::map<Modality, torch::Tensor> statistics_covariance_;
  int step_ = 0;
  // The shuffle of the current pass over the data (a function of seed and pass).
  mutable std::vector<std::size_t> perm_;
  mutable std::size_t perm_epoch_ = SIZE_MAX;
  // The background loader's batch for step next_step_.
  std::future<Batch> next_;
  int next_step_ = -1;
};

}  // namespace eo
