// The chip stage's own pieces: which chips have data, the normalisation statistics as a
// file (read back as written, or refused naming the file and the modality), and the
// options the chip stage takes from the config's sections. Its rows of a tile from real
// warps are tested with the warp (test_warp: ChipRowsEqualTheWholeTileWarp) and the runs.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "pipeline/core/error.hpp"
#include "stages/chip/chipper.hpp"
#include "stages/chip/normalise.hpp"
#include "support/temp_dir.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;

// Two chips of s2rgb (12 channels) and s1coh (4): the first with `valid` in one channel
// of one modality, nothing elsewhere; the second all valid.
ChipBatch batch(Modality m, int channel, float valid) {
  ChipBatch b{TileId{Zone{10, false}, 73, 8}, 4, {}, {}};
  b.chips = {b.tile.chip(0), b.tile.chip(1)};
  for (Modality x : {Modality::s2rgb, Modality::s1coh}) {
    ModalityChips mc{x, info(x).channels(), {}, {}, {}, {}};
    mc.values.assign(2 * b.chip_values(mc), 1.0f);
    mc.valid.assign(2 * static_cast<std::size_t>(mc.channels), 0.0f);
    for (int c = 0; c < mc.channels; ++c) mc.valid[static_cast<std::size_t>(mc.channels + c)] = 1.0f;
    if (x == m) mc.valid[static_cast<std::size_t>(channel)] = valid;
    b.modalities.push_back(std::move(mc));
  }
  return b;
}

TEST(Chip, AChipHasDataWhenAnyChannelOfAnyModalityReachesTheThreshold) {
  EXPECT_FALSE(chip_has_data(batch(Modality::s2rgb, 0, 0.0f), 0, 0.5));
  EXPECT_FALSE(chip_has_data(batch(Modality::s2rgb, 11, 0.49f), 0, 0.5));
  EXPECT_TRUE(chip_has_data(batch(Modality::s2rgb, 11, 0.5f), 0, 0.5)) << "at the threshold";
  EXPECT_TRUE(chip_has_data(batch(Modality::s1coh, 3, 0.9f), 0, 0.5)) << "the last channel of the last modality";
  EXPECT_TRUE(chip_has_data(batch(Modality::s2rgb, 0, 0.0f), 1, 0.5)) << "the second chip is all valid";
  EXPECT_TRUE(chip_has_data(batch(Modality::s2rgb, 0, 0.0f), 0, 0.0)) << "a threshold of 0 keeps every chip";
}

TEST(Chip, NormalisationStatisticsReadBackAsWritten) {
  const fs::path dir = test::fresh_temp_dir("chip_norm");
  Normalisation n;
  for (Modality m : {Modality::s2rgb, Modality::s1amp})
    for (int c = 0; c < info(m).channels(); ++c) n.channels[m].push_back({0.1 * c - 3, 0.5 + c});
  n.save(dir / "normalisation.json");
  const Normalisation back = Normalisation::load(dir / "normalisation.json");
  EXPECT_EQ(back.hash(), n.hash());
  EXPECT_EQ(back.to_json(), n.to_json());
  ASSERT_EQ(back.channels.at(Modality::s1amp).size(), 8u);
  EXPECT_DOUBLE_EQ(back.channels.at(Modality::s1amp)[7].std, 7.5);
  fs::remove_all(dir);
}

TEST(Chip, BadNormalisationFilesAreRefusedNamingTheFileAndTheStage) {
  const fs::path dir = test::fresh_temp_dir("chip_norm_bad");
  const auto refusal = [&](const std::string& text) -> std::string {
    std::ofstream(dir / "n.json") << text;
    try {
      Normalisation::load(dir / "n.json");
    } catch (const StageError& e) {
      EXPECT_EQ(e.stage(), "chip");
      return e.what();
    }
    return "";
  };
  const std::string file = (dir / "n.json").string();
  std::string e = refusal(R"({"s1coh": {"mean": [0, 0], "std": [1, 1]}})");
  EXPECT_NE(e.find("chip: normalisation " + file + ": s1coh needs 4 channels"), std::string::npos) << e;
  e = refusal(R"({"s9": {"mean": [0], "std": [1]}})");
  EXPECT_NE(e.find(file), std::string::npos) << e;
  EXPECT_NE(e.find("'s9' is not a modality"), std::string::npos) << e;
  e = refusal("{not json");
  EXPECT_NE(e.find(file), std::string::npos) << e;
  try {
    Normalisation::load(dir / "missing.json");
    ADD_FAILURE() << "a missing file read";
  } catch (const StageError& x) {
    EXPECT_NE(std::string(x.what()).find("missing.json: cannot open the file"), std::string::npos) << x.what();
  }
  fs::remove_all(dir);
}

TEST(Chip, ReadOptionsTakeTheConfigsResamplingForEveryModalityTheLabelsToo) {
  DataConfig data;
  data.modalities = {Modality::s1coh};
  data.resampling[Modality::s1coh] = Resampling::near;
  WarpConfig warp;
  warp.memory_mb = 64;
  const TileReadOptions o = TileReadOptions::from(40, data, warp, 3);
  EXPECT_EQ(o.pixel, 40);
  EXPECT_EQ(o.threads, 3);
  EXPECT_EQ(o.memory_mb, 64);
  EXPECT_EQ(o.modalities, data.modalities);
  EXPECT_EQ(o.resampling.at(Modality::s1coh), Resampling::near);
  EXPECT_EQ(o.resampling.at(Modality::s2rgb), Resampling::bilinear) << "the modality's default";
  EXPECT_EQ(o.resampling.at(Modality::worldcover), Resampling::mode);
  EXPECT_EQ(o.resampling.at(Modality::treecover), Resampling::average);
}

}  // namespace
}  // namespace eo
