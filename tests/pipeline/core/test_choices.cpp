// Every choice of the config is a type with one table of names: each accepted name (the
// ecosystem's aliases too) is read from its key and written back under its canonical
// name, an unknown one is refused with the valid ones, the key and the line, and every
// accepted value reaches the code that consumes it. The stages' own choices are run
// through their consumers in their tests: resampling in test_warp (every name, a
// source in another CRS), dtype in test_cube, compression, batching and device in
// test_sinks, pooling in test_torchscript, presets in test_model, layouts in test_synth.

#include <gtest/gtest.h>

#include <set>
#include <spdlog/spdlog.h>

#include "pipeline/core/config.hpp"
#include "support/config_text.hpp"
#include "pipeline/core/journal.hpp"
#include "pipeline/core/log.hpp"
#include "schedulers/partition.hpp"
#include "schedulers/tile_source.hpp"
#include "support/plans.hpp"

namespace eo {
namespace {

const std::string& kGood = test::kSmallConfig;

// The table itself: names unique, every value named, the canonical name first.
template <class E>
void expect_sound_table() {
  std::set<std::string> names;
  for (const std::string& n : choice_names<E>()) {
    EXPECT_TRUE(names.insert(n).second) << n << " twice";
    ASSERT_TRUE(parse_choice<E>(n).has_value()) << n;
    EXPECT_EQ(parse_choice<E>(name_of(*parse_choice<E>(n))), parse_choice<E>(n)) << n;
  }
  for (E v : choice_values<E>()) {
    EXPECT_EQ(parse_choice<E>(name_of(v)), v);
    EXPECT_NE(choice_list<E>().find(std::string(name_of(v))), std::string::npos);
  }
  EXPECT_FALSE(parse_choice<E>("no-such-name").has_value());
  EXPECT_FALSE(parse_choice<E>("").has_value());
}

TEST(Choices, EveryTableIsSound) {
  expect_sound_table<Resampling>();
  expect_sound_table<Partition>();
  expect_sound_table<CurveOrder>();
  expect_sound_table<LogLevel>();
  expect_sound_table<WorldLayout>();
  expect_sound_table<Compression>();
  expect_sound_table<ModelPreset>();
  expect_sound_table<Pooling>();
  expect_sound_table<Device>();
  expect_sound_table<CubeDtype>();
  expect_sound_table<Batching>();
  expect_sound_table<ChipSource>();
  expect_sound_table<JournalStage>();
  expect_sound_table<TileStatus>();
}

TEST(Choices, AliasesAndMessages) {
  EXPECT_EQ(parse_choice<Resampling>("nearest"), Resampling::near);
  EXPECT_EQ(parse_choice<Resampling>("near"), Resampling::near);
  EXPECT_EQ(name_of(Resampling::near), "near") << "GDAL's name is the canonical one";
  EXPECT_EQ(parse_choice<Resampling>("median"), Resampling::med);
  EXPECT_EQ(choice_problem<Resampling>("bilinear"), "");
  const std::string p = choice_problem<Resampling>("lanczos9");
  EXPECT_NE(p.find("'lanczos9' is not a resampling method; one of: near (or nearest), bilinear, cubic"), std::string::npos)
      << p;
  EXPECT_NE(p.find("med (or median)"), std::string::npos) << p;
  EXPECT_THROW(parse_choice_or_throw<TileStatus>("finished", "journal line 3"), std::invalid_argument);
}

// One config key of each choice: where its value lands, and what each name means.
struct Key {
  std::string section, key;
  std::function<std::string(const Config&)> value;  // the value read, by its canonical name
  std::vector<std::string> names;                   // every name it accepts
  std::function<std::string(const std::string&)> canonical;
};

template <class E, class Get>
Key key(const std::string& section, const std::string& name, Get get) {
  return {section, name, [get](const Config& c) { return name_str(get(c)); }, choice_names<E>(),
          [](const std::string& n) { return name_str(*parse_choice<E>(n)); }};
}

std::vector<Key> keys() {
  return {
      key<Partition>("schedule", "partition", [](const Config& c) { return c.partition; }),
      key<CurveOrder>("schedule", "order", [](const Config& c) { return c.order; }),
      key<LogLevel>("logging", "level", [](const Config& c) { return c.log_level; }),
      key<WorldLayout>("synth", "layout", [](const Config& c) { return c.synth.layout; }),
      key<Compression>("prepare", "compression", [](const Config& c) { return c.prepare.compression; }),
      key<ModelPreset>("model", "preset", [](const Config& c) { return c.model.preset; }),
      key<Pooling>("model", "pooling", [](const Config& c) { return c.model.pooling.value(); }),
      key<Device>("model", "device", [](const Config& c) { return c.model.device; }),
      key<CubeDtype>("run", "dtype", [](const Config& c) { return c.run.dtype; }),
      key<Batching>("run", "batching", [](const Config& c) { return c.run.batching; }),
      key<ChipSource>("run", "inputs", [](const Config& c) { return c.run.inputs; }),
  };
}

TEST(Choices, EveryNameOfEveryKeyIsReadAndWrittenBackCanonically) {
  for (const Key& k : keys()) {
    for (const std::string& name : k.names) {
      SCOPED_TRACE(k.section + "." + k.key + ": " + name);
      const Config c = parse_config(kGood + k.section + ":\n  " + k.key + ": " + name + "\n", "cfg.yaml", ".");
      const std::string canonical = k.canonical(name);
      EXPECT_EQ(k.value(c), canonical);
      const Config back = parse_config(to_yaml(c), "resolved.yaml", ".");
      EXPECT_EQ(k.value(back), canonical);
      EXPECT_NE(to_yaml(c).find(k.key + ": " + canonical), std::string::npos) << to_yaml(c);
    }
    // An unknown name: file, line, key, and the valid names.
    try {
      parse_config(kGood + k.section + ":\n  " + k.key + ": bogus\n", "cfg.yaml", ".");
      ADD_FAILURE() << k.key << ": bogus accepted";
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("cfg.yaml:8: " + k.section + "." + k.key + ": 'bogus' is not "), std::string::npos) << what;
      for (const std::string& name : k.names) EXPECT_NE(what.find(name), std::string::npos) << what;
    }
  }
}

TEST(Choices, EveryResamplingNameOfEveryModality) {
  for (const char* modality : {"s2rgb", "s1amp", "s1coh", "worldcover", "treecover"})
    for (const std::string& name : choice_names<Resampling>()) {
      const Config c = parse_config(kGood + "data:\n  resampling: {" + modality + ": " + name + "}\n", "cfg.yaml", ".");
      const Resampling r = c.resampling(parse_modality(modality));
      EXPECT_EQ(r, parse_choice<Resampling>(name)) << modality << ": " << name;
      EXPECT_EQ(parse_config(to_yaml(c), "resolved.yaml", ".").resampling(parse_modality(modality)), r);
    }
  // The hash that fingerprints tiles sees the method, not its spelling.
  const auto hash_with = [](const std::string& name) {
    return config_hash(parse_config(kGood + "data:\n  resampling: {s1coh: " + name + "}\n", "cfg.yaml", "."));
  };
  EXPECT_EQ(hash_with("nearest"), hash_with("near"));
  EXPECT_NE(hash_with("nearest"), hash_with("bilinear"));
}

// schedule.partition and schedule.order through the tile source: every partition and
// order hands every tile of the plan to exactly one rank.
TEST(Choices, EveryPartitionAndOrderCoversThePlanOnce) {
  const Plan plan = test::demo_plan();
  for (Partition p : choice_values<Partition>())
    for (CurveOrder o : choice_values<CurveOrder>()) {
      SCOPED_TRACE(name_str(p) + ", " + name_str(o));
      std::multiset<std::size_t> seen;
      const int tasks = p == Partition::slurm_array ? 2 : 1;
      const int ranks = p == Partition::dynamic ? 1 : 2;  // the dynamic queue is one process here
      for (int t = 0; t < tasks; ++t)
        for (int r = 0; r < ranks; ++r) {
          ScheduleSpec spec{p, o, {}};
          if (p == Partition::slurm_array) spec.task = ArrayTask{t, tasks};
          TileSource source(spec, plan, p == Partition::dynamic ? Comm::serial() : Comm::stand_in(r, ranks));
          while (const auto i = source.next()) seen.insert(*i);
        }
      EXPECT_EQ(seen.size(), plan.tiles.size());
      EXPECT_EQ(std::set<std::size_t>(seen.begin(), seen.end()).size(), plan.tiles.size());
    }
  EXPECT_NE(curve_order(plan.tiles, CurveOrder::hilbert), curve_order(plan.tiles, CurveOrder::morton));
}

TEST(Choices, EveryLogLevelSetsTheLogger) {
  const std::pair<LogLevel, spdlog::level::level_enum> expected[] = {{LogLevel::debug, spdlog::level::debug},
                                                                     {LogLevel::info, spdlog::level::info},
                                                                     {LogLevel::warn, spdlog::level::warn},
                                                                     {LogLevel::error, spdlog::level::err}};
  ASSERT_EQ(std::size(expected), choice_values<LogLevel>().size());
  for (const auto& [level, spd] : expected) {
    setup_logging(0, level);
    EXPECT_EQ(spdlog::default_logger()->level(), spd) << name_of(level);
  }
}

}  // namespace
}  // namespace eo
