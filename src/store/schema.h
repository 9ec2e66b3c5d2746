// The log store's schema and its forward migrations (docs/log-store.md).
//
// Records live in partitions: table access_<n> with its own host names in host_<n>, listed
// in `partitions`. The newest partition takes the inserts with only its time (and sparse
// threat) index, so a record costs one append to the table and one to that index; when a
// partition is closed,
// the store builds its other indexes (client, user, host, decision, category, threat) in one
// pass each, and retention drops whole partitions.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace pc::store::schema {

// One step from version - 1 to version: `sql` once, then `each_partition` for every existing
// partition with "{n}" replaced by its number. Either may be null. partition_ddl() and
// kIndexes always describe the latest version.
struct Migration {
  int version;
  const char* sql;
  const char* each_partition;
};

// Every migration, in order; the last one's version is the schema this build writes and reads.
std::span<const Migration> migrations();
int current_version();

// The tables of a new partition, with its time and threat indexes.
std::string partition_ddl(std::int64_t n);

// The indexes built when a partition is closed, "{n}" for its number.
struct Index {
  const char* name;  // access_{n}_<name>
  const char* ddl;
};
std::span<const Index> indexes();
std::string expand(std::string_view text, std::int64_t n);  // "{n}" -> n

// The schema version of an open database: 0 for an empty one (no tables at all), -1 when it
// has tables but is not a log store, -2 on a read error.
int version_of(sqlite3* db);

// Brings db forward to the last version of `steps`: each missing step runs in its own
// transaction and is recorded in `schema_migrations` with `now_us`. A database newer than
// `steps`, or one that is not a log store, is refused. Empty on success, else the error;
// a failed step is rolled back and leaves the version it found.
std::string migrate(sqlite3* db, std::span<const Migration> steps, std::int64_t now_us);

}  // namespace pc::store::schema
