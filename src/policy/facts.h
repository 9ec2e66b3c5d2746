// What the policy looks at: the facts of one transaction, filled by the front end (proxy or
// ICAP) and by classification. Views only: everything points into the transaction, which
// outlives the decision.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/cidr.h"
#include "wire/http.h"

namespace pc::policy {

// Reputation levels, worst first. `unknown` means no feed knows the URL ("untested").
enum class Reputation : std::uint8_t { dangerous, highly_suspicious, suspicious, unknown, clean };
std::string_view to_string(Reputation r);

// Sensitivity thresholds (a rule condition, or the reputation action):
//   low: dangerous; medium: + highly suspicious; high: + suspicious and unknown.
enum class Sensitivity : std::uint8_t { low, medium, high };
bool reputation_matches(Reputation r, Sensitivity s);

// Up to 8 categories per URL (all sources together), as compiled category ids.
struct CategoryHits {
  static constexpr std::size_t kMax = 8;
  std::uint16_t ids[kMax] = {};
  std::uint8_t count = 0;
  void add(std::uint16_t id) {
    for (std::uint8_t i = 0; i < count; ++i)
      if (ids[i] == id) return;
    if (count < kMax) ids[count++] = id;
  }
  bool has(std::uint16_t id) const {
    for (std::uint8_t i = 0; i < count; ++i)
      if (ids[i] == id) return true;
    return false;
  }
};

enum class Phase : std::uint8_t { request, response };

struct Facts {
  // who
  base::IpBytes client;
  bool guest = false;
  std::string_view listener;
  std::string_view user;                // empty when unknown
  std::span<const std::string> groups;  // empty when unknown
  // what
  std::string_view method;  // "GET", "CONNECT", ...
  std::string_view scheme;  // "http" or "https" (CONNECT: "https")
  std::string_view host;    // lower-case, no trailing dot, no brackets
  std::uint16_t port = 0;
  std::string_view path;                     // path + query ("/" for CONNECT)
  std::string_view url;                      // scheme://host[:port]path, as matched by URL lists
  const wire::Head* request_head = nullptr;  // for header conditions; may be null
  // when
  std::chrono::system_clock::time_point time;
  // classification (filled by Policy::classify)
  CategoryHits categories;
  Reputation reputation = Reputation::unknown;
  // response phase
  std::string_view content_type;  // media type without parameters, lower-case
  std::string_view file_type;     // true file type when known ("exe", "zip", ...)
};

}  // namespace pc::policy
