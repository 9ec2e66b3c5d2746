// HTTP/1.x head parsing and message semantics (RFC 9112, RFC 9110). Every request-smuggling
// defence of the project lives in this file.
#include <algorithm>
#include <cstring>
#include <limits>

#include "wire/detail.h"
#include "wire/http.h"

#include "base/strings.h"

namespace pc::wire {

using detail::is_field_byte;
using detail::is_tchar;
using detail::is_ws;

// ---------------------------------------------------------------------------------------
// Errors

int http_status_for(Error e) {
  switch (e) {
    case Error::uri_too_long:
      return 414;
    case Error::head_too_large:
    case Error::too_many_fields:
    case Error::field_too_large:
      return 431;
    case Error::unsupported_te:
      return 501;
    case Error::unsupported_version:
      return 505;
    case Error::bad_status_line:
      return 502;
    default:
      return 400;
  }
}

std::string_view describe(Error e) {
  switch (e) {
    case Error::none:
      return "no error";
    case Error::bad_request_line:
      return "malformed request line";
    case Error::bad_method:
      return "method is not a token";
    case Error::bad_target:
      return "invalid request-target";
    case Error::uri_too_long:
      return "request-target too long";
    case Error::bad_version:
      return "malformed HTTP version";
    case Error::unsupported_version:
      return "unsupported HTTP version";
    case Error::head_too_large:
      return "message head too large";
    case Error::too_many_fields:
      return "too many header fields";
    case Error::field_too_large:
      return "header field line too large";
    case Error::bad_field_name:
      return "invalid header field name";
    case Error::ws_before_colon:
      return "whitespace between field name and colon";
    case Error::obs_fold:
      return "obsolete line folding";
    case Error::bare_cr:
      return "CR not followed by LF";
    case Error::bare_lf:
      return "LF without CR";
    case Error::nul_byte:
      return "NUL byte";
    case Error::bad_field_value:
      return "control character in a field value";
    case Error::bad_status_line:
      return "malformed status line";
    case Error::missing_host:
      return "HTTP/1.1 request without Host";
    case Error::duplicate_host:
      return "more than one Host field";
    case Error::bad_host:
      return "invalid Host";
    case Error::host_mismatch:
      return "request-target authority differs from Host";
    case Error::cl_and_te:
      return "Content-Length and Transfer-Encoding together";
    case Error::bad_content_length:
      return "invalid Content-Length";
    case Error::duplicate_content_length:
      return "more than one Content-Length";
    case Error::te_not_chunked_last:
      return "Transfer-Encoding does not end with chunked";
    case Error::unsupported_te:
      return "unsupported transfer coding";
    case Error::te_in_http10:
      return "Transfer-Encoding in an HTTP/1.0 message";
    case Error::bad_chunk_size:
      return "invalid chunk size";
    case Error::chunk_size_too_long:
      return "chunk size too long";
    case Error::bad_chunk_ext:
      return "invalid chunk extension";
    case Error::bad_chunk_end:
      return "chunk data not followed by CRLF";
    case Error::chunk_over_limit:
      return "more chunk data than allowed";
  }
  return "unknown error";
}

// ---------------------------------------------------------------------------------------
// Small helpers

bool iequals(std::string_view a, std::string_view b) {
  return base::iequals(a, b);
}

bool is_hop_by_hop(std::string_view name) {
  switch (name.size()) {
    case 2:
      return iequals(name, "te");
    case 7:
      return iequals(name, "trailer") || iequals(name, "upgrade");
    case 10:
      return iequals(name, "connection") || iequals(name, "keep-alive");
    case 16:
      return iequals(name, "proxy-connection");
    case 17:
      return iequals(name, "transfer-encoding");
    case 18:
      return iequals(name, "proxy-authenticate");
    case 19:
      return iequals(name, "proxy-authorization");
    default:
      return false;
  }
}

const Field* Head::find(std::string_view name) const {
  for (const Field& f : fields)
    if (iequals(f.name, name)) return &f;
  return nullptr;
}

std::size_t Head::count(std::string_view name) const {
  std::size_t n = 0;
  for (const Field& f : fields)
    if (iequals(f.name, name)) ++n;
  return n;
}

// ---------------------------------------------------------------------------------------
// Field lines

namespace detail {

namespace {

// Whether none of the 8 bytes at p is below 0x20 or 0x7F (each is then a field byte).
bool plain_word(const char* p) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
  std::uint64_t x;
  std::memcpy(&x, p, sizeof x);
  const std::uint64_t below = (x - kOnes * 0x20) & ~x & kHigh;
  const std::uint64_t del = x ^ (kOnes * 0x7f);
  return (below | ((del - kOnes) & ~del & kHigh)) == 0;
}

}  // namespace

LineScan scan_field_line(std::string_view s, std::size_t max_line) {
  const char* p = s.data();
  const std::size_t n = s.size();
  LineScan r;
  auto fail = [&r](Error e, std::size_t at) {
    r.status = Status::error;
    r.error = e;
    r.end = at;
    return r;
  };
  auto incomplete = [&r] {
    r.status = Status::incomplete;
    return r;
  };
  // A CR at i: the line ends when LF follows, otherwise it is a bare CR.
  // Each scan stops at the first byte outside its class, at the end of the input (more is
  // needed) or past max_line (too large).
  const std::size_t lim = std::min(n, max_line);
  std::size_t i = 0;
  while (i < lim && is_tchar(p[i])) ++i;
  if (i == n) return incomplete();
  if (i == lim && is_tchar(p[i])) return fail(Error::field_too_large, i);
  const char c = p[i];
  if (c != ':') {
    if (c == '\r') {
      if (i + 1 == n) return incomplete();
      if (p[i + 1] != '\n') return fail(Error::bare_cr, i);
      if (i == 0) {  // the empty line
        r.status = Status::complete;
        r.end = 2;
        return r;
      }
      return fail(Error::bad_field_name, i);  // no colon
    }
    if (i >= max_line) return fail(Error::field_too_large, i);
    if (is_ws(c)) return fail(i == 0 ? Error::obs_fold : Error::ws_before_colon, i);
    if (c == '\0') return fail(Error::nul_byte, i);
    if (c == '\n') return fail(Error::bare_lf, i);
    return fail(Error::bad_field_name, i);
  }
  if (i == 0) return fail(Error::bad_field_name, 0);
  if (i >= max_line) return fail(Error::field_too_large, i);
  const std::size_t name_len = i;
  const std::size_t value_start = ++i;
  // Values are most of a head: eight bytes at a time while none is a control byte.
  while (i + 8 <= lim && plain_word(p + i)) i += 8;
  while (i < lim && is_field_byte(p[i])) ++i;
  if (i == n) return incomplete();
  if (i >= lim && is_field_byte(p[i])) return fail(Error::field_too_large, i);
  switch (p[i]) {
    case '\r':
      if (i + 1 == n) return incomplete();
      if (p[i + 1] != '\n') return fail(Error::bare_cr, i);
      break;
    case '\n':
      return fail(Error::bare_lf, i);
    case '\0':
      return fail(Error::nul_byte, i);
    default:
      return fail(Error::bad_field_value, i);
  }
  r.status = Status::complete;
  r.end = i + 2;
  r.field.name = std::string_view(p, name_len);
  r.field.value = trim_ows(std::string_view(p + value_start, i - value_start));
  return r;
}

}  // namespace detail

namespace {

ParseResult make_error(Error e, std::size_t at) {
  ParseResult r;
  r.status = Status::error;
  r.error = e;
  r.error_offset = at;
  return r;
}

// Outcome of scanning a CR at p[i] inside a start line: LF follows (ok), more input needed,
// or a bare CR.
enum class CrKind { crlf, need_more, bare };
CrKind cr_kind(const char* p, std::size_t n, std::size_t i) {
  if (i + 1 == n) return CrKind::need_more;
  return p[i + 1] == '\n' ? CrKind::crlf : CrKind::bare;
}

// Parses the field lines starting at buf[i] up to and including the empty line. The
// scanned window is buf limited to max_head_bytes.
ParseResult parse_fields(std::string_view win, std::size_t i, const Limits& lim, Head& out) {
  for (;;) {
    detail::LineScan ls = detail::scan_field_line(win.substr(i), lim.max_field_bytes);
    if (ls.status == Status::incomplete) return ParseResult{};
    if (ls.status == Status::error) return make_error(ls.error, i + ls.end);
    if (ls.field.name.empty()) {
      ParseResult r;
      r.status = Status::complete;
      r.consumed = i + ls.end;
      return r;
    }
    if (out.fields.size() >= lim.max_fields) return make_error(Error::too_many_fields, i);
    out.fields.push_back(ls.field);
    i += ls.end;
  }
}

// Copies the head bytes [start, end) of buf into out.raw and moves every view into it.
void take_ownership(std::string_view buf, std::size_t start, std::size_t end, Head& out,
                    std::string_view* extra, std::size_t n_extra) {
  const std::size_t size = end - start;
  out.raw = std::make_unique_for_overwrite<char[]>(size == 0 ? 1 : size);
  std::memcpy(out.raw.get(), buf.data() + start, size);
  out.raw_size = size;
  const char* old_base = buf.data() + start;
  char* new_base = out.raw.get();
  auto rebase = [&](std::string_view v) {
    return std::string_view(new_base + (v.data() - old_base), v.size());
  };
  for (Field& f : out.fields) {
    f.name = rebase(f.name);
    f.value = rebase(f.value);
  }
  for (std::size_t k = 0; k < n_extra; ++k) extra[k] = rebase(extra[k]);
}

void reset_head(Head& out, const Limits& lim) {
  out.raw.reset();
  out.raw_size = 0;
  out.version_minor = 1;
  out.fields.clear();
  if (out.fields.capacity() == 0) out.fields.reserve(std::min<std::size_t>(lim.max_fields, 32));
}

// Final bookkeeping shared by both parsers: converts an incomplete result into
// head_too_large when the window was cut by the limit, and drops views into buf on failure.
ParseResult finish(ParseResult r, std::string_view buf, const Limits& lim, Head& out) {
  if (r.status == Status::incomplete && buf.size() > lim.max_head_bytes)
    r = make_error(Error::head_too_large, lim.max_head_bytes);
  if (r.status != Status::complete) out.fields.clear();
  return r;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Request head

ParseResult parse_request_head(std::string_view buf, const Limits& lim, RequestHead& out) {
  reset_head(out, lim);
  out.method = {};
  out.target = {};
  const std::string_view win = buf.substr(0, std::min(buf.size(), lim.max_head_bytes));
  const char* p = win.data();
  const std::size_t n = win.size();
  std::size_t i = 0;

  auto result = [&](ParseResult r) { return finish(r, buf, lim, out); };
  auto fail = [&](Error e, std::size_t at) { return result(make_error(e, at)); };
  auto need_more = [&] { return result(ParseResult{}); };
  // Error for an unexpected CR/LF/NUL at p[k] in the start line; `fallback` when CRLF.
  auto line_break_error = [&](std::size_t k, Error fallback) -> ParseResult {
    switch (p[k]) {
      case '\0':
        return fail(Error::nul_byte, k);
      case '\n':
        return fail(Error::bare_lf, k);
      case '\r':
        switch (cr_kind(p, n, k)) {
          case CrKind::need_more:
            return need_more();
          case CrKind::bare:
            return fail(Error::bare_cr, k);
          case CrKind::crlf:
            break;
        }
        return fail(fallback, k);
      default:
        return fail(fallback, k);
    }
  };

  // Empty lines before the request line (RFC 9112 2.2).
  while (i < n && (p[i] == '\r' || p[i] == '\n')) {
    if (p[i] == '\n') return fail(Error::bare_lf, i);
    CrKind k = cr_kind(p, n, i);
    if (k == CrKind::need_more) return need_more();
    if (k == CrKind::bare) return fail(Error::bare_cr, i);
    i += 2;
  }
  const std::size_t start = i;

  // method
  while (i < n && is_tchar(p[i])) ++i;
  if (i == n) return need_more();
  if (p[i] != ' ') {
    const char c = p[i];
    if (c == '\r' || c == '\n' || c == '\0') return line_break_error(i, Error::bad_request_line);
    if (c == '\t') return fail(Error::bad_request_line, i);
    return fail(Error::bad_method, i);
  }
  if (i == start) return fail(Error::bad_request_line, i);
  const std::string_view method(p + start, i - start);

  // request-target: visible ASCII only
  const std::size_t target_start = ++i;
  for (;; ++i) {
    if (i == n) return need_more();
    const unsigned char c = static_cast<unsigned char>(p[i]);
    if (c < 0x21 || c > 0x7e) break;
    if (i - target_start >= lim.max_url_bytes) return fail(Error::uri_too_long, i);
  }
  if (p[i] != ' ') {
    const char c = p[i];
    if (c == '\r' || c == '\n' || c == '\0') return line_break_error(i, Error::bad_request_line);
    return fail(Error::bad_target, i);
  }
  if (i == target_start) return fail(Error::bad_request_line, i);
  const std::string_view target(p + target_start, i - target_start);

  // HTTP-version CRLF
  static constexpr char kPattern[] = "HTTP/#.#";
  const std::size_t version_start = ++i;
  for (std::size_t k = 0; k < 8; ++k, ++i) {
    if (i == n) return need_more();
    const char c = p[i];
    const bool ok = kPattern[k] == '#' ? (c >= '0' && c <= '9') : c == kPattern[k];
    if (!ok) return line_break_error(i, Error::bad_version);
  }
  if (i == n) return need_more();
  if (p[i] != '\r') return line_break_error(i, Error::bad_version);
  switch (cr_kind(p, n, i)) {
    case CrKind::need_more:
      return need_more();
    case CrKind::bare:
      return fail(Error::bare_cr, i);
    case CrKind::crlf:
      break;
  }
  const char major = p[version_start + 5];
  const char minor = p[version_start + 7];
  if (major != '1' || (minor != '0' && minor != '1'))
    return fail(Error::unsupported_version, version_start);
  i += 2;

  ParseResult r = parse_fields(win, i, lim, out);
  if (r.status != Status::complete) return result(r);
  out.version_minor = minor - '0';
  std::string_view views[2] = {method, target};
  take_ownership(buf, start, r.consumed, out, views, 2);
  out.method = views[0];
  out.target = views[1];
  return r;
}

// ---------------------------------------------------------------------------------------
// Response head

ParseResult parse_response_head(std::string_view buf, const Limits& lim, ResponseHead& out) {
  reset_head(out, lim);
  out.status = 0;
  out.reason = {};
  const std::string_view win = buf.substr(0, std::min(buf.size(), lim.max_head_bytes));
  const char* p = win.data();
  const std::size_t n = win.size();
  std::size_t i = 0;

  auto result = [&](ParseResult r) { return finish(r, buf, lim, out); };
  auto fail = [&](Error e, std::size_t at) { return result(make_error(e, at)); };
  auto need_more = [&] { return result(ParseResult{}); };
  // Error for byte p[k] of the status line that breaks the syntax.
  auto status_line_error = [&](std::size_t k) -> ParseResult {
    switch (p[k]) {
      case '\0':
        return fail(Error::nul_byte, k);
      case '\n':
        return fail(Error::bare_lf, k);
      case '\r':
        if (cr_kind(p, n, k) == CrKind::need_more) return need_more();
        if (cr_kind(p, n, k) == CrKind::bare) return fail(Error::bare_cr, k);
        return fail(Error::bad_status_line, k);
      default:
        return fail(Error::bad_status_line, k);
    }
  };

  // HTTP-version SP: only 1.0 and 1.1 are understood.
  static constexpr char kPattern[] = "HTTP/1.# ";
  for (std::size_t k = 0; k < 9; ++k, ++i) {
    if (i == n) return need_more();
    const char c = p[i];
    const bool ok = kPattern[k] == '#' ? (c == '0' || c == '1') : c == kPattern[k];
    if (!ok) return status_line_error(i);
  }
  const int minor = p[7] - '0';
  // status-code: 3DIGIT, 100..599
  int status = 0;
  for (std::size_t k = 0; k < 3; ++k, ++i) {
    if (i == n) return need_more();
    const char c = p[i];
    if (c < '0' || c > '9' || (k == 0 && (c < '1' || c > '5'))) return status_line_error(i);
    status = status * 10 + (c - '0');
  }
  // [ SP reason-phrase ] CRLF
  if (i == n) return need_more();
  std::size_t reason_start = i;
  if (p[i] == ' ') {
    reason_start = ++i;
    while (i < n && is_field_byte(p[i])) ++i;
    if (i == n) return need_more();
  }
  if (p[i] != '\r') return status_line_error(i);
  switch (cr_kind(p, n, i)) {
    case CrKind::need_more:
      return need_more();
    case CrKind::bare:
      return fail(Error::bare_cr, i);
    case CrKind::crlf:
      break;
  }
  const std::string_view reason(p + reason_start, i - reason_start);
  i += 2;

  ParseResult r = parse_fields(win, i, lim, out);
  if (r.status != Status::complete) return result(r);
  out.version_minor = minor;
  out.status = status;
  std::string_view views[1] = {reason};
  take_ownership(buf, 0, r.consumed, out, views, 1);
  out.reason = views[0];
  return r;
}

// ---------------------------------------------------------------------------------------
// Message semantics

namespace {

// Calls fn for each non-empty element of a comma-separated list (RFC 9110 5.6.1), OWS
// trimmed. Stops early and returns false when fn does.
template <typename Fn>
bool for_each_element(std::string_view list, Fn&& fn) {
  while (true) {
    const std::size_t comma = list.find(',');
    const std::string_view elem = detail::trim_ows(list.substr(0, comma));
    if (!elem.empty() && !fn(elem)) return false;
    if (comma == std::string_view::npos) return true;
    list.remove_prefix(comma + 1);
  }
}

// What the fields of a head say about framing and the connection.
struct Framing {
  std::size_t content_length_fields = 0;
  const Field* content_length = nullptr;
  bool has_te = false;
  std::size_t te_codings = 0;
  std::size_t te_chunked = 0;  // elements equal to "chunked"
  bool te_last_chunked = false;
  std::size_t host_fields = 0;
  const Field* host = nullptr;
  const Field* expect = nullptr;
  bool has_upgrade_field = false;
  bool conn_close = false;
  bool conn_keep_alive = false;
  bool conn_upgrade = false;
};

Framing scan_framing(const Head& head, MessageInfo& out) {
  Framing f;
  for (const Field& field : head.fields) {
    const std::string_view name = field.name;
    switch (name.size()) {
      case 4:
        if (iequals(name, "host")) {
          if (f.host_fields++ == 0) f.host = &field;
        }
        break;
      case 6:
        if (iequals(name, "expect") && f.expect == nullptr) f.expect = &field;
        break;
      case 7:
        if (iequals(name, "upgrade")) f.has_upgrade_field = true;
        break;
      case 10:
        if (iequals(name, "connection")) {
          for_each_element(field.value, [&](std::string_view opt) {
            out.connection_options.push_back(opt);
            if (iequals(opt, "close"))
              f.conn_close = true;
            else if (iequals(opt, "keep-alive"))
              f.conn_keep_alive = true;
            else if (iequals(opt, "upgrade"))
              f.conn_upgrade = true;
            return true;
          });
        }
        break;
      case 14:
        if (iequals(name, "content-length")) {
          if (f.content_length_fields++ == 0) f.content_length = &field;
        }
        break;
      case 17:
        if (iequals(name, "transfer-encoding")) {
          f.has_te = true;
          for_each_element(field.value, [&](std::string_view coding) {
            ++f.te_codings;
            f.te_last_chunked = iequals(coding, "chunked");
            if (f.te_last_chunked) ++f.te_chunked;
            return true;
          });
        }
        break;
      default:
        break;
    }
  }
  return f;
}

// Content-Length = 1*DIGIT; a list ("5, 5") counts as a duplicate. Values are kept below
// 2^63 so that callers may use signed offsets.
Error parse_content_length(std::string_view v, std::uint64_t& out) {
  if (v.find(',') != std::string_view::npos) return Error::duplicate_content_length;
  if (v.empty()) return Error::bad_content_length;
  std::uint64_t n = 0;
  constexpr std::uint64_t kMax = std::numeric_limits<std::int64_t>::max();
  for (char c : v) {
    if (c < '0' || c > '9') return Error::bad_content_length;
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (n > (kMax - d) / 10) return Error::bad_content_length;
    n = n * 10 + d;
  }
  out = n;
  return Error::none;
}

// The Content-Length / Transfer-Encoding rules shared by requests and responses. Sets
// out.body to chunked or length when a framing field is present.
Error check_framing(const Head& head, const Framing& f, bool is_request, MessageInfo& out) {
  if (f.has_te && f.content_length_fields > 0) return Error::cl_and_te;
  if (f.has_te && head.version_minor == 0) return Error::te_in_http10;
  if (f.content_length_fields > 1) return Error::duplicate_content_length;
  if (f.has_te) {
    // Responses: a final coding other than chunked means the body ends at close (RFC 9112
    // 6.3 item 4).
    if (!is_request && !f.te_last_chunked) {
      out.body = BodyKind::until_close;
      return Error::none;
    }
    // Requests: an empty list, or chunked absent or anywhere but last (including twice), leaves the
    // length undeterminable: RFC 9112 6.1 requires 400 even when the other coding is also unknown.
    const bool chunked_not_last = f.te_chunked > (f.te_last_chunked ? 1u : 0u);
    if (f.te_codings == 0 || chunked_not_last || !f.te_last_chunked)
      return Error::te_not_chunked_last;
    // Chunked last with another coding before it: one this proxy does not implement (501).
    if (f.te_codings > f.te_chunked) return Error::unsupported_te;
    out.body = BodyKind::chunked;
    return Error::none;
  }
  if (f.content_length != nullptr) {
    Error e = parse_content_length(f.content_length->value, out.content_length);
    if (e != Error::none) return e;
    out.body = BodyKind::length;
  }
  return Error::none;
}

bool keep_alive_for(const Head& head, const Framing& f) {
  if (f.conn_close) return false;
  return head.version_minor >= 1 || f.conn_keep_alive;
}

std::uint16_t default_port_for(std::string_view scheme) {
  return scheme == "https" ? 443 : 80;
}

}  // namespace

Error analyze_request(const RequestHead& head, const Target& target, MessageInfo& out) {
  out = MessageInfo{};
  const Framing f = scan_framing(head, out);
  Error e = check_framing(head, f, true, out);
  if (e != Error::none) return e;

  if (f.host_fields == 0) {
    if (head.version_minor >= 1) return Error::missing_host;
  } else {
    if (f.host_fields > 1) return Error::duplicate_host;
    std::string_view host;
    std::uint16_t port = 0;
    bool port_explicit = false;
    const std::uint16_t dflt =
        target.form == Target::Form::absolute ? default_port_for(target.scheme) : 80;
    if (parse_authority(f.host->value, dflt, host, port, port_explicit) != Error::none)
      return Error::bad_host;
    if (target.form == Target::Form::absolute &&
        (!iequals(host, target.host) || port != target.port))
      return Error::host_mismatch;
  }

  out.keep_alive = keep_alive_for(head, f);
  out.expect_continue =
      head.version_minor >= 1 && f.expect != nullptr && iequals(f.expect->value, "100-continue");
  out.upgrade = f.conn_upgrade && f.has_upgrade_field;
  return Error::none;
}

Error analyze_response(const ResponseHead& head, std::string_view request_method,
                       MessageInfo& out) {
  out = MessageInfo{};
  const Framing f = scan_framing(head, out);
  Error e = check_framing(head, f, false, out);
  if (e != Error::none) return e;

  const int s = head.status;
  if (request_method == "HEAD" || (s >= 100 && s < 200) || s == 204 || s == 304 ||
      (request_method == "CONNECT" && s >= 200 && s < 300)) {
    out.body = BodyKind::none;
    out.content_length = 0;
  } else if (out.body == BodyKind::none) {
    out.body = BodyKind::until_close;
  }
  out.keep_alive = keep_alive_for(head, f) && out.body != BodyKind::until_close;
  out.upgrade = f.conn_upgrade && f.has_upgrade_field;
  return Error::none;
}

namespace {
// Whether an Upgrade field of head lists "websocket" (any version; RFC 9110 7.8).
bool upgrade_lists_websocket(const Head& head) {
  bool found = false;
  for (const Field& field : head.fields) {
    if (!iequals(field.name, "upgrade")) continue;
    for_each_element(field.value, [&](std::string_view protocol) {
      found = found || iequals(protocol.substr(0, protocol.find('/')), "websocket");
      return !found;
    });
  }
  return found;
}
}  // namespace

bool websocket_upgrade(const RequestHead& head, const MessageInfo& info) {
  return info.upgrade && head.method == "GET" && head.version_minor >= 1 &&
         (info.body == BodyKind::none ||
          (info.body == BodyKind::length && info.content_length == 0)) &&
         upgrade_lists_websocket(head);
}

bool websocket_accepted(const ResponseHead& head, const MessageInfo& info) {
  return head.status == 101 && info.upgrade && upgrade_lists_websocket(head);
}

}  // namespace pc::wire
