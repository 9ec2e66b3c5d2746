// Head parsing: request and status lines, field lines, limits, incremental input.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "wire/http.h"

namespace pc::wire {
namespace {

using namespace std::string_literals;

struct RequestCase {
  const char* name;
  std::string input;
  Status status;
  Error error;
};

void PrintTo(const RequestCase& c, std::ostream* os) {
  *os << c.name;
}

class RequestHeadTable : public testing::TestWithParam<RequestCase> {};

TEST_P(RequestHeadTable, Parses) {
  const RequestCase& c = GetParam();
  RequestHead head;
  ParseResult r = parse_request_head(c.input, Limits{}, head);
  EXPECT_EQ(r.status, c.status) << describe(r.error);
  EXPECT_EQ(r.error, c.error) << describe(r.error) << " at " << r.error_offset;
  if (r.status == Status::error) {
    EXPECT_LT(r.error_offset, c.input.size());
  }
  if (r.status == Status::complete) {
    EXPECT_LE(r.consumed, c.input.size());
  }
}

const std::string kHost = "Host: a.example\r\n";

INSTANTIATE_TEST_SUITE_P(
    Wire, RequestHeadTable,
    testing::Values(
        RequestCase{"origin_form", "GET /x?y=1 HTTP/1.1\r\n" + kHost + "\r\n", Status::complete,
                    Error::none},
        RequestCase{"absolute_form", "GET http://a.example/x HTTP/1.1\r\n" + kHost + "\r\n",
                    Status::complete, Error::none},
        RequestCase{"authority_form",
                    "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
                    Status::complete, Error::none},
        RequestCase{"asterisk_form", "OPTIONS * HTTP/1.1\r\n" + kHost + "\r\n", Status::complete,
                    Error::none},
        RequestCase{"http10_no_fields", "GET / HTTP/1.0\r\n\r\n", Status::complete, Error::none},
        RequestCase{"leading_empty_lines", "\r\n\r\nGET / HTTP/1.1\r\n" + kHost + "\r\n",
                    Status::complete, Error::none},
        RequestCase{"empty_value", "GET / HTTP/1.1\r\n" + kHost + "X-Empty:\r\n\r\n",
                    Status::complete, Error::none},
        RequestCase{"obs_text_value", "GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n", Status::complete,
                    Error::none},
        RequestCase{"htab_in_value", "GET / HTTP/1.1\r\nX: a\tb\r\n\r\n", Status::complete,
                    Error::none},
        RequestCase{"incomplete", "GET / HTTP/1.1\r\nHost: a", Status::incomplete, Error::none},
        RequestCase{"empty", "", Status::incomplete, Error::none},
        // request line
        RequestCase{"bad_request_line_leading_sp", " GET / HTTP/1.1\r\n\r\n", Status::error,
                    Error::bad_request_line},
        RequestCase{"bad_request_line_double_sp", "GET  / HTTP/1.1\r\n\r\n", Status::error,
                    Error::bad_request_line},
        RequestCase{"bad_request_line_http09", "GET /\r\n\r\n", Status::error,
                    Error::bad_request_line},
        RequestCase{"bad_request_line_method_only", "GET\r\n\r\n", Status::error,
                    Error::bad_request_line},
        RequestCase{"bad_request_line_tab_sep", "GET\t/ HTTP/1.1\r\n\r\n", Status::error,
                    Error::bad_request_line},
        RequestCase{"bad_method_paren", "GE(T / HTTP/1.1\r\n\r\n", Status::error,
                    Error::bad_method},
        RequestCase{"bad_method_tls", "\x16\x03\x01\x02\x00"s, Status::error, Error::bad_method},
        RequestCase{"bad_target_ctl", "GET /\x01 HTTP/1.1\r\n\r\n", Status::error,
                    Error::bad_target},
        RequestCase{"bad_target_high_bit", "GET /\xc3\xa9 HTTP/1.1\r\n\r\n", Status::error,
                    Error::bad_target},
        RequestCase{"bad_target_del", "GET /\x7f HTTP/1.1\r\n\r\n", Status::error,
                    Error::bad_target},
        RequestCase{"bad_target_tab", "GET /a\tb HTTP/1.1\r\n\r\n", Status::error,
                    Error::bad_target},
        RequestCase{"bad_version_lower", "GET / http/1.1\r\n\r\n", Status::error,
                    Error::bad_version},
        RequestCase{"bad_version_two_digits", "GET / HTTP/1.10\r\n\r\n", Status::error,
                    Error::bad_version},
        RequestCase{"bad_version_short", "GET / HTTP/1\r\n\r\n", Status::error, Error::bad_version},
        RequestCase{"bad_version_trailing_sp", "GET / HTTP/1.1 \r\n\r\n", Status::error,
                    Error::bad_version},
        RequestCase{"bad_version_extra_word", "GET / x HTTP/1.1\r\n\r\n", Status::error,
                    Error::bad_version},
        RequestCase{"unsupported_version_2", "GET / HTTP/2.0\r\n\r\n", Status::error,
                    Error::unsupported_version},
        RequestCase{"unsupported_version_12", "GET / HTTP/1.2\r\n\r\n", Status::error,
                    Error::unsupported_version},
        RequestCase{"unsupported_version_09", "GET / HTTP/0.9\r\n\r\n", Status::error,
                    Error::unsupported_version},
        // field lines
        RequestCase{"bad_field_name_empty", "GET / HTTP/1.1\r\n: x\r\n\r\n", Status::error,
                    Error::bad_field_name},
        RequestCase{"bad_field_name_char", "GET / HTTP/1.1\r\nX(y): z\r\n\r\n", Status::error,
                    Error::bad_field_name},
        RequestCase{"bad_field_name_no_colon", "GET / HTTP/1.1\r\nHost\r\n\r\n", Status::error,
                    Error::bad_field_name},
        RequestCase{"bad_field_name_high_bit", "GET / HTTP/1.1\r\nH\xc3\xa9: x\r\n\r\n",
                    Status::error, Error::bad_field_name},
        RequestCase{"ws_before_colon_sp", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", Status::error,
                    Error::ws_before_colon},
        RequestCase{"ws_before_colon_tab", "GET / HTTP/1.1\r\nContent-Length\t: 5\r\n\r\n",
                    Status::error, Error::ws_before_colon},
        RequestCase{"obs_fold_sp", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", Status::error,
                    Error::obs_fold},
        RequestCase{"obs_fold_tab", "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", Status::error,
                    Error::obs_fold},
        RequestCase{"obs_fold_first_line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", Status::error,
                    Error::obs_fold},
        RequestCase{"bare_cr_in_value", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", Status::error,
                    Error::bare_cr},
        RequestCase{"bare_cr_line_end", "GET / HTTP/1.1\r\nX: a\r\r\n\r\n", Status::error,
                    Error::bare_cr},
        RequestCase{"bare_cr_request_line", "GET / HTTP/1.1\rX\r\n\r\n", Status::error,
                    Error::bare_cr},
        RequestCase{"bare_cr_final_line", "GET / HTTP/1.1\r\nX: a\r\n\rX", Status::error,
                    Error::bare_cr},
        RequestCase{"bare_cr_leading", "\rGET / HTTP/1.1\r\n\r\n", Status::error, Error::bare_cr},
        RequestCase{"bare_lf_request_line", "GET / HTTP/1.1\n\r\n", Status::error, Error::bare_lf},
        RequestCase{"bare_lf_field", "GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n", Status::error,
                    Error::bare_lf},
        RequestCase{"bare_lf_final", "GET / HTTP/1.1\r\nX: a\r\n\n", Status::error, Error::bare_lf},
        RequestCase{"bare_lf_leading", "\nGET / HTTP/1.1\r\n\r\n", Status::error, Error::bare_lf},
        RequestCase{"nul_in_value", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"s, Status::error,
                    Error::nul_byte},
        RequestCase{"nul_in_name", "GET / HTTP/1.1\r\nX\0: a\r\n\r\n"s, Status::error,
                    Error::nul_byte},
        RequestCase{"nul_in_target", "GET /\0 HTTP/1.1\r\n\r\n"s, Status::error, Error::nul_byte},
        RequestCase{"nul_in_method", "G\0T / HTTP/1.1\r\n\r\n"s, Status::error, Error::nul_byte},
        RequestCase{"nul_in_version", "GET / HTTP/1\0\r\n\r\n"s, Status::error, Error::nul_byte},
        RequestCase{"bad_field_value_ctl", "GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", Status::error,
                    Error::bad_field_value},
        RequestCase{"bad_field_value_del", "GET / HTTP/1.1\r\nX: a\x7fz\r\n\r\n", Status::error,
                    Error::bad_field_value},
        RequestCase{"bad_field_value_esc", "GET / HTTP/1.1\r\nX: \x1b[0m\r\n\r\n", Status::error,
                    Error::bad_field_value}));

TEST(RequestHead, ViewsAndOwnership) {
  std::string text =
      "\r\nPOST http://a.example:8080/p?q HTTP/1.0\r\nHost:  a.example:8080 \r\nX-A:\tv1\t\r\n"
      "x-a: v2\r\n\r\nBODY";
  RequestHead head;
  ParseResult r = parse_request_head(text, Limits{}, head);
  ASSERT_EQ(r.status, Status::complete);
  EXPECT_EQ(r.consumed, text.size() - 4);
  // Overwrite the input: the head must own its bytes.
  std::string(text.size(), 'Z').swap(text);
  RequestHead moved = std::move(head);
  EXPECT_EQ(moved.method, "POST");
  EXPECT_EQ(moved.target, "http://a.example:8080/p?q");
  EXPECT_EQ(moved.version_minor, 0);
  ASSERT_EQ(moved.fields.size(), 3u);
  EXPECT_EQ(moved.fields[0].name, "Host");
  EXPECT_EQ(moved.fields[0].value, "a.example:8080");
  EXPECT_EQ(moved.fields[1].value, "v1");
  EXPECT_EQ(moved.find("X-A")->value, "v1");
  EXPECT_EQ(moved.count("x-a"), 2u);
  EXPECT_EQ(moved.find("missing"), nullptr);
  EXPECT_EQ(moved.bytes().substr(0, 4), "POST");
  EXPECT_EQ(moved.bytes().size(), r.consumed - 2);  // leading CRLF excluded
  const char* lo = moved.bytes().data();
  const char* hi = lo + moved.bytes().size();
  for (const Field& f : moved.fields) {
    EXPECT_TRUE(f.name.data() >= lo && f.name.data() + f.name.size() <= hi);
    EXPECT_TRUE(f.value.data() >= lo && f.value.data() + f.value.size() <= hi);
  }
}

TEST(RequestHead, ErrorOffsetPointsAtTheByte) {
  const std::string text = "GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n";
  RequestHead head;
  ParseResult r = parse_request_head(text, Limits{}, head);
  ASSERT_EQ(r.error, Error::bad_field_value);
  EXPECT_EQ(text[r.error_offset], '\x01');
  EXPECT_TRUE(head.fields.empty());
}

// Feeding a valid head one byte at a time: incomplete for every proper prefix, then the
// same result as parsing it whole.
TEST(RequestHead, ByteByByte) {
  const std::string text =
      "\r\nGET http://a.example/x HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n"
      "Connection: keep-alive\r\n\r\n";
  RequestHead whole;
  ParseResult rw = parse_request_head(text, Limits{}, whole);
  ASSERT_EQ(rw.status, Status::complete);
  RequestHead head;
  for (std::size_t n = 0; n < text.size(); ++n) {
    ParseResult r = parse_request_head(std::string_view(text).substr(0, n), Limits{}, head);
    ASSERT_EQ(r.status, Status::incomplete) << "prefix " << n << ": " << describe(r.error);
  }
  ParseResult r = parse_request_head(text, Limits{}, head);
  ASSERT_EQ(r.status, Status::complete);
  EXPECT_EQ(r.consumed, rw.consumed);
  EXPECT_EQ(head.method, whole.method);
  EXPECT_EQ(head.target, whole.target);
  ASSERT_EQ(head.fields.size(), whole.fields.size());
  for (std::size_t k = 0; k < head.fields.size(); ++k) {
    EXPECT_EQ(head.fields[k].name, whole.fields[k].name);
    EXPECT_EQ(head.fields[k].value, whole.fields[k].value);
  }
}

TEST(ResponseHead, ByteByByte) {
  const std::string text = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
  ResponseHead head;
  for (std::size_t n = 0; n < text.size(); ++n) {
    ParseResult r = parse_response_head(std::string_view(text).substr(0, n), Limits{}, head);
    ASSERT_EQ(r.status, Status::incomplete) << "prefix " << n;
  }
  ParseResult r = parse_response_head(text + "abc", Limits{}, head);
  ASSERT_EQ(r.status, Status::complete);
  EXPECT_EQ(r.consumed, text.size());
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.reason, "OK");
}

// ---- limits ----

std::string request_with_target(std::size_t target_len) {
  return "GET /" + std::string(target_len - 1, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
}

TEST(Limits, UrlAtLimitPasses) {
  Limits lim;
  lim.max_url_bytes = 64;
  RequestHead head;
  EXPECT_EQ(parse_request_head(request_with_target(64), lim, head).status, Status::complete);
  ParseResult r = parse_request_head(request_with_target(65), lim, head);
  EXPECT_EQ(r.error, Error::uri_too_long);
  EXPECT_EQ(http_status_for(r.error), 414);
}

TEST(Limits, UrlTooLongDetectedBeforeLineEnds) {
  Limits lim;
  lim.max_url_bytes = 64;
  RequestHead head;
  const std::string partial = "GET /" + std::string(64, 'a');  // 65 bytes of target, no SP
  EXPECT_EQ(parse_request_head(partial, lim, head).error, Error::uri_too_long);
  EXPECT_EQ(parse_request_head(partial.substr(0, partial.size() - 1), lim, head).status,
            Status::incomplete);
}

TEST(Limits, HeadBytesAtLimitPasses) {
  const std::string text = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(40, 'v') + "\r\n\r\n";
  Limits lim;
  lim.max_head_bytes = text.size();
  RequestHead head;
  EXPECT_EQ(parse_request_head(text, lim, head).status, Status::complete);
  lim.max_head_bytes = text.size() - 1;
  ParseResult r = parse_request_head(text, lim, head);
  EXPECT_EQ(r.error, Error::head_too_large);
  EXPECT_EQ(http_status_for(r.error), 431);
  // Exactly max_head_bytes of an unfinished head is still incomplete.
  EXPECT_EQ(parse_request_head(text.substr(0, lim.max_head_bytes), lim, head).status,
            Status::incomplete);
}

TEST(Limits, HeadBytesCountLeadingEmptyLines) {
  const std::string text = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
  Limits lim;
  lim.max_head_bytes = text.size();
  RequestHead head;
  EXPECT_EQ(parse_request_head(text, lim, head).status, Status::complete);
  lim.max_head_bytes = text.size() - 1;
  EXPECT_EQ(parse_request_head(text, lim, head).error, Error::head_too_large);
}

std::string request_with_fields(std::size_t n) {
  std::string s = "GET / HTTP/1.1\r\n";
  for (std::size_t k = 0; k < n; ++k) s += "X-" + std::to_string(k) + ": v\r\n";
  return s + "\r\n";
}

TEST(Limits, FieldCountAtLimitPasses) {
  Limits lim;
  lim.max_fields = 10;
  RequestHead head;
  ParseResult r = parse_request_head(request_with_fields(10), lim, head);
  EXPECT_EQ(r.status, Status::complete);
  EXPECT_EQ(head.fields.size(), 10u);
  r = parse_request_head(request_with_fields(11), lim, head);
  EXPECT_EQ(r.error, Error::too_many_fields);
  EXPECT_EQ(http_status_for(r.error), 431);
}

TEST(Limits, FieldLineAtLimitPasses) {
  Limits lim;
  lim.max_field_bytes = 32;
  const std::string at = "X: " + std::string(29, 'v');  // 32 bytes
  const std::string over = "X: " + std::string(30, 'v');
  RequestHead head;
  EXPECT_EQ(parse_request_head("GET / HTTP/1.1\r\n" + at + "\r\n\r\n", lim, head).status,
            Status::complete);
  ParseResult r = parse_request_head("GET / HTTP/1.1\r\n" + over + "\r\n\r\n", lim, head);
  EXPECT_EQ(r.error, Error::field_too_large);
  EXPECT_EQ(http_status_for(r.error), 431);
  // Certain before the line ends.
  r = parse_request_head("GET / HTTP/1.1\r\n" + over, lim, head);
  EXPECT_EQ(r.error, Error::field_too_large);
  // A long name counts too.
  r = parse_request_head("GET / HTTP/1.1\r\n" + std::string(33, 'N'), lim, head);
  EXPECT_EQ(r.error, Error::field_too_large);
}

// ---- responses ----

struct ResponseCase {
  const char* name;
  std::string input;
  Status status;
  Error error;
  int code;
  const char* reason;
};

void PrintTo(const ResponseCase& c, std::ostream* os) {
  *os << c.name;
}

class ResponseHeadTable : public testing::TestWithParam<ResponseCase> {};

TEST_P(ResponseHeadTable, Parses) {
  const ResponseCase& c = GetParam();
  ResponseHead head;
  ParseResult r = parse_response_head(c.input, Limits{}, head);
  EXPECT_EQ(r.status, c.status);
  EXPECT_EQ(r.error, c.error) << describe(r.error);
  if (r.status == Status::complete) {
    EXPECT_EQ(head.status, c.code);
    EXPECT_EQ(head.reason, c.reason);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Wire, ResponseHeadTable,
    testing::Values(
        ResponseCase{"ok", "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", Status::complete, Error::none,
                     200, "OK"},
        ResponseCase{"http10", "HTTP/1.0 404 Not Found\r\n\r\n", Status::complete, Error::none, 404,
                     "Not Found"},
        ResponseCase{"empty_reason", "HTTP/1.1 204 \r\n\r\n", Status::complete, Error::none, 204,
                     ""},
        ResponseCase{"no_reason", "HTTP/1.1 304\r\n\r\n", Status::complete, Error::none, 304, ""},
        ResponseCase{"obs_text_reason", "HTTP/1.1 200 \xc3\xa9\tok\r\n\r\n", Status::complete,
                     Error::none, 200, "\xc3\xa9\tok"},
        ResponseCase{"incomplete", "HTTP/1.1 200 OK\r\n", Status::incomplete, Error::none, 0, ""},
        ResponseCase{"bad_status_line_lower", "http/1.1 200 OK\r\n\r\n", Status::error,
                     Error::bad_status_line, 0, ""},
        ResponseCase{"bad_status_line_version", "HTTP/2.0 200 OK\r\n\r\n", Status::error,
                     Error::bad_status_line, 0, ""},
        ResponseCase{"bad_status_line_two_digits", "HTTP/1.1 20 OK\r\n\r\n", Status::error,
                     Error::bad_status_line, 0, ""},
        ResponseCase{"bad_status_line_four_digits", "HTTP/1.1 2000 OK\r\n\r\n", Status::error,
                     Error::bad_status_line, 0, ""},
        ResponseCase{"bad_status_line_range", "HTTP/1.1 600 X\r\n\r\n", Status::error,
                     Error::bad_status_line, 0, ""},
        ResponseCase{"bad_status_line_ctl_reason", "HTTP/1.1 200 O\x01K\r\n\r\n", Status::error,
                     Error::bad_status_line, 0, ""},
        ResponseCase{"bad_status_line_leading_crlf", "\r\nHTTP/1.1 200 OK\r\n\r\n", Status::error,
                     Error::bad_status_line, 0, ""},
        ResponseCase{"bare_lf_status", "HTTP/1.1 200 OK\n\r\n", Status::error, Error::bare_lf, 0,
                     ""},
        ResponseCase{"bare_cr_status", "HTTP/1.1 200 OK\rX\r\n\r\n", Status::error, Error::bare_cr,
                     0, ""},
        ResponseCase{"nul_reason", "HTTP/1.1 200 O\0K\r\n\r\n"s, Status::error, Error::nul_byte, 0,
                     ""},
        ResponseCase{"obs_fold_field", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", Status::error,
                     Error::obs_fold, 0, ""},
        ResponseCase{"ws_before_colon_field", "HTTP/1.1 200 OK\r\nX : a\r\n\r\n", Status::error,
                     Error::ws_before_colon, 0, ""}));

TEST(Errors, StatusAndDescription) {
  EXPECT_EQ(http_status_for(Error::uri_too_long), 414);
  EXPECT_EQ(http_status_for(Error::head_too_large), 431);
  EXPECT_EQ(http_status_for(Error::field_too_large), 431);
  EXPECT_EQ(http_status_for(Error::too_many_fields), 431);
  EXPECT_EQ(http_status_for(Error::unsupported_te), 501);
  EXPECT_EQ(http_status_for(Error::unsupported_version), 505);
  EXPECT_EQ(http_status_for(Error::bad_status_line), 502);
  EXPECT_EQ(http_status_for(Error::cl_and_te), 400);
  EXPECT_EQ(http_status_for(Error::bare_lf), 400);
  EXPECT_EQ(http_status_for(Error::bad_chunk_end), 400);
  for (int e = 0; e <= static_cast<int>(Error::bad_chunk_end); ++e) {
    EXPECT_FALSE(describe(static_cast<Error>(e)).empty());
    EXPECT_NE(describe(static_cast<Error>(e)), "unknown error");
  }
  EXPECT_EQ(describe(Error::cl_and_te), "Content-Length and Transfer-Encoding together");
}

}  // namespace
}  // namespace pc::wire
