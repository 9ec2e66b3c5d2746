// The immutable view a transaction runs against: configuration, the compiled policy, the
// page templates and the warn-token signer. Built on the control thread, published to
// workers, pinned by each transaction for its whole life.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/cidr.h"
#include "config/config.h"
#include "pages/pages.h"
#include "policy/policy.h"
#include "policy/warn_token.h"
#include "txn/scan.h"

namespace pc::txn {

struct Snapshot {
  std::shared_ptr<const config::Config> config;
  std::shared_ptr<const policy::Policy> policy;
  std::shared_ptr<const pages::Templates> templates;
  std::shared_ptr<const policy::WarnSigner> warn_signer;
  std::shared_ptr<const Engines> engines;  // scanning; null or without ClamAV: failure mode
  // Addresses of this host (all interfaces) and the ports the gateway listens on (its
  // listeners and the monitoring listener): the proxy never forwards to these (it would talk
  // to itself, or expose its monitoring endpoints).
  std::vector<base::IpBytes> local_addresses;
  std::vector<std::uint16_t> own_ports;
  std::uint64_t generation = 0;

  static bool in_any(const std::vector<base::Cidr>& nets, const base::IpBytes& a) {
    for (const auto& n : nets)
      if (n.contains(a)) return true;
    return false;
  }
  bool client_allowed(const base::IpBytes& a) const { return in_any(config->client_networks, a); }
  bool is_self(const base::IpBytes& a, std::uint16_t port) const;
  bool destination_denied(const base::IpBytes& a) const {
    return in_any(config->deny_destinations, a);
  }
  bool connect_port_allowed(std::uint16_t port) const {
    for (auto p : config->connect_ports)
      if (p == port) return true;
    return false;
  }
};

// Builds a snapshot for cfg: loads the policy file and the databases it names, the page
// templates and the warn key (created in the state folder when absent, unless check_only).
// Returns null and appends "file:line:col: message" lines to errors when anything is wrong.
std::shared_ptr<const Snapshot> build_snapshot(std::shared_ptr<const config::Config> cfg,
                                               std::uint64_t generation,
                                               std::vector<std::string>& errors,
                                               bool check_only = false);

// A new snapshot that differs from `base` by its configuration (policy, templates and key
// kept); the host's own addresses and ports are computed again.
std::shared_ptr<const Snapshot> with_config(const Snapshot& base,
                                            std::shared_ptr<const config::Config> cfg,
                                            std::uint64_t generation);

// A new snapshot that differs from `base` only by its scanning engines.
std::shared_ptr<const Snapshot> with_engines(const Snapshot& base,
                                             std::shared_ptr<const Engines> engines,
                                             std::uint64_t generation);

// A new snapshot that differs from `base` only by its policy.
std::shared_ptr<const Snapshot> with_policy(const Snapshot& base,
                                            std::shared_ptr<const policy::Policy> policy,
                                            std::uint64_t generation);

}  // namespace pc::txn
