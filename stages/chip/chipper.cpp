#include "stages/chip/chipper.hpp"

#include <cmath>
#include <fmt/format.h>
#include <map>
#include <stdexcept>

#include "pipeline/core/error.hpp"
#include "stages/ingest/remote.hpp"

namespace eo {

TileReadOptions TileReadOptions::from(double pixel_size, const DataConfig& data, const WarpConfig& warp, int threads) {
  TileReadOptions o;
  o.pixel = pixel_size;
  o.modalities = data.modalities;
  for (Modality m : kImageModalities) o.resampling[m] = data.resampling_of(m);
  for (Modality m : kLabelModalities) o.resampling[m] = data.resampling_of(m);
  o.threads = threads;
  o.memory_mb = warp.memory_mb;
  return o;
}

namespace {

// What is fetched of each remote file before it is opened: its header, with the offsets of
// its blocks (a COG's first few KB; a 10980 px Sentinel-2 band's is under 20 KB).
constexpr std::int64_t kRemoteHeaderBytes = 64 * 1024;

// Rows of chips warped in one window. A row of chips (448 px at 10 m) lies under two rows
// of 512 px source blocks, which a window of one row decoded for each of the two rows of
// chips they are under (the decoded-block cache holds far less than a row of blocks of
// every file); a window of two rows reads 2.75 rows of blocks for two rows of chips, not
// 3.75. It holds twice a row's pixels, in every modality: memory that does not grow with
// the scenes.
constexpr std::size_t kRowsPerWindow = 2;

// The tile's planned chips in one row: their column span.
struct RowSpan {
  int row = 0, col0 = 0, col1 = -1;  // inclusive
  bool empty() const { return col1 < col0; }
};

RowSpan row_span(const TilePlan& tile, int row) {
  RowSpan s{row, kChipsPerTileSide, -1};
  for (int c = 0; c < kChipsPerTileSide; ++c)
    if (tile.chips.test(static_cast<std::size_t>(row * kChipsPerTileSide + c))) {
      s.col0 = std::min(s.col0, c);
      s.col1 = std::max(s.col1, c);
    }
  return s;
}

}  // namespace

void read_tile(const Catalog& catalog, const TilePlan& tile, const TileReadOptions& options,
               const std::function<void(ChipBatch&&)>& row) {
  const int size = static_cast<int>(std::lround(kChipSizeM / options.pixel));
  // Remote files' headers all at once, before they are opened one by one (a round trip each).
  std::vector<RemoteRange> headers;
  for (const TileInput& input : tile_inputs(catalog, tile, options.modalities))
    headers.push_back({input.path.string(), 0, kRemoteHeaderBytes});
  fetch_remote(headers);
  // Sources are opened once per tile and warped window by window.
  const LonLatBox area = chip_window(tile.id, options.pixel, 0, kChipsPerTileSide, 0, kChipsPerTileSide).lonlat_box();
  std::vector<ModalitySources> sources;
  for (Modality m : options.modalities) {
    try {
      sources.emplace_back(catalog, m, area);
    } catch (const std::exception& e) {
      rethrow_with_context(e, "ingest", info(m).name);
    }
  }
  // Windows of up to kRowsPerWindow consecutive planned rows, each over their columns.
  std::vector<RowSpan> spans;
  for (int r = 0; r < kChipsPerTileSide; ++r)
    if (const RowSpan span = row_span(tile, r); !span.empty()) spans.push_back(span);
  struct Group {
    std::size_t first, last;  // [first, last) of spans
    int col0;                 // the window's first column of chips
  };
  std::vector<Group> groups;
  std::vector<GridWindow> windows;
  for (std::size_t first = 0; first < spans.size();) {
    std::size_t last = first + 1;
    int col0 = spans[first].col0, col1 = spans[first].col1;
    while (last < spans.size() && last - first < kRowsPerWindow && spans[last].row == spans[last - 1].row + 1) {
      col0 = std::min(col0, spans[last].col0);
      col1 = std::max(col1, spans[last].col1);
      ++last;
    }
    groups.push_back({first, last, col0});
    windows.push_back(chip_window(tile.id, options.pixel, spans[first].row, static_cast<int>(last - first), col0, col1 - col0 + 1));
    first = last;
  }
  const auto settings_of = [&](Modality m) { return WarpSettings{options.resampling.at(m), options.threads, options.memory_mb}; };
  // Remote files' blocks of the next window fetched while this one is warped.
  std::vector<RemoteRange> ahead;
  for (std::size_t i = 0; i < options.modalities.size(); ++i) {
    try {
      sources[i].remote_ranges(windows, settings_of(options.modalities[i]), ahead);
    } catch (const std::exception&) {  // a source that cannot be read says so, with its context, when warped
    }
  }
  RemotePrefetch prefetch(std::move(ahead));
  WarpedModality w;  // its buffers reused by every modality of every window
  for (std::size_t step = 0; step < groups.size(); ++step) {
    prefetch.reached(static_cast<int>(step));
    const GridWindow& window = windows[step];
    const Group& group = groups[step];
    const int window_row0 = spans[group.first].row;
    // A batch per row, and where each planned chip lies in the window.
    std::vector<ChipBatch> batches;
    std::vector<std::vector<std::pair<int, int>>> places;  // (column, row) in chips
    for (std::size_t i = group.first; i < group.last; ++i) {
      const RowSpan& span = spans[i];
      ChipBatch& batch = batches.emplace_back();
      batch.tile = tile.id;
      batch.size = size;
      auto& at = places.emplace_back();
      for (int c = span.col0; c <= span.col1; ++c)
        if (tile.chips.test(static_cast<std::size_t>(span.row * kChipsPerTileSide + c))) {
          batch.chips.push_back(tile.id.chip(span.row * kChipsPerTileSide + c));
          at.emplace_back(c - group.col0, span.row - window_row0);
        }
    }
    for (std::size_t i = 0; i < options.modalities.size(); ++i) {
      const Modality m = options.modalities[i];
      try {
        sources[i].warp(window, settings_of(m), w);
      } catch (const std::exception& e) {
        rethrow_with_context(e, "reproject", info(m).name);
      }
      for (std::size_t b = 0; b < batches.size(); ++b) {
        ChipBatch& batch = batches[b];
        const auto& at = places[b];
        ModalityChips mc{m, w.channels, {}, {}, {}, w.observations};
        const std::size_t per_chip = static_cast<std::size_t>(mc.channels) * size * size;
        // A chip's pixel (x, y) in the window's plane of a channel or a season.
        const auto origin = [&](std::size_t k, std::size_t plane) {
          return (plane * w.height + static_cast<std::size_t>(at[k].second) * size) * w.width +
                 static_cast<std::size_t>(at[k].first) * size;
        };
        mc.values.resize(per_chip * batch.chips.size());
        mc.valid.resize(static_cast<std::size_t>(mc.channels) * batch.chips.size());
        for (std::size_t k = 0; k < batch.chips.size(); ++k)
          for (int ch = 0; ch < mc.channels; ++ch) {
            std::size_t valid = 0;
            float* dst = mc.values.data() + k * per_chip + static_cast<std::size_t>(ch) * size * size;
            for (int y = 0; y < size; ++y) {
              const float* src = &w.data[origin(k, static_cast<std::size_t>(ch)) + static_cast<std::size_t>(y) * w.width];
              for (int x = 0; x < size; ++x) {
                dst[y * size + x] = src[x];
                valid += !std::isnan(src[x]);
              }
            }
            mc.valid[k * mc.channels + ch] = static_cast<float>(valid) / static_cast<float>(size * size);
          }
        const int seasons = info(m).seasons;
        mc.clear.resize(static_cast<std::size_t>(seasons) * batch.chips.size());
        for (std::size_t k = 0; k < batch.chips.size(); ++k)
          for (int s = 0; s < seasons; ++s) {
            std::uint64_t sum = 0;
            for (int y = 0; y < size; ++y) {
              const std::uint16_t* src = &w.clear[origin(k, static_cast<std::size_t>(s)) + static_cast<std::size_t>(y) * w.width];
              for (int x = 0; x < size; ++x) sum += src[x];
            }
            mc.clear[k * seasons + s] = static_cast<float>(static_cast<double>(sum) / (size * size));
          }
        batch.modalities.push_back(std::move(mc));
      }
    }
    for (ChipBatch& batch : batches) row(std::move(batch));
  }
}

std::vector<TileInput> tile_inputs(const Catalog& catalog, const TilePlan& tile, const std::vector<Modality>& modalities) {
  const Box b = tile.id.bounds();
  const GridWindow whole{tile.id.zone, b.e0, b.n1, kChipSizeM, kChipsPerTileSide, kChipsPerTileSide};
  const LonLatBox box = padded(whole.lonlat_box());
  std::map<std::filesystem::path, std::string> files;
  for (Modality m : modalities)
    for (int s = 0; s < info(m).seasons; ++s)
      for (const SourceRecord* r : catalog.query(m, s, box)) {
        files.emplace(underlying_file(r->path), r->version);
        if (r->mask) files.emplace(underlying_file(r->mask->path), r->mask->version);
      }
  std::vector<TileInput> out;
  for (auto& [path, version] : files) out.push_back({path, version});
  return out;
}

std::vector<std::filesystem::path> tile_sources(const Catalog& catalog, const TilePlan& tile,
                                                const std::vector<Modality>& modalities) {
  std::vector<std::filesystem::path> paths;
  for (const TileInput& input : tile_inputs(catalog, tile, modalities)) paths.push_back(input.path);
  return paths;
}

bool chip_has_data(const ChipBatch& batch, std::size_t chip, double threshold) {
  for (const ModalityChips& m : batch.modalities)
    for (int ch = 0; ch < m.channels; ++ch)
      if (m.valid[chip * m.channels + ch] >= threshold) return true;
  return false;
}

std::vector<bool> chips_with_data(const ChipBatch& batch, double threshold) {
  std::vector<bool> has_data(batch.chips.size());
  for (std::size_t k = 0; k < batch.chips.size(); ++k) has_data[k] = chip_has_data(batch, k, threshold);
  return has_data;
}

}  // namespace eo
