// Helpers for the log store tests: the scratch directory and sample records.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "telemetry/access_log.h"
#include "temp_dir.h"

namespace pc::store::testing {

using pc::testing::TempDir;

// 2026-03-01T00:00:00Z
inline const std::chrono::system_clock::time_point kBase{std::chrono::seconds(1772323200)};

inline telemetry::AccessRecord record(std::chrono::system_clock::time_point t,
                                      std::string url = "http://www.example.com/") {
  telemetry::AccessRecord r;
  r.time = t;
  r.duration = std::chrono::microseconds(1500);
  r.request_id = "req-1";
  r.listener = "proxy";
  r.client = "192.0.2.1";
  r.method = "GET";
  r.url = std::move(url);
  r.status = 200;
  r.bytes_in = 100;
  r.bytes_out = 2000;
  r.upstream = "198.51.100.7:80";
  r.content_type = "text/html";
  r.decision = "allow";
  r.rule = "default";
  return r;
}

// Runs one SQL query on its own connection and returns the first column of the first row
// (-1 when there is none or on error).
inline long long sql_int(const std::filesystem::path& db, const char* sql) {
  sqlite3* h = nullptr;
  long long v = -1;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(h, sql, -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
      v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  sqlite3_close(h);
  return v;
}

inline bool sql_exec(const std::filesystem::path& db, const char* sql) {
  sqlite3* h = nullptr;
  bool ok = sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) ==
                SQLITE_OK &&
            sqlite3_exec(h, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
  sqlite3_close(h);
  return ok;
}

}  // namespace pc::store::testing
