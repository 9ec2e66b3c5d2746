// Record formats for files: JSON (one object per record) and Squid's native format, plus the
// small appenders every format shares. Each appends to a caller-owned buffer, so a writer
// reuses one buffer for a whole batch; nothing here allocates unless the buffer grows.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "telemetry/record.h"

namespace pc::telemetry {

enum class Format : std::uint8_t { json, squid };

// One JSON object, no trailing newline. `gateway` is the gateway's name (gateway.name).
void append_json(std::string& out, const AccessRecord& r, std::string_view gateway);
// time.ms elapsed_ms client code/status bytes method URL user hierarchy/peer type, no newline.
void append_squid(std::string& out, const AccessRecord& r);

// Convenience for tests and tools: the line as the access log writes it (with "\n").
std::string format_json(const AccessRecord& r, std::string_view gateway = {});
std::string format_squid(const AccessRecord& r);

namespace fmtx {
void decimal(std::string& out, std::uint64_t v);
void decimal_signed(std::string& out, std::int64_t v);
// "2024-01-02T03:04:05.678Z" or, with micros, "2024-01-02T03:04:05.678901Z". The char*
// forms write at most kIsoTimeMax / kMillisMax bytes and return the length.
inline constexpr std::size_t kIsoTimeMax = 32, kMillisMax = 32;
void iso_time(std::string& out, std::chrono::system_clock::time_point t, bool micros = false);
std::size_t iso_time(char* buf, std::chrono::system_clock::time_point t, bool micros = false);
// Milliseconds with three decimals: 12345 us -> "12.345".
void millis(std::string& out, std::chrono::microseconds d);
std::size_t millis(char* buf, std::chrono::microseconds d);
// s cut to at most n bytes without splitting a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view s, std::size_t n);
}  // namespace fmtx

}  // namespace pc::telemetry
