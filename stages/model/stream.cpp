// Embedder::Stream: chips of any rows and tiles through the model in full batches, the
// copies to and from the device overlapped with the host's work.

#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <chrono>
#include <deque>
#include <fmt/format.h>
#include <set>
#include <thread>

#include "pipeline/core/error.hpp"
#include "stages/model/embedder_impl.hpp"
#include "stages/model/trainer.hpp"

namespace eo {

// The batches of a Stream: chips staged on the host, then in flight on the device.
struct Embedder::Stream::State {
  Embedder::Impl& impl;
  const Normalisation& norm;
  double min_valid;
  std::size_t batch;
  Embedded embedded;
  Failed failed;
  bool cuda;
  int size = 0;  // chip pixels per side, from the first row

  struct Staged {
    std::map<Modality, torch::Tensor> values, masks;  // [batch, c, s, s], [batch, c]
    std::set<Modality> present;                       // modalities any staged chip has
    std::vector<std::pair<std::uint64_t, ChipId>> chips;
  };
  struct Flight {
    std::vector<std::pair<std::uint64_t, ChipId>> chips;
    std::map<Modality, torch::Tensor> out, present;  // on the host once `ready`
    std::optional<c10::Event> ready;                 // CUDA: the copies back are done
    std::string error;
  };
  std::array<Staged, 2> staging;  // one filled while the other's copy may still run
  std::size_t filling = 0;
  std::deque<Flight> flights;

  State(Embedder::Impl& i, const Normalisation& n, double mv, int b, Embedded e, Failed f)
      : impl(i), norm(n), min_valid(mv), batch(static_cast<std::size_t>(b)), embedded(std::move(e)), failed(std::move(f)),
        cuda(i.device.is_cuda()) {}

  void allocate(Staged& st, int s) {
    const auto host = torch::TensorOptions().dtype(torch::kFloat).pinned_memory(cuda);
    for (Modality m : impl.modalities) {
      const auto it = norm.channels.find(m);
      if (it == norm.channels.end()) continue;
      const long c = static_cast<long>(it->second.size());
      st.values[m] = torch::zeros({static_cast<long>(batch), c, s, s}, host);
      st.masks[m] = torch::zeros({static_cast<long>(batch), c}, host);
    }
  }

  void stage(std::uint64_t tag, const ChipBatch& row, std::size_t k) {
    Staged& st = staging[filling];
    if (st.values.empty()) allocate(st, size);
    const std::size_t j = st.chips.size(), plane = static_cast<std::size_t>(size) * size;
    for (auto& [m, values] : st.values) {
      const ModalityChips* mc = row.find(m);
      auto mask = st.masks.at(m)[static_cast<long>(j)];
      if (!mc) {  // the row does not have it: no channel of it counts
        mask.zero_();
        continue;
      }
      normalise_chip(*mc, k, plane, norm.channels.at(m), min_valid, values[static_cast<long>(j)].data_ptr<float>(),
                     mask.data_ptr<float>());
      st.present.insert(m);
    }
    st.chips.emplace_back(tag, row.chips[k]);
    if (st.chips.size() == batch) launch();
  }

  // The staged batch to the device and through the model, without waiting for it.
  void launch() {
    Staged& st = staging[filling];
    if (st.chips.empty()) return;
    Flight f;
    f.chips = std::move(st.chips);
    const long n = static_cast<long>(f.chips.size());
    try {
      c10::InferenceMode inference;
      std::map<Modality, torch::Tensor> x, masks;
      for (Modality m : st.present) {
        x[m] = resize_to_input(st.values.at(m).narrow(0, 0, n).to(impl.device, cuda), impl.model_config.input);
        masks[m] = st.masks.at(m).narrow(0, 0, n).to(impl.device, cuda);
      }
      // Non-blocking copies back land in pinned memory (ATen pins them itself).
      const auto back = torch::TensorOptions().device(torch::kCPU);
      for (const auto& [m, e] : impl.forward(x, masks)) {
        f.out[m] = e.to(back.dtype(torch::kFloat), cuda);
        f.present[m] = (masks.at(m).sum(1) > 0).to(back.dtype(torch::kBool), cuda);
      }
      if (cuda) {
        const c10::impl::VirtualGuardImpl guard(impl.device.type());
        f.ready.emplace(impl.device.type());
        f.ready->record(guard.getStream(impl.device));
      }
    } catch (const std::exception& e) {
      f.error = detail_of(e);  // the sink says it was the embedding
    }
    st.chips.clear();
    st.present.clear();
    flights.push_back(std::move(f));
    filling = 1 - filling;
    // Two batches in flight at most: the other staging buffer is free once the older is back.
    while (flights.size() > (cuda ? 1u : 0u)) complete();
  }

  // The oldest batch in flight, back to the caller.
  void complete() {
    Flight f = std::move(flights.front());
    flights.pop_front();
    const std::size_t dim = static_cast<std::size_t>(impl.model_config.embed);
    std::map<std::uint64_t, std::pair<std::vector<ChipId>, std::map<Modality, std::vector<float>>>> by_tag;
    try {
      if (f.ready)
        while (!f.ready->query()) std::this_thread::sleep_for(std::chrono::microseconds(50));
      if (f.error.empty())
        for (std::size_t j = 0; j < f.chips.size(); ++j) {
          auto& [chips, embeddings] = by_tag[f.chips[j].first];
          chips.push_back(f.chips[j].second);
          for (Modality m : impl.modalities) {
            auto& dst = embeddings[m];
            dst.resize(chips.size() * dim, std::nanf(""));
            const auto out = f.out.find(m);
            if (out != f.out.end() && f.present.at(m)[static_cast<long>(j)].item<bool>())
              take_embedding(out->second.data_ptr<float>() + j * dim, dim, dst.data() + (chips.size() - 1) * dim, m);
          }
        }
    } catch (const std::exception& e) {
      f.error = detail_of(e);
    }
    if (!f.error.empty()) {
      std::map<std::uint64_t, std::size_t> chips;
      for (const auto& c : f.chips) ++chips[c.first];
      for (const auto& [tag, n] : chips) failed(tag, n, f.error);
      return;
    }
    for (const auto& [tag, result] : by_tag) embedded(tag, result.first, result.second);
  }
};

Embedder::Stream::Stream(const Embedder& embedder, const Normalisation& norm, double min_valid, int batch,
                         Embedded embedded, Failed failed)
    : state_(std::make_unique<State>(*embedder.impl_, norm, min_valid, std::max(1, batch), std::move(embedded),
                                     std::move(failed))) {}

Embedder::Stream::~Stream() = default;

void Embedder::Stream::add(std::uint64_t tag, const ChipBatch& row, const std::vector<bool>& use) {
  State& s = *state_;
  // Everything that can refuse the row is checked before any chip is taken.
  if (s.size == 0) s.size = row.size;
  if (row.size != s.size)
    throw StageError("embed", fmt::format("chips of {} px after chips of {} px in one stream", row.size, s.size));
  check_channels(row, s.norm, s.impl.modalities);
  std::vector<ChipId> unused;
  for (std::size_t k = 0; k < row.chips.size(); ++k)
    if (!use[k]) unused.push_back(row.chips[k]);
  if (!unused.empty()) {
    std::map<Modality, std::vector<float>> none;
    for (Modality m : s.impl.modalities)
      none[m].assign(unused.size() * static_cast<std::size_t>(s.impl.model_config.embed), std::nanf(""));
    s.embedded(tag, unused, none);
  }
  for (std::size_t k = 0; k < row.chips.size(); ++k)
    if (use[k]) s.stage(tag, row, k);
}

void Embedder::Stream::flush() {
  state_->launch();
  while (!state_->flights.empty()) state_->complete();
}

}  // namespace eo
