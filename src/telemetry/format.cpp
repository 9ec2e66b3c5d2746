#include "telemetry/format.h"

#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace pc::telemetry {

std::string_view to_string(Result r) {
  switch (r) {
    case Result::allowed:
      return "allowed";
    case Result::denied:
      return "denied";
    case Result::error:
      return "error";
  }
  return "error";
}

Event security_event(const AccessRecord& r) {
  if (!r.threat.empty()) return Event::threat;
  if (r.result == Result::denied) return Event::block;
  if (r.scan == "error") return Event::policy_error;
  return Event::none;
}

std::string_view to_string(Event e) {
  switch (e) {
    case Event::none:
      return "access";
    case Event::block:
      return "block";
    case Event::threat:
      return "threat";
    case Event::policy_error:
      return "policy_error";
  }
  return "access";
}

UrlParts split_url(std::string_view url, std::string_view method) {
  UrlParts p;
  std::string_view rest = url;
  auto sep = url.find("://");
  if (sep != std::string_view::npos && sep > 0 && url.find('/') > sep) {
    p.scheme = url.substr(0, sep);
    rest = url.substr(sep + 3);
  } else if (method == "CONNECT") {
    p.scheme = "https";
  } else {
    p.path = url;  // origin-form or "*": addressed to the gateway itself
    return p;
  }
  auto end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  if (end != std::string_view::npos) p.path = rest.substr(end);
  if (auto at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    p.host = close == std::string_view::npos ? authority.substr(1) : authority.substr(1, close - 1);
  } else {
    p.host = authority.substr(0, authority.find(':'));
  }
  return p;
}

namespace fmtx {

void json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  const char* p = s.data();
  const char* end = p + s.size();
  while (p < end) {
    const char* run = p;
    while (p < end) {
      auto c = static_cast<unsigned char>(*p);
      if (c < 0x20 || c == '"' || c == '\\' || c == 0x7f) break;
      ++p;
    }
    out.append(run, static_cast<std::size_t>(p - run));
    if (p == end) break;
    auto c = static_cast<unsigned char>(*p++);
    switch (c) {
      case '"':
        out.append("\\\"", 2);
        break;
      case '\\':
        out.append("\\\\", 2);
        break;
      case '\n':
        out.append("\\n", 2);
        break;
      case '\r':
        out.append("\\r", 2);
        break;
      case '\t':
        out.append("\\t", 2);
        break;
      default: {
        char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out.append(u, 6);
      }
    }
  }
  out += '"';
}

void decimal(std::string& out, std::uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

void decimal_signed(std::string& out, std::int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

namespace {
// Zero-padded digits of v into p[0..n).
void digits(char* p, int n, long long v) {
  for (int i = n - 1; i >= 0; --i) {
    p[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
}
}  // namespace

void iso_time(std::string& out, std::chrono::system_clock::time_point t, bool micros) {
  // Records of one batch share their second: "YYYY-MM-DDTHH:MM:SS" is computed once.
  thread_local long long cached_sec = -1;
  thread_local char cached[20];
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  long long sec = us >= 0 ? us / 1000000 : (us - 999999) / 1000000;
  long long frac = us - sec * 1000000;
  if (sec != cached_sec) {
    std::time_t tt = static_cast<std::time_t>(sec);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    digits(cached, 4, tm.tm_year + 1900);
    cached[4] = '-';
    digits(cached + 5, 2, tm.tm_mon + 1);
    cached[7] = '-';
    digits(cached + 8, 2, tm.tm_mday);
    cached[10] = 'T';
    digits(cached + 11, 2, tm.tm_hour);
    cached[13] = ':';
    digits(cached + 14, 2, tm.tm_min);
    cached[16] = ':';
    digits(cached + 17, 2, tm.tm_sec);
    cached[19] = '.';
    cached_sec = sec;
  }
  char buf[28];
  std::memcpy(buf, cached, 20);
  std::size_t n = 20;
  if (micros) {
    digits(buf + n, 6, frac);
    n += 6;
  } else {
    digits(buf + n, 3, frac / 1000);
    n += 3;
  }
  buf[n++] = 'Z';
  out.append(buf, n);
}

void millis(std::string& out, std::chrono::microseconds d) {
  long long us = d.count();
  if (us < 0) {
    out += '-';
    us = -us;
  }
  decimal(out, static_cast<std::uint64_t>(us / 1000));
  char frac[4] = {'.', 0, 0, 0};
  digits(frac + 1, 3, us % 1000);
  out.append(frac, 4);
}

std::string_view utf8_prefix(std::string_view s, std::size_t n) {
  if (s.size() <= n) return s;
  // Back off over continuation bytes (10xxxxxx) so the cut falls before a lead byte.
  std::size_t cut = n;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80 && n - cut < 4) --cut;
  return s.substr(0, cut);
}

}  // namespace fmtx

namespace {

using namespace fmtx;

// ,"name":"value"
inline void field(std::string& out, std::string_view key, std::string_view value) {
  out += ',';
  out += '"';
  out.append(key);
  out.append("\":", 2);
  json_string(out, value);
}
inline void field_num(std::string& out, std::string_view key, std::uint64_t v) {
  out += ',';
  out += '"';
  out.append(key);
  out.append("\":", 2);
  decimal(out, v);
}
inline void field_bool(std::string& out, std::string_view key, bool v) {
  out += ',';
  out += '"';
  out.append(key);
  out.append(v ? "\":true" : "\":false");
}

// Squid prints fields separated by spaces; keep each field free of white space.
void squid_field(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  if (s.empty()) {
    out += '-';
    return;
  }
  const char* p = s.data();
  const char* end = p + s.size();
  while (p < end) {
    const char* run = p;
    while (p<end&& static_cast<unsigned char>(*p)> 0x20 && static_cast<unsigned char>(*p) != 0x7f)
      ++p;
    out.append(run, static_cast<std::size_t>(p - run));
    if (p == end) break;
    auto c = static_cast<unsigned char>(*p++);
    char esc[3] = {'%', kHex[c >> 4], kHex[c & 15]};
    out.append(esc, 3);
  }
}

}  // namespace

void append_json(std::string& out, const AccessRecord& r, std::string_view gateway) {
  out.append("{\"time\":\"", 9);
  iso_time(out, r.time);
  out.append("\",\"duration_ms\":", 16);
  millis(out, r.duration);
  field(out, "request_id", r.request_id);
  field(out, "gateway", gateway);
  field(out, "listener", r.listener);
  field_bool(out, "guest", r.guest);
  field(out, "client", r.client);
  if (!r.user.empty()) field(out, "user", r.user);
  if (!r.groups.empty()) field(out, "groups", r.groups);
  field(out, "method", r.method);
  field(out, "url", r.url);
  auto parts = split_url(r.url, r.method);
  field(out, "scheme", parts.scheme);
  field(out, "host", parts.host);
  field(out, "path", parts.path);
  field_num(out, "status", static_cast<std::uint64_t>(r.status < 0 ? 0 : r.status));
  field_num(out, "bytes_in", r.bytes_in);
  field_num(out, "bytes_out", r.bytes_out);
  field(out, "upstream", r.upstream);
  field(out, "content_type", r.content_type);
  field(out, "result", to_string(r.result));
  field(out, "reason", r.reason);
  if (!r.error.empty()) field(out, "error", r.error);
  field(out, "decision", r.decision);
  field(out, "rule", r.rule);
  field(out, "category", r.category);
  field(out, "category_source", r.category_source);
  field(out, "reputation", r.reputation);
  if (auto ev = security_event(r); ev != Event::none) field(out, "event", to_string(ev));
  if (!r.scan.empty()) {
    field(out, "scan", r.scan);
    if (!r.threat.empty()) field(out, "threat", r.threat);
    field(out, "sha256", r.sha256);
    field(out, "file_type", r.file_type);
    if (!r.scan_engine.empty()) field(out, "scan_engine", r.scan_engine);
    if (!r.file_name.empty()) field(out, "file_name", r.file_name);
    field_num(out, "scanned_size", r.scanned_size);
    field_bool(out, "scan_cached", r.scan_cached);
  }
  if (!r.icap_mode.empty()) {
    field(out, "icap_client", r.icap_client);
    field(out, "icap_mode", r.icap_mode);
    field_num(out, "icap_status",
              static_cast<std::uint64_t>(r.icap_status < 0 ? 0 : r.icap_status));
  }
  out += '}';
}

void append_squid(std::string& out, const AccessRecord& r) {
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(r.time.time_since_epoch()).count();
  char head[64];
  int n = std::snprintf(head, sizeof head, "%lld.%03lld %6lld ", static_cast<long long>(ms / 1000),
                        static_cast<long long>(ms % 1000),
                        static_cast<long long>(r.duration.count() / 1000));
  out.append(head, static_cast<std::size_t>(n));
  squid_field(out, r.client);
  switch (r.result) {
    case Result::allowed:
      out.append(r.method == "CONNECT" ? " TCP_TUNNEL/" : " TCP_MISS/");
      break;
    case Result::denied:
      out.append(" TCP_DENIED/");
      break;
    case Result::error:
      out.append(" TAG_NONE/");
      break;
  }
  decimal_signed(out, r.status);
  out += ' ';
  decimal(out, r.bytes_out);
  out += ' ';
  squid_field(out, r.method);
  out += ' ';
  squid_field(out, r.url);
  out += ' ';
  squid_field(out, r.user);
  if (r.upstream.empty()) {
    out.append(" HIER_NONE/- ");
  } else {
    out.append(r.via_parent ? " FIRSTUP_PARENT/" : " HIER_DIRECT/");
    squid_field(out, r.upstream);
    out += ' ';
  }
  squid_field(out, r.content_type);
}

std::string format_json(const AccessRecord& r, std::string_view gateway) {
  std::string out;
  append_json(out, r, gateway);
  out += '\n';
  return out;
}

std::string format_squid(const AccessRecord& r) {
  std::string out;
  append_squid(out, r);
  out += '\n';
  return out;
}

}  // namespace pc::telemetry
