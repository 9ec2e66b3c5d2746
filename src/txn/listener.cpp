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

// Accepted connections inherit these from the listening socket, set before listen() (the
// receive buffer also decides the window scale offered in the handshake). What the kernel
// refuses or caps is noted; the listener works on with the kernel's own values.
void tune(net::tcp::acceptor& a, const config::Listener& cfg, std::vector<Listener::Note>& notes) {
  const int fd = a.native_handle();
  const std::string& cc = cfg.tcp_congestion;
  if (!cc.empty() && ::setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc.data(),
                                  static_cast<socklen_t>(cc.size())) != 0) {
    const int err = errno;
    const std::string why = err == ENOENT  ? "not in this kernel's "
                                             "net.ipv4.tcp_available_congestion_control"
                            : err == EPERM ? "not in net.ipv4.tcp_allowed_congestion_control, "
                                             "and the gateway lacks CAP_NET_ADMIN"
                                           : std::strerror(err);
    notes.push_back(
        {cfg.tcp_congestion_set,
         fmt::format("TCP congestion control \"{}\" unavailable ({}): the system's is used", cc,
                     why)});
  }
  if (cfg.receive_buffer > 0) {
    const int want = static_cast<int>(cfg.receive_buffer);
    // With CAP_NET_ADMIN the size may exceed net.core.rmem_max; without, it is capped there.
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) != 0)
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
    int got = 0;  // the kernel doubles the size asked for (bookkeeping overhead)
    socklen_t len = sizeof got;
    ::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len);
    if (got / 2 < want)
      notes.push_back({cfg.receive_buffer_set,
                       fmt::format("receive buffer {} bytes capped at {} by net.core.rmem_max",
                                   want, got / 2)});
  }
}

void open_and_bind(net::tcp::acceptor& a, const net::tcp::endpoint& ep, const config::Listener& cfg,
                   std::vector<Listener::Note>& notes) {
  a.open(ep.protocol());
  notes.clear();
  tune(a, cfg, notes);
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
    : w_(w),
      name_(cfg.name),
      on_accept_(std::move(on_accept)),
      acceptor_(w.io),
      fixed_receive_buffer_(cfg.receive_buffer > 0) {
  std::string text = cfg.address;
  if (text.size() > 2 && text.front() == '[' && text.back() == ']')
    text = text.substr(1, text.size() - 2);
  auto addr = boost::asio::ip::make_address(text);
  try {
    open_and_bind(acceptor_, {addr, port}, cfg, notes_);
  } catch (const boost::system::system_error& e) {
    // No IPv6 on this host: "::" falls back to IPv4.
    if (!(addr.is_v6() && addr.is_unspecified() &&
          e.code() == boost::asio::error::address_family_not_supported))
      throw;
    boost::system::error_code ignore;
    acceptor_.close(ignore);
    log::warn("listener {}: IPv6 unavailable, listening on IPv4 only", cfg.name);
    open_and_bind(acceptor_, {boost::asio::ip::address_v4::any(), port}, cfg, notes_);
  }
  port_ = acceptor_.local_endpoint().port();
}

std::string Listener::describe() {
  const int fd = acceptor_.native_handle();
  char cc[16] = {};
  socklen_t len = sizeof cc;
  std::string out = "TCP congestion control ";
  if (::getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, &len) == 0)
    out += std::string_view(cc, strnlen(cc, std::min<std::size_t>(len, sizeof cc)));
  else
    out += "?";
  int rcv = 0;
  len = sizeof rcv;
  if (!fixed_receive_buffer_)
    out += ", receive buffer tuned by the kernel";
  else if (::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, &len) == 0)
    out += fmt::format(", receive buffer {} KiB", rcv / 2 / 1024);
  return out;
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
