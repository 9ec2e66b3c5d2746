// IP networks (CIDR) for access lists. Pure: no I/O.
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace pc::base {

// An IPv4 or IPv6 address as 16 bytes; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d) so that
// dual-stack sockets and plain IPv4 sockets compare alike.
struct IpBytes {
  std::array<std::uint8_t, 16> b{};

  static IpBytes from_v4(const std::array<std::uint8_t, 4>& v4) {
    IpBytes r;
    r.b[10] = 0xff;
    r.b[11] = 0xff;
    std::memcpy(r.b.data() + 12, v4.data(), 4);
    return r;
  }
  static IpBytes from_v6(const std::array<std::uint8_t, 16>& v6) {
    IpBytes r;
    r.b = v6;
    return r;
  }
  bool is_v4() const {
    static constexpr std::uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::memcmp(b.data(), prefix, 12) == 0;
  }
  bool operator==(const IpBytes&) const = default;
};

inline std::optional<IpBytes> parse_ip(std::string_view text) {
  if (text.find('\0') != std::string_view::npos) return std::nullopt;
  std::string s(text);
  if (s.size() > 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
  std::array<std::uint8_t, 16> v6{};
  std::array<std::uint8_t, 4> v4{};
  if (inet_pton(AF_INET, s.c_str(), v4.data()) == 1) return IpBytes::from_v4(v4);
  if (inet_pton(AF_INET6, s.c_str(), v6.data()) == 1) return IpBytes::from_v6(v6);
  return std::nullopt;
}

struct Cidr {
  IpBytes net;
  int prefix = 128;  // in the 128-bit space (IPv4 prefixes are stored + 96)

  bool contains(const IpBytes& a) const {
    int full = prefix / 8, rest = prefix % 8;
    if (std::memcmp(a.b.data(), net.b.data(), static_cast<std::size_t>(full)) != 0) return false;
    if (rest == 0) return true;
    auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return (a.b[static_cast<std::size_t>(full)] & mask) ==
           (net.b[static_cast<std::size_t>(full)] & mask);
  }

  // "10.0.0.0/8", "fc00::/7", or a bare address (a host network).
  static std::optional<Cidr> parse(std::string_view text) {
    auto slash = text.find('/');
    auto ip = parse_ip(text.substr(0, slash));
    if (!ip) return std::nullopt;
    bool v4 = ip->is_v4();
    int max = v4 ? 32 : 128;
    int len = max;
    if (slash != std::string_view::npos) {
      auto digits = text.substr(slash + 1);
      if (digits.empty() || digits.size() > 3) return std::nullopt;
      len = 0;
      for (char c : digits) {
        if (c < '0' || c > '9') return std::nullopt;
        len = len * 10 + (c - '0');
      }
      if (len > max) return std::nullopt;
    }
    Cidr c;
    c.net = *ip;
    c.prefix = v4 ? len + 96 : len;
    return c;
  }
};

}  // namespace pc::base
