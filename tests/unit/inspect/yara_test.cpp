#include "inspect/yara.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "temp_dir.h"

namespace pc::inspect {
namespace {

using pc::testing::TempDir;

TEST(YaraRules, MatchingRuleIsNamedWithItsNamespace) {
  TempDir dir;
  dir.write("org.yar", R"(
rule Org_Secret_Marker {
  strings:
    $a = "portcullis-confidential"
  condition:
    $a
}
)");
  dir.write("other.yara", "rule Never { condition: false }\n");
  dir.write("notes.txt", "not a rule file {");
  std::string error;
  auto rules = YaraRules::load(dir.path, error);
  ASSERT_TRUE(rules) << error;
  EXPECT_EQ(rules->rule_count(), 2u);
  EXPECT_EQ(rules->file_count(), 2u);
  EXPECT_GT(rules->generation(), 0u);

  std::string hit = "header ... portcullis-confidential ... trailer";
  Verdict v = rules->scan(hit.data(), hit.size());
  EXPECT_EQ(v.kind, Verdict::infected);
  EXPECT_EQ(v.name, "org:Org_Secret_Marker");

  std::string miss = "nothing to see";
  EXPECT_EQ(rules->scan(miss.data(), miss.size()).kind, Verdict::clean);
  EXPECT_EQ(rules->scan(nullptr, 0).kind, Verdict::clean);
}

TEST(YaraRules, CompileErrorsCarryFileAndLine) {
  TempDir dir;
  dir.write("a_good.yar", "rule Good { condition: true }\n");
  dir.write("b_bad.yar", "rule Bad {\n  strings:\n    $a = \"x\"\n  condition:\n    $b }\n");
  dir.write("c_worse.yar", "\n\nrule {\n");
  std::string error;
  auto rules = YaraRules::load(dir.path, error);
  EXPECT_FALSE(rules);
  EXPECT_NE(error.find((dir.path / "b_bad.yar").string() + ":5: "), std::string::npos) << error;
  EXPECT_NE(error.find((dir.path / "c_worse.yar").string() + ":3: "), std::string::npos) << error;
  EXPECT_EQ(error.find("a_good.yar"), std::string::npos) << error;
}

TEST(YaraRules, EmptyDirectoryMatchesNothingAndMissingOneIsAnError) {
  TempDir dir;
  std::string error;
  auto rules = YaraRules::load(dir.path, error);
  ASSERT_TRUE(rules) << error;
  EXPECT_EQ(rules->rule_count(), 0u);
  EXPECT_EQ(rules->scan("abc", 3).kind, Verdict::clean);
  EXPECT_FALSE(YaraRules::load(dir.path / "missing", error));
  EXPECT_NE(error.find("missing"), std::string::npos) << error;
}

TEST(YaraRules, ConcurrentScansShareTheRules) {
  TempDir dir;
  dir.write("r.yar", "rule Even { strings: $a = \"even-marker\" condition: $a }\n");
  std::string error;
  auto rules = YaraRules::load(dir.path, error);
  ASSERT_TRUE(rules) << error;
  std::vector<std::thread> threads;
  std::vector<int> hits(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        std::string data(4096, 'x');
        if (i % 2 == 0) data.replace(100 + t, 11, "even-marker");
        Verdict v = rules->scan(data.data(), data.size());
        if (v.kind == Verdict::infected && v.name == "r:Even") ++hits[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int h : hits) EXPECT_EQ(h, 100);
}

}  // namespace
}  // namespace pc::inspect
