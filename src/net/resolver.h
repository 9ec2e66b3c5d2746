// Asynchronous DNS for one worker: c-ares driven by the worker's io_context, with a
// TTL-respecting cache. Not thread-safe: one Resolver per worker thread.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pc::net {

namespace asio = boost::asio;

struct ResolverConfig {
  // "ip" or "ip:port" or "[ipv6]:port". Empty: the system's /etc/resolv.conf.
  std::vector<std::string> servers;
  std::chrono::milliseconds timeout{2000};  // per try
  int tries = 2;
  bool use_hosts_file = true;  // consult the hosts file before DNS
  std::string hosts_file = "/etc/hosts";
  std::chrono::milliseconds hosts_check{5000};  // how often a change of the file is looked for
  std::size_t cache_entries = 10000;            // 0 disables the cache
  std::chrono::seconds min_ttl{5};
  std::chrono::seconds max_ttl{3600};
  std::chrono::seconds negative_ttl{10};  // NXDOMAIN / no data
};

enum class DnsStatus : std::uint8_t {
  ok,
  not_found,  // NXDOMAIN or no A/AAAA data
  refused,    // server refused or failed (REFUSED, SERVFAIL)
  timeout,    // no answer in time from any server
  error,      // anything else (bad name, out of memory, resolver shut down)
};

std::string_view describe(DnsStatus s);

// A hosts file (hosts(5)) as the resolver uses it: each name (lower-cased, without a final
// dot; canonical names and aliases alike) with its addresses, IPv6 and IPv4 interleaved as
// resolve() returns them (file order within a family). Comments, lines without a valid
// address or name, and IPv4-mapped IPv6 addresses are skipped.
using HostsTable = std::unordered_map<std::string, std::vector<asio::ip::address>>;
HostsTable parse_hosts(std::string_view text);

struct ResolveResult {
  DnsStatus status = DnsStatus::error;
  // IPv6 and IPv4 addresses interleaved for happy eyeballs (RFC 8305 order: IPv6
  // first if there is any, then alternating; the rest of the longer family at the end).
  std::vector<asio::ip::address> addresses;
  bool from_cache = false;
};

class Resolver {
 public:
  Resolver(asio::io_context& io, ResolverConfig cfg);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Resolves A and AAAA for host (an IP literal is returned at once without a query).
  // UDP with TCP fallback on truncation (c-ares). Concurrent calls for the same name
  // share one query. The name is taken as absolute: search domains are not appended.
  // With use_hosts_file, "localhost" and names under it are loopback even when
  // /etc/hosts does not list them.
  // After resuming from a query the coroutine no longer touches the Resolver, so it may
  // be destroyed while resolves are pending (they complete with DnsStatus::error).
  asio::awaitable<ResolveResult> resolve(std::string host);

  // Cancels outstanding queries (they complete with DnsStatus::error) and stops.
  // Later resolve() calls return DnsStatus::error (IP literals still succeed).
  void shutdown();

  struct Stats {
    // queries: lookups sent to DNS (one per name, each an A and an AAAA question);
    // cache_hits: answers served from the cache; coalesced: calls that joined a lookup
    // already in flight; failures: lookups that ended without addresses (timeouts
    // included); timeouts: lookups that ended with DnsStatus::timeout.
    std::uint64_t queries = 0, cache_hits = 0, failures = 0, timeouts = 0, coalesced = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Stats stats_;
};

}  // namespace pc::net
