#pragma once
// The run configuration: a plain spec struct read from YAML, checked completely before
// any work starts. Every error names the file, the key path and the line.

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "pipeline/aoi.hpp"

namespace eo {

// A configuration problem; the CLI prints what() and exits with code 2.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct AoiSpec {
  std::string name;
  std::filesystem::path file;  // resolved against the config file's folder
  std::string wkt;             // inline alternative to file
  int line = 0;                // where the entry starts, for messages
};

struct Config {
  std::string source;                  // config file, or "<embedded demo.yaml>"
  std::string name = "eo-run";
  std::filesystem::path output = "out";  // relative to the working directory
  double pixel_size = 10.0;            // metres; 4480 must be a whole multiple
  std::vector<AoiSpec> aois;
  std::string partition = "static";    // static | dynamic | slurm-array
  std::string order = "hilbert";       // hilbert | morton
  std::string log_level = "info";      // debug | info | warn | error

  int chip_pixels() const { return static_cast<int>(4480.0 / pixel_size + 0.5); }
};

// The embedded default, configs/demo.yaml compiled into the executable.
const std::string& embedded_demo_config();
inline constexpr const char* kEmbeddedDemoName = "<embedded demo.yaml>";

// Parse and check. `base_dir` resolves relative input paths.
Config parse_config(const std::string& text, const std::string& source, const std::filesystem::path& base_dir);
Config load_config(const std::filesystem::path& file);
// The embedded demo when `file` is empty.
Config load_config_or_demo(const std::string& file);

// Reads every AOI of the config; ConfigError names the config key and line on failure.
std::vector<Aoi> load_aois(const Config& config);

// The resolved config, defaults filled in, as YAML that parse_config reads back.
std::string to_yaml(const Config& config);

}  // namespace eo
