#include "icap/session.h"

#include <fmt/format.h>
#include <openssl/ssl.h>

#include <array>
#include <cstring>
#include <tuple>
#include <vector>

#include "base/log.h"
#include "base/strings.h"
#include "icap/identity.h"
#include "icap/session_txn.h"
#include "txn/http_page.h"

namespace pc::icap {

using net::asio::awaitable;
using telemetry::Result;
using wire::IcapEntity;
using wire::IcapMethod;

namespace {
constexpr std::size_t kReadChunk = 16 * 1024;

std::string_view mode_name(IcapMethod m) {
  switch (m) {
    case IcapMethod::options:
      return "options";
    case IcapMethod::reqmod:
      return "reqmod";
    case IcapMethod::respmod:
      return "respmod";
  }
  return "options";
}

wire::IcapLimits icap_limits(const config::Config& cfg) {
  wire::IcapLimits lim;
  lim.max_head_bytes = cfg.limits.max_head_bytes;
  lim.max_fields = cfg.limits.max_fields;
  lim.max_field_bytes = cfg.limits.max_field_bytes;
  lim.max_uri_bytes = cfg.limits.max_url_bytes;
  lim.max_encapsulated_bytes = 2 * cfg.limits.max_head_bytes;
  lim.http = cfg.limits;
  return lim;
}

// One piece of a re-chunked body: "<hex>\r\n" + data + "\r\n".
struct Piece {
  std::array<char, 20> size_line{};
  std::size_t size_len = 0;
  std::string_view data;
};
}  // namespace

IsTag istag(const txn::Snapshot& snap) {
  const std::uint64_t engines = snap.engines ? snap.engines->generation : 0;
  const std::uint64_t v = snap.policy->revision() ^ (engines * 0x9e3779b97f4a7c15ull);
  static constexpr char kHex[] = "0123456789abcdef";
  IsTag tag;
  std::memcpy(tag.text, "pc-", 3);
  for (int k = 0; k < 16; ++k) tag.text[3 + k] = kHex[(v >> (60 - 4 * k)) & 0xf];
  tag.size = sizeof tag.text;
  return tag;
}

Session::Session(txn::Worker& w, net::tcp::socket s, std::string listener,
                 std::shared_ptr<boost::asio::ssl::context> tls)
    : w_(w),
      stream_(tls ? Stream(std::move(s), *tls) : Stream(std::move(s))),
      tls_(std::move(tls)),
      listener_(std::move(listener)),
      watchdog_(stream_.socket().get_executor()),
      stall_timer_(stream_.socket().get_executor()) {
  boost::system::error_code ec;
  auto ep = stream_.socket().remote_endpoint(ec);
  if (!ec) {
    peer_ = net::address_text(ep.address());
    peer_ip_ = net::to_ip_bytes(ep.address());
  }
  stream_.socket().set_option(net::tcp::no_delay(true), ec);
  w_.add(this);
  metrics_slot_ = w_.metrics().connection_opened(listener_);
}

Session::~Session() {
  w_.metrics().connection_closed(metrics_slot_);
  w_.remove(this);
  if (counted_) w_.shared.icap_connections.fetch_sub(1, std::memory_order_relaxed);
}

awaitable<void> Session::run(std::shared_ptr<Session> self) {
  const auto snap = w_.snapshot();
  const auto& cfg = *snap->config;
  std::size_t total = w_.shared.icap_connections.fetch_add(1, std::memory_order_relaxed) + 1;
  counted_ = true;
  bool allowed = false;
  for (const auto& n : cfg.icap.client_networks) allowed = allowed || n.contains(peer_ip_);

  watchdog_.arm(cfg.timeouts.header_read);
  net::asio::co_spawn(stream_.socket().get_executor(),
                      watchdog_.run(self, [this] { stream_.close(); }), net::asio::detached);
  // admit: the ICAP client ACL and the connection limit. A TLS client is refused before the
  // handshake (it could not read a plain answer anyway).
  if (!allowed || total > cfg.icap.max_connections) {
    Txn t;
    t.snap = snap;
    t.tag = istag(*snap);
    t.start = net::Clock::now();
    t.rec.time = std::chrono::system_clock::now();
    t.rec.listener = listener_;
    t.rec.client = peer_;
    t.rec.icap_client = peer_;
    t.rec.icap_mode = "-";
    t.rec.request_id = w_.next_request_id();
    if (stream_.is_tls()) {
      t.rec.icap_status = allowed ? 503 : 403;
      t.rec.result = allowed ? Result::error : Result::denied;
      t.rec.reason = allowed ? "ICAP connection limit reached" : "ICAP client address not allowed";
      finish(t);
    } else if (!allowed) {
      t.rec.reason = "ICAP client address not allowed";
      co_await send_error(t, 403, true);
    } else {
      t.rec.reason = "ICAP connection limit reached";
      co_await send_error(t, 503, true);
    }
    watchdog_.stop();
    stream_.close();
    co_return;
  }

  auto ec = co_await stream_.handshake();
  if (ec) {
    log::info("ICAPS client {}: TLS handshake failed: {}", peer_, ec.message());
    watchdog_.stop();
    stream_.close();
    co_return;
  }
  for (;;) {
    bool more = co_await message();
    if (!more || !stream_.socket().is_open()) break;
  }
  watchdog_.stop();
  stream_.close();
}

// ---- reading ----

awaitable<bool> Session::fill() {
  auto span = buf_.prepare(kReadChunk);
  auto [ec, n] = co_await stream_.read_some(span);
  if (ec) co_return false;
  buf_.commit(n);
  read_total_ += n;
  co_return true;
}

awaitable<bool> Session::read_head(Txn& t, bool& clean_eof) {
  const auto& cfg = t.cfg();
  SSL* ssl = stream_.native_tls();
  if (buf_.empty() && !(ssl && SSL_has_pending(ssl))) {
    if (!first_) watchdog_.arm(cfg.timeouts.keepalive_idle);
    idle_ = true;
    if (w_.shared.draining.load()) {
      clean_eof = true;
      co_return false;
    }
    // Right after a message, a plain connection waits for the next one with its buffer
    // (see txn::Worker::hot_waiters); one that stays idle gives it back and waits without.
    bool arrived = false;
    if (!ssl && !first_ && w_.hot_waiters < txn::Worker::kHotWaiters) {
      ++w_.hot_waiters;
      hot_ = true;
      hot_ticks_ = 0;
      cooled_ = false;
      arrived = co_await fill();
      hot_ = false;
      --w_.hot_waiters;
      if (!arrived && !cooled_) {
        idle_ = false;
        clean_eof = true;
        co_return false;
      }
    }
    if (!arrived) {
      buf_.release();  // an idle connection holds no buffer
      auto ec = co_await stream_.wait_readable();
      if (ec) {
        idle_ = false;
        clean_eof = true;
        co_return false;
      }
    }
    idle_ = false;
  }
  if (!first_) watchdog_.arm(cfg.timeouts.header_read);
  first_ = false;
  t.start = net::Clock::now();
  t.rec.time = std::chrono::system_clock::now();
  t.in_start = consumed();
  const auto lim = icap_limits(cfg);
  for (;;) {
    if (!buf_.empty()) {
      auto r = wire::parse_icap_request_head(buf_.data(), lim, t.head);
      if (r.status == wire::Status::complete) {
        buf_.consume(r.consumed);
        co_return true;
      }
      if (r.status == wire::Status::error) {
        t.rec.request_id = w_.next_request_id();
        std::string why = "malformed ICAP request: " + std::string(wire::describe(r.error));
        if (r.detail != wire::Error::none)
          why += " (" + std::string(wire::describe(r.detail)) + ")";
        t.rec.reason = why;
        co_await send_error(t, wire::icap_status_for(r.error), true);
        co_return false;
      }
    }
    if (!(co_await fill())) {
      if (buf_.empty()) {
        clean_eof = true;
      } else {
        t.rec.request_id = w_.next_request_id();
        t.rec.icap_mode = "-";
        t.rec.result = Result::error;
        t.rec.reason = watchdog_.expired() ? "timeout reading ICAP head" : "client closed mid-head";
        t.keep = false;
        finish(t);
      }
      co_return false;
    }
  }
}

// ---- the transaction ----

Session::Service Session::service_for(const Txn& t) const {
  const auto& ic = t.cfg().icap;
  std::string_view s = t.head.target.service;
  if (s == ic.reqmod_service) return Service::reqmod;
  if (s == ic.respmod_service) return Service::respmod;
  for (const auto& a : ic.reqmod_aliases)
    if (s == a) return Service::reqmod;
  for (const auto& a : ic.respmod_aliases)
    if (s == a) return Service::respmod;
  return Service::none;
}

awaitable<bool> Session::message() {
  Txn t;
  t.snap = w_.snapshot();  // pinned for the whole transaction
  t.tag = istag(*t.snap);
  t.rec.listener = listener_;
  t.rec.client = peer_;
  t.rec.icap_client = peer_;
  t.client_text = peer_;
  t.facts.client = peer_ip_;
  t.facts.listener = listener_;

  bool clean_eof = false;
  if (!(co_await read_head(t, clean_eof))) co_return false;
  t.rec.request_id = w_.next_request_id();
  t.rec.icap_mode = std::string(mode_name(t.head.method));
  t.rec.method = std::string(t.head.method_name);
  t.rec.url = std::string(t.head.uri);
  t.keep = !t.head.connection_close;
  bool allowed = false;  // the ACL may have changed since accept (reload)
  for (const auto& n : t.cfg().icap.client_networks) allowed = allowed || n.contains(peer_ip_);
  if (!allowed) {
    t.rec.reason = "ICAP client address not allowed";
    co_return co_await send_error(t, 403, true);
  }

  const Service svc = service_for(t);
  // After an error reply the connection goes on only when nothing follows the ICAP head.
  const bool has_body = t.head.encapsulated.has_body() || t.head.encapsulated.body_offset > 0;
  if (svc == Service::none) {
    t.rec.reason = "unknown ICAP service";
    co_return co_await send_error(t, 404, has_body);
  }
  if (t.head.method == IcapMethod::options) co_return co_await send_options(t, svc);
  if ((svc == Service::reqmod) != (t.head.method == IcapMethod::reqmod)) {
    t.rec.reason = "method not offered by this ICAP service";
    co_return co_await send_error(t, 405, has_body);
  }
  co_return co_await modify(t, svc);
}

awaitable<bool> Session::modify(Txn& t, Service svc) {
  const auto& cfg = t.cfg();
  const auto& enc = t.head.encapsulated;
  watchdog_.arm(cfg.timeouts.body_idle);
  while (buf_.size() < enc.body_offset) {
    if (!(co_await fill())) {
      t.rec.result = Result::error;
      t.rec.reason = "client closed in the encapsulated heads";
      finish(t);
      co_return false;
    }
  }
  auto r = wire::parse_encapsulated_heads(enc, buf_.data(), cfg.limits, t.heads);
  if (r.status != wire::Status::complete) {
    std::string why = "malformed encapsulated HTTP head: " + std::string(wire::describe(r.error));
    if (r.detail != wire::Error::none) why += " (" + std::string(wire::describe(r.detail)) + ")";
    t.rec.reason = why;
    co_return co_await send_error(t, 400, true);
  }
  buf_.consume(enc.body_offset);
  if (enc.has_body()) t.body.emplace(cfg.limits, t.head.preview);
  if (svc == Service::reqmod && !t.heads.has_request) {
    t.rec.reason = "REQMOD without req-hdr";
    co_return co_await send_error(t, 400, true);
  }
  if (svc == Service::respmod && !t.heads.has_response) {
    t.rec.reason = "RESPMOD without res-hdr";
    co_return co_await send_error(t, 400, true);
  }

  identify(t);
  if (t.heads.has_response) t.rec.status = t.heads.response.status;

  // classify + decide the request (REQMOD's, or the one RESPMOD's response answers).
  if (t.heads.has_request) {
    const auto& req = t.heads.request;
    t.rec.method = std::string(req.method);
    t.rec.url = std::string(req.target);
    wire::Target target;
    auto err = wire::parse_target(req.method, req.target, target);
    std::string_view host = target.host;
    std::uint16_t port = target.port;
    if (err == wire::Error::none && target.form == wire::Target::Form::origin) {
      // A server-style request (origin-form): the host comes from Host.
      const auto* h = req.find("Host");
      bool explicit_port = false;
      err = h ? wire::parse_authority(h->value, 80, host, port, explicit_port)
              : wire::Error::bad_target;
    }
    if (err == wire::Error::none && target.form == wire::Target::Form::asterisk)
      err = wire::Error::bad_target;
    if (err != wire::Error::none) {
      t.reply = {pages::Kind::bad_request, 400, Result::error,
                 "malformed encapsulated request: " + std::string(wire::describe(err))};
      co_return co_await send_page(t);
    }
    t.host = base::to_lower(host);
    const std::string_view scheme = req.method == "CONNECT" ? "https"
                                    : target.scheme.empty() ? "http"
                                                            : target.scheme;
    t.rec.url =
        txn::canonical_url(scheme, t.host, port, req.method == "CONNECT" ? "" : target.path);
    if (!txn::decide_request(t, req, scheme, port, target.path)) co_return co_await send_page(t);
  }
  // the response phase (content type)
  if (svc == Service::respmod && !t.decision.final && !txn::decide_response(t, t.heads.response)) {
    t.reply = {t.decision.from_list ? pages::Kind::list_block : pages::Kind::rule_block, 403,
               Result::denied, "response blocked by " + txn::decision_reason(t)};
    co_return co_await send_page(t);
  }
  if (t.body && t.cfg().scan.enabled && t.decision.action != policy::Action::allow_no_scan &&
      w_.shared.scan)
    co_return co_await scan_and_deliver(t);
  co_return co_await send_allow(t);
}

void Session::identify(Txn& t) {
  const auto& ic = t.cfg().icap;
  for (const auto& name : ic.client_ip_headers) {
    if (const auto* f = t.head.find(name)) {
      if (auto ip = base::parse_ip(f->value)) {
        t.facts.client = *ip;
        t.client_text = std::string(f->value);
        t.rec.client = t.client_text;
        break;
      }
    }
  }
  for (const auto& name : ic.user_headers) {
    if (const auto* f = t.head.find(name)) {
      if (auto text = decode_identity(f->value, ic.user_encoding)) {
        auto p = parse_principal(*text);
        if (!p.name.empty()) {
          t.user = p.name;
          t.rec.user = p.display();
          break;
        }
      }
    }
  }
  for (const auto& name : ic.group_headers) {
    if (const auto* f = t.head.find(name)) {
      if (auto text = decode_identity(f->value, ic.user_encoding)) {
        for (auto& p : parse_principals(*text)) {
          if (!t.rec.groups.empty()) t.rec.groups += ',';
          t.rec.groups += p.display();
          t.groups.push_back(std::move(p.name));
        }
      }
    }
  }
  if (const auto* f = t.head.find("X-Server-IP"); f && base::parse_ip(f->value))
    t.rec.upstream = std::string(f->value);
}

// ---- replies ----

awaitable<bool> Session::send(Txn& t, const std::string& bytes) {
  auto ec = co_await stream_.write(net::asio::buffer(bytes));
  if (ec) co_return false;
  t.rec.bytes_out += bytes.size();
  co_return true;
}

awaitable<bool> Session::send_error(Txn& t, int status, bool close) {
  if (t.tag.empty()) t.tag = istag(*t.snap);
  std::array<wire::Field, 1> conn{{{"Connection", "close"}}};
  wire::IcapParts parts;
  if (close) {
    parts.fields = conn;
    t.keep = false;
  }
  std::string out;
  wire::append_icap_response(out, status, t.tag, IcapMethod::options, parts);
  t.rec.icap_status = status;
  t.rec.result = status == 403 ? Result::denied : Result::error;
  if (t.rec.icap_mode.empty()) t.rec.icap_mode = "-";
  bool ok = co_await send(t, out);
  finish(t);
  if (close || !ok) {
    stream_.shutdown_send();
    co_return false;
  }
  co_return t.keep;
}

awaitable<bool> Session::send_options(Txn& t, Service svc) {
  const auto& ic = t.cfg().icap;
  const std::string max_conn = std::to_string(ic.max_connections);
  const std::string ttl = std::to_string(ic.options_ttl);
  const std::string preview = std::to_string(ic.preview);
  std::string include = ic.client_ip_headers.empty() ? "" : ic.client_ip_headers.front();
  for (const auto* list : {&ic.user_headers, &ic.group_headers}) {
    if (list->empty()) continue;
    if (!include.empty()) include += ", ";
    include += list->front();
  }
  std::vector<wire::Field> fields{
      {"Methods", svc == Service::reqmod ? "REQMOD" : "RESPMOD"},
      {"Service", "Portcullis ICAP"},
      {"Service-ID", "portcullis"},
      {"Max-Connections", max_conn},
      {"Options-TTL", ttl},
      {"Allow", "204"},
      {"Preview", preview},
      {"Transfer-Preview", "*"},
  };
  std::string ignore, complete;  // outlive fields
  for (auto [name, list, out] :
       {std::tuple{"Transfer-Ignore", &ic.transfer_ignore, &ignore},
        std::tuple{"Transfer-Complete", &ic.transfer_complete, &complete}}) {
    if (list->empty()) continue;
    for (const auto& e : *list) *out += (out->empty() ? "" : ", ") + e;
    fields.push_back({name, *out});
  }
  if (!include.empty()) fields.push_back({"X-Include", include});
  const bool body = t.head.encapsulated.has_body();  // an opt-body we do not read
  if (body || !t.keep) fields.push_back({"Connection", "close"});
  wire::IcapParts parts;
  parts.fields = fields;
  std::string out;
  wire::append_icap_response(out, 200, t.tag, IcapMethod::options, parts);
  t.rec.icap_status = 200;
  t.rec.reason = "ICAP OPTIONS";
  bool ok = co_await send(t, out);
  finish(t);
  co_return ok && !body && t.keep;
}

awaitable<bool> Session::send_page(Txn& t) {
  const wire::RequestHead* req = t.heads.has_request ? &t.heads.request : nullptr;
  std::string extra = std::move(t.reply.extra_headers);
  auto page = txn::render_reply(t, req);
  const bool head_only = req && req->method == "HEAD";
  std::string http = txn::http_page(page.status, page.html, page.lang, false, true, extra);
  wire::IcapParts parts;
  parts.res_hdr = http;
  parts.body = head_only ? IcapEntity::null_body : IcapEntity::res_body;
  std::string out;
  wire::append_icap_response(out, 200, t.tag, t.head.method, parts);
  if (!head_only) {
    out += fmt::format("{:x}\r\n", page.html.size());
    out += page.html;
    out += "\r\n0\r\n\r\n";
  }
  t.rec.icap_status = 200;
  bool ok = co_await send(t, out);
  // The rest of the body (or the preview) is still on the connection: read past it.
  if (ok && t.body) {
    auto end = co_await drain_body(t);
    ok = end == BodyEnd::ok;
  }
  finish(t);
  co_return ok&& t.keep;
}

awaitable<bool> Session::send_allow(Txn& t) {
  const auto& cfg = t.cfg();
  // 204 inside a preview is always allowed (RFC 3507 4.5); outside it only with Allow: 204.
  bool no_content = false;
  if (!t.body) {
    no_content = t.head.allow_204;
  } else if (t.head.preview) {
    auto end = co_await drain_body(t);
    if (end == BodyEnd::malformed) co_return co_await send_error(t, 400, true);
    if (end != BodyEnd::ok) {
      finish(t);
      co_return false;
    }
    no_content = true;
  } else if (t.head.allow_204) {
    // The client keeps a copy of what it sent: nothing is kept here. The 204 waits for the end
    // of a body that fits the buffer; a larger one gets it as soon as the buffer's worth has
    // arrived (never waiting for an end a client may hold back until the reply starts), and
    // the rest is read and discarded.
    auto& dec = *t.body;
    std::uint64_t seen = 0;
    for (;;) {
      auto step = dec.next(buf_.data());
      buf_.consume(step.consumed);
      seen += step.data.size();
      if (step.status == wire::Status::complete) {
        t.body.reset();
        break;
      }
      if (step.status == wire::Status::error) {
        t.rec.reason = "malformed ICAP body: " + std::string(wire::describe(step.error));
        co_return co_await send_error(t, 400, true);
      }
      if (seen > cfg.icap.buffer_for_204) break;  // 204 now, the rest drained after it
      if (step.consumed != 0 || !step.data.empty()) continue;
      watchdog_.arm(cfg.timeouts.body_idle);
      if (!(co_await fill())) {
        t.rec.result = Result::error;
        t.rec.reason = "client closed in the ICAP body";
        finish(t);
        co_return false;
      }
    }
    no_content = true;
  }
  if (no_content) {
    std::string out;
    wire::append_icap_no_content(out, t.tag);
    t.rec.icap_status = 204;
    bool ok = co_await send(t, out);
    if (ok && t.body) {
      // Sent before the end of a large body. A client may close instead of sending the rest
      // (c-icap-client does): the answer was delivered, so that is no error.
      const auto result = t.rec.result;
      auto end = co_await drain_body(t);
      ok = end == BodyEnd::ok;
      if (end == BodyEnd::closed) {
        t.rec.result = result;
        t.rec.reason = "client closed the body after the 204";
      }
    }
    finish(t);
    co_return ok&& t.keep;
  }
  // The echo: the heads unmodified, the body streamed as it arrives.
  bool ok = t.body ? co_await echo_body(t, echo_head(t, true)) : co_await send_echo_head(t, false);
  finish(t);
  co_return ok&& t.keep;
}

awaitable<bool> Session::echo_body(Txn& t, std::string head) {
  auto& dec = *t.body;
  std::vector<Piece> pieces;
  std::vector<net::asio::const_buffer> out;
  for (;;) {
    pieces.clear();
    std::size_t off = 0;
    bool done = false;
    for (;;) {
      auto step = dec.next(buf_.data().substr(off));
      off += step.consumed;
      if (!step.data.empty()) {
        Piece p;
        auto r =
            fmt::format_to_n(p.size_line.data(), p.size_line.size(), "{:x}\r\n", step.data.size());
        p.size_len = r.size;
        p.data = step.data;
        pieces.push_back(p);
      }
      if (step.status == wire::Status::complete) {
        done = true;
        break;
      }
      if (step.status == wire::Status::error) {
        // Framing is lost mid-reply: the client sees the cut and the connection closes.
        t.rec.result = Result::error;
        t.rec.reason = "malformed ICAP body: " + std::string(wire::describe(step.error));
        co_return false;
      }
      if (step.consumed == 0 && step.data.empty()) break;
    }
    out.clear();
    std::size_t bytes = head.size();
    if (!head.empty()) out.push_back(net::asio::buffer(head));
    for (const auto& p : pieces) {
      out.push_back(net::asio::buffer(p.size_line.data(), p.size_len));
      out.push_back(net::asio::buffer(p.data.data(), p.data.size()));
      out.push_back(net::asio::buffer(kCrlf.data(), kCrlf.size()));
      bytes += p.size_len + p.data.size() + kCrlf.size();
    }
    if (done) {
      out.push_back(net::asio::buffer(kLastChunk.data(), kLastChunk.size()));
      bytes += kLastChunk.size();
    }
    if (!out.empty()) {
      watchdog_.arm(t.cfg().timeouts.body_idle);
      auto ec = co_await stream_.write(out);
      if (ec) co_return false;
      t.rec.bytes_out += bytes;
      head.clear();
    }
    buf_.consume(off);
    if (done) {
      t.body.reset();
      co_return true;
    }
    watchdog_.arm(t.cfg().timeouts.body_idle);
    if (!(co_await fill())) {
      t.rec.result = Result::error;
      t.rec.reason = "client closed in the ICAP body";
      co_return false;
    }
  }
}

awaitable<Session::BodyEnd> Session::drain_body(Txn& t) {
  auto& dec = *t.body;
  for (;;) {
    for (;;) {
      auto step = dec.next(buf_.data());
      buf_.consume(step.consumed);
      if (step.status == wire::Status::complete) {
        t.body.reset();
        co_return BodyEnd::ok;
      }
      if (step.status == wire::Status::error) {
        t.rec.result = Result::error;
        t.rec.reason = "malformed ICAP body: " + std::string(wire::describe(step.error));
        co_return BodyEnd::malformed;
      }
      if (step.consumed == 0 && step.data.empty()) break;
    }
    watchdog_.arm(t.cfg().timeouts.body_idle);
    if (!(co_await fill())) {
      t.rec.result = Result::error;
      t.rec.reason = "client closed in the ICAP body";
      co_return BodyEnd::closed;
    }
  }
}

void Session::finish(Txn& t) {
  // The bytes of this message: read and taken from the buffer since it began (a pipelined
  // next message read along with it is not counted; all of it when the connection closes).
  t.rec.bytes_in = (t.keep ? consumed() : read_total_) - t.in_start;
  txn::finish(t, w_);
}

}  // namespace pc::icap
