// In-process tests of app::Server: a real server on 127.0.0.1, an origin server and blocking
// clients in the test. Every socket operation is bounded by a timeout.
#include "app/server.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <sstream>

#include "test_net.h"

namespace pc::itest {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct Options {
  std::string xff = "add";
  std::vector<std::uint16_t> connect_ports{443};
  std::string deny_destinations;  // a TOML array; empty: the default
  double drain = 5;
};

std::string config_text(const Options& o) {
  std::ostringstream t;
  t << "[gateway]\nname = \"pc-test\"\nworkers = 2\n"
    << "[[listeners]]\nname = \"proxy\"\naddress = \"127.0.0.1\"\nport = 1\n"
    << "[proxy]\nx_forwarded_for = \"" << o.xff << "\"\nconnect_ports = [";
  for (std::size_t i = 0; i < o.connect_ports.size(); ++i)
    t << (i ? ", " : "") << o.connect_ports[i];
  t << "]\n";
  if (!o.deny_destinations.empty()) t << "deny_destinations = " << o.deny_destinations << "\n";
  t << "[timeouts]\nheader_read = 5\nkeepalive_idle = 10\nupstream_connect = 5\n"
    << "upstream_first_byte = 10\nbody_idle = 10\ntunnel_idle = 10\ndrain = " << o.drain << "\n"
    << "[access_log]\npath = \"access.log\"\nformat = \"json\"\n[log]\nlevel = \"warn\"\n"
    // These tests pin the proxy's framing as it relays; scanned delivery (which holds and
    // re-frames bodies) is tested end to end in tests/e2e/test_scan.py.
    << "[scan]\nenabled = false\n";
  return t.str();
}

// Loads the configuration; the listener gets port 0 (the loader requires 1-65535).
std::shared_ptr<const config::Config> make_config(const fs::path& dir, const Options& o,
                                                  std::uint16_t port = 0) {
  auto r = config::load_string(config_text(o), dir / "portcullis.toml");
  for (const auto& e : r.errors) ADD_FAILURE() << config::format(e);
  if (!r.config) return nullptr;
  auto c = std::make_shared<config::Config>(*r.config);
  c->listeners.at(0).port = port;
  c->monitoring.port = 0;  // any free port: tests run in parallel
  return c;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pc-itest-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    server_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void start(const Options& o = {}) {
    auto cfg = make_config(dir_, o);
    ASSERT_NE(cfg, nullptr);
    server_ = std::make_unique<app::Server>(cfg);
    server_->start();
    ASSERT_EQ(server_->ports().size(), 1u);
    port_ = server_->ports()[0];
    ASSERT_NE(port_, 0);
  }

  Conn client() {
    auto c = Conn::connect_to(port_);
    EXPECT_TRUE(c.has_value()) << "cannot connect to the proxy";
    if (!c) throw std::runtime_error("connect");
    return std::move(*c);
  }

  // "GET http://127.0.0.1:<port><path> HTTP/1.1" with Host.
  static std::string get(std::uint16_t origin, std::string_view path = "/",
                         std::string_view extra = "") {
    std::string authority = "127.0.0.1:" + std::to_string(origin);
    return "GET http://" + authority + std::string(path) + " HTTP/1.1\r\nHost: " + authority +
           "\r\n" + std::string(extra) + "\r\n";
  }

  std::vector<std::string> log_lines() {
    std::ifstream in(dir_ / "access.log");
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  }

  // Records are submitted right after the response is written: wait for n of them.
  std::vector<std::string> wait_log_lines(std::size_t n) {
    std::vector<std::string> ls;
    for (int i = 0; i < 100; ++i) {
      server_->access_log().flush();
      ls = log_lines();
      if (ls.size() >= n) break;
      std::this_thread::sleep_for(20ms);
    }
    return ls;
  }

  fs::path dir_;
  std::unique_ptr<app::Server> server_;
  std::uint16_t port_ = 0;
};

// ---- forwarding ----

TEST_F(ServerTest, AbsoluteFormGetIsForwardedInOriginForm) {
  HttpOrigin origin([](const Message&) { return ok_response("hello", "X-Origin: 1\r\n"); });
  start();
  auto c = client();
  ASSERT_TRUE(c.send_all(get(origin.port(), "/path/x?q=1", "User-Agent: itest\r\n")));
  auto r = read_response(c);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->start, "HTTP/1.1 200 OK");
  EXPECT_EQ(r->body, "hello");
  EXPECT_EQ(r->get("X-Origin"), "1");
  EXPECT_EQ(r->get("Via"), "1.1 pc-test");
  EXPECT_EQ(r->get("Content-Length"), "5");

  auto reqs = origin.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].start, "GET /path/x?q=1 HTTP/1.1");
  EXPECT_EQ(reqs[0].get("Host"), "127.0.0.1:" + std::to_string(origin.port()));
  EXPECT_EQ(reqs[0].get("Via"), "1.1 pc-test");
  EXPECT_EQ(reqs[0].get("X-Forwarded-For"), "127.0.0.1");
  EXPECT_EQ(reqs[0].get("User-Agent"), "itest");
}

TEST_F(ServerTest, HopByHopFieldsAreNotForwarded) {
  HttpOrigin origin([](const Message&) { return ok_response("x"); });
  start();
  auto c = client();
  ASSERT_TRUE(c.send_all(get(origin.port(), "/",
                             "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
                             "Proxy-Authorization: Basic dTpw\r\nKeep-Alive: 5\r\nX-End: 2\r\n")));
  ASSERT_TRUE(read_response(c).has_value());
  auto reqs = origin.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].count("X-Hop"), 0u);
  EXPECT_EQ(reqs[0].count("Proxy-Authorization"), 0u);
  EXPECT_EQ(reqs[0].count("Keep-Alive"), 0u);
  EXPECT_EQ(reqs[0].get("X-End"), "2");
}

TEST_F(ServerTest, KeepAliveTwoRequestsOnOneConnection) {
  HttpOrigin origin([](const Message& m) { return ok_response("body of " + m.start); });
  start();
  auto c = client();
  ASSERT_TRUE(c.send_all(get(origin.port(), "/one")));
  auto r1 = read_response(c);
  ASSERT_TRUE(r1.has_value());
  EXPECT_EQ(r1->body, "body of GET /one HTTP/1.1");
  EXPECT_EQ(r1->count("Connection"), 0u);
  ASSERT_TRUE(c.send_all(get(origin.port(), "/two")));
  auto r2 = read_response(c);
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->body, "body of GET /two HTTP/1.1");
  EXPECT_EQ(origin.request_count(), 2u);
}

TEST_F(ServerTest, PipelinedRequestsAnsweredInOrder) {
  HttpOrigin origin([](const Message& m) { return ok_response(m.start); });
  start();
  auto c = client();
  ASSERT_TRUE(c.send_all(get(origin.port(), "/a") + get(origin.port(), "/b")));
  auto r1 = read_response(c);
  auto r2 = read_response(c);
  ASSERT_TRUE(r1 && r2);
  EXPECT_EQ(r1->body, "GET /a HTTP/1.1");
  EXPECT_EQ(r2->body, "GET /b HTTP/1.1");
}

TEST_F(ServerTest, UpstreamConnectionsAreReused) {
  HttpOrigin origin([](const Message&) { return ok_response("ok"); });
  start();
  constexpr int kRequests = 8;
  for (int i = 0; i < kRequests; ++i) {
    auto c = client();
    ASSERT_TRUE(c.send_all(get(origin.port(), "/" + std::to_string(i))));
    auto r = read_response(c);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200);
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(origin.request_count(), static_cast<std::size_t>(kRequests));
  // One pool per worker: at most one connection per worker for sequential requests.
  EXPECT_LT(origin.accepts(), kRequests);
  EXPECT_LE(origin.accepts(), 2);
}

TEST_F(ServerTest, StalePooledConnectionIsRetried) {
  // The origin closes every connection after its response without saying so.
  std::atomic<int> n{0};
  TcpServer raw([&](Conn& c) {
    auto m = read_request(c);
    if (!m) return;
    ++n;
    c.send_all(ok_response("r" + std::to_string(n.load())));
    std::this_thread::sleep_for(20ms);
  });
  start();
  for (int i = 0; i < 4; ++i) {
    auto c = client();
    ASSERT_TRUE(c.send_all(get(raw.port())));
    auto r = read_response(c);
    ASSERT_TRUE(r.has_value()) << "request " << i;
    EXPECT_EQ(r->status, 200) << "request " << i;
    std::this_thread::sleep_for(60ms);
  }
  EXPECT_EQ(n.load(), 4);
}

// ---- framing ----

TEST_F(ServerTest, ChunkedRequestBodyAndChunkedResponse) {
  HttpOrigin origin([](const Message& m) {
    return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ngot\r\n1\r\n \r\n" + [&] {
      std::ostringstream o;
      o << std::hex << m.body.size() << "\r\n" << m.body << "\r\n0\r\n\r\n";
      return o.str();
    }();
  });
  start();
  auto c = client();
  std::string authority = "127.0.0.1:" + std::to_string(origin.port());
  ASSERT_TRUE(c.send_all("POST http://" + authority + "/upload HTTP/1.1\r\nHost: " + authority +
                         "\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n"
                         "0\r\n\r\n"));
  auto r = read_response(c);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->chunked);
  EXPECT_EQ(r->count("Transfer-Encoding"), 1u);
  EXPECT_EQ(r->count("Content-Length"), 0u);
  EXPECT_EQ(r->body, "got hello world");

  auto reqs = origin.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].start, "POST /upload HTTP/1.1");
  EXPECT_TRUE(reqs[0].chunked);
  EXPECT_EQ(reqs[0].body, "hello world");
  EXPECT_EQ(reqs[0].count("Content-Length"), 0u);
  EXPECT_EQ(reqs[0].raw.find("ext=1"), std::string::npos);  // re-framed, extensions dropped

  // The connection is still usable.
  ASSERT_TRUE(c.send_all(get(origin.port(), "/after")));
  auto r2 = read_response(c);
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->status, 200);
}

TEST_F(ServerTest, ContentLengthRequestBody) {
  HttpOrigin origin(
      [](const Message& m) { return ok_response("len=" + std::to_string(m.body.size())); });
  start();
  auto c = client();
  std::string authority = "127.0.0.1:" + std::to_string(origin.port());
  std::string body(100000, 'b');
  ASSERT_TRUE(c.send_all("PUT http://" + authority + "/f HTTP/1.1\r\nHost: " + authority +
                         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body));
  auto r = read_response(c);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "len=100000");
  auto reqs = origin.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].body, body);
  EXPECT_EQ(reqs[0].get("Content-Length"), "100000");
}

TEST_F(ServerTest, UntilCloseResponseIsRechunkedForHttp11) {
  HttpOrigin origin([](const Message&) {
    return std::string("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n") +
           std::string(50000, 'z');
  });
  start();
  auto c = client();
  ASSERT_TRUE(c.send_all(get(origin.port())));
  auto r = read_response(c);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->chunked);
  EXPECT_EQ(r->body, std::string(50000, 'z'));
  // The client connection stays usable.
  ASSERT_TRUE(c.send_all(get(origin.port())));
  auto r2 = read_response(c);
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->body.size(), 50000u);
}

TEST_F(ServerTest, Http10ClientGetsAnUntilCloseBody) {
  HttpOrigin origin([](const Message&) {
    return std::string(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n");
  });
  start();
  auto c = client();
  ASSERT_TRUE(c.send_all("GET http://127.0.0.1:" + std::to_string(origin.port()) +
                         "/old HTTP/1.0\r\n\r\n"));
  auto r = read_response(c);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->until_close);
  EXPECT_FALSE(r->chunked);
  EXPECT_EQ(r->get("Connection"), "close");
  EXPECT_EQ(r->body, "abcdef");
  EXPECT_FALSE(c.timed_out());
  auto reqs = origin.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].start, "GET /old HTTP/1.1");
  EXPECT_EQ(reqs[0].get("Host"), "127.0.0.1:" + std::to_string(origin.port()));
  EXPECT_EQ(reqs[0].get("Via"), "1.0 pc-test");
}

TEST_F(ServerTest, Http10ClientKeepAliveWithContentLength) {
  HttpOrigin origin([](const Message&) { return ok_response("abc"); });
  start();
  auto c = client();
  std::string req = "GET http://127.0.0.1:" + std::to_string(origin.port()) +
                    "/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
  ASSERT_TRUE(c.send_all(req));
  auto r = read_response(c);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "abc");
  EXPECT_EQ(r->get("Connection"), "keep-alive");
  ASSERT_TRUE(c.send_all(req));
  auto r2 = read_response(c);
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->body, "abc");
}

TEST_F(ServerTest, HeadResponseKeepsContentLength) {
  HttpOrigin origin([](const Message&) {
    return std::string("HTTP/1.1 200 OK\r\nContent-Length: 12345\r\n\r\n");
  });
  start();
  auto c = client();
  std::string authority = "127.0.0.1:" + std::to_string(origin.port());
  ASSERT_TRUE(
      c.send_all("HEAD http://" + authority + "/ HTTP/1.1\r\nHost: " + authority + "\r\n\r\n"));
  auto r = read_response(c, true);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->get("Content-Length"), "12345");
  // Nothing follows the head: the next request is answered normally.
  ASSERT_TRUE(c.send_all(get(origin.port())));
  auto r2 = read_response(c, true);
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->status, 200);
}

TEST_F(ServerTest, ExpectContinueInterimIsRelayed) {
  TcpServer origin([](Conn& c) {
    auto head = c.read_until("\r\n\r\n");
    if (!head) return;
    c.send_all("HTTP/1.1 100 Continue\r\n\r\n");
    auto body = c.read_exact(5);
    if (!body) return;
    c.send_all(ok_response("got " + *body));
  });
  start();
  auto c = client();
  std::string authority = "127.0.0.1:" + std::to_string(origin.port());
  ASSERT_TRUE(c.send_all("POST http://" + authority + "/ HTTP/1.1\r\nHost: " + authority +
                         "\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
  auto interim = c.read_until("\r\n\r\n");
  ASSERT_TRUE(interim.has_value());
  EXPECT_EQ(interim->rfind("HTTP/1.1 100 Continue\r\n", 0), 0u) << *interim;
  ASSERT_TRUE(c.send_all("hello"));
  auto r = read_response(c);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "got hello");
}

TEST_F(ServerTest, OriginClosingMidBodyClosesTheClientConnection) {
  TcpServer origin([](Conn& c) {
    if (!read_request(c)) return;
    c.send_all("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-part");
  });
  start();
  auto c = client();
  ASSERT_TRUE(c.send_all(get(origin.port())));
  auto head = c.read_until("\r\n\r\n");
  ASSERT_TRUE(head.has_value());
  EXPECT_NE(head->find("Content-Length: 100"), std::string::npos);
  std::string rest = c.read_to_close();
  EXPECT_FALSE(c.timed_out()) << "the truncated response must end with the connection";
  EXPECT_EQ(rest, "only-part");
  auto ls = wait_log_lines(1);
  ASSERT_EQ(ls.size(), 1u);
  EXPECT_NE(ls[0].find("\"result\":\"error\""), std::string::npos) << ls[0];
}

TEST_F(ServerTest, UnreachableOriginGives502) {
  std::uint16_t dead = 0;
  {
    TcpServer gone([](Conn&) {});
    dead = gone.port();
  }  // closed: nothing listens there any more
  start();
  auto c = client();
  ASSERT_TRUE(c.send_all(get(dead)));
  auto r = read_response(c);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 502);
  EXPECT_EQ(r->get("Cache-Control"), "no-store");
}

TEST_F(ServerTest, ClientConnectionCloseIsHonoured) {
  HttpOrigin origin([](const Message&) { return ok_response("bye"); });
  start();
  auto c = client();
  ASSERT_TRUE(c.send_all(get(origin.port(), "/", "Connection: close\r\n")));
  auto r = read_response(c);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "bye");
  EXPECT_EQ(r->get("Connection"), "close");
  EXPECT_TRUE(c.at_eof());
  EXPECT_EQ(origin.requests().at(0).count("Connection"), 0u);
}

TEST_F(ServerTest, NoContentResponse) {
  HttpOrigin origin([](const Message&) { return std::string("HTTP/1.1 204 No Content\r\n\r\n"); });
  start();
  auto c = client();
  ASSERT_TRUE(c.send_all(get(origin.port())));
  auto r = read_response(c);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(r->count("Transfer-Encoding"), 0u);
  ASSERT_TRUE(c.send_all(get(origin.port())));
  auto r2 = read_response(c);
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->status, 204);
}

// ---- refusals ----

TEST_F(ServerTest, SmugglingRequestIsRejectedAndNeverForwarded) {
  HttpOrigin origin([](const Message&) { return ok_response("should not happen"); });
  start();
  auto c = client();
  std::string authority = "127.0.0.1:" + std::to_string(origin.port());
  ASSERT_TRUE(c.send_all("POST http://" + authority + "/ HTTP/1.1\r\nHost: " + authority +
                         "\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                         "GET http://" +
                         authority + "/smuggled HTTP/1.1\r\nHost: " + authority + "\r\n\r\n"));
  auto r = read_response(c);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(r->get("Connection"), "close");
  EXPECT_EQ(r->get("Cache-Control"), "no-store");
  EXPECT_TRUE(c.at_eof());  // nothing else is read from this connection
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(origin.accepts(), 0);
  EXPECT_EQ(origin.request_count(), 0u);
}

TEST_F(ServerTest, OriginFormRequestGetsTheGatewayPage) {
  HttpOrigin origin([](const Message&) { return ok_response("no"); });
  start();
  auto c = client();
  ASSERT_TRUE(c.send_all("GET /<script>x HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  auto r = read_response(c);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(r->body.find("<script>"), std::string::npos);
  EXPECT_EQ(origin.accepts(), 0);
}

TEST_F(ServerTest, ViaLoopIsRefused) {
  HttpOrigin origin([](const Message&) { return ok_response("no"); });
  start();
  auto c = client();
  ASSERT_TRUE(c.send_all(get(origin.port(), "/", "Via: 1.1 pc-test\r\n")));
  auto r = read_response(c);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(origin.accepts(), 0);
}

TEST_F(ServerTest, RequestToTheProxyItselfIsRefused) {
  start();
  auto c = client();
  ASSERT_TRUE(c.send_all(get(port_, "/")));
  auto r = read_response(c);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 403);
}

// Denied destinations are refused after resolving and before connecting, for requests and
// tunnels alike, whether the request names an address or a host that resolves to one.
TEST_F(ServerTest, DeniedDestinationsAreNeverConnectedTo) {
  HttpOrigin origin([](const Message&) { return ok_response("secret"); });
  Options o;
  o.deny_destinations = R"(["127.0.0.0/8"])";
  o.connect_ports = {443, origin.port()};
  start(o);
  const std::string port = std::to_string(origin.port());
  for (const std::string& request :
       {get(origin.port()),
        "GET http://localhost:" + port + "/ HTTP/1.1\r\nHost: localhost:" + port + "\r\n\r\n",
        "CONNECT 127.0.0.1:" + port + " HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\n\r\n"}) {
    auto c = client();
    ASSERT_TRUE(c.send_all(request));
    auto r = read_response(c);
    ASSERT_TRUE(r.has_value()) << request;
    EXPECT_EQ(r->status, 403) << request;
    EXPECT_EQ(r->body.find("secret"), std::string::npos);
  }
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(origin.accepts(), 0);
  const auto lines = wait_log_lines(3);
  ASSERT_EQ(lines.size(), 3u);
  for (const auto& l : lines) EXPECT_NE(l.find("deny_destinations"), std::string::npos) << l;
}

// By default the proxy does not connect to "this network" (0.0.0.0 reaches the gateway's own
// host) or to link-local addresses (cloud metadata services).
TEST_F(ServerTest, DefaultDeniesThisNetworkAndLinkLocal) {
  HttpOrigin origin([](const Message&) { return ok_response("local service"); });
  start();
  const std::string port = std::to_string(origin.port());
  for (const std::string& authority :
       std::vector<std::string>{"0.0.0.0:" + port, "169.254.169.254", "[fe80::1]:80"}) {
    auto c = client();
    ASSERT_TRUE(c.send_all("GET http://" + authority +
                           "/latest/meta-data/ HTTP/1.1\r\nHost: " + authority + "\r\n\r\n"));
    auto r = read_response(c);
    ASSERT_TRUE(r.has_value()) << authority;
    EXPECT_EQ(r->status, 403) << authority;
  }
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(origin.accepts(), 0);
}

TEST_F(ServerTest, MaxForwardsZeroTraceAnsweredLocally) {
  HttpOrigin origin([](const Message&) { return ok_response("no"); });
  start();
  auto c = client();
  std::string authority = "127.0.0.1:" + std::to_string(origin.port());
  ASSERT_TRUE(c.send_all("TRACE http://" + authority + "/ HTTP/1.1\r\nHost: " + authority +
                         "\r\nMax-Forwards: 0\r\nCookie: secret=1\r\n\r\n"));
  auto r = read_response(c);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get("Content-Type"), "message/http");
  EXPECT_EQ(r->body.find("secret"), std::string::npos);
  EXPECT_EQ(origin.accepts(), 0);
}

// ---- CONNECT ----

TEST_F(ServerTest, ConnectRelaysBytesBothWays) {
  TcpServer echo([](Conn& c) {
    c.send_all("hello from server\n");
    for (;;) {
      auto line = c.read_until("\n");
      if (!line) return;  // the client half-closed: close too
      std::string up = *line;
      for (auto& ch : up) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      if (!c.send_all(up)) return;
    }
  });
  Options o;
  o.connect_ports = {443, echo.port()};
  start(o);
  auto c = client();
  std::string authority = "127.0.0.1:" + std::to_string(echo.port());
  ASSERT_TRUE(c.send_all("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n"));
  auto head = c.read_until("\r\n\r\n");
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->rfind("HTTP/1.1 200", 0), 0u) << *head;
  EXPECT_EQ(c.read_until("\n"), "hello from server\n");
  ASSERT_TRUE(c.send_all("ping\n"));
  EXPECT_EQ(c.read_until("\n"), "PING\n");
  std::string big(200000, 'q');
  big += '\n';
  ASSERT_TRUE(c.send_all(big));
  auto back = c.read_until("\n");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->size(), big.size());
  c.shutdown_write();
  EXPECT_TRUE(c.at_eof());
  EXPECT_EQ(echo.accepts(), 1);
}

TEST_F(ServerTest, ConnectToAPortNotAllowedIsRefused) {
  TcpServer echo([](Conn&) {});
  start();  // connect_ports = [443]
  auto c = client();
  std::string authority = "127.0.0.1:" + std::to_string(echo.port());
  ASSERT_TRUE(c.send_all("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n"));
  auto r = read_response(c);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 403);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(echo.accepts(), 0);
}

// ---- access log ----

TEST_F(ServerTest, AccessLogHasOneLinePerTransaction) {
  HttpOrigin origin([](const Message&) { return ok_response("12345"); });
  start();
  {
    auto c = client();
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(c.send_all(get(origin.port(), "/k" + std::to_string(i))));
      ASSERT_TRUE(read_response(c).has_value());
    }
  }
  {
    auto c = client();
    ASSERT_TRUE(c.send_all("GET http://127.0.0.1:" + std::to_string(origin.port()) +
                           "/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"));  // 400
    ASSERT_TRUE(read_response(c).has_value());
  }
  auto ls = wait_log_lines(4);
  std::this_thread::sleep_for(100ms);
  server_->access_log().flush();
  ls = log_lines();
  ASSERT_EQ(ls.size(), 4u);
  // A record is written once its response is out: the 400 of the second connection may come
  // before the last GET's. Each line is found by its URL.
  auto line_with = [&](const std::string& text) {
    for (const auto& l : ls)
      if (l.find(text) != std::string::npos) return l;
    return std::string();
  };
  for (int i = 0; i < 3; ++i) {
    const std::string l = line_with("/k" + std::to_string(i) + "\"");
    EXPECT_NE(l.find("\"url\":\"http://127.0.0.1:" + std::to_string(origin.port()) + "/k" +
                     std::to_string(i) + "\""),
              std::string::npos)
        << l;
    EXPECT_NE(l.find("\"status\":200"), std::string::npos) << l;
    EXPECT_NE(l.find("\"method\":\"GET\""), std::string::npos) << l;
    EXPECT_NE(l.find("\"client\":\"127.0.0.1\""), std::string::npos) << l;
    EXPECT_NE(l.find("\"listener\":\"proxy\""), std::string::npos) << l;
    EXPECT_NE(l.find("\"result\":\"allowed\""), std::string::npos) << l;
    EXPECT_NE(l.find("\"upstream\":\"127.0.0.1:" + std::to_string(origin.port()) + "\""),
              std::string::npos)
        << l;
  }
  const std::string bad = line_with("\"status\":400");
  EXPECT_NE(bad.find("\"result\":\"error\""), std::string::npos) << bad;
}

// ---- reload ----

TEST_F(ServerTest, ReloadAppliesXForwardedForRemove) {
  HttpOrigin origin([](const Message&) { return ok_response("x"); });
  start();
  {
    auto c = client();
    ASSERT_TRUE(c.send_all(get(origin.port(), "/before", "X-Forwarded-For: 10.9.9.9\r\n")));
    ASSERT_TRUE(read_response(c).has_value());
  }
  ASSERT_EQ(origin.request_count(), 1u);
  EXPECT_EQ(origin.requests()[0].get("X-Forwarded-For"), "10.9.9.9, 127.0.0.1");

  Options o;
  o.xff = "remove";
  auto next = make_config(dir_, o);  // as loaded: the listener port is 0 again
  ASSERT_NE(next, nullptr);
  std::string why;
  std::vector<std::string> errors;
  ASSERT_TRUE(server_->reload(next, why, errors));
  EXPECT_EQ(why, "");                  // same listeners and workers: nothing needs a restart
  std::this_thread::sleep_for(100ms);  // the new snapshot is posted to the workers

  // Several connections so both workers are exercised.
  for (int i = 0; i < 6; ++i) {
    auto c = client();
    ASSERT_TRUE(c.send_all(get(origin.port(), "/after", "X-Forwarded-For: 10.9.9.9\r\n")));
    ASSERT_TRUE(read_response(c).has_value());
  }
  auto reqs = origin.requests();
  ASSERT_EQ(reqs.size(), 7u);
  for (std::size_t i = 1; i < reqs.size(); ++i)
    EXPECT_EQ(reqs[i].count("X-Forwarded-For"), 0u) << "request " << i;
}

// A reload that denies an address also stops the reuse of pooled connections to it.
TEST_F(ServerTest, ReloadedDenyListAppliesToPooledConnections) {
  HttpOrigin origin([](const Message&) { return ok_response("x"); });
  start();
  {
    auto c = client();
    ASSERT_TRUE(c.send_all(get(origin.port(), "/before")));
    auto r = read_response(c);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200);
  }
  ASSERT_EQ(origin.request_count(), 1u);

  Options o;
  o.deny_destinations = R"(["127.0.0.0/8"])";
  auto next = make_config(dir_, o);
  ASSERT_NE(next, nullptr);
  std::string why;
  std::vector<std::string> errors;
  ASSERT_TRUE(server_->reload(next, why, errors));
  std::this_thread::sleep_for(100ms);  // the new snapshot is posted to the workers

  for (int i = 0; i < 6; ++i) {  // several connections, so that both workers answer
    auto c = client();
    ASSERT_TRUE(c.send_all(get(origin.port(), "/after")));
    auto r = read_response(c);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 403) << i;
  }
  EXPECT_EQ(origin.request_count(), 1u);
}

TEST_F(ServerTest, ReloadWithOtherListenersKeepsTheRunningOnes) {
  start();
  Options o;
  auto next = make_config(dir_, o, 1);  // a different port
  ASSERT_NE(next, nullptr);
  std::string why;
  std::vector<std::string> errors;
  ASSERT_TRUE(server_->reload(next, why, errors));
  EXPECT_NE(why.find("restart"), std::string::npos) << why;
  auto c = client();  // still listening where it was
  ASSERT_TRUE(c.send_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = read_response(c);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

// ---- monitoring ----

// One GET to the monitoring listener.
std::optional<Message> monitor_get(std::uint16_t port, std::string_view path) {
  auto c = Conn::connect_to(port);
  if (!c) return std::nullopt;
  if (!c->send_all("GET " + std::string(path) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
    return std::nullopt;
  return read_response(*c);
}

// The value of the sample line that starts with `series` (name and labels), or -1.
double sample(const std::string& text, std::string_view series) {
  std::size_t at = 0;
  while ((at = text.find(series, at)) != std::string::npos) {
    if ((at == 0 || text[at - 1] == '\n') && text.size() > at + series.size() &&
        text[at + series.size()] == ' ')
      return std::stod(text.substr(at + series.size() + 1));
    at += series.size();
  }
  return -1;
}

TEST_F(ServerTest, MonitoringEndpointsAnswer) {
  start();
  const auto mport = server_->monitoring_port();
  ASSERT_NE(mport, 0);
  auto h = monitor_get(mport, "/healthz");
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(h->body, "ok\n");
  auto r = monitor_get(mport, "/readyz");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_NE(r->body.find("\"ready\":true"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("\"name\":\"log sink access_log\""), std::string::npos) << r->body;
  auto st = monitor_get(mport, "/status?x=1");
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->status, 200);
  EXPECT_EQ(st->get("Content-Type"), "application/json");
  EXPECT_NE(st->body.find("\"name\":\"pc-test\""), std::string::npos) << st->body;
  auto m = monitor_get(mport, "/metrics");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->status, 200);
  EXPECT_EQ(m->get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(sample(m->body, "portcullis_ready"), 1) << m->body;
  auto nf = monitor_get(mport, "/nothing");
  ASSERT_TRUE(nf.has_value());
  EXPECT_EQ(nf->status, 404);
}

TEST_F(ServerTest, MetricsCountProxiedTransactions) {
  HttpOrigin origin([](const Message&) { return ok_response("hello"); });
  start();
  const std::string series =
      "portcullis_transactions_total{listener=\"proxy\",mode=\"http\",decision=\"allow\","
      "result=\"allowed\"}";
  auto before = monitor_get(server_->monitoring_port(), "/metrics");
  ASSERT_TRUE(before.has_value());
  EXPECT_EQ(sample(before->body, series), -1);  // no such transaction yet
  for (int i = 0; i < 3; ++i) {
    auto c = client();
    ASSERT_TRUE(c.send_all(get(origin.port(), "/m")));
    auto resp = read_response(c);
    ASSERT_TRUE(resp.has_value());
    EXPECT_EQ(resp->status, 200);
  }
  // Counted when the transaction is finished, right after the response is written.
  double n = -1;
  std::string text;
  for (int i = 0; i < 100 && n < 3; ++i) {
    auto m = monitor_get(server_->monitoring_port(), "/metrics");
    ASSERT_TRUE(m.has_value());
    text = m->body;
    n = sample(text, series);
    if (n < 3) std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(n, 3) << text;
  EXPECT_GE(sample(text, "portcullis_phase_duration_seconds_count{phase=\"connect\"}"), 1);
  EXPECT_GE(sample(text, "portcullis_phase_duration_seconds_count{phase=\"first_byte\"}"), 3);
  EXPECT_GE(sample(text, "portcullis_connections_accepted_total{listener=\"proxy\"}"), 3);
  EXPECT_GT(sample(text, "portcullis_client_bytes_total{listener=\"proxy\",direction=\"out\"}"), 0);
}

TEST_F(ServerTest, ProxyRefusesItsOwnMonitoringPort) {
  start();
  const auto mport = server_->monitoring_port();
  auto c = client();
  std::string authority = "127.0.0.1:" + std::to_string(mport);
  ASSERT_TRUE(c.send_all("GET http://" + authority + "/metrics HTTP/1.1\r\nHost: " + authority +
                         "\r\n\r\n"));
  auto r = read_response(c);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(r->body.find("portcullis_"), std::string::npos);
  auto lines = wait_log_lines(1);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("destination is the gateway itself"), std::string::npos) << lines[0];
}

TEST_F(ServerTest, NotReadyWhileDraining) {
  HttpOrigin origin([](const Message& m) {
    if (m.start.find("/slow") != std::string::npos) std::this_thread::sleep_for(1s);
    return ok_response("done");
  });
  start();
  const auto mport = server_->monitoring_port();
  auto c = client();
  ASSERT_TRUE(c.send_all(get(origin.port(), "/slow")));
  ASSERT_TRUE(origin.wait_for_requests(1, 5s));
  std::thread drainer([&] { server_->drain_and_stop(); });
  std::optional<Message> r;
  for (int i = 0; i < 50; ++i) {  // the drain flag is set at once; the slow response holds it
    r = monitor_get(mport, "/readyz");
    if (r && r->status == 503) break;
    std::this_thread::sleep_for(10ms);
  }
  auto resp = read_response(c);
  drainer.join();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->body.find("draining"), std::string::npos) << r->body;
  ASSERT_TRUE(resp.has_value());
  EXPECT_EQ(resp->status, 200);
  EXPECT_FALSE(Conn::connect_to(mport).has_value());  // the monitoring listener is closed too
}

// ---- drain ----

TEST_F(ServerTest, DrainLetsASlowResponseComplete) {
  HttpOrigin origin([](const Message& m) {
    if (m.start.find("/slow") != std::string::npos) std::this_thread::sleep_for(1s);
    return ok_response("done");
  });
  start();
  // An idle keep-alive connection: drain closes it.
  auto idle = client();
  ASSERT_TRUE(idle.send_all(get(origin.port(), "/fast")));
  ASSERT_TRUE(read_response(idle).has_value());

  auto c = client();
  ASSERT_TRUE(c.send_all(get(origin.port(), "/slow")));
  ASSERT_TRUE(origin.wait_for_requests(2, 5s));
  auto t0 = std::chrono::steady_clock::now();
  std::thread drainer([&] { server_->drain_and_stop(); });
  auto r = read_response(c);
  drainer.join();
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "done");
  EXPECT_EQ(r->get("Connection"), "close");
  EXPECT_LT(took, 4s);
  EXPECT_TRUE(idle.at_eof());
  EXPECT_FALSE(Conn::connect_to(port_).has_value());  // no longer accepting
  EXPECT_EQ(server_->connections(), 0u);
  // drain_and_stop flushes the access log.
  EXPECT_EQ(log_lines().size(), 2u);
}

}  // namespace
}  // namespace pc::itest
