#include "stages/model/trainer.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <fstream>
#include <future>
#include <numeric>
#include <random>

#include <ATen/autocast_mode.h>
#include <fmt/format.h>

#include "pipeline/core/error.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/resources.hpp"
#include "stages/chipstore/chipstore.hpp"

namespace eo {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27; x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

void normalise_chip(const ModalityChips& mc, std::size_t chip, std::size_t plane, const std::vector<ChannelStats>& stats,
                    double min_valid, float* values, float* mask) {
  for (int c = 0; c < mc.channels; ++c) {
    const std::size_t channel = chip * static_cast<std::size_t>(mc.channels) + static_cast<std::size_t>(c);
    mask[c] = mc.valid[channel] >= min_valid ? 1.0f : 0.0f;
    const float* src = mc.values.data() + channel * plane;
    float* dst = values + static_cast<std::size_t>(c) * plane;
    const auto mean = static_cast<float>(stats[static_cast<std::size_t>(c)].mean);
    const auto inv = static_cast<float>(1.0 / stats[static_cast<std::size_t>(c)].std);
    for (std::size_t i = 0; i < plane; ++i) dst[i] = std::isnan(src[i]) ? 0.0f : (src[i] - mean) * inv;
  }
}

ChipDataset::ChipDataset(const std::vector<std::filesystem::path>& stores, const Normalisation& norm,
                         const std::vector<Modality>& modalities, double min_valid)
    : modalities_(modalities) {
  for (const auto& file : stores) {
    const StoredTile tile = read_chip_store(file);
    size_ = tile.info.size;
    const std::size_t plane = static_cast<std::size_t>(size_) * size_;
    for (std::size_t k = 0; k < tile.chips.size(); ++k) {
      if (tile.status[k] != 1) continue;
      ChipSample s;
      for (const ModalityChips& mc : tile.modalities) {
        if (std::find(modalities.begin(), modalities.end(), mc.modality) == modalities.end()) continue;
        auto& values = s.values[mc.modality];
        auto& mask = s.mask[mc.modality];
        values.resize(mc.channels * plane);
        mask.resize(static_cast<std::size_t>(mc.channels));
        normalise_chip(mc, k, plane, norm.channels.at(mc.modality), min_valid, values.data(), mask.data());
      }
      samples_.push_back(std::move(s));
    }
  }
}

Trainer::Trainer(const ModelConfig& model, const TrainConfig& train, const ChipDataset& data, const Comm& comm)
    : model_config_(model), config_(train), data_(data), comm_(comm) {
  torch::set_num_threads(std::max(1, train.threads));
  keep_freed_memory();
  torch::manual_seed(static_cast<std::uint64_t>(train.seed));  // the same initial weights on every rank
  model_ = MultiModal(model, data.modalities());
  if (train.device == Device::cuda && !torch::cuda::is_available())
    throw StageError("pretrain", "model.device is cuda but this LibTorch has no CUDA device (build with a CUDA LibTorch through Torch_DIR)");
  model_->to(torch_device(train.device));
  optimizer_ = std::make_unique<torch::optim::AdamW>(
      model_->parameters(), torch::optim::AdamWOptions(train.lr).weight_decay(train.weight_decay));
  if (model.reconstruction > 0 && model.reconstruction_standardised) target_scale_ = target_scales();
  if (model.chip_statistics > 0) statistics_covariance_ = statistics_covariances();
}

void Trainer::for_each_sample_batch(
    const std::function<void(const std::map<Modality, torch::Tensor>&, const std::map<Modality, torch::Tensor>&)>& fn)
    const {
  torch::NoGradGuard no_grad;
  const std::size_t n = data_.size(), count = std::min<std::size_t>(n, 512);
  for (std::size_t first = 0; first < count; first += 32) {
    std::vector<std::size_t> rows;
    for (std::size_t i = first; i < std::min(count, first + 32); ++i) rows.push_back(i * n / count);
    const auto [x, masks] = make_batch(rows, 0, 0);
    fn(x, masks);
  }
}

// Each channel's targets (its cells' means, and their spreads below them): their standard
// deviation across the sample's chips, over the cells of one kind, for the chips where the
// channel is present.
std::map<Modality, torch::Tensor> Trainer::target_scales() const {
  const int g = model_config_.reconstruction_grid;
  std::map<Modality, std::array<torch::Tensor, 3>> sums;  // values present, their sum and sum of squares
  for_each_sample_batch([&](const auto& x, const auto& masks) {
    for (const auto& [m, chips] : x) {
      const auto target = reconstruction_target(chips, g, model_config_.reconstruction_spread).to(torch::kFloat64);
      const auto c = target.size(1);
      const auto kinds = target.view({target.size(0), c, -1, g * g});  // [B, C, kinds, cells]
      const auto present = masks.at(m).to(torch::kFloat64).view({-1, c, 1, 1});
      const auto sum = [](const torch::Tensor& t) { return t.sum(std::vector<int64_t>{0, 3}); };  // [C, kinds]
      const std::array<torch::Tensor, 3> batch{sum(present.expand_as(kinds)), sum(kinds * present),
                                               sum(kinds.square() * present)};
      auto& acc = sums[m];
      for (std::size_t k = 0; k < 3; ++k) acc[k] = acc[k].defined() ? acc[k] + batch[k] : batch[k];
    }
  });
  std::map<Modality, torch::Tensor> scales;
  for (const auto& [m, acc] : sums) {
    const auto values = acc[0].clamp_min(2);  // [C, kinds]
    const auto spread = ((acc[2] - acc[1].square() / values) / (values - 1)).clamp_min(0).sqrt().clamp_min(1e-3);
    // [C, kinds] -> [C, kinds * g, 1]: one value for the g rows of each kind
    scales[m] = spread.unsqueeze(2).expand({-1, -1, g}).reshape({spread.size(0), -1, 1}).to(torch::kFloat32);
  }
  return scales;
}

// The covariance of the chips' band statistics across the sample (statistics_covariance).
std::map<Modality, torch::Tensor> Trainer::statistics_covariances() const {
  std::map<Modality, std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>>> sample;  // values, present
  for_each_sample_batch([&](const auto& x, const auto& masks) {
    for (const auto& [m, chips] : x) {
      sample[m].first.push_back(statistics_target(chips));
      sample[m].second.push_back(statistics_present(masks.at(m)));
    }
  });
  std::map<Modality, torch::Tensor> covariances;
  for (const auto& [m, parts] : sample)
    covariances[m] = statistics_covariance(torch::cat(parts.first), torch::cat(parts.second));
  return covariances;
}

std::vector<std::size_t> Trainer::batch_indices(int step) const {
  const std::size_t n = data_.size(), b = static_cast<std::size_t>(config_.batch);
  const std::size_t global = b * static_cast<std::size_t>(comm_.size());
  std::vector<std::size_t> out;
  for (std::size_t j = static_cast<std::size_t>(comm_.rank()) * b; j < (comm_.rank() + 1) * b; ++j) {
    const std::size_t g = static_cast<std::size_t>(step) * global + j;
    const std::size_t epoch = g / n;
    if (epoch != perm_epoch_) {  // a new shuffle every pass over the data, the same on every rank
      perm_.resize(n);
      std::iota(perm_.begin(), perm_.end(), std::size_t{0});
      std::mt19937_64 rng(mix(config_.seed * 1000003 + epoch));
      std::shuffle(perm_.begin(), perm_.end(), rng);
      perm_epoch_ = epoch;
    }
    out.push_back(perm_[g % n]);
  }
  return out;
}

Trainer::Batch Trainer::make_batch(const std::vector<std::size_t>& indices, int step,
                                   std::size_t first_position) const {
  const int s = data_.chip_pixels(), input = model_config_.input;
  std::map<Modality, torch::Tensor> x, masks;
  for (Modality m : data_.modalities()) {
    const int c = info(m).channels();
    auto values = torch::zeros({static_cast<long>(indices.size()), c, input, input});
    auto mask = torch::zeros({static_cast<long>(indices.size()), c});
    for (std::size_t k = 0; k < indices.size(); ++k) {
      const ChipSample& sample = data_.at(indices[k]);
      const auto it = sample.values.find(m);
      if (it == sample.values.end()) continue;  // the modality is missing: all masked
      auto t = torch::from_blob(const_cast<float*>(it->second.data()), {c, s, s});
      if (config_.augment) {
        // A square crop, flips and a quarter turn, the same for every modality of a chip
        // (their embeddings must still show the same ground), seeded by the chip's place
        // in the global batch so that any split across ranks sees the same.
        const std::uint64_t h = mix(config_.seed ^ mix(static_cast<std::uint64_t>(step) * 7919 + first_position + k));
        auto unit = [&](int shift) { return static_cast<double>((h >> shift) & 0xffff) / 65536.0; };
        const long side = std::clamp(std::lround(s * (config_.crop_min + (1 - config_.crop_min) * unit(4))), 1L, long{s});
        const long row = static_cast<long>(unit(20) * static_cast<double>(s - side + 1));
        const long col = static_cast<long>(unit(36) * static_cast<double>(s - side + 1));
        t = t.slice(1, row, row + side).slice(2, col, col + side);
        if (h & 1) t = t.flip({2});
        if (h & 2) t = t.flip({1});
        t = t.rot90(static_cast<long>((h >> 2) & 3), {1, 2});
      }
      values[static_cast<long>(k)] = resize_to_input(t.unsqueeze(0), input)[0];
      mask[static_cast<long>(k)] = torch::from_blob(const_cast<float*>(sample.mask.at(m).data()), {c}).clone();
    }
    x[m] = values.to(torch_device(config_.device));
    masks[m] = mask.to(torch_device(config_.device));
  }
  return {x, masks};
}

double Trainer::learning_rate(int step) const {
  if (step < config_.warmup) return config_.lr * (step + 1) / config_.warmup;
  const double t = static_cast<double>(step - config_.warmup) / std::max(1, config_.steps - config_.warmup);
  return config_.lr * 0.5 * (1 + std::cos(M_PI * std::min(1.0, t)));
}

void Trainer::allreduce_gradients() {
  // Each rank holds the gradient of the global loss through its own rows: their sum is
  // the gradient of the global loss. The temperature sees every row on every rank, so
  // its gradient is the same everywhere: it is averaged instead.
  if (comm_.size() == 1) return;
  auto& scale_grad = model_->logit_scale.mutable_grad();
  if (scale_grad.defined()) scale_grad.div_(comm_.size());
  constexpr std::int64_t kBucket = 1 << 22;  // floats per MPI_Allreduce
  std::vector<torch::Tensor> grads;
  for (auto& p : model_->parameters()) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);  // unused this step: zeros on this rank
    grads.push_back(p.grad());
  }
  std::size_t i = 0;
  while (i < grads.size()) {
    std::vector<torch::Tensor> bucket;
    std::int64_t n = 0;
    while (i < grads.size() && (bucket.empty() || n + grads[i].numel() <= kBucket)) {
      n += grads[i].numel();
      bucket.push_back(grads[i++]);
    }
    auto flat = torch::cat([&] {
      std::vector<torch::Tensor> v;
      for (auto& g : bucket) v.push_back(g.reshape({-1}));
      return v;
    }()).to(torch::kCPU).contiguous();
    comm_.allreduce_sum(flat.data_ptr<float>(), static_cast<std::size_t>(flat.numel()));
    std::int64_t off = 0;
    for (auto& g : bucket) {
      g.copy_(flat.slice(0, off, off + g.numel()).view_as(g));
      off += g.numel();
    }
  }
}

namespace {

// AdamW's state of each parameter, under the parameter's place in the model. LibTorch's
// own optimizer archive keys it by the tensors' addresses in memory, so that two runs of
// one config wrote different bytes for the same state.
std::string adamw_key(std::size_t parameter, const char* what) { return fmt::format("adamw_{}_{}", parameter, what); }
// How LibTorch's optimizers find a parameter's state.
std::string state_key(const torch::Tensor& parameter) { return c10::guts::to_string(parameter.unsafeGetTensorImpl()); }

void save_adamw(torch::optim::AdamW& optimizer, torch::serialize::OutputArchive& archive) {
  const auto& params = optimizer.param_groups().at(0).params();
  for (std::size_t i = 0; i < params.size(); ++i) {
    const auto it = optimizer.state().find(state_key(params[i]));
    if (it == optimizer.state().end()) continue;  // not stepped yet
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    archive.write(adamw_key(i, "step"), torch::tensor(s.step()));
    archive.write(adamw_key(i, "exp_avg"), s.exp_avg(), true);
    archive.write(adamw_key(i, "exp_avg_sq"), s.exp_avg_sq(), true);
  }
}

void load_adamw(torch::optim::AdamW& optimizer, torch::serialize::InputArchive& archive) {
  torch::serialize::InputArchive older;
  if (archive.try_read("optimizer", older)) return optimizer.load(older);  // a checkpoint of LibTorch's own archive
  const auto& params = optimizer.param_groups().at(0).params();
  for (std::size_t i = 0; i < params.size(); ++i) {
    torch::Tensor step, exp_avg, exp_avg_sq;
    if (!archive.try_read(adamw_key(i, "step"), step)) continue;
    archive.read(adamw_key(i, "exp_avg"), exp_avg, true);
    archive.read(adamw_key(i, "exp_avg_sq"), exp_avg_sq, true);
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(step.item<std::int64_t>());
    s->exp_avg(exp_avg.to(params[i].device()));
    s->exp_avg_sq(exp_avg_sq.to(params[i].device()));
    optimizer.state()[state_key(params[i])] = std::move(s);
  }
}

}  // namespace

void Trainer::save(const std::filesystem::path& file) {
  torch::serialize::OutputArchive archive;
  model_->save(archive);
  save_adamw(*optimizer_, archive);
  archive.write("step", torch::tensor(static_cast<std::int64_t>(step_)));
  // Through a stream: a file name would name the archive's records after the temporary file.
  publish_file(file, [&](const std::filesystem::path& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    archive.save_to(out);
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp.string());
  });
}

void Trainer::load(const std::filesystem::path& file) {
  torch::serialize::InputArchive archive;
  archive.load_from(file.string());
  model_->load(archive);
  load_adamw(*optimizer_, archive);
  torch::Tensor step;
  archive.read("step", step);
  step_ = static_cast<int>(step.item<std::int64_t>());
}

std::size_t Trainer::first_position(int step) const {
  return static_cast<std::size_t>(step) * config_.batch * comm_.size() + static_cast<std::size_t>(comm_.rank()) * config_.batch;
}

Trainer::Batch Trainer::load_batch(int step) const { return make_batch(batch_indices(step), step, first_position(step)); }

StepResult Trainer::step() {
  StepResult r = compute_gradients();
  torch::nn::utils::clip_grad_norm_(model_->parameters(), config_.clip);
  r.lr = learning_rate(step_);
  for (auto& group : optimizer_->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(r.lr);
  optimizer_->step();
  ++step_;
  return r;
}

StepResult Trainer::compute_gradients() {
  StepResult r;
  auto t0 = Clock::now();
  Batch batch;
  if (next_.valid()) {
    batch = next_.get();  // made while the previous step computed
    if (next_step_ != step_) batch = load_batch(step_);  // a checkpoint was loaded since
  } else {
    batch = load_batch(step_);
  }
  // The background loader makes the next batch while this step computes.
  if (step_ + 1 < config_.steps) {
    next_step_ = step_ + 1;
    next_ = std::async(std::launch::async, [this, indices = batch_indices(next_step_), step = next_step_] {
      return make_batch(indices, step, first_position(step));
    });
  }
  auto& [x, masks] = batch;
  r.data_s = since(t0);

  t0 = Clock::now();
  model_->train();
  optimizer_->zero_grad();
  std::map<Modality, torch::Tensor> local;
  {
    // bf16 autocast where the device has it; the loss stays in float32
    const bool autocast = config_.bf16 && config_.device == Device::cpu;
    at::autocast::set_cpu_enabled(autocast);
    if (autocast) at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    local = model_->forward(x, masks);
    at::autocast::set_cpu_enabled(false);
    for (auto& [m, z] : local) z = z.to(torch::kFloat32);
  }
  // The global batch: other ranks' embeddings as constants, ours with their gradient.
  const auto b = static_cast<long>(config_.batch);
  const long offset = comm_.rank() * b;
  std::map<Modality, torch::Tensor> gathered, present;
  for (const auto& [m, z] : local) {
    // MPI moves host memory: gather on the CPU, then back to the device
    const auto mine_present = (masks.at(m).sum(1) > 0).to(torch::kFloat32).to(torch::kCPU).contiguous();
    const auto zc = z.detach().to(torch::kCPU).contiguous();
    const auto all = torch::from_blob(comm_.allgather(zc.data_ptr<float>(), static_cast<std::size_t>(zc.numel())).data(),
                                      {b * comm_.size(), z.size(1)}).clone().to(z.device());
    const auto all_present = torch::from_blob(
        comm_.allgather(mine_present.data_ptr<float>(), static_cast<std::size_t>(b)).data(), {b * comm_.size()}).clone().to(z.device());
    gathered[m] = torch::cat({all.slice(0, 0, offset), z, all.slice(0, offset + b)});
    present[m] = all_present > 0.5;
  }
  const LossParts contrastive = info_nce(gathered, present, model_->temperature_scale());
  r.terms = contrastive.per_pair;
  torch::Tensor loss = contrastive.total;
  if (model_config_.reconstruction > 0 || model_config_.chip_statistics > 0) loss = loss + decoder_loss(local, batch, r);
  r.forward_s = since(t0);

  t0 = Clock::now();
  loss.backward();
  r.backward_s = since(t0);
  t0 = Clock::now();
  allreduce_gradients();
  r.allreduce_s = since(t0);
  r.loss = contrastive.total.item<double>() + model_config_.reconstruction * r.reconstruction +
           model_config_.chip_statistics * r.statistics;
  return r;
}

// The decoders' errors, each modality's the mean over the global batch's channels (or
// statistics) present: this rank's sum over the global count, so that the gradients summed
// over ranks are those of the global mean, as for the contrastive loss. Each kind of
// decoder's error is averaged over the modalities with a channel present, and weighted;
// each modality's global value goes to r.terms ("rec_s2rgb", "stats_s2rgb"), each kind's
// mean to r.reconstruction and r.statistics.
torch::Tensor Trainer::decoder_loss(const std::map<Modality, torch::Tensor>& embeddings, const Batch& batch,
                                    StepResult& r) {
  const auto& [x, masks] = batch;
  enum Kind { kReconstruction, kStatistics };
  const std::array<double, 2> weight{model_config_.reconstruction, model_config_.chip_statistics};
  const std::array<double*, 2> mean{&r.reconstruction, &r.statistics};  // each kind's, unweighted
  struct Term {
    std::string name;
    Kind kind;
    torch::Tensor error;
  };
  std::vector<Term> terms;
  std::vector<float> totals;  // each term's count present, then its error, summed over ranks
  for (const auto& [m, z] : embeddings) {
    const auto& mask = masks.at(m);
    if (model_config_.reconstruction > 0) {
      auto target = reconstruction_target(x.at(m), model_config_.reconstruction_grid,
                                          model_config_.reconstruction_spread);
      auto reconstructed = model_->reconstruct(m, z);
      if (const auto scale = target_scale_.find(m); scale != target_scale_.end()) {
        target = target / scale->second;  // only the difference counts: no mean to subtract
        reconstructed = reconstructed / scale->second;
      }
      terms.push_back({fmt::format("rec_{}", info(m).name), kReconstruction,
                       reconstruction_error(reconstructed, target, mask)});
      totals.push_back(mask.sum().item<float>());
    }
    if (model_config_.chip_statistics > 0) {
      const auto present = statistics_present(mask);
      const auto error = whitened_error(model_->decode_statistics(m, z), statistics_target(x.at(m)), present,
                                        statistics_covariance_.at(m));
      terms.push_back({fmt::format("stats_{}", info(m).name), kStatistics, error});
      totals.push_back(present.sum().item<float>());
    }
  }
  for (const auto& t : terms) totals.push_back(t.error.item<float>());
  comm_.allreduce_sum(totals.data(), totals.size());
  std::array<std::vector<torch::Tensor>, 2> parts;  // each kind's modalities' means
  for (std::size_t i = 0; i < terms.size(); ++i) {
    const float count = totals[i], sum = totals[terms.size() + i];
    if (count <= 0) continue;
    parts[terms[i].kind].push_back(terms[i].error / count);
    r.terms[terms[i].name] = sum / count;
    *mean[terms[i].kind] += sum / count;
  }
  torch::Tensor loss = torch::zeros({});
  for (int k : {kReconstruction, kStatistics}) {
    if (parts[k].empty()) continue;
    *mean[k] /= static_cast<double>(parts[k].size());
    loss = loss + weight[k] * torch::stack(parts[k]).mean();
  }
  return loss;
}

}  // namespace eo
