// Data-parallel pretraining under mpiexec (and serially): 2 ranks x batch b give the
// loss and gradients of 1 rank x batch 2b, and after a step every rank holds the same
// parameters.

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <random>

#include "schedulers/comm.hpp"
#include "stages/model/trainer.hpp"

namespace eo {
namespace {

const std::vector<Modality> kAll(kImageModalities.begin(), kImageModalities.end());

// Random chips with some channels and one modality sometimes missing, the same on every rank.
ChipDataset random_chips(std::size_t n, int size) {
  std::mt19937 rng(42);
  std::normal_distribution<float> value;
  std::uniform_real_distribution<float> u;
  std::vector<ChipSample> samples(n);
  for (auto& s : samples)
    for (Modality m : kAll) {
      if (m == Modality::s1coh && u(rng) < 0.25f) continue;  // missing modality
      const int c = info(m).channels();
      auto& v = s.values[m];
      v.resize(static_cast<std::size_t>(c) * size * size);
      for (auto& x : v) x = value(rng);
      auto& mask = s.mask[m];
      for (int k = 0; k < c; ++k) mask.push_back(u(rng) < 0.15f ? 0.0f : 1.0f);
    }
  return ChipDataset(std::move(samples), kAll, size);
}

TrainConfig small_config(int batch) {
  TrainConfig tc;
  tc.batch = batch;
  tc.steps = 10;
  tc.warmup = 2;
  tc.threads = 1;
  return tc;
}

// The contrastive loss alone (the paper's) and with the modalities' reconstructions.
class PretrainMpi : public ::testing::TestWithParam<double> {};

// The nano model at 32 px with the given reconstruction weight; with reconstructions, as
// the config's defaults have it: channel embeddings and projections, and the cells' spreads
// beside their means, each in units of its spread across chips; and the band statistics
// decoded in whitened units, at the same weight.
ModelConfig model_config(double reconstruction) {
  ModelConfig mc = ModelConfig::from_preset(ModelPreset::nano, 32);
  mc.reconstruction = mc.chip_statistics = reconstruction;
  mc.channel_embed = mc.channel_proj = mc.reconstruction_spread = mc.reconstruction_standardised = reconstruction > 0;
  return mc;
}

TEST_P(PretrainMpi, RanksTimesBatchEqualsOneRankWithTheWholeBatch) {
  const Comm world = Comm::world();
  const int b = 4;
  const ChipDataset data = random_chips(64, 32);
  const ModelConfig mc = model_config(GetParam());
  Trainer distributed(mc, small_config(b), data, world);
  Trainer single(mc, small_config(b * world.size()), data, Comm::serial());
  for (int step = 0; step < 2; ++step) {
    const StepResult d = distributed.compute_gradients();
    const StepResult s = single.compute_gradients();
    EXPECT_NEAR(d.loss, s.loss, 1e-5 * std::max(1.0, std::abs(s.loss))) << "step " << step;
    if (mc.reconstruction > 0) {
      EXPECT_GT(s.reconstruction, 0.0);
      EXPECT_NEAR(d.reconstruction, s.reconstruction, 1e-5 * s.reconstruction) << "step " << step;
      EXPECT_GT(s.statistics, 0.0);
      EXPECT_NEAR(d.statistics, s.statistics, 1e-5 * s.statistics) << "step " << step;
      for (Modality m : kAll)
        for (const char* kind : {"rec", "stats"})
          EXPECT_EQ(s.terms.count(fmt::format("{}_{}", kind, info(m).name)), 1u) << kind << " " << info(m).name;
    }
    auto pd = distributed.model()->named_parameters(), ps = single.model()->named_parameters();
    // A parameter no row reached this step (a modality absent from the batch) has no
    // gradient on one side and zeros on the other.
    auto grad = [](const torch::Tensor& p) { return p.grad().defined() ? p.grad() : torch::zeros_like(p); };
    for (const auto& item : pd) {
      const auto gd = grad(item.value()), gs = grad(ps[item.key()]);
      // float tolerance: sums over ranks and over one batch add in different orders
      const float scale = gs.abs().max().item<float>(), diff = (gd - gs).abs().max().item<float>();
      EXPECT_LE(diff, 1e-3f * scale + 1e-7f) << item.key() << ": max difference " << diff << " of " << scale;
    }
    double norm = 0;
    for (const auto& item : ps) norm += grad(item.value()).square().sum().item<double>();
    EXPECT_GT(norm, 0.0) << "no gradient at all";
    distributed.step();  // advance both by a real step (recomputes the same batch's gradients)
    single.step();
  }
}

TEST_P(PretrainMpi, EveryRankHoldsTheSameParametersAfterSteps) {
  const Comm world = Comm::world();
  const ChipDataset data = random_chips(48, 32);
  const ModelConfig mc = model_config(GetParam());
  Trainer trainer(mc, small_config(4), data, world);
  for (int i = 0; i < 3; ++i) trainer.step();
  std::vector<float> flat;
  for (const auto& p : trainer.model()->parameters()) {
    const auto c = p.detach().contiguous();
    flat.insert(flat.end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  }
  const auto all = world.allgather(flat.data(), flat.size());
  for (int r = 1; r < world.size(); ++r)
    for (std::size_t i = 0; i < flat.size(); ++i)
      ASSERT_EQ(all[i], all[r * flat.size() + i]) << "rank " << r << " differs at parameter value " << i;
}

INSTANTIATE_TEST_SUITE_P(Losses, PretrainMpi, ::testing::Values(0.0, 1.0),
                         [](const auto& info) { return info.param > 0 ? "WithReconstruction" : "ContrastiveOnly"; });

}  // namespace
}  // namespace eo
