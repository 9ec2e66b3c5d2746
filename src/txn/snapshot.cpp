#include "txn/snapshot.h"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

namespace pc::txn {

bool Snapshot::is_self(const base::IpBytes& a, std::uint16_t port) const {
  if (std::find(own_ports.begin(), own_ports.end(), port) == own_ports.end()) return false;
  static const auto loop4 = *base::Cidr::parse("127.0.0.0/8");
  static const auto loop6 = *base::Cidr::parse("::1/128");
  static const auto any4 = *base::Cidr::parse("0.0.0.0/32");
  static const auto any6 = *base::Cidr::parse("::/128");
  if (loop4.contains(a) || loop6.contains(a) || any4.contains(a) || any6.contains(a)) return true;
  return std::find(local_addresses.begin(), local_addresses.end(), a) != local_addresses.end();
}

std::shared_ptr<const Snapshot> make_snapshot(std::shared_ptr<const config::Config> cfg,
                                              std::uint64_t generation) {
  auto s = std::make_shared<Snapshot>();
  s->generation = generation;
  for (const auto& l : cfg->listeners) {
    s->own_ports.push_back(l.port);
    if (auto ip = base::parse_ip(l.address)) s->local_addresses.push_back(*ip);
  }
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) == 0) {
    for (ifaddrs* i = list; i; i = i->ifa_next) {
      if (!i->ifa_addr) continue;
      if (i->ifa_addr->sa_family == AF_INET) {
        std::array<std::uint8_t, 4> b{};
        std::memcpy(b.data(), &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, 4);
        s->local_addresses.push_back(base::IpBytes::from_v4(b));
      } else if (i->ifa_addr->sa_family == AF_INET6) {
        std::array<std::uint8_t, 16> b{};
        std::memcpy(b.data(), &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, 16);
        s->local_addresses.push_back(base::IpBytes::from_v6(b));
      }
    }
    freeifaddrs(list);
  }
  s->config = std::move(cfg);
  return s;
}

}  // namespace pc::txn
