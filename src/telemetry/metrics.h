// Metrics: the counters the data plane updates (cheap, one writer thread each), and the
// Prometheus text exposition (format 0.0.4) that the monitoring listener serves. Collectors
// registered with a Registry read the counters when /metrics is scraped and write families
// into a MetricWriter; nothing is aggregated on the data plane.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace pc::telemetry {

// ---- data-plane primitives ----
//
// Each is written by ONE thread (its worker) and read by any: a relaxed load and store, no
// read-modify-write (no lock prefix), no allocation. A reader sees a recent value. Keep each
// writer's counters together (one object per worker, cache-line aligned) so that workers do
// not share cache lines.

class LocalCounter {
 public:
  void add(std::uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

class LocalGauge {
 public:
  void set(std::int64_t v) { v_.store(v, std::memory_order_relaxed); }
  void add(std::int64_t n) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::int64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> v_{0};
};

// Upper bounds (seconds) of the latency buckets every duration histogram uses; +Inf is
// implicit.
std::span<const double> latency_buckets();

// The counts of one histogram (or of several added together), for the writer.
struct HistogramData {
  std::span<const double> bounds;     // upper bounds, increasing; +Inf implicit
  std::vector<std::uint64_t> counts;  // per bucket, NOT cumulative; bounds.size() + 1 entries
  double sum = 0;                     // of the observed values, in the unit of the bounds

  explicit HistogramData(std::span<const double> b) : bounds(b), counts(b.size() + 1, 0) {}
  std::uint64_t count() const;
  HistogramData& operator+=(const HistogramData& o);  // same bounds
};

// A histogram of durations with one writer thread (as LocalCounter). The sum is kept in
// microseconds, the bounds are in seconds.
class LocalHistogram {
 public:
  explicit LocalHistogram(std::span<const double> bounds_seconds = latency_buckets());
  void observe_us(std::uint64_t microseconds);
  HistogramData read() const;

 private:
  std::span<const double> bounds_;
  std::vector<std::uint64_t> bounds_us_;
  std::unique_ptr<LocalCounter[]> counts_;  // bounds + 1
  LocalCounter sum_us_;
};

// ---- exposition ----

enum class MetricType : std::uint8_t { counter, gauge, histogram };

using Label = std::pair<std::string_view, std::string_view>;
using Labels = std::initializer_list<Label>;

// Collects samples into families and renders the Prometheus text format 0.0.4: one # HELP
// and # TYPE per family, its samples together, label values escaped, histograms as
// _bucket{le=...} (cumulative, ending with +Inf), _sum and _count. Families appear in the
// order they were first written. Names are checked: a metric name is [a-zA-Z_:][a-zA-Z0-9_:]*,
// a label name [a-zA-Z_][a-zA-Z0-9_]* (not starting with "__", not "le" on a histogram), a
// counter's name ends in "_total"; a family written again must keep its type and help, and
// the same series (name and labels) may be written once. Breaking these rules is a
// programming error: std::invalid_argument.
class MetricWriter {
 public:
  void counter(std::string_view name, std::string_view help, Labels labels, std::uint64_t value);
  void counter(std::string_view name, std::string_view help, std::span<const Label> labels,
               std::uint64_t value);
  void gauge(std::string_view name, std::string_view help, Labels labels, double value);
  void gauge(std::string_view name, std::string_view help, std::span<const Label> labels,
             double value);
  void histogram(std::string_view name, std::string_view help, Labels labels,
                 const HistogramData& h);
  void histogram(std::string_view name, std::string_view help, std::span<const Label> labels,
                 const HistogramData& h);

  std::string text() const;

 private:
  struct Family {
    std::string name;
    MetricType type;
    std::string help;
    std::string samples;
    std::unordered_set<std::string> series;
  };
  Family& family(std::string_view name, MetricType type, std::string_view help);
  std::vector<std::unique_ptr<Family>> families_;
  std::unordered_map<std::string, Family*> index_;
};

// "text/plain; version=0.0.4; charset=utf-8"
inline constexpr std::string_view kExpositionContentType =
    "text/plain; version=0.0.4; charset=utf-8";

// A number as the text format writes it: integers without a fraction, "+Inf", "-Inf", "NaN".
std::string format_value(double v);
// A label value with \, " and newline escaped.
std::string escape_label_value(std::string_view v);
// HELP text with \ and newline escaped.
std::string escape_help(std::string_view v);

// The collectors of a process. A collector is called on the scraping thread (the monitoring
// listener's) and must only read state that is safe to read from any thread (atomics,
// LocalCounter and friends, or its own locks).
class Registry {
 public:
  using Collector = std::function<void(MetricWriter&)>;
  using Id = std::uint64_t;

  Id add(Collector c);
  void remove(Id id);
  // Calls every collector in the order they were added and renders the result.
  std::string render() const;

 private:
  mutable std::mutex mu_;
  std::map<Id, Collector> collectors_;
  Id next_ = 1;
};

// A log sink as monitoring sees it (the access-log file, later syslog destinations and the
// local store): records written and dropped since start, and whether it can deliver now.
struct SinkState {
  std::uint64_t written = 0;
  std::uint64_t dropped = 0;
  bool connected = true;
  std::string detail;  // why not connected, or where it writes
};

}  // namespace pc::telemetry
