// Request-target forms (RFC 9112 3.2) and authorities (RFC 3986 3.2, RFC 9110 7.2).
#include "wire/detail.h"
#include "wire/http.h"

namespace pc::wire {

namespace {

constexpr std::size_t kMaxHostBytes = 255;

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// dec-octet "." dec-octet "." dec-octet "." dec-octet, without leading zeros (RFC 3986).
bool is_ipv4(std::string_view s) {
  int octets = 0;
  std::size_t i = 0;
  while (true) {
    const std::size_t begin = i;
    int v = 0;
    while (i < s.size() && is_digit(s[i]) && i - begin < 4) v = v * 10 + (s[i++] - '0');
    const std::size_t len = i - begin;
    if (len == 0 || len > 3 || v > 255 || (len > 1 && s[begin] == '0')) return false;
    if (++octets == 4) return i == s.size();
    if (i == s.size() || s[i] != '.') return false;
    ++i;
  }
}

// IPv6address of RFC 3986 3.2.2 (no zone identifier, no IPvFuture).
bool is_ipv6(std::string_view s) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  int groups = 0;
  bool compressed = false;
  if (n < 2) return false;
  if (s[0] == ':') {
    if (s[1] != ':') return false;
    compressed = true;
    i = 2;
    if (i == n) return true;
  }
  while (i < n) {
    std::size_t j = i;
    while (j < n && detail::has_class(s[j], detail::kHex)) ++j;
    if (j < n && s[j] == '.') {  // embedded IPv4 takes the last two groups
      if (!is_ipv4(s.substr(i))) return false;
      groups += 2;
      i = n;
      break;
    }
    if (j == i || j - i > 4) return false;
    ++groups;
    i = j;
    if (i == n) break;
    if (s[i] != ':') return false;
    if (++i == n) return false;  // trailing single colon
    if (s[i] == ':') {
      if (compressed) return false;
      compressed = true;
      if (++i == n) break;
    }
  }
  return compressed ? groups <= 7 : groups == 8;
}

// True when the last label of a reg-name looks like a number (decimal, or 0x hex): such
// names are read as IPv4 addresses by some resolvers, so only the dotted-quad form is
// accepted.
bool looks_numeric(std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  const std::size_t dot = host.rfind('.');
  std::string_view last = dot == std::string_view::npos ? host : host.substr(dot + 1);
  if (last.empty()) return false;
  if (last.size() >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X')) {
    for (char c : last.substr(2))
      if (!detail::has_class(c, detail::kHex)) return false;
    return true;
  }
  for (char c : last)
    if (!is_digit(c)) return false;
  return true;
}

bool is_reg_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxHostBytes) return false;
  for (char c : s)
    if (!detail::has_class(c, detail::kHostChar)) return false;
  if (looks_numeric(s)) return is_ipv4(s);
  return true;
}

}  // namespace

Error parse_authority(std::string_view authority, std::uint16_t default_port,
                      std::string_view& host, std::uint16_t& port, bool& port_explicit) {
  std::string_view h;
  std::string_view rest;
  if (!authority.empty() && authority[0] == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return Error::bad_host;
    h = authority.substr(1, close - 1);
    if (!is_ipv6(h)) return Error::bad_host;
    rest = authority.substr(close + 1);
  } else {
    const std::size_t colon = authority.find(':');
    h = authority.substr(0, colon);
    if (!is_reg_name(h)) return Error::bad_host;
    rest = colon == std::string_view::npos ? std::string_view{} : authority.substr(colon);
  }
  std::uint16_t p = default_port;
  bool expl = false;
  if (!rest.empty()) {
    if (rest[0] != ':') return Error::bad_host;
    rest.remove_prefix(1);
    // port = 1*5DIGIT in 1..65535 (an empty port is rejected rather than defaulted)
    if (rest.empty() || rest.size() > 5) return Error::bad_host;
    unsigned v = 0;
    for (char c : rest) {
      if (!is_digit(c)) return Error::bad_host;
      v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v == 0 || v > 65535) return Error::bad_host;
    p = static_cast<std::uint16_t>(v);
    expl = true;
  }
  host = h;
  port = p;
  port_explicit = expl;
  return Error::none;
}

Error parse_target(std::string_view method, std::string_view target, Target& out) {
  out = Target{};
  if (target.empty()) return Error::bad_target;
  for (char c : target) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7e || c == '#') return Error::bad_target;
  }

  if (method == "CONNECT") {
    out.form = Target::Form::authority;
    if (parse_authority(target, 0, out.host, out.port, out.port_explicit) != Error::none ||
        !out.port_explicit)
      return Error::bad_target;
    return Error::none;
  }
  if (target == "*") {
    if (method != "OPTIONS") return Error::bad_target;
    out.form = Target::Form::asterisk;
    return Error::none;
  }
  if (target[0] == '/') {
    out.form = Target::Form::origin;
    out.path = target;
    return Error::none;
  }

  // absolute-form: only the http and https schemes, lower-case
  out.form = Target::Form::absolute;
  const std::size_t sep = target.find("://");
  if (sep == std::string_view::npos) return Error::bad_target;
  out.scheme = target.substr(0, sep);
  std::uint16_t dflt = 0;
  if (out.scheme == "http") {
    dflt = 80;
  } else if (out.scheme == "https") {
    dflt = 443;
  } else {
    return Error::bad_target;
  }
  std::string_view rest = target.substr(sep + 3);
  const std::size_t auth_end = rest.find_first_of("/?");
  const std::string_view authority = rest.substr(0, auth_end);
  if (authority.find('@') != std::string_view::npos) return Error::bad_target;  // userinfo
  if (parse_authority(authority, dflt, out.host, out.port, out.port_explicit) != Error::none)
    return Error::bad_target;
  if (auth_end == std::string_view::npos) {
    out.path = "/";
  } else if (rest[auth_end] == '?') {
    // "http://host?query": the origin-form would be "/?query", which is not a view of the
    // target; such targets are rejected.
    return Error::bad_target;
  } else {
    out.path = rest.substr(auth_end);
  }
  return Error::none;
}

}  // namespace pc::wire
