// The outcome of one content scan, shared by the ClamAV and YARA engines.
#pragma once

#include <string>
#include <string_view>

namespace pc::inspect {

struct Verdict {
  enum Kind {
    clean,        // scanned completely, nothing found
    infected,     // a signature or rule matched: `name` is the threat (or "namespace:rule")
    unscannable,  // could not be scanned completely: encrypted archive, a limit exceeded
    error,        // the engine failed (I/O, memory, corrupt input it could not handle)
  };
  Kind kind = clean;
  std::string name;  // threat name, or the reason for unscannable / error

  bool operator==(const Verdict&) const = default;
};

inline std::string_view kind_name(Verdict::Kind k) {
  switch (k) {
    case Verdict::clean:
      return "clean";
    case Verdict::infected:
      return "infected";
    case Verdict::unscannable:
      return "unscannable";
    case Verdict::error:
      return "error";
  }
  return "error";
}

}  // namespace pc::inspect
