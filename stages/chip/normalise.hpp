#pragma once
// Per-modality, per-channel normalisation statistics, computed once from a sample of the
// catalog's sources and stored beside the outputs (and with a model), so that every
// tile and every later run normalises the same way.

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "pipeline/core/modality.hpp"
#include "stages/ingest/catalog.hpp"

namespace eo {

struct ChannelStats {
  double mean = 0;
  double std = 1;
};

struct Normalisation {
  std::map<Modality, std::vector<ChannelStats>> channels;

  std::string to_json() const;
  static Normalisation from_json(const std::string& text, const std::string& source);
  std::string hash() const;
  void save(const std::filesystem::path& file) const;
  static Normalisation load(const std::filesystem::path& file);
};

// From up to `files` evenly spaced sources per modality and season, read decimated on
// `threads` threads (16 at least for remote files); the same statistics for any number.
// Unreadable files are left out and reported through `warn`.
Normalisation compute_normalisation(const Catalog& catalog, const std::vector<Modality>& modalities, int files,
                                    const std::function<void(const std::string&)>& warn = {}, int threads = 1);

}  // namespace eo
