#pragma once
// What a process has used: wall time since a moment, and memory (to see that it stays
// bounded tile after tile).

#include <chrono>

namespace eo {

double seconds_since(std::chrono::steady_clock::time_point t0);
double peak_rss_mib();
// CPU time of every thread of the process so far (user and system), seconds: what a
// rate per core is measured against.
double cpu_seconds();
// Resident memory now (/proc/self/statm), to see whether it grows from tile to tile.
double current_rss_mib();

// Keeps freed buffers in the process (`run` and `pretrain`, once their model is built).
// glibc serves allocations of more than 128 KB-32 MB with mmap and gives them back on
// free, so every activation of every forward pass, and every buffer of GDAL's warper,
// page-faults anew (GELU on a tiny block's activations ran 4x slower; an aligned read
// of a 10 m row of chips 3x). `prepare` keeps main()'s 256 KiB threshold instead, which
// bounds its memory over many scenes (pipeline/main.cpp).
void keep_freed_memory();

// The machine's physical memory, bytes: what settings that need more are refused against.
double physical_memory_bytes();

}  // namespace eo
