#pragma once
// An approximate nearest-neighbour index of a cube's embeddings (FAISS, from Debian's
// libfaiss-dev), built beside the cube for cubes where the exact pass of `similar` is too
// slow: <cube>/index/<space>.faiss and its card <space>.json. Unit vectors and inner
// products, so its scores are the exact search's cosines (up to the index's coding).

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "stages/downstream/similar.hpp"

namespace faiss {
struct Index;
}

namespace eo {

struct IndexCard {
  std::string space;        // what it holds: "fused", a modality, "concat"
  std::string factory;      // FAISS index_factory string, "IDMap," not included
  int dim = 0;
  std::int64_t vectors = 0;
  int nprobe = 0;           // the default for searches (IVF indexes)
  std::string fingerprint;  // of the cube as it was indexed (cube_fingerprint)
  double build_seconds = 0;
  std::uint64_t bytes = 0;  // of the index file
};

std::filesystem::path index_file(const std::filesystem::path& cube, const std::string& space);

// What the cube's search space is made of now: every written tile's status chunk (its
// size and time; a tile's chunks are rewritten with it), the dtype and the space.
std::string cube_fingerprint(const CubeReader& cube, const SearchSpace& space);

// `factory` "auto": exact ("Flat") up to 100,000 chips, else "IVF<lists>,SQ8" with about
// sqrt(chips) lists, trained on 40 chips a list chosen by their ids (any thread count
// gives the same index), searched with nprobe lists (0: a 64th of them, at least 8; on
// bench/similar_bench.sh's million chips, 16 of 1,024 lists found what 64 find, twice as
// fast as 32).
IndexCard build_index(const CubeReader& cube, const SearchSpace& space, std::string factory, int nprobe, int threads);

// An index read into memory once, for many searches (`serve`), with `nprobe` lists
// searched (0: its card's). Throws ConfigError as index_search does.
class LoadedIndex {
 public:
  LoadedIndex(const CubeReader& cube, const SearchSpace& space, int nprobe = 0);
  ~LoadedIndex();
  std::vector<std::vector<Hit>> search(const std::vector<std::vector<float>>& queries, int k) const;

 private:
  std::unique_ptr<faiss::Index> index_;
};

// The k best chips for each query from the index. Throws ConfigError when there is no
// index of the space, or when the cube has changed since it was built.
std::vector<std::vector<Hit>> index_search(const CubeReader& cube, const SearchSpace& space,
                                           const std::vector<std::vector<float>>& queries, int k, int nprobe);

}  // namespace eo
