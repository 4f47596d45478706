// A modality's observations over a window: each scene (or product mosaic) warped, then
// composited per season and pixel as DESIGN.md §2 says (S2 median of clear observations,
// S1 mean in linear power handed on in dB, coherence mean), with the clear counts.

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <map>
#include <stdexcept>

#include "pipeline/core/error.hpp"
#include "stages/reproject/warp.hpp"

namespace eo {

LonLatBox padded(const LonLatBox& b) { return b.grown(0.01); }

// One scene (or one season's product mosaic): its records grouped by the bands they hold
// (a multi-band file holds all; each S2 band is its own COG), each group warped together.
struct ModalitySources::Observation {
  ObservationInfo info;
  Units units = Units::native;
  std::vector<std::unique_ptr<SourceSet>> parts;
  // One set of all bands, unmasked, in the modality's units: warped as it is.
  bool plain(int bands) const {
    return parts.size() == 1 && static_cast<int>(parts[0]->bands().size()) == bands && !parts[0]->masked() &&
           units == Units::native;
  }
};

ModalitySources::~ModalitySources() = default;
ModalitySources::ModalitySources(ModalitySources&&) noexcept = default;

ModalitySources::ModalitySources(const Catalog& catalog, Modality modality, const LonLatBox& area) : modality_(modality) {
  for (int season = 0; season < info(modality).seasons; ++season) {
    // Records of one observation; observations in time order, then by id, so that the
    // composite never depends on the order of the catalog.
    std::map<std::pair<std::string, std::string>, std::vector<const SourceRecord*>> groups;
    for (const SourceRecord* r : catalog.query(modality, season, padded(area)))
      groups[{r->time, r->observation()}].push_back(r);
    std::vector<Observation> observations;
    for (auto& [key, records] : groups) {
      Observation o;
      o.info = {key.second, records.front()->time};
      o.units = records.front()->units;
      std::map<std::vector<int>, std::vector<const SourceRecord*>> by_bands;
      for (const SourceRecord* r : records) {
        if (r->units != o.units)
          throw StageError("ingest", fmt::format("{}: units {} differ from {}'s other files ({})", r->describe(),
                                               name_of(r->units), o.info.id, name_of(o.units)));
        std::vector<int> held;
        for (std::size_t b = 0; b < r->bands.size(); ++b)
          if (r->bands[b] > 0) held.push_back(static_cast<int>(b));
        by_bands[held].push_back(r);
      }
      // A scene of one file per band (and all of them): one stacked input if they share a grid.
      const bool per_band = by_bands.size() > 1 && std::all_of(by_bands.begin(), by_bands.end(), [](const auto& kv) {
        return kv.first.size() == 1 && kv.second.size() == 1;
      });
      if (per_band && by_bands.size() == info(modality).bands.size()) {
        std::vector<const SourceRecord*> scene;
        for (auto& [bands, rs] : by_bands) scene.push_back(rs.front());
        try {
          o.parts.push_back(std::make_unique<SourceSet>(scene, SourceSet::Stack{}));
        } catch (const SourceSet::NotStackable&) {
        }
      }
      if (o.parts.empty())
        for (auto& [bands, rs] : by_bands) o.parts.push_back(std::make_unique<SourceSet>(rs, bands));
      observations.push_back(std::move(o));
    }
    seasons_.push_back(std::move(observations));
  }
}

std::vector<std::vector<ObservationInfo>> ModalitySources::observations() const {
  std::vector<std::vector<ObservationInfo>> out;
  for (const auto& season : seasons_) {
    out.emplace_back();
    for (const Observation& o : season) out.back().push_back(o.info);
  }
  return out;
}

void ModalitySources::remote_ranges(const std::vector<GridWindow>& windows, const WarpSettings& settings,
                                    std::vector<RemoteRange>& out) const {
  for (const auto& season : seasons_)
    for (const Observation& o : season)
      for (const auto& set : o.parts) set->remote_ranges(windows, settings, out);
}

namespace {

// An observation's values in the space its modality composites in: linear power for
// mean_power_db, the modality's own units otherwise.
inline double to_composite(double v, Units units, Reduce reduce) {
  if (reduce == Reduce::mean_power_db) {
    switch (units) {
      case Units::native: return std::pow(10.0, v / 10);
      case Units::linear_power: return v;
      case Units::amplitude_dn: return v * v * std::pow(10.0, -8.3);
    }
  }
  switch (units) {
    case Units::native: return v;
    case Units::linear_power: return 10 * std::log10(v);
    case Units::amplitude_dn: return 20 * std::log10(v) - 83;
  }
  return v;
}

// The median of n sorted values (NaN when there are none): the middle one, or the mean of
// the middle two in double.
template <typename T>
float median_of_sorted(const T* v, std::size_t n) {
  if (n == 0) return std::numeric_limits<float>::quiet_NaN();
  return n % 2 ? static_cast<float>(v[n / 2]) : static_cast<float>((static_cast<double>(v[n / 2 - 1]) + v[n / 2]) / 2);
}

// One pixel's valid values of a band in composite space, in time order, reduced as the
// modality composites (NaN when there are none).
float reduce(Reduce reduce, std::vector<double>& values) {
  if (values.empty()) return std::numeric_limits<float>::quiet_NaN();
  switch (reduce) {
    case Reduce::median:
      std::sort(values.begin(), values.end());
      return median_of_sorted(values.data(), values.size());
    case Reduce::mean:
    case Reduce::mean_power_db: {
      double sum = 0;
      for (double v : values) sum += v;  // in time order: the same bits on every rank
      const double mean = sum / static_cast<double>(values.size());
      return static_cast<float>(reduce == Reduce::mean ? mean : 10 * std::log10(mean));
    }
    case Reduce::first: return static_cast<float>(values.front());
  }
  return std::numeric_limits<float>::quiet_NaN();
}

// Pixels composited together (composite()): every observation's band of a block, 2 KiB
// each, stays in the cache while its pixels are reduced.
constexpr std::size_t kBlock = 512;

}  // namespace

void ModalitySources::composite(const std::vector<Observation>& season, const GridWindow& window,
                                const WarpSettings& settings, float* out, std::uint16_t* clear) const {
  const ModalityInfo& mi = info(modality_);
  const int nb = static_cast<int>(mi.bands.size());
  const std::size_t n_obs = season.size();
  const std::size_t W = static_cast<std::size_t>(window.width);
  // Strip height: every observation's bands of a strip in settings.memory_mb.
  const std::size_t per_row = n_obs * static_cast<std::size_t>(nb) * W * sizeof(float);
  const int strip = static_cast<int>(std::clamp<std::size_t>(static_cast<std::size_t>(settings.memory_mb) * 1024 * 1024 / per_row, 1,
                                                              static_cast<std::size_t>(window.height)));
  // Kept by the thread between calls (up to settings.memory_mb): under `prepare`'s mmap
  // threshold every strip's fresh buffer was mapped, faulted in and zeroed by the kernel
  // anew, a fifth of `prepare`'s time at the paper's 10 m.
  thread_local std::vector<float> layers, part, block;
  thread_local std::vector<double> values;
  block.resize(n_obs * nb * kBlock);
  // A median of the files' own values is one of floats: each inserted in order as it is
  // gathered (a few dozen at most), with no conversion and no call to a sort; the same
  // bits as reduce()'s.
  const bool float_median = mi.reduce == Reduce::median && std::all_of(season.begin(), season.end(), [](const Observation& o) {
                              return o.units == Units::native;
                            });
  thread_local std::vector<float> sorted;
  sorted.resize(n_obs);
  for (int y0 = 0; y0 < window.height; y0 += strip) {
    const int rows = std::min(strip, window.height - y0);
    GridWindow sw = window;
    sw.north = window.north - y0 * window.pixel;
    sw.height = rows;
    const std::size_t plane = static_cast<std::size_t>(rows) * W;
    layers.assign(n_obs * nb * plane, std::numeric_limits<float>::quiet_NaN());
    for (std::size_t o = 0; o < n_obs; ++o)
      for (const auto& set : season[o].parts) {
        const std::vector<int>& bands = set->bands();
        const int k = static_cast<int>(bands.size());
        float* first = layers.data() + (o * nb + static_cast<std::size_t>(bands.front())) * plane;
        bool consecutive = true;
        for (int i = 0; i < k; ++i) consecutive &= bands[static_cast<std::size_t>(i)] == bands.front() + i;
        if (consecutive) {  // a whole scene's bands, in order: warped in place
          set->warp(sw, settings, first, k);
        } else {
          part.resize(static_cast<std::size_t>(k) * plane);
          set->warp(sw, settings, part.data(), k);
          for (int i = 0; i < k; ++i)
            std::copy_n(part.data() + static_cast<std::size_t>(i) * plane, plane,
                        layers.data() + (o * nb + static_cast<std::size_t>(bands[static_cast<std::size_t>(i)])) * plane);
        }
      }
    // Pixels a block at a time, each observation's band of the block copied out first:
    // a pixel's values lie in n_obs x nb planes (36 to 72 at the paper's 6-12 scenes), more
    // streams than the hardware prefetches, so gathering them straight from the planes
    // missed the cache on nearly every load (a third of the composite's time on the demo).
    for (std::size_t p0 = 0; p0 < plane; p0 += kBlock) {
      const std::size_t np = std::min(kBlock, plane - p0);
      for (std::size_t ob = 0; ob < n_obs * nb; ++ob) std::copy_n(layers.data() + ob * plane + p0, np, block.data() + ob * kBlock);
      const auto value = [&](std::size_t o, int b, std::size_t k) { return block[(o * nb + b) * kBlock + k]; };
      for (std::size_t k = 0; k < np; ++k) {
        const std::size_t at = static_cast<std::size_t>(y0) * W + p0 + k;
        std::uint16_t seen = 0;
        for (std::size_t o = 0; o < n_obs; ++o)
          for (int b = 0; b < nb; ++b)
            if (!std::isnan(value(o, b, k))) {
              ++seen;
              break;
            }
        clear[at] = seen;
        for (int b = 0; b < nb; ++b) {
          float& result = out[static_cast<std::size_t>(b) * W * window.height + at];
          if (float_median) {
            std::size_t n = 0;
            for (std::size_t o = 0; o < n_obs; ++o)
              if (const float v = value(o, b, k); !std::isnan(v)) {
                std::size_t i = n++;
                for (; i > 0 && sorted[i - 1] > v; --i) sorted[i] = sorted[i - 1];
                sorted[i] = v;
              }
            result = median_of_sorted(sorted.data(), n);
            continue;
          }
          values.clear();
          for (std::size_t o = 0; o < n_obs; ++o)
            if (const float v = value(o, b, k); !std::isnan(v)) values.push_back(to_composite(v, season[o].units, mi.reduce));
          result = reduce(mi.reduce, values);
        }
      }
    }
  }
}

WarpedModality ModalitySources::warp(const GridWindow& window, const WarpSettings& settings) const {
  const ModalityInfo& mi = info(modality_);
  WarpedModality out{modality_, mi.channels(), window.width, window.height, {}, {}, {}};
  const std::size_t plane = static_cast<std::size_t>(window.width) * window.height;
  out.data.assign(static_cast<std::size_t>(out.channels) * plane, std::numeric_limits<float>::quiet_NaN());
  out.clear.assign(static_cast<std::size_t>(mi.seasons) * plane, 0);
  out.observations = observations();
  const int nb = static_cast<int>(mi.bands.size());
  for (std::size_t season = 0; season < seasons_.size(); ++season) {
    const auto& observations = seasons_[season];
    if (observations.empty()) continue;  // the modality is missing here: channels stay NaN
    float* dst = out.data.data() + season * nb * plane;
    std::uint16_t* clear = out.clear.data() + season * plane;
    if (observations.size() == 1 && observations[0].plain(nb)) {
      // One product (or one scene, nothing to mask): warped as it is.
      observations[0].parts[0]->warp(window, settings, dst, nb);
      for (std::size_t p = 0; p < plane; ++p)
        for (int b = 0; b < nb; ++b)
          if (!std::isnan(dst[static_cast<std::size_t>(b) * plane + p])) {
            clear[p] = 1;
            break;
          }
    } else {
      composite(observations, window, settings, dst, clear);
    }
  }
  return out;
}

WarpedModality warp_modality(const Catalog& catalog, Modality modality, const GridWindow& window,
                             const WarpSettings& settings) {
  return ModalitySources(catalog, modality, window.lonlat_box()).warp(window, settings);
}

}  // namespace eo
