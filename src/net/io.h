// Asio vocabulary shared by the data plane.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "base/cidr.h"

namespace pc::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Completion token: errors as values, never exceptions.
inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

inline base::IpBytes to_ip_bytes(const asio::ip::address& a) {
  if (a.is_v4()) return base::IpBytes::from_v4(a.to_v4().to_bytes());
  return base::IpBytes::from_v6(a.to_v6().to_bytes());
}

// "1.2.3.4" for IPv4 and IPv4-mapped IPv6, "::1" for IPv6.
inline std::string address_text(const asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_string();
  return a.to_string();
}

// "1.2.3.4:80" or "[::1]:80".
inline std::string endpoint_text(const tcp::endpoint& e) {
  auto a = e.address();
  bool v6 = a.is_v6() && !a.to_v6().is_v4_mapped();
  return (v6 ? "[" + address_text(a) + "]" : address_text(a)) + ":" + std::to_string(e.port());
}

// A per-connection watchdog: `expires` is moved forward by every operation; when it passes,
// `on_expire` runs (it closes the sockets, which fails every pending operation).
// Run it with co_spawn alongside the connection's coroutine and call stop() at the end.
class Watchdog {
 public:
  explicit Watchdog(const asio::any_io_executor& ex) : timer_(ex) {}

  void arm(milliseconds d) { arm_at(Clock::now() + d); }
  void arm_at(Clock::time_point t) {
    expiry_ = t;
    fired_ = false;
    if (t < timer_.expiry()) timer_.cancel();  // earlier than the pending wake: re-plan
  }
  void stop() {
    stopped_ = true;
    timer_.cancel();
  }
  // True when the deadline armed last has passed.
  bool expired() const { return fired_; }

  // `owner` keeps whatever holds this Watchdog alive until the coroutine has finished.
  template <class F>
  asio::awaitable<void> run(std::shared_ptr<void> owner, F on_expire) {
    (void)owner;  // held by the coroutine frame for its whole life
    while (!stopped_) {
      auto now = Clock::now();
      if (expiry_ <= now) {
        fired_ = true;
        expiry_ = Clock::time_point::max();  // until armed again
        on_expire();
        continue;
      }
      // A later expiry needs no timer change: the loop just waits again when it wakes.
      timer_.expires_at(expiry_);
      co_await timer_.async_wait(use_nothrow);
    }
  }

 private:
  asio::steady_timer timer_;
  Clock::time_point expiry_ = Clock::time_point::max();
  bool stopped_ = false;
  bool fired_ = false;
};

}  // namespace pc::net
