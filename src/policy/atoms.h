// The literals a regular expression's matches need (a prefilter before RE2).
#pragma once

#include <string_view>  // before RE2, which keys its string_view support on it

#include <re2/re2.h>

#include <optional>
#include <string>
#include <vector>

namespace pc::policy::detail {

// The literals ("atoms", lower-case ASCII, at least 2 bytes) one of which every match of
// every expression (compiled with opt) contains, by RE2's analysis (FilteredRE2); none when
// some expression needs no literal (e.g. "^[0-9]+$"), does not compile, or needs a non-ASCII
// one. Atoms found in `given` are taken to be in every text searched ("http" in a URL): they
// are left out, and an expression that may match with only those is one that needs none.
std::optional<std::vector<std::string>> required_atoms(
    const std::vector<std::string_view>& patterns, const re2::RE2::Options& opt,
    std::string_view given = {});

}  // namespace pc::policy::detail
