// proxy/forwarding.h: how requests and responses are rewritten on the way through.
#include "proxy/forwarding.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace pc::proxy {
namespace {

// A parsed and analyzed request head.
struct Req {
  wire::RequestHead head;
  wire::Target target;
  wire::MessageInfo info;
};

std::unique_ptr<Req> req(std::string_view text) {
  auto r = std::make_unique<Req>();
  auto pr = wire::parse_request_head(text, {}, r->head);
  EXPECT_EQ(pr.status, wire::Status::complete) << text;
  EXPECT_EQ(wire::parse_target(r->head.method, r->head.target, r->target), wire::Error::none)
      << text;
  EXPECT_EQ(wire::analyze_request(r->head, r->target, r->info), wire::Error::none) << text;
  return r;
}

struct Resp {
  wire::ResponseHead head;
  wire::MessageInfo info;
};

std::unique_ptr<Resp> resp(std::string_view text, std::string_view method = "GET") {
  auto r = std::make_unique<Resp>();
  auto pr = wire::parse_response_head(text, {}, r->head);
  EXPECT_EQ(pr.status, wire::Status::complete) << text;
  EXPECT_EQ(wire::analyze_response(r->head, method, r->info), wire::Error::none) << text;
  return r;
}

config::Config cfg_with(config::XffMode xff = config::XffMode::add) {
  config::Config c;
  c.name = "portcullis";
  c.x_forwarded_for = xff;
  return c;
}

std::string upstream(std::string_view text, const config::Config& c = cfg_with(),
                     const config::Parent* parent = nullptr) {
  auto r = req(text);
  return upstream_request_head(r->head, r->target, r->info, c, "192.0.2.9", parent);
}

// The lines of a head without the final empty line.
std::vector<std::string> lines(std::string_view head) {
  std::vector<std::string> out;
  EXPECT_TRUE(head.ends_with("\r\n\r\n")) << head;
  while (!head.empty()) {
    auto e = head.find("\r\n");
    if (e == std::string_view::npos || e == 0) break;
    out.emplace_back(head.substr(0, e));
    head.remove_prefix(e + 2);
  }
  return out;
}

std::size_t count_prefix(const std::vector<std::string>& ls, std::string_view prefix) {
  std::size_t n = 0;
  for (const auto& l : ls)
    if (l.size() >= prefix.size() &&
        wire::iequals(std::string_view(l).substr(0, prefix.size()), prefix))
      ++n;
  return n;
}

// ---- via_has_loop ----

struct ViaCase {
  const char* fields;
  bool loop;
};

class ViaLoop : public ::testing::TestWithParam<ViaCase> {};

TEST_P(ViaLoop, Table) {
  std::string text = std::string("GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n") +
                     GetParam().fields + "\r\n";
  auto r = req(text);
  EXPECT_EQ(via_has_loop(r->head, "portcullis"), GetParam().loop) << GetParam().fields;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ViaLoop,
    ::testing::Values(ViaCase{"", false}, ViaCase{"Via: 1.1 portcullis\r\n", true},
                      ViaCase{"via: 1.0 PortCullis\r\n", true},
                      ViaCase{"Via: HTTP/1.1 portcullis\r\n", true},
                      ViaCase{"Via: 1.1 other, 1.1 portcullis (Portcullis/0.1)\r\n", true},
                      ViaCase{"Via: 1.1 other\r\nVia: 1.0 portcullis\r\n", true},
                      ViaCase{"Via: 1.1 other\r\n", false},
                      ViaCase{"Via: 1.1 portcullis2\r\n", false},
                      ViaCase{"Via: 1.1 my-portcullis\r\n", false},
                      ViaCase{"Via: portcullis\r\n", false},  // no received-by part
                      ViaCase{"Via: 1.1 other (via portcullis)\r\n", false},
                      ViaCase{"X-Via: 1.1 portcullis\r\n", false},
                      ViaCase{"Via: ,, 1.1  portcullis ,\r\n", true}));

// ---- goes_direct ----

TEST(GoesDirect, Table) {
  auto c = cfg_with();
  EXPECT_FALSE(goes_direct(c, "example.com"));
  c.direct_domains = {"example.com", "intra"};
  EXPECT_TRUE(goes_direct(c, "example.com"));
  EXPECT_TRUE(goes_direct(c, "www.example.com"));
  EXPECT_TRUE(goes_direct(c, "host.intra"));
  EXPECT_TRUE(goes_direct(c, "intra"));
  EXPECT_FALSE(goes_direct(c, "badexample.com"));
  EXPECT_FALSE(goes_direct(c, "example.com.evil.net"));
  EXPECT_FALSE(goes_direct(c, "com"));
  EXPECT_FALSE(goes_direct(c, "xintra"));
}

TEST(GoesDirect, AddressesMatchOnlyThemselves) {
  auto c = cfg_with();
  c.direct_domains = {"1.1", "192.0.2.7"};
  EXPECT_TRUE(goes_direct(c, "192.0.2.7"));
  EXPECT_FALSE(goes_direct(c, "10.0.1.1"));  // not a subdomain of "1.1"
  EXPECT_FALSE(goes_direct(c, "192.0.2.8"));
  c.direct_domains = {"[2001:db8::1]"};  // any spelling of the same address
  EXPECT_TRUE(goes_direct(c, "2001:db8:0::1"));
  EXPECT_FALSE(goes_direct(c, "2001:db8::2"));
}

// ---- base64 (RFC 4648 section 10) ----

TEST(Base64, Rfc4648Vectors) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("foob"), "Zm9vYg==");
  EXPECT_EQ(base64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
}

TEST(Base64, BinaryAndCredentials) {
  EXPECT_EQ(base64(std::string("\xff\xfe\xfd", 3)), "//79");
  EXPECT_EQ(base64(std::string("\0\0\0", 3)), "AAAA");
  EXPECT_EQ(base64(std::string("\xfb\xff", 2)), "+/8=");
  EXPECT_EQ(base64("Aladdin:open sesame"), "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
}

// ---- OPTIONS / TRACE / CONNECT replies ----

TEST(LocalReplies, OptionsReply) {
  auto r = resp(options_reply());
  EXPECT_EQ(r->head.status, 200);
  EXPECT_EQ(r->info.body, wire::BodyKind::length);
  EXPECT_EQ(r->info.content_length, 0u);
  ASSERT_NE(r->head.find("Allow"), nullptr);
  EXPECT_NE(r->head.find("Allow")->value.find("CONNECT"), std::string_view::npos);
}

TEST(LocalReplies, TraceReplyEchoesTheHeadWithoutCredentials) {
  auto r =
      req("TRACE http://example.com/x HTTP/1.1\r\nHost: example.com\r\nMax-Forwards: 0\r\n"
          "Authorization: Basic c2VjcmV0\r\nX-A: 1\r\nCookie: session=secret\r\n"
          "Proxy-Authorization: Basic c2VjcmV0\r\ncookie: other=secret\r\nX-B: 2\r\n\r\n");
  std::string out = trace_reply(r->head);
  const std::string body =
      "TRACE http://example.com/x HTTP/1.1\r\nHost: example.com\r\nMax-Forwards: 0\r\nX-A: 1\r\n"
      "X-B: 2\r\n\r\n";
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nContent-Type: message/http\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_EQ(out.find("secret"), std::string::npos);
  EXPECT_EQ(out.find("c2VjcmV0"), std::string::npos);
}

TEST(LocalReplies, TraceReplyHttp10) {
  auto r = req("TRACE http://example.com/ HTTP/1.0\r\nMax-Forwards: 0\r\n\r\n");
  std::string out = trace_reply(r->head);
  EXPECT_NE(out.find("\r\n\r\nTRACE http://example.com/ HTTP/1.0\r\nMax-Forwards: 0\r\n\r\n"),
            std::string::npos)
      << out;
}

TEST(LocalReplies, ConnectRequestToParent) {
  config::Parent p{"parent.example", 3128, "user", "pa:ss"};
  EXPECT_EQ(connect_request("example.com:443", p),
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"
            "Proxy-Authorization: Basic " +
                base64("user:pa:ss") + "\r\n\r\n");
  config::Parent anon{"parent.example", 3128, "", ""};
  EXPECT_EQ(connect_request("[2001:db8::1]:443", anon),
            "CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n");
}

// ---- upstream_request_head ----

TEST(UpstreamRequest, OriginFormToOrigin) {
  EXPECT_EQ(upstream("GET http://example.com/a/b?c=d HTTP/1.1\r\nHost: example.com\r\n"
                     "User-Agent: t/1\r\nAccept: */*\r\n\r\n"),
            "GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\nAccept: */*\r\n"
            "Via: 1.1 portcullis\r\nX-Forwarded-For: 192.0.2.9\r\n\r\n");
}

TEST(UpstreamRequest, EmptyPathBecomesSlash) {
  auto ls = lines(upstream("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n"));
  ASSERT_FALSE(ls.empty());
  EXPECT_EQ(ls[0], "GET / HTTP/1.1");
}

TEST(UpstreamRequest, AbsoluteFormToParentWithCredentials) {
  config::Parent p{"parent.example", 3128, "alice", "s3cret"};
  auto ls =
      lines(upstream("GET http://example.com:8080/x HTTP/1.1\r\nHost: example.com:8080\r\n"
                     "Proxy-Authorization: Basic Y2xpZW50OmNyZWRz\r\n\r\n",
                     cfg_with(), &p));
  ASSERT_FALSE(ls.empty());
  EXPECT_EQ(ls[0], "GET http://example.com:8080/x HTTP/1.1");
  EXPECT_EQ(ls[1], "Host: example.com:8080");
  // The client's credentials for us are never passed on; ours for the parent are added.
  EXPECT_EQ(count_prefix(ls, "Proxy-Authorization:"), 1u);
  EXPECT_EQ(ls.back(), "Proxy-Authorization: Basic " + base64("alice:s3cret"));
}

TEST(UpstreamRequest, ParentWithoutCredentials) {
  config::Parent p{"parent.example", 3128, "", ""};
  auto ls = lines(
      upstream("GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", cfg_with(), &p));
  EXPECT_EQ(ls[0], "GET http://example.com/ HTTP/1.1");
  EXPECT_EQ(count_prefix(ls, "Proxy-Authorization:"), 0u);
}

TEST(UpstreamRequest, ClientProxyAuthorizationNeverReachesTheOrigin) {
  auto out = upstream(
      "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n"
      "Proxy-Authorization: Basic Y2xpZW50OmNyZWRz\r\n\r\n");
  EXPECT_EQ(out.find("Proxy-Authorization"), std::string::npos) << out;
}

TEST(UpstreamRequest, HopByHopAndConnectionNamedFieldsRemoved) {
  auto out = upstream(
      "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n"
      "Connection: keep-alive, X-Secret, x-other\r\nConnection: X-Third\r\n"
      "Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n"
      "Trailer: X-T\r\nUpgrade: websocket\r\nX-Secret: 1\r\nX-OTHER: 2\r\nx-third: 3\r\n"
      "Proxy-Authenticate: Basic\r\nX-Kept: yes\r\n\r\n");
  EXPECT_EQ(out,
            "GET / HTTP/1.1\r\nHost: example.com\r\nX-Kept: yes\r\nVia: 1.1 portcullis\r\n"
            "X-Forwarded-For: 192.0.2.9\r\n\r\n");
}

TEST(UpstreamRequest, WebSocketHandshakeKeepsItsUpgrade) {
  // Only "websocket" is asked for upstream; the other fields Connection names still go.
  auto out = upstream(
      "GET http://example.com/chat HTTP/1.1\r\nHost: example.com\r\n"
      "Connection: keep-alive, Upgrade, X-Secret\r\nUpgrade: h2c, websocket\r\nX-Secret: 1\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  EXPECT_EQ(out,
            "GET /chat HTTP/1.1\r\nHost: example.com\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            "Via: 1.1 portcullis\r\nX-Forwarded-For: 192.0.2.9\r\n"
            "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  // Any other upgrade is dropped like every hop-by-hop field.
  auto h2c = lines(
      upstream("GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade, "
               "HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"));
  EXPECT_EQ(count_prefix(h2c, "Upgrade:"), 0u);
  EXPECT_EQ(count_prefix(h2c, "Connection:"), 0u);
  EXPECT_EQ(count_prefix(h2c, "HTTP2-Settings:"), 0u);
}

TEST(UpstreamRequest, ViaAppendedWithTheReceivedVersion) {
  auto ls11 =
      lines(upstream("GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nVia: 1.0 a\r\n"
                     "Via: 1.1 b (x)\r\n\r\n"));
  EXPECT_EQ(count_prefix(ls11, "Via:"), 1u);
  EXPECT_NE(std::find(ls11.begin(), ls11.end(), "Via: 1.0 a, 1.1 b (x), 1.1 portcullis"),
            ls11.end());

  auto ls10 = lines(upstream("GET http://example.com/ HTTP/1.0\r\n\r\n"));
  EXPECT_EQ(ls10[0], "GET / HTTP/1.1");  // we speak HTTP/1.1 upstream
  EXPECT_NE(std::find(ls10.begin(), ls10.end(), "Via: 1.0 portcullis"), ls10.end());
}

TEST(UpstreamRequest, HostBuiltFromTheTargetForHttp10) {
  auto ls = lines(upstream("GET http://example.com:8080/p HTTP/1.0\r\n\r\n"));
  EXPECT_EQ(ls[1], "Host: example.com:8080");
  ls = lines(upstream("GET http://example.com/p HTTP/1.0\r\n\r\n"));
  EXPECT_EQ(ls[1], "Host: example.com");
  ls = lines(upstream("GET http://[2001:db8::1]:81/p HTTP/1.0\r\n\r\n"));
  EXPECT_EQ(ls[1], "Host: [2001:db8::1]:81");
  ls = lines(upstream("GET http://[2001:db8::1]/p HTTP/1.0\r\n\r\n"));
  EXPECT_EQ(ls[1], "Host: [2001:db8::1]");
}

struct XffCase {
  config::XffMode mode;
  const char* fields;
  const char* want;  // nullptr: no X-Forwarded-For sent
};

class Xff : public ::testing::TestWithParam<XffCase> {};

TEST_P(Xff, Table) {
  const auto& p = GetParam();
  auto ls = lines(upstream(
      std::string("GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n") + p.fields + "\r\n",
      cfg_with(p.mode)));
  if (!p.want) {
    EXPECT_EQ(count_prefix(ls, "X-Forwarded-For:"), 0u);
  } else {
    EXPECT_EQ(count_prefix(ls, "X-Forwarded-For:"), 1u);
    EXPECT_NE(std::find(ls.begin(), ls.end(), std::string("X-Forwarded-For: ") + p.want), ls.end())
        << p.fields;
  }
}

using config::XffMode;
INSTANTIATE_TEST_SUITE_P(
    Table, Xff,
    ::testing::Values(
        XffCase{XffMode::add, "", "192.0.2.9"},
        XffCase{XffMode::add, "X-Forwarded-For: 10.0.0.1\r\n", "10.0.0.1, 192.0.2.9"},
        XffCase{XffMode::add,
                "X-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2, 10.0.0.3\r\n",
                "10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.9"},
        XffCase{XffMode::keep, "", nullptr},
        XffCase{XffMode::keep, "X-Forwarded-For: 10.0.0.1\r\n", "10.0.0.1"},
        XffCase{XffMode::keep, "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n",
                "10.0.0.1, 10.0.0.2"},
        XffCase{XffMode::remove, "", nullptr},
        XffCase{XffMode::remove, "X-Forwarded-For: 10.0.0.1\r\n", nullptr}));

struct MaxFwdCase {
  const char* method;
  const char* value;
  const char* want;
};

class MaxForwards : public ::testing::TestWithParam<MaxFwdCase> {};

TEST_P(MaxForwards, Table) {
  const auto& p = GetParam();
  auto ls = lines(upstream(std::string(p.method) +
                           " http://example.com/ HTTP/1.1\r\nHost: example.com\r\nMax-Forwards: " +
                           p.value + "\r\n\r\n"));
  EXPECT_EQ(count_prefix(ls, "Max-Forwards:"), 1u);
  EXPECT_NE(std::find(ls.begin(), ls.end(), std::string("Max-Forwards: ") + p.want), ls.end())
      << p.method << " " << p.value;
}

INSTANTIATE_TEST_SUITE_P(
    Table, MaxForwards,
    ::testing::Values(MaxFwdCase{"OPTIONS", "5", "4"}, MaxFwdCase{"TRACE", "1", "0"},
                      MaxFwdCase{"TRACE", "10", "9"}, MaxFwdCase{"OPTIONS", "x", "x"},
                      MaxFwdCase{"GET", "5", "5"}, MaxFwdCase{"POST", "1", "1"},
                      MaxFwdCase{"HEAD", "3", "3"}));

TEST(UpstreamRequest, ContentLengthRestated) {
  auto ls = lines(
      upstream("POST http://example.com/f HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0005\r\n"
               "Content-Type: text/plain\r\n\r\n"));
  EXPECT_EQ(ls[0], "POST /f HTTP/1.1");
  EXPECT_EQ(count_prefix(ls, "Content-Length:"), 1u);
  EXPECT_EQ(ls.back(), "Content-Length: 5");
  EXPECT_EQ(count_prefix(ls, "Content-Type: text/plain"), 1u);
}

TEST(UpstreamRequest, ChunkedRestated) {
  auto ls =
      lines(upstream("POST http://example.com/f HTTP/1.1\r\nHost: example.com\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n"));
  EXPECT_EQ(count_prefix(ls, "Transfer-Encoding:"), 1u);
  EXPECT_EQ(ls.back(), "Transfer-Encoding: chunked");
  EXPECT_EQ(count_prefix(ls, "Content-Length:"), 0u);
}

TEST(UpstreamRequest, NoBodyNoFraming) {
  auto ls = lines(upstream("GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"));
  EXPECT_EQ(count_prefix(ls, "Content-Length:"), 0u);
  EXPECT_EQ(count_prefix(ls, "Transfer-Encoding:"), 0u);
}

TEST(UpstreamRequest, FieldOrderAndCaseKept) {
  auto ls =
      lines(upstream("GET http://example.com/ HTTP/1.1\r\nhost: example.com\r\nx-b: 2\r\nX-A: 1\r\n"
                     "Cookie: a=1\r\nAuthorization: Bearer t\r\n\r\n"));
  ASSERT_GE(ls.size(), 6u);
  EXPECT_EQ(ls[1], "Host: example.com");
  EXPECT_EQ(ls[2], "x-b: 2");
  EXPECT_EQ(ls[3], "X-A: 1");
  EXPECT_EQ(ls[4], "Cookie: a=1");  // end-to-end: passed to the origin
  EXPECT_EQ(ls[5], "Authorization: Bearer t");
}

// ---- response_head_for_client ----

std::string client_head(std::string_view text, std::string_view method, bool rechunk,
                        bool keep_alive, bool client10 = false) {
  auto r = resp(text, method);
  return response_head_for_client(r->head, r->info, rechunk, keep_alive, "portcullis", false,
                                  client10);
}

TEST(ClientResponse, ContentLengthRestated) {
  EXPECT_EQ(client_head("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 05\r\n"
                        "Server: s\r\n\r\n",
                        "GET", false, true),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nServer: s\r\nVia: 1.1 portcullis\r\n"
            "Content-Length: 5\r\n\r\n");
}

TEST(ClientResponse, ContentLengthKeptForHead) {
  auto ls =
      lines(client_head("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", "HEAD", false, true));
  EXPECT_EQ(count_prefix(ls, "Content-Length:"), 1u);
  EXPECT_NE(std::find(ls.begin(), ls.end(), "Content-Length: 1234"), ls.end());
  EXPECT_EQ(count_prefix(ls, "Transfer-Encoding:"), 0u);
}

TEST(ClientResponse, ContentLengthKeptFor304) {
  auto ls =
      lines(client_head("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 99\r\n\r\n",
                        "GET", false, true));
  EXPECT_EQ(ls[0], "HTTP/1.1 304 Not Modified");
  EXPECT_EQ(count_prefix(ls, "Content-Length:"), 1u);
  EXPECT_NE(std::find(ls.begin(), ls.end(), "Content-Length: 99"), ls.end());
}

TEST(ClientResponse, ChunkedHeadResponseHasNoTransferEncoding) {
  auto ls = lines(
      client_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD", false, true));
  EXPECT_EQ(count_prefix(ls, "Transfer-Encoding:"), 0u);
  EXPECT_EQ(count_prefix(ls, "Content-Length:"), 0u);
}

TEST(ClientResponse, Rechunked) {
  auto ls = lines(client_head(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n", "GET", true, true));
  EXPECT_EQ(count_prefix(ls, "Transfer-Encoding:"), 1u);
  EXPECT_EQ(ls.back(), "Transfer-Encoding: chunked");
  EXPECT_EQ(count_prefix(ls, "Trailer:"), 0u);
  EXPECT_EQ(count_prefix(ls, "Connection:"), 0u);
}

TEST(ClientResponse, UntilCloseRechunkedForHttp11Client) {
  auto ls =
      lines(client_head("HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n", "GET", true, true));
  EXPECT_EQ(ls[0], "HTTP/1.1 200 OK");
  EXPECT_NE(std::find(ls.begin(), ls.end(), "Via: 1.0 portcullis"), ls.end());
  EXPECT_EQ(ls.back(), "Transfer-Encoding: chunked");
}

TEST(ClientResponse, UntilCloseForHttp10Client) {
  auto ls = lines(client_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", false,
                              false, true));
  EXPECT_EQ(count_prefix(ls, "Transfer-Encoding:"), 0u);
  EXPECT_EQ(count_prefix(ls, "Content-Length:"), 0u);
  EXPECT_EQ(ls.back(), "Connection: close");
}

TEST(ClientResponse, ConnectionCloseAndKeepAlive) {
  const char* text = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  auto ls = lines(client_head(text, "GET", false, false));
  EXPECT_EQ(count_prefix(ls, "Connection:"), 1u);
  EXPECT_EQ(ls.back(), "Connection: close");
  ls = lines(client_head(text, "GET", false, true));
  EXPECT_EQ(count_prefix(ls, "Connection:"), 0u);
  // An HTTP/1.0 client defaults to close: keep-alive must be said.
  ls = lines(client_head(text, "GET", false, true, true));
  EXPECT_EQ(count_prefix(ls, "Connection:"), 1u);
  EXPECT_EQ(ls.back(), "Connection: keep-alive");
  ls = lines(client_head(text, "GET", false, false, true));
  EXPECT_EQ(ls.back(), "Connection: close");
}

TEST(ClientResponse, HopByHopAndConnectionNamedFieldsRemoved) {
  auto out = client_head(
      "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Internal\r\nKeep-Alive: timeout=5\r\n"
      "X-Internal: secret\r\nProxy-Authenticate: Basic\r\nUpgrade: h2c\r\nX-Kept: 1\r\n"
      "Content-Length: 3\r\n\r\n",
      "GET", false, true);
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\nX-Kept: 1\r\nVia: 1.1 portcullis\r\nContent-Length: 3\r\n\r\n");
}

TEST(ClientResponse, ViaMergedWithUpstreamVia) {
  auto ls =
      lines(client_head("HTTP/1.1 200 OK\r\nVia: 1.1 cache1\r\nVia: 1.0 cache2\r\n"
                        "Content-Length: 0\r\n\r\n",
                        "GET", false, true));
  EXPECT_EQ(count_prefix(ls, "Via:"), 1u);
  EXPECT_NE(std::find(ls.begin(), ls.end(), "Via: 1.1 cache1, 1.0 cache2, 1.1 portcullis"),
            ls.end());
}

TEST(ClientResponse, SwitchingToWebSocket) {
  auto r = resp(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: Upgrade, X-In\r\n"
      "X-In: 1\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nVia: 1.1 cache1\r\n\r\n");
  EXPECT_EQ(switching_head_for_client(r->head, r->info, "portcullis"),
            "HTTP/1.1 101 Switching Protocols\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            "Via: 1.1 cache1, 1.1 portcullis\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
}

TEST(ClientResponse, ReasonPhraseKept) {
  auto ls = lines(
      client_head("HTTP/1.1 404 Nothing Here\r\nContent-Length: 0\r\n\r\n", "GET", false, true));
  EXPECT_EQ(ls[0], "HTTP/1.1 404 Nothing Here");
}

TEST(ClientResponse, Interim) {
  auto r = resp("HTTP/1.1 100 Continue\r\nX-A: 1\r\nConnection: X-B\r\nX-B: 2\r\n\r\n");
  std::string out =
      response_head_for_client(r->head, wire::MessageInfo{}, false, true, "portcullis", true);
  // The fields named by Connection are taken from info (empty here); X-B is end-to-end then.
  EXPECT_TRUE(out.starts_with("HTTP/1.1 100 Continue\r\nX-A: 1\r\n")) << out;
  EXPECT_EQ(out.find("Connection:"), std::string::npos) << out;
  EXPECT_EQ(out.find("Via:"), std::string::npos) << out;
  EXPECT_TRUE(out.ends_with("\r\n\r\n"));

  auto r103 = resp("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n");
  EXPECT_EQ(
      response_head_for_client(r103->head, wire::MessageInfo{}, false, true, "portcullis", true),
      "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n");
}

// ---- scanning downloads and uploads ----

TEST(ScanDelivery, EndlessStreams) {
  EXPECT_TRUE(txn::is_endless_stream("video/mp4"));
  EXPECT_TRUE(txn::is_endless_stream("Video/MP4; codecs=avc1"));
  EXPECT_TRUE(txn::is_endless_stream("audio/mpeg"));
  EXPECT_TRUE(txn::is_endless_stream("application/vnd.apple.mpegurl"));
  EXPECT_TRUE(txn::is_endless_stream("text/event-stream"));
  EXPECT_TRUE(txn::is_endless_stream("multipart/x-mixed-replace"));
  EXPECT_FALSE(txn::is_endless_stream("application/octet-stream"));
  EXPECT_FALSE(txn::is_endless_stream("text/html"));
  EXPECT_FALSE(txn::is_endless_stream(""));
  EXPECT_EQ(media_type(" Video/MP4 ; codecs=avc1"), "video/mp4");
}

TEST(ScanDelivery, TrickleHoldBack) {
  EXPECT_EQ(trickle_holdback(0), kTrickleHoldBack);
  EXPECT_EQ(trickle_holdback(3 << 20), kTrickleHoldBack);
  EXPECT_EQ(trickle_holdback(80ull << 20), 10ull << 20);
}

TEST(ScanDelivery, MimeWrapper) {
  EXPECT_EQ(mime_wrapper("multipart/form-data; boundary=----abc"),
            "MIME-Version: 1.0\r\nContent-Type: multipart/form-data; boundary=----abc\r\n\r\n");
  EXPECT_NE(mime_wrapper("Multipart/Mixed;BOUNDARY=\"x y\""), "");
  EXPECT_EQ(mime_wrapper("multipart/form-data"), "");
  EXPECT_EQ(mime_wrapper("multipart/form-data; boundary="), "");
  EXPECT_EQ(mime_wrapper("application/x-www-form-urlencoded"), "");
  EXPECT_EQ(mime_wrapper("application/json; boundary=x"), "");
}

TEST(ScanDelivery, UpstreamHeadDropsExpectWhenAnswered) {
  auto r =
      req("POST http://example.com/up HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\n"
          "Content-Length: 3\r\n\r\n");
  config::Config cfg;
  auto kept = upstream_request_head(r->head, r->target, r->info, cfg, "10.0.0.1", nullptr);
  EXPECT_NE(kept.find("Expect: 100-continue\r\n"), std::string::npos);
  auto dropped = upstream_request_head(r->head, r->target, r->info, cfg, "10.0.0.1", nullptr, true);
  EXPECT_EQ(dropped.find("Expect"), std::string::npos);
  EXPECT_NE(dropped.find("Content-Length: 3\r\n"), std::string::npos);
}

}  // namespace
}  // namespace pc::proxy
