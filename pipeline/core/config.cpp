// Over 400 lines: every section's keys are read (with checks naming file, key and line)
// and written back (to_yaml) here. Reading and writing a section are still two functions
// that spell each key; one binder per section serving both (TensorStore-style) is the
// planned cut (docs/decisions.md, 2026-11-30).
#include "pipeline/core/config.hpp"

#include "pipeline/core/hash.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <fstream>
#include <set>
#include <sstream>
#include <yaml-cpp/yaml.h>

namespace eo {
namespace {

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// Walks the YAML tree keeping the key path, so that every message can say where.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const YAML::Node& node, const std::string& path, const std::string& what) const {
    const int line = node.IsDefined() && node.Mark().line >= 0 ? node.Mark().line + 1 : 0;
    const std::string where = path.empty() ? "(top level)" : path;
    if (line > 0) throw ConfigError(fmt::format("{}:{}: {}: {}", source_, line, where, what));
    throw ConfigError(fmt::format("{}: {}: {}", source_, where, what));
  }

  void expect_map(const YAML::Node& node, const std::string& path, const std::set<std::string>& known) const {
    if (!node.IsMap()) fail(node, path, "expected a mapping of keys");
    for (const auto& kv : node) {
      const std::string key = kv.first.as<std::string>();
      if (known.count(key)) continue;
      std::string hint;
      for (const std::string& k : known)
        if (edit_distance(key, k) <= 2) hint = fmt::format(" (did you mean '{}'?)", k);
      std::string list;
      for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
      fail(kv.first, join(path, key), fmt::format("unknown key{}; known keys here: {}", hint, list));
    }
  }

  static std::string join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }

  std::string string(const YAML::Node& node, const std::string& path) const {
    if (!node.IsScalar()) fail(node, path, "expected a text value");
    return node.Scalar();
  }

  std::string choice(const YAML::Node& node, const std::string& path, const std::vector<std::string>& allowed) const {
    const std::string v = string(node, path);
    if (std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      fail(node, path, fmt::format("'{}' is not one of: {}", v, list));
    }
    return v;
  }

  bool boolean(const YAML::Node& node, const std::string& path) const {
    const std::string v = string(node, path);
    if (v == "true" || v == "yes" || v == "on") return true;
    if (v == "false" || v == "no" || v == "off") return false;
    fail(node, path, fmt::format("expected true or false, got '{}'", v));
  }

  long long integer(const YAML::Node& node, const std::string& path, long long lo, long long hi) const {
    if (!node.IsScalar()) fail(node, path, "expected a whole number");
    long long v = 0;
    std::istringstream in(node.Scalar());
    in >> v;
    if (in.fail() || !in.eof()) fail(node, path, fmt::format("expected a whole number, got '{}'", node.Scalar()));
    if (v < lo || v > hi) fail(node, path, fmt::format("{} is out of range [{}, {}]", node.Scalar(), lo, hi));
    return v;
  }

  double number(const YAML::Node& node, const std::string& path, double lo, double hi) const {
    if (!node.IsScalar()) fail(node, path, "expected a number");
    double v = 0;
    std::istringstream in(node.Scalar());
    in >> v;
    if (in.fail() || !in.eof() || !std::isfinite(v))
      fail(node, path, fmt::format("expected a number, got '{}'", node.Scalar()));
    if (v < lo || v > hi) fail(node, path, fmt::format("{} is out of range [{}, {}]", node.Scalar(), lo, hi));
    return v;
  }

 private:
  std::string source_;
};

const std::vector<std::string> kPartitions = {"static", "dynamic", "slurm-array"};
const std::vector<std::string> kOrders = {"hilbert", "morton"};
const std::vector<std::string> kLevels = {"debug", "info", "warn", "error"};

bool valid_name(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

}  // namespace

Config parse_config(const std::string& text, const std::string& source, const std::filesystem::path& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}:{}: not valid YAML: {}", source, e.mark.line + 1, e.msg));
  }
  Reader r(source);
  Config c;
  c.source = source;
  if (!root.IsDefined() || root.IsNull()) throw ConfigError(fmt::format("{}: the config is empty", source));
  r.expect_map(root, "", {"name", "output", "grid", "aois", "schedule", "logging", "data", "warp", "synth", "prepare",
                          "model", "pretrain", "run", "fewshot"});

  if (root["name"]) {
    c.name = r.string(root["name"], "name");
    if (!valid_name(c.name)) r.fail(root["name"], "name", "use letters, digits, '_' and '-' only");
  }
  if (root["output"]) c.output = r.string(root["output"], "output");

  if (const YAML::Node grid = root["grid"]) {
    r.expect_map(grid, "grid", {"pixel_size"});
    if (grid["pixel_size"]) {
      c.pixel_size = r.number(grid["pixel_size"], "grid.pixel_size", 1, 4480);
      const double px = 4480.0 / c.pixel_size;
      if (std::abs(px - std::round(px)) > 1e-9)
        r.fail(grid["pixel_size"], "grid.pixel_size",
               fmt::format("{} m does not divide the 4480 m chip into whole pixels (use 10, 20, 40, 80, ...)",
                           grid["pixel_size"].Scalar()));
    }
  }

  const YAML::Node aois = root["aois"];
  if (!aois) r.fail(root, "aois", "missing: give at least one area of interest");
  if (!aois.IsSequence() || aois.size() == 0) r.fail(aois, "aois", "expected a list of at least one area of interest");
  std::set<std::string> names;
  for (std::size_t i = 0; i < aois.size(); ++i) {
    const YAML::Node a = aois[i];
    const std::string path = fmt::format("aois[{}]", i);
    r.expect_map(a, path, {"name", "file", "wkt"});
    AoiSpec spec;
    spec.line = a.Mark().line + 1;
    if (!a["name"]) r.fail(a, path + ".name", "missing");
    spec.name = r.string(a["name"], path + ".name");
    if (!valid_name(spec.name)) r.fail(a["name"], path + ".name", "use letters, digits, '_' and '-' only");
    if (!names.insert(spec.name).second) r.fail(a["name"], path + ".name", fmt::format("'{}' is used twice", spec.name));
    if (a["file"].IsDefined() == a["wkt"].IsDefined()) r.fail(a, path, "give exactly one of 'file' and 'wkt'");
    if (a["file"]) {
      const std::filesystem::path f = r.string(a["file"], path + ".file");
      spec.file = f.is_absolute() ? f : base_dir / f;
      if (!std::filesystem::is_regular_file(spec.file))
        r.fail(a["file"], path + ".file", fmt::format("no such file: {}", spec.file.string()));
    } else {
      spec.wkt = r.string(a["wkt"], path + ".wkt");
    }
    c.aois.push_back(spec);
  }
  if (c.aois.size() > 64) r.fail(aois, "aois", fmt::format("{} areas given, at most 64", c.aois.size()));

  if (const YAML::Node s = root["schedule"]) {
    r.expect_map(s, "schedule", {"partition", "order"});
    if (s["partition"]) c.partition = r.choice(s["partition"], "schedule.partition", kPartitions);
    if (s["order"]) c.order = r.choice(s["order"], "schedule.order", kOrders);
  }
  if (const YAML::Node d = root["data"]) {
    r.expect_map(d, "data", {"catalog", "modalities", "min_valid_fraction", "resampling", "normalisation_files"});
    if (d["catalog"]) {
      const std::filesystem::path f = r.string(d["catalog"], "data.catalog");
      // Checked when a command reads it: `synth` writes the catalog it names.
      c.data.catalog = f.is_absolute() ? f : base_dir / f;
    }
    if (const YAML::Node m = d["modalities"]) {
      if (!m.IsSequence() || m.size() == 0) r.fail(m, "data.modalities", "expected a list of s2rgb, s1amp, s1coh");
      c.data.modalities.clear();
      for (std::size_t i = 0; i < m.size(); ++i) {
        const std::string path = fmt::format("data.modalities[{}]", i);
        const Modality mod = parse_modality(r.choice(m[i], path, {"s2rgb", "s1amp", "s1coh"}));
        if (std::find(c.data.modalities.begin(), c.data.modalities.end(), mod) != c.data.modalities.end())
          r.fail(m[i], path, "listed twice");
        c.data.modalities.push_back(mod);
      }
    }
    if (d["min_valid_fraction"]) c.data.min_valid_fraction = r.number(d["min_valid_fraction"], "data.min_valid_fraction", 0, 1);
    if (d["normalisation_files"])
      c.data.normalisation_files = r.integer(d["normalisation_files"], "data.normalisation_files", 1, 100000);
    if (const YAML::Node rs = d["resampling"]) {
      r.expect_map(rs, "data.resampling", {"s2rgb", "s1amp", "s1coh", "worldcover", "treecover"});
      for (const auto& kv : rs) {
        const std::string key = kv.first.as<std::string>();
        c.data.resampling[parse_modality(key)] =
            r.choice(kv.second, "data.resampling." + key, {"nearest", "bilinear", "cubic", "average", "mode"});
      }
    }
  }
  if (const YAML::Node w = root["warp"]) {
    r.expect_map(w, "warp", {"threads", "cache_mb", "memory_mb"});
    if (w["threads"]) c.warp.threads = r.integer(w["threads"], "warp.threads", 0, 1024);
    if (w["cache_mb"]) c.warp.cache_mb = r.integer(w["cache_mb"], "warp.cache_mb", 16, 1 << 20);
    if (w["memory_mb"]) c.warp.memory_mb = r.integer(w["memory_mb"], "warp.memory_mb", 16, 1 << 20);
  }
  if (const YAML::Node s = root["synth"]) {
    r.expect_map(s, "synth", {"seed", "resolution_scale", "s1_tile_deg", "missing_fraction", "cloud_fraction", "acquisition_effects",
                              "year", "output"});
    if (s["seed"]) c.synth.seed = static_cast<std::uint64_t>(r.integer(s["seed"], "synth.seed", 0, 1LL << 53));
    if (s["resolution_scale"]) c.synth.resolution_scale = r.integer(s["resolution_scale"], "synth.resolution_scale", 1, 64);
    if (s["s1_tile_deg"]) c.synth.s1_tile_deg = r.number(s["s1_tile_deg"], "synth.s1_tile_deg", 0.05, 5);
    if (s["missing_fraction"]) c.synth.missing_fraction = r.number(s["missing_fraction"], "synth.missing_fraction", 0, 0.9);
    if (s["cloud_fraction"]) c.synth.cloud_fraction = r.number(s["cloud_fraction"], "synth.cloud_fraction", 0, 0.9);
    if (s["acquisition_effects"])
      c.synth.acquisition_effects = r.number(s["acquisition_effects"], "synth.acquisition_effects", 0, 1);
    if (s["year"]) c.synth.year = r.integer(s["year"], "synth.year", 2014, 2100);
    if (s["output"]) c.synth.output = r.string(s["output"], "synth.output");
  }
  if (const YAML::Node p = root["prepare"]) {
    r.expect_map(p, "prepare", {"max_attempts"});
    if (p["max_attempts"]) c.prepare.max_attempts = r.integer(p["max_attempts"], "prepare.max_attempts", 1, 100);
  }
  if (const YAML::Node m = root["model"]) {
    r.expect_map(m, "model", {"preset", "input", "pooling", "channel_embed", "device", "bf16", "checkpoint",
                                  "torchscript"});
    if (m["preset"]) c.model.preset = r.choice(m["preset"], "model.preset", {"nano", "tiny", "small", "base", "paper"});
    if (m["input"]) {
      c.model.input = static_cast<int>(r.integer(m["input"], "model.input", 0, 4096));  // 0: the preset's
      if (c.model.input % 16 != 0) r.fail(m["input"], "model.input", "must be a multiple of the 16 px patch");
    }
    if (m["pooling"]) c.model.pooling = r.choice(m["pooling"], "model.pooling", {"cls", "mean"});
    if (m["channel_embed"]) c.model.channel_embed = r.boolean(m["channel_embed"], "model.channel_embed");
    if (m["device"]) c.model.device = r.choice(m["device"], "model.device", {"cpu", "cuda"});
    if (m["bf16"]) c.model.bf16 = r.boolean(m["bf16"], "model.bf16");
    if (m["checkpoint"]) {
      const std::filesystem::path f = r.string(m["checkpoint"], "model.checkpoint");
      c.model.checkpoint = f.is_absolute() ? f : base_dir / f;
    }
    if (m["torchscript"]) {
      const std::filesystem::path f = r.string(m["torchscript"], "model.torchscript");
      c.model.torchscript = f.is_absolute() ? f : base_dir / f;
      if (m["checkpoint"]) r.fail(m["torchscript"], "model.torchscript", "give model.checkpoint or model.torchscript, not both");
    }
  }
  if (const YAML::Node u = root["run"]) {
    r.expect_map(u, "run", {"dtype", "batch", "threads", "max_attempts", "prefetch", "cube"});
    if (u["dtype"]) c.run.dtype = r.choice(u["dtype"], "run.dtype", {"float32", "float16", "int8"});
    if (u["batch"]) c.run.batch = static_cast<int>(r.integer(u["batch"], "run.batch", 1, 65536));
    if (u["threads"]) c.run.threads = static_cast<int>(r.integer(u["threads"], "run.threads", 0, 1024));
    if (u["max_attempts"]) c.run.max_attempts = static_cast<int>(r.integer(u["max_attempts"], "run.max_attempts", 1, 100));
    if (u["prefetch"]) c.run.prefetch = r.boolean(u["prefetch"], "run.prefetch");
    if (u["cube"]) c.run.cube = r.string(u["cube"], "run.cube");
  }
  if (const YAML::Node f = root["fewshot"]) {
    r.expect_map(f, "fewshot", {"sizes", "seeds", "split_angle", "stripes", "presence_threshold", "min_label_valid"});
    if (const YAML::Node n = f["sizes"]) {
      if (!n.IsSequence() || n.size() == 0) r.fail(n, "fewshot.sizes", "expected a list of training-set sizes");
      c.fewshot.sizes.clear();
      for (std::size_t i = 0; i < n.size(); ++i)
        c.fewshot.sizes.push_back(static_cast<int>(r.integer(n[i], fmt::format("fewshot.sizes[{}]", i), 2, 100000000)));
    }
    if (f["seeds"]) c.fewshot.seeds = static_cast<int>(r.integer(f["seeds"], "fewshot.seeds", 1, 1000));
    if (f["split_angle"]) c.fewshot.split_angle = r.number(f["split_angle"], "fewshot.split_angle", -360, 360);
    if (f["stripes"]) {
      c.fewshot.stripes = static_cast<int>(r.integer(f["stripes"], "fewshot.stripes", 5, 100000));
      if (c.fewshot.stripes % 5 != 0) r.fail(f["stripes"], "fewshot.stripes", "expected a multiple of 5 (3 train, 1 validation, 1 test)");
    }
    if (f["presence_threshold"])
      c.fewshot.presence_threshold = r.number(f["presence_threshold"], "fewshot.presence_threshold", 0, 1);
    if (f["min_label_valid"]) c.fewshot.min_label_valid = r.number(f["min_label_valid"], "fewshot.min_label_valid", 0, 1);
  }
  if (const YAML::Node p = root["pretrain"]) {
    r.expect_map(p, "pretrain", {"batch", "steps", "lr", "weight_decay", "warmup", "clip", "augment", "crop_min", "checkpoint_every",
                                 "threads", "seed"});
    if (p["batch"]) c.pretrain.batch = static_cast<int>(r.integer(p["batch"], "pretrain.batch", 2, 65536));
    if (p["steps"]) c.pretrain.steps = static_cast<int>(r.integer(p["steps"], "pretrain.steps", 1, 100000000));
    if (p["lr"]) c.pretrain.lr = r.number(p["lr"], "pretrain.lr", 0, 1);
    if (p["weight_decay"]) c.pretrain.weight_decay = r.number(p["weight_decay"], "pretrain.weight_decay", 0, 10);
    if (p["warmup"]) c.pretrain.warmup = static_cast<int>(r.integer(p["warmup"], "pretrain.warmup", 1, 100000000));
    if (p["clip"]) c.pretrain.clip = r.number(p["clip"], "pretrain.clip", 0, 1e6);
    if (p["augment"]) c.pretrain.augment = r.boolean(p["augment"], "pretrain.augment");
    if (p["crop_min"]) c.pretrain.crop_min = r.number(p["crop_min"], "pretrain.crop_min", 0.1, 1);
    if (p["checkpoint_every"])
      c.pretrain.checkpoint_every = static_cast<int>(r.integer(p["checkpoint_every"], "pretrain.checkpoint_every", 1, 100000000));
    if (p["threads"]) c.pretrain.threads = static_cast<int>(r.integer(p["threads"], "pretrain.threads", 0, 1024));
    if (p["seed"]) c.pretrain.seed = static_cast<std::uint64_t>(r.integer(p["seed"], "pretrain.seed", 0, 1LL << 53));
  }
  if (const YAML::Node l = root["logging"]) {
    r.expect_map(l, "logging", {"level"});
    if (l["level"]) c.log_level = r.choice(l["level"], "logging.level", kLevels);
  }
  return c;
}

Config load_config(const std::filesystem::path& file) {
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

std::string to_yaml(const Config& c) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << c.name;
  out << YAML::Key << "output" << YAML::Value << c.output.string();
  out << YAML::Key << "grid" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "pixel_size" << YAML::Value << c.pixel_size;
  out << YAML::EndMap;
  out << YAML::Key << "aois" << YAML::Value << YAML::BeginSeq;
  for (const AoiSpec& a : c.aois) {
    out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << a.name;
    if (a.wkt.empty())
      out << YAML::Key << "file" << YAML::Value << std::filesystem::absolute(a.file).lexically_normal().string();
    else
      out << YAML::Key << "wkt" << YAML::Value << a.wkt;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::Key << "schedule" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "partition" << YAML::Value << c.partition;
  out << YAML::Key << "order" << YAML::Value << c.order;
  out << YAML::EndMap;
  out << YAML::Key << "data" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "catalog" << YAML::Value << std::filesystem::absolute(c.catalog_path()).lexically_normal().string();
  out << YAML::Key << "modalities" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (Modality m : c.data.modalities) out << info(m).name;
  out << YAML::EndSeq;
  out << YAML::Key << "min_valid_fraction" << YAML::Value << c.data.min_valid_fraction;
  out << YAML::Key << "resampling" << YAML::Value << YAML::BeginMap;
  for (Modality m : {Modality::s2rgb, Modality::s1amp, Modality::s1coh, Modality::worldcover, Modality::treecover})
    out << YAML::Key << info(m).name << YAML::Value << c.resampling(m);
  out << YAML::EndMap;
  out << YAML::Key << "normalisation_files" << YAML::Value << c.data.normalisation_files;
  out << YAML::EndMap;
  out << YAML::Key << "warp" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "threads" << YAML::Value << c.warp.threads;
  out << YAML::Key << "cache_mb" << YAML::Value << c.warp.cache_mb;
  out << YAML::Key << "memory_mb" << YAML::Value << c.warp.memory_mb;
  out << YAML::EndMap;
  out << YAML::Key << "synth" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "seed" << YAML::Value << c.synth.seed;
  out << YAML::Key << "resolution_scale" << YAML::Value << c.synth.resolution_scale;
  out << YAML::Key << "s1_tile_deg" << YAML::Value << c.synth.s1_tile_deg;
  out << YAML::Key << "missing_fraction" << YAML::Value << c.synth.missing_fraction;
  out << YAML::Key << "cloud_fraction" << YAML::Value << c.synth.cloud_fraction;
  out << YAML::Key << "acquisition_effects" << YAML::Value << c.synth.acquisition_effects;
  out << YAML::Key << "year" << YAML::Value << c.synth.year;
  out << YAML::Key << "output" << YAML::Value << c.world_dir().string();
  out << YAML::EndMap;
  out << YAML::Key << "prepare" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "max_attempts" << YAML::Value << c.prepare.max_attempts;
  out << YAML::EndMap;
  out << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "preset" << YAML::Value << c.model.preset;
  out << YAML::Key << "input" << YAML::Value << c.model.input;
  if (!c.model.pooling.empty()) out << YAML::Key << "pooling" << YAML::Value << c.model.pooling;
  out << YAML::Key << "channel_embed" << YAML::Value << c.model.channel_embed;
  out << YAML::Key << "device" << YAML::Value << c.model.device;
  out << YAML::Key << "bf16" << YAML::Value << c.model.bf16;
  if (!c.model.checkpoint.empty())
    out << YAML::Key << "checkpoint" << YAML::Value << std::filesystem::absolute(c.model.checkpoint).lexically_normal().string();
  if (!c.model.torchscript.empty())
    out << YAML::Key << "torchscript" << YAML::Value << std::filesystem::absolute(c.model.torchscript).lexically_normal().string();
  out << YAML::EndMap;
  out << YAML::Key << "run" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "dtype" << YAML::Value << c.run.dtype << YAML::Key << "batch" << YAML::Value << c.run.batch;
  out << YAML::Key << "threads" << YAML::Value << c.run.threads;
  out << YAML::Key << "max_attempts" << YAML::Value << c.run.max_attempts;
  out << YAML::Key << "prefetch" << YAML::Value << c.run.prefetch;
  out << YAML::Key << "cube" << YAML::Value << c.run.cube.string();
  out << YAML::EndMap;
  out << YAML::Key << "fewshot" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "sizes" << YAML::Value << YAML::Flow << c.fewshot.sizes;
  out << YAML::Key << "seeds" << YAML::Value << c.fewshot.seeds;
  out << YAML::Key << "split_angle" << YAML::Value << c.fewshot.split_angle;
  out << YAML::Key << "stripes" << YAML::Value << c.fewshot.stripes;
  out << YAML::Key << "presence_threshold" << YAML::Value << c.fewshot.presence_threshold;
  out << YAML::Key << "min_label_valid" << YAML::Value << c.fewshot.min_label_valid;
  out << YAML::EndMap;
  const PretrainConfig& p = c.pretrain;
  out << YAML::Key << "pretrain" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "batch" << YAML::Value << p.batch << YAML::Key << "steps" << YAML::Value << p.steps;
  out << YAML::Key << "lr" << YAML::Value << p.lr << YAML::Key << "weight_decay" << YAML::Value << p.weight_decay;
  out << YAML::Key << "warmup" << YAML::Value << p.warmup << YAML::Key << "clip" << YAML::Value << p.clip;
  out << YAML::Key << "augment" << YAML::Value << p.augment << YAML::Key << "crop_min" << YAML::Value << p.crop_min;
  out << YAML::Key << "checkpoint_every" << YAML::Value << p.checkpoint_every;
  out << YAML::Key << "threads" << YAML::Value << p.threads << YAML::Key << "seed" << YAML::Value << p.seed;
  out << YAML::EndMap;
  out << YAML::Key << "logging" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "level" << YAML::Value << c.log_level;
  out << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace eo

namespace eo {

std::string Config::resampling(Modality m) const {
  const auto it = data.resampling.find(m);
  return it != data.resampling.end() ? it->second : info(m).resampling;
}

std::string config_hash(const Config& c) {
  Hasher h;
  h.add("grid").add(fmt::format("{}", c.pixel_size));
  for (Modality m : c.data.modalities) h.add(info(m).name).add(c.resampling(m));
  h.add(fmt::format("{}", c.data.min_valid_fraction));
  return h.hex();
}

}  // namespace eo
