#include "app/monitor.h"

#include <boost/asio/post.hpp>
#include <stdexcept>

#include "base/json.h"
#include "base/log.h"
#include "telemetry/metrics.h"
#include "wire/http.h"

namespace pc::app {

namespace asio = boost::asio;
using net::tcp;
using net::use_nothrow;

namespace {

constexpr std::size_t kMaxConnections = 32;
constexpr auto kConnectionTime = std::chrono::seconds(5);

wire::Limits head_limits() {
  wire::Limits l;
  l.max_head_bytes = 8192;
  l.max_fields = 50;
  l.max_field_bytes = 4096;
  l.max_url_bytes = 1024;
  return l;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
  }
  return "Unknown";
}

MonitorResponse text(int status, std::string body) {
  return {status, "text/plain; charset=utf-8", std::move(body), {}};
}

}  // namespace

std::string checks_json(const std::vector<Check>& checks) {
  bool ready = true;
  for (const auto& c : checks) ready = ready && c.ok;
  std::string out = ready ? "{\"ready\":true,\"checks\":[" : "{\"ready\":false,\"checks\":[";
  for (std::size_t i = 0; i < checks.size(); ++i) {
    if (i) out += ',';
    out += "{\"name\":";
    base::append_json_string(out, checks[i].name);
    out += checks[i].ok ? ",\"ok\":true,\"detail\":" : ",\"ok\":false,\"detail\":";
    base::append_json_string(out, checks[i].detail);
    out += '}';
  }
  out += "]}";
  return out;
}

MonitorResponse monitor_respond(std::string_view method, std::string_view target,
                                const MonitorHandlers& h) {
  if (target.empty() || target.front() != '/') return text(400, "origin-form targets only\n");
  std::string_view path = target.substr(0, target.find('?'));
  const bool known =
      path == "/healthz" || path == "/readyz" || path == "/metrics" || path == "/status";
  if (!known) return text(404, "not found: try /healthz, /readyz, /metrics or /status\n");
  if (method != "GET" && method != "HEAD") {
    auto r = text(405, "GET or HEAD only\n");
    r.allow = "GET, HEAD";
    return r;
  }
  try {
    if (path == "/healthz") return text(200, "ok\n");
    if (path == "/readyz") {
      auto checks = h.checks();
      bool ready = true;
      for (const auto& c : checks) ready = ready && c.ok;
      return {ready ? 200 : 503, "application/json", checks_json(checks) + "\n", {}};
    }
    if (path == "/metrics")
      return {200, std::string(telemetry::kExpositionContentType), h.metrics(), {}};
    return {200, "application/json", h.status() + "\n", {}};
  } catch (const std::exception& e) {
    log::error("monitoring: {} failed: {}", path, e.what());
    return text(500, "internal error\n");
  }
}

// ---- the listener ----

struct Monitor::Conn {
  explicit Conn(tcp::socket s) : sock(std::move(s)), timer(sock.get_executor()) {}
  tcp::socket sock;
  asio::steady_timer timer;
};

Monitor::Monitor(const config::Monitoring& cfg, MonitorHandlers handlers)
    : handlers_(std::move(handlers)), acceptor_(io_) {
  std::string where = cfg.address + " port " + std::to_string(cfg.port);
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(cfg.address.size() > 2 && cfg.address.front() == '['
                                         ? cfg.address.substr(1, cfg.address.size() - 2)
                                         : cfg.address,
                                     ec);
  if (ec) throw std::runtime_error("monitoring: " + cfg.address + " is not an IP address");
  tcp::endpoint ep(addr, cfg.port);
  acceptor_.open(ep.protocol(), ec);
  // SO_REUSEADDR lets a restart bind while old connections linger in TIME_WAIT; without
  // SO_REUSEPORT, a port another process listens on still fails.
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(64, ec);
  if (ec) {
    if (ec == asio::error::address_in_use)
      throw std::runtime_error("monitoring listener: " + where + " is already in use");
    throw std::runtime_error("monitoring listener: cannot listen on " + where + ": " +
                             ec.message());
  }
  port_ = acceptor_.local_endpoint().port();
}

Monitor::~Monitor() {
  stop();
}

void Monitor::start() {
  net::asio::co_spawn(io_, accept_loop(), net::asio::detached);
  thread_ = std::thread([this] { io_.run(); });
}

void Monitor::stop() {
  if (thread_.joinable()) {
    asio::post(io_, [this] {
      boost::system::error_code ignore;
      acceptor_.close(ignore);
      io_.stop();
    });
    thread_.join();
  } else {
    boost::system::error_code ignore;
    acceptor_.close(ignore);
  }
}

net::asio::awaitable<void> Monitor::accept_loop() {
  asio::steady_timer backoff(io_);
  for (;;) {
    auto [ec, sock] = co_await acceptor_.async_accept(use_nothrow);
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
    if (ec) {
      log::warn("monitoring listener: accept failed: {}", ec.message());
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(use_nothrow);
      continue;
    }
    if (active_ >= kMaxConnections) {
      boost::system::error_code ignore;
      sock.close(ignore);
      continue;
    }
    ++active_;
    auto c = std::make_shared<Conn>(std::move(sock));
    net::asio::co_spawn(io_, serve(c), net::asio::detached);
  }
}

net::asio::awaitable<void> Monitor::serve(std::shared_ptr<Conn> c) {
  c->timer.expires_after(kConnectionTime);
  c->timer.async_wait([c](const boost::system::error_code& ec) {
    boost::system::error_code ignore;
    if (!ec) c->sock.close(ignore);  // too slow: whatever is pending fails
  });
  static const wire::Limits limits = head_limits();
  std::string buf;
  wire::RequestHead head;
  wire::ParseResult pr;
  bool got = false;
  for (;;) {
    if (!buf.empty()) {
      pr = wire::parse_request_head(buf, limits, head);
      if (pr.status != wire::Status::incomplete) {
        got = true;
        break;
      }
    }
    if (buf.size() > limits.max_head_bytes) break;  // the parser reports it; belt and braces
    char tmp[2048];
    auto [ec, n] = co_await c->sock.async_read_some(asio::buffer(tmp), use_nothrow);
    if (ec) break;
    buf.append(tmp, n);
  }
  if (got) {
    MonitorResponse r = pr.status == wire::Status::complete
                            ? monitor_respond(head.method, head.target, handlers_)
                            : text(400, "malformed request\n");
    const bool head_only = pr.status == wire::Status::complete && head.method == "HEAD";
    std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " +
                      std::string(reason_phrase(r.status)) + "\r\nContent-Type: " + r.content_type +
                      "\r\nContent-Length: " + std::to_string(r.body.size()) +
                      "\r\nCache-Control: no-store\r\nConnection: close\r\n";
    if (!r.allow.empty()) out += "Allow: " + r.allow + "\r\n";
    out += "\r\n";
    if (!head_only) out += r.body;
    auto [wec, wn] = co_await asio::async_write(c->sock, asio::buffer(out), use_nothrow);
    (void)wec;
    (void)wn;
  }
  boost::system::error_code ignore;
  c->sock.shutdown(tcp::socket::shutdown_both, ignore);
  c->sock.close(ignore);
  c->timer.cancel();
  --active_;
}

}  // namespace pc::app
