#include "store/store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "base/log.h"
#include "base/strings.h"
#include "store/columns.h"
#include "store/schema.h"

namespace pc::store {
namespace {

constexpr auto kReopenEvery = std::chrono::seconds(10);
constexpr auto kAnalyzeEvery = std::chrono::hours(1);
constexpr std::size_t kHostCacheEntries = 100000;
constexpr std::int64_t kVacuumPagesPerCall = 8192;
constexpr std::uint64_t kMiB = 1 << 20;

// The URL's host, lower-case, without port, user information or IPv6 brackets: of an
// absolute URL ("http://host:port/path") or of a CONNECT target ("host:port"). Empty for an
// origin-form path.
void host_of(std::string_view url, std::string& out) {
  out.clear();
  std::string_view a = url;
  if (auto scheme = a.find("://"); scheme != std::string_view::npos)
    a.remove_prefix(scheme + 3);
  else if (a.starts_with('/'))
    return;
  a = a.substr(0, a.find_first_of("/?#"));
  if (auto at = a.rfind('@'); at != std::string_view::npos) a.remove_prefix(at + 1);
  if (a.starts_with('[')) {
    auto close = a.find(']');
    a = a.substr(1, close == std::string_view::npos ? close : close - 1);
  } else if (auto colon = a.rfind(':'); colon != std::string_view::npos) {
    a = a.substr(0, colon);
  }
  out.reserve(a.size());
  for (char c : a) out += base::ascii_lower(c);
}

std::int64_t derived_partition_records(const Options& o) {
  if (o.partition_records > 0) return o.partition_records;
  return std::clamp<std::int64_t>(static_cast<std::int64_t>(o.max_bytes / 16 / 512), 1000, 250000);
}

std::int64_t micros(std::chrono::system_clock::time_point t) {
  return columns::to_micros(t);
}

}  // namespace

Store::Store(Options options)
    : opt_(std::move(options)), partition_records_(derived_partition_records(opt_)) {
  open();
}

Store::~Store() {
  close();
}

bool Store::open() {
  if (closed_) return false;
  auto now = std::chrono::steady_clock::now();
  if (now < next_open_) return false;
  next_open_ = now + kReopenEvery;
  std::string err = open_db();
  if (!err.empty()) {
    insert_.reset();
    host_find_.reset();
    host_add_.reset();
    count_.reset();
    db_.reset();
    failed("cannot open " + opt_.path.string() + ": " + err, 0);
    return false;
  }
  insert_ok_ = maintain_ok_ = true;
  succeeded();
  log::info("log store: {} open (schema version {})", opt_.path.string(),
            schema::current_version());
  return true;
}

std::string Store::open_db() {
  std::error_code ec;
  if (opt_.path.has_parent_path()) std::filesystem::create_directories(opt_.path.parent_path(), ec);
  // Created here with 0640 (SQLite would use 0644): the records name users and what they
  // visited. SQLite gives its -wal and -shm files the same mode.
  int fd = ::open(opt_.path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return std::strerror(errno);
  ::close(fd);

  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(opt_.path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  sql::Db db(raw);
  if (rc != SQLITE_OK) return db ? db.error() : sqlite3_errstr(rc);
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), 2000);

  int version = schema::version_of(db.get());
  if (version == -2) return db.error();
  // Only possible before the first table exists: lets retention give pages back to the
  // file system without rewriting the whole file.
  if (version == 0 && sql::exec(db.get(), "PRAGMA auto_vacuum = INCREMENTAL") != SQLITE_OK)
    return db.error();
  {
    sql::Stmt wal;
    if (wal.prepare(db.get(), "PRAGMA journal_mode = WAL") != SQLITE_OK || wal.step() != SQLITE_ROW)
      return db.error();
    if (!base::iequals(wal.text(0), "wal"))
      return "cannot switch to WAL mode (journal mode is " + wal.text(0) + ")";
  }
  // synchronous NORMAL: in WAL mode a crash may lose the last transactions, never corrupt
  // the file. Checkpoints every 10,000 pages (~40 MB of WAL) rather than 1,000: fewer
  // fsyncs, and a page written by several transactions is copied into the file once.
  if (sql::exec(db.get(),
                "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -16384; "
                "PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 10000; "
                "PRAGMA journal_size_limit = 67108864") != SQLITE_OK)
    return db.error();
  std::string err =
      schema::migrate(db.get(), schema::migrations(), micros(std::chrono::system_clock::now()));
  if (!err.empty()) return err;

  db_ = std::move(db);
  hosts_.clear();
  active_ = {};
  last_n_ = sql::query_int(db_.get(), "SELECT coalesce(max(n), 0) FROM partitions", -1);
  next_id_ = sql::query_int(db_.get(), "SELECT coalesce(max(last_id), 0) FROM partitions", -1) + 1;
  if (last_n_ < 0 || next_id_ < 1) return db_.error();
  {
    sql::Stmt st;
    if (st.prepare(db_.get(),
                   "SELECT n, rows, coalesce(min_time, ?2) FROM partitions "
                   "WHERE n = ?1 AND sealed = 0") != SQLITE_OK)
      return db_.error();
    st.bind(1, last_n_);
    st.bind(2, INT64_MAX);
    if (st.step() == SQLITE_ROW) active_ = {st.int64(0), st.int64(1), st.int64(2)};
  }
  if (active_.n != 0) {
    err = prepare_active();
    if (!err.empty()) return err;
  }
  set_page_limit();
  measure();
  return {};
}

// The statements that write into the newest partition.
std::string Store::prepare_active() {
  std::string n = std::to_string(active_.n);
  std::string sql = "INSERT INTO access_" + n + " (id, " + std::string(columns::kNames) +
                    ") VALUES (?" + std::to_string(columns::kCount + 1);
  for (int i = 1; i <= columns::kCount; ++i) sql += ",?" + std::to_string(i);
  sql += ")";
  if (insert_.prepare(db_.get(), sql) != SQLITE_OK ||
      host_find_.prepare(db_.get(), "SELECT id FROM host_" + n + " WHERE name = ?1") != SQLITE_OK ||
      host_add_.prepare(db_.get(), "INSERT INTO host_" + n + " (name) VALUES (?1)") != SQLITE_OK ||
      count_.prepare(db_.get(),
                     "UPDATE partitions SET rows = rows + ?1, "
                     "min_time = min(coalesce(min_time, ?2), ?2), "
                     "max_time = max(coalesce(max_time, ?3), ?3), last_id = ?4 WHERE n = ?5") !=
          SQLITE_OK)
    return db_.error();
  hosts_.clear();
  return {};
}

// A new, empty newest partition (the previous one is closed: retention builds its indexes).
std::string Store::start_partition(std::int64_t created_us) {
  std::int64_t n = last_n_ + 1;
  sqlite3* db = db_.get();
  std::string err;
  sql::Stmt add;
  if (sql::exec(db, "BEGIN IMMEDIATE") != SQLITE_OK ||
      sql::exec(db, schema::partition_ddl(n).c_str()) != SQLITE_OK ||
      add.prepare(db, "INSERT INTO partitions (n, created_us) VALUES (?1, ?2)") != SQLITE_OK) {
    err = db_.error();
  } else {
    add.bind(1, n);
    add.bind(2, created_us);
    if (add.step() != SQLITE_DONE || sql::exec(db, "COMMIT") != SQLITE_OK) err = db_.error();
  }
  add.reset();
  if (!err.empty()) {
    if (!sqlite3_get_autocommit(db)) sql::exec(db, "ROLLBACK");
    return "starting partition " + std::to_string(n) + ": " + err;
  }
  last_n_ = n;
  active_ = {n, 0, INT64_MAX};
  err = prepare_active();
  if (!err.empty()) active_ = {};
  return err;
}

void Store::close() {
  closed_ = true;
  insert_.reset();
  host_find_.reset();
  host_add_.reset();
  count_.reset();
  db_.reset();
  healthy_ = false;
}

void Store::failed(const std::string& what, std::uint64_t dropped) {
  dropped_.fetch_add(dropped, std::memory_order_relaxed);
  errors_.fetch_add(1, std::memory_order_relaxed);
  bool was_healthy = healthy_.exchange(false);
  {
    std::lock_guard lk(err_mu_);
    last_error_ = what;
    last_error_time_ = std::chrono::system_clock::now();
  }
  // One line when the trouble starts, then at most one a minute while it lasts.
  auto now = std::chrono::steady_clock::now();
  if (was_healthy || now >= next_log_) {
    next_log_ = now + std::chrono::minutes(1);
    log::warn("log store: {} (records dropped so far: {})", what, dropped_.load());
  }
}

void Store::succeeded() {
  bool healthy = db_ && insert_ok_ && maintain_ok_;
  if (healthy && !healthy_.exchange(true) && errors_.load() > 0)
    log::info("log store: {} writable again", opt_.path.string());
}

Stats Store::stats() const {
  Stats s;
  s.written = written_.load();
  s.dropped = dropped_.load();
  s.errors = errors_.load();
  s.deleted = deleted_.load();
  s.size_bytes = size_.load();
  s.healthy = healthy_.load();
  std::lock_guard lk(err_mu_);
  s.last_error = last_error_;
  s.last_error_time = last_error_time_;
  return s;
}

std::int64_t Store::host_id(std::string_view host) {
  if (host.empty()) return 0;
  if (auto it = hosts_.find(host); it != hosts_.end()) return it->second;
  std::int64_t id = -1;
  host_find_.bind(1, host);
  int rc = host_find_.step();
  if (rc == SQLITE_ROW) id = host_find_.int64(0);
  host_find_.rearm();
  if (rc == SQLITE_DONE) {
    host_add_.bind(1, host);
    if (host_add_.step() == SQLITE_DONE) id = sqlite3_last_insert_rowid(db_.get());
    host_add_.rearm();
  }
  if (id > 0) {
    if (hosts_.size() >= kHostCacheEntries) hosts_.clear();
    hosts_.emplace(host, id);
  }
  return id;
}

bool Store::insert(std::span<const telemetry::AccessRecord> batch) {
  if (batch.empty()) return true;
  if (!db_ && !open()) {
    dropped_.fetch_add(batch.size(), std::memory_order_relaxed);
    return false;
  }
  sqlite3* db = db_.get();
  std::string err;
  std::int64_t lo = INT64_MAX, hi = INT64_MIN;  // the batch's times
  if (active_.n == 0 || active_.rows >= partition_records_)
    err = start_partition(micros(std::chrono::system_clock::now()));
  if (err.empty() && sql::exec(db, "BEGIN IMMEDIATE") != SQLITE_OK) err = db_.error();
  if (err.empty()) {
    std::string host;
    std::int64_t id = next_id_;
    for (const auto& r : batch) {
      host_of(r.url, host);
      std::int64_t hid = host_id(host);
      if (hid < 0) {
        err = db_.error();
        break;
      }
      std::int64_t t = micros(r.time);
      lo = std::min(lo, t);
      hi = std::max(hi, t);
      columns::bind(insert_, r, hid);
      insert_.bind(columns::kCount + 1, id++);
      int rc = insert_.step();
      insert_.rearm();
      if (rc != SQLITE_DONE) {
        err = db_.error();
        break;
      }
    }
    if (err.empty()) {
      count_.bind(1, static_cast<std::int64_t>(batch.size()));
      count_.bind(2, lo);
      count_.bind(3, hi);
      count_.bind(4, id - 1);
      count_.bind(5, active_.n);
      int rc = count_.step();
      count_.rearm();
      if (rc != SQLITE_DONE || sql::exec(db, "COMMIT") != SQLITE_OK) err = db_.error();
    }
  }
  if (!err.empty()) {
    if (!sqlite3_get_autocommit(db)) sql::exec(db, "ROLLBACK");
    hosts_.clear();  // ids added in the rolled-back transaction are gone
    insert_ok_ = false;
    failed("cannot write " + std::to_string(batch.size()) + " records to " + opt_.path.string() +
               ": " + err,
           batch.size());
    return false;
  }
  next_id_ += static_cast<std::int64_t>(batch.size());
  active_.rows += static_cast<std::int64_t>(batch.size());
  active_.min_time = std::min(active_.min_time, lo);
  written_.fetch_add(batch.size(), std::memory_order_relaxed);
  measure();
  insert_ok_ = true;
  succeeded();
  return true;
}

std::int64_t Store::page_size() const {
  return sql::query_int(db_.get(), "PRAGMA page_size", 4096);
}

void Store::set_page_limit() {
  std::uint64_t hard = opt_.max_bytes + opt_.max_bytes / 4 + kMiB;
  auto pages = static_cast<std::int64_t>(hard / static_cast<std::uint64_t>(page_size()));
  sql::query_int(db_.get(), "PRAGMA max_page_count = " + std::to_string(pages));
}

void Store::measure() {
  std::int64_t pages = sql::query_int(db_.get(), "PRAGMA page_count", 0);
  size_.store(static_cast<std::uint64_t>(std::max<std::int64_t>(0, pages) * page_size()));
}

std::string Store::drop_partition(std::int64_t n, std::int64_t rows) {
  sqlite3* db = db_.get();
  std::string num = std::to_string(n);
  std::string sql = "BEGIN IMMEDIATE; DROP TABLE access_" + num + "; DROP TABLE host_" + num +
                    "; DELETE FROM partitions WHERE n = " + num + "; COMMIT";
  if (sql::exec(db, sql.c_str()) != SQLITE_OK) {
    std::string err = "deleting partition " + num + ": " + db_.error();
    if (!sqlite3_get_autocommit(db)) sql::exec(db, "ROLLBACK");
    return err;
  }
  deleted_.fetch_add(static_cast<std::uint64_t>(rows), std::memory_order_relaxed);
  return {};
}

// Builds one missing index of the oldest closed partition that lacks some; marks it sealed
// when it has them all.
std::string Store::seal_step(bool& more) {
  sqlite3* db = db_.get();
  std::int64_t n = 0;
  {
    sql::Stmt st;
    if (st.prepare(db,
                   "SELECT n FROM partitions WHERE sealed = 0 AND n <> ?1 ORDER BY n LIMIT 2") !=
        SQLITE_OK)
      return "finding partitions to index: " + db_.error();
    st.bind(1, active_.n);
    if (st.step() != SQLITE_ROW) return {};
    n = st.int64(0);
    more = more || st.step() == SQLITE_ROW;
  }
  for (const auto& ix : schema::indexes()) {
    std::string name = "access_" + std::to_string(n) + "_" + ix.name;
    sql::Stmt exists;
    if (exists.prepare(db, "SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = ?1") !=
        SQLITE_OK)
      return "indexing partition " + std::to_string(n) + ": " + db_.error();
    exists.bind(1, name);
    if (exists.step() == SQLITE_ROW) continue;
    exists.reset();
    if (sql::exec(db, schema::expand(ix.ddl, n).c_str()) != SQLITE_OK)
      return "indexing partition " + std::to_string(n) + ": " + db_.error();
    more = true;  // the next index, or the mark, on the next call
    return {};
  }
  if (sql::exec(db, ("UPDATE partitions SET sealed = 1 WHERE n = " + std::to_string(n)).c_str()) !=
      SQLITE_OK)
    return "indexing partition " + std::to_string(n) + ": " + db_.error();
  return {};
}

bool Store::maintain(std::chrono::system_clock::time_point now) {
  if (!db_) {
    open();
    return false;
  }
  sqlite3* db = db_.get();
  std::string err;
  bool more = false;
  const std::int64_t now_us = micros(now);

  // The newest partition is closed once its oldest record is a day old, so that age
  // retention can drop it in time.
  if (active_.n != 0 && active_.rows > 0 &&
      active_.min_time <=
          now_us - std::chrono::duration_cast<std::chrono::microseconds>(kPartitionSpan).count())
    err = start_partition(now_us);

  // Partitions whose records are all older than the retention (and closed empty ones), then
  // the oldest while the database is over its size limit. The newest partition is closed
  // first when it is the only one left over the limit.
  struct Part {
    std::int64_t n, rows, max_time;
  };
  std::vector<Part> parts;
  if (err.empty()) {
    sql::Stmt st;
    if (st.prepare(db, "SELECT n, rows, coalesce(max_time, 0) FROM partitions ORDER BY n") !=
        SQLITE_OK) {
      err = "reading partitions: " + db_.error();
    } else {
      while (st.step() == SQLITE_ROW) parts.push_back({st.int64(0), st.int64(1), st.int64(2)});
    }
  }
  const auto ps = static_cast<std::uint64_t>(page_size());
  auto used = [&] {
    std::int64_t pages = sql::query_int(db, "PRAGMA page_count", 0);
    std::int64_t free = sql::query_int(db, "PRAGMA freelist_count", 0);
    return static_cast<std::uint64_t>(std::max<std::int64_t>(0, pages - free)) * ps;
  };
  int drops = 0;
  std::size_t next = 0;  // parts[next] is the oldest not yet dropped
  if (err.empty() && opt_.retention.count() > 0) {
    const std::int64_t cutoff = micros(now - opt_.retention);
    while (next < parts.size() && parts[next].n != active_.n &&
           (parts[next].rows == 0 || parts[next].max_time < cutoff)) {
      if (drops == kDropsPerCall) {
        more = true;
        break;
      }
      err = drop_partition(parts[next].n, parts[next].rows);
      if (!err.empty()) break;
      ++drops;
      ++next;
    }
  }
  while (err.empty() && used() > opt_.max_bytes) {
    if (drops == kDropsPerCall) {
      more = true;
      break;
    }
    if (next < parts.size() && parts[next].n != active_.n) {
      err = drop_partition(parts[next].n, parts[next].rows);
      ++drops;
      ++next;
    } else if (active_.n != 0 && active_.rows > 0) {
      err = start_partition(now_us);  // closes it: dropped on the next pass
      parts.push_back({last_n_, 0, 0});
    } else {
      break;
    }
  }

  // The indexes of closed partitions.
  if (err.empty()) err = seal_step(more);

  // Statistics for the query planner (how selective each index is: threats are rare, "allow"
  // is not), sampled from at most 1000 rows per index so that it stays cheap.
  if (err.empty() && (!last_analyze_ || now - *last_analyze_ >= kAnalyzeEvery)) {
    if (sql::exec(db, "PRAGMA analysis_limit = 1000; ANALYZE") != SQLITE_OK)
      err = "updating the query statistics: " + db_.error();
    else
      last_analyze_ = now;
  }

  // Free pages beyond a quarter of the file (and 1 MiB) go back to the file system; fewer are
  // kept for the records to come. The checkpoint copies the shrunk database into its file.
  if (err.empty()) {
    std::int64_t pages = sql::query_int(db, "PRAGMA page_count", 0);
    std::int64_t free = sql::query_int(db, "PRAGMA freelist_count", 0);
    auto free_bytes = static_cast<std::uint64_t>(free) * ps;
    if (free_bytes > std::max<std::uint64_t>(static_cast<std::uint64_t>(pages) * ps / 4, kMiB)) {
      std::int64_t n = std::min(free, kVacuumPagesPerCall);
      if (sql::exec(db, ("PRAGMA incremental_vacuum(" + std::to_string(n) + ")").c_str()) !=
          SQLITE_OK) {
        err = "giving free pages back: " + db_.error();
      } else {
        sql::exec(db, "PRAGMA wal_checkpoint(PASSIVE)");
        set_page_limit();
        more = more || free > n;
      }
    }
  }
  measure();

  if (!err.empty()) {
    if (!sqlite3_get_autocommit(db)) sql::exec(db, "ROLLBACK");
    maintain_ok_ = false;
    failed(err, 0);
    return false;
  }
  maintain_ok_ = true;
  succeeded();
  return more;
}

}  // namespace pc::store
