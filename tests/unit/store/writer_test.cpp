// store: the Writer thread and its bounded queue.
#include "store/writer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <vector>

#include "store/query.h"
#include "store_testing.h"

namespace pc::store {
namespace {

using namespace std::chrono_literals;
using testing::kBase;
using testing::record;
using testing::TempDir;

WriterOptions options(const std::filesystem::path& path) {
  WriterOptions o;
  o.store.path = path;
  o.store.retention = 0s;
  o.flush_interval = 10s;  // nothing is written before a flush or a full batch
  return o;
}

std::size_t count(const std::filesystem::path& path) {
  Reader reader;
  std::string error;
  EXPECT_TRUE(reader.open(path, error)) << error;
  Filter f;
  f.limit = kMaxLimit;
  Page page;
  EXPECT_TRUE(reader.query(f, page, error)) << error;
  return page.rows.size();
}

TEST(Writer, FlushWritesEverythingSubmitted) {
  TempDir dir;
  auto path = dir.path / "logs.db";
  Writer w(options(path));
  std::vector<telemetry::AccessRecord> batch;
  for (int i = 0; i < 100; ++i) batch.push_back(record(kBase + std::chrono::seconds(i)));
  w.submit(batch);
  w.submit(batch);
  w.flush();
  auto s = w.stats();
  EXPECT_EQ(s.written, 200u);
  EXPECT_EQ(s.dropped, 0u);
  EXPECT_EQ(s.queued, 0u);
  EXPECT_TRUE(s.healthy);
  EXPECT_EQ(count(path), 200u);
}

TEST(Writer, AFullQueueDropsAndCounts) {
  TempDir dir;
  auto path = dir.path / "logs.db";
  auto o = options(path);
  o.queue_limit = 10;
  Writer w(o);
  std::vector<telemetry::AccessRecord> batch(100, record(kBase));
  w.submit(batch);  // the queue was empty: 10 fit
  auto s = w.stats();
  EXPECT_EQ(s.dropped, 90u);
  w.flush();
  s = w.stats();
  EXPECT_EQ(s.written, 10u);
  EXPECT_EQ(s.dropped, 90u);
  EXPECT_EQ(count(path), 10u);
}

TEST(Writer, LargeBacklogsAreWrittenInSeveralTransactions) {
  TempDir dir;
  auto path = dir.path / "logs.db";
  Writer w(options(path));
  std::vector<telemetry::AccessRecord> batch;
  for (std::size_t i = 0; i < Writer::kBatch * 2 + 5; ++i)
    batch.push_back(record(kBase + std::chrono::milliseconds(i)));
  w.submit(batch);
  w.flush();
  EXPECT_EQ(w.stats().written, Writer::kBatch * 2 + 5);
}

TEST(Writer, StoppingWritesWhatIsQueued) {
  TempDir dir;
  auto path = dir.path / "logs.db";
  {
    Writer w(options(path));
    std::vector<telemetry::AccessRecord> batch(5, record(kBase));
    w.submit(batch);
  }
  EXPECT_EQ(count(path), 5u);
}

TEST(Writer, AnUnavailableStoreCountsDropsAndFlushStillReturns) {
  TempDir dir;
  std::ofstream(dir.path / "file") << "x";
  Writer w(options(dir.path / "file" / "logs.db"));
  std::vector<telemetry::AccessRecord> batch(7, record(kBase));
  w.submit(batch);
  w.flush();
  auto s = w.stats();
  EXPECT_EQ(s.dropped, 7u);
  EXPECT_EQ(s.written, 0u);
  EXPECT_FALSE(s.healthy);
  EXPECT_NE(s.last_error.find("cannot open"), std::string::npos);
}

}  // namespace
}  // namespace pc::store
