// telemetry: SyslogSink against small receivers in the test (loopback, ports picked by the
// kernel): UDP datagrams, TCP with octet counting, a receiver that is down, goes away or
// comes back, the queue on disk across restarts, the queue limit.
#include "telemetry/syslog.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

namespace pc::telemetry {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

AccessRecord record(int i) {
  AccessRecord r;
  r.time = std::chrono::system_clock::now();
  r.request_id = "id-" + std::to_string(i);
  r.listener = "proxy";
  r.client = "127.0.0.1";
  r.method = "GET";
  r.url = "http://example.com/" + std::to_string(i);
  r.status = 200;
  return r;
}

Batch batch(int from, int to) {
  auto b = std::make_shared<Records>();
  for (int i = from; i < to; ++i) b->push_back(record(i));
  return b;
}

// "id-N" from a message's structured data.
std::string id_of(std::string_view msg) {
  auto at = msg.find("request_id=\"");
  if (at == std::string_view::npos) return "?";
  at += 12;
  return std::string(msg.substr(at, msg.find('"', at) - at));
}

std::vector<std::string> ids(int from, int to) {
  std::vector<std::string> v;
  for (int i = from; i < to; ++i) v.push_back("id-" + std::to_string(i));
  return v;
}

// Waits (bounded) until pred() holds.
template <class P>
bool eventually(P pred, std::chrono::milliseconds limit = 20s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

int listen_tcp(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 16) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::uint16_t port_of(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// A TCP syslog receiver: accepts connections one after the other, reads octet-counted frames,
// keeps the messages. close_after(n) makes it close the connection once it holds n messages
// (the next connection is accepted as usual).
class TcpReceiver {
 public:
  explicit TcpReceiver(std::uint16_t port = 0) {
    fd_ = listen_tcp(port);
    if (fd_ >= 0) port_ = port_of(fd_);
    thread_ = std::thread([this] { run(); });
  }
  ~TcpReceiver() { stop(); }
  bool ok() const { return fd_ >= 0; }
  std::uint16_t port() const { return port_; }
  void close_after(std::size_t n) { close_after_ = n; }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  std::vector<std::string> messages() {
    std::lock_guard lk(mu_);
    return msgs_;
  }
  std::size_t count() {
    std::lock_guard lk(mu_);
    return msgs_.size();
  }
  int connections() const { return connections_; }
  bool framing_error() const { return framing_error_; }

 private:
  void run() {
    while (!stop_ && fd_ >= 0) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      ++connections_;
      serve(c);
      ::close(c);
    }
  }
  void serve(int c) {
    std::string buf;
    char tmp[65536];
    while (!stop_) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
      if (n <= 0) return;
      buf.append(tmp, static_cast<std::size_t>(n));
      for (;;) {
        std::string_view msg;
        std::size_t len = 0;
        auto st = parse_octet_frame(buf, 1 << 20, msg, len);
        if (st == FrameStatus::invalid) framing_error_ = true;
        if (st != FrameStatus::complete) break;
        {
          std::lock_guard lk(mu_);
          msgs_.emplace_back(msg);
          if (close_after_ != 0 && msgs_.size() >= close_after_) {
            close_after_ = 0;
            return;  // unread bytes are lost with the connection, as with a receiver that dies
          }
        }
        buf.erase(0, len);
      }
    }
  }
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false}, framing_error_{false};
  std::atomic<std::size_t> close_after_{0};
  std::atomic<int> connections_{0};
  std::mutex mu_;
  std::vector<std::string> msgs_;
  std::thread thread_;
};

class SyslogSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pc-syslog-sink-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  SyslogOptions options(Transport t, std::uint16_t port) {
    SyslogOptions o;
    o.name = "test";
    o.host = "127.0.0.1";
    o.port = port;
    o.transport = t;
    o.header.hostname = "gw";
    o.header.procid = "1";
    o.spool_dir = dir_ / "spool";
    o.retry_min = 20ms;
    o.retry_max = 200ms;
    o.connect_timeout = 2s;
    o.stop_grace = 2s;
    return o;
  }
  // A port nothing listens on (bound, then closed).
  static std::uint16_t closed_port() {
    int fd = listen_tcp(0);
    auto p = port_of(fd);
    ::close(fd);
    return p;
  }
  fs::path dir_;
};

TEST_F(SyslogSinkTest, TcpDeliversInOrderWithOctetCounting) {
  TcpReceiver rx;
  ASSERT_TRUE(rx.ok());
  SyslogSink sink(options(Transport::tcp, rx.port()));
  for (int i = 0; i < 1000; i += 100) sink.write(batch(i, i + 100));
  ASSERT_TRUE(eventually([&] { return rx.count() >= 1000; })) << rx.count();
  auto msgs = rx.messages();
  std::vector<std::string> got;
  for (const auto& m : msgs) got.push_back(id_of(m));
  EXPECT_EQ(got, ids(0, 1000));
  EXPECT_FALSE(rx.framing_error());
  EXPECT_TRUE(msgs[0].starts_with("<134>1 ")) << msgs[0];
  ASSERT_TRUE(eventually([&] { return sink.stats().written == 1000; }));
  auto st = sink.stats();
  EXPECT_EQ(st.name, "syslog:test");
  EXPECT_TRUE(st.connected);
  EXPECT_EQ(st.dropped, 0u);
  EXPECT_EQ(st.queued, 0u);
  EXPECT_EQ(rx.connections(), 1);
}

TEST_F(SyslogSinkTest, ConnectedStateFollowsTheReceiverWithoutRecords) {
  // No record is written: the state still says whether the receiver could take one.
  auto port = closed_port();
  SyslogSink sink(options(Transport::tcp, port));
  ASSERT_TRUE(eventually([&] { return !sink.stats().detail.ends_with("over tcp"); }));
  EXPECT_FALSE(sink.stats().connected);
  EXPECT_NE(sink.stats().detail.find("Connection refused"), std::string::npos)
      << sink.stats().detail;
  TcpReceiver rx(port);
  ASSERT_TRUE(rx.ok());
  ASSERT_TRUE(eventually([&] { return sink.stats().connected; }));
  EXPECT_EQ(sink.stats().detail, "127.0.0.1:" + std::to_string(port) + " over tcp");
  // Connected once the kernel completed the handshake; the receiver accepts a moment later.
  ASSERT_TRUE(eventually([&] { return rx.connections() == 1; }));
  rx.stop();  // the idle connection is checked: the state changes without any record
  ASSERT_TRUE(eventually([&] { return !sink.stats().connected; }));
  EXPECT_EQ(sink.stats().written, 0u);
}

TEST_F(SyslogSinkTest, ReceiverDownThenUpGetsEverythingInOrder) {
  auto port = closed_port();
  SyslogSink sink(options(Transport::tcp, port));
  sink.write(batch(0, 50));
  // Nothing listens: the records wait on disk.
  ASSERT_TRUE(eventually([&] { return sink.stats().queued == 50; }));
  std::this_thread::sleep_for(100ms);  // a few refused attempts
  EXPECT_FALSE(sink.stats().connected);
  EXPECT_EQ(sink.stats().written, 0u);
  sink.write(batch(50, 80));
  TcpReceiver rx(port);
  ASSERT_TRUE(rx.ok());
  ASSERT_TRUE(eventually([&] { return rx.count() >= 80; })) << rx.count();
  std::vector<std::string> got;
  for (const auto& m : rx.messages()) got.push_back(id_of(m));
  EXPECT_EQ(got, ids(0, 80));
  ASSERT_TRUE(eventually([&] { return sink.stats().queued == 0; }));
  EXPECT_EQ(sink.stats().dropped, 0u);
}

TEST_F(SyslogSinkTest, ReceiverThatClosesTheConnectionLosesNothing) {
  TcpReceiver rx;
  ASSERT_TRUE(rx.ok());
  SyslogSink sink(options(Transport::tcp, rx.port()));
  sink.write(batch(0, 10));
  ASSERT_TRUE(eventually([&] { return rx.count() >= 10 && sink.stats().queued == 0; }));
  rx.close_after(11);  // takes one more, then hangs up
  sink.write(batch(10, 11));
  ASSERT_TRUE(eventually([&] { return rx.count() >= 11 && sink.stats().queued == 0; }));
  // The next records find the connection closed: they go over a new one.
  std::this_thread::sleep_for(50ms);
  sink.write(batch(11, 40));
  ASSERT_TRUE(eventually([&] { return rx.count() >= 40; })) << rx.count();
  std::vector<std::string> got;
  for (const auto& m : rx.messages()) got.push_back(id_of(m));
  EXPECT_EQ(got, ids(0, 40));
  EXPECT_GE(rx.connections(), 2);
}

TEST_F(SyslogSinkTest, RecordsLeftOnDiskAreSentAfterARestart) {
  auto port = closed_port();
  {
    auto o = options(Transport::tcp, port);
    o.stop_grace = 100ms;
    SyslogSink sink(o);
    sink.write(batch(0, 25));
    ASSERT_TRUE(eventually([&] { return sink.stats().queued == 25; }));
  }  // stopped with the receiver still down
  TcpReceiver rx(port);
  ASSERT_TRUE(rx.ok());
  SyslogSink sink(options(Transport::tcp, port));
  EXPECT_EQ(sink.stats().queued + sink.stats().written, 25u);
  sink.write(batch(25, 30));
  ASSERT_TRUE(eventually([&] { return rx.count() >= 30; })) << rx.count();
  std::vector<std::string> got;
  for (const auto& m : rx.messages()) got.push_back(id_of(m));
  EXPECT_EQ(got, ids(0, 30));
}

TEST_F(SyslogSinkTest, QueueLimitDropsAndCounts) {
  auto o = options(Transport::tcp, closed_port());
  o.queue_limit = 64 * 1024;
  SyslogSink sink(o);
  int next = 0;
  for (int round = 0; round < 20; ++round, next += 100) sink.write(batch(next, next + 100));
  auto st = sink.stats();
  EXPECT_GT(st.dropped, 0u);
  EXPECT_EQ(st.dropped + st.queued, 2000u);
  EXPECT_EQ(st.written, 0u);
  // About 64 KiB of messages of about 500 bytes each are kept.
  EXPECT_GT(st.queued, 64u);
  EXPECT_LT(st.queued, 200u);
}

TEST_F(SyslogSinkTest, SecurityOnlyDestination) {
  TcpReceiver rx;
  ASSERT_TRUE(rx.ok());
  auto o = options(Transport::tcp, rx.port());
  o.security_only = true;
  o.format = SyslogFormat::cef;
  SyslogSink sink(o);
  auto b = std::make_shared<Records>();
  for (int i = 0; i < 6; ++i) {
    auto r = record(i);
    if (i % 2 == 1) {
      r.result = Result::denied;
      r.status = 403;
    }
    b->push_back(r);
  }
  sink.write(b);
  // Written means sent; the receiver may not have read them yet.
  ASSERT_TRUE(eventually([&] { return rx.count() >= 3; })) << rx.count();
  auto msgs = rx.messages();
  ASSERT_EQ(msgs.size(), 3u);
  for (const auto& m : msgs) {
    EXPECT_NE(m.find(" block - CEF:0|Portcullis|Portcullis|"), std::string::npos) << m;
    EXPECT_NE(m.find("|block|Access blocked|5|"), std::string::npos) << m;
  }
  EXPECT_NE(msgs[0].find("externalId=id-1"), std::string::npos) << msgs[0];
  ASSERT_TRUE(eventually([&] { return sink.stats().written == 3; }));
}

TEST_F(SyslogSinkTest, UdpOneDatagramPerRecord) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  int big = 4 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  auto port = port_of(fd);
  SyslogSink sink(options(Transport::udp, port));
  sink.write(batch(0, 20));
  std::vector<std::string> got;
  char buf[65536];
  for (int i = 0; i < 20; ++i) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) break;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    std::string_view m(buf, static_cast<std::size_t>(n));
    EXPECT_TRUE(m.starts_with("<134>1 ")) << m;  // no framing: the datagram is the message
    got.push_back(id_of(m));
  }
  ::close(fd);
  EXPECT_EQ(got, ids(0, 20));
  ASSERT_TRUE(eventually([&] { return sink.stats().written == 20; }));
  EXPECT_TRUE(sink.stats().connected);
  EXPECT_FALSE(fs::exists(dir_ / "spool"));  // UDP never touches the disk
}

TEST_F(SyslogSinkTest, UdpQueueLimitInMemory) {
  // An unresolvable host: nothing is sent, the memory queue fills, the rest is counted.
  auto o = options(Transport::udp, 514);
  o.host = "name.invalid";
  o.queue_limit = 4096;
  SyslogSink sink(o);
  sink.write(batch(0, 100));
  auto st = sink.stats();
  EXPECT_GT(st.dropped, 0u);
  EXPECT_EQ(st.dropped + st.queued, 100u);
  EXPECT_FALSE(st.connected);
}

TEST_F(SyslogSinkTest, TlsWithoutTheCaFileFailsAtStart) {
  auto o = options(Transport::tls, 6514);
  o.tls_ca = dir_ / "missing-ca.pem";
  EXPECT_THROW(SyslogSink{o}, std::runtime_error);
}

}  // namespace
}  // namespace pc::telemetry
