#pragma once
// Independent jobs on a few threads: each thread takes the next job not yet taken, so
// long and short jobs balance. The first job to throw stops the handing out of further
// jobs, and its exception is rethrown once every thread has finished its current one.

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace eo {

// Calls job(i) for i in [0, n), on `threads` threads at most (the caller's among them).
inline void parallel_for(std::size_t n, int threads, const std::function<void(std::size_t)>& job) {
  std::atomic<std::size_t> next{0};
  std::mutex mutex;
  std::exception_ptr error;
  const auto work = [&] {
    for (std::size_t i; (i = next++) < n;) {
      try {
        job(i);
      } catch (...) {
        const std::lock_guard lock(mutex);
        if (!error) error = std::current_exception();
        next = n;
      }
    }
  };
  std::vector<std::thread> pool;
  const std::size_t helpers = std::min(n, static_cast<std::size_t>(std::max(1, threads))) - (n > 0 ? 1 : 0);
  for (std::size_t t = 0; t < helpers; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace eo
