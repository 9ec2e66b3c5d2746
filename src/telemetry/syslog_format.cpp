#include "telemetry/syslog_format.h"

#include <charconv>

#include "base/cidr.h"
#include "telemetry/format.h"

namespace pc::telemetry {
namespace {

using fmtx::decimal;
using fmtx::utf8_prefix;

// Length of the well-formed UTF-8 sequence (RFC 3629) starting at p, or 0.
std::size_t utf8_sequence(const unsigned char* p, const unsigned char* end) {
  auto cont = [&](std::size_t i, unsigned char lo = 0x80, unsigned char hi = 0xbf) {
    return p + i < end && p[i] >= lo && p[i] <= hi;
  };
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c == 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c == 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

// Appends s: printable ASCII through `special` when it returns true for the character,
// control characters through `control`, well-formed UTF-8 sequences as they are, any other
// byte as U+FFFD. Runs of ordinary characters are appended in one piece.
template <class Special, class Control>
void sanitize(std::string& out, std::string_view s, Special&& special, Control&& control) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const auto* run = p;
    while (p < end && *p >= 0x20 && *p < 0x7f && !special(static_cast<char>(*p))) ++p;
    out.append(reinterpret_cast<const char*>(run), static_cast<std::size_t>(p - run));
    if (p == end) break;
    unsigned char c = *p;
    if (c < 0x20 || c == 0x7f) {
      control(out, static_cast<char>(c));
      ++p;
    } else if (c < 0x80) {
      out += '\\';
      out += static_cast<char>(c);
      ++p;
    } else if (std::size_t n = utf8_sequence(p, end); n > 0) {
      out.append(reinterpret_cast<const char*>(p), n);
      p += n;
    } else {
      out.append("\xef\xbf\xbd", 3);
      ++p;
    }
  }
}

void space(std::string& out, char) {
  out += ' ';
}

// PRINTUSASCII (33-126) for header fields, at most n characters; "-" when empty.
void header_token(std::string& out, std::string_view s, std::size_t n) {
  if (s.empty()) {
    out += '-';
    return;
  }
  s = s.substr(0, n);
  for (char c : s) out += (c >= 33 && c <= 126) ? c : '_';
}

// upstream "addr:port", "[v6]:port" or a bare address: the address and the port.
void split_host_port(std::string_view hp, std::string_view& host, std::string_view& port) {
  host = hp;
  port = {};
  if (!hp.empty() && hp.front() == '[') {
    auto close = hp.find(']');
    if (close == std::string_view::npos) return;
    host = hp.substr(1, close - 1);
    if (close + 1 < hp.size() && hp[close + 1] == ':') port = hp.substr(close + 2);
    return;
  }
  auto colon = hp.find(':');
  if (colon != std::string_view::npos && hp.find(':', colon + 1) == std::string_view::npos) {
    host = hp.substr(0, colon);
    port = hp.substr(colon + 1);
  }
}

bool is_ip(std::string_view s) {
  return !s.empty() && base::parse_ip(s).has_value();
}

// ---- RFC 5424 structured data ----

void sd_param(std::string& out, std::string_view name, std::string_view value,
              std::size_t limit = kMaxValue) {
  if (value.empty()) return;
  out += ' ';
  out.append(name);
  out.append("=\"", 2);
  esc::sd_value(out, utf8_prefix(value, limit));
  out += '"';
}

void sd_num(std::string& out, std::string_view name, std::uint64_t v) {
  out += ' ';
  out.append(name);
  out.append("=\"", 2);
  decimal(out, v);
  out += '"';
}

// ---- CEF ----

void cef_ext(std::string& out, std::string_view key, std::string_view value,
             std::size_t limit = kMaxValue) {
  if (value.empty()) return;
  out += ' ';
  out.append(key);
  out += '=';
  esc::cef_value(out, utf8_prefix(value, limit));
}

void cef_num(std::string& out, std::string_view key, std::uint64_t v) {
  out += ' ';
  out.append(key);
  out += '=';
  decimal(out, v);
}

void cef_labeled(std::string& out, std::string_view key, std::string_view label,
                 std::string_view value) {
  if (value.empty()) return;
  cef_ext(out, key, value);
  out += ' ';
  out.append(key);
  out.append("Label=", 6);
  out.append(label);
}

std::string_view cef_name(const AccessRecord& r) {
  switch (security_event(r)) {
    case Event::threat:
      return r.result == Result::denied ? "Threat blocked" : "Threat detected";
    case Event::block:
      return "Access blocked";
    case Event::policy_error:
      return "Policy error";
    case Event::none:
      break;
  }
  return r.result == Result::error ? "Access error" : "Access allowed";
}

std::string_view cef_act(const AccessRecord& r) {
  switch (r.result) {
    case Result::denied:
      return r.decision == "warn" && r.threat.empty() ? "warn" : "block";
    case Result::error:
      return "error";
    case Result::allowed:
      break;
  }
  return "allow";
}

std::string_view upper_scheme(std::string_view s, char (&buf)[16]) {
  if (s.size() > sizeof buf) return s;
  for (std::size_t i = 0; i < s.size(); ++i)
    buf[i] = (s[i] >= 'a' && s[i] <= 'z') ? static_cast<char>(s[i] - 32) : s[i];
  return {buf, s.size()};
}

}  // namespace

namespace esc {

void sd_value(std::string& out, std::string_view s) {
  sanitize(
      out, s, [](char c) { return c == '"' || c == '\\' || c == ']'; }, space);
}

void cef_header(std::string& out, std::string_view s) {
  sanitize(
      out, s, [](char c) { return c == '|' || c == '\\'; }, space);
}

void cef_value(std::string& out, std::string_view s) {
  sanitize(
      out, s, [](char c) { return c == '=' || c == '\\'; },
      [](std::string& o, char c) {
        if (c == '\n')
          o.append("\\n", 2);
        else if (c == '\r')
          o.append("\\r", 2);
        else
          o += ' ';
      });
}

void text(std::string& out, std::string_view s) {
  sanitize(
      out, s, [](char) { return false; }, space);
}

}  // namespace esc

int syslog_severity(const AccessRecord& r) {
  switch (security_event(r)) {
    case Event::threat:
      return 2;  // critical
    case Event::policy_error:
      return 3;  // error
    case Event::block:
      return 4;  // warning
    case Event::none:
      break;
  }
  return r.result == Result::error ? 5 : 6;  // notice : informational
}

int cef_severity(const AccessRecord& r) {
  switch (security_event(r)) {
    case Event::threat:
      return 8;
    case Event::policy_error:
      return 6;
    case Event::block:
      return 5;
    case Event::none:
      break;
  }
  return r.result == Result::error ? 3 : 1;
}

std::string_view message_id(const AccessRecord& r) {
  auto ev = security_event(r);
  if (ev != Event::none) return to_string(ev);
  return r.result == Result::error ? "error" : "access";
}

void append_structured_data(std::string& out, const AccessRecord& r) {
  out += '[';
  out.append(kSdId);
  sd_param(out, "request_id", r.request_id);
  sd_param(out, "listener", r.listener);
  if (r.guest) out.append(" guest=\"true\"");
  sd_param(out, "client", r.client);
  sd_param(out, "user", r.user);
  sd_param(out, "groups", r.groups);
  sd_param(out, "method", r.method);
  sd_param(out, "url", r.url, kMaxUrlValue);
  auto parts = split_url(r.url, r.method);
  sd_param(out, "scheme", parts.scheme);
  sd_param(out, "host", parts.host);
  sd_param(out, "path", parts.path);
  sd_num(out, "status", static_cast<std::uint64_t>(r.status < 0 ? 0 : r.status));
  sd_num(out, "bytes_in", r.bytes_in);
  sd_num(out, "bytes_out", r.bytes_out);
  out.append(" duration_ms=\"");
  fmtx::millis(out, r.duration);
  out += '"';
  sd_param(out, "upstream", r.upstream);
  sd_param(out, "content_type", r.content_type);
  sd_param(out, "result", to_string(r.result));
  sd_param(out, "reason", r.reason);
  sd_param(out, "error", r.error);
  sd_param(out, "decision", r.decision);
  sd_param(out, "rule", r.rule);
  sd_param(out, "category", r.category);
  sd_param(out, "category_source", r.category_source);
  sd_param(out, "reputation", r.reputation);
  if (!r.scan.empty()) {
    sd_param(out, "scan", r.scan);
    sd_param(out, "threat", r.threat);
    sd_param(out, "sha256", r.sha256);
    sd_param(out, "file_type", r.file_type);
    sd_param(out, "scan_engine", r.scan_engine);
    sd_param(out, "file_name", r.file_name);
    sd_num(out, "scanned_size", r.scanned_size);
  }
  if (!r.icap_mode.empty()) {
    sd_param(out, "icap_client", r.icap_client);
    sd_param(out, "icap_mode", r.icap_mode);
    sd_num(out, "icap_status", static_cast<std::uint64_t>(r.icap_status < 0 ? 0 : r.icap_status));
  }
  out += ']';
}

void append_cef(std::string& out, const AccessRecord& r, const SyslogHeader& h) {
  out.append("CEF:0|Portcullis|Portcullis|");
  esc::cef_header(out, h.version);
  out += '|';
  esc::cef_header(out, message_id(r));
  out += '|';
  esc::cef_header(out, cef_name(r));
  out += '|';
  decimal(out, static_cast<std::uint64_t>(cef_severity(r)));
  out += '|';
  out.append("rt=", 3);  // the first extension: no space before it
  decimal(out, static_cast<std::uint64_t>(
                   std::chrono::duration_cast<std::chrono::milliseconds>(r.time.time_since_epoch())
                       .count()));
  if (is_ip(r.client)) cef_ext(out, "src", r.client);
  std::string_view up_host, up_port;
  split_host_port(r.upstream, up_host, up_port);
  if (is_ip(up_host)) cef_ext(out, "dst", up_host);
  if (!up_port.empty() && up_port.find_first_not_of("0123456789") == std::string_view::npos)
    cef_ext(out, "dpt", up_port);
  auto parts = split_url(r.url, r.method);
  cef_ext(out, "dhost", parts.host);
  cef_ext(out, "suser", r.user);
  cef_ext(out, "request", r.url, kMaxUrlValue);
  cef_ext(out, "requestMethod", r.method);
  char scheme_buf[16];
  cef_ext(out, "app", upper_scheme(parts.scheme, scheme_buf));
  cef_ext(out, "cat", r.category);
  cef_ext(out, "act", cef_act(r));
  cef_ext(out, "outcome", to_string(r.result));
  cef_ext(out, "reason", r.reason);
  cef_num(out, "in", r.bytes_in);
  cef_num(out, "out", r.bytes_out);
  cef_ext(out, "externalId", r.request_id);
  cef_ext(out, "dvchost", h.hostname);
  cef_ext(out, "deviceInboundInterface", r.listener);
  cef_labeled(out, "cs1", "threatName", r.threat);
  cef_labeled(out, "cs2", "rule", r.rule);
  cef_labeled(out, "cs3", "userGroups", r.groups);
  cef_labeled(out, "cs4", "reputation", r.reputation);
  cef_labeled(out, "cs5", "scanEngine", r.scan_engine);
  cef_labeled(out, "cs6", "decision", r.decision);
  cef_num(out, "cn1", static_cast<std::uint64_t>(r.status < 0 ? 0 : r.status));
  out.append(" cn1Label=httpStatus");
  cef_num(out, "cn2",
          static_cast<std::uint64_t>(
              std::chrono::duration_cast<std::chrono::milliseconds>(r.duration).count()));
  out.append(" cn2Label=durationMs");
  if (r.guest) out.append(" cn3=1 cn3Label=guest");
  cef_labeled(out, "flexString1", "icapClient", r.icap_client);
  cef_labeled(out, "flexString2", "contentType", r.content_type);
  cef_ext(out, "fileHash", r.sha256);
  cef_ext(out, "fname", r.file_name);
  cef_ext(out, "fileType", r.file_type);
  if (!r.scan.empty()) cef_num(out, "fsize", r.scanned_size);
  if (!r.error.empty()) cef_ext(out, "msg", r.error);
}

void append_syslog(std::string& out, const AccessRecord& r, SyslogFormat f, const SyslogHeader& h) {
  out += '<';
  decimal(out, static_cast<std::uint64_t>(h.facility * 8 + syslog_severity(r)));
  out.append(">1 ", 3);
  fmtx::iso_time(out, r.time, /*micros=*/true);
  out += ' ';
  header_token(out, h.hostname, 255);
  out += ' ';
  header_token(out, h.app_name, 48);
  out += ' ';
  header_token(out, h.procid, 128);
  out += ' ';
  header_token(out, message_id(r), 32);
  out += ' ';
  switch (f) {
    case SyslogFormat::rfc5424: {
      append_structured_data(out, r);
      out += ' ';
      // A one-line summary for people reading the raw message.
      esc::text(out, to_string(r.result));
      out += ' ';
      esc::text(out, r.method);
      out += ' ';
      esc::text(out, utf8_prefix(r.url, 512));
      out += ' ';
      fmtx::decimal_signed(out, r.status);
      if (!r.reason.empty()) {
        out.append(": ", 2);
        esc::text(out, utf8_prefix(r.reason, 512));
      }
      break;
    }
    case SyslogFormat::cef:
      out.append("- ", 2);
      append_cef(out, r, h);
      break;
    case SyslogFormat::json: {
      out.append("- ", 2);
      // The JSON object, made valid UTF-8 (the file format passes bytes through as they came).
      thread_local std::string obj;
      obj.clear();
      append_json(obj, r, h.hostname);
      esc::text(out, obj);  // JSON escaped every control character already
      break;
    }
  }
}

void append_octet_frame(std::string& out, std::string_view msg) {
  decimal(out, msg.size());
  out += ' ';
  out.append(msg);
}

FrameStatus parse_octet_frame(std::string_view in, std::size_t max_len, std::string_view& msg,
                              std::size_t& frame_size) {
  std::size_t i = 0;
  std::uint64_t len = 0;
  while (i < in.size() && in[i] >= '0' && in[i] <= '9') {
    if (i == 0 && in[i] == '0') return FrameStatus::invalid;  // NONZERO-DIGIT *DIGIT
    len = len * 10 + static_cast<std::uint64_t>(in[i] - '0');
    if (len > max_len) return FrameStatus::invalid;
    ++i;
  }
  if (i == in.size()) return FrameStatus::incomplete;
  if (i == 0 || in[i] != ' ') return FrameStatus::invalid;
  if (len == 0) return FrameStatus::invalid;
  if (in.size() - i - 1 < len) return FrameStatus::incomplete;
  msg = in.substr(i + 1, len);
  frame_size = i + 1 + len;
  return FrameStatus::complete;
}

}  // namespace pc::telemetry
