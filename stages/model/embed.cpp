#include "stages/model/embed.hpp"

#include <dlfcn.h>

#include <array>
#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <chrono>
#include <deque>
#include <set>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "pipeline/core/files.hpp"
#include "pipeline/core/hash.hpp"
#include "pipeline/core/parallel.hpp"
#include "pipeline/core/resources.hpp"
#include "stages/model/torchscript.hpp"
#include "stages/model/trainer.hpp"
#include "stages/model/vit.hpp"

namespace eo {

namespace fs = std::filesystem;

nlohmann::json read_sidecar(const fs::path& checkpoint) {
  const fs::path side = fs::path(checkpoint).replace_extension(".json");
  std::ifstream in(side);
  if (!in) throw ConfigError(fmt::format("{}: no sidecar {} beside the checkpoint", checkpoint.string(), side.string()));
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(fmt::format("{}: not readable: {}", side.string(), e.what()));
  }
}

std::optional<fs::path> latest_checkpoint(const fs::path& dir) {
  std::optional<std::pair<int, fs::path>> best;
  if (!fs::is_directory(dir)) return std::nullopt;
  const std::regex name(R"(step-(\d+)\.json)");
  for (const auto& e : fs::directory_iterator(dir)) {
    std::smatch m;
    const std::string file = e.path().filename().string();
    if (!std::regex_match(file, m, name)) continue;
    try {
      std::ifstream in(e.path());
      const auto meta = nlohmann::json::parse(in);
      const fs::path weights = dir / meta.at("file").get<std::string>();
      if (!fs::exists(weights) || file_hash(weights) != meta.at("hash").get<std::string>()) continue;
      const int step = meta.at("step").get<int>();
      if (!best || step > best->first) best = {step, weights};
    } catch (const std::exception&) {
      continue;  // a sidecar a crash cut short
    }
  }
  if (!best) return std::nullopt;
  return best->second;
}

namespace {

// A TorchScript model's encoder of one modality: DIR/<modality>.pt.
fs::path encoder_file(const fs::path& dir, Modality m) { return dir / (std::string(info(m).name) + ".pt"); }

// The checkpoint's model, on the CPU.
MultiModal load_checkpoint_model(const ModelCard& card, const ModelConfig& mc) {
  MultiModal model(mc, card.modalities);
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(card.checkpoint.string());
    model->load(archive);
  } catch (const c10::Error& e) {
    throw ConfigError(fmt::format("{}: not a checkpoint of this model: {}", card.checkpoint.string(), e.what_without_backtrace()));
  }
  return model;
}

ModelCard find_torchscript_model(const Config& config) {
  ModelCard card;
  card.torchscript = true;
  card.checkpoint = config.model.torchscript;
  const fs::path& dir = card.checkpoint;
  if (!fs::is_directory(dir))
    throw ConfigError(fmt::format("{}: model.torchscript: no folder {}", config.source, dir.string()));
  for (Modality m : kImageModalities)
    if (fs::exists(encoder_file(dir, m))) card.modalities.push_back(m);
  if (card.modalities.empty())
    throw ConfigError(fmt::format("{}: model.torchscript: {} holds none of s2rgb.pt, s1amp.pt, s1coh.pt", config.source,
                                  dir.string()));
  nlohmann::json shape = nlohmann::json::object();
  if (fs::exists(dir / "model.json")) {
    std::ifstream in(dir / "model.json");
    try {
      shape = nlohmann::json::parse(in).at("model");
    } catch (const nlohmann::json::exception& e) {
      throw ConfigError(fmt::format("{}: not readable: {}", (dir / "model.json").string(), e.what()));
    }
  }
  const int input = config.model.input > 0 ? config.model.input : shape.value("input", 0);
  if (input <= 0)
    throw ConfigError(fmt::format("{}: model.input: set the pixels per side the encoders of {} take", config.source,
                                  dir.string()));
  Hasher hash;
  c10::InferenceMode inference;
  for (Modality m : card.modalities) {
    const fs::path file = encoder_file(dir, m);
    // The embedding size, from a pass over one blank image; every encoder must agree.
    torch::Tensor out;
    try {
      out = ScriptedEncoder(file).forward(torch::zeros({1, 1, input, input}), torch::zeros({1}, torch::kLong));
    } catch (const std::exception& e) {  // not TorchScript, or it cannot take such an image
      throw ConfigError(fmt::format("model.torchscript: {}", e.what()));
    }
    if (out.dim() != 2 || out.size(0) != 1)
      throw ConfigError(fmt::format("{}: gives {} for one [1, 1, {}, {}] image, not [1, E]", file.string(),
                                    c10::str(out.sizes()), input, input));
    if (card.dim != 0 && out.size(1) != card.dim)
      throw ConfigError(fmt::format("{}: embeds in {} dimensions, the other encoders of {} in {}", file.string(),
                                    out.size(1), dir.string(), card.dim));
    card.dim = static_cast<int>(out.size(1));
    hash.add(info(m).name).add(file_hash(file));
  }
  card.hash = hash.hex();
  card.name = shape.value("preset", std::string("torchscript"));
  card.model = {{"preset", card.name}, {"input", input}, {"embed", card.dim}};
  if (fs::exists(dir / "normalisation.json")) card.normalisation = Normalisation::load(dir / "normalisation.json").hash();
  return card;
}

}  // namespace

fs::path model_normalisation_file(const ModelCard& card) {
  return (card.torchscript ? card.checkpoint : card.checkpoint.parent_path()) / "normalisation.json";
}

ModelCard find_model(const Config& config) {
  if (!config.model.torchscript.empty()) return find_torchscript_model(config);
  ModelCard card;
  const bool named = !config.model.checkpoint.empty();  // else found, and its hash checked, by latest_checkpoint
  if (named) {
    card.checkpoint = config.model.checkpoint;
    if (!fs::is_regular_file(card.checkpoint))
      throw ConfigError(fmt::format("{}: model.checkpoint: no file {}", config.source, card.checkpoint.string()));
  } else {
    const fs::path dir = config.output / "pretrain" / "checkpoints";
    const auto latest = latest_checkpoint(dir);
    if (!latest)
      throw ConfigError(fmt::format("{}: no model: no intact checkpoint in {} (run `eo-pipeline pretrain` first, or set "
                                    "model.checkpoint)",
                                    config.source, dir.string()));
    card.checkpoint = *latest;
  }
  const auto meta = read_sidecar(card.checkpoint);
  try {
    card.model = meta.at("model");
    card.name = card.model.at("preset").get<std::string>();
    card.dim = card.model.at("embed").get<int>();
    card.hash = meta.at("hash").get<std::string>();
    card.normalisation = meta.value("normalisation", "");
    for (const auto& m : meta.at("modalities")) card.modalities.push_back(parse_modality(m.get<std::string>()));
  } catch (const std::exception& e) {
    throw ConfigError(fmt::format("{}: sidecar incomplete: {}", card.checkpoint.string(), e.what()));
  }
  if (named && file_hash(card.checkpoint) != card.hash)
    throw ConfigError(fmt::format("{}: the file does not match the hash its sidecar recorded (damaged or replaced)",
                                  card.checkpoint.string()));
  return card;
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
      throw ConfigError(fmt::format("{}: the sidecar's model is incomplete: {}", card.checkpoint.string(), e.what()));
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
  if (mc.device == "cuda" && !torch::cuda::is_available())
    throw ConfigError("model.device is cuda but this LibTorch has no CUDA device (build with a CUDA LibTorch through Torch_DIR)");
  impl_->device = torch::Device(mc.device);
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
          std::copy_n(cpu.data_ptr<float>() + j * dim, dim, dst.data() + chips[first + j] * dim);
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

// The batches of a Stream: chips staged on the host, then in flight on the device.
struct Embedder::Stream::State {
  Embedder::Impl& impl;
  const Normalisation& norm;
  double min_valid;
  std::size_t batch;
  Embedded embedded;
  Failed failed;
  bool cuda;
  int size = 0;  // chip pixels per side, from the first row

  struct Staged {
    std::map<Modality, torch::Tensor> values, masks;  // [batch, c, s, s], [batch, c]
    std::set<Modality> present;                       // modalities any staged chip has
    std::vector<std::pair<std::uint64_t, ChipId>> chips;
  };
  struct Flight {
    std::vector<std::pair<std::uint64_t, ChipId>> chips;
    std::map<Modality, torch::Tensor> out, present;  // on the host once `ready`
    std::optional<c10::Event> ready;                 // CUDA: the copies back are done
    std::string error;
  };
  std::array<Staged, 2> staging;  // one filled while the other's copy may still run
  std::size_t filling = 0;
  std::deque<Flight> flights;

  State(Embedder::Impl& i, const Normalisation& n, double mv, int b, Embedded e, Failed f)
      : impl(i), norm(n), min_valid(mv), batch(static_cast<std::size_t>(b)), embedded(std::move(e)), failed(std::move(f)),
        cuda(i.device.is_cuda()) {}

  void allocate(Staged& st, int s) {
    const auto host = torch::TensorOptions().dtype(torch::kFloat).pinned_memory(cuda);
    for (Modality m : impl.modalities) {
      const auto it = norm.channels.find(m);
      if (it == norm.channels.end()) continue;
      const long c = static_cast<long>(it->second.size());
      st.values[m] = torch::zeros({static_cast<long>(batch), c, s, s}, host);
      st.masks[m] = torch::zeros({static_cast<long>(batch), c}, host);
    }
  }

  void stage(std::uint64_t tag, const ChipBatch& row, std::size_t k) {
    Staged& st = staging[filling];
    if (st.values.empty()) allocate(st, size);
    const std::size_t j = st.chips.size(), plane = static_cast<std::size_t>(size) * size;
    for (auto& [m, values] : st.values) {
      const ModalityChips* mc = row.find(m);
      auto mask = st.masks.at(m)[static_cast<long>(j)];
      if (!mc) {  // the row does not have it: no channel of it counts
        mask.zero_();
        continue;
      }
      normalise_chip(*mc, k, plane, norm.channels.at(m), min_valid, values[static_cast<long>(j)].data_ptr<float>(),
                     mask.data_ptr<float>());
      st.present.insert(m);
    }
    st.chips.emplace_back(tag, row.chips[k]);
    if (st.chips.size() == batch) launch();
  }

  // The staged batch to the device and through the model, without waiting for it.
  void launch() {
    Staged& st = staging[filling];
    if (st.chips.empty()) return;
    Flight f;
    f.chips = std::move(st.chips);
    const long n = static_cast<long>(f.chips.size());
    try {
      c10::InferenceMode inference;
      std::map<Modality, torch::Tensor> x, masks;
      for (Modality m : st.present) {
        x[m] = resize_to_input(st.values.at(m).narrow(0, 0, n).to(impl.device, cuda), impl.model_config.input);
        masks[m] = st.masks.at(m).narrow(0, 0, n).to(impl.device, cuda);
      }
      // Non-blocking copies back land in pinned memory (ATen pins them itself).
      const auto back = torch::TensorOptions().device(torch::kCPU);
      for (const auto& [m, e] : impl.forward(x, masks)) {
        f.out[m] = e.to(back.dtype(torch::kFloat), cuda);
        f.present[m] = (masks.at(m).sum(1) > 0).to(back.dtype(torch::kBool), cuda);
      }
      if (cuda) {
        const c10::impl::VirtualGuardImpl guard(impl.device.type());
        f.ready.emplace(impl.device.type());
        f.ready->record(guard.getStream(impl.device));
      }
    } catch (const std::exception& e) {
      f.error = e.what();
    }
    st.chips.clear();
    st.present.clear();
    flights.push_back(std::move(f));
    filling = 1 - filling;
    // Two batches in flight at most: the other staging buffer is free once the older is back.
    while (flights.size() > (cuda ? 1u : 0u)) complete();
  }

  // The oldest batch in flight, back to the caller.
  void complete() {
    Flight f = std::move(flights.front());
    flights.pop_front();
    const std::size_t dim = static_cast<std::size_t>(impl.model_config.embed);
    std::map<std::uint64_t, std::pair<std::vector<ChipId>, std::map<Modality, std::vector<float>>>> by_tag;
    try {
      if (f.ready)
        while (!f.ready->query()) std::this_thread::sleep_for(std::chrono::microseconds(50));
      if (f.error.empty())
        for (std::size_t j = 0; j < f.chips.size(); ++j) {
          auto& [chips, embeddings] = by_tag[f.chips[j].first];
          chips.push_back(f.chips[j].second);
          for (Modality m : impl.modalities) {
            auto& dst = embeddings[m];
            dst.resize(chips.size() * dim, std::nanf(""));
            const auto out = f.out.find(m);
            if (out != f.out.end() && f.present.at(m)[static_cast<long>(j)].item<bool>())
              std::copy_n(out->second.data_ptr<float>() + j * dim, dim, dst.data() + (chips.size() - 1) * dim);
          }
        }
    } catch (const std::exception& e) {
      f.error = e.what();
    }
    if (!f.error.empty()) {
      std::map<std::uint64_t, std::size_t> chips;
      for (const auto& c : f.chips) ++chips[c.first];
      for (const auto& [tag, n] : chips) failed(tag, n, f.error);
      return;
    }
    for (const auto& [tag, result] : by_tag) embedded(tag, result.first, result.second);
  }
};

Embedder::Stream::Stream(const Embedder& embedder, const Normalisation& norm, double min_valid, int batch,
                         Embedded embedded, Failed failed)
    : state_(std::make_unique<State>(*embedder.impl_, norm, min_valid, std::max(1, batch), std::move(embedded),
                                     std::move(failed))) {}

Embedder::Stream::~Stream() = default;

void Embedder::Stream::add(std::uint64_t tag, const ChipBatch& row, const std::vector<bool>& use) {
  State& s = *state_;
  // Everything that can refuse the row is checked before any chip is taken.
  if (s.size == 0) s.size = row.size;
  if (row.size != s.size)
    throw std::runtime_error(fmt::format("chips of {} px after chips of {} px in one stream", row.size, s.size));
  for (const ModalityChips& mc : row.modalities) {
    if (std::find(s.impl.modalities.begin(), s.impl.modalities.end(), mc.modality) == s.impl.modalities.end()) continue;
    const auto stats = s.norm.channels.find(mc.modality);
    if (stats == s.norm.channels.end() || static_cast<int>(stats->second.size()) != mc.channels)
      throw std::runtime_error(fmt::format("{}: {} channels, the statistics have {}", info(mc.modality).name, mc.channels,
                                           stats == s.norm.channels.end() ? 0 : stats->second.size()));
  }
  std::vector<ChipId> unused;
  for (std::size_t k = 0; k < row.chips.size(); ++k)
    if (!use[k]) unused.push_back(row.chips[k]);
  if (!unused.empty()) {
    std::map<Modality, std::vector<float>> none;
    for (Modality m : s.impl.modalities)
      none[m].assign(unused.size() * static_cast<std::size_t>(s.impl.model_config.embed), std::nanf(""));
    s.embedded(tag, unused, none);
  }
  for (std::size_t k = 0; k < row.chips.size(); ++k)
    if (use[k]) s.stage(tag, row, k);
}

void Embedder::Stream::flush() {
  state_->launch();
  while (!state_->flights.empty()) state_->complete();
}

std::vector<fs::path> export_model(const ModelCard& card, const Normalisation& norm, const fs::path& dir) {
  if (card.torchscript)
    throw ConfigError(fmt::format("{}: the model is TorchScript already (model.torchscript)", card.checkpoint.string()));
  const ModelConfig mc = ModelConfig::from_json(card.model);
  MultiModal model = load_checkpoint_model(card, mc);
  model->eval();
  std::vector<fs::path> written;
  nlohmann::json modalities = nlohmann::json::array();
  for (Modality m : card.modalities) {
    written.push_back(encoder_file(dir, m));
    export_torchscript(model->encoders.at(m), written.back());
    modalities.push_back(info(m).name);
  }
  norm.save(dir / "normalisation.json");
  written.push_back(dir / "normalisation.json");
  const nlohmann::json meta = {{"model", mc.to_json()}, {"modalities", modalities},
                               {"checkpoint", fs::absolute(card.checkpoint).string()}, {"checkpoint_hash", card.hash},
                               {"takes", fmt::format("[N, 1, H, W] normalised single channels{}; embeddings are "
                                                     "averaged over a chip's channels and L2-normalised",
                                                     mc.channel_embed ? " and their channel indices [N], in the "
                                                                        "order of normalisation.json's channels"
                                                                      : "")}};
  write_atomically(dir / "model.json", meta.dump(2) + "\n");
  written.push_back(dir / "model.json");
  return written;
}

}  // namespace eo
