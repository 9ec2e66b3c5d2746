// base string helpers.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/strings.h"

namespace pc::base {
namespace {

struct DomainCase {
  const char* host;
  const char* domain;
  bool match;
};

class DomainMatches : public ::testing::TestWithParam<DomainCase> {};

TEST_P(DomainMatches, Table) {
  const auto& p = GetParam();
  EXPECT_EQ(domain_matches(p.host, p.domain), p.match) << p.host << " in " << p.domain;
}

INSTANTIATE_TEST_SUITE_P(Table, DomainMatches,
                         ::testing::Values(DomainCase{"example.com", "example.com", true},
                                           DomainCase{"www.example.com", "example.com", true},
                                           DomainCase{"a.b.example.com", "example.com", true},
                                           DomainCase{"badexample.com", "example.com", false},
                                           DomainCase{"example.com.evil", "example.com", false},
                                           DomainCase{"example.co", "example.com", false},
                                           DomainCase{"com", "example.com", false},
                                           DomainCase{".example.com", "example.com", true},
                                           DomainCase{"example.org", "example.com", false},
                                           DomainCase{"xexample.com", "example.com", false},
                                           DomainCase{"localhost", "localhost", true},
                                           DomainCase{"", "", true},
                                           DomainCase{"example.com", "", false},
                                           DomainCase{"b.com", "a.com", false}));

std::vector<std::string> items(std::string_view v) {
  std::vector<std::string> out;
  for_each_list_item(v, [&](std::string_view s) { out.emplace_back(s); });
  return out;
}

using V = std::vector<std::string>;

TEST(ForEachListItem, Splits) {
  EXPECT_EQ(items(""), V{});
  EXPECT_EQ(items("a"), V{"a"});
  EXPECT_EQ(items("a,b"), (V{"a", "b"}));
  EXPECT_EQ(items("a, b ,\tc\t"), (V{"a", "b", "c"}));
  EXPECT_EQ(items(" , ,a,,b, ,"), (V{"a", "b"}));
  EXPECT_EQ(items(","), V{});
  EXPECT_EQ(items(" \t "), V{});
  EXPECT_EQ(items("keep-alive, Upgrade"), (V{"keep-alive", "Upgrade"}));
  EXPECT_EQ(items("1.1 proxy (comment, with comma)"), (V{"1.1 proxy (comment", "with comma)"}));
  EXPECT_EQ(items("a b, c"), (V{"a b", "c"}));  // inner spaces kept
}

TEST(ForEachListItem, OtherSeparator) {  // Cookie pairs
  V out;
  for_each_list_item(
      "a=1; b=2;;c=3, d ", [&](std::string_view s) { out.emplace_back(s); }, ';');
  EXPECT_EQ(out, (V{"a=1", "b=2", "c=3, d"}));
}

TEST(Iequals, Table) {
  EXPECT_TRUE(iequals("", ""));
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
  EXPECT_TRUE(iequals("HOST", "host"));
  EXPECT_TRUE(iequals("a1-_", "A1-_"));
  EXPECT_FALSE(iequals("host", "hosts"));
  EXPECT_FALSE(iequals("host", "h0st"));
  EXPECT_FALSE(iequals("[", "{"));  // 0x5b vs 0x7b: only letters fold
  EXPECT_FALSE(iequals("@", "`"));
  EXPECT_FALSE(iequals("\xc4", "\xe4"));       // no Latin-1 folding
  EXPECT_FALSE(iequals("K", "\xe2\x84\xaa"));  // Kelvin sign is not K
}

TEST(Strings, TrimLowerParse) {
  EXPECT_EQ(trim("  a b \t"), "a b");
  EXPECT_EQ(trim(""), "");
  EXPECT_EQ(trim(" \t"), "");
  EXPECT_EQ(trim("\na\n"), "\na\n");  // only SP and HTAB
  EXPECT_EQ(to_lower("AbC-Z@["), "abc-z@[");
  std::uint64_t v = 0;
  EXPECT_TRUE(parse_u64("0", v));
  EXPECT_EQ(v, 0u);
  EXPECT_TRUE(parse_u64("18446744073709551615", v));
  EXPECT_EQ(v, 18446744073709551615ull);
  EXPECT_FALSE(parse_u64("18446744073709551616", v));
  EXPECT_FALSE(parse_u64("", v));
  EXPECT_FALSE(parse_u64("-1", v));
  EXPECT_FALSE(parse_u64("+1", v));
  EXPECT_FALSE(parse_u64("1 ", v));
  EXPECT_FALSE(parse_u64("0x10", v));
}

}  // namespace
}  // namespace pc::base
