#include "policy/facts.h"

namespace pc::policy {

std::string_view to_string(Reputation r) {
  switch (r) {
    case Reputation::dangerous:
      return "dangerous";
    case Reputation::highly_suspicious:
      return "highly suspicious";
    case Reputation::suspicious:
      return "suspicious";
    case Reputation::unknown:
      return "untested";
    case Reputation::clean:
      return "clean";
  }
  return "untested";
}

bool reputation_matches(Reputation r, Sensitivity s) {
  switch (s) {
    case Sensitivity::low:
      return r == Reputation::dangerous;
    case Sensitivity::medium:
      return r == Reputation::dangerous || r == Reputation::highly_suspicious;
    case Sensitivity::high:
      return r != Reputation::clean;
  }
  return false;
}

}  // namespace pc::policy
