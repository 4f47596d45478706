// The model a run uses and its files: checkpoints and their sidecars, TorchScript
// encoders, the statistics that travel with a model, and the export to TorchScript.

#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "pipeline/core/error.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/hash.hpp"
#include "stages/model/embedder_impl.hpp"

namespace eo {

namespace fs = std::filesystem;

nlohmann::json read_sidecar(const fs::path& checkpoint) {
  const fs::path side = fs::path(checkpoint).replace_extension(".json");
  std::ifstream in(side);
  if (!in) throw StageConfigError("model", fmt::format("{}: no sidecar {} beside the checkpoint", checkpoint.string(), side.string()));
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw StageConfigError("model", fmt::format("{}: not readable: {}", side.string(), e.what()));
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

MultiModal load_checkpoint_model(const ModelCard& card, const ModelConfig& mc) {
  MultiModal model(mc, card.modalities);
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(card.checkpoint.string());
    model->load(archive);
  } catch (const c10::Error& e) {
    throw StageConfigError("model", fmt::format("{}: not a checkpoint of this model: {}", card.checkpoint.string(), e.what_without_backtrace()));
  }
  return model;
}

namespace {

ModelCard find_torchscript_model(const Config& config) {
  ModelCard card;
  card.torchscript = true;
  card.checkpoint = config.model.torchscript;
  const fs::path& dir = card.checkpoint;
  if (!fs::is_directory(dir))
    throw StageConfigError("model", fmt::format("{}: model.torchscript: no folder {}", config.source, dir.string()));
  for (Modality m : kImageModalities)
    if (fs::exists(encoder_file(dir, m))) card.modalities.push_back(m);
  if (card.modalities.empty())
    throw StageConfigError("model", fmt::format("{}: model.torchscript: {} holds none of s2rgb.pt, s1amp.pt, s1coh.pt", config.source,
                                  dir.string()));
  nlohmann::json shape = nlohmann::json::object();
  if (fs::exists(dir / "model.json")) {
    std::ifstream in(dir / "model.json");
    try {
      shape = nlohmann::json::parse(in).at("model");
    } catch (const nlohmann::json::exception& e) {
      throw StageConfigError("model", fmt::format("{}: not readable: {}", (dir / "model.json").string(), e.what()));
    }
  }
  const int input = config.model.input > 0 ? config.model.input : shape.value("input", 0);
  if (input <= 0)
    throw StageConfigError("model", fmt::format("{}: model.input: set the pixels per side the encoders of {} take", config.source,
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
      throw StageConfigError("model", fmt::format("model.torchscript: {}", detail_of(e)));
    }
    if (out.dim() != 2 || out.size(0) != 1)
      throw StageConfigError("model", fmt::format("{}: gives {} for one [1, 1, {}, {}] image, not [1, E]", file.string(),
                                    c10::str(out.sizes()), input, input));
    if (card.dim != 0 && out.size(1) != card.dim)
      throw StageConfigError("model", fmt::format("{}: embeds in {} dimensions, the other encoders of {} in {}", file.string(),
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
      throw StageConfigError("model", fmt::format("{}: model.checkpoint: no file {}", config.source, card.checkpoint.string()));
  } else {
    const fs::path dir = config.output / "pretrain" / "checkpoints";
    const auto latest = latest_checkpoint(dir);
    if (!latest)
      throw StageConfigError("model", fmt::format("{}: no model: no intact checkpoint in {} (run `eo-pipeline pretrain` first, or set "
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
    throw StageConfigError("model", fmt::format("{}: sidecar incomplete: {}", card.checkpoint.string(), e.what()));
  }
  if (named && file_hash(card.checkpoint) != card.hash)
    throw StageConfigError("model", fmt::format("{}: the file does not match the hash its sidecar recorded (damaged or replaced)",
                                  card.checkpoint.string()));
  return card;
}

std::vector<fs::path> export_model(const ModelCard& card, const Normalisation& norm, const fs::path& dir) {
  if (card.torchscript)
    throw StageConfigError("model", fmt::format("{}: the model is TorchScript already (model.torchscript)", card.checkpoint.string()));
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
                                                     mc.channel_embed || mc.channel_proj ? " and their channel indices [N], in the "
                                                                        "order of normalisation.json's channels"
                                                                      : "")}};
  write_atomically(dir / "model.json", meta.dump(2) + "\n");
  written.push_back(dir / "model.json");
  return written;
}

}  // namespace eo
