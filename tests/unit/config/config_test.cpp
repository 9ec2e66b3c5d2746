// config::load_string: the shipped file, defaults, every validation error, path resolution.
#include "config/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

#include <unistd.h>

namespace pc::config {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
namespace fs = std::filesystem;

const fs::path kName = "/etc/portcullis/portcullis.toml";

std::string shipped_text() {
  std::ifstream in(fs::path(PC_SOURCE_DIR) / "config" / "portcullis.toml", std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Loads text that must be valid; fails the test with every error otherwise.
std::shared_ptr<const Config> ok(std::string_view text, const fs::path& name = kName) {
  auto r = load_string(text, name);
  for (const auto& e : r.errors) ADD_FAILURE() << format(e);
  return r.config;
}

// Loads text that must be invalid.
std::vector<Error> bad(std::string_view text, const fs::path& name = kName) {
  auto r = load_string(text, name);
  EXPECT_TRUE(r.config == nullptr) << "accepted:\n" << text;
  EXPECT_FALSE(r.errors.empty()) << text;
  return r.errors;
}

bool any_message_contains(const std::vector<Error>& errs, std::string_view what) {
  return std::any_of(errs.begin(), errs.end(),
                     [&](const Error& e) { return e.message.find(what) != std::string::npos; });
}

std::string all(const std::vector<Error>& errs) {
  std::string s;
  for (const auto& e : errs) s += format(e) + "\n";
  return s;
}

// Compares two folders ignoring a trailing separator.
fs::path norm(const fs::path& p) {
  return (p / "x").lexically_normal().parent_path();
}

unsigned expected_workers() {
  return std::max(1u, std::thread::hardware_concurrency());
}

// ---- the shipped configuration ----

TEST(ConfigShipped, LoadsWithDocumentedValues) {
  std::string text = shipped_text();
  ASSERT_FALSE(text.empty()) << "config/portcullis.toml not found";
  auto c = ok(text);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->source, kName);
  EXPECT_EQ(c->name, default_gateway_name());
  EXPECT_EQ(c->workers, expected_workers());  // 0 = one per core
  EXPECT_EQ(norm(c->state_dir), fs::path("/etc/portcullis"));

  ASSERT_EQ(c->listeners.size(), 4u);
  EXPECT_EQ(c->listeners[0].name, "proxy");
  EXPECT_EQ(c->listeners[0].address, "::");
  EXPECT_EQ(c->listeners[0].port, 8080);
  EXPECT_FALSE(c->listeners[0].guest);
  EXPECT_EQ(c->listeners[1].name, "guest");
  EXPECT_EQ(c->listeners[1].address, "::");
  EXPECT_EQ(c->listeners[1].port, 8081);
  EXPECT_TRUE(c->listeners[1].guest);
  EXPECT_EQ(c->listeners[2].port, 1344);
  EXPECT_EQ(c->listeners[2].protocol, Protocol::icap);
  EXPECT_EQ(c->listeners[3].port, 11344);
  EXPECT_EQ(c->listeners[3].protocol, Protocol::icaps);
  {
    const Icap def;
    const auto& ic = c->icap;
    EXPECT_EQ(ic.client_networks.size(), 6u);
    EXPECT_EQ(ic.reqmod_service, def.reqmod_service);
    EXPECT_EQ(ic.respmod_service, def.respmod_service);
    EXPECT_EQ(ic.reqmod_aliases, def.reqmod_aliases);
    EXPECT_EQ(ic.respmod_aliases, def.respmod_aliases);
    EXPECT_EQ(ic.preview, def.preview);
    EXPECT_EQ(ic.options_ttl, def.options_ttl);
    EXPECT_EQ(ic.max_connections, def.max_connections);
    EXPECT_EQ(ic.buffer_for_204, def.buffer_for_204);
    EXPECT_TRUE(ic.transfer_ignore.empty());  // every extension previewed
    EXPECT_TRUE(ic.transfer_complete.empty());
    EXPECT_EQ(ic.user_headers, def.user_headers);
    EXPECT_EQ(ic.group_headers, def.group_headers);
    EXPECT_EQ(ic.client_ip_headers, def.client_ip_headers);
    EXPECT_EQ(ic.user_encoding, def.user_encoding);
    EXPECT_EQ(norm(ic.tls_certificate), fs::path("/etc/portcullis/tls/icap.crt"));
    EXPECT_EQ(norm(ic.tls_key), fs::path("/etc/portcullis/tls/icap.key"));
    EXPECT_TRUE(ic.tls_client_ca.empty());
  }

  {
    Scan def;
    def.shipped_signatures = c->scan.shipped_signatures;
    def.threads = c->scan.threads;
    const auto& sc = c->scan;
    EXPECT_TRUE(sc.enabled);
    EXPECT_EQ(sc.clamav_dir, def.clamav_dir);
    EXPECT_TRUE(sc.yara_dir.empty());
    EXPECT_EQ(sc.max_scan_size, def.max_scan_size);
    EXPECT_EQ(sc.block_too_large, def.block_too_large);
    EXPECT_EQ(sc.block_unscannable, def.block_unscannable);
    EXPECT_EQ(sc.on_failure, def.on_failure);
    EXPECT_EQ(sc.memory_buffer, def.memory_buffer);
    EXPECT_EQ(sc.spool_limit, def.spool_limit);
    EXPECT_EQ(sc.threads, expected_workers());
    EXPECT_EQ(sc.queue, def.queue);
    EXPECT_EQ(sc.cache_entries, def.cache_entries);
    EXPECT_EQ(sc.max_recursion, def.max_recursion);
    EXPECT_EQ(sc.max_files, def.max_files);
    EXPECT_EQ(sc.max_expanded, def.max_expanded);
    EXPECT_EQ(sc.trickle_after, def.trickle_after);
    EXPECT_EQ(sc.shipped_signatures, fs::path(PC_SHIPPED_SIGNATURES));
  }

  EXPECT_EQ(c->client_networks.size(), 6u);
  EXPECT_EQ(c->connect_ports, std::vector<std::uint16_t>{443});
  ASSERT_EQ(c->deny_destinations.size(), 4u);
  for (const char* ip : {"0.0.0.0", "0.1.2.3", "::", "169.254.169.254", "fe80::1"}) {
    bool denied = false;
    for (const auto& n : c->deny_destinations) denied = denied || n.contains(*base::parse_ip(ip));
    EXPECT_TRUE(denied) << ip;
  }
  for (const auto& n : c->deny_destinations) {
    EXPECT_FALSE(n.contains(*base::parse_ip("127.0.0.1")));
    EXPECT_FALSE(n.contains(*base::parse_ip("10.1.2.3")));
    EXPECT_FALSE(n.contains(*base::parse_ip("::1")));
  }
  EXPECT_EQ(c->x_forwarded_for, XffMode::add);
  EXPECT_EQ(c->max_connections, 20000u);
  EXPECT_EQ(c->max_connections_per_client, 512u);

  EXPECT_EQ(c->limits.max_head_bytes, 65536u);
  EXPECT_EQ(c->limits.max_fields, 100u);
  EXPECT_EQ(c->limits.max_field_bytes, 16384u);
  EXPECT_EQ(c->limits.max_url_bytes, 8192u);
  EXPECT_EQ(c->limits.max_chunk_size_digits, 16u);

  EXPECT_EQ(c->timeouts.header_read, seconds(30));
  EXPECT_EQ(c->timeouts.keepalive_idle, seconds(60));
  EXPECT_EQ(c->timeouts.upstream_connect, seconds(10));
  EXPECT_EQ(c->timeouts.upstream_first_byte, seconds(60));
  EXPECT_EQ(c->timeouts.body_idle, seconds(60));
  EXPECT_EQ(c->timeouts.tunnel_idle, seconds(600));
  EXPECT_EQ(c->timeouts.upstream_keepalive_idle, seconds(30));
  EXPECT_EQ(c->timeouts.drain, seconds(30));

  EXPECT_TRUE(c->dns.servers.empty());
  EXPECT_EQ(c->dns.timeout, milliseconds(2000));
  EXPECT_EQ(c->dns.tries, 2);
  EXPECT_TRUE(c->dns.use_hosts_file);
  EXPECT_EQ(c->dns.cache_entries, 10000u);
  EXPECT_EQ(c->dns.min_ttl, seconds(5));
  EXPECT_EQ(c->dns.max_ttl, seconds(3600));
  EXPECT_EQ(c->dns.negative_ttl, seconds(10));

  EXPECT_TRUE(c->parents.empty());
  EXPECT_TRUE(c->direct_domains.empty());
  EXPECT_EQ(c->parent_retry_after, seconds(30));

  EXPECT_EQ(c->access_log_path, fs::path("/etc/portcullis/log/access.log"));
  EXPECT_EQ(c->access_log_format, LogFormat::json);
  EXPECT_EQ(c->log_level, "info");

  EXPECT_TRUE(c->monitoring.enabled);
  EXPECT_EQ(c->monitoring.address, "127.0.0.1");
  EXPECT_EQ(c->monitoring.port, 2812);
  EXPECT_FALSE(c->monitoring.allow_remote);

  EXPECT_TRUE(c->log_store.enabled);
  EXPECT_EQ(c->log_store.path, fs::path("/etc/portcullis/logs.db"));
  EXPECT_EQ(c->log_store.retention_days, 30u);
  EXPECT_EQ(c->log_store.max_size_mb, 1024u);
  EXPECT_EQ(c->log_store.queue, 65536u);
  EXPECT_EQ(c->log_store.flush_interval, seconds(1));
}

TEST(ConfigShipped, ClientNetworksAreThePrivateRanges) {
  auto c = ok(shipped_text());
  ASSERT_NE(c, nullptr);
  auto allowed = [&](const char* ip) {
    auto a = base::parse_ip(ip);
    EXPECT_TRUE(a.has_value()) << ip;
    for (const auto& n : c->client_networks)
      if (n.contains(*a)) return true;
    return false;
  };
  for (auto ip : {"127.0.0.1", "::1", "10.1.2.3", "172.31.255.255", "192.168.0.1", "fd00::1"})
    EXPECT_TRUE(allowed(ip)) << ip;
  for (auto ip : {"8.8.8.8", "172.32.0.1", "2001:db8::1", "::2", "11.0.0.1"})
    EXPECT_FALSE(allowed(ip)) << ip;
}

TEST(ConfigShipped, LoadFileReadsTheSameFile) {
  auto r = load_file(fs::path(PC_SOURCE_DIR) / "config" / "portcullis.toml");
  ASSERT_NE(r.config, nullptr) << all(r.errors);
  EXPECT_EQ(r.config->listeners.size(), 4u);
}

TEST(ConfigShipped, LoadFileMissing) {
  auto r = load_file("/nonexistent/portcullis.toml");
  EXPECT_EQ(r.config, nullptr);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].file, "/nonexistent/portcullis.toml");
}

// ---- defaults ----

TEST(ConfigDefaults, EmptyText) {
  auto c = ok("");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->name, default_gateway_name());
  EXPECT_EQ(c->security_log_path, fs::path("/etc/portcullis/log/security.log"));
  EXPECT_TRUE(c->syslog.empty());
  EXPECT_EQ(c->workers, expected_workers());
  EXPECT_EQ(norm(c->state_dir), fs::path("/etc/portcullis"));
  ASSERT_EQ(c->listeners.size(), 4u);
  EXPECT_EQ(c->listeners[0].name, "proxy");
  EXPECT_EQ(c->listeners[0].address, "::");
  EXPECT_EQ(c->listeners[0].port, 8080);
  EXPECT_FALSE(c->listeners[0].guest);
  EXPECT_EQ(c->listeners[1].name, "guest");
  EXPECT_EQ(c->listeners[1].address, "::");
  EXPECT_EQ(c->listeners[1].port, 8081);
  EXPECT_TRUE(c->listeners[1].guest);
  EXPECT_EQ(c->listeners[2].name, "icap");
  EXPECT_EQ(c->listeners[2].port, 1344);
  EXPECT_EQ(c->listeners[2].protocol, Protocol::icap);
  EXPECT_EQ(c->listeners[3].name, "icaps");
  EXPECT_EQ(c->listeners[3].port, 11344);
  EXPECT_EQ(c->listeners[3].protocol, Protocol::icaps);
  EXPECT_EQ(c->listeners[0].protocol, Protocol::proxy);
  EXPECT_EQ(norm(c->icap.tls_certificate), fs::path("/etc/portcullis/tls/icap.crt"));
  EXPECT_EQ(norm(c->icap.tls_key), fs::path("/etc/portcullis/tls/icap.key"));
  EXPECT_TRUE(c->icap.tls_client_ca.empty());
  EXPECT_EQ(c->icap.reqmod_service, "reqmod");
  EXPECT_EQ(c->icap.respmod_service, "respmod");
  EXPECT_EQ(c->icap.preview, 1024u);
  EXPECT_EQ(c->icap.buffer_for_204, 65536u);
  EXPECT_EQ(c->icap.user_encoding, UserEncoding::automatic);
  EXPECT_EQ(c->client_networks.size(), default_client_networks().size());
  EXPECT_EQ(c->connect_ports, std::vector<std::uint16_t>{443});
  EXPECT_EQ(c->x_forwarded_for, XffMode::add);
  EXPECT_EQ(c->timeouts.drain, seconds(30));
  EXPECT_EQ(c->access_log_path, fs::path("/etc/portcullis/log/access.log"));
  EXPECT_EQ(c->access_log_format, LogFormat::json);
  EXPECT_EQ(c->log_level, "info");
}

TEST(ConfigDefaults, EmptySectionsKeepDefaults) {
  auto c = ok(
      "[gateway]\n[proxy]\n[limits]\n[timeouts]\n[dns]\n[upstream]\n[access_log]\n[log]\n[icap]\n");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->listeners.size(), 4u);
  EXPECT_EQ(c->icap.respmod_aliases, Icap{}.respmod_aliases);
  EXPECT_EQ(c->client_networks.size(), 6u);
  EXPECT_EQ(c->limits.max_head_bytes, 65536u);
  EXPECT_EQ(c->timeouts.header_read, seconds(30));
  EXPECT_EQ(c->dns.tries, 2);
  EXPECT_EQ(c->access_log_path, fs::path("/etc/portcullis/log/access.log"));
}

TEST(ConfigDefaults, ExplicitListenersReplaceTheDefaults) {
  auto c = ok("[[listeners]]\naddress = \"127.0.0.1\"\nport = 3128\n");
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->listeners.size(), 1u);
  EXPECT_EQ(c->listeners[0].name, "proxy");
  EXPECT_EQ(c->listeners[0].address, "127.0.0.1");
  EXPECT_EQ(c->listeners[0].port, 3128);
}

TEST(ConfigDefaults, GuestListenerWithoutNameIsNamedGuest) {
  auto c = ok("[[listeners]]\nport = 3128\nguest = true\n");
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->listeners.size(), 1u);
  EXPECT_EQ(c->listeners[0].name, "guest");
  EXPECT_EQ(c->listeners[0].address, "::");
  EXPECT_TRUE(c->listeners[0].guest);
}

TEST(ConfigDefaults, IcapListenersTuneTheirSocketsAndProxyListenersLeaveItToTheKernel) {
  auto d = ok("");
  ASSERT_NE(d, nullptr);
  for (const auto& l : d->listeners) {
    const bool icap = l.protocol != Protocol::proxy;
    EXPECT_EQ(l.tcp_congestion, icap ? "cubic" : "") << l.name;
    EXPECT_EQ(l.receive_buffer, icap ? 1048576u : 0u) << l.name;
    EXPECT_FALSE(l.tcp_congestion_set) << l.name;
    EXPECT_FALSE(l.receive_buffer_set) << l.name;
  }
  auto c =
      ok("[[listeners]]\nport = 1\nprotocol = \"icap\"\n"
         "[[listeners]]\nport = 2\nprotocol = \"icap\"\ntcp_congestion = \"\"\n"
         "receive_buffer = 0\n"
         "[[listeners]]\nport = 3\ntcp_congestion = \"reno\"\nreceive_buffer = 262144\n"
         "[[listeners]]\nport = 4\n");
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->listeners.size(), 4u);
  EXPECT_EQ(c->listeners[0].tcp_congestion, "cubic");
  EXPECT_EQ(c->listeners[0].receive_buffer, 1048576u);
  EXPECT_FALSE(c->listeners[0].tcp_congestion_set);
  EXPECT_EQ(c->listeners[1].tcp_congestion, "");  // the kernel's, by choice
  EXPECT_EQ(c->listeners[1].receive_buffer, 0u);
  EXPECT_TRUE(c->listeners[1].tcp_congestion_set);
  EXPECT_TRUE(c->listeners[1].receive_buffer_set);
  EXPECT_EQ(c->listeners[2].tcp_congestion, "reno");
  EXPECT_EQ(c->listeners[2].receive_buffer, 262144u);
  EXPECT_TRUE(c->listeners[2].tcp_congestion_set);
  EXPECT_TRUE(c->listeners[2].receive_buffer_set);
  EXPECT_EQ(c->listeners[3].tcp_congestion, "");
  EXPECT_EQ(c->listeners[3].receive_buffer, 0u);
}

TEST(ConfigErrors, ReceiveBufferRange) {
  for (const char* v : {"-1", "67108865", "\"1 MiB\""}) {
    auto errs = bad(std::string("[[listeners]]\nport = 1\nreceive_buffer = ") + v + "\n");
    ASSERT_FALSE(errs.empty()) << v;
    EXPECT_EQ(errs[0].line, 3) << v;
    EXPECT_NE(errs[0].message.find("'receive_buffer' must be"), std::string::npos)
        << v << " -> " << errs[0].message;
  }
}

TEST(ConfigErrors, TcpCongestionName) {
  for (const char* v : {"Cubic", "cubic reno", "a_name_too_long_", "bbr\\n"}) {
    auto errs = bad(std::string("[[listeners]]\nport = 1\ntcp_congestion = \"") + v + "\"\n");
    ASSERT_FALSE(errs.empty()) << v;
    EXPECT_EQ(errs[0].line, 3) << v;
    EXPECT_NE(errs[0].message.find("'tcp_congestion' must be empty"), std::string::npos)
        << v << " -> " << errs[0].message;
  }
  auto errs = bad("[[listeners]]\nport = 1\ntcp_congestion = 1\n");
  ASSERT_FALSE(errs.empty());
}

TEST(ConfigValues, EverySettingIsRead) {
  auto c = ok(R"(
[gateway]
name = "gw1"
workers = 3
[[listeners]]
name = "a"
address = "127.0.0.1"
port = 1
[proxy]
client_networks = ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"]
connect_ports = [443, 8443, 65535]
deny_destinations = ["10.9.0.0/16", "2001:db8::/32"]
x_forwarded_for = "remove"
max_connections = 10
max_connections_per_client = 2
[limits]
max_head_bytes = 1024
max_fields = 1
max_field_bytes = 64
max_url_bytes = 64
max_chunk_size_digits = 1
[timeouts]
header_read = 0.05
keepalive_idle = 1.5
upstream_connect = 2
upstream_first_byte = 3
body_idle = 4
tunnel_idle = 604800
upstream_keepalive_idle = 5
drain = 0
[dns]
servers = ["192.0.2.53", "192.0.2.54:5353", "[2001:db8::53]:53", "2001:db8::54", "[2001:db8::55]"]
timeout = 0.25
tries = 10
hosts_file = false
cache_entries = 0
min_ttl = 0
max_ttl = 60
negative_ttl = 1
[upstream]
direct_domains = ["Example.COM", ".intra.example.", "localhost"]
retry_after = 0.5
[[upstream.parents]]
host = "parent.example.net"
[[upstream.parents]]
host = "10.0.0.1"
port = 8080
username = "u"
password = "p:w"
[access_log]
format = "squid"
[log]
level = "debug"
)");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->name, "gw1");
  EXPECT_EQ(c->workers, 3u);
  ASSERT_EQ(c->listeners.size(), 1u);
  EXPECT_EQ(c->listeners[0].port, 1);
  ASSERT_EQ(c->client_networks.size(), 3u);
  EXPECT_TRUE(c->client_networks[2].contains(*base::parse_ip("198.51.100.7")));
  EXPECT_FALSE(c->client_networks[2].contains(*base::parse_ip("198.51.100.8")));
  EXPECT_EQ(c->connect_ports, (std::vector<std::uint16_t>{443, 8443, 65535}));
  ASSERT_EQ(c->deny_destinations.size(), 2u);
  EXPECT_TRUE(c->deny_destinations[0].contains(*base::parse_ip("10.9.1.1")));
  EXPECT_FALSE(c->deny_destinations[0].contains(*base::parse_ip("169.254.169.254")));
  EXPECT_EQ(c->x_forwarded_for, XffMode::remove);
  EXPECT_EQ(c->max_connections, 10u);
  EXPECT_EQ(c->max_connections_per_client, 2u);
  EXPECT_EQ(c->limits.max_head_bytes, 1024u);
  EXPECT_EQ(c->limits.max_fields, 1u);
  EXPECT_EQ(c->limits.max_field_bytes, 64u);
  EXPECT_EQ(c->limits.max_url_bytes, 64u);
  EXPECT_EQ(c->limits.max_chunk_size_digits, 1u);
  EXPECT_EQ(c->timeouts.header_read, milliseconds(50));
  EXPECT_EQ(c->timeouts.keepalive_idle, milliseconds(1500));
  EXPECT_EQ(c->timeouts.upstream_connect, seconds(2));
  EXPECT_EQ(c->timeouts.upstream_first_byte, seconds(3));
  EXPECT_EQ(c->timeouts.body_idle, seconds(4));
  EXPECT_EQ(c->timeouts.tunnel_idle, seconds(604800));
  EXPECT_EQ(c->timeouts.upstream_keepalive_idle, seconds(5));
  EXPECT_EQ(c->timeouts.drain, milliseconds(0));
  EXPECT_EQ(c->dns.servers,
            (std::vector<std::string>{"192.0.2.53", "192.0.2.54:5353", "[2001:db8::53]:53",
                                      "2001:db8::54", "[2001:db8::55]"}));
  EXPECT_EQ(c->dns.timeout, milliseconds(250));
  EXPECT_EQ(c->dns.tries, 10);
  EXPECT_FALSE(c->dns.use_hosts_file);
  EXPECT_EQ(c->dns.cache_entries, 0u);
  EXPECT_EQ(c->dns.min_ttl, seconds(0));
  EXPECT_EQ(c->dns.max_ttl, seconds(60));
  EXPECT_EQ(c->dns.negative_ttl, seconds(1));
  EXPECT_EQ(c->direct_domains,
            (std::vector<std::string>{"example.com", "intra.example", "localhost"}));
  EXPECT_EQ(c->parent_retry_after, milliseconds(500));
  ASSERT_EQ(c->parents.size(), 2u);
  EXPECT_EQ(c->parents[0].host, "parent.example.net");
  EXPECT_EQ(c->parents[0].port, 3128);
  EXPECT_EQ(c->parents[1].host, "10.0.0.1");
  EXPECT_EQ(c->parents[1].port, 8080);
  EXPECT_EQ(c->parents[1].username, "u");
  EXPECT_EQ(c->parents[1].password, "p:w");
  EXPECT_EQ(c->access_log_format, LogFormat::squid);
  EXPECT_EQ(c->log_level, "debug");
}

TEST(ConfigValues, XffModes) {
  EXPECT_EQ(ok("[proxy]\nx_forwarded_for = \"add\"\n")->x_forwarded_for, XffMode::add);
  EXPECT_EQ(ok("[proxy]\nx_forwarded_for = \"keep\"\n")->x_forwarded_for, XffMode::keep);
  EXPECT_EQ(ok("[proxy]\nx_forwarded_for = \"remove\"\n")->x_forwarded_for, XffMode::remove);
}

TEST(ConfigValues, EmptyClientNetworksDeniesEveryone) {
  auto c = ok("[proxy]\nclient_networks = []\n");
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->client_networks.empty());
}

// ---- validation errors ----

struct BadCase {
  const char* text;
  int line;          // expected line of the (single) error
  const char* what;  // a part of the message
};

class ConfigError : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigError, ReportedWithLine) {
  const auto& p = GetParam();
  auto errs = bad(p.text);
  ASSERT_EQ(errs.size(), 1u) << all(errs);
  EXPECT_EQ(errs[0].file, kName.string());
  EXPECT_EQ(errs[0].line, p.line) << all(errs);
  EXPECT_GT(errs[0].column, 0) << all(errs);
  EXPECT_NE(errs[0].message.find(p.what), std::string::npos) << all(errs);
  // format(): "file:line:col: message"
  EXPECT_EQ(format(errs[0]).rfind(kName.string() + ":" + std::to_string(p.line) + ":", 0), 0u);
}

const BadCase kBadCases[] = {
    // unknown keys, at every level
    {"[gateway]\nname = \"x\"\nnmae = \"y\"\n", 3, "unknown key 'nmae' in [gateway]"},
    {"\n\nfoo = 1\n", 3, "unknown key 'foo'"},
    {"[[listeners]]\nport = 1\nhost = \"x\"\n", 3, "unknown key 'host' in [listeners]"},
    {"[proxy]\n\n\nconnect_port = [443]\n", 4, "unknown key 'connect_port' in [proxy]"},
    {"[limits]\nmax_header_bytes = 1\n", 2, "unknown key 'max_header_bytes'"},
    {"[timeouts]\nidle = 1\n", 2, "unknown key 'idle' in [timeouts]"},
    {"[dns]\nserver = []\n", 2, "unknown key 'server' in [dns]"},
    {"[upstream]\nparent = []\n", 2, "unknown key 'parent' in [upstream]"},
    {"[[upstream.parents]]\nhost = \"p\"\npass = \"x\"\n", 3, "unknown key 'pass'"},
    {"[access_log]\nfile = \"x\"\n", 2, "unknown key 'file' in [access_log]"},
    {"[log]\nlevel = \"info\"\ncolor = true\n", 3, "unknown key 'color' in [log]"},
    // types
    {"[[listeners]]\nport = \"8080\"\n", 2, "'port' must be an integer"},
    {"[[listeners]]\nport = 8080.0\n", 2, "'port' must be an integer"},
    {"[[listeners]]\nport = 1\nguest = \"yes\"\n", 3, "'guest' must be true or false"},
    {"[gateway]\nname = 5\n", 2, "'name' must be a string"},
    {"[gateway]\nworkers = \"4\"\n", 2, "'workers' must be an integer"},
    {"gateway = 1\n", 1, "'gateway' must be a table"},
    {"listeners = 1\n", 1, "'listeners' must be an array of tables"},
    {"[proxy]\nclient_networks = \"10.0.0.0/8\"\n", 2, "must be an array of strings"},
    {"[proxy]\nclient_networks = [1]\n", 2, "must contain only strings"},
    {"[proxy]\nconnect_ports = 443\n", 2, "'connect_ports' must be an array"},
    {"[proxy]\nconnect_ports = [\"443\"]\n", 2, "'connect_ports' entries must be ports"},
    {"[timeouts]\nbody_idle = \"60\"\n", 2, "'body_idle' must be a number of seconds"},
    {"[dns]\nhosts_file = 1\n", 2, "'hosts_file' must be true or false"},
    {"[upstream]\nparents = 1\n", 2, "'parents' must be an array of tables"},
    // out of range
    {"[[listeners]]\nport = 0\n", 2, "'port' must be between 1 and 65535"},
    {"[[listeners]]\nport = 65536\n", 2, "'port' must be between 1 and 65535"},
    {"[[listeners]]\nport = -1\n", 2, "'port' must be between 1 and 65535"},
    {"[gateway]\nworkers = 257\n", 2, "'workers' must be between 0 and 256"},
    {"[gateway]\nworkers = -1\n", 2, "'workers' must be between 0 and 256"},
    {"[proxy]\nconnect_ports = [443, 0]\n", 2, "'connect_ports' entries must be ports"},
    {"[proxy]\nconnect_ports = [70000]\n", 2, "'connect_ports' entries must be ports"},
    {"[proxy]\nmax_connections = 0\n", 2, "'max_connections' must be between 1 and 10000000"},
    {"[proxy]\nmax_connections_per_client = 10000001\n", 2, "must be between 1 and 10000000"},
    {"[limits]\nmax_head_bytes = 1023\n", 2, "'max_head_bytes' must be between 1024"},
    {"[limits]\nmax_fields = 0\n", 2, "'max_fields' must be between 1 and 10000"},
    {"[limits]\nmax_field_bytes = 63\n", 2, "'max_field_bytes' must be between 64"},
    {"[limits]\nmax_url_bytes = 16777217\n", 2, "'max_url_bytes' must be between 64"},
    {"[limits]\nmax_chunk_size_digits = 17\n", 2,
     "'max_chunk_size_digits' must be between 1 and 16"},
    {"[timeouts]\nheader_read = 0.01\n", 2, "'header_read' must be between 0.05 and 86400 seconds"},
    {"[timeouts]\nkeepalive_idle = 86401\n", 2, "'keepalive_idle' must be between"},
    {"[timeouts]\ntunnel_idle = 604801\n", 2, "'tunnel_idle' must be between"},
    {"[timeouts]\ndrain = -1\n", 2, "'drain' must be between 0 and 86400 seconds"},
    {"[timeouts]\nbody_idle = nan\n", 2, "'body_idle' must be between"},
    {"[timeouts]\nbody_idle = inf\n", 2, "'body_idle' must be between"},
    {"[dns]\ntimeout = 0.001\n", 2, "'timeout' must be between 0.01 and 60 seconds"},
    {"[dns]\ntries = 0\n", 2, "'tries' must be between 1 and 10"},
    {"[dns]\ntries = 11\n", 2, "'tries' must be between 1 and 10"},
    {"[dns]\ncache_entries = -5\n", 2, "'cache_entries' must be between 0"},
    {"[dns]\nmin_ttl = 100\nmax_ttl = 10\n", 2, "'min_ttl' is larger than 'max_ttl'"},
    {"[upstream]\nretry_after = -1\n", 2, "'retry_after' must be between 0 and 86400 seconds"},
    // values
    {"[gateway]\nname = \"my gateway\"\n", 2, "'name' must be a non-empty token"},
    {"[gateway]\nname = \"\"\n", 2, "'name' must be a non-empty token"},
    {"[gateway]\nname = \"a,b\"\n", 2, "'name' must be a non-empty token"},
    {"[gateway]\nname = \"caf\xc3\xa9\"\n", 2,
     "'name' must be a non-empty token of printable ASCII"},
    {"[access_log]\npath = \"a.log\"\nsecurity_path = \"a.log\"\n", 1,
     "'security_path' must differ from 'path'"},
    {"[access_log]\nsecurity_path = 1\n", 2, "'security_path' must be a string"},
    {"syslog = 1\n", 1, "'syslog' must be an array of tables"},
    {"[[syslog]]\nport = 514\n", 1, "syslog destination needs a 'host'"},
    {"[[syslog]]\nhost = \"a b\"\n", 2, "syslog destination needs a 'host'"},
    {"[[syslog]]\nhost = \"h\"\nhots = 1\n", 3, "unknown key 'hots' in [syslog]"},
    {"[[syslog]]\nhost = \"h\"\ntransport = \"relp\"\n", 3, "'transport' must be udp, tcp or tls"},
    {"[[syslog]]\nhost = \"h\"\nformat = \"leef\"\n", 3, "'format' must be rfc5424, cef or json"},
    {"[[syslog]]\nhost = \"h\"\nrecords = \"threats\"\n", 3, "'records' must be all or security"},
    {"[[syslog]]\nhost = \"h\"\nfacility = \"local8\"\n", 3, "'facility' must be a number 0-23"},
    {"[[syslog]]\nhost = \"h\"\nfacility = 24\n", 3, "'facility' must be a number 0-23"},
    {"[[syslog]]\nhost = \"h\"\nport = 0\n", 3, "'port' must be between 1 and 65535"},
    {"[[syslog]]\nhost = \"h\"\nqueue_limit = 1000\n", 3, "'queue_limit' must be between 65536"},
    {"[[syslog]]\nhost = \"h\"\ntls_ca = \"ca.pem\"\n", 3,
     "'tls_ca' applies to transport \"tls\" only"},
    {"[[syslog]]\nhost = \"h\"\ntransport = \"tls\"\ntls_key = \"k\"\n", 1,
     "'tls_certificate' and 'tls_key' go together"},
    {"[[syslog]]\nhost = \"h\"\nname = \"../x\"\n", 3, "'name' must be 1-64 letters"},
    {"[proxy]\nx_forwarded_for = \"append\"\n", 2, "'x_forwarded_for' must be add, keep or remove"},
    {"[proxy]\nx_forwarded_for = \"ADD\"\n", 2, "'x_forwarded_for' must be add, keep or remove"},
    {"[proxy]\nx_forwarded_for = \"\"\n", 2, "'x_forwarded_for' must be add, keep or remove"},
    {"[proxy]\nx_forwarded_for = 1\n", 2, "'x_forwarded_for' must be a string"},
    {"[access_log]\nformat = \"xml\"\n", 2, "'format' must be json or squid"},
    {"[access_log]\nformat = \"JSON\"\n", 2, "'format' must be json or squid"},
    {"[access_log]\npath = 1\n", 2, "'path' must be a string"},
    {"[log]\nlevel = \"trace\"\n", 2, "'level' must be debug, info, warn or error"},
    {"[[listeners]]\naddress = \"localhost\"\nport = 1\n", 2, "'address' must be an IP address"},
    {"[[listeners]]\naddress = \"10.0.0.256\"\nport = 1\n", 2, "'address' must be an IP address"},
    {"[[listeners]]\nname = \"x\"\n", 1, "listener needs a 'port'"},
    {"[[upstream.parents]]\nport = 3128\n", 1, "parent needs a 'host'"},
    {"[[upstream.parents]]\nhost = \"p\"\nusername = \"a:b\"\n", 3,
     "'username' must not contain ':'"},
    {"[upstream]\ndirect_domains = [\"...\"]\n", 2, "empty domain in 'direct_domains'"},
    // TOML syntax
    {"[gateway]\nname = \"x\"\nworkers = \n", 3, ""},
    {"[gateway]\nname = \"unterminated\n", 2, ""},
    {"[gateway]\n[gateway]\n", 2, ""},
    {"[proxy\n", 1, ""},
};

INSTANTIATE_TEST_SUITE_P(Table, ConfigError, ::testing::ValuesIn(kBadCases));

class ConfigBadCidr : public ::testing::TestWithParam<const char*> {};

TEST_P(ConfigBadCidr, Rejected) {
  std::string text =
      std::string("[proxy]\nclient_networks = [\"10.0.0.0/8\", \"") + GetParam() + "\"]\n";
  auto errs = bad(text);
  ASSERT_EQ(errs.size(), 1u) << all(errs);
  EXPECT_EQ(errs[0].line, 2);
  EXPECT_NE(errs[0].message.find(std::string("invalid network '") + GetParam() + "'"),
            std::string::npos)
      << all(errs);
}

INSTANTIATE_TEST_SUITE_P(Table, ConfigBadCidr,
                         ::testing::Values("10.0.0.0/33", "10.0.0/8", "fc00::/129", "10.0.0.0/",
                                           "10.0.0.0/8x", "10.0.0.0/-1", "10.0.0.0/0008",
                                           "example.com/8", "", "/8", "10.0.0.0 /8",
                                           "::ffff:10.0.0.0/129"));

class ConfigBadDns : public ::testing::TestWithParam<const char*> {};

TEST_P(ConfigBadDns, Rejected) {
  std::string text = std::string("[dns]\n\nservers = [\"") + GetParam() + "\"]\n";
  auto errs = bad(text);
  ASSERT_EQ(errs.size(), 1u) << all(errs);
  EXPECT_EQ(errs[0].line, 3);
  EXPECT_NE(errs[0].message.find(std::string("invalid DNS server '") + GetParam() + "'"),
            std::string::npos)
      << all(errs);
}

INSTANTIATE_TEST_SUITE_P(Table, ConfigBadDns,
                         ::testing::Values("", "dns.example", "192.0.2.53:0", "192.0.2.53:65536",
                                           "192.0.2.53:", "192.0.2.53:x", "[192.0.2.53]:53",
                                           "[2001:db8::53", "[2001:db8::53]:", "[2001:db8::53]53",
                                           "[2001:db8::53]:99999", "192.0.2.256",
                                           "dns.example:53"));

TEST(ConfigErrors, DuplicateListener) {
  auto errs = bad(R"([[listeners]]
address = "127.0.0.1"
port = 8080

[[listeners]]
address = "127.0.0.1"
port = 8080
)");
  ASSERT_EQ(errs.size(), 1u) << all(errs);
  EXPECT_EQ(errs[0].line, 5);
  EXPECT_NE(errs[0].message.find("listener"), std::string::npos) << all(errs);
}

TEST(ConfigErrors, SameAddressAndPortUnderTwoNamesIsADuplicate) {
  // Both would bind (SO_REUSEPORT) and share connections between a user and a guest listener.
  auto errs = bad(R"([[listeners]]
name = "proxy"
address = "127.0.0.1"
port = 8080

[[listeners]]
name = "guest"
address = "127.0.0.1"
port = 8080
guest = true
)");
  ASSERT_EQ(errs.size(), 1u) << all(errs);
  EXPECT_EQ(errs[0].line, 6);
  EXPECT_NE(errs[0].message.find("listener"), std::string::npos) << all(errs);
}

TEST(ConfigErrors, SameAddressSpelledDifferentlyIsADuplicate) {
  auto errs = bad(R"([[listeners]]
address = "::1"
port = 8080

[[listeners]]
name = "other"
address = "0:0:0:0:0:0:0:1"
port = 8080
)");
  ASSERT_EQ(errs.size(), 1u) << all(errs);
  EXPECT_EQ(errs[0].line, 5);
}

TEST(ConfigErrors, WildcardOverlapsOnOnePortAreErrors) {
  // "::" is dual stack; "0.0.0.0" covers every IPv4 address.
  for (auto [a, b] : {std::pair{"::", "127.0.0.1"}, std::pair{"::", "0.0.0.0"},
                      std::pair{"0.0.0.0", "192.0.2.1"}, std::pair{"::1", "::"}}) {
    auto errs =
        bad(std::string("[[listeners]]\naddress = \"") + a +
            "\"\nport = 8080\n[[listeners]]\nname = \"b\"\naddress = \"" + b + "\"\nport = 8080\n");
    ASSERT_EQ(errs.size(), 1u) << a << " vs " << b << ": " << all(errs);
    EXPECT_NE(errs[0].message.find("overlaps"), std::string::npos) << all(errs);
  }
}

TEST(ConfigErrors, DistinctAddressesOnOnePortAreFine) {
  for (auto [a, b] : {std::pair{"127.0.0.1", "192.0.2.1"}, std::pair{"0.0.0.0", "::1"},
                      std::pair{"::1", "2001:db8::1"}}) {
    auto c =
        ok(std::string("[[listeners]]\naddress = \"") + a +
           "\"\nport = 8080\n[[listeners]]\nname = \"b\"\naddress = \"" + b + "\"\nport = 8080\n");
    ASSERT_NE(c, nullptr) << a << " vs " << b;
  }
}

TEST(ConfigErrors, SameNameOnDifferentPortsIsFine) {
  auto c = ok("[[listeners]]\nport = 1\n[[listeners]]\nport = 2\n");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->listeners.size(), 2u);
}

TEST(ConfigErrors, SyntaxErrorHasLineAndNoConfig) {
  auto r = load_string("[gateway]\nname = \"ok\"\n\nworkers = = 2\n", kName);
  EXPECT_EQ(r.config, nullptr);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 4);
  EXPECT_EQ(r.errors[0].file, kName.string());
  EXPECT_FALSE(r.errors[0].message.empty());
}

TEST(ConfigErrors, SeveralErrorsReportedTogether) {
  auto errs = bad(R"([gateway]
workers = 1000
bogus = 1

[proxy]
x_forwarded_for = "sometimes"
client_networks = ["10.0.0.0/99", "192.168.0.0/16", "nope"]

[dns]
servers = ["1.2.3.4:0"]

[access_log]
format = "xml"
)");
  ASSERT_EQ(errs.size(), 7u) << all(errs);
  std::vector<int> lines;
  for (const auto& e : errs) lines.push_back(e.line);
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines, (std::vector<int>{2, 3, 6, 7, 7, 10, 13})) << all(errs);
  EXPECT_TRUE(any_message_contains(errs, "'workers'"));
  EXPECT_TRUE(any_message_contains(errs, "unknown key 'bogus'"));
  EXPECT_TRUE(any_message_contains(errs, "x_forwarded_for"));
  EXPECT_TRUE(any_message_contains(errs, "invalid network '10.0.0.0/99'"));
  EXPECT_TRUE(any_message_contains(errs, "invalid network 'nope'"));
  EXPECT_TRUE(any_message_contains(errs, "invalid DNS server"));
  EXPECT_TRUE(any_message_contains(errs, "json or squid"));
}

TEST(ConfigErrors, UsesTheGivenNameInErrors) {
  auto errs = bad("bogus = 1\n", "relative/dir/my.toml");
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].file, "relative/dir/my.toml");
  EXPECT_EQ(format(errs[0]).rfind("relative/dir/my.toml:1:", 0), 0u) << format(errs[0]);
}

// ---- paths ----

// ---- [icap] ----

TEST(ConfigIcap, EverySettingIsRead) {
  auto c = ok(R"([gateway]
state_dir = "/var/lib/pc"
[[listeners]]
name = "i"
address = "127.0.0.1"
port = 1344
protocol = "icap"
[[listeners]]
address = "127.0.0.1"
port = 11344
protocol = "icaps"
[icap]
client_networks = ["192.0.2.0/24"]
reqmod_service = "/req"
respmod_service = "resp"
reqmod_aliases = ["a"]
respmod_aliases = []
preview = 0
options_ttl = 60
max_connections = 10
buffer_for_204 = 1000
transfer_ignore = ["JPG", "gif", "jpg"]
transfer_complete = ["exe", "tar.gz"]
user_headers = ["X-User"]
group_headers = []
client_ip_headers = ["X-Forwarded-For"]
user_encoding = "base64"
tls_certificate = "c.pem"
tls_key = "/k.pem"
tls_client_ca = "ca.pem"
)");
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->listeners.size(), 2u);
  EXPECT_EQ(c->listeners[0].name, "i");
  EXPECT_EQ(c->listeners[0].protocol, Protocol::icap);
  EXPECT_EQ(c->listeners[1].name, "icaps");  // named after its protocol
  EXPECT_EQ(c->listeners[1].protocol, Protocol::icaps);
  const auto& ic = c->icap;
  ASSERT_EQ(ic.client_networks.size(), 1u);
  EXPECT_TRUE(ic.client_networks[0].contains(*base::parse_ip("192.0.2.9")));
  EXPECT_EQ(ic.reqmod_service, "req");  // the leading "/" is optional
  EXPECT_EQ(ic.respmod_service, "resp");
  EXPECT_EQ(ic.reqmod_aliases, std::vector<std::string>{"a"});
  EXPECT_TRUE(ic.respmod_aliases.empty());
  EXPECT_EQ(ic.preview, 0u);
  EXPECT_EQ(ic.options_ttl, 60u);
  EXPECT_EQ(ic.max_connections, 10u);
  EXPECT_EQ(ic.buffer_for_204, 1000u);
  EXPECT_EQ(ic.transfer_ignore, (std::vector<std::string>{"jpg", "gif"}));  // lower-cased, once
  EXPECT_EQ(ic.transfer_complete, (std::vector<std::string>{"exe", "tar.gz"}));
  EXPECT_EQ(ic.user_headers, std::vector<std::string>{"X-User"});
  EXPECT_TRUE(ic.group_headers.empty());
  EXPECT_EQ(ic.client_ip_headers, std::vector<std::string>{"X-Forwarded-For"});
  EXPECT_EQ(ic.user_encoding, UserEncoding::base64);
  EXPECT_EQ(ic.tls_certificate, fs::path("/var/lib/pc/c.pem"));  // relative to state_dir
  EXPECT_EQ(ic.tls_key, fs::path("/k.pem"));
  EXPECT_EQ(ic.tls_client_ca, fs::path("/var/lib/pc/ca.pem"));
}

TEST(ConfigIcap, Errors) {
  struct Case {
    const char* text;
    const char* message;
  } cases[] = {
      {"[[listeners]]\nport = 1\nprotocol = \"http\"\n", "'protocol' must be proxy, icap or icaps"},
      {"[[listeners]]\nport = 1\nprotocol = \"icap\"\nguest = true\n",
       "'guest' applies to proxy listeners only"},
      {"[icap]\nreqmod_service = \"a?b\"\n", "invalid ICAP service name 'a?b'"},
      {"[icap]\nreqmod_service = \"\"\n", "invalid ICAP service name ''"},
      {"[icap]\nrespmod_aliases = [\"ok\", \"sp ace\"]\n", "invalid ICAP service name 'sp ace'"},
      {"[icap]\nuser_headers = [\"X User\"]\n", "'X User' is not a header field name"},
      {"[icap]\nuser_encoding = \"rot13\"\n", "'user_encoding' must be auto, base64 or plain"},
      {"[icap]\ntls_key = \"\"\n", "'tls_certificate' and 'tls_key' go together"},
      {"[icap]\ntls_key = \"\"\ntls_certificate = \"\"\n",
       "an icaps listener needs 'tls_certificate' and 'tls_key'"},
      {"[icap]\npreview = -1\n", "'preview' must be between 0 and 1048576"},
      {"[icap]\nclient_networks = [\"nope\"]\n",
       "invalid network 'nope' (expected address/prefix)"},
      {"[icap]\nshadow = 1\n", "unknown key 'shadow' in [icap]"},
      {"[icap]\ntransfer_ignore = [\"*\"]\n",
       "'*' is not a file extension (letters, digits, '_', '-', '+', '.'; '*' is what "
       "Transfer-Preview says)"},
      {"[icap]\ntransfer_complete = [\"E xe\"]\n",
       "'E xe' is not a file extension (letters, digits, '_', '-', '+', '.'; '*' is what "
       "Transfer-Preview says)"},
      {"[icap]\ntransfer_ignore = [\"exe\"]\ntransfer_complete = [\"EXE\"]\n",
       "'exe' is in both 'transfer_ignore' and 'transfer_complete'"},
  };
  for (const auto& k : cases) {
    auto errs = bad(k.text);
    ASSERT_FALSE(errs.empty()) << k.text;
    bool found = false;
    for (const auto& e : errs) found = found || e.message == k.message;
    EXPECT_TRUE(found) << k.text << " -> " << errs[0].message;
  }
}

TEST(ConfigScan, SettingsAndErrors) {
  auto c = ok(R"([scan]
enabled = false
shipped_signatures = "sigs"
clamav_dir = "/srv/clamav"
yara_dir = ""
max_scan_size = 1000
too_large = "block"
unscannable = "pass"
on_failure = "closed"
threads = 3
trickle_after = 0.5
scratch_dir = "scratch"
)");
  ASSERT_NE(c, nullptr);
  EXPECT_FALSE(c->scan.enabled);
  EXPECT_EQ(c->scan.shipped_signatures, fs::path("/etc/portcullis/sigs"));
  EXPECT_EQ(c->scan.clamav_dir, fs::path("/srv/clamav"));
  EXPECT_TRUE(c->scan.yara_dir.empty());
  EXPECT_EQ(c->scan.max_scan_size, 1000u);
  EXPECT_TRUE(c->scan.block_too_large);
  EXPECT_FALSE(c->scan.block_unscannable);
  EXPECT_EQ(c->scan.on_failure, FailMode::closed);
  EXPECT_EQ(c->scan.threads, 3u);
  EXPECT_EQ(c->scan.trickle_after, milliseconds(500));
  EXPECT_EQ(c->scan.scratch_dir, fs::path("/etc/portcullis/scratch"));
  for (auto [text, message] :
       {std::pair{"[scan]\ntoo_large = \"maybe\"\n", "'too_large' must be pass or block"},
        std::pair{"[scan]\non_failure = \"sometimes\"\n",
                  "'on_failure' must be by_type, open or closed"},
        std::pair{"[scan]\nmax_scan_size = 0\n",
                  "'max_scan_size' must be between 1 and 1099511627776"},
        std::pair{"[scan]\nnope = 1\n", "unknown key 'nope' in [scan]"}}) {
    auto errs = bad(text);
    ASSERT_FALSE(errs.empty()) << text;
    EXPECT_EQ(errs[0].message, message) << text;
  }
}

TEST(ConfigSyslog, EverySettingIsRead) {
  auto c = ok(R"([access_log]
security_path = "sec/events.log"

[[syslog]]
host = "siem.example.net"

[[syslog]]
name = "soc"
host = "[2001:db8::5]"
port = 10514
transport = "tcp"
format = "cef"
facility = "local5"
records = "security"
queue_limit = 1048576

[[syslog]]
host = "192.0.2.7"
transport = "tls"
format = "json"
facility = 3
tls_ca = "tls/siem-ca.pem"
tls_certificate = "/etc/pki/gw.crt"
tls_key = "/etc/pki/gw.key"
)",
              "/srv/pc/conf/portcullis.toml");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->security_log_path, fs::path("/srv/pc/conf/sec/events.log"));
  ASSERT_EQ(c->syslog.size(), 3u);
  const auto& a = c->syslog[0];
  EXPECT_EQ(a.name, "udp-siem.example.net-514");
  EXPECT_EQ(a.host, "siem.example.net");
  EXPECT_EQ(a.port, 514);
  EXPECT_EQ(a.transport, SyslogTransport::udp);
  EXPECT_EQ(a.format, SyslogFormat::rfc5424);
  EXPECT_EQ(a.facility, 16);
  EXPECT_FALSE(a.security_only);
  EXPECT_EQ(a.queue_limit, 8u << 20);
  EXPECT_TRUE(a.tls_ca.empty());
  const auto& b = c->syslog[1];
  EXPECT_EQ(b.name, "soc");
  EXPECT_EQ(b.host, "2001:db8::5");  // brackets dropped
  EXPECT_EQ(b.port, 10514);
  EXPECT_EQ(b.transport, SyslogTransport::tcp);
  EXPECT_EQ(b.format, SyslogFormat::cef);
  EXPECT_EQ(b.facility, 21);
  EXPECT_TRUE(b.security_only);
  EXPECT_EQ(b.queue_limit, 1u << 20);
  const auto& t = c->syslog[2];
  EXPECT_EQ(t.name, "tls-192.0.2.7-6514");
  EXPECT_EQ(t.port, 6514);  // the TLS default
  EXPECT_EQ(t.format, SyslogFormat::json);
  EXPECT_EQ(t.facility, 3);
  EXPECT_EQ(t.queue_limit, 256u << 20);
  EXPECT_EQ(t.tls_ca, fs::path("/srv/pc/conf/tls/siem-ca.pem"));  // against the file's folder
  EXPECT_EQ(t.tls_certificate, fs::path("/etc/pki/gw.crt"));
  EXPECT_EQ(t.tls_key, fs::path("/etc/pki/gw.key"));
}

TEST(ConfigSyslog, NamesMustBeUnique) {
  auto errs = bad("[[syslog]]\nhost = \"a\"\n[[syslog]]\nhost = \"a\"\n");
  EXPECT_TRUE(any_message_contains(errs, "two syslog destinations named 'udp-a-514'")) << all(errs);
  // A different port is a different destination.
  EXPECT_NE(ok("[[syslog]]\nhost = \"a\"\n[[syslog]]\nhost = \"a\"\nport = 1514\n"), nullptr);
}

TEST(ConfigSyslog, SecurityLogOffAndStandardOutput) {
  auto c = ok("[access_log]\nsecurity_path = \"\"\n");
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->security_log_path.empty());
  c = ok("[access_log]\npath = \"-\"\nsecurity_path = \"-\"\n");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->security_log_path, fs::path("-"));
}

TEST(ConfigGateway, DefaultNameIsTheHostName) {
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof host - 1), 0);
  std::string h(host);
  bool usable = !h.empty() && h.find_first_of(" ,;()\"") == std::string::npos;
  EXPECT_EQ(default_gateway_name(), usable ? h : "portcullis");
}

TEST(ConfigMonitoring, DefaultsAndSettings) {
  auto d = ok("");
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(d->monitoring.enabled);
  EXPECT_EQ(d->monitoring.address, "127.0.0.1");
  EXPECT_EQ(d->monitoring.port, 2812);
  EXPECT_FALSE(d->monitoring.allow_remote);

  auto c = ok("[monitoring]\nenabled = false\naddress = \"::1\"\nport = 9100\n");
  ASSERT_NE(c, nullptr);
  EXPECT_FALSE(c->monitoring.enabled);
  EXPECT_EQ(c->monitoring.address, "::1");
  EXPECT_EQ(c->monitoring.port, 9100);
  auto r = ok("[monitoring]\naddress = \"0.0.0.0\"\nallow_remote = true\n");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->monitoring.address, "0.0.0.0");
  EXPECT_TRUE(r->monitoring.allow_remote);
  ASSERT_NE(ok("[monitoring]\naddress = \"127.3.2.1\"\n"), nullptr);  // all of 127/8
}

TEST(ConfigMonitoring, Errors) {
  constexpr std::string_view kRemote =
      "'address' must be a loopback address (127.0.0.0/8 or ::1): the monitoring listener tells "
      "whoever reaches it about the traffic; set allow_remote = true to listen elsewhere";
  for (auto [text, message] : {
           std::pair{"[monitoring]\naddress = \"0.0.0.0\"\n", kRemote},
           std::pair{"[monitoring]\naddress = \"::\"\n", kRemote},
           std::pair{"[monitoring]\naddress = \"192.168.1.1\"\n", kRemote},
           std::pair{"[monitoring]\naddress = \"localhost\"\n",
                     std::string_view("'address' must be an IP address")},
           std::pair{"[monitoring]\nport = 0\n",
                     std::string_view("'port' must be between 1 and 65535")},
           std::pair{"[monitoring]\nallow_remote = \"yes\"\n",
                     std::string_view("'allow_remote' must be true or false")},
           std::pair{"[monitoring]\npath = \"/m\"\n",
                     std::string_view("unknown key 'path' in [monitoring]")},
           std::pair{
               "[[listeners]]\nname = \"p\"\naddress = \"::\"\nport = 2812\n",
               std::string_view("the monitoring listener overlaps listener 'p' on port 2812")},
       }) {
    auto errs = bad(text);
    ASSERT_FALSE(errs.empty()) << text;
    EXPECT_EQ(errs[0].message, message) << text;
  }
  // Disabled: its port is free for a listener.
  ASSERT_NE(ok("[monitoring]\nenabled = false\n[[listeners]]\naddress = \"::\"\nport = 2812\n"),
            nullptr);
}

TEST(ConfigLogStore, SettingsAndErrors) {
  auto d = ok("");
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(d->log_store.enabled);
  EXPECT_EQ(d->log_store.path, fs::path("/etc/portcullis/logs.db"));
  EXPECT_EQ(d->log_store.retention_days, 30u);
  EXPECT_EQ(d->log_store.max_size_mb, 1024u);
  auto c = ok(R"([gateway]
state_dir = "/var/lib/pc"
[log_store]
enabled = false
path = "db/access.db"
retention_days = 0
max_size_mb = 20
queue = 5000
flush_interval = 0.25
)");
  ASSERT_NE(c, nullptr);
  EXPECT_FALSE(c->log_store.enabled);
  EXPECT_EQ(c->log_store.path, fs::path("/var/lib/pc/db/access.db"));
  EXPECT_EQ(c->log_store.retention_days, 0u);
  EXPECT_EQ(c->log_store.max_size_mb, 20u);
  EXPECT_EQ(c->log_store.queue, 5000u);
  EXPECT_EQ(c->log_store.flush_interval, milliseconds(250));
  auto a = ok("[log_store]\npath = \"/srv/logs.db\"\n");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->log_store.path, fs::path("/srv/logs.db"));
  for (auto [text, message] :
       {std::pair{"[log_store]\npath = \"\"\n", "'path' must not be empty"},
        std::pair{"[log_store]\nretention_days = -1\n",
                  "'retention_days' must be between 0 and 36500"},
        std::pair{"[log_store]\nmax_size_mb = 0\n", "'max_size_mb' must be between 1 and 16777216"},
        std::pair{"[log_store]\nqueue = 10\n", "'queue' must be between 1000 and 10000000"},
        std::pair{"[log_store]\nflush_interval = 0\n",
                  "'flush_interval' must be between 0.05 and 60 seconds"},
        std::pair{"[log_store]\nenabled = \"yes\"\n", "'enabled' must be true or false"},
        std::pair{"[log_store]\nsize = 1\n", "unknown key 'size' in [log_store]"}}) {
    auto errs = bad(text);
    ASSERT_FALSE(errs.empty()) << text;
    EXPECT_EQ(errs[0].message, message) << text;
    EXPECT_EQ(errs[0].line, 2) << text;
  }
}

TEST(ConfigPaths, StateDirAndAccessLogRelativeToTheFile) {
  auto c = ok("[gateway]\nstate_dir = \"state\"\n[access_log]\npath = \"logs/../logs/a.log\"\n",
              "/srv/pc/conf/portcullis.toml");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(norm(c->state_dir), fs::path("/srv/pc/conf/state"));
  EXPECT_EQ(c->access_log_path, fs::path("/srv/pc/conf/state/logs/a.log"));
}

TEST(ConfigPaths, DotDotStateDir) {
  auto c = ok("[gateway]\nstate_dir = \"../var\"\n", "/srv/pc/conf/portcullis.toml");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(norm(c->state_dir), fs::path("/srv/pc/var"));
  EXPECT_EQ(c->access_log_path, fs::path("/srv/pc/var/log/access.log"));
}

TEST(ConfigPaths, AbsolutePathsAreKept) {
  auto c = ok("[gateway]\nstate_dir = \"/var/lib/pc\"\n[access_log]\npath = \"/var/log/pc.log\"\n",
              "/srv/pc/conf/portcullis.toml");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(norm(c->state_dir), fs::path("/var/lib/pc"));
  EXPECT_EQ(c->access_log_path, fs::path("/var/log/pc.log"));
}

TEST(ConfigPaths, AbsoluteStateDirRelativeLog) {
  auto c = ok("[gateway]\nstate_dir = \"/var/lib/pc\"\n[access_log]\npath = \"a.log\"\n");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->access_log_path, fs::path("/var/lib/pc/a.log"));
}

TEST(ConfigPaths, AccessLogDashIsStandardOutput) {
  auto c = ok("[access_log]\npath = \"-\"\n");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->access_log_path, fs::path("-"));
}

TEST(ConfigPaths, AccessLogEmptyIsOff) {
  auto c = ok("[access_log]\npath = \"\"\n");
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->access_log_path.empty());
}

TEST(ConfigPaths, RelativeFileNameResolvedAgainstTheWorkingDirectory) {
  auto c = ok("", "conf/p.toml");
  ASSERT_NE(c, nullptr);
  auto cwd = fs::current_path();
  EXPECT_EQ(c->source, (cwd / "conf/p.toml").lexically_normal());
  EXPECT_EQ(norm(c->state_dir), (cwd / "conf").lexically_normal());
  EXPECT_EQ(c->access_log_path, (cwd / "conf/log/access.log").lexically_normal());
}

}  // namespace
}  // namespace pc::config
