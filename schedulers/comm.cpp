#include "schedulers/comm.hpp"

#include <cstdlib>
#include <fmt/format.h>
#include <mpi.h>
#include <algorithm>
#include <stdexcept>

#include "pipeline/core/error.hpp"  // ConfigError

namespace eo {

class Comm::Impl {
 public:
  explicit Impl(bool mpi, int rank = 0, int size = 1) : mpi_(mpi), rank_(rank), size_(size) {}
  bool mpi() const { return mpi_; }
  int rank() const { return rank_; }  // without MPI
  int size() const { return size_; }

 private:
  bool mpi_;
  int rank_, size_;
};

namespace {
bool mpi_running() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    throw std::runtime_error(fmt::format("{} failed: {}", what, std::string(text, static_cast<std::size_t>(len))));
  }
}
}  // namespace

Comm Comm::world() { return Comm(std::make_shared<Impl>(mpi_running())); }
Comm Comm::serial() { return Comm(std::make_shared<Impl>(false)); }
Comm Comm::stand_in(int rank, int size) {
  if (size < 1 || rank < 0 || rank >= size) throw std::invalid_argument(fmt::format("no rank {} of {}", rank, size));
  return Comm(std::make_shared<Impl>(false, rank, size));
}

int Comm::rank() const {
  if (!impl_->mpi()) return impl_->rank();
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int Comm::size() const {
  if (!impl_->mpi()) return impl_->size();
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

void Comm::barrier() const {
  if (impl_->mpi()) check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
}

std::vector<std::int64_t> Comm::allgatherv(const std::vector<std::int64_t>& mine) const {
  if (!impl_->mpi()) return mine;
  const int n = size();
  int count = static_cast<int>(mine.size());
  std::vector<int> counts(static_cast<std::size_t>(n)), displs(static_cast<std::size_t>(n));
  check(MPI_Allgather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD), "MPI_Allgather");
  int total = 0;
  for (int r = 0; r < n; ++r) {
    displs[static_cast<std::size_t>(r)] = total;
    total += counts[static_cast<std::size_t>(r)];
  }
  std::vector<std::int64_t> all(static_cast<std::size_t>(total));
  check(MPI_Allgatherv(mine.data(), count, MPI_INT64_T, all.data(), counts.data(), displs.data(), MPI_INT64_T,
                       MPI_COMM_WORLD),
        "MPI_Allgatherv");
  return all;
}

std::int64_t Comm::allreduce_sum(std::int64_t value) const {
  if (!impl_->mpi()) return value;
  std::int64_t sum = 0;
  check(MPI_Allreduce(&value, &sum, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
  return sum;
}

void Comm::allreduce_sum(float* data, std::size_t count) const {
  if (!impl_->mpi()) return;
  // MPI counts are int: large buffers go in pieces.
  constexpr std::size_t kPiece = std::size_t{1} << 28;
  for (std::size_t done = 0; done < count; done += kPiece)
    check(MPI_Allreduce(MPI_IN_PLACE, data + done, static_cast<int>(std::min(kPiece, count - done)), MPI_FLOAT, MPI_SUM,
                        MPI_COMM_WORLD),
          "MPI_Allreduce");
}

std::vector<float> Comm::allgather(const float* data, std::size_t count) const {
  if (!impl_->mpi()) return std::vector<float>(data, data + count);
  std::vector<float> all(count * static_cast<std::size_t>(size()));
  check(MPI_Allgather(data, static_cast<int>(count), MPI_FLOAT, all.data(), static_cast<int>(count), MPI_FLOAT, MPI_COMM_WORLD),
        "MPI_Allgather");
  return all;
}

std::string Comm::broadcast(const std::string& text) const {
  if (!impl_->mpi()) return text;
  std::int64_t size = static_cast<std::int64_t>(text.size());
  check(MPI_Bcast(&size, 1, MPI_INT64_T, 0, MPI_COMM_WORLD), "MPI_Bcast");
  std::string out = rank() == 0 ? text : std::string(static_cast<std::size_t>(size), '\0');
  // MPI counts are int: large texts go in pieces.
  constexpr std::int64_t kPiece = std::int64_t{1} << 30;
  for (std::int64_t done = 0; done < size; done += kPiece)
    check(MPI_Bcast(out.data() + done, static_cast<int>(std::min(kPiece, size - done)), MPI_CHAR, 0, MPI_COMM_WORLD),
          "MPI_Bcast");
  return out;
}

std::string Comm::share_rank_zero_outcome(const std::function<std::string()>& attempt) const {
  // The outcome travels as one text: a tag, then the value or the message.
  constexpr char kValue = 'v', kConfigError = 'c', kError = 'e';
  std::string outcome;
  if (rank() == 0) {
    try {
      outcome = kValue + attempt();
    } catch (const ConfigError& e) {
      outcome = kConfigError + std::string(e.what());
    } catch (const std::exception& e) {
      outcome = kError + std::string(e.what());
    }
  }
  outcome = broadcast(outcome);
  if (outcome.front() == kConfigError) throw ConfigError(outcome.substr(1));
  if (outcome.front() == kError) throw std::runtime_error(outcome.substr(1));
  return outcome.substr(1);
}

int Comm::ranks_on_node() const {
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"})
    if (const char* s = std::getenv(v)) return std::max(1, std::atoi(s));
  return size();
}

bool MpiSession::launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_STEP_NUM_TASKS"})
    if (std::getenv(v)) return true;
  return false;
}

MpiSession::MpiSession(int& argc, char**& argv) {
  if (!launched_by_mpi() || mpi_running()) return;
  check(MPI_Init(&argc, &argv), "MPI_Init");
  // Errors come back as codes that check() turns into exceptions with a message.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  active_ = true;
}

void MpiSession::abort_all(int code) {
  if (mpi_running()) {
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size > 1) MPI_Abort(MPI_COMM_WORLD, code);
  }
}

MpiSession::~MpiSession() {
  if (active_) MPI_Finalize();
}

struct SharedCounter::State {
  bool mpi = false;
  std::int64_t local = 0;
  MPI_Win win = MPI_WIN_NULL;
  std::int64_t* base = nullptr;
};

SharedCounter::SharedCounter(const Comm& comm) : state_(std::make_unique<State>()) {
  state_->mpi = comm.impl_->mpi();
  if (!state_->mpi) return;
  const MPI_Aint bytes = comm.rank() == 0 ? sizeof(std::int64_t) : 0;
  check(MPI_Win_allocate(bytes, sizeof(std::int64_t), MPI_INFO_NULL, MPI_COMM_WORLD, &state_->base, &state_->win),
        "MPI_Win_allocate for the dynamic tile counter (set schedule.partition: static if this MPI has no one-sided support)");
  MPI_Win_set_errhandler(state_->win, MPI_ERRORS_RETURN);
  if (comm.rank() == 0) {
    check(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, state_->win), "MPI_Win_lock");
    *state_->base = 0;
    check(MPI_Win_unlock(0, state_->win), "MPI_Win_unlock");
  }
  comm.barrier();  // nobody fetches before rank 0 has zeroed the counter
}

SharedCounter::~SharedCounter() {
  if (state_->mpi && state_->win != MPI_WIN_NULL) MPI_Win_free(&state_->win);
}

std::int64_t SharedCounter::fetch_add(std::int64_t delta) {
  if (!state_->mpi) {
    const std::int64_t before = state_->local;
    state_->local += delta;
    return before;
  }
  std::int64_t before = 0;
  check(MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, state_->win), "MPI_Win_lock");
  check(MPI_Fetch_and_op(&delta, &before, MPI_INT64_T, 0, 0, MPI_SUM, state_->win), "MPI_Fetch_and_op");
  check(MPI_Win_unlock(0, state_->win), "MPI_Win_unlock");
  return before;
}

DynamicQueue::DynamicQueue(const Comm& comm, std::vector<std::size_t> order)
    : order_(std::move(order)), counter_(comm) {}

std::optional<std::size_t> DynamicQueue::next() {
  const std::int64_t position = counter_.fetch_add(1);
  if (position < 0 || static_cast<std::size_t>(position) >= order_.size()) return std::nullopt;
  return order_[static_cast<std::size_t>(position)];
}

}  // namespace eo
