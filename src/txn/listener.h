// A listening socket on one worker (SO_REUSEPORT: every worker has its own acceptor on the
// same port and the kernel spreads connections across them). What happens to an accepted
// connection is the front end's business: the listener hands it to `on_accept`.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "config/config.h"
#include "net/io.h"
#include "txn/worker.h"

namespace pc::txn {

class Listener {
 public:
  // What the kernel refused or capped of the listener's socket settings; `in_file`: the
  // setting was written in the configuration (a warning), not a default (a note).
  struct Note {
    bool in_file = false;
    std::string text;
  };

  // Called on the worker thread for each accepted connection.
  using OnAccept = std::function<void(Worker&, net::tcp::socket)>;

  // Binds cfg.address:port (port 0: any free port; see port()). Throws
  // boost::system::system_error when the socket cannot be bound.
  Listener(Worker& w, const config::Listener& cfg, std::uint16_t port, OnAccept on_accept);

  std::uint16_t port() const { return port_; }
  void start();  // spawns the accept loop on the worker
  void close();  // worker thread: stop accepting
  // Accepting (started and not closed); any thread (health checks).
  bool accepting() const { return accepting_.load(std::memory_order_relaxed); }
  const std::string& name() const { return name_; }
  // "TCP congestion control cubic, receive buffer 1024 KiB": what its connections get, as
  // the kernel reports it.
  std::string describe();
  const std::vector<Note>& notes() const { return notes_; }

 private:
  net::asio::awaitable<void> accept_loop();
  Worker& w_;
  std::string name_;
  OnAccept on_accept_;
  net::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::vector<Note> notes_;
  bool fixed_receive_buffer_ = false;  // SO_RCVBUF set (not autotuned)
  std::atomic<bool> accepting_{false};
};

}  // namespace pc::txn
