#pragma once
// How the config's YAML is read and written back (pipeline/core/config.cpp's `bind` says
// which keys there are): a reader that names file, key path and line in every error, and
// three walkers of a binder, one reading, one writing, one collecting the keys.
// Private to config.cpp.

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>
#include <yaml-cpp/yaml.h>

#include "pipeline/core/config.hpp"

namespace eo::config_yaml {

inline std::size_t edit_distance(const std::string& a, const std::string& b) {
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

  template <class E>
  E choice(const YAML::Node& node, const std::string& path) const {
    const std::string v = string(node, path);
    if (const auto value = parse_choice<E>(v)) return *value;
    fail(node, path, choice_problem<E>(v));
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

inline bool valid_name(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

// The config's keys, each spelled once: `bind` walks every section with an Io that either
// reads the YAML (checking each value where it stands) or writes it back (to_yaml), or
// only collects the keys a mapping may hold (for the unknown-key check, made before any
// value is read). A section's own checks go through `check`, which only the reader acts on.

// Collects the keys a mapping may hold.
class KeyCollector {
 public:
  std::set<std::string> keys;
  template <class Fn>
  void section(const char* key, Fn&&) { keys.insert(key); }
  template <class T>
  void whole(const char* key, T&, long long, long long) { keys.insert(key); }
  void number(const char* key, double&, double, double) { keys.insert(key); }
  void flag(const char* key, bool&) { keys.insert(key); }
  template <class E>
  void choice(const char* key, E&) { keys.insert(key); }
  void text(const char* key, std::string&) { keys.insert(key); }
  void text(const char* key, std::filesystem::path&) { keys.insert(key); }
  void input_path(const char* key, std::filesystem::path&) { keys.insert(key); }
  void whole_list(const char* key, std::vector<int>&, long long, long long) { keys.insert(key); }
  void modalities(const char* key, std::vector<Modality>&) { keys.insert(key); }
  void resampling(const char* key, DataConfig&) { keys.insert(key); }
  void aois(const char* key, std::vector<AoiSpec>&) { keys.insert(key); }
  template <class Fn>
  void check(const char*, Fn&&) {}
};

// Reads one mapping of the YAML: every key present is read and checked, naming file,
// key path and line on error; a key absent keeps the default.
class YamlIn {
 public:
  YamlIn(const Reader& r, YAML::Node node, std::string path, const std::filesystem::path& base_dir)
      : r_(r), node_(std::move(node)), path_(std::move(path)), base_dir_(base_dir) {}

  // Reads `bind(io)` over this mapping: unknown keys first, then the values.
  template <class Bind>
  void read(Bind&& bind) {
    KeyCollector known;
    bind(known);
    r_.expect_map(node_, path_, known.keys);
    bind(*this);
  }

  template <class Fn>
  void section(const char* key, Fn&& bind) {
    if (const YAML::Node n = node_[key]) YamlIn(r_, n, at(key), base_dir_).read(bind);
  }
  template <class T>
  void whole(const char* key, T& v, long long lo, long long hi) {
    if (const YAML::Node n = node_[key]) v = static_cast<T>(r_.integer(n, at(key), lo, hi));
  }
  void number(const char* key, double& v, double lo, double hi) {
    if (const YAML::Node n = node_[key]) v = r_.number(n, at(key), lo, hi);
  }
  void flag(const char* key, bool& v) {
    if (const YAML::Node n = node_[key]) v = r_.boolean(n, at(key));
  }
  template <class E>
  void choice(const char* key, E& v) {
    if (const YAML::Node n = node_[key]) v = r_.choice<E>(n, at(key));
  }
  template <class E>
  void choice(const char* key, std::optional<E>& v) {
    if (const YAML::Node n = node_[key]) v = r_.choice<E>(n, at(key));
  }
  void text(const char* key, std::string& v) {
    if (const YAML::Node n = node_[key]) v = r_.string(n, at(key));
  }
  void text(const char* key, std::filesystem::path& v) {
    if (const YAML::Node n = node_[key]) v = r_.string(n, at(key));
  }
  // A file the run reads, relative to the config file's folder.
  void input_path(const char* key, std::filesystem::path& v) {
    if (const YAML::Node n = node_[key]) {
      const std::filesystem::path f = r_.string(n, at(key));
      v = f.is_absolute() ? f : base_dir_ / f;
    }
  }
  void whole_list(const char* key, std::vector<int>& v, long long lo, long long hi) {
    const YAML::Node n = node_[key];
    if (!n) return;
    if (!n.IsSequence() || n.size() == 0) r_.fail(n, at(key), "expected a list of training-set sizes");
    v.clear();
    for (std::size_t i = 0; i < n.size(); ++i)
      v.push_back(static_cast<int>(r_.integer(n[i], fmt::format("{}[{}]", at(key), i), lo, hi)));
  }
  void modalities(const char* key, std::vector<Modality>& v) {
    const YAML::Node m = node_[key];
    if (!m) return;
    if (!m.IsSequence() || m.size() == 0) r_.fail(m, at(key), "expected a list of s2rgb, s1amp, s1coh");
    v.clear();
    for (std::size_t i = 0; i < m.size(); ++i) {
      const std::string path = fmt::format("{}[{}]", at(key), i);
      const Modality mod = parse_modality(r_.choice(m[i], path, {"s2rgb", "s1amp", "s1coh"}));
      if (std::find(v.begin(), v.end(), mod) != v.end()) r_.fail(m[i], path, "listed twice");
      v.push_back(mod);
    }
  }
  void resampling(const char* key, DataConfig& data) {
    const YAML::Node rs = node_[key];
    if (!rs) return;
    r_.expect_map(rs, at(key), {"s2rgb", "s1amp", "s1coh", "worldcover", "treecover"});
    for (const auto& kv : rs) {
      const std::string name = kv.first.as<std::string>();
      data.resampling[parse_modality(name)] = r_.choice<Resampling>(kv.second, at(key) + "." + name);
    }
  }
  void aois(const char* key, std::vector<AoiSpec>& out) {
    const YAML::Node aois = node_[key];
    if (!aois) r_.fail(node_, at(key), "missing: give at least one area of interest");
    if (!aois.IsSequence() || aois.size() == 0) r_.fail(aois, at(key), "expected a list of at least one area of interest");
    std::set<std::string> names;
    for (std::size_t i = 0; i < aois.size(); ++i) {
      const YAML::Node a = aois[i];
      const std::string path = fmt::format("{}[{}]", at(key), i);
      r_.expect_map(a, path, {"name", "file", "wkt"});
      AoiSpec spec;
      spec.line = a.Mark().line + 1;
      if (!a["name"]) r_.fail(a, path + ".name", "missing");
      spec.name = r_.string(a["name"], path + ".name");
      if (!valid_name(spec.name)) r_.fail(a["name"], path + ".name", "use letters, digits, '_' and '-' only");
      if (!names.insert(spec.name).second) r_.fail(a["name"], path + ".name", fmt::format("'{}' is used twice", spec.name));
      if (a["file"].IsDefined() == a["wkt"].IsDefined()) r_.fail(a, path, "give exactly one of 'file' and 'wkt'");
      if (a["file"]) {
        const std::filesystem::path f = r_.string(a["file"], path + ".file");
        spec.file = f.is_absolute() ? f : base_dir_ / f;
        if (!std::filesystem::is_regular_file(spec.file))
          r_.fail(a["file"], path + ".file",
                  fmt::format("{}: {}", std::filesystem::exists(spec.file) ? "not a regular file (a FIFO, a device or a folder)"
                                                                           : "no such file",
                              spec.file.string()));
      } else {
        spec.wkt = r_.string(a["wkt"], path + ".wkt");
      }
      out.push_back(spec);
    }
    if (out.size() > 64) r_.fail(aois, at(key), fmt::format("{} areas given, at most 64", out.size()));
  }
  // `problem()` says what is wrong with the key's value just read, or nothing.
  template <class Fn>
  void check(const char* key, Fn&& problem) {
    if (const YAML::Node n = node_[key])
      if (const std::string what = problem(); !what.empty()) r_.fail(n, at(key), what);
  }

 private:
  std::string at(const char* key) const { return Reader::join(path_, key); }

  const Reader& r_;
  YAML::Node node_;
  std::string path_;
  const std::filesystem::path& base_dir_;
};

// Writes the config back as YAML that YamlIn reads: every key, defaults filled in, input
// paths absolute; optional keys left out when empty.
class YamlOut {
 public:
  explicit YamlOut(YAML::Emitter& out) : out_(out) {}

  template <class Fn>
  void section(const char* key, Fn&& bind) {
    out_ << YAML::Key << key << YAML::Value << YAML::BeginMap;
    bind(*this);
    out_ << YAML::EndMap;
  }
  template <class T>
  void whole(const char* key, T& v, long long, long long) { out_ << YAML::Key << key << YAML::Value << v; }
  void number(const char* key, double& v, double, double) { out_ << YAML::Key << key << YAML::Value << v; }
  void flag(const char* key, bool& v) { out_ << YAML::Key << key << YAML::Value << v; }
  template <class E>
  void choice(const char* key, E& v) { out_ << YAML::Key << key << YAML::Value << name_str(v); }
  template <class E>
  void choice(const char* key, std::optional<E>& v) {
    if (v) choice(key, *v);
  }
  void text(const char* key, std::string& v) {
    if (!v.empty()) out_ << YAML::Key << key << YAML::Value << v;
  }
  void text(const char* key, std::filesystem::path& v) { out_ << YAML::Key << key << YAML::Value << v.string(); }
  void input_path(const char* key, std::filesystem::path& v) {
    if (!v.empty()) out_ << YAML::Key << key << YAML::Value << std::filesystem::absolute(v).lexically_normal().string();
  }
  void whole_list(const char* key, std::vector<int>& v, long long, long long) {
    out_ << YAML::Key << key << YAML::Value << YAML::Flow << v;
  }
  void modalities(const char* key, std::vector<Modality>& v) {
    out_ << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (Modality m : v) out_ << info(m).name;
    out_ << YAML::EndSeq;
  }
  // Every modality's, the defaults too.
  void resampling(const char* key, DataConfig& data) {
    out_ << YAML::Key << key << YAML::Value << YAML::BeginMap;
    for (Modality m : {Modality::s2rgb, Modality::s1amp, Modality::s1coh, Modality::worldcover, Modality::treecover})
      out_ << YAML::Key << info(m).name << YAML::Value << name_str(data.resampling_of(m));
    out_ << YAML::EndMap;
  }
  void aois(const char* key, std::vector<AoiSpec>& v) {
    out_ << YAML::Key << key << YAML::Value << YAML::BeginSeq;
    for (const AoiSpec& a : v) {
      out_ << YAML::BeginMap << YAML::Key << "name" << YAML::Value << a.name;
      if (a.wkt.empty())
        out_ << YAML::Key << "file" << YAML::Value << std::filesystem::absolute(a.file).lexically_normal().string();
      else
        out_ << YAML::Key << "wkt" << YAML::Value << a.wkt;
      out_ << YAML::EndMap;
    }
    out_ << YAML::EndSeq;
  }
  template <class Fn>
  void check(const char*, Fn&&) {}

 private:
  YAML::Emitter& out_;
};

}  // namespace eo::config_yaml
