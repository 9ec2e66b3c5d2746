// RFC 3339 timestamps: a strict parser and a UTC formatter. Pure.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace pc::base {

// Parses an RFC 3339 date-time: "2026-11-30T10:00:00Z", "2026-11-30T10:00:00.250+09:00".
// Seconds may be left out ("2026-11-30T10:00Z"); the fraction has 1 to 9 digits (kept to the
// microsecond); "T" may be "t" or a space; the offset is "Z", "z" or +HH:MM / -HH:MM. Every
// field is range-checked (a 30 February is an error; a leap second 60 counts as 59). From
// 1970 to 2262-04-11 (what the clock holds). False (out unchanged) on anything else.
bool parse_rfc3339(std::string_view s, std::chrono::system_clock::time_point& out);

// "2026-11-30T01:00:00.250Z": UTC, milliseconds.
std::string format_rfc3339_ms(std::chrono::system_clock::time_point t);

}  // namespace pc::base
