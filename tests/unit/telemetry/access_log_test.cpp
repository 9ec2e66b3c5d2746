// telemetry: record formats, the AccessLog writer and its file sinks.
#include "telemetry/access_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "sample_record.h"

namespace pc::telemetry {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using testing::sample_record;

TEST(FormatJson, AllFields) {
  EXPECT_EQ(format_json(sample_record(), "gw1"),
            "{\"time\":\"2024-01-02T03:04:05.678Z\",\"duration_ms\":12.345,"
            "\"request_id\":\"abcd1234-1\",\"gateway\":\"gw1\",\"listener\":\"proxy\","
            "\"guest\":false,\"client\":\"192.0.2.9\",\"method\":\"GET\","
            "\"url\":\"http://example.com/a?b=c\",\"scheme\":\"http\",\"host\":\"example.com\","
            "\"path\":\"/a?b=c\",\"status\":200,\"bytes_in\":120,\"bytes_out\":4567,"
            "\"upstream\":\"93.184.216.34:80\",\"content_type\":\"text/html\","
            "\"result\":\"allowed\",\"reason\":\"\",\"decision\":\"\",\"rule\":\"\","
            "\"category\":\"\",\"category_source\":\"\",\"reputation\":\"\"}\n");
}

TEST(FormatJson, PolicyFields) {
  auto r = sample_record();
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
  auto r = sample_record();
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
  auto r = sample_record();
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
  auto r = sample_record();
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
  EXPECT_EQ(format_squid(sample_record()),
            "1704164645.678     12 192.0.2.9 TCP_MISS/200 4567 GET http://example.com/a?b=c - "
            "HIER_DIRECT/93.184.216.34:80 text/html\n");
}

TEST(FormatSquid, CodesAndEmptyFields) {
  auto r = sample_record();
  r.method = "CONNECT";
  r.url = "example.com:443";
  r.content_type.clear();
  auto s = format_squid(r);
  EXPECT_NE(s.find(" TCP_TUNNEL/200 "), std::string::npos) << s;
  EXPECT_TRUE(s.ends_with(" -\n")) << s;

  r = sample_record();
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
  auto r = sample_record();
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
  auto r = sample_record();
  r.time = std::chrono::system_clock::time_point(1704164645s + 5ms);
  r.duration = 1234567890us;
  auto s = format_squid(r);
  EXPECT_TRUE(s.starts_with("1704164645.005 1234567 ")) << s;
}

TEST(FormatJson, ScanAndSecurityFields) {
  auto r = sample_record();
  r.result = Result::denied;
  r.status = 403;
  r.scan = "infected";
  r.threat = "Eicar-Test-Signature";
  r.sha256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
  r.file_type = "text";
  r.scan_engine = "clamav";
  r.file_name = "eicar.com";
  r.scanned_size = 68;
  auto j = format_json(r);
  EXPECT_NE(
      j.find("\"event\":\"threat\",\"scan\":\"infected\",\"threat\":\"Eicar-Test-Signature\","
             "\"sha256\":\"275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f\","
             "\"file_type\":\"text\",\"scan_engine\":\"clamav\",\"file_name\":\"eicar.com\","
             "\"scanned_size\":68,\"scan_cached\":false"),
      std::string::npos)
      << j;
  r = sample_record();
  r.error = "DNS lookup failed";
  r.result = Result::error;
  j = format_json(r);
  EXPECT_NE(j.find("\"reason\":\"\",\"error\":\"DNS lookup failed\",\"decision\""),
            std::string::npos)
      << j;
  EXPECT_EQ(j.find("\"event\""), std::string::npos) << j;  // an error is not a security event
}

TEST(FormatJson, IcapFields) {
  auto r = sample_record();
  r.icap_client = "192.0.2.1";
  r.icap_mode = "respmod";
  r.icap_status = 204;
  r.user = "alice";
  r.groups = "staff,admins";
  auto j = format_json(r);
  EXPECT_NE(j.find("\"client\":\"192.0.2.9\",\"user\":\"alice\",\"groups\":\"staff,admins\","),
            std::string::npos)
      << j;
  EXPECT_TRUE(
      j.ends_with(",\"icap_client\":\"192.0.2.1\",\"icap_mode\":\"respmod\","
                  "\"icap_status\":204}\n"))
      << j;
}

TEST(FormatJson, TimeAndDurationEdges) {
  auto r = sample_record();
  r.time = std::chrono::system_clock::time_point(1704164645s + 999999us);
  r.duration = 7us;
  auto j = format_json(r);
  EXPECT_TRUE(j.starts_with("{\"time\":\"2024-01-02T03:04:05.999Z\",\"duration_ms\":0.007,")) << j;
  // The cached second must not leak into the next second's records.
  r.time = std::chrono::system_clock::time_point(1704164646s);
  r.duration = 1234567891us;
  j = format_json(r);
  EXPECT_TRUE(j.starts_with("{\"time\":\"2024-01-02T03:04:06.000Z\",\"duration_ms\":1234567.891,"))
      << j;
  r.time = std::chrono::system_clock::time_point(951782400s);  // 2000-02-29T00:00:00Z
  EXPECT_TRUE(format_json(r).starts_with("{\"time\":\"2000-02-29T00:00:00.000Z\""))
      << format_json(r);
}

TEST(SplitUrl, Forms) {
  auto p = split_url("http://Example.com:8080/a/b?c=d#f", "GET");
  EXPECT_EQ(p.scheme, "http");
  EXPECT_EQ(p.host, "Example.com");
  EXPECT_EQ(p.path, "/a/b?c=d#f");
  p = split_url("https://[2001:db8::1]:443/x", "GET");
  EXPECT_EQ(p.host, "2001:db8::1");
  EXPECT_EQ(p.path, "/x");
  p = split_url("http://user:pw@host.example?q", "GET");
  EXPECT_EQ(p.host, "host.example");
  EXPECT_EQ(p.path, "?q");
  p = split_url("example.com:443", "CONNECT");
  EXPECT_EQ(p.scheme, "https");
  EXPECT_EQ(p.host, "example.com");
  EXPECT_EQ(p.path, "");
  p = split_url("[::1]:8443", "CONNECT");
  EXPECT_EQ(p.host, "::1");
  p = split_url("/index.html", "GET");
  EXPECT_EQ(p.scheme, "");
  EXPECT_EQ(p.host, "");
  EXPECT_EQ(p.path, "/index.html");
  p = split_url("", "-");
  EXPECT_EQ(p.path, "");
  p = split_url("/a://b", "GET");  // "://" after the first "/" is part of a path
  EXPECT_EQ(p.scheme, "");
  EXPECT_EQ(p.path, "/a://b");
}

TEST(SecurityEvent, Classification) {
  auto r = sample_record();
  EXPECT_EQ(security_event(r), Event::none);
  r.result = Result::denied;
  EXPECT_EQ(security_event(r), Event::block);
  r.threat = "Eicar";
  EXPECT_EQ(security_event(r), Event::threat);
  r = sample_record();
  r.scan = "error";
  EXPECT_EQ(security_event(r), Event::policy_error);
  r = sample_record();
  r.result = Result::error;
  EXPECT_EQ(security_event(r), Event::none);
  EXPECT_EQ(to_string(Event::policy_error), "policy_error");
  EXPECT_EQ(to_string(Event::none), "access");
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
  // An access log with one file sink (kept in file_ for set_format).
  std::unique_ptr<AccessLog> make(const fs::path& path, Format f,
                                  std::size_t limit = AccessLog::kQueueLimit) {
    std::vector<std::unique_ptr<LogSink>> sinks;
    auto s = std::make_unique<FileSink>("access_log", path, f, FileSink::Filter::all, "gw");
    file_ = s.get();
    sinks.push_back(std::move(s));
    return std::make_unique<AccessLog>(std::move(sinks), limit);
  }
  static std::uint64_t written(const AccessLog& log) { return log.sink_stats().at(0).written; }
  fs::path dir_;
  FileSink* file_ = nullptr;
};

TEST_F(AccessLogFile, WritesRecordsAndFlushes) {
  auto path = dir_ / "sub" / "dir" / "access.log";  // folders are created
  auto log = make(path, Format::json);
  for (int i = 0; i < 100; ++i) {
    auto r = sample_record();
    r.request_id = "id-" + std::to_string(i);
    log->submit(std::move(r));
  }
  log->flush();
  EXPECT_EQ(written(*log), 100u);
  EXPECT_EQ(log->dropped(), 0u);
  auto st = log->sink_stats();
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].name, "access_log");
  EXPECT_TRUE(st[0].connected);
  EXPECT_EQ(st[0].dropped, 0u);
  auto ls = read_lines(path);
  ASSERT_EQ(ls.size(), 100u);
  for (int i = 0; i < 100; ++i) {
    EXPECT_NE(
        ls[static_cast<std::size_t>(i)].find("\"request_id\":\"id-" + std::to_string(i) + "\""),
        std::string::npos);
    EXPECT_NE(ls[static_cast<std::size_t>(i)].find("\"gateway\":\"gw\""), std::string::npos);
  }
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::others_all, fs::perms::none);
}

TEST_F(AccessLogFile, ManyBatchesFromManyThreadsKeepEveryRecord) {
  // More records than one batch, from several threads: each appears once, and each thread's
  // records stay in the order it submitted them.
  auto path = dir_ / "access.log";
  auto log = make(path, Format::json);
  constexpr int kThreads = 4, kEach = 3000;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        auto r = sample_record();
        r.request_id = std::to_string(t) + "-" + std::to_string(i);
        log->submit(std::move(r));
      }
    });
  for (auto& t : ts) t.join();
  log->flush();
  EXPECT_EQ(written(*log) + log->dropped(), static_cast<std::uint64_t>(kThreads * kEach));
  EXPECT_EQ(log->dropped(), 0u);
  std::vector<int> next(kThreads, 0);
  for (const auto& l : read_lines(path)) {
    auto at = l.find("\"request_id\":\"") + 14;
    auto id = l.substr(at, l.find('"', at) - at);
    int t = std::stoi(id.substr(0, id.find('-')));
    int i = std::stoi(id.substr(id.find('-') + 1));
    ASSERT_EQ(i, next[static_cast<std::size_t>(t)]) << l;
    ++next[static_cast<std::size_t>(t)];
  }
  for (int n : next) EXPECT_EQ(n, kEach);
}

TEST_F(AccessLogFile, ALargeBatchIsWrittenWholeAndInOrder) {
  // The backlog of a stall: many times the size the sink writes at once.
  auto path = dir_ / "access.log";
  FileSink sink("access_log", path, Format::json, FileSink::Filter::all, "gw");
  auto records = std::make_shared<Records>();
  constexpr int kRecords = 5000;  // about 3 MB formatted
  for (int i = 0; i < kRecords; ++i) {
    auto r = sample_record();
    r.request_id = "big-" + std::to_string(i);
    r.url = "http://example.com/" + std::string(300, 'p');
    records->push_back(std::move(r));
  }
  sink.write(records);
  EXPECT_EQ(sink.stats().written, static_cast<std::uint64_t>(kRecords));
  EXPECT_EQ(sink.stats().dropped, 0u);
  auto ls = read_lines(path);
  ASSERT_EQ(ls.size(), static_cast<std::size_t>(kRecords));
  for (int i = 0; i < kRecords; ++i)
    ASSERT_NE(
        ls[static_cast<std::size_t>(i)].find("\"request_id\":\"big-" + std::to_string(i) + "\""),
        std::string::npos);
}

TEST_F(AccessLogFile, AppendsToAnExistingFile) {
  auto path = dir_ / "access.log";
  {
    std::ofstream o(path);
    o << "old line\n";
  }
  {
    auto log = make(path, Format::squid);
    log->submit(sample_record());
    log->flush();
  }
  auto ls = read_lines(path);
  ASSERT_EQ(ls.size(), 2u);
  EXPECT_EQ(ls[0], "old line");
  EXPECT_NE(ls[1].find("TCP_MISS/200"), std::string::npos);
}

TEST_F(AccessLogFile, DestructorWritesWhatIsQueued) {
  auto path = dir_ / "access.log";
  {
    auto log = make(path, Format::json);
    for (int i = 0; i < 50; ++i) log->submit(sample_record());
  }
  EXPECT_EQ(read_lines(path).size(), 50u);
}

TEST_F(AccessLogFile, SetFormatSwitchesFormat) {
  auto path = dir_ / "access.log";
  auto log = make(path, Format::json);
  log->submit(sample_record());
  log->flush();
  file_->set_format(Format::squid);
  log->submit(sample_record());
  log->flush();
  auto ls = read_lines(path);
  ASSERT_EQ(ls.size(), 2u);
  EXPECT_EQ(ls[0].front(), '{');
  EXPECT_EQ(ls[1].rfind("1704164645.678", 0), 0u);
}

TEST_F(AccessLogFile, ReopenAfterRename) {
  auto path = dir_ / "access.log";
  auto rotated = dir_ / "access.log.1";
  auto log = make(path, Format::json);
  log->submit(sample_record());
  log->flush();
  fs::rename(path, rotated);
  // Until reopen the old (renamed) file keeps receiving records.
  log->submit(sample_record());
  log->flush();
  EXPECT_FALSE(fs::exists(path));
  log->reopen();
  auto r = sample_record();
  r.request_id = "after-reopen";
  log->submit(std::move(r));
  log->flush();
  auto old_lines = read_lines(rotated);
  auto new_lines = read_lines(path);
  EXPECT_EQ(old_lines.size(), 2u);
  ASSERT_EQ(new_lines.size(), 1u);
  EXPECT_NE(new_lines[0].find("after-reopen"), std::string::npos);
  EXPECT_EQ(written(*log), 3u);
}

TEST_F(AccessLogFile, ReopenWithoutRecordsCreatesTheFile) {
  auto path = dir_ / "access.log";
  auto log = make(path, Format::json);
  log->flush();
  fs::rename(path, dir_ / "old");
  log->reopen();
  // The writer reopens on its own thread.
  for (int i = 0; i < 100 && !fs::exists(path); ++i) std::this_thread::sleep_for(10ms);
  log->flush();
  EXPECT_TRUE(fs::exists(path));
}

TEST_F(AccessLogFile, UnopenableFileCountsDrops) {
  fs::create_directories(dir_ / "a-directory");
  auto log = make(dir_ / "a-directory", Format::json);  // open(2) of a directory for writing fails
  for (int i = 0; i < 3; ++i) log->submit(sample_record());
  log->flush();
  auto st = log->sink_stats().at(0);
  EXPECT_FALSE(st.connected);
  EXPECT_EQ(st.dropped, 3u);
  EXPECT_EQ(st.written, 0u);
}

TEST_F(AccessLogFile, QueueLimitDropsAndCounts) {
  // A limit of 0: every submit is a drop.
  auto path = dir_ / "access.log";
  auto log = make(path, Format::json, 0);
  for (int i = 0; i < 10; ++i) log->submit(sample_record());
  log->flush();
  EXPECT_EQ(log->dropped(), 10u);
  EXPECT_EQ(written(*log), 0u);
  EXPECT_TRUE(read_lines(path).empty());
}

TEST_F(AccessLogFile, QueueLimitWhileTheWriterIsBusy) {
  // The writer blocks writing into a full pipe; the queue fills to its limit, the rest drop.
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  auto path = fs::path("/proc/self/fd") / std::to_string(fds[1]);
  std::thread reader;
  {
    auto log = make(path, Format::json, 8);
    auto big = sample_record();
    big.url.assign(200000, 'a');  // larger than the pipe buffer: the write blocks
    log->submit(std::move(big));
    // Give the writer time to take the big record and get stuck in write().
    std::this_thread::sleep_for(300ms);
    for (int i = 0; i < 20; ++i) log->submit(sample_record());
    EXPECT_EQ(log->dropped(), 12u);
    EXPECT_EQ(written(*log), 0u);
    reader = std::thread([fd = fds[0]] {
      char buf[65536];
      while (::read(fd, buf, sizeof buf) > 0) {
      }
    });
    log->flush();
    EXPECT_EQ(written(*log), 9u);
    EXPECT_EQ(log->dropped(), 12u);
    ::close(fds[1]);
  }  // the log closes its own descriptor: the reader sees the end
  reader.join();
  ::close(fds[0]);
}

TEST_F(AccessLogFile, SecurityFileGetsOnlySecurityEvents) {
  std::vector<std::unique_ptr<LogSink>> sinks;
  sinks.push_back(std::make_unique<FileSink>("access_log", dir_ / "access.log", Format::squid,
                                             FileSink::Filter::all, "gw"));
  sinks.push_back(std::make_unique<FileSink>("security_log", dir_ / "security.log", Format::json,
                                             FileSink::Filter::security, "gw"));
  AccessLog log(std::move(sinks));
  auto ok = sample_record();
  auto blocked = sample_record();
  blocked.request_id = "blocked";
  blocked.result = Result::denied;
  blocked.status = 403;
  auto threat = sample_record();
  threat.request_id = "threat";
  threat.threat = "Eicar";
  threat.scan = "infected";
  auto failed = sample_record();
  failed.request_id = "scan-error";
  failed.scan = "error";
  for (auto* r : {&ok, &blocked, &threat, &failed, &ok}) log.submit(AccessRecord(*r));
  log.flush();
  EXPECT_EQ(read_lines(dir_ / "access.log").size(), 5u);
  auto sec = read_lines(dir_ / "security.log");
  ASSERT_EQ(sec.size(), 3u);
  EXPECT_NE(sec[0].find("\"request_id\":\"blocked\""), std::string::npos);
  EXPECT_NE(sec[0].find("\"event\":\"block\""), std::string::npos);
  EXPECT_NE(sec[1].find("\"event\":\"threat\""), std::string::npos);
  EXPECT_NE(sec[2].find("\"event\":\"policy_error\""), std::string::npos);
  auto st = log.sink_stats();
  ASSERT_EQ(st.size(), 2u);
  EXPECT_EQ(st[0].written, 5u);
  EXPECT_EQ(st[1].name, "security_log");
  EXPECT_EQ(st[1].written, 3u);
}

// A sink that keeps the batches it is given (as a sink with its own thread would).
class KeepingSink : public LogSink {
 public:
  void write(const Batch& b) override { kept.push_back(b); }
  SinkStats stats() const override { return {"keeping", 0, 0, 0, true}; }
  std::vector<Batch> kept;
};

TEST(AccessLogSinks, BatchesAreSharedNotCopied) {
  auto keep = std::make_unique<KeepingSink>();
  auto* k = keep.get();
  std::vector<std::unique_ptr<LogSink>> sinks;
  sinks.push_back(std::move(keep));
  AccessLog log(std::move(sinks));
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 5; ++i) {
      auto r = sample_record();
      r.request_id = std::to_string(round) + "-" + std::to_string(i);
      log.submit(std::move(r));
    }
    log.flush();
  }
  std::vector<std::string> ids;
  for (const auto& b : k->kept)
    for (const auto& r : *b) ids.push_back(r.request_id);
  // A kept batch is never reused for later records.
  ASSERT_EQ(ids.size(), 15u);
  EXPECT_EQ(ids.front(), "0-0");
  EXPECT_EQ(ids.back(), "2-4");
}

TEST(AccessLogOff, NoSinksDisablesTheLog) {
  AccessLog log({});
  log.submit(sample_record());
  log.flush();  // returns at once
  log.reopen();
  EXPECT_TRUE(log.sink_stats().empty());
  EXPECT_EQ(log.dropped(), 0u);
}

}  // namespace
}  // namespace pc::telemetry
