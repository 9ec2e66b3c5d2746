#include "app/logs_query.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <vector>

#include "base/time.h"
#include "store/query.h"

namespace pc::app {
namespace {

// A field for the terminal: control characters (a stored value may hold anything) become
// "?", an empty value "-".
std::string cell(std::string_view s) {
  if (s.empty()) return "-";
  std::string out(s);
  for (auto& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

void write_out(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
}

// One page as aligned columns; the URL last, unpadded.
void print_table(const std::vector<store::Row>& rows, bool header) {
  static const char* kHeads[] = {"TIME",     "CLIENT",   "USER",   "METHOD", "STATUS",
                                 "DECISION", "CATEGORY", "THREAT", "URL"};
  constexpr std::size_t kCols = std::size(kHeads);
  std::vector<std::array<std::string, kCols>> lines;
  if (header) {
    std::array<std::string, kCols> h;
    for (std::size_t i = 0; i < kCols; ++i) h[i] = kHeads[i];
    lines.push_back(h);
  }
  for (const auto& row : rows) {
    const auto& r = row.record;
    lines.push_back({base::format_rfc3339_ms(r.time), cell(r.client), cell(r.user), cell(r.method),
                     std::to_string(r.status), cell(r.decision), cell(r.category), cell(r.threat),
                     cell(r.url)});
  }
  std::array<std::size_t, kCols> width{};
  for (const auto& l : lines)
    for (std::size_t i = 0; i + 1 < kCols; ++i) width[i] = std::max(width[i], l[i].size());
  std::string out;
  for (const auto& l : lines) {
    for (std::size_t i = 0; i + 1 < kCols; ++i) {
      out += l[i];
      out.append(width[i] - l[i].size() + 2, ' ');
    }
    out += l[kCols - 1];
    out += '\n';
  }
  write_out(out);
}

bool time_arg(const char* option, const std::string& text,
              std::optional<std::chrono::system_clock::time_point>& out) {
  if (text.empty()) return true;
  std::chrono::system_clock::time_point t;
  if (!store::parse_time_arg(text, std::chrono::system_clock::now(), t)) {
    std::fprintf(stderr,
                 "invalid %s '%s' (expected an RFC 3339 time such as 2026-03-01T10:00:00+09:00, "
                 "a date such as 2026-03-01, 'now', or a time back from now such as -90s, -15m, "
                 "-1h, -2d, -1w)\n",
                 option, text.c_str());
    return false;
  }
  out = t;
  return true;
}

}  // namespace

store::WriterOptions log_store_options(const config::Config& c) {
  store::WriterOptions o;
  o.store.path = c.log_store.path;
  o.store.retention = std::chrono::hours(24) * c.log_store.retention_days;
  o.store.max_bytes = c.log_store.max_size_mb << 20;
  o.queue_limit = c.log_store.queue;
  o.flush_interval = c.log_store.flush_interval;
  return o;
}

int logs_query(const LogsQueryArgs& a) {
  auto cfg = config::load_file(a.config);
  if (!cfg.config) {
    for (const auto& e : cfg.errors) std::fprintf(stderr, "%s\n", config::format(e).c_str());
    return 2;
  }
  store::Filter f;
  if (!time_arg("--from", a.from, f.from) || !time_arg("--to", a.to, f.to)) return 2;
  f.client = a.client;
  f.user = a.user;
  f.host = a.host;
  f.url = a.url;
  f.category = a.category;
  f.decision = a.decision;
  f.threat = a.threat;
  f.page_token = a.page_token;
  f.limit = std::clamp<std::size_t>(a.limit == 0 ? store::kMaxLimit : a.limit, 1, store::kMaxLimit);
  if (auto err = store::validate(f); !err.empty()) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return 2;
  }

  store::Reader reader;
  std::string error;
  if (!reader.open(cfg.config->log_store.path, error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  // Larger requests than a page are read page by page, printed as they come.
  std::size_t left = a.limit;  // 0: no limit
  bool first = true;
  for (;;) {
    if (left != 0) f.limit = std::min(left, store::kMaxLimit);
    store::Page page;
    if (!reader.query(f, page, error)) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
    std::string out;
    if (a.format == "csv") {
      if (first) out = store::csv_header();
      for (const auto& row : page.rows) store::append_csv(out, row);
      write_out(out);
    } else if (a.format == "json") {
      for (const auto& row : page.rows) store::append_json(out, row);
      write_out(out);
    } else {
      print_table(page.rows, first);
    }
    first = false;
    if (left != 0) left -= page.rows.size();
    if (page.next_page_token.empty()) break;
    if (left == 0 && a.limit != 0) {
      std::fflush(stdout);
      std::fprintf(stderr, "more records: --page-token %s\n", page.next_page_token.c_str());
      break;
    }
    f.page_token = page.next_page_token;
  }
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace pc::app
