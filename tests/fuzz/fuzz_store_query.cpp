// Fuzzes what `portcullis logs query` and the API take from a user: time arguments
// (store::parse_time_arg, base::parse_rfc3339), page tokens, and the filter strings of a
// query run on a small log store. Invariants: a parsed RFC 3339 time formats back to itself
// (to the millisecond); a parsed page token is made again the same way and parses back; a
// relative time is never after now; a query either fails validation with a message or
// succeeds; every record it returns contains the host and URL substrings literally (ASCII
// case ignored: LIKE's % and _ never act as wildcards), has the client and decision asked
// for, and pages come newest first.
//
// Input: fields separated by newlines: from, to, client, user, host, url, category, decision,
// threat ("-" for none), page token.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/time.h"
#include "fuzz_check.h"
#include "fuzz_scratch.h"
#include "store/query.h"
#include "store/store.h"

namespace {

using Clock = std::chrono::system_clock;

const std::filesystem::path& db() {
  static const std::filesystem::path path = [] {
    auto p = pc::fuzz::scratch_dir("pc-fuzz-store") / "logs.db";
    pc::store::Options o;
    o.path = p;
    o.retention = std::chrono::seconds(0);
    o.partition_records = 16;
    pc::store::Store store(o);
    const char* hosts[] = {"www.example.com", "a_b.example", "100%.example", "x.test", "[::1]"};
    for (int b = 0; b < 4; ++b) {
      std::vector<pc::telemetry::AccessRecord> batch;
      for (int i = 0; i < 16; ++i) {
        int k = b * 16 + i;
        pc::telemetry::AccessRecord r;
        r.time = Clock::time_point(std::chrono::seconds(1772323200 + k * 7 % 50));
        r.client = "10.0.0." + std::to_string(k % 4);
        r.user = k % 3 ? "User" + std::to_string(k % 3) : "";
        r.method = k % 5 ? "GET" : "CONNECT";
        std::string host = hosts[k % 5];
        r.url =
            k % 5 ? "http://" + host + "/p%41th_" + std::to_string(k) + "?q=a\\b" : host + ":443";
        r.decision = k % 2 ? "allow" : "block";
        r.category = k % 4 ? "news" : "";
        if (k % 9 == 0) r.threat = "T" + std::to_string(k % 2);
        batch.push_back(r);
      }
      store.insert(batch);
      while (store.maintain(Clock::time_point(std::chrono::seconds(1772323200)))) {
      }
    }
    return p;
  }();
  return path;
}

bool icontains(std::string_view hay, std::string_view needle) {
  auto low = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end(),
                     [&](char a, char b) { return low(a) == low(b); }) != hay.end();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> f;
  while (f.size() < 10) {
    auto nl = in.find('\n');
    f.emplace_back(in.substr(0, nl));
    if (nl == std::string_view::npos) break;
    in.remove_prefix(nl + 1);
  }
  f.resize(10);

  const auto now = Clock::time_point(std::chrono::seconds(1772323260));
  for (const auto& s : f) {
    Clock::time_point t;
    if (pc::base::parse_rfc3339(s, t)) {
      auto ms = std::chrono::floor<std::chrono::milliseconds>(t);
      Clock::time_point back;
      FUZZ_CHECK(pc::base::parse_rfc3339(pc::base::format_rfc3339_ms(t), back));
      FUZZ_CHECK(back == ms);
    }
    if (pc::store::parse_time_arg(s, now, t) && !s.empty() && s[0] == '-') FUZZ_CHECK(t <= now);
    std::int64_t time_us = 0, id = 0, t2 = 0, id2 = 0;
    if (pc::store::parse_page_token(s, time_us, id)) {
      FUZZ_CHECK(id > 0 && time_us >= 0);
      FUZZ_CHECK(pc::store::parse_page_token(pc::store::make_page_token(time_us, id), t2, id2));
      FUZZ_CHECK(t2 == time_us && id2 == id);
    }
  }

  pc::store::Filter filter;
  Clock::time_point t;
  if (pc::store::parse_time_arg(f[0], now, t)) filter.from = t;
  if (pc::store::parse_time_arg(f[1], now, t)) filter.to = t;
  filter.client = f[2];
  filter.user = f[3];
  filter.host = f[4];
  filter.url = f[5];
  filter.category = f[6];
  filter.decision = f[7];
  if (f[8] != "-") filter.threat = f[8];
  filter.page_token = f[9];
  filter.limit = 1 + size % 20;

  static pc::store::Reader reader;
  static bool opened = [] {
    std::string error;
    return reader.open(db(), error);
  }();
  FUZZ_CHECK(opened);
  pc::store::Page page;
  std::string error;
  bool valid = pc::store::validate(filter).empty();
  bool ok = reader.query(filter, page, error);
  FUZZ_CHECK(ok == valid);
  FUZZ_CHECK(ok || !error.empty());
  if (!ok) return 0;
  FUZZ_CHECK(page.rows.size() <= filter.limit);
  for (std::size_t i = 0; i < page.rows.size(); ++i) {
    const auto& r = page.rows[i];
    if (!filter.host.empty()) FUZZ_CHECK(icontains(r.host, filter.host));
    if (!filter.url.empty()) FUZZ_CHECK(icontains(r.record.url, filter.url));
    if (!filter.client.empty()) FUZZ_CHECK(r.record.client == filter.client);
    if (!filter.decision.empty()) FUZZ_CHECK(r.record.decision == filter.decision);
    if (filter.threat) FUZZ_CHECK(!r.record.threat.empty());
    if (i > 0) {
      const auto& p = page.rows[i - 1];
      FUZZ_CHECK(p.record.time > r.record.time || (p.record.time == r.record.time && p.id > r.id));
    }
  }
  return 0;
}
