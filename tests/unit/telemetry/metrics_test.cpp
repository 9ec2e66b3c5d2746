// telemetry/metrics: the data-plane primitives, the Prometheus text format 0.0.4 (exact
// output, escaping, histogram buckets, the naming rules) and the registry of collectors.
#include "telemetry/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>

namespace pc::telemetry {
namespace {

TEST(MetricsText, CounterAndGaugeExactOutput) {
  MetricWriter w;
  w.counter("pc_requests_total", "Requests.", {{"listener", "proxy"}, {"result", "ok"}}, 42);
  w.gauge("pc_open", "Open now.", {}, 3);
  EXPECT_EQ(w.text(),
            "# HELP pc_requests_total Requests.\n"
            "# TYPE pc_requests_total counter\n"
            "pc_requests_total{listener=\"proxy\",result=\"ok\"} 42\n"
            "# HELP pc_open Open now.\n"
            "# TYPE pc_open gauge\n"
            "pc_open 3\n");
}

TEST(MetricsText, SamplesOfAFamilyStayTogether) {
  MetricWriter w;
  w.counter("a_total", "A.", {{"k", "1"}}, 1);
  w.gauge("b", "B.", {}, 2);
  w.counter("a_total", "A.", {{"k", "2"}}, 3);  // later, from another collector
  EXPECT_EQ(w.text(),
            "# HELP a_total A.\n# TYPE a_total counter\n"
            "a_total{k=\"1\"} 1\na_total{k=\"2\"} 3\n"
            "# HELP b B.\n# TYPE b gauge\nb 2\n");
}

TEST(MetricsText, LabelValuesAreEscaped) {
  MetricWriter w;
  w.gauge("g", "G.", {{"path", "C:\\dir \"quoted\"\nnext"}}, 1);
  EXPECT_EQ(w.text(),
            "# HELP g G.\n# TYPE g gauge\n"
            "g{path=\"C:\\\\dir \\\"quoted\\\"\\nnext\"} 1\n");
  EXPECT_EQ(escape_label_value("plain ünïcode"), "plain ünïcode");  // UTF-8 passes as is
}

TEST(MetricsText, HelpIsEscaped) {
  MetricWriter w;
  w.gauge("g", "back\\slash\nnew \"line\"", {}, 0);
  // In HELP only backslash and newline are escaped; quotes stay.
  EXPECT_EQ(w.text(), "# HELP g back\\\\slash\\nnew \"line\"\n# TYPE g gauge\ng 0\n");
}

TEST(MetricsText, Values) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(-3), "-3");
  EXPECT_EQ(format_value(0.5), "0.5");
  EXPECT_EQ(format_value(1e-6), "1e-06");
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_value(std::nan("")), "NaN");
  EXPECT_EQ(std::stod(format_value(1e20)), 1e20);  // large values keep their magnitude
}

TEST(MetricsText, HistogramBucketsAreCumulativeAndEndWithInf) {
  static constexpr double bounds[] = {0.1, 1, 2.5};
  HistogramData h(bounds);
  h.counts = {2, 0, 3, 1};  // per bucket; the last is above 2.5
  h.sum = 7.25;
  MetricWriter w;
  w.histogram("pc_latency_seconds", "Latency.", {{"phase", "dns"}}, h);
  EXPECT_EQ(w.text(),
            "# HELP pc_latency_seconds Latency.\n"
            "# TYPE pc_latency_seconds histogram\n"
            "pc_latency_seconds_bucket{phase=\"dns\",le=\"0.1\"} 2\n"
            "pc_latency_seconds_bucket{phase=\"dns\",le=\"1\"} 2\n"
            "pc_latency_seconds_bucket{phase=\"dns\",le=\"2.5\"} 5\n"
            "pc_latency_seconds_bucket{phase=\"dns\",le=\"+Inf\"} 6\n"
            "pc_latency_seconds_sum{phase=\"dns\"} 7.25\n"
            "pc_latency_seconds_count{phase=\"dns\"} 6\n");
  EXPECT_EQ(h.count(), 6u);
}

TEST(MetricsText, HistogramWithoutLabels) {
  static constexpr double bounds[] = {1};
  HistogramData h(bounds);
  MetricWriter w;
  w.histogram("h", "H.", {}, h);
  EXPECT_EQ(w.text(),
            "# HELP h H.\n# TYPE h histogram\n"
            "h_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n");
}

TEST(MetricsText, NamingRulesAreEnforced) {
  static constexpr double bounds[] = {1};
  const HistogramData h(bounds);
  auto throws = [](auto f) {
    MetricWriter w;
    EXPECT_THROW(f(w), std::invalid_argument);
  };
  throws([](MetricWriter& w) { w.counter("requests", "no _total", {}, 1); });
  throws([](MetricWriter& w) { w.gauge("1abc", "digit first", {}, 1); });
  throws([](MetricWriter& w) { w.gauge("a-b", "dash", {}, 1); });
  throws([](MetricWriter& w) { w.gauge("", "empty", {}, 1); });
  throws([](MetricWriter& w) { w.gauge("g", "reserved label", {{"__name", "x"}}, 1); });
  throws([](MetricWriter& w) { w.gauge("g", "bad label", {{"a:b", "x"}}, 1); });
  throws([](MetricWriter& w) { w.gauge("g", "repeated", {{"a", "1"}, {"a", "2"}}, 1); });
  throws([&](MetricWriter& w) { w.histogram("h", "le is reserved", {{"le", "1"}}, h); });
  throws([](MetricWriter& w) {
    w.gauge("g", "G.", {{"a", "1"}}, 1);
    w.gauge("g", "G.", {{"a", "1"}}, 2);  // the same series twice
  });
  throws([](MetricWriter& w) {
    w.gauge("g_total", "G.", {}, 1);
    w.counter("g_total", "G.", {{"a", "1"}}, 2);  // another type
  });
  throws([](MetricWriter& w) {
    w.gauge("g", "G.", {{"a", "1"}}, 1);
    w.gauge("g", "Other help.", {{"a", "2"}}, 2);
  });
  throws([&](MetricWriter& w) {
    w.histogram("h", "H.", {}, h);
    w.gauge("h_count", "collides with the histogram's series", {}, 1);
  });
  throws([&](MetricWriter& w) {
    w.gauge("h_sum", "taken first", {}, 1);
    w.histogram("h", "H.", {}, h);
  });
  throws([](MetricWriter& w) {
    static constexpr double unsorted[] = {2, 1};
    w.histogram("h", "H.", {}, HistogramData(unsorted));
  });
  // Colons are allowed in metric names, not in label names.
  MetricWriter ok;
  ok.gauge("job:rate", "recording-rule style", {{"_x", "1"}}, 1);
  EXPECT_NE(ok.text().find("job:rate{_x=\"1\"} 1\n"), std::string::npos);
}

TEST(LocalHistogram, BucketBoundariesAreInclusive) {
  LocalHistogram h;  // latency buckets: 0.0005, 0.001, ...
  h.observe_us(0);
  h.observe_us(500);            // exactly 0.0005: the first bucket
  h.observe_us(501);            // just above: the second
  h.observe_us(1000);           // exactly 0.001: the second
  h.observe_us(3'600'000'000);  // an hour: +Inf
  auto d = h.read();
  ASSERT_EQ(d.bounds.size(), latency_buckets().size());
  ASSERT_EQ(d.counts.size(), d.bounds.size() + 1);
  EXPECT_EQ(d.counts[0], 2u);
  EXPECT_EQ(d.counts[1], 2u);
  EXPECT_EQ(d.counts.back(), 1u);
  EXPECT_EQ(d.count(), 5u);
  EXPECT_DOUBLE_EQ(d.sum, (500 + 501 + 1000 + 3'600'000'000.0) / 1e6);
  HistogramData twice = d;
  twice += d;
  EXPECT_EQ(twice.count(), 10u);
  EXPECT_DOUBLE_EQ(twice.sum, 2 * d.sum);
}

TEST(LocalCounters, OneWriterManyReaders) {
  LocalCounter c;
  LocalGauge g;
  std::thread writer([&] {
    for (int i = 0; i < 100000; ++i) {
      c.add();
      g.add(i % 2 ? -1 : 1);
    }
  });
  std::uint64_t last = 0;
  for (int i = 0; i < 1000; ++i) {  // a reader sees a value that never goes backwards
    std::uint64_t v = c.value();
    EXPECT_GE(v, last);
    last = v;
  }
  writer.join();
  EXPECT_EQ(c.value(), 100000u);
  EXPECT_EQ(g.value(), 0);
  c.add(5);
  EXPECT_EQ(c.value(), 100005u);
}

TEST(MetricsRegistry, CollectorsRunInOrderAndCanBeRemoved) {
  Registry r;
  int calls = 0;
  auto a = r.add([&](MetricWriter& w) {
    ++calls;
    w.gauge("first", "F.", {}, 1);
  });
  r.add([](MetricWriter& w) { w.gauge("second", "S.", {}, 2); });
  EXPECT_EQ(r.render(),
            "# HELP first F.\n# TYPE first gauge\nfirst 1\n"
            "# HELP second S.\n# TYPE second gauge\nsecond 2\n");
  r.remove(a);
  EXPECT_EQ(r.render(), "# HELP second S.\n# TYPE second gauge\nsecond 2\n");
  EXPECT_EQ(calls, 1);
  r.remove(a);  // twice: nothing
}

TEST(MetricsRegistry, SinksOfOneFamilyFromSeveralCollectors) {
  Registry r;
  for (std::string sink : {"access_log", "syslog \"siem\""}) {
    r.add([sink](MetricWriter& w) {
      w.counter("pc_log_records_written_total", "Written.", {{"sink", sink}}, 1);
    });
  }
  EXPECT_EQ(r.render(),
            "# HELP pc_log_records_written_total Written.\n"
            "# TYPE pc_log_records_written_total counter\n"
            "pc_log_records_written_total{sink=\"access_log\"} 1\n"
            "pc_log_records_written_total{sink=\"syslog \\\"siem\\\"\"} 1\n");
}

}  // namespace
}  // namespace pc::telemetry
