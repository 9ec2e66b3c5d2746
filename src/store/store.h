// The local log store: access records in SQLite (WAL mode), written in batches by one
// control-plane thread, with retention by age and size (docs/log-store.md).
//
// Store is the synchronous writer: one thread calls insert() and maintain(); stats() may be
// called from any thread. Writer (writer.h) wraps it with its own thread and bounded queue.
// Queries use their own read-only connection (query.h), safe while the store writes.
// Never on a worker thread: every call here may wait on the disk.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>

#include "store/sqlite.h"
#include "telemetry/access_log.h"

namespace pc::store {

struct Options {
  std::filesystem::path path;  // the database file; missing folders are created
  // Partitions whose records are all older than this are deleted; 0: no age limit.
  std::chrono::seconds retention{std::chrono::hours(24 * 30)};
  // When the database takes more than this, its oldest partitions are deleted. The file
  // never grows beyond max_bytes * 1.25 + 1 MiB: a batch that would need more is dropped.
  std::uint64_t max_bytes = std::uint64_t{1024} << 20;
  // Records per partition; 0: max_bytes / 16 / 512 (a sixteenth of the limit at ~512 bytes
  // per record), between 1,000 and 250,000.
  std::int64_t partition_records = 0;
};

// What the health endpoint and the metrics report. Counters only grow.
struct Stats {
  std::uint64_t written = 0;  // records committed
  std::uint64_t dropped = 0;  // records lost: store unavailable or full, write errors, queue full
  std::uint64_t errors = 0;   // failed operations (open, insert, retention)
  std::uint64_t deleted = 0;  // records removed by retention
  std::uint64_t queued = 0;   // records waiting to be written (Writer only)
  std::uint64_t size_bytes = 0;  // the database's size as last measured
  bool healthy = false;          // open, and the last write and retention pass succeeded
  std::string last_error;        // the most recent error; empty when none yet
  std::chrono::system_clock::time_point last_error_time{};
};

class Store {
 public:
  // Opens (creates, migrates) the database. Never throws: a failure is reported by stats()
  // (healthy false, last_error), and insert() tries to open it again every 10 seconds.
  explicit Store(Options options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Writes the batch in one transaction into the newest partition (a new one is started
  // when it is full). False when it could not: the whole batch is counted as dropped and the
  // error recorded. Returns at once when the database is unavailable.
  bool insert(std::span<const telemetry::AccessRecord> batch);

  // Housekeeping, a bounded amount of work per call: closes the newest partition once its
  // oldest record is a day old; deletes partitions whose records are all older than the retention
  // and the oldest ones while the database is over its size limit (at most kDropsPerCall); builds
  // one index of a closed partition; once an hour, statistics for the query planner; gives free
  // pages back to the file system when they are more than a quarter of the file. True when there is
  // more to do: call again soon. Call it after every insert and at least every few seconds.
  bool maintain(std::chrono::system_clock::time_point now);
  static constexpr int kDropsPerCall = 4;
  static constexpr auto kPartitionSpan = std::chrono::hours(24);

  Stats stats() const;  // any thread
  const Options& options() const { return opt_; }
  bool is_open() const { return static_cast<bool>(db_); }
  std::int64_t partition_records() const { return partition_records_; }

  // Closes the database (writes the WAL back into it). insert() and maintain() do nothing
  // afterwards. The destructor closes too.
  void close();

 private:
  bool open();
  std::string open_db();  // empty, or why it failed
  std::string start_partition(std::int64_t created_us);
  std::string prepare_active();
  std::string drop_partition(std::int64_t n, std::int64_t rows);
  std::string seal_step(bool& more);
  void failed(const std::string& what, std::uint64_t dropped);
  void succeeded();
  std::int64_t host_id(std::string_view host);
  void set_page_limit();
  void measure();
  std::int64_t page_size() const;

  Options opt_;
  std::int64_t partition_records_;
  sql::Db db_;
  sql::Stmt insert_, host_find_, host_add_, count_;
  struct Active {
    std::int64_t n = 0;  // 0: none yet
    std::int64_t rows = 0;
    std::int64_t min_time = INT64_MAX;  // of its records, microseconds
  } active_;
  std::int64_t last_n_ = 0;   // the highest partition number so far
  std::int64_t next_id_ = 1;  // ids are unique across partitions
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::int64_t, Hash, std::equal_to<>> hosts_;  // host_<active>
  bool closed_ = false;
  bool insert_ok_ = false, maintain_ok_ = false;  // the last insert / maintain succeeded
  std::chrono::steady_clock::time_point next_open_{}, next_log_{};
  std::optional<std::chrono::system_clock::time_point> last_analyze_;

  std::atomic<std::uint64_t> written_{0}, dropped_{0}, errors_{0}, deleted_{0}, size_{0};
  std::atomic<bool> healthy_{false};
  mutable std::mutex err_mu_;
  std::string last_error_;
  std::chrono::system_clock::time_point last_error_time_{};
};

}  // namespace pc::store
