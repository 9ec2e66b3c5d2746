#include "policy/atoms.h"

#include <re2/filtered_re2.h>

namespace pc::policy::detail {

std::optional<std::vector<std::string>> required_atoms(
    const std::vector<std::string_view>& patterns, const re2::RE2::Options& opt,
    std::string_view given) {
  re2::FilteredRE2 filter(2);  // atoms of at least 2 bytes
  for (auto pattern : patterns) {
    int id = 0;
    if (filter.Add(re2::StringPiece(pattern.data(), pattern.size()), opt, &id) != re2::RE2::NoError)
      return std::nullopt;
  }
  std::vector<std::string> atoms;
  filter.Compile(&atoms);
  // The atoms every text holds (in `given`) are taken as present and not searched for; the
  // expressions must not be able to match on those alone.
  std::vector<int> present;
  std::vector<std::string> wanted;
  for (std::size_t i = 0; i < atoms.size(); ++i) {
    if (given.find(atoms[i]) != std::string_view::npos) {
      present.push_back(static_cast<int>(i));
      continue;
    }
    for (char ch : atoms[i]) {
      const auto c = static_cast<unsigned char>(ch);
      if (c >= 0x80 || (c >= 'A' && c <= 'Z')) return std::nullopt;
    }
    wanted.push_back(std::move(atoms[i]));
  }
  std::vector<int> unfiltered;  // the expressions that may match a text with only those
  filter.AllPotentials(present, &unfiltered);
  if (!unfiltered.empty() || wanted.empty()) return std::nullopt;
  return wanted;
}

}  // namespace pc::policy::detail
