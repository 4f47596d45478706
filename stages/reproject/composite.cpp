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

// Whether to_composite() hands values on as they are.
bool in_composite_space(Units units, Reduce reduce) {
  return reduce == Reduce::mean_power_db ? units == Units::linear_power : units == Units::native;
}

// The median of n sorted values (NaN when there are none): the middle one, or the mean of
// the middle two in double.
template <typename T>
float median_of_sorted(const T* v, std::size_t n, std::size_t stride = 1) {
  if (n == 0) return std::numeric_limits<float>::quiet_NaN();
  const T& upper = v[n / 2 * stride];
  return n % 2 ? static_cast<float>(upper) : static_cast<float>((static_cast<double>(v[(n / 2 - 1) * stride]) + upper) / 2);
}

// The mean of n values summed in time order (NaN when there are none), handed on in dB
// for mean_power_db.
float mean_of(double sum, std::size_t n, Reduce reduce) {
  if (n == 0) return std::numeric_limits<float>::quiet_NaN();
  const double mean = sum / static_cast<double>(n);
  return static_cast<float>(reduce == Reduce::mean ? mean : 10 * std::log10(mean));
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
      return mean_of(sum, values.size(), reduce);
    }
    case Reduce::first: return static_cast<float>(values.front());
  }
  return std::numeric_limits<float>::quiet_NaN();
}

// Pixels composited together (composite()): every observation's band of a block, 2 KiB
// each, stays in the cache while its pixels are reduced.
constexpr std::size_t kBlock = 512;
// Pixels sorted side by side (a multiple of the vector width): one observation's values
// of them are a vector, and the sort's scratch (n_obs x kLanes) stays in L1.
constexpr std::size_t kLanes = 64;

// Batcher's odd-even merge sort of n values as compare-exchanges (i < j: the smaller to
// i), for the next power of two with the comparators reaching past n dropped: those wires
// would hold +inf, which no comparator moves. 41 comparators for 12 values, 123 for 24.
std::vector<std::pair<std::uint16_t, std::uint16_t>> sorting_network(std::size_t n) {
  std::vector<std::pair<std::uint16_t, std::uint16_t>> out;
  std::size_t m = 1;
  while (m < n) m <<= 1;
  for (std::size_t p = 1; p < m; p <<= 1)
    for (std::size_t k = p; k >= 1; k >>= 1)
      for (std::size_t j = k % p; j + k < m; j += 2 * k)
        for (std::size_t i = 0; i < std::min(k, m - j - k); ++i)
          if ((i + j) / (2 * p) == (i + j + k) / (2 * p) && i + j + k < n)
            out.emplace_back(static_cast<std::uint16_t>(i + j), static_cast<std::uint16_t>(i + j + k));
  return out;
}

// The medians of kLanes pixels' valid values of one band (`values`: n_obs rows of kLanes,
// `stride` apart, NaN where an observation has none), by one sorting network for all of them, each
// compare-exchange a vector min and max: the same values as an insertion sort of each
// pixel's, whose middle one (or middle two's mean) is taken. Only a pixel whose values
// hold both 0 and -0 could pick the other zero.
void lane_medians(const float* values, std::size_t stride, std::size_t n_obs,
                  const std::vector<std::pair<std::uint16_t, std::uint16_t>>& network, float* sorted, float* medians) {
  std::uint32_t count[kLanes] = {};  // 32-bit lanes, like the values', so the loops vectorise
  for (std::size_t o = 0; o < n_obs; ++o)
    for (std::size_t k = 0; k < kLanes; ++k) {
      const float v = values[o * stride + k];
      const bool valid = v == v;  // not NaN
      sorted[o * kLanes + k] = valid ? v : std::numeric_limits<float>::infinity();
      count[k] += valid;
    }
  for (const auto& [i, j] : network) {
    float* a = sorted + i * kLanes;
    float* b = sorted + j * kLanes;
    for (std::size_t k = 0; k < kLanes; ++k) {
      const float lo = std::min(a[k], b[k]), hi = std::max(a[k], b[k]);
      a[k] = lo;
      b[k] = hi;
    }
  }
  for (std::size_t k = 0; k < kLanes; ++k) medians[k] = median_of_sorted(sorted + k, count[k], kLanes);
}

// The means of kLanes pixels' valid values of one band in composite space (`values` as
// lane_medians', observation o in units[o]), each summed in time order as reduce() does.
void lane_means(const float* values, std::size_t stride, const std::vector<Units>& units, Reduce reduce, float* means) {
  double sum[kLanes] = {};
  std::uint32_t count[kLanes] = {};
  for (std::size_t o = 0; o < units.size(); ++o) {
    const float* row = values + o * stride;
    // + 0.0 leaves a sum as it is. Values already in composite space (S1 RTC's linear
    // power) in a loop of their own, which vectorises.
    if (in_composite_space(units[o], reduce)) {
      float valid[kLanes];  // NaN as 0, chosen among floats: a select of doubles does not vectorise
      for (std::size_t k = 0; k < kLanes; ++k) valid[k] = row[k] == row[k] ? row[k] : 0.0f;
      for (std::size_t k = 0; k < kLanes; ++k) sum[k] += valid[k];
    } else {
      for (std::size_t k = 0; k < kLanes; ++k) sum[k] += row[k] == row[k] ? to_composite(row[k], units[o], reduce) : 0.0;
    }
    for (std::size_t k = 0; k < kLanes; ++k) count[k] += row[k] == row[k];
  }
  for (std::size_t k = 0; k < kLanes; ++k) means[k] = mean_of(sum[k], count[k], reduce);
}

}  // namespace

std::vector<float> medians_by_network(const std::vector<float>& values, std::size_t n_obs, std::size_t pixels) {
  const auto network = sorting_network(n_obs);
  std::vector<float> lanes(n_obs * kLanes), sorted(n_obs * kLanes), out(pixels);
  for (std::size_t g = 0; g < pixels; g += kLanes) {
    const std::size_t n = std::min(kLanes, pixels - g);
    std::fill(lanes.begin(), lanes.end(), std::numeric_limits<float>::quiet_NaN());
    for (std::size_t o = 0; o < n_obs; ++o) std::copy_n(values.begin() + static_cast<long>(o * pixels + g), n, lanes.begin() + static_cast<long>(o * kLanes));
    float medians[kLanes];
    lane_medians(lanes.data(), kLanes, n_obs, network, sorted.data(), medians);
    std::copy_n(medians, n, out.begin() + static_cast<long>(g));
  }
  return out;
}

void ModalitySources::composite(const std::vector<Observation>& season, const GridWindow& window,
                                const WarpSettings& settings, float* out, std::uint16_t* clear) const {
  const ModalityInfo& mi = info(modality_);
  const int nb = static_cast<int>(mi.bands.size());
  const std::size_t n_obs = season.size();
  const std::size_t W = static_cast<std::size_t>(window.width), H = static_cast<std::size_t>(window.height);
  // Panes of the window composited one after the other: settings.pane_width columns (a
  // source block's width), as many rows as fit every observation's bands in
  // settings.pane_mb, top to bottom, then the next column of panes. A pane reads each
  // file's blocks under it, and the next pane reads the row of blocks they share while
  // those are still decoded; the next column of panes shares a column of blocks with
  // this one, a window's height of them (2-3 blocks a file). Strips of the window's whole
  // width read a row of blocks of every file (1.5 GB at 6 scenes of 10 m), far more than
  // the decoded-block cache, so each strip decoded its blocks anew.
  const std::size_t pane_w = std::clamp<std::size_t>(static_cast<std::size_t>(settings.pane_width), 1, W);
  const std::size_t per_row = n_obs * static_cast<std::size_t>(nb) * pane_w * sizeof(float);
  const std::size_t pane_h = std::clamp<std::size_t>(static_cast<std::size_t>(settings.pane_mb) * 1024 * 1024 / per_row, 1, H);
  // Kept by the thread between calls (up to settings.pane_mb): under `prepare`'s mmap
  // threshold every pane's fresh buffer was mapped, faulted in and zeroed by the kernel
  // anew, a fifth of `prepare`'s time at the paper's 10 m.
  thread_local std::vector<float> layers, part, block;
  thread_local std::vector<double> values;
  block.resize(n_obs * nb * kBlock);
  // A median of the files' own values is one of floats, taken for kLanes pixels at once
  // (lane_medians): the same values as reduce()'s.
  const bool float_median = mi.reduce == Reduce::median && std::all_of(season.begin(), season.end(), [](const Observation& o) {
                              return o.units == Units::native;
                            });
  thread_local std::vector<float> sorted;
  sorted.resize(n_obs * kLanes);
  const auto network = sorting_network(n_obs);
  const bool mean = mi.reduce == Reduce::mean || mi.reduce == Reduce::mean_power_db;
  std::vector<Units> units;
  for (const Observation& o : season) units.push_back(o.units);
  for (std::size_t x0 = 0; x0 < W; x0 += pane_w)
    for (std::size_t y0 = 0; y0 < H; y0 += pane_h) {
      const std::size_t rows = std::min(pane_h, H - y0), cols = std::min(pane_w, W - x0);
      GridWindow pane = window;
      pane.west = window.west + static_cast<double>(x0) * window.pixel;
      pane.north = window.north - static_cast<double>(y0) * window.pixel;
      pane.width = static_cast<int>(cols);
      pane.height = static_cast<int>(rows);
      const std::size_t plane = rows * cols;
      layers.assign(n_obs * nb * plane, std::numeric_limits<float>::quiet_NaN());
      for (std::size_t o = 0; o < n_obs; ++o)
        for (const auto& set : season[o].parts) {
          const std::vector<int>& bands = set->bands();
          const int k = static_cast<int>(bands.size());
          float* first = layers.data() + (o * nb + static_cast<std::size_t>(bands.front())) * plane;
          bool consecutive = true;
          for (int i = 0; i < k; ++i) consecutive &= bands[static_cast<std::size_t>(i)] == bands.front() + i;
          if (consecutive) {  // a whole scene's bands, in order: warped in place
            set->warp(pane, settings, first, k);
          } else {
            part.resize(static_cast<std::size_t>(k) * plane);
            set->warp(pane, settings, part.data(), k);
            for (int i = 0; i < k; ++i)
              std::copy_n(part.data() + static_cast<std::size_t>(i) * plane, plane,
                          layers.data() + (o * nb + static_cast<std::size_t>(bands[static_cast<std::size_t>(i)])) * plane);
          }
        }
      // Pixels a block at a time, each observation's band of the block copied out first:
      // a pixel's values lie in n_obs x nb planes (36 to 72 at the paper's 6-12 scenes),
      // more streams than the hardware prefetches, so gathering them straight from the
      // planes missed the cache on nearly every load (a third of the composite's time on
      // the demo).
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c0 = 0; c0 < cols; c0 += kBlock) {
          const std::size_t np = std::min(kBlock, cols - c0);
          for (std::size_t ob = 0; ob < n_obs * nb; ++ob)
            std::copy_n(layers.data() + ob * plane + r * cols + c0, np, block.data() + ob * kBlock);
          const std::size_t at0 = (y0 + r) * W + x0 + c0;
          // kLanes pixels at a time (past the block's tail: values left from before, not written).
          for (std::size_t g = 0; g < np; g += kLanes) {
            std::uint32_t seen[kLanes] = {};  // 32-bit lanes, like the values', so the loops vectorise
            for (std::size_t o = 0; o < n_obs; ++o) {
              std::uint32_t any[kLanes] = {};
              for (int b = 0; b < nb; ++b) {
                const float* v = block.data() + (o * nb + static_cast<std::size_t>(b)) * kBlock + g;
                for (std::size_t k = 0; k < kLanes; ++k) any[k] |= v[k] == v[k];  // not NaN
              }
              for (std::size_t k = 0; k < kLanes; ++k) seen[k] += any[k];
            }
            const std::size_t n = std::min(kLanes, np - g);
            for (std::size_t k = 0; k < n; ++k) clear[at0 + g + k] = static_cast<std::uint16_t>(seen[k]);
            for (int b = 0; b < nb; ++b) {
              const float* band = block.data() + static_cast<std::size_t>(b) * kBlock + g;
              const std::size_t stride = static_cast<std::size_t>(nb) * kBlock;
              float reduced[kLanes];
              if (float_median) {
                lane_medians(band, stride, n_obs, network, sorted.data(), reduced);
              } else if (mean) {
                lane_means(band, stride, units, mi.reduce, reduced);
              } else {  // the first value, or a median of values in other units: a pixel at a time
                for (std::size_t k = 0; k < n; ++k) {
                  values.clear();
                  for (std::size_t o = 0; o < n_obs; ++o)
                    if (const float v = band[o * stride + k]; !std::isnan(v)) values.push_back(to_composite(v, units[o], mi.reduce));
                  reduced[k] = reduce(mi.reduce, values);
                }
              }
              std::copy_n(reduced, n, out + static_cast<std::size_t>(b) * W * H + at0 + g);
            }
          }
        }
    }
}

WarpedModality ModalitySources::warp(const GridWindow& window, const WarpSettings& settings) const {
  WarpedModality out;
  warp(window, settings, out);
  return out;
}

void ModalitySources::warp(const GridWindow& window, const WarpSettings& settings, WarpedModality& out) const {
  const ModalityInfo& mi = info(modality_);
  out.modality = modality_;
  out.channels = mi.channels();
  out.width = window.width;
  out.height = window.height;
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
}

WarpedModality warp_modality(const Catalog& catalog, Modality modality, const GridWindow& window,
                             const WarpSettings& settings) {
  return ModalitySources(catalog, modality, window.lonlat_box()).warp(window, settings);
}

}  // namespace eo
