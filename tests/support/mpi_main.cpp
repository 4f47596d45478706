// main() of the GoogleTest programs that run serially and under mpiexec: MPI is started
// when a launcher started us, only rank 0 prints the report, and every rank's result
// counts in the exit code.

#include <gtest/gtest.h>

#include "schedulers/comm.hpp"

int main(int argc, char** argv) {
  eo::MpiSession mpi(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  const eo::Comm comm = eo::Comm::world();
  if (comm.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int failed = RUN_ALL_TESTS() != 0;
  return comm.allreduce_sum(failed) > 0 ? 1 : 0;
}
