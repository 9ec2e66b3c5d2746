// proxy/pages.h: local HTML replies escape everything taken from a request.
#include "proxy/pages.h"

#include <gtest/gtest.h>

#include "wire/http.h"

namespace pc::proxy {
namespace {

TEST(HtmlEscape, Table) {
  EXPECT_EQ(html_escape(""), "");
  EXPECT_EQ(html_escape("plain text"), "plain text");
  EXPECT_EQ(html_escape("<script>alert('x')</script>"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
  EXPECT_EQ(html_escape("a & b \"c\""), "a &amp; b &quot;c&quot;");
  EXPECT_EQ(html_escape("&amp;"), "&amp;amp;");
  EXPECT_EQ(html_escape("caf\xc3\xa9"), "caf\xc3\xa9");  // UTF-8 untouched
}

struct Split {
  wire::ResponseHead head;
  wire::MessageInfo info;
  std::string body;
};

Split split(const std::string& out, std::string_view method = "GET") {
  Split s;
  auto pr = wire::parse_response_head(out, {}, s.head);
  EXPECT_EQ(pr.status, wire::Status::complete);
  EXPECT_EQ(wire::analyze_response(s.head, method, s.info), wire::Error::none);
  s.body = out.substr(pr.consumed);
  return s;
}

TEST(RenderPage, EscapesTheUrlAndHasCorrectFraming) {
  Page p{403,
         "Request blocked",
         "Not allowed.",
         "http://evil.example/<script>alert(1)</script>?a=\"b\"&c='d'",
         "req-<1>",
         "gw"};
  std::string out = render_page(p, false);
  auto s = split(out);
  EXPECT_EQ(s.head.status, 403);
  EXPECT_EQ(s.head.reason, "Forbidden");
  ASSERT_NE(s.head.find("Cache-Control"), nullptr);
  EXPECT_EQ(s.head.find("Cache-Control")->value, "no-store");
  ASSERT_NE(s.head.find("Content-Type"), nullptr);
  EXPECT_EQ(s.head.find("Content-Type")->value, "text/html; charset=utf-8");
  EXPECT_EQ(s.head.find("Connection"), nullptr);
  EXPECT_EQ(s.info.body, wire::BodyKind::length);
  EXPECT_EQ(s.info.content_length, s.body.size());
  EXPECT_EQ(s.body.find("<script>"), std::string::npos);
  EXPECT_EQ(s.body.find("req-<1>"), std::string::npos);
  EXPECT_NE(s.body.find("&lt;script&gt;alert(1)&lt;/script&gt;?a=&quot;b&quot;&amp;c=&#39;d&#39;"),
            std::string::npos)
      << s.body;
  EXPECT_NE(s.body.find("req-&lt;1&gt;"), std::string::npos);
  EXPECT_NE(s.body.find("403 Forbidden"), std::string::npos);
}

TEST(RenderPage, EscapesTitleMessageAndGateway) {
  Page p{502, "<b>t</b>", "<i>m</i>", "", "", "<gw>"};
  auto s = split(render_page(p, false));
  EXPECT_EQ(s.body.find("<b>"), std::string::npos);
  EXPECT_EQ(s.body.find("<i>"), std::string::npos);
  EXPECT_EQ(s.body.find("<gw>"), std::string::npos);
  EXPECT_NE(s.body.find("&lt;b&gt;t&lt;/b&gt;"), std::string::npos);
  EXPECT_EQ(s.body.find("<dt>URL</dt>"), std::string::npos);  // no URL row when empty
  EXPECT_EQ(s.body.find("Request ID"), std::string::npos);
}

TEST(RenderPage, CloseAddsConnectionClose) {
  Page p{400, "Bad request", "x", "", "", "gw"};
  auto s = split(render_page(p, true));
  ASSERT_NE(s.head.find("Connection"), nullptr);
  EXPECT_EQ(s.head.find("Connection")->value, "close");
  EXPECT_FALSE(s.info.keep_alive);
  EXPECT_EQ(s.info.content_length, s.body.size());
}

TEST(RenderPage, HeadOnlyKeepsTheLengthOfTheBody) {
  Page p{404, "Not found", "x", "http://a/", "id", "gw"};
  std::string full = render_page(p, false);
  std::string head = render_page(p, false, true);
  EXPECT_TRUE(full.starts_with(head));
  EXPECT_TRUE(head.ends_with("\r\n\r\n"));
  auto s = split(head, "HEAD");
  EXPECT_TRUE(s.body.empty());
  ASSERT_NE(s.head.find("Content-Length"), nullptr);
  EXPECT_EQ(s.head.find("Content-Length")->value, std::to_string(full.size() - head.size()));
}

TEST(RenderPage, UnknownStatusHasAReason) {
  auto s = split(render_page(Page{599, "t", "m", "", "", "gw"}, false));
  EXPECT_EQ(s.head.status, 599);
  EXPECT_FALSE(s.head.reason.empty());
  EXPECT_EQ(reason_phrase(504), "Gateway Timeout");
  EXPECT_EQ(reason_phrase(508), "Loop Detected");
}

}  // namespace
}  // namespace pc::proxy
