// Load client for the benchmark cases wrk cannot drive. Built by bench/run.sh with
//   g++ -O2 -std=c++20 -o bench/out/loadgen bench/loadgen.cpp
// Single thread, epoll, no libraries. Talks only to the addresses it is given.
//
// tunnel mode: N connections to a proxy, each sends "CONNECT host:port HTTP/1.1", waits for
//   the 200, then sends keep-alive "GET <path>" requests through the tunnel, one at a time,
//   until the duration ends. With --direct the CONNECT step is skipped (the same GETs go
//   straight to the origin: the baseline). Prints one JSON line with requests/s and latency
//   percentiles.
//
// idle mode: opens N connections to a proxy (at most --concurrency opening at once); on each
//   one it completes one absolute-form GET (or, with --no-request, nothing), then leaves it
//   idle. Prints a JSON line starting with READY once all are open, then holds them until
//   SIGTERM/SIGINT or --hold seconds, whichever comes first.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <csignal>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

struct Args {
  std::string mode;
  std::string proxy_host = "127.0.0.1";
  int proxy_port = 0;
  std::string target;  // host:port for CONNECT and Host
  std::string path = "/";
  int conns = 32;
  double duration = 10.0;
  double hold = 30.0;
  int concurrency = 64;
  bool direct = false;
  bool request = true;
  int max_reconnects = 100000;
};

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: loadgen tunnel --proxy PORT --target HOST:PORT --path /1k.bin "
               "--conns N --duration S [--direct]\n"
               "       loadgen idle --proxy PORT --target HOST:PORT --path /0.bin --conns N "
               "--hold S [--concurrency K] [--no-request]\n");
  std::exit(2);
}

Args parse(int argc, char** argv) {
  if (argc < 2) usage();
  Args a;
  a.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string_view k = argv[i];
    auto val = [&]() -> const char* {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (k == "--proxy")
      a.proxy_port = std::atoi(val());
    else if (k == "--proxy-host")
      a.proxy_host = val();
    else if (k == "--target")
      a.target = val();
    else if (k == "--path")
      a.path = val();
    else if (k == "--conns")
      a.conns = std::atoi(val());
    else if (k == "--duration")
      a.duration = std::atof(val());
    else if (k == "--hold")
      a.hold = std::atof(val());
    else if (k == "--concurrency")
      a.concurrency = std::atoi(val());
    else if (k == "--max-reconnects")
      a.max_reconnects = std::atoi(val());
    else if (k == "--direct")
      a.direct = true;
    else if (k == "--no-request")
      a.request = false;
    else
      usage();
  }
  if ((a.mode != "tunnel" && a.mode != "idle") || a.proxy_port <= 0 || a.target.empty() ||
      a.conns <= 0 || a.concurrency <= 0 || a.duration <= 0 || a.hold <= 0)
    usage();
  return a;
}

enum class St { Connecting, ConnectSent, Idle, ReqSent, Held, Dead };

struct Conn {
  int fd = -1;
  St st = St::Dead;
  std::string out;
  size_t out_off = 0;
  std::string in;
  long long body_left = -1;  // -1: still reading the head
  Clock::time_point sent;
};

struct Ctx {
  Args a;
  int ep = -1;
  sockaddr_in addr{};
  std::vector<Conn> conns;
  std::vector<uint32_t> lat_us;
  uint64_t requests = 0, bytes = 0, errors = 0, bad_status = 0, reconnects = 0;
  int opening = 0, held = 0, failed_open = 0;
  std::string connect_req, get_req;
};

bool open_conn(Ctx& c, size_t i) {
  Conn& k = c.conns[i];
  k = Conn{};
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int r = connect(fd, reinterpret_cast<sockaddr*>(&c.addr), sizeof c.addr);
  if (r < 0 && errno != EINPROGRESS) {
    close(fd);
    return false;
  }
  k.fd = fd;
  k.st = St::Connecting;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
  ev.data.u64 = i;
  epoll_ctl(c.ep, EPOLL_CTL_ADD, fd, &ev);
  return true;
}

void close_conn(Ctx& c, size_t i) {
  Conn& k = c.conns[i];
  if (k.fd >= 0) {
    epoll_ctl(c.ep, EPOLL_CTL_DEL, k.fd, nullptr);
    close(k.fd);
  }
  k.fd = -1;
  k.st = St::Dead;
}

void want_write(Ctx& c, size_t i, bool on) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0u);
  ev.data.u64 = i;
  epoll_ctl(c.ep, EPOLL_CTL_MOD, c.conns[i].fd, &ev);
}

// Returns false on a hard error.
bool flush(Ctx& c, size_t i) {
  Conn& k = c.conns[i];
  while (k.out_off < k.out.size()) {
    ssize_t n = send(k.fd, k.out.data() + k.out_off, k.out.size() - k.out_off, MSG_NOSIGNAL);
    if (n > 0) {
      k.out_off += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      want_write(c, i, true);
      return true;
    } else {
      return false;
    }
  }
  k.out.clear();
  k.out_off = 0;
  want_write(c, i, false);
  return true;
}

void send_get(Ctx& c, size_t i) {
  Conn& k = c.conns[i];
  k.out = c.get_req;
  k.out_off = 0;
  k.in.clear();
  k.body_left = -1;
  k.st = St::ReqSent;
  k.sent = Clock::now();
}

long long content_length(std::string_view head) {
  // Case-insensitive search for "\ncontent-length:".
  static constexpr std::string_view key = "\ncontent-length:";
  for (size_t p = 0; p + key.size() <= head.size(); ++p) {
    bool m = true;
    for (size_t j = 0; j < key.size(); ++j) {
      char ch = head[p + j];
      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
      if (ch != key[j]) {
        m = false;
        break;
      }
    }
    if (m) return std::atoll(std::string(head.substr(p + key.size(), 24)).c_str());
  }
  return -1;
}

bool status_2xx(std::string_view head) {
  // "HTTP/1.x 2.."
  return head.size() > 12 && head.substr(0, 5) == "HTTP/" && head[9] == '2';
}

// Handles bytes read on a connection; returns false if the connection must be dropped.
bool on_data(Ctx& c, size_t i, bool measuring) {
  Conn& k = c.conns[i];
  char buf[65536];
  for (;;) {
    ssize_t n = recv(k.fd, buf, sizeof buf, 0);
    if (n == 0) return false;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return true;
      return false;
    }
    if (k.st == St::ConnectSent) {
      k.in.append(buf, static_cast<size_t>(n));
      size_t e = k.in.find("\r\n\r\n");
      if (e == std::string::npos) {
        if (k.in.size() > 16384) return false;
        continue;
      }
      if (!status_2xx(k.in)) {
        ++c.bad_status;
        return false;
      }
      if (e + 4 != k.in.size()) return false;  // nothing may follow the 200 yet
      send_get(c, i);
      if (!flush(c, i)) return false;
      continue;
    }
    if (k.st != St::ReqSent) {
      if (k.st == St::Held) continue;  // unexpected bytes on an idle connection: ignore
      return false;
    }
    size_t used = 0;
    if (k.body_left < 0) {
      k.in.append(buf, static_cast<size_t>(n));
      size_t e = k.in.find("\r\n\r\n");
      if (e == std::string::npos) {
        if (k.in.size() > 65536) return false;
        continue;
      }
      std::string_view head(k.in.data(), e + 4);
      if (!status_2xx(head)) ++c.bad_status;
      long long cl = content_length(head);
      if (cl < 0) return false;  // the origin always sends Content-Length
      c.bytes += head.size();
      long long extra = static_cast<long long>(k.in.size() - head.size());
      if (extra > cl) return false;  // no pipelining: nothing may follow the body
      k.body_left = cl - extra;
      c.bytes += static_cast<uint64_t>(extra);
      k.in.clear();
    } else {
      used = static_cast<size_t>(n);
      if (static_cast<long long>(used) > k.body_left) return false;
      k.body_left -= static_cast<long long>(used);
      c.bytes += used;
    }
    if (k.body_left == 0) {
      auto now = Clock::now();
      if (c.a.mode == "idle") {
        k.st = St::Held;
        --c.opening;
        ++c.held;
        continue;
      }
      if (measuring) {
        ++c.requests;
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - k.sent).count();
        c.lat_us.push_back(static_cast<uint32_t>(std::min<long long>(us, UINT32_MAX)));
      }
      send_get(c, i);
      if (!flush(c, i)) return false;
    }
  }
}

// Connection became writable.
bool on_writable(Ctx& c, size_t i) {
  Conn& k = c.conns[i];
  if (k.st == St::Connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(k.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return false;
    if (c.a.mode == "idle") {
      if (!c.a.request) {
        k.st = St::Held;
        --c.opening;
        ++c.held;
        want_write(c, i, false);
        return true;
      }
      send_get(c, i);
      return flush(c, i);
    }
    if (c.a.direct) {
      send_get(c, i);
      return flush(c, i);
    }
    k.out = c.connect_req;
    k.out_off = 0;
    k.in.clear();
    k.st = St::ConnectSent;
    return flush(c, i);
  }
  return flush(c, i);
}

double pct(std::vector<uint32_t>& v, double p) {
  if (v.empty()) return 0;
  size_t idx = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

int run_tunnel(Ctx& c) {
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(c.a.duration));
  for (size_t i = 0; i < c.conns.size(); ++i)
    if (!open_conn(c, i)) ++c.errors;
  std::vector<epoll_event> evs(1024);
  while (!g_stop) {
    auto now = Clock::now();
    if (now >= end) break;
    int timeout_ms =
        static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(end - now).count()) +
        1;
    int n = epoll_wait(c.ep, evs.data(), static_cast<int>(evs.size()), std::min(timeout_ms, 200));
    for (int e = 0; e < n; ++e) {
      size_t i = evs[e].data.u64;
      if (c.conns[i].st == St::Dead) continue;
      bool ok = true;
      if (evs[e].events & (EPOLLOUT)) ok = on_writable(c, i);
      if (ok && (evs[e].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        ok = on_data(c, i, true);
      if (ok && (evs[e].events & (EPOLLHUP | EPOLLERR))) ok = false;
      if (!ok) {
        ++c.errors;
        close_conn(c, i);
        if (c.reconnects < static_cast<uint64_t>(c.a.max_reconnects)) {
          ++c.reconnects;
          if (!open_conn(c, i)) ++c.errors;
        }
      }
    }
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(c.lat_us.begin(), c.lat_us.end());
  double mean = 0;
  for (auto v : c.lat_us) mean += v;
  if (!c.lat_us.empty()) mean /= static_cast<double>(c.lat_us.size());
  std::printf(
      "{\"mode\":\"%s\",\"conns\":%d,\"duration_s\":%.3f,\"requests\":%llu,\"bytes\":%llu,"
      "\"rps\":%.1f,\"mbps\":%.3f,\"p50_us\":%.0f,\"p90_us\":%.0f,\"p99_us\":%.0f,"
      "\"max_us\":%.0f,\"mean_us\":%.1f,\"errors\":%llu,\"bad_status\":%llu,"
      "\"reconnects\":%llu}\n",
      c.a.direct ? "direct" : "tunnel", c.a.conns, secs,
      static_cast<unsigned long long>(c.requests), static_cast<unsigned long long>(c.bytes),
      static_cast<double>(c.requests) / secs, static_cast<double>(c.bytes) / secs / 1e6,
      pct(c.lat_us, 50), pct(c.lat_us, 90), pct(c.lat_us, 99),
      c.lat_us.empty() ? 0.0 : static_cast<double>(c.lat_us.back()), mean,
      static_cast<unsigned long long>(c.errors), static_cast<unsigned long long>(c.bad_status),
      static_cast<unsigned long long>(c.reconnects));
  return c.requests > 0 ? 0 : 1;
}

int run_idle(Ctx& c) {
  const auto start = Clock::now();
  const auto open_deadline = start + std::chrono::seconds(60);
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(c.a.hold));
  size_t next = 0;
  bool ready_printed = false;
  std::vector<epoll_event> evs(1024);
  while (!g_stop) {
    auto now = Clock::now();
    if (now >= end) break;
    // Keep at most `concurrency` connections in the opening phase.
    while (!ready_printed && next < c.conns.size() && c.opening < c.a.concurrency &&
           now < open_deadline) {
      if (open_conn(c, next)) {
        ++c.opening;
      } else {
        ++c.failed_open;
      }
      ++next;
    }
    if (!ready_printed && ((next == c.conns.size() && c.opening == 0) || now >= open_deadline)) {
      double secs = std::chrono::duration<double>(now - start).count();
      std::printf("READY {\"conns\":%d,\"held\":%d,\"failed\":%d,\"open_s\":%.3f}\n", c.a.conns,
                  c.held, c.failed_open + c.opening, secs);
      std::fflush(stdout);
      ready_printed = true;
    }
    int n = epoll_wait(c.ep, evs.data(), static_cast<int>(evs.size()), 100);
    for (int e = 0; e < n; ++e) {
      size_t i = evs[e].data.u64;
      Conn& k = c.conns[i];
      if (k.st == St::Dead) continue;
      bool was_opening = k.st != St::Held;
      bool ok = true;
      if (evs[e].events & EPOLLOUT) ok = on_writable(c, i);
      if (ok && (evs[e].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        ok = on_data(c, i, false);
      if (ok && (evs[e].events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP))) ok = false;
      if (!ok) {
        if (was_opening && k.st != St::Held) {
          --c.opening;
          ++c.failed_open;
        } else {
          --c.held;
          ++c.errors;  // closed by the proxy while idle
        }
        close_conn(c, i);
      }
    }
  }
  std::printf("DONE {\"held\":%d,\"closed_while_idle\":%llu}\n", c.held,
              static_cast<unsigned long long>(c.errors));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Ctx c;
  c.a = parse(argc, argv);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::signal(SIGPIPE, SIG_IGN);

  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  c.addr.sin_family = AF_INET;
  c.addr.sin_port = htons(static_cast<uint16_t>(c.a.proxy_port));
  if (inet_pton(AF_INET, c.a.proxy_host.c_str(), &c.addr.sin_addr) != 1) usage();

  c.connect_req = "CONNECT " + c.a.target + " HTTP/1.1\r\nHost: " + c.a.target + "\r\n\r\n";
  bool absolute = c.a.mode == "idle";
  c.get_req = "GET " + (absolute ? "http://" + c.a.target + c.a.path : c.a.path) +
              " HTTP/1.1\r\nHost: " + c.a.target + "\r\nUser-Agent: portcullis-bench\r\n\r\n";

  c.ep = epoll_create1(EPOLL_CLOEXEC);
  c.conns.resize(static_cast<size_t>(c.a.conns));
  c.lat_us.reserve(1 << 20);
  int rc = c.a.mode == "tunnel" ? run_tunnel(c) : run_idle(c);
  for (size_t i = 0; i < c.conns.size(); ++i) close_conn(c, i);
  close(c.ep);
  return rc;
}
