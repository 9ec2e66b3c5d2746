// base: RFC 3339 parsing and formatting.
#include "base/time.h"

#include <gtest/gtest.h>

namespace pc::base {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

Clock::time_point at(std::int64_t secs) {
  return Clock::time_point(std::chrono::seconds(secs));
}

TEST(Rfc3339, ParsesOffsetsFractionsAndOptionalSeconds) {
  Clock::time_point t;
  ASSERT_TRUE(parse_rfc3339("2026-11-30T10:00:00Z", t));
  EXPECT_EQ(t, at(1796032800));
  ASSERT_TRUE(parse_rfc3339("2026-11-30T19:00:00+09:00", t));
  EXPECT_EQ(t, at(1796032800));
  ASSERT_TRUE(parse_rfc3339("2026-11-30t05:30:00-04:30", t));
  EXPECT_EQ(t, at(1796032800));
  ASSERT_TRUE(parse_rfc3339("2026-11-30 10:00Z", t));
  EXPECT_EQ(t, at(1796032800));
  ASSERT_TRUE(parse_rfc3339("2026-11-30T10:00:00.25z", t));
  EXPECT_EQ(t, at(1796032800) + 250ms);
  ASSERT_TRUE(parse_rfc3339("2026-11-30T10:00:00.123456789Z", t));
  EXPECT_EQ(t, at(1796032800) + 123456us);
  ASSERT_TRUE(parse_rfc3339("1970-01-01T00:00:00Z", t));
  EXPECT_EQ(t, at(0));
  ASSERT_TRUE(parse_rfc3339("2024-02-29T00:00:00Z", t));  // leap year
  EXPECT_EQ(t, at(1709164800));
  ASSERT_TRUE(parse_rfc3339("2016-12-31T23:59:60Z", t));  // leap second: counted as :59
  EXPECT_EQ(t, at(1483228799));
  ASSERT_TRUE(parse_rfc3339("2262-04-10T23:59:59Z", t));
}

TEST(Rfc3339, RefusesAnythingElse) {
  for (const char* bad : {"",
                          "2026-11-30",
                          "2026-11-30T10:00:00",
                          "2026-11-30T10:00:00+0900",
                          "2026-11-30T10Z",
                          "2026-13-01T00:00Z",
                          "2026-00-01T00:00Z",
                          "2026-02-29T00:00Z",
                          "2026-04-31T00:00Z",
                          "2026-11-30T24:00Z",
                          "2026-11-30T10:60Z",
                          "2026-11-30T10:00:61Z",
                          "1969-12-31T23:59Z",
                          "2026-11-30T10:00:00.Z",
                          "2026-11-30T10:00:00.1234567890Z",
                          "2026-11-30T10:00:00+24:00",
                          "2026-11-30T10:00:00+09:60",
                          " 2026-11-30T10:00Z",
                          "2026-11-30T10:00Z ",
                          "+026-11-30T10:00Z",
                          "2026-1-30T10:00Z",
                          "2026-11-30X10:00Z",
                          "2026-11-30T10:00:00ZZ",
                          "2262-04-12T00:00:00Z",
                          "9999-12-31T23:59:59Z",
                          "1970-01-01T00:00:00+00:01"}) {
    Clock::time_point t = at(5);
    EXPECT_FALSE(parse_rfc3339(bad, t)) << bad;
    EXPECT_EQ(t, at(5)) << bad;
  }
}

TEST(Rfc3339, FormatsUtcMilliseconds) {
  EXPECT_EQ(format_rfc3339_ms(at(1796032800) + 250ms + 999us), "2026-11-30T10:00:00.250Z");
  EXPECT_EQ(format_rfc3339_ms(at(0)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_rfc3339_ms(at(1709164800)), "2024-02-29T00:00:00.000Z");
  Clock::time_point t;
  auto now = std::chrono::floor<std::chrono::milliseconds>(Clock::now());
  ASSERT_TRUE(parse_rfc3339(format_rfc3339_ms(now), t));
  EXPECT_EQ(t, now);
}

}  // namespace
}  // namespace pc::base
