// The phases shared by every front end (forward proxy and ICAP): classify + decide for the
// request and the response, the warn/continue handshake, and the gateway's own pages. A
// front end fills the who of Exchange::facts, calls these, and expresses the outcome in its
// own protocol (an HTTP response on the client connection, or an ICAP reply).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/io.h"
#include "pages/pages.h"
#include "policy/policy.h"
#include "telemetry/access_log.h"
#include "txn/scan.h"
#include "txn/snapshot.h"
#include "wire/http.h"

namespace pc::txn {

// The cookie that remembers a "Continue" on a warn page; never forwarded upstream.
inline constexpr std::string_view kWarnCookie = "__portcullis_warn";
// Warn pages: the "Continue" link carries a signed token in this query parameter; the
// gateway answers it with a redirect that stores the token in the cookie for the site.
inline constexpr std::string_view kContinueParam = "__portcullis_continue";

// The value when a Cookie pair ("name=value", trimmed) is the warn cookie.
inline std::optional<std::string_view> warn_cookie_value(std::string_view pair) {
  if (pair.size() > kWarnCookie.size() && pair.starts_with(kWarnCookie) &&
      pair[kWarnCookie.size()] == '=')
    return pair.substr(kWarnCookie.size() + 1);
  return std::nullopt;
}

// "http://host[:port]/path" with a lower-case host, brackets around IPv6 and no default port.
std::string canonical_url(std::string_view scheme, std::string_view host, std::uint16_t port,
                          std::string_view path);

// A reply the gateway makes itself (an error or refusal page) and how it is logged.
struct Reply {
  pages::Kind kind = pages::Kind::bad_request;
  int status = 0;  // 0: what the kind implies (pages::status_for)
  telemetry::Result result = telemetry::Result::error;
  std::string reason;  // for the access log and the page
  bool close = false;
  pages::DnsError dns = pages::DnsError::not_found;
  std::string extra_headers;  // complete lines, e.g. Location and Set-Cookie
  std::string continue_url;   // warn pages
  std::string threat;         // threat pages
};

// The protocol-neutral part of one transaction.
struct Exchange {
  std::shared_ptr<const Snapshot> snap;  // pinned for the whole transaction
  const config::Config& cfg() const { return *snap->config; }
  telemetry::AccessRecord rec;
  net::Clock::time_point start;
  Reply reply;
  std::string host;         // lower-case
  std::string url;          // canonical URL the policy matched
  std::string client_text;  // the end user's address (warn tokens are bound to it)
  std::string user;         // identity, when known (facts.user/groups point here)
  std::vector<std::string> groups;
  policy::Facts facts;
  policy::Decision decision;
  bool response_blocked = false;  // the response-phase decision refused the response
  std::string content_type;       // of the response, for response-phase rules
  // The file name of the body being scanned (body_file_name), set by the front end before it
  // applies that body's scan outcome: for the record and the block log line.
  std::string scan_file_name;
};

// classify + decide for the request phase. The front end has set ex.host, ex.client_text,
// ex.user/groups and the who of ex.facts (client, guest, listener). `scheme` is "http" or
// "https"; `path` is the path and query (both ignored for CONNECT: "https", "/"). True to go
// on; false with ex.reply prepared (block, warn, or the redirect that accepts a warning).
bool decide_request(Exchange& ex, const wire::RequestHead& req, std::string_view scheme,
                    std::uint16_t port, std::string_view path);
// The response phase (content type): false when the response is refused.
bool decide_response(Exchange& ex, const wire::ResponseHead& head);

// The rule and condition behind ex.decision, for logs and pages.
std::string decision_reason(const Exchange& ex);

// ex.reply rendered for the request `req` (null when none was parsed): the status, the page
// in the language the request prefers. Records status, result, reason and content type in
// ex.rec (moving the reason out of ex.reply).
struct Page {
  int status = 0;
  std::string html;
  std::string_view lang;
};
Page render_reply(Exchange& ex, const wire::RequestHead* req);

// Records a scan outcome in ex.rec; when it blocks, prepares ex.reply (the threat page for a
// threat, else the rule block page naming the reason), logs the block with the request ID,
// client, URL, reason, SHA-256, file name, size, true file type and engine, and returns
// false. A record carries one scan, every field from the same body: when a transaction
// scans more than one body (an upload, then the download), the outcome that blocked wins;
// else the more severe (infected, unscannable, error, not scanned, clean, in that order); on
// a tie the later one, which is the response body's.
bool apply_scan(Exchange& ex, const ScanOutcome& o);

class Worker;

// Completes ex.rec (duration, defaults), counts it in the worker's metrics and hands it to
// the access log.
void finish(Exchange& ex, Worker& w);

}  // namespace pc::txn
