// One worker thread's world: its io_context, resolver, upstream pool, the snapshot it serves
// with, and its live sessions. Everything here is touched only on the worker's thread,
// except `Shared`, which is process-wide and thread-safe.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "net/connect.h"
#include "net/io.h"
#include "net/resolver.h"
#include "telemetry/access_log.h"
#include "txn/metrics.h"
#include "txn/snapshot.h"

namespace pc::txn {

// A live client connection of any front end (proxy or ICAP), as the worker sees it.
class Connection {
 public:
  virtual ~Connection() = default;
  // Drain: close the connection if it is between transactions.
  virtual void close_if_idle() = 0;
  // Shutdown: close it now.
  virtual void close() = 0;
  // Every Worker::kTick: a connection waiting for its next request with its read buffer
  // kept (Worker::hot_waiters) gives the buffer back once it has waited for two ticks.
  virtual void tick() {}
};

// Process-wide state shared by all workers.
struct Shared {
  explicit Shared(telemetry::AccessLog& l) : access_log(l) {}
  telemetry::AccessLog& access_log;
  std::atomic<std::size_t> connections{0};       // proxy client connections
  std::atomic<std::size_t> icap_connections{0};  // ICAP client connections
  std::atomic<bool> draining{false};
  std::string id_prefix;        // random, per process start: request IDs are unique across restarts
  ScanService* scan = nullptr;  // the scan pool, cache and spool accounting

  // Counts client connections per source address; false when the limit is reached.
  bool acquire_client(const base::IpBytes& a, std::size_t limit);
  void release_client(const base::IpBytes& a);

 private:
  struct Hash {
    std::size_t operator()(const base::IpBytes& a) const noexcept {
      std::size_t h = 1469598103934665603ull;
      for (auto b : a.b) h = (h ^ b) * 1099511628211ull;
      return h;
    }
  };
  std::mutex mu_;
  std::unordered_map<base::IpBytes, std::size_t, Hash> per_client_;
};

class Worker {
 public:
  Worker(Shared& shared, unsigned index, std::shared_ptr<const Snapshot> snap);
  ~Worker();

  Shared& shared;

 private:
  // Declared before io: sessions unwound while io is destroyed still find it.
  std::unordered_set<Connection*> sessions_;

 public:
  boost::asio::io_context io{1};
  const unsigned index;

  const std::shared_ptr<const Snapshot>& snapshot() const { return snapshot_; }
  // Worker thread only: serve new transactions with s (in-flight ones keep theirs).
  void apply(std::shared_ptr<const Snapshot> s);

  std::shared_ptr<net::Resolver> resolver() const { return resolver_; }
  net::UpstreamPool& pool() { return pool_; }

  // Parent proxy health: index into snapshot()->config->parents.
  bool parent_usable(std::size_t i) const;
  void parent_failed(std::size_t i);
  void parent_ok(std::size_t i);

  std::string next_request_id();

  // This worker's counters (written on its thread, read by the monitoring thread).
  WorkerMetrics& metrics() { return metrics_; }
  const WorkerMetrics& metrics() const { return metrics_; }
  // Starts the periodic tick (every kTick) that measures event-loop lag and samples the
  // resolver and pool figures for the metrics. Call before the thread runs io.
  void start_ticks();
  static constexpr std::chrono::milliseconds kTick{250};

  void add(Connection* s) { sessions_.insert(s); }
  void remove(Connection* s) { sessions_.erase(s); }

  // Connections waiting for their next request with their read buffer kept, at most
  // kHotWaiters: such a wait is a read posted at once, which needs no change to the event
  // registration, where a wait for readability without a buffer costs a system call each
  // time. Connection::tick gives the buffer back after 0.25-0.5 s of waiting.
  static constexpr std::size_t kHotWaiters = 256;
  std::size_t hot_waiters = 0;
  // Worker thread only: close idle keep-alive connections; busy ones close after their
  // current transaction.
  void drain();
  // Control thread, after the worker thread has stopped: closes every connection and lets
  // their coroutines unwind so that nothing outlives the worker.
  void shutdown();

 private:
  void on_tick(const boost::system::error_code& ec);

  WorkerMetrics metrics_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::shared_ptr<net::Resolver> resolver_;
  net::UpstreamPool pool_;
  std::vector<net::Clock::time_point> parent_down_until_;
  std::uint64_t requests_ = 0;
  boost::asio::steady_timer ticker_{io};
  bool ticking_ = false;
};

}  // namespace pc::txn
