// Invariant checks shared by the fuzz targets: a violated invariant aborts the run.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

namespace pc::wire::fuzz {

// True when v lies inside outer (an empty view anywhere in or at the end of outer counts).
inline bool inside(std::string_view v, std::string_view outer) {
  if (v.empty()) return true;
  return v.data() >= outer.data() && v.data() + v.size() <= outer.data() + outer.size();
}

}  // namespace pc::wire::fuzz
