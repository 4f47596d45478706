#pragma once
// What a process has used: wall time since a moment, and memory (to see that it stays
// bounded tile after tile).

#include <chrono>

namespace eo {

double seconds_since(std::chrono::steady_clock::time_point t0);
double peak_rss_mib();
// Resident memory now (/proc/self/statm), to see whether it grows from tile to tile.
double current_rss_mib();

}  // namespace eo
