#include "store/schema.h"

#include <vector>

#include "store/sqlite.h"

namespace pc::store::schema {
namespace {

// Version 1.
constexpr const char* kV1 = R"sql(
CREATE TABLE schema_migrations (
  version INTEGER PRIMARY KEY,
  applied_us INTEGER NOT NULL
);
CREATE TABLE partitions (
  n INTEGER PRIMARY KEY,
  created_us INTEGER NOT NULL,
  rows INTEGER NOT NULL DEFAULT 0,
  min_time INTEGER,
  max_time INTEGER,
  last_id INTEGER NOT NULL DEFAULT 0,
  sealed INTEGER NOT NULL DEFAULT 0
);
)sql";

constexpr Migration kMigrations[] = {
    {1, kV1, nullptr},
};

// A partition as the latest version has it. Times are microseconds since 1970 UTC; ids are
// unique across partitions (insertion order); an empty record field is NULL; host_id refers
// to host_{n}, the URL's host (lower-case) kept once per partition, so that a host substring
// search reads the few distinct names rather than every record.
constexpr const char* kPartition = R"sql(
CREATE TABLE host_{n} (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE
);
CREATE TABLE access_{n} (
  id INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  duration_us INTEGER NOT NULL DEFAULT 0,
  request_id TEXT,
  listener TEXT,
  guest INTEGER NOT NULL DEFAULT 0,
  client TEXT,
  "user" TEXT COLLATE NOCASE,
  "groups" TEXT,
  method TEXT,
  url TEXT,
  host_id INTEGER,
  status INTEGER NOT NULL DEFAULT 0,
  bytes_in INTEGER NOT NULL DEFAULT 0,
  bytes_out INTEGER NOT NULL DEFAULT 0,
  upstream TEXT,
  via_parent INTEGER NOT NULL DEFAULT 0,
  content_type TEXT,
  result TEXT,
  reason TEXT,
  decision TEXT,
  rule TEXT,
  category TEXT,
  category_source TEXT,
  reputation TEXT,
  scan TEXT,
  threat TEXT,
  sha256 TEXT,
  file_type TEXT,
  scan_cached INTEGER NOT NULL DEFAULT 0,
  icap_client TEXT,
  icap_mode TEXT,
  icap_status INTEGER NOT NULL DEFAULT 0,
  error TEXT,
  scan_engine TEXT,
  file_name TEXT,
  scanned_size INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX access_{n}_time ON access_{n} (time);
CREATE INDEX access_{n}_threat ON access_{n} (threat, time) WHERE threat IS NOT NULL;
)sql";

// Every index ends with the time (and, implicitly, the id), so that a filtered query reads
// its rows newest first straight from the index. Sparse columns get partial indexes. The
// threat index costs next to nothing (threats are rare): a new partition has it from the
// start, so that the most asked question stays fast on the newest records too.
constexpr Index kIndexes[] = {
    {"client", "CREATE INDEX IF NOT EXISTS access_{n}_client ON access_{n} (client, time)"},
    {"user",
     "CREATE INDEX IF NOT EXISTS access_{n}_user ON access_{n} (\"user\", time) "
     "WHERE \"user\" IS NOT NULL"},
    {"host", "CREATE INDEX IF NOT EXISTS access_{n}_host ON access_{n} (host_id, time)"},
    {"decision", "CREATE INDEX IF NOT EXISTS access_{n}_decision ON access_{n} (decision, time)"},
    {"category",
     "CREATE INDEX IF NOT EXISTS access_{n}_category ON access_{n} (category, time) "
     "WHERE category IS NOT NULL"},
    {"threat",
     "CREATE INDEX IF NOT EXISTS access_{n}_threat ON access_{n} (threat, time) "
     "WHERE threat IS NOT NULL"},
};

std::string rollback_error(sqlite3* db, const std::string& what) {
  std::string err = what + ": " + sqlite3_errmsg(db);
  if (!sqlite3_get_autocommit(db)) sql::exec(db, "ROLLBACK");
  return err;
}

}  // namespace

std::span<const Migration> migrations() {
  return kMigrations;
}
int current_version() {
  return kMigrations[std::size(kMigrations) - 1].version;
}
std::string partition_ddl(std::int64_t n) {
  return expand(kPartition, n);
}
std::span<const Index> indexes() {
  return kIndexes;
}

std::string expand(std::string_view text, std::int64_t n) {
  std::string out;
  std::string num = std::to_string(n);
  for (std::size_t i = 0; i < text.size();) {
    if (text.substr(i, 3) == "{n}") {
      out += num;
      i += 3;
    } else {
      out += text[i++];
    }
  }
  return out;
}

int version_of(sqlite3* db) {
  sql::Stmt st;
  if (st.prepare(db,
                 "SELECT count(*), sum(name = 'schema_migrations') FROM sqlite_schema "
                 "WHERE type = 'table'") != SQLITE_OK ||
      st.step() != SQLITE_ROW)
    return -2;
  if (st.int64(0) == 0) return 0;
  if (st.int64(1) == 0) return -1;
  std::int64_t v = sql::query_int(db, "SELECT max(version) FROM schema_migrations", -2);
  return v < 0 ? -2 : static_cast<int>(v);
}

std::string migrate(sqlite3* db, std::span<const Migration> steps, std::int64_t now_us) {
  int v = version_of(db);
  if (v == -2) return std::string("cannot read the schema: ") + sqlite3_errmsg(db);
  if (v == -1) return "not a Portcullis log store (it has tables but no schema_migrations)";
  int last = steps.empty() ? 0 : steps.back().version;
  if (v > last)
    return "written by a newer Portcullis (schema version " + std::to_string(v) +
           "; this one knows up to " + std::to_string(last) + ")";
  for (const auto& m : steps) {
    if (m.version <= v) continue;
    std::string what = "migration to schema version " + std::to_string(m.version) + " failed";
    if (sql::exec(db, "BEGIN IMMEDIATE") != SQLITE_OK) return rollback_error(db, what);
    if (m.sql && sql::exec(db, m.sql) != SQLITE_OK) return rollback_error(db, what);
    if (m.each_partition) {
      std::vector<std::int64_t> parts;
      {
        sql::Stmt st;
        if (st.prepare(db, "SELECT n FROM partitions ORDER BY n") != SQLITE_OK)
          return rollback_error(db, what);
        while (st.step() == SQLITE_ROW) parts.push_back(st.int64(0));
      }
      for (auto n : parts)
        if (sql::exec(db, expand(m.each_partition, n).c_str()) != SQLITE_OK)
          return rollback_error(db, what);
    }
    sql::Stmt rec;
    if (rec.prepare(db, "INSERT INTO schema_migrations (version, applied_us) VALUES (?1, ?2)") !=
        SQLITE_OK)
      return rollback_error(db, what);
    rec.bind(1, std::int64_t{m.version});
    rec.bind(2, now_us);
    int rc = rec.step();
    rec.reset();
    if (rc != SQLITE_DONE || sql::exec(db, "COMMIT") != SQLITE_OK) return rollback_error(db, what);
  }
  return {};
}

}  // namespace pc::store::schema
