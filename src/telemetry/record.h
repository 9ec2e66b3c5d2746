// The access record: one per transaction, proxy and ICAP alike (docs/logging.md describes
// every field). Filled on a worker, moved into the log queue, formatted on the writer thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace pc::telemetry {

enum class Result : std::uint8_t { allowed, denied, error };
std::string_view to_string(Result r);

// Kept small on purpose: workers fill one per transaction, so a field costs an allocation
// only when its value is longer than the small-string buffer. What can be derived (scheme,
// host and path from url; the gateway name from the configuration) is derived when the
// record is formatted, not stored.
struct AccessRecord {
  std::chrono::system_clock::time_point time;  // transaction start
  std::chrono::microseconds duration{0};
  std::string request_id;
  std::string listener;
  bool guest = false;
  std::string client;  // the end user's address (ICAP: X-Client-IP, else the ICAP client)
  std::string user;    // the user, when known (ICAP identity fields)
  std::string groups;  // the user's groups, comma-separated, when known
  std::string method;
  std::string url;  // absolute URL, or the request-target as received (CONNECT: host:port)
  int status = 0;
  std::uint64_t bytes_in = 0;   // from the client (head + body): "up"
  std::uint64_t bytes_out = 0;  // to the client (head + body): "down"
  std::string upstream;         // address:port the request went to (parent or origin)
  bool via_parent = false;      // upstream is a parent proxy
  std::string content_type;
  Result result = Result::allowed;
  std::string reason;  // why denied or what failed; empty when allowed normally
  std::string error;   // what went wrong, when something did (empty otherwise)
  // The policy's decision and why (empty when no decision was made, e.g. a parse error).
  std::string decision;         // allow | block | warn | monitor | allow_no_scan
  std::string rule;             // rule name, "approved list", "blocked list" or "default"
  std::string category;         // first matched category
  std::string category_source;  // "name version" of the database it came from
  std::string reputation;       // dangerous | highly suspicious | suspicious | untested
  // Scanning (empty when the body was not scanned)
  std::string scan;                // clean | infected | unscannable | error | not scanned
  std::string threat;              // threat name when infected
  std::string sha256;              // of the scanned body
  std::string file_type;           // true file type ("exe", "zip", ...)
  std::string scan_engine;         // the engine that found the threat ("clamav", "yara")
  std::string file_name;           // the file's name, when known (Content-Disposition, URL)
  std::uint64_t scanned_size = 0;  // bytes scanned
  bool scan_cached = false;
  // ICAP transactions only (empty / 0 for the proxy)
  std::string icap_client;  // the ICAP client's address
  std::string icap_mode;    // reqmod | respmod | options
  int icap_status = 0;      // the ICAP status answered (200, 204, 400, ...)
};

// Security events: records that are also written to the security stream.
//   threat        a threat was found in a body
//   block         the gateway refused the transaction (policy rule or list, warn page,
//                 client ACL, a refused response, a body blocked by the failure mode)
//   policy_error  the policy could not be applied as written: the body was not scanned
//                 because of the gateway itself (scan verdict "error"), whatever followed
//   none          an ordinary access record
enum class Event : std::uint8_t { none, block, threat, policy_error };
Event security_event(const AccessRecord& r);
std::string_view to_string(Event e);  // "access" for none

// scheme, host and path (with the query) of r.url, as views into it. Absolute URLs are
// split; CONNECT's "host:port" gives scheme "https" (as the policy sees it) and no path; an
// origin-form target (to the gateway itself) gives only a path.
struct UrlParts {
  std::string_view scheme, host, path;
};
UrlParts split_url(std::string_view url, std::string_view method);

}  // namespace pc::telemetry
