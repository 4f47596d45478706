// The multi-modal ViT: sizes, channel-wise encoding with masks, the InfoNCE loss, and
// contrastive pretraining on the synthetic world's chip stores.

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "stages/model/trainer.hpp"
#include "support/run.hpp"
#include "support/world.hpp"

namespace eo {
namespace {

const std::vector<Modality> kAll(kImageModalities.begin(), kImageModalities.end());

TEST(Model, PaperPresetHasAbout250MParameters) {
  torch::NoGradGuard no_grad;
  MultiModal paper(ModelConfig::from_preset("paper"), kAll);
  const auto n = parameter_count(*paper);
  std::cout << "paper: " << n << " parameters\n";
  EXPECT_GT(n, 225'000'000);
  EXPECT_LT(n, 275'000'000);
  MultiModal nano(ModelConfig::from_preset("nano"), kAll);
  EXPECT_LT(parameter_count(*nano), 1'000'000);
  EXPECT_THROW(ModelConfig::from_preset("huge"), std::invalid_argument);
  EXPECT_THROW(ModelConfig::from_preset("nano", 100), std::invalid_argument);
}

TEST(Model, OtherInputSizesInterpolatePositions) {
  torch::manual_seed(0);
  ChannelEncoder enc(ModelConfig::from_preset("nano"));
  EXPECT_EQ(enc->forward(torch::randn({3, 1, 112, 112})).sizes(), (std::vector<int64_t>{3, 64}));
  EXPECT_EQ(enc->forward(torch::randn({2, 1, 224, 224})).sizes(), (std::vector<int64_t>{2, 64}));
}

TEST(Model, ChannelMasksLeaveMissingChannelsOut) {
  torch::manual_seed(1);
  ChannelEncoder enc(ModelConfig::from_preset("nano"));
  enc->eval();
  const auto x = torch::randn({2, 4, 112, 112});
  auto mask = torch::ones({2, 4});
  mask[0][2] = 0;
  const auto out = encode_channels(enc, x, mask);
  // row 0: the mean of channels 0, 1, 3 encoded one by one
  const auto expect0 = (enc->forward(x[0][0].view({1, 1, 112, 112})) + enc->forward(x[0][1].view({1, 1, 112, 112})) +
                        enc->forward(x[0][3].view({1, 1, 112, 112}))) / 3;
  EXPECT_TRUE(torch::allclose(out[0], expect0[0], 1e-4, 1e-5));
  // whatever channel 2 of row 0 holds does not matter
  auto changed = x.clone();
  changed[0][2] = 100;
  EXPECT_TRUE(torch::allclose(encode_channels(enc, changed, mask)[0], out[0], 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(encode_channels(enc, changed, torch::ones({2, 4}))[0], out[0], 1e-3, 1e-3));
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

// Pretraining on the chip stores of the synthetic world: the loss falls well below its
// starting value in a short run.
TEST(Pretrain, LossFallsOnTheSyntheticWorld) {
  const auto w = test::make_world("model");
  const auto r = test::run(std::string(EO_PIPELINE_EXE) + " prepare -q " + w->config_file.string());
  ASSERT_EQ(r.code, 0) << r.output;
  std::vector<std::filesystem::path> stores;
  for (const auto& e : std::filesystem::directory_iterator(w->config.output / "chips")) stores.push_back(e.path());
  const Normalisation norm = Normalisation::load(w->config.output / "normalisation.json");
  const ChipDataset data(stores, norm, kAll, 0.5);
  ASSERT_GE(data.size(), 32u);
  TrainConfig tc;
  tc.batch = 16;
  tc.steps = 60;
  tc.lr = 1e-3;
  tc.warmup = 5;
  tc.threads = 2;
  Trainer trainer(ModelConfig::from_preset("nano"), tc, data, Comm::serial());
  double first = 0, last = 0;
  for (int s = 0; s < tc.steps; ++s) {
    const StepResult step = trainer.step();
    if (s < 5) first += step.loss / 5;
    if (s >= tc.steps - 5) last += step.loss / 5;
  }
  std::cout << "loss: first 5 steps " << first << ", last 5 steps " << last << "\n";
  EXPECT_LT(last, 0.6 * first);
  std::filesystem::remove_all(w->dir);
}

}  // namespace
}  // namespace eo
