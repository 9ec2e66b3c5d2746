// Fuzzes the hosts file parser the resolver reads /etc/hosts with: every name it keeps is
// what resolve() makes of a name (lower-case, no blank, control character or backslash, one
// final dot removed), and has at least one address, none of them IPv4-mapped IPv6, none twice.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "net/resolver.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const pc::net::HostsTable t = pc::net::parse_hosts(text);
  for (const auto& [name, addresses] : t) {
    FUZZ_CHECK(!name.empty() && name.size() <= 253);
    for (char c : name) {
      const auto u = static_cast<unsigned char>(c);
      FUZZ_CHECK(u > 0x20 && u != 0x7f && c != '\\' && !(c >= 'A' && c <= 'Z'));
    }
    FUZZ_CHECK(!addresses.empty());
    for (std::size_t i = 0; i < addresses.size(); ++i) {
      FUZZ_CHECK(!(addresses[i].is_v6() && addresses[i].to_v6().is_v4_mapped()));
      FUZZ_CHECK(std::count(addresses.begin(), addresses.end(), addresses[i]) == 1);
    }
  }
  return 0;
}
