// Resolver against a fake DNS server on 127.0.0.1 (UDP and TCP on one random port).
#include "net/resolver.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <cerrno>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>
#include <tuple>

namespace pc::net {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::uint16_t kTypeA = 1;
constexpr std::uint16_t kTypeAaaa = 28;
constexpr std::uint8_t kNoError = 0;
constexpr std::uint8_t kServFail = 2;
constexpr std::uint8_t kNxDomain = 3;
constexpr std::uint8_t kRefused = 5;

// Serves a fixed zone. Unknown names get NXDOMAIN; counts every question it receives.
class FakeDns {
 public:
  struct Answer {
    std::vector<std::string> addresses;  // of the question's type
    std::uint8_t rcode = kNoError;
    std::uint32_t ttl = 300;
    bool silent = false;        // never answer
    bool truncate_udp = false;  // over UDP: TC bit and no records
  };

  FakeDns() {
    add("dual.test", {{"192.0.2.1", "192.0.2.2"}}, {{"2001:db8::1", "2001:db8::2"}});
    add("coalesce.test", {{"192.0.2.40"}}, {{"2001:db8::40"}});
    add("lopsided.test", {{"192.0.2.9", "192.0.2.10", "192.0.2.11"}}, {{"2001:db8::9"}});
    add("v4only.test", {{"192.0.2.4", "192.0.2.5", "192.0.2.6"}}, {});
    add("nodata.test", {}, {});
    add("short.test", {{"192.0.2.3"}, kNoError, 30}, {{"2001:db8::3"}, kNoError, 60});
    add("mixed.test", {{"192.0.2.20"}}, {{}, kServFail});
    add("refused.test", {{}, kRefused}, {{}, kRefused});
    add("servfail.test", {{}, kServFail}, {{}, kServFail});
    Answer silent;
    silent.silent = true;
    add("silent.test", silent, silent);
    Answer tc4{{"192.0.2.30"}};
    tc4.truncate_udp = true;
    Answer tc6{{"2001:db8::30"}};
    tc6.truncate_udp = true;
    add("tc.test", tc4, tc6);
    for (const char* n : {"one.test", "two.test", "three.test"}) add(n, {{"192.0.2.50"}}, {});

    // UDP and TCP on the same random port.
    for (int attempt = 0; attempt < 20 && udp_ < 0; ++attempt) {
      const int u = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
      sockaddr_in sa = loopback(0);
      if (u < 0 || bind(u, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        if (u >= 0) close(u);
        continue;
      }
      socklen_t len = sizeof sa;
      getsockname(u, reinterpret_cast<sockaddr*>(&sa), &len);
      const int t = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      if (t >= 0 && bind(t, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
          listen(t, 16) == 0) {
        udp_ = u;
        tcp_ = t;
        port_ = ntohs(sa.sin_port);
      } else {
        close(u);
        if (t >= 0) close(t);
      }
    }
    if (udp_ < 0) throw std::runtime_error("fake DNS server: cannot bind 127.0.0.1");
    thread_ = std::thread([this] { loop(); });
  }

  ~FakeDns() {
    stop_ = true;
    thread_.join();
    for (auto& [fd, buf] : clients_) close(fd);
    close(udp_);
    close(tcp_);
  }

  FakeDns(const FakeDns&) = delete;
  FakeDns& operator=(const FakeDns&) = delete;

  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }

  int count(const std::string& name, std::uint16_t type, std::optional<bool> tcp = {}) const {
    std::lock_guard lock(mu_);
    int n = 0;
    for (const auto& [key, c] : counts_) {
      if (std::get<0>(key) == name && std::get<1>(key) == type &&
          (!tcp || std::get<2>(key) == *tcp)) {
        n += c;
      }
    }
    return n;
  }
  int total() const {
    std::lock_guard lock(mu_);
    int n = 0;
    for (const auto& [key, c] : counts_) n += c;
    return n;
  }

 private:
  static sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
  }

  void add(const std::string& name, Answer a, Answer aaaa) {
    zone_[{name, kTypeA}] = std::move(a);
    zone_[{name, kTypeAaaa}] = std::move(aaaa);
  }

  // The response to one query; empty to stay silent.
  std::vector<std::uint8_t> respond(const std::uint8_t* q, std::size_t len, bool tcp) {
    if (len < 12) return {};
    std::size_t pos = 12;
    std::string name;
    while (pos < len && q[pos] != 0) {
      const std::size_t l = q[pos];
      if ((l & 0xc0) != 0 || pos + 1 + l > len) return {};
      if (!name.empty()) name += '.';
      for (std::size_t i = 0; i < l; ++i) {
        const char c = static_cast<char>(q[pos + 1 + i]);
        name += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
      }
      pos += 1 + l;
    }
    if (pos + 5 > len) return {};
    pos += 1;
    const auto type = static_cast<std::uint16_t>(q[pos] << 8 | q[pos + 1]);
    pos += 4;
    {
      std::lock_guard lock(mu_);
      ++counts_[{name, type, tcp}];
    }
    Answer ans;
    ans.rcode = kNxDomain;
    if (const auto it = zone_.find({name, type}); it != zone_.end()) {
      ans = it->second;
    } else if (zone_.count({name, kTypeA}) != 0) {
      ans = Answer{};  // a listed name, another type: no data
    }
    if (ans.silent) return {};
    const bool truncated = ans.truncate_udp && !tcp;
    std::vector<std::uint8_t> r(q, q + pos);
    r[2] = static_cast<std::uint8_t>(0x80 | 0x04 | (q[2] & 0x01) | (truncated ? 0x02 : 0));
    r[3] = static_cast<std::uint8_t>(0x80 | ans.rcode);
    const std::size_t n = truncated ? 0 : ans.addresses.size();
    r[4] = 0;
    r[5] = 1;
    r[6] = 0;
    r[7] = static_cast<std::uint8_t>(n);
    for (int i = 8; i < 12; ++i) r[i] = 0;  // no authority, no additional
    for (std::size_t i = 0; i < n; ++i) {
      const auto addr = boost::asio::ip::make_address(ans.addresses[i]);
      const std::uint16_t rtype = addr.is_v4() ? kTypeA : kTypeAaaa;
      r.insert(r.end(), {0xc0, 0x0c, 0, static_cast<std::uint8_t>(rtype), 0, 1});
      for (int shift = 24; shift >= 0; shift -= 8) {
        r.push_back(static_cast<std::uint8_t>(ans.ttl >> shift));
      }
      if (addr.is_v4()) {
        const auto b = addr.to_v4().to_bytes();
        r.insert(r.end(), {0, 4});
        r.insert(r.end(), b.begin(), b.end());
      } else {
        const auto b = addr.to_v6().to_bytes();
        r.insert(r.end(), {0, 16});
        r.insert(r.end(), b.begin(), b.end());
      }
    }
    return r;
  }

  void loop() {
    while (!stop_) {
      std::vector<pollfd> fds{{udp_, POLLIN, 0}, {tcp_, POLLIN, 0}};
      for (const auto& [fd, buf] : clients_) fds.push_back({fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), 20) <= 0) continue;
      if ((fds[0].revents & POLLIN) != 0) serve_udp();
      if ((fds[1].revents & POLLIN) != 0) {
        const int c = accept4(tcp_, nullptr, nullptr, 0);
        if (c >= 0) clients_[c];
      }
      for (std::size_t i = 2; i < fds.size(); ++i) {
        if (fds[i].revents != 0) serve_tcp(fds[i].fd);
      }
    }
  }

  void serve_udp() {
    std::uint8_t buf[4096];
    sockaddr_in from{};
    socklen_t flen = sizeof from;
    const ssize_t n = recvfrom(udp_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &flen);
    if (n <= 0) return;
    const std::vector<std::uint8_t> r = respond(buf, static_cast<std::size_t>(n), false);
    if (!r.empty()) sendto(udp_, r.data(), r.size(), 0, reinterpret_cast<sockaddr*>(&from), flen);
  }

  void serve_tcp(int fd) {
    std::uint8_t chunk[4096];
    const ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0) {
      close(fd);
      clients_.erase(fd);
      return;
    }
    std::vector<std::uint8_t>& buf = clients_[fd];
    buf.insert(buf.end(), chunk, chunk + n);
    while (buf.size() >= 2) {
      const std::size_t len = static_cast<std::size_t>(buf[0] << 8 | buf[1]);
      if (buf.size() < 2 + len) break;
      std::vector<std::uint8_t> r = respond(buf.data() + 2, len, true);
      buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(2 + len));
      if (r.empty()) continue;
      const std::uint8_t prefix[2] = {static_cast<std::uint8_t>(r.size() >> 8),
                                      static_cast<std::uint8_t>(r.size())};
      r.insert(r.begin(), prefix, prefix + 2);
      std::size_t off = 0;
      const auto deadline = Clock::now() + 1s;
      while (off < r.size() && Clock::now() < deadline) {
        const ssize_t w = write(fd, r.data() + off, r.size() - off);
        if (w > 0) {
          off += static_cast<std::size_t>(w);
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
          break;
        }
      }
    }
  }

  int udp_ = -1;
  int tcp_ = -1;
  std::uint16_t port_ = 0;
  std::map<std::pair<std::string, std::uint16_t>, Answer> zone_;
  std::map<int, std::vector<std::uint8_t>> clients_;
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::uint16_t, bool>, int> counts_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A resolve() running on the test's io_context.
struct Call {
  std::optional<ResolveResult> result;
  bool threw = false;
};

std::shared_ptr<Call> spawn(asio::io_context& io, Resolver& r, std::string host) {
  auto call = std::make_shared<Call>();
  asio::co_spawn(io, r.resolve(std::move(host)), [call](std::exception_ptr e, ResolveResult res) {
    if (e) {
      call->threw = true;
    } else {
      call->result = std::move(res);
    }
  });
  return call;
}

// Runs io until done() or the limit; true if done() held.
bool run_until(asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds limit = 3000ms) {
  const auto deadline = Clock::now() + limit;
  while (!done() && Clock::now() < deadline) {
    io.restart();
    if (io.run_for(10ms) == 0) std::this_thread::sleep_for(1ms);
  }
  return done();
}

// A loopback UDP port nobody listens on (bound and released at once); 0 on failure.
std::uint16_t unused_port() {
  const int s = socket(AF_INET, SOCK_DGRAM, 0);
  if (s < 0) return 0;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  std::uint16_t port = 0;
  if (bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
      getsockname(s, reinterpret_cast<sockaddr*>(&sa), &len) == 0) {
    port = ntohs(sa.sin_port);
  }
  close(s);
  return port;
}

std::vector<std::string> strings(const std::vector<asio::ip::address>& v) {
  std::vector<std::string> out;
  for (const auto& a : v) out.push_back(a.to_string());
  return out;
}

class ResolverTest : public ::testing::Test {
 protected:
  ResolverConfig config() const {
    ResolverConfig cfg;
    cfg.servers = {dns.server()};
    cfg.timeout = 1000ms;
    cfg.tries = 1;
    return cfg;
  }

  // Resolves host and returns the result; fails the test if it does not complete in time.
  ResolveResult resolve(Resolver& r, std::string host, std::chrono::milliseconds limit = 3000ms) {
    auto call = spawn(io, r, std::move(host));
    EXPECT_TRUE(run_until(
        io, [&] { return call->result.has_value() || call->threw; }, limit));
    EXPECT_FALSE(call->threw);
    return call->result.value_or(ResolveResult{});
  }

  FakeDns dns;
  asio::io_context io;
};

TEST(DescribeTest, ShortEnglishText) {
  EXPECT_EQ(describe(DnsStatus::ok), "ok");
  EXPECT_EQ(describe(DnsStatus::not_found), "name not found (NXDOMAIN)");
  EXPECT_EQ(describe(DnsStatus::refused), "DNS server refused the query");
  EXPECT_EQ(describe(DnsStatus::timeout), "DNS timeout");
  EXPECT_EQ(describe(DnsStatus::error), "DNS error");
}

TEST_F(ResolverTest, IpLiteralsBypassDnsAndCache) {
  Resolver r(io, config());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"192.0.2.7", "192.0.2.7"},
      {"2001:db8::7", "2001:db8::7"},
      {"[2001:db8::8]", "2001:db8::8"},
      {"[192.0.2.8]", "192.0.2.8"},
  };
  for (const auto& [in, out] : cases) {
    const ResolveResult res = resolve(r, in);
    EXPECT_EQ(res.status, DnsStatus::ok) << in;
    EXPECT_EQ(strings(res.addresses), std::vector<std::string>{out}) << in;
    EXPECT_FALSE(res.from_cache) << in;
  }
  EXPECT_EQ(r.stats().queries, 0u);
  EXPECT_EQ(r.stats().cache_hits, 0u);
  EXPECT_EQ(dns.total(), 0);
}

TEST_F(ResolverTest, DualStackInterleavedAndCached) {
  Resolver r(io, config());
  const ResolveResult first = resolve(r, "dual.test");
  ASSERT_EQ(first.status, DnsStatus::ok);
  EXPECT_FALSE(first.from_cache);
  const std::vector<std::string> expected = {"2001:db8::1", "192.0.2.1", "2001:db8::2",
                                             "192.0.2.2"};
  EXPECT_EQ(strings(first.addresses), expected);
  EXPECT_EQ(dns.count("dual.test", kTypeA), 1);
  EXPECT_EQ(dns.count("dual.test", kTypeAaaa), 1);

  // Within the TTL, whatever the case or a root dot: no query.
  const ResolveResult second = resolve(r, "DUAL.Test.");
  EXPECT_EQ(second.status, DnsStatus::ok);
  EXPECT_TRUE(second.from_cache);
  EXPECT_EQ(strings(second.addresses), expected);
  EXPECT_EQ(dns.count("dual.test", kTypeA), 1);
  EXPECT_EQ(dns.count("dual.test", kTypeAaaa), 1);
  EXPECT_EQ(r.stats().queries, 1u);
  EXPECT_EQ(r.stats().cache_hits, 1u);
  EXPECT_EQ(r.stats().failures, 0u);
}

TEST_F(ResolverTest, HappyEyeballsOrder) {
  Resolver r(io, config());
  const ResolveResult lop = resolve(r, "lopsided.test");
  ASSERT_EQ(lop.status, DnsStatus::ok);
  EXPECT_EQ(strings(lop.addresses),
            (std::vector<std::string>{"2001:db8::9", "192.0.2.9", "192.0.2.10", "192.0.2.11"}));
  const ResolveResult v4 = resolve(r, "v4only.test");
  ASSERT_EQ(v4.status, DnsStatus::ok);
  EXPECT_EQ(strings(v4.addresses),
            (std::vector<std::string>{"192.0.2.4", "192.0.2.5", "192.0.2.6"}));
}

TEST_F(ResolverTest, OneFamilyFailingStillOk) {
  Resolver r(io, config());
  const ResolveResult res = resolve(r, "mixed.test");
  EXPECT_EQ(res.status, DnsStatus::ok);
  EXPECT_EQ(strings(res.addresses), std::vector<std::string>{"192.0.2.20"});
}

TEST_F(ResolverTest, PositiveCacheExpiresAfterClampedTtl) {
  ResolverConfig cfg = config();
  cfg.min_ttl = 1s;
  cfg.max_ttl = 1s;
  Resolver r(io, cfg);
  EXPECT_EQ(resolve(r, "short.test").status, DnsStatus::ok);
  EXPECT_EQ(dns.count("short.test", kTypeA), 1);
  const ResolveResult cached = resolve(r, "short.test");
  EXPECT_TRUE(cached.from_cache);
  EXPECT_EQ(dns.count("short.test", kTypeA), 1);

  std::this_thread::sleep_for(1100ms);
  const ResolveResult again = resolve(r, "short.test");
  EXPECT_EQ(again.status, DnsStatus::ok);
  EXPECT_FALSE(again.from_cache);
  EXPECT_EQ(strings(again.addresses), (std::vector<std::string>{"2001:db8::3", "192.0.2.3"}));
  EXPECT_EQ(dns.count("short.test", kTypeA), 2);
  EXPECT_EQ(dns.count("short.test", kTypeAaaa), 2);
}

TEST_F(ResolverTest, NxdomainIsCachedNegatively) {
  Resolver r(io, config());
  const ResolveResult first = resolve(r, "nx.test");
  EXPECT_EQ(first.status, DnsStatus::not_found);
  EXPECT_TRUE(first.addresses.empty());
  const ResolveResult second = resolve(r, "nx.test");
  EXPECT_EQ(second.status, DnsStatus::not_found);
  EXPECT_TRUE(second.from_cache);
  EXPECT_EQ(dns.count("nx.test", kTypeA), 1);
  EXPECT_EQ(dns.count("nx.test", kTypeAaaa), 1);
  EXPECT_EQ(r.stats().failures, 1u);
  EXPECT_EQ(r.stats().cache_hits, 1u);

  // A name without A or AAAA data is not found as well.
  EXPECT_EQ(resolve(r, "nodata.test").status, DnsStatus::not_found);
  EXPECT_TRUE(resolve(r, "nodata.test").from_cache);
}

TEST_F(ResolverTest, NegativeTtlZeroDisablesNegativeCaching) {
  ResolverConfig cfg = config();
  cfg.negative_ttl = 0s;
  Resolver r(io, cfg);
  EXPECT_EQ(resolve(r, "nx.test").status, DnsStatus::not_found);
  EXPECT_FALSE(resolve(r, "nx.test").from_cache);
  EXPECT_EQ(dns.count("nx.test", kTypeA), 2);
}

TEST_F(ResolverTest, RefusedAndServfailAreNotCached) {
  Resolver r(io, config());
  EXPECT_EQ(resolve(r, "refused.test").status, DnsStatus::refused);
  const ResolveResult again = resolve(r, "refused.test");
  EXPECT_EQ(again.status, DnsStatus::refused);
  EXPECT_FALSE(again.from_cache);
  EXPECT_EQ(dns.count("refused.test", kTypeA), 2);
  EXPECT_EQ(dns.count("refused.test", kTypeAaaa), 2);

  EXPECT_EQ(resolve(r, "servfail.test").status, DnsStatus::refused);
  EXPECT_FALSE(resolve(r, "servfail.test").from_cache);
  EXPECT_EQ(dns.count("servfail.test", kTypeA), 2);
  EXPECT_EQ(r.stats().failures, 4u);
}

TEST_F(ResolverTest, SilentServerTimesOut) {
  ResolverConfig cfg = config();
  cfg.timeout = 200ms;
  cfg.tries = 1;
  Resolver r(io, cfg);
  const auto start = Clock::now();
  const ResolveResult res = resolve(r, "silent.test");
  const auto elapsed = Clock::now() - start;
  EXPECT_EQ(res.status, DnsStatus::timeout);
  EXPECT_GE(elapsed, 150ms);
  EXPECT_LT(elapsed, 2500ms);
  EXPECT_EQ(dns.count("silent.test", kTypeA), 1);
  EXPECT_EQ(r.stats().timeouts, 1u);
  EXPECT_EQ(r.stats().failures, 1u);

  // Not cached: asked again.
  EXPECT_EQ(resolve(r, "silent.test").status, DnsStatus::timeout);
  EXPECT_EQ(dns.count("silent.test", kTypeA), 2);
  EXPECT_EQ(r.stats().timeouts, 2u);
}

TEST_F(ResolverTest, UnreachableServerIsTimeout) {
  const std::uint16_t port = unused_port();
  ASSERT_NE(port, 0);
  ResolverConfig cfg = config();
  cfg.servers = {"127.0.0.1:" + std::to_string(port)};
  cfg.timeout = 200ms;
  Resolver r(io, cfg);
  EXPECT_EQ(resolve(r, "dual.test").status, DnsStatus::timeout);
  EXPECT_EQ(r.stats().timeouts, 1u);
}

TEST_F(ResolverTest, SecondServerAnswersWhenFirstIsSilent) {
  const std::uint16_t dead = unused_port();
  ASSERT_NE(dead, 0);
  ResolverConfig cfg = config();
  cfg.servers = {"127.0.0.1:" + std::to_string(dead), dns.server()};
  cfg.timeout = 200ms;
  Resolver r(io, cfg);
  const ResolveResult res = resolve(r, "dual.test");
  EXPECT_EQ(res.status, DnsStatus::ok);
  EXPECT_EQ(res.addresses.size(), 4u);
}

TEST_F(ResolverTest, TruncatedUdpAnswerRetriedOverTcp) {
  Resolver r(io, config());
  const ResolveResult res = resolve(r, "tc.test");
  ASSERT_EQ(res.status, DnsStatus::ok);
  EXPECT_EQ(strings(res.addresses), (std::vector<std::string>{"2001:db8::30", "192.0.2.30"}));
  EXPECT_EQ(dns.count("tc.test", kTypeA, false), 1);
  EXPECT_EQ(dns.count("tc.test", kTypeA, true), 1);
  EXPECT_EQ(dns.count("tc.test", kTypeAaaa, false), 1);
  EXPECT_EQ(dns.count("tc.test", kTypeAaaa, true), 1);
}

TEST_F(ResolverTest, ConcurrentResolvesShareOneQuery) {
  Resolver r(io, config());
  auto a = spawn(io, r, "coalesce.test");
  auto b = spawn(io, r, "Coalesce.Test");
  ASSERT_TRUE(run_until(io, [&] { return a->result && b->result; }));
  EXPECT_EQ(a->result->status, DnsStatus::ok);
  EXPECT_EQ(b->result->status, DnsStatus::ok);
  EXPECT_EQ(strings(a->result->addresses),
            (std::vector<std::string>{"2001:db8::40", "192.0.2.40"}));
  EXPECT_EQ(a->result->addresses, b->result->addresses);
  EXPECT_EQ(dns.count("coalesce.test", kTypeA), 1);
  EXPECT_EQ(dns.count("coalesce.test", kTypeAaaa), 1);
  EXPECT_EQ(r.stats().queries, 1u);
  EXPECT_EQ(r.stats().coalesced, 1u);
}

TEST_F(ResolverTest, LocalhostFromHostsFile) {
  Resolver r(io, config());
  const ResolveResult res = resolve(r, "localhost");
  ASSERT_EQ(res.status, DnsStatus::ok);
  const std::vector<std::string> got = strings(res.addresses);
  EXPECT_TRUE(std::find(got.begin(), got.end(), "127.0.0.1") != got.end() ||
              std::find(got.begin(), got.end(), "::1") != got.end());
  EXPECT_EQ(dns.total(), 0);
  EXPECT_EQ(r.stats().queries, 0u);
}

TEST_F(ResolverTest, NamesUnderLocalhostAreLoopback) {
  Resolver r(io, config());
  const ResolveResult res = resolve(r, "app.localhost");
  ASSERT_EQ(res.status, DnsStatus::ok);
  EXPECT_EQ(strings(res.addresses), (std::vector<std::string>{"::1", "127.0.0.1"}));
  EXPECT_EQ(dns.total(), 0);
}

TEST_F(ResolverTest, HostsFileCanBeSkipped) {
  ResolverConfig cfg = config();
  cfg.use_hosts_file = false;
  Resolver r(io, cfg);
  // The fake server does not know localhost.
  EXPECT_EQ(resolve(r, "localhost").status, DnsStatus::not_found);
  EXPECT_EQ(dns.count("localhost", kTypeA), 1);
}

TEST(ParseHostsTest, NamesAliasesFamiliesAndJunk) {
  const HostsTable t = parse_hosts(
      "# comment line\n"
      "127.0.0.1\tlocalhost\n"
      "10.1.2.3   Intranet.Example.   intra  # trailing comment\n"
      "fd00::5 intranet.example\r\n"
      "10.1.2.4 intranet.example\n"
      "10.1.2.3 intranet.example\n"       // the same address again
      "::ffff:10.9.9.9 mapped.example\n"  // IPv4-mapped: skipped
      "not-an-address broken.example\n"
      "10.7.7.7\n"  // no name
      "   \n"
      "10.8.8.8 bad\\name good.example\n"
      "10.9.9.9 odd..\n");  // one final dot goes, as from a name resolve() is asked for
  auto get = [&](const std::string& name) {
    auto it = t.find(name);
    return it == t.end() ? std::vector<std::string>{} : strings(it->second);
  };
  EXPECT_EQ(get("localhost"), std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(get("intranet.example"), (std::vector<std::string>{"fd00::5", "10.1.2.3", "10.1.2.4"}));
  EXPECT_EQ(get("intra"), std::vector<std::string>{"10.1.2.3"});
  EXPECT_EQ(get("good.example"), std::vector<std::string>{"10.8.8.8"});
  EXPECT_EQ(t.count("mapped.example"), 0u);
  EXPECT_EQ(t.count("broken.example"), 0u);
  EXPECT_EQ(t.count("bad\\name"), 0u);
  EXPECT_EQ(get("odd."), std::vector<std::string>{"10.9.9.9"});
  EXPECT_EQ(t.size(), 5u);
}

// A hosts file of the test's own: names it lists never reach DNS; a change is seen.
TEST_F(ResolverTest, HostsFileListsNamesAndChangesAreSeen) {
  char tmpl[] = "/tmp/pc-hosts-XXXXXX";
  const int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ::close(fd);
  const std::string path = tmpl;
  auto write = [&](const std::string& text) { std::ofstream(path, std::ios::trunc) << text; };
  write("10.1.2.3 intranet.example intra\nfd00::5 intranet.example\n");
  ResolverConfig cfg = config();
  cfg.hosts_file = path;
  cfg.hosts_check = 0ms;
  cfg.cache_entries = 0;
  Resolver r(io, cfg);
  ResolveResult res = resolve(r, "INTRA.");
  ASSERT_EQ(res.status, DnsStatus::ok);
  EXPECT_EQ(strings(res.addresses), std::vector<std::string>{"10.1.2.3"});
  res = resolve(r, "intranet.example");
  EXPECT_EQ(strings(res.addresses), (std::vector<std::string>{"fd00::5", "10.1.2.3"}));
  EXPECT_EQ(dns.total(), 0);

  write("10.4.4.4 later.example\n");  // a new file of another size
  res = resolve(r, "later.example");
  ASSERT_EQ(res.status, DnsStatus::ok);
  EXPECT_EQ(strings(res.addresses), std::vector<std::string>{"10.4.4.4"});
  EXPECT_EQ(resolve(r, "intra").status, DnsStatus::not_found);  // gone: asked of DNS
  EXPECT_EQ(dns.count("intra", kTypeA), 1);

  ::unlink(path.c_str());  // no file: nothing listed, localhost still loopback
  EXPECT_EQ(resolve(r, "later.example").status, DnsStatus::not_found);
  res = resolve(r, "localhost");
  EXPECT_EQ(strings(res.addresses), (std::vector<std::string>{"::1", "127.0.0.1"}));
}

TEST_F(ResolverTest, CacheIsBounded) {
  ResolverConfig cfg = config();
  cfg.cache_entries = 2;
  Resolver r(io, cfg);
  EXPECT_EQ(resolve(r, "one.test").status, DnsStatus::ok);
  EXPECT_EQ(resolve(r, "two.test").status, DnsStatus::ok);
  EXPECT_TRUE(resolve(r, "one.test").from_cache);  // two.test is now the oldest
  EXPECT_EQ(resolve(r, "three.test").status, DnsStatus::ok);
  EXPECT_TRUE(resolve(r, "one.test").from_cache);
  EXPECT_TRUE(resolve(r, "three.test").from_cache);
  EXPECT_FALSE(resolve(r, "two.test").from_cache);
  EXPECT_EQ(dns.count("one.test", kTypeA), 1);
  EXPECT_EQ(dns.count("two.test", kTypeA), 2);
}

TEST_F(ResolverTest, CacheCanBeDisabled) {
  ResolverConfig cfg = config();
  cfg.cache_entries = 0;
  Resolver r(io, cfg);
  EXPECT_EQ(resolve(r, "dual.test").status, DnsStatus::ok);
  EXPECT_FALSE(resolve(r, "dual.test").from_cache);
  EXPECT_EQ(dns.count("dual.test", kTypeA), 2);
}

TEST_F(ResolverTest, BadNamesAreErrors) {
  Resolver r(io, config());
  EXPECT_EQ(resolve(r, "").status, DnsStatus::error);
  EXPECT_EQ(resolve(r, "bad name.test").status, DnsStatus::error);
  EXPECT_EQ(resolve(r, std::string(300, 'a')).status, DnsStatus::error);
  EXPECT_EQ(resolve(r, "a..test").status, DnsStatus::error);
  EXPECT_EQ(dns.total(), 0);
}

TEST_F(ResolverTest, ShutdownCompletesQueryInFlight) {
  ResolverConfig cfg = config();
  cfg.timeout = 5000ms;
  Resolver r(io, cfg);
  auto call = spawn(io, r, "silent.test");
  ASSERT_TRUE(run_until(io, [&] { return dns.count("silent.test", kTypeAaaa) > 0; }));
  EXPECT_FALSE(call->result.has_value());
  const auto start = Clock::now();
  r.shutdown();
  ASSERT_TRUE(run_until(
      io, [&] { return call->result.has_value(); }, 1000ms));
  EXPECT_LT(Clock::now() - start, 1000ms);
  EXPECT_EQ(call->result->status, DnsStatus::error);

  // Stopped: names fail at once, literals still work; shutdown() is idempotent.
  EXPECT_EQ(resolve(r, "dual.test").status, DnsStatus::error);
  EXPECT_EQ(resolve(r, "192.0.2.1").status, DnsStatus::ok);
  r.shutdown();
  EXPECT_EQ(dns.count("dual.test", kTypeA), 0);
}

TEST_F(ResolverTest, DestructionCompletesQueryInFlight) {
  ResolverConfig cfg = config();
  cfg.timeout = 5000ms;
  auto r = std::make_unique<Resolver>(io, cfg);
  auto a = spawn(io, *r, "silent.test");
  auto b = spawn(io, *r, "silent.test");
  ASSERT_TRUE(run_until(io, [&] { return dns.count("silent.test", kTypeAaaa) > 0; }));
  r.reset();
  ASSERT_TRUE(run_until(
      io, [&] { return a->result && b->result; }, 1000ms));
  EXPECT_EQ(a->result->status, DnsStatus::error);
  EXPECT_EQ(b->result->status, DnsStatus::error);
}

TEST_F(ResolverTest, ServerFormats) {
  ResolverConfig cfg = config();
  cfg.servers = {"127.0.0.1", "127.0.0.1:5353", "[::1]:5353", "[::1]", "::1"};
  EXPECT_NO_THROW({ Resolver probe(io, cfg); });
  for (const char* bad :
       {"not an address", "127.0.0.1:0", "127.0.0.1:99999", "[::1", "[::1]x53", "127.0.0.1:53x"}) {
    cfg.servers = {bad};
    EXPECT_THROW({ Resolver probe(io, cfg); }, std::invalid_argument) << bad;
  }
}

}  // namespace
}  // namespace pc::net
