#include "pipeline/driver/prefetcher.hpp"

#include "pipeline/core/resources.hpp"

namespace eo {

Prefetcher::Prefetcher(TileReader read, const Plan& plan) : read_(std::move(read)), plan_(plan), thread_([this] { loop(); }) {}

Prefetcher::~Prefetcher() {
  jobs_.close();
  rows_.close();
  thread_.join();
}

void Prefetcher::loop() {
  struct Closed {};  // the loop went away: stop reading
  while (const auto index = jobs_.pop()) {
    const auto t0 = std::chrono::steady_clock::now();
    RowItem end;
    try {
      read_(plan_.tiles[*index], [&](ChipBatch&& row) {
        if (!rows_.push(RowItem{std::move(row), {}, 0})) throw Closed{};
      });
    } catch (const Closed&) {
      return;
    } catch (const std::exception& e) {
      end.error = e.what();
    }
    end.read_seconds = seconds_since(t0);
    if (!rows_.push(std::move(end))) return;
  }
  rows_.close();
}

}  // namespace eo
