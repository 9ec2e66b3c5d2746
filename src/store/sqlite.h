// Thin RAII wrappers over the SQLite C API, internal to the store library.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace pc::store::sql {

// An owned connection.
class Db {
 public:
  Db() = default;
  explicit Db(sqlite3* db) : db_(db) {}
  ~Db() { reset(); }
  Db(Db&& o) noexcept : db_(std::exchange(o.db_, nullptr)) {}
  Db& operator=(Db&& o) noexcept {
    if (this != &o) {
      reset();
      db_ = std::exchange(o.db_, nullptr);
    }
    return *this;
  }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  sqlite3* get() const { return db_; }
  explicit operator bool() const { return db_ != nullptr; }
  void reset() {
    if (db_) sqlite3_close_v2(db_);
    db_ = nullptr;
  }

  // The connection's last error: "message (code)".
  std::string error() const {
    if (!db_) return "no database";
    return std::string(sqlite3_errmsg(db_)) + " (" + sqlite3_errstr(sqlite3_extended_errcode(db_)) +
           ")";
  }

 private:
  sqlite3* db_ = nullptr;
};

// An owned prepared statement. Text is bound without copying (SQLITE_STATIC): the bound
// string must outlive the step.
class Stmt {
 public:
  Stmt() = default;
  ~Stmt() { reset(); }
  Stmt(Stmt&& o) noexcept : st_(std::exchange(o.st_, nullptr)) {}
  Stmt& operator=(Stmt&& o) noexcept {
    if (this != &o) {
      reset();
      st_ = std::exchange(o.st_, nullptr);
    }
    return *this;
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // SQLITE_OK or the error code; on error the statement stays empty.
  int prepare(sqlite3* db, std::string_view sql) {
    reset();
    return sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &st_, nullptr);
  }
  sqlite3_stmt* get() const { return st_; }
  explicit operator bool() const { return st_ != nullptr; }
  void reset() {
    if (st_) sqlite3_finalize(st_);
    st_ = nullptr;
  }

  // Parameters are numbered from 1.
  void bind(int i, std::int64_t v) { sqlite3_bind_int64(st_, i, v); }
  void bind_null(int i) { sqlite3_bind_null(st_, i); }
  void bind(int i, std::string_view v) {
    sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  // An empty string is stored as NULL: sparse columns cost nothing and partial indexes
  // ("WHERE x IS NOT NULL") stay small.
  void bind_opt(int i, std::string_view v) {
    if (v.empty())
      bind_null(i);
    else
      bind(i, v);
  }
  int step() { return sqlite3_step(st_); }
  void rearm() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }

  std::int64_t int64(int col) const { return sqlite3_column_int64(st_, col); }
  std::string text(int col) const {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(st_, col)))
             : std::string();
  }

 private:
  sqlite3_stmt* st_ = nullptr;
};

// Runs statements without results; SQLITE_OK or the error code (message in db.error()).
inline int exec(sqlite3* db, const char* sql) {
  return sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
}

// The first column of the first row of a query as an integer (pragmas, counts); `fallback`
// when there is no row or on error.
inline std::int64_t query_int(sqlite3* db, std::string_view sql, std::int64_t fallback = -1) {
  Stmt st;
  if (st.prepare(db, sql) != SQLITE_OK) return fallback;
  return st.step() == SQLITE_ROW ? st.int64(0) : fallback;
}

}  // namespace pc::store::sql
