// `portcullis logs query` on a database filled by the store library, while the store stays
// open for writing (as the gateway keeps it).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "base/time.h"
#include "store/store.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using pc::telemetry::AccessRecord;

struct Output {
  int status = -1;
  std::string out, err;
};

std::vector<std::string> lines(const std::string& s, const char* sep = "\n") {
  std::vector<std::string> v;
  std::size_t pos = 0;
  std::string_view d(sep);
  while (pos < s.size()) {
    auto e = s.find(d, pos);
    if (e == std::string::npos) e = s.size();
    v.push_back(s.substr(pos, e - pos));
    pos = e + d.size();
  }
  return v;
}

class LogsQuery : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = (fs::temp_directory_path() / "pc-logsq-XXXXXX").string();
    dir_ = ::mkdtemp(t.data());
    std::ofstream(dir_ / "portcullis.toml") << "[gateway]\nstate_dir = \"state\"\n";
    pc::store::Options o;
    o.path = dir_ / "state" / "logs.db";
    o.partition_records = 10;  // several partitions, closed ones indexed
    store_ = std::make_unique<pc::store::Store>(o);
    now_ = std::chrono::system_clock::now();
    for (int i = 0; i < 30; ++i) {
      AccessRecord r;
      r.time = now_ - std::chrono::minutes(4 * (29 - i));  // the last is now, the first ~2 h ago
      r.request_id = "req-" + std::to_string(i);
      r.listener = "proxy";
      r.client = "10.0.0." + std::to_string(i % 3);
      r.user = i % 2 ? "alice" : "";
      r.method = "GET";
      r.url = "http://www.site" + std::to_string(i % 5) + ".example/p?i=" + std::to_string(i);
      r.status = i % 4 ? 200 : 403;
      r.decision = i % 4 ? "allow" : "block";
      r.category = i % 4 ? "news" : "gambling";
      if (i % 10 == 3) {
        r.scan = "infected";
        r.threat = i == 3 ? "Eicar-Test-Signature" : "Win.Test.X";
      }
      if (i == 29) {
        r.url = "http://quote.example/a,\"b\"";
        r.user = "mallory\x1b[2J";
      }
      records_.push_back(r);
      ASSERT_TRUE(store_->insert({&records_.back(), 1}));
      store_->maintain(now_);
    }
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  Output run(const std::string& args) {
    Output o;
    auto err = dir_ / "stderr";
    std::string cmd = std::string(PORTCULLIS_BIN) + " logs query -c '" +
                      (dir_ / "portcullis.toml").string() + "' " + args + " 2>'" + err.string() +
                      "'";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return o;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) o.out.append(buf, n);
    int st = ::pclose(p);
    o.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    std::ifstream in(err);
    std::stringstream ss;
    ss << in.rdbuf();
    o.err = ss.str();
    return o;
  }

  // The request ids in CSV output (third field), in order.
  static std::vector<std::string> ids(const std::string& csv) {
    std::vector<std::string> v;
    auto ls = lines(csv, "\r\n");
    for (std::size_t i = 1; i < ls.size(); ++i) {
      auto a = ls[i].find(',');
      auto b = ls[i].find(',', a + 1);
      auto c = ls[i].find(',', b + 1);
      v.push_back(ls[i].substr(b + 1, c - b - 1));
    }
    return v;
  }

  fs::path dir_;
  std::unique_ptr<pc::store::Store> store_;
  std::chrono::system_clock::time_point now_;
  std::vector<AccessRecord> records_;
};

TEST_F(LogsQuery, CsvOfEverythingNewestFirst) {
  auto o = run("--format csv");
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.err, "");
  EXPECT_TRUE(o.out.starts_with("time,duration_ms,request_id,listener,guest,client,user,"));
  auto got = ids(o.out);
  ASSERT_EQ(got.size(), 30u);
  EXPECT_EQ(got.front(), "req-29");
  EXPECT_EQ(got.back(), "req-0");
  EXPECT_NE(o.out.find(",\"http://quote.example/a,\"\"b\"\"\",quote.example,"), std::string::npos)
      << o.out;
}

TEST_F(LogsQuery, FiltersAndJsonLines) {
  auto o = run("--format json --client 10.0.0.2 --decision allow");
  ASSERT_EQ(o.status, 0) << o.err;
  auto ls = lines(o.out);
  std::size_t want = 0;
  for (int i = 0; i < 30; ++i) want += i % 3 == 2 && i % 4 != 0;
  ASSERT_EQ(ls.size(), want);
  for (const auto& l : ls) {
    EXPECT_TRUE(l.starts_with("{\"time\":\"")) << l;
    EXPECT_TRUE(l.ends_with("}")) << l;
    EXPECT_NE(l.find("\"client\":\"10.0.0.2\""), std::string::npos) << l;
    EXPECT_NE(l.find("\"decision\":\"allow\""), std::string::npos) << l;
  }
  o = run("--format csv --threat");
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(ids(o.out), (std::vector<std::string>{"req-23", "req-13", "req-3"}));
  o = run("--format csv --threat Eicar-Test-Signature --user ALICE");
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(ids(o.out), (std::vector<std::string>{"req-3"}));
  o = run("--format csv --host SITE4 --category news");
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(ids(o.out), (std::vector<std::string>{"req-19", "req-14", "req-9"}));
  o = run("--format csv --url 'p?i=1'");
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(ids(o.out).size(), 11u);  // 1 and 10-19
}

TEST_F(LogsQuery, RelativeAndAbsoluteTimes) {
  // Records are 4 minutes apart, the newest now: -30m covers the last 8 (28 minutes back).
  auto o = run("--format csv --from -30m");
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(ids(o.out).size(), 8u);
  auto to = pc::base::format_rfc3339_ms(records_[10].time);
  o = run("--format csv --to " + to);
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(ids(o.out).size(), 10u);  // 0-9: --to excludes its own time
  o = run("--format csv --from " + to + " --to -1h");
  ASSERT_EQ(o.status, 0) << o.err;
  auto got = ids(o.out);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back(), "req-10");
}

TEST_F(LogsQuery, PagesWithTokens) {
  auto first = run("--format csv --limit 12");
  ASSERT_EQ(first.status, 0) << first.err;
  auto a = ids(first.out);
  ASSERT_EQ(a.size(), 12u);
  ASSERT_TRUE(first.err.starts_with("more records: --page-token ")) << first.err;
  std::string token = first.err.substr(std::string("more records: --page-token ").size());
  token.erase(token.find_last_not_of("\n") + 1);
  // Records written meanwhile do not shift the next page.
  AccessRecord late = records_[0];
  late.time = std::chrono::system_clock::now();
  late.request_id = "req-late";
  ASSERT_TRUE(store_->insert({&late, 1}));
  auto second = run("--format csv --limit 12 --page-token " + token);
  ASSERT_EQ(second.status, 0) << second.err;
  auto b = ids(second.out);
  ASSERT_EQ(b.size(), 12u);
  EXPECT_EQ(a.back(), "req-18");
  EXPECT_EQ(b.front(), "req-17");
  auto rest = run("--format csv --limit 0");
  ASSERT_EQ(rest.status, 0) << rest.err;
  EXPECT_EQ(rest.err, "");
  auto all = ids(rest.out);
  ASSERT_EQ(all.size(), 31u);
  EXPECT_EQ(all.front(), "req-late");
}

TEST_F(LogsQuery, TableForPeople) {
  auto o = run("--limit 3");
  ASSERT_EQ(o.status, 0) << o.err;
  auto ls = lines(o.out);
  ASSERT_EQ(ls.size(), 4u);
  EXPECT_TRUE(ls[0].starts_with("TIME ")) << ls[0];
  EXPECT_NE(ls[0].find("  CLIENT "), std::string::npos) << ls[0];
  EXPECT_TRUE(ls[0].ends_with("URL")) << ls[0];
  EXPECT_NE(ls[1].find("mallory?[2J"), std::string::npos)
      << ls[1];  // no escape reaches the terminal
  EXPECT_EQ(o.out.find('\x1b'), std::string::npos);
  EXPECT_TRUE(ls[1].ends_with("http://quote.example/a,\"b\"")) << ls[1];
  EXPECT_NE(ls[2].find(" -  "), std::string::npos) << ls[2];  // no user
  EXPECT_NE(o.err.find("more records"), std::string::npos);
}

TEST_F(LogsQuery, BadArgumentsAndAMissingStore) {
  auto o = run("--from yesterday");
  EXPECT_EQ(o.status, 2);
  EXPECT_NE(o.err.find("invalid --from 'yesterday'"), std::string::npos) << o.err;
  o = run("--page-token 12");
  EXPECT_EQ(o.status, 2);
  EXPECT_NE(o.err.find("invalid page token"), std::string::npos) << o.err;
  o = run("--from -1h --to -2h");
  EXPECT_EQ(o.status, 2);
  EXPECT_NE(o.err.find("time range is empty"), std::string::npos) << o.err;
  o = run("--format xml");
  EXPECT_NE(o.status, 0);
  EXPECT_EQ(o.out, "");
  std::ofstream(dir_ / "portcullis.toml") << "[log_store]\npath = \"/nonexistent/pc/logs.db\"\n";
  o = run("");
  EXPECT_EQ(o.status, 1);
  EXPECT_EQ(o.err, "no log store at /nonexistent/pc/logs.db\n");
  std::ofstream(dir_ / "portcullis.toml") << "[log_store]\nbad = 1\n";
  o = run("");
  EXPECT_EQ(o.status, 2);
  EXPECT_NE(o.err.find("unknown key 'bad' in [log_store]"), std::string::npos) << o.err;
}

}  // namespace
