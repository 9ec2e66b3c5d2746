// c-ares driven by the worker's io_context: c-ares reports the sockets it opens through
// the socket-state callback, they are watched with stream_descriptor::async_wait (the
// descriptor never owns the fd: c-ares closes it, so it is released, not closed), and
// c-ares' own retransmission timeouts are driven by one steady_timer.
#include "net/resolver.h"

#include <ares.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <climits>
#include <cstring>
#include <list>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <unordered_map>

namespace pc::net {

std::string_view describe(DnsStatus s) {
  switch (s) {
    case DnsStatus::ok:
      return "ok";
    case DnsStatus::not_found:
      return "name not found (NXDOMAIN)";
    case DnsStatus::refused:
      return "DNS server refused the query";
    case DnsStatus::timeout:
      return "DNS timeout";
    case DnsStatus::error:
      break;
  }
  return "DNS error";
}

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kClassIn = 1;
constexpr int kTypeA = 1;
constexpr int kTypeAaaa = 28;
// Addresses kept per family from one answer; more are not useful for connecting.
constexpr int kMaxAddrsPerFamily = 32;
// Expired entries looked for at the cold end of the LRU list before evicting a live one.
constexpr int kEvictionScan = 16;

void init_library() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Never cleaned up: other workers may still use c-ares at exit.
    if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
      throw std::runtime_error("c-ares library initialisation failed");
    }
  });
}

DnsStatus map_status(int ares_status) {
  switch (ares_status) {
    case ARES_SUCCESS:
      return DnsStatus::ok;
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
      return DnsStatus::not_found;
    case ARES_EREFUSED:
    case ARES_ESERVFAIL:
      return DnsStatus::refused;
    case ARES_ETIMEOUT:
    // Every server unreachable; with several servers, c-ares 1.18 also ends this way when
    // each one answered SERVFAIL or REFUSED (see Impl::Impl).
    case ARES_ECONNREFUSED:
      return DnsStatus::timeout;
    default:
      return DnsStatus::error;
  }
}

// "[1.2.3.4]", "[::1]", "1.2.3.4", "::1" (with an optional zone) are literals.
std::optional<asio::ip::address> parse_ip_literal(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) return std::nullopt;
  boost::system::error_code ec;
  asio::ip::address a = asio::ip::make_address(std::string(host), ec);
  if (ec) return std::nullopt;
  return a;
}

// Lower-cased, without the root dot; nullopt for names that cannot be queried.
std::optional<std::string> normalize_name(std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.empty() || host.size() > 253) return std::nullopt;
  std::string out;
  out.reserve(host.size());
  for (char c : host) {
    const auto u = static_cast<unsigned char>(c);
    // No controls, blanks or escapes (c-ares gives '\' a meaning in names).
    if (u <= 0x20 || u == 0x7f || c == '\\') return std::nullopt;
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  return out;
}

// RFC 8305 section 4: alternate families, IPv6 first when there is any.
std::vector<asio::ip::address> interleave(const std::vector<asio::ip::address>& v6,
                                          const std::vector<asio::ip::address>& v4) {
  std::vector<asio::ip::address> out;
  out.reserve(v6.size() + v4.size());
  const std::size_t n = std::max(v6.size(), v4.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (i < v6.size()) out.push_back(v6[i]);
    if (i < v4.size()) out.push_back(v4[i]);
  }
  return out;
}

}  // namespace

HostsTable parse_hosts(std::string_view text) {
  struct Families {
    std::vector<asio::ip::address> v6, v4;
  };
  std::unordered_map<std::string, Families> found;
  std::vector<std::string> order;  // names in first-seen order (deterministic output)
  while (!text.empty()) {
    const std::size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    line = line.substr(0, line.find('#'));
    std::vector<std::string_view> fields;
    for (std::size_t at = 0; at < line.size();) {
      const std::size_t start = line.find_first_not_of(" \t\r\f\v", at);
      if (start == std::string_view::npos) break;
      const std::size_t end = std::min(line.find_first_of(" \t\r\f\v", start), line.size());
      fields.push_back(line.substr(start, end - start));
      at = end;
    }
    if (fields.size() < 2) continue;
    boost::system::error_code ec;
    const asio::ip::address a = asio::ip::make_address(std::string(fields[0]), ec);
    if (ec || (a.is_v6() && a.to_v6().is_v4_mapped())) continue;
    for (std::size_t f = 1; f < fields.size(); ++f) {
      std::optional<std::string> name = normalize_name(fields[f]);
      if (!name) continue;
      auto [it, fresh] = found.try_emplace(*name);
      if (fresh) order.push_back(*name);
      auto& list = a.is_v6() ? it->second.v6 : it->second.v4;
      if (std::find(list.begin(), list.end(), a) == list.end()) list.push_back(a);
    }
  }
  HostsTable out;
  for (const std::string& name : order) {
    const Families& fam = found[name];
    out.emplace(name, interleave(fam.v6, fam.v4));
  }
  return out;
}

struct Resolver::Impl {
  // One name being looked up; shared by every resolve() waiting for it.
  struct Lookup {
    Lookup(asio::io_context& io, std::string n)
        : name(std::move(n)), event(io, asio::steady_timer::time_point::max()) {}
    std::string name;
    // Used as an event: cancel() wakes every waiter.
    asio::steady_timer event;
    bool done = false;
    int pending = 2;
    // Index 0: A, 1: AAAA.
    std::array<int, 2> ares_status{ARES_ENODATA, ARES_ENODATA};
    std::array<std::vector<asio::ip::address>, 2> addrs;
    int min_ttl = INT_MAX;
    ResolveResult result;
  };

  struct QueryArg {
    Impl* impl;
    std::shared_ptr<Lookup> lookup;
    int family_index;
  };

  // A socket opened by c-ares. The descriptor only watches it: c-ares owns the fd.
  struct Watch {
    Watch(asio::io_context& io, int f) : desc(io), fd(f) {}
    asio::posix::stream_descriptor desc;
    int fd;
    bool want_read = false, want_write = false;
    bool read_pending = false, write_pending = false;
    bool closed = false;
  };

  struct CacheEntry {
    DnsStatus status;
    std::vector<asio::ip::address> addresses;
    Clock::time_point expires;
    std::list<std::string>::iterator lru;
  };

  Impl(asio::io_context& io_ctx, ResolverConfig c, Stats& counters)
      : io(io_ctx), cfg(std::move(c)), stats(counters), timer(io_ctx) {
    init_library();
    ares_options opts{};
    int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS |
               ARES_OPT_SOCK_STATE_CB | ARES_OPT_EDNSPSZ;
    // No ARES_FLAG_IGNTC (truncated UDP answers are retried over TCP) and no
    // ARES_FLAG_USEVC (UDP first). EDNS lets larger answers fit in UDP.
    opts.flags = ARES_FLAG_EDNS;
    opts.ednspsz = 1232;
    opts.timeout = static_cast<int>(
        std::clamp<std::chrono::milliseconds::rep>(cfg.timeout.count(), 1, INT_MAX));
    opts.tries = std::max(1, cfg.tries);
    lookups = "b";  // DNS only: the hosts file is Impl::hosts (read here, not by c-ares)
    opts.lookups = lookups.data();
    opts.sock_state_cb = &Impl::on_sock_state_cb;
    opts.sock_state_cb_data = this;
    std::string csv;
    for (const std::string& s : cfg.servers) {
      if (!csv.empty()) csv += ',';
      csv += server_to_csv(s);
    }
    // c-ares 1.18 moves on to the next server on SERVFAIL or REFUSED, but once every
    // server has failed that way it reports ARES_ECONNREFUSED, as for unreachable
    // servers. With a single server there is nothing to move on to, so its answer is
    // taken as it is (ARES_FLAG_NOCHECKRESP), which keeps REFUSED and SERVFAIL apart
    // from timeouts. With several servers failing over matters more.
    open_channel(opts, mask, csv);
    if (server_count() == 1) {
      ares_destroy(channel);
      channel = nullptr;
      opts.flags |= ARES_FLAG_NOCHECKRESP;
      open_channel(opts, mask, csv);
    }
  }

  void open_channel(ares_options& opts, int mask, const std::string& csv) {
    const int rc = ares_init_options(&channel, &opts, mask);
    if (rc != ARES_SUCCESS) {
      channel = nullptr;
      throw std::runtime_error(std::string("DNS resolver initialisation failed: ") +
                               ares_strerror(rc));
    }
    if (csv.empty()) return;
    const int src = ares_set_servers_ports_csv(channel, csv.c_str());
    if (src != ARES_SUCCESS) {
      ares_destroy(channel);
      channel = nullptr;
      throw std::invalid_argument("invalid DNS servers \"" + csv + "\": " + ares_strerror(src));
    }
  }

  int server_count() const {
    ares_addr_port_node* servers = nullptr;
    if (ares_get_servers_ports(channel, &servers) != ARES_SUCCESS) return 0;
    int n = 0;
    for (const ares_addr_port_node* p = servers; p != nullptr; p = p->next) ++n;
    ares_free_data(servers);
    return n;
  }

  ~Impl() { stop(); }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // "ip", "ip:port", "[v6]" or "[v6]:port" (a bare v6 address is accepted too) into the
  // form c-ares parses.
  static std::string server_to_csv(const std::string& s) {
    std::string addr;
    std::string port;
    if (!s.empty() && s.front() == '[') {
      const auto close = s.find(']');
      if (close == std::string::npos) throw std::invalid_argument("invalid DNS server: " + s);
      addr = s.substr(1, close - 1);
      if (close + 1 < s.size()) {
        if (s[close + 1] != ':') throw std::invalid_argument("invalid DNS server: " + s);
        port = s.substr(close + 2);
      }
    } else if (std::count(s.begin(), s.end(), ':') > 1) {
      addr = s;
    } else {
      const auto colon = s.find(':');
      addr = s.substr(0, colon);
      if (colon != std::string::npos) port = s.substr(colon + 1);
    }
    boost::system::error_code ec;
    const asio::ip::address a = asio::ip::make_address(addr, ec);
    if (ec) throw std::invalid_argument("invalid DNS server address: " + s);
    if (!port.empty()) {
      if (port.size() > 5 ||
          !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        throw std::invalid_argument("invalid DNS server port: " + s);
      }
      const int p = std::stoi(port);
      if (p < 1 || p > 65535) throw std::invalid_argument("invalid DNS server port: " + s);
    }
    // c-ares 1.18 takes "[v6]:port" but not "[v6]" alone.
    if (port.empty()) return a.to_string();
    return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + port;
  }

  // ---- sockets and timeouts ------------------------------------------------------------

  static void on_sock_state_cb(void* data, ares_socket_t fd, int readable, int writable) noexcept {
    static_cast<Impl*>(data)->on_sock_state(fd, readable != 0, writable != 0);
  }

  void on_sock_state(int fd, bool readable, bool writable) {
    if (!readable && !writable) {
      // c-ares is about to close fd: stop watching without closing it. release()
      // completes pending waits with operation_aborted; their handlers see `closed`.
      const auto it = socks.find(fd);
      if (it == socks.end()) return;
      forget(*it->second);
      socks.erase(it);
      return;
    }
    std::shared_ptr<Watch>& slot = socks[fd];
    if (!slot) {
      auto w = std::make_shared<Watch>(io, fd);
      boost::system::error_code ec;
      w->desc.assign(fd, ec);
      if (ec) {
        // Not watchable: the queries on it end through c-ares' timeouts.
        socks.erase(fd);
        return;
      }
      slot = std::move(w);
    }
    slot->want_read = readable;
    slot->want_write = writable;
    arm(slot);
  }

  static void forget(Watch& w) {
    w.closed = true;
    if (w.desc.is_open()) static_cast<void>(w.desc.release());
  }

  void arm(const std::shared_ptr<Watch>& w) {
    if (w->closed) return;
    if (w->want_read && !w->read_pending) {
      w->read_pending = true;
      w->desc.async_wait(
          asio::posix::stream_descriptor::wait_read,
          [this, alive = std::weak_ptr<int>(alive_), w](boost::system::error_code ec) {
            w->read_pending = false;
            if (alive.expired() || w->closed) return;
            on_ready(w, true, ec);
          });
    }
    if (w->want_write && !w->write_pending) {
      w->write_pending = true;
      w->desc.async_wait(
          asio::posix::stream_descriptor::wait_write,
          [this, alive = std::weak_ptr<int>(alive_), w](boost::system::error_code ec) {
            w->write_pending = false;
            if (alive.expired() || w->closed) return;
            on_ready(w, false, ec);
          });
    }
  }

  void on_ready(const std::shared_ptr<Watch>& w, bool readable, boost::system::error_code ec) {
    if (ec == asio::error::operation_aborted || channel == nullptr) return;
    const ares_socket_t fd = w->fd;
    ares_process_fd(channel, readable ? fd : ARES_SOCKET_BAD, readable ? ARES_SOCKET_BAD : fd);
    // On a wait error c-ares has now seen the socket's state; waiting again could spin.
    if (!ec) arm(w);
    update_timer();
  }

  void update_timer() {
    if (channel == nullptr) return;
    timeval tv{};
    const timeval* next = ares_timeout(channel, nullptr, &tv);
    if (next == nullptr) {
      timer.cancel();
      return;
    }
    auto delay = std::chrono::duration_cast<Clock::duration>(
        std::chrono::seconds(next->tv_sec) + std::chrono::microseconds(next->tv_usec));
    // c-ares rounds to milliseconds: waking a little late avoids a spin on "0 left".
    delay = std::max<Clock::duration>(delay, std::chrono::milliseconds(1));
    timer.expires_after(delay);
    timer.async_wait([this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
      if (alive.expired() || ec) return;
      on_timer();
    });
  }

  void on_timer() {
    if (channel == nullptr) return;
    ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    update_timer();
  }

  // ---- lookups --------------------------------------------------------------------------

  // The hosts file, then the rule that "localhost" and names under it are loopback even
  // when the file does not list them (RFC 6761 section 6.3). Empty if neither.
  std::vector<asio::ip::address> hosts_lookup(const std::string& name) {
    refresh_hosts();
    std::vector<asio::ip::address> listed;
    if (auto it = hosts.find(name); it != hosts.end()) listed = it->second;
    constexpr std::string_view kLocal = "localhost";
    constexpr std::string_view kUnderLocal = ".localhost";
    const bool local = name == kLocal || (name.size() > kUnderLocal.size() &&
                                          name.compare(name.size() - kUnderLocal.size(),
                                                       kUnderLocal.size(), kUnderLocal) == 0);
    if (listed.empty() && local) {
      listed = {asio::ip::address_v6::loopback(), asio::ip::address_v4::loopback()};
    }
    return listed;
  }

  // The hosts file is read once and again only when it changed, which is looked at (one
  // stat) at most every cfg.hosts_check: a worker does not read a file for every name it
  // resolves. A file that cannot be read lists nothing.
  static constexpr std::size_t kMaxHostsBytes = 4 << 20;
  void refresh_hosts() {
    const Clock::time_point now = Clock::now();
    if (hosts_checked && now - *hosts_checked < cfg.hosts_check) return;
    hosts_checked = now;
    struct stat st {};
    if (::stat(cfg.hosts_file.c_str(), &st) != 0) {
      hosts.clear();
      hosts_version = {};
      return;
    }
    const HostsVersion v{
        static_cast<std::int64_t>(st.st_mtim.tv_sec), static_cast<std::int64_t>(st.st_mtim.tv_nsec),
        static_cast<std::int64_t>(st.st_size), static_cast<std::uint64_t>(st.st_ino)};
    if (v == hosts_version) return;
    std::string text;
    if (!read_small_file(cfg.hosts_file, kMaxHostsBytes, text)) return;  // next check retries
    hosts = parse_hosts(text);
    hosts_version = v;
  }

  static bool read_small_file(const std::string& path, std::size_t limit, std::string& out) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char buf[16384];
    bool ok = true;
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ok = n == 0;
        break;
      }
      out.append(buf, static_cast<std::size_t>(n));
      if (out.size() > limit) break;  // larger than any hosts file: its start only
    }
    ::close(fd);
    return ok;
  }

  std::shared_ptr<Lookup> start(const std::string& key) {
    auto lk = std::make_shared<Lookup>(io, key);
    inflight.emplace(key, lk);
    ++stats.queries;
    // Either query may complete synchronously (bad name, out of memory).
    ares_query(channel, key.c_str(), kClassIn, kTypeA, &Impl::on_answer_cb,
               new QueryArg{this, lk, 0});
    ares_query(channel, key.c_str(), kClassIn, kTypeAaaa, &Impl::on_answer_cb,
               new QueryArg{this, lk, 1});
    update_timer();
    return lk;
  }

  static void on_answer_cb(void* arg, int status, int /*timeouts*/, unsigned char* abuf,
                           int alen) noexcept {
    std::unique_ptr<QueryArg> q(static_cast<QueryArg*>(arg));
    q->impl->on_answer(*q->lookup, q->family_index, status, abuf, alen);
  }

  void on_answer(Lookup& lk, int index, int status, const unsigned char* abuf, int alen) {
    if (status == ARES_SUCCESS && abuf != nullptr) {
      int n = kMaxAddrsPerFamily;
      if (index == 0) {
        std::array<ares_addrttl, kMaxAddrsPerFamily> ttls{};
        status = ares_parse_a_reply(abuf, alen, nullptr, ttls.data(), &n);
        for (int i = 0; status == ARES_SUCCESS && i < n; ++i) {
          asio::ip::address_v4::bytes_type b;
          std::memcpy(b.data(), &ttls[i].ipaddr, b.size());
          lk.addrs[0].emplace_back(asio::ip::address_v4(b));
          lk.min_ttl = std::min(lk.min_ttl, ttls[i].ttl);
        }
      } else {
        std::array<ares_addr6ttl, kMaxAddrsPerFamily> ttls{};
        status = ares_parse_aaaa_reply(abuf, alen, nullptr, ttls.data(), &n);
        for (int i = 0; status == ARES_SUCCESS && i < n; ++i) {
          asio::ip::address_v6::bytes_type b;
          std::memcpy(b.data(), &ttls[i].ip6addr, b.size());
          lk.addrs[1].emplace_back(asio::ip::address_v6(b));
          lk.min_ttl = std::min(lk.min_ttl, ttls[i].ttl);
        }
      }
      if (status == ARES_SUCCESS && lk.addrs[index].empty()) status = ARES_ENODATA;
    } else if (status == ARES_SUCCESS) {
      status = ARES_EBADRESP;
    }
    lk.ares_status[index] = status;
    if (--lk.pending == 0) finish(lk);
  }

  void finish(Lookup& lk) {
    ResolveResult r;
    bool degraded = false;
    if (stopped) {
      r.status = DnsStatus::error;
    } else {
      r.addresses = interleave(lk.addrs[1], lk.addrs[0]);
      const DnsStatus a = map_status(lk.ares_status[0]);
      const DnsStatus aaaa = map_status(lk.ares_status[1]);
      if (!r.addresses.empty()) {
        r.status = DnsStatus::ok;
        // One family failed transiently: keep the partial answer only briefly.
        degraded = (a != DnsStatus::ok && a != DnsStatus::not_found) ||
                   (aaaa != DnsStatus::ok && aaaa != DnsStatus::not_found);
      } else if (lk.ares_status[0] == ARES_ENOTFOUND || lk.ares_status[1] == ARES_ENOTFOUND) {
        r.status = DnsStatus::not_found;  // NXDOMAIN holds for every type
      } else if (a == DnsStatus::not_found) {
        r.status = aaaa == DnsStatus::ok ? DnsStatus::not_found : aaaa;
      } else {
        r.status = a == DnsStatus::ok ? DnsStatus::error : a;
      }
      if (r.status != DnsStatus::ok) ++stats.failures;
      if (r.status == DnsStatus::timeout) ++stats.timeouts;
      const int ttl = lk.min_ttl == INT_MAX ? 0 : std::max(0, lk.min_ttl);
      store(lk.name, r, degraded ? cfg.min_ttl : std::chrono::seconds(ttl));
    }
    const auto it = inflight.find(lk.name);
    if (it != inflight.end() && it->second.get() == &lk) inflight.erase(it);
    lk.result = std::move(r);
    lk.done = true;
    lk.event.cancel();
  }

  // ---- cache ----------------------------------------------------------------------------

  const CacheEntry* cache_find(const std::string& key) {
    const auto it = cache.find(key);
    if (it == cache.end()) return nullptr;
    if (it->second.expires <= Clock::now()) {
      lru.erase(it->second.lru);
      cache.erase(it);
      return nullptr;
    }
    lru.splice(lru.begin(), lru, it->second.lru);
    return &it->second;
  }

  // Positive answers for ttl clamped to [min_ttl, max_ttl]; not_found for negative_ttl;
  // other failures are not kept.
  void store(const std::string& key, const ResolveResult& r, std::chrono::seconds ttl) {
    if (cfg.cache_entries == 0) return;
    std::chrono::seconds keep{0};
    if (r.status == DnsStatus::ok) {
      keep = std::min(std::max(ttl, cfg.min_ttl), cfg.max_ttl);
    } else if (r.status == DnsStatus::not_found) {
      keep = cfg.negative_ttl;
    }
    if (keep.count() <= 0) return;
    const Clock::time_point expires = Clock::now() + keep;
    const auto it = cache.find(key);
    if (it != cache.end()) {
      it->second.status = r.status;
      it->second.addresses = r.addresses;
      it->second.expires = expires;
      lru.splice(lru.begin(), lru, it->second.lru);
      return;
    }
    if (cache.size() >= cfg.cache_entries) evict();
    lru.push_front(key);
    cache.emplace(key, CacheEntry{r.status, r.addresses, expires, lru.begin()});
  }

  // Drops expired entries found among the least recently used few, else the least
  // recently used one: constant work per insertion.
  void evict() {
    const Clock::time_point now = Clock::now();
    bool freed = false;
    auto pos = lru.end();
    for (int i = 0; i < kEvictionScan && pos != lru.begin(); ++i) {
      --pos;
      const auto it = cache.find(*pos);
      if (it->second.expires <= now) {
        cache.erase(it);
        pos = lru.erase(pos);
        freed = true;
      }
    }
    if (!freed && !lru.empty()) {
      cache.erase(lru.back());
      lru.pop_back();
    }
  }

  // ---- shutdown -------------------------------------------------------------------------

  void stop() {
    if (stopped) return;
    stopped = true;
    if (channel != nullptr) {
      // Completes every query with ARES_ECANCELLED; finish() reports them as errors.
      ares_cancel(channel);
      ares_channel ch = channel;
      channel = nullptr;
      ares_destroy(ch);  // closes its sockets through the socket-state callback
    }
    timer.cancel();
    for (auto& [fd, w] : socks) forget(*w);
    socks.clear();
    // Nothing should be left; wake any waiter regardless.
    auto left = std::move(inflight);
    inflight.clear();
    for (auto& [name, lk] : left) {
      if (!lk->done) {
        lk->result = ResolveResult{};
        lk->done = true;
        lk->event.cancel();
      }
    }
    cache.clear();
    lru.clear();
  }

  asio::io_context& io;
  ResolverConfig cfg;
  Stats& stats;
  std::string lookups;
  ares_channel channel = nullptr;
  bool stopped = false;
  asio::steady_timer timer;
  std::unordered_map<int, std::shared_ptr<Watch>> socks;
  std::unordered_map<std::string, std::shared_ptr<Lookup>> inflight;
  std::unordered_map<std::string, CacheEntry> cache;
  std::list<std::string> lru;  // most recently used first
  struct HostsVersion {
    std::int64_t sec = -1, nsec = 0, size = 0;
    std::uint64_t inode = 0;
    bool operator==(const HostsVersion&) const = default;
  };
  HostsTable hosts;
  HostsVersion hosts_version;
  std::optional<Clock::time_point> hosts_checked;
  // Handlers hold a weak reference: once the Impl is gone they do nothing.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

Resolver::Resolver(asio::io_context& io, ResolverConfig cfg) {
  impl_ = std::make_unique<Impl>(io, std::move(cfg), stats_);
}

Resolver::~Resolver() {
  if (impl_) impl_->stop();
}

void Resolver::shutdown() {
  if (impl_) impl_->stop();
}

asio::awaitable<ResolveResult> Resolver::resolve(std::string host) {
  ResolveResult r;
  if (std::optional<asio::ip::address> literal = parse_ip_literal(host)) {
    r.status = DnsStatus::ok;
    r.addresses.push_back(*literal);
    co_return r;
  }
  if (!impl_ || impl_->stopped) co_return r;
  std::optional<std::string> key = normalize_name(host);
  if (!key) {
    ++stats_.failures;
    co_return r;
  }
  if (const Impl::CacheEntry* hit = impl_->cache_find(*key)) {
    ++stats_.cache_hits;
    r.status = hit->status;
    r.addresses = hit->addresses;
    r.from_cache = true;
    co_return r;
  }
  std::shared_ptr<Impl::Lookup> lk;
  if (const auto it = impl_->inflight.find(*key); it != impl_->inflight.end()) {
    ++stats_.coalesced;
    lk = it->second;
  } else {
    if (impl_->cfg.use_hosts_file) {
      std::vector<asio::ip::address> listed = impl_->hosts_lookup(*key);
      if (!listed.empty()) {
        r.status = DnsStatus::ok;
        r.addresses = std::move(listed);
        impl_->store(*key, r, std::chrono::seconds(0));
        co_return r;
      }
    }
    lk = impl_->start(*key);
  }
  if (!lk->done) {
    // From here on only the lookup is used: the Resolver may be gone when this resumes.
    std::tuple<boost::system::error_code> waited =
        co_await lk->event.async_wait(asio::as_tuple(asio::use_awaitable));
    static_cast<void>(waited);
  }
  if (!lk->done) co_return r;  // the caller cancelled the wait
  r = lk->result;
  co_return r;
}

}  // namespace pc::net
