// The monitoring listener (default 127.0.0.1:2812): a small HTTP/1.1 server on its own
// control-plane thread, never on a worker. GET or HEAD of
//   /healthz  200 while the process runs
//   /readyz   200 when every readiness check passes, else 503; JSON body listing the checks
//   /metrics  the Prometheus text exposition (format 0.0.4)
//   /status   JSON: version, uptime, policy, scanning engines and signatures, the checks
// One request per connection (answered with Connection: close); heads are parsed by
// wire::parse_request_head within small limits; a connection gets 5 seconds in all; at most
// 32 at once (more are closed at accept). docs/monitoring.md describes every endpoint.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "config/config.h"
#include "net/io.h"

namespace pc::app {

// One readiness check as /readyz and /status report it.
struct Check {
  std::string name;
  bool ok = true;
  std::string detail;  // what was found, or why it fails
};

// What the endpoints answer with. Called on the monitoring thread: each must be safe to call
// from it (read atomics, or take the owner's locks).
struct MonitorHandlers {
  std::function<std::string()> metrics;        // the exposition text
  std::function<std::vector<Check>()> checks;  // readiness
  std::function<std::string()> status;         // a JSON object
};

struct MonitorResponse {
  int status = 200;
  std::string content_type;
  std::string body;
  std::string allow;  // 405: the Allow field
};

// The answer to one request (pure apart from the handlers it calls): for tests and the
// server. `target` is the request-target as received.
MonitorResponse monitor_respond(std::string_view method, std::string_view target,
                                const MonitorHandlers& h);

// {"ready":...,"checks":[{"name":...,"ok":...,"detail":...},...]}
std::string checks_json(const std::vector<Check>& checks);

class Monitor {
 public:
  // Binds cfg.address:cfg.port (port 0: any free port; see port()). Throws
  // std::runtime_error naming the address when it cannot (in use, no such address).
  Monitor(const config::Monitoring& cfg, MonitorHandlers handlers);
  ~Monitor();
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  std::uint16_t port() const { return port_; }
  void start();  // starts the monitoring thread
  void stop();   // closes the listener and every connection, joins the thread; idempotent

 private:
  struct Conn;
  net::asio::awaitable<void> accept_loop();
  net::asio::awaitable<void> serve(std::shared_ptr<Conn> c);

  MonitorHandlers handlers_;
  boost::asio::io_context io_{1};
  net::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::size_t active_ = 0;  // monitoring thread only
  std::thread thread_;
};

}  // namespace pc::app
