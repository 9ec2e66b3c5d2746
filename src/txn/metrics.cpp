#include "txn/metrics.h"

#include <string>

#include "txn/scan.h"

namespace pc::txn {

using telemetry::HistogramData;
using telemetry::Label;
using telemetry::MetricWriter;

namespace {

constexpr std::string_view kDecisionNames[] = {"none", "allow",   "block",
                                               "warn", "monitor", "allow_no_scan"};
constexpr std::string_view kResultNames[] = {"allowed", "denied", "error"};
constexpr std::string_view kModeNames[] = {"http",    "connect", "reqmod",
                                           "respmod", "options", "other"};
constexpr std::string_view kPhaseNames[] = {"transaction", "dns", "connect", "first_byte", "scan"};
constexpr std::string_view kUpstreamErrorNames[] = {
    "connect",     "connect_timeout",  "parent",    "send",
    "no_response", "response_timeout", "malformed", "closed_mid_body"};
constexpr std::string_view kDnsErrorNames[] = {"not_found", "refused", "timeout", "error"};
constexpr std::string_view kScanResultNames[] = {"clean", "infected", "unscannable", "error"};

static_assert(std::size(kModeNames) == static_cast<std::size_t>(Mode::count));
static_assert(std::size(kPhaseNames) == static_cast<std::size_t>(Phase::count));
static_assert(std::size(kUpstreamErrorNames) == static_cast<std::size_t>(UpstreamError::count));

// Index into kDecisionNames from the access record's decision ("" when none was made).
int decision_index(std::string_view d) {
  if (d.empty()) return 0;
  if (d == "allow") return 1;
  if (d == "block") return 2;
  if (d == "warn") return 3;
  if (d == "monitor") return 4;
  if (d == "allow_no_scan") return 5;
  return 0;
}

int mode_index(const telemetry::AccessRecord& r) {
  if (r.icap_mode.empty())
    return static_cast<int>(r.method == "CONNECT" ? Mode::connect : Mode::http);
  if (r.icap_mode == "reqmod") return static_cast<int>(Mode::reqmod);
  if (r.icap_mode == "respmod") return static_cast<int>(Mode::respmod);
  if (r.icap_mode == "options") return static_cast<int>(Mode::options);
  return static_cast<int>(Mode::other);
}

int scan_index(std::string_view verdict) {
  if (verdict == "clean") return 0;
  if (verdict == "infected") return 1;
  if (verdict == "unscannable") return 2;
  return 3;  // error
}

std::uint64_t to_us(std::chrono::nanoseconds d) {
  return d.count() <= 0 ? 0 : static_cast<std::uint64_t>(d.count() / 1000);
}

template <class T>
std::unique_ptr<T[]> make_array(std::size_t n) {
  return std::make_unique<T[]>(n);
}

}  // namespace

WorkerMetrics::WorkerMetrics(std::vector<std::string> listeners)
    : listeners_(std::move(listeners)),
      slots_(listeners_.size() + 1),
      tx_(make_array<telemetry::LocalCounter>(slots_ * kModes * kDecisions * kResults)),
      bytes_in_(make_array<telemetry::LocalCounter>(slots_)),
      bytes_out_(make_array<telemetry::LocalCounter>(slots_)),
      accepted_(make_array<telemetry::LocalCounter>(slots_)),
      open_(make_array<telemetry::LocalGauge>(slots_)) {}

std::size_t WorkerMetrics::listener_slot(std::string_view name) const {
  for (std::size_t i = 0; i < listeners_.size(); ++i)
    if (listeners_[i] == name) return i;
  return listeners_.size();
}

void WorkerMetrics::transaction(const telemetry::AccessRecord& rec) {
  const std::size_t l = listener_slot(rec.listener);
  const int result = static_cast<int>(rec.result);
  tx_[tx_index(l, mode_index(rec), decision_index(rec.decision), result < kResults ? result : 2)]
      .add();
  bytes_in_[l].add(rec.bytes_in);
  bytes_out_[l].add(rec.bytes_out);
  phases_[static_cast<int>(Phase::transaction)].observe_us(
      rec.duration.count() < 0 ? 0 : static_cast<std::uint64_t>(rec.duration.count()));
}

std::size_t WorkerMetrics::connection_opened(std::string_view name) {
  std::size_t l = listener_slot(name);
  accepted_[l].add();
  open_[l].add(1);
  return l;
}

void WorkerMetrics::connection_closed(std::size_t slot) {
  if (slot < slots_) open_[slot].add(-1);
}

void WorkerMetrics::observe(Phase p, std::chrono::nanoseconds d) {
  phases_[static_cast<int>(p)].observe_us(to_us(d));
}

void WorkerMetrics::dns_error(net::DnsStatus s) {
  switch (s) {
    case net::DnsStatus::ok:
      return;
    case net::DnsStatus::not_found:
      dns_errors_[0].add();
      return;
    case net::DnsStatus::refused:
      dns_errors_[1].add();
      return;
    case net::DnsStatus::timeout:
      dns_errors_[2].add();
      return;
    case net::DnsStatus::error:
      dns_errors_[3].add();
      return;
  }
}

void WorkerMetrics::scanned(const ScanOutcome& o, std::chrono::nanoseconds d) {
  scans_[scan_index(o.verdict)].add();
  if (!o.cached) observe(Phase::scan, d);
}

void WorkerMetrics::tick(std::chrono::nanoseconds lag, const net::Resolver::Stats& dns,
                         std::size_t pool_idle, std::uint64_t pool_reused) {
  lag_.observe_us(to_us(lag));
  lag_last_ns_.set(lag.count() < 0 ? 0 : lag.count());
  last_tick_ns_.set(std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count());
  auto set = [](telemetry::LocalGauge& g, std::uint64_t a, std::uint64_t b) {
    g.set(static_cast<std::int64_t>(a + b));
  };
  set(dns_queries_, dns.queries, retired_dns_.queries);
  set(dns_cache_hits_, dns.cache_hits, retired_dns_.cache_hits);
  set(dns_coalesced_, dns.coalesced, retired_dns_.coalesced);
  set(dns_failures_, dns.failures, retired_dns_.failures);
  set(dns_timeouts_, dns.timeouts, retired_dns_.timeouts);
  pool_idle_.set(static_cast<std::int64_t>(pool_idle));
  pool_reused_.set(static_cast<std::int64_t>(pool_reused));
}

void WorkerMetrics::retire_resolver(const net::Resolver::Stats& dns) {
  retired_dns_.queries += dns.queries;
  retired_dns_.cache_hits += dns.cache_hits;
  retired_dns_.coalesced += dns.coalesced;
  retired_dns_.failures += dns.failures;
  retired_dns_.timeouts += dns.timeouts;
}

void WorkerMetrics::collect(std::span<const WorkerMetrics* const> workers, MetricWriter& w) {
  if (workers.empty()) return;
  const auto& names = workers[0]->listeners_;
  const std::size_t slots = workers[0]->slots_;
  auto listener_name = [&](std::size_t l) -> std::string_view {
    return l < names.size() ? std::string_view(names[l]) : std::string_view("-");
  };
  auto sum = [&](auto member) {
    std::uint64_t n = 0;
    for (const auto* m : workers) n += member(*m);
    return n;
  };

  // Transactions: only the label combinations that occurred.
  for (std::size_t l = 0; l < slots; ++l)
    for (int mode = 0; mode < kModes; ++mode)
      for (int d = 0; d < kDecisions; ++d)
        for (int r = 0; r < kResults; ++r) {
          const std::size_t i = workers[0]->tx_index(l, mode, d, r);
          std::uint64_t n = sum([i](const WorkerMetrics& m) { return m.tx_[i].value(); });
          if (n == 0) continue;
          const Label labels[] = {{"listener", listener_name(l)},
                                  {"mode", kModeNames[mode]},
                                  {"decision", kDecisionNames[d]},
                                  {"result", kResultNames[r]}};
          w.counter("portcullis_transactions_total",
                    "Transactions completed (one per access record), by listener, mode "
                    "(http, connect, reqmod, respmod, options, other), policy decision and result.",
                    labels, n);
        }

  for (std::size_t l = 0; l < slots; ++l) {
    if (l == names.size() &&
        sum([l](const WorkerMetrics& m) { return m.accepted_[l].value(); }) == 0 &&
        sum([l](const WorkerMetrics& m) { return m.bytes_in_[l].value(); }) == 0)
      continue;  // the "unknown listener" slot, unused
    const Label labels[] = {{"listener", listener_name(l)}};
    std::int64_t open = 0;
    for (const auto* m : workers) open += m->open_[l].value();
    w.gauge("portcullis_connections_open", "Client connections open now, by listener.", labels,
            static_cast<double>(open < 0 ? 0 : open));
    w.counter("portcullis_connections_accepted_total", "Client connections accepted, by listener.",
              labels, sum([l](const WorkerMetrics& m) { return m.accepted_[l].value(); }));
    const Label in[] = {{"listener", listener_name(l)}, {"direction", "in"}};
    const Label out[] = {{"listener", listener_name(l)}, {"direction", "out"}};
    constexpr std::string_view kBytesHelp =
        "Bytes exchanged with clients (heads and bodies): in from the client, out to the client.";
    w.counter("portcullis_client_bytes_total", kBytesHelp, in,
              sum([l](const WorkerMetrics& m) { return m.bytes_in_[l].value(); }));
    w.counter("portcullis_client_bytes_total", kBytesHelp, out,
              sum([l](const WorkerMetrics& m) { return m.bytes_out_[l].value(); }));
  }

  for (int p = 0; p < static_cast<int>(Phase::count); ++p) {
    HistogramData h(telemetry::latency_buckets());
    for (const auto* m : workers) h += m->phases_[p].read();
    const Label labels[] = {{"phase", kPhaseNames[p]}};
    w.histogram("portcullis_phase_duration_seconds",
                "How long transaction phases took: transaction (whole), dns, connect (successful "
                "upstream connects), first_byte (request sent to response head), scan (not "
                "cached).",
                labels, h);
  }

  for (int e = 0; e < static_cast<int>(UpstreamError::count); ++e) {
    const Label labels[] = {{"kind", kUpstreamErrorNames[e]}};
    w.counter("portcullis_upstream_errors_total", "Upstream (origin or parent) failures, by kind.",
              labels, sum([e](const WorkerMetrics& m) { return m.upstream_errors_[e].value(); }));
  }
  for (int e = 0; e < kDnsErrors; ++e) {
    const Label labels[] = {{"status", kDnsErrorNames[e]}};
    w.counter("portcullis_dns_errors_total",
              "Upstream name resolutions that gave no address, by status.", labels,
              sum([e](const WorkerMetrics& m) { return m.dns_errors_[e].value(); }));
  }
  auto gauge_sum = [&](telemetry::LocalGauge WorkerMetrics::*g) {
    std::uint64_t n = 0;
    for (const auto* m : workers) n += static_cast<std::uint64_t>((m->*g).value());
    return n;
  };
  w.counter("portcullis_dns_queries_total", "Lookups sent to DNS servers (sampled every tick).", {},
            gauge_sum(&WorkerMetrics::dns_queries_));
  w.counter("portcullis_dns_cache_hits_total", "Lookups answered from the DNS cache.", {},
            gauge_sum(&WorkerMetrics::dns_cache_hits_));
  w.counter("portcullis_dns_coalesced_total", "Lookups that joined one already in flight.", {},
            gauge_sum(&WorkerMetrics::dns_coalesced_));
  w.counter("portcullis_dns_failures_total", "DNS lookups that ended without addresses.", {},
            gauge_sum(&WorkerMetrics::dns_failures_));
  w.counter("portcullis_dns_timeouts_total", "DNS lookups that timed out.", {},
            gauge_sum(&WorkerMetrics::dns_timeouts_));
  w.gauge("portcullis_upstream_pool_idle", "Idle upstream connections kept for reuse.", {},
          static_cast<double>(gauge_sum(&WorkerMetrics::pool_idle_)));
  w.counter("portcullis_upstream_pool_reused_total", "Requests sent on a pooled connection.", {},
            gauge_sum(&WorkerMetrics::pool_reused_));

  for (int s = 0; s < kScanResults; ++s) {
    const Label labels[] = {{"result", kScanResultNames[s]}};
    w.counter("portcullis_scans_total",
              "Bodies scanned (cached verdicts included), by result; error is a failure of the "
              "gateway (scan.on_failure applied).",
              labels, sum([s](const WorkerMetrics& m) { return m.scans_[s].value(); }));
  }

  for (std::size_t i = 0; i < workers.size(); ++i) {
    const std::string index = std::to_string(i);
    const Label labels[] = {{"worker", index}};
    w.histogram("portcullis_event_loop_lag_seconds",
                "How late each worker's periodic timer fired: time its event loop was busy "
                "before it could run a ready handler.",
                labels, workers[i]->lag_.read());
  }
  for (std::size_t i = 0; i < workers.size(); ++i) {
    const std::string index = std::to_string(i);
    const Label labels[] = {{"worker", index}};
    w.gauge("portcullis_event_loop_lag_last_seconds",
            "The latest event-loop lag measured on each worker.", labels,
            static_cast<double>(workers[i]->lag_last_ns_.value()) / 1e9);
  }
}

}  // namespace pc::txn
