// The HDF5 chip store: what is written is what h5py and our reader read back, and an
// unfinished store leaves nothing behind.

#include <gtest/gtest.h>

#include <cmath>
#include <fmt/format.h>
#include <cstring>
#include <map>
#include <random>

#include "stages/chipstore/chipstore.hpp"
#include "support/run.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;

ChipBatch make_batch(const TileId& tile, int first, int count, int size) {
  std::mt19937 rng(static_cast<unsigned>(first));
  std::uniform_real_distribution<float> u(0, 1);
  ChipBatch b;
  b.tile = tile;
  b.size = size;
  for (int i = first; i < first + count; ++i) b.chips.push_back(tile.chip(i));
  for (Modality m : kImageModalities) {
    ModalityChips mc{m, info(m).channels(), {}, {}, {}, {}};
    mc.values.resize(static_cast<std::size_t>(count) * mc.channels * size * size);
    for (std::size_t i = 0; i < mc.values.size(); ++i)
      mc.values[i] = u(rng) < 0.1f ? std::nanf("") : (info(m).integer ? std::round(1 + 254 * u(rng)) : -25 + 25 * u(rng));
    mc.valid.assign(static_cast<std::size_t>(count) * mc.channels, 0.9f);
    for (int k = 0; k < count * info(m).seasons; ++k) mc.clear.push_back(static_cast<float>(first + k) / 4);
    mc.observations.assign(static_cast<std::size_t>(info(m).seasons), {{"S2B_10SGF_20210704_0_L2A", "2021-07-04T18:57:01Z"}});
    b.modalities.push_back(std::move(mc));
  }
  return b;
}

TEST(ChipStore, RoundTripThroughOurReaderAndH5py) {
  const fs::path dir = fs::temp_directory_path() / ("eo_store_" + std::to_string(::getpid()));
  const TileId tile = parse_tile_id("33N_T025_T006");
  const int size = 16;
  const std::vector<Modality> mods(kImageModalities.begin(), kImageModalities.end());
  ChipStoreInfo store{tile, 5, size, 280, mods, {{"fingerprint", "abc"}, {"normalisation", "{}"}}};
  const fs::path file = dir / "33N_T025_T006.h5";
  const ChipBatch a = make_batch(tile, 0, 3, size), b = make_batch(tile, 20, 2, size);
  {
    ChipStoreWriter w(file, store);
    w.append(a, {true, false, true});
    w.append(b, {true, true});
    EXPECT_FALSE(fs::exists(file)) << "visible before commit";
    w.commit();
  }
  const StoredTile t = read_chip_store(file);
  ASSERT_EQ(t.chips.size(), 5u);
  EXPECT_EQ(t.chips[3], tile.chip(20));
  EXPECT_EQ(t.status, (std::vector<std::uint8_t>{1, 2, 1, 1, 1}));
  EXPECT_EQ(t.info.attributes.at("fingerprint"), "abc");
  for (std::size_t m = 0; m < t.modalities.size(); ++m) {
    const auto& back = t.modalities[m].values;
    const std::size_t per = a.modalities[m].values.size();
    for (std::size_t i = 0; i < back.size(); ++i) {
      const float expect = i < per ? a.modalities[m].values[i] : b.modalities[m].values[i - per];
      ASSERT_TRUE((std::isnan(expect) && std::isnan(back[i])) || expect == back[i]) << i << ": " << expect << " vs " << back[i];
    }
    std::vector<float> clear = a.modalities[m].clear;
    clear.insert(clear.end(), b.modalities[m].clear.begin(), b.modalities[m].clear.end());
    EXPECT_EQ(t.modalities[m].clear, clear);
    EXPECT_EQ(t.modalities[m].observations, a.modalities[m].observations);
  }
  // A real reader: shapes, types, ids, chunking per chip and the sum of the data.
  double sum = 0;
  for (const float v : a.modalities[1].values) sum += std::isnan(v) ? 0 : v;
  for (const float v : b.modalities[1].values) sum += std::isnan(v) ? 0 : v;
  const auto py = test::run("/usr/bin/python3 -c \"import h5py, numpy as np\n"
                            "f = h5py.File('" + file.string() + "', 'r')\n"
                            "print(f['s2rgb/data'].shape, f['s2rgb/data'].dtype, f['s1amp/data'].chunks)\n"
                            "print(f['chip_id'][3].decode(), f.attrs['tile'].decode() if isinstance(f.attrs['tile'], bytes) else f.attrs['tile'])\n"
                            "print('%.3f' % np.nansum(f['s1amp/data'][:].astype('float64')))\n"
                            "print('clear', f['s2rgb/clear'].shape, f['s2rgb/clear'][3, 1], f['s2rgb'].attrs['observations'])\"");
  ASSERT_EQ(py.code, 0) << py.output;
  // S2 is float32: composites of real scenes are reflectances (0..1), not bytes.
  EXPECT_NE(py.output.find("(5, 12, 16, 16) float32 (1, 8, 16, 16)"), std::string::npos) << py.output;
  // row 3 is the second batch's first chip (first = 20), season 1: (20 + 0 * 4 + 1) / 4
  EXPECT_NE(py.output.find("clear (5, 4) 5.25 "), std::string::npos) << py.output;
  EXPECT_NE(py.output.find("S2B_10SGF_20210704_0_L2A"), std::string::npos) << py.output;
  EXPECT_NE(py.output.find(tile.chip(20).str() + " 33N_T025_T006"), std::string::npos) << py.output;
  EXPECT_NE(py.output.find(fmt::format("{:.3f}", sum)), std::string::npos) << py.output << " expected " << sum;
  fs::remove_all(dir);
}

TEST(ChipStore, UncommittedStoreLeavesNothing) {
  const fs::path dir = fs::temp_directory_path() / ("eo_store_abandon_" + std::to_string(::getpid()));
  const TileId tile = parse_tile_id("33N_T025_T006");
  {
    ChipStoreWriter w(dir / "x.h5", {tile, 4, 8, 560, {Modality::s1coh}, {}});
    w.append(make_batch(tile, 0, 2, 8), {true, true});
    EXPECT_THROW(w.commit(), std::runtime_error) << "2 of 4 chips written";
  }
  EXPECT_TRUE(fs::is_empty(dir));
  fs::remove_all(dir);
}

// prepare.compression: none keeps the same values, read back a few chips at a time by
// ChipStoreReader as by h5py, and h5py sees the data stored without a filter.
TEST(ChipStore, UncompressedHoldsTheSameValuesReadByRows) {
  const fs::path dir = fs::temp_directory_path() / ("eo_store_plain_" + std::to_string(::getpid()));
  const TileId tile = parse_tile_id("33N_T025_T006");
  const int size = 16;
  const std::vector<Modality> mods(kImageModalities.begin(), kImageModalities.end());
  const ChipBatch a = make_batch(tile, 0, 4, size);
  std::map<bool, fs::path> files;
  for (bool compress : {true, false}) {
    ChipStoreInfo store{tile, 4, size, 280, mods, {{"fingerprint", "abc"}, {"normalisation", "{}"}}};
    store.compress = compress;
    files[compress] = dir / (compress ? "deflate" : "none") / "33N_T025_T006.h5";
    ChipStoreWriter w(files[compress], store);
    w.append(a, {true, true, false, true});
    w.commit();
  }
  const ChipStoreReader deflated(files[true]), plain(files[false]);
  for (std::size_t first : {0u, 1u, 3u}) {
    const ChipBatch x = deflated.read(first, 4 - first), y = plain.read(first, 4 - first);
    ASSERT_EQ(x.chips, y.chips);
    ASSERT_EQ(x.modalities.size(), y.modalities.size());
    for (std::size_t m = 0; m < x.modalities.size(); ++m) {
      EXPECT_EQ(std::memcmp(x.modalities[m].values.data(), y.modalities[m].values.data(), x.modalities[m].values.size() * 4), 0);
      // The rows read are the chips written from `first` on.
      const std::size_t per = x.chip_values(x.modalities[m]);
      for (std::size_t i = 0; i < per * (4 - first); i += 97) {
        const float written = a.modalities[m].values[first * per + i], read = y.modalities[m].values[i];
        EXPECT_TRUE((std::isnan(written) && std::isnan(read)) || written == read) << info(x.modalities[m].modality).name;
      }
      EXPECT_EQ(x.modalities[m].clear, y.modalities[m].clear);
    }
  }
  const auto py = test::run("/usr/bin/python3 -c \"import h5py\n"
                            "print(h5py.File('" + files[true].string() + "', 'r')['s2rgb/data'].compression, "
                            "h5py.File('" + files[false].string() + "', 'r')['s2rgb/data'].compression)\"");
  ASSERT_EQ(py.code, 0) << py.output;
  EXPECT_EQ(py.output, "gzip None\n");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace eo
