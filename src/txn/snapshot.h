// The immutable view of configuration a transaction runs against. Built on the control
// thread, published to workers, pinned by each transaction for its whole life.
#pragma once

#include <memory>
#include <vector>

#include "base/cidr.h"
#include "config/config.h"

namespace pc::txn {

struct Snapshot {
  std::shared_ptr<const config::Config> config;
  // Addresses of this host (all interfaces) and the ports the gateway listens on: the
  // proxy never forwards to these (it would talk to itself).
  std::vector<base::IpBytes> local_addresses;
  std::vector<std::uint16_t> own_ports;
  std::uint64_t generation = 0;

  bool client_allowed(const base::IpBytes& a) const {
    for (const auto& n : config->client_networks)
      if (n.contains(a)) return true;
    return false;
  }
  bool is_self(const base::IpBytes& a, std::uint16_t port) const;
  bool connect_port_allowed(std::uint16_t port) const {
    for (auto p : config->connect_ports)
      if (p == port) return true;
    return false;
  }
};

// Builds a snapshot for cfg, reading this host's interface addresses.
std::shared_ptr<const Snapshot> make_snapshot(std::shared_ptr<const config::Config> cfg,
                                              std::uint64_t generation);

}  // namespace pc::txn
