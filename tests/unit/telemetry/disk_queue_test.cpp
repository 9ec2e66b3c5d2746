// telemetry: the disk-backed queue of syslog frames.
#include "telemetry/disk_queue.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "telemetry/syslog_format.h"

namespace pc::telemetry {
namespace {

namespace fs = std::filesystem;

class DiskQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pc-disk-queue-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = fs::path(tmpl) / "spool";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_.parent_path(), ec);
  }
  static std::string frames(int from, int to, std::size_t pad = 0) {
    std::string out;
    for (int i = from; i < to; ++i)
      append_octet_frame(out, "msg-" + std::to_string(i) + std::string(pad, '.'));
    return out;
  }
  // Everything the queue holds, consuming it in peeks of `chunk` bytes.
  static std::vector<std::string> drain(DiskQueue& q, std::size_t chunk = 4096) {
    std::vector<std::string> out;
    std::string buf;
    for (int guard = 0; guard < 100000; ++guard) {
      std::size_t n = q.peek(buf, chunk);
      if (n == 0) break;
      std::size_t pos = 0;
      for (std::size_t i = 0; i < n; ++i) {
        std::string_view msg;
        std::size_t len = 0;
        EXPECT_EQ(parse_octet_frame(std::string_view(buf).substr(pos), 1 << 20, msg, len),
                  FrameStatus::complete);
        out.emplace_back(msg.substr(0, msg.find('.')));
        pos += len;
      }
      EXPECT_EQ(pos, buf.size());
      q.pop(n, pos);
    }
    return out;
  }
  static std::vector<std::string> names(int from, int to) {
    std::vector<std::string> v;
    for (int i = from; i < to; ++i) v.push_back("msg-" + std::to_string(i));
    return v;
  }
  std::vector<fs::path> segments() const {
    std::vector<fs::path> v;
    for (const auto& e : fs::directory_iterator(dir_))
      if (e.path().extension() == ".seg") v.push_back(e.path());
    std::sort(v.begin(), v.end());
    return v;
  }
  fs::path dir_;
};

TEST_F(DiskQueueTest, FirstInFirstOut) {
  DiskQueue q(dir_, 1 << 20, 1 << 16);
  EXPECT_TRUE(fs::is_directory(dir_));
  std::string buf;
  EXPECT_EQ(q.peek(buf, 1000), 0u);
  EXPECT_EQ(q.append(frames(0, 10)), 10u);
  EXPECT_EQ(q.append(frames(10, 20)), 10u);
  EXPECT_EQ(q.pending_frames(), 20u);
  EXPECT_EQ(q.pending_bytes(), frames(0, 20).size());
  EXPECT_EQ(drain(q, 30), names(0, 20));  // small peeks: one or two frames at a time
  EXPECT_EQ(q.pending_frames(), 0u);
  EXPECT_EQ(q.pending_bytes(), 0u);
}

TEST_F(DiskQueueTest, PeekWithoutPopSeesTheSameFrames) {
  DiskQueue q(dir_, 1 << 20, 1 << 16);
  q.append(frames(0, 5));
  std::string a, b;
  EXPECT_EQ(q.peek(a, 1 << 20), 5u);
  EXPECT_EQ(q.peek(b, 1 << 20), 5u);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, frames(0, 5));
  // A peek smaller than one frame still returns that frame.
  EXPECT_EQ(q.peek(a, 1), 1u);
  EXPECT_EQ(a, frames(0, 1));
}

TEST_F(DiskQueueTest, RestartReplaysWhatWasNotSentInOrder) {
  {
    DiskQueue q(dir_, 1 << 20, 1 << 16);
    q.append(frames(0, 30));
    std::string buf;
    ASSERT_GT(q.peek(buf, 64), 0u);
    // Pop exactly 7 frames.
    std::size_t pos = 0;
    for (int i = 0; i < 7; ++i) pos += frames(i, i + 1).size();
    q.pop(7, pos);
  }
  {
    DiskQueue q(dir_, 1 << 20, 1 << 16);
    EXPECT_EQ(q.pending_frames(), 23u);
    q.append(frames(30, 35));  // new frames go after the old ones
    auto got = drain(q, 100);
    EXPECT_EQ(got, names(7, 35));
  }
  {
    DiskQueue q(dir_, 1 << 20, 1 << 16);  // all sent: nothing comes back
    EXPECT_EQ(q.pending_frames(), 0u);
    std::string buf;
    EXPECT_EQ(q.peek(buf, 1000), 0u);
  }
}

TEST_F(DiskQueueTest, LimitDropsWhatDoesNotFit) {
  const std::string one = frames(0, 1, 90);  // about 100 bytes a frame
  const std::uint64_t limit = one.size() * 10 + one.size() / 2;
  DiskQueue q(dir_, limit, 1 << 16);
  std::size_t accepted = 0, offered = 0;
  for (int i = 0; i < 25; ++i) {
    accepted += q.append(frames(i, i + 1, 90));
    ++offered;
  }
  EXPECT_EQ(accepted, 10u);
  EXPECT_LE(q.pending_bytes(), limit);
  // A batch that only partly fits: its first frames are taken, in order.
  std::string buf;
  std::size_t n = q.peek(buf, one.size() * 3);
  ASSERT_EQ(n, 3u);
  q.pop(3, buf.size());
  EXPECT_EQ(q.append(frames(100, 110, 90)), 3u);
  auto got = drain(q);
  std::vector<std::string> want = names(3, 10);
  for (auto& s : names(100, 103)) want.push_back(s);
  EXPECT_EQ(got, want);
}

TEST_F(DiskQueueTest, SegmentsRotateAndSentOnesAreDeleted) {
  // limit 1 MiB: 128 KiB segments.
  DiskQueue q(dir_, 1 << 20, 1 << 16);
  int next = 0;
  for (int batch = 0; batch < 40; ++batch) {
    EXPECT_EQ(q.append(frames(next, next + 20, 1000)), 20u);
    next += 20;
  }
  EXPECT_GE(segments().size(), 5u);
  auto got = drain(q, 50000);
  EXPECT_EQ(got, names(0, next));
  EXPECT_EQ(segments().size(), 1u);  // only the one still being written
  // And the queue still works after that.
  q.append(frames(next, next + 3));
  EXPECT_EQ(drain(q), names(next, next + 3));
}

TEST_F(DiskQueueTest, TornLastFrameIsCutOffAtRecovery) {
  {
    DiskQueue q(dir_, 1 << 20, 1 << 16);
    q.append(frames(0, 4));
  }
  auto segs = segments();
  ASSERT_EQ(segs.size(), 1u);
  {
    std::ofstream o(segs[0], std::ios::app | std::ios::binary);
    o << "120 <134>1 half a messa";  // a crash in the middle of a write
  }
  DiskQueue q(dir_, 1 << 20, 1 << 16);
  EXPECT_EQ(q.pending_frames(), 4u);
  q.append(frames(4, 6));
  EXPECT_EQ(drain(q), names(0, 6));
}

TEST_F(DiskQueueTest, GarbageInASegmentIsCutAtTheFirstBadByte) {
  {
    DiskQueue q(dir_, 1 << 20, 1 << 16);
    q.append(frames(0, 3));
  }
  auto segs = segments();
  ASSERT_EQ(segs.size(), 1u);
  {
    std::ofstream o(segs[0], std::ios::app | std::ios::binary);
    o << "not a frame at all\n" << frames(50, 52);
  }
  DiskQueue q(dir_, 1 << 20, 1 << 16);
  EXPECT_EQ(q.pending_frames(), 3u);
  EXPECT_EQ(drain(q), names(0, 3));
}

TEST_F(DiskQueueTest, UnreadableCursorSendsEverythingAgain) {
  {
    DiskQueue q(dir_, 1 << 20, 1 << 16);
    q.append(frames(0, 5));
    std::string buf;
    q.peek(buf, 1 << 20);
    q.pop(2, frames(0, 2).size());
  }
  {
    std::ofstream o(dir_ / "cursor", std::ios::trunc);
    o << "garbage";
  }
  DiskQueue q(dir_, 1 << 20, 1 << 16);
  EXPECT_EQ(drain(q), names(0, 5));  // duplicates rather than losses
}

TEST_F(DiskQueueTest, FolderThatCannotBeCreated) {
  fs::create_directories(dir_.parent_path());
  { std::ofstream o(dir_.parent_path() / "file"); }
  EXPECT_THROW(DiskQueue(dir_.parent_path() / "file" / "sub", 1 << 20, 1 << 16),
               std::runtime_error);
}

TEST_F(DiskQueueTest, ProducerAndConsumerThreads) {
  DiskQueue q(dir_, 64 << 20, 1 << 16);
  constexpr int kTotal = 20000;
  std::thread producer([&] {
    for (int i = 0; i < kTotal; i += 100) EXPECT_EQ(q.append(frames(i, i + 100, 20)), 100u);
  });
  std::vector<std::string> got;
  std::string buf;
  for (int guard = 0; guard < 10'000'000 && got.size() < static_cast<std::size_t>(kTotal);
       ++guard) {
    std::size_t n = q.peek(buf, 8192);
    if (n == 0) {
      std::this_thread::yield();
      continue;
    }
    std::size_t pos = 0;
    for (std::size_t i = 0; i < n; ++i) {
      std::string_view msg;
      std::size_t len = 0;
      ASSERT_EQ(parse_octet_frame(std::string_view(buf).substr(pos), 1 << 20, msg, len),
                FrameStatus::complete);
      got.emplace_back(msg.substr(0, msg.find('.')));
      pos += len;
    }
    q.pop(n, pos);
  }
  producer.join();
  EXPECT_EQ(got, names(0, kTotal));
}

}  // namespace
}  // namespace pc::telemetry
