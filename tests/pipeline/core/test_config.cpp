// Config parsing: every kind of mistake is named by file, key path and line.

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "pipeline/core/config.hpp"
#include "support/config_text.hpp"

namespace eo {
namespace {

const std::string& kGood = test::kSmallConfig;

std::string error_of(const std::string& text) {
  try {
    parse_config(text, "cfg.yaml", ".");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, DefaultsFilledIn) {
  const Config c = parse_config(kGood, "cfg.yaml", ".");
  EXPECT_EQ(c.pixel_size, 40.0);
  EXPECT_EQ(c.chip_pixels(), 112);
  EXPECT_EQ(c.partition, Partition::static_split);
  EXPECT_EQ(c.order, CurveOrder::hilbert);
  EXPECT_EQ(c.output, "out");
  EXPECT_EQ(parse_config("aois: [{name: a, wkt: 'POLYGON((1 1,2 1,2 2,1 1))'}]", "c", ".").pixel_size, 10.0);
}

TEST(Config, ResolvedYamlReadsBack) {
  const Config c = parse_config(kGood, "cfg.yaml", ".");
  const Config back = parse_config(to_yaml(c), "resolved.yaml", ".");
  EXPECT_EQ(to_yaml(back), to_yaml(c));
  EXPECT_EQ(back.aois.at(0).wkt, c.aois.at(0).wkt);
}

TEST(Config, ModelChannelEmbeddingsOnUnlessSaidOff) {
  EXPECT_TRUE(parse_config(kGood, "cfg.yaml", ".").model.channel_embed);
  const Config off = parse_config(kGood + "model:\n  channel_embed: false\n", "cfg.yaml", ".");
  EXPECT_FALSE(off.model.channel_embed);
  EXPECT_FALSE(parse_config(to_yaml(off), "resolved.yaml", ".").model.channel_embed);
  const std::string e = error_of(kGood + "model:\n  channel_embed: maybe\n");
  EXPECT_NE(e.find("cfg.yaml:8: model.channel_embed"), std::string::npos) << e;
}

// The reconstruction beside the contrastive loss: on by default, 0 for the paper's loss
// alone, read back from the resolved config, refused below 0 naming the key.
TEST(Config, ModelReconstructionOnUnlessWeightZero) {
  const Config c = parse_config(kGood, "cfg.yaml", ".");
  EXPECT_EQ(c.model.reconstruction, 10);
  EXPECT_EQ(c.model.reconstruction_grid, 4);
  EXPECT_EQ(c.model.chip_statistics, 0) << "the band statistics decoders are off by default";
  const Config off = parse_config(kGood + "model:\n  reconstruction: 0\n  reconstruction_grid: 2\n  chip_statistics: 3\n",
                                  "cfg.yaml", ".");
  EXPECT_EQ(off.model.reconstruction, 0);
  const Config back = parse_config(to_yaml(off), "resolved.yaml", ".");
  EXPECT_EQ(back.model.reconstruction, 0);
  EXPECT_EQ(back.model.reconstruction_grid, 2);
  EXPECT_EQ(back.model.chip_statistics, 3);
  const std::string e = error_of(kGood + "model:\n  reconstruction: -1\n");
  EXPECT_NE(e.find("cfg.yaml:8: model.reconstruction"), std::string::npos) << e;
  const std::string s = error_of(kGood + "model:\n  chip_statistics: -1\n");
  EXPECT_NE(s.find("cfg.yaml:8: model.chip_statistics"), std::string::npos) << s;
}

TEST(Config, UnknownKeyNamesKeyLineAndSuggestion) {
  const std::string e = error_of("name: t\ngird:\n  pixel_size: 40\naois: []\n");
  EXPECT_NE(e.find("cfg.yaml:2:"), std::string::npos) << e;
  EXPECT_NE(e.find("gird"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'grid'"), std::string::npos) << e;
}

TEST(Config, NestedUnknownKey) {
  const std::string e = error_of(kGood + "schedule:\n  partiton: static\n");
  EXPECT_NE(e.find("cfg.yaml:8: schedule.partiton: unknown key"), std::string::npos) << e;
}

TEST(Config, WrongType) {
  const std::string e = error_of("grid:\n  pixel_size: forty\naois: []\n");
  EXPECT_NE(e.find("cfg.yaml:2: grid.pixel_size: expected a number, got 'forty'"), std::string::npos) << e;
  const std::string e2 = error_of("grid: 40\naois: []\n");
  EXPECT_NE(e2.find("cfg.yaml:1: grid: expected a mapping"), std::string::npos) << e2;
}

TEST(Config, OutOfRange) {
  EXPECT_NE(error_of("grid:\n  pixel_size: 0\naois: []\n").find("cfg.yaml:2: grid.pixel_size: 0 is out of range"),
            std::string::npos);
  const std::string e = error_of("grid:\n  pixel_size: 45\naois: []\n");
  EXPECT_NE(e.find("cfg.yaml:2: grid.pixel_size: 45 m does not divide the 4480 m chip"), std::string::npos) << e;
}

TEST(Config, BadChoice) {
  const std::string e = error_of(kGood + "schedule:\n  partition: round-robin\n");
  EXPECT_NE(e.find("cfg.yaml:8: schedule.partition: 'round-robin' is not a partition; one of: static, dynamic, slurm-array"),
            std::string::npos) << e;
}

TEST(Config, AoiMistakes) {
  EXPECT_NE(error_of("name: t\n").find("aois: missing"), std::string::npos);
  EXPECT_NE(error_of("aois: []\n").find("cfg.yaml:1: aois: expected a list"), std::string::npos);
  const std::string both = error_of("aois:\n  - name: a\n    wkt: x\n    file: y\n");
  EXPECT_NE(both.find("cfg.yaml:2: aois[0]: give exactly one of 'file' and 'wkt'"), std::string::npos) << both;
  const std::string missing = error_of("aois:\n  - name: a\n    file: nowhere/x.geojson\n");
  EXPECT_NE(missing.find("cfg.yaml:3: aois[0].file: no such file"), std::string::npos) << missing;
  EXPECT_NE(missing.find("nowhere/x.geojson"), std::string::npos) << missing;
  const std::string dup = error_of(kGood + "  - name: a\n    wkt: POLYGON((1 1,2 1,2 2,1 1))\n");
  EXPECT_NE(dup.find("cfg.yaml:7: aois[1].name: 'a' is used twice"), std::string::npos) << dup;
}

TEST(Config, BadAoiContentNamesConfigKeyAndSource) {
  const Config c = parse_config("aois:\n  - name: polar\n    wkt: POLYGON((1 80,2 80,2 86,1 80))\n", "cfg.yaml", ".");
  try {
    load_aois(c);
    FAIL();
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cfg.yaml:2: aois[0]:"), std::string::npos) << m;
    EXPECT_NE(m.find("outside the UTM grid"), std::string::npos) << m;
  }
}

TEST(Config, DataWarpSynthSections) {
  const Config c = parse_config(kGood + "data:\n  modalities: [s1amp, s2rgb]\n  resampling: {s1coh: average}\n"
                                        "synth:\n  resolution_scale: 4\n",
                                "cfg.yaml", ".");
  EXPECT_EQ(c.data.modalities, (std::vector<Modality>{Modality::s1amp, Modality::s2rgb}));
  EXPECT_EQ(c.resampling(Modality::s1coh), Resampling::average);
  EXPECT_EQ(c.resampling(Modality::s2rgb), Resampling::bilinear);
  EXPECT_EQ(c.synth.resolution_scale, 4);
  EXPECT_EQ(c.catalog_path(), std::filesystem::path("out/world/catalog.jsonl"));
  EXPECT_NE(config_hash(c), config_hash(parse_config(kGood, "cfg.yaml", ".")));
  EXPECT_NE(error_of(kGood + "data:\n  modalities: [s2rgb, s2rgb]\n").find("cfg.yaml:8: data.modalities[1]: listed twice"),
            std::string::npos);
  EXPECT_NE(error_of(kGood + "data:\n  modalities: [lidar]\n").find("data.modalities[0]: 'lidar' is not one of"),
            std::string::npos);
  EXPECT_NE(error_of(kGood + "data:\n  resampling: {s2rgb: lanczos9}\n").find("data.resampling.s2rgb: 'lanczos9'"),
            std::string::npos);
  EXPECT_NE(error_of(kGood + "synth:\n  resolution_scale: 2.5\n").find("cfg.yaml:8: synth.resolution_scale: expected a whole number"),
            std::string::npos);
  EXPECT_NE(error_of(kGood + "warp:\n  threads: -1\n").find("warp.threads: -1 is out of range"), std::string::npos);
  EXPECT_NE(error_of(kGood + "fewshot:\n  max_bin: 1\n").find("cfg.yaml:8: fewshot.max_bin: 1 is out of range"),
            std::string::npos);
  EXPECT_EQ(parse_config(kGood + "fewshot:\n  max_bin: 32\n", "cfg.yaml", ".").fewshot.max_bin, 32);
  EXPECT_EQ(parse_config(kGood, "cfg.yaml", ".").fewshot.max_bin, 256);
}

TEST(Config, MalformedYamlNamesLine) {
  const std::string e = error_of("name: t\naois: [\n  {name: a\n");
  EXPECT_NE(e.find("cfg.yaml:"), std::string::npos) << e;
  EXPECT_NE(e.find("not valid YAML"), std::string::npos) << e;
}

TEST(Config, EmbeddedDemoIsTheShippedFile) {
  std::ifstream in(EO_SOURCE_DIR "/configs/demo.yaml");
  std::stringstream buf;
  buf << in.rdbuf();
  EXPECT_EQ(embedded_demo_config(), buf.str());
  const Config c = load_config_or_demo("");
  EXPECT_EQ(c.source, kEmbeddedDemoName);
  EXPECT_EQ(c.name, "demo");
}

}  // namespace
}  // namespace eo
