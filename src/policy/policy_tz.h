// Time zones for schedule conditions: TZif files (RFC 8536, versions 1-4) read from the
// system zoneinfo directory, and the POSIX TZ rule in their footer for instants after the last
// transition. Loaded on the control thread; utc_offset() is pure and allocation-free.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pc::policy {

// A POSIX TZ rule ("CET-1CEST,M3.5.0,M10.5.0/3"), as found in a TZif footer.
struct PosixTz {
  struct Date {
    enum class Kind : std::uint8_t { julian1, julian0, month_week_day };
    Kind kind = Kind::month_week_day;
    int month = 0, week = 0, day = 0;  // Mm.w.d; `day` is also the n of Jn / n
    std::int32_t time = 7200;          // seconds after local midnight (may be negative)
  };
  std::int32_t std_offset = 0;  // seconds east of UTC
  std::int32_t dst_offset = 0;  // seconds east of UTC
  bool has_dst = false;
  Date start, end;

  static std::optional<PosixTz> parse(std::string_view s);
  std::int32_t utc_offset(std::int64_t unix_seconds) const;
};

class TimeZone {
 public:
  // UTC.
  TimeZone() = default;
  // Reads dir/name. `name` must be a relative IANA name (letters, digits, '_', '-', '+', '/',
  // no "..").
  static std::optional<TimeZone> load(std::string_view name, std::string& error,
                                      const std::filesystem::path& dir = "/usr/share/zoneinfo");
  // Parses TZif bytes.
  static std::optional<TimeZone> parse(std::string_view bytes, std::string& error);

  // Seconds east of UTC in effect at the given instant.
  std::int32_t utc_offset(std::int64_t unix_seconds) const;

 private:
  std::vector<std::int64_t> transitions_;
  std::vector<std::uint8_t> types_at_;  // type index per transition
  std::vector<std::int32_t> offsets_;   // utoff per type
  std::int32_t before_first_ = 0;       // offset before the first transition
  std::optional<PosixTz> footer_;
};

// Civil-calendar helpers (proleptic Gregorian, UTC).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d);
// 0 = Monday .. 6 = Sunday, for a count of days since 1970-01-01.
int weekday_from_days(std::int64_t days);

}  // namespace pc::policy
