// Small string helpers. Pure.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

namespace pc::base {

inline char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

inline std::string to_lower(std::string_view s) {
  std::string r(s);
  for (auto& c : r) c = ascii_lower(c);
  return r;
}

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls f(token) for each comma-separated (or `sep`-separated, e.g. ';' for Cookie),
// trimmed, non-empty element of a field value.
template <class F>
void for_each_list_item(std::string_view v, F&& f, char sep = ',') {
  while (!v.empty()) {
    auto comma = v.find(sep);
    auto item = trim(v.substr(0, comma));
    if (!item.empty()) f(item);
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
}

inline bool parse_u64(std::string_view s, std::uint64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

// True when host equals domain or is a subdomain of it (both lower-case, no trailing dot).
inline bool domain_matches(std::string_view host, std::string_view domain) {
  if (host.size() == domain.size()) return host == domain;
  return host.size() > domain.size() && host.ends_with(domain) &&
         host[host.size() - domain.size() - 1] == '.';
}

}  // namespace pc::base
