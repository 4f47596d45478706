#pragma once
// Every choice of the config, the command line and the journal (resampling, partition,
// dtype, a tile's status, ...) is an enum, parsed once at the edge from one table of
// names (DESIGN.md §7), never a string compared further in. The first name of a value in
// its table is its canonical one: what the resolved config, reports, hashes and files
// say; the others are aliases the ecosystem uses (GDAL's `near` is also `nearest`).

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/core/error.hpp"

namespace eo {

template <class E>
struct ChoiceName {
  std::string_view name;
  E value;
};

// Specialised once per choice (pipeline/core/choices.hpp):
//   template <> struct ChoiceTable<E> { static constexpr std::string_view what = "...";
//                                       static constexpr ChoiceName<E> names[] = {{...}, ...}; };
template <class E>
struct ChoiceTable;

template <class E>
constexpr std::optional<E> parse_choice(std::string_view name) {
  for (const auto& n : ChoiceTable<E>::names)
    if (n.name == name) return n.value;
  return std::nullopt;
}

// The canonical name.
template <class E>
constexpr std::string_view name_of(E value) {
  for (const auto& n : ChoiceTable<E>::names)
    if (n.value == value) return n.name;
  throw std::logic_error("a choice value without a name");
}

template <class E>
std::string name_str(E value) {
  return std::string(name_of(value));
}

// Each value once, in the table's order.
template <class E>
std::vector<E> choice_values() {
  std::vector<E> out;
  for (const auto& n : ChoiceTable<E>::names)
    if (std::find(out.begin(), out.end(), n.value) == out.end()) out.push_back(n.value);
  return out;
}

// Every name accepted, aliases included.
template <class E>
std::vector<std::string> choice_names() {
  std::vector<std::string> out;
  for (const auto& n : ChoiceTable<E>::names) out.emplace_back(n.name);
  return out;
}

// "near (or nearest), bilinear, cubic": what a message offers.
template <class E>
std::string choice_list() {
  std::string out;
  for (E v : choice_values<E>()) {
    if (!out.empty()) out += ", ";
    out += name_of(v);
    std::string aliases;
    for (const auto& n : ChoiceTable<E>::names)
      if (n.value == v && n.name != name_of(v)) aliases.append(aliases.empty() ? "" : " or ").append(n.name);
    if (!aliases.empty()) out.append(" (or ").append(aliases).append(")");
  }
  return out;
}

// Why `name` is not a choice, or nothing when it is.
template <class E>
std::string choice_problem(std::string_view name) {
  if (parse_choice<E>(name)) return "";
  std::string out = "'";
  out.append(clipped(name)).append("' is not ").append(ChoiceTable<E>::what).append("; one of: ").append(choice_list<E>());
  return out;
}

// For names read from files the project wrote (a journal, a cube's layout): throws
// std::invalid_argument prefixed by `where`.
template <class E>
E parse_choice_or_throw(std::string_view name, std::string_view where) {
  if (const auto v = parse_choice<E>(name)) return *v;
  std::string what(where);
  what.append(": ").append(choice_problem<E>(name));
  throw std::invalid_argument(what);
}

}  // namespace eo
