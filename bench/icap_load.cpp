// ICAP/1.0 (RFC 3507) load client for bench/icap.sh. Built by it with
//   g++ -O2 -std=c++20 -Wall -o bench/out/icap/icap_load bench/icap_load.cpp
// Single thread, epoll, no libraries. Talks only to the address it is given.
//
// N persistent connections; each sends REQMOD or RESPMOD messages back to back, one at a time
// (no pipelining), until the duration ends or --max-count transactions were started:
//
//   nopreview  heads + the whole body (chunked), "Allow: 204". Expects 204, or 200 with the
//              message echoed (the body must come back whole).
//   preview0   "Preview: 0" + "Allow: 204": heads and the zero-length preview chunk "0\r\n\r\n".
//              Expects 204; on "100 Continue" it sends the body and expects 204 or a 200 echo.
//   echo       heads + the whole body, no "Allow: 204": the server must answer 200 and echo
//              the message; the whole chunked body is read and its length checked.
//
// --unique: every transaction's body starts with a different 16-hex-digit counter (the rest is
// the same bytes; the counter starts at a random point), so that no verdict cache (the
// server's, or libclamav's own) can answer a scanning server: every body is scanned.
//
// A 0 B body is a null-body message: REQMOD "GET" (req-hdr, null-body), RESPMOD
// "Content-Length: 0" (req-hdr, res-hdr, null-body). With a body, REQMOD is a "POST" with
// Content-Length; RESPMOD carries req-hdr + res-hdr ("HTTP/1.1 200 OK") + res-body.
//
// Responses are parsed properly: ICAP status line, headers, Encapsulated (the encapsulated
// HTTP heads are skipped by its offsets), then the chunked body up to the 0 chunk and its
// trailer. Latency is from the first byte written to the last byte of the final response
// (and of the request, if the server answered before reading it all). Prints one JSON line:
// transactions/s, p50 / p99 / p99.9 / max latency (log buckets, ~1.6% resolution), counts of
// 204 / 200 / 100 answers, errors (wrong status, wrong echo, malformed response, dropped
// connection, timeout) and reconnects.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <csignal>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

enum class Mode { NoPreview, Preview0, Echo };

struct Args {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string service;  // ICAP-URI path, e.g. /reqmod or /echo
  std::string method = "REQMOD";
  Mode mode = Mode::NoPreview;
  std::string mode_name = "nopreview";
  std::string size_name = "0";
  long long size = 0;
  int conns = 16;
  double duration = 5.0;
  double warmup = 0.0;
  long long max_count = 100000000;
  long long chunk = 65536;
  std::string client_ip = "10.200.0.7";
  std::string url = "http://bench.example/path";
  double timeout = 30.0;
  int max_reconnects = 10000;
  bool unique = false;  // a different body for every transaction
};

[[noreturn]] void usage(const char* why = nullptr) {
  if (why) std::fprintf(stderr, "icap_load: %s\n", why);
  std::fprintf(stderr,
               "usage: icap_load --port PORT --service /PATH --method REQMOD|RESPMOD\n"
               "                 --mode nopreview|preview0|echo --size 0|1k|64k|1m|BYTES\n"
               "                 --conns N --duration S [--warmup S] [--max-count N]\n"
               "                 [--host 127.0.0.1] [--chunk BYTES] [--client-ip IP] [--url URL]\n"
               "                 [--timeout S] [--max-reconnects N] [--unique]\n");
  std::exit(2);
}

long long parse_size(const std::string& s) {
  if (s == "0") return 0;
  if (s == "1k") return 1024;
  if (s == "64k") return 64 * 1024;
  if (s == "1m") return 1024 * 1024;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (!end || *end || v < 0 || v > (1LL << 32)) usage("bad --size");
  return v;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string_view k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value");
      return argv[++i];
    };
    if (k == "--port")
      a.port = std::atoi(val().c_str());
    else if (k == "--host")
      a.host = val();
    else if (k == "--service")
      a.service = val();
    else if (k == "--method")
      a.method = val();
    else if (k == "--mode")
      a.mode_name = val();
    else if (k == "--size")
      a.size = parse_size(a.size_name = val());
    else if (k == "--conns")
      a.conns = std::atoi(val().c_str());
    else if (k == "--duration")
      a.duration = std::atof(val().c_str());
    else if (k == "--warmup")
      a.warmup = std::atof(val().c_str());
    else if (k == "--max-count")
      a.max_count = std::atoll(val().c_str());
    else if (k == "--chunk")
      a.chunk = std::atoll(val().c_str());
    else if (k == "--client-ip")
      a.client_ip = val();
    else if (k == "--url")
      a.url = val();
    else if (k == "--timeout")
      a.timeout = std::atof(val().c_str());
    else if (k == "--max-reconnects")
      a.max_reconnects = std::atoi(val().c_str());
    else if (k == "--unique")
      a.unique = true;
    else
      usage("unknown option");
  }
  if (a.mode_name == "nopreview")
    a.mode = Mode::NoPreview;
  else if (a.mode_name == "preview0")
    a.mode = Mode::Preview0;
  else if (a.mode_name == "echo")
    a.mode = Mode::Echo;
  else
    usage("bad --mode");
  if (a.method != "REQMOD" && a.method != "RESPMOD") usage("bad --method");
  if (a.port <= 0 || a.port > 65535 || a.service.empty() || a.service[0] != '/')
    usage("--port and --service are required");
  if (a.conns < 1 || a.conns > 10000) usage("--conns must be 1..10000");
  if (!(a.duration > 0 && a.duration <= 3600)) usage("--duration must be 0..3600 s");
  if (!(a.warmup >= 0 && a.warmup <= 600)) usage("--warmup must be 0..600 s");
  if (a.max_count < 1) usage("--max-count must be >= 1");
  if (a.chunk < 1 || a.chunk > (64LL << 20)) usage("--chunk must be 1..64 MiB");
  if (!(a.timeout > 0)) usage("--timeout must be > 0");
  if (a.mode == Mode::Preview0 && a.size == 0)
    usage("preview0 needs a body (a 0 B message is a null-body message: no preview)");
  return a;
}

// ------------------------------------------------------------------ the request

struct Message {
  std::string part1;  // everything, or (preview0) heads + the empty preview "0\r\n\r\n"
  std::string part2;  // preview0: the body after "100 Continue"
  // Where the body's first bytes are (--unique stamps them): in part1, or in part2 (preview0);
  // `stamp` bytes may be written there without reaching a chunk's end.
  bool in_part2 = false;
  size_t body_at = 0;
  size_t stamp = 0;
};

std::string host_of(const std::string& url) {
  std::string_view u = url;
  auto p = u.find("://");
  if (p != std::string_view::npos) u.remove_prefix(p + 3);
  auto e = u.find_first_of("/?#");
  return std::string(u.substr(0, e));
}

std::string chunked(long long size, long long chunk) {
  std::string out;
  out.reserve(static_cast<size_t>(size + size / chunk * 16 + 32));
  uint64_t x = 0x9E3779B97F4A7C15ULL;  // deterministic, incompressible-looking bytes
  long long left = size;
  char hex[32];
  while (left > 0) {
    long long n = std::min(left, chunk);
    std::snprintf(hex, sizeof hex, "%llx\r\n", n);
    out += hex;
    for (long long i = 0; i < n; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      out.push_back(static_cast<char>(x >> 24));
    }
    out += "\r\n";
    left -= n;
  }
  out += "0\r\n\r\n";
  return out;
}

Message build(const Args& a) {
  const std::string host = host_of(a.url);
  std::string req = (a.method == "REQMOD" && a.size > 0 ? "POST " : "GET ") + a.url +
                    " HTTP/1.1\r\n"
                    "Host: " +
                    host +
                    "\r\n"
                    "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                    "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36\r\n"
                    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
                    "Accept-Language: en-US,en;q=0.5\r\n";
  if (a.method == "REQMOD" && a.size > 0)
    req += "Content-Type: application/octet-stream\r\nContent-Length: " + std::to_string(a.size) +
           "\r\n";
  req += "\r\n";
  std::string encap;
  std::string heads;
  if (a.method == "REQMOD") {
    heads = req;
    encap = "req-hdr=0, " + std::string(a.size > 0 ? "req-body=" : "null-body=") +
            std::to_string(heads.size());
  } else {
    std::string res =
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/octet-stream\r\n"
        "Content-Length: " +
        std::to_string(a.size) + "\r\n\r\n";
    heads = req + res;
    encap = "req-hdr=0, res-hdr=" + std::to_string(req.size()) + ", " +
            std::string(a.size > 0 ? "res-body=" : "null-body=") + std::to_string(heads.size());
  }
  std::string icap = a.method + " icap://" + a.host + ":" + std::to_string(a.port) + a.service +
                     " ICAP/1.0\r\n"
                     "Host: " +
                     a.host + ":" + std::to_string(a.port) + "\r\n";
  if (a.mode == Mode::Preview0) icap += "Preview: 0\r\n";
  if (a.mode != Mode::Echo) icap += "Allow: 204\r\n";
  icap += "X-Client-IP: " + a.client_ip + "\r\nEncapsulated: " + encap + "\r\n\r\n";

  Message m;
  m.part1 = icap + heads;
  if (a.size > 0) {
    const std::string body = chunked(a.size, a.chunk);
    const size_t first = body.find("\r\n") + 2;  // after the first chunk-size line
    m.stamp = static_cast<size_t>(std::min({16LL, a.size, a.chunk}));
    if (a.mode == Mode::Preview0) {
      m.part1 += "0\r\n\r\n";
      m.part2 = body;
      m.in_part2 = true;
      m.body_at = first;
    } else {
      m.body_at = m.part1.size() + first;
      m.part1 += body;
    }
  }
  return m;
}

// ------------------------------------------------------------------ the response parser

bool ieq(std::string_view x, std::string_view y) {
  if (x.size() != y.size()) return false;
  for (size_t i = 0; i < x.size(); ++i) {
    char p = x[i], q = y[i];
    if (p >= 'A' && p <= 'Z') p = static_cast<char>(p - 'A' + 'a');
    if (q >= 'A' && q <= 'Z') q = static_cast<char>(q - 'A' + 'a');
    if (p != q) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

struct Parser {
  enum class S { Head, Encap, ChunkLine, ChunkData, ChunkEnd, Trailer, Done };
  S s = S::Head;
  std::string buf;  // the ICAP head, or the current chunk-size / trailer line
  long long left = 0;
  int status = 0;
  bool close = false;
  bool has_body = false;
  bool saw_encap = false;
  long long body_bytes = 0;
  const char* err = nullptr;

  void reset() {
    s = S::Head;
    buf.clear();
    left = 0;
    status = 0;
    close = false;
    has_body = false;
    saw_encap = false;
    body_bytes = 0;
    err = nullptr;
  }

  bool fail(const char* why) {
    err = why;
    return false;
  }

  bool head_done() {
    std::string_view h = buf;
    size_t eol = h.find("\r\n");
    std::string_view line = h.substr(0, eol);
    // "ICAP/1.0 204 No Content"
    if (line.size() < 12 || line.substr(0, 9) != "ICAP/1.0 ") return fail("bad status line");
    status = 0;
    for (size_t i = 9; i < 12; ++i) {
      if (line[i] < '0' || line[i] > '9') return fail("bad status code");
      status = status * 10 + (line[i] - '0');
    }
    long long last_off = -1;
    std::string_view last_name;
    for (size_t p = eol + 2; p < h.size();) {
      size_t e = h.find("\r\n", p);
      if (e == std::string_view::npos || e == p) break;
      std::string_view f = h.substr(p, e - p);
      p = e + 2;
      size_t c = f.find(':');
      if (c == std::string_view::npos) return fail("header without colon");
      std::string_view name = trim(f.substr(0, c)), value = trim(f.substr(c + 1));
      if (ieq(name, "Connection")) {
        if (value.find("close") != std::string_view::npos ||
            value.find("Close") != std::string_view::npos)
          close = true;
      } else if (ieq(name, "Encapsulated")) {
        saw_encap = true;
        // "res-hdr=0, res-body=123"
        while (!value.empty()) {
          size_t comma = value.find(',');
          std::string_view ent = trim(value.substr(0, comma));
          value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
          size_t eq = ent.find('=');
          if (eq == std::string_view::npos) return fail("bad Encapsulated");
          std::string_view en = trim(ent.substr(0, eq)), ev = trim(ent.substr(eq + 1));
          if (ev.empty() || ev.size() > 12) return fail("bad Encapsulated offset");
          long long off = 0;
          for (char ch : ev) {
            if (ch < '0' || ch > '9') return fail("bad Encapsulated offset");
            off = off * 10 + (ch - '0');
          }
          if (off < last_off) return fail("Encapsulated offsets out of order");
          last_off = off;
          last_name = en;
        }
      }
    }
    buf.clear();
    if (status == 100) {
      s = S::Done;
      return true;
    }
    if (!saw_encap || last_off < 0) {
      // 204 and errors may omit Encapsulated; a 200 may not.
      if (status == 200) return fail("200 without Encapsulated");
      s = S::Done;
      return true;
    }
    bool body = last_name.size() > 5 && last_name.substr(last_name.size() - 5) == "-body" &&
                last_name != "null-body";
    if (!body && last_name != "null-body") return fail("Encapsulated does not end with a body");
    has_body = body;
    left = last_off;
    s = left > 0 ? S::Encap : (has_body ? S::ChunkLine : S::Done);
    return true;
  }

  // Consumes bytes; returns how many, or -1 on a protocol error. Stops at Done.
  long long feed(const char* p, size_t n) {
    size_t i = 0;
    while (i < n && s != S::Done) {
      switch (s) {
        case S::Head: {
          // Append up to the end of the head.
          size_t start = buf.size();
          const char* q = p + i;
          size_t take = n - i;
          buf.append(q, take);
          size_t from = start >= 3 ? start - 3 : 0;
          size_t e = buf.find("\r\n\r\n", from);
          if (e == std::string::npos) {
            if (buf.size() > 65536) return fail("ICAP head over 64 KiB"), -1;
            i = n;
            break;
          }
          size_t head_len = e + 4;
          i += head_len - start;
          buf.resize(head_len);
          if (!head_done()) return -1;
          break;
        }
        case S::Encap: {
          size_t take =
              static_cast<size_t>(std::min<long long>(left, static_cast<long long>(n - i)));
          i += take;
          left -= static_cast<long long>(take);
          if (left == 0) s = has_body ? S::ChunkLine : S::Done;
          break;
        }
        case S::ChunkLine:
        case S::Trailer: {
          const char* nl = static_cast<const char*>(std::memchr(p + i, '\n', n - i));
          size_t take = nl ? static_cast<size_t>(nl - (p + i)) + 1 : n - i;
          buf.append(p + i, take);
          i += take;
          if (buf.size() > 4096) return fail("chunk line over 4 KiB"), -1;
          if (!nl) break;
          if (buf.size() < 2 || buf[buf.size() - 2] != '\r') return fail("bare LF"), -1;
          std::string_view line(buf.data(), buf.size() - 2);
          if (s == S::Trailer) {
            if (line.empty()) s = S::Done;
            buf.clear();
            break;
          }
          // "1a2b; ieof" -> size
          size_t semi = line.find(';');
          std::string_view hex = trim(line.substr(0, semi));
          if (hex.empty() || hex.size() > 15) return fail("bad chunk size"), -1;
          long long v = 0;
          for (char ch : hex) {
            int d = (ch >= '0' && ch <= '9')   ? ch - '0'
                    : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10
                    : (ch >= 'A' && ch <= 'F') ? ch - 'A' + 10
                                               : -1;
            if (d < 0) return fail("bad chunk size"), -1;
            v = v * 16 + d;
          }
          buf.clear();
          if (v == 0) {
            s = S::Trailer;
          } else {
            left = v;
            s = S::ChunkData;
          }
          break;
        }
        case S::ChunkData: {
          size_t take =
              static_cast<size_t>(std::min<long long>(left, static_cast<long long>(n - i)));
          i += take;
          left -= static_cast<long long>(take);
          body_bytes += static_cast<long long>(take);
          if (left == 0) s = S::ChunkEnd;
          break;
        }
        case S::ChunkEnd: {
          buf.push_back(p[i++]);
          if (buf.size() == 2) {
            if (buf != "\r\n") return fail("chunk not followed by CRLF"), -1;
            buf.clear();
            s = S::ChunkLine;
          }
          break;
        }
        case S::Done:
          break;
      }
    }
    return static_cast<long long>(i);
  }
};

// ------------------------------------------------------------------ latency histogram

// Log buckets with 64 sub-buckets per power of two (values in ns): ~1.6% resolution.
struct Histogram {
  static constexpr int kBits = 7;  // significant bits kept: 2^(kBits-1) = 64 sub-buckets
  static constexpr uint64_t kLin = 1ULL << kBits;
  static constexpr uint64_t kHalf = kLin / 2;
  std::vector<uint64_t> counts = std::vector<uint64_t>(kLin + 64 * kHalf);
  uint64_t total = 0, max = 0;
  long double sum = 0;

  static size_t index(uint64_t v) {
    if (v < kLin) return static_cast<size_t>(v);
    int msb = 63 - std::countl_zero(v);
    int shift = msb - (kBits - 1);  // v >> shift in [kHalf, kLin)
    uint64_t top = v >> shift;
    return static_cast<size_t>(kLin + static_cast<uint64_t>(shift - 1) * kHalf + (top - kHalf));
  }
  static uint64_t value(size_t idx) {  // middle of the bucket
    if (idx < kLin) return idx;
    uint64_t r = idx - kLin;
    int shift = static_cast<int>(r / kHalf) + 1;
    uint64_t top = r % kHalf + kHalf;
    return (top << shift) + ((1ULL << shift) >> 1);
  }
  void add(uint64_t v) {
    size_t i = std::min(index(v), counts.size() - 1);
    ++counts[i];
    ++total;
    max = std::max(max, v);
    sum += v;
  }
  double pct(double p) const {
    if (total == 0) return 0;
    uint64_t want = static_cast<uint64_t>(p / 100.0 * static_cast<double>(total) + 0.999999);
    want = std::clamp<uint64_t>(want, 1, total);
    uint64_t acc = 0;
    for (size_t i = 0; i < counts.size(); ++i) {
      acc += counts[i];
      if (acc >= want) return static_cast<double>(std::min(value(i), max));
    }
    return static_cast<double>(max);
  }
};

// ------------------------------------------------------------------ connections

enum class St { Dead, Connecting, Busy, Idle };

struct Conn {
  int fd = -1;
  St st = St::Dead;
  const std::string* wbuf = nullptr;  // what is being written (shared, read-only)
  std::string own1, own2;             // --unique: this connection's copy of the message
  size_t woff = 0;
  bool part2_sent = false;  // preview0: the body went out after 100 Continue
  bool got_continue = false;
  bool final_done = false;  // the final response was read whole
  bool want_out = false;
  long long resp_bytes = 0;  // bytes of responses read during this transaction
  Clock::time_point t0;
  Parser p;
  int final_status = 0;
  bool final_close = false;
  long long final_body = 0;
  bool final_has_body = false;
};

struct Stats {
  uint64_t tx = 0, s204 = 0, s200 = 0, s100 = 0, errors = 0, bad_status = 0, bad_echo = 0,
           malformed = 0, dropped = 0, timeouts = 0, reconnects = 0, retried = 0;
  uint64_t bytes_out = 0, bytes_in = 0;
  std::string first_error;
};

struct Ctx {
  Args a;
  Message msg;
  int ep = -1;
  sockaddr_in addr{};
  std::vector<Conn> conns;
  Stats st;
  Histogram hist;
  long long started = 0;
  uint64_t serial = 0;  // --unique: stamped into each transaction's body
  bool measuring = false;
  bool stopping = false;
  int reconnects_left = 0;
  std::vector<char> rbuf = std::vector<char>(256 * 1024);
};

void note_error(Ctx& c, const std::string& why) {
  if (c.measuring) ++c.st.errors;
  if (c.st.first_error.empty()) c.st.first_error = why;
}

void set_events(Ctx& c, size_t i, bool out) {
  Conn& k = c.conns[i];
  if (k.want_out == out) return;
  k.want_out = out;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0u);
  ev.data.u64 = i;
  epoll_ctl(c.ep, EPOLL_CTL_MOD, k.fd, &ev);
}

bool open_conn(Ctx& c, size_t i) {
  Conn& k = c.conns[i];
  std::string own1 = std::move(k.own1), own2 = std::move(k.own2);  // kept across reconnects
  k = Conn{};
  k.own1 = std::move(own1);
  k.own2 = std::move(own2);
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
  k.want_out = true;
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

void reopen(Ctx& c, size_t i) {
  close_conn(c, i);
  if (c.stopping || c.reconnects_left <= 0) return;
  --c.reconnects_left;
  if (c.measuring) ++c.st.reconnects;
  if (!open_conn(c, i)) note_error(c, "connect failed");
}

// Writes what is pending; false on a hard error.
bool flush(Ctx& c, size_t i) {
  Conn& k = c.conns[i];
  while (k.wbuf && k.woff < k.wbuf->size()) {
    ssize_t n = send(k.fd, k.wbuf->data() + k.woff, k.wbuf->size() - k.woff, MSG_NOSIGNAL);
    if (n > 0) {
      k.woff += static_cast<size_t>(n);
      if (c.measuring) c.st.bytes_out += static_cast<uint64_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      set_events(c, i, true);
      return true;
    } else {
      return false;
    }
  }
  k.wbuf = nullptr;
  k.woff = 0;
  set_events(c, i, false);
  return true;
}

void start_tx(Ctx& c, size_t i) {
  Conn& k = c.conns[i];
  if (c.stopping || c.started >= c.a.max_count) {
    k.st = St::Idle;
    return;
  }
  ++c.started;
  k.st = St::Busy;
  k.wbuf = &c.msg.part1;
  if (c.a.unique && c.msg.stamp > 0) {
    if (k.own1.empty()) {
      k.own1 = c.msg.part1;
      k.own2 = c.msg.part2;
    }
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(++c.serial));
    std::string& target = c.msg.in_part2 ? k.own2 : k.own1;
    std::memcpy(target.data() + c.msg.body_at, hex, c.msg.stamp);
    k.wbuf = &k.own1;
  }
  k.woff = 0;
  k.part2_sent = false;
  k.got_continue = false;
  k.final_done = false;
  k.resp_bytes = 0;
  k.p.reset();
  k.t0 = Clock::now();
}

// The request was written whole (nothing more to send for this transaction).
bool request_written(const Ctx& c, const Conn& k) {
  if (k.wbuf) return false;
  if (c.a.mode == Mode::Preview0 && k.got_continue) return k.part2_sent;
  return true;
}

// Checks the final answer; returns false if the connection must be dropped.
bool finish_tx(Ctx& c, size_t i) {
  Conn& k = c.conns[i];
  const long long want = c.a.size;
  bool ok = false;
  std::string why;
  int s = k.final_status;
  if (s == 204) {
    ok = c.a.mode != Mode::Echo;
    if (!ok) why = "204 without Allow: 204";
  } else if (s == 200) {
    // An echo must carry the whole body back (a 200 straight after a 0-byte preview
    // without 100 Continue is the server's own answer: any length is fine).
    bool need_echo = !(c.a.mode == Mode::Preview0 && !k.got_continue);
    if (need_echo && want > 0 && (!k.final_has_body || k.final_body != want)) {
      why = "200 echo with " + std::to_string(k.final_body) + " body bytes, sent " +
            std::to_string(want);
      if (c.measuring) ++c.st.bad_echo;
    } else if (need_echo && want == 0 && k.final_has_body && k.final_body != 0) {
      why = "200 echo of a null-body message with a body";
      if (c.measuring) ++c.st.bad_echo;
    } else {
      ok = true;
    }
  } else {
    why = "status " + std::to_string(s);
    if (c.measuring) ++c.st.bad_status;
  }
  auto now = Clock::now();
  if (c.measuring) {
    if (ok) {
      ++c.st.tx;
      if (s == 204) ++c.st.s204;
      if (s == 200) ++c.st.s200;
      if (k.got_continue) ++c.st.s100;
      c.hist.add(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - k.t0).count()));
    }
  }
  if (!ok) note_error(c, why);
  if (k.final_close) {
    reopen(c, i);
    return true;
  }
  start_tx(c, i);
  return true;
}

// Response bytes; false on a protocol error or a drop.
bool on_readable(Ctx& c, size_t i) {
  Conn& k = c.conns[i];
  for (int rounds = 0; rounds < 8; ++rounds) {
    ssize_t n = recv(k.fd, c.rbuf.data(), c.rbuf.size(), 0);
    if (n == 0) {
      if (k.st == St::Busy && k.resp_bytes == 0 && !c.stopping) {
        // Closed while keeping the connection alive, before any answer to the new request:
        // the server's keep-alive limit. Retry the request on a new connection.
        if (c.measuring) ++c.st.retried;
        --c.started;
        reopen(c, i);
        return true;
      }
      if (k.st == St::Busy) {
        if (c.measuring) ++c.st.dropped;
        note_error(c, "connection closed during a transaction");
      }
      reopen(c, i);
      return true;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return true;
      if (k.st == St::Busy) {
        if (c.measuring) ++c.st.dropped;
        note_error(c, std::string("recv: ") + std::strerror(errno));
      }
      reopen(c, i);
      return true;
    }
    if (c.measuring) c.st.bytes_in += static_cast<uint64_t>(n);
    if (k.st != St::Busy || k.final_done) {
      note_error(c, "bytes after the response");
      if (c.measuring) ++c.st.malformed;
      reopen(c, i);
      return true;
    }
    k.resp_bytes += n;
    size_t off = 0;
    size_t len = static_cast<size_t>(n);
    while (off < len) {
      if (k.final_done) {
        note_error(c, "bytes after the response");
        if (c.measuring) ++c.st.malformed;
        reopen(c, i);
        return true;
      }
      long long used = k.p.feed(c.rbuf.data() + off, len - off);
      if (used < 0) {
        note_error(c, std::string("malformed response: ") + (k.p.err ? k.p.err : "?"));
        if (c.measuring) ++c.st.malformed;
        reopen(c, i);
        return true;
      }
      off += static_cast<size_t>(used);
      if (k.p.s != Parser::S::Done) break;
      if (k.p.status == 100) {
        if (c.a.mode != Mode::Preview0 || k.got_continue || k.wbuf) {
          note_error(c, "unexpected 100 Continue");
          if (c.measuring) ++c.st.malformed;
          reopen(c, i);
          return true;
        }
        k.got_continue = true;
        k.p.reset();
        k.wbuf = c.a.unique && !k.own2.empty() ? &k.own2 : &c.msg.part2;
        k.woff = 0;
        k.part2_sent = true;
        if (!flush(c, i)) {
          note_error(c, "send failed");
          reopen(c, i);
          return true;
        }
        continue;
      }
      k.final_done = true;
      k.final_status = k.p.status;
      k.final_close = k.p.close;
      k.final_body = k.p.body_bytes;
      k.final_has_body = k.p.has_body;
      if (off < len) continue;  // reported as bytes after the response
      if (request_written(c, k)) {
        finish_tx(c, i);
        if (k.st == St::Busy && !flush(c, i)) {
          note_error(c, "send failed");
          reopen(c, i);
        }
        return true;
      }
      // Answered before the whole request was read: on_writable finishes it.
      return true;
    }
    if (static_cast<size_t>(n) < c.rbuf.size()) return true;  // drained
  }
  return true;
}

bool on_writable(Ctx& c, size_t i) {
  Conn& k = c.conns[i];
  if (k.st == St::Connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(k.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      note_error(c, std::string("connect: ") + std::strerror(err));
      return false;
    }
    start_tx(c, i);
    if (k.st != St::Busy) {
      set_events(c, i, false);
      return true;
    }
  }
  if (k.st != St::Busy) {
    set_events(c, i, false);
    return true;
  }
  if (!flush(c, i)) {
    note_error(c, "send failed");
    return false;
  }
  if (k.final_done && request_written(c, k)) {
    finish_tx(c, i);
    if (k.st == St::Busy && !flush(c, i)) {
      note_error(c, "send failed");
      return false;
    }
  }
  return true;
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      o += '\\';
      o += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      o += ' ';
    } else {
      o += ch;
    }
  }
  return o;
}

int run(Ctx& c) {
  const auto t_start = Clock::now();
  auto secs = [](double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  const auto t_measure = t_start + secs(c.a.warmup);
  const auto t_end = t_measure + secs(c.a.duration);
  const auto tx_timeout = secs(c.a.timeout);
  c.measuring = c.a.warmup <= 0;
  c.reconnects_left = c.a.max_reconnects;
  for (size_t i = 0; i < c.conns.size(); ++i)
    if (!open_conn(c, i)) note_error(c, "connect failed");
  std::vector<epoll_event> evs(1024);
  auto last_sweep = t_start;
  Clock::time_point t_stop = t_end;
  while (!g_stop) {
    auto now = Clock::now();
    if (!c.measuring && now >= t_measure) {
      c.measuring = true;
      // Transactions under way at the switch count from when they started, as with wrk.
    }
    if (now >= t_end) {
      t_stop = t_end;
      break;
    }
    // Every connection idle (max count reached) and nothing in flight: done.
    if (c.started >= c.a.max_count) {
      bool busy = false;
      for (auto& k : c.conns) busy = busy || k.st == St::Busy || k.st == St::Connecting;
      if (!busy) {
        t_stop = now;
        break;
      }
    }
    if (now - last_sweep > std::chrono::milliseconds(200)) {
      last_sweep = now;
      for (size_t i = 0; i < c.conns.size(); ++i) {
        Conn& k = c.conns[i];
        if (k.st == St::Busy && now - k.t0 > tx_timeout) {
          if (c.measuring) ++c.st.timeouts;
          note_error(c, "transaction timed out");
          reopen(c, i);
        } else if (k.st == St::Dead && !c.stopping && c.reconnects_left > 0) {
          --c.reconnects_left;
          if (c.measuring) ++c.st.reconnects;
          if (!open_conn(c, i)) note_error(c, "connect failed");
        }
      }
    }
    int wait_ms = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(t_end - now).count());
    wait_ms = std::clamp(wait_ms + 1, 1, 100);
    int n = epoll_wait(c.ep, evs.data(), static_cast<int>(evs.size()), wait_ms);
    for (int e = 0; e < n; ++e) {
      size_t i = evs[e].data.u64;
      Conn& k = c.conns[i];
      if (k.st == St::Dead) continue;
      int fd = k.fd;
      bool ok = true;
      uint32_t ev = evs[e].events;
      if (ev & EPOLLOUT) ok = on_writable(c, i);
      if (!ok) {
        reopen(c, i);
        continue;
      }
      if (k.fd != fd || k.st == St::Dead) continue;  // reopened meanwhile
      if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c, i);
    }
  }
  c.stopping = true;
  double window =
      std::chrono::duration<double>(t_stop - (c.a.warmup > 0 ? t_measure : t_start)).count();
  if (window <= 0) window = 1e-9;
  const Stats& s = c.st;
  const double ms = 1e-6;
  std::printf(
      "{\"method\":\"%s\",\"mode\":\"%s\",\"size\":\"%s\",\"size_bytes\":%lld,\"unique\":%s,"
      "\"conns\":%d,"
      "\"duration_s\":%.3f,\"tx\":%llu,\"tps\":%.1f,\"mbps_out\":%.3f,\"mbps_in\":%.3f,"
      "\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"p999_ms\":%.4f,\"max_ms\":%.4f,\"mean_ms\":%.4f,"
      "\"s204\":%llu,\"s200\":%llu,\"s100\":%llu,\"errors\":%llu,\"bad_status\":%llu,"
      "\"bad_echo\":%llu,\"malformed\":%llu,\"dropped\":%llu,\"timeouts\":%llu,"
      "\"reconnects\":%llu,\"retried\":%llu,\"first_error\":\"%s\"}\n",
      c.a.method.c_str(), c.a.mode_name.c_str(), c.a.size_name.c_str(), c.a.size,
      c.a.unique ? "true" : "false", c.a.conns, window, static_cast<unsigned long long>(s.tx),
      static_cast<double>(s.tx) / window, static_cast<double>(s.bytes_out) / window / 1e6,
      static_cast<double>(s.bytes_in) / window / 1e6, c.hist.pct(50) * ms, c.hist.pct(99) * ms,
      c.hist.pct(99.9) * ms, static_cast<double>(c.hist.max) * ms,
      c.hist.total ? static_cast<double>(c.hist.sum / c.hist.total) * ms : 0.0,
      static_cast<unsigned long long>(s.s204), static_cast<unsigned long long>(s.s200),
      static_cast<unsigned long long>(s.s100), static_cast<unsigned long long>(s.errors),
      static_cast<unsigned long long>(s.bad_status), static_cast<unsigned long long>(s.bad_echo),
      static_cast<unsigned long long>(s.malformed), static_cast<unsigned long long>(s.dropped),
      static_cast<unsigned long long>(s.timeouts), static_cast<unsigned long long>(s.reconnects),
      static_cast<unsigned long long>(s.retried), json_escape(s.first_error).c_str());
  std::fflush(stdout);
  return s.tx > 0 ? 0 : 1;
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
  c.addr.sin_port = htons(static_cast<uint16_t>(c.a.port));
  if (inet_pton(AF_INET, c.a.host.c_str(), &c.addr.sin_addr) != 1) usage("--host must be IPv4");

  c.msg = build(c.a);
  // --unique: counters start at a random point, so that two runs (a warm-up, then the
  // measurement) never send the same body.
  c.serial = (static_cast<uint64_t>(std::random_device{}()) << 32) ^
             static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  c.ep = epoll_create1(EPOLL_CLOEXEC);
  c.conns.resize(static_cast<size_t>(c.a.conns));
  int rc = run(c);
  for (size_t i = 0; i < c.conns.size(); ++i) close_conn(c, i);
  close(c.ep);
  return rc;
}
