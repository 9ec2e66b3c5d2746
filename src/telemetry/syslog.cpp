#include "telemetry/syslog.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <functional>
#include <stdexcept>

#include "base/log.h"
#include "tls/tls.h"

namespace pc::telemetry {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

std::string errno_text(int e) {
  return std::strerror(e);
}

// Writes to a socket whose peer has gone raise SIGPIPE; OpenSSL writes with write(2). The
// sender threads block it and get EPIPE instead.
void block_sigpipe() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int poll_one(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  int r;
  do {
    r = ::poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  return r <= 0 ? r : p.revents;
}

// Waits for `events` on fd until `deadline`, in slices, so that give_up() (the sink stopping)
// ends the wait early: revents, 0 at the deadline, -1 when given up or on error.
int wait_fd(int fd, short events, Clock::time_point deadline,
            const std::function<bool()>& give_up) {
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return 0;
    int ev = poll_one(fd, events, static_cast<int>(std::min<long long>(left, 100)));
    if (ev != 0) return ev;
    if (give_up()) return -1;
  }
}

std::string endpoint(const std::string& host, std::uint16_t port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

}  // namespace

std::string_view to_string(Transport t) {
  switch (t) {
    case Transport::udp:
      return "udp";
    case Transport::tcp:
      return "tcp";
    case Transport::tls:
      return "tls";
  }
  return "udp";
}

// One connection to a receiver: a UDP socket connected to its address, or a TCP stream with
// TLS on top or not. Non-blocking descriptors waited on with poll(), so every wait is bounded.
class SyslogSink::Link {
 public:
  ~Link() { close(); }
  bool is_open() const { return fd_ >= 0; }

  bool connect(const SyslogOptions& o, SSL_CTX* tls, const std::function<bool()>& give_up,
               std::string& err) {
    close();
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = o.transport == Transport::udp ? SOCK_DGRAM : SOCK_STREAM;
    addrinfo* res = nullptr;
    std::string port = std::to_string(o.port);
    if (int rc = ::getaddrinfo(o.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
      err = "cannot resolve " + o.host + ": " + ::gai_strerror(rc);
      return false;
    }
    err = "no address for " + o.host;
    const auto deadline = Clock::now() + o.connect_timeout;
    for (addrinfo* ai = res; ai != nullptr && fd_ < 0; ai = ai->ai_next) {
      int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        err = "socket: " + errno_text(errno);
        continue;
      }
      int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
      if (rc != 0 && errno == EINPROGRESS) {
        int ev = wait_fd(fd, POLLOUT, deadline, give_up);
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (ev == 0) {
          soerr = ETIMEDOUT;
        } else if (ev < 0) {
          soerr = ECANCELED;
        } else if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) {
          soerr = errno;
        }
        rc = soerr == 0 ? 0 : -1;
        errno = soerr;
      }
      if (rc != 0) {
        err = "cannot connect to " + endpoint(o.host, o.port) + ": " + errno_text(errno);
        ::close(fd);
        continue;
      }
      fd_ = fd;
    }
    ::freeaddrinfo(res);
    if (fd_ < 0) return false;
    if (o.transport != Transport::udp) {
      int one = 1;
      ::setsockopt(fd_, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    }
    if (o.transport == Transport::tls && !handshake(o, tls, deadline, give_up, err)) {
      close();
      return false;
    }
    return true;
  }

  // False when the receiver has closed the connection or it failed. Receivers never send
  // anything on a syslog connection (TLS aside: session tickets, close_notify), so anything
  // readable is looked at. Checked before each send: writing into a connection the peer has
  // closed would "succeed" and lose the records.
  bool alive() {
    int ev = poll_one(fd_, POLLIN | POLLRDHUP, 0);
    if (ev == 0) return true;
    if (ev < 0 || (ev & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL))) return false;
    char buf[4096];
    if (ssl_ != nullptr) {
      ERR_clear_error();
      int n = SSL_read(ssl_, buf, sizeof buf);
      if (n > 0) return true;
      int e = SSL_get_error(ssl_, n);
      return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
    }
    ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) return true;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  // Writes `data`; `sent` says how many bytes were taken, also on failure. Gives up when
  // give_up() says so or when nothing could be written for `timeout`.
  bool send(std::string_view data, std::size_t& sent, milliseconds timeout,
            const std::function<bool()>& give_up, std::string& err) {
    sent = 0;
    auto last_progress = Clock::now();
    while (sent < data.size()) {
      short wait_for = POLLOUT;
      const std::size_t left = data.size() - sent;
      if (ssl_ != nullptr) {
        ERR_clear_error();
        int n = SSL_write(ssl_, data.data() + sent,
                          static_cast<int>(std::min<std::size_t>(left, 1 << 30)));
        if (n > 0) {
          sent += static_cast<std::size_t>(n);
          last_progress = Clock::now();
          continue;
        }
        int e = SSL_get_error(ssl_, n);
        if (e == SSL_ERROR_WANT_READ) {
          wait_for = POLLIN;
        } else if (e != SSL_ERROR_WANT_WRITE) {
          std::string why = tls::take_errors();
          err = why.empty() ? "TLS write failed: " + errno_text(errno) : "TLS write failed: " + why;
          return false;
        }
      } else {
        ssize_t n = ::send(fd_, data.data() + sent, left, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          sent += static_cast<std::size_t>(n);
          last_progress = Clock::now();
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (!(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) {
          err = "send failed: " + errno_text(errno);
          return false;
        }
      }
      int ev = poll_one(fd_, wait_for, 100);
      if (ev < 0 || (ev & (POLLERR | POLLNVAL))) {
        err = "connection failed";
        return false;
      }
      if (give_up()) {
        err = "stopping";
        return false;
      }
      if (Clock::now() - last_progress > timeout) {
        err = "the receiver took nothing for " +
              std::to_string(std::chrono::duration_cast<std::chrono::seconds>(timeout).count()) +
              " s";
        return false;
      }
    }
    return true;
  }

  // One datagram. False with err when it was not sent.
  bool send_datagram(std::string_view msg, std::string& err) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      ssize_t n = ::send(fd_, msg.data(), msg.size(), MSG_NOSIGNAL);
      if (n >= 0) return true;
      // A port-unreachable from an earlier datagram is reported on this one, which is not
      // sent: try again. A full socket buffer: wait a little for room.
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        poll_one(fd_, POLLOUT, 200);
        continue;
      }
      if (errno != ECONNREFUSED && errno != EINTR) break;
    }
    err = errno_text(errno);
    return false;
  }

  void close() {
    if (ssl_ != nullptr) {
      SSL_free(ssl_);  // no close_notify: the receiver does not care, and it could block
      ssl_ = nullptr;
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  bool handshake(const SyslogOptions& o, SSL_CTX* tls, Clock::time_point deadline,
                 const std::function<bool()>& give_up, std::string& err) {
    ERR_clear_error();
    ssl_ = SSL_new(tls);
    if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_) != 1 || !tls::expect_server_name(ssl_, o.host)) {
      err = "TLS setup failed: " + tls::take_errors();
      return false;
    }
    for (;;) {
      ERR_clear_error();
      int rc = SSL_connect(ssl_);
      if (rc == 1) return true;
      int e = SSL_get_error(ssl_, rc);
      short wait_for = 0;
      if (e == SSL_ERROR_WANT_READ)
        wait_for = POLLIN;
      else if (e == SSL_ERROR_WANT_WRITE)
        wait_for = POLLOUT;
      if (wait_for == 0) {
        long v = SSL_get_verify_result(ssl_);
        std::string why = v != X509_V_OK ? std::string("certificate verify failed: ") +
                                               X509_verify_cert_error_string(v)
                                         : tls::take_errors();
        if (why.empty()) why = e == SSL_ERROR_SYSCALL ? "connection closed" : "handshake failed";
        err = "TLS handshake with " + endpoint(o.host, o.port) + " failed: " + why;
        return false;
      }
      if (wait_fd(fd_, wait_for, deadline, give_up) <= 0) {
        err = "TLS handshake with " + endpoint(o.host, o.port) + " timed out";
        return false;
      }
    }
  }

  int fd_ = -1;
  SSL* ssl_ = nullptr;
};

SyslogSink::SyslogSink(SyslogOptions o) : o_(std::move(o)), stats_name_("syslog:" + o_.name) {
  if (o_.transport == Transport::tls)
    tls_ = tls::make_client_context(o_.tls_ca, o_.tls_certificate, o_.tls_key);
  if (o_.transport != Transport::udp)
    spool_ = std::make_unique<DiskQueue>(o_.spool_dir, o_.queue_limit, kMaxFrame);
  log::info("syslog {}: {} to {} over {}{}", o_.name,
            o_.format == SyslogFormat::rfc5424 ? "RFC 5424"
            : o_.format == SyslogFormat::cef   ? "CEF"
                                               : "JSON",
            endpoint(o_.host, o_.port), to_string(o_.transport),
            o_.security_only ? ", security events only" : "");
  if (o_.transport == Transport::udp)
    thread_ = std::thread([this] { run_udp(); });
  else
    thread_ = std::thread([this] { run_stream(); });
}

SyslogSink::~SyslogSink() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
    stop_deadline_ = Clock::now() + o_.stop_grace;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (spool_ && spool_->pending_frames() > 0)
    log::info("syslog {}: {} record(s) not sent yet are kept in {} for the next start", o_.name,
              spool_->pending_frames(), spool_->dir().string());
}

SinkStats SyslogSink::stats() const {
  SinkStats s;
  s.name = stats_name_;
  s.written = written_.load(std::memory_order_relaxed);
  s.dropped = dropped_.load(std::memory_order_relaxed);
  s.connected = connected_.load(std::memory_order_relaxed);
  if (spool_) s.queued = spool_->pending_frames();
  std::lock_guard lk(mu_);
  if (!spool_) s.queued = mem_.size();
  s.detail = s.connected || last_error_.empty()
                 ? endpoint(o_.host, o_.port) + " over " + std::string(to_string(o_.transport))
                 : last_error_;
  return s;
}

void SyslogSink::count_drops(std::uint64_t n, std::string_view why) {
  if (n == 0) return;
  auto total = dropped_.fetch_add(n, std::memory_order_relaxed) + n;
  std::lock_guard lk(drop_log_mu_);  // the writer and the UDP sender both count
  // Logged at most every 10 seconds: a receiver down for hours must not flood the log.
  auto now = Clock::now();
  if (drops_logged_ == 0 || now - last_drop_log_ >= std::chrono::seconds(10)) {
    log::error("syslog {}: {} record(s) dropped ({}); {} dropped since start", o_.name,
               total - drops_logged_, why, total);
    drops_logged_ = total;
    last_drop_log_ = now;
  }
}

void SyslogSink::write(const Batch& batch) {
  frames_.clear();
  std::size_t n = 0;
  std::uint64_t dropped = 0;
  std::deque<std::string> udp;
  for (const auto& r : *batch) {
    if (o_.security_only && security_event(r) == Event::none) continue;
    msg_.clear();
    append_syslog(msg_, r, o_.format, o_.header);
    ++n;
    if (spool_)
      append_octet_frame(frames_, msg_);
    else
      udp.push_back(msg_);
  }
  if (n == 0) return;
  if (spool_) {
    std::string err;
    std::size_t accepted = spool_->append(frames_, &err);
    dropped = n - accepted;
    if (dropped > 0)
      count_drops(dropped, err.empty() ? "the queue on disk is full (queue_limit " +
                                             std::to_string(o_.queue_limit) + " bytes)"
                                       : err);
  } else {
    std::lock_guard lk(mu_);
    for (auto& m : udp) {
      if (mem_bytes_ + m.size() > o_.queue_limit) {
        ++dropped;
        continue;
      }
      mem_bytes_ += m.size();
      mem_.push_back(std::move(m));
    }
  }
  if (!spool_ && dropped > 0)
    count_drops(dropped, "the queue in memory is full (queue_limit " +
                             std::to_string(o_.queue_limit) + " bytes)");
  {
    // The sender checks for work under mu_: taking it here means it either sees what was
    // just queued or is already waiting for this notification.
    std::lock_guard lk(mu_);
  }
  cv_.notify_one();
}

void SyslogSink::set_state(bool connected, std::string error) {
  connected_.store(connected);
  std::lock_guard lk(mu_);
  last_error_ = std::move(error);
}

bool SyslogSink::stopping_past_grace() {
  std::lock_guard lk(mu_);
  return stop_ && Clock::now() >= stop_deadline_;
}

void SyslogSink::run_stream() {
  block_sigpipe();
  Link link;
  std::string buf;
  milliseconds delay = o_.retry_min;
  Clock::time_point next_try = Clock::now();
  unsigned failures = 0;
  const std::string where = endpoint(o_.host, o_.port);
  auto give_up = [this] { return stopping_past_grace(); };
  const std::function<bool()> stop_requested = [this] {
    std::lock_guard lk(mu_);
    return stop_;
  };
  // The connection is kept open (and re-opened) whether or not records are waiting, so that
  // `connected` says whether the receiver can take records now; an idle connection is
  // checked every second.
  for (;;) {
    {
      std::unique_lock lk(mu_);
      auto ready = [&] {
        return stop_ || (link.is_open() ? spool_->pending_bytes() > 0 : Clock::now() >= next_try);
      };
      if (!link.is_open())
        cv_.wait_until(lk, next_try, ready);
      else
        cv_.wait_for(lk, std::chrono::seconds(1), ready);
      if (stop_ &&
          (!link.is_open() || spool_->pending_bytes() == 0 || Clock::now() >= stop_deadline_))
        break;
    }
    if (!link.is_open()) {
      if (Clock::now() < next_try) continue;
      std::string err;
      if (!link.connect(o_, tls_.get(), stop_requested, err)) {
        set_state(false, err);
        if (failures++ == 0)
          log::warn("syslog {}: {}; records wait on disk, retrying with back-off", o_.name, err);
        else
          log::debug("syslog {}: {} (attempt {})", o_.name, err, failures);
        next_try = Clock::now() + delay;
        delay = std::min(delay * 2, o_.retry_max);
        continue;
      }
      set_state(true, "");
      log::info("syslog {}: connected to {} over {}{}", o_.name, where, to_string(o_.transport),
                failures > 0 ? " after " + std::to_string(failures) + " failed attempt(s)" : "");
      failures = 0;
      delay = o_.retry_min;
    }
    if (!link.alive()) {
      link.close();
      set_state(false, where + " closed the connection");
      log::warn("syslog {}: {} closed the connection; reconnecting", o_.name, where);
      next_try = Clock::now();
      continue;
    }
    std::size_t frames = spool_->peek(buf, 256 * 1024);
    if (frames == 0) continue;
    std::size_t sent = 0;
    std::string err;
    bool ok = link.send(buf, sent, o_.send_timeout, give_up, err);
    // Whole frames the connection took are done; a frame cut short is sent again.
    std::size_t pos = 0, done = 0;
    while (done < frames) {
      std::string_view msg;
      std::size_t n = 0;
      if (parse_octet_frame(std::string_view(buf).substr(pos), kMaxFrame, msg, n) !=
              FrameStatus::complete ||
          pos + n > sent)
        break;
      pos += n;
      ++done;
    }
    if (done > 0) {
      spool_->pop(done, pos);
      written_.fetch_add(done, std::memory_order_relaxed);
    }
    if (!ok) {
      link.close();
      set_state(false, "sending to " + where + " failed: " + err);
      if (err != "stopping")
        log::warn("syslog {}: sending to {} failed: {}; reconnecting", o_.name, where, err);
      next_try = Clock::now() + delay;
      delay = std::min(delay * 2, o_.retry_max);
    }
  }
  link.close();
  connected_.store(false);
}

void SyslogSink::run_udp() {
  Link link;
  const std::function<bool()> stop_requested = [this] {
    std::lock_guard lk(mu_);
    return stop_;
  };
  std::deque<std::string> batch;
  milliseconds delay = o_.retry_min;
  Clock::time_point next_try = Clock::now();
  bool warned = false;
  // The address is resolved at start (and after a send error), so that `connected` says
  // whether records can go out now.
  for (;;) {
    bool stopping;
    {
      std::unique_lock lk(mu_);
      auto ready = [&] {
        return stop_ || (link.is_open() ? !mem_.empty() : Clock::now() >= next_try);
      };
      if (!link.is_open())
        cv_.wait_until(lk, next_try, ready);
      else
        cv_.wait_for(lk, std::chrono::seconds(1), ready);
      stopping = stop_;
      if (mem_.empty() && stopping) break;
    }
    if (!link.is_open()) {
      if (Clock::now() >= next_try) {
        std::string err;
        if (link.connect(o_, nullptr, stop_requested, err)) {
          set_state(true, "");
          delay = o_.retry_min;
          if (warned)
            log::info("syslog {}: sending to {} again", o_.name, endpoint(o_.host, o_.port));
          warned = false;
        } else {
          set_state(false, err);
          if (!warned) log::warn("syslog {}: {}; retrying with back-off", o_.name, err);
          warned = true;
          next_try = Clock::now() + delay;
          delay = std::min(delay * 2, o_.retry_max);
        }
      }
      if (!link.is_open()) {
        if (stopping) {
          std::lock_guard lk(mu_);
          count_drops(mem_.size(), "not sent before stopping");
          mem_.clear();
          mem_bytes_ = 0;
          break;
        }
        continue;
      }
    }
    {
      std::lock_guard lk(mu_);
      batch.swap(mem_);
      mem_bytes_ = 0;
    }
    std::uint64_t sent = 0, failed = 0;
    std::string err;
    for (const auto& m : batch) {
      if (link.send_datagram(m, err))
        ++sent;
      else
        ++failed;
    }
    batch.clear();
    written_.fetch_add(sent, std::memory_order_relaxed);
    if (failed > 0) {
      count_drops(failed, "send failed: " + err);
      link.close();  // resolve and connect again: the address may have changed
      set_state(false, "send failed: " + err);
      next_try = Clock::now();
    }
  }
  link.close();
  connected_.store(false);
}

}  // namespace pc::telemetry
