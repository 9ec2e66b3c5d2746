#include "store/columns.h"

namespace pc::store::columns {

std::int64_t to_micros(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

std::chrono::system_clock::time_point from_micros(std::int64_t us) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::microseconds(us)));
}

namespace {
std::int64_t u64(std::uint64_t v) {  // SQLite integers are signed 64-bit
  return v > static_cast<std::uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<std::int64_t>(v);
}
telemetry::Result result_of(std::string_view s) {
  if (s == "denied") return telemetry::Result::denied;
  if (s == "error") return telemetry::Result::error;
  return telemetry::Result::allowed;
}
}  // namespace

void bind(sql::Stmt& st, const telemetry::AccessRecord& r, std::int64_t host_id) {
  st.bind(1, to_micros(r.time));
  st.bind(2, static_cast<std::int64_t>(r.duration.count()));
  st.bind_opt(3, r.request_id);
  st.bind_opt(4, r.listener);
  st.bind(5, std::int64_t{r.guest});
  st.bind_opt(6, r.client);
  st.bind_opt(7, r.user);
  st.bind_opt(8, r.groups);
  st.bind_opt(9, r.method);
  st.bind_opt(10, r.url);
  if (host_id != 0)
    st.bind(11, host_id);
  else
    st.bind_null(11);
  st.bind(12, std::int64_t{r.status});
  st.bind(13, u64(r.bytes_in));
  st.bind(14, u64(r.bytes_out));
  st.bind_opt(15, r.upstream);
  st.bind(16, std::int64_t{r.via_parent});
  st.bind_opt(17, r.content_type);
  st.bind(18, telemetry::to_string(r.result));
  st.bind_opt(19, r.reason);
  st.bind_opt(20, r.decision);
  st.bind_opt(21, r.rule);
  st.bind_opt(22, r.category);
  st.bind_opt(23, r.category_source);
  st.bind_opt(24, r.reputation);
  st.bind_opt(25, r.scan);
  st.bind_opt(26, r.threat);
  st.bind_opt(27, r.sha256);
  st.bind_opt(28, r.file_type);
  st.bind(29, std::int64_t{r.scan_cached});
  st.bind_opt(30, r.icap_client);
  st.bind_opt(31, r.icap_mode);
  st.bind(32, std::int64_t{r.icap_status});
  st.bind_opt(33, r.error);
  st.bind_opt(34, r.scan_engine);
  st.bind_opt(35, r.file_name);
  st.bind(36, u64(r.scanned_size));
}

void read(const sql::Stmt& st, int c, telemetry::AccessRecord& r) {
  r.time = from_micros(st.int64(c + 0));
  r.duration = std::chrono::microseconds(st.int64(c + 1));
  r.request_id = st.text(c + 2);
  r.listener = st.text(c + 3);
  r.guest = st.int64(c + 4) != 0;
  r.client = st.text(c + 5);
  r.user = st.text(c + 6);
  r.groups = st.text(c + 7);
  r.method = st.text(c + 8);
  r.url = st.text(c + 9);
  // c + 10: host_id
  r.status = static_cast<int>(st.int64(c + 11));
  r.bytes_in = static_cast<std::uint64_t>(st.int64(c + 12));
  r.bytes_out = static_cast<std::uint64_t>(st.int64(c + 13));
  r.upstream = st.text(c + 14);
  r.via_parent = st.int64(c + 15) != 0;
  r.content_type = st.text(c + 16);
  r.result = result_of(st.text(c + 17));
  r.reason = st.text(c + 18);
  r.decision = st.text(c + 19);
  r.rule = st.text(c + 20);
  r.category = st.text(c + 21);
  r.category_source = st.text(c + 22);
  r.reputation = st.text(c + 23);
  r.scan = st.text(c + 24);
  r.threat = st.text(c + 25);
  r.sha256 = st.text(c + 26);
  r.file_type = st.text(c + 27);
  r.scan_cached = st.int64(c + 28) != 0;
  r.icap_client = st.text(c + 29);
  r.icap_mode = st.text(c + 30);
  r.icap_status = static_cast<int>(st.int64(c + 31));
  r.error = st.text(c + 32);
  r.scan_engine = st.text(c + 33);
  r.file_name = st.text(c + 34);
  r.scanned_size = static_cast<std::uint64_t>(st.int64(c + 35));
}

}  // namespace pc::store::columns
