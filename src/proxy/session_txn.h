// The state of one proxy transaction and of a message body being read, shared by the
// session (session.cpp) and the scanning delivery (scan_delivery.cpp). Internal to
// src/proxy.
#pragma once

#include <memory>
#include <string>

#include "proxy/session.h"
#include "txn/scan.h"
#include "wire/http.h"

namespace pc::proxy {

// A message body read in its framing (Content-Length, chunked, or until the connection
// closes), handing out the payload bytes.
struct Session::BodySource {
  BodySource(wire::BodyKind k, std::uint64_t length, const wire::Limits& limits)
      : kind(k), left(length), dec(limits) {
    complete = kind == wire::BodyKind::none || (kind == wire::BodyKind::length && left == 0);
  }
  wire::BodyKind kind;
  std::uint64_t left;  // length bodies: bytes still to read
  wire::ChunkedDecoder dec;
  bool complete = false;
  bool closed = false;  // an until-close body ended with the connection
  std::string error;    // malformed framing (empty: the peer went away)
};

struct Session::Txn : txn::Exchange {
  wire::RequestHead req;
  wire::Target target;
  wire::MessageInfo info;
  int parent = -1;  // index of the parent proxy used, or -1 for direct
  bool response_started = false;
  bool keep_client = true;           // the client connection may carry another request
  bool body_error = false;           // the client's request body broke its framing
  Outcome outcome = Outcome::close;  // after a local reply: whether the connection goes on
  net::Clock::time_point sent_at;    // the request head went upstream (first_byte phase)
  bool upstream_malformed = false;   // the response broke the framing rules (counted)
  bool websocket = false;            // a WebSocket handshake, passed on (wire::websocket_upgrade)

  // Scanning (scan_delivery.cpp)
  bool scan_blocked = false;   // a scan refused the response: ex.reply is prepared
  std::string file_type;       // the true file type of the response body (facts.file_type)
  bool continue_sent = false;  // the gateway answered "Expect: 100-continue" itself
  // A request body collected before it goes upstream: complete (scanned, t.info restated as
  // a Content-Length, or still chunked when it ended in trailer fields: upload_trailers), or
  // the first part of a body that is passed unscanned, with the rest still to be read
  // through upload_rest and `upload_pending` bytes in between.
  std::unique_ptr<txn::Spool> upload;
  std::uint64_t upload_skip = 0;  // leading spool bytes that are not the body (mime_wrapper)
  std::unique_ptr<BodySource> upload_rest;
  std::string upload_pending;
  std::string upload_trailers;  // a scanned chunked body's trailer section, as received
};

}  // namespace pc::proxy
