#pragma once
// The job's progress line (DESIGN.md §7): counters every rank adds to, so that rank 0 can
// say how far the whole job is, at most every few seconds.

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "schedulers/comm.hpp"

namespace eo {

class Progress {
 public:
  // Collective, to create and to destroy.
  Progress(const Comm& comm, std::size_t total);
  void skipped();
  void finished(int chips);
  // Rank 0 logs the line when `force`, or when it last did 5 s ago and there is news.
  void report(bool force);

 private:
  SharedCounter tiles_, chips_, worked_;
  int rank_;
  std::size_t total_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
  double last_ = 0;
  std::int64_t said_ = -1;  // tiles at the last progress line
};

}  // namespace eo
