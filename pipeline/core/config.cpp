#include "pipeline/core/config.hpp"

#include "pipeline/core/config_yaml.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/grid.hpp"
#include "pipeline/core/hash.hpp"

#include <cmath>
#include <fmt/format.h>
#include <fstream>
#include <sstream>
#include <yaml-cpp/yaml.h>

namespace eo {
namespace {

using namespace config_yaml;

// Every key of the config, in the order the resolved config lists them.
template <class Io>
void bind(Io& io, Config& c) {
  io.text("name", c.name);
  io.check("name", [&] { return valid_name(c.name) ? "" : "use letters, digits, '_' and '-' only"; });
  io.text("output", c.output);
  io.section("grid", [&](auto& g) {
    g.number("pixel_size", c.pixel_size, 1, 4480);
    g.check("pixel_size", [&]() -> std::string {
      const double px = 4480.0 / c.pixel_size;
      if (std::abs(px - std::round(px)) > 1e-9)
        return fmt::format("{} m does not divide the 4480 m chip into whole pixels (use 10, 20, 40, 80, ...)", c.pixel_size);
      // Finer than this only interpolates, and memory grows with the square: refused
      // before a warp tries it.
      constexpr double kFinest = 10.0 / 4;
      if (c.pixel_size < kFinest)
        return fmt::format("{} m is finer than {} m, a quarter of Sentinel-2's 10 m (the finest source eo-pipeline reads): "
                           "a chip would be {:.0f}x{:.0f} pixels, {:.1f} GB per channel for a row of {} chips, all of it "
                           "interpolated. Use 10 m (the paper's) or coarser",
                           c.pixel_size, kFinest, px, px, px * px * 4 * kChipsPerTileSide / 1e9, kChipsPerTileSide);
      return "";
    });
  });
  io.aois("aois", c.aois);
  io.section("schedule", [&](auto& s) {
    s.choice("partition", c.partition);
    s.choice("order", c.order);
  });
  io.section("data", [&](auto& d) {
    // Checked when a command reads it: `synth` writes the catalog it names.
    d.input_path("catalog", c.data.catalog);
    d.modalities("modalities", c.data.modalities);
    d.number("min_valid_fraction", c.data.min_valid_fraction, 0, 1);
    d.resampling("resampling", c.data);
    d.whole("normalisation_files", c.data.normalisation_files, 1, 100000);
  });
  io.section("warp", [&](auto& w) {
    w.whole("threads", c.warp.threads, 0, 1024);
    w.whole("cache_mb", c.warp.cache_mb, 16, 1 << 20);
    w.whole("memory_mb", c.warp.memory_mb, 16, 1 << 20);
  });
  io.section("synth", [&](auto& s) {
    s.whole("seed", c.synth.seed, 0, 1LL << 53);
    s.whole("resolution_scale", c.synth.resolution_scale, 1, 64);
    s.number("s1_tile_deg", c.synth.s1_tile_deg, 0.05, 5);
    s.number("missing_fraction", c.synth.missing_fraction, 0, 0.9);
    s.number("cloud_fraction", c.synth.cloud_fraction, 0, 0.9);
    s.number("acquisition_effects", c.synth.acquisition_effects, 0, 1);
    s.whole("year", c.synth.year, 2014, 2100);
    s.text("output", c.synth.output);
    s.choice("layout", c.synth.layout);
    s.whole("s2_scenes", c.synth.s2_scenes, 1, 30);
    s.whole("s1_scenes", c.synth.s1_scenes, 1, 30);
  });
  io.section("prepare", [&](auto& p) {
    p.whole("max_attempts", c.prepare.max_attempts, 1, 100);
    p.choice("compression", c.prepare.compression);
  });
  io.section("model", [&](auto& m) {
    m.choice("preset", c.model.preset);
    m.whole("input", c.model.input, 0, 4096);  // 0: the preset's
    m.check("input", [&] { return c.model.input % 16 == 0 ? "" : "must be a multiple of the 16 px patch"; });
    m.whole("dim", c.model.dim, 0, 4096);  // 0: the preset's
    m.whole("depth", c.model.depth, 0, 64);
    m.whole("embed", c.model.embed, 0, 4096);
    m.choice("pooling", c.model.pooling);
    m.flag("channel_embed", c.model.channel_embed);
    m.flag("channel_proj", c.model.channel_proj);
    m.number("reconstruction", c.model.reconstruction, 0, 1000);
    m.whole("reconstruction_grid", c.model.reconstruction_grid, 1, 64);
    m.flag("reconstruction_spread", c.model.reconstruction_spread);
    m.flag("reconstruction_standardised", c.model.reconstruction_standardised);
    m.number("chip_statistics", c.model.chip_statistics, 0, 1000);
    m.choice("device", c.model.device);
    m.flag("bf16", c.model.bf16);
    m.input_path("checkpoint", c.model.checkpoint);
    m.input_path("torchscript", c.model.torchscript);
    m.check("torchscript", [&] {
      return c.model.checkpoint.empty() ? "" : "give model.checkpoint or model.torchscript, not both";
    });
  });
  io.section("run", [&](auto& r) {
    r.choice("dtype", c.run.dtype);
    r.whole("batch", c.run.batch, 1, 65536);
    r.whole("threads", c.run.threads, 0, 1024);
    r.whole("max_attempts", c.run.max_attempts, 1, 100);
    r.flag("prefetch", c.run.prefetch);
    r.choice("batching", c.run.batching);
    r.choice("inputs", c.run.inputs);
    r.text("cube", c.run.cube);
  });
  io.section("fewshot", [&](auto& f) {
    f.whole_list("sizes", c.fewshot.sizes, 2, 100000000);
    f.whole("seeds", c.fewshot.seeds, 1, 1000);
    f.number("split_angle", c.fewshot.split_angle, -360, 360);
    f.whole("stripes", c.fewshot.stripes, 5, 100000);
    f.check("stripes", [&] {
      return c.fewshot.stripes % 5 == 0 ? "" : "expected a multiple of 5 (3 train, 1 validation, 1 test)";
    });
    f.number("presence_threshold", c.fewshot.presence_threshold, 0, 1);
    f.number("min_label_valid", c.fewshot.min_label_valid, 0, 1);
    f.whole("max_bin", c.fewshot.max_bin, 2, 65536);
  });
  io.section("pretrain", [&](auto& p) {
    PretrainConfig& t = c.pretrain;
    p.whole("batch", t.batch, 2, 65536);
    p.whole("steps", t.steps, 1, 100000000);
    p.number("lr", t.lr, 0, 1);
    p.number("weight_decay", t.weight_decay, 0, 10);
    p.whole("warmup", t.warmup, 1, 100000000);
    p.number("clip", t.clip, 0, 1e6);
    p.flag("augment", t.augment);
    p.number("crop_min", t.crop_min, 0.1, 1);
    p.whole("checkpoint_every", t.checkpoint_every, 1, 100000000);
    p.whole("threads", t.threads, 0, 1024);
    p.whole("seed", t.seed, 0, 1LL << 53);
  });
  io.section("logging", [&](auto& l) { l.choice("level", c.log_level); });
}

}  // namespace

Config parse_config(const std::string& text, const std::string& source, const std::filesystem::path& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}:{}: not valid YAML: {}", source, e.mark.line + 1, e.msg));
  }
  if (!root.IsDefined() || root.IsNull()) throw ConfigError(fmt::format("{}: the config is empty", source));
  Config c;
  c.source = source;
  const Reader r(source);
  YamlIn(r, root, "", base_dir).read([&](auto& io) { bind(io, c); });
  return c;
}

Config load_config(const std::filesystem::path& file) {
  try {
    require_regular_file(file);
  } catch (const std::runtime_error& e) {
    throw ConfigError(e.what());
  }
  std::ifstream in(file);
  if (!in) throw ConfigError(fmt::format("{}: cannot open the config file", file.string()));
  std::stringstream buf;
  buf << in.rdbuf();
  return parse_config(buf.str(), file.string(), file.parent_path());
}

Config load_config_or_demo(const std::string& file) {
  if (file.empty()) return parse_config(embedded_demo_config(), kEmbeddedDemoName, std::filesystem::current_path());
  return load_config(file);
}

std::vector<Aoi> load_aois(const Config& config) {
  std::vector<Aoi> out;
  for (std::size_t i = 0; i < config.aois.size(); ++i) {
    const AoiSpec& spec = config.aois[i];
    try {
      out.push_back(spec.wkt.empty() ? load_aoi(spec.file, spec.name)
                                     : aoi_from_wkt(spec.wkt, spec.name, fmt::format("'{}' (inline WKT)", spec.name)));
    } catch (const std::exception& e) {
      throw ConfigError(fmt::format("{}:{}: aois[{}]: {}", config.source, spec.line, i, e.what()));
    }
  }
  return out;
}

std::string to_yaml(const Config& config) {
  Config c = config;  // with the defaults that depend on other keys written out
  c.data.catalog = config.catalog_path();
  c.synth.output = config.world_dir();
  YAML::Emitter out;
  YamlOut io(out);
  out << YAML::BeginMap;
  bind(io, c);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace eo

namespace eo {

Resampling DataConfig::resampling_of(Modality m) const {
  const auto it = resampling.find(m);
  return it != resampling.end() ? it->second : info(m).resampling;
}

std::string config_hash(const Config& c) {
  Hasher h;
  h.add("grid").add(fmt::format("{}", c.pixel_size));
  for (Modality m : c.data.modalities) h.add(info(m).name).add(name_str(c.resampling(m)));
  h.add(fmt::format("{}", c.data.min_valid_fraction));
  return h.hex();
}

}  // namespace eo
