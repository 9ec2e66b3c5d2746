#include "pages/pages.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace pc::pages {
namespace {

constexpr Kind kAllKinds[] = {
    Kind::rule_block,
    Kind::list_block,
    Kind::warn,
    Kind::threat,
    Kind::bad_request,
    Kind::dns_failure,
    Kind::upstream_unreachable,
    Kind::upstream_timeout,
    Kind::gateway_info,
    Kind::cert_error,
};
constexpr Lang kAllLangs[] = {Lang::en, Lang::ja};

bool contains(const std::string& hay, std::string_view needle) {
  return hay.find(needle) != std::string::npos;
}

Vars sample() {
  Vars v;
  v.url = "http://casino.example/play?x=1&y=2";
  v.host = "casino.example";
  v.category = "Gambling";
  v.rule = "no-gambling";
  v.reason = "category Gambling";
  v.user = "alice";
  v.time = "2026-11-29 16:34:25 UTC";
  v.request_id = "rq-0123456789";
  v.gateway = "gw1.corp.example";
  v.threat = "EICAR-Test-File";
  v.continue_url = "http://gateway.example/continue?t=abc";
  return v;
}

// --- rendering -----------------------------------------------------------------------------

TEST(Pages, BuiltinCoversEveryKindAndLanguage) {
  auto t = Templates::builtin();
  ASSERT_TRUE(t);
  for (Kind k : kAllKinds)
    for (Lang l : kAllLangs) EXPECT_EQ(t->source(k, l), "built-in") << to_string(k);
}

TEST(Pages, EveryPageIsACompleteDocument) {
  auto t = Templates::builtin();
  Vars v = sample();
  for (Kind k : kAllKinds) {
    for (Lang l : kAllLangs) {
      SCOPED_TRACE(std::string(to_string(k)) + "." + std::string(to_string(l)));
      std::string html = t->render(k, l, v);
      EXPECT_TRUE(html.starts_with("<!DOCTYPE html>"));
      EXPECT_TRUE(contains(html, std::string("<html lang=\"") + std::string(to_string(l)) + "\">"));
      EXPECT_TRUE(contains(html, "<meta charset=\"utf-8\">"));
      EXPECT_TRUE(contains(html, "</html>"));
      EXPECT_FALSE(contains(html, "{{"));  // every placeholder substituted
      EXPECT_FALSE(contains(html, "<script"));
      EXPECT_FALSE(contains(html, "src="));  // no external resources
      EXPECT_FALSE(contains(html, "<link"));
      EXPECT_FALSE(contains(html, "@import"));
      // What and why: the request ID on every page, the URL on every page.
      EXPECT_TRUE(contains(html, "rq-0123456789"));
      EXPECT_TRUE(contains(html, "http://casino.example/play?x=1&amp;y=2"));
      EXPECT_TRUE(contains(html, "2026-11-29 16:34:25 UTC"));
      EXPECT_TRUE(contains(html, "alice"));
    }
  }
}

TEST(Pages, BlockPagesShowWhatAndWhy) {
  auto t = Templates::builtin();
  Vars v = sample();
  std::string en = t->render(Kind::rule_block, Lang::en, v);
  EXPECT_TRUE(contains(en, "Access blocked"));
  EXPECT_TRUE(contains(en, "Gambling"));
  EXPECT_TRUE(contains(en, "no-gambling"));
  EXPECT_TRUE(contains(en, "Category"));
  EXPECT_TRUE(contains(en, "Rule"));
  EXPECT_TRUE(contains(en, "Request ID"));
  std::string ja = t->render(Kind::rule_block, Lang::ja, v);
  EXPECT_TRUE(contains(ja, "アクセスがブロックされました"));
  EXPECT_TRUE(contains(ja, "このページへのアクセスは、組織のポリシーによりブロックされています。"));
  EXPECT_TRUE(contains(ja, "カテゴリ"));
  EXPECT_TRUE(contains(ja, "リクエストID"));
  EXPECT_TRUE(contains(ja, "no-gambling"));

  std::string list_ja = t->render(Kind::list_block, Lang::ja, v);
  EXPECT_TRUE(contains(list_ja, "アクセス禁止リスト"));
  std::string list_en = t->render(Kind::list_block, Lang::en, v);
  EXPECT_TRUE(contains(list_en, "list of blocked sites"));
}

TEST(Pages, EmptyOptionalRowsAreLeftOut) {
  auto t = Templates::builtin();
  Vars v;
  v.url = "http://a.example/";
  v.request_id = "r1";
  std::string html = t->render(Kind::rule_block, Lang::en, v);
  EXPECT_FALSE(contains(html, "<dt>Category</dt>"));
  EXPECT_FALSE(contains(html, "<dt>Rule</dt>"));
  EXPECT_TRUE(contains(html, "<dt>Request ID</dt>"));
  v.category = "News";
  html = t->render(Kind::rule_block, Lang::en, v);
  EXPECT_TRUE(contains(html, "<dt>Category</dt><dd>News</dd>"));
}

TEST(Pages, ThreatPageNamesTheThreat) {
  auto t = Templates::builtin();
  Vars v = sample();
  for (Lang l : kAllLangs) EXPECT_TRUE(contains(t->render(Kind::threat, l, v), "EICAR-Test-File"));
  EXPECT_TRUE(contains(t->render(Kind::threat, Lang::ja, v), "脅威が検出されました"));
}

TEST(Pages, WarnPageLinks) {
  auto t = Templates::builtin();
  Vars v = sample();
  std::string en = t->render(Kind::warn, Lang::en, v);
  EXPECT_TRUE(contains(en, "href=\"http://gateway.example/continue?t=abc\""));
  EXPECT_TRUE(contains(en, ">Continue</a>"));
  EXPECT_TRUE(contains(en, ">Go back</a>"));
  EXPECT_TRUE(contains(en, "href=\"javascript:history.back()\""));  // no back_url given
  v.back_url = "https://news.example/front";
  en = t->render(Kind::warn, Lang::en, v);
  EXPECT_TRUE(contains(en, "href=\"https://news.example/front\""));
  std::string ja = t->render(Kind::warn, Lang::ja, v);
  EXPECT_TRUE(contains(ja, ">続行する</a>"));
  EXPECT_TRUE(contains(ja, ">前のページに戻る</a>"));
}

TEST(Pages, DnsFailureSaysWhich) {
  auto t = Templates::builtin();
  Vars v = sample();
  v.host = "nope.example";
  v.dns = DnsError::not_found;
  std::string nf = t->render(Kind::dns_failure, Lang::en, v);
  EXPECT_TRUE(contains(nf, "does not exist"));
  EXPECT_FALSE(contains(nf, "refused"));
  EXPECT_TRUE(contains(nf, "<dt>Status</dt><dd>502</dd>"));
  v.dns = DnsError::refused;
  std::string rf = t->render(Kind::dns_failure, Lang::en, v);
  EXPECT_TRUE(contains(rf, "refused"));
  EXPECT_FALSE(contains(rf, "does not exist"));
  v.dns = DnsError::timeout;
  std::string to = t->render(Kind::dns_failure, Lang::en, v);
  EXPECT_TRUE(contains(to, "did not answer in time"));
  EXPECT_TRUE(contains(to, "<dd>504</dd>"));
  std::string to_ja = t->render(Kind::dns_failure, Lang::ja, v);
  EXPECT_TRUE(contains(to_ja, "時間内に応答がありませんでした"));
  EXPECT_FALSE(contains(to_ja, "存在しません"));
  v.dns = DnsError::not_found;
  EXPECT_TRUE(contains(t->render(Kind::dns_failure, Lang::ja, v), "存在しません"));
  v.dns = DnsError::refused;
  EXPECT_TRUE(contains(t->render(Kind::dns_failure, Lang::ja, v), "拒否しました"));
}

TEST(Pages, ExplicitStatusOverrides) {
  auto t = Templates::builtin();
  Vars v = sample();
  v.status = 431;
  EXPECT_TRUE(contains(t->render(Kind::bad_request, Lang::en, v), "<dd>431</dd>"));
}

TEST(Pages, StatusFor) {
  EXPECT_EQ(status_for(Kind::rule_block), 403);
  EXPECT_EQ(status_for(Kind::list_block), 403);
  EXPECT_EQ(status_for(Kind::threat), 403);
  EXPECT_EQ(status_for(Kind::warn), 403);
  EXPECT_EQ(status_for(Kind::bad_request), 400);
  EXPECT_EQ(status_for(Kind::upstream_unreachable), 502);
  EXPECT_EQ(status_for(Kind::upstream_timeout), 504);
  EXPECT_EQ(status_for(Kind::dns_failure, DnsError::not_found), 502);
  EXPECT_EQ(status_for(Kind::dns_failure, DnsError::refused), 502);
  EXPECT_EQ(status_for(Kind::dns_failure, DnsError::timeout), 504);
  EXPECT_EQ(status_for(Kind::gateway_info), 200);
  EXPECT_EQ(status_for(Kind::cert_error), 502);
}

TEST(Pages, NamesRoundTrip) {
  for (Kind k : kAllKinds) EXPECT_EQ(kind_from_string(to_string(k)), k);
  for (Lang l : kAllLangs) EXPECT_EQ(lang_from_string(to_string(l)), l);
  EXPECT_FALSE(kind_from_string("blocked"));
  EXPECT_FALSE(lang_from_string("fr"));
}

TEST(Pages, FormatTime) {
  auto t = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
  EXPECT_EQ(format_time(t), "2027-01-15 08:00:00 UTC");
}

// --- escaping ------------------------------------------------------------------------------

TEST(Pages, HtmlEscape) {
  EXPECT_EQ(html_escape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&#39;f");
  EXPECT_EQ(html_escape("日本語"), "日本語");
}

TEST(Pages, ScriptInAnyValueIsInert) {
  auto t = Templates::builtin();
  const std::string attacks[] = {
      "http://evil.example/<script>alert(1)</script>",
      "http://evil.example/\"onerror=\"alert(1)",
      "http://evil.example/'onmouseover='alert(1)",
      "javascript:alert(document.cookie)",
      "http://evil.example/\"><img src=x onerror=alert(1)>",
      "</code></dd></dl><script>alert(1)</script>",
  };
  for (const auto& a : attacks) {
    Vars v;
    v.url = v.host = v.category = v.rule = v.reason = v.user = v.time = v.request_id = v.gateway =
        v.threat = v.continue_url = v.back_url = a;
    for (Kind k : kAllKinds) {
      for (Lang l : kAllLangs) {
        SCOPED_TRACE(a + " " + std::string(to_string(k)) + "." + std::string(to_string(l)));
        std::string html = t->render(k, l, v);
        EXPECT_FALSE(contains(html, "<script"));
        EXPECT_FALSE(contains(html, "<img"));
        EXPECT_FALSE(contains(html, "\"onerror="));
        EXPECT_FALSE(contains(html, "'onmouseover="));
        EXPECT_FALSE(contains(html, "\"javascript:alert"));
        EXPECT_FALSE(contains(html, "href=\"javascript:alert"));
        EXPECT_FALSE(contains(html, "</code></dd></dl><"));
      }
    }
  }
}

TEST(Pages, ContinueUrlMustBeHttp) {
  auto t = Templates::builtin();
  auto href = [&](std::string u) {
    Vars v;
    v.continue_url = std::move(u);
    std::string html = t->render(Kind::warn, Lang::en, v);
    auto at = html.find("class=\"button primary\" href=\"");
    EXPECT_NE(at, std::string::npos);
    at += 29;
    return html.substr(at, html.find('"', at) - at);
  };
  EXPECT_EQ(href("http://gw.example/c?t=1&u=2"), "http://gw.example/c?t=1&amp;u=2");
  EXPECT_EQ(href("HTTPS://gw.example/c"), "HTTPS://gw.example/c");
  EXPECT_EQ(href("javascript:alert(1)"), "#");
  EXPECT_EQ(href(" javascript:alert(1)"), "#");
  EXPECT_EQ(href("JaVaScRiPt:alert(1)"), "#");
  EXPECT_EQ(href("data:text/html,<script>alert(1)</script>"), "#");
  EXPECT_EQ(href("vbscript:msgbox(1)"), "#");
  EXPECT_EQ(href("//evil.example/"), "#");
  EXPECT_EQ(href("/relative"), "#");
  EXPECT_EQ(href("http://"), "#");
  EXPECT_EQ(href("http://gw.example/\nx"), "#");
  EXPECT_EQ(href("http://gw.example/ x"), "#");
  EXPECT_EQ(href(""), "#");
  EXPECT_EQ(href("http://gw.example/\"onclick=\"alert(1)"),
            "http://gw.example/&quot;onclick=&quot;alert(1)");
}

// --- negotiation ---------------------------------------------------------------------------

TEST(Pages, Negotiate) {
  struct Case {
    const char* header;
    Lang want;
  };
  const Case cases[] = {
      {"", Lang::en},
      {"ja", Lang::ja},
      {"JA", Lang::ja},
      {"ja-JP", Lang::ja},
      {"ja-jp,ja;q=0.9,en-US;q=0.8,en;q=0.7", Lang::ja},
      {"en-US,en;q=0.9,ja;q=0.8", Lang::en},
      {"en-US", Lang::en},
      {"fr", Lang::en},
      {"fr, ja;q=0.5", Lang::ja},
      {"fr-CA, fr;q=0.9, en;q=0.3, ja;q=0.5", Lang::ja},
      {"ja;q=0.5, en;q=0.5", Lang::ja},  // tie: the earlier range
      {"en;q=0.5, ja;q=0.5", Lang::en},
      {"*", Lang::en},
      {"*;q=0.5, ja", Lang::ja},
      {"ja;q=0, *", Lang::en},
      {"en;q=0, *", Lang::ja},
      {"en;q=0", Lang::en},  // nothing acceptable: the default
      {"ja;q=0", Lang::en},
      {"ja-JP;q=0.2, en;q=0.1", Lang::ja},
      {"ja;q=0.1, ja-JP;q=0.9, en;q=0.5", Lang::en},  // the exact "ja" range decides for ja
      {"ja;q=1.0", Lang::ja},
      {"ja;q=1.000", Lang::ja},
      {"ja;q=2, en;q=0.1", Lang::en},  // invalid q: the range is ignored
      {"ja;q=abc, en;q=0.1", Lang::en},
      {"ja;q=0.1234, en;q=0.1", Lang::en},
      {"ja ; q = 0.8 , en ; q = 0.7", Lang::ja},
      {"jam, en;q=0.1", Lang::en},  // another language, not ja
      {"ja_JP", Lang::en},          // malformed range
      {",,,;;;===", Lang::en},
      {"zh-Hant-TW, ja;q=0.1", Lang::ja},
  };
  for (const auto& c : cases) EXPECT_EQ(negotiate(c.header), c.want) << c.header;
  std::string huge(100000, ',');
  huge += "ja";
  EXPECT_EQ(negotiate(huge), Lang::en);  // only the first 4 KiB are read
}

// --- admin override ------------------------------------------------------------------------

class OverrideDir : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pc-pages-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  std::filesystem::path dir_;
};

TEST_F(OverrideDir, EmptyPathIsBuiltin) {
  std::vector<std::string> errors;
  auto t = Templates::load({}, errors);
  ASSERT_TRUE(t);
  EXPECT_TRUE(errors.empty());
  EXPECT_EQ(t->source(Kind::rule_block, Lang::ja), "built-in");
}

TEST_F(OverrideDir, FilesReplaceBuiltinsOthersFallBack) {
  write("rule_block.ja.html",
        "<html lang=\"ja\"><p>{{ url }}|{{user}}|{{#category}}[{{category}}]{{/category}}</p>"
        "<p>{{#rule}}rule={{rule}}{{/rule}}</p></html>\n");
  write("README.txt", "ignored");
  std::filesystem::create_directory(dir_ / "old.html");  // not a regular file: ignored
  std::vector<std::string> errors;
  auto t = Templates::load(dir_, errors);
  ASSERT_TRUE(t) << (errors.empty() ? "" : errors[0]);
  EXPECT_EQ(t->source(Kind::rule_block, Lang::ja), (dir_ / "rule_block.ja.html").string());
  EXPECT_EQ(t->source(Kind::rule_block, Lang::en), "built-in");
  Vars v;
  v.url = "http://x.example/<b>";
  v.user = "10.0.0.1";
  EXPECT_EQ(t->render(Kind::rule_block, Lang::ja, v),
            "<html lang=\"ja\"><p>http://x.example/&lt;b&gt;|10.0.0.1|</p><p></p></html>\n");
  v.category = "A&B";
  v.rule = "r";
  EXPECT_EQ(t->render(Kind::rule_block, Lang::ja, v),
            "<html lang=\"ja\"><p>http://x.example/&lt;b&gt;|10.0.0.1|[A&amp;B]</p>"
            "<p>rule=r</p></html>\n");
  EXPECT_TRUE(contains(t->render(Kind::rule_block, Lang::en, v), "Access blocked"));
  // The built-in set is untouched.
  EXPECT_TRUE(contains(Templates::builtin()->render(Kind::rule_block, Lang::ja, v),
                       "アクセスがブロックされました"));
}

TEST_F(OverrideDir, UnknownPlaceholderNamesTheFile) {
  write("warn.en.html", "<p>ok {{url}}</p>\n<p>{{continue_link}}</p>\n");
  std::vector<std::string> errors;
  auto t = Templates::load(dir_, errors);
  EXPECT_FALSE(t);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(contains(errors[0], (dir_ / "warn.en.html").string() + ":2:")) << errors[0];
  EXPECT_TRUE(contains(errors[0], "continue_link")) << errors[0];
}

TEST_F(OverrideDir, EveryErrorIsListed) {
  write("threat.en.html", "{{#threat}}unclosed");
  write("threat.ja.html", "{{/threat}}");
  write("dns_failure.en.html", "{{url");
  write("bad_request.en.html", "{{dns_timeout}}");
  write("gateway_info.en.html", "{{#url}}{{#host}}{{/url}}{{/host}}");
  write("rule_block.fr.html", "<p>bonjour</p>");
  write("blocked.en.html", "<p>x</p>");
  write("good.html", "<p>x</p>");
  std::vector<std::string> errors;
  auto t = Templates::load(dir_, errors);
  EXPECT_FALSE(t);
  EXPECT_EQ(errors.size(), 9u);  // the crossed sections give two: a stray close, an unclosed
  for (const char* f :
       {"threat.en.html", "threat.ja.html", "dns_failure.en.html", "bad_request.en.html",
        "gateway_info.en.html", "rule_block.fr.html", "blocked.en.html", "good.html"}) {
    bool named = false;
    for (const auto& e : errors) named = named || contains(e, (dir_ / f).string());
    EXPECT_TRUE(named) << f;
  }
}

TEST_F(OverrideDir, DanglingLinkIsAnError) {
  std::filesystem::create_symlink(dir_ / "nowhere", dir_ / "warn.ja.html");
  std::vector<std::string> errors;
  EXPECT_FALSE(Templates::load(dir_, errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(contains(errors[0], "warn.ja.html"));
}

TEST_F(OverrideDir, MissingFolderIsAnError) {
  std::vector<std::string> errors;
  EXPECT_FALSE(Templates::load(dir_ / "missing", errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(contains(errors[0], "missing"));
}

TEST_F(OverrideDir, OverrideStillEscapesAndFiltersLinks) {
  write("warn.en.html", "<a href=\"{{continue_url}}\">{{url}}</a><a href=\"{{back_url}}\">b</a>");
  std::vector<std::string> errors;
  auto t = Templates::load(dir_, errors);
  ASSERT_TRUE(t);
  Vars v;
  v.url = "<script>alert(1)</script>";
  v.continue_url = "javascript:alert(1)";
  v.back_url = "data:text/html,x";
  EXPECT_EQ(t->render(Kind::warn, Lang::en, v),
            "<a href=\"#\">&lt;script&gt;alert(1)&lt;/script&gt;</a>"
            "<a href=\"javascript:history.back()\">b</a>");
}

}  // namespace
}  // namespace pc::pages
