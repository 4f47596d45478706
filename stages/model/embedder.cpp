// The Embedder: a trained model (a checkpoint, or TorchScript encoders) applied to rows
// of chips, passes side by side on the rank's threads.

#include <dlfcn.h>

#include <algorithm>
#include <fmt/format.h>

#include "pipeline/core/error.hpp"
#include "pipeline/core/parallel.hpp"
#include "pipeline/core/resources.hpp"
#include "stages/model/embedder_impl.hpp"
#include "stages/model/trainer.hpp"

namespace eo {

void check_channels(const ChipBatch& row, const Normalisation& norm, const std::vector<Modality>& modalities) {
  for (const ModalityChips& mc : row.modalities) {
    if (std::find(modalities.begin(), modalities.end(), mc.modality) == modalities.end()) continue;
    const auto stats = norm.channels.find(mc.modality);
    if (stats == norm.channels.end() || static_cast<int>(stats->second.size()) != mc.channels)
      throw StageError("embed", fmt::format("{}: {} channels, the statistics have {}", info(mc.modality).name, mc.channels,
                                           stats == norm.channels.end() ? 0 : stats->second.size()));
  }
}

Embedder::Embedder(const ModelCard& card, const ModelSection& model, std::vector<Modality> modalities, int threads)
    : impl_(std::make_unique<Impl>()) {
  ModelConfig mc;
  if (card.torchscript) {
    mc.preset = card.name;
    mc.input = card.model.at("input").get<int>();
    mc.embed = card.dim;
  } else {
    try {
      mc = ModelConfig::from_json(card.model);
    } catch (const std::exception& e) {
      throw StageConfigError("embed", fmt::format("{}: the sidecar's model is incomplete: {}", card.checkpoint.string(), e.what()));
    }
  }
  mc.device = model.device;
  impl_->model_config = mc;
  impl_->modalities = std::move(modalities);
  // Parallel over forward passes, each pass on one thread (see embed()).
  impl_->threads = std::max(1, threads);
  keep_freed_memory();
  torch::set_num_threads(1);
  using SetThreads = void (*)(int);
  if (auto set_blas_threads = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    set_blas_threads(1);
  if (mc.device == Device::cuda && !torch::cuda::is_available())
    throw StageConfigError("embed", "model.device is cuda but this LibTorch has no CUDA device (build with a CUDA LibTorch through Torch_DIR)");
  impl_->device = torch_device(mc.device);
  if (card.torchscript) {
    for (Modality m : impl_->modalities) {
      auto encoder = std::make_unique<ScriptedEncoder>(encoder_file(card.checkpoint, m));
      encoder->module().to(impl_->device);
      impl_->scripted.emplace(m, std::move(encoder));
    }
    return;
  }
  impl_->model = load_checkpoint_model(card, mc);
  impl_->model->to(impl_->device);
  impl_->model->eval();
}

Embedder::~Embedder() = default;

int Embedder::dim() const { return impl_->model_config.embed; }

std::map<Modality, std::vector<float>> Embedder::embed(const ChipBatch& batch, const std::vector<bool>& use,
                                                       const Normalisation& norm, double min_valid,
                                                       int batch_chips) const {
  check_channels(batch, norm, impl_->modalities);
  const std::size_t dim = static_cast<std::size_t>(impl_->model_config.embed), n = batch.chips.size();
  const int s = batch.size, input = impl_->model_config.input;
  const std::size_t plane = static_cast<std::size_t>(s) * s;
  std::vector<std::size_t> chips;
  for (std::size_t k = 0; k < n; ++k)
    if (use[k]) chips.push_back(k);
  std::map<Modality, std::vector<float>> out;
  for (Modality m : impl_->modalities) out[m].assign(n * dim, std::nanf(""));

  // One forward pass: chips [first, first + count) of `chips`, into their rows of `out`.
  auto pass = [&](std::size_t first, std::size_t count) {
    c10::InferenceMode inference;
    std::map<Modality, torch::Tensor> x, masks;
    for (Modality m : impl_->modalities) {
      const ModalityChips* mc = batch.find(m);
      if (!mc) continue;  // the modality is not read at all: its rows stay NaN
      const long c = mc->channels;
      auto values = torch::empty({static_cast<long>(count), c, s, s});
      auto mask = torch::empty({static_cast<long>(count), c});
      for (std::size_t j = 0; j < count; ++j)
        normalise_chip(*mc, chips[first + j], plane, norm.channels.at(m), min_valid,
                       values.data_ptr<float>() + j * c * plane, mask.data_ptr<float>() + j * c);
      x[m] = resize_to_input(values, input).to(impl_->device);
      masks[m] = mask.to(impl_->device);
    }
    const auto emb = impl_->forward(x, masks);
    for (const auto& [m, e] : emb) {
      const auto cpu = e.to(torch::kCPU, torch::kFloat).contiguous();
      const auto present = (masks.at(m).sum(1) > 0).to(torch::kCPU);
      auto& dst = out.at(m);
      for (std::size_t j = 0; j < count; ++j)
        if (present[static_cast<long>(j)].item<bool>())
          take_embedding(cpu.data_ptr<float>() + j * dim, dim, dst.data() + chips[first + j] * dim, m);
    }
  };

  // Passes of `batch_chips` chips run side by side on the rank's threads, each one
  // single-threaded: the bits of an embedding depend on its pass alone, not on the
  // number of threads or ranks (a multi-threaded BLAS changes the last bits with its
  // thread count).
  const std::size_t passes = (chips.size() + static_cast<std::size_t>(batch_chips) - 1) / static_cast<std::size_t>(batch_chips);
  parallel_for(passes, impl_->threads, [&](std::size_t p) {
    const std::size_t first = p * static_cast<std::size_t>(batch_chips);
    pass(first, std::min(chips.size() - first, static_cast<std::size_t>(batch_chips)));
  });
  return out;
}

}  // namespace eo
