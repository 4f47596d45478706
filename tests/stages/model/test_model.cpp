// The multi-modal ViT: sizes, channel-wise encoding with masks, the InfoNCE loss, and
// contrastive pretraining on the synthetic world's chip stores.

#include <gtest/gtest.h>

#include <set>

#include <cmath>
#include <fstream>
#include <iostream>
#include <iterator>
#include <numeric>
#include <regex>

#include "stages/model/trainer.hpp"
#include "support/run.hpp"
#include "support/world.hpp"

namespace eo {
namespace {

const std::vector<Modality> kAll(kImageModalities.begin(), kImageModalities.end());

TEST(Model, PaperPresetHasAbout250MParameters) {
  torch::NoGradGuard no_grad;
  MultiModal paper(ModelConfig::from_preset(ModelPreset::paper), kAll);
  const auto n = parameter_count(*paper);
  std::cout << "paper: " << n << " parameters\n";
  EXPECT_GT(n, 225'000'000);
  EXPECT_LT(n, 275'000'000);
  MultiModal nano(ModelConfig::from_preset(ModelPreset::nano), kAll);
  EXPECT_LT(parameter_count(*nano), 1'000'000);
  EXPECT_THROW(ModelConfig::from_preset(ModelPreset::nano, 100), std::invalid_argument);
  // Every preset: its shape, written to a checkpoint's sidecar and read back as itself.
  std::set<int> widths;
  for (ModelPreset p : choice_values<ModelPreset>()) {
    const ModelConfig c = ModelConfig::from_preset(p);
    EXPECT_EQ(c.preset, name_of(p));
    EXPECT_EQ(c.input % c.patch, 0) << name_of(p);
    EXPECT_EQ(ModelConfig::from_json(c.to_json()).to_json(), c.to_json()) << name_of(p);
    widths.insert(c.dim * 100 + c.depth + c.input);
  }
  EXPECT_EQ(widths.size(), choice_values<ModelPreset>().size()) << "two presets of one shape";
}

TEST(Model, OtherInputSizesInterpolatePositions) {
  torch::manual_seed(0);
  ChannelEncoder enc(ModelConfig::from_preset(ModelPreset::nano), 1);
  EXPECT_EQ(enc->forward(torch::randn({3, 1, 112, 112}), {}).sizes(), (std::vector<int64_t>{3, 64}));
  EXPECT_EQ(enc->forward(torch::randn({2, 1, 224, 224}), {}).sizes(), (std::vector<int64_t>{2, 64}));
}

TEST(Model, ChannelMasksLeaveMissingChannelsOut) {
  torch::manual_seed(1);
  ModelConfig config = ModelConfig::from_preset(ModelPreset::nano);
  config.channel_embed = config.channel_proj = true;
  ChannelEncoder enc(config, 4);
  {
    torch::NoGradGuard no_grad;
    enc->channel_proj.normal_(0, 0.2);  // as trained, not as initialised (zeros)
  }
  enc->eval();
  const auto x = torch::randn({2, 4, 112, 112});
  auto mask = torch::ones({2, 4});
  mask[0][2] = 0;
  const auto out = encode_channels(enc, x, mask);
  // row 0: the mean of channels 0, 1, 3 encoded one by one, each with its channel's embedding
  const auto one = [&](int c) { return enc->forward(x[0][c].view({1, 1, 112, 112}), torch::full({1}, c, torch::kLong)); };
  const auto expect0 = (one(0) + one(1) + one(3)) / 3;
  EXPECT_TRUE(torch::allclose(out[0], expect0[0], 1e-4, 1e-5));
  // the channel's embedding matters: channel 0's image encoded as channel 1 is another embedding
  EXPECT_FALSE(torch::allclose(one(0), enc->forward(x[0][0].view({1, 1, 112, 112}), torch::ones({1}, torch::kLong)),
                               1e-3, 1e-3));
  // whatever channel 2 of row 0 holds does not matter
  auto changed = x.clone();
  changed[0][2] = 100;
  EXPECT_TRUE(torch::allclose(encode_channels(enc, changed, mask)[0], out[0], 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(encode_channels(enc, changed, torch::ones({2, 4}))[0], out[0], 1e-3, 1e-3));
}

// The decoders' target: each g x g cell's mean of each channel, and with the spreads each
// cell's standard deviation below the means; summed here pixel by pixel.
TEST(Model, ReconstructionTargetHoldsEachCellsMeanAndSpread) {
  torch::manual_seed(4);
  const auto chips = torch::randn({2, 3, 8, 8}, torch::kFloat64) * 3 + 1;
  const auto means = reconstruction_target(chips, 2, false);
  const auto both = reconstruction_target(chips, 2, true);
  ASSERT_EQ(means.sizes(), (std::vector<int64_t>{2, 3, 2, 2}));
  ASSERT_EQ(both.sizes(), (std::vector<int64_t>{2, 3, 4, 2}));
  const auto a = chips.accessor<double, 4>();
  for (int b = 0; b < 2; ++b)
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) {
          double sum = 0, squares = 0;
          for (int r = 4 * i; r < 4 * i + 4; ++r)
            for (int k = 4 * j; k < 4 * j + 4; ++k) sum += a[b][c][r][k], squares += a[b][c][r][k] * a[b][c][r][k];
          const double mean = sum / 16, spread = std::sqrt(squares / 16 - mean * mean);
          EXPECT_NEAR(means[b][c][i][j].item<double>(), mean, 1e-9);
          EXPECT_NEAR(both[b][c][i][j].item<double>(), mean, 1e-9);
          EXPECT_NEAR(both[b][c][2 + i][j].item<double>(), spread, 1e-9);
        }
}

// The band statistics decoders' target: each channel's mean and spread over the chip, in turn.
TEST(Model, StatisticsTargetHoldsEachChannelsMeanAndSpread) {
  torch::manual_seed(5);
  const auto chips = torch::randn({2, 3, 6, 6}, torch::kFloat64) * 2 - 1;
  const auto target = statistics_target(chips);
  ASSERT_EQ(target.sizes(), (std::vector<int64_t>{2, 6}));
  const auto a = chips.accessor<double, 4>();
  for (int b = 0; b < 2; ++b)
    for (int c = 0; c < 3; ++c) {
      double sum = 0, squares = 0;
      for (int r = 0; r < 6; ++r)
        for (int k = 0; k < 6; ++k) sum += a[b][c][r][k], squares += a[b][c][r][k] * a[b][c][r][k];
      const double mean = sum / 36;
      EXPECT_NEAR(target[b][2 * c].item<double>(), mean, 1e-9);
      EXPECT_NEAR(target[b][2 * c + 1].item<double>(), std::sqrt(squares / 36 - mean * mean), 1e-9);
    }
}

// The covariance across chips: with every statistic present, the sample covariance with
// its correlations shrunk by a twentieth; a chip missing a statistic leaves out only the
// pairs with it.
TEST(Model, StatisticsCovarianceIsEachPairsOverTheChipsThatHaveBoth) {
  torch::manual_seed(6);
  const auto mixing = torch::randn({4, 4}, torch::kFloat64);
  const auto values = torch::randn({200, 4}, torch::kFloat64).matmul(mixing) + 3;
  const auto all = torch::ones({200, 4}, torch::kFloat64);
  const auto expected = [](const torch::Tensor& v) {  // torch.cov's, shrunk
    const auto cov = torch::cov(v.t());
    return cov * 0.95 + torch::diag(cov.diagonal()) * 0.05;
  };
  EXPECT_TRUE(torch::allclose(statistics_covariance(values, all), expected(values), 1e-9, 1e-9));

  // Statistic 3 missing on the first 50 chips, with garbage there: the pairs without it
  // are those of all 200 chips, the pairs with it those of the last 150.
  auto present = all.clone(), garbage = values.clone();
  present.slice(0, 0, 50).select(1, 3).fill_(0);
  garbage.slice(0, 0, 50).select(1, 3).fill_(1e6);
  const auto cov = statistics_covariance(garbage, present);
  const auto first3 = expected(values.slice(1, 0, 3)), last150 = expected(values.slice(0, 50));
  EXPECT_TRUE(torch::allclose(cov.slice(0, 0, 3).slice(1, 0, 3), first3, 1e-9, 1e-9));
  EXPECT_TRUE(torch::allclose(cov[3], last150[3], 1e-9, 1e-9));
}

// The decoders' error in whitened units: (s - t)' S⁻¹ (s - t) among the statistics present.
TEST(Model, WhitenedErrorIsTheMahalanobisDistanceAmongTheStatisticsPresent) {
  torch::manual_seed(7);
  const auto a = torch::randn({6, 6}, torch::kFloat64);
  const auto covariance = a.matmul(a.t()) + torch::eye(6, torch::kFloat64);
  const auto target = torch::randn({2, 6}, torch::kFloat64), decoded = torch::randn({2, 6}, torch::kFloat64);
  auto present = torch::ones({2, 6}, torch::kFloat64);
  present[1][2] = present[1][3] = 0;  // the second chip lacks a channel's mean and spread
  const auto kept = torch::tensor({0, 1, 4, 5});
  const auto e0 = decoded[0] - target[0], e1 = (decoded[1] - target[1]).index({kept});
  const double expected = e0.dot(torch::linalg_solve(covariance, e0, true)).item<double>() +
                          e1.dot(torch::linalg_solve(covariance.index({kept}).index({torch::indexing::Slice(), kept}), e1, true)).item<double>();
  EXPECT_NEAR(whitened_error(decoded, target, present, covariance).item<double>(), expected, 1e-9);
  auto garbage = decoded.clone();
  garbage[1][2] = 1e6;  // what a chip lacks does not count
  EXPECT_NEAR(whitened_error(garbage, target, present, covariance).item<double>(), expected, 1e-9);

  // Two statistics that vary together (correlation 0.99, as a band's mean from one season
  // to the next): an error in their difference weighs (1 + 0.99) / (1 - 0.99) = 199 times
  // an error of the same size in their sum, which a squared error weighs alike.
  const auto together = torch::tensor({{1.0, 0.99}, {0.99, 1.0}}, torch::kFloat64);
  const auto zero = torch::zeros({1, 2}, torch::kFloat64), both = torch::ones({1, 2}, torch::kFloat64);
  const double difference = whitened_error(torch::tensor({{0.1, -0.1}}, torch::kFloat64), zero, both, together).item<double>();
  const double sum = whitened_error(torch::tensor({{0.1, 0.1}}, torch::kFloat64), zero, both, together).item<double>();
  EXPECT_NEAR(difference / sum, 199.0, 1e-6);
}

TEST(Model, InfoNceIsLowForMatchingPairsAndSkipsMissingRows) {
  torch::manual_seed(2);
  const auto z = torch::nn::functional::normalize(torch::randn({8, 16}), torch::nn::functional::NormalizeFuncOptions().dim(1));
  const auto other = torch::nn::functional::normalize(torch::randn({8, 16}), torch::nn::functional::NormalizeFuncOptions().dim(1));
  const auto all = torch::ones({8}, torch::kBool);
  const auto scale = torch::full({1}, 20.0);
  const double matched = info_nce({{Modality::s2rgb, z}, {Modality::s1amp, z}}, {{Modality::s2rgb, all}, {Modality::s1amp, all}}, scale).total.item<double>();
  const double random = info_nce({{Modality::s2rgb, z}, {Modality::s1amp, other}}, {{Modality::s2rgb, all}, {Modality::s1amp, all}}, scale).total.item<double>();
  EXPECT_LT(matched, 0.1);
  EXPECT_GT(random, 1.0);
  // rows without s1amp take no part: a garbage s1amp row there changes nothing
  auto some = all.clone();
  some[3] = false;
  auto garbage = z.clone();
  garbage[3] = other[3];
  const auto parts = info_nce({{Modality::s2rgb, z}, {Modality::s1amp, garbage}}, {{Modality::s2rgb, all}, {Modality::s1amp, some}}, scale);
  EXPECT_LT(parts.total.item<double>(), 0.1);
  EXPECT_EQ(parts.per_pair.count("s2rgb-s1amp"), 1u);
}

// Augmentation crops, flips and turns a chip's modalities alike (a positive pair still
// shows the same ground), and the crops are real: parts of the chip, resized to the input.
TEST(Model, AugmentationsCropTheSameGroundInEveryModality) {
  const int s = 64, chips = 16;
  std::vector<ChipSample> samples(chips);
  for (int k = 0; k < chips; ++k)
    for (Modality m : {Modality::s2rgb, Modality::s1amp}) {
      const int c = info(m).channels();
      auto& v = samples[static_cast<std::size_t>(k)].values[m];
      v.resize(static_cast<std::size_t>(c * s * s));
      for (int ch = 0; ch < c; ++ch)  // a ramp over the chip, the same in both modalities
        for (int i = 0; i < s * s; ++i) v[static_cast<std::size_t>(ch * s * s + i)] = static_cast<float>(k * 10000 + ch * 100 + i / s);
      samples[static_cast<std::size_t>(k)].mask[m].assign(static_cast<std::size_t>(c), 1.0f);
    }
  const ChipDataset data(std::move(samples), {Modality::s2rgb, Modality::s1amp}, s);
  TrainConfig tc;
  tc.batch = chips;
  tc.crop_min = 0.5;
  ModelConfig mc = ModelConfig::from_preset(ModelPreset::nano, 32);
  Trainer trainer(mc, tc, data, Comm::serial());
  std::vector<std::size_t> rows(chips);
  std::iota(rows.begin(), rows.end(), std::size_t{0});
  const auto [x, masks] = trainer.make_batch(rows, 3, 0);
  ASSERT_EQ(x.at(Modality::s2rgb).sizes(), (std::vector<int64_t>{chips, 12, 32, 32}));
  const auto rgb = x.at(Modality::s2rgb).slice(1, 0, 8), amp = x.at(Modality::s1amp);
  EXPECT_LE((rgb - amp).abs().max().item<float>(), 1e-4f);
  int cropped = 0;
  for (int k = 0; k < chips; ++k) {
    const auto plane = amp[k][0] - k * 10000;  // row numbers of the chip, 0..63 before the crop
    EXPECT_GE(plane.min().item<float>(), -0.5f);
    EXPECT_LE(plane.max().item<float>(), s - 0.5f);
    cropped += (plane.max() - plane.min()).item<float>() < 0.9f * (s - 1);
  }
  EXPECT_GE(cropped, chips / 2) << "crops of 0.5-1 times the side: most chips lose a tenth of their rows";
  tc.augment = false;
  Trainer plain(mc, tc, data, Comm::serial());
  const auto [y, unused] = plain.make_batch(rows, 3, 0);
  EXPECT_NEAR((y.at(Modality::s1amp)[0][0].max() - y.at(Modality::s1amp)[0][0].min()).item<float>(), s - 1, 1.0f);
}

// The synthetic world's chip stores, prepared once for the pretraining tests.
class PretrainWorld : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    world_ = test::make_world("model").release();
    const auto r = test::run(std::string(EO_PIPELINE_EXE) + " prepare -q " + world_->config_file.string());
    ASSERT_EQ(r.code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(world_->dir);
    delete world_;
  }
  static ChipDataset dataset() {
    std::vector<std::filesystem::path> stores;
    for (const auto& e : std::filesystem::directory_iterator(world_->config.output / "chips")) stores.push_back(e.path());
    std::sort(stores.begin(), stores.end());
    return ChipDataset(stores, Normalisation::load(world_->config.output / "normalisation.json"), kAll, 0.5);
  }
  // The world's config pretraining into an output of its own, on the same chip stores
  // (through a link).
  static std::filesystem::path config_for(const std::string& name, int steps = 40, int threads = 1) {
    const auto dir = world_->dir;
    const auto file = dir / (name + ".yaml");
    std::ifstream in(world_->config_file);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    std::filesystem::create_directories(dir / name);
    std::filesystem::create_directory_symlink(world_->config.output / "chips", dir / name / "chips");
    std::filesystem::copy_file(world_->config.output / "normalisation.json", dir / name / "normalisation.json");
    text = std::regex_replace(text, std::regex("output: .*"), "output: " + (dir / name).string());
    std::ofstream(file) << text << "pretrain:\n  steps: " << steps << "\n  batch: 8\n  checkpoint_every: 10\n  threads: "
                        << threads << "\n";
    return file;
  }
  static test::TestWorld* world_;
};
test::TestWorld* PretrainWorld::world_ = nullptr;

torch::Tensor fused(const std::map<Modality, torch::Tensor>& z) {
  torch::Tensor sum;
  for (const auto& [m, e] : z) sum = sum.defined() ? sum + e : e.clone();
  return torch::nn::functional::normalize(sum, torch::nn::functional::NormalizeFuncOptions().dim(1));
}

// Share of rows whose embedding is closer to the same row of `full` than to any other.
double nearest_is_itself(const torch::Tensor& partial, const torch::Tensor& full) {
  const auto nearest = partial.matmul(full.t()).argmax(1);
  return (nearest == torch::arange(full.size(0))).to(torch::kFloat32).mean().item<double>();
}

// Pretraining on the chip stores of the synthetic world: the loss falls well below its
// starting value in a short run, and a chip missing a channel or a modality still
// embeds closest to its own full embedding.
TEST_F(PretrainWorld, LossFallsAndMissingInputsStayClose) {
  const ChipDataset data = dataset();
  ASSERT_GE(data.size(), 40u);
  TrainConfig tc;
  tc.batch = 16;
  tc.steps = 80;
  tc.lr = 1e-3;
  tc.warmup = 5;
  tc.threads = 2;
  Trainer trainer(ModelConfig::from_preset(ModelPreset::nano), tc, data, Comm::serial());
  double first = 0, last = 0;
  for (int s = 0; s < tc.steps; ++s) {
    const StepResult step = trainer.step();
    if (s < 5) first += step.loss / 5;
    if (s >= tc.steps - 5) last += step.loss / 5;
  }
  std::cout << "loss: first 5 steps " << first << ", last 5 steps " << last << "\n";
  EXPECT_LT(last, 0.6 * first);

  torch::NoGradGuard no_grad;
  trainer.model()->eval();
  std::vector<std::size_t> rows;
  for (std::size_t i = 0; i < 40; ++i) rows.push_back(i * data.size() / 40);
  auto [x, masks] = trainer.make_batch(rows, 0, 0);
  for (auto& [m, mk] : masks) mk.fill_(1);  // compare on chips with every input present
  const auto full = trainer.model()->forward(x, masks);
  const auto full_fused = fused(full);
  for (Modality drop : kAll) {
    auto without = full;
    without.erase(drop);
    const double share = nearest_is_itself(fused(without), full_fused);
    std::cout << "without " << info(drop).name << ": " << share << " of chips nearest their full embedding\n";
    EXPECT_GE(share, 0.8) << "without " << info(drop).name;
  }
  auto one_channel_less = masks;
  one_channel_less[Modality::s2rgb].index_put_({torch::indexing::Slice(), 7}, 0);  // G of JJA
  one_channel_less[Modality::s1amp].index_put_({torch::indexing::Slice(), 0}, 0);  // VV of DJF
  const double share = nearest_is_itself(fused(trainer.model()->forward(x, one_channel_less)), full_fused);
  std::cout << "one channel less: " << share << "\n";
  EXPECT_GE(share, 0.9);
}

// Killed after a checkpoint and resumed, pretraining continues with the losses of a run
// that was never interrupted.
TEST_F(PretrainWorld, ResumedRunContinuesLikeAnUninterruptedOne) {
  const auto dir = world_->dir;
  const auto whole = config_for("whole"), killed = config_for("killed");
  const std::string exe = EO_PIPELINE_EXE;
  ASSERT_EQ(test::run(exe + " pretrain -q " + whole.string()).code, 0);
  const auto k = test::run(exe + " pretrain -q " + killed.string() + " & pid=$!; for i in $(seq 3000); do [ -f " +
                           (dir / "killed/pretrain/checkpoints/step-000010.json").string() +
                           " ] && break; sleep 0.01; done; kill -9 $pid; wait $pid; echo \"exit $?\"");
  ASSERT_NE(k.output.find("exit 137"), std::string::npos) << "not killed: " << k.output;
  const auto resumed = test::run(exe + " pretrain " + killed.string());
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resumed at"), std::string::npos) << resumed.output;
  auto losses = [](const std::filesystem::path& csv) {
    std::map<int, double> out;
    std::ifstream in(csv);
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) out[std::stoi(line)] = std::stod(line.substr(line.find(',') + 1));
    return out;
  };
  const auto a = losses(dir / "whole/pretrain/loss.csv"), b = losses(dir / "killed/pretrain/loss.csv");
  // Four checkpoints, the two newest kept, and the statistics beside them.
  EXPECT_FALSE(std::filesystem::exists(dir / "whole/pretrain/checkpoints/step-000020.pt"));
  EXPECT_TRUE(std::filesystem::exists(dir / "whole/pretrain/checkpoints/step-000030.pt"));
  EXPECT_TRUE(std::filesystem::exists(dir / "whole/pretrain/checkpoints/normalisation.json"));
  ASSERT_EQ(a.size(), 40u);
  ASSERT_EQ(b.size(), 40u) << "the loss curve has every step once";
  int resumed_at = 10;
  for (const auto& [step, loss] : a) EXPECT_NEAR(b.at(step), loss, 1e-5 * std::max(1.0, loss)) << "step " << step;
  EXPECT_NEAR(b.at(resumed_at), a.at(resumed_at), 1e-5) << "the next step after the resume";

  // Resuming as another model of the same shapes (mean pooling) is refused, naming the
  // checkpoint, and the checkpoints stay as they were.
  std::ofstream(whole, std::ios::app) << "model:\n  pooling: mean\n";
  const auto other = test::run(exe + " pretrain " + whole.string());
  EXPECT_EQ(other.code, 2) << other.output;
  EXPECT_NE(other.output.find("step-000040.pt to resume from is of another model"), std::string::npos) << other.output;
  EXPECT_EQ(losses(dir / "whole/pretrain/loss.csv"), a);

  // A checkpoint from before channel embeddings (a sidecar without the key) is a model
  // without them: resuming it with `channel_embed: false` goes on, with them is refused.
  const auto old = config_for("old");
  std::ofstream(old, std::ios::app) << "model:\n  channel_embed: false\n";
  ASSERT_EQ(test::run(exe + " pretrain -q " + old.string()).code, 0);
  const auto sidecar = dir / "old/pretrain/checkpoints/step-000040.json";
  nlohmann::json j = nlohmann::json::parse(std::ifstream(sidecar));
  ASSERT_EQ(j.at("model").erase("channel_embed"), 1u);
  std::ofstream(sidecar) << j.dump(2);
  const auto same = test::run(exe + " pretrain " + old.string());
  EXPECT_EQ(same.code, 0) << same.output;
  std::string text((std::istreambuf_iterator<char>(std::ifstream(old).rdbuf())), {});
  const std::string off = "channel_embed: false";
  text.replace(text.find(off), off.size(), "channel_embed: true");
  std::ofstream(old) << text;
  const auto with = test::run(exe + " pretrain " + old.string());
  EXPECT_EQ(with.code, 2) << with.output;
  EXPECT_NE(with.output.find("to resume from is of another model"), std::string::npos) << with.output;
}

// The same config on the same machine, ranks and threads gives a byte-identical
// checkpoint: model, optimizer and step (2 ranks of 2 threads, the contrastive loss and
// the reconstructions).
TEST_F(PretrainWorld, TheSameConfigGivesAByteIdenticalCheckpoint) {
  std::vector<std::string> bytes;
  for (const char* name : {"first", "second"}) {
    const auto config = config_for(name, 10, 2);
    const auto r = test::run(std::string("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpiexec -n 2 "
                                         "--oversubscribe ") + EO_PIPELINE_EXE + " pretrain -q " + config.string());
    ASSERT_EQ(r.code, 0) << r.output;
    std::ifstream in(world_->dir / name / "pretrain/checkpoints/step-000010.pt", std::ios::binary);
    bytes.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_GT(bytes[0].size(), 100000u);
  EXPECT_TRUE(bytes[0] == bytes[1]) << "two runs of one config wrote different checkpoints";
}

}  // namespace
}  // namespace eo
