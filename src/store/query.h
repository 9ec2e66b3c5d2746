// Reading the log store: one filter, pages newest first, CSV and JSON-lines export. The
// `portcullis logs query` command and the REST API call the same functions. A Reader is a
// read-only connection of its own (one per thread), safe while the gateway writes.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/sqlite.h"
#include "telemetry/access_log.h"

namespace pc::store {

// Every condition set must hold. Strings match as documented per field; empty: any.
struct Filter {
  std::optional<std::chrono::system_clock::time_point> from;  // time >= from
  std::optional<std::chrono::system_clock::time_point> to;    // time < to
  std::string client;    // the client address exactly, or a network ("10.1.0.0/16", "fd00::/8")
  std::string user;      // the user, exactly, ASCII case ignored
  std::string host;      // a substring of the URL's host, case ignored
  std::string url;       // a substring of the URL, ASCII case ignored
  std::string category;  // exactly
  std::string decision;  // exactly (allow, block, warn, monitor, allow_no_scan)
  // nullopt: any record; "": records with a threat; a name: records with that threat.
  std::optional<std::string> threat;
  std::size_t limit = 100;  // records per page, 1..kMaxLimit
  std::string page_token;   // Page::next_page_token of the previous page; empty: the first
};

inline constexpr std::size_t kMaxLimit = 10000;
inline constexpr std::size_t kMaxFilterBytes = 1024;  // each string of a Filter (and no NUL)

struct Row {
  std::int64_t id = 0;  // the store's record number (insertion order)
  std::string host;     // the URL's host, lower-case; empty when the URL has none
  telemetry::AccessRecord record;
};

struct Page {
  std::vector<Row> rows;        // newest first (by time, then id)
  std::string next_page_token;  // empty when this is the last page
};

// Checks a filter's limits and page token: empty, or what is wrong.
std::string validate(const Filter& f);

class Reader {
 public:
  // Opens the database read-only. False (and why in `error`) when it is missing, not a log
  // store, or of another schema version.
  bool open(const std::filesystem::path& path, std::string& error);
  // One page, read from one snapshot of the database: the partitions that may hold matching
  // records are queried newest first and their rows merged. False (and why in `error`) on
  // an invalid filter or a read error.
  bool query(const Filter& f, Page& out, std::string& error);
  // SQLite's query plan for the filter: "access_<n>:" and its steps for each partition
  // (diagnostics and tests).
  std::string explain(const Filter& f);

 private:
  sql::Db db_;
};

// Export. CSV: RFC 4180 (comma-separated, CRLF line ends, a field with a comma, quote, CR or
// LF is quoted and its quotes doubled), a header row, one row per record, times in UTC. A text
// field starting with =, +, -, @, tab or CR gets a leading apostrophe so that a spreadsheet
// shows it as text rather than running it as a formula.
std::string csv_header();
void append_csv(std::string& out, const Row& row);
// JSON lines: one object per line, the access log's JSON format (telemetry::format_json).
void append_json(std::string& out, const Row& row);

// Page tokens: "<time in microseconds>.<id>" of the last row of a page; opaque to callers.
std::string make_page_token(std::int64_t time_us, std::int64_t id);
bool parse_page_token(std::string_view s, std::int64_t& time_us, std::int64_t& id);

// A time argument: RFC 3339 ("2026-03-01T10:00:00+09:00", see base::parse_rfc3339), a date
// ("2026-03-01", midnight UTC), "now", or relative to now: "-90s", "-15m", "-1h", "-2d",
// "-1w" (a whole number, at most 100 years back). False on anything else.
bool parse_time_arg(std::string_view s, std::chrono::system_clock::time_point now,
                    std::chrono::system_clock::time_point& out);

}  // namespace pc::store
