#include "policy/catdb.h"

#include <gtest/gtest.h>
#include <re2/re2.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace pc::policy {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "pc-catdb-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data())) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path write(const std::string& rel, const std::string& text) const {
    fs::path p = path_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }

 private:
  fs::path path_;
};

struct Result {
  std::size_t count = 0;
  CategoryHits hits;
  DbMatch first;
};

Result look(const CategoryDb& db, std::string_view host, std::string_view path = "/") {
  Result r;
  r.count = db.lookup(host, path, r.hits, &r.first);
  return r;
}

// Looks up "host/path" given as one string, so that URL matches report "host/path" slices.
Result look_url(const CategoryDb& db, const std::string& hostpath) {
  std::string_view all(hostpath);
  auto slash = all.find('/');
  return look(db, all.substr(0, slash), all.substr(slash));
}

bool contains(const std::vector<std::string>& errors, std::string_view needle) {
  for (const auto& e : errors)
    if (e.find(needle) != std::string::npos) return true;
  return false;
}

TEST(CategoryDb, DomainMatchesItselfAndSubdomainsOnly) {
  CategoryDb::Builder b;
  auto src = b.add_source({"test", "1"});
  auto cat = b.category("news");
  ASSERT_TRUE(b.add_domain("example.com", cat, src));
  auto db = b.build();

  for (const char* host : {"example.com", "www.example.com", "a.b.c.example.com"}) {
    auto r = look(*db, host);
    EXPECT_EQ(r.count, 1u) << host;
    EXPECT_TRUE(r.hits.has(cat)) << host;
    EXPECT_EQ(r.first.entry, "example.com") << host;
    EXPECT_EQ(r.first.category, cat);
    EXPECT_EQ(r.first.source, src);
  }
  for (const char* host : {"badexample.com", "example.org", "com", "example.com.evil.net",
                           "xexample.com", "ample.com", ""}) {
    auto r = look(*db, host);
    EXPECT_EQ(r.count, 0u) << host;
    EXPECT_EQ(r.hits.count, 0) << host;
  }
  // A trailing dot and upper case in the looked-up host do not matter.
  EXPECT_EQ(look(*db, "WWW.Example.COM.").count, 1u);
}

TEST(CategoryDb, LongestSuffixFirst) {
  CategoryDb::Builder b;
  auto src = b.add_source({"test", "1"});
  auto broad = b.category("broad");
  auto narrow = b.category("narrow");
  ASSERT_TRUE(b.add_domain("example.com", broad, src));
  ASSERT_TRUE(b.add_domain("ads.example.com", narrow, src));
  auto db = b.build();

  auto r = look(*db, "x.ads.example.com");
  EXPECT_EQ(r.count, 2u);
  EXPECT_EQ(r.first.category, narrow);
  EXPECT_EQ(r.first.entry, "ads.example.com");
  ASSERT_EQ(r.hits.count, 2);
  EXPECT_EQ(r.hits.ids[0], narrow);
  EXPECT_EQ(r.hits.ids[1], broad);

  r = look(*db, "www.example.com");
  EXPECT_EQ(r.count, 1u);
  EXPECT_EQ(r.first.category, broad);
}

TEST(CategoryDb, DomainNormalisation) {
  CategoryDb::Builder b;
  auto src = b.add_source({"test", "1"});
  auto cat = b.category("c");
  EXPECT_TRUE(b.add_domain("  WWW.Upper.EXAMPLE.  ", cat, src));
  EXPECT_TRUE(b.add_domain(".dotted.example", cat, src));
  EXPECT_TRUE(b.add_domain("*.wild.example", cat, src));
  EXPECT_TRUE(b.add_domain("http://schemed.example", cat, src));
  EXPECT_TRUE(b.add_domain("under_score.example", cat, src));
  for (const char* bad :
       {"", ".", "a..b", "exa mple.com", "example.com/path", "example.com:80", "x@y.com", "a/b"})
    EXPECT_FALSE(b.add_domain(bad, cat, src)) << bad;
  EXPECT_FALSE(b.add_domain(std::string(64, 'a') + ".com", cat, src));  // label too long
  auto db = b.build();
  EXPECT_EQ(look(*db, "www.upper.example").count, 1u);
  EXPECT_EQ(look(*db, "upper.example").count, 0u);  // "www." is kept as given
  EXPECT_EQ(look(*db, "a.dotted.example").count, 1u);
  EXPECT_EQ(look(*db, "wild.example").count, 1u);
  EXPECT_EQ(look(*db, "schemed.example").count, 1u);
  EXPECT_EQ(look(*db, "under_score.example").count, 1u);
  EXPECT_EQ(db->entries(), 5u);
}

TEST(CategoryDb, AddressEntriesMatchExactly) {
  CategoryDb::Builder b;
  auto src = b.add_source({"test", "1"});
  auto cat = b.category("c");
  ASSERT_TRUE(b.add_domain("10.1.2.3", cat, src));
  ASSERT_TRUE(b.add_url("[2001:db8::1]:8080/x", cat, src));
  auto db = b.build();
  EXPECT_EQ(look(*db, "10.1.2.3").count, 1u);
  EXPECT_EQ(look(*db, "110.1.2.3").count, 0u);
  EXPECT_EQ(look(*db, "2001:db8::1", "/x/y").count, 1u);
  EXPECT_EQ(look(*db, "2001:db8::1", "/").count, 0u);
}

TEST(CategoryDb, UrlPrefixesAtSlashBoundaries) {
  CategoryDb::Builder b;
  auto src = b.add_source({"test", "1"});
  auto cat = b.category("c");
  ASSERT_TRUE(b.add_url("example.com/path/", cat, src));
  ASSERT_TRUE(b.add_url("http://Docs.Example.com/Guide/Page.html#top", cat, src));
  ASSERT_TRUE(b.add_url("example.org/p.php?id=5", cat, src));
  ASSERT_TRUE(b.add_url("https://user@whole.example:8443/", cat, src));
  EXPECT_FALSE(b.add_url("", cat, src));
  EXPECT_FALSE(b.add_url("com/path", cat, src));  // a public suffix as host
  EXPECT_FALSE(b.add_url("exa mple.com/x", cat, src));
  EXPECT_FALSE(b.add_url("example.com/a b", cat, src));
  auto db = b.build();

  for (const char* path : {"/path", "/path/", "/path/x", "/path/x/y?q=1", "/path?q", "/path#f"})
    EXPECT_EQ(look(*db, "example.com", path).count, 1u) << path;
  for (const char* path : {"/", "/pathx", "/pat", "/x/path/", "", "/Path2"})
    EXPECT_EQ(look(*db, "example.com", path).count, 0u) << path;
  // URL entries name one host: neither subdomains nor parents match.
  EXPECT_EQ(look(*db, "www.example.com", "/path/x").count, 0u);
  // Paths compare case-insensitively.
  EXPECT_EQ(look(*db, "docs.example.com", "/guide/page.html?x=1").count, 1u);
  EXPECT_EQ(look(*db, "docs.example.com", "/guide/page.htm").count, 0u);
  // An entry with a query matches that exact path and query.
  EXPECT_EQ(look(*db, "example.org", "/p.php?id=5").count, 1u);
  EXPECT_EQ(look(*db, "example.org", "/p.php?id=50").count, 0u);
  EXPECT_EQ(look(*db, "example.org", "/p.php").count, 0u);
  // A host-only URL entry matches every path of that host (port and user dropped).
  EXPECT_EQ(look(*db, "whole.example", "/").count, 1u);
  EXPECT_EQ(look(*db, "whole.example", "/any/thing").count, 1u);
  EXPECT_EQ(look(*db, "sub.whole.example", "/").count, 0u);
}

TEST(CategoryDb, UrlMatchReportsTheMatchedSlice) {
  CategoryDb::Builder b;
  auto src = b.add_source({"test", "1"});
  auto url_cat = b.category("url");
  auto dom_cat = b.category("domain");
  ASSERT_TRUE(b.add_url("example.com/a/b/", url_cat, src));
  ASSERT_TRUE(b.add_url("example.com/a", url_cat, src));
  ASSERT_TRUE(b.add_domain("example.com", dom_cat, src));
  auto db = b.build();

  // host and path adjacent in memory: the slice is "host/path-prefix".
  std::string url = "example.com/a/b/c.html";
  auto r = look_url(*db, url);
  EXPECT_EQ(r.count, 3u);
  EXPECT_EQ(r.first.entry, "example.com/a/b");
  EXPECT_EQ(r.first.category, url_cat);
  EXPECT_TRUE(r.hits.has(dom_cat));
  // Separate strings: the slice is the matched path prefix.
  std::string host = "example.com", path = "/a/b/c.html";
  r = look(*db, host, path);
  EXPECT_EQ(r.count, 3u);
  EXPECT_EQ(r.first.entry, "/a/b");
}

TEST(CategoryDb, SeveralCategoriesAndSourcesPerEntry) {
  CategoryDb::Builder b;
  auto ut1 = b.add_source({"ut1", "2026-01-02"});
  auto local = b.add_source({"local", "7"});
  auto adult = b.category("adult");
  auto dating = b.category("dating");
  ASSERT_TRUE(b.add_domain("example.net", adult, ut1));
  ASSERT_TRUE(b.add_domain("example.net", dating, ut1));
  ASSERT_TRUE(b.add_domain("example.net", adult, local));
  ASSERT_TRUE(b.add_domain("example.net", adult, ut1));  // a duplicate is stored once
  auto db = b.build();

  EXPECT_EQ(db->entries(), 3u);
  auto r = look(*db, "www.example.net");
  EXPECT_EQ(r.count, 3u);
  EXPECT_EQ(r.hits.count, 2);
  EXPECT_TRUE(r.hits.has(adult));
  EXPECT_TRUE(r.hits.has(dating));
  EXPECT_EQ(db->source(r.first.source).name, "ut1");
  EXPECT_EQ(db->source(r.first.source).version, "2026-01-02");
  EXPECT_EQ(db->source(local).name, "local");
  EXPECT_EQ(db->source(99).name, "");
  EXPECT_EQ(db->categories(), 2u);
  EXPECT_EQ(db->category_name(adult), "adult");
  EXPECT_EQ(db->category_id("dating"), dating);
  EXPECT_EQ(db->category_id("nope"), -1);
  EXPECT_EQ(db->category_name(500), "");
}

TEST(CategoryDb, HitsKeepAtMostEightCategoriesButCountAll) {
  CategoryDb::Builder b;
  auto src = b.add_source({"test", "1"});
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(b.add_domain("many.example", b.category("c" + std::to_string(i)), src));
  auto db = b.build();
  auto r = look(*db, "many.example");
  EXPECT_EQ(r.count, 10u);
  EXPECT_EQ(r.hits.count, CategoryHits::kMax);
}

TEST(CategoryDb, PublicSuffixes) {
  EXPECT_TRUE(is_public_suffix("com"));
  EXPECT_TRUE(is_public_suffix("co.uk"));
  EXPECT_TRUE(is_public_suffix("com.au"));
  EXPECT_TRUE(is_public_suffix("CO.UK."));
  EXPECT_FALSE(is_public_suffix("example.co.uk"));
  EXPECT_FALSE(is_public_suffix("example.com"));
  EXPECT_FALSE(is_public_suffix("localhost"));
  EXPECT_FALSE(is_public_suffix("github.io"));         // private section: not refused
  EXPECT_TRUE(is_public_suffix("xn--p1ai"));           // an IDN top-level domain
  EXPECT_TRUE(is_public_suffix("x.kawasaki.jp"));      // wildcard rule
  EXPECT_FALSE(is_public_suffix("city.kawasaki.jp"));  // its exception
  EXPECT_FALSE(is_public_suffix("10.1.2.3"));
  EXPECT_FALSE(is_public_suffix(""));

  CategoryDb::Builder b;
  auto src = b.add_source({"test", "1"});
  auto cat = b.category("c");
  EXPECT_FALSE(b.add_domain("com", cat, src));
  EXPECT_FALSE(b.add_domain("co.uk", cat, src));
  EXPECT_FALSE(b.add_domain(".com.au", cat, src));
  ASSERT_TRUE(b.add_domain("example.co.uk", cat, src));
  auto db = b.build();
  EXPECT_EQ(look(*db, "a.b.example.co.uk").count, 1u);
  EXPECT_EQ(look(*db, "example.co.uk").first.entry, "example.co.uk");
  EXPECT_EQ(look(*db, "other.co.uk").count, 0u);
  EXPECT_EQ(look(*db, "co.uk").count, 0u);
}

TEST(CategoryDb, Expressions) {
  CategoryDb::Builder b;
  auto src = b.add_source({"test", "1"});
  auto gambling = b.category("gambling");
  std::string error;
  ASSERT_TRUE(b.add_expression(R"((^|[-.])casino[a-z0-9-]*\.)", gambling, src, &error)) << error;
  ASSERT_TRUE(b.add_expression(R"(/(poker|slots)/)", gambling, src, &error)) << error;
  EXPECT_FALSE(b.add_expression("(unclosed", gambling, src, &error));
  EXPECT_FALSE(error.empty());
  EXPECT_FALSE(b.add_expression("  ", gambling, src, &error));
  auto db = b.build();
  EXPECT_EQ(db->entries(), 2u);

  auto r = look(*db, "best-casino24.example", "/");
  EXPECT_EQ(r.count, 1u);
  EXPECT_EQ(r.first.entry, R"((^|[-.])casino[a-z0-9-]*\.)");
  EXPECT_EQ(look(*db, "CASINO.example", "/").count, 1u);  // case-insensitive
  EXPECT_EQ(look(*db, "bestcasino.example", "/").count, 0u);
  EXPECT_EQ(look(*db, "games.example", "/a/poker/b").count, 1u);
  std::string url = "games.example/slots/";
  EXPECT_EQ(look_url(*db, url).count, 1u);
  EXPECT_EQ(look(*db, "games.example", "/pokerface").count, 0u);
}

// Expressions are searched only when the text holds one of the literals RE2 says a match
// needs: the answers must equal RE2's own, whatever the case, bytes or expressions.
TEST(CategoryDb, ExpressionsAgreeWithRe2) {
  std::vector<std::string> with_literals = {
      R"((paypal|appleid|microsoft)[-.][a-z0-9-]*(login|verify|secure))",
      R"((^|[-.])(porn|xxx|sexcam)[a-z0-9-]*\.)",
      R"(/(porn|xxx)/)",
      R"(/(crack|keygen|serial)s?/)",
      R"((^|[-.])(casino|poker|betting)[a-z0-9-]*\.)",
      R"(^(ad|ads|adserver|banners?)[0-9]*\.)",
      R"(\.(exe|scr)$)",
  };
  // A non-ASCII literal; an expression without a literal every match must contain.
  std::vector<std::string> unicode = with_literals, without = with_literals;
  unicode.push_back("Über");
  without.push_back(R"(^[0-9]+\.[a-z]$)");

  // U+212A (Kelvin sign) folds to "k" in RE2's case-insensitive matching.
  const std::vector<std::string> pieces = {
      "paypal",    "PayPal", "login",   "-",       ".",      "/",        "porn",       "XXX",
      "sexcam",    "casino", "Poker",   "ad",      "ads",    "AdServer", "banner",     "banners",
      "crack",     "keygen", "serials", "exe",     "scr",    "1",        "42",         "a",
      "z",         "www",    "example", "com",     "?",      "=",        "po\u212Aer", "\u00FCber",
      "\u00DCBER", "UBER",   "\xFF",    "appleid", "secure", "_"};
  re2::RE2::Options opt;
  opt.set_case_sensitive(false);
  opt.set_log_errors(false);

  // 0: the default budget for the set of all expressions; 16 KiB: a set too large for its
  // budget (it does not compile), so each expression is searched alone.
  for (std::int64_t memory : {std::int64_t{0}, std::int64_t{16} << 10})
    for (const std::vector<std::string>* patterns : {&with_literals, &unicode, &without}) {
      CategoryDb::Builder b;
      if (memory != 0) b.set_expression_memory(memory);
      auto src = b.add_source({"test", "1"});
      auto cat = b.category("c");
      std::vector<std::unique_ptr<re2::RE2>> res;
      for (const auto& p : *patterns) {
        std::string error;
        ASSERT_TRUE(b.add_expression(p, cat, src, &error)) << p << ": " << error;
        res.push_back(std::make_unique<re2::RE2>(p, opt));
      }
      auto db = b.build();
      std::mt19937 rng(7);
      std::size_t matched = 0;
      for (int n = 0; n < 20000; ++n) {
        std::string host, path = "/";
        const int k = 1 + static_cast<int>(rng() % 6);
        for (int i = 0; i < k; ++i) host += pieces[rng() % pieces.size()];
        const int m = static_cast<int>(rng() % 5);
        for (int i = 0; i < m; ++i) path += pieces[rng() % pieces.size()];
        while (!host.empty() && host.back() == '.') host.pop_back();
        if (host.empty()) host = "h";
        std::size_t want = 0;
        const std::string text = host + path;
        for (const auto& re : res) want += re2::RE2::PartialMatch(text, *re) ? 1 : 0;
        ASSERT_EQ(look(*db, host, path).count, want) << text;
        matched += want != 0;
      }
      EXPECT_GT(matched, 200u);  // the texts do exercise matches
    }
}

TEST(Importers, SquidGuardDirectory) {
  TempDir t;
  t.write("db/adult/domains", "# comment\nexample-adult.com\n\n  Spaced.Example  \r\n");
  t.write("db/adult/urls", "example.org/adult/\nhttp://example.net/x/y.html\n");
  t.write("db/adult/expressions", "(^|[-.])xxx[a-z0-9-]*\\.\n");
  t.write("db/adult/usage", "black\n");
  t.write("db/gambling/domains", "example-bet.com\nexample-adult.com\n");
  t.write("db/empty/readme.txt", "nothing here\n");
  t.write("db/.hidden/domains", "hidden.example\n");
  t.write("db/VERSION", "1\n");

  CategoryDb::Builder b;
  auto src = b.add_source({"ut1", "2026-11-01"});
  std::vector<std::string> errors;
  import_squidguard_dir(b, src, t.path() / "db", errors);
  auto db = b.build();

  ASSERT_EQ(errors.size(), 1u) << errors[0];
  EXPECT_TRUE(contains(errors, "empty: no domains, urls or expressions file"));
  EXPECT_GE(db->category_id("adult"), 0);
  EXPECT_GE(db->category_id("gambling"), 0);
  EXPECT_EQ(db->category_id(".hidden"), -1);
  auto adult = static_cast<std::uint16_t>(db->category_id("adult"));
  auto gambling = static_cast<std::uint16_t>(db->category_id("gambling"));

  auto r = look(*db, "www.example-adult.com");
  EXPECT_EQ(r.count, 2u);
  EXPECT_TRUE(r.hits.has(adult));
  EXPECT_TRUE(r.hits.has(gambling));
  EXPECT_EQ(db->source(r.first.source).version, "2026-11-01");
  EXPECT_EQ(look(*db, "spaced.example").count, 1u);
  EXPECT_EQ(look(*db, "example.org", "/adult/page").count, 1u);
  EXPECT_EQ(look(*db, "example.org", "/").count, 0u);
  EXPECT_EQ(look(*db, "example.net", "/x/y.html").count, 1u);
  EXPECT_TRUE(look(*db, "my-xxx-site.example").hits.has(adult));
  EXPECT_EQ(look(*db, "hidden.example").count, 0u);
}

TEST(Importers, BadLinesAreReportedWithFileAndLine) {
  TempDir t;
  auto domains = t.write("db/c/domains", "good.example\nco.uk\nbad domain.example\ncom\n");
  auto urls = t.write("db/c/urls", "good.example/x\nexa mple.com/y\n");
  auto exprs = t.write("db/c/expressions", "ok[0-9]+\n(broken\n");
  CategoryDb::Builder b;
  auto src = b.add_source({"s", "1"});
  std::vector<std::string> errors;
  import_squidguard_dir(b, src, t.path() / "db", errors);
  import_squidguard_dir(b, src, t.path() / "missing", errors);
  auto db = b.build();

  EXPECT_TRUE(contains(errors, domains.string() + ":2: refused: \"co.uk\" is a public suffix"));
  EXPECT_TRUE(contains(errors, domains.string() + ":3: not a domain: \"bad domain.example\""));
  EXPECT_TRUE(contains(errors, domains.string() + ":4: refused: \"com\" is a public suffix"));
  EXPECT_TRUE(contains(errors, urls.string() + ":2: not a URL"));
  EXPECT_TRUE(contains(errors, exprs.string() + ":2: bad expression"));
  EXPECT_TRUE(contains(errors, (t.path() / "missing").string() + ": cannot read directory"));
  EXPECT_EQ(errors.size(), 6u);
  EXPECT_EQ(look(*db, "good.example").count, 1u);
  EXPECT_EQ(look(*db, "x.co.uk").count, 0u);

  std::vector<std::string> more;
  import_domain_list(b, src, 0, t.path() / "nope", more);
  ASSERT_EQ(more.size(), 1u);
  EXPECT_TRUE(contains(more, "nope: cannot read"));
}

TEST(Importers, DomainList) {
  TempDir t;
  auto f = t.write("list.txt",
                   "# a plain list\r\nexample.com\r\nsub.example.org # trailing comment\r\n"
                   "\r\n   \r\nexample.com.au\r\ncom.au\r\n");
  CategoryDb::Builder b;
  auto src = b.add_source({"list", "3"});
  auto cat = b.category("listed");
  std::vector<std::string> errors;
  import_domain_list(b, src, cat, f, errors);
  auto db = b.build();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], f.string() + ":7: refused: \"com.au\" is a public suffix");
  EXPECT_EQ(db->entries(), 3u);
  EXPECT_EQ(look(*db, "a.example.com").count, 1u);
  EXPECT_EQ(look(*db, "sub.example.org").count, 1u);
  EXPECT_EQ(look(*db, "example.org").count, 0u);
  EXPECT_EQ(look(*db, "shop.example.com.au").count, 1u);
}

TEST(Importers, UrlList) {
  TempDir t;
  auto f = t.write("urls.txt", "# urls\nexample.com/a/\nhttps://example.org/b?c=d\n");
  CategoryDb::Builder b;
  auto src = b.add_source({"urls", "1"});
  auto cat = b.category("u");
  std::vector<std::string> errors;
  import_url_list(b, src, cat, f, errors);
  auto db = b.build();
  EXPECT_TRUE(errors.empty());
  EXPECT_EQ(look(*db, "example.com", "/a/z").count, 1u);
  EXPECT_EQ(look(*db, "example.org", "/b?c=d").count, 1u);
}

TEST(Importers, HostsFile) {
  TempDir t;
  auto f = t.write("hosts",
                   "# hosts blocklist\n"
                   "127.0.0.1 localhost\n"
                   "::1 localhost ip6-localhost ip6-loopback\n"
                   "0.0.0.0 0.0.0.0\n"
                   "0.0.0.0 ads.example.com\n"
                   "127.0.0.1\ttracker.example.net   metrics.example.org # inline\n"
                   "  0.0.0.0   spaced.example  \r\n"
                   "\n"
                   "   # indented comment\n"
                   "example.bad\n"
                   "0.0.0.0 com\n"
                   "1.2.3.4\n"
                   "::  v6.example\n");
  CategoryDb::Builder b;
  auto src = b.add_source({"hosts", "2"});
  auto cat = b.category("ads");
  std::vector<std::string> errors;
  import_hosts_file(b, src, cat, f, errors);
  auto db = b.build();

  EXPECT_EQ(errors.size(), 3u);
  EXPECT_TRUE(contains(errors, f.string() + ":10: expected an address before the names"));
  EXPECT_TRUE(contains(errors, f.string() + ":11: refused: \"com\" is a public suffix"));
  EXPECT_TRUE(contains(errors, f.string() + ":12: no names after the address"));
  EXPECT_EQ(db->entries(), 5u);
  for (const char* host : {"ads.example.com", "x.tracker.example.net", "metrics.example.org",
                           "spaced.example", "v6.example"})
    EXPECT_EQ(look(*db, host).count, 1u) << host;
  EXPECT_EQ(look(*db, "localhost").count, 0u);
  EXPECT_EQ(look(*db, "example.com").count, 0u);
}

TEST(Importers, UrlhausCsv) {
  TempDir t;
  auto f = t.write(
      "urlhaus.csv",
      "################################################################\n"
      "# URLhaus database dump (CSV)\n"
      "#\n"
      "# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n"
      "id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n"
      "\"1\",\"2024-01-01 00:00:00\",\"http://1.2.3.4:8080/bins/x.arm7\",\"online\",\"\","
      "\"malware_download\",\"elf,mirai\",\"https://urlhaus.example/url/1/\",\"r\"\n"
      "\"2\",\"2024-01-02 00:00:00\",\"https://bad.example.com/a/dl.php?id=\"\"7\"\"\","
      "\"offline\",\"\",\"malware_download\",\"exe\",\"https://urlhaus.example/url/2/\",\"r\"\n"
      "3,2024-01-03,http://plain.example/p,online,,malware_download,,x,r\n"
      "\"4\",\"2024\",\"http://x.example/\",\"unknown\"\n"
      "\"5\",\"2024\",\"http://y.example/\n"
      "\"6\",\"2024\"\n"
      "\"7\",\"2024\",\"not a url\",\"online\"\n");
  CategoryDb::Builder b;
  auto src = b.add_source({"urlhaus", "2024-01-03"});
  std::vector<std::string> errors;
  import_urlhaus_csv(b, src, f, errors);
  auto db = b.build();

  EXPECT_EQ(errors.size(), 4u);
  EXPECT_TRUE(contains(errors, f.string() + ":9: unknown url_status \"unknown\""));
  EXPECT_TRUE(contains(errors, f.string() + ":10: malformed quoted field"));
  EXPECT_TRUE(contains(errors, f.string() + ":11: expected id,dateadded,url"));
  EXPECT_TRUE(contains(errors, f.string() + ":12: not a URL"));

  auto dangerous = static_cast<std::uint16_t>(Reputation::dangerous);
  auto highly = static_cast<std::uint16_t>(Reputation::highly_suspicious);
  EXPECT_EQ(db->category_name(dangerous), to_string(Reputation::dangerous));
  EXPECT_EQ(db->category_name(highly), to_string(Reputation::highly_suspicious));

  auto r = look(*db, "1.2.3.4", "/bins/x.arm7");
  EXPECT_EQ(r.count, 1u);
  EXPECT_EQ(r.first.category, dangerous);
  EXPECT_EQ(db->source(r.first.source).name, "urlhaus");
  EXPECT_EQ(look(*db, "1.2.3.4", "/bins/").count, 0u);
  r = look(*db, "bad.example.com", "/a/dl.php?id=\"7\"");
  EXPECT_EQ(r.count, 1u);
  EXPECT_EQ(r.first.category, highly);
  EXPECT_EQ(look(*db, "plain.example", "/p/more").count, 1u);
  EXPECT_EQ(look(*db, "x.example", "/").count, 0u);

  // A builder whose categories are not the reputation levels is refused.
  CategoryDb::Builder other;
  other.category("news");
  std::vector<std::string> errs;
  import_urlhaus_csv(other, other.add_source({"u", ""}), f, errs);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_TRUE(contains(errs, "reputation levels"));
}

TEST(CategoryDb, ManyEntriesNoFalseMatches) {
  CategoryDb::Builder b;
  auto src = b.add_source({"bulk", "1"});
  auto a = b.category("a");
  auto c = b.category("c");
  constexpr int kN = 100000;
  for (int i = 0; i < kN; ++i) {
    std::string d = "host" + std::to_string(i) + ".example";
    ASSERT_TRUE(b.add_domain(d, (i % 3) ? a : c, src));
  }
  auto db = b.build();
  EXPECT_EQ(db->entries(), static_cast<std::size_t>(kN));
  EXPECT_LT(db->memory_bytes(), static_cast<std::size_t>(kN) * 40);
  for (int i = 0; i < kN; ++i) {
    std::string h = "www.host" + std::to_string(i) + ".example";
    auto r = look(*db, h);
    ASSERT_EQ(r.count, 1u) << h;
    ASSERT_EQ(r.first.category, (i % 3) ? a : c);
    std::string miss = "host" + std::to_string(i + kN) + ".example";
    ASSERT_EQ(look(*db, miss).count, 0u) << miss;
  }
}

TEST(CategoryDb, EmptyDatabase) {
  CategoryDb::Builder b;
  auto db = b.build();
  CategoryHits hits;
  DbMatch m;
  EXPECT_EQ(db->lookup("example.com", "/x", hits, &m), 0u);
  EXPECT_EQ(db->entries(), 0u);
  EXPECT_EQ(db->categories(), 0u);
  EXPECT_EQ(db->source(0).name, "");
}

TEST(Generated, TwentyThousandDomains) {
  const std::string python = PC_PYTHON3;
  if (python.empty()) GTEST_SKIP() << "python3 not found";
  TempDir t;
  const fs::path out = t.path() / "db";
  const std::string cmd = "'" + python + "' '" PC_SOURCE_DIR "/tools/gen_catdb.py' --out '" +
                          out.string() + "' --domains 20000 --categories 40 --seed 7 " +
                          "--samples 300 --urlhaus '" + (t.path() / "urlhaus.csv").string() +
                          "' --urlhaus-rows 200 --hosts '" + (t.path() / "hosts").string() +
                          "' --hosts-rows 300";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  CategoryDb::Builder b;
  auto src = b.add_source({"generated", "7"});
  std::vector<std::string> errors;
  import_squidguard_dir(b, src, out, errors);
  auto hosts_cat = b.category("hosts");
  import_hosts_file(b, src, hosts_cat, t.path() / "hosts", errors);
  auto db = b.build();
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(db->categories(), 41u);
  EXPECT_GT(db->entries(), 20000u);
  EXPECT_LT(db->memory_bytes() / db->entries(), 40u);

  std::ifstream in(out / "samples.tsv");
  std::string line;
  int domains = 0, urls = 0;
  while (std::getline(in, line)) {
    auto t1 = line.find('\t'), t2 = line.rfind('\t');
    ASSERT_NE(t1, t2) << line;
    std::string kind = line.substr(0, t1), entry = line.substr(t1 + 1, t2 - t1 - 1);
    std::string category = line.substr(t2 + 1);
    int id = db->category_id(category);
    ASSERT_GE(id, 0) << category;
    Result r;
    if (kind == "domain") {
      ++domains;
      r = look(*db, "sub." + entry, "/index.html");
    } else {
      ++urls;
      std::string url = entry + "deeper/page.html?x=1";
      r = look_url(*db, url);
      EXPECT_EQ(r.first.entry, entry.substr(0, entry.size() - 1)) << url;
    }
    EXPECT_TRUE(r.hits.has(static_cast<std::uint16_t>(id))) << line;
  }
  EXPECT_GE(domains, 250);
  EXPECT_GE(urls, 5);
  EXPECT_EQ(look(*db, "surely-not-generated.example").count, 0u);

  CategoryDb::Builder rb;
  auto rsrc = rb.add_source({"urlhaus", "gen"});
  std::vector<std::string> rerrors;
  import_urlhaus_csv(rb, rsrc, t.path() / "urlhaus.csv", rerrors);
  auto rep = rb.build();
  EXPECT_TRUE(rerrors.empty()) << rerrors.front();
  EXPECT_EQ(rep->entries(), 200u);
}

}  // namespace
}  // namespace pc::policy
