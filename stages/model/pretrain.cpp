#include "stages/model/pretrain.hpp"

#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <spdlog/spdlog.h>

#include "pipeline/core/error.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/hash.hpp"
#include "pipeline/core/resources.hpp"
#include "stages/model/embed.hpp"
#include "stages/model/trainer.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// OUTPUT/chips' published stores, in name order.
std::vector<fs::path> chip_stores(const fs::path& out) {
  std::vector<fs::path> stores;
  if (fs::is_directory(out / "chips"))
    for (const auto& e : fs::directory_iterator(out / "chips"))
      if (e.path().extension() == ".h5" && !e.path().filename().string().starts_with(kTemporaryPrefix)) stores.push_back(e.path());
  std::sort(stores.begin(), stores.end());
  if (stores.empty())
    throw StageError("pretrain", fmt::format("no chip stores in {}: run `eo-pipeline prepare` first", (out / "chips").string()));
  return stores;
}

ModelConfig model_config_of(const PretrainSpec& spec) {
  ModelConfig model = ModelConfig::from_preset(spec.model.preset, spec.model.input);
  if (spec.model.pooling) model.pooling = *spec.model.pooling;
  if (spec.model.dim > 0) model.dim = spec.model.dim;
  if (spec.model.depth > 0) model.depth = spec.model.depth;
  if (spec.model.embed > 0) model.embed = spec.model.embed;
  if (model.dim % model.heads != 0)
    throw ConfigError(fmt::format("model.dim {} is not a multiple of the {} preset's {} attention heads", model.dim,
                                  model.preset, model.heads));
  model.channel_embed = spec.model.channel_embed;
  model.channel_proj = spec.model.channel_proj;
  model.reconstruction = spec.model.reconstruction;
  model.reconstruction_grid = spec.model.reconstruction_grid;
  model.reconstruction_spread = spec.model.reconstruction_spread;
  model.reconstruction_standardised = spec.model.reconstruction_standardised;
  model.chip_statistics = spec.model.chip_statistics;
  return model;
}

TrainConfig train_config_of(const PretrainSpec& spec, int threads) {
  TrainConfig tc;
  static_cast<PretrainConfig&>(tc) = spec.train;
  tc.threads = threads;
  tc.device = spec.model.device;
  tc.bf16 = spec.model.bf16;
  return tc;
}

// A batch whose activations alone exceed the machine's memory is refused before LibTorch
// tries to allocate them (on a GPU, the device's memory is what counts; its allocator
// says so itself).
void check_batch_fits(const ModelConfig& model, const TrainConfig& tc, const std::vector<Modality>& modalities,
                      const Comm& comm) {
  if (tc.device != Device::cpu) return;
  int channels = 0;
  for (Modality m : modalities) channels += static_cast<int>(info(m).bands.size()) * info(m).seasons;
  const double need = activation_bytes_per_sample(model, channels) * tc.batch * comm.ranks_on_node();
  const double have = physical_memory_bytes();
  if (need > have)
    throw ConfigError(fmt::format("pretrain.batch {}: the {} model's activations need at least {:.1f} GB for it ({} ranks on "
                                  "this machine, {} channels a chip), and the machine has {:.1f} GB; no batch above {} can fit",
                                  tc.batch, model.preset, need / 1e9, comm.ranks_on_node(), channels, have / 1e9,
                                  static_cast<long long>(tc.batch * have / need)));
}

// Continues from the newest intact checkpoint, if any, when it is of this model; returns
// the step it continues from.
int resume(Trainer& trainer, const ModelConfig& model, const PretrainSpec& spec, const fs::path& checkpoints,
           const Comm& comm) {
  const auto latest = latest_checkpoint(checkpoints);
  if (!latest) return 0;
  // A model of another shape fails to load, but a setting that changes no shape (the
  // pooling) would continue silently as another model.
  // Read through ModelConfig, so that keys added since (with their old default) compare equal.
  const nlohmann::json was = ModelConfig::from_json(read_sidecar(*latest).at("model")).to_json();
  if (was != model.to_json())
    throw StageConfigError("pretrain", fmt::format("{}: model: the checkpoint {} to resume from is of another model ({}, not {}); "
                                  "move {} away to start again",
                                  spec.source, latest->string(), was.dump(), model.to_json().dump(),
                                  checkpoints.string()));
  trainer.load(*latest);
  if (comm.rank() == 0) spdlog::info("resuming from {} (step {})", latest->string(), trainer.steps_done());
  return trainer.steps_done();
}

// The loss per step (loss.csv: step, loss, learning rate, each of its terms: each pair of
// modalities' contrastive loss and, when on, each modality's decoders' errors),
// with the steps before the checkpoint a run resumed from; published (core/files) at
// each checkpoint and at the end, so that it never holds steps a resume would redo.
class LossCurve {
 public:
  LossCurve(fs::path file, int first_step) : file_(std::move(file)) {
    if (!fs::exists(file_)) return;
    std::ifstream in(file_);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line))
      if (std::stoi(line.substr(0, line.find(','))) < first_step) lines_.push_back(line);
  }
  void add(int step, const StepResult& r) {
    if (terms_.empty())
      for (const auto& [name, v] : r.terms) terms_.push_back(name);
    std::string line = fmt::format("{},{:.6f},{:.6g}", step, r.loss, r.lr);
    for (const auto& p : terms_) line += ',' + (r.terms.count(p) ? fmt::format("{:.6f}", r.terms.at(p)) : "");
    lines_.push_back(line);
  }
  void publish() const {
    std::string text = "step,loss,lr";
    for (const auto& p : terms_) text += ',' + p;
    text += '\n';
    for (const auto& line : lines_) text += line + '\n';
    write_atomically(file_, text);
  }

 private:
  fs::path file_;
  std::vector<std::string> terms_, lines_;
};

// step-N.pt and its sidecar step-N.json (shape, modalities, hashes); the two newest kept.
fs::path save_checkpoint(Trainer& trainer, int step, const ModelConfig& model, const PretrainSpec& spec,
                         const Normalisation& norm, const fs::path& checkpoints) {
  const std::string name = fmt::format("step-{:06d}.pt", step);
  trainer.save(checkpoints / name);
  nlohmann::json modalities = nlohmann::json::array();
  for (Modality x : spec.modalities) modalities.push_back(info(x).name);
  const nlohmann::json meta = {{"step", step}, {"file", name}, {"hash", file_hash(checkpoints / name)},
                               {"model", model.to_json()}, {"modalities", modalities},
                               {"config_hash", spec.config_hash}, {"normalisation", norm.hash()}};
  write_atomically(checkpoints / fmt::format("step-{:06d}.json", step), meta.dump(2));
  // Keep the two newest: a paper-size checkpoint is ~3 GB with its optimizer state. Only
  // step-N's go: normalisation.json beside them travels with the model.
  std::vector<fs::path> old;
  for (const auto& e : fs::directory_iterator(checkpoints))
    if (e.path().extension() == ".json" && e.path().filename().string().starts_with("step-")) old.push_back(e.path());
  std::sort(old.begin(), old.end());
  for (std::size_t i = 0; i + 2 < old.size(); ++i) {
    fs::remove(old[i]);
    fs::remove(fs::path(old[i]).replace_extension(".pt"));
  }
  return checkpoints / name;
}

// Seconds per step of each part of a step, summed over the steps run.
struct StepTimes {
  double data = 0, forward = 0, backward = 0, allreduce = 0;
  void add(const StepResult& r) { data += r.data_s, forward += r.forward_s, backward += r.backward_s, allreduce += r.allreduce_s; }
};

void log_progress(int step, const StepResult& r, const TrainConfig& tc, int done, double elapsed, int ranks) {
  if (done % 10 != 0 && step + 1 != tc.steps) return;
  std::string terms;
  for (const auto& [p, v] : r.terms) terms += fmt::format("{}{} {:.3f}", terms.empty() ? "" : ", ", p, v);
  spdlog::info("step {}/{} loss {:.4f} ({}) lr {:.2e}, {:.1f} chips/s, ETA {:.0f} s", step + 1, tc.steps, r.loss,
               terms, r.lr, done * tc.batch * ranks / elapsed, elapsed / done * (tc.steps - step - 1));
}

void write_pretrain_report(const PretrainReport& report, const StepTimes& times, int ranks, const fs::path& file) {
  const int n = std::max(1, report.steps - report.first_step);
  const nlohmann::json j = {{"steps", report.steps}, {"resumed_from", report.first_step}, {"chips", report.chips},
                            {"parameters", report.parameters}, {"first_loss", report.first_loss},
                            {"last_loss", report.last_loss}, {"seconds", report.seconds}, {"ranks", ranks},
                            {"seconds_per_step", {{"data", times.data / n}, {"forward", times.forward / n},
                                                  {"backward", times.backward / n}, {"allreduce", times.allreduce / n}}},
                            {"checkpoint", report.checkpoint}};
  write_atomically(file, j.dump(2) + "\n");
}

}  // namespace

PretrainReport run_pretraining(const PretrainSpec& spec, const Comm& comm, int threads) {
  const auto t0 = Clock::now();
  const fs::path out = spec.output, dir = out / "pretrain", checkpoints = dir / "checkpoints";
  const bool root = comm.rank() == 0;
  const Normalisation norm = Normalisation::load(out / "normalisation.json");
  // The statistics travel with the model: `run` normalises chips as the model saw them.
  if (root && !fs::exists(checkpoints / "normalisation.json")) norm.save(checkpoints / "normalisation.json");
  const ChipDataset data(chip_stores(out), norm, spec.modalities, spec.min_valid_fraction);
  if (data.size() < 2) throw StageError("pretrain", fmt::format("{} chips with data: too few to contrast", data.size()));

  const ModelConfig model = model_config_of(spec);
  const TrainConfig tc = train_config_of(spec, threads);
  check_batch_fits(model, tc, spec.modalities, comm);
  Trainer trainer(model, tc, data, comm);
  PretrainReport report;
  report.chips = data.size();
  report.parameters = parameter_count(*trainer.model());
  report.first_step = resume(trainer, model, spec, checkpoints, comm);
  if (root)
    spdlog::info("pretraining {} ({} parameters) on {} chips, {} ranks x batch {}, {} steps", model.preset,
                 report.parameters, data.size(), comm.size(), tc.batch, tc.steps);

  std::optional<LossCurve> curve;  // rank 0's
  if (root) curve.emplace(dir / "loss.csv", report.first_step);
  StepTimes times;
  const auto loop_t0 = Clock::now();
  while (trainer.steps_done() < tc.steps) {
    const int step = trainer.steps_done();
    const StepResult r = trainer.step();
    times.add(r);
    if (step == report.first_step) report.first_loss = r.loss;
    report.last_loss = r.loss;
    const bool checkpoint = (step + 1) % spec.train.checkpoint_every == 0 || step + 1 == tc.steps;
    if (!root) continue;
    curve->add(step, r);
    log_progress(step, r, tc, step + 1 - report.first_step, std::chrono::duration<double>(Clock::now() - loop_t0).count(),
                 comm.size());
    if (!checkpoint) continue;
    // The losses first: a checkpoint never outlives the curve up to it (killed between
    // the two, a resume from it lost the curve's last rows).
    curve->publish();
    report.checkpoint = save_checkpoint(trainer, step + 1, model, spec, norm, checkpoints).string();
  }
  report.steps = trainer.steps_done();
  report.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (root) write_pretrain_report(report, times, comm.size(), dir / "report.json");
  return report;
}

}  // namespace eo
