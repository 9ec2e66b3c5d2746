// How the proxy rewrites messages as it forwards them (RFC 9110 7.6): hop-by-hop fields,
// Via, X-Forwarded-For, Max-Forwards, framing, parent-proxy requests. Pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"
#include "txn/flow.h"
#include "wire/http.h"

namespace pc::proxy {

using txn::kWarnCookie;
using txn::warn_cookie_value;

// True when a Via field of req names this gateway (the request already went through it).
bool via_has_loop(const wire::RequestHead& req, std::string_view name);

// True when host (lower-case) is in upstream.direct_domains (or a subdomain of one).
bool goes_direct(const config::Config& cfg, std::string_view host);

// The answer to OPTIONS with Max-Forwards: 0.
std::string options_reply();
// The answer to TRACE with Max-Forwards: 0: the request head as received (credentials and
// cookies left out) as message/http.
std::string trace_reply(const wire::RequestHead& req);

// "CONNECT authority HTTP/1.1" for a parent, with Proxy-Authorization when configured.
std::string connect_request(std::string_view authority, const config::Parent& parent);

// The request head sent upstream: origin-form to an origin, absolute-form to a parent;
// hop-by-hop fields removed, Via and X-Forwarded-For applied, Max-Forwards decremented,
// framing re-stated (Content-Length or chunked), the gateway's warn cookie removed; a
// WebSocket opening handshake (wire::websocket_upgrade) keeps Connection/Upgrade: websocket.
// drop_expect: leave out Expect (the gateway answered 100-continue itself and has the body).
std::string upstream_request_head(const wire::RequestHead& req, const wire::Target& target,
                                  const wire::MessageInfo& info, const config::Config& cfg,
                                  std::string_view client_addr, const config::Parent* parent,
                                  bool drop_expect = false);

// The response head sent to the client. rechunk: the body is sent chunked;
// keep_alive: whether the client connection stays open; client10: the client spoke
// HTTP/1.0; interim: a 1xx response (fields copied, no framing).
std::string response_head_for_client(const wire::ResponseHead& head, const wire::MessageInfo& info,
                                     bool rechunk, bool keep_alive, std::string_view name,
                                     bool interim, bool client10 = false);

// The 101 response that switches the client's connection to WebSocket: the server's fields
// without the hop-by-hop ones, Via, and Connection: Upgrade with Upgrade: websocket.
std::string switching_head_for_client(const wire::ResponseHead& head, const wire::MessageInfo& info,
                                      std::string_view name);

std::string base64(std::string_view in);

// ---- scanning downloads (docs/scanning.md) ----

// The media type of a Content-Type value: lower-case, without parameters.
std::string media_type(std::string_view content_type);

// An upload in a multipart body (multipart/form-data, ...) is scanned behind these MIME
// header lines, so that the engine's mail parser splits it into its parts and scans each one
// decoded (a file field starts mid-body, where offset signatures do not match). Empty when
// the Content-Type is not multipart with a boundary.
std::string mime_wrapper(std::string_view content_type);

// A trickled download: how many bytes of the body the gateway holds back until the verdict,
// so that an infected file never completes. 1 MiB, or an eighth of the announced length when
// that is larger (length 0: unknown).
inline constexpr std::uint64_t kTrickleHoldBack = 1 << 20;
std::uint64_t trickle_holdback(std::uint64_t announced_length);

}  // namespace pc::proxy
