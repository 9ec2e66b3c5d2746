// txn/http_page.h: the HTTP framing around the gateway's own pages.
#include "txn/http_page.h"

#include <gtest/gtest.h>

#include "wire/http.h"

namespace pc::txn {
namespace {

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

TEST(HttpPage, FramingAndHeaders) {
  std::string html = "<!DOCTYPE html><p>blocked</p>";
  auto s = split(http_page(403, html, "ja", false));
  EXPECT_EQ(s.head.status, 403);
  EXPECT_EQ(s.head.reason, "Forbidden");
  EXPECT_EQ(s.info.body, wire::BodyKind::length);
  EXPECT_EQ(s.info.content_length, html.size());
  EXPECT_EQ(s.body, html);
  ASSERT_NE(s.head.find("Cache-Control"), nullptr);
  EXPECT_EQ(s.head.find("Cache-Control")->value, "no-store");
  EXPECT_EQ(s.head.find("Content-Language")->value, "ja");
  EXPECT_EQ(s.head.find("Content-Type")->value, "text/html; charset=utf-8");
  EXPECT_EQ(s.head.find("Connection"), nullptr);
  EXPECT_TRUE(s.info.keep_alive);
}

TEST(HttpPage, CloseHeadOnlyAndExtraHeaders) {
  auto out = http_page(302, "<p>x</p>", "en", true, true, "Location: http://a.example/\r\n");
  auto s = split(out, "HEAD");
  EXPECT_EQ(s.head.status, 302);
  EXPECT_EQ(s.head.find("Connection")->value, "close");
  EXPECT_EQ(s.head.find("Location")->value, "http://a.example/");
  EXPECT_EQ(s.head.find("Content-Length")->value, "8");  // the length of the omitted body
  EXPECT_EQ(s.body, "");
  EXPECT_FALSE(s.info.keep_alive);
}

TEST(ReasonPhrase, KnownAndUnknown) {
  EXPECT_EQ(reason_phrase(504), "Gateway Timeout");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(599), "Error");
}

}  // namespace
}  // namespace pc::txn
