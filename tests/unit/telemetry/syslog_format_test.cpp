// telemetry: syslog messages (RFC 5424, CEF, JSON) and RFC 6587 octet-counting frames.
#include "telemetry/syslog_format.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "sample_record.h"

namespace pc::telemetry {
namespace {

using namespace std::chrono_literals;

AccessRecord sample() {
  AccessRecord r = testing::sample_record();
  r.decision = "allow";
  r.rule = "default";
  r.reputation = "untested";
  return r;
}

SyslogHeader header() {
  SyslogHeader h;
  h.facility = 16;
  h.hostname = "gw1";
  h.procid = "4242";
  h.version = "0.1.0";
  return h;
}

std::string message(const AccessRecord& r, SyslogFormat f, const SyslogHeader& h = header()) {
  std::string out;
  append_syslog(out, r, f, h);
  return out;
}

// ---- a small RFC 5424 reader for the assertions ----

struct Parsed {
  std::string pri, version, timestamp, hostname, app, procid, msgid;
  std::string sd_id;
  std::vector<std::pair<std::string, std::string>> params;  // unescaped
  std::string msg;
  bool ok = false;
};

Parsed parse5424(std::string_view m) {
  Parsed p;
  if (m.empty() || m[0] != '<') return p;
  auto gt = m.find('>');
  p.pri = std::string(m.substr(1, gt - 1));
  m.remove_prefix(gt + 1);
  auto token = [&](std::string& out) {
    auto sp = m.find(' ');
    if (sp == std::string_view::npos) return false;
    out = std::string(m.substr(0, sp));
    m.remove_prefix(sp + 1);
    return true;
  };
  if (!token(p.version) || !token(p.timestamp) || !token(p.hostname) || !token(p.app) ||
      !token(p.procid) || !token(p.msgid))
    return p;
  if (m.starts_with("- ")) {
    m.remove_prefix(2);
  } else {
    if (m.empty() || m[0] != '[') return p;
    m.remove_prefix(1);
    auto sp = m.find_first_of(" ]");
    p.sd_id = std::string(m.substr(0, sp));
    m.remove_prefix(sp);
    while (!m.empty() && m[0] == ' ') {
      m.remove_prefix(1);
      auto eq = m.find('=');
      std::string name(m.substr(0, eq));
      if (m.substr(eq, 2) != "=\"") return p;
      m.remove_prefix(eq + 2);
      std::string value;
      while (!m.empty() && m[0] != '"') {
        if (m[0] == '\\' && m.size() > 1 && (m[1] == '"' || m[1] == '\\' || m[1] == ']')) {
          value += m[1];
          m.remove_prefix(2);
        } else {
          if (m[0] == ']') return p;  // must have been escaped
          value += m[0];
          m.remove_prefix(1);
        }
      }
      if (m.empty()) return p;
      m.remove_prefix(1);
      p.params.emplace_back(name, value);
    }
    if (m.empty() || m[0] != ']') return p;
    m.remove_prefix(1);
    if (!m.empty()) {
      if (m[0] != ' ') return p;
      m.remove_prefix(1);
    }
  }
  p.msg = std::string(m);
  p.ok = true;
  return p;
}

std::string param(const Parsed& p, std::string_view name) {
  for (const auto& [n, v] : p.params)
    if (n == name) return v;
  return "<absent>";
}

// CEF: header fields (unescaped) and the extension as key -> value (unescaped).
struct Cef {
  std::vector<std::string> header;
  std::map<std::string, std::string> ext;
};

Cef parse_cef(std::string_view s) {
  Cef c;
  std::string field;
  std::size_t i = 0;
  while (i < s.size() && c.header.size() < 7) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      field += s[i + 1];
      i += 2;
    } else if (s[i] == '|') {
      c.header.push_back(field);
      field.clear();
      ++i;
    } else {
      field += s[i++];
    }
  }
  // Extension: key=value pairs; a value runs until the next " key=" (unescaped '=').
  std::string_view ext = s.substr(i);
  std::vector<std::pair<std::size_t, std::size_t>> keys;  // start of key, position of '='
  for (std::size_t k = 0; k < ext.size(); ++k) {
    if (ext[k] == '\\') {
      ++k;
      continue;
    }
    if (ext[k] == '=') {
      auto start = ext.rfind(' ', k);
      start = start == std::string_view::npos ? 0 : start + 1;
      keys.emplace_back(start, k);
    }
  }
  for (std::size_t n = 0; n < keys.size(); ++n) {
    std::string key(ext.substr(keys[n].first, keys[n].second - keys[n].first));
    std::size_t vend = n + 1 < keys.size() ? keys[n + 1].first - 1 : ext.size();
    std::string_view raw = ext.substr(keys[n].second + 1, vend - keys[n].second - 1);
    std::string v;
    for (std::size_t k = 0; k < raw.size(); ++k) {
      if (raw[k] == '\\' && k + 1 < raw.size()) {
        char e = raw[++k];
        v += e == 'n' ? '\n' : e == 'r' ? '\r' : e;
      } else {
        v += raw[k];
      }
    }
    c.ext[key] = v;
  }
  return c;
}

// ---- RFC 5424 ----

TEST(Rfc5424, HeaderFields) {
  auto p = parse5424(message(sample(), SyslogFormat::rfc5424));
  ASSERT_TRUE(p.ok) << message(sample(), SyslogFormat::rfc5424);
  EXPECT_EQ(p.pri, "134");  // local0 (16) * 8 + informational (6)
  EXPECT_EQ(p.version, "1");
  EXPECT_EQ(p.timestamp, "2024-01-02T03:04:05.678901Z");
  EXPECT_EQ(p.hostname, "gw1");
  EXPECT_EQ(p.app, "portcullis");
  EXPECT_EQ(p.procid, "4242");
  EXPECT_EQ(p.msgid, "access");
  EXPECT_EQ(p.sd_id, "portcullis@32473");
  EXPECT_EQ(p.msg, "allowed GET http://example.com/a?b=c 200");
}

TEST(Rfc5424, StructuredDataCarriesTheRecord) {
  auto r = sample();
  r.user = "alice";
  r.groups = "staff,admins";
  r.guest = true;
  r.icap_client = "192.0.2.1";
  r.icap_mode = "reqmod";
  r.icap_status = 204;
  auto p = parse5424(message(r, SyslogFormat::rfc5424));
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(param(p, "request_id"), "abcd1234-1");
  EXPECT_EQ(param(p, "listener"), "proxy");
  EXPECT_EQ(param(p, "guest"), "true");
  EXPECT_EQ(param(p, "client"), "192.0.2.9");
  EXPECT_EQ(param(p, "user"), "alice");
  EXPECT_EQ(param(p, "groups"), "staff,admins");
  EXPECT_EQ(param(p, "method"), "GET");
  EXPECT_EQ(param(p, "url"), "http://example.com/a?b=c");
  EXPECT_EQ(param(p, "scheme"), "http");
  EXPECT_EQ(param(p, "host"), "example.com");
  EXPECT_EQ(param(p, "path"), "/a?b=c");
  EXPECT_EQ(param(p, "status"), "200");
  EXPECT_EQ(param(p, "bytes_in"), "120");
  EXPECT_EQ(param(p, "bytes_out"), "4567");
  EXPECT_EQ(param(p, "duration_ms"), "12.345");
  EXPECT_EQ(param(p, "upstream"), "93.184.216.34:80");
  EXPECT_EQ(param(p, "content_type"), "text/html");
  EXPECT_EQ(param(p, "result"), "allowed");
  EXPECT_EQ(param(p, "decision"), "allow");
  EXPECT_EQ(param(p, "rule"), "default");
  EXPECT_EQ(param(p, "reputation"), "untested");
  EXPECT_EQ(param(p, "icap_client"), "192.0.2.1");
  EXPECT_EQ(param(p, "icap_mode"), "reqmod");
  EXPECT_EQ(param(p, "icap_status"), "204");
  // Empty values are left out, not sent as "".
  EXPECT_EQ(param(p, "reason"), "<absent>");
  EXPECT_EQ(param(p, "category"), "<absent>");
  EXPECT_EQ(param(p, "threat"), "<absent>");
}

TEST(Rfc5424, EscapesQuoteBackslashAndBracket) {
  auto r = sample();
  r.user = "a\"b\\c]d";
  r.reason = "blocked by rule \"x]y\\z\"";
  std::string m = message(r, SyslogFormat::rfc5424);
  EXPECT_NE(m.find("user=\"a\\\"b\\\\c\\]d\""), std::string::npos) << m;
  EXPECT_NE(m.find("reason=\"blocked by rule \\\"x\\]y\\\\z\\\"\""), std::string::npos) << m;
  auto p = parse5424(m);
  ASSERT_TRUE(p.ok) << m;
  EXPECT_EQ(param(p, "user"), "a\"b\\c]d");
  EXPECT_EQ(param(p, "reason"), "blocked by rule \"x]y\\z\"");
  // MSG is free text: nothing escaped there.
  EXPECT_TRUE(p.msg.ends_with(": blocked by rule \"x]y\\z\"")) << p.msg;
}

TEST(Rfc5424, ControlCharactersAndInvalidUtf8) {
  auto r = sample();
  r.user = std::string("tab\there\nnl\x01") + std::string(1, '\0') + "end";
  r.groups = "caf\xc3\xa9 \xe2\x82\xac";           // valid UTF-8: kept
  r.reason = "bad \xff\xfe \xc3 \xed\xa0\x80 ok";  // invalid, truncated, surrogate
  std::string m = message(r, SyslogFormat::rfc5424);
  auto p = parse5424(m);
  ASSERT_TRUE(p.ok) << m;
  EXPECT_EQ(param(p, "user"), "tab here nl  end");
  EXPECT_EQ(param(p, "groups"), "caf\xc3\xa9 \xe2\x82\xac");
  EXPECT_EQ(param(p, "reason"),
            "bad \xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd ok");
  EXPECT_EQ(m.find('\n'), std::string::npos);
  EXPECT_EQ(m.find('\0'), std::string::npos);
  EXPECT_EQ(m.find("\xef\xbb\xbf"), std::string::npos);  // no BOM anywhere
}

TEST(Rfc5424, NilValuesAndSeverities) {
  SyslogHeader h;  // no host name, no process ID
  h.facility = 1;
  auto r = sample();
  auto p = parse5424(message(r, SyslogFormat::rfc5424, h));
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.hostname, "-");
  EXPECT_EQ(p.procid, "-");
  EXPECT_EQ(p.pri, "14");  // user (1) * 8 + 6

  r.result = Result::denied;
  r.status = 403;
  p = parse5424(message(r, SyslogFormat::rfc5424, h));
  EXPECT_EQ(p.pri, "12");  // warning
  EXPECT_EQ(p.msgid, "block");
  r.threat = "Eicar";
  r.scan = "infected";
  p = parse5424(message(r, SyslogFormat::rfc5424, h));
  EXPECT_EQ(p.pri, "10");  // critical
  EXPECT_EQ(p.msgid, "threat");
  r = sample();
  r.scan = "error";
  p = parse5424(message(r, SyslogFormat::rfc5424, h));
  EXPECT_EQ(p.pri, "11");  // error
  EXPECT_EQ(p.msgid, "policy_error");
  r = sample();
  r.result = Result::error;
  r.status = 502;
  p = parse5424(message(r, SyslogFormat::rfc5424, h));
  EXPECT_EQ(p.pri, "13");  // notice
  EXPECT_EQ(p.msgid, "error");
}

TEST(Rfc5424, HeaderTokensArePrintableAscii) {
  SyslogHeader h = header();
  h.hostname = "gw 1\xc3\xa9";
  auto p = parse5424(message(sample(), SyslogFormat::rfc5424, h));
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.hostname, "gw_1__");
}

TEST(Rfc5424, LongValuesAreCutOnACharacterBoundary) {
  auto r = sample();
  r.url = "http://example.com/" + std::string(20000, 'a');
  r.reason = std::string(kMaxValue - 1, 'x') + "\xc3\xa9" + "tail";  // é straddles the limit
  auto p = parse5424(message(r, SyslogFormat::rfc5424));
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(param(p, "url").size(), kMaxUrlValue);
  EXPECT_EQ(param(p, "reason"), std::string(kMaxValue - 1, 'x'));
  EXPECT_LT(message(r, SyslogFormat::rfc5424).size(), 32u * 1024);
}

TEST(Rfc5424, ScanFields) {
  auto r = sample();
  r.result = Result::denied;
  r.status = 403;
  r.scan = "infected";
  r.threat = "Win.Test.EICAR_HDB-1";
  r.sha256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
  r.file_type = "text";
  r.scan_engine = "clamav";
  r.file_name = "eicar.com";
  r.scanned_size = 68;
  auto p = parse5424(message(r, SyslogFormat::rfc5424));
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(param(p, "scan"), "infected");
  EXPECT_EQ(param(p, "threat"), "Win.Test.EICAR_HDB-1");
  EXPECT_EQ(param(p, "sha256"), r.sha256);
  EXPECT_EQ(param(p, "scan_engine"), "clamav");
  EXPECT_EQ(param(p, "file_name"), "eicar.com");
  EXPECT_EQ(param(p, "scanned_size"), "68");
}

// ---- CEF ----

TEST(Cef, HeaderAndKeys) {
  auto r = sample();
  r.user = "alice";
  r.groups = "staff";
  r.category = "news";
  auto m = message(r, SyslogFormat::cef);
  auto p = parse5424(m);
  ASSERT_TRUE(p.ok) << m;
  EXPECT_TRUE(p.sd_id.empty());  // "-": no structured data
  ASSERT_TRUE(p.msg.starts_with("CEF:0|Portcullis|Portcullis|0.1.0|access|Access allowed|1|rt="))
      << p.msg;
  auto c = parse_cef(p.msg);
  ASSERT_EQ(c.header.size(), 7u);
  EXPECT_EQ(c.ext["rt"], "1704164645678");
  EXPECT_EQ(c.ext["src"], "192.0.2.9");
  EXPECT_EQ(c.ext["dst"], "93.184.216.34");
  EXPECT_EQ(c.ext["dpt"], "80");
  EXPECT_EQ(c.ext["dhost"], "example.com");
  EXPECT_EQ(c.ext["suser"], "alice");
  EXPECT_EQ(c.ext["request"], "http://example.com/a?b=c");
  EXPECT_EQ(c.ext["requestMethod"], "GET");
  EXPECT_EQ(c.ext["app"], "HTTP");
  EXPECT_EQ(c.ext["cat"], "news");
  EXPECT_EQ(c.ext["act"], "allow");
  EXPECT_EQ(c.ext["outcome"], "allowed");
  EXPECT_EQ(c.ext["in"], "120");
  EXPECT_EQ(c.ext["out"], "4567");
  EXPECT_EQ(c.ext["externalId"], "abcd1234-1");
  EXPECT_EQ(c.ext["dvchost"], "gw1");
  EXPECT_EQ(c.ext["deviceInboundInterface"], "proxy");
  EXPECT_EQ(c.ext["cs2"], "default");
  EXPECT_EQ(c.ext["cs2Label"], "rule");
  EXPECT_EQ(c.ext["cs3"], "staff");
  EXPECT_EQ(c.ext["cs3Label"], "userGroups");
  EXPECT_EQ(c.ext["cn1"], "200");
  EXPECT_EQ(c.ext["cn1Label"], "httpStatus");
  EXPECT_EQ(c.ext["cn2"], "12");
  EXPECT_EQ(c.ext.count("cs1"), 0u);  // no threat
  EXPECT_EQ(c.ext.count("fileHash"), 0u);
}

TEST(Cef, ThreatFields) {
  auto r = sample();
  r.result = Result::denied;
  r.status = 403;
  r.scan = "infected";
  r.threat = "Win.Test.EICAR_HDB-1";
  r.sha256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
  r.file_type = "text";
  r.scan_engine = "clamav";
  r.file_name = "eicar.com";
  r.scanned_size = 68;
  auto p = parse5424(message(r, SyslogFormat::cef));
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.msgid, "threat");
  auto c = parse_cef(p.msg);
  EXPECT_EQ(c.header[4], "threat");
  EXPECT_EQ(c.header[5], "Threat blocked");
  EXPECT_EQ(c.header[6], "8");
  EXPECT_EQ(c.ext["act"], "block");
  EXPECT_EQ(c.ext["outcome"], "denied");
  EXPECT_EQ(c.ext["cs1"], "Win.Test.EICAR_HDB-1");
  EXPECT_EQ(c.ext["cs1Label"], "threatName");
  EXPECT_EQ(c.ext["cs5"], "clamav");
  EXPECT_EQ(c.ext["fileHash"], r.sha256);
  EXPECT_EQ(c.ext["fname"], "eicar.com");
  EXPECT_EQ(c.ext["fsize"], "68");
  EXPECT_EQ(c.ext["fileType"], "text");
}

TEST(Cef, Escaping) {
  auto r = sample();
  r.user = "dom\\user=x";
  r.reason = "line1\nline2\rline3=|pipe";
  r.rule = "a|b";
  SyslogHeader h = header();
  h.version = "1|2\\3";
  auto p = parse5424(message(r, SyslogFormat::cef, h));
  ASSERT_TRUE(p.ok);
  EXPECT_NE(p.msg.find("CEF:0|Portcullis|Portcullis|1\\|2\\\\3|access|"), std::string::npos)
      << p.msg;
  EXPECT_NE(p.msg.find(" suser=dom\\\\user\\=x "), std::string::npos) << p.msg;
  EXPECT_NE(p.msg.find(" reason=line1\\nline2\\rline3\\=|pipe "), std::string::npos) << p.msg;
  EXPECT_NE(p.msg.find(" cs2=a|b "), std::string::npos) << p.msg;  // '|' is plain in values
  auto c = parse_cef(p.msg);
  EXPECT_EQ(c.header[3], "1|2\\3");
  EXPECT_EQ(c.ext["suser"], "dom\\user=x");
  EXPECT_EQ(c.ext["reason"], "line1\nline2\rline3=|pipe");
  EXPECT_EQ(c.ext["cs2"], "a|b");
}

TEST(Cef, HeaderLineBreaksBecomeSpaces) {
  std::string out;
  esc::cef_header(out, "a\nb\rc\\d|e");
  EXPECT_EQ(out, "a b c\\\\d\\|e");
}

TEST(Cef, AddressesOnlyWhenTheyAreAddresses) {
  auto r = sample();
  r.client = "not-an-ip";
  r.upstream = "[2001:db8::1]:8080";
  r.url = "example.com:443";
  r.method = "CONNECT";
  auto c = parse_cef(parse5424(message(r, SyslogFormat::cef)).msg);
  EXPECT_EQ(c.ext.count("src"), 0u);
  EXPECT_EQ(c.ext["dst"], "2001:db8::1");
  EXPECT_EQ(c.ext["dpt"], "8080");
  EXPECT_EQ(c.ext["app"], "HTTPS");
  EXPECT_EQ(c.ext["dhost"], "example.com");
}

// ---- JSON ----

TEST(SyslogJson, OneObjectAsValidUtf8) {
  auto r = sample();
  r.reason = "bad \xff byte";
  auto p = parse5424(message(r, SyslogFormat::json));
  ASSERT_TRUE(p.ok);
  EXPECT_TRUE(p.msg.starts_with("{\"time\":\"2024-01-02T03:04:05.678Z\"")) << p.msg;
  EXPECT_TRUE(p.msg.ends_with("}")) << p.msg;
  EXPECT_NE(p.msg.find("\"gateway\":\"gw1\""), std::string::npos);
  EXPECT_NE(p.msg.find("\"reason\":\"bad \xef\xbf\xbd byte\""), std::string::npos) << p.msg;
}

// ---- framing ----

TEST(OctetCounting, FrameAndParse) {
  std::string out;
  append_octet_frame(out, "<134>1 - - - - - - hello");
  append_octet_frame(out, "x");
  EXPECT_EQ(out, "24 <134>1 - - - - - - hello1 x");
  std::string_view msg;
  std::size_t n = 0;
  ASSERT_EQ(parse_octet_frame(out, 1000, msg, n), FrameStatus::complete);
  EXPECT_EQ(msg, "<134>1 - - - - - - hello");
  EXPECT_EQ(n, 27u);
  ASSERT_EQ(parse_octet_frame(std::string_view(out).substr(n), 1000, msg, n),
            FrameStatus::complete);
  EXPECT_EQ(msg, "x");
  EXPECT_EQ(n, 3u);
}

TEST(OctetCounting, IncompleteAndInvalid) {
  std::string_view msg;
  std::size_t n = 0;
  EXPECT_EQ(parse_octet_frame("", 100, msg, n), FrameStatus::incomplete);
  EXPECT_EQ(parse_octet_frame("12", 100, msg, n), FrameStatus::incomplete);
  EXPECT_EQ(parse_octet_frame("5 abc", 100, msg, n), FrameStatus::incomplete);
  EXPECT_EQ(parse_octet_frame("05 abcde", 100, msg, n), FrameStatus::invalid);  // leading zero
  EXPECT_EQ(parse_octet_frame("0 ", 100, msg, n), FrameStatus::invalid);
  EXPECT_EQ(parse_octet_frame(" 5 abcde", 100, msg, n), FrameStatus::invalid);
  EXPECT_EQ(parse_octet_frame("5xabcde", 100, msg, n), FrameStatus::invalid);
  EXPECT_EQ(parse_octet_frame("101 ", 100, msg, n), FrameStatus::invalid);  // above max_len
  EXPECT_EQ(parse_octet_frame("99999999999999999999999 ", 100, msg, n), FrameStatus::invalid);
  EXPECT_EQ(parse_octet_frame("<134>1 non-transparent\n", 100, msg, n), FrameStatus::invalid);
}

TEST(OctetCounting, LengthCountsOctetsNotCharacters) {
  std::string out;
  append_octet_frame(out, "\xe2\x82\xac");  // one character, three octets
  EXPECT_EQ(out, "3 \xe2\x82\xac");
}

}  // namespace
}  // namespace pc::telemetry
