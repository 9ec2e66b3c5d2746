// base::Buffer: prepare/commit/consume, compaction, growth, release.
#include <gtest/gtest.h>

#include <string>

#include "base/buffer.h"

namespace pc::base {
namespace {

void put(Buffer& b, std::string_view s) {
  auto span = b.prepare(s.size());
  ASSERT_GE(span.size(), s.size());
  std::memcpy(span.data(), s.data(), s.size());
  b.commit(s.size());
}

TEST(Buffer, StartsEmptyWithoutStorage) {
  Buffer b(64);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.capacity(), 0u);  // allocated on first prepare
  EXPECT_EQ(b.data(), "");
}

TEST(Buffer, PrepareCommitConsume) {
  Buffer b(64);
  auto span = b.prepare(10);
  EXPECT_EQ(b.capacity(), 64u);
  EXPECT_EQ(span.size(), 64u);
  put(b, "hello ");
  put(b, "world");
  EXPECT_EQ(b.data(), "hello world");
  EXPECT_EQ(b.size(), 11u);
  b.consume(6);
  EXPECT_EQ(b.data(), "world");
  b.consume(5);
  EXPECT_TRUE(b.empty());
  // Consuming everything rewinds: the whole capacity is writable again.
  EXPECT_EQ(b.prepare(1).size(), 64u);
}

TEST(Buffer, CommitLessThanPrepared) {
  Buffer b(32);
  auto span = b.prepare(16);
  span[0] = 'a';
  span[1] = 'b';
  b.commit(2);
  EXPECT_EQ(b.data(), "ab");
  EXPECT_EQ(b.prepare(1).size(), 30u);
}

TEST(Buffer, CompactsInsteadOfGrowing) {
  Buffer b(16);
  put(b, "0123456789abcdef");  // full
  b.consume(10);               // "abcdef" left at offset 10
  auto span = b.prepare(8);    // 0 free at the end, 10 free at the front: compact
  EXPECT_EQ(b.capacity(), 16u);
  EXPECT_EQ(span.size(), 10u);
  EXPECT_EQ(b.data(), "abcdef");
  std::memcpy(span.data(), "ghijklmn", 8);
  b.commit(8);
  EXPECT_EQ(b.data(), "abcdefghijklmn");
}

TEST(Buffer, DoesNotCompactWhenThereIsRoom) {
  Buffer b(64);
  put(b, "0123456789");
  b.consume(4);
  const char* before = b.data().data();
  b.prepare(8);
  EXPECT_EQ(b.data().data(), before);
  EXPECT_EQ(b.data(), "456789");
}

TEST(Buffer, GrowsByDoublingAndKeepsData) {
  Buffer b(16);
  put(b, "0123456789");
  b.consume(2);
  auto span = b.prepare(100);  // 8 bytes kept + 100 > 16: grows to 128
  EXPECT_EQ(b.capacity(), 128u);
  EXPECT_GE(span.size(), 100u);
  EXPECT_EQ(b.data(), "23456789");
  std::string big(100, 'x');
  std::memcpy(span.data(), big.data(), big.size());
  b.commit(big.size());
  EXPECT_EQ(b.data(), "23456789" + big);
}

TEST(Buffer, GrowsFromEmpty) {
  Buffer b(16);
  auto span = b.prepare(1000);
  EXPECT_GE(span.size(), 1000u);
  EXPECT_EQ(b.capacity(), 1024u);
}

TEST(Buffer, ManyCyclesKeepOrder) {
  Buffer b(8);
  std::string expect, got;
  for (int i = 0; i < 1000; ++i) {
    std::string piece = std::to_string(i) + ",";
    put(b, piece);
    expect += piece;
    if (i % 3 == 0) {
      auto d = b.data();
      auto take = d.size() / 2;
      got.append(d.substr(0, take));
      b.consume(take);
    }
  }
  got.append(b.data());
  EXPECT_EQ(got, expect);
  EXPECT_LE(b.capacity(), 4096u);
}

TEST(Buffer, ReleaseFreesOnlyWhenEmpty) {
  Buffer b(64);
  put(b, "abc");
  b.release();  // not empty: kept
  EXPECT_EQ(b.capacity(), 64u);
  EXPECT_EQ(b.data(), "abc");
  b.consume(3);
  b.release();
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_TRUE(b.empty());
  put(b, "again");  // usable after release
  EXPECT_EQ(b.data(), "again");
  EXPECT_EQ(b.capacity(), 64u);
}

TEST(Buffer, ReleaseAfterGrowthStartsAgainFromTheBlockSize) {
  Buffer b(16);
  b.prepare(100);
  EXPECT_EQ(b.capacity(), 128u);
  b.release();
  EXPECT_EQ(b.capacity(), 0u);
  b.prepare(1);
  EXPECT_EQ(b.capacity(), 16u);
}

TEST(Buffer, StandardBlocksAreReusedAfterRelease) {
  Buffer a, b;
  char* first = a.prepare(1).data();
  a.release();
  EXPECT_EQ(b.prepare(1).data(), first);  // the same block, from the per-thread cache
  EXPECT_EQ(b.capacity(), Buffer::kBlock);
}

TEST(Buffer, Clear) {
  Buffer b(32);
  put(b, "abcdef");
  b.consume(2);
  b.clear();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.prepare(1).size(), 32u);
}

}  // namespace
}  // namespace pc::base
