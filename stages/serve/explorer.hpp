#pragma once
// What `eo-pipeline serve` answers, apart from HTTP (stages/serve/server.hpp): the cube's
// outline, a chip (where it is, its status, what it was made from), and the chips most
// like some chips, as JSON. The cube is only read.

#include <filesystem>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "pipeline/core/utm.hpp"
#include "stages/cube/cube.hpp"
#include "stages/downstream/similar.hpp"

namespace eo {

// A chip the question names that the cube does not have (the server's 404); a question
// that cannot be asked is a ConfigError (400).
class NotFound : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Explorer {
 public:
  // Throws std::runtime_error naming the folder when it is not a cube.
  Explorer(const std::filesystem::path& cube, int threads);

  // Zones, modalities, dimensions, dtype, the embedded chips and their extent.
  nlohmann::json cube() const;
  // A chip: id, zone, centre and footprint in lon/lat, status, and what its tile was made
  // from (per modality and season, the observations, and the chip's clear counts).
  nlohmann::json chip(const ChipId& id) const;
  nlohmann::json chip_at(LonLat p) const;
  // The k chips most like the examples' mean (minus the negatives') in `space` (fused, a
  // modality, or concat): from the index `eo-pipeline index` built when there is one and
  // it is the cube's, else by an exact pass over the cube.
  nlohmann::json similar(const Examples& examples, const std::string& space, int k) const;

 private:
  std::filesystem::path path_;
  CubeReader cube_;
  int threads_;
};

}  // namespace eo
