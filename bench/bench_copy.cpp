// The machine's copy bandwidth (copy_rate.hpp) on its own, for the scripts whose rates run
// through eo-pipeline: {"copy_msamples_per_s": N} on stdout.
#include <cstdio>

#include "bench/copy_rate.hpp"

int main() {
  std::printf("{\"copy_msamples_per_s\": %.1f}\n", copy_samples_per_s() / 1e6);
  return 0;
}
