#include "inspect/verdict_cache.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace pc::inspect {
namespace {

Digest digest_of(const std::string& s) {
  return Sha256::of(s.data(), s.size());
}

TEST(Sha256, KnownVectorsAndIncrementalUpdates) {
  EXPECT_EQ(Sha256::hex(digest_of("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256::hex(digest_of("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 h;
  h.update(std::string_view("a"));
  h.update(std::string_view("bc"));
  EXPECT_EQ(h.final(), digest_of("abc"));
  h.update(std::string_view("abc"));  // final() resets
  EXPECT_EQ(h.final(), digest_of("abc"));
}

ScanFacts facts(Verdict::Kind k, std::string name = {}, std::string type = "unknown") {
  return {{k, std::move(name)}, std::move(type), "ClamAV test"};
}

TEST(VerdictCache, HitsMissesAndGenerations) {
  VerdictCache cache(4);
  Digest a = digest_of("a");
  EXPECT_FALSE(cache.find(a, 1));
  EXPECT_TRUE(cache.insert(a, 1, facts(Verdict::clean)));
  auto v = cache.find(a, 1);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->verdict.kind, Verdict::clean);
  EXPECT_FALSE(cache.find(a, 2));  // a new engine generation does not see old verdicts
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.misses(), 2u);
  EXPECT_FALSE(cache.insert(digest_of("b"), 1, facts(Verdict::error, "io")));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_TRUE(cache.insert(a, 1, facts(Verdict::infected, "X")));  // replaced
  EXPECT_EQ(cache.find(a, 1)->verdict.name, "X");
  EXPECT_EQ(cache.size(), 1u);
  cache.clear();
  EXPECT_EQ(cache.size(), 0u);
}

// A hit carries the true file type and the engine found by the scan, so that the caller
// needs no detection of its own.
TEST(VerdictCache, HitReturnsTheStoredFileTypeAndEngine) {
  VerdictCache cache(4);
  Digest exe = digest_of("MZ...");
  Digest zip = digest_of("PK...");
  ASSERT_TRUE(cache.insert(exe, 3, {{Verdict::clean, {}}, "exe", "ClamAV 1.4.6/27345"}));
  ASSERT_TRUE(
      cache.insert(zip, 3, {{Verdict::infected, "ns:rule"}, "office-macro", "YARA 2 rules"}));
  auto a = cache.find(exe, 3);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->file_type, "exe");
  EXPECT_EQ(a->engine, "ClamAV 1.4.6/27345");
  auto b = cache.find(zip, 3);
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, (ScanFacts{{Verdict::infected, "ns:rule"}, "office-macro", "YARA 2 rules"}));
  // Replacing an entry replaces its type too.
  ASSERT_TRUE(cache.insert(exe, 3, {{Verdict::clean, {}}, "zip", "ClamAV 1.4.6/27346"}));
  EXPECT_EQ(cache.find(exe, 3)->file_type, "zip");
}

TEST(VerdictCache, EvictsTheLeastRecentlyUsed) {
  VerdictCache cache(3);
  Digest d[4] = {digest_of("0"), digest_of("1"), digest_of("2"), digest_of("3")};
  for (int i = 0; i < 3; ++i) cache.insert(d[i], 7, facts(Verdict::clean));
  EXPECT_TRUE(cache.find(d[0], 7));  // 0 is now the most recent; 1 the least
  cache.insert(d[3], 7, facts(Verdict::unscannable, "Heuristics.Encrypted.Zip"));
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_TRUE(cache.find(d[0], 7));
  EXPECT_FALSE(cache.find(d[1], 7));
  EXPECT_TRUE(cache.find(d[2], 7));
  EXPECT_EQ(cache.find(d[3], 7)->verdict.kind, Verdict::unscannable);
}

TEST(VerdictCache, ZeroCapacityStoresNothing) {
  VerdictCache cache(0);
  EXPECT_FALSE(cache.insert(digest_of("a"), 1, facts(Verdict::clean)));
  EXPECT_FALSE(cache.find(digest_of("a"), 1));
}

TEST(VerdictCache, ConcurrentUseStaysBounded) {
  VerdictCache cache(64);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        Digest d = digest_of(std::to_string((i * 7 + t) % 200));
        if (!cache.find(d, 1)) cache.insert(d, 1, facts(Verdict::clean));
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_LE(cache.size(), 64u);
  EXPECT_EQ(cache.hits() + cache.misses(), 8000u);
}

}  // namespace
}  // namespace pc::inspect
