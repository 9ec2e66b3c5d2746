// Request-target forms, authorities, request smuggling defences, response framing.
#include <gtest/gtest.h>

#include <string>

#include "test_util.h"
#include "wire/http.h"

namespace pc::wire {
namespace {

// ---- request-target ----

struct TargetCase {
  const char* name;
  const char* method;
  const char* target;
  Error error;
  Target::Form form;
  const char* scheme;
  const char* host;
  std::uint16_t port;
  bool port_explicit;
  const char* path;
};

void PrintTo(const TargetCase& c, std::ostream* os) {
  *os << c.name;
}

class TargetTable : public testing::TestWithParam<TargetCase> {};

TEST_P(TargetTable, Splits) {
  const TargetCase& c = GetParam();
  Target t;
  Error e = parse_target(c.method, c.target, t);
  EXPECT_EQ(e, c.error) << describe(e);
  if (e != Error::none) return;
  EXPECT_EQ(t.form, c.form);
  EXPECT_EQ(t.scheme, c.scheme);
  EXPECT_EQ(t.host, c.host);
  EXPECT_EQ(t.port, c.port);
  EXPECT_EQ(t.port_explicit, c.port_explicit);
  EXPECT_EQ(t.path, c.path);
}

using F = Target::Form;
constexpr Error kOk = Error::none;
constexpr Error kBad = Error::bad_target;

INSTANTIATE_TEST_SUITE_P(
    Wire, TargetTable,
    testing::Values(
        TargetCase{"origin", "GET", "/a/b?c=d", kOk, F::origin, "", "", 0, false, "/a/b?c=d"},
        TargetCase{"origin_root", "GET", "/", kOk, F::origin, "", "", 0, false, "/"},
        TargetCase{"absolute", "GET", "http://a.example/x?y", kOk, F::absolute, "http", "a.example",
                   80, false, "/x?y"},
        TargetCase{"absolute_no_path", "GET", "http://a.example", kOk, F::absolute, "http",
                   "a.example", 80, false, "/"},
        TargetCase{"absolute_port", "POST", "http://a.example:8080/", kOk, F::absolute, "http",
                   "a.example", 8080, true, "/"},
        TargetCase{"absolute_https", "GET", "https://a.example/", kOk, F::absolute, "https",
                   "a.example", 443, false, "/"},
        TargetCase{"absolute_ipv6", "GET", "http://[2001:db8::1]:81/", kOk, F::absolute, "http",
                   "2001:db8::1", 81, true, "/"},
        TargetCase{"absolute_ipv4", "GET", "http://192.0.2.1/", kOk, F::absolute, "http",
                   "192.0.2.1", 80, false, "/"},
        TargetCase{"authority", "CONNECT", "a.example:443", kOk, F::authority, "", "a.example", 443,
                   true, ""},
        TargetCase{"authority_ipv6", "CONNECT", "[::1]:8443", kOk, F::authority, "", "::1", 8443,
                   true, ""},
        TargetCase{"asterisk", "OPTIONS", "*", kOk, F::asterisk, "", "", 0, false, ""},
        TargetCase{"empty", "GET", "", kBad}, TargetCase{"asterisk_not_options", "GET", "*", kBad},
        TargetCase{"connect_no_port", "CONNECT", "a.example", kBad},
        TargetCase{"connect_origin", "CONNECT", "/x", kBad},
        TargetCase{"connect_port_zero", "CONNECT", "a.example:0", kBad},
        TargetCase{"connect_port_big", "CONNECT", "a.example:65536", kBad},
        TargetCase{"authority_for_get", "GET", "a.example:80", kBad},
        TargetCase{"userinfo", "GET", "http://u:p@a.example/", kBad},
        TargetCase{"fragment", "GET", "/a#b", kBad},
        TargetCase{"fragment_absolute", "GET", "http://a.example/#x", kBad},
        TargetCase{"unknown_scheme", "GET", "ftp://a.example/", kBad},
        TargetCase{"upper_scheme", "GET", "HTTP://a.example/", kBad},
        TargetCase{"empty_host", "GET", "http:///x", kBad},
        TargetCase{"empty_port", "GET", "http://a.example:/x", kBad},
        TargetCase{"query_without_path", "GET", "http://a.example?x", kBad},
        TargetCase{"space", "GET", "/a b", kBad}, TargetCase{"high_bit", "GET", "/\xc3\xa9", kBad},
        TargetCase{"pct_host", "GET", "http://a%2eexample/", kBad},
        TargetCase{"octal_ip", "GET", "http://0177.0.0.1/", kBad},
        TargetCase{"hex_ip", "GET", "http://0x7f000001/", kBad},
        TargetCase{"short_ip", "GET", "http://127.1/", kBad},
        TargetCase{"ipv6_unbracketed", "GET", "http://::1/", kBad},
        TargetCase{"ipv6_zone", "GET", "http://[fe80::1%25eth0]/", kBad},
        TargetCase{"ipv6_bad", "GET", "http://[1:2:3:4:5:6:7:8:9]/", kBad}));

TEST(Authority, HostForms) {
  std::string_view host;
  std::uint16_t port = 0;
  bool expl = true;
  EXPECT_EQ(parse_authority("A.Example", 80, host, port, expl), Error::none);
  EXPECT_EQ(host, "A.Example");
  EXPECT_EQ(port, 80);
  EXPECT_FALSE(expl);
  EXPECT_EQ(parse_authority("a.example:08080", 80, host, port, expl), Error::none);
  EXPECT_EQ(port, 8080);
  EXPECT_TRUE(expl);
  EXPECT_EQ(parse_authority("[::ffff:192.0.2.1]", 443, host, port, expl), Error::none);
  EXPECT_EQ(host, "::ffff:192.0.2.1");
  EXPECT_EQ(port, 443);
  for (const char* bad : {"", ":80", "a b", "a,b", "a.example:x", "a.example:80:80", "[::1",
                          "[::1]x", "[]", "a.example:123456", "256.0.0.1", "1.2.3.4.5", "01.2.3.4",
                          "a_b:0", "[1::2::3]", "[:1]", "[1:]"}) {
    EXPECT_EQ(parse_authority(bad, 80, host, port, expl), Error::bad_host) << bad;
  }
  for (const char* good : {"a-b.example", "a_b.example", "localhost", "[::]", "[1:2:3:4:5:6:7:8]",
                           "[1:2:3:4:5:6:7::]", "[::1:2:3:4:5:6:7]", "1.2.3.4", "a.example."}) {
    EXPECT_EQ(parse_authority(good, 80, host, port, expl), Error::none) << good;
  }
}

// ---- analyze_request: one row per defence ----

struct SemanticCase {
  const char* name;
  std::string input;
  Error error;
};

void PrintTo(const SemanticCase& c, std::ostream* os) {
  *os << c.name;
}

class RequestSemantics : public testing::TestWithParam<SemanticCase> {};

TEST_P(RequestSemantics, Analyzes) {
  const SemanticCase& c = GetParam();
  const Error e = test::analyze(c.input);
  EXPECT_EQ(e, c.error) << describe(e);
}

std::string req(const std::string& fields, const std::string& line = "POST / HTTP/1.1") {
  return line + "\r\n" + fields + "\r\n";
}

const std::string H = "Host: a.example\r\n";

INSTANTIATE_TEST_SUITE_P(
    Wire, RequestSemantics,
    testing::Values(
        SemanticCase{"valid_cl", req(H + "Content-Length: 5\r\n"), Error::none},
        SemanticCase{"valid_te", req(H + "Transfer-Encoding: chunked\r\n"), Error::none},
        SemanticCase{"valid_te_case", req(H + "transfer-encoding: Chunked\r\n"), Error::none},
        SemanticCase{"valid_http10_no_host", req("", "GET / HTTP/1.0"), Error::none},
        SemanticCase{"valid_absolute_host_port_default",
                     req("Host: A.example:80\r\n", "GET http://a.example/x HTTP/1.1"), Error::none},
        SemanticCase{"valid_absolute_https_default",
                     req("Host: a.example:443\r\n", "GET https://a.example/x HTTP/1.1"),
                     Error::none},
        SemanticCase{"valid_absolute_explicit",
                     req("Host: a.example:8080\r\n", "GET http://a.example:8080/ HTTP/1.1"),
                     Error::none},
        SemanticCase{"valid_absolute_ipv6",
                     req("Host: [2001:DB8::1]\r\n", "GET http://[2001:db8::1]/ HTTP/1.1"),
                     Error::none},
        SemanticCase{"valid_connect",
                     req("Host: a.example:443\r\n", "CONNECT a.example:443 HTTP/1.1"), Error::none},
        SemanticCase{"cl_and_te", req(H + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
                     Error::cl_and_te},
        SemanticCase{"te_and_cl", req(H + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
                     Error::cl_and_te},
        SemanticCase{"cl_and_empty_te", req(H + "Content-Length: 5\r\nTransfer-Encoding:\r\n"),
                     Error::cl_and_te},
        SemanticCase{"duplicate_cl_fields_same",
                     req(H + "Content-Length: 5\r\nContent-Length: 5\r\n"),
                     Error::duplicate_content_length},
        SemanticCase{"duplicate_cl_fields_differ",
                     req(H + "Content-Length: 5\r\ncontent-length: 6\r\n"),
                     Error::duplicate_content_length},
        SemanticCase{"duplicate_cl_list", req(H + "Content-Length: 5, 5\r\n"),
                     Error::duplicate_content_length},
        SemanticCase{"duplicate_cl_list_trailing", req(H + "Content-Length: 5,\r\n"),
                     Error::duplicate_content_length},
        SemanticCase{"bad_cl_sign", req(H + "Content-Length: +5\r\n"), Error::bad_content_length},
        SemanticCase{"bad_cl_negative", req(H + "Content-Length: -1\r\n"),
                     Error::bad_content_length},
        SemanticCase{"bad_cl_empty", req(H + "Content-Length:\r\n"), Error::bad_content_length},
        SemanticCase{"bad_cl_space_inside", req(H + "Content-Length: 1 2\r\n"),
                     Error::bad_content_length},
        SemanticCase{"bad_cl_hex", req(H + "Content-Length: 0x10\r\n"), Error::bad_content_length},
        SemanticCase{"bad_cl_overflow", req(H + "Content-Length: 18446744073709551616\r\n"),
                     Error::bad_content_length},
        SemanticCase{"bad_cl_too_large", req(H + "Content-Length: 9223372036854775808\r\n"),
                     Error::bad_content_length},
        SemanticCase{"te_not_chunked_last", req(H + "Transfer-Encoding: chunked, gzip\r\n"),
                     Error::te_not_chunked_last},
        SemanticCase{"te_identity", req(H + "Transfer-Encoding: identity\r\n"),
                     Error::te_not_chunked_last},
        SemanticCase{"te_gzip_alone", req(H + "Transfer-Encoding: gzip\r\n"),
                     Error::te_not_chunked_last},
        SemanticCase{"te_only_commas", req(H + "Transfer-Encoding: , ,\r\n"),
                     Error::te_not_chunked_last},
        SemanticCase{"te_chunked_lookalike", req(H + "Transfer-Encoding: xchunked\r\n"),
                     Error::te_not_chunked_last},
        SemanticCase{"te_chunked_param", req(H + "Transfer-Encoding: chunked;q=1\r\n"),
                     Error::te_not_chunked_last},
        SemanticCase{"te_empty", req(H + "Transfer-Encoding:\r\n"), Error::te_not_chunked_last},
        SemanticCase{"te_split_fields_last_not_chunked",
                     req(H + "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"),
                     Error::te_not_chunked_last},
        SemanticCase{"unsupported_te_gzip", req(H + "Transfer-Encoding: gzip, chunked\r\n"),
                     Error::unsupported_te},
        SemanticCase{"te_double_chunked", req(H + "Transfer-Encoding: chunked, chunked\r\n"),
                     Error::te_not_chunked_last},
        SemanticCase{"te_chunked_then_gzip_fields",
                     req(H + "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip, chunked\r\n"),
                     Error::te_not_chunked_last},
        SemanticCase{"unsupported_te_split_fields",
                     req(H + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"),
                     Error::unsupported_te},
        SemanticCase{"te_in_http10", req(H + "Transfer-Encoding: chunked\r\n", "POST / HTTP/1.0"),
                     Error::te_in_http10},
        SemanticCase{"missing_host", req("Content-Length: 0\r\n"), Error::missing_host},
        SemanticCase{"missing_host_absolute", req("", "GET http://a.example/ HTTP/1.1"),
                     Error::missing_host},
        SemanticCase{"duplicate_host", req(H + H), Error::duplicate_host},
        SemanticCase{"duplicate_host_differ", req(H + "host: b.example\r\n"),
                     Error::duplicate_host},
        SemanticCase{"bad_host_empty", req("Host:\r\n"), Error::bad_host},
        SemanticCase{"bad_host_list", req("Host: a.example, b.example\r\n"), Error::bad_host},
        SemanticCase{"bad_host_userinfo", req("Host: u@a.example\r\n"), Error::bad_host},
        SemanticCase{"bad_host_path", req("Host: a.example/x\r\n"), Error::bad_host},
        SemanticCase{"bad_host_http10", req("Host: a b\r\n", "GET / HTTP/1.0"), Error::bad_host},
        SemanticCase{"host_mismatch_name",
                     req("Host: b.example\r\n", "GET http://a.example/ HTTP/1.1"),
                     Error::host_mismatch},
        SemanticCase{"host_mismatch_port",
                     req("Host: a.example:8080\r\n", "GET http://a.example/ HTTP/1.1"),
                     Error::host_mismatch},
        SemanticCase{"host_mismatch_https_port",
                     req("Host: a.example:80\r\n", "GET https://a.example/ HTTP/1.1"),
                     Error::host_mismatch},
        SemanticCase{"host_mismatch_http10",
                     req("Host: b.example\r\n", "GET http://a.example/ HTTP/1.0"),
                     Error::host_mismatch}));

TEST(RequestSemantics, Info) {
  MessageInfo info;
  RequestHead head;
  ASSERT_EQ(test::analyze(req(H + "Content-Length: 42\r\nConnection: close, X-Foo\r\n"
                                  "Connection: Upgrade\r\nUpgrade: websocket\r\n"
                                  "Expect: 100-Continue\r\n"),
                          &info, &head),
            Error::none);
  EXPECT_EQ(info.body, BodyKind::length);
  EXPECT_EQ(info.content_length, 42u);
  EXPECT_FALSE(info.keep_alive);
  EXPECT_TRUE(info.expect_continue);
  EXPECT_TRUE(info.upgrade);
  ASSERT_EQ(info.connection_options.size(), 3u);
  EXPECT_EQ(info.connection_options[0], "close");
  EXPECT_EQ(info.connection_options[1], "X-Foo");
  EXPECT_EQ(info.connection_options[2], "Upgrade");

  ASSERT_EQ(test::analyze(req(H, "GET / HTTP/1.1"), &info), Error::none);
  EXPECT_EQ(info.body, BodyKind::none);
  EXPECT_TRUE(info.keep_alive);
  EXPECT_FALSE(info.expect_continue);
  EXPECT_FALSE(info.upgrade);
  EXPECT_TRUE(info.connection_options.empty());

  ASSERT_EQ(test::analyze(req(H + "Transfer-Encoding: chunked\r\n"), &info), Error::none);
  EXPECT_EQ(info.body, BodyKind::chunked);

  ASSERT_EQ(test::analyze(req("", "GET / HTTP/1.0"), &info), Error::none);
  EXPECT_FALSE(info.keep_alive);
  ASSERT_EQ(test::analyze(req("Connection: Keep-Alive\r\n", "GET / HTTP/1.0"), &info), Error::none);
  EXPECT_TRUE(info.keep_alive);
  // Expect in HTTP/1.0 is ignored (RFC 9110 10.1.1); Upgrade without Connection is not one.
  ASSERT_EQ(test::analyze(req("Expect: 100-continue\r\nUpgrade: h2c\r\n", "GET / HTTP/1.0"), &info),
            Error::none);
  EXPECT_FALSE(info.expect_continue);
  EXPECT_FALSE(info.upgrade);
}

// Which requests are passed on as WebSocket handshakes (RFC 6455 4.1, RFC 9110 7.8).
TEST(RequestSemantics, WebSocketUpgrade) {
  auto websocket = [](const std::string& fields, const std::string& line = "GET / HTTP/1.1") {
    const std::string text = req(H + fields, line);  // head's views point into it
    RequestHead head;
    MessageInfo info;
    EXPECT_EQ(test::analyze(text, &info, &head), Error::none) << fields;
    return websocket_upgrade(head, info);
  };
  EXPECT_TRUE(websocket("Connection: Upgrade\r\nUpgrade: websocket\r\n"));
  EXPECT_TRUE(websocket("Connection: keep-alive, upgrade\r\nUpgrade: h2c, WebSocket/13\r\n"));
  EXPECT_TRUE(websocket("Connection: Upgrade\r\nUpgrade: h2c\r\nUpgrade: websocket\r\n"));
  EXPECT_TRUE(websocket("Connection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n"));
  // Not asked: no "upgrade" in Connection, no websocket in Upgrade, or no Upgrade at all.
  EXPECT_FALSE(websocket("Upgrade: websocket\r\n"));
  EXPECT_FALSE(websocket("Connection: Upgrade\r\nUpgrade: h2c\r\n"));
  EXPECT_FALSE(websocket("Connection: Upgrade\r\nUpgrade: websockets\r\n"));
  EXPECT_FALSE(websocket("Connection: Upgrade\r\n"));
  // Only GET over HTTP/1.1 without a body.
  EXPECT_FALSE(websocket("Connection: Upgrade\r\nUpgrade: websocket\r\n", "POST / HTTP/1.1"));
  EXPECT_FALSE(websocket("Connection: Upgrade\r\nUpgrade: websocket\r\n", "GET / HTTP/1.0"));
  EXPECT_FALSE(websocket("Connection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 1\r\n"));
  EXPECT_FALSE(
      websocket("Connection: Upgrade\r\nUpgrade: websocket\r\nTransfer-Encoding: chunked\r\n"));
}

TEST(ResponseSemantics, WebSocketAccepted) {
  auto accepted = [](const std::string& text) {
    ResponseHead head;
    EXPECT_EQ(parse_response_head(text, Limits{}, head).status, Status::complete) << text;
    MessageInfo info;
    EXPECT_EQ(analyze_response(head, "GET", info), Error::none) << text;
    return websocket_accepted(head, info);
  };
  EXPECT_TRUE(
      accepted("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
               "Upgrade: WebSocket\r\n\r\n"));
  EXPECT_FALSE(accepted("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"));
  EXPECT_FALSE(
      accepted("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
               "Upgrade: h2c\r\n\r\n"));
  EXPECT_FALSE(
      accepted("HTTP/1.1 200 OK\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               "Content-Length: 0\r\n\r\n"));
}

TEST(HopByHop, Names) {
  for (const char* n :
       {"Connection", "proxy-connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding",
        "UPGRADE", "Proxy-Authorization", "Proxy-Authenticate"})
    EXPECT_TRUE(is_hop_by_hop(n)) << n;
  for (const char* n : {"Host", "Content-Length", "Trailers", "T", "", "Proxy-Authorizatio"})
    EXPECT_FALSE(is_hop_by_hop(n)) << n;
  EXPECT_TRUE(iequals("Content-LENGTH", "content-length"));
  EXPECT_FALSE(iequals("a", "ab"));
  EXPECT_FALSE(iequals("@", "`"));  // differ only in bit 0x20 but are not letters
  EXPECT_FALSE(iequals("[", "{"));
}

// ---- analyze_response ----

struct FramingCase {
  const char* name;
  std::string input;
  const char* method;
  Error error;
  BodyKind body;
  std::uint64_t length;
  bool keep_alive;
};

void PrintTo(const FramingCase& c, std::ostream* os) {
  *os << c.name;
}

class ResponseFraming : public testing::TestWithParam<FramingCase> {};

TEST_P(ResponseFraming, Frames) {
  const FramingCase& c = GetParam();
  ResponseHead head;
  ParseResult r = parse_response_head(c.input, Limits{}, head);
  ASSERT_EQ(r.status, Status::complete) << describe(r.error);
  MessageInfo info;
  Error e = analyze_response(head, c.method, info);
  EXPECT_EQ(e, c.error) << describe(e);
  if (e != Error::none) return;
  EXPECT_EQ(info.body, c.body);
  if (c.body == BodyKind::length) {
    EXPECT_EQ(info.content_length, c.length);
  }
  EXPECT_EQ(info.keep_alive, c.keep_alive);
}

std::string resp(const std::string& line, const std::string& fields) {
  return line + "\r\n" + fields + "\r\n";
}

using B = BodyKind;

INSTANTIATE_TEST_SUITE_P(
    Wire, ResponseFraming,
    testing::Values(
        FramingCase{"length", resp("HTTP/1.1 200 OK", "Content-Length: 10\r\n"), "GET", Error::none,
                    B::length, 10, true},
        FramingCase{"length_zero", resp("HTTP/1.1 200 OK", "Content-Length: 0\r\n"), "GET",
                    Error::none, B::length, 0, true},
        FramingCase{"chunked", resp("HTTP/1.1 200 OK", "Transfer-Encoding: chunked\r\n"), "GET",
                    Error::none, B::chunked, 0, true},
        FramingCase{"until_close", resp("HTTP/1.1 200 OK", ""), "GET", Error::none, B::until_close,
                    0, false},
        FramingCase{"te_not_chunked_last",
                    resp("HTTP/1.1 200 OK", "Transfer-Encoding: chunked, gzip\r\n"), "GET",
                    Error::none, B::until_close, 0, false},
        FramingCase{"head", resp("HTTP/1.1 200 OK", "Content-Length: 10\r\n"), "HEAD", Error::none,
                    B::none, 0, true},
        FramingCase{"head_chunked", resp("HTTP/1.1 200 OK", "Transfer-Encoding: chunked\r\n"),
                    "HEAD", Error::none, B::none, 0, true},
        FramingCase{"status_100", resp("HTTP/1.1 100 Continue", ""), "POST", Error::none, B::none,
                    0, true},
        FramingCase{"status_101",
                    resp("HTTP/1.1 101 Switching Protocols",
                         "Connection: upgrade\r\nUpgrade: websocket\r\n"),
                    "GET", Error::none, B::none, 0, true},
        FramingCase{"status_204", resp("HTTP/1.1 204 No Content", ""), "GET", Error::none, B::none,
                    0, true},
        FramingCase{"status_304", resp("HTTP/1.1 304 Not Modified", "Content-Length: 10\r\n"),
                    "GET", Error::none, B::none, 0, true},
        FramingCase{"connect_200", resp("HTTP/1.1 200 Connection established", ""), "CONNECT",
                    Error::none, B::none, 0, true},
        FramingCase{"connect_407",
                    resp("HTTP/1.1 407 Proxy Authentication Required", "Content-Length: 3\r\n"),
                    "CONNECT", Error::none, B::length, 3, true},
        FramingCase{"http10_length", resp("HTTP/1.0 200 OK", "Content-Length: 1\r\n"), "GET",
                    Error::none, B::length, 1, false},
        FramingCase{"http10_keep_alive",
                    resp("HTTP/1.0 200 OK", "Content-Length: 1\r\nConnection: keep-alive\r\n"),
                    "GET", Error::none, B::length, 1, true},
        FramingCase{"connection_close",
                    resp("HTTP/1.1 200 OK", "Content-Length: 1\r\nConnection: close\r\n"), "GET",
                    Error::none, B::length, 1, false},
        FramingCase{"cl_and_te",
                    resp("HTTP/1.1 200 OK", "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n"),
                    "GET", Error::cl_and_te, B::none, 0, false},
        FramingCase{"duplicate_cl",
                    resp("HTTP/1.1 200 OK", "Content-Length: 1\r\nContent-Length: 1\r\n"), "GET",
                    Error::duplicate_content_length, B::none, 0, false},
        FramingCase{"cl_list", resp("HTTP/1.1 200 OK", "Content-Length: 1,1\r\n"), "GET",
                    Error::duplicate_content_length, B::none, 0, false},
        FramingCase{"bad_cl", resp("HTTP/1.1 200 OK", "Content-Length: x\r\n"), "GET",
                    Error::bad_content_length, B::none, 0, false},
        FramingCase{"te_http10", resp("HTTP/1.0 200 OK", "Transfer-Encoding: chunked\r\n"), "GET",
                    Error::te_in_http10, B::none, 0, false},
        FramingCase{"te_gzip_alone", resp("HTTP/1.1 200 OK", "Transfer-Encoding: gzip\r\n"), "GET",
                    Error::none, B::until_close, 0, false},
        FramingCase{"te_double_chunked",
                    resp("HTTP/1.1 200 OK", "Transfer-Encoding: chunked, chunked\r\n"), "GET",
                    Error::te_not_chunked_last, B::none, 0, false},
        FramingCase{"unsupported_te",
                    resp("HTTP/1.1 200 OK", "Transfer-Encoding: gzip, chunked\r\n"), "GET",
                    Error::unsupported_te, B::none, 0, false}));

TEST(ResponseFraming, UpgradeFlag) {
  ResponseHead head;
  ASSERT_EQ(parse_response_head("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                                "Upgrade: websocket\r\n\r\n",
                                Limits{}, head)
                .status,
            Status::complete);
  MessageInfo info;
  ASSERT_EQ(analyze_response(head, "GET", info), Error::none);
  EXPECT_TRUE(info.upgrade);
  EXPECT_FALSE(info.expect_continue);
}

}  // namespace
}  // namespace pc::wire
