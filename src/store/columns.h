// The mapping between AccessRecord and the columns of the `access` table, in one place:
// adding a record field means a migration (schema.cpp) and a line here and in columns.cpp.
#pragma once

#include <cstdint>
#include <string_view>

#include "store/sqlite.h"
#include "telemetry/access_log.h"

namespace pc::store::columns {

// The record columns of `access` (everything but id), in bind and select order.
inline constexpr std::string_view kNames =
    "time, duration_us, request_id, listener, guest, client, \"user\", \"groups\", method, url, "
    "host_id, status, bytes_in, bytes_out, upstream, via_parent, content_type, result, reason, "
    "decision, rule, category, category_source, reputation, scan, threat, sha256, file_type, "
    "scan_cached, icap_client, icap_mode, icap_status, error, scan_engine, file_name, "
    "scanned_size";
inline constexpr int kCount = 36;

// Microseconds since 1970-01-01 UTC, the unit of the `time` column.
std::int64_t to_micros(std::chrono::system_clock::time_point t);
std::chrono::system_clock::time_point from_micros(std::int64_t us);

// Binds r to parameters 1..kCount (host_id: the host table's id, or 0 for NULL). The
// record's strings are bound without copying: r must outlive the step.
void bind(sql::Stmt& st, const telemetry::AccessRecord& r, std::int64_t host_id);

// Reads the record from columns first..first+kCount-1 of the current row (host_id skipped).
void read(const sql::Stmt& st, int first, telemetry::AccessRecord& r);

}  // namespace pc::store::columns
