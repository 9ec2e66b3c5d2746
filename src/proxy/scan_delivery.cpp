// Malware scanning in the forward proxy (issue #5, docs/scanning.md): bodies are collected
// into a txn::Spool, scanned, and only then released.
//
// Downloads: the response head is held back while the body is collected. Clean: the head
// goes out with Content-Length = the spooled size, then the spooled bytes. Blocked: the threat
// page (or a block page) instead. A body still arriving scan.trickle_after after its head is
// trickled: the head goes out in the origin's framing and the body follows as it arrives,
// except the last trickle_holdback() bytes, kept until the verdict; an infected body is then
// cut off (connection reset, no last chunk, short Content-Length body) and never completes.
// (The trickle start is checked whenever body bytes arrive.) Bodies larger than
// scan.max_scan_size, known up front or found while collecting, and endless streams (no
// length, a streaming media type) follow scan.too_large: the page, or a cut when part was
// sent already; or relayed unscanned with the record flagged.
//
// Uploads: a request body is collected and scanned before the request goes upstream; the
// gateway answers "Expect: 100-continue" itself. Over max_scan_size: too_large again
// (passed bodies stream to the origin as they arrive).
#include <algorithm>
#include <array>
#include <optional>

#include "base/log.h"
#include "proxy/forwarding.h"
#include "proxy/session.h"
#include "proxy/session_txn.h"

namespace pc::proxy {

using net::tcp;
using net::use_nothrow;
using net::asio::awaitable;
using telemetry::Result;

namespace {

// The least free space a body read asks for (as in session.cpp).
constexpr std::size_t kReadChunk = 16 * 1024;
// Spooled bytes go out in pieces of this size (a memory file is never read whole).
constexpr std::size_t kSpoolPiece = 256 * 1024;
constexpr const char* kCannotSpool =
    "cannot spool the body (scan.spool_limit reached or memory file error)";

// The outcome for an endless stream: too_large, with the reason saying why.
txn::ScanOutcome endless_outcome(const config::Scan& s, txn::ScanService& svc,
                                 std::string_view type) {
  auto o = txn::too_large_outcome(s, svc, 0);
  o.name = "endless stream";
  o.reason = std::string(o.block ? "blocked" : "passed unscanned") + ": endless stream (" +
             std::string(type) + " without a length; scan.too_large)";
  return o;
}

}  // namespace

// A response body being collected for a scan, and how much of it the client has.
struct Session::Download {
  Download(txn::ScanService& svc, const config::Scan& s, const wire::MessageInfo& rinfo,
           const wire::Limits& limits)
      : spool(svc, s.memory_buffer, s.spool_limit),
        src(rinfo.body, rinfo.content_length, limits),
        holdback(
            trickle_holdback(rinfo.body == wire::BodyKind::length ? rinfo.content_length : 0)) {}
  txn::Spool spool;
  BodySource src;
  std::uint64_t holdback;  // kept back from a trickled client until the verdict
  bool started = false;    // the head went out (trickled or passed unscanned)
  bool chunked = false;    // the body goes out chunked
  std::uint64_t sent = 0;  // spooled bytes the client has
  std::string scratch;     // for reading the memory file
};

bool Session::scan_applies(const Txn& t) const {
  return t.cfg().scan.enabled && w_.shared.scan != nullptr &&
         t.decision.action != policy::Action::allow_no_scan;
}

awaitable<bool> Session::read_body(Txn& t, BodySource& src, tcp::socket& from, base::Buffer& buf,
                                   std::string& out, std::uint64_t& raw) {
  using wire::BodyKind;
  const std::size_t before = out.size();
  while (!src.complete) {
    if (!buf.empty()) {
      if (src.kind == BodyKind::length) {
        auto d = buf.data();
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(src.left, d.size()));
        out.append(d.substr(0, n));
        buf.consume(n);
        raw += n;
        src.left -= n;
        src.complete = src.left == 0;
        co_return true;
      }
      if (src.kind == BodyKind::chunked) {
        while (!buf.empty()) {
          auto st = src.dec.next(buf.data());
          if (st.status == wire::Status::error) {
            src.error = std::string(wire::describe(st.error));
            co_return false;
          }
          out.append(st.data);
          buf.consume(st.consumed);
          raw += st.consumed;
          if (st.status == wire::Status::complete) {
            src.complete = true;
            co_return true;
          }
          if (st.consumed == 0 && st.data.empty()) break;  // needs more bytes
        }
        if (out.size() > before) co_return true;
      } else {  // until the connection closes
        auto d = buf.data();
        out.append(d);
        raw += d.size();
        buf.consume(d.size());
        co_return true;
      }
    }
    auto span = buf.prepare(kReadChunk);
    auto [ec, n] =
        co_await from.async_read_some(net::asio::buffer(span.data(), span.size()), use_nothrow);
    if (ec == net::asio::error::eof && src.kind == BodyKind::until_close) {
      src.complete = true;
      src.closed = true;
      co_return true;
    }
    if (ec) co_return false;
    buf.commit(n);
    watchdog_.arm(t.cfg().timeouts.body_idle);
  }
  co_return true;
}

// ---- uploads ----

awaitable<bool> Session::collect_upload(Txn& t) {
  const auto& cfg = t.cfg();
  const auto& sc = cfg.scan;
  auto& svc = *w_.shared.scan;
  if (t.info.body == wire::BodyKind::length && !txn::fits_scan(sc, t.info.content_length)) {
    auto o = txn::too_large_outcome(sc, svc, t.info.content_length);
    t.scan_file_name = txn::body_file_name(t.req, {}, t.rec.url);
    co_return txn::apply_scan(t, o);  // passed: forwarded as it arrives (Expect included)
  }
  if (t.info.expect_continue && t.req.version_minor >= 1) {
    // The body is needed before the origin sees the request: ask for it here.
    constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    co_await write_client(kContinue, t);
    t.continue_sent = true;
  }
  auto spool = std::make_unique<txn::Spool>(svc, sc.memory_buffer, sc.spool_limit);
  auto src = std::make_unique<BodySource>(t.info.body, t.info.content_length, cfg.limits);
  if (const auto* ct = t.req.find("Content-Type")) {
    // Multipart: scanned (and hashed) behind MIME header lines, forwarded without them.
    std::string wrapper = mime_wrapper(ct->value);
    if (spool->append(wrapper)) t.upload_skip = wrapper.size();
  }
  upstream_scope_ = false;
  watchdog_.arm(cfg.timeouts.body_idle);
  std::string piece;
  while (!src->complete) {
    piece.clear();
    if (!(co_await read_body(t, *src, client_, cbuf_, piece, t.rec.bytes_in))) {
      t.keep_client = false;
      if (!src->error.empty()) {
        t.body_error = true;
        set_reply(t, {pages::Kind::bad_request, 400, Result::error,
                      "malformed chunked request body: " + src->error, true});
      } else {
        std::string why =
            watchdog_.expired() ? "timeout reading the request body" : "client closed mid-body";
        set_reply(t, {pages::Kind::bad_request, 408, Result::error, why, true});
      }
      co_return false;
    }
    std::optional<txn::ScanOutcome> unscanned;
    if (!spool->append(piece)) {
      auto failed = co_await txn::failure_outcome(sc, svc, *spool, kCannotSpool);
      failed.size -= std::min(failed.size, t.upload_skip);
      unscanned = std::move(failed);
    } else {
      piece.clear();
      if (!txn::fits_scan(sc, spool->size() - t.upload_skip))
        unscanned = txn::too_large_outcome(sc, svc, spool->size() - t.upload_skip);
    }
    if (unscanned) {
      t.scan_file_name = txn::body_file_name(t.req, spool->head(), t.rec.url);
      if (!txn::apply_scan(t, *unscanned)) co_return false;
      // Passed unscanned: what was collected, then the rest as it arrives, in its framing.
      t.upload = std::move(spool);
      t.upload_pending = std::move(piece);
      t.upload_rest = std::move(src);
      co_return true;
    }
  }
  const auto scan_start = net::Clock::now();
  auto outcome = co_await txn::scan_spool(*t.snap, svc, *spool);
  w_.metrics().scanned(outcome, net::Clock::now() - scan_start);
  outcome.size -= std::min(outcome.size, t.upload_skip);  // the body, not its MIME wrapper
  t.scan_file_name = txn::body_file_name(t.req, spool->head(), t.rec.url);
  if (!txn::apply_scan(t, outcome)) co_return false;
  // Forwarded whole: with its length now known, or chunked again when it ended in trailer
  // fields, so that they go with it.
  if (src->kind == wire::BodyKind::chunked && !src->dec.trailers().empty()) {
    t.upload_trailers = src->dec.trailers();
  } else {
    t.info.body = wire::BodyKind::length;
    t.info.content_length = spool->size() - t.upload_skip;
  }
  t.upload = std::move(spool);
  co_return true;
}

awaitable<bool> Session::write_upstream(std::string_view data, bool chunked) {
  if (data.empty()) co_return true;
  std::string hdr;
  std::string_view crlf;
  if (chunked) {
    wire::append_chunk_header(hdr, data.size());
    crlf = "\r\n";
  }
  std::array<net::asio::const_buffer, 3> bufs{net::asio::buffer(hdr),
                                              net::asio::buffer(data.data(), data.size()),
                                              net::asio::buffer(crlf.data(), crlf.size())};
  auto [ec, n] = co_await net::asio::async_write(upstream_, bufs, use_nothrow);
  co_return !ec;
}

awaitable<void> Session::upload_spooled(Txn& t, bool& done, bool& ok) {
  // A scanned body goes out with its Content-Length (t.info restated), or chunked with its
  // trailer section; an unscanned one in its own framing.
  const bool chunked = t.info.body == wire::BodyKind::chunked;
  const txn::Spool& spool = *t.upload;
  std::string scratch;
  std::uint64_t off = t.upload_skip;
  while (ok && off < spool.size()) {
    std::string_view v = spool.read(off, kSpoolPiece, scratch);
    if (v.empty()) {
      ok = false;
      break;
    }
    ok = co_await write_upstream(v, chunked);
    off += v.size();
  }
  if (ok) {
    std::string_view pending = t.upload_pending;
    ok = co_await write_upstream(pending, chunked);
  }
  if (ok && t.upload_rest) {
    BodySource& src = *t.upload_rest;
    std::string piece;
    while (ok && !src.complete) {
      piece.clear();
      if (!(co_await read_body(t, src, client_, cbuf_, piece, t.rec.bytes_in))) {
        ok = false;
        if (!src.error.empty()) {
          t.body_error = true;
          t.rec.reason = "malformed chunked request body: " + src.error;
        }
        break;
      }
      ok = co_await write_upstream(piece, chunked);
    }
    if (ok && chunked) {
      std::string last;
      wire::append_last_chunk(last, src.dec.trailers());
      ok = co_await write_upstream(last, false);
    }
  } else if (ok && chunked) {
    std::string last;
    wire::append_last_chunk(last, t.upload_trailers);
    ok = co_await write_upstream(last, false);
  }
  done = true;
  if (!ok) {
    // Never let the server see a truncated body as whole.
    t.keep_client = false;
    boost::system::error_code ignore;
    upstream_.close(ignore);
  }
}

// ---- downloads ----

awaitable<bool> Session::write_piece(Txn& t, std::string_view data, bool chunked) {
  if (data.empty()) co_return true;
  std::string hdr;
  std::string_view crlf;
  if (chunked) {
    wire::append_chunk_header(hdr, data.size());
    crlf = "\r\n";
  }
  std::array<net::asio::const_buffer, 3> bufs{net::asio::buffer(hdr),
                                              net::asio::buffer(data.data(), data.size()),
                                              net::asio::buffer(crlf.data(), crlf.size())};
  auto [ec, n] = co_await net::asio::async_write(client_, bufs, use_nothrow);
  t.rec.bytes_out += n;
  if (ec) t.keep_client = false;
  co_return !ec;
}

awaitable<bool> Session::send_download_head(Txn& t, const wire::ResponseHead& head,
                                            const wire::MessageInfo& rinfo, Download& dl,
                                            bool whole) {
  const auto& cfg = t.cfg();
  const bool client10 = t.req.version_minor == 0;
  wire::MessageInfo info = rinfo;
  bool rechunk = false;
  if (whole && rinfo.body == wire::BodyKind::chunked && !dl.src.dec.trailers().empty() &&
      !client10) {
    rechunk = true;  // chunked again, so that the origin's trailer fields go with it
  } else if (whole) {
    // The body is complete in the spool: its length is known now.
    info.body = wire::BodyKind::length;
    info.content_length = dl.spool.size();
  } else if (info.body != wire::BodyKind::length) {
    // The origin's framing: chunked for HTTP/1.1, delimited by closing for HTTP/1.0.
    if (client10)
      t.keep_client = false;
    else
      rechunk = true;
  }
  if (w_.shared.draining.load()) t.keep_client = false;
  std::string out =
      response_head_for_client(head, info, rechunk, t.keep_client, cfg.name, false, client10);
  t.rec.status = head.status;
  if (auto* ct = head.find("Content-Type")) t.rec.content_type = std::string(ct->value);
  dl.started = true;
  dl.chunked = rechunk;
  t.response_started = true;
  co_return co_await write_client(out, t);
}

awaitable<bool> Session::send_spooled(Txn& t, Download& dl, std::uint64_t upto) {
  while (dl.sent < upto) {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(upto - dl.sent, kSpoolPiece));
    std::string_view v = dl.spool.read(dl.sent, n, dl.scratch);
    if (v.empty()) co_return false;
    if (!(co_await write_piece(t, v, dl.chunked))) co_return false;
    dl.sent += v.size();
  }
  co_return true;
}

// The end of a chunked message: the last chunk, with the origin's trailers.
awaitable<bool> Session::end_download(Txn& t, Download& dl) {
  if (!dl.chunked) co_return true;
  std::string last;
  std::string_view trailers;
  if (dl.src.kind == wire::BodyKind::chunked) trailers = dl.src.dec.trailers();
  wire::append_last_chunk(last, trailers);
  co_return co_await write_client(last, t);
}

awaitable<void> Session::pass_unscanned(Txn& t, const wire::ResponseHead& head,
                                        const wire::MessageInfo& rinfo, Download& dl,
                                        std::string_view pending, bool& body_ok) {
  body_ok = false;
  if (!dl.started) {
    bool sent = co_await send_download_head(t, head, rinfo, dl, false);
    if (!sent) co_return;
  }
  const std::uint64_t all = dl.spool.size();
  if (!(co_await send_spooled(t, dl, all))) co_return;
  if (!(co_await write_piece(t, pending, dl.chunked))) co_return;
  std::string piece;
  std::uint64_t raw = 0;
  while (!dl.src.complete) {
    piece.clear();
    if (!(co_await read_body(t, dl.src, upstream_, ubuf_, piece, raw))) {
      t.rec.reason = dl.src.error.empty() ? "upstream closed mid-body"
                                          : "malformed chunked response body: " + dl.src.error;
      co_return;
    }
    if (!(co_await write_piece(t, piece, dl.chunked))) co_return;
  }
  body_ok = co_await end_download(t, dl);
}

// Cuts a trickled response off: the client never gets the end of the message, and the
// connection is reset rather than closed (a close-delimited body must not look complete).
void Session::cut_download(Txn& t) {
  t.keep_client = false;
  boost::system::error_code ignore;
  client_.set_option(tcp::socket::linger(true, 0), ignore);
}

awaitable<void> Session::deliver_scanned(Txn& t, const wire::ResponseHead& head,
                                         const wire::MessageInfo& rinfo, bool& body_ok,
                                         bool& upstream_eof) {
  const auto& cfg = t.cfg();
  const auto& sc = cfg.scan;
  auto& svc = *w_.shared.scan;
  const auto head_arrived = net::Clock::now();
  upstream_scope_ = false;
  watchdog_.arm(cfg.timeouts.body_idle);
  Download dl(svc, sc, rinfo, cfg.limits);
  boost::system::error_code ignore;

  // Known before reading any of the body: too large for a scan, or an endless stream.
  const bool known = rinfo.body == wire::BodyKind::length;
  std::string type;
  if (auto* ct = head.find("Content-Type")) type = media_type(ct->value);
  std::optional<txn::ScanOutcome> unscanned;
  if (known && !txn::fits_scan(sc, rinfo.content_length))
    unscanned = txn::too_large_outcome(sc, svc, rinfo.content_length);
  else if (!known && txn::is_endless_stream(type))
    unscanned = endless_outcome(sc, svc, type);
  t.scan_file_name = txn::body_file_name(head, {}, t.rec.url);
  if (unscanned) {
    if (!txn::apply_scan(t, *unscanned)) {
      t.scan_blocked = true;
      upstream_.close(ignore);  // unread
      co_return;
    }
    std::string_view none;
    co_await pass_unscanned(t, head, rinfo, dl, none, body_ok);
    upstream_eof = dl.src.closed;
    co_return;
  }

  // Collect, trickling once the body has been arriving for trickle_after.
  std::string piece;
  std::uint64_t raw = 0;
  while (!dl.src.complete) {
    piece.clear();
    if (!(co_await read_body(t, dl.src, upstream_, ubuf_, piece, raw))) {
      body_ok = false;
      t.rec.reason = dl.src.error.empty() ? "upstream closed mid-body"
                                          : "malformed chunked response body: " + dl.src.error;
      co_return;  // nothing sent: forward() answers 502; trickled: cut short
    }
    if (!dl.spool.append(piece)) {
      auto failed = co_await txn::failure_outcome(sc, svc, dl.spool, kCannotSpool);
      unscanned = std::move(failed);
    } else {
      piece.clear();
      if (!txn::fits_scan(sc, dl.spool.size()))
        unscanned = txn::too_large_outcome(sc, svc, dl.spool.size());
    }
    if (unscanned) {
      if (!txn::apply_scan(t, *unscanned)) {
        t.scan_blocked = true;
        if (dl.started) cut_download(t);
        upstream_.close(ignore);
        co_return;
      }
      co_await pass_unscanned(t, head, rinfo, dl, piece, body_ok);
      upstream_eof = dl.src.closed;
      co_return;
    }
    if (dl.src.complete) break;
    const bool slow = net::Clock::now() - head_arrived >= sc.trickle_after;
    if (!dl.started && slow) {
      bool sent = co_await send_download_head(t, head, rinfo, dl, false);
      if (!sent) {
        body_ok = false;
        co_return;
      }
    }
    if (dl.started && dl.spool.size() > dl.holdback) {
      const std::uint64_t upto = dl.spool.size() - dl.holdback;
      bool sent = co_await send_spooled(t, dl, upto);
      if (!sent) {
        body_ok = false;
        co_return;
      }
    }
  }
  upstream_eof = dl.src.closed;

  // Complete: scan, then the response-phase policy again with the true file type.
  watchdog_.arm(cfg.timeouts.body_idle);
  const auto scan_start = net::Clock::now();
  auto outcome = co_await txn::scan_spool(*t.snap, svc, dl.spool);
  w_.metrics().scanned(outcome, net::Clock::now() - scan_start);
  t.scan_file_name = txn::body_file_name(head, dl.spool.head(), t.rec.url);
  if (!txn::apply_scan(t, outcome)) {
    t.scan_blocked = true;
    if (dl.started) cut_download(t);
    co_return;
  }
  t.file_type = outcome.file_type;
  t.facts.file_type = t.file_type;
  if (!t.decision.final && !txn::decide_response(t, head)) {
    if (dl.started) cut_download(t);
    co_return;  // forward() sends the block page
  }
  body_ok = false;
  if (!dl.started) {
    bool sent = co_await send_download_head(t, head, rinfo, dl, true);
    if (!sent) co_return;
  }
  const std::uint64_t all = dl.spool.size();
  if (!(co_await send_spooled(t, dl, all))) co_return;
  body_ok = co_await end_download(t, dl);
}

}  // namespace pc::proxy
