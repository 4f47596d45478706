#pragma once
// A small cube written here with known contents, for the tests of what reads cubes
// (similarity search, the explorer): four tiles in two zones of random chips (some not
// embedded, some without s1amp), and a planted cluster: kCluster chips spread over the
// tiles whose embeddings are one vector plus noise a hundredth of its size.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <vector>

#include "stages/cube/cube.hpp"

namespace eo::test {

inline constexpr int kDim = 32;

inline constexpr int kCluster = 12;
struct Planted {
  std::vector<ChipId> cluster;
  ChipId missing_s1amp;
};

inline Planted write_cube(const std::filesystem::path& cube, CubeDtype dtype) {
  CubeSpec spec;
  spec.zones = {Zone{10, false}, Zone{11, false}};
  spec.modalities = {Modality::s2rgb, Modality::s1amp};
  spec.dim = kDim;
  spec.dtype = dtype;
  spec.chip_pixels = 112;
  spec.pixel_size = 40;
  spec.provenance = {{"model", "test"}, {"model_hash", "m1"}, {"model_version", "test-m1"}};
  create_cube(cube, spec);
  const CubeWriter writer(cube, spec);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0, 1);
  std::vector<float> centre(kDim);
  for (float& v : centre) v = normal(rng);
  const TileId tiles[] = {TileId{Zone{10, false}, 72, 8}, TileId{Zone{10, false}, 72, 9},
                          TileId{Zone{11, false}, 72, 1}, TileId{Zone{11, false}, 73, 1}};
  Planted planted;
  int cluster_left = kCluster;
  for (const TileId& tile : tiles) {
    TileEmbeddings t(tile, spec);
    std::map<Modality, std::vector<float>> emb;
    std::vector<ChipId> chips;
    for (int pos = 0; pos < kChipsPerTile; ++pos) {
      if (pos % 11 == 5) continue;  // not embedded
      chips.push_back(tile.chip(pos));
      const bool in_cluster = pos % 50 == 7 && cluster_left > 0;
      if (in_cluster) {
        --cluster_left;
        planted.cluster.push_back(tile.chip(pos));
      }
      for (Modality m : spec.modalities) {
        auto& v = emb[m];
        for (int i = 0; i < kDim; ++i)
          v.push_back(in_cluster ? centre[static_cast<std::size_t>(i)] * (m == Modality::s2rgb ? 1.0f : 0.5f) + 0.01f * normal(rng)
                                 : normal(rng) * (pos % 3 == 0 ? 5.0f : 1.0f));
        if (m == Modality::s1amp && pos % 13 == 1 && !in_cluster) {  // this chip has no s1amp
          std::fill(v.end() - kDim, v.end(), std::nanf(""));
          planted.missing_s1amp = tile.chip(pos);
        }
      }
    }
    t.add(chips, emb);
    writer.write_tile(t);
  }
  EXPECT_EQ(cluster_left, 0);
  return planted;
}

}  // namespace eo::test
