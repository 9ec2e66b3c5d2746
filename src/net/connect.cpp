#include "net/connect.h"

#include <sys/socket.h>

#include <memory>

namespace pc::net {
namespace {

struct Race {
  explicit Race(const asio::any_io_executor& ex) : wake(ex) {}
  asio::steady_timer wake;  // cancelled to wake the coordinator
  std::vector<std::unique_ptr<tcp::socket>> sockets;
  int winner = -1;
  int pending = 0;
  boost::system::error_code last_error;
};

asio::awaitable<void> attempt(std::shared_ptr<Race> race, std::size_t i, tcp::endpoint ep) {
  tcp::socket& s = *race->sockets[i];
  auto [ec] = co_await s.async_connect(ep, use_nothrow);
  --race->pending;
  if (!ec && race->winner < 0) {
    race->winner = static_cast<int>(i);
  } else if (ec) {
    race->last_error = ec;
    boost::system::error_code ignore;
    s.close(ignore);
  }
  race->wake.cancel();
}

}  // namespace

asio::awaitable<ConnectResult> connect_any(std::vector<asio::ip::address> addresses,
                                           std::uint16_t port, milliseconds timeout) {
  auto ex = co_await asio::this_coro::executor;
  ConnectResult res{{}, tcp::socket(ex), {}};
  if (addresses.empty()) {
    res.ec = asio::error::host_not_found;
    co_return res;
  }
  auto race = std::make_shared<Race>(ex);
  const auto deadline = Clock::now() + timeout;
  std::size_t next = 0;
  while (race->winner < 0) {
    auto now = Clock::now();
    if (now >= deadline) break;
    if (next < addresses.size()) {
      race->sockets.push_back(std::make_unique<tcp::socket>(ex));
      ++race->pending;
      asio::co_spawn(ex, attempt(race, next, tcp::endpoint(addresses[next], port)), asio::detached);
      ++next;
    } else if (race->pending == 0) {
      break;  // every address failed
    }
    auto step = next < addresses.size() ? std::min(deadline, now + milliseconds(250)) : deadline;
    race->wake.expires_at(step);
    co_await race->wake.async_wait(use_nothrow);
    // Woken early by a failure: start the next address at once.
  }
  if (race->winner >= 0) {
    res.socket = std::move(*race->sockets[static_cast<std::size_t>(race->winner)]);
    boost::system::error_code ignore;
    res.peer = res.socket.remote_endpoint(ignore);
    res.socket.set_option(tcp::no_delay(true), ignore);
  } else {
    res.ec = race->pending > 0 || !race->last_error ? asio::error::timed_out : race->last_error;
  }
  for (auto& s : race->sockets) {  // losers and still-pending attempts
    boost::system::error_code ignore;
    if (s->is_open()) s->close(ignore);
  }
  co_return res;
}

UpstreamPool::UpstreamPool(asio::io_context& io, std::size_t max_idle_per_key, std::size_t max_idle)
    : io_(io), max_per_key_(max_idle_per_key), max_total_(max_idle), sweeper_(io) {}

namespace {
// An idle connection is usable when the peer has neither closed it nor sent anything.
bool still_idle(tcp::socket& s) {
  char c;
  ssize_t r = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}
}  // namespace

tcp::socket UpstreamPool::take(const std::string& key, tcp::endpoint& peer) {
  auto it = idle_.find(key);
  if (it != idle_.end()) {
    auto& q = it->second;
    auto now = Clock::now();
    while (!q.empty()) {
      Idle item = std::move(q.back());  // most recently used first
      q.pop_back();
      --total_;
      if (item.expires > now && still_idle(item.socket)) {
        peer = item.peer;
        ++reused_;
        if (q.empty()) idle_.erase(it);
        return std::move(item.socket);
      }
      boost::system::error_code ignore;
      item.socket.close(ignore);
    }
    idle_.erase(it);
  }
  return tcp::socket(io_);
}

void UpstreamPool::put(const std::string& key, tcp::socket s, tcp::endpoint peer,
                       milliseconds idle_timeout) {
  auto& q = idle_[key];
  if (q.size() >= max_per_key_ || total_ >= max_total_) {
    if (q.empty()) idle_.erase(key);
    boost::system::error_code ignore;
    s.close(ignore);
    return;
  }
  q.push_back(Idle{std::move(s), peer, Clock::now() + idle_timeout});
  ++total_;
  if (!sweeping_) {
    sweeping_ = true;
    sweeper_.expires_after(std::chrono::seconds(1));
    sweeper_.async_wait([this](const boost::system::error_code& ec) {
      sweeping_ = false;
      if (!ec) sweep();
    });
  }
}

void UpstreamPool::sweep() {
  auto now = Clock::now();
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& q = it->second;
    while (!q.empty() && (q.front().expires <= now || !still_idle(q.front().socket))) {
      boost::system::error_code ignore;
      q.front().socket.close(ignore);
      q.pop_front();
      --total_;
    }
    it = q.empty() ? idle_.erase(it) : std::next(it);
  }
  if (total_ > 0 && !sweeping_) {
    sweeping_ = true;
    sweeper_.expires_after(std::chrono::seconds(1));
    sweeper_.async_wait([this](const boost::system::error_code& ec) {
      sweeping_ = false;
      if (!ec) sweep();
    });
  }
}

void UpstreamPool::clear() {
  for (auto& [k, q] : idle_)
    for (auto& i : q) {
      boost::system::error_code ignore;
      i.socket.close(ignore);
    }
  idle_.clear();
  total_ = 0;
  sweeper_.cancel();
}

}  // namespace pc::net
