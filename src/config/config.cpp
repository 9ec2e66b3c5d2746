#include "config/config.h"

#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>
#include <thread>

#include "base/strings.h"

namespace pc::config {
namespace {

// Collects errors with positions while walking the document.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  std::vector<Error> errors;

  void error(const toml::node* n, std::string msg) {
    Error e{file_, 0, 0, std::move(msg)};
    if (n) {
      e.line = static_cast<int>(n->source().begin.line);
      e.column = static_cast<int>(n->source().begin.column);
    }
    errors.push_back(std::move(e));
  }

  // Reports keys of `t` that are not in `known`.
  void check_keys(const toml::table& t, std::initializer_list<std::string_view> known,
                  std::string_view where) {
    for (auto&& [k, v] : t) {
      bool ok = false;
      for (auto name : known) ok = ok || k.str() == name;
      if (!ok) {
        std::string msg = "unknown key '" + std::string(k.str()) + "'";
        if (!where.empty()) msg += " in [" + std::string(where) + "]";
        error(&v, msg);
      }
    }
  }

  const toml::table* table(const toml::table& t, std::string_view key) {
    const toml::node* n = t.get(key);
    if (!n) return nullptr;
    if (!n->is_table()) {
      error(n, "'" + std::string(key) + "' must be a table");
      return nullptr;
    }
    return n->as_table();
  }

  void get(const toml::table& t, std::string_view key, std::string& out) {
    const toml::node* n = t.get(key);
    if (!n) return;
    if (auto v = n->value<std::string>())
      out = *v;
    else
      error(n, "'" + std::string(key) + "' must be a string");
  }

  void get(const toml::table& t, std::string_view key, bool& out) {
    const toml::node* n = t.get(key);
    if (!n) return;
    if (auto v = n->value_exact<bool>())
      out = *v;
    else
      error(n, "'" + std::string(key) + "' must be true or false");
  }

  template <class Int>
  void get_int(const toml::table& t, std::string_view key, Int& out, std::int64_t lo,
               std::int64_t hi) {
    const toml::node* n = t.get(key);
    if (!n) return;
    auto v = n->value_exact<std::int64_t>();
    if (!v) {
      error(n, "'" + std::string(key) + "' must be an integer");
      return;
    }
    if (*v < lo || *v > hi) {
      error(n, "'" + std::string(key) + "' must be between " + std::to_string(lo) + " and " +
                   std::to_string(hi));
      return;
    }
    out = static_cast<Int>(*v);
  }

  // A duration in seconds (integer or float), stored in milliseconds.
  template <class Dur>
  void get_seconds(const toml::table& t, std::string_view key, Dur& out, double lo, double hi) {
    const toml::node* n = t.get(key);
    if (!n) return;
    std::optional<double> v;
    if (auto i = n->value_exact<std::int64_t>())
      v = static_cast<double>(*i);
    else if (auto d = n->value_exact<double>())
      v = *d;
    if (!v) {
      error(n, "'" + std::string(key) + "' must be a number of seconds");
      return;
    }
    if (!(*v >= lo && *v <= hi)) {
      std::ostringstream m;
      m << "'" << key << "' must be between " << lo << " and " << hi << " seconds";
      error(n, m.str());
      return;
    }
    out = std::chrono::duration_cast<Dur>(std::chrono::duration<double>(*v));
  }

  // One of a fixed set of words; any other value is an error listing them ("a, b or c").
  template <class E>
  void get_choice(const toml::table& t, std::string_view key, E& out,
                  std::initializer_list<std::pair<std::string_view, E>> choices) {
    const toml::node* n = t.get(key);
    if (!n) return;
    auto v = n->value<std::string>();
    if (!v) {
      error(n, "'" + std::string(key) + "' must be a string");
      return;
    }
    for (const auto& [word, value] : choices) {
      if (*v == word) {
        out = value;
        return;
      }
    }
    std::string msg = "'" + std::string(key) + "' must be ";
    std::size_t i = 0;
    for (const auto& c : choices) {
      if (i > 0) msg += i + 1 == choices.size() ? " or " : ", ";
      msg += c.first;
      ++i;
    }
    error(n, msg);
  }

  // An array of CIDR strings replacing `out` when present.
  void get_networks(const toml::table& t, std::string_view key, std::vector<base::Cidr>& out) {
    std::vector<std::pair<std::string, const toml::node*>> nets;
    if (!get_strings(t, key, nets)) return;
    out.clear();
    for (auto& [s, n] : nets) {
      if (auto cidr = base::Cidr::parse(s))
        out.push_back(*cidr);
      else
        error(n, "invalid network '" + s + "' (expected address/prefix)");
    }
  }

  // An array of strings.
  bool get_strings(const toml::table& t, std::string_view key,
                   std::vector<std::pair<std::string, const toml::node*>>& out) {
    const toml::node* n = t.get(key);
    if (!n) return false;
    const toml::array* a = n->as_array();
    if (!a) {
      error(n, "'" + std::string(key) + "' must be an array of strings");
      return false;
    }
    out.clear();
    for (const toml::node& e : *a) {
      if (auto s = e.value<std::string>())
        out.emplace_back(*s, &e);
      else
        error(&e, "'" + std::string(key) + "' must contain only strings");
    }
    return true;
  }

 private:
  std::string file_;
};

bool valid_gateway_name(std::string_view s) {
  if (s.empty() || s.size() > 255) return false;
  for (char ch : s)
    if (ch <= 0x20 || ch >= 0x7f || std::string_view(",;()\"").find(ch) != std::string_view::npos)
      return false;
  return true;
}

// TCP_CA_NAME_MAX is 16 with the terminating NUL.
bool valid_congestion_name(std::string_view s) {
  if (s.size() > 15) return false;
  for (char ch : s)
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
      return false;
  return true;
}

std::optional<std::uint16_t> port_of(std::string_view s) {
  std::uint64_t v = 0;
  if (!base::parse_u64(s, v) || v == 0 || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

// "ip", "ip:port", "[v6]", "[v6]:port"
bool valid_dns_server(std::string_view s) {
  if (s.empty()) return false;
  if (s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos) return false;
    auto ip = base::parse_ip(s.substr(1, close - 1));
    if (!ip || ip->is_v4()) return false;
    auto rest = s.substr(close + 1);
    return rest.empty() || (rest.front() == ':' && port_of(rest.substr(1)));
  }
  if (base::parse_ip(s)) return true;  // bare IPv4 or IPv6
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos) return false;
  auto ip = base::parse_ip(s.substr(0, colon));
  return ip && ip->is_v4() && port_of(s.substr(colon + 1));
}

bool is_loopback(const base::IpBytes& ip) {
  static const auto loop4 = *base::Cidr::parse("127.0.0.0/8");
  static const auto loop6 = *base::Cidr::parse("::1/128");
  return loop4.contains(ip) || loop6.contains(ip);
}

// Two listening addresses on one port collide when equal, when one is "::" (dual stack), or
// when one is the other's family wildcard.
bool listeners_overlap(std::string_view a, std::string_view b) {
  auto x = base::parse_ip(a), y = base::parse_ip(b);
  if (!x || !y) return false;
  static const auto any6 = *base::parse_ip("::");
  static const auto any4 = *base::parse_ip("0.0.0.0");
  if (*x == *y || *x == any6 || *y == any6) return true;
  if (x->is_v4() && y->is_v4()) return *x == any4 || *y == any4;
  return false;
}

// Facility names as in syslog(3) and RFC 5424 6.2.1, or the number 0-23.
std::optional<int> facility_of(const toml::node& n) {
  if (auto i = n.value_exact<std::int64_t>()) {
    if (*i >= 0 && *i <= 23) return static_cast<int>(*i);
    return std::nullopt;
  }
  auto s = n.value<std::string>();
  if (!s) return std::nullopt;
  static constexpr std::pair<std::string_view, int> kNames[] = {
      {"kern", 0},      {"user", 1},    {"mail", 2},    {"daemon", 3},  {"auth", 4},
      {"syslog", 5},    {"lpr", 6},     {"news", 7},    {"uucp", 8},    {"cron", 9},
      {"authpriv", 10}, {"ftp", 11},    {"ntp", 12},    {"audit", 13},  {"alert", 14},
      {"clock", 15},    {"local0", 16}, {"local1", 17}, {"local2", 18}, {"local3", 19},
      {"local4", 20},   {"local5", 21}, {"local6", 22}, {"local7", 23}};
  for (const auto& [name, v] : kNames)
    if (*s == name) return v;
  return std::nullopt;
}

template <class Resolve>
void read_syslog(Reader& r, const toml::table& root, Config& c, Resolve&& resolve) {
  const toml::node* sn = root.get("syslog");
  if (!sn) return;
  const toml::array* arr = sn->as_array();
  if (!arr || !arr->is_array_of_tables()) {
    r.error(sn, "'syslog' must be an array of tables ([[syslog]])");
    return;
  }
  for (const toml::node& e : *arr) {
    const toml::table& t = *e.as_table();
    r.check_keys(t,
                 {"name", "host", "port", "transport", "format", "facility", "records", "tls_ca",
                  "tls_certificate", "tls_key", "queue_limit"},
                 "syslog");
    SyslogDestination d;
    r.get(t, "name", d.name);
    r.get(t, "host", d.host);
    r.get_choice(t, "transport", d.transport,
                 {{"udp", SyslogTransport::udp},
                  {"tcp", SyslogTransport::tcp},
                  {"tls", SyslogTransport::tls}});
    d.port = d.transport == SyslogTransport::tls ? 6514 : 514;
    r.get_int(t, "port", d.port, 1, 65535);
    r.get_choice(t, "format", d.format,
                 {{"rfc5424", SyslogFormat::rfc5424},
                  {"cef", SyslogFormat::cef},
                  {"json", SyslogFormat::json}});
    if (const toml::node* f = t.get("facility")) {
      if (auto v = facility_of(*f))
        d.facility = *v;
      else
        r.error(f,
                "'facility' must be a number 0-23 or a name: kern, user, mail, daemon, auth, "
                "syslog, lpr, news, uucp, cron, authpriv, ftp, ntp, audit, alert, clock, "
                "local0 ... local7");
    }
    r.get_choice(t, "records", d.security_only, {{"all", false}, {"security", true}});
    std::string ca, cert, key;
    r.get(t, "tls_ca", ca);
    r.get(t, "tls_certificate", cert);
    r.get(t, "tls_key", key);
    if (d.transport != SyslogTransport::tls) {
      for (auto k : {"tls_ca", "tls_certificate", "tls_key"})
        if (t.get(k))
          r.error(t.get(k), "'" + std::string(k) + "' applies to transport \"tls\" only");
    }
    if (cert.empty() != key.empty()) r.error(&e, "'tls_certificate' and 'tls_key' go together");
    if (!ca.empty()) d.tls_ca = resolve(ca);
    if (!cert.empty()) d.tls_certificate = resolve(cert);
    if (!key.empty()) d.tls_key = resolve(key);
    d.queue_limit = d.transport == SyslogTransport::udp ? 8ull << 20 : 256ull << 20;
    r.get_int(t, "queue_limit", d.queue_limit, 65536, std::int64_t{1} << 40);
    if (d.host.empty() || d.host.find_first_of(" \t\r\n/") != std::string::npos)
      r.error(t.get("host") ? t.get("host") : &e,
              "syslog destination needs a 'host' (name or address)");
    if (d.host.size() > 2 && d.host.front() == '[' && d.host.back() == ']')
      d.host = d.host.substr(1, d.host.size() - 2);
    if (d.name.empty()) {
      d.name = std::string(d.transport == SyslogTransport::udp   ? "udp"
                           : d.transport == SyslogTransport::tcp ? "tcp"
                                                                 : "tls") +
               "-" + d.host + "-" + std::to_string(d.port);
      for (auto& ch : d.name)
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.' || ch == '_'))
          ch = '_';
    } else {
      bool ok = d.name.size() <= 64 && d.name != "." && d.name != "..";
      for (char ch : d.name)
        ok = ok &&
             (std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.' || ch == '_');
      if (!ok)
        r.error(t.get("name"),
                "'name' must be 1-64 letters, digits, '-', '.' or '_' (it names the spool folder)");
    }
    for (const auto& other : c.syslog)
      if (other.name == d.name)
        r.error(&e, "two syslog destinations named '" + d.name + "' (give each its own 'name')");
    c.syslog.push_back(std::move(d));
  }
}

void read(Reader& r, const toml::table& root, Config& c) {
  r.check_keys(root,
               {"gateway", "listeners", "proxy", "limits", "timeouts", "dns", "upstream",
                "access_log", "log_store", "log", "policy", "icap", "scan", "syslog", "monitoring"},
               "");
  auto base_dir = c.source.parent_path();
  auto resolve = [&](const std::string& p) {
    std::filesystem::path fp(p);
    return fp.is_absolute() ? fp : (base_dir / fp).lexically_normal();
  };

  std::string state_dir = ".";
  if (auto* g = r.table(root, "gateway")) {
    r.check_keys(*g, {"name", "workers", "state_dir"}, "gateway");
    r.get(*g, "name", c.name);
    if (!valid_gateway_name(c.name))
      r.error(g->get("name"),
              "'name' must be a non-empty token of printable ASCII (no spaces or separators)");
    r.get_int(*g, "workers", c.workers, 0, 256);
    r.get(*g, "state_dir", state_dir);
  }
  c.state_dir = resolve(state_dir);
  if (c.workers == 0) c.workers = std::max(1u, std::thread::hardware_concurrency());

  if (const toml::node* ln = root.get("listeners")) {
    const toml::array* arr = ln->as_array();
    if (!arr || !arr->is_array_of_tables()) {
      r.error(ln, "'listeners' must be an array of tables ([[listeners]])");
    } else {
      for (const toml::node& e : *arr) {
        const toml::table& t = *e.as_table();
        r.check_keys(
            t, {"name", "address", "port", "guest", "protocol", "tcp_congestion", "receive_buffer"},
            "listeners");
        Listener l;
        r.get(t, "name", l.name);
        r.get(t, "address", l.address);
        r.get_int(t, "port", l.port, 1, 65535);
        r.get(t, "guest", l.guest);
        r.get_choice(
            t, "protocol", l.protocol,
            {{"proxy", Protocol::proxy}, {"icap", Protocol::icap}, {"icaps", Protocol::icaps}});
        if (l.guest && l.protocol != Protocol::proxy)
          r.error(t.get("guest"), "'guest' applies to proxy listeners only");
        set_socket_defaults(l);
        if (t.get("receive_buffer")) {
          r.get_int(t, "receive_buffer", l.receive_buffer, 0, 64 << 20);
          l.receive_buffer_set = true;
        }
        if (const toml::node* cc = t.get("tcp_congestion")) {
          r.get(t, "tcp_congestion", l.tcp_congestion);
          l.tcp_congestion_set = true;
          if (!valid_congestion_name(l.tcp_congestion))
            r.error(cc,
                    "'tcp_congestion' must be empty (the system's) or the name of a TCP "
                    "congestion control such as \"cubic\" (up to 15 of a-z, 0-9, _ and -)");
        }
        if (!t.get("port")) r.error(&e, "listener needs a 'port'");
        if (l.name.empty())
          l.name = l.protocol != Protocol::proxy ? std::string(to_string(l.protocol))
                   : l.guest                     ? "guest"
                                                 : "proxy";
        if (!base::parse_ip(l.address))
          r.error(t.get("address"), "'address' must be an IP address");
        for (const auto& other : c.listeners) {
          if (other.port == l.port && listeners_overlap(other.address, l.address)) {
            r.error(
                &e,
                "listener overlaps listener '" + other.name + "' on port " +
                    std::to_string(l.port) +
                    " (\"::\" also covers IPv4; a wildcard covers every address of its family)");
            break;
          }
        }
        c.listeners.push_back(std::move(l));
      }
    }
  }

  if (!root.get("listeners")) {  // defaults: users on 8080, guests on 8081, ICAP, ICAPS
    c.listeners.push_back({"proxy", "::", 8080, false, Protocol::proxy});
    c.listeners.push_back({"guest", "::", 8081, true, Protocol::proxy});
    c.listeners.push_back({"icap", "::", 1344, false, Protocol::icap});
    c.listeners.push_back({"icaps", "::", 11344, false, Protocol::icaps});
    for (auto& l : c.listeners) set_socket_defaults(l);
  }

  if (auto* p = r.table(root, "proxy")) {
    r.check_keys(*p,
                 {"client_networks", "connect_ports", "deny_destinations", "x_forwarded_for",
                  "max_connections", "max_connections_per_client"},
                 "proxy");
    r.get_networks(*p, "client_networks", c.client_networks);
    r.get_networks(*p, "deny_destinations", c.deny_destinations);
    if (const toml::node* n = p->get("connect_ports")) {
      const toml::array* a = n->as_array();
      if (!a)
        r.error(n, "'connect_ports' must be an array of port numbers");
      else {
        c.connect_ports.clear();
        for (const toml::node& e : *a) {
          auto v = e.value_exact<std::int64_t>();
          if (!v || *v < 1 || *v > 65535)
            r.error(&e, "'connect_ports' entries must be ports (1-65535)");
          else
            c.connect_ports.push_back(static_cast<std::uint16_t>(*v));
        }
      }
    }
    r.get_choice(*p, "x_forwarded_for", c.x_forwarded_for,
                 {{"add", XffMode::add}, {"keep", XffMode::keep}, {"remove", XffMode::remove}});
    r.get_int(*p, "max_connections", c.max_connections, 1, 10'000'000);
    r.get_int(*p, "max_connections_per_client", c.max_connections_per_client, 1, 10'000'000);
  }

  if (auto* l = r.table(root, "limits")) {
    r.check_keys(*l,
                 {"max_head_bytes", "max_fields", "max_field_bytes", "max_url_bytes",
                  "max_chunk_size_digits"},
                 "limits");
    r.get_int(*l, "max_head_bytes", c.limits.max_head_bytes, 1024, 1 << 24);
    r.get_int(*l, "max_fields", c.limits.max_fields, 1, 10000);
    r.get_int(*l, "max_field_bytes", c.limits.max_field_bytes, 64, 1 << 24);
    r.get_int(*l, "max_url_bytes", c.limits.max_url_bytes, 64, 1 << 24);
    r.get_int(*l, "max_chunk_size_digits", c.limits.max_chunk_size_digits, 1, 16);
  }

  if (auto* t = r.table(root, "timeouts")) {
    r.check_keys(*t,
                 {"header_read", "keepalive_idle", "upstream_connect", "upstream_first_byte",
                  "body_idle", "tunnel_idle", "upstream_keepalive_idle", "drain"},
                 "timeouts");
    auto& to = c.timeouts;
    r.get_seconds(*t, "header_read", to.header_read, 0.05, 86400);
    r.get_seconds(*t, "keepalive_idle", to.keepalive_idle, 0.05, 86400);
    r.get_seconds(*t, "upstream_connect", to.upstream_connect, 0.05, 86400);
    r.get_seconds(*t, "upstream_first_byte", to.upstream_first_byte, 0.05, 86400);
    r.get_seconds(*t, "body_idle", to.body_idle, 0.05, 86400);
    r.get_seconds(*t, "tunnel_idle", to.tunnel_idle, 0.05, 7 * 86400);
    r.get_seconds(*t, "upstream_keepalive_idle", to.upstream_keepalive_idle, 0.05, 86400);
    r.get_seconds(*t, "drain", to.drain, 0, 86400);
  }

  if (auto* d = r.table(root, "dns")) {
    r.check_keys(*d,
                 {"servers", "timeout", "tries", "hosts_file", "cache_entries", "min_ttl",
                  "max_ttl", "negative_ttl"},
                 "dns");
    std::vector<std::pair<std::string, const toml::node*>> servers;
    if (r.get_strings(*d, "servers", servers)) {
      for (auto& [s, n] : servers) {
        if (valid_dns_server(s))
          c.dns.servers.push_back(s);
        else
          r.error(n, "invalid DNS server '" + s + "' (expected ip, ip:port or [ipv6]:port)");
      }
    }
    r.get_seconds(*d, "timeout", c.dns.timeout, 0.01, 60);
    r.get_int(*d, "tries", c.dns.tries, 1, 10);
    r.get(*d, "hosts_file", c.dns.use_hosts_file);
    r.get_int(*d, "cache_entries", c.dns.cache_entries, 0, 10'000'000);
    // TTLs are whole seconds, as in DNS itself.
    std::int64_t ttl = c.dns.min_ttl.count();
    r.get_int(*d, "min_ttl", ttl, 0, 86400);
    c.dns.min_ttl = std::chrono::seconds(ttl);
    ttl = c.dns.max_ttl.count();
    r.get_int(*d, "max_ttl", ttl, 0, 7 * 86400);
    c.dns.max_ttl = std::chrono::seconds(ttl);
    ttl = c.dns.negative_ttl.count();
    r.get_int(*d, "negative_ttl", ttl, 0, 86400);
    c.dns.negative_ttl = std::chrono::seconds(ttl);
    if (c.dns.min_ttl > c.dns.max_ttl)
      r.error(d->get("min_ttl"), "'min_ttl' is larger than 'max_ttl'");
  }

  if (auto* u = r.table(root, "upstream")) {
    r.check_keys(*u, {"parents", "direct_domains", "retry_after"}, "upstream");
    if (const toml::node* pn = u->get("parents")) {
      const toml::array* arr = pn->as_array();
      if (!arr || !arr->is_array_of_tables()) {
        r.error(pn, "'parents' must be an array of tables ([[upstream.parents]])");
      } else {
        for (const toml::node& e : *arr) {
          const toml::table& t = *e.as_table();
          r.check_keys(t, {"host", "port", "username", "password"}, "upstream.parents");
          Parent p;
          r.get(t, "host", p.host);
          r.get_int(t, "port", p.port, 1, 65535);
          r.get(t, "username", p.username);
          r.get(t, "password", p.password);
          if (p.host.empty()) r.error(&e, "parent needs a 'host'");
          if (p.username.find(':') != std::string::npos)
            r.error(t.get("username"), "'username' must not contain ':'");
          c.parents.push_back(std::move(p));
        }
      }
    }
    std::vector<std::pair<std::string, const toml::node*>> domains;
    if (r.get_strings(*u, "direct_domains", domains)) {
      for (auto& [s, n] : domains) {
        std::string d = base::to_lower(s);
        while (!d.empty() && d.front() == '.') d.erase(0, 1);
        while (!d.empty() && d.back() == '.') d.pop_back();
        if (d.empty())
          r.error(n, "empty domain in 'direct_domains'");
        else
          c.direct_domains.push_back(d);
      }
    }
    r.get_seconds(*u, "retry_after", c.parent_retry_after, 0, 86400);
  }

  std::string log_path = "log/access.log", security_path = "log/security.log";
  if (auto* a = r.table(root, "access_log")) {
    r.check_keys(*a, {"path", "format", "security_path"}, "access_log");
    r.get(*a, "path", log_path);
    r.get(*a, "security_path", security_path);
    r.get_choice(*a, "format", c.access_log_format,
                 {{"json", LogFormat::json}, {"squid", LogFormat::squid}});
  }
  auto log_file = [&](const std::string& p) -> std::filesystem::path {
    if (p == "-" || p.empty()) return p;
    std::filesystem::path fp(p);
    return fp.is_absolute() ? fp : (c.state_dir / fp).lexically_normal();
  };
  c.access_log_path = log_file(log_path);
  c.security_log_path = log_file(security_path);
  if (!c.access_log_path.empty() && c.access_log_path == c.security_log_path && log_path != "-")
    r.error(r.table(root, "access_log"), "'security_path' must differ from 'path'");

  read_syslog(r, root, c, resolve);

  std::string store_path = "logs.db";
  if (auto* t = r.table(root, "log_store")) {
    auto& ls = c.log_store;
    r.check_keys(*t,
                 {"enabled", "path", "retention_days", "max_size_mb", "queue", "flush_interval"},
                 "log_store");
    r.get(*t, "enabled", ls.enabled);
    r.get(*t, "path", store_path);
    if (store_path.empty()) r.error(t->get("path"), "'path' must not be empty");
    r.get_int(*t, "retention_days", ls.retention_days, 0, 36500);
    r.get_int(*t, "max_size_mb", ls.max_size_mb, 1, std::int64_t{1} << 24);
    r.get_int(*t, "queue", ls.queue, 1000, 10'000'000);
    r.get_seconds(*t, "flush_interval", ls.flush_interval, 0.05, 60);
  }
  {
    std::filesystem::path fp(store_path);
    c.log_store.path = fp.is_absolute() ? fp : (c.state_dir / fp).lexically_normal();
  }

  std::string warn_key = "warn.key";
  if (auto* p = r.table(root, "policy")) {
    r.check_keys(*p, {"file", "templates", "warn_key"}, "policy");
    std::string file, templates;
    r.get(*p, "file", file);
    r.get(*p, "templates", templates);
    r.get(*p, "warn_key", warn_key);
    if (!file.empty()) c.policy_file = resolve(file);
    if (!templates.empty()) c.templates_dir = resolve(templates);
  }
  {
    std::filesystem::path fp(warn_key);
    c.warn_key_file = fp.is_absolute() ? fp : (c.state_dir / fp).lexically_normal();
  }

  std::string cert = "tls/icap.crt", cert_key = "tls/icap.key", client_ca;
  if (auto* t = r.table(root, "icap")) {
    auto& ic = c.icap;
    r.check_keys(
        *t,
        {"client_networks", "reqmod_service", "respmod_service", "reqmod_aliases",
         "respmod_aliases", "preview", "options_ttl", "max_connections", "buffer_for_204",
         "transfer_ignore", "transfer_complete", "user_headers", "group_headers",
         "client_ip_headers", "user_encoding", "tls_certificate", "tls_key", "tls_client_ca"},
        "icap");
    r.get_networks(*t, "client_networks", ic.client_networks);
    std::vector<std::pair<std::string, const toml::node*>> items;
    // Service names: the ICAP-URI path without "/", visible ASCII without "?" and "#".
    auto service = [&](std::string& s, const toml::node* n) {
      while (!s.empty() && s.front() == '/') s.erase(0, 1);
      bool ok = !s.empty();
      for (char ch : s) ok = ok && ch > 0x20 && ch < 0x7f && ch != '?' && ch != '#';
      if (!ok) r.error(n, "invalid ICAP service name '" + s + "'");
    };
    r.get(*t, "reqmod_service", ic.reqmod_service);
    service(ic.reqmod_service, t->get("reqmod_service"));
    r.get(*t, "respmod_service", ic.respmod_service);
    service(ic.respmod_service, t->get("respmod_service"));
    for (auto [key, list] : {std::pair{"reqmod_aliases", &ic.reqmod_aliases},
                             std::pair{"respmod_aliases", &ic.respmod_aliases}}) {
      if (r.get_strings(*t, key, items)) {
        list->clear();
        for (auto& [s, n] : items) {
          service(s, n);
          list->push_back(s);
        }
      }
    }
    r.get_int(*t, "preview", ic.preview, 0, 1 << 20);
    r.get_int(*t, "options_ttl", ic.options_ttl, 1, 7 * 86400);
    r.get_int(*t, "max_connections", ic.max_connections, 1, 10'000'000);
    r.get_int(*t, "buffer_for_204", ic.buffer_for_204, 0, 64 << 20);
    // File extensions for Transfer-Ignore / Transfer-Complete (RFC 3507 4.10.2): tokens,
    // lower-cased; "*" is Transfer-Preview's; an extension in both lists is an error.
    for (auto [key, list] : {std::pair{"transfer_ignore", &ic.transfer_ignore},
                             std::pair{"transfer_complete", &ic.transfer_complete}}) {
      if (!r.get_strings(*t, key, items)) continue;
      list->clear();
      for (auto& [s, n] : items) {
        bool ok = !s.empty() && s.size() <= 32;
        for (char ch : s)
          ok = ok && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' ||
                      ch == '+' || ch == '.');
        if (ok) s = base::to_lower(s);
        if (!ok)
          r.error(n, "'" + s +
                         "' is not a file extension (letters, digits, '_', '-', '+', '.'; "
                         "'*' is what Transfer-Preview says)");
        else if (std::find(list->begin(), list->end(), s) == list->end())
          list->push_back(s);
      }
    }
    for (const auto& e : ic.transfer_ignore)
      if (std::find(ic.transfer_complete.begin(), ic.transfer_complete.end(), e) !=
          ic.transfer_complete.end())
        r.error(t->get("transfer_complete"),
                "'" + e + "' is in both 'transfer_ignore' and 'transfer_complete'");
    for (auto [key, list] : {std::pair{"user_headers", &ic.user_headers},
                             std::pair{"group_headers", &ic.group_headers},
                             std::pair{"client_ip_headers", &ic.client_ip_headers}}) {
      if (r.get_strings(*t, key, items)) {
        list->clear();
        for (auto& [s, n] : items) {
          bool ok = !s.empty();
          for (char ch : s)
            ok = ok && (std::isalnum(static_cast<unsigned char>(ch)) ||
                        std::string_view("!#$%&'*+-.^_`|~").find(ch) != std::string_view::npos);
          if (!ok) r.error(n, "'" + s + "' is not a header field name");
          list->push_back(s);
        }
      }
    }
    r.get_choice(*t, "user_encoding", ic.user_encoding,
                 {{"auto", UserEncoding::automatic},
                  {"base64", UserEncoding::base64},
                  {"plain", UserEncoding::plain}});
    r.get(*t, "tls_certificate", cert);
    r.get(*t, "tls_key", cert_key);
    r.get(*t, "tls_client_ca", client_ca);
    if (cert.empty() != cert_key.empty()) r.error(t, "'tls_certificate' and 'tls_key' go together");
  }
  {
    auto in_state = [&](const std::string& p) -> std::filesystem::path {
      if (p.empty()) return {};
      std::filesystem::path fp(p);
      return fp.is_absolute() ? fp : (c.state_dir / fp).lexically_normal();
    };
    c.icap.tls_certificate = in_state(cert);
    c.icap.tls_key = in_state(cert_key);
    c.icap.tls_client_ca = in_state(client_ca);
    if (c.has_protocol(Protocol::icaps) && c.icap.tls_certificate.empty())
      r.error(root.get("icap"), "an icaps listener needs 'tls_certificate' and 'tls_key'");
  }

  c.scan.shipped_signatures = PC_SHIPPED_SIGNATURES;
  c.scan.threads = std::max(1u, std::thread::hardware_concurrency());
  if (auto* t = r.table(root, "scan")) {
    auto& sc = c.scan;
    r.check_keys(*t,
                 {"enabled", "shipped_signatures", "clamav_dir", "yara_dir", "max_scan_size",
                  "too_large", "unscannable", "on_failure", "memory_buffer", "spool_limit",
                  "threads", "queue", "cache_entries", "max_recursion", "max_files", "max_expanded",
                  "trickle_after", "scratch_dir"},
                 "scan");
    r.get(*t, "enabled", sc.enabled);
    for (auto [key, path] :
         {std::pair{"shipped_signatures", &sc.shipped_signatures},
          std::pair{"clamav_dir", &sc.clamav_dir}, std::pair{"yara_dir", &sc.yara_dir},
          std::pair{"scratch_dir", &sc.scratch_dir}}) {
      std::string v;
      if (!t->get(key)) continue;
      r.get(*t, key, v);
      *path = v.empty() ? std::filesystem::path() : resolve(v);
    }
    r.get_int(*t, "max_scan_size", sc.max_scan_size, 1, std::int64_t{1} << 40);
    r.get_choice(*t, "too_large", sc.block_too_large, {{"pass", false}, {"block", true}});
    r.get_choice(*t, "unscannable", sc.block_unscannable, {{"block", true}, {"pass", false}});
    r.get_choice(
        *t, "on_failure", sc.on_failure,
        {{"by_type", FailMode::by_type}, {"open", FailMode::open}, {"closed", FailMode::closed}});
    r.get_int(*t, "memory_buffer", sc.memory_buffer, 4096, std::int64_t{1} << 32);
    r.get_int(*t, "spool_limit", sc.spool_limit, 1 << 20, std::int64_t{1} << 44);
    unsigned threads = 0;
    r.get_int(*t, "threads", threads, 0, 256);
    if (threads != 0) sc.threads = threads;
    r.get_int(*t, "queue", sc.queue, 1, 1'000'000);
    r.get_int(*t, "cache_entries", sc.cache_entries, 0, 100'000'000);
    r.get_int(*t, "max_recursion", sc.max_recursion, 1, 64);
    r.get_int(*t, "max_files", sc.max_files, 1, 10'000'000);
    r.get_int(*t, "max_expanded", sc.max_expanded, 1 << 20, std::int64_t{1} << 40);
    r.get_seconds(*t, "trickle_after", sc.trickle_after, 0, 3600);
  }

  if (auto* m = r.table(root, "monitoring")) {
    auto& mo = c.monitoring;
    r.check_keys(*m, {"enabled", "address", "port", "allow_remote"}, "monitoring");
    r.get(*m, "enabled", mo.enabled);
    r.get(*m, "address", mo.address);
    r.get_int(*m, "port", mo.port, 1, 65535);
    r.get(*m, "allow_remote", mo.allow_remote);
    auto ip = base::parse_ip(mo.address);
    if (!ip) {
      r.error(m->get("address"), "'address' must be an IP address");
    } else if (!mo.allow_remote && !is_loopback(*ip)) {
      r.error(m->get("address"),
              "'address' must be a loopback address (127.0.0.0/8 or ::1): the monitoring "
              "listener tells whoever reaches it about the traffic; set allow_remote = true to "
              "listen elsewhere");
    }
  }
  if (c.monitoring.enabled) {
    for (const auto& l : c.listeners) {
      if (l.port == c.monitoring.port && listeners_overlap(l.address, c.monitoring.address)) {
        r.error(root.get("monitoring") ? root.get("monitoring") : root.get("listeners"),
                "the monitoring listener overlaps listener '" + l.name + "' on port " +
                    std::to_string(l.port));
        break;
      }
    }
  }

  if (auto* l = r.table(root, "log")) {
    r.check_keys(*l, {"level"}, "log");
    r.get(*l, "level", c.log_level);
    if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "warn" &&
        c.log_level != "error")
      r.error(l->get("level"), "'level' must be debug, info, warn or error");
  }
}

}  // namespace

std::string_view to_string(Protocol p) {
  switch (p) {
    case Protocol::proxy:
      return "proxy";
    case Protocol::icap:
      return "icap";
    case Protocol::icaps:
      return "icaps";
  }
  return "proxy";
}

void set_socket_defaults(Listener& l) {
  // ICAP peers are proxies on the same host or network: pacing costs CPU and buys nothing,
  // and a small autotuned window stalls bodies (docs/adr/0008-icap-socket-settings.md).
  // Proxy listeners serve browsers, possibly over long links: the kernel's choices.
  const bool icap = l.protocol != Protocol::proxy;
  l.tcp_congestion = icap ? "cubic" : "";
  l.receive_buffer = icap ? 1U << 20 : 0;
}

std::string default_gateway_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) == 0) {
    std::string_view h(buf);
    if (valid_gateway_name(h)) return std::string(h);
  }
  return "portcullis";
}

namespace {
std::vector<base::Cidr> networks(std::initializer_list<const char*> texts) {
  std::vector<base::Cidr> v;
  for (auto s : texts) v.push_back(*base::Cidr::parse(s));
  return v;
}
}  // namespace

std::vector<base::Cidr> default_client_networks() {
  return networks(
      {"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"});
}

std::vector<base::Cidr> default_deny_destinations() {
  return networks({"0.0.0.0/8", "::/128", "169.254.0.0/16", "fe80::/10"});
}

std::string format(const Error& e) {
  std::ostringstream o;
  o << e.file << ":" << e.line << ":" << e.column << ": " << e.message;
  return o.str();
}

LoadResult load_string(std::string_view text, const std::filesystem::path& name) {
  LoadResult res;
  Reader r(name.string());
  auto cfg = std::make_shared<Config>();
  cfg->source = std::filesystem::absolute(name).lexically_normal();
  try {
    toml::table root = toml::parse(text, name.string());
    read(r, root, *cfg);
  } catch (const toml::parse_error& e) {
    Error err{name.string(), static_cast<int>(e.source().begin.line),
              static_cast<int>(e.source().begin.column), std::string(e.description())};
    r.errors.push_back(std::move(err));
  }
  res.errors = std::move(r.errors);
  if (res.errors.empty()) res.config = std::move(cfg);
  return res;
}

LoadResult load_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LoadResult res;
    res.errors.push_back({path.string(), 0, 0, "cannot open file"});
    return res;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return load_string(ss.str(), path);
}

}  // namespace pc::config
