// The bootstrap configuration (portcullis.toml): schema, loading with file:line errors,
// validation. Control plane; the result is immutable and shared with workers.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "base/cidr.h"
#include "net/resolver.h"
#include "wire/http.h"

namespace pc::config {

using Seconds = std::chrono::milliseconds;  // configured in (fractional) seconds

// What a listener speaks: the forward proxy, ICAP/1.0, or ICAP over TLS.
enum class Protocol : std::uint8_t { proxy, icap, icaps };
std::string_view to_string(Protocol p);

struct Listener {
  std::string name;
  std::string address = "::";
  std::uint16_t port = 0;
  bool guest = false;
  Protocol protocol = Protocol::proxy;
  // TCP congestion control of the accepted connections (TCP_CONGESTION); empty: the
  // system's. ICAP listeners default to "cubic" (docs/adr/0008-icap-socket-settings.md).
  std::string tcp_congestion;
  bool tcp_congestion_set = false;  // written in the file, not a default
  // SO_RCVBUF of the accepted connections in bytes; 0: the kernel's autotuning. ICAP
  // listeners default to 1 MiB (same ADR).
  std::uint32_t receive_buffer = 0;
  bool receive_buffer_set = false;
};

// The defaults of tcp_congestion and receive_buffer for a listener of this protocol.
void set_socket_defaults(Listener& l);

struct Parent {
  std::string host;
  std::uint16_t port = 3128;
  std::string username;
  std::string password;  // never logged
};

enum class XffMode { add, keep, remove };
enum class LogFormat { json, squid };

struct Timeouts {
  Seconds header_read{30000};
  Seconds keepalive_idle{60000};
  Seconds upstream_connect{10000};
  Seconds upstream_first_byte{60000};
  Seconds body_idle{60000};
  Seconds tunnel_idle{600000};
  Seconds upstream_keepalive_idle{30000};
  Seconds drain{30000};
};

// Loopback, RFC 1918 and ULA: the proxy is never open to the world by default.
std::vector<base::Cidr> default_client_networks();
// "This network" and the unspecified address (which reach the gateway's own host) and
// link-local addresses (cloud metadata services): the proxy never connects to them by default.
std::vector<base::Cidr> default_deny_destinations();

// How user and group values in ICAP identity fields are encoded.
enum class UserEncoding : std::uint8_t { automatic, base64, plain };

// [icap]: the ICAP server (docs/icap.md).
struct Icap {
  std::vector<base::Cidr> client_networks = default_client_networks();
  std::string reqmod_service = "reqmod";  // ICAP-URI path without the leading "/"
  std::string respmod_service = "respmod";
  std::vector<std::string> reqmod_aliases{"request", "req", "reqmod_precache", "wwreqmod"};
  std::vector<std::string> respmod_aliases{
      "response", "resp", "respmod_precache", "wwrespmod", "avscan", "virus_scan", "srv_clamav"};
  std::uint64_t preview = 1024;  // bytes advertised in OPTIONS
  std::uint32_t options_ttl = 3600;
  std::size_t max_connections = 4000;  // ICAP connections, all ICAP listeners together
  std::size_t buffer_for_204 = 65536;  // body bytes read before answering 204 outside preview
  // File extensions (lower-case) advertised in OPTIONS as Transfer-Ignore (not sent to us)
  // and Transfer-Complete (sent whole, without a preview); everything else is previewed.
  std::vector<std::string> transfer_ignore;
  std::vector<std::string> transfer_complete;
  std::vector<std::string> user_headers{"X-Authenticated-User", "X-Client-Username", "X-Username"};
  std::vector<std::string> group_headers{"X-Authenticated-Groups"};
  std::vector<std::string> client_ip_headers{"X-Client-IP"};
  UserEncoding user_encoding = UserEncoding::automatic;
  std::filesystem::path tls_certificate;  // resolved; generated with tls_key when both absent
  std::filesystem::path tls_key;
  std::filesystem::path tls_client_ca;  // empty: no client certificates asked for
};

// What happens when a body cannot be scanned because of the gateway itself (no engine, the
// scan queue full, the spool full, an engine error): block, pass, or by true file type
// (block executables and archives, pass the rest).
enum class FailMode : std::uint8_t { by_type, open, closed };

// [scan]: malware scanning of response and request bodies (docs/scanning.md).
struct Scan {
  bool enabled = true;
  std::filesystem::path shipped_signatures;  // the project's own set (EICAR, test files)
  std::filesystem::path clamav_dir = "/var/lib/clamav";  // official databases, offline update
  std::filesystem::path yara_dir;                        // the organisation's rules; empty: none
  std::uint64_t max_scan_size = 50ull << 20;             // larger bodies follow block_too_large
  bool block_too_large = false;                          // too_large = "block" | "pass"
  bool block_unscannable = true;                         // unscannable = "block" | "pass"
  FailMode on_failure = FailMode::by_type;
  std::size_t memory_buffer = 1 << 20;     // per body, before it moves to an anonymous memory file
  std::uint64_t spool_limit = 1ull << 30;  // all bodies being scanned together
  unsigned threads = 0;                    // resolved: never 0 after loading
  std::size_t queue = 256;
  std::size_t cache_entries = 10000;
  std::uint32_t max_recursion = 10;
  std::uint32_t max_files = 50000;
  std::uint64_t max_expanded = 200ull << 20;
  Seconds trickle_after{5000};
  std::filesystem::path scratch_dir;  // libclamav's scratch files; empty: /dev/shm or $TMPDIR  //
                                      // proxy: a body still arriving after this is trickled
};

// [monitoring]: the health and metrics listener (docs/monitoring.md). Loopback only unless
// allow_remote: it tells anyone who can reach it about the gateway's traffic.
struct Monitoring {
  bool enabled = true;
  std::string address = "127.0.0.1";
  std::uint16_t port = 2812;  // 0 (through the API only): any free port
  bool allow_remote = false;
};

// [[syslog]]: one syslog destination (docs/logging.md).
enum class SyslogTransport : std::uint8_t { udp, tcp, tls };
enum class SyslogFormat : std::uint8_t { rfc5424, cef, json };
struct SyslogDestination {
  std::string name;  // default "<transport>-<host>-<port>"; names the spool folder
  std::string host;
  std::uint16_t port = 514;  // resolved: 514, or 6514 for tls, when not set
  SyslogTransport transport = SyslogTransport::udp;
  SyslogFormat format = SyslogFormat::rfc5424;
  int facility = 16;                               // local0
  bool security_only = false;                      // records = "security"
  std::filesystem::path tls_ca;                    // resolved; empty: the system's trusted CAs
  std::filesystem::path tls_certificate, tls_key;  // client certificate, optional
  std::uint64_t queue_limit = 0;  // resolved: 256 MiB (tcp, tls: on disk), 8 MiB (udp: memory)
  bool operator==(const SyslogDestination&) const = default;
};

// This host's name when it can serve as gateway.name, else "portcullis".
std::string default_gateway_name();

// [log_store]: the local log store of access records (docs/log-store.md).
struct LogStore {
  bool enabled = true;
  std::filesystem::path path;         // resolved: never empty after loading (state_dir/logs.db)
  std::uint32_t retention_days = 30;  // 0: no age limit
  std::uint64_t max_size_mb = 1024;
  std::size_t queue = 65536;     // records waiting to be written
  Seconds flush_interval{1000};  // the longest a record waits before it is written
  bool operator==(const LogStore&) const = default;
};

struct Config {
  std::filesystem::path source;  // the file it was read from
  std::string name = default_gateway_name();
  unsigned workers = 0;  // resolved: never 0 after loading
  std::filesystem::path state_dir;

  std::vector<Listener> listeners;
  bool has_protocol(Protocol p) const {
    for (const auto& l : listeners)
      if (l.protocol == p) return true;
    return false;
  }

  std::vector<base::Cidr> client_networks = default_client_networks();
  std::vector<std::uint16_t> connect_ports{443};
  std::vector<base::Cidr> deny_destinations = default_deny_destinations();
  XffMode x_forwarded_for = XffMode::add;
  std::size_t max_connections = 20000;
  std::size_t max_connections_per_client = 512;

  wire::Limits limits;
  Timeouts timeouts;
  net::ResolverConfig dns;

  std::vector<Parent> parents;
  std::vector<std::string> direct_domains;  // lower-case
  Seconds parent_retry_after{30000};

  std::filesystem::path access_log_path;  // empty: off; "-": standard output
  LogFormat access_log_format = LogFormat::json;
  std::filesystem::path security_log_path;  // empty: off; "-": standard output

  std::vector<SyslogDestination> syslog;

  LogStore log_store;

  std::string log_level = "info";

  Icap icap;
  Scan scan;
  Monitoring monitoring;

  // [policy]
  std::filesystem::path policy_file;    // empty: allow everything
  std::filesystem::path templates_dir;  // empty: the built-in pages
  std::filesystem::path warn_key_file;  // the key that signs "continue" tokens of warn pages
};

struct Error {
  std::string file;
  int line = 0;
  int column = 0;
  std::string message;
};

std::string format(const Error& e);  // "file:line:col: message"

struct LoadResult {
  std::shared_ptr<const Config> config;  // null when errors is not empty
  std::vector<Error> errors;
};

// Reads and validates a file. Every problem is reported, not just the first.
LoadResult load_file(const std::filesystem::path& path);
// The same from text (tests); `name` is used in error messages and for relative paths.
LoadResult load_string(std::string_view text, const std::filesystem::path& name);

}  // namespace pc::config
