#pragma once
// A communicator value with an MPI and a serial implementation, so that the same code
// runs under mpiexec and alone, and tests run both ways. The only MPI user in the
// project (DESIGN.md §6): nothing outside schedulers/ includes <mpi.h>.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace eo {

class Comm {
 public:
  // MPI_COMM_WORLD when MPI is initialised, otherwise the serial communicator.
  static Comm world();
  static Comm serial();
  // For tests of what depends on a rank's place (partitioners, the tile source) without
  // mpiexec: says it is rank `rank` of `size`, and its collectives see this process
  // alone, as the serial communicator's do.
  static Comm stand_in(int rank, int size);

  int rank() const;
  int size() const;
  void barrier() const;
  // Every rank's values, concatenated in rank order, on every rank.
  std::vector<std::int64_t> allgatherv(const std::vector<std::int64_t>& mine) const;
  std::int64_t allreduce_sum(std::int64_t value) const;
  // Ranks sharing this node (from the launcher's environment), for sizing thread pools.
  int ranks_on_node() const;
  // In place, element-wise over all ranks.
  void allreduce_sum(float* data, std::size_t count) const;
  // Rank 0's text, on every rank (the others' argument is ignored).
  std::string broadcast(const std::string& text) const;
  // Every rank's `count` floats, in rank order, on every rank (same count everywhere).
  std::vector<float> allgather(const float* data, std::size_t count) const;

  // Rank 0 tries, every rank learns the outcome: rank 0 calls `attempt` (returning a
  // std::string or nothing), and every rank returns what it returned or throws what it
  // threw (a ConfigError as a ConfigError, anything else as a std::runtime_error, with
  // rank 0's message), so that no rank waits for, or goes on without, one that failed.
  // Collective; the other ranks do not call `attempt`.
  template <class F>
  auto rank_zero_tries(F&& attempt) const {
    if constexpr (std::is_void_v<std::invoke_result_t<F&>>)
      share_rank_zero_outcome([&] {
        attempt();
        return std::string();
      });
    else
      return share_rank_zero_outcome(std::function<std::string()>(attempt));
  }

  class Impl;

 private:
  std::string share_rank_zero_outcome(const std::function<std::string()>& attempt) const;
  explicit Comm(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
  friend class SharedCounter;
};

// Initialises MPI for the lifetime of the object when the process was started by an MPI
// launcher (mpirun, mpiexec, srun); a plain start stays serial and needs no MPI daemon.
class MpiSession {
 public:
  MpiSession(int& argc, char**& argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  bool active() const { return active_; }
  // Whether the environment says an MPI launcher started us.
  static bool launched_by_mpi();
  // Ends every rank of the job: one rank's fatal error must not leave the others
  // waiting for it forever. Does nothing when MPI is not running.
  static void abort_all(int code);

 private:
  bool active_ = false;
};

// A counter every rank can fetch-and-increment: an MPI one-sided window on rank 0, so no
// rank has to serve requests. Collective to create and to destroy.
class SharedCounter {
 public:
  explicit SharedCounter(const Comm& comm);
  ~SharedCounter();
  SharedCounter(const SharedCounter&) = delete;
  SharedCounter& operator=(const SharedCounter&) = delete;
  std::int64_t fetch_add(std::int64_t delta);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Hands out positions 0..n-1 of a walking order, each to exactly one rank, on demand.
class DynamicQueue {
 public:
  DynamicQueue(const Comm& comm, std::vector<std::size_t> order);
  std::optional<std::size_t> next();

 private:
  std::vector<std::size_t> order_;
  SharedCounter counter_;
};

}  // namespace eo
