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

std::size_t iso_time(char* buf, std::chrono::system_clock::time_point t, bool micros) {
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
  return n;
}

void iso_time(std::string& out, std::chrono::system_clock::time_point t, bool micros) {
  char buf[kIsoTimeMax];
  out.append(buf, iso_time(buf, t, micros));
}

std::size_t millis(char* buf, std::chrono::microseconds d) {
  long long us = d.count();
  char* p = buf;
  if (us < 0) {
    *p++ = '-';
    us = -us;
  }
  p = std::to_chars(p, p + 20, static_cast<std::uint64_t>(us / 1000)).ptr;
  *p++ = '.';
  digits(p, 3, us % 1000);
  return static_cast<std::size_t>(p + 3 - buf);
}

void millis(std::string& out, std::chrono::microseconds d) {
  char buf[kMillisMax];
  out.append(buf, millis(buf, d));
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

// Writes through a raw pointer into room reserved up front (the caller's bound must cover
// the worst case: every string byte escaped as \u00XX). Appending one character at a time to
// a std::string costs a capacity check and a call each; this is the writer's hot loop.
class Writer {
 public:
  Writer(std::string& s, std::size_t max_add) : s_(s) {
    std::size_t base = s.size();
    s.resize(base + max_add);
    p_ = s.data() + base;
  }
  ~Writer() { s_.resize(static_cast<std::size_t>(p_ - s_.data())); }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  template <std::size_t N>
  void lit(const char (&text)[N]) {
    std::memcpy(p_, text, N - 1);
    p_ += N - 1;
  }
  void raw(std::string_view v) {
    std::memcpy(p_, v.data(), v.size());
    p_ += v.size();
  }
  void ch(char c) { *p_++ = c; }
  void num(std::uint64_t v) { p_ = std::to_chars(p_, p_ + 20, v).ptr; }
  void time(std::chrono::system_clock::time_point t) { p_ += iso_time(p_, t, false); }
  void millis(std::chrono::microseconds d) { p_ += fmtx::millis(p_, d); }
  // A JSON string literal, quotes included.
  void str(std::string_view v) {
    static constexpr char kHex[] = "0123456789abcdef";
    *p_++ = '"';
    for (char ch : v) {
      auto c = static_cast<unsigned char>(ch);
      if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f) {
        *p_++ = ch;
        continue;
      }
      *p_++ = '\\';
      switch (c) {
        case '"':
          *p_++ = '"';
          break;
        case '\\':
          *p_++ = '\\';
          break;
        case '\n':
          *p_++ = 'n';
          break;
        case '\r':
          *p_++ = 'r';
          break;
        case '\t':
          *p_++ = 't';
          break;
        default:
          std::memcpy(p_, "u00", 3);
          p_[3] = kHex[c >> 4];
          p_[4] = kHex[c & 15];
          p_ += 5;
      }
    }
    *p_++ = '"';
  }

 private:
  std::string& s_;
  char* p_;
};

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
  // Worst case: every string byte as \u00XX (6 bytes); the url counts twice (scheme, host and
  // path are pieces of it); keys, numbers and punctuation stay under 1 KiB.
  std::size_t strings =
      gateway.size() + r.request_id.size() + r.listener.size() + r.client.size() + r.user.size() +
      r.groups.size() + r.method.size() + 2 * r.url.size() + r.upstream.size() +
      r.content_type.size() + r.reason.size() + r.error.size() + r.decision.size() + r.rule.size() +
      r.category.size() + r.category_source.size() + r.reputation.size() + r.scan.size() +
      r.threat.size() + r.sha256.size() + r.file_type.size() + r.scan_engine.size() +
      r.file_name.size() + r.icap_client.size() + r.icap_mode.size();
  Writer w(out, 1024 + 6 * strings);
  w.lit("{\"time\":\"");
  w.time(r.time);
  w.lit("\",\"duration_ms\":");
  w.millis(r.duration);
  w.lit(",\"request_id\":");
  w.str(r.request_id);
  w.lit(",\"gateway\":");
  w.str(gateway);
  w.lit(",\"listener\":");
  w.str(r.listener);
  w.raw(r.guest ? std::string_view(",\"guest\":true") : ",\"guest\":false");
  w.lit(",\"client\":");
  w.str(r.client);
  if (!r.user.empty()) {
    w.lit(",\"user\":");
    w.str(r.user);
  }
  if (!r.groups.empty()) {
    w.lit(",\"groups\":");
    w.str(r.groups);
  }
  w.lit(",\"method\":");
  w.str(r.method);
  w.lit(",\"url\":");
  w.str(r.url);
  auto parts = split_url(r.url, r.method);
  w.lit(",\"scheme\":");
  w.str(parts.scheme);
  w.lit(",\"host\":");
  w.str(parts.host);
  w.lit(",\"path\":");
  w.str(parts.path);
  w.lit(",\"status\":");
  w.num(static_cast<std::uint64_t>(r.status < 0 ? 0 : r.status));
  w.lit(",\"bytes_in\":");
  w.num(r.bytes_in);
  w.lit(",\"bytes_out\":");
  w.num(r.bytes_out);
  w.lit(",\"upstream\":");
  w.str(r.upstream);
  w.lit(",\"content_type\":");
  w.str(r.content_type);
  w.lit(",\"result\":\"");
  w.raw(to_string(r.result));
  w.lit("\",\"reason\":");
  w.str(r.reason);
  if (!r.error.empty()) {
    w.lit(",\"error\":");
    w.str(r.error);
  }
  w.lit(",\"decision\":");
  w.str(r.decision);
  w.lit(",\"rule\":");
  w.str(r.rule);
  w.lit(",\"category\":");
  w.str(r.category);
  w.lit(",\"category_source\":");
  w.str(r.category_source);
  w.lit(",\"reputation\":");
  w.str(r.reputation);
  if (auto ev = security_event(r); ev != Event::none) {
    w.lit(",\"event\":\"");
    w.raw(to_string(ev));
    w.ch('"');
  }
  if (!r.scan.empty()) {
    w.lit(",\"scan\":");
    w.str(r.scan);
    if (!r.threat.empty()) {
      w.lit(",\"threat\":");
      w.str(r.threat);
    }
    w.lit(",\"sha256\":");
    w.str(r.sha256);
    w.lit(",\"file_type\":");
    w.str(r.file_type);
    if (!r.scan_engine.empty()) {
      w.lit(",\"scan_engine\":");
      w.str(r.scan_engine);
    }
    if (!r.file_name.empty()) {
      w.lit(",\"file_name\":");
      w.str(r.file_name);
    }
    w.lit(",\"scanned_size\":");
    w.num(r.scanned_size);
    w.raw(r.scan_cached ? std::string_view(",\"scan_cached\":true") : ",\"scan_cached\":false");
  }
  if (!r.icap_mode.empty()) {
    w.lit(",\"icap_client\":");
    w.str(r.icap_client);
    w.lit(",\"icap_mode\":");
    w.str(r.icap_mode);
    w.lit(",\"icap_status\":");
    w.num(static_cast<std::uint64_t>(r.icap_status < 0 ? 0 : r.icap_status));
  }
  w.ch('}');
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
