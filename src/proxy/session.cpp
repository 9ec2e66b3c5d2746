#include "proxy/session.h"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <optional>

#include "base/log.h"
#include "base/strings.h"
#include "net/connect.h"
#include "proxy/forwarding.h"
#include "proxy/session_txn.h"
#include "txn/http_page.h"

namespace pc::proxy {

using namespace boost::asio::experimental::awaitable_operators;
using net::tcp;
using net::use_nothrow;
using net::asio::awaitable;
using telemetry::Result;

namespace {
// The least free space a body read asks for; reads use all the free space of the buffer.
constexpr std::size_t kReadChunk = 16 * 1024;

bool is_timeout(const boost::system::error_code& ec) {
  return ec == net::asio::error::timed_out;
}

bool idempotent(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
}
}  // namespace

Session::Session(txn::Worker& w, tcp::socket s, ListenerInfo listener)
    : w_(w),
      client_(std::move(s)),
      upstream_(client_.get_executor()),
      listener_(std::move(listener)),
      cbuf_(),
      ubuf_(),
      watchdog_(client_.get_executor()) {
  boost::system::error_code ec;
  auto ep = client_.remote_endpoint(ec);
  if (!ec) {
    client_addr_ = net::address_text(ep.address());
    client_ip_ = net::to_ip_bytes(ep.address());
  }
  client_.set_option(tcp::no_delay(true), ec);
  w_.add(this);
  metrics_slot_ = w_.metrics().connection_opened(listener_.name);
}

Session::~Session() {
  w_.metrics().connection_closed(metrics_slot_);
  w_.remove(this);
  if (counted_client_) w_.shared.release_client(client_ip_);
  if (counted_) w_.shared.connections.fetch_sub(1, std::memory_order_relaxed);
}

void Session::close_all() {
  boost::system::error_code ignore;
  if (client_.is_open()) client_.close(ignore);
  if (upstream_.is_open()) upstream_.close(ignore);
}

void Session::on_timeout() {
  boost::system::error_code ignore;
  if (upstream_scope_ && upstream_.is_open())
    upstream_.close(ignore);  // the client gets a 504
  else
    close_all();
}

void Session::close_if_idle() {
  if (idle_) close_all();
}

awaitable<void> Session::run(std::shared_ptr<Session> self) {
  const auto& cfg = *w_.snapshot()->config;
  // admit: connection limits and the client ACL, before reading anything.
  std::size_t total = w_.shared.connections.fetch_add(1, std::memory_order_relaxed) + 1;
  counted_ = true;
  bool per_client_ok = w_.shared.acquire_client(client_ip_, cfg.max_connections_per_client);
  counted_client_ = per_client_ok;
  {
    int status = 0;
    std::string reason, message;
    if (!w_.snapshot()->client_allowed(client_ip_)) {
      status = 403;
      reason = "client address not allowed";
      message = "Your address is not allowed to use this proxy.";
    } else if (!per_client_ok) {
      status = 429;
      reason = "too many connections from this client";
      message = "Too many connections from your address.";
    } else if (total > cfg.max_connections) {
      status = 503;
      reason = "connection limit reached";
      message = "The gateway is at its connection limit. Try again shortly.";
    }
    if (status != 0) {
      Txn t;
      t.snap = w_.snapshot();
      t.start = net::Clock::now();
      t.rec.time = std::chrono::system_clock::now();
      t.rec.listener = listener_.name;
      t.rec.guest = listener_.guest;
      t.rec.client = client_addr_;
      t.client_text = client_addr_;
      t.rec.request_id = w_.next_request_id();
      set_reply(t, {status == 403 ? pages::Kind::rule_block : pages::Kind::bad_request, status,
                    status == 403 ? Result::denied : Result::error, reason, true});
      co_await send_reply(t);
      close_all();
      co_return;
    }
  }

  auto ex = client_.get_executor();
  watchdog_.arm(cfg.timeouts.header_read);
  net::asio::co_spawn(ex, watchdog_.run(self, [this] { on_timeout(); }), net::asio::detached);
  for (;;) {
    Outcome o = co_await transaction();
    if (o == Outcome::close || !client_.is_open()) break;
  }
  watchdog_.stop();
  close_all();
}

// ---- reading the request ----

awaitable<bool> Session::read_request_head(Txn& t, bool& clean_eof) {
  const auto& cfg = t.cfg();
  if (cbuf_.empty()) {
    if (!first_) watchdog_.arm(cfg.timeouts.keepalive_idle);
    idle_ = true;
    if (w_.shared.draining.load()) {
      clean_eof = true;
      co_return false;
    }
    cbuf_.release();  // an idle connection holds no buffer
    ubuf_.release();
    auto [ec] = co_await client_.async_wait(tcp::socket::wait_read, use_nothrow);
    idle_ = false;
    if (ec) {
      clean_eof = true;
      co_return false;
    }
  }
  if (!first_) watchdog_.arm(cfg.timeouts.header_read);  // also for a pipelined request
  first_ = false;
  t.start = net::Clock::now();
  t.rec.time = std::chrono::system_clock::now();
  for (;;) {
    if (!cbuf_.empty()) {
      auto r = wire::parse_request_head(cbuf_.data(), cfg.limits, t.req);
      if (r.status == wire::Status::complete) {
        cbuf_.consume(r.consumed);
        t.rec.bytes_in += r.consumed;
        co_return true;
      }
      if (r.status == wire::Status::error) {
        set_reply(t, {pages::Kind::bad_request, wire::http_status_for(r.error), Result::error,
                      "malformed request: " + std::string(wire::describe(r.error)), true});
        co_await send_reply(t);
        co_return false;
      }
    }
    auto span = cbuf_.prepare(8192);
    auto [ec, n] =
        co_await client_.async_read_some(net::asio::buffer(span.data(), span.size()), use_nothrow);
    if (ec) {
      if (cbuf_.empty()) {
        clean_eof = true;
      } else {
        t.rec.status = 408;
        t.rec.result = Result::error;
        t.rec.reason =
            watchdog_.expired() ? "timeout reading request head" : "client closed mid-head";
        finish(t);
      }
      co_return false;
    }
    cbuf_.commit(n);
  }
}

// ---- the transaction ----

awaitable<Session::Outcome> Session::transaction() {
  Txn t;
  t.snap = w_.snapshot();  // pinned for the whole transaction
  const auto& cfg = t.cfg();
  t.rec.listener = listener_.name;
  t.rec.guest = listener_.guest;  // identify: the guest listener marks its transactions
  t.rec.client = client_addr_;
  t.client_text = client_addr_;

  bool clean_eof = false;
  if (!(co_await read_request_head(t, clean_eof))) co_return Outcome::close;
  t.rec.request_id = w_.next_request_id();
  t.rec.method = std::string(t.req.method);
  t.rec.url = std::string(t.req.target);
  if (!t.snap->client_allowed(client_ip_)) {  // the ACL may have changed since accept (reload)
    set_reply(t,
              {pages::Kind::rule_block, 403, Result::denied, "client address not allowed", true});
    co_return co_await send_reply(t);
  }

  // admit: request-target form and message framing (every smuggling rule is in wire/).
  auto err = wire::parse_target(t.req.method, t.req.target, t.target);
  if (err == wire::Error::none) err = wire::analyze_request(t.req, t.target, t.info);
  if (err != wire::Error::none) {
    set_reply(t, {pages::Kind::bad_request, wire::http_status_for(err), Result::error,
                  "malformed request: " + std::string(wire::describe(err)), true});
    co_return co_await send_reply(t);
  }
  t.keep_client = t.info.keep_alive && !t.info.upgrade;
  t.websocket = wire::websocket_upgrade(t.req, t.info);
  t.host = base::to_lower(t.target.host);

  // classify + decide (no policy engine yet: protocol and safety rules only).
  using Form = wire::Target::Form;
  if (t.target.form == Form::origin || t.target.form == Form::asterisk) {
    if (t.req.method == "OPTIONS") {
      std::string r =
          "HTTP/1.1 200 OK\r\nAllow: GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, CONNECT, "
          "PATCH\r\n"
          "Content-Length: 0\r\n\r\n";
      t.rec.status = 200;
      t.rec.reason = "answered by the gateway";
      if (t.info.body != wire::BodyKind::none) t.keep_client = false;
      co_await write_client(r, t);
      finish(t);
      co_return t.keep_client ? Outcome::keep_alive : Outcome::close;
    }
    set_reply(t, {pages::Kind::gateway_info, 200, Result::allowed,
                  "request addressed to the gateway itself"});
    co_return co_await send_reply(t);
  }
  if (t.target.form == Form::absolute && t.target.scheme != "http") {
    set_reply(t, {pages::Kind::bad_request, 501, Result::error,
                  "unsupported URL scheme: only http:// URLs here; https:// goes through CONNECT"});
    co_return co_await send_reply(t);
  }
  if (via_has_loop(t.req, cfg.name)) {
    set_reply(t, {pages::Kind::rule_block, 403, Result::denied, "forwarding loop detected (Via)"});
    co_return co_await send_reply(t);
  }
  if (t.req.method == "CONNECT" && !t.snap->connect_port_allowed(t.target.port)) {
    set_reply(t, {pages::Kind::rule_block, 403, Result::denied,
                  "CONNECT to a port not in connect_ports"});
    co_return co_await send_reply(t);
  }
  if (t.req.method == "OPTIONS" || t.req.method == "TRACE") {
    if (auto* mf = t.req.find("Max-Forwards"); mf && mf->value == "0") {
      std::string r = t.req.method == "OPTIONS" ? options_reply() : trace_reply(t.req);
      t.rec.status = 200;
      t.rec.reason = "Max-Forwards reached zero at the gateway";
      if (t.info.body != wire::BodyKind::none) t.keep_client = false;
      co_await write_client(r, t);
      finish(t);
      co_return t.keep_client ? Outcome::keep_alive : Outcome::close;
    }
  }

  // classify + decide
  if (!decide_request(t)) co_return co_await send_reply(t);

  // route
  if (t.req.method == "CONNECT") co_return co_await tunnel(t);
  co_return co_await forward(t);
}

// ---- local replies ----

awaitable<bool> Session::write_client(std::string_view data, Txn& t) {
  auto [ec, n] = co_await net::asio::async_write(
      client_, net::asio::buffer(data.data(), data.size()), use_nothrow);
  t.rec.bytes_out += n;
  if (ec) t.keep_client = false;
  co_return !ec;
}

void Session::set_reply(Txn& t, txn::Reply r) {
  t.reply = std::move(r);
}

bool Session::decide_request(Txn& t) {
  auto& f = t.facts;
  f.client = client_ip_;
  f.guest = listener_.guest;  // identify: the guest listener marks its transactions
  f.listener = listener_.name;
  t.client_text = client_addr_;
  return txn::decide_request(t, t.req, "http", t.target.port, t.target.path);
}

awaitable<Session::Outcome> Session::send_reply(Txn& t) {
  txn::Reply& r = t.reply;
  bool close = r.close;
  // An unread request body makes the connection unusable for another request.
  if (t.info.body != wire::BodyKind::none || !t.keep_client || w_.shared.draining.load())
    close = true;
  if (t.response_started) {
    // Too late for a page: the client already has part of a response. Cut it off.
    t.rec.result = r.result;
    t.rec.reason = std::move(r.reason);
    finish(t);
    co_return Outcome::close;
  }
  std::string extra = std::move(r.extra_headers);
  auto page = txn::render_reply(t, t.req.raw ? &t.req : nullptr);
  std::string resp =
      txn::http_page(page.status, page.html, page.lang, close, t.req.method == "HEAD", extra);
  upstream_scope_ = false;
  watchdog_.arm(t.cfg().timeouts.body_idle);
  co_await write_client(resp, t);
  finish(t);
  if (!t.keep_client) close = true;  // the write failed
  if (close) {
    boost::system::error_code ignore;
    client_.shutdown(tcp::socket::shutdown_send, ignore);
  }
  t.outcome = close ? Outcome::close : Outcome::keep_alive;
  co_return t.outcome;
}

void Session::finish(Txn& t) {
  txn::finish(t, w_);
}

// ---- upstream selection and connection ----

awaitable<bool> Session::open_upstream(Txn& t, bool for_connect) {
  const auto& cfg = t.cfg();
  // Resolving and connecting have their own time limits; the watchdog only backs them up,
  // generously enough for every parent and every DNS server to be tried.
  const auto servers = static_cast<int>(std::max<std::size_t>(3, cfg.dns.servers.size()));
  const auto attempts = static_cast<int>(cfg.parents.size()) + 1;
  watchdog_.arm((cfg.dns.timeout * cfg.dns.tries * servers * 2 + cfg.timeouts.upstream_connect) *
                attempts);
  if (!cfg.parents.empty() && !goes_direct(cfg, t.host)) co_return co_await connect_parent(t);
  (void)for_connect;
  co_return co_await connect_direct(t, t.host, t.target.port);
}

awaitable<bool> Session::connect_direct(Txn& t, const std::string& host, std::uint16_t port) {
  const auto& cfg = t.cfg();
  upstream_key_ = host + ":" + std::to_string(port);
  upstream_reused_ = false;
  // A pooled connection, for requests that can be retried safely (no body to replay).
  if (t.req.method != "CONNECT" && t.info.body == wire::BodyKind::none && !skip_pool_) {
    upstream_ = w_.pool().take(upstream_key_, upstream_peer_);
    if (upstream_.is_open() &&
        t.snap->destination_denied(net::to_ip_bytes(upstream_peer_.address()))) {
      boost::system::error_code ignore;
      upstream_.close(ignore);  // pooled before a reload denied its address: resolved again
    }
    if (upstream_.is_open()) {
      upstream_reused_ = true;
      t.rec.upstream = net::endpoint_text(upstream_peer_);
      co_return true;
    }
  }
  auto resolver = w_.resolver();
  const auto dns_start = net::Clock::now();
  auto res = co_await resolver->resolve(host);
  w_.metrics().observe(txn::Phase::dns, net::Clock::now() - dns_start);
  if (res.status != net::DnsStatus::ok) {
    w_.metrics().dns_error(res.status);
    bool timeout = res.status == net::DnsStatus::timeout;
    txn::Reply r{pages::Kind::dns_failure, 0, Result::error,
                 "DNS: " + std::string(net::describe(res.status))};
    r.dns = timeout                                   ? pages::DnsError::timeout
            : res.status == net::DnsStatus::not_found ? pages::DnsError::not_found
                                                      : pages::DnsError::refused;
    set_reply(t, std::move(r));
    co_await send_reply(t);
    co_return false;
  }
  for (const auto& a : res.addresses) {
    const base::IpBytes ip = net::to_ip_bytes(a);
    // Every address of the name is checked, not only the one connected to: a name that also
    // resolves to a denied address is refused whole.
    const char* why = t.snap->is_self(ip, port)        ? "destination is the gateway itself"
                      : t.snap->destination_denied(ip) ? "destination address denied "
                                                         "(proxy.deny_destinations)"
                                                       : nullptr;
    if (why) {
      set_reply(t, {pages::Kind::rule_block, 403, Result::denied, why});
      co_await send_reply(t);
      co_return false;
    }
  }
  const auto connect_start = net::Clock::now();
  auto cr = co_await net::connect_any(res.addresses, port, cfg.timeouts.upstream_connect);
  if (cr.ec) {
    bool timeout = is_timeout(cr.ec);
    w_.metrics().upstream_error(timeout ? txn::UpstreamError::connect_timeout
                                        : txn::UpstreamError::connect);
    set_reply(t, {timeout ? pages::Kind::upstream_timeout : pages::Kind::upstream_unreachable, 0,
                  Result::error, "connect: " + cr.ec.message()});
    co_await send_reply(t);
    co_return false;
  }
  w_.metrics().observe(txn::Phase::connect, net::Clock::now() - connect_start);
  upstream_ = std::move(cr.socket);
  upstream_peer_ = cr.peer;
  t.rec.upstream = net::endpoint_text(upstream_peer_);
  co_return true;
}

awaitable<bool> Session::connect_parent(Txn& t) {
  const auto& cfg = t.cfg();
  const bool is_connect = t.req.method == "CONNECT";
  upstream_reused_ = false;
  // First pass: parents not backing off; second pass: all of them.
  for (int pass = 0; pass < 2; ++pass) {
    bool tried = false;
    for (std::size_t i = 0; i < cfg.parents.size(); ++i) {
      if (pass == 0 && !w_.parent_usable(i)) continue;
      if (pass == 1 && w_.parent_usable(i)) continue;  // already tried in pass 0
      tried = true;
      const auto& p = cfg.parents[i];
      upstream_key_ = "parent" + std::to_string(i) + "|" + p.host + ":" + std::to_string(p.port);
      t.parent = static_cast<int>(i);
      if (!is_connect && t.info.body == wire::BodyKind::none && !skip_pool_) {
        upstream_ = w_.pool().take(upstream_key_, upstream_peer_);
        if (upstream_.is_open()) {
          upstream_reused_ = true;
          t.rec.via_parent = true;
          t.rec.upstream = net::endpoint_text(upstream_peer_);
          co_return true;
        }
      }
      auto resolver = w_.resolver();
      const auto dns_start = net::Clock::now();
      auto res = co_await resolver->resolve(p.host);
      w_.metrics().observe(txn::Phase::dns, net::Clock::now() - dns_start);
      if (res.status != net::DnsStatus::ok) {
        log::warn("parent proxy {}: {}", p.host, net::describe(res.status));
        w_.metrics().dns_error(res.status);
        w_.metrics().upstream_error(txn::UpstreamError::parent);
        w_.parent_failed(i);
        continue;
      }
      const auto connect_start = net::Clock::now();
      auto cr = co_await net::connect_any(res.addresses, p.port, cfg.timeouts.upstream_connect);
      if (cr.ec) {
        log::warn("parent proxy {}:{} unreachable: {}", p.host, p.port, cr.ec.message());
        w_.metrics().upstream_error(txn::UpstreamError::parent);
        w_.parent_failed(i);
        continue;
      }
      w_.metrics().observe(txn::Phase::connect, net::Clock::now() - connect_start);
      w_.parent_ok(i);
      t.rec.via_parent = true;
      upstream_ = std::move(cr.socket);
      upstream_peer_ = cr.peer;
      t.rec.upstream = net::endpoint_text(upstream_peer_);
      if (!is_connect) co_return true;

      // Ask the parent for the tunnel.
      std::string req = connect_request(t.req.target, p);
      upstream_scope_ = true;
      watchdog_.arm(cfg.timeouts.upstream_first_byte);
      auto [wec, wn] =
          co_await net::asio::async_write(upstream_, net::asio::buffer(req), use_nothrow);
      wire::ResponseHead head;
      wire::ParseResult pr;
      boost::system::error_code rec = wec;
      while (!rec) {
        if (!ubuf_.empty()) {
          pr = wire::parse_response_head(ubuf_.data(), cfg.limits, head);
          if (pr.status != wire::Status::incomplete) break;
        }
        auto span = ubuf_.prepare(4096);
        auto [ec, n] = co_await upstream_.async_read_some(
            net::asio::buffer(span.data(), span.size()), use_nothrow);
        rec = ec;
        ubuf_.commit(n);
      }
      if (rec || pr.status != wire::Status::complete) {
        w_.metrics().upstream_error(txn::UpstreamError::parent);
        set_reply(t, {pages::Kind::upstream_unreachable, 502, Result::error,
                      "parent CONNECT failed: " + (rec ? rec.message() : "malformed response")});
        co_await send_reply(t);
        co_return false;
      }
      ubuf_.consume(pr.consumed);
      if (head.status / 100 != 2) {
        w_.metrics().upstream_error(txn::UpstreamError::parent);
        set_reply(t, {pages::Kind::upstream_unreachable, 502, Result::error,
                      "parent refused CONNECT with " + std::to_string(head.status)});
        co_await send_reply(t);
        co_return false;
      }
      co_return true;
    }
    if (!tried && pass == 1) break;
  }
  set_reply(t,
            {pages::Kind::upstream_unreachable, 502, Result::error, "no parent proxy reachable"});
  co_await send_reply(t);
  co_return false;
}

// ---- CONNECT tunnels ----

awaitable<Session::Outcome> Session::tunnel(Txn& t) {
  // Awaited on its own line: g++ 12 at -O0 resumed this coroutine at a corrupt point when the
  // await was the condition of its first statement.
  const bool open = co_await open_upstream(t, true);
  if (!open) co_return t.outcome;  // a reply was sent
  t.rec.status = 200;
  if (!(co_await write_client("HTTP/1.1 200 Connection established\r\n\r\n", t))) {
    finish(t);
    co_return Outcome::close;
  }
  t.response_started = true;
  co_await relay_both_ways(t);
  finish(t);
  co_return Outcome::close;
}

awaitable<void> Session::relay_both_ways(Txn& t) {
  watchdog_.arm(t.cfg().timeouts.tunnel_idle);
  std::uint64_t up = 0, down = 0;
  bool e1 = false, e2 = false;
  co_await (pump(client_, upstream_, cbuf_, up, e1) && pump(upstream_, client_, ubuf_, down, e2));
  t.rec.bytes_in += up;
  t.rec.bytes_out += down;
  if (watchdog_.expired()) t.rec.reason = "tunnel idle timeout";
}

awaitable<void> Session::pump(tcp::socket& from, tcp::socket& to, base::Buffer& buf,
                              std::uint64_t& counter, bool& eof) {
  const auto idle = w_.snapshot()->config->timeouts.tunnel_idle;
  for (;;) {
    if (!buf.empty()) {
      auto d = buf.data();
      auto [wec, wn] =
          co_await net::asio::async_write(to, net::asio::buffer(d.data(), d.size()), use_nothrow);
      counter += wn;
      buf.consume(wn);
      if (wec) break;
    }
    auto span = buf.prepare(kReadChunk);
    auto [ec, n] =
        co_await from.async_read_some(net::asio::buffer(span.data(), span.size()), use_nothrow);
    if (ec) {
      if (ec == net::asio::error::eof) {
        eof = true;
        boost::system::error_code ignore;
        to.shutdown(tcp::socket::shutdown_send, ignore);
        co_return;
      }
      break;
    }
    buf.commit(n);
    watchdog_.arm(idle);
  }
  close_all();  // an error in one direction ends the tunnel
}

// ---- forwarding HTTP ----

awaitable<Session::Outcome> Session::forward(Txn& t) {
  const auto& cfg = t.cfg();
  skip_pool_ = false;
  // A request body is scanned before anything goes upstream.
  if (t.info.body != wire::BodyKind::none && scan_applies(t)) {
    if (!(co_await collect_upload(t))) co_return co_await send_reply(t);
  }
  for (int attempt = 0;; ++attempt) {
    if (attempt > 0) skip_pool_ = true;
    // Nothing left over from an earlier response may be read as this one's (a refused or
    // malformed response leaves its unread bytes behind when the connection is dropped).
    ubuf_.clear();
    if (!(co_await open_upstream(t, false))) co_return t.outcome;  // a reply was sent
    std::string head = upstream_request_head(
        t.req, t.target, t.info, cfg, client_addr_,
        t.parent >= 0 ? &cfg.parents[static_cast<std::size_t>(t.parent)] : nullptr,
        t.continue_sent);
    bool upload_done = t.info.body == wire::BodyKind::none;
    bool upload_ok = true;
    upstream_scope_ = true;
    watchdog_.arm(cfg.timeouts.upstream_first_byte);
    t.sent_at = net::Clock::now();
    auto [wec, wn] =
        co_await net::asio::async_write(upstream_, net::asio::buffer(head), use_nothrow);
    if (wec) {
      boost::system::error_code ignore;
      upstream_.close(ignore);
      if (upstream_reused_ && attempt == 0) continue;  // a stale pooled connection: retry fresh
      w_.metrics().upstream_error(txn::UpstreamError::send);
      set_reply(t, {pages::Kind::upstream_unreachable, 502, Result::error,
                    "write to upstream: " + wec.message()});
      co_return co_await send_reply(t);
    }
    if (upload_done) {
      co_await relay_response(t, upload_done, upload_ok);
    } else if (t.upload) {
      co_await (upload_spooled(t, upload_done, upload_ok) &&
                relay_response(t, upload_done, upload_ok));
    } else {
      co_await (upload_body(t, upload_done, upload_ok) &&
                relay_response(t, upload_done, upload_ok));
    }
    // A pooled connection the server closed before answering: retry once on a fresh one,
    // for idempotent requests only (RFC 9110 9.2.2), and never after a timeout.
    if (!t.response_started && t.rec.status == 0 && upstream_reused_ && attempt == 0 &&
        t.info.body == wire::BodyKind::none && client_.is_open() && !watchdog_.expired() &&
        idempotent(t.req.method)) {
      // The pooled connection was closed by the server before answering: retry once.
      boost::system::error_code ignore;
      upstream_.close(ignore);
      ubuf_.clear();
      t.rec.upstream.clear();
      t.rec.reason.clear();
      continue;
    }
    if (t.scan_blocked) co_return co_await send_reply(t);  // the threat or block page, or a cut
    if (t.response_blocked) {
      set_reply(t,
                {t.decision.from_list ? pages::Kind::list_block : pages::Kind::rule_block, 403,
                 Result::denied, "response blocked by " + txn::decision_reason(t), !upload_done});
      co_return co_await send_reply(t);
    }
    if (t.rec.status == 0 && t.body_error) {
      // The server got an incomplete request and was cut off; the client's framing was bad.
      set_reply(t, {pages::Kind::bad_request, 400, Result::error, t.rec.reason, true});
      co_return co_await send_reply(t);
    }
    if (t.rec.status == 0) {
      // relay_response gave up before any response: tell the client why.
      std::string why = t.rec.reason.empty() ? "no response from upstream" : t.rec.reason;
      bool timeout = watchdog_.expired() || why.find("timeout") != std::string::npos;
      // Malformed responses were counted where they were found.
      if (!t.upstream_malformed)
        w_.metrics().upstream_error(timeout ? txn::UpstreamError::response_timeout
                                            : txn::UpstreamError::no_response);
      set_reply(t, {timeout ? pages::Kind::upstream_timeout : pages::Kind::upstream_unreachable, 0,
                    Result::error, why, true});
      co_return co_await send_reply(t);
    }
    finish(t);
    co_return t.keep_client&& client_.is_open() && !w_.shared.draining.load() ? Outcome::keep_alive
                                                                              : Outcome::close;
  }
}

awaitable<void> Session::upload_body(Txn& t, bool& done, bool& ok) {
  const auto& cfg = t.cfg();
  if (t.info.body == wire::BodyKind::length) {
    std::uint64_t left = t.info.content_length;
    while (left > 0) {
      if (cbuf_.empty()) {
        auto span = cbuf_.prepare(kReadChunk);
        auto [ec, n] = co_await client_.async_read_some(net::asio::buffer(span.data(), span.size()),
                                                        use_nothrow);
        if (ec) {
          ok = false;
          break;
        }
        cbuf_.commit(n);
        watchdog_.arm(cfg.timeouts.body_idle);
      }
      auto d = cbuf_.data();
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, d.size()));
      auto [wec, wn] =
          co_await net::asio::async_write(upstream_, net::asio::buffer(d.data(), n), use_nothrow);
      if (wec) {
        ok = false;
        break;
      }
      cbuf_.consume(n);
      left -= n;
      t.rec.bytes_in += n;
    }
  } else if (t.info.body == wire::BodyKind::chunked) {
    wire::ChunkedDecoder dec(cfg.limits);
    std::string out;
    bool complete = false;
    while (!complete && ok) {
      out.clear();
      bool need_more = cbuf_.empty();
      while (!cbuf_.empty()) {
        auto st = dec.next(cbuf_.data());
        if (st.status == wire::Status::error) {
          ok = false;
          t.body_error = true;
          t.rec.reason = "malformed chunked request body: " + std::string(wire::describe(st.error));
          break;
        }
        if (!st.data.empty()) {
          wire::append_chunk_header(out, st.data.size());
          out.append(st.data);
          out += "\r\n";
        }
        cbuf_.consume(st.consumed);
        t.rec.bytes_in += st.consumed;
        if (st.status == wire::Status::complete) {
          wire::append_last_chunk(out, dec.trailers());
          complete = true;
          break;
        }
        if (st.consumed == 0 && st.data.empty()) {
          need_more = true;
          break;
        }
      }
      if (!ok) break;
      if (!out.empty()) {
        auto [wec, wn] =
            co_await net::asio::async_write(upstream_, net::asio::buffer(out), use_nothrow);
        if (wec) {
          ok = false;
          break;
        }
      }
      if (complete || !need_more) continue;
      auto span = cbuf_.prepare(kReadChunk);
      auto [ec, n] = co_await client_.async_read_some(net::asio::buffer(span.data(), span.size()),
                                                      use_nothrow);
      if (ec) {
        ok = false;
        break;
      }
      cbuf_.commit(n);
      watchdog_.arm(cfg.timeouts.body_idle);
    }
  }
  done = true;
  if (!ok) {
    // The request cannot be completed: never let the server see a truncated body as whole.
    t.keep_client = false;
    boost::system::error_code ignore;
    upstream_.close(ignore);
  }
}

awaitable<void> Session::relay_response(Txn& t, bool& upload_done, bool& upload_ok) {
  const auto& cfg = t.cfg();
  const bool client10 = t.req.version_minor == 0;
  wire::ResponseHead head;
  wire::MessageInfo rinfo;
  // Response head(s): relay 1xx (to HTTP/1.1 clients), stop at the final one.
  for (;;) {
    wire::ParseResult pr;
    boost::system::error_code rec;
    for (;;) {
      if (!ubuf_.empty()) {
        pr = wire::parse_response_head(ubuf_.data(), cfg.limits, head);
        if (pr.status != wire::Status::incomplete) break;
      }
      auto span = ubuf_.prepare(16384);
      auto [ec, n] = co_await upstream_.async_read_some(net::asio::buffer(span.data(), span.size()),
                                                        use_nothrow);
      if (ec) {
        rec = ec;
        break;
      }
      ubuf_.commit(n);
    }
    if (rec) {
      if (t.rec.reason.empty())
        t.rec.reason = watchdog_.expired() ? "timeout waiting for the upstream response"
                       : rec == net::asio::error::eof
                           ? "upstream closed the connection without a response"
                           : "upstream read: " + rec.message();
      if (ubuf_.size() > 0) upstream_reused_ = false;  // no retry after partial bytes
      co_return;
    }
    if (pr.status == wire::Status::error) {
      t.rec.reason = "malformed upstream response: " + std::string(wire::describe(pr.error));
      t.upstream_malformed = true;
      w_.metrics().upstream_error(txn::UpstreamError::malformed);
      upstream_reused_ = false;
      boost::system::error_code ignore;
      upstream_.close(ignore);
      co_return;
    }
    ubuf_.consume(pr.consumed);
    upstream_reused_ = false;  // a response arrived: the connection was good
    if (head.status >= 200) break;
    if (head.status == 101) {
      if (t.websocket && wire::analyze_response(head, t.req.method, rinfo) == wire::Error::none &&
          wire::websocket_accepted(head, rinfo))
        break;
      t.rec.reason = t.websocket ? "upstream switched to a protocol other than websocket"
                                 : "upstream switched protocols without being asked";
      t.upstream_malformed = true;
      w_.metrics().upstream_error(txn::UpstreamError::malformed);
      boost::system::error_code ignore;
      upstream_.close(ignore);
      co_return;
    }
    if (!client10) {
      wire::MessageInfo iinfo;  // for the fields its Connection names
      (void)wire::analyze_response(head, t.req.method, iinfo);
      std::string interim = response_head_for_client(head, iinfo, false, true, cfg.name, true);
      co_await write_client(interim, t);
    }
    watchdog_.arm(cfg.timeouts.upstream_first_byte);
  }
  upstream_scope_ = false;
  w_.metrics().observe(txn::Phase::first_byte, net::Clock::now() - t.sent_at);
  auto err = wire::analyze_response(head, t.req.method, rinfo);
  if (err != wire::Error::none) {
    t.rec.reason = "malformed upstream response: " + std::string(wire::describe(err));
    t.upstream_malformed = true;
    w_.metrics().upstream_error(txn::UpstreamError::malformed);
    boost::system::error_code ignore;
    upstream_.close(ignore);
    co_return;
  }
  if (!t.decision.final && !txn::decide_response(t, head)) {
    boost::system::error_code ignore;  // the response is refused: never relay any of it
    upstream_.close(ignore);
    co_return;
  }
  if (head.status == 101) {
    // The server took the WebSocket handshake: the connection now carries frames both ways,
    // relayed unscanned like a CONNECT tunnel, and is never reused.
    t.rec.status = 101;
    t.rec.reason = "switched to websocket";
    t.keep_client = false;
    const std::string out = switching_head_for_client(head, rinfo, cfg.name);
    if (co_await write_client(out, t)) {
      t.response_started = true;
      co_await relay_both_ways(t);
    }
    boost::system::error_code ignore;
    upstream_.close(ignore);
    co_return;
  }

  using wire::BodyKind;
  bool body_ok = true;
  bool upstream_eof = false;
  if (rinfo.body != BodyKind::none && scan_applies(t)) {
    co_await deliver_scanned(t, head, rinfo, body_ok, upstream_eof);
  } else {
    // How the body reaches the client: re-chunked for HTTP/1.1 when the length is unknown,
    // delimited by closing the connection for HTTP/1.0.
    const bool rechunk =
        !client10 && (rinfo.body == BodyKind::chunked || rinfo.body == BodyKind::until_close);
    if (client10 && (rinfo.body == BodyKind::chunked || rinfo.body == BodyKind::until_close))
      t.keep_client = false;
    if (w_.shared.draining.load()) t.keep_client = false;
    std::string out =
        response_head_for_client(head, rinfo, rechunk, t.keep_client, cfg.name, false, client10);
    t.rec.status = head.status;
    if (auto* ct = head.find("Content-Type")) t.rec.content_type = std::string(ct->value);
    watchdog_.arm(cfg.timeouts.body_idle);
    co_await relay_body(t, rinfo, out, rechunk, body_ok, upstream_eof);
  }

  if (!upload_done) {
    // The response is complete while the request body is still arriving: stop the upload.
    t.keep_client = false;
    boost::system::error_code ignore;
    client_.cancel(ignore);
    upstream_.close(ignore);
  }
  if (!body_ok) {
    t.keep_client = false;
    if (t.rec.reason.empty()) t.rec.reason = "client went away mid-response";
    t.rec.result = Result::error;
  }
  bool reusable = body_ok && upload_ok && upload_done && rinfo.keep_alive && !upstream_eof &&
                  upstream_.is_open() && ubuf_.empty() && !w_.shared.draining.load();
  if (reusable) {
    w_.pool().put(upstream_key_, std::move(upstream_), upstream_peer_,
                  cfg.timeouts.upstream_keepalive_idle);
    upstream_ = tcp::socket(client_.get_executor());
  } else {
    boost::system::error_code ignore;
    upstream_.close(ignore);
  }
  ubuf_.clear();
}

awaitable<void> Session::relay_body(Txn& t, const wire::MessageInfo& rinfo, std::string& out,
                                    bool rechunk, bool& body_ok, bool& upstream_eof) {
  using wire::BodyKind;
  const auto& cfg = t.cfg();
  if (rinfo.body == BodyKind::length) {
    std::uint64_t left = rinfo.content_length;
    // The head and the first body bytes go out in one write.
    std::size_t first = static_cast<std::size_t>(std::min<std::uint64_t>(left, ubuf_.size()));
    std::array<net::asio::const_buffer, 2> bufs{net::asio::buffer(out),
                                                net::asio::buffer(ubuf_.data().data(), first)};
    auto [wec, wn] = co_await net::asio::async_write(client_, bufs, use_nothrow);
    t.rec.bytes_out += wn;
    t.response_started = true;
    if (wec) body_ok = false;
    ubuf_.consume(first);
    left -= first;
    while (body_ok && left > 0) {
      auto span = ubuf_.prepare(kReadChunk);
      auto [ec, n] = co_await upstream_.async_read_some(net::asio::buffer(span.data(), span.size()),
                                                        use_nothrow);
      if (ec) {
        body_ok = false;
        t.rec.reason = "upstream closed mid-body";
        w_.metrics().upstream_error(txn::UpstreamError::closed_mid_body);
        break;
      }
      ubuf_.commit(n);
      watchdog_.arm(cfg.timeouts.body_idle);
      auto d = ubuf_.data();
      std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(left, d.size()));
      auto [wec2, wn2] =
          co_await net::asio::async_write(client_, net::asio::buffer(d.data(), take), use_nothrow);
      t.rec.bytes_out += wn2;
      if (wec2) {
        body_ok = false;
        break;
      }
      ubuf_.consume(take);
      left -= take;
    }
  } else if (rinfo.body == BodyKind::none) {
    co_await write_client(out, t);
    t.response_started = true;
  } else {
    // chunked or until-close
    if (!(co_await write_client(out, t))) body_ok = false;
    t.response_started = true;
    wire::ChunkedDecoder dec(cfg.limits);
    bool complete = false;
    while (body_ok && !complete) {
      out.clear();
      if (rinfo.body == BodyKind::chunked) {
        while (!ubuf_.empty()) {
          auto st = dec.next(ubuf_.data());
          if (st.status == wire::Status::error) {
            body_ok = false;
            t.rec.reason =
                "malformed chunked response body: " + std::string(wire::describe(st.error));
            w_.metrics().upstream_error(txn::UpstreamError::malformed);
            break;
          }
          if (!st.data.empty()) {
            if (rechunk) wire::append_chunk_header(out, st.data.size());
            out.append(st.data);
            if (rechunk) out += "\r\n";
          }
          ubuf_.consume(st.consumed);
          if (st.status == wire::Status::complete) {
            if (rechunk) wire::append_last_chunk(out, dec.trailers());
            complete = true;
            break;
          }
          if (st.consumed == 0 && st.data.empty()) break;
        }
      } else if (!ubuf_.empty()) {
        auto d = ubuf_.data();
        if (rechunk) wire::append_chunk_header(out, d.size());
        out.append(d);
        if (rechunk) out += "\r\n";
        ubuf_.consume(d.size());
      }
      if (!body_ok) break;
      if (upstream_eof) {  // until-close body ended
        if (rechunk) wire::append_last_chunk(out);
        complete = true;
      }
      if (!out.empty() && !(co_await write_client(out, t))) {
        body_ok = false;
        break;
      }
      if (complete) break;
      auto span = ubuf_.prepare(kReadChunk);
      auto [ec, n] = co_await upstream_.async_read_some(net::asio::buffer(span.data(), span.size()),
                                                        use_nothrow);
      if (ec == net::asio::error::eof && rinfo.body == BodyKind::until_close) {
        upstream_eof = true;
        continue;
      }
      if (ec) {
        body_ok = false;
        t.rec.reason = "upstream closed mid-body";
        w_.metrics().upstream_error(txn::UpstreamError::closed_mid_body);
        break;
      }
      ubuf_.commit(n);
      watchdog_.arm(cfg.timeouts.body_idle);
    }
  }
}

}  // namespace pc::proxy
