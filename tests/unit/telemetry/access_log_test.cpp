// telemetry: record formats and the AccessLog writer.
#include "telemetry/access_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace pc::telemetry {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

AccessRecord sample() {
  AccessRecord r;
  // 2024-01-02T03:04:05.678901Z
  r.time = std::chrono::system_clock::time_point(1704164645s + 678901us);
  r.duration = 12345us;
  r.request_id = "abcd1234-1";
  r.listener = "proxy";
  r.guest = false;
  r.client = "192.0.2.9";
  r.method = "GET";
  r.url = "http://example.com/a?b=c";
  r.status = 200;
  r.bytes_in = 120;
  r.bytes_out = 4567;
  r.upstream = "93.184.216.34:80";
  r.content_type = "text/html";
  r.result = Result::allowed;
  return r;
}

TEST(FormatJson, AllFields) {
  EXPECT_EQ(format_json(sample()),
            "{\"time\":\"2024-01-02T03:04:05.678Z\",\"duration_ms\":12.345,"
            "\"request_id\":\"abcd1234-1\",\"listener\":\"proxy\",\"guest\":false,"
            "\"client\":\"192.0.2.9\",\"method\":\"GET\",\"url\":\"http://example.com/a?b=c\","
            "\"status\":200,\"bytes_in\":120,\"bytes_out\":4567,"
            "\"upstream\":\"93.184.216.34:80\",\"content_type\":\"text/html\","
            "\"result\":\"allowed\",\"reason\":\"\",\"decision\":\"\",\"rule\":\"\","
            "\"category\":\"\",\"category_source\":\"\",\"reputation\":\"\"}\n");
}

TEST(FormatJson, PolicyFields) {
  auto r = sample();
  r.decision = "block";
  r.rule = "No \"gambling\"";
  r.category = "gambling";
  r.category_source = "ut1 2026-11-01";
  r.reputation = "untested";
  auto j = format_json(r);
  EXPECT_NE(
      j.find("\"decision\":\"block\",\"rule\":\"No \\\"gambling\\\"\",\"category\":\"gambling\","
             "\"category_source\":\"ut1 2026-11-01\",\"reputation\":\"untested\""),
      std::string::npos)
      << j;
}

TEST(FormatJson, GuestAndResult) {
  auto r = sample();
  r.guest = true;
  r.result = Result::denied;
  r.reason = "client address not allowed";
  auto j = format_json(r);
  EXPECT_NE(j.find("\"guest\":true"), std::string::npos);
  EXPECT_NE(j.find("\"result\":\"denied\""), std::string::npos);
  EXPECT_NE(j.find("\"reason\":\"client address not allowed\""), std::string::npos);
  r.result = Result::error;
  EXPECT_NE(format_json(r).find("\"result\":\"error\""), std::string::npos);
  EXPECT_EQ(to_string(Result::allowed), "allowed");
}

TEST(FormatJson, Escaping) {
  auto r = sample();
  r.url = std::string("http://x/\"q\"\\b\n\r\t\x01\x1f\x7f") + std::string(1, '\0') + "end";
  auto j = format_json(r);
  EXPECT_NE(j.find("\"url\":\"http://x/\\\"q\\\"\\\\b\\n\\r\\t\\u0001\\u001f\\u007f\\u0000end\""),
            std::string::npos)
      << j;
  // One record, one line.
  EXPECT_EQ(j.find('\n'), j.size() - 1);
  EXPECT_EQ(j.find('\r'), std::string::npos);
}

TEST(FormatJson, NonAsciiKept) {
  auto r = sample();
  r.url = "http://example.com/caf\xc3\xa9/\xe2\x82\xac";
  r.reason = "\xff\xfe";  // not UTF-8: passed through byte for byte
  auto j = format_json(r);
  EXPECT_NE(j.find("\"url\":\"http://example.com/caf\xc3\xa9/\xe2\x82\xac\""), std::string::npos);
  EXPECT_NE(j.find("\"reason\":\"\xff\xfe\""), std::string::npos);
}

TEST(FormatJson, EmptyStrings) {
  AccessRecord r;
  auto j = format_json(r);
  EXPECT_NE(j.find("\"time\":\"1970-01-01T00:00:00.000Z\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"duration_ms\":0.000"), std::string::npos);
  EXPECT_NE(j.find("\"method\":\"\""), std::string::npos);
  EXPECT_NE(j.find("\"status\":0"), std::string::npos);
}

TEST(FormatSquid, Fields) {
  EXPECT_EQ(format_squid(sample()),
            "1704164645.678     12 192.0.2.9 TCP_MISS/200 4567 GET http://example.com/a?b=c - "
            "HIER_DIRECT/93.184.216.34:80 text/html\n");
}

TEST(FormatSquid, CodesAndEmptyFields) {
  auto r = sample();
  r.method = "CONNECT";
  r.url = "example.com:443";
  r.content_type.clear();
  auto s = format_squid(r);
  EXPECT_NE(s.find(" TCP_TUNNEL/200 "), std::string::npos) << s;
  EXPECT_TRUE(s.ends_with(" -\n")) << s;

  r = sample();
  r.result = Result::denied;
  r.status = 403;
  r.upstream.clear();
  s = format_squid(r);
  EXPECT_NE(s.find(" TCP_DENIED/403 "), std::string::npos) << s;
  EXPECT_NE(s.find(" HIER_NONE/- "), std::string::npos) << s;

  r.result = Result::error;
  r.status = 502;
  EXPECT_NE(format_squid(r).find(" TAG_NONE/502 "), std::string::npos);
}

TEST(FormatSquid, WhiteSpaceInFieldsIsEncoded) {
  auto r = sample();
  r.url = "http://x/a b\tc\nd";
  r.content_type = "text/html; charset=utf-8";
  auto s = format_squid(r);
  EXPECT_NE(s.find(" http://x/a%20b%09c%0Ad "), std::string::npos) << s;
  EXPECT_TRUE(s.ends_with(" text/html;%20charset=utf-8\n")) << s;
  // Always 10 space-separated fields.
  std::istringstream in(s);
  std::vector<std::string> f;
  for (std::string w; in >> w;) f.push_back(w);
  EXPECT_EQ(f.size(), 10u) << s;
}

TEST(FormatSquid, LongDurationsAndMillisecondPadding) {
  auto r = sample();
  r.time = std::chrono::system_clock::time_point(1704164645s + 5ms);
  r.duration = 1234567890us;
  auto s = format_squid(r);
  EXPECT_TRUE(s.starts_with("1704164645.005 1234567 ")) << s;
}

// ---- the writer ----

class AccessLogFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pc-access-log-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  static std::vector<std::string> read_lines(const fs::path& p) {
    std::ifstream in(p);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  }
  fs::path dir_;
};

TEST_F(AccessLogFile, WritesRecordsAndFlushes) {
  auto path = dir_ / "sub" / "dir" / "access.log";  // folders are created
  AccessLog log(path, Format::json);
  for (int i = 0; i < 100; ++i) {
    auto r = sample();
    r.request_id = "id-" + std::to_string(i);
    log.submit(std::move(r));
  }
  log.flush();
  EXPECT_EQ(log.written(), 100u);
  EXPECT_EQ(log.dropped(), 0u);
  auto ls = read_lines(path);
  ASSERT_EQ(ls.size(), 100u);
  for (int i = 0; i < 100; ++i)
    EXPECT_NE(
        ls[static_cast<std::size_t>(i)].find("\"request_id\":\"id-" + std::to_string(i) + "\""),
        std::string::npos);
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::others_all, fs::perms::none);
}

TEST_F(AccessLogFile, AppendsToAnExistingFile) {
  auto path = dir_ / "access.log";
  {
    std::ofstream o(path);
    o << "old line\n";
  }
  {
    AccessLog log(path, Format::squid);
    log.submit(sample());
    log.flush();
  }
  auto ls = read_lines(path);
  ASSERT_EQ(ls.size(), 2u);
  EXPECT_EQ(ls[0], "old line");
  EXPECT_NE(ls[1].find("TCP_MISS/200"), std::string::npos);
}

TEST_F(AccessLogFile, DestructorWritesWhatIsQueued) {
  auto path = dir_ / "access.log";
  {
    AccessLog log(path, Format::json);
    for (int i = 0; i < 50; ++i) log.submit(sample());
  }
  EXPECT_EQ(read_lines(path).size(), 50u);
}

TEST_F(AccessLogFile, SetFormatSwitchesFormat) {
  auto path = dir_ / "access.log";
  AccessLog log(path, Format::json);
  log.submit(sample());
  log.flush();
  log.set_format(Format::squid);
  log.submit(sample());
  log.flush();
  auto ls = read_lines(path);
  ASSERT_EQ(ls.size(), 2u);
  EXPECT_EQ(ls[0].front(), '{');
  EXPECT_EQ(ls[1].rfind("1704164645.678", 0), 0u);
}

TEST_F(AccessLogFile, ReopenAfterRename) {
  auto path = dir_ / "access.log";
  auto rotated = dir_ / "access.log.1";
  AccessLog log(path, Format::json);
  log.submit(sample());
  log.flush();
  fs::rename(path, rotated);
  // Until reopen the old (renamed) file keeps receiving records.
  log.submit(sample());
  log.flush();
  EXPECT_FALSE(fs::exists(path));
  log.reopen();
  auto r = sample();
  r.request_id = "after-reopen";
  log.submit(std::move(r));
  log.flush();
  auto old_lines = read_lines(rotated);
  auto new_lines = read_lines(path);
  EXPECT_EQ(old_lines.size(), 2u);
  ASSERT_EQ(new_lines.size(), 1u);
  EXPECT_NE(new_lines[0].find("after-reopen"), std::string::npos);
  EXPECT_EQ(log.written(), 3u);
}

TEST_F(AccessLogFile, ReopenWithoutRecordsCreatesTheFile) {
  auto path = dir_ / "access.log";
  AccessLog log(path, Format::json);
  log.flush();
  fs::rename(path, dir_ / "old");
  log.reopen();
  // The writer reopens on its own thread.
  for (int i = 0; i < 100 && !fs::exists(path); ++i) std::this_thread::sleep_for(10ms);
  log.flush();
  EXPECT_TRUE(fs::exists(path));
}

TEST_F(AccessLogFile, QueueLimitDropsAndCounts) {
  // A limit of 0: every submit is a drop.
  auto path = dir_ / "access.log";
  AccessLog log(path, Format::json, 0);
  for (int i = 0; i < 10; ++i) log.submit(sample());
  log.flush();
  EXPECT_EQ(log.dropped(), 10u);
  EXPECT_EQ(log.written(), 0u);
  EXPECT_TRUE(read_lines(path).empty());
}

TEST_F(AccessLogFile, QueueLimitWhileTheWriterIsBusy) {
  // The writer blocks writing into a full pipe; the queue fills to its limit, the rest drop.
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  auto path = fs::path("/proc/self/fd") / std::to_string(fds[1]);
  std::thread reader;
  {
    AccessLog log(path, Format::json, 8);
    auto big = sample();
    big.url.assign(200000, 'a');  // larger than the pipe buffer: the write blocks
    log.submit(std::move(big));
    // Give the writer time to take the big record and get stuck in write().
    std::this_thread::sleep_for(300ms);
    for (int i = 0; i < 20; ++i) log.submit(sample());
    EXPECT_EQ(log.dropped(), 12u);
    EXPECT_EQ(log.written(), 0u);
    reader = std::thread([fd = fds[0]] {
      char buf[65536];
      while (::read(fd, buf, sizeof buf) > 0) {
      }
    });
    log.flush();
    EXPECT_EQ(log.written(), 9u);
    EXPECT_EQ(log.dropped(), 12u);
    ::close(fds[1]);
  }  // the log closes its own descriptor: the reader sees the end
  reader.join();
  ::close(fds[0]);
}

TEST(AccessLogOff, EmptyPathDisablesTheLog) {
  AccessLog log("", Format::json);
  log.submit(sample());
  log.flush();  // returns at once
  log.reopen();
  EXPECT_EQ(log.written(), 0u);
  EXPECT_EQ(log.dropped(), 0u);
}

}  // namespace
}  // namespace pc::telemetry
