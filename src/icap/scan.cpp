// icap::Session, scanning: collect the encapsulated body, scan it, deliver (docs/scanning.md).
#include <openssl/ssl.h>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <limits>

#include "base/strings.h"
#include "icap/session_txn.h"

namespace pc::icap {

using namespace boost::asio::experimental::awaitable_operators;
using net::asio::awaitable;
using telemetry::Result;
using wire::IcapEntity;
using wire::IcapMethod;

namespace {
// Trickling: the bytes held back from the client until the verdict.
constexpr std::uint64_t kHoldback = 1 << 20;
// Before replying, a body that stops arriving for this long is taken as a client waiting for
// the reply to start (Squid sends about 64 KiB after 100 Continue, then waits).
constexpr std::chrono::milliseconds kStall{100};
}  // namespace

awaitable<Session::Collect> Session::collect(Txn& t, txn::Spool& spool, std::uint64_t stop_at,
                                             std::chrono::milliseconds stall) {
  for (;;) {
    for (;;) {
      auto step = t.body->next(buf_.data());
      const bool kept = step.data.empty() || spool.append(step.data);
      buf_.consume(step.consumed);
      if (!spool.intact()) {
        t.rec.result = Result::error;
        t.rec.reason = "cannot write the spool";
        co_return Collect::closed;
      }
      if (!kept) co_return Collect::spool_full;
      if (step.status == wire::Status::complete) co_return Collect::done;
      if (step.status == wire::Status::error) {
        t.rec.result = Result::error;
        t.rec.reason = "malformed ICAP body: " + std::string(wire::describe(step.error));
        co_return Collect::malformed;
      }
      if (step.consumed == 0 && step.data.empty()) break;
    }
    if (spool.size() >= stop_at) co_return Collect::more;
    watchdog_.arm(t.cfg().timeouts.body_idle);
    SSL* ssl = stream_.native_tls();
    if (stall.count() > 0 && !(ssl && SSL_has_pending(ssl))) {
      // A client that stops sending until the reply starts must not wait for us: after a
      // short silence the caller starts replying.
      stall_timer_.expires_after(stall);
      auto wait = stream_.socket().async_wait(net::tcp::socket::wait_read, net::use_nothrow);
      auto tick = stall_timer_.async_wait(net::use_nothrow);
      auto first = co_await (std::move(wait) || std::move(tick));
      if (first.index() == 1) co_return Collect::stalled;
    }
    if (!(co_await fill())) {
      t.rec.result = Result::error;
      t.rec.reason = "client closed in the ICAP body";
      co_return Collect::closed;
    }
  }
}

std::string Session::echo_head(Txn& t, bool with_body) {
  const bool reqmod = t.head.method == IcapMethod::reqmod;
  wire::IcapParts parts;
  if (reqmod)
    parts.req_hdr = t.heads.request.bytes();
  else
    parts.res_hdr = t.heads.response.bytes();
  parts.body = !with_body ? IcapEntity::null_body
               : reqmod   ? IcapEntity::req_body
                          : IcapEntity::res_body;
  std::string out;
  wire::append_icap_response(out, 200, t.tag, t.head.method, parts);
  t.rec.icap_status = 200;
  return out;
}

awaitable<bool> Session::send_echo_head(Txn& t, bool with_body) {
  co_return co_await send(t, echo_head(t, with_body));
}

awaitable<bool> Session::send_spool(Txn& t, const txn::Spool& spool, std::uint64_t from,
                                    std::uint64_t to, bool last, std::string head) {
  std::string scratch, line;
  std::vector<net::asio::const_buffer> out;
  do {
    out.clear();
    std::size_t bytes = head.size();
    if (!head.empty()) out.push_back(net::asio::buffer(head));
    if (from < to) {
      auto n = static_cast<std::size_t>(std::min<std::uint64_t>(to - from, 256 * 1024));
      auto data = spool.read(from, n, scratch);
      if (data.empty()) co_return false;
      line.clear();
      wire::append_chunk_header(line, data.size());
      out.push_back(net::asio::buffer(line));
      out.push_back(net::asio::buffer(data.data(), data.size()));
      out.push_back(net::asio::buffer(kCrlf.data(), kCrlf.size()));
      bytes += line.size() + data.size() + kCrlf.size();
      from += data.size();
    }
    if (last && from == to) {
      out.push_back(net::asio::buffer(kLastChunk.data(), kLastChunk.size()));
      bytes += kLastChunk.size();
    }
    if (out.empty()) break;
    watchdog_.arm(t.cfg().timeouts.body_idle);
    auto ec = co_await stream_.write(out);
    if (ec) co_return false;
    t.rec.bytes_out += bytes;
    head.clear();
  } while (from < to);
  co_return true;
}

awaitable<bool> Session::scan_and_deliver(Txn& t) {
  const auto& sc = t.cfg().scan;
  auto& svc = *w_.shared.scan;
  txn::Spool spool(svc, sc.memory_buffer, sc.spool_limit);
  bool in_preview = t.head.preview.has_value();
  bool ieof = false;
  bool continued = false;  // 100 Continue sent: the preview is over

  // A body announced larger than the scan limit, or an endless stream, is not collected.
  bool too_large = false;
  std::uint64_t announced = 0;  // the response's Content-Length, when it has one
  if (t.heads.has_response) {
    const auto& res = t.heads.response;
    const auto* cl = res.find("Content-Length");
    std::uint64_t len = 0;
    if (cl && base::parse_u64(cl->value, len)) {
      announced = len;
      too_large = !txn::fits_scan(sc, len);
    }
    const auto* ct = res.find("Content-Type");
    if (!cl && ct && txn::is_endless_stream(ct->value)) too_large = true;
  }

  // The file name of the body: from the head that carries it (the response's in RESPMOD),
  // refined from the body's first bytes once collected (a multipart upload's file part).
  const wire::Head* carrier = &t.heads.request;
  if (t.heads.has_response) carrier = &t.heads.response;
  t.scan_file_name = txn::body_file_name(*carrier, {}, t.rec.url);

  // Collect: the preview first (then 100 Continue when more follows), then the body, until it
  // ends or grows past what may be held before the reply starts.
  Collect c = Collect::more;
  if (!too_large && in_preview) {
    c = co_await collect(t, spool, std::numeric_limits<std::uint64_t>::max());
    if (c == Collect::done) {
      ieof = t.body->ieof();
      if (!ieof) {
        continued = true;
        std::string cont;
        wire::append_icap_continue(cont);
        if (!(co_await send(t, cont))) {
          finish(t);
          co_return false;
        }
        t.body.emplace(t.cfg().limits);
        c = Collect::more;
      }
    }
  }
  const std::uint64_t early =
      std::min<std::uint64_t>(t.cfg().icap.buffer_for_204, sc.max_scan_size);
  if (!too_large && c == Collect::more) c = co_await collect(t, spool, early + 1, kStall);
  if (c == Collect::stalled) c = Collect::more;
  if (c == Collect::malformed) co_return co_await send_error(t, 400, true);
  if (c == Collect::closed) {
    finish(t);
    co_return false;
  }
  // The spool limit reached: not scanned; the failure mode decides, then it is delivered or
  // refused like an oversized body.
  if (c == Collect::spool_full) too_large = true;

  if (c == Collect::done && !too_large) {
    // The whole body is here: scan before anything is sent.
    t.body.reset();
    const auto scan_start = net::Clock::now();
    auto outcome = co_await txn::scan_spool(*t.snap, svc, spool);
    w_.metrics().scanned(outcome, net::Clock::now() - scan_start);
    t.scan_file_name = txn::body_file_name(*carrier, spool.head(), t.rec.url);
    if (!txn::apply_scan(t, outcome)) co_return co_await send_page(t);
    if (rescan_policy(t, outcome)) co_return co_await send_page(t);
    if (t.head.allow_204 || (in_preview && ieof)) {
      std::string out;
      wire::append_icap_no_content(out, t.tag);
      t.rec.icap_status = 204;
      bool ok = co_await send(t, out);
      finish(t);
      co_return ok&& t.keep;
    }
    bool ok = co_await send_spool(t, spool, 0, spool.size(), true, echo_head(t, true));
    finish(t);
    co_return ok&& t.keep;
  }

  if (too_large) {
    std::optional<txn::ScanOutcome> outcome;
    if (c == Collect::spool_full) {
      auto failed = co_await txn::failure_outcome(sc, svc, spool, "the spool is full");
      outcome = std::move(failed);
    } else {
      outcome = txn::too_large_outcome(sc, svc, std::max(announced, spool.size()));
    }
    if (!txn::apply_scan(t, *outcome)) co_return co_await send_page(t);  // drains the rest
    if (in_preview && !continued) {
      // Still in the preview: unmodified is 204, and the rest is never sent.
      auto end = co_await drain_body(t);
      if (end == BodyEnd::malformed) co_return co_await send_error(t, 400, true);
      std::string out;
      wire::append_icap_no_content(out, t.tag);
      t.rec.icap_status = 204;
      bool ok = end == BodyEnd::ok;
      if (ok) ok = co_await send(t, out);
      finish(t);
      co_return ok&& t.keep;
    }
    // Passed unscanned: what was collected, then the rest as it arrives.
    const bool whole = !t.body;
    bool ok = co_await send_spool(t, spool, 0, spool.size(), whole, echo_head(t, true));
    if (ok && t.body) ok = co_await echo_body(t);
    finish(t);
    co_return ok&& t.keep;
  }

  // Trickle: the body is larger than may be held before replying (a client that cannot keep
  // a copy stops sending until the reply starts). Echo it as it arrives but hold back the
  // last part until the verdict; a blocked body is cut off and never completes.
  const std::uint64_t holdback = kHoldback;
  if (!(co_await send_echo_head(t, true))) {
    finish(t);
    co_return false;
  }
  std::uint64_t sent = 0;
  for (;;) {
    if (spool.size() > sent + holdback) {
      if (!(co_await send_spool(t, spool, sent, spool.size() - holdback, false))) {
        finish(t);
        co_return false;
      }
      sent = spool.size() - holdback;
    }
    if (c == Collect::done) break;
    if (!txn::fits_scan(sc, spool.size())) {
      // Grown past the scan limit while trickling.
      auto outcome = txn::too_large_outcome(sc, svc, spool.size());
      if (!txn::apply_scan(t, outcome)) {
        t.rec.reason += " (cut off: the reply had started)";
        finish(t);
        co_return false;
      }
      bool ok = co_await send_spool(t, spool, sent, spool.size(), false);
      if (ok) ok = co_await echo_body(t);
      finish(t);
      co_return ok&& t.keep;
    }
    c = co_await collect(t, spool, spool.size() + 1);
    if (c == Collect::spool_full) {
      // Not scanned: the failure mode decides whether the rest goes through.
      auto outcome = co_await txn::failure_outcome(sc, svc, spool, "the spool is full");
      if (!txn::apply_scan(t, outcome)) {
        t.rec.reason += " (cut off: the reply had started)";
        finish(t);
        co_return false;
      }
      bool ok = co_await send_spool(t, spool, sent, spool.size(), false);
      if (ok) ok = co_await echo_body(t);
      finish(t);
      co_return ok&& t.keep;
    }
    if (c == Collect::malformed || c == Collect::closed) {
      finish(t);
      co_return false;
    }
  }
  t.body.reset();
  const auto scan_start = net::Clock::now();
  auto outcome = co_await txn::scan_spool(*t.snap, svc, spool);
  w_.metrics().scanned(outcome, net::Clock::now() - scan_start);
  t.scan_file_name = txn::body_file_name(*carrier, spool.head(), t.rec.url);
  if (!txn::apply_scan(t, outcome) || rescan_policy(t, outcome)) {
    // Too late for a page: the client has most of the body. End the ICAP connection without
    // the last part; the proxy aborts the transfer.
    t.rec.icap_status = 200;
    t.rec.reason += " (cut off after trickling)";
    finish(t);
    co_return false;
  }
  bool ok = co_await send_spool(t, spool, sent, spool.size(), true);
  finish(t);
  co_return ok&& t.keep;
}

bool Session::rescan_policy(Txn& t, const txn::ScanOutcome& o) {
  // Response-phase rules on the true file type (RESPMOD only): decided again now it is known.
  if (t.decision.final || !t.heads.has_response) return false;
  t.facts.file_type = o.file_type;
  if (txn::decide_response(t, t.heads.response)) return false;
  t.reply = {t.decision.from_list ? pages::Kind::list_block : pages::Kind::rule_block, 403,
             Result::denied, "response blocked by " + txn::decision_reason(t)};
  return true;
}

}  // namespace pc::icap
