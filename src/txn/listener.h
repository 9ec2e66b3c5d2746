// A proxy listening socket on one worker (SO_REUSEPORT: every worker has its own acceptor
// on the same port and the kernel spreads connections across them).
#pragma once

#include "config/config.h"
#include "net/io.h"
#include "proxy/session.h"
#include "proxy/worker.h"

namespace pc::proxy {

class Listener {
 public:
  // Binds cfg.address:port (port 0: any free port; see port()). Throws
  // boost::system::system_error when the socket cannot be bound.
  Listener(Worker& w, const config::Listener& cfg, std::uint16_t port);

  std::uint16_t port() const { return port_; }
  void start();  // spawns the accept loop on the worker
  void close();  // worker thread: stop accepting

 private:
  net::asio::awaitable<void> accept_loop();
  Worker& w_;
  ListenerInfo info_;
  net::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
};

}  // namespace pc::proxy
