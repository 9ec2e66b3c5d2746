// Outbound TCP connections: happy-eyeballs connect over several addresses, and a per-worker
// pool of idle upstream connections reused across clients.
#pragma once

#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "net/io.h"

namespace pc::net {

struct ConnectResult {
  boost::system::error_code ec;  // timed_out when the deadline passed first
  tcp::socket socket;
  tcp::endpoint peer;
};

// Tries addresses in order, starting the next one 250 ms after the previous (RFC 8305
// connection attempt delay) or as soon as it fails; the first to connect wins and the others
// are closed. The whole attempt is bounded by `timeout`.
asio::awaitable<ConnectResult> connect_any(std::vector<asio::ip::address> addresses,
                                           std::uint16_t port, milliseconds timeout);

// Idle keep-alive connections to upstreams (origins or parents), keyed by "host:port" or
// "parent|host:port". One pool per worker; not thread-safe.
class UpstreamPool {
 public:
  // Enough idle connections per origin for every busy client connection to find one.
  UpstreamPool(asio::io_context& io, std::size_t max_idle_per_key = 1024,
               std::size_t max_idle = 8192);

  // A live idle connection for key, or a closed socket when there is none.
  tcp::socket take(const std::string& key, tcp::endpoint& peer);
  void put(const std::string& key, tcp::socket s, tcp::endpoint peer, milliseconds idle_timeout);
  void clear();
  std::size_t idle() const { return total_; }
  std::uint64_t reused() const { return reused_; }

 private:
  struct Idle {
    tcp::socket socket;
    tcp::endpoint peer;
    Clock::time_point expires;
  };
  void sweep();
  asio::io_context& io_;
  std::size_t max_per_key_, max_total_;
  std::size_t total_ = 0;
  std::uint64_t reused_ = 0;
  std::unordered_map<std::string, std::deque<Idle>> idle_;
  asio::steady_timer sweeper_;
  bool sweeping_ = false;
};

}  // namespace pc::net
