// txn::WorkerMetrics: what a transaction, a connection, an error or a scan counts, and the
// sums over workers that /metrics shows.
#include "txn/metrics.h"

#include <gtest/gtest.h>

#include "txn/scan.h"

namespace pc::txn {
namespace {

using namespace std::chrono_literals;

std::string collect(std::initializer_list<const WorkerMetrics*> ws) {
  std::vector<const WorkerMetrics*> v(ws);
  telemetry::MetricWriter w;
  WorkerMetrics::collect(v, w);
  return w.text();
}

// The value of the sample line `series` (name and labels), or -1 when absent.
double sample(const std::string& text, std::string_view series) {
  std::size_t at = 0;
  while ((at = text.find(series, at)) != std::string::npos) {
    if ((at == 0 || text[at - 1] == '\n') && text.size() > at + series.size() &&
        text[at + series.size()] == ' ')
      return std::stod(text.substr(at + series.size() + 1));
    at += series.size();
  }
  return -1;
}

telemetry::AccessRecord record(std::string listener, std::string method, std::string decision,
                               telemetry::Result result) {
  telemetry::AccessRecord r;
  r.listener = std::move(listener);
  r.method = std::move(method);
  r.decision = std::move(decision);
  r.result = result;
  r.bytes_in = 100;
  r.bytes_out = 1000;
  r.duration = 1500us;
  return r;
}

TEST(WorkerMetrics, TransactionsByListenerModeDecisionAndResult) {
  WorkerMetrics a({"proxy", "icap"}), b({"proxy", "icap"});
  a.transaction(record("proxy", "GET", "allow", telemetry::Result::allowed));
  b.transaction(record("proxy", "GET", "allow", telemetry::Result::allowed));
  a.transaction(record("proxy", "CONNECT", "block", telemetry::Result::denied));
  auto icap = record("icap", "GET", "", telemetry::Result::error);
  icap.icap_mode = "respmod";
  a.transaction(icap);
  auto opt = record("icap", "OPTIONS", "", telemetry::Result::allowed);
  opt.icap_mode = "-";  // a message that was not understood
  b.transaction(opt);
  b.transaction(record("elsewhere", "GET", "warn", telemetry::Result::denied));

  auto text = collect({&a, &b});
  EXPECT_EQ(sample(text,
                   "portcullis_transactions_total{listener=\"proxy\",mode=\"http\","
                   "decision=\"allow\",result=\"allowed\"}"),
            2)
      << text;
  EXPECT_EQ(sample(text,
                   "portcullis_transactions_total{listener=\"proxy\",mode=\"connect\","
                   "decision=\"block\",result=\"denied\"}"),
            1);
  EXPECT_EQ(sample(text,
                   "portcullis_transactions_total{listener=\"icap\",mode=\"respmod\","
                   "decision=\"none\",result=\"error\"}"),
            1);
  EXPECT_EQ(sample(text,
                   "portcullis_transactions_total{listener=\"icap\",mode=\"other\","
                   "decision=\"none\",result=\"allowed\"}"),
            1);
  EXPECT_EQ(sample(text,
                   "portcullis_transactions_total{listener=\"-\",mode=\"http\","
                   "decision=\"warn\",result=\"denied\"}"),
            1);
  // Combinations that never happened are not listed.
  EXPECT_EQ(sample(text,
                   "portcullis_transactions_total{listener=\"proxy\",mode=\"http\","
                   "decision=\"allow\",result=\"error\"}"),
            -1);
  EXPECT_EQ(sample(text, "portcullis_client_bytes_total{listener=\"proxy\",direction=\"in\"}"),
            300);
  EXPECT_EQ(sample(text, "portcullis_client_bytes_total{listener=\"icap\",direction=\"out\"}"),
            2000);
  EXPECT_EQ(sample(text, "portcullis_phase_duration_seconds_count{phase=\"transaction\"}"), 6);
  EXPECT_EQ(sample(text,
                   "portcullis_phase_duration_seconds_bucket{phase=\"transaction\","
                   "le=\"0.001\"}"),
            0);
  EXPECT_EQ(sample(text,
                   "portcullis_phase_duration_seconds_bucket{phase=\"transaction\","
                   "le=\"0.0025\"}"),
            6);
  EXPECT_DOUBLE_EQ(sample(text, "portcullis_phase_duration_seconds_sum{phase=\"transaction\"}"),
                   0.009);
}

TEST(WorkerMetrics, OpenConnectionsPerListener) {
  WorkerMetrics a({"proxy", "guest"}), b({"proxy", "guest"});
  auto s1 = a.connection_opened("proxy");
  auto s2 = b.connection_opened("proxy");
  auto s3 = b.connection_opened("guest");
  a.connection_closed(s1);
  auto text = collect({&a, &b});
  EXPECT_EQ(sample(text, "portcullis_connections_open{listener=\"proxy\"}"), 1) << text;
  EXPECT_EQ(sample(text, "portcullis_connections_open{listener=\"guest\"}"), 1);
  EXPECT_EQ(sample(text, "portcullis_connections_accepted_total{listener=\"proxy\"}"), 2);
  EXPECT_EQ(sample(text, "portcullis_connections_open{listener=\"-\"}"), -1);  // unused slot
  b.connection_closed(s2);
  b.connection_closed(s3);
  text = collect({&a, &b});
  EXPECT_EQ(sample(text, "portcullis_connections_open{listener=\"proxy\"}"), 0);
  EXPECT_EQ(sample(text, "portcullis_connections_open{listener=\"guest\"}"), 0);
}

TEST(WorkerMetrics, ErrorsScansAndPhases) {
  WorkerMetrics a({"proxy"});
  a.upstream_error(UpstreamError::connect_timeout);
  a.upstream_error(UpstreamError::malformed);
  a.upstream_error(UpstreamError::malformed);
  a.dns_error(net::DnsStatus::not_found);
  a.dns_error(net::DnsStatus::ok);  // not an error
  a.observe(Phase::dns, 2ms);
  a.observe(Phase::connect, 20ms);
  ScanOutcome clean;
  clean.verdict = "clean";
  a.scanned(clean, 30ms);
  ScanOutcome cached = clean;
  cached.cached = true;
  a.scanned(cached, 1us);  // counted, not timed
  ScanOutcome infected;
  infected.verdict = "infected";
  a.scanned(infected, 40ms);
  auto text = collect({&a});
  EXPECT_EQ(sample(text, "portcullis_upstream_errors_total{kind=\"connect_timeout\"}"), 1);
  EXPECT_EQ(sample(text, "portcullis_upstream_errors_total{kind=\"malformed\"}"), 2);
  EXPECT_EQ(sample(text, "portcullis_upstream_errors_total{kind=\"connect\"}"), 0);
  EXPECT_EQ(sample(text, "portcullis_dns_errors_total{status=\"not_found\"}"), 1);
  EXPECT_EQ(sample(text, "portcullis_dns_errors_total{status=\"timeout\"}"), 0);
  EXPECT_EQ(sample(text, "portcullis_scans_total{result=\"clean\"}"), 2);
  EXPECT_EQ(sample(text, "portcullis_scans_total{result=\"infected\"}"), 1);
  EXPECT_EQ(sample(text, "portcullis_phase_duration_seconds_count{phase=\"scan\"}"), 2);
  EXPECT_EQ(sample(text, "portcullis_phase_duration_seconds_count{phase=\"dns\"}"), 1);
  EXPECT_EQ(sample(text, "portcullis_phase_duration_seconds_count{phase=\"connect\"}"), 1);
  EXPECT_EQ(sample(text, "portcullis_phase_duration_seconds_count{phase=\"first_byte\"}"), 0);
}

TEST(WorkerMetrics, TicksMeasureLagAndSampleTheResolver) {
  WorkerMetrics a({"proxy"}), b({"proxy"});
  EXPECT_EQ(a.last_tick_ns(), 0);
  net::Resolver::Stats dns;
  dns.queries = 5;
  dns.failures = 1;
  a.tick(3ms, dns, 2, 7);
  EXPECT_GT(a.last_tick_ns(), 0);
  // A DNS setting changed: the resolver is replaced and its counts are kept.
  a.retire_resolver(dns);
  net::Resolver::Stats fresh;
  fresh.queries = 1;
  a.tick(1ms, fresh, 0, 7);
  b.tick(20ms, fresh, 1, 0);
  auto text = collect({&a, &b});
  EXPECT_EQ(sample(text, "portcullis_dns_queries_total"), 7) << text;
  EXPECT_EQ(sample(text, "portcullis_dns_failures_total"), 1);
  EXPECT_EQ(sample(text, "portcullis_upstream_pool_idle"), 1);
  EXPECT_EQ(sample(text, "portcullis_upstream_pool_reused_total"), 7);
  EXPECT_EQ(sample(text, "portcullis_event_loop_lag_seconds_count{worker=\"0\"}"), 2);
  EXPECT_EQ(sample(text, "portcullis_event_loop_lag_seconds_count{worker=\"1\"}"), 1);
  EXPECT_EQ(sample(text, "portcullis_event_loop_lag_seconds_bucket{worker=\"1\",le=\"0.01\"}"), 0);
  EXPECT_EQ(sample(text, "portcullis_event_loop_lag_seconds_bucket{worker=\"1\",le=\"0.025\"}"), 1);
  EXPECT_DOUBLE_EQ(sample(text, "portcullis_event_loop_lag_last_seconds{worker=\"1\"}"), 0.02);
}

}  // namespace
}  // namespace pc::txn
