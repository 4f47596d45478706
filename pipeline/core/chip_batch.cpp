#include "pipeline/core/chip_batch.hpp"

#include <nlohmann/json.hpp>

namespace eo {

std::string observations_json(const std::vector<std::vector<ObservationInfo>>& observations) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& season : observations) {
    nlohmann::json s = nlohmann::json::array();
    for (const ObservationInfo& o : season) s.push_back({{"id", o.id}, {"time", o.time}});
    j.push_back(std::move(s));
  }
  return j.dump();
}

std::vector<std::vector<ObservationInfo>> observations_from_json(const std::string& text) {
  std::vector<std::vector<ObservationInfo>> out;
  for (const auto& season : nlohmann::json::parse(text)) {
    out.emplace_back();
    for (const auto& o : season) out.back().push_back({o.at("id").get<std::string>(), o.at("time").get<std::string>()});
  }
  return out;
}

}  // namespace eo
