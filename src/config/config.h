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

struct Listener {
  std::string name;
  std::string address = "::";
  std::uint16_t port = 0;
  bool guest = false;
};

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

struct Config {
  std::filesystem::path source;  // the file it was read from
  std::string name = "portcullis";
  unsigned workers = 0;  // resolved: never 0 after loading
  std::filesystem::path state_dir;

  std::vector<Listener> listeners;

  std::vector<base::Cidr> client_networks = default_client_networks();
  std::vector<std::uint16_t> connect_ports{443};
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

  std::string log_level = "info";

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
