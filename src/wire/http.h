// HTTP/1.x message heads: parsing, validation (every request-smuggling rule lives here),
// request-target forms and body framing. Pure: bytes in, views and a status out. No I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pc::wire {

// Limits on every dimension a peer controls. Defaults are what docs/config.md documents.
struct Limits {
  std::size_t max_head_bytes = 65536;      // start line + fields + final CRLF
  std::size_t max_fields = 100;            // header (or trailer) field lines
  std::size_t max_field_bytes = 16384;     // one "name: value" line, CRLF excluded
  std::size_t max_url_bytes = 8192;        // request-target
  std::size_t max_chunk_size_digits = 16;  // hex digits of a chunk-size, leading zeros included
};

enum class Status : std::uint8_t { complete, incomplete, error };

enum class Error : std::uint8_t {
  none,
  // syntax of the head
  bad_request_line,     // 400
  bad_method,           // 400: method is not a token
  bad_target,           // 400: invalid bytes in the request-target
  uri_too_long,         // 414
  bad_version,          // 400: not "HTTP/" DIGIT "." DIGIT
  unsupported_version,  // 505: a well-formed version other than 1.0 / 1.1
  head_too_large,       // 431
  too_many_fields,      // 431
  field_too_large,      // 431
  bad_field_name,       // 400: empty or non-token field name
  ws_before_colon,      // 400
  obs_fold,             // 400: line folding
  bare_cr,              // 400: CR not followed by LF
  bare_lf,              // 400: LF without CR
  nul_byte,             // 400
  bad_field_value,      // 400: control characters in a field value
  bad_status_line,      // response: malformed status line
  // semantics (analyze_*)
  missing_host,              // 400: HTTP/1.1 request without Host
  duplicate_host,            // 400
  bad_host,                  // 400: Host is not a valid authority
  host_mismatch,             // 400: absolute-form authority differs from Host
  cl_and_te,                 // 400: both Content-Length and Transfer-Encoding
  bad_content_length,        // 400: not 1*DIGIT, or too large
  duplicate_content_length,  // 400: more than one Content-Length field or value
  te_not_chunked_last,       // 400: Transfer-Encoding whose final coding is not chunked
  unsupported_te,            // 501: a transfer coding other than chunked
  te_in_http10,              // 400: Transfer-Encoding in an HTTP/1.0 message
  // chunked bodies
  bad_chunk_size,       // 400
  chunk_size_too_long,  // 400
  bad_chunk_ext,        // 400
  bad_chunk_end,        // 400: chunk data not followed by CRLF
  chunk_over_limit,     // 400: more chunk data than the decoder allows (ChunkedOptions)
};

// The HTTP status a proxy answers a request with when parsing failed with e.
int http_status_for(Error e);
// A short human-readable reason, e.g. "Content-Length and Transfer-Encoding together".
std::string_view describe(Error e);

struct Field {
  std::string_view name;   // as received (case preserved)
  std::string_view value;  // leading and trailing SP/HTAB removed
};

// An owned head: `raw` holds the bytes (from the start line through the final CRLF; empty
// lines before a request line are not included), the views point into it and stay valid when
// the head is moved (the buffer is heap-allocated and never reallocated).
struct Head {
  Head() = default;
  Head(Head&&) noexcept = default;
  Head& operator=(Head&&) noexcept = default;
  Head(const Head&) = delete;
  Head& operator=(const Head&) = delete;

  std::unique_ptr<char[]> raw;
  std::size_t raw_size = 0;
  int version_minor = 1;  // major is always 1 once parsed
  std::vector<Field> fields;

  // First field with this name (ASCII case-insensitive), or nullptr.
  const Field* find(std::string_view name) const;
  // Number of field lines with this name.
  std::size_t count(std::string_view name) const;
  std::string_view bytes() const { return {raw.get(), raw_size}; }
};

struct RequestHead : Head {
  std::string_view method;
  std::string_view target;
};

struct ResponseHead : Head {
  int status = 0;
  std::string_view reason;
};

struct ParseResult {
  Status status = Status::incomplete;
  Error error = Error::none;
  std::size_t consumed = 0;      // complete: length of the head including the final CRLF
  std::size_t error_offset = 0;  // error: offset in buf of the offending byte
};

// Parses one head from the front of buf (RFC 9112 sections 2-5, strictly: CRLF line endings
// only, no obs-fold, no whitespace before a colon, no NUL or bare CR/LF, token method and
// field names). Returns incomplete while more bytes are needed; once buf holds more than
// max_head_bytes without a complete head, returns head_too_large. A request-target
// longer than max_url_bytes gives uri_too_long, and a field line longer than max_field_bytes
// field_too_large, as soon as that is certain.
// Leading empty lines before a request line are tolerated (RFC 9112 2.2) and counted in
// `consumed` and against max_head_bytes.
// Stateless: call again with the grown buffer after incomplete. `out` is filled only when
// complete (its field vector's capacity is reused across calls); otherwise it holds no views.
// Responses: the status line must be "HTTP/1.0" or "HTTP/1.1" SP 3DIGIT (100-599) and
// optionally SP reason; any other version, like every status-line error other than
// NUL/CR/LF, is bad_status_line. No empty lines are tolerated before a status line.
ParseResult parse_request_head(std::string_view buf, const Limits& lim, RequestHead& out);
ParseResult parse_response_head(std::string_view buf, const Limits& lim, ResponseHead& out);

// ---- request-target (RFC 9112 3.2) ----

struct Target {
  enum class Form : std::uint8_t { origin, absolute, authority, asterisk };
  Form form = Form::origin;
  std::string_view scheme;  // "http" or "https" (only these, lower-case); absolute-form only
  std::string_view host;    // without IPv6 brackets; absolute and authority forms
  std::uint16_t port = 0;   // explicit or the scheme default (http 80, https 443)
  bool port_explicit = false;
  std::string_view path;  // path + query, "/" when empty; origin and absolute forms
};

// Splits target by form. CONNECT must use authority-form (host:port, port required);
// OPTIONS may use "*"; other methods origin- or absolute-form. Userinfo in the authority
// and fragments are rejected (bad_target). Host: reg-name, IPv4 or [IPv6].
// Every error is bad_target. Only visible ASCII is accepted; the path and query are not
// otherwise validated (no percent-decoding, no normalisation). An absolute-form with a query
// but an empty path ("http://a.example?q") is rejected, since its path would not be a view
// of the target.
Error parse_target(std::string_view method, std::string_view target, Target& out);

// Parses a Host field value or an authority: host[:port]. default_port fills port when
// absent. Returns bad_host on any error. Stricter than RFC 3986: a reg-name is limited to
// ALPHA / DIGIT / "-" / "." / "_" / "~" (no percent-encoding or sub-delims, at most 255
// bytes); a name whose last label is numeric (decimal or 0x-hex) must be a dotted-quad IPv4
// address without leading zeros; IPv6 zone identifiers and IPvFuture are rejected; a port is
// 1-5 digits in 1..65535 (an empty port after ":" is rejected).
Error parse_authority(std::string_view authority, std::uint16_t default_port,
                      std::string_view& host, std::uint16_t& port, bool& port_explicit);

// ---- message framing and connection semantics (RFC 9112 6, 9; RFC 9110 7.6.1) ----

enum class BodyKind : std::uint8_t { none, length, chunked, until_close };

struct MessageInfo {
  BodyKind body = BodyKind::none;
  std::uint64_t content_length = 0;  // when body == length
  bool keep_alive = true;            // after this message, per version and Connection
  bool expect_continue = false;      // request carried "Expect: 100-continue"
  bool upgrade = false;              // Connection: upgrade with an Upgrade field
  std::vector<std::string_view> connection_options;  // tokens listed in Connection
};

// Every request-smuggling defence: CL+TE, duplicate or invalid Content-Length, TE other
// than chunked last, TE in HTTP/1.0, Host missing / duplicated / invalid, and (when
// target.form == absolute) an authority that does not match Host (host compared
// case-insensitively, port with the scheme default). Checked in the order CL+TE, TE in
// HTTP/1.0, duplicate CL fields, TE codings, CL value, Host. Transfer-Encoding (all fields
// together, any case, empty list elements ignored): unless the list ends in exactly one
// "chunked" (e.g. "gzip", "chunked, gzip", "chunked, chunked", an empty list) the length
// cannot be determined and the error is te_not_chunked_last (400, RFC 9112 6.1); a final
// chunked preceded by another coding ("gzip, chunked") is unsupported_te (501).
// Content-Length must be 1*DIGIT below 2^63. Views in `out` point into `head`.
Error analyze_request(const RequestHead& head, const Target& target, MessageInfo& out);

// Framing of a response to a request with request_method: HEAD, 1xx, 204 and 304 have no
// body; a 2xx to CONNECT is a tunnel (body none); otherwise chunked, length, or
// until_close. Applies the same CL/TE rules as requests (also to bodiless responses), except
// that a Transfer-Encoding whose last coding is not chunked means until_close (RFC 9112 6.3).
Error analyze_response(const ResponseHead& head, std::string_view request_method, MessageInfo& out);

// A request the proxy passes on as a WebSocket opening handshake (RFC 6455 4.1): GET over
// HTTP/1.1 without a body, "upgrade" in Connection and "websocket" among the Upgrade field's
// protocols. Other upgrades (h2c, TLS/1.0) are never forwarded. info: from analyze_request.
bool websocket_upgrade(const RequestHead& head, const MessageInfo& info);

// A response that switches to WebSocket: 101 with "upgrade" in Connection and "websocket" in
// Upgrade. info: from analyze_response.
bool websocket_accepted(const ResponseHead& head, const MessageInfo& info);

// True for the hop-by-hop fields a proxy never forwards: Connection, Proxy-Connection,
// Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-Authorization,
// Proxy-Authenticate. (Fields named in Connection are found with MessageInfo.)
bool is_hop_by_hop(std::string_view name);

// ASCII case-insensitive equality.
bool iequals(std::string_view a, std::string_view b);

// ---- chunked transfer coding (RFC 9112 7.1) ----

// What a ChunkedDecoder takes beyond HTTP's chunked coding; for the ICAP body
// (IcapChunkedDecoder, RFC 3507 4.5).
struct ChunkedOptions {
  // More data bytes than this is chunk_over_limit, found at the chunk-size line.
  std::uint64_t max_payload = std::numeric_limits<std::uint64_t>::max();
  // The "ieof" extension (any case, without a value) is recognised: allowed on the last
  // chunk only, reported by ieof(). Without this, ieof is an extension like any other.
  bool ieof = false;
};

// Incremental, zero-copy decoder. Call next() with the unconsumed input; each call
// consumes framing and returns at most one piece of chunk data (a view into `in`).
//   status incomplete: consume `consumed` bytes, deliver `data`, call again (with more
//                      input when consumed == 0 and data is empty);
//   status complete:   the last chunk and trailer section have been consumed;
//   status error:      `error` says why; framing is lost (every later call fails too;
//                      `consumed` is the offset of the offending byte).
// Limits: chunk-size digits (leading zeros included) by max_chunk_size_digits; the
// extensions of one chunk by max_field_bytes; trailer lines like header fields
// (max_field_bytes, max_fields), the whole trailer section by max_head_bytes.
class ChunkedDecoder {
 public:
  explicit ChunkedDecoder(const Limits& lim, ChunkedOptions opt = {}) : lim_(lim), opt_(opt) {}

  struct Step {
    Status status = Status::incomplete;
    Error error = Error::none;
    std::size_t consumed = 0;
    std::string_view data;
  };
  Step next(std::string_view in);

  // The trailer field lines as received ("Name: value\r\n" each), validated like header
  // fields; available once next() returned complete.
  const std::string& trailers() const { return trailers_; }
  std::uint64_t payload_bytes() const { return payload_; }
  // With ChunkedOptions::ieof: true once complete when the last chunk carried ieof.
  bool ieof() const { return ieof_; }

 private:
  enum class State : std::uint8_t {
    size,
    ext,
    size_lf,
    data,
    data_cr,
    data_lf,
    trailer,
    done,
    failed
  };
  Step fail(Error e, std::size_t at);

  Limits lim_;
  ChunkedOptions opt_;
  State state_ = State::size;
  Error error_ = Error::none;  // when failed
  std::uint64_t remaining_ = 0;
  std::uint64_t payload_ = 0;
  std::size_t digits_ = 0;
  std::size_t ext_bytes_ = 0;
  std::size_t trailer_fields_ = 0;
  bool ieof_ = false;
  std::string line_;  // partial chunk extension or trailer line
  std::string trailers_;
};

// Appends the framing for one chunk of n > 0 bytes ("<hex>\r\n"); the caller appends the
// data and then "\r\n".
void append_chunk_header(std::string& out, std::size_t n);
// Appends the last chunk with optional trailer lines (each ending in CRLF).
void append_last_chunk(std::string& out, std::string_view trailers = {});

}  // namespace pc::wire
