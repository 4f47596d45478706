#pragma once
// The machine's copy bandwidth in floats per second (the data path's limit: a sample read
// and a float written), the best of a few copies of 64 MB, far beyond any cache.

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

inline double copy_samples_per_s() {
  const std::size_t n = std::size_t{16} << 20;
  std::vector<float> a(n, 1.0f), b(n, 0.0f);
  double best = 1e9;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    std::memcpy(b.data(), a.data(), n * sizeof(float));
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    a[static_cast<std::size_t>(i)] = b[static_cast<std::size_t>(i) + 1];  // keeps the copies
  }
  return static_cast<double>(n) / best;
}
