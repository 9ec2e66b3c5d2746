#include "telemetry/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace pc::telemetry {

namespace {

constexpr double kLatencyBuckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                      0.25,   0.5,   1,      2.5,   5,    10,    30,   60};

bool name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool name_char(char c) {
  return name_start(c) || (c >= '0' && c <= '9');
}

bool valid_metric_name(std::string_view n) {
  if (n.empty() || !(name_start(n[0]) || n[0] == ':')) return false;
  for (char c : n)
    if (!(name_char(c) || c == ':')) return false;
  return true;
}

bool valid_label_name(std::string_view n) {
  if (n.empty() || !name_start(n[0]) || n.starts_with("__")) return false;
  for (char c : n)
    if (!name_char(c)) return false;
  return true;
}

std::string_view type_name(MetricType t) {
  switch (t) {
    case MetricType::counter:
      return "counter";
    case MetricType::gauge:
      return "gauge";
    case MetricType::histogram:
      return "histogram";
  }
  return "untyped";
}

[[noreturn]] void bad(std::string_view name, std::string_view why) {
  throw std::invalid_argument("metric " + std::string(name) + ": " + std::string(why));
}

// "{a="x",b="y"}" (empty when there are no labels), labels checked; `extra` (le) last.
std::string label_text(std::string_view metric, std::span<const Label> labels, bool histogram,
                       const Label* extra = nullptr) {
  if (labels.empty() && !extra) return {};
  std::string out = "{";
  bool first = true;
  auto add = [&](const Label& l) {
    if (!first) out += ',';
    first = false;
    out.append(l.first);
    out += "=\"";
    out += escape_label_value(l.second);
    out += '"';
  };
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const auto& l = labels[i];
    if (!valid_label_name(l.first))
      bad(metric, "invalid label name '" + std::string(l.first) + "'");
    if (histogram && l.first == "le") bad(metric, "'le' is reserved on histograms");
    for (std::size_t j = 0; j < i; ++j)
      if (labels[j].first == l.first) bad(metric, "label '" + std::string(l.first) + "' repeated");
    add(l);
  }
  if (extra) add(*extra);
  out += '}';
  return out;
}

}  // namespace

// ---- primitives ----

std::span<const double> latency_buckets() {
  return kLatencyBuckets;
}

std::uint64_t HistogramData::count() const {
  std::uint64_t n = 0;
  for (auto c : counts) n += c;
  return n;
}

HistogramData& HistogramData::operator+=(const HistogramData& o) {
  for (std::size_t i = 0; i < counts.size() && i < o.counts.size(); ++i) counts[i] += o.counts[i];
  sum += o.sum;
  return *this;
}

LocalHistogram::LocalHistogram(std::span<const double> bounds)
    : bounds_(bounds), counts_(std::make_unique<LocalCounter[]>(bounds.size() + 1)) {
  bounds_us_.reserve(bounds.size());
  for (double b : bounds) bounds_us_.push_back(static_cast<std::uint64_t>(std::llround(b * 1e6)));
}

void LocalHistogram::observe_us(std::uint64_t us) {
  // The first bucket whose upper bound is >= us (Prometheus buckets are "less or equal").
  auto it = std::lower_bound(bounds_us_.begin(), bounds_us_.end(), us);
  counts_[static_cast<std::size_t>(it - bounds_us_.begin())].add();
  sum_us_.add(us);
}

HistogramData LocalHistogram::read() const {
  HistogramData h(bounds_);
  for (std::size_t i = 0; i < h.counts.size(); ++i) h.counts[i] = counts_[i].value();
  h.sum = static_cast<double>(sum_us_.value()) / 1e6;
  return h;
}

// ---- text ----

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    return fmt::format("{}", static_cast<long long>(v));
  return fmt::format("{}", v);
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

MetricWriter::Family& MetricWriter::family(std::string_view name, MetricType type,
                                           std::string_view help) {
  if (!valid_metric_name(name)) bad(name, "invalid metric name");
  if (type == MetricType::counter && !name.ends_with("_total"))
    bad(name, "a counter's name ends in _total");
  auto it = index_.find(std::string(name));
  if (it != index_.end()) {
    if (it->second->type != type) bad(name, "written again with another type");
    if (it->second->help != help) bad(name, "written again with another help text");
    return *it->second;
  }
  // A histogram's series names must not collide with another family's.
  auto taken = [&](std::string_view n) { return index_.count(std::string(n)) > 0; };
  if (type == MetricType::histogram) {
    for (std::string_view suffix : {"_bucket", "_sum", "_count"})
      if (taken(std::string(name) + std::string(suffix))) bad(name, "its series names are taken");
  }
  for (const auto& f : families_) {
    if (f->type != MetricType::histogram) continue;
    for (std::string_view suffix : {"_bucket", "_sum", "_count"})
      if (name == f->name + std::string(suffix)) bad(name, "a histogram's series name");
  }
  auto f = std::make_unique<Family>();
  f->name = std::string(name);
  f->type = type;
  f->help = std::string(help);
  Family* p = f.get();
  families_.push_back(std::move(f));
  index_.emplace(p->name, p);
  return *p;
}

void MetricWriter::counter(std::string_view name, std::string_view help, Labels labels,
                           std::uint64_t value) {
  counter(name, help, std::span<const Label>(labels.begin(), labels.size()), value);
}

void MetricWriter::counter(std::string_view name, std::string_view help,
                           std::span<const Label> labels, std::uint64_t value) {
  Family& f = family(name, MetricType::counter, help);
  std::string l = label_text(name, labels, false);
  if (!f.series.insert(l).second) bad(name, "series " + l + " written twice");
  f.samples += fmt::format("{}{} {}\n", name, l, value);
}

void MetricWriter::gauge(std::string_view name, std::string_view help, Labels labels,
                         double value) {
  gauge(name, help, std::span<const Label>(labels.begin(), labels.size()), value);
}

void MetricWriter::gauge(std::string_view name, std::string_view help,
                         std::span<const Label> labels, double value) {
  Family& f = family(name, MetricType::gauge, help);
  std::string l = label_text(name, labels, false);
  if (!f.series.insert(l).second) bad(name, "series " + l + " written twice");
  f.samples += fmt::format("{}{} {}\n", name, l, format_value(value));
}

void MetricWriter::histogram(std::string_view name, std::string_view help, Labels labels,
                             const HistogramData& h) {
  histogram(name, help, std::span<const Label>(labels.begin(), labels.size()), h);
}

void MetricWriter::histogram(std::string_view name, std::string_view help,
                             std::span<const Label> labels, const HistogramData& h) {
  Family& f = family(name, MetricType::histogram, help);
  if (h.counts.size() != h.bounds.size() + 1) bad(name, "bucket counts do not match the bounds");
  for (std::size_t i = 1; i < h.bounds.size(); ++i)
    if (!(h.bounds[i - 1] < h.bounds[i])) bad(name, "bucket bounds must increase");
  std::string key = label_text(name, labels, true);
  if (!f.series.insert(key).second) bad(name, "series " + key + " written twice");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= h.bounds.size(); ++i) {
    cumulative += h.counts[i];
    std::string le = i < h.bounds.size() ? format_value(h.bounds[i]) : "+Inf";
    Label extra{"le", le};
    f.samples +=
        fmt::format("{}_bucket{} {}\n", name, label_text(name, labels, true, &extra), cumulative);
  }
  f.samples += fmt::format("{}_sum{} {}\n", name, key, format_value(h.sum));
  f.samples += fmt::format("{}_count{} {}\n", name, key, cumulative);
}

std::string MetricWriter::text() const {
  std::string out;
  for (const auto& f : families_) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f->name, escape_help(f->help), f->name,
                       type_name(f->type));
    out += f->samples;
  }
  return out;
}

// ---- registry ----

Registry::Id Registry::add(Collector c) {
  std::lock_guard lk(mu_);
  Id id = next_++;
  collectors_.emplace(id, std::move(c));
  return id;
}

void Registry::remove(Id id) {
  std::lock_guard lk(mu_);
  collectors_.erase(id);
}

std::string Registry::render() const {
  MetricWriter w;
  {
    // Held while collecting: remove() waits for a scrape in progress, so a collector is
    // never called after it was removed.
    std::lock_guard lk(mu_);
    for (const auto& [id, c] : collectors_) c(w);
  }
  return w.text();
}

}  // namespace pc::telemetry
