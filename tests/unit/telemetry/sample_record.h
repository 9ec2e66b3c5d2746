// The access record the telemetry tests format: a plain allowed GET (2024-01-02T03:04:05.678901Z,
// 12.345 ms, 120 bytes in, 4567 out).
#pragma once

#include <chrono>

#include "telemetry/record.h"

namespace pc::telemetry::testing {

inline AccessRecord sample_record() {
  using namespace std::chrono_literals;
  AccessRecord r;
  r.time = std::chrono::system_clock::time_point(1704164645s + 678901us);
  r.duration = 12345us;
  r.request_id = "abcd1234-1";
  r.listener = "proxy";
  r.client = "192.0.2.9";
  r.method = "GET";
  r.url = "http://example.com/a?b=c";
  r.status = 200;
  r.bytes_in = 120;
  r.bytes_out = 4567;
  r.upstream = "93.184.216.34:80";
  r.content_type = "text/html";
  return r;
}

}  // namespace pc::telemetry::testing
