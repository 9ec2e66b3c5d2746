// ICAP/1.0 (RFC 3507): heads, the Encapsulated header, encapsulated HTTP heads, the chunked
// body with "ieof", and serializers. Field lines are scanned by the same rules as HTTP heads.
#include "wire/icap.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <limits>
#include <memory>

#include "wire/detail.h"

namespace pc::wire {

using detail::is_field_byte;
using detail::is_tchar;
using detail::is_ws;

// ---------------------------------------------------------------------------------------
// Names, statuses, descriptions

int icap_status_for(IcapError e) {
  switch (e) {
    case IcapError::unknown_method:
      return 501;
    case IcapError::missing_service:
      return 404;
    case IcapError::unsupported_version:
      return 505;
    default:
      return 400;
  }
}

std::string_view describe(IcapError e) {
  switch (e) {
    case IcapError::none:
      return "no error";
    case IcapError::bad_request_line:
      return "malformed ICAP request line";
    case IcapError::bad_method:
      return "ICAP method is not a token";
    case IcapError::unknown_method:
      return "ICAP method not implemented";
    case IcapError::bad_uri:
      return "invalid ICAP-URI";
    case IcapError::missing_service:
      return "ICAP-URI names no service";
    case IcapError::uri_too_long:
      return "ICAP-URI too long";
    case IcapError::bad_version:
      return "malformed ICAP version";
    case IcapError::unsupported_version:
      return "unsupported ICAP version";
    case IcapError::bad_status_line:
      return "malformed ICAP status line";
    case IcapError::head_too_large:
      return "ICAP head too large";
    case IcapError::too_many_fields:
      return "too many ICAP header fields";
    case IcapError::field_too_large:
      return "ICAP header field line too large";
    case IcapError::bad_field:
      return "malformed ICAP header field line";
    case IcapError::missing_host:
      return "ICAP request without Host";
    case IcapError::bad_host:
      return "invalid or repeated Host";
    case IcapError::missing_encapsulated:
      return "Encapsulated missing";
    case IcapError::bad_encapsulated:
      return "malformed Encapsulated";
    case IcapError::encapsulated_order:
      return "Encapsulated entities not allowed in this order";
    case IcapError::encapsulated_offsets:
      return "Encapsulated offsets not starting at 0 and increasing";
    case IcapError::encapsulated_too_large:
      return "encapsulated HTTP heads too large";
    case IcapError::bad_preview:
      return "invalid Preview";
    case IcapError::bad_allow:
      return "invalid Allow";
    case IcapError::bad_http_head:
      return "malformed encapsulated HTTP head";
    case IcapError::http_head_length:
      return "encapsulated HTTP head does not end at its Encapsulated offset";
    case IcapError::bad_chunked:
      return "malformed chunked ICAP body";
    case IcapError::preview_too_long:
      return "preview longer than Preview";
  }
  return "unknown error";
}

std::string_view icap_reason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "ICAP Service Not Found";
    case 405:
      return "Method Not Allowed For Service";
    case 408:
      return "Request Timeout";
    case 500:
      return "Server Error";
    case 501:
      return "Method Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Overloaded";
    case 505:
      return "ICAP Version Not Supported";
    default:
      return "Unknown";
  }
}

std::string_view icap_method_name(IcapMethod m) {
  switch (m) {
    case IcapMethod::options:
      return "OPTIONS";
    case IcapMethod::reqmod:
      return "REQMOD";
    case IcapMethod::respmod:
      return "RESPMOD";
  }
  return "OPTIONS";
}

std::string_view entity_name(IcapEntity e) {
  switch (e) {
    case IcapEntity::req_hdr:
      return "req-hdr";
    case IcapEntity::res_hdr:
      return "res-hdr";
    case IcapEntity::req_body:
      return "req-body";
    case IcapEntity::res_body:
      return "res-body";
    case IcapEntity::null_body:
      return "null-body";
    case IcapEntity::opt_body:
      return "opt-body";
  }
  return "null-body";
}

// ---------------------------------------------------------------------------------------
// Encapsulated

std::size_t Encapsulated::req_hdr_size() const {
  if (!req_hdr) return 0;
  return (res_hdr ? *res_hdr : body_offset) - *req_hdr;
}

std::size_t Encapsulated::res_hdr_size() const {
  if (!res_hdr) return 0;
  return body_offset - *res_hdr;
}

namespace {

bool entity_from_name(std::string_view s, IcapEntity& out) {
  static constexpr std::array<IcapEntity, 6> kAll = {IcapEntity::req_hdr,   IcapEntity::res_hdr,
                                                     IcapEntity::req_body,  IcapEntity::res_body,
                                                     IcapEntity::null_body, IcapEntity::opt_body};
  for (IcapEntity e : kAll) {
    if (entity_name(e) == s) {
      out = e;
      return true;
    }
  }
  return false;
}

// One allowed form: optional heads in this order, then one of the bodies.
struct Shape {
  std::array<IcapEntity, 2> heads;
  std::size_t n_heads;
  IcapEntity body;  // null-body is always allowed as well
};

struct Item {
  IcapEntity entity;
  std::uint64_t offset;
};

bool matches(const Item* items, std::size_t n, const Shape& shape) {
  std::size_t h = 0;
  for (std::size_t k = 0; k + 1 < n; ++k) {
    while (h < shape.n_heads && shape.heads[h] != items[k].entity) ++h;
    if (h == shape.n_heads) return false;
    ++h;  // each head at most once
  }
  const IcapEntity last = items[n - 1].entity;
  return last == IcapEntity::null_body || last == shape.body;
}

bool allowed_order(const Item* items, std::size_t n, IcapMethod method, IcapDirection dir) {
  using E = IcapEntity;
  static constexpr Shape kReqmod{{E::req_hdr, E::req_hdr}, 1, E::req_body};
  static constexpr Shape kRespmodRequest{{E::req_hdr, E::res_hdr}, 2, E::res_body};
  static constexpr Shape kResponse{{E::res_hdr, E::res_hdr}, 1, E::res_body};
  static constexpr Shape kOptions{{E::req_hdr, E::req_hdr}, 0, E::opt_body};
  switch (method) {
    case IcapMethod::options:
      return matches(items, n, kOptions);
    case IcapMethod::reqmod:
      if (matches(items, n, kReqmod)) return true;
      return dir == IcapDirection::response && matches(items, n, kResponse);
    case IcapMethod::respmod:
      return matches(items, n, dir == IcapDirection::request ? kRespmodRequest : kResponse);
  }
  return false;
}

}  // namespace

IcapError parse_encapsulated(std::string_view value, IcapMethod method, IcapDirection direction,
                             std::size_t max_bytes, Encapsulated& out) {
  out = Encapsulated{};
  // More than three elements can never form an allowed list; six are kept so that such a
  // list is reported as an order error rather than a syntax error.
  constexpr std::size_t kMaxItems = 6;
  constexpr std::uint64_t kCap = std::uint64_t{1} << 62;
  std::array<Item, kMaxItems> items{};
  std::size_t n = 0;
  bool too_many = false;
  std::size_t i = 0;
  const std::size_t len = value.size();
  for (;;) {
    const std::size_t name_start = i;
    while (i < len && ((value[i] >= 'a' && value[i] <= 'z') || value[i] == '-')) ++i;
    IcapEntity e{};
    if (!entity_from_name(value.substr(name_start, i - name_start), e))
      return IcapError::bad_encapsulated;
    if (i == len || value[i] != '=') return IcapError::bad_encapsulated;
    ++i;
    const std::size_t digits_start = i;
    std::uint64_t offset = 0;
    while (i < len && value[i] >= '0' && value[i] <= '9') {
      offset =
          std::min<std::uint64_t>(offset * 10 + static_cast<std::uint64_t>(value[i] - '0'), kCap);
      ++i;
    }
    if (i == digits_start) return IcapError::bad_encapsulated;
    if (n < kMaxItems)
      items[n++] = Item{e, offset};
    else
      too_many = true;
    while (i < len && is_ws(value[i])) ++i;
    if (i == len) break;
    if (value[i] != ',') return IcapError::bad_encapsulated;
    ++i;
    while (i < len && is_ws(value[i])) ++i;
  }
  if (too_many || n > 3) return IcapError::encapsulated_order;
  if (!allowed_order(items.data(), n, method, direction)) return IcapError::encapsulated_order;
  if (items[0].offset != 0) return IcapError::encapsulated_offsets;
  for (std::size_t k = 1; k < n; ++k)
    if (items[k].offset <= items[k - 1].offset) return IcapError::encapsulated_offsets;
  if (items[n - 1].offset > max_bytes) return IcapError::encapsulated_too_large;
  out.present = true;
  for (std::size_t k = 0; k + 1 < n; ++k) {
    const auto off = static_cast<std::size_t>(items[k].offset);
    if (items[k].entity == IcapEntity::req_hdr)
      out.req_hdr = off;
    else
      out.res_hdr = off;
  }
  out.body = items[n - 1].entity;
  out.body_offset = static_cast<std::size_t>(items[n - 1].offset);
  return IcapError::none;
}

// ---------------------------------------------------------------------------------------
// ICAP-URI

IcapError parse_icap_uri(std::string_view uri, IcapUri& out) {
  out = IcapUri{};
  for (char c : uri) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7e || c == '#') return IcapError::bad_uri;
  }
  std::uint16_t default_port = 0;
  std::size_t i = 0;
  if (uri.starts_with("icap://")) {
    out.scheme = uri.substr(0, 4);
    default_port = kIcapPort;
    i = 7;
  } else if (uri.starts_with("icaps://")) {
    out.scheme = uri.substr(0, 5);
    default_port = kIcapsPort;
    i = 8;
  } else {
    return IcapError::bad_uri;
  }
  const std::size_t auth_end = std::min(uri.find_first_of("/?", i), uri.size());
  const std::string_view authority = uri.substr(i, auth_end - i);
  if (authority.find('@') != std::string_view::npos) return IcapError::bad_uri;
  if (parse_authority(authority, default_port, out.host, out.port, out.port_explicit) !=
      Error::none)
    return IcapError::bad_uri;
  if (auth_end == uri.size() || uri[auth_end] != '/') {
    out.host = {};
    return IcapError::missing_service;
  }
  const std::size_t service_start = auth_end + 1;
  const std::size_t q = uri.find('?', service_start);
  const std::size_t service_end = q == std::string_view::npos ? uri.size() : q;
  out.service = uri.substr(service_start, service_end - service_start);
  if (q != std::string_view::npos) {
    out.has_query = true;
    out.query = uri.substr(q + 1);
  }
  if (out.service.empty()) {
    const IcapUri empty;
    out = empty;
    return IcapError::missing_service;
  }
  return IcapError::none;
}

// ---------------------------------------------------------------------------------------
// Head parsing

namespace {

IcapParseResult make_error(IcapError e, std::size_t at, Error detail = Error::none) {
  IcapParseResult r;
  r.status = Status::error;
  r.error = e;
  r.detail = detail;
  r.error_offset = at;
  return r;
}

// Maps a field-line scanner error to the ICAP error.
IcapError field_error(Error e) {
  switch (e) {
    case Error::field_too_large:
      return IcapError::field_too_large;
    default:
      return IcapError::bad_field;
  }
}

// Field lines from win[i] through the empty line.
IcapParseResult parse_fields(std::string_view win, std::size_t i, std::size_t max_fields,
                             std::size_t max_field_bytes, Head& out) {
  for (;;) {
    const detail::LineScan ls = detail::scan_field_line(win.substr(i), max_field_bytes);
    if (ls.status == Status::incomplete) return IcapParseResult{};
    if (ls.status == Status::error)
      return make_error(field_error(ls.error), i + ls.end,
                        ls.error == Error::field_too_large ? Error::none : ls.error);
    if (ls.field.name.empty()) {
      IcapParseResult r;
      r.status = Status::complete;
      r.consumed = i + ls.end;
      return r;
    }
    if (out.fields.size() >= max_fields) return make_error(IcapError::too_many_fields, i);
    out.fields.push_back(ls.field);
    i += ls.end;
  }
}

// Copies buf[0, size) into out.raw and moves the field views and `extra` into it.
void take_ownership(std::string_view buf, std::size_t size, Head& out,
                    std::span<std::string_view> extra) {
  out.raw = std::make_unique_for_overwrite<char[]>(size == 0 ? 1 : size);
  std::memcpy(out.raw.get(), buf.data(), size);
  out.raw_size = size;
  const char* old_base = buf.data();
  char* new_base = out.raw.get();
  auto rebase = [&](std::string_view v) {
    if (v.data() == nullptr) return v;
    return std::string_view(new_base + (v.data() - old_base), v.size());
  };
  for (Field& f : out.fields) {
    f.name = rebase(f.name);
    f.value = rebase(f.value);
  }
  for (std::string_view& v : extra) v = rebase(v);
}

void reset_head(Head& out, const IcapLimits& lim) {
  out.raw.reset();
  out.raw_size = 0;
  out.version_minor = 0;
  out.fields.clear();
  if (out.fields.capacity() == 0) out.fields.reserve(std::min<std::size_t>(lim.max_fields, 32));
}

// Calls fn for each element of a comma-separated list, OWS trimmed (empty elements too).
template <typename Fn>
bool for_each_element(std::string_view list, Fn&& fn) {
  for (;;) {
    const std::size_t comma = list.find(',');
    if (!fn(detail::trim_ows(list.substr(0, comma)))) return false;
    if (comma == std::string_view::npos) return true;
    list.remove_prefix(comma + 1);
  }
}

// What the ICAP fields say, gathered in one pass; `bad` is the field that broke a rule.
struct IcapFacts {
  std::size_t hosts = 0;
  const Field* host = nullptr;
  std::size_t encapsulateds = 0;
  const Field* encapsulated = nullptr;
  std::size_t previews = 0;
  const Field* preview = nullptr;
  const Field* istag = nullptr;
  bool allow_204 = false;
  bool allow_206 = false;
  bool bad_allow = false;
  const Field* bad_allow_field = nullptr;
  bool connection_close = false;
};

IcapFacts scan_facts(std::span<const Field> fields) {
  IcapFacts f;
  for (const Field& field : fields) {
    const std::string_view name = field.name;
    if (iequals(name, "host")) {
      if (f.hosts++ == 0) f.host = &field;
    } else if (iequals(name, "encapsulated")) {
      if (f.encapsulateds++ == 0) f.encapsulated = &field;
    } else if (iequals(name, "preview")) {
      if (f.previews++ == 0) f.preview = &field;
    } else if (iequals(name, "istag")) {
      if (f.istag == nullptr) f.istag = &field;
    } else if (iequals(name, "allow")) {
      for_each_element(field.value, [&](std::string_view e) {
        if (e.empty()) return true;
        if (!detail::is_token(e)) {
          if (!f.bad_allow) f.bad_allow_field = &field;
          f.bad_allow = true;
          return false;
        }
        if (e == "204") f.allow_204 = true;
        if (e == "206") f.allow_206 = true;
        return true;
      });
    } else if (iequals(name, "connection")) {
      for_each_element(field.value, [&](std::string_view e) {
        if (iequals(e, "close")) f.connection_close = true;
        return true;
      });
    }
  }
  return f;
}

// Preview = 1*DIGIT, at most max.
bool parse_preview(std::string_view v, std::uint64_t max, std::uint64_t& out) {
  if (v.empty() || v.size() > 18) return false;
  std::uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (n > max) return false;
  out = n;
  return true;
}

// Offset of a view into the head (whose bytes start at base).
std::size_t offset_in(const char* base, std::string_view v) {
  return static_cast<std::size_t>(v.data() - base);
}

// Error for an unexpected byte p[k] inside a start line: a line break or NUL is reported
// with its own detail; `e` either way. need_more when a CR is the last byte.
enum class LineByte { need_more, error };
LineByte start_line_byte(const char* p, std::size_t n, std::size_t k, Error& detail) {
  switch (p[k]) {
    case '\0':
      detail = Error::nul_byte;
      return LineByte::error;
    case '\n':
      detail = Error::bare_lf;
      return LineByte::error;
    case '\r':
      if (k + 1 == n) return LineByte::need_more;
      detail = p[k + 1] == '\n' ? Error::none : Error::bare_cr;
      return LineByte::error;
    default:
      detail = Error::none;
      return LineByte::error;
  }
}

}  // namespace

IcapParseResult parse_icap_request_head(std::string_view buf, const IcapLimits& lim,
                                        IcapRequestHead& out) {
  reset_head(out, lim);
  out.method = IcapMethod::options;
  out.method_name = {};
  out.uri = {};
  out.target = IcapUri{};
  out.encapsulated = Encapsulated{};
  out.preview.reset();
  out.allow_204 = out.allow_206 = out.connection_close = false;

  const std::string_view win = buf.substr(0, std::min(buf.size(), lim.max_head_bytes));
  const char* p = win.data();
  const std::size_t n = win.size();
  std::size_t i = 0;

  auto result = [&](IcapParseResult r) {
    if (r.status == Status::incomplete && buf.size() > lim.max_head_bytes)
      r = make_error(IcapError::head_too_large, lim.max_head_bytes);
    if (r.status != Status::complete) {
      out.fields.clear();
      out.raw.reset();
      out.raw_size = 0;
      out.method_name = out.uri = {};
      out.target = IcapUri{};
      out.encapsulated = Encapsulated{};
      out.preview.reset();
      out.allow_204 = out.allow_206 = out.connection_close = false;
    }
    return r;
  };
  auto fail = [&](IcapError e, std::size_t at, Error d = Error::none) {
    return result(make_error(e, at, d));
  };
  auto need_more = [&] { return result(IcapParseResult{}); };
  // An unexpected byte at k: a line break or NUL is a bad request line (detail says which).
  auto line_error = [&](std::size_t k, IcapError fallback) {
    Error d = Error::none;
    if (start_line_byte(p, n, k, d) == LineByte::need_more) return need_more();
    if (d != Error::none) return fail(IcapError::bad_request_line, k, d);
    return fail(fallback, k);
  };

  // method SP
  while (i < n && is_tchar(p[i])) ++i;
  if (i == n) return need_more();
  if (p[i] != ' ') {
    const char c = p[i];
    if (c == '\r' || c == '\n' || c == '\0' || c == '\t' || i == 0)
      return line_error(i, IcapError::bad_request_line);
    return fail(IcapError::bad_method, i);
  }
  if (i == 0) return fail(IcapError::bad_request_line, 0);
  const std::string_view method(p, i);

  // ICAP-URI SP: visible ASCII
  const std::size_t uri_start = ++i;
  for (;; ++i) {
    if (i == n) return need_more();
    const auto c = static_cast<unsigned char>(p[i]);
    if (c < 0x21 || c > 0x7e) break;
    if (i - uri_start >= lim.max_uri_bytes) return fail(IcapError::uri_too_long, i);
  }
  if (p[i] != ' ') {
    const char c = p[i];
    if (c == '\r' || c == '\n' || c == '\0') return line_error(i, IcapError::bad_request_line);
    return fail(IcapError::bad_uri, i);
  }
  if (i == uri_start) return fail(IcapError::bad_request_line, i);
  const std::string_view uri(p + uri_start, i - uri_start);

  // ICAP-Version CRLF
  static constexpr char kPattern[] = "ICAP/#.#";
  const std::size_t version_start = ++i;
  for (std::size_t k = 0; k < 8; ++k, ++i) {
    if (i == n) return need_more();
    const char c = p[i];
    const bool ok = kPattern[k] == '#' ? (c >= '0' && c <= '9') : c == kPattern[k];
    if (!ok) return line_error(i, IcapError::bad_version);
  }
  if (i == n) return need_more();
  if (p[i] != '\r') return line_error(i, IcapError::bad_version);
  if (i + 1 == n) return need_more();
  if (p[i + 1] != '\n') return fail(IcapError::bad_request_line, i, Error::bare_cr);
  if (p[version_start + 5] != '1' || p[version_start + 7] != '0')
    return fail(IcapError::unsupported_version, version_start);
  if (method == "OPTIONS")
    out.method = IcapMethod::options;
  else if (method == "REQMOD")
    out.method = IcapMethod::reqmod;
  else if (method == "RESPMOD")
    out.method = IcapMethod::respmod;
  else
    return fail(IcapError::unknown_method, 0);
  IcapUri target;
  if (const IcapError e = parse_icap_uri(uri, target); e != IcapError::none)
    return fail(e, uri_start);
  i += 2;

  IcapParseResult r = parse_fields(win, i, lim.max_fields, lim.max_field_bytes, out);
  if (r.status != Status::complete) return result(r);

  // Semantics, on views into buf.
  const IcapFacts f = scan_facts(out.fields);
  if (f.hosts == 0) return fail(IcapError::missing_host, 0);
  {
    std::string_view host;
    std::uint16_t port = 0;
    bool port_explicit = false;
    if (f.hosts > 1 ||
        parse_authority(f.host->value, kIcapPort, host, port, port_explicit) != Error::none)
      return fail(IcapError::bad_host, offset_in(p, f.host->name));
  }
  if (f.encapsulateds > 1)
    return fail(IcapError::bad_encapsulated, offset_in(p, f.encapsulated->name));
  if (f.encapsulated != nullptr) {
    const IcapError e =
        parse_encapsulated(f.encapsulated->value, out.method, IcapDirection::request,
                           lim.max_encapsulated_bytes, out.encapsulated);
    if (e != IcapError::none) return fail(e, offset_in(p, f.encapsulated->name));
  } else if (out.method != IcapMethod::options) {
    return fail(IcapError::missing_encapsulated, 0);
  }
  if (f.previews > 0) {
    std::uint64_t v = 0;
    if (f.previews > 1 || !parse_preview(f.preview->value, lim.max_preview, v))
      return fail(IcapError::bad_preview, offset_in(p, f.preview->name));
    out.preview = v;
  }
  if (f.bad_allow) return fail(IcapError::bad_allow, offset_in(p, f.bad_allow_field->name));
  out.allow_204 = f.allow_204;
  out.allow_206 = f.allow_206;
  out.connection_close = f.connection_close;

  std::array<std::string_view, 2> views = {method, uri};
  take_ownership(buf, r.consumed, out, views);
  out.method_name = views[0];
  out.uri = views[1];
  // The URI's parts, moved along with it.
  auto moved = [&](std::string_view v) {
    return v.empty() ? v
                     : out.uri.substr(static_cast<std::size_t>(v.data() - uri.data()), v.size());
  };
  target.scheme = moved(target.scheme);
  target.host = moved(target.host);
  target.service = moved(target.service);
  target.query = moved(target.query);
  out.target = target;
  return r;
}

IcapParseResult parse_icap_response_head(std::string_view buf, const IcapLimits& lim,
                                         IcapMethod request_method, IcapResponseHead& out) {
  reset_head(out, lim);
  out.status = 0;
  out.reason = {};
  out.istag = {};
  out.encapsulated = Encapsulated{};
  out.connection_close = false;

  const std::string_view win = buf.substr(0, std::min(buf.size(), lim.max_head_bytes));
  const char* p = win.data();
  const std::size_t n = win.size();
  std::size_t i = 0;

  auto result = [&](IcapParseResult r) {
    if (r.status == Status::incomplete && buf.size() > lim.max_head_bytes)
      r = make_error(IcapError::head_too_large, lim.max_head_bytes);
    if (r.status != Status::complete) {
      out.fields.clear();
      out.raw.reset();
      out.raw_size = 0;
      out.status = 0;
      out.reason = out.istag = {};
      out.encapsulated = Encapsulated{};
      out.connection_close = false;
    }
    return r;
  };
  auto fail = [&](IcapError e, std::size_t at, Error d = Error::none) {
    return result(make_error(e, at, d));
  };
  auto need_more = [&] { return result(IcapParseResult{}); };
  auto line_error = [&](std::size_t k) {
    Error d = Error::none;
    if (start_line_byte(p, n, k, d) == LineByte::need_more) return need_more();
    return fail(IcapError::bad_status_line, k, d);
  };

  static constexpr char kPattern[] = "ICAP/1.0 ";
  for (std::size_t k = 0; k < 9; ++k, ++i) {
    if (i == n) return need_more();
    if (p[i] != kPattern[k]) return line_error(i);
  }
  int status = 0;
  for (std::size_t k = 0; k < 3; ++k, ++i) {
    if (i == n) return need_more();
    const char c = p[i];
    if (c < '0' || c > '9' || (k == 0 && (c < '1' || c > '5'))) return line_error(i);
    status = status * 10 + (c - '0');
  }
  if (i == n) return need_more();
  std::size_t reason_start = i;
  if (p[i] == ' ') {
    reason_start = ++i;
    while (i < n && is_field_byte(p[i])) ++i;
    if (i == n) return need_more();
  }
  if (p[i] != '\r') return line_error(i);
  if (i + 1 == n) return need_more();
  if (p[i + 1] != '\n') return fail(IcapError::bad_status_line, i, Error::bare_cr);
  const std::string_view reason(p + reason_start, i - reason_start);
  i += 2;

  IcapParseResult r = parse_fields(win, i, lim.max_fields, lim.max_field_bytes, out);
  if (r.status != Status::complete) return result(r);

  const IcapFacts f = scan_facts(out.fields);
  if (f.encapsulateds > 1)
    return fail(IcapError::bad_encapsulated, offset_in(p, f.encapsulated->name));
  if (f.encapsulated != nullptr) {
    const IcapError e =
        parse_encapsulated(f.encapsulated->value, request_method, IcapDirection::response,
                           lim.max_encapsulated_bytes, out.encapsulated);
    if (e != IcapError::none) return fail(e, offset_in(p, f.encapsulated->name));
    const Encapsulated& enc = out.encapsulated;
    if ((status == 100 || status == 204) && (enc.req_hdr || enc.res_hdr || enc.has_body()))
      return fail(IcapError::encapsulated_order, offset_in(p, f.encapsulated->name));
  } else if (status >= 200 && status < 300 && status != 204) {
    return fail(IcapError::missing_encapsulated, 0);
  }
  out.connection_close = f.connection_close;

  std::array<std::string_view, 2> views = {reason, f.istag ? f.istag->value : std::string_view()};
  take_ownership(buf, r.consumed, out, views);
  out.status = status;
  out.reason = views[0];
  out.istag = views[1];
  return r;
}

// ---------------------------------------------------------------------------------------
// Encapsulated HTTP heads

IcapParseResult parse_encapsulated_heads(const Encapsulated& enc, std::string_view section,
                                         const Limits& http, EncapsulatedHeads& out) {
  out.has_request = out.has_response = false;
  if (section.size() < enc.body_offset) return IcapParseResult{};
  IcapParseResult done;
  done.status = Status::complete;
  done.consumed = enc.body_offset;

  // Parses one part [begin, begin + size) of section with parse(slice, http, head).
  auto part = [&](std::size_t begin, std::size_t size, auto& head, auto parse) -> IcapParseResult {
    const std::string_view slice = section.substr(begin, size);
    const ParseResult pr = parse(slice, http, head);
    if (pr.status == Status::error) {
      // A wire error past the end of the part can only be found by a head that runs over it.
      return make_error(IcapError::bad_http_head, begin + pr.error_offset, pr.error);
    }
    if (pr.status == Status::incomplete)
      return make_error(IcapError::http_head_length, begin + size - 1);
    if (pr.consumed != size || head.raw_size != size)
      return make_error(IcapError::http_head_length, begin + pr.consumed - 1);
    return done;
  };

  if (enc.req_hdr) {
    const IcapParseResult r = part(*enc.req_hdr, enc.req_hdr_size(), out.request,
                                   [](std::string_view s, const Limits& l, RequestHead& h) {
                                     return parse_request_head(s, l, h);
                                   });
    if (r.status != Status::complete) return r;
    out.has_request = true;
  }
  if (enc.res_hdr) {
    const IcapParseResult r = part(*enc.res_hdr, enc.res_hdr_size(), out.response,
                                   [](std::string_view s, const Limits& l, ResponseHead& h) {
                                     return parse_response_head(s, l, h);
                                   });
    if (r.status != Status::complete) {
      out.has_request = false;
      return r;
    }
    out.has_response = true;
  }
  return done;
}

// ---------------------------------------------------------------------------------------
// Chunked body

void append_ieof_chunk(std::string& out) {
  out.append("0; ieof\r\n\r\n");
}

// ---------------------------------------------------------------------------------------
// Serializers

namespace {

bool field_ok(const Field& f) {
  if (!detail::is_token(f.name)) return false;
  for (char c : f.value)
    if (!is_field_byte(c)) return false;
  return f.value.empty() || (!is_ws(f.value.front()) && !is_ws(f.value.back()));
}

bool head_part_ok(std::string_view h) {
  return h.empty() || (h.size() >= 4 && h.ends_with("\r\n\r\n"));
}

// Appends the fields, the computed Encapsulated field, the empty line and the heads after the
// start line (and ISTag) the caller appended since `mark`; checks the parts (fields as given,
// Encapsulated for method and direction). On a broken rule, cuts out back to `mark` and
// returns false.
bool append_parts(std::string& out, std::size_t mark, const IcapParts& parts, IcapMethod method,
                  IcapDirection dir) {
  auto fail = [&] {
    out.resize(mark);
    return false;
  };
  for (const Field& f : parts.fields) {
    if (!field_ok(f) || iequals(f.name, "encapsulated")) return fail();
    if (dir == IcapDirection::response && iequals(f.name, "istag")) return fail();
  }
  if (!head_part_ok(parts.req_hdr) || !head_part_ok(parts.res_hdr)) return fail();
  std::array<char, 128> enc;  // three entities at most: "res-body=" and 20 digits each
  std::size_t len = 0, offset = 0;
  auto add = [&](IcapEntity e, std::size_t size) {
    if (len) {
      std::memcpy(enc.data() + len, ", ", 2);
      len += 2;
    }
    const std::string_view name = entity_name(e);
    std::memcpy(enc.data() + len, name.data(), name.size());
    len += name.size();
    enc[len++] = '=';
    len = static_cast<std::size_t>(
        std::to_chars(enc.data() + len, enc.data() + enc.size(), offset).ptr - enc.data());
    offset += size;
  };
  if (!parts.req_hdr.empty()) add(IcapEntity::req_hdr, parts.req_hdr.size());
  if (!parts.res_hdr.empty()) add(IcapEntity::res_hdr, parts.res_hdr.size());
  add(parts.body, 0);
  const std::string_view value(enc.data(), len);
  Encapsulated check;
  if (parse_encapsulated(value, method, dir, std::numeric_limits<std::size_t>::max(), check) !=
      IcapError::none)
    return fail();
  for (const Field& f : parts.fields) {
    out.append(f.name);
    out.append(": ");
    out.append(f.value);
    out.append("\r\n");
  }
  out.append("Encapsulated: ");
  out.append(value);
  out.append("\r\n\r\n");
  out.append(parts.req_hdr);
  out.append(parts.res_hdr);
  return true;
}

bool istag_ok(std::string_view t) {
  if (t.empty() || t.size() > 32) return false;
  for (char c : t)
    if (c == '"' || c == '\\' || !detail::has_class(c, detail::kQdText) || c == '\t') return false;
  return true;
}

}  // namespace

bool append_icap_response(std::string& out, int status, std::string_view istag,
                          IcapMethod request_method, const IcapParts& parts,
                          std::string_view reason) {
  if (status < 200 || status > 599 || !istag_ok(istag)) return false;
  if (reason.empty()) reason = icap_reason(status);
  for (char c : reason)
    if (!is_field_byte(c)) return false;
  if (status == 204 &&
      (!parts.req_hdr.empty() || !parts.res_hdr.empty() || parts.body != IcapEntity::null_body))
    return false;
  const std::size_t mark = out.size();
  char code[4];
  std::to_chars(code, code + 3, status);
  out.append("ICAP/1.0 ").append(code, 3).append(" ").append(reason).append("\r\n");
  out.append("ISTag: \"").append(istag).append("\"\r\n");
  return append_parts(out, mark, parts, request_method, IcapDirection::response);
}

bool append_icap_request(std::string& out, IcapMethod method, std::string_view uri,
                         const IcapParts& parts) {
  IcapUri target;
  if (parse_icap_uri(uri, target) != IcapError::none) return false;
  const IcapFacts f = scan_facts(parts.fields);
  std::string_view host;
  std::uint16_t port = 0;
  bool port_explicit = false;
  if (f.hosts != 1 ||
      parse_authority(f.host->value, kIcapPort, host, port, port_explicit) != Error::none)
    return false;
  std::uint64_t preview = 0;
  if (f.previews > 1 ||
      (f.preview != nullptr &&
       !parse_preview(f.preview->value, std::numeric_limits<std::uint64_t>::max(), preview)))
    return false;
  if (f.bad_allow) return false;
  const std::size_t mark = out.size();
  out.append(icap_method_name(method)).append(" ").append(uri).append(" ICAP/1.0\r\n");
  return append_parts(out, mark, parts, method, IcapDirection::request);
}

void append_icap_continue(std::string& out) {
  out.append("ICAP/1.0 100 Continue\r\n\r\n");
}

bool append_icap_no_content(std::string& out, std::string_view istag,
                            std::span<const Field> fields) {
  IcapParts parts;
  parts.fields = fields;
  return append_icap_response(out, 204, istag, IcapMethod::reqmod, parts);
}

}  // namespace pc::wire
