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

namespace {
void add_local_addresses(Snapshot& s) {
  for (const auto& l : s.config->listeners) {
    s.own_ports.push_back(l.port);
    if (auto ip = base::parse_ip(l.address)) s.local_addresses.push_back(*ip);
  }
  // The monitoring listener too: /metrics and /status must not be reachable through the proxy.
  if (const auto& m = s.config->monitoring; m.enabled) {
    s.own_ports.push_back(m.port);
    if (auto ip = base::parse_ip(m.address)) s.local_addresses.push_back(*ip);
  }
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    if (i->ifa_addr->sa_family == AF_INET) {
      std::array<std::uint8_t, 4> b{};
      std::memcpy(b.data(), &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, 4);
      s.local_addresses.push_back(base::IpBytes::from_v4(b));
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      std::array<std::uint8_t, 16> b{};
      std::memcpy(b.data(), &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, 16);
      s.local_addresses.push_back(base::IpBytes::from_v6(b));
    }
  }
  freeifaddrs(list);
}
}  // namespace

std::shared_ptr<const Snapshot> build_snapshot(std::shared_ptr<const config::Config> cfg,
                                               std::uint64_t generation,
                                               std::vector<std::string>& errors, bool check_only) {
  auto s = std::make_shared<Snapshot>();
  s->generation = generation;
  s->config = std::move(cfg);
  const auto& c = *s->config;
  std::size_t before = errors.size();

  if (c.policy_file.empty()) {
    s->policy = policy::Policy::allow_all();
  } else {
    std::vector<policy::LoadError> perrs;
    s->policy = policy::Policy::load_file(c.policy_file, perrs);
    for (const auto& e : perrs) errors.push_back(policy::format(e));
    if (!s->policy && perrs.empty())
      errors.push_back(c.policy_file.string() + ": cannot load the policy");
  }

  std::vector<std::string> terrs;
  s->templates = pages::Templates::load(c.templates_dir, terrs);
  for (auto& e : terrs) errors.push_back(std::move(e));

  std::string key;
  if (check_only) {
    key = policy::WarnSigner::generate_key();
  } else {
    try {
      key = policy::WarnSigner::load_or_create_key(c.warn_key_file);
    } catch (const std::exception& e) {
      errors.push_back(c.warn_key_file.string() + ": " + e.what());
    }
  }
  if (!key.empty()) s->warn_signer = std::make_shared<policy::WarnSigner>(std::move(key));

  if (errors.size() != before || !s->policy || !s->templates || !s->warn_signer) return nullptr;
  add_local_addresses(*s);
  return s;
}

std::shared_ptr<const Snapshot> with_config(const Snapshot& base,
                                            std::shared_ptr<const config::Config> cfg,
                                            std::uint64_t generation) {
  auto s = std::make_shared<Snapshot>(base);
  s->config = std::move(cfg);
  s->generation = generation;
  s->local_addresses.clear();
  s->own_ports.clear();
  add_local_addresses(*s);
  return s;
}

std::shared_ptr<const Snapshot> with_engines(const Snapshot& base,
                                             std::shared_ptr<const Engines> engines,
                                             std::uint64_t generation) {
  auto s = std::make_shared<Snapshot>(base);
  s->engines = std::move(engines);
  s->generation = generation;
  return s;
}

std::shared_ptr<const Snapshot> with_policy(const Snapshot& base,
                                            std::shared_ptr<const policy::Policy> policy,
                                            std::uint64_t generation) {
  auto s = std::make_shared<Snapshot>(base);
  s->policy = std::move(policy);
  s->generation = generation;
  return s;
}

}  // namespace pc::txn
