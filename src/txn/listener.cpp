#include "txn/listener.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/ip/v6_only.hpp>

#include "base/log.h"

namespace pc::txn {

namespace {
using reuse_port = boost::asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

// Accepted connections inherit the listening socket's congestion control. Returns the
// error text when the kernel refuses it (not built or loaded; or, without CAP_NET_ADMIN,
// not in net.ipv4.tcp_allowed_congestion_control): the system's stays.
std::string set_congestion(net::tcp::acceptor& a, const std::string& name) {
  if (name.empty()) return {};
  if (::setsockopt(a.native_handle(), IPPROTO_TCP, TCP_CONGESTION, name.data(),
                   static_cast<socklen_t>(name.size())) == 0)
    return {};
  return std::strerror(errno);
}

void open_and_bind(net::tcp::acceptor& a, const net::tcp::endpoint& ep,
                   const config::Listener& cfg, std::string& cc_error) {
  a.open(ep.protocol());
  cc_error = set_congestion(a, cfg.tcp_congestion);
  a.set_option(net::tcp::acceptor::reuse_address(true));
  a.set_option(reuse_port(true));
  if (ep.address().is_v6()) {
    // "::" serves IPv4 too (dual stack); a specific IPv6 address serves only itself.
    a.set_option(boost::asio::ip::v6_only(!ep.address().is_unspecified()));
  }
  a.bind(ep);
  a.listen(4096);
}
}  // namespace

Listener::Listener(Worker& w, const config::Listener& cfg, std::uint16_t port, OnAccept on_accept)
    : w_(w), name_(cfg.name), on_accept_(std::move(on_accept)), acceptor_(w.io) {
  std::string text = cfg.address;
  if (text.size() > 2 && text.front() == '[' && text.back() == ']')
    text = text.substr(1, text.size() - 2);
  auto addr = boost::asio::ip::make_address(text);
  try {
    open_and_bind(acceptor_, {addr, port}, cfg, congestion_error_);
  } catch (const boost::system::system_error& e) {
    // No IPv6 on this host: "::" falls back to IPv4.
    if (!(addr.is_v6() && addr.is_unspecified() &&
          e.code() == boost::asio::error::address_family_not_supported))
      throw;
    boost::system::error_code ignore;
    acceptor_.close(ignore);
    log::warn("listener {}: IPv6 unavailable, listening on IPv4 only", cfg.name);
    open_and_bind(acceptor_, {boost::asio::ip::address_v4::any(), port}, cfg, congestion_error_);
  }
  port_ = acceptor_.local_endpoint().port();
}

std::string Listener::congestion() {
  char name[16] = {};
  socklen_t len = sizeof name;
  if (::getsockopt(acceptor_.native_handle(), IPPROTO_TCP, TCP_CONGESTION, name, &len) != 0)
    return {};
  return std::string(name, strnlen(name, std::min<std::size_t>(len, sizeof name)));
}

void Listener::start() {
  accepting_.store(true, std::memory_order_relaxed);
  net::asio::co_spawn(w_.io, accept_loop(), net::asio::detached);
}

void Listener::close() {
  accepting_.store(false, std::memory_order_relaxed);
  boost::system::error_code ignore;
  acceptor_.close(ignore);
}

net::asio::awaitable<void> Listener::accept_loop() {
  net::asio::steady_timer backoff(w_.io);
  for (;;) {
    auto [ec, sock] = co_await acceptor_.async_accept(net::use_nothrow);
    if (ec == net::asio::error::operation_aborted || !acceptor_.is_open()) {
      accepting_.store(false, std::memory_order_relaxed);
      co_return;
    }
    if (ec) {
      // Out of file descriptors or memory: pause instead of spinning on the error.
      log::warn("listener {}: accept failed: {}", name_, ec.message());
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(net::use_nothrow);
      continue;
    }
    on_accept_(w_, std::move(sock));
  }
}

}  // namespace pc::txn
