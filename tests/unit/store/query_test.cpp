// store: filters, pages, exports and argument parsing of the log store queries.
#include "store/query.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <set>

#include "base/cidr.h"
#include "store/store.h"
#include "store_testing.h"

namespace pc::store {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::kBase;
using testing::record;
using testing::TempDir;
using Clock = std::chrono::system_clock;

// 300 records with known fields; each test compares a query with the same condition
// evaluated here over the records.
class QueryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<TempDir>();
    path_ = dir_->path / "logs.db";
    Options o;
    o.path = path_;
    o.retention = 0s;
    o.partition_records = 100;  // three partitions: two closed and indexed, the newest
    Store store(o);
    const char* cats[] = {"news", "gambling", "social networks"};
    for (int i = 0; i < 300; ++i) {
      auto r = record(kBase + std::chrono::seconds(i));
      if (i == 11) r.time = kBase + 10s;      // same time as record 10: the id decides
      if (i == 100) r.time = kBase + 99s;     // the same across partitions
      if (i == 150) r.time = kBase + 5500ms;  // older than most of the partition before
      r.request_id = "req-" + std::to_string(i);
      r.client = i % 10 == 9 ? "2001:db8::" + std::to_string(i % 3 + 1)  // in place of .4
                             : "10.0.0." + std::to_string(i % 5);
      r.user = i % 3 == 0 ? "" : i % 3 == 1 ? "Alice" : "bob";
      r.url = "http://www.Site" + std::to_string(i % 4) + ".example/path/" + std::to_string(i);
      if (i % 50 == 0) r.url += "?q=100%_done";
      if (i == 123 || i == 160) r.url = "http://rare.example/";
      if (i % 10 == 7) {
        r.method = "CONNECT";
        r.url = "secure" + std::to_string(i % 3) + ".example:443";
      }
      r.category = i % 6 == 0 ? "" : cats[i % 3];
      r.decision = i % 4 == 0 ? "block" : "allow";
      if (i % 25 == 0)
        r.threat = "Eicar-Test-Signature";
      else if (i % 40 == 0)
        r.threat = "Win.Test.X";
      records_.push_back(r);
      ids_.push_back(i + 1);
    }
    for (std::size_t b = 0; b < 3; ++b)
      ASSERT_TRUE(store.insert(std::span(records_).subspan(b * 100, 100)));
    for (int i = 0; i < 50 && store.maintain(kBase); ++i) {
    }
    store.maintain(kBase + 2h);  // and the planner's statistics, as in service
  }
  static void TearDownTestSuite() { dir_.reset(); }

  void SetUp() override {
    std::string error;
    ASSERT_TRUE(reader_.open(path_, error)) << error;
  }

  // Pages through the query with `limit` and checks the rows against `match`.
  void expect_query(Filter f, const std::function<bool(const telemetry::AccessRecord&)>& match,
                    std::size_t limit = 7) {
    std::vector<int> want;
    for (std::size_t i = 0; i < records_.size(); ++i)
      if (match(records_[i])) want.push_back(static_cast<int>(i));
    std::sort(want.begin(), want.end(), [](int a, int b) {
      auto ta = records_[a].time, tb = records_[b].time;
      return ta != tb ? ta > tb : a > b;
    });
    std::vector<int> got;
    f.limit = limit;
    std::string error;
    for (int pages = 0; pages < 400; ++pages) {
      Page page;
      ASSERT_TRUE(reader_.query(f, page, error)) << error;
      ASSERT_LE(page.rows.size(), limit);
      for (const auto& row : page.rows) got.push_back(static_cast<int>(row.id - 1));
      if (page.next_page_token.empty()) break;
      ASSERT_EQ(page.rows.size(), limit);
      f.page_token = page.next_page_token;
    }
    EXPECT_EQ(got, want);
    EXPECT_FALSE(want.empty() && got.empty());
  }

  static std::unique_ptr<TempDir> dir_;
  static fs::path path_;
  static std::vector<telemetry::AccessRecord> records_;
  static std::vector<std::int64_t> ids_;
  Reader reader_;
};
std::unique_ptr<TempDir> QueryTest::dir_;
fs::path QueryTest::path_;
std::vector<telemetry::AccessRecord> QueryTest::records_;
std::vector<std::int64_t> QueryTest::ids_;

bool contains_nocase(std::string_view hay, std::string_view needle) {
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(),
                        [](char a, char b) { return std::tolower(a) == std::tolower(b); });
  return it != hay.end();
}

TEST_F(QueryTest, EverythingNewestFirstInPages) {
  expect_query({}, [](auto&) { return true; });
  expect_query(
      {}, [](auto&) { return true; }, 1);
  expect_query(
      {}, [](auto&) { return true; }, kMaxLimit);
}

TEST_F(QueryTest, ALastFullPageHasNoToken) {
  Filter f;
  f.limit = 300;
  Page page;
  std::string error;
  ASSERT_TRUE(reader_.query(f, page, error)) << error;
  EXPECT_EQ(page.rows.size(), 300u);
  EXPECT_TRUE(page.next_page_token.empty());
  EXPECT_EQ(page.rows[0].record.request_id, "req-299");
  // Records 10 and 11 have the same time: the later one (11) first.
  auto at = [&](int id) {
    return std::find_if(page.rows.begin(), page.rows.end(), [&](auto& r) { return r.id == id; });
  };
  EXPECT_LT(at(12), at(11));
  EXPECT_LT(at(101), at(100));
}

TEST_F(QueryTest, TimeRangeFromIncludedToExcluded) {
  Filter f;
  f.from = kBase + 100s;
  f.to = kBase + 150s;
  expect_query(f, [](auto& r) { return r.time >= kBase + 100s && r.time < kBase + 150s; });
  Filter g;
  g.from = kBase + 290s;
  expect_query(g, [](auto& r) { return r.time >= kBase + 290s; });
  Filter h;
  h.to = kBase + 12s;
  expect_query(h, [](auto& r) { return r.time < kBase + 12s; });
}

TEST_F(QueryTest, ClientExactly) {
  Filter f;
  f.client = "10.0.0.3";
  expect_query(f, [](auto& r) { return r.client == "10.0.0.3"; });
  f.client = "10.0.0.";
  Page page;
  std::string error;
  ASSERT_TRUE(reader_.query(f, page, error));
  EXPECT_TRUE(page.rows.empty());
}

TEST_F(QueryTest, ClientInNetwork) {
  auto in = [](const std::string& net) {
    return [c = *base::Cidr::parse(net)](auto& r) { return c.contains(*base::parse_ip(r.client)); };
  };
  for (const char* net :
       {"10.0.0.0/30", "10.0.0.4/32", "10.0.0.0/8", "2001:db8::/32", "2001:db8::2/127", "::/0"}) {
    SCOPED_TRACE(net);
    Filter f;
    f.client = net;
    expect_query(f, in(net));
  }
  Filter none;
  none.client = "192.168.0.0/16";
  Page page;
  std::string error;
  ASSERT_TRUE(reader_.query(none, page, error)) << error;
  EXPECT_TRUE(page.rows.empty());
  for (const char* bad : {"10.0.0.0/33", "10.0.0/8", "/8", "2001:db8::/129", "10.0.0.0/"}) {
    Filter f;
    f.client = bad;
    EXPECT_FALSE(reader_.query(f, page, error)) << bad;
    EXPECT_NE(error.find("neither an address nor a network"), std::string::npos) << error;
  }
}

TEST_F(QueryTest, UserIgnoringCase) {
  Filter f;
  f.user = "ALICE";
  expect_query(f, [](auto& r) { return r.user == "Alice"; });
}

TEST_F(QueryTest, HostSubstringIgnoringCase) {
  Filter f;
  f.host = "SITE1.";
  expect_query(
      f, [](auto& r) { return r.method != "CONNECT" && contains_nocase(r.url, "site1.example"); });
  f.host = "secure2";
  expect_query(f, [](auto& r) { return r.url.starts_with("secure2."); });
  f.host = "path";  // in the URLs, in no host
  Page page;
  std::string error;
  ASSERT_TRUE(reader_.query(f, page, error));
  EXPECT_TRUE(page.rows.empty());
}

TEST(Query, AHostSubstringMatchingManyHostNames) {
  TempDir dir;
  Options o;
  o.path = dir.path / "logs.db";
  Store store(o);
  std::vector<telemetry::AccessRecord> batch;
  for (int i = 0; i < 1200; ++i)
    batch.push_back(record(kBase + std::chrono::seconds(i),
                           "http://h" + std::to_string(i) + (i % 2 ? ".odd" : ".even") + "/"));
  ASSERT_TRUE(store.insert(batch));
  Reader reader;
  std::string error;
  ASSERT_TRUE(reader.open(o.path, error)) << error;
  Filter f;
  f.host = ".ODD";  // 600 host names: more than are passed as a list
  f.limit = kMaxLimit;
  Page page;
  ASSERT_TRUE(reader.query(f, page, error)) << error;
  ASSERT_EQ(page.rows.size(), 600u);
  EXPECT_EQ(page.rows[0].host, "h1199.odd");
  EXPECT_EQ(page.rows[599].host, "h1.odd");
  f.host = "h11";  // h11, h110-h119, h1100-h1199: a list
  ASSERT_TRUE(reader.query(f, page, error)) << error;
  EXPECT_EQ(page.rows.size(), 111u);
  f.host = "none";
  ASSERT_TRUE(reader.query(f, page, error)) << error;
  EXPECT_TRUE(page.rows.empty());
}

TEST_F(QueryTest, UrlSubstringWithLikeCharactersTakenLiterally) {
  Filter f;
  f.url = "100%_DONE";
  expect_query(f, [](auto& r) { return r.url.ends_with("?q=100%_done"); });
  f.url = "/path/1_";  // "_" is not a wildcard
  Page page;
  std::string error;
  ASSERT_TRUE(reader_.query(f, page, error));
  EXPECT_TRUE(page.rows.empty());
  f.url = "%";
  expect_query(f, [](auto& r) { return r.url.find('%') != std::string::npos; });
  f.url = "\\";
  ASSERT_TRUE(reader_.query(f, page, error));
  EXPECT_TRUE(page.rows.empty());
  f.url = "/path/12";
  expect_query(f, [](auto& r) { return r.url.find("/path/12") != std::string::npos; });
}

TEST_F(QueryTest, CategoryDecisionAndThreat) {
  Filter f;
  f.category = "social networks";
  expect_query(f, [](auto& r) { return r.category == "social networks"; });
  Filter d;
  d.decision = "block";
  expect_query(d, [](auto& r) { return r.decision == "block"; });
  Filter any;
  any.threat = "";
  expect_query(any, [](auto& r) { return !r.threat.empty(); });
  Filter named;
  named.threat = "Win.Test.X";
  expect_query(named, [](auto& r) { return r.threat == "Win.Test.X"; });
}

TEST_F(QueryTest, ConditionsCombine) {
  Filter f;
  f.decision = "allow";
  f.user = "bob";
  f.host = "site";
  f.from = kBase + 30s;
  f.to = kBase + 250s;
  expect_query(f, [](auto& r) {
    return r.decision == "allow" && r.user == "bob" && r.method != "CONNECT" &&
           r.time >= kBase + 30s && r.time < kBase + 250s;
  });
  Filter g;
  g.client = "10.0.0.0";
  g.threat = "";
  g.category = "news";
  expect_query(g, [](auto& r) {
    return r.client == "10.0.0.0" && !r.threat.empty() && r.category == "news";
  });
}

TEST_F(QueryTest, PagesContinueWhereTheyStoppedWhileRecordsArrive) {
  TempDir dir;
  Options o;
  o.path = dir.path / "live.db";
  o.retention = 0s;
  Store store(o);
  std::vector<telemetry::AccessRecord> first;
  for (int i = 0; i < 10; ++i) first.push_back(record(kBase + std::chrono::seconds(i)));
  ASSERT_TRUE(store.insert(first));
  Reader reader;
  std::string error;
  ASSERT_TRUE(reader.open(o.path, error)) << error;
  Filter f;
  f.limit = 4;
  Page p1, p2, p3;
  ASSERT_TRUE(reader.query(f, p1, error));
  auto newer = record(kBase + 100s);
  ASSERT_TRUE(store.insert({&newer, 1}));  // visible to the reader at once (WAL)
  f.page_token = p1.next_page_token;
  ASSERT_TRUE(reader.query(f, p2, error));
  f.page_token = p2.next_page_token;
  ASSERT_TRUE(reader.query(f, p3, error));
  std::vector<std::int64_t> ids;
  for (auto* p : {&p1, &p2, &p3})
    for (auto& r : p->rows) ids.push_back(r.id);
  EXPECT_EQ(ids, (std::vector<std::int64_t>{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}));
  EXPECT_TRUE(p3.next_page_token.empty());
  Page fresh;
  f.page_token.clear();
  ASSERT_TRUE(reader.query(f, fresh, error));
  EXPECT_EQ(fresh.rows[0].id, 11);
}

TEST_F(QueryTest, InvalidFiltersAreRefused) {
  Page page;
  std::string error;
  Filter f;
  f.limit = 0;
  EXPECT_FALSE(reader_.query(f, page, error));
  EXPECT_NE(error.find("limit"), std::string::npos);
  f.limit = kMaxLimit + 1;
  EXPECT_FALSE(reader_.query(f, page, error));
  Filter g;
  g.url = std::string(kMaxFilterBytes + 1, 'a');
  EXPECT_FALSE(reader_.query(g, page, error));
  EXPECT_NE(error.find("url is longer"), std::string::npos) << error;
  Filter t;
  t.threat = std::string(kMaxFilterBytes + 1, 'a');
  EXPECT_FALSE(reader_.query(t, page, error));
  Filter z;
  z.host = std::string("a\0b", 3);  // LIKE would read "a"
  EXPECT_FALSE(reader_.query(z, page, error));
  EXPECT_EQ(error, "host contains a NUL character");
  Filter r;
  r.from = kBase + 10s;
  r.to = kBase + 10s;
  EXPECT_FALSE(reader_.query(r, page, error));
  EXPECT_NE(error.find("time range is empty"), std::string::npos) << error;
  for (auto token :
       {"x", "1", "1.", ".1", "1.0", "1.-2", "a.b", "1.2.3", "99999999999999999999.1", " 1.2"}) {
    Filter p;
    p.page_token = token;
    EXPECT_FALSE(reader_.query(p, page, error)) << token;
    EXPECT_EQ(error, "invalid page token");
  }
}

// The plan of one partition in Reader::explain's output.
std::string section(const std::string& plan, int n) {
  std::string head = "access_" + std::to_string(n) + ":\n";
  auto b = plan.find(head);
  if (b == std::string::npos) return {};
  b += head.size();
  auto e = plan.find("\naccess_", b);
  return plan.substr(b, e == std::string::npos ? std::string::npos : e + 1 - b);
}

// In a closed partition an index serves each filter: rows come from it newest first, without
// sorting. The newest partition has its time and threat indexes only.
TEST_F(QueryTest, EveryFilterUsesAnIndex) {
  struct Case {
    Filter f;
    const char* index;
    bool sorted;
  };
  std::vector<Case> cases;
  cases.push_back({{}, "time", true});
  {
    Filter f;
    f.from = kBase;
    f.to = kBase + 1h;
    cases.push_back({f, "time", true});
  }
  {
    Filter f;
    f.client = "10.0.0.1";
    f.page_token = "1772323300000000.999";
    cases.push_back({f, "client", true});
  }
  {
    Filter f;
    f.user = "bob";
    cases.push_back({f, "user", true});
  }
  {
    Filter f;
    f.decision = "block";
    f.from = kBase;
    cases.push_back({f, "decision", true});
  }
  {
    Filter f;
    f.category = "news";
    cases.push_back({f, "category", true});
  }
  {
    Filter f;
    f.threat = "Win.Test.X";
    cases.push_back({f, "threat", true});
  }
  {
    Filter f;
    f.threat = "";
    cases.push_back({f, "threat", false});  // every threat name: rows are sorted
  }
  {
    Filter f;
    f.host = "rare";  // for a host substring that most records match, the time is better
    cases.push_back({f, "host", false});
  }
  for (const auto& c : cases) {
    auto plan = reader_.explain(c.f);
    SCOPED_TRACE(plan);
    auto closed = section(plan, 2);
    EXPECT_NE(closed.find(std::string("USING INDEX access_2_") + c.index), std::string::npos)
        << c.index;
    if (c.sorted) {
      EXPECT_EQ(closed.find("TEMP B-TREE"), std::string::npos) << c.index;
    }
    auto newest = section(plan, 3);
    std::string own = std::string(c.index) == "threat" ? "threat" : "time";
    EXPECT_TRUE(newest.empty() || newest.find("USING INDEX access_3_" + own) != std::string::npos ||
                newest == "  no matching host\n")
        << c.index;
  }
}

TEST_F(QueryTest, CsvQuotesWhatNeedsItAndDefusesFormulas) {
  Row row;
  row.id = 1;
  row.host = "a.example";
  auto& r = row.record;
  r = record(kBase + 1500ms, "http://a.example/x,y");
  r.user = "say \"hi\"";
  r.reason = "line1\r\nline2";
  r.content_type = "=HYPERLINK(\"http://evil\")";
  r.groups = "-1+1";
  r.rule = "@rule";
  std::string out = csv_header();
  append_csv(out, row);
  std::string header = csv_header();
  EXPECT_TRUE(header.ends_with("\r\n"));
  EXPECT_EQ(std::count(header.begin(), header.end(), ','), 35);
  std::string line = out.substr(header.size());
  EXPECT_TRUE(
      line.starts_with("2026-03-01T00:00:01.500Z,1.500,req-1,proxy,false,192.0.2.1,"
                       "\"say \"\"hi\"\"\",'-1+1,GET,\"http://a.example/x,y\",a.example,200,"))
      << line;
  EXPECT_NE(line.find(",\"'=HYPERLINK(\"\"http://evil\"\")\","), std::string::npos) << line;
  EXPECT_NE(line.find(",\"line1\r\nline2\","), std::string::npos) << line;
  EXPECT_NE(line.find(",'@rule,"), std::string::npos) << line;
  EXPECT_TRUE(line.ends_with(",0\r\n")) << line;
  // A row without special characters has as many fields as the header.
  Row plain;
  plain.record = record(kBase);
  std::string p;
  append_csv(p, plain);
  EXPECT_EQ(std::count(p.begin(), p.end(), ','), 35);
}

TEST_F(QueryTest, JsonIsTheAccessLogFormat) {
  Row row;
  row.record = record(kBase);
  row.record.user = "a\"b\x01";
  std::string out;
  append_json(out, row);
  append_json(out, row);
  EXPECT_EQ(out, telemetry::format_json(row.record) + telemetry::format_json(row.record));
  EXPECT_NE(out.find("\"user\":\"a\\\"b\\u0001\""), std::string::npos) << out;
}

TEST(Reader, MissingUnreadableAndForeignFilesGiveAClearError) {
  TempDir dir;
  Reader reader;
  std::string error;
  EXPECT_FALSE(reader.open(dir.path / "none.db", error));
  EXPECT_EQ(error, "no log store at " + (dir.path / "none.db").string());
  ASSERT_TRUE(testing::sql_exec(dir.path / "other.db", "CREATE TABLE t (a)"));
  EXPECT_FALSE(reader.open(dir.path / "other.db", error));
  EXPECT_NE(error.find("is not a Portcullis log store"), std::string::npos) << error;
  Page page;
  EXPECT_FALSE(reader.query({}, page, error));
  EXPECT_EQ(error, "the log store is not open");
}

TEST(Reader, NeverWrites) {
  TempDir dir;
  auto path = dir.path / "logs.db";
  {
    Options o;
    o.path = path;
    Store store(o);
  }
  Reader reader;
  std::string error;
  ASSERT_TRUE(reader.open(path, error)) << error;
  // The only statement text that varies is chosen by the program, but check anyway that the
  // connection is read-only.
  EXPECT_EQ(testing::sql_int(path, "SELECT count(*) FROM partitions"), 0);
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &h, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  EXPECT_NE(sqlite3_exec(h, "DELETE FROM partitions", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(h);
}

// --- arguments ---

TEST(TimeArg, RelativeAbsoluteAndDates) {
  auto now = kBase + 12h;
  Clock::time_point t;
  ASSERT_TRUE(parse_time_arg("now", now, t));
  EXPECT_EQ(t, now);
  ASSERT_TRUE(parse_time_arg("-90s", now, t));
  EXPECT_EQ(t, now - 90s);
  ASSERT_TRUE(parse_time_arg("-15m", now, t));
  EXPECT_EQ(t, now - 15min);
  ASSERT_TRUE(parse_time_arg("-1h", now, t));
  EXPECT_EQ(t, now - 1h);
  ASSERT_TRUE(parse_time_arg("-2d", now, t));
  EXPECT_EQ(t, now - 48h);
  ASSERT_TRUE(parse_time_arg("-1w", now, t));
  EXPECT_EQ(t, now - 168h);
  ASSERT_TRUE(parse_time_arg("-0h", now, t));
  EXPECT_EQ(t, now);
  ASSERT_TRUE(parse_time_arg("2026-03-01", now, t));
  EXPECT_EQ(t, kBase);
  ASSERT_TRUE(parse_time_arg("2026-03-01T09:00:00+09:00", now, t));
  EXPECT_EQ(t, kBase);
  ASSERT_TRUE(parse_time_arg("2026-03-01T00:00:00.5Z", now, t));
  EXPECT_EQ(t, kBase + 500ms);
  for (auto bad : {"", "-", "-h", "-1", "1h", "+1h", "-1y", "-1.5h", "- 1h", "-99999999999s",
                   "-5300w", "2026-3-1", "2026-02-30", "yesterday", "2026-03-01T00:00:00"}) {
    t = kBase;
    EXPECT_FALSE(parse_time_arg(bad, now, t)) << bad;
    EXPECT_EQ(t, kBase) << bad;
  }
  ASSERT_TRUE(parse_time_arg("-5200w", now, t));  // 100 years back is the limit
}

TEST(PageToken, RoundTrips) {
  std::int64_t t = 0, id = 0;
  ASSERT_TRUE(parse_page_token(make_page_token(1772323200123456, 42), t, id));
  EXPECT_EQ(t, 1772323200123456);
  EXPECT_EQ(id, 42);
  ASSERT_TRUE(parse_page_token("0.1", t, id));
  EXPECT_EQ(t, 0);
}

}  // namespace
}  // namespace pc::store
