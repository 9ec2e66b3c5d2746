// store: writing, retention, migrations and failures of the log store.
#include "store/store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <vector>

#include "store/query.h"
#include "store/schema.h"
#include "store_testing.h"

namespace pc::store {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::kBase;
using testing::record;
using testing::sql_exec;
using testing::sql_int;
using testing::TempDir;

Options options(const fs::path& path) {
  Options o;
  o.path = path;
  o.retention = 0s;
  return o;
}

std::vector<Row> all_rows(const fs::path& path) {
  Reader reader;
  std::string error;
  EXPECT_TRUE(reader.open(path, error)) << error;
  std::vector<Row> rows;
  Filter f;
  f.limit = kMaxLimit;
  for (int pages = 0; pages < 100; ++pages) {
    Page page;
    EXPECT_TRUE(reader.query(f, page, error)) << error;
    for (auto& r : page.rows) rows.push_back(std::move(r));
    if (page.next_page_token.empty()) break;
    f.page_token = page.next_page_token;
  }
  return rows;
}

TEST(Store, CreatesAWalDatabaseReadableByOthersOnlyThroughItsGroup) {
  TempDir dir;
  auto path = dir.path / "sub" / "logs.db";
  Store store(options(path));
  ASSERT_TRUE(store.is_open()) << store.stats().last_error;
  auto s = store.stats();
  EXPECT_TRUE(s.healthy);
  EXPECT_EQ(s.written, 0u);
  EXPECT_TRUE(s.last_error.empty());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  EXPECT_EQ(sql_int(path, "SELECT max(version) FROM schema_migrations"), schema::current_version());
  EXPECT_EQ(sql_int(path, "PRAGMA auto_vacuum"), 2);  // incremental
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &h), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &q, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(q, 0)), "wal");
  sqlite3_finalize(q);
  sqlite3_close(h);
}

TEST(Store, InsertKeepsEveryField) {
  TempDir dir;
  auto path = dir.path / "logs.db";
  telemetry::AccessRecord r;
  r.time = kBase + 123456us;
  r.duration = 98765us;
  r.request_id = "0f3a-17";
  r.listener = "guest";
  r.guest = true;
  r.client = "2001:db8::7";
  r.user = "Alice \"A\", Admin";
  r.groups = "staff,admins";
  r.method = "POST";
  r.url = "http://WWW.Example.COM:8080/up?x=1&y=\xe2\x9c\x93";
  r.status = 403;
  r.bytes_in = std::uint64_t{1} << 40;
  r.bytes_out = 5;
  r.upstream = "[2001:db8::1]:3128";
  r.via_parent = true;
  r.content_type = "application/octet-stream";
  r.result = telemetry::Result::denied;
  r.reason = "blocked by rule\nwith a newline";
  r.decision = "block";
  r.rule = "No uploads";
  r.category = "filehosting";
  r.category_source = "ut1 2026-02-01";
  r.reputation = "suspicious";
  r.scan = "infected";
  r.threat = "Eicar-Test-Signature";
  r.sha256 = std::string(64, 'a');
  r.file_type = "exe";
  r.scan_cached = true;
  r.icap_client = "10.1.1.1";
  r.icap_mode = "reqmod";
  r.icap_status = 200;
  r.error = "upstream reset";
  r.scan_engine = "ClamAV 1.4.6/27000";
  r.file_name = "eicar.com";
  r.scanned_size = 68;
  {
    Store store(options(path));
    ASSERT_TRUE(store.insert({&r, 1}));
    EXPECT_EQ(store.stats().written, 1u);
  }
  auto rows = all_rows(path);
  ASSERT_EQ(rows.size(), 1u);
  const auto& g = rows[0].record;
  EXPECT_EQ(rows[0].id, 1);
  EXPECT_EQ(rows[0].host, "www.example.com");
  EXPECT_EQ(g.time, r.time);
  EXPECT_EQ(g.duration, r.duration);
  EXPECT_EQ(g.guest, r.guest);
  EXPECT_EQ(g.via_parent, r.via_parent);
  EXPECT_EQ(g.scan_cached, r.scan_cached);
  EXPECT_EQ(g.result, r.result);
  EXPECT_EQ(g.bytes_in, r.bytes_in);
  EXPECT_EQ(g.icap_status, r.icap_status);
  EXPECT_EQ(g.scanned_size, r.scanned_size);
  EXPECT_EQ(g.scan_engine, r.scan_engine);
  // format_json covers the remaining fields.
  EXPECT_EQ(telemetry::format_json(g), telemetry::format_json(r));
  EXPECT_EQ(g.user, r.user);
  EXPECT_EQ(g.upstream, r.upstream);
}

TEST(Store, EmptyFieldsAreStoredAsNull) {
  TempDir dir;
  auto path = dir.path / "logs.db";
  {
    Store store(options(path));
    auto r = record(kBase);
    r.url = "/origin-form";  // no host
    ASSERT_TRUE(store.insert({&r, 1}));
  }
  EXPECT_EQ(sql_int(path,
                    "SELECT count(*) FROM access_1 WHERE \"user\" IS NULL AND threat IS NULL "
                    "AND host_id IS NULL"),
            1);
  auto rows = all_rows(path);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].host, "");
  EXPECT_EQ(rows[0].record.user, "");
}

TEST(Store, HostsAreKeptOnceAndConnectTargetsHaveTheirHost) {
  TempDir dir;
  auto path = dir.path / "logs.db";
  {
    Store store(options(path));
    std::vector<telemetry::AccessRecord> batch;
    for (int i = 0; i < 10; ++i) batch.push_back(record(kBase + std::chrono::seconds(i)));
    auto c = record(kBase + 20s, "Secure.Example:443");
    c.method = "CONNECT";
    batch.push_back(c);
    batch.push_back(record(kBase + 30s, "http://u:p@[2001:DB8::1]:8080/x?y=http://z/"));
    batch.push_back(record(kBase + 40s, "*"));
    ASSERT_TRUE(store.insert(batch));
    ASSERT_TRUE(store.insert(batch));  // the cache and the table agree across batches
  }
  EXPECT_EQ(sql_int(path, "SELECT count(*) FROM host_1"), 4);
  auto rows = all_rows(path);
  ASSERT_EQ(rows.size(), 26u);
  EXPECT_EQ(rows[0].host, "*");
  EXPECT_EQ(rows[2].host, "2001:db8::1");
  EXPECT_EQ(rows[4].host, "secure.example");
  EXPECT_EQ(rows[6].host, "www.example.com");
}

TEST(Store, AFullDatabaseDropsTheWholeBatchCountsItAndRecovers) {
  TempDir dir;
  auto path = dir.path / "logs.db";
  auto o = options(path);
  o.max_bytes = 1 << 20;  // hard limit: 2.25 MiB
  Store store(o);
  ASSERT_TRUE(store.is_open());
  std::vector<telemetry::AccessRecord> big;
  for (int i = 0; i < 20000; ++i)
    big.push_back(record(kBase + std::chrono::seconds(i),
                         "http://h" + std::to_string(i) + ".example/" + std::string(200, 'p')));
  EXPECT_FALSE(store.insert(big));
  auto s = store.stats();
  EXPECT_EQ(s.dropped, 20000u);
  EXPECT_EQ(s.written, 0u);
  EXPECT_EQ(s.errors, 1u);
  EXPECT_FALSE(s.healthy);
  EXPECT_NE(s.last_error.find("full"), std::string::npos) << s.last_error;
  EXPECT_NE(s.last_error.find("20000 records"), std::string::npos) << s.last_error;
  EXPECT_LE(s.size_bytes, (std::uint64_t{9} << 18) + 4096);
  EXPECT_TRUE(all_rows(path).empty());  // the failed transaction left nothing
  EXPECT_EQ(sql_int(path, "SELECT count(*) FROM host_1"), 0);
  EXPECT_EQ(sql_int(path, "SELECT rows FROM partitions WHERE n = 1"), 0);

  std::vector<telemetry::AccessRecord> small(big.begin(), big.begin() + 10);
  EXPECT_TRUE(store.insert(small));
  s = store.stats();
  EXPECT_TRUE(s.healthy);
  EXPECT_EQ(s.written, 10u);
  EXPECT_EQ(s.dropped, 20000u);
  EXPECT_FALSE(s.last_error.empty());  // kept for the health endpoint
  EXPECT_EQ(all_rows(path).size(), 10u);
}

TEST(Store, AnUnavailableLocationDropsAndCountsWithoutBlocking) {
  TempDir dir;
  std::ofstream(dir.path / "file") << "x";
  Store store(options(dir.path / "file" / "logs.db"));  // a folder that is a file
  EXPECT_FALSE(store.is_open());
  auto s = store.stats();
  EXPECT_FALSE(s.healthy);
  EXPECT_EQ(s.errors, 1u);
  EXPECT_NE(s.last_error.find("cannot open"), std::string::npos) << s.last_error;
  EXPECT_NE(s.last_error.find("file/logs.db"), std::string::npos) << s.last_error;
  std::vector<telemetry::AccessRecord> batch(3, record(kBase));
  EXPECT_FALSE(store.insert(batch));  // the next attempt to open is 10 s away: no wait
  EXPECT_FALSE(store.maintain(kBase));
  s = store.stats();
  EXPECT_EQ(s.dropped, 3u);
  EXPECT_EQ(s.errors, 1u);
}

TEST(Store, ARefusedDatabaseIsReportedAndNotTouched) {
  TempDir dir;
  auto other = dir.path / "other.db";
  ASSERT_TRUE(sql_exec(other, "CREATE TABLE t (a); INSERT INTO t VALUES (1)"));
  {
    Store store(options(other));
    EXPECT_FALSE(store.is_open());
    EXPECT_NE(store.stats().last_error.find("not a Portcullis log store"), std::string::npos)
        << store.stats().last_error;
  }
  EXPECT_EQ(sql_int(other, "SELECT count(*) FROM t"), 1);

  auto garbage = dir.path / "garbage.db";
  std::ofstream(garbage) << std::string(8192, 'g');
  Store g(options(garbage));
  EXPECT_FALSE(g.is_open());
  EXPECT_NE(g.stats().last_error.find("not a database"), std::string::npos) << g.stats().last_error;
}

TEST(Store, ANewerSchemaIsRefused) {
  TempDir dir;
  auto path = dir.path / "logs.db";
  { Store store(options(path)); }
  ASSERT_TRUE(sql_exec(path, "INSERT INTO schema_migrations VALUES (999, 0)"));
  Store store(options(path));
  EXPECT_FALSE(store.is_open());
  EXPECT_NE(store.stats().last_error.find("newer"), std::string::npos) << store.stats().last_error;
  Reader reader;
  std::string error;
  EXPECT_FALSE(reader.open(path, error));
  EXPECT_NE(error.find("newer"), std::string::npos) << error;
}

// --- migrations ---

struct MemDb {
  sqlite3* db = nullptr;
  MemDb() { sqlite3_open(":memory:", &db); }
  ~MemDb() { sqlite3_close(db); }
  long long one(const char* sql) const {
    sqlite3_stmt* st = nullptr;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
  }
};

const schema::Migration kSteps[] = {
    {1,
     "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_us INTEGER);"
     "CREATE TABLE partitions (n INTEGER PRIMARY KEY)",
     nullptr},
    {2, "CREATE TABLE extra (x)", "ALTER TABLE t_{n} ADD COLUMN b INTEGER NOT NULL DEFAULT 7"},
};

TEST(Migration, StepsRunOnceInOrderOnEveryPartitionAndKeepTheRows) {
  MemDb m;
  EXPECT_EQ(schema::version_of(m.db), 0);
  ASSERT_EQ(schema::migrate(m.db, std::span(kSteps).first(1), 111), "");
  EXPECT_EQ(schema::version_of(m.db), 1);
  ASSERT_EQ(sqlite3_exec(m.db,
                         "INSERT INTO partitions VALUES (1), (3); CREATE TABLE t_1 (a TEXT);"
                         "CREATE TABLE t_3 (a TEXT); INSERT INTO t_3 (a) VALUES ('old')",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  ASSERT_EQ(schema::migrate(m.db, kSteps, 222), "");
  EXPECT_EQ(schema::version_of(m.db), 2);
  EXPECT_EQ(m.one("SELECT b FROM t_3 WHERE a = 'old'"), 7);
  EXPECT_EQ(m.one("SELECT count(*) FROM pragma_table_info('t_1') WHERE name = 'b'"), 1);
  EXPECT_EQ(m.one("SELECT count(*) FROM extra"), 0);
  EXPECT_EQ(m.one("SELECT applied_us FROM schema_migrations WHERE version = 1"), 111);
  EXPECT_EQ(m.one("SELECT applied_us FROM schema_migrations WHERE version = 2"), 222);
  ASSERT_EQ(schema::migrate(m.db, kSteps, 333), "");  // nothing left to do
  EXPECT_EQ(m.one("SELECT count(*) FROM schema_migrations"), 2);
}

TEST(Migration, AFailedStepIsRolledBackEntirely) {
  MemDb m;
  ASSERT_EQ(schema::migrate(m.db, std::span(kSteps).first(1), 1), "");
  ASSERT_EQ(sqlite3_exec(m.db, "INSERT INTO partitions VALUES (1), (2); CREATE TABLE t_1 (a)",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  // t_2 is missing: the step fails on the second partition, after changing the first.
  auto err = schema::migrate(m.db, kSteps, 2);
  EXPECT_NE(err.find("migration to schema version 2 failed"), std::string::npos) << err;
  EXPECT_NE(err.find("t_2"), std::string::npos) << err;
  EXPECT_EQ(schema::version_of(m.db), 1);
  EXPECT_EQ(m.one("SELECT count(*) FROM pragma_table_info('t_1') WHERE name = 'b'"), 0);
  EXPECT_EQ(m.one("SELECT count(*) FROM sqlite_schema WHERE name = 'extra'"), 0);
}

TEST(Migration, NewerAndForeignDatabasesAreRefused) {
  MemDb m;
  ASSERT_EQ(schema::migrate(m.db, std::span(kSteps).first(1), 1), "");
  ASSERT_EQ(
      sqlite3_exec(m.db, "INSERT INTO schema_migrations VALUES (2, 0)", nullptr, nullptr, nullptr),
      SQLITE_OK);
  auto err = schema::migrate(m.db, std::span(kSteps).first(1), 2);
  EXPECT_NE(err.find("newer"), std::string::npos) << err;
  MemDb other;
  sqlite3_exec(other.db, "CREATE TABLE x (y)", nullptr, nullptr, nullptr);
  EXPECT_EQ(schema::version_of(other.db), -1);
  EXPECT_NE(schema::migrate(other.db, kSteps, 1).find("not a Portcullis log store"),
            std::string::npos);
}

// Every older version of the real schema is brought forward by opening the store, and the
// records it held stay readable. Version 0 is a new, empty file. (Each later version adds
// here a database as that version wrote it, with a record.)
TEST(Migration, TheStoreUpgradesEveryOlderVersionOfItsSchema) {
  auto steps = schema::migrations();
  for (std::size_t v = 0; v < steps.size(); ++v) {
    SCOPED_TRACE("from version " + std::to_string(v));
    TempDir dir;
    auto path = dir.path / "logs.db";
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &h), SQLITE_OK);
    ASSERT_EQ(schema::migrate(h, steps.first(v), 1), "");
    sqlite3_close(h);
    {
      Store store(options(path));
      ASSERT_TRUE(store.is_open()) << store.stats().last_error;
      auto r = record(kBase);
      ASSERT_TRUE(store.insert({&r, 1}));
    }
    EXPECT_EQ(sql_int(path, "SELECT max(version) FROM schema_migrations"),
              schema::current_version());
    EXPECT_EQ(all_rows(path).size(), 1u);
  }
}

// --- partitions and retention ---

// Calls maintain() until it has nothing left to do (closed partitions indexed...).
void settle(Store& store, std::chrono::system_clock::time_point now) {
  for (int i = 0; i < 100 && store.maintain(now); ++i) {
  }
}

Options small_partitions(const fs::path& path, std::int64_t records) {
  auto o = options(path);
  o.partition_records = records;
  return o;
}

TEST(Partitions, ANewOneStartsWhenTheNewestIsFullAndClosedOnesGetTheirIndexes) {
  TempDir dir;
  auto path = dir.path / "logs.db";
  Store store(small_partitions(path, 3));
  for (int b = 0; b < 3; ++b) {
    std::vector<telemetry::AccessRecord> batch;
    for (int i = 0; i < 3; ++i) batch.push_back(record(kBase + std::chrono::seconds(b * 3 + i)));
    ASSERT_TRUE(store.insert(batch));
  }
  EXPECT_EQ(sql_int(path, "SELECT count(*) FROM partitions"), 3);
  EXPECT_EQ(sql_int(path, "SELECT sum(rows) FROM partitions"), 9);
  EXPECT_EQ(sql_int(path, "SELECT last_id FROM partitions WHERE n = 3"), 9);
  // The newest has its time and threat indexes only; the closed ones get the others, one
  // per call.
  auto indexes = [&](int n) {
    std::string q =
        "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = "
        "'access_" +
        std::to_string(n) + "' AND name LIKE 'access_%'";
    return sql_int(path, q.c_str());
  };
  EXPECT_EQ(indexes(1), 2);  // time and threat
  int calls = 0;
  while (store.maintain(kBase) && ++calls < 50) {
  }
  EXPECT_EQ(calls, 2 * 6 - 1);  // 5 indexes and the mark, for two partitions
  EXPECT_EQ(indexes(1), 1 + static_cast<long long>(schema::indexes().size()));
  EXPECT_EQ(indexes(2), 1 + static_cast<long long>(schema::indexes().size()));
  EXPECT_EQ(indexes(3), 2);
  EXPECT_EQ(sql_int(path, "SELECT sealed FROM partitions WHERE n = 3"), 0);
  EXPECT_EQ(sql_int(path, "SELECT sum(sealed) FROM partitions"), 2);
  // Reopened: the newest takes records again, and ids go on.
  store.close();
  Store again(small_partitions(path, 3));
  auto r = record(kBase + 100s);
  ASSERT_TRUE(again.insert({&r, 1}));
  EXPECT_EQ(sql_int(path, "SELECT count(*) FROM partitions"), 4);  // 3 was full
  auto rows = all_rows(path);
  ASSERT_EQ(rows.size(), 10u);
  EXPECT_EQ(rows[0].id, 10);
}

TEST(Partitions, TheNewestIsClosedOnceItsOldestRecordIsADayOld) {
  TempDir dir;
  auto path = dir.path / "logs.db";
  Store store(options(path));
  auto r = record(kBase);
  ASSERT_TRUE(store.insert({&r, 1}));
  store.maintain(kBase + 23h);
  EXPECT_EQ(sql_int(path, "SELECT count(*) FROM partitions"), 1);
  store.maintain(kBase + 24h);
  EXPECT_EQ(sql_int(path, "SELECT count(*) FROM partitions"), 2);
  ASSERT_TRUE(store.insert({&r, 1}));
  EXPECT_EQ(sql_int(path, "SELECT rows FROM partitions WHERE n = 2"), 1);
}

TEST(Retention, ByAgeDropsPartitionsWhoseRecordsAreAllOld) {
  TempDir dir;
  auto path = dir.path / "logs.db";
  auto o = small_partitions(path, 2);
  o.retention = 24h;
  auto now = kBase + 10 * 24h;
  Store store(o);
  std::vector<std::vector<telemetry::AccessRecord>> batches{
      {record(now - 72h, "http://three.example/"), record(now - 71h)},
      {record(now - 26h, "http://two.example/"), record(now - 25h)},
      {record(now - 25h, "http://one.example/"), record(now - 23h)},  // straddles the limit
      {record(now)}};
  for (auto& b : batches) ASSERT_TRUE(store.insert(b));
  settle(store, now);
  auto s = store.stats();
  EXPECT_EQ(s.deleted, 4u);
  EXPECT_TRUE(s.healthy);
  auto rows = all_rows(path);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2].record.time, now - 25h);
  EXPECT_EQ(rows[2].host, "one.example");
  EXPECT_EQ(sql_int(path,
                    "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'host\\_%' "
                    "ESCAPE '\\'"),
            2);
  // An hour later the third partition goes; the newest stays while it is the newest.
  settle(store, now + 2h);
  EXPECT_EQ(store.stats().deleted, 6u);
  settle(store, now + 23h);
  EXPECT_EQ(all_rows(path).size(), 1u);
  // A day later it is closed, then dropped; the records to come go to a new one.
  settle(store, now + 25h);
  EXPECT_EQ(store.stats().deleted, 7u);
  EXPECT_TRUE(all_rows(path).empty());
  auto fresh = record(now + 25h);
  ASSERT_TRUE(store.insert({&fresh, 1}));
  EXPECT_EQ(all_rows(path).size(), 1u);
}

TEST(Retention, ByAgeDoesABoundedAmountOfWorkPerCall) {
  TempDir dir;
  auto path = dir.path / "logs.db";
  auto o = small_partitions(path, 1);
  o.retention = 1h;
  Store store(o);
  for (int i = 0; i < Store::kDropsPerCall + 2; ++i) {
    auto r = record(kBase + std::chrono::seconds(i));
    ASSERT_TRUE(store.insert({&r, 1}));
  }
  auto fresh = record(kBase + 48h);
  ASSERT_TRUE(store.insert({&fresh, 1}));
  EXPECT_TRUE(store.maintain(kBase + 48h));  // more to do
  EXPECT_EQ(store.stats().deleted, static_cast<std::uint64_t>(Store::kDropsPerCall));
  EXPECT_FALSE(store.maintain(kBase + 48h));
  EXPECT_EQ(store.stats().deleted, static_cast<std::uint64_t>(Store::kDropsPerCall + 2));
  EXPECT_EQ(all_rows(path).size(), 1u);
}

TEST(Retention, BySizeKeepsTheNewestAndTheFileBounded) {
  TempDir dir;
  auto path = dir.path / "logs.db";
  auto o = options(path);
  o.max_bytes = 4 << 20;
  const std::uint64_t hard = o.max_bytes + o.max_bytes / 4 + (1 << 20);
  int n = 0;
  {
    Store store(o);
    EXPECT_EQ(store.partition_records(), 1000);
    // ~30 MB of records, written the way the Writer does: a batch, then maintain().
    for (int b = 0; b < 60; ++b) {
      std::vector<telemetry::AccessRecord> batch;
      for (int i = 0; i < 1000; ++i, ++n)
        batch.push_back(record(kBase + std::chrono::seconds(n),
                               "http://h" + std::to_string(n % 500) + ".example/" +
                                   std::string(300, 'x') + std::to_string(n)));
      ASSERT_TRUE(store.insert(batch)) << store.stats().last_error;
      for (int k = 0; k < 20 && store.maintain(kBase); ++k) {
      }
      ASSERT_LE(store.stats().size_bytes, hard);
    }
    auto s = store.stats();
    EXPECT_EQ(s.dropped, 0u);
    EXPECT_EQ(s.written, 60000u);
    EXPECT_GT(s.deleted, 40000u);
    EXPECT_TRUE(s.healthy);
  }
  EXPECT_LE(fs::file_size(path), hard);
  auto rows = all_rows(path);
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows.front().record.time, kBase + std::chrono::seconds(n - 1));  // the newest kept
  for (std::size_t i = 0; i < rows.size(); ++i)  // and everything since the oldest kept
    ASSERT_EQ(rows[i].id, static_cast<std::int64_t>(n - i));

  // A lower limit: the oldest partitions go and the file shrinks.
  auto before = fs::file_size(path);
  o.max_bytes = 1 << 20;
  {
    Store store(o);
    int calls = 0;
    while (store.maintain(kBase) && ++calls < 100) {
    }
    EXPECT_LT(calls, 100);
    EXPECT_LE(store.stats().size_bytes, std::uint64_t{3} << 19);
  }
  EXPECT_LT(fs::file_size(path), before / 2);
  EXPECT_LE(fs::file_size(path), std::uint64_t{3} << 19);
  EXPECT_FALSE(fs::exists(path.string() + "-wal"));
  EXPECT_EQ(all_rows(path).front().record.time, kBase + std::chrono::seconds(n - 1));
}

}  // namespace
}  // namespace pc::store
