// ICAP/1.0 (RFC 3507) message heads, the Encapsulated header, the encapsulated HTTP heads and
// the ICAP chunked body with its "ieof" extension; serializers for ICAP messages. Pure: bytes
// in, views and a status out. No I/O. Field lines follow exactly the rules of http.h (CRLF
// only, no obs-fold, token names, the same limits).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "wire/http.h"

namespace pc::wire {

inline constexpr std::uint16_t kIcapPort = 1344;
inline constexpr std::uint16_t kIcapsPort = 11344;

// Limits on an ICAP message. `http` bounds each encapsulated HTTP head and the chunked body
// (chunk-size digits, extension bytes, trailers).
struct IcapLimits {
  std::size_t max_head_bytes = 65536;           // ICAP start line + fields + final CRLF
  std::size_t max_fields = 100;                 // ICAP header field lines
  std::size_t max_field_bytes = 16384;          // one "name: value" line, CRLF excluded
  std::size_t max_uri_bytes = 8192;             // the ICAP-URI of a request line
  std::size_t max_encapsulated_bytes = 131072;  // all encapsulated HTTP heads together
  std::uint64_t max_preview = 1048576;          // largest Preview value accepted
  Limits http;
};

enum class IcapError : std::uint8_t {
  none,
  // syntax of the ICAP head
  bad_request_line,     // 400
  bad_method,           // 400: the method is not a token
  unknown_method,       // 501: a token other than OPTIONS, REQMOD, RESPMOD
  bad_uri,              // 400: not icap[s]://authority/service[?query]
  missing_service,      // 404: no service name in the ICAP-URI
  uri_too_long,         // 400
  bad_version,          // 400: not "ICAP/" DIGIT "." DIGIT
  unsupported_version,  // 505: a well-formed version other than ICAP/1.0
  bad_status_line,      // response: malformed status line
  head_too_large,       // 400
  too_many_fields,      // 400
  field_too_large,      // 400
  bad_field,            // 400: a field line breaks the syntax (`detail` says which rule)
  // ICAP header semantics
  missing_host,            // 400: request without Host
  bad_host,                // 400: more than one Host, or not an authority
  missing_encapsulated,    // 400
  bad_encapsulated,        // 400: malformed list, unknown entity, more than one field
  encapsulated_order,      // 400: entities the method does not allow in this order
  encapsulated_offsets,    // 400: first offset not 0, or offsets not strictly increasing
  encapsulated_too_large,  // 400: the encapsulated heads exceed max_encapsulated_bytes
  bad_preview,             // 400: not 1*DIGIT, above max_preview, or more than one field
  bad_allow,               // 400: an Allow element that is not a token
  // encapsulated HTTP heads
  bad_http_head,     // 400: an encapsulated HTTP head is malformed (`detail` says why)
  http_head_length,  // 400: an encapsulated HTTP head does not end at its boundary
  // chunked body
  bad_chunked,       // 400: chunked framing (`detail` says why)
  preview_too_long,  // 400: more preview data than the Preview field announced
};

// The ICAP status a server answers a request with when parsing failed with e.
int icap_status_for(IcapError e);
// A short human-readable reason, e.g. "Encapsulated offsets not increasing".
std::string_view describe(IcapError e);
// The reason phrase RFC 3507 uses for an ICAP status code ("OK", "No Content", "ICAP Service
// Not Found", ...); "Unknown" for codes without one.
std::string_view icap_reason(int status);

struct IcapParseResult {
  Status status = Status::incomplete;
  IcapError error = IcapError::none;
  Error detail = Error::none;    // the http.h rule behind bad_field / bad_http_head / bad_chunked
  std::size_t consumed = 0;      // complete: length of what was parsed
  std::size_t error_offset = 0;  // error: offset in the input of the offending byte
};

enum class IcapMethod : std::uint8_t { options, reqmod, respmod };
std::string_view icap_method_name(IcapMethod m);  // "OPTIONS", "REQMOD", "RESPMOD"

// ---- the Encapsulated header (RFC 3507 4.4.1) ----

enum class IcapEntity : std::uint8_t { req_hdr, res_hdr, req_body, res_body, null_body, opt_body };
std::string_view entity_name(IcapEntity e);  // "req-hdr", ...

enum class IcapDirection : std::uint8_t { request, response };

struct Encapsulated {
  bool present = false;                     // the message carried an Encapsulated field
  std::optional<std::size_t> req_hdr;       // offset of the encapsulated HTTP request head
  std::optional<std::size_t> res_hdr;       // offset of the encapsulated HTTP response head
  IcapEntity body = IcapEntity::null_body;  // req_body, res_body, opt_body or null_body
  std::size_t body_offset = 0;              // = total length of the encapsulated heads

  bool has_body() const { return body != IcapEntity::null_body; }
  // Lengths of the heads (0 when absent): the differences between consecutive offsets.
  std::size_t req_hdr_size() const;
  std::size_t res_hdr_size() const;
};

// Parses and validates an Encapsulated field value: entity "=" 1*DIGIT elements separated by
// commas (OWS around commas; none around "="; lower-case entity names), at most one of each,
// exactly one body entity (null-body for none) and it is last, in an order RFC 3507 4.4.1
// allows for the method and direction:
//   REQMOD  request   [req-hdr] (req-body | null-body)
//   RESPMOD request   [req-hdr] [res-hdr] (res-body | null-body)
//   OPTIONS request   (opt-body | null-body)
//   REQMOD  response  [req-hdr] (req-body | null-body)  or  [res-hdr] (res-body | null-body)
//   RESPMOD response  [res-hdr] (res-body | null-body)
//   OPTIONS response  (opt-body | null-body)
// The first offset is 0 and offsets strictly increase (every head is at least one byte); the
// body offset is at most max_bytes. Checked in the order syntax (bad_encapsulated), order
// (encapsulated_order), offsets (encapsulated_offsets), size (encapsulated_too_large).
IcapError parse_encapsulated(std::string_view value, IcapMethod method, IcapDirection direction,
                             std::size_t max_bytes, Encapsulated& out);

// ---- ICAP heads ----

// The ICAP-URI of a request line: icap://host[:port]/service[?query]; "icaps" is accepted as
// the scheme of ICAP over TLS. Only lower-case schemes; no userinfo, no fragment.
struct IcapUri {
  std::string_view scheme;  // "icap" or "icaps"
  std::string_view host;    // without IPv6 brackets
  std::uint16_t port = 0;   // explicit or the scheme default (1344, 11344)
  bool port_explicit = false;
  std::string_view service;  // the path without its leading "/" and without the query
  std::string_view query;    // after "?" (empty when there is none)
  bool has_query = false;
};

// Splits an ICAP-URI. The authority follows parse_authority; the service is non-empty
// visible ASCII without "?" or "#" (it may contain "/"); the query is visible ASCII
// without "#". Returns bad_uri or missing_service.
IcapError parse_icap_uri(std::string_view uri, IcapUri& out);

// Owned like wire::Head: `raw` holds the ICAP head (start line through the final CRLF) and
// every view points into it. version_minor is 0 (ICAP/1.0). The Encapsulated offsets are
// relative to the first byte after the head.
struct IcapRequestHead : Head {
  IcapMethod method = IcapMethod::options;
  std::string_view method_name;  // as received
  std::string_view uri;          // the whole ICAP-URI
  IcapUri target;
  Encapsulated encapsulated;
  std::optional<std::uint64_t> preview;  // Preview: n
  bool allow_204 = false;                // Allow lists 204
  bool allow_206 = false;                // Allow lists 206
  bool connection_close = false;         // Connection lists close
};

struct IcapResponseHead : Head {
  int status = 0;
  std::string_view reason;
  std::string_view istag;  // the ISTag field value as received (quotes included), or empty
  Encapsulated encapsulated;
  bool connection_close = false;
};

// Parses one ICAP request head from the front of buf: Method SP ICAP-URI SP "ICAP/1.0" CRLF,
// then field lines as parse_request_head does (no empty lines are tolerated before the
// request line). Incomplete while more bytes are needed; head_too_large once buf holds more
// than max_head_bytes without a complete head. Then, in this order: the version (505), the
// method (501), the URI, Host (required, once, an authority), Encapsulated (one field;
// required except for OPTIONS, where its absence means null-body=0), Preview (at most one
// field, 1*DIGIT up to max_preview), Allow (comma-separated tokens; 204 and 206 are noted,
// others ignored), Connection (close noted).
// Stateless like parse_request_head: `out` is filled only when complete.
IcapParseResult parse_icap_request_head(std::string_view buf, const IcapLimits& lim,
                                        IcapRequestHead& out);

// Parses an ICAP response head to a request with request_method: "ICAP/1.0" SP 3DIGIT
// (100-599) [SP reason] CRLF and field lines. Encapsulated is validated for the method and
// required for 2xx other than 204; 100 and 204 may only carry "null-body=0"; other statuses
// may omit it (null-body=0).
IcapParseResult parse_icap_response_head(std::string_view buf, const IcapLimits& lim,
                                         IcapMethod request_method, IcapResponseHead& out);

// ---- the encapsulated HTTP heads ----

struct EncapsulatedHeads {
  bool has_request = false;
  RequestHead request;  // when has_request: the req-hdr part
  bool has_response = false;
  ResponseHead response;  // when has_response: the res-hdr part
};

// Parses the encapsulated HTTP heads that enc locates in `section`, the bytes following the
// ICAP head: req-hdr with parse_request_head, res-hdr with parse_response_head, each within
// `http`. Each head must occupy exactly its part (the bytes from its offset to the next
// offset; no empty lines before it), else http_head_length. Incomplete until section holds
// enc.body_offset bytes; complete: consumed == enc.body_offset and the body follows. Error
// offsets are relative to section. Only the framing of the heads is checked here, not their
// semantics (analyze_request / analyze_response are the caller's choice).
IcapParseResult parse_encapsulated_heads(const Encapsulated& enc, std::string_view section,
                                         const Limits& http, EncapsulatedHeads& out);

// ---- the ICAP chunked body (RFC 3507 4.5) ----

// Incremental, zero-copy decoder of an encapsulated body: ChunkedDecoder with ICAP's options
// and errors, and its protocol (consume `consumed`, deliver `data`, call again). Chunk
// extensions are validated and ignored except "ieof" (any case, without a value), which is
// allowed only on the last chunk ("0; ieof\r\n\r\n") and means the whole body has been
// sent: after a preview, no 100 Continue is needed. With `preview` set, more than that many
// data bytes is preview_too_long. After a preview that ended without ieof, the rest of the
// body (sent after 100 Continue) is a new chunked stream: use a new decoder.
class IcapChunkedDecoder {
 public:
  explicit IcapChunkedDecoder(const Limits& lim, std::optional<std::uint64_t> preview = {})
      : dec_(lim,
             ChunkedOptions{preview.value_or(std::numeric_limits<std::uint64_t>::max()), true}) {}

  struct Step {
    Status status = Status::incomplete;
    IcapError error = IcapError::none;  // bad_chunked (detail) or preview_too_long
    Error detail = Error::none;
    std::size_t consumed = 0;
    std::string_view data;
  };
  Step next(std::string_view in) {
    const ChunkedDecoder::Step s = dec_.next(in);
    Step out{s.status, IcapError::none, Error::none, s.consumed, s.data};
    if (s.status != Status::error) return out;
    if (s.error == Error::chunk_over_limit) {
      out.error = IcapError::preview_too_long;
    } else {
      out.error = IcapError::bad_chunked;
      out.detail = s.error;
    }
    return out;
  }

  // True once complete when the last chunk carried ieof.
  bool ieof() const { return dec_.ieof(); }
  const std::string& trailers() const { return dec_.trailers(); }
  std::uint64_t payload_bytes() const { return dec_.payload_bytes(); }

 private:
  ChunkedDecoder dec_;
};

// Appends the last chunk of a preview that holds the whole body: "0; ieof\r\n\r\n".
void append_ieof_chunk(std::string& out);

// ---- serializers ----

// What follows the start line of a built message. `fields` must not include Encapsulated
// (computed) or, for responses, ISTag; names are tokens and values field bytes without
// leading or trailing whitespace. req_hdr and res_hdr are complete encapsulated HTTP heads
// (ending in an empty line) or empty; `body` is the body entity that follows them
// (null_body for none, else req_body, res_body or opt_body). The caller appends the chunked
// body when there is one.
struct IcapParts {
  std::span<const Field> fields;
  std::string_view req_hdr;
  std::string_view res_hdr;
  IcapEntity body = IcapEntity::null_body;
};

// Appends "ICAP/1.0 <status> <reason>", `ISTag: "<istag>"`, the fields, Encapsulated with
// offsets computed from the parts, the empty line and the heads. status is 200-599 (use
// append_icap_continue for 100); an empty reason uses icap_reason(status); istag is 1-32
// bytes of a quoted-string's content without quote or backslash. The parts must form a
// response RFC 3507 allows to request_method. Returns false (and appends nothing) when an
// argument breaks these rules.
bool append_icap_response(std::string& out, int status, std::string_view istag,
                          IcapMethod request_method, const IcapParts& parts,
                          std::string_view reason = {});

// Appends an ICAP request head: "<METHOD> <uri> ICAP/1.0", the fields (which must include
// Host), Encapsulated and the heads. The uri must satisfy parse_icap_uri. Returns false (and
// appends nothing) when an argument breaks the rules above.
bool append_icap_request(std::string& out, IcapMethod method, std::string_view uri,
                         const IcapParts& parts);

// "ICAP/1.0 100 Continue\r\n\r\n".
void append_icap_continue(std::string& out);
// "ICAP/1.0 204 No Content", ISTag, the fields, "Encapsulated: null-body=0", empty line.
bool append_icap_no_content(std::string& out, std::string_view istag,
                            std::span<const Field> fields = {});

}  // namespace pc::wire
