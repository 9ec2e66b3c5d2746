#include "test_net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pc::itest {
namespace {

void set_timeouts(int fd) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(kIoTimeout.count());
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

// Reads a head and splits it into start line and fields.
std::optional<Message> read_head(Conn& c) {
  auto head = c.read_until("\r\n\r\n");
  if (!head) return std::nullopt;
  Message m;
  m.raw = *head;
  std::string_view h(*head);
  auto eol = h.find("\r\n");
  m.start = std::string(h.substr(0, eol));
  h.remove_prefix(eol + 2);
  while (!h.empty()) {
    eol = h.find("\r\n");
    if (eol == 0) break;
    auto line = h.substr(0, eol);
    auto colon = line.find(':');
    if (colon != std::string_view::npos)
      m.fields.emplace_back(std::string(line.substr(0, colon)), trim(line.substr(colon + 1)));
    h.remove_prefix(eol + 2);
  }
  return m;
}

bool read_chunked(Conn& c, Message& m) {
  m.chunked = true;
  for (;;) {
    auto line = c.read_until("\r\n");
    if (!line) return false;
    m.raw += *line;
    std::size_t size = std::stoul(*line, nullptr, 16);
    if (size == 0) {
      for (;;) {  // trailer section
        auto t = c.read_until("\r\n");
        if (!t) return false;
        m.raw += *t;
        if (*t == "\r\n") return true;
      }
    }
    auto data = c.read_exact(size + 2);
    if (!data) return false;
    m.raw += *data;
    m.body += data->substr(0, size);
  }
}

bool read_body(Conn& c, Message& m, bool allow_close) {
  auto te = m.get("Transfer-Encoding");
  if (te && te->find("chunked") != std::string::npos) return read_chunked(c, m);
  if (auto cl = m.get("Content-Length")) {
    auto body = c.read_exact(std::stoul(*cl));
    if (!body) return false;
    m.raw += *body;
    m.body = *body;
    return true;
  }
  if (allow_close) {
    m.until_close = true;
    m.body = c.read_to_close();
    m.raw += m.body;
  }
  return true;
}

}  // namespace

// ---- Conn ----

Conn::Conn(int fd) : fd_(fd) {
  set_timeouts(fd_);
}
Conn::~Conn() {
  if (fd_ >= 0) ::close(fd_);
}
Conn::Conn(Conn&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), buf_(std::move(o.buf_)), timed_out_(o.timed_out_) {}

std::optional<Conn> Conn::connect_to(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  Conn c(fd);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return std::nullopt;
  return c;
}

bool Conn::send_all(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

void Conn::shutdown_write() {
  ::shutdown(fd_, SHUT_WR);
}

bool Conn::fill() {
  char tmp[16384];
  for (;;) {
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) timed_out_ = true;
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<std::size_t>(n));
    return true;
  }
}

std::optional<std::string> Conn::read_until(std::string_view delim) {
  for (;;) {
    auto pos = buf_.find(delim);
    if (pos != std::string::npos) {
      std::string out = buf_.substr(0, pos + delim.size());
      buf_.erase(0, pos + delim.size());
      return out;
    }
    if (!fill()) return std::nullopt;
  }
}

std::optional<std::string> Conn::read_exact(std::size_t n) {
  while (buf_.size() < n)
    if (!fill()) return std::nullopt;
  std::string out = buf_.substr(0, n);
  buf_.erase(0, n);
  return out;
}

std::string Conn::read_to_close() {
  while (fill()) {
  }
  return std::exchange(buf_, {});
}

bool Conn::at_eof() {
  if (!buf_.empty()) return false;
  return !fill() && !timed_out_ && buf_.empty();
}

// ---- Message ----

std::optional<std::string> Message::get(std::string_view name) const {
  for (const auto& [n, v] : fields)
    if (iequal(n, name)) return v;
  return std::nullopt;
}

std::size_t Message::count(std::string_view name) const {
  std::size_t k = 0;
  for (const auto& f : fields)
    if (iequal(f.first, name)) ++k;
  return k;
}

std::optional<Message> read_request(Conn& c) {
  auto m = read_head(c);
  if (!m) return std::nullopt;
  if (!read_body(c, *m, false)) return std::nullopt;
  return m;
}

std::optional<Message> read_response(Conn& c, bool head_request) {
  for (;;) {
    auto m = read_head(c);
    if (!m) return std::nullopt;
    if (m->start.size() < 12) return std::nullopt;
    m->status = std::stoi(m->start.substr(9, 3));
    if (m->status >= 100 && m->status < 200) continue;  // interim: skip
    if (head_request || m->status == 204 || m->status == 304) return m;
    if (!read_body(c, *m, true)) return std::nullopt;
    return m;
  }
}

// ---- TcpServer ----

TcpServer::TcpServer(Handler h) : handler_(std::move(h)) {
  lfd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lfd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(lfd_, 64) != 0)
    throw std::runtime_error(std::string("test server: ") + std::strerror(errno));
  socklen_t len = sizeof sa;
  ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&sa), &len);
  port_ = ntohs(sa.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

TcpServer::~TcpServer() {
  stop_.store(true);
  acceptor_.join();
  {
    std::lock_guard lk(mu_);
    for (int fd : live_) ::shutdown(fd, SHUT_RDWR);  // wake handlers blocked in recv
  }
  for (auto& t : threads_) t.join();
  ::close(lfd_);
}

void TcpServer::accept_loop() {
  while (!stop_.load()) {
    pollfd p{lfd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    int fd = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    accepts_.fetch_add(1);
    std::lock_guard lk(mu_);
    live_.insert(fd);
    threads_.emplace_back([this, fd] {
      {
        Conn c(fd);
        handler_(c);
        std::lock_guard lk2(mu_);
        live_.erase(fd);
      }  // closes fd after it left live_
    });
  }
}

// ---- HttpOrigin ----

HttpOrigin::HttpOrigin(Responder r)
    : responder_(std::move(r)), server_([this](Conn& c) { serve(c); }) {}

void HttpOrigin::serve(Conn& c) {
  for (;;) {
    auto m = read_request(c);
    if (!m) return;
    {
      std::lock_guard lk(mu_);
      requests_.push_back(*m);
    }
    cv_.notify_all();
    std::string resp = responder_(*m);
    if (resp.empty() || !c.send_all(resp)) return;
    if (resp.find("Connection: close\r\n") != std::string::npos) return;
  }
}

std::vector<Message> HttpOrigin::requests() {
  std::lock_guard lk(mu_);
  return requests_;
}

std::size_t HttpOrigin::request_count() {
  std::lock_guard lk(mu_);
  return requests_.size();
}

bool HttpOrigin::wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return requests_.size() >= n; });
}

std::string ok_response(std::string_view body, std::string_view extra_fields) {
  return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + std::string(extra_fields) + "\r\n" +
         std::string(body);
}

}  // namespace pc::itest
