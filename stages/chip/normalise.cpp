#include "stages/chip/normalise.hpp"

#include <cmath>
#include <memory>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "pipeline/core/error.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/hash.hpp"
#include "stages/ingest/remote.hpp"
#include "stages/reproject/warp.hpp"

namespace eo {

std::string Normalisation::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [m, stats] : channels) {
    nlohmann::json mean = nlohmann::json::array(), std = nlohmann::json::array(), names = nlohmann::json::array();
    for (std::size_t c = 0; c < stats.size(); ++c) {
      mean.push_back(stats[c].mean);
      std.push_back(stats[c].std);
      names.push_back(info(m).channel_name(static_cast<int>(c)));
    }
    j[info(m).name] = {{"channels", names}, {"mean", mean}, {"std", std}};
  }
  return j.dump(2);
}

Normalisation Normalisation::from_json(const std::string& text, const std::string& source) {
  Normalisation n;
  try {
    const auto j = nlohmann::json::parse(text);
    for (const auto& [name, v] : j.items()) {
      const Modality m = parse_modality(name);
      const auto mean = v.at("mean").get<std::vector<double>>(), std = v.at("std").get<std::vector<double>>();
      if (mean.size() != std.size() || static_cast<int>(mean.size()) != info(m).channels())
        throw std::invalid_argument(fmt::format("{} needs {} channels", name, info(m).channels()));
      for (std::size_t c = 0; c < mean.size(); ++c) n.channels[m].push_back({mean[c], std[c]});
    }
  } catch (const std::exception& e) {
    throw StageError("chip", fmt::format("normalisation {}: {}", source, e.what()));
  }
  return n;
}

std::string Normalisation::hash() const { return Hasher().add(to_json()).hex(); }

void Normalisation::save(const std::filesystem::path& file) const { write_atomically(file, to_json() + "\n"); }

Normalisation Normalisation::load(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw StageError("chip", fmt::format("normalisation {}: cannot open the file", file.string()));
  std::stringstream buf;
  buf << in.rdbuf();
  return from_json(buf.str(), file.string());
}

Normalisation compute_normalisation(const Catalog& catalog, const std::vector<Modality>& modalities, int files,
                                    const std::function<void(const std::string&)>& warn) {
  Normalisation n;
  for (Modality m : modalities) {
    const ModalityInfo& mi = info(m);
    const int nb = static_cast<int>(mi.bands.size());
    for (int season = 0; season < mi.seasons; ++season)
      for (int b = 0; b < nb; ++b) {
        // Up to `files` files holding the band, spread over the catalog (scenes hold one band each).
        std::vector<const SourceRecord*> all;
        for (const SourceRecord& r : catalog.records())
          if (r.modality == m && r.season == season && r.bands[static_cast<std::size_t>(b)] > 0) all.push_back(&r);
        const std::size_t count = std::min<std::size_t>(all.size(), static_cast<std::size_t>(files));
        double sum = 0, sum2 = 0;
        std::size_t k = 0;
        for (std::size_t i = 0; i < count; ++i) {
          const SourceRecord* r = all[i * all.size() / count];
          std::vector<float> values;
          // A broken file fails only the tiles that read it: here it is left out of the sample.
          // A remote one that could not be read now is not broken: the statistics, kept for
          // good once written, must not depend on the network's luck; the run stops instead.
          try {
            values = SourceSet({r}, {b}).sample(0, 1, 512);
          } catch (const std::exception& e) {
            if (take_transient_remote_failure())
              throw StageError("chip", fmt::format("normalisation: {}; nothing is written: run again", detail_of(e)));
            if (warn) warn(fmt::format("normalisation: left out {}", e.what()));
          }
          for (float v : values) {
            sum += v;
            sum2 += static_cast<double>(v) * v;
            ++k;
          }
        }
        ChannelStats st;
        if (k > 0) {
          st.mean = sum / k;
          st.std = std::sqrt(std::max(sum2 / k - st.mean * st.mean, 0.0));
        }
        if (!(st.std > 1e-6)) st.std = 1;  // a constant or absent channel: leave its scale alone
        n.channels[m].push_back(st);
      }
  }
  return n;
}

}  // namespace eo
