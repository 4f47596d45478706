#pragma once
// `pretrain` as the CLI runs it, without LibTorch in the interface (DESIGN.md §6).

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "pipeline/core/config.hpp"
#include "schedulers/comm.hpp"

namespace eo {

struct PretrainReport {
  int first_step = 0;  // > 0 when resumed from a checkpoint
  int steps = 0;
  double first_loss = 0, last_loss = 0;
  std::int64_t parameters = 0;
  std::size_t chips = 0;
  double seconds = 0;
  std::string checkpoint;  // the last one written
};

// What pretraining reads of the config: its own section and the model's, the data it
// trains on, where the output is, and what it records in each checkpoint.
struct PretrainSpec {
  PretrainConfig train;
  ModelSection model;
  std::vector<Modality> modalities;  // data.modalities
  double min_valid_fraction = 0.5;   // data.min_valid_fraction
  std::filesystem::path output;      // chip stores in OUTPUT/chips, checkpoints to OUTPUT/pretrain
  std::string config_hash;           // recorded in each checkpoint's sidecar
  std::string source;                // the config file, for messages
};

// Trains on OUTPUT/chips/*.h5 with OUTPUT/normalisation.json; checkpoints, the loss
// curve (CSV) and a report go to OUTPUT/pretrain/. Resumes from the newest intact
// checkpoint by itself. Collective over `comm`.
PretrainReport run_pretraining(const PretrainSpec& spec, const Comm& comm, int threads);

}  // namespace eo
