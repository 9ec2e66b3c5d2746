// Syslog messages for access records (docs/logging.md): an RFC 5424 header followed by
// RFC 5424 structured data, a CEF line or a JSON object; RFC 6587 octet-counting framing for
// TCP and TLS (RFC 5425), and its parser (the disk queue stores frames as they go on the wire).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "telemetry/record.h"

namespace pc::telemetry {

enum class SyslogFormat : std::uint8_t { rfc5424, cef, json };

// The structured-data ID of the records: "portcullis@32473". 32473 is the Private Enterprise
// Number that RFC 5612 reserves for documentation, a placeholder until the project has its own.
inline constexpr std::string_view kSdId = "portcullis@32473";

// What every message of one destination shares.
struct SyslogHeader {
  int facility = 16;     // 0-23 (16: local0)
  std::string hostname;  // the gateway's name; "-" (NILVALUE) when empty
  std::string app_name = "portcullis";
  std::string procid;   // the process ID; "-" when empty
  std::string version;  // the product version, for CEF's header
};

// Value limits in syslog messages: a URL keeps up to 8 KiB, any other value 2 KiB (cut on a
// UTF-8 boundary), so a message stays well under 64 KiB whatever the record holds.
inline constexpr std::size_t kMaxUrlValue = 8192;
inline constexpr std::size_t kMaxValue = 2048;

int syslog_severity(const AccessRecord& r);  // RFC 5424 severity 0-7
int cef_severity(const AccessRecord& r);     // CEF severity 0-10
// MSGID and CEF signature ID: the security event name, else "error" or "access".
std::string_view message_id(const AccessRecord& r);

// One message without framing: "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG".
// rfc5424: SD is [portcullis@32473 ...] and MSG a one-line summary; cef: SD is "-" and MSG the
// CEF line; json: SD is "-" and MSG the record's JSON object. MSG is UTF-8 without a BOM.
void append_syslog(std::string& out, const AccessRecord& r, SyslogFormat f, const SyslogHeader& h);

// The parts, exposed for tests.
void append_structured_data(std::string& out, const AccessRecord& r);
void append_cef(std::string& out, const AccessRecord& r, const SyslogHeader& h);

namespace esc {
// SD-PARAM value (RFC 5424 6.3.3): '"', '\' and ']' preceded by '\'; control characters
// become spaces and bytes that are not UTF-8 become U+FFFD.
void sd_value(std::string& out, std::string_view s);
// CEF header field: '|' and '\' preceded by '\'; line breaks and other control characters
// become spaces; not UTF-8: U+FFFD.
void cef_header(std::string& out, std::string_view s);
// CEF extension value: '\' and '=' preceded by '\', line feed as "\n", carriage return as
// "\r"; other control characters become spaces; not UTF-8: U+FFFD.
void cef_value(std::string& out, std::string_view s);
// Free text (MSG): control characters become spaces; not UTF-8: U+FFFD.
void text(std::string& out, std::string_view s);
}  // namespace esc

// RFC 6587 3.4.1 octet counting: "MSG-LEN SP SYSLOG-MSG".
void append_octet_frame(std::string& out, std::string_view msg);

enum class FrameStatus : std::uint8_t { complete, incomplete, invalid };
// Reads one frame at the start of `in`: complete (msg and frame_size set), incomplete (more
// bytes needed) or invalid (not a frame: no digits, a leading zero, no space, or a length
// above max_len).
FrameStatus parse_octet_frame(std::string_view in, std::size_t max_len, std::string_view& msg,
                              std::size_t& frame_size);

}  // namespace pc::telemetry
