#include "txn/worker.h"

#include <fmt/format.h>

namespace pc::txn {

bool Shared::acquire_client(const base::IpBytes& a, std::size_t limit) {
  std::lock_guard lk(mu_);
  auto& n = per_client_[a];
  if (n >= limit) {
    if (n == 0) per_client_.erase(a);
    return false;
  }
  ++n;
  return true;
}

void Shared::release_client(const base::IpBytes& a) {
  std::lock_guard lk(mu_);
  auto it = per_client_.find(a);
  if (it == per_client_.end()) return;
  if (--it->second == 0) per_client_.erase(it);
}

namespace {
std::vector<std::string> listener_names(const config::Config& c) {
  std::vector<std::string> names;
  for (const auto& l : c.listeners) names.push_back(l.name);
  return names;
}
}  // namespace

Worker::Worker(Shared& s, unsigned idx, std::shared_ptr<const Snapshot> snap)
    : shared(s), index(idx), metrics_(listener_names(*snap->config)), pool_(io) {
  apply(std::move(snap));
}

Worker::~Worker() {
  shutdown();
}

void Worker::start_ticks() {
  ticking_ = true;
  ticker_.expires_after(kTick);
  ticker_.async_wait([this](const boost::system::error_code& ec) { on_tick(ec); });
}

void Worker::on_tick(const boost::system::error_code& ec) {
  if (ec || !ticking_) return;
  const auto now = net::Clock::now();
  metrics_.tick(now - ticker_.expiry(), resolver_->stats(), pool_.idle(), pool_.reused());
  for (Connection* s : sessions_) s->tick();
  // The next tick is kTick from now: a late tick does not make the next ones early.
  ticker_.expires_after(kTick);
  ticker_.async_wait([this](const boost::system::error_code& e) { on_tick(e); });
}

void Worker::shutdown() {
  ticking_ = false;
  ticker_.cancel();
  std::vector<Connection*> live(sessions_.begin(), sessions_.end());
  for (Connection* s : live) s->close();
  pool_.clear();
  if (resolver_) resolver_->shutdown();
  io.restart();
  for (int i = 0; i < 200 && io.poll() > 0; ++i) {
  }
}

void Worker::apply(std::shared_ptr<const Snapshot> s) {
  const auto& dns = s->config->dns;
  bool new_resolver = !resolver_ || !snapshot_;
  if (!new_resolver) {
    const auto& old = snapshot_->config->dns;
    new_resolver = old.servers != dns.servers || old.timeout != dns.timeout ||
                   old.tries != dns.tries || old.use_hosts_file != dns.use_hosts_file ||
                   old.cache_entries != dns.cache_entries || old.min_ttl != dns.min_ttl ||
                   old.max_ttl != dns.max_ttl || old.negative_ttl != dns.negative_ttl;
  }
  if (new_resolver) {
    // Sessions still resolving hold the old one until they finish.
    if (resolver_) metrics_.retire_resolver(resolver_->stats());
    resolver_ = std::make_shared<net::Resolver>(io, dns);
  }
  auto same_parents = [](const config::Config& a, const config::Config& b) {
    if (a.parents.size() != b.parents.size()) return false;
    for (std::size_t i = 0; i < a.parents.size(); ++i)
      if (a.parents[i].host != b.parents[i].host || a.parents[i].port != b.parents[i].port)
        return false;
    return true;
  };
  if (!snapshot_ || !same_parents(*snapshot_->config, *s->config))
    parent_down_until_.assign(s->config->parents.size(), net::Clock::time_point{});
  snapshot_ = std::move(s);
}

bool Worker::parent_usable(std::size_t i) const {
  return i < parent_down_until_.size() && parent_down_until_[i] <= net::Clock::now();
}

void Worker::parent_failed(std::size_t i) {
  if (i < parent_down_until_.size())
    parent_down_until_[i] = net::Clock::now() + snapshot_->config->parent_retry_after;
}

void Worker::parent_ok(std::size_t i) {
  if (i < parent_down_until_.size()) parent_down_until_[i] = net::Clock::time_point{};
}

std::string Worker::next_request_id() {
  // prefix, the worker's index (2 hex digits) and its request count (6 hex digits)
  static constexpr char kHex[] = "0123456789abcdef";
  char tail[8];
  const auto v = static_cast<std::uint32_t>(((index & 0xffU) << 24) | (++requests_ & 0xffffffU));
  for (int k = 7; k >= 0; --k) tail[7 - k] = kHex[(v >> (4 * k)) & 0xf];
  std::string id;
  id.reserve(shared.id_prefix.size() + sizeof tail);
  id.append(shared.id_prefix).append(tail, sizeof tail);
  return id;
}

void Worker::drain() {
  // close_if_idle may destroy nothing synchronously (sessions end on their own coroutine),
  // so iterating the set directly is safe.
  for (Connection* s : sessions_) s->close_if_idle();
  pool_.clear();
}

}  // namespace pc::txn
