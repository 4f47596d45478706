#include "stages/model/pretrain.hpp"

#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <spdlog/spdlog.h>

#include "pipeline/core/files.hpp"
#include "pipeline/core/hash.hpp"
#include "stages/model/embed.hpp"
#include "stages/model/trainer.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

}  // namespace

PretrainReport run_pretraining(const PretrainSpec& spec, const Comm& comm, int threads) {
  const auto t0 = Clock::now();
  const fs::path out = spec.output, dir = out / "pretrain", checkpoints = dir / "checkpoints";
  std::vector<fs::path> stores;
  if (fs::is_directory(out / "chips"))
    for (const auto& e : fs::directory_iterator(out / "chips"))
      if (e.path().extension() == ".h5" && !e.path().filename().string().starts_with(kTemporaryPrefix)) stores.push_back(e.path());
  std::sort(stores.begin(), stores.end());
  if (stores.empty())
    throw std::runtime_error(fmt::format("no chip stores in {}: run `eo-pipeline prepare` first", (out / "chips").string()));
  const Normalisation norm = Normalisation::load(out / "normalisation.json");
  // The statistics travel with the model: `run` normalises chips as the model saw them.
  if (comm.rank() == 0 && !fs::exists(checkpoints / "normalisation.json")) norm.save(checkpoints / "normalisation.json");
  const ChipDataset data(stores, norm, spec.modalities, spec.min_valid_fraction);
  if (data.size() < 2) throw std::runtime_error(fmt::format("{} chips with data: too few to contrast", data.size()));

  ModelConfig model = ModelConfig::from_preset(spec.model.preset, spec.model.input);
  if (!spec.model.pooling.empty()) model.pooling = spec.model.pooling;
  model.channel_embed = spec.model.channel_embed;
  TrainConfig tc;
  static_cast<PretrainConfig&>(tc) = spec.train;
  tc.threads = threads;
  tc.device = spec.model.device;
  tc.bf16 = spec.model.bf16;
  Trainer trainer(model, tc, data, comm);

  PretrainReport report;
  report.chips = data.size();
  report.parameters = parameter_count(*trainer.model());
  if (const auto latest = latest_checkpoint(checkpoints)) {
    // A model of another shape fails to load, but a setting that changes no shape (the
    // pooling) would continue silently as another model.
    // Read through ModelConfig, so that keys added since (with their old default) compare equal.
    const nlohmann::json was = ModelConfig::from_json(read_sidecar(*latest).at("model")).to_json();
    if (was != model.to_json())
      throw ConfigError(fmt::format("{}: model: the checkpoint {} to resume from is of another model ({}, not {}); "
                                    "move {} away to start again",
                                    spec.source, latest->string(), was.dump(), model.to_json().dump(),
                                    checkpoints.string()));
    trainer.load(*latest);
    report.first_step = trainer.steps_done();
    if (comm.rank() == 0) spdlog::info("resuming from {} (step {})", latest->string(), report.first_step);
  }
  if (comm.rank() == 0)
    spdlog::info("pretraining {} ({} parameters) on {} chips, {} ranks x batch {}, {} steps", model.preset,
                 report.parameters, data.size(), comm.size(), tc.batch, tc.steps);

  // The loss curve keeps the steps before the checkpoint we resumed from.
  const fs::path csv = dir / "loss.csv";
  std::vector<std::string> kept;
  if (comm.rank() == 0 && fs::exists(csv)) {
    std::ifstream in(csv);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line))
      if (std::stoi(line.substr(0, line.find(','))) < report.first_step) kept.push_back(line);
  }
  std::ofstream curve;
  std::vector<std::string> pairs;
  auto save = [&](int step) {
    if (comm.rank() != 0) return;
    const std::string name = fmt::format("step-{:06d}.pt", step);
    trainer.save(checkpoints / name);
    const nlohmann::json meta = {{"step", step}, {"file", name}, {"hash", file_hash(checkpoints / name)},
                                 {"model", model.to_json()}, {"modalities", [&] {
                                   nlohmann::json m = nlohmann::json::array();
                                   for (Modality x : spec.modalities) m.push_back(info(x).name);
                                   return m;
                                 }()},
                                 {"config_hash", spec.config_hash}, {"normalisation", norm.hash()}};
    write_atomically(checkpoints / fmt::format("step-{:06d}.json", step), meta.dump(2));
    report.checkpoint = (checkpoints / name).string();
    // Keep the two newest: a paper-size checkpoint is ~3 GB with its optimizer state.
    std::vector<fs::path> old;
    for (const auto& e : fs::directory_iterator(checkpoints))
      if (e.path().extension() == ".json") old.push_back(e.path());
    std::sort(old.begin(), old.end());
    for (std::size_t i = 0; i + 2 < old.size(); ++i) {
      fs::remove(old[i]);
      fs::remove(fs::path(old[i]).replace_extension(".pt"));
    }
  };

  double data_s = 0, forward_s = 0, backward_s = 0, allreduce_s = 0;
  const auto loop_t0 = Clock::now();
  while (trainer.steps_done() < tc.steps) {
    const int step = trainer.steps_done();
    const StepResult r = trainer.step();
    data_s += r.data_s; forward_s += r.forward_s; backward_s += r.backward_s; allreduce_s += r.allreduce_s;
    if (step == report.first_step) report.first_loss = r.loss;
    report.last_loss = r.loss;
    if (comm.rank() == 0) {
      if (!curve.is_open()) {
        for (const auto& [name, v] : r.per_pair) pairs.push_back(name);
        fs::create_directories(dir);
        curve.open(csv, std::ios::trunc);
        curve << "step,loss,lr";
        for (const auto& p : pairs) curve << ',' << p;
        curve << '\n';
        for (const auto& line : kept) curve << line << '\n';
      }
      curve << fmt::format("{},{:.6f},{:.6g}", step, r.loss, r.lr);
      for (const auto& p : pairs) curve << ',' << (r.per_pair.count(p) ? fmt::format("{:.6f}", r.per_pair.at(p)) : "");
      curve << '\n' << std::flush;
      const int done = step + 1 - report.first_step;
      const double elapsed = std::chrono::duration<double>(Clock::now() - loop_t0).count();
      if (done % 10 == 0 || step + 1 == tc.steps) {
        std::string per_pair;
        for (const auto& [p, v] : r.per_pair) per_pair += fmt::format("{}{} {:.3f}", per_pair.empty() ? "" : ", ", p, v);
        spdlog::info("step {}/{} loss {:.4f} ({}) lr {:.2e}, {:.1f} chips/s, ETA {:.0f} s", step + 1, tc.steps, r.loss,
                     per_pair, r.lr, done * tc.batch * comm.size() / elapsed, elapsed / done * (tc.steps - step - 1));
      }
    }
    if ((step + 1) % spec.train.checkpoint_every == 0 || step + 1 == tc.steps) save(step + 1);
  }
  report.steps = trainer.steps_done();
  report.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (comm.rank() == 0) {
    const int n = std::max(1, report.steps - report.first_step);
    const nlohmann::json j = {{"steps", report.steps}, {"resumed_from", report.first_step}, {"chips", report.chips},
                              {"parameters", report.parameters}, {"first_loss", report.first_loss},
                              {"last_loss", report.last_loss}, {"seconds", report.seconds}, {"ranks", comm.size()},
                              {"seconds_per_step", {{"data", data_s / n}, {"forward", forward_s / n},
                                                    {"backward", backward_s / n}, {"allreduce", allreduce_s / n}}},
                              {"checkpoint", report.checkpoint}};
    write_atomically(dir / "report.json", j.dump(2) + "\n");
  }
  return report;
}

}  // namespace eo
