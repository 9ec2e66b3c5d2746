// The data plane's counters: one WorkerMetrics per worker, written only by that worker's
// thread (telemetry::LocalCounter: relaxed load + store, no lock, no allocation) and summed
// over the workers when /metrics is scraped (collect()). docs/monitoring.md lists every
// metric.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "net/resolver.h"
#include "telemetry/access_log.h"
#include "telemetry/metrics.h"

namespace pc::txn {

struct ScanOutcome;

// Timed phases of a transaction (portcullis_phase_duration_seconds{phase}).
enum class Phase : std::uint8_t {
  transaction,  // the whole transaction, first byte read to access record
  dns,          // a name resolution for an upstream (cache answers included)
  connect,      // a successful TCP connect to an upstream (origin or parent)
  first_byte,   // request head sent upstream to the final response head received
  scan,         // a body handed to the scanners to its verdict (queue wait included)
  count
};

// Upstream failures (portcullis_upstream_errors_total{kind}).
enum class UpstreamError : std::uint8_t {
  connect,           // refused or unreachable
  connect_timeout,   // upstream_connect passed
  parent,            // a parent proxy failed (unreachable, or refused CONNECT)
  send,              // writing the request failed
  no_response,       // closed or reset before a response head
  response_timeout,  // upstream_first_byte passed
  malformed,         // a response head or body broke the framing rules
  closed_mid_body,   // the connection ended inside the response body
  count
};

// What a transaction was (the `mode` label).
enum class Mode : std::uint8_t { http, connect, reqmod, respmod, options, other, count };

class alignas(64) WorkerMetrics {
 public:
  // `listeners`: the configured listener names, in order (fixed while running).
  explicit WorkerMetrics(std::vector<std::string> listeners);
  WorkerMetrics(const WorkerMetrics&) = delete;
  WorkerMetrics& operator=(const WorkerMetrics&) = delete;

  // ---- worker thread only ----
  // A completed transaction, from its access record (listener, method or ICAP mode,
  // decision, result, bytes, duration).
  void transaction(const telemetry::AccessRecord& rec);
  // A client connection accepted on listener `name`; returns the slot to close it with.
  std::size_t connection_opened(std::string_view name);
  void connection_closed(std::size_t slot);
  void observe(Phase p, std::chrono::nanoseconds d);
  void upstream_error(UpstreamError e) { upstream_errors_[static_cast<int>(e)].add(); }
  void dns_error(net::DnsStatus s);
  // A scan's outcome and how long it took (the duration is observed unless the verdict came
  // from the cache).
  void scanned(const ScanOutcome& o, std::chrono::nanoseconds d);
  // The event-loop tick: how late the periodic timer fired, plus the resolver and pool
  // figures (which only the worker thread may read) copied for the scraper.
  void tick(std::chrono::nanoseconds lag, const net::Resolver::Stats& dns, std::size_t pool_idle,
            std::uint64_t pool_reused);
  // Folds the counts of a resolver being replaced (a DNS setting changed on reload) so the
  // totals never go backwards.
  void retire_resolver(const net::Resolver::Stats& dns);

  // ---- any thread ----
  // Steady-clock time of the last tick (nanoseconds since its epoch), 0 before the first.
  std::int64_t last_tick_ns() const { return last_tick_ns_.value(); }
  const std::vector<std::string>& listeners() const { return listeners_; }

  // Writes every data-plane metric, summed over `workers` (all built with the same listener
  // names), per worker where the label says so.
  static void collect(std::span<const WorkerMetrics* const> workers, telemetry::MetricWriter& w);

 private:
  static constexpr int kDecisions = 6;  // none + policy::Action
  static constexpr int kResults = 3;    // telemetry::Result
  static constexpr int kModes = static_cast<int>(Mode::count);
  static constexpr int kDnsErrors = 4;    // not_found, refused, timeout, error
  static constexpr int kScanResults = 4;  // clean, infected, unscannable, error

  std::size_t listener_slot(std::string_view name) const;  // listeners_.size(): unknown
  std::size_t tx_index(std::size_t listener, int mode, int decision, int result) const {
    return ((listener * kModes + static_cast<std::size_t>(mode)) * kDecisions +
            static_cast<std::size_t>(decision)) *
               kResults +
           static_cast<std::size_t>(result);
  }

  std::vector<std::string> listeners_;
  std::size_t slots_;  // listeners + 1 (unknown)
  std::unique_ptr<telemetry::LocalCounter[]> tx_;
  std::unique_ptr<telemetry::LocalCounter[]> bytes_in_, bytes_out_, accepted_;
  std::unique_ptr<telemetry::LocalGauge[]> open_;
  telemetry::LocalHistogram phases_[static_cast<int>(Phase::count)];
  telemetry::LocalCounter upstream_errors_[static_cast<int>(UpstreamError::count)];
  telemetry::LocalCounter dns_errors_[kDnsErrors];
  telemetry::LocalCounter scans_[kScanResults];
  telemetry::LocalHistogram lag_;
  telemetry::LocalGauge lag_last_ns_;
  telemetry::LocalGauge last_tick_ns_;
  // Sampled at each tick (resolver and pool are worker-thread objects).
  net::Resolver::Stats retired_dns_;  // worker thread only
  telemetry::LocalGauge dns_queries_, dns_cache_hits_, dns_coalesced_, dns_failures_, dns_timeouts_,
      pool_idle_, pool_reused_;
};

}  // namespace pc::txn
