#include "stages/chip/normalise.hpp"

#include <algorithm>
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
#include "pipeline/core/parallel.hpp"
#include "stages/ingest/remote.hpp"
#include "stages/reproject/warp.hpp"

namespace eo {

namespace {
// Remote files sampled at once for the statistics, at least.
constexpr int kRemoteSampleReaders = 16;
}  // namespace

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
                                    const std::function<void(const std::string&)>& warn, int threads) {
  // Every sample to read, in the order the sums take them.
  struct Sample {
    int band = 0;
    const SourceRecord* record = nullptr;
    std::vector<float> values;
    std::string left_out;
  };
  std::vector<Sample> samples;
  std::vector<std::pair<std::size_t, std::size_t>> channel_samples;  // per modality's channel, in order: [first, last)
  bool remote = false;
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
        const std::size_t first = samples.size();
        for (std::size_t i = 0; i < count; ++i) {
          samples.push_back({b, all[i * all.size() / count], {}, {}});
          remote |= is_remote_path(samples.back().record->path.string());
        }
        channel_samples.emplace_back(first, samples.size());
      }
  }
  // Remote files are read many at once: their time is latency, not the cores'.
  parallel_for(samples.size(), remote ? std::max(threads, kRemoteSampleReaders) : threads, [&](std::size_t i) {
    Sample& s = samples[i];
    // A broken file fails only the tiles that read it: here it is left out of the sample.
    // A remote one that could not be read now, or could not be reached at all, is not
    // broken: the statistics, kept for good once written, must not depend on the
    // network's luck or a setting; the run stops instead.
    try {
      s.values = SourceSet({s.record}, {s.band}).sample(0, 1, 512);
    } catch (const std::exception& e) {
      if (take_remote_failure_not_the_objects())
        throw StageError("chip", fmt::format("normalisation: {}; nothing is written: run again", detail_of(e)));
      s.left_out = fmt::format("normalisation: left out {}", e.what());
    }
  });
  Normalisation n;
  std::size_t channel = 0;
  for (Modality m : modalities) {
    const ModalityInfo& mi = info(m);
    for (int c = 0; c < mi.seasons * static_cast<int>(mi.bands.size()); ++c, ++channel) {
      double sum = 0, sum2 = 0;
      std::size_t k = 0;
      for (std::size_t i = channel_samples[channel].first; i < channel_samples[channel].second; ++i) {
        if (!samples[i].left_out.empty() && warn) warn(samples[i].left_out);
        for (float v : samples[i].values) {
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
