// ICAP/1.0: request and response heads, Encapsulated, encapsulated HTTP heads, the chunked
// body with ieof, limits and serializer round trips.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "wire/icap.h"

namespace pc::wire {
namespace {

using namespace std::string_literals;

// ---------------------------------------------------------------------------------------
// Encapsulated

struct EncCase {
  const char* name;
  std::string value;
  IcapMethod method;
  IcapDirection dir;
  IcapError error;
  std::optional<std::size_t> req_hdr = std::nullopt;
  std::optional<std::size_t> res_hdr = std::nullopt;
  IcapEntity body = IcapEntity::null_body;
  std::size_t body_offset = 0;
};

void PrintTo(const EncCase& c, std::ostream* os) {
  *os << c.name;
}

class EncapsulatedTable : public testing::TestWithParam<EncCase> {};

TEST_P(EncapsulatedTable, Parses) {
  const EncCase& c = GetParam();
  Encapsulated enc;
  const IcapError e = parse_encapsulated(c.value, c.method, c.dir, 131072, enc);
  EXPECT_EQ(e, c.error) << describe(e);
  if (c.error == IcapError::none) {
    EXPECT_TRUE(enc.present);
    EXPECT_EQ(enc.req_hdr, c.req_hdr);
    EXPECT_EQ(enc.res_hdr, c.res_hdr);
    EXPECT_EQ(enc.body, c.body);
    EXPECT_EQ(enc.body_offset, c.body_offset);
    const std::size_t heads = enc.req_hdr_size() + enc.res_hdr_size();
    EXPECT_EQ(heads, enc.body_offset);
  } else {
    EXPECT_FALSE(enc.present);
  }
}

constexpr auto kReq = IcapDirection::request;
constexpr auto kRes = IcapDirection::response;
constexpr auto kOpt = IcapMethod::options;
constexpr auto kReqmod = IcapMethod::reqmod;
constexpr auto kRespmod = IcapMethod::respmod;
using E = IcapEntity;
using IE = IcapError;

INSTANTIATE_TEST_SUITE_P(
    Valid, EncapsulatedTable,
    testing::Values(EncCase{"reqmod_hdr_body", "req-hdr=0, req-body=412", kReqmod, kReq, IE::none,
                            0, std::nullopt, E::req_body, 412},
                    EncCase{"reqmod_hdr_null", "req-hdr=0, null-body=412", kReqmod, kReq, IE::none,
                            0, std::nullopt, E::null_body, 412},
                    EncCase{"reqmod_body_only", "req-body=0", kReqmod, kReq, IE::none, std::nullopt,
                            std::nullopt, E::req_body, 0},
                    EncCase{"reqmod_null_only", "null-body=0", kReqmod, kReq, IE::none},
                    EncCase{"no_space", "req-hdr=0,req-body=7", kReqmod, kReq, IE::none, 0,
                            std::nullopt, E::req_body, 7},
                    EncCase{"ows_around_comma", "req-hdr=0 \t,  req-body=7", kReqmod, kReq,
                            IE::none, 0, std::nullopt, E::req_body, 7},
                    EncCase{"leading_zeros", "req-hdr=000, req-body=0007", kReqmod, kReq, IE::none,
                            0, std::nullopt, E::req_body, 7},
                    EncCase{"respmod_all", "req-hdr=0, res-hdr=822, res-body=1655", kRespmod, kReq,
                            IE::none, 0, 822, E::res_body, 1655},
                    EncCase{"respmod_res_only", "res-hdr=0, res-body=10", kRespmod, kReq, IE::none,
                            std::nullopt, 0, E::res_body, 10},
                    EncCase{"respmod_req_only", "req-hdr=0, null-body=10", kRespmod, kReq, IE::none,
                            0, std::nullopt, E::null_body, 10},
                    EncCase{"respmod_req_res_body", "req-hdr=0, res-body=10", kRespmod, kReq,
                            IE::none, 0, std::nullopt, E::res_body, 10},
                    EncCase{"respmod_both_null", "req-hdr=0, res-hdr=5, null-body=9", kRespmod,
                            kReq, IE::none, 0, 5, E::null_body, 9},
                    EncCase{"respmod_body_only", "res-body=0", kRespmod, kReq, IE::none,
                            std::nullopt, std::nullopt, E::res_body, 0},
                    EncCase{"options_null", "null-body=0", kOpt, kReq, IE::none},
                    EncCase{"options_opt", "opt-body=0", kOpt, kReq, IE::none, std::nullopt,
                            std::nullopt, E::opt_body, 0},
                    EncCase{"reqmod_resp_req", "req-hdr=0, req-body=512", kReqmod, kRes, IE::none,
                            0, std::nullopt, E::req_body, 512},
                    EncCase{"reqmod_resp_res", "res-hdr=0, res-body=749", kReqmod, kRes, IE::none,
                            std::nullopt, 0, E::res_body, 749},
                    EncCase{"reqmod_resp_res_null", "res-hdr=0, null-body=49", kReqmod, kRes,
                            IE::none, std::nullopt, 0, E::null_body, 49},
                    EncCase{"respmod_resp", "res-hdr=0, res-body=749", kRespmod, kRes, IE::none,
                            std::nullopt, 0, E::res_body, 749},
                    EncCase{"respmod_resp_null", "null-body=0", kRespmod, kRes, IE::none},
                    EncCase{"options_resp_opt", "opt-body=0", kOpt, kRes, IE::none, std::nullopt,
                            std::nullopt, E::opt_body, 0},
                    EncCase{"at_limit", "req-hdr=0, null-body=131072", kReqmod, kReq, IE::none, 0,
                            std::nullopt, E::null_body, 131072}));

INSTANTIATE_TEST_SUITE_P(
    Syntax, EncapsulatedTable,
    testing::Values(
        EncCase{"empty", "", kReqmod, kReq, IE::bad_encapsulated},
        EncCase{"no_equals", "req-hdr", kReqmod, kReq, IE::bad_encapsulated},
        EncCase{"no_digits", "null-body=", kReqmod, kReq, IE::bad_encapsulated},
        EncCase{"not_decimal", "null-body=x", kReqmod, kReq, IE::bad_encapsulated},
        EncCase{"hex", "null-body=0x0", kReqmod, kReq, IE::bad_encapsulated},
        EncCase{"negative", "null-body=-0", kReqmod, kReq, IE::bad_encapsulated},
        EncCase{"plus", "null-body=+0", kReqmod, kReq, IE::bad_encapsulated},
        EncCase{"space_before_eq", "null-body =0", kReqmod, kReq, IE::bad_encapsulated},
        EncCase{"space_after_eq", "null-body= 0", kReqmod, kReq, IE::bad_encapsulated},
        EncCase{"upper_case", "Null-Body=0", kReqmod, kReq, IE::bad_encapsulated},
        EncCase{"unknown_entity", "req-trailer=0", kReqmod, kReq, IE::bad_encapsulated},
        EncCase{"empty_element", "req-hdr=0,, req-body=5", kReqmod, kReq, IE::bad_encapsulated},
        EncCase{"trailing_comma", "req-hdr=0, req-body=5,", kReqmod, kReq, IE::bad_encapsulated},
        EncCase{"leading_comma", ",req-hdr=0, req-body=5", kReqmod, kReq, IE::bad_encapsulated},
        EncCase{"semicolon", "req-hdr=0; req-body=5", kReqmod, kReq, IE::bad_encapsulated},
        EncCase{"space_separated", "req-hdr=0 req-body=5", kReqmod, kReq, IE::bad_encapsulated},
        EncCase{"fraction", "null-body=0.5", kReqmod, kReq, IE::bad_encapsulated}));

INSTANTIATE_TEST_SUITE_P(
    Order, EncapsulatedTable,
    testing::Values(
        EncCase{"reqmod_no_body", "req-hdr=0", kReqmod, kReq, IE::encapsulated_order},
        EncCase{"reqmod_body_first", "req-body=0, req-hdr=5", kReqmod, kReq,
                IE::encapsulated_order},
        EncCase{"reqmod_dup_hdr", "req-hdr=0, req-hdr=5, req-body=9", kReqmod, kReq,
                IE::encapsulated_order},
        EncCase{"reqmod_two_bodies", "req-body=0, null-body=0", kReqmod, kReq,
                IE::encapsulated_order},
        EncCase{"reqmod_null_then_body", "null-body=0, req-body=5", kReqmod, kReq,
                IE::encapsulated_order},
        EncCase{"reqmod_res_hdr", "res-hdr=0, res-body=5", kReqmod, kReq, IE::encapsulated_order},
        EncCase{"reqmod_res_body", "req-hdr=0, res-body=5", kReqmod, kReq, IE::encapsulated_order},
        EncCase{"reqmod_opt_body", "opt-body=0", kReqmod, kReq, IE::encapsulated_order},
        EncCase{"respmod_wrong_order", "res-hdr=0, req-hdr=5, res-body=9", kRespmod, kReq,
                IE::encapsulated_order},
        EncCase{"respmod_req_body", "req-hdr=0, res-hdr=5, req-body=9", kRespmod, kReq,
                IE::encapsulated_order},
        EncCase{"respmod_dup_res", "res-hdr=0, res-hdr=5, res-body=9", kRespmod, kReq,
                IE::encapsulated_order},
        EncCase{"respmod_only_heads", "req-hdr=0, res-hdr=5", kRespmod, kReq,
                IE::encapsulated_order},
        EncCase{"respmod_four", "req-hdr=0, res-hdr=5, res-body=9, null-body=10", kRespmod, kReq,
                IE::encapsulated_order},
        EncCase{"seven_elements",
                "req-hdr=0, req-hdr=1, req-hdr=2, req-hdr=3, req-hdr=4, req-hdr=5, null-body=6",
                kRespmod, kReq, IE::encapsulated_order},
        EncCase{"options_req_hdr", "req-hdr=0, null-body=5", kOpt, kReq, IE::encapsulated_order},
        EncCase{"options_req_body", "req-body=0", kOpt, kReq, IE::encapsulated_order},
        EncCase{"reqmod_resp_mixed", "req-hdr=0, res-body=5", kReqmod, kRes,
                IE::encapsulated_order},
        EncCase{"reqmod_resp_both_heads", "req-hdr=0, res-hdr=5, res-body=9", kReqmod, kRes,
                IE::encapsulated_order},
        EncCase{"respmod_resp_req_hdr", "req-hdr=0, res-hdr=5, res-body=9", kRespmod, kRes,
                IE::encapsulated_order},
        EncCase{"respmod_resp_req_body", "req-body=0", kRespmod, kRes, IE::encapsulated_order},
        EncCase{"options_resp_res", "res-hdr=0, res-body=5", kOpt, kRes, IE::encapsulated_order}));

INSTANTIATE_TEST_SUITE_P(
    Offsets, EncapsulatedTable,
    testing::Values(
        EncCase{"first_not_zero", "req-hdr=5, req-body=10", kReqmod, kReq,
                IE::encapsulated_offsets},
        EncCase{"null_not_zero", "null-body=1", kReqmod, kReq, IE::encapsulated_offsets},
        EncCase{"equal", "req-hdr=0, req-body=0", kReqmod, kReq, IE::encapsulated_offsets},
        EncCase{"overlapping_heads", "req-hdr=0, res-hdr=0, res-body=5", kRespmod, kReq,
                IE::encapsulated_offsets},
        EncCase{"decreasing", "req-hdr=0, res-hdr=50, res-body=40", kRespmod, kReq,
                IE::encapsulated_offsets},
        EncCase{"both_huge",
                "req-hdr=0, res-hdr=99999999999999999999, res-body=99999999999999999999", kRespmod,
                kReq, IE::encapsulated_offsets},
        EncCase{"past_limit", "req-hdr=0, null-body=131073", kReqmod, kReq,
                IE::encapsulated_too_large},
        EncCase{"overflow", "req-hdr=0, null-body=999999999999999999999999999", kReqmod, kReq,
                IE::encapsulated_too_large}));

// ---------------------------------------------------------------------------------------
// Request heads

const std::string kHost = "Host: icap.example\r\n";

struct RequestCase {
  const char* name;
  std::string input;
  Status status;
  IcapError error;
  Error detail = Error::none;
};

void PrintTo(const RequestCase& c, std::ostream* os) {
  *os << c.name;
}

class IcapRequestTable : public testing::TestWithParam<RequestCase> {};

TEST_P(IcapRequestTable, Parses) {
  const RequestCase& c = GetParam();
  IcapRequestHead head;
  const IcapParseResult r = parse_icap_request_head(c.input, IcapLimits{}, head);
  EXPECT_EQ(r.status, c.status) << describe(r.error);
  EXPECT_EQ(r.error, c.error) << describe(r.error) << " at " << r.error_offset;
  EXPECT_EQ(r.detail, c.detail) << describe(r.detail);
  if (r.status == Status::error) {
    EXPECT_LT(r.error_offset, c.input.size());
    EXPECT_TRUE(head.fields.empty());
    EXPECT_EQ(head.raw_size, 0u);
  }
  if (r.status == Status::complete) {
    EXPECT_EQ(r.consumed, c.input.size());
  }
  // Byte by byte: every proper prefix is incomplete or already fails the same way.
  for (std::size_t k = 0; k < c.input.size(); ++k) {
    IcapRequestHead part;
    const IcapParseResult p = parse_icap_request_head(c.input.substr(0, k), IcapLimits{}, part);
    ASSERT_NE(p.status, Status::complete) << "prefix " << k;
    if (p.status == Status::error) {
      ASSERT_EQ(c.status, Status::error) << "prefix " << k << ": " << describe(p.error);
      ASSERT_EQ(p.error, c.error) << "prefix " << k;
    }
  }
}

std::string reqmod(std::string uri, std::string fields = kHost + "Encapsulated: null-body=0\r\n") {
  return "REQMOD " + uri + " ICAP/1.0\r\n" + fields + "\r\n";
}

INSTANTIATE_TEST_SUITE_P(
    RequestLine, IcapRequestTable,
    testing::Values(
        RequestCase{"reqmod", reqmod("icap://icap.example/reqmod"), Status::complete, IE::none},
        RequestCase{"respmod",
                    "RESPMOD icap://icap.example/respmod ICAP/1.0\r\n" + kHost +
                        "Encapsulated: req-hdr=0, res-hdr=20, res-body=40\r\n\r\n",
                    Status::complete, IE::none},
        RequestCase{"options_without_encapsulated",
                    "OPTIONS icap://icap.example/reqmod ICAP/1.0\r\n" + kHost + "\r\n",
                    Status::complete, IE::none},
        RequestCase{"options_null_body",
                    "OPTIONS icap://icap.example/reqmod ICAP/1.0\r\n" + kHost +
                        "Encapsulated: null-body=0\r\n\r\n",
                    Status::complete, IE::none},
        RequestCase{"port", reqmod("icap://icap.example:1345/av"), Status::complete, IE::none},
        RequestCase{"ipv4", reqmod("icap://192.0.2.1/av"), Status::complete, IE::none},
        RequestCase{"ipv6", reqmod("icap://[2001:db8::1]:1344/av"), Status::complete, IE::none},
        RequestCase{"query", reqmod("icap://icap.example/av?mode=strict&x"), Status::complete,
                    IE::none},
        RequestCase{"empty_query", reqmod("icap://icap.example/av?"), Status::complete, IE::none},
        RequestCase{"nested_service", reqmod("icap://icap.example/a/b/c"), Status::complete,
                    IE::none},
        RequestCase{"icaps", reqmod("icaps://icap.example/av"), Status::complete, IE::none},
        RequestCase{"missing_service_slash", reqmod("icap://icap.example/"), Status::error,
                    IE::missing_service},
        RequestCase{"missing_service", reqmod("icap://icap.example"), Status::error,
                    IE::missing_service},
        RequestCase{"missing_service_query", reqmod("icap://icap.example?x=1"), Status::error,
                    IE::missing_service},
        RequestCase{"missing_service_query_slash", reqmod("icap://icap.example/?x=1"),
                    Status::error, IE::missing_service},
        RequestCase{"http_scheme", reqmod("http://icap.example/av"), Status::error, IE::bad_uri},
        RequestCase{"upper_scheme", reqmod("ICAP://icap.example/av"), Status::error, IE::bad_uri},
        RequestCase{"relative", reqmod("/av"), Status::error, IE::bad_uri},
        RequestCase{"no_host", reqmod("icap:///av"), Status::error, IE::bad_uri},
        RequestCase{"userinfo", reqmod("icap://u:p@icap.example/av"), Status::error, IE::bad_uri},
        RequestCase{"fragment", reqmod("icap://icap.example/av#x"), Status::error, IE::bad_uri},
        RequestCase{"port_zero", reqmod("icap://icap.example:0/av"), Status::error, IE::bad_uri},
        RequestCase{"port_too_big", reqmod("icap://icap.example:65536/av"), Status::error,
                    IE::bad_uri},
        RequestCase{"empty_port", reqmod("icap://icap.example:/av"), Status::error, IE::bad_uri},
        RequestCase{"uri_control", "REQMOD icap://a/\x7f ICAP/1.0\r\n\r\n", Status::error,
                    IE::bad_uri},
        RequestCase{"version_11", "REQMOD icap://a/s ICAP/1.1\r\n\r\n", Status::error,
                    IE::unsupported_version},
        RequestCase{"version_20", "REQMOD icap://a/s ICAP/2.0\r\n\r\n", Status::error,
                    IE::unsupported_version},
        RequestCase{"http_version", "REQMOD icap://a/s HTTP/1.1\r\n\r\n", Status::error,
                    IE::bad_version},
        RequestCase{"lower_version", "REQMOD icap://a/s icap/1.0\r\n\r\n", Status::error,
                    IE::bad_version},
        RequestCase{"version_trailing_space", "REQMOD icap://a/s ICAP/1.0 \r\n\r\n", Status::error,
                    IE::bad_version},
        RequestCase{"version_two_digits", "REQMOD icap://a/s ICAP/1.10\r\n\r\n", Status::error,
                    IE::bad_version},
        RequestCase{"no_version", "REQMOD icap://a/s\r\n\r\n", Status::error, IE::bad_request_line},
        RequestCase{"unknown_method", "GET icap://a/s ICAP/1.0\r\n\r\n", Status::error,
                    IE::unknown_method},
        RequestCase{"lower_method", "reqmod icap://a/s ICAP/1.0\r\n\r\n", Status::error,
                    IE::unknown_method},
        RequestCase{"unknown_method_bad_version", "GET icap://a/s ICAP/1.1\r\n\r\n", Status::error,
                    IE::unsupported_version},
        RequestCase{"bad_method", "RE(MOD icap://a/s ICAP/1.0\r\n\r\n", Status::error,
                    IE::bad_method},
        RequestCase{"leading_space", " REQMOD icap://a/s ICAP/1.0\r\n\r\n", Status::error,
                    IE::bad_request_line},
        RequestCase{"leading_crlf", "\r\nREQMOD icap://a/s ICAP/1.0\r\n\r\n", Status::error,
                    IE::bad_request_line},
        RequestCase{"double_space", "REQMOD  icap://a/s ICAP/1.0\r\n\r\n", Status::error,
                    IE::bad_request_line},
        RequestCase{"tab", "REQMOD\ticap://a/s ICAP/1.0\r\n\r\n", Status::error,
                    IE::bad_request_line},
        RequestCase{"bare_lf_line", "REQMOD icap://a/s ICAP/1.0\n\r\n", Status::error,
                    IE::bad_request_line, Error::bare_lf},
        RequestCase{"bare_cr_line", "REQMOD icap://a/s ICAP/1.0\rX\r\n", Status::error,
                    IE::bad_request_line, Error::bare_cr},
        RequestCase{"nul_in_method", "REQ\0MOD icap://a/s ICAP/1.0\r\n\r\n"s, Status::error,
                    IE::bad_request_line, Error::nul_byte},
        RequestCase{"incomplete", "REQMOD icap://a/s ICAP/1.0\r\nHost: a\r\n", Status::incomplete,
                    IE::none}));

INSTANTIATE_TEST_SUITE_P(
    Fields, IcapRequestTable,
    testing::Values(
        RequestCase{"obs_fold", reqmod("icap://a/s", kHost + "X: a\r\n b\r\n"), Status::error,
                    IE::bad_field, Error::obs_fold},
        RequestCase{"ws_before_colon", reqmod("icap://a/s", kHost + "X : a\r\n"), Status::error,
                    IE::bad_field, Error::ws_before_colon},
        RequestCase{"bare_lf_field", reqmod("icap://a/s", kHost + "X: a\n"), Status::error,
                    IE::bad_field, Error::bare_lf},
        RequestCase{"bare_cr_field", reqmod("icap://a/s", kHost + "X: a\rb\r\n"), Status::error,
                    IE::bad_field, Error::bare_cr},
        RequestCase{"nul_field", reqmod("icap://a/s", kHost + "X: a\0b\r\n"s), Status::error,
                    IE::bad_field, Error::nul_byte},
        RequestCase{"bad_name", reqmod("icap://a/s", kHost + "X(y): a\r\n"), Status::error,
                    IE::bad_field, Error::bad_field_name},
        RequestCase{"control_value", reqmod("icap://a/s", kHost + "X: a\x01\r\n"), Status::error,
                    IE::bad_field, Error::bad_field_value},
        RequestCase{"missing_host", reqmod("icap://a/s", "Encapsulated: null-body=0\r\n"),
                    Status::error, IE::missing_host},
        RequestCase{"two_hosts",
                    reqmod("icap://a/s", kHost + kHost + "Encapsulated: null-body=0\r\n"),
                    Status::error, IE::bad_host},
        RequestCase{"bad_host", reqmod("icap://a/s", "Host: a b\r\nEncapsulated: null-body=0\r\n"),
                    Status::error, IE::bad_host},
        RequestCase{"missing_encapsulated", reqmod("icap://a/s", kHost), Status::error,
                    IE::missing_encapsulated},
        RequestCase{"respmod_missing_encapsulated",
                    "RESPMOD icap://a/s ICAP/1.0\r\n" + kHost + "\r\n", Status::error,
                    IE::missing_encapsulated},
        RequestCase{"two_encapsulated",
                    reqmod("icap://a/s", kHost + "Encapsulated: null-body=0\r\n"
                                                 "Encapsulated: null-body=0\r\n"),
                    Status::error, IE::bad_encapsulated},
        RequestCase{"encapsulated_case_insensitive_name",
                    reqmod("icap://a/s", kHost + "encapsulated: req-hdr=0, null-body=30\r\n"),
                    Status::complete, IE::none},
        RequestCase{"encapsulated_bad_order",
                    reqmod("icap://a/s", kHost + "Encapsulated: res-hdr=0, res-body=30\r\n"),
                    Status::error, IE::encapsulated_order},
        RequestCase{"encapsulated_offsets",
                    reqmod("icap://a/s", kHost + "Encapsulated: req-hdr=3, req-body=30\r\n"),
                    Status::error, IE::encapsulated_offsets},
        RequestCase{"encapsulated_too_large",
                    reqmod("icap://a/s", kHost + "Encapsulated: req-hdr=0, req-body=200000\r\n"),
                    Status::error, IE::encapsulated_too_large},
        RequestCase{"options_opt_body",
                    "OPTIONS icap://a/s ICAP/1.0\r\n" + kHost + "Encapsulated: opt-body=0\r\n\r\n",
                    Status::complete, IE::none},
        RequestCase{"options_req_hdr",
                    "OPTIONS icap://a/s ICAP/1.0\r\n" + kHost +
                        "Encapsulated: req-hdr=0, null-body=9\r\n\r\n",
                    Status::error, IE::encapsulated_order},
        RequestCase{"preview",
                    reqmod("icap://a/s", kHost + "Encapsulated: req-hdr=0, req-body=30\r\n"
                                                 "Preview: 1024\r\n"),
                    Status::complete, IE::none},
        RequestCase{"preview_negative",
                    reqmod("icap://a/s", kHost + "Encapsulated: null-body=0\r\nPreview: -1\r\n"),
                    Status::error, IE::bad_preview},
        RequestCase{"preview_not_decimal",
                    reqmod("icap://a/s", kHost + "Encapsulated: null-body=0\r\nPreview: 1k\r\n"),
                    Status::error, IE::bad_preview},
        RequestCase{"preview_empty",
                    reqmod("icap://a/s", kHost + "Encapsulated: null-body=0\r\nPreview:\r\n"),
                    Status::error, IE::bad_preview},
        RequestCase{"preview_twice",
                    reqmod("icap://a/s", kHost + "Encapsulated: null-body=0\r\nPreview: 1\r\n"
                                                 "Preview: 1\r\n"),
                    Status::error, IE::bad_preview},
        RequestCase{
            "preview_above_limit",
            reqmod("icap://a/s", kHost + "Encapsulated: null-body=0\r\nPreview: 1048577\r\n"),
            Status::error, IE::bad_preview},
        RequestCase{
            "preview_at_limit",
            reqmod("icap://a/s", kHost + "Encapsulated: null-body=0\r\nPreview: 1048576\r\n"),
            Status::complete, IE::none},
        RequestCase{"allow_list",
                    reqmod("icap://a/s", kHost + "Encapsulated: null-body=0\r\n"
                                                 "Allow: 204, 206, trailers\r\n"),
                    Status::complete, IE::none},
        RequestCase{"allow_empty",
                    reqmod("icap://a/s", kHost + "Encapsulated: null-body=0\r\nAllow:\r\n"),
                    Status::complete, IE::none},
        RequestCase{
            "allow_not_token",
            reqmod("icap://a/s", kHost + "Encapsulated: null-body=0\r\nAllow: 204, 2 06\r\n"),
            Status::error, IE::bad_allow}));

TEST(IcapRequest, ViewsAndOwnership) {
  const std::string text =
      "RESPMOD icaps://[2001:db8::1]:11345/av/scan?profile=strict ICAP/1.0\r\n"
      "Host: [2001:db8::1]:11345\r\n"
      "Allow: 204\r\n"
      "Allow: 206\r\n"
      "Preview: 0\r\n"
      "Connection: close\r\n"
      "Encapsulated: req-hdr=0, res-hdr=137, res-body=296\r\n"
      "\r\n";
  IcapRequestHead head;
  std::string buf = text + "trailing bytes";
  const IcapParseResult r = parse_icap_request_head(buf, IcapLimits{}, head);
  ASSERT_EQ(r.status, Status::complete) << describe(r.error);
  EXPECT_EQ(r.consumed, text.size());
  buf.assign(buf.size(), 'x');  // the head owns its bytes
  IcapRequestHead moved = std::move(head);
  EXPECT_EQ(moved.bytes(), text);
  EXPECT_EQ(moved.method, IcapMethod::respmod);
  EXPECT_EQ(moved.method_name, "RESPMOD");
  EXPECT_EQ(moved.uri, "icaps://[2001:db8::1]:11345/av/scan?profile=strict");
  EXPECT_EQ(moved.target.scheme, "icaps");
  EXPECT_EQ(moved.target.host, "2001:db8::1");
  EXPECT_EQ(moved.target.port, 11345);
  EXPECT_TRUE(moved.target.port_explicit);
  EXPECT_EQ(moved.target.service, "av/scan");
  EXPECT_TRUE(moved.target.has_query);
  EXPECT_EQ(moved.target.query, "profile=strict");
  EXPECT_EQ(moved.version_minor, 0);
  EXPECT_EQ(moved.preview, std::optional<std::uint64_t>(0));
  EXPECT_TRUE(moved.allow_204);
  EXPECT_TRUE(moved.allow_206);
  EXPECT_TRUE(moved.connection_close);
  EXPECT_EQ(moved.encapsulated.req_hdr, std::optional<std::size_t>(0));
  EXPECT_EQ(moved.encapsulated.res_hdr, std::optional<std::size_t>(137));
  EXPECT_EQ(moved.encapsulated.body, IcapEntity::res_body);
  EXPECT_EQ(moved.encapsulated.body_offset, 296u);
  EXPECT_EQ(moved.encapsulated.req_hdr_size(), 137u);
  EXPECT_EQ(moved.encapsulated.res_hdr_size(), 159u);
  ASSERT_NE(moved.find("host"), nullptr);
  EXPECT_EQ(moved.find("host")->value, "[2001:db8::1]:11345");
  EXPECT_EQ(moved.count("allow"), 2u);
}

TEST(IcapRequest, DefaultsWithoutOptionalFields) {
  IcapRequestHead head;
  const std::string text =
      "OPTIONS icap://icap.example/info ICAP/1.0\r\nHost: icap.example\r\n\r\n";
  ASSERT_EQ(parse_icap_request_head(text, IcapLimits{}, head).status, Status::complete);
  EXPECT_EQ(head.method, IcapMethod::options);
  EXPECT_EQ(head.target.port, kIcapPort);
  EXPECT_FALSE(head.target.port_explicit);
  EXPECT_FALSE(head.target.has_query);
  EXPECT_FALSE(head.encapsulated.present);
  EXPECT_EQ(head.encapsulated.body, IcapEntity::null_body);
  EXPECT_EQ(head.encapsulated.body_offset, 0u);
  EXPECT_FALSE(head.preview.has_value());
  EXPECT_FALSE(head.allow_204 || head.allow_206 || head.connection_close);
  // A reused head from an error holds nothing.
  EXPECT_EQ(parse_icap_request_head("BAD(\r\n\r\n", IcapLimits{}, head).status, Status::error);
  EXPECT_TRUE(head.fields.empty());
  EXPECT_TRUE(head.uri.empty());
}

// ---------------------------------------------------------------------------------------
// Limits

IcapParseResult parse_req(const std::string& s, const IcapLimits& lim) {
  IcapRequestHead head;
  return parse_icap_request_head(s, lim, head);
}

// A REQMOD head padded by an X field to exactly `size` bytes.
std::string head_of_size(std::size_t size) {
  const std::string start =
      "REQMOD icap://a/s ICAP/1.0\r\nHost: a\r\nEncapsulated: null-body=0\r\n";
  const std::string x = "X: \r\n\r\n";
  return start + "X: " + std::string(size - start.size() - x.size(), 'v') + "\r\n\r\n";
}

TEST(IcapLimits, HeadBytesAtLimit) {
  IcapLimits lim;
  lim.max_head_bytes = 200;
  const std::string at = head_of_size(200);
  ASSERT_EQ(at.size(), 200u);
  EXPECT_EQ(parse_req(at, lim).status, Status::complete);
  EXPECT_EQ(parse_req(at + "more", lim).status, Status::complete);
  const std::string over = head_of_size(201);
  const IcapParseResult r = parse_req(over, lim);
  EXPECT_EQ(r.error, IcapError::head_too_large);
  EXPECT_EQ(r.error_offset, 200u);
  // Exactly the limit without the end is still incomplete; one more byte is too large.
  EXPECT_EQ(parse_req(over.substr(0, 200), lim).status, Status::incomplete);
  EXPECT_EQ(parse_req(over.substr(0, 201), lim).error, IcapError::head_too_large);
}

TEST(IcapLimits, FieldCount) {
  IcapLimits lim;
  lim.max_fields = 3;
  const std::string base = "REQMOD icap://a/s ICAP/1.0\r\nHost: a\r\nEncapsulated: null-body=0\r\n";
  EXPECT_EQ(parse_req(base + "X: 1\r\n\r\n", lim).status, Status::complete);
  EXPECT_EQ(parse_req(base + "X: 1\r\nY: 2\r\n\r\n", lim).error, IcapError::too_many_fields);
}

TEST(IcapLimits, FieldLine) {
  IcapLimits lim;
  lim.max_field_bytes = 30;  // "Encapsulated: null-body=0" is 25
  const std::string base = "REQMOD icap://a/s ICAP/1.0\r\nHost: a\r\nEncapsulated: null-body=0\r\n";
  // "X: " + 27 bytes = 30 bytes, the limit.
  EXPECT_EQ(parse_req(base + "X: " + std::string(27, 'v') + "\r\n\r\n", lim).status,
            Status::complete);
  EXPECT_EQ(parse_req(base + "X: " + std::string(28, 'v') + "\r\n\r\n", lim).error,
            IcapError::field_too_large);
}

TEST(IcapLimits, UriLength) {
  IcapLimits lim;
  lim.max_uri_bytes = 16;
  const std::string fields = "Host: a\r\nEncapsulated: null-body=0\r\n\r\n";
  const std::string at = "icap://a/" + std::string(7, 's');  // 16 bytes
  ASSERT_EQ(at.size(), 16u);
  EXPECT_EQ(parse_req("REQMOD " + at + " ICAP/1.0\r\n" + fields, lim).status, Status::complete);
  const IcapParseResult r = parse_req("REQMOD " + at + "s", lim);  // certain before the line ends
  EXPECT_EQ(r.error, IcapError::uri_too_long);
  EXPECT_EQ(r.error_offset, 7u + 16u);
}

TEST(IcapLimits, EncapsulatedAndPreview) {
  IcapLimits lim;
  lim.max_encapsulated_bytes = 100;
  lim.max_preview = 10;
  const std::string base = "REQMOD icap://a/s ICAP/1.0\r\nHost: a\r\n";
  EXPECT_EQ(
      parse_req(base + "Encapsulated: req-hdr=0, req-body=100\r\nPreview: 10\r\n\r\n", lim).status,
      Status::complete);
  EXPECT_EQ(parse_req(base + "Encapsulated: req-hdr=0, req-body=101\r\n\r\n", lim).error,
            IcapError::encapsulated_too_large);
  EXPECT_EQ(parse_req(base + "Encapsulated: null-body=0\r\nPreview: 11\r\n\r\n", lim).error,
            IcapError::bad_preview);
}

// ---------------------------------------------------------------------------------------
// Response heads

struct ResponseCase {
  const char* name;
  std::string input;
  IcapMethod method;
  Status status;
  IcapError error;
};

void PrintTo(const ResponseCase& c, std::ostream* os) {
  *os << c.name;
}

class IcapResponseTable : public testing::TestWithParam<ResponseCase> {};

TEST_P(IcapResponseTable, Parses) {
  const ResponseCase& c = GetParam();
  IcapResponseHead head;
  const IcapParseResult r = parse_icap_response_head(c.input, IcapLimits{}, c.method, head);
  EXPECT_EQ(r.status, c.status) << describe(r.error);
  EXPECT_EQ(r.error, c.error) << describe(r.error);
  if (r.status == Status::error) {
    EXPECT_LT(r.error_offset, c.input.size());
  }
  for (std::size_t k = 0; k < c.input.size(); ++k) {
    IcapResponseHead part;
    const IcapParseResult p =
        parse_icap_response_head(c.input.substr(0, k), IcapLimits{}, c.method, part);
    ASSERT_NE(p.status, Status::complete) << "prefix " << k;
    if (p.status == Status::error) {
      ASSERT_EQ(p.error, c.error) << "prefix " << k;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Responses, IcapResponseTable,
    testing::Values(
        ResponseCase{"ok_respmod",
                     "ICAP/1.0 200 OK\r\nISTag: \"t1\"\r\nEncapsulated: res-hdr=0, "
                     "res-body=40\r\n\r\n",
                     kRespmod, Status::complete, IE::none},
        ResponseCase{"ok_reqmod_request",
                     "ICAP/1.0 200 OK\r\nISTag: \"t1\"\r\nEncapsulated: req-hdr=0, "
                     "null-body=40\r\n\r\n",
                     kReqmod, Status::complete, IE::none},
        ResponseCase{"ok_respmod_req_hdr",
                     "ICAP/1.0 200 OK\r\nEncapsulated: req-hdr=0, null-body=40\r\n\r\n", kRespmod,
                     Status::error, IE::encapsulated_order},
        ResponseCase{"ok_without_encapsulated", "ICAP/1.0 200 OK\r\nISTag: \"t1\"\r\n\r\n",
                     kRespmod, Status::error, IE::missing_encapsulated},
        ResponseCase{"options_ok",
                     "ICAP/1.0 200 OK\r\nMethods: RESPMOD\r\nEncapsulated: "
                     "null-body=0\r\n\r\n",
                     kOpt, Status::complete, IE::none},
        ResponseCase{"continue", "ICAP/1.0 100 Continue\r\n\r\n", kReqmod, Status::complete,
                     IE::none},
        ResponseCase{"no_content", "ICAP/1.0 204 No Content\r\nISTag: \"t\"\r\n\r\n", kReqmod,
                     Status::complete, IE::none},
        ResponseCase{"no_content_null",
                     "ICAP/1.0 204 No Content\r\nEncapsulated: null-body=0\r\n\r\n", kReqmod,
                     Status::complete, IE::none},
        ResponseCase{"no_content_with_head",
                     "ICAP/1.0 204 No Content\r\nEncapsulated: res-hdr=0, null-body=9\r\n\r\n",
                     kRespmod, Status::error, IE::encapsulated_order},
        ResponseCase{"error_without_encapsulated", "ICAP/1.0 500 Server Error\r\n\r\n", kRespmod,
                     Status::complete, IE::none},
        ResponseCase{"no_reason", "ICAP/1.0 204\r\n\r\n", kRespmod, Status::complete, IE::none},
        ResponseCase{"http_version", "HTTP/1.1 200 OK\r\n\r\n", kRespmod, Status::error,
                     IE::bad_status_line},
        ResponseCase{"icap_11", "ICAP/1.1 200 OK\r\n\r\n", kRespmod, Status::error,
                     IE::bad_status_line},
        ResponseCase{"status_600", "ICAP/1.0 600 X\r\n\r\n", kRespmod, Status::error,
                     IE::bad_status_line},
        ResponseCase{"status_short", "ICAP/1.0 20 X\r\n\r\n", kRespmod, Status::error,
                     IE::bad_status_line},
        ResponseCase{"obs_fold", "ICAP/1.0 500 X\r\nA: b\r\n c\r\n\r\n", kRespmod, Status::error,
                     IE::bad_field}));

// ---------------------------------------------------------------------------------------
// Encapsulated HTTP heads

const std::string kHttpReq = "GET http://www.example/ HTTP/1.1\r\nHost: www.example\r\n\r\n";
const std::string kHttpRes = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n";

IcapParseResult heads_of(const std::string& encapsulated, IcapMethod method,
                         const std::string& section, EncapsulatedHeads& out,
                         const Limits& http = {}) {
  Encapsulated enc;
  const IcapError e =
      parse_encapsulated(encapsulated, method, IcapDirection::request, 1 << 20, enc);
  EXPECT_EQ(e, IcapError::none) << encapsulated;
  return parse_encapsulated_heads(enc, section, http, out);
}

std::string off(std::size_t n) {
  return std::to_string(n);
}

TEST(EncapsulatedHeads, RequestAndResponse) {
  const std::string enc = "req-hdr=0, res-hdr=" + off(kHttpReq.size()) +
                          ", res-body=" + off(kHttpReq.size() + kHttpRes.size());
  std::string section = kHttpReq + kHttpRes + "5\r\nhello\r\n0\r\n\r\n";
  EncapsulatedHeads heads;
  const IcapParseResult r = heads_of(enc, kRespmod, section, heads);
  ASSERT_EQ(r.status, Status::complete) << describe(r.error) << ": " << describe(r.detail);
  EXPECT_EQ(r.consumed, kHttpReq.size() + kHttpRes.size());
  section.assign(section.size(), 'x');
  ASSERT_TRUE(heads.has_request);
  ASSERT_TRUE(heads.has_response);
  EXPECT_EQ(heads.request.method, "GET");
  EXPECT_EQ(heads.request.target, "http://www.example/");
  EXPECT_EQ(heads.request.bytes(), kHttpReq);
  EXPECT_EQ(heads.response.status, 200);
  EXPECT_EQ(heads.response.bytes(), kHttpRes);
}

TEST(EncapsulatedHeads, NullBodyOnly) {
  EncapsulatedHeads heads;
  const IcapParseResult r = heads_of("null-body=0", kReqmod, "", heads);
  EXPECT_EQ(r.status, Status::complete);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_FALSE(heads.has_request || heads.has_response);
}

TEST(EncapsulatedHeads, ByteByByteIncompleteUntilBody) {
  const std::string enc = "req-hdr=0, req-body=" + off(kHttpReq.size());
  const std::string section = kHttpReq + "3\r\nabc\r\n0\r\n\r\n";
  for (std::size_t k = 0; k < kHttpReq.size(); ++k) {
    EncapsulatedHeads heads;
    ASSERT_EQ(heads_of(enc, kReqmod, section.substr(0, k), heads).status, Status::incomplete) << k;
  }
  EncapsulatedHeads heads;
  EXPECT_EQ(heads_of(enc, kReqmod, section.substr(0, kHttpReq.size()), heads).status,
            Status::complete);
}

struct HeadsCase {
  const char* name;
  std::string encapsulated;
  IcapMethod method;
  std::string section;
  Status status;
  IcapError error;
  Error detail = Error::none;
};

void PrintTo(const HeadsCase& c, std::ostream* os) {
  *os << c.name;
}

class EncapsulatedHeadsTable : public testing::TestWithParam<HeadsCase> {};

TEST_P(EncapsulatedHeadsTable, Splits) {
  const HeadsCase& c = GetParam();
  EncapsulatedHeads heads;
  const IcapParseResult r = heads_of(c.encapsulated, c.method, c.section, heads);
  EXPECT_EQ(r.status, c.status) << describe(r.error);
  EXPECT_EQ(r.error, c.error) << describe(r.error);
  EXPECT_EQ(r.detail, c.detail) << describe(r.detail);
  if (r.status == Status::error) {
    EXPECT_LT(r.error_offset, c.section.size());
  }
}

const std::size_t kReqLen = kHttpReq.size();
const std::size_t kResLen = kHttpRes.size();
const std::string kBody = "5\r\nhello\r\n0\r\n\r\n";

INSTANTIATE_TEST_SUITE_P(
    Wire, EncapsulatedHeadsTable,
    testing::Values(
        HeadsCase{"exact", "req-hdr=0, req-body=" + off(kReqLen), kReqmod, kHttpReq + kBody,
                  Status::complete, IE::none},
        HeadsCase{"res_only", "res-hdr=0, res-body=" + off(kResLen), kRespmod, kHttpRes + kBody,
                  Status::complete, IE::none},
        HeadsCase{"offset_short_of_head", "req-hdr=0, req-body=" + off(kReqLen - 1), kReqmod,
                  kHttpReq + kBody, Status::error, IE::http_head_length},
        HeadsCase{"offset_past_head", "req-hdr=0, req-body=" + off(kReqLen + 3), kReqmod,
                  kHttpReq + kBody, Status::error, IE::http_head_length},
        HeadsCase{"offset_past_section", "req-hdr=0, null-body=" + off(kReqLen + 100), kReqmod,
                  kHttpReq, Status::incomplete, IE::none},
        HeadsCase{"res_boundary_wrong",
                  "req-hdr=0, res-hdr=" + off(kReqLen + 2) + ", res-body=" + off(kReqLen + kResLen),
                  kRespmod, kHttpReq + kHttpRes + kBody, Status::error, IE::http_head_length},
        HeadsCase{"heads_swapped",
                  "req-hdr=0, res-hdr=" + off(kResLen) + ", res-body=" + off(kReqLen + kResLen),
                  kRespmod, kHttpRes + kHttpReq + kBody, Status::error, IE::bad_http_head,
                  Error::bad_method},
        HeadsCase{"leading_crlf", "req-hdr=0, req-body=" + off(kReqLen + 2), kReqmod,
                  "\r\n" + kHttpReq + kBody, Status::error, IE::http_head_length},
        HeadsCase{"bare_lf", "req-hdr=0, null-body=" + off(kReqLen - 1), kReqmod,
                  "GET http://www.example/ HTTP/1.1\r\nHost: www.example\n\r\n", Status::error,
                  IE::bad_http_head, Error::bare_lf},
        HeadsCase{"obs_fold_in_res",
                  "res-hdr=0, res-body=" +
                      off(std::string("HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n").size()),
                  kRespmod, "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n" + kBody, Status::error,
                  IE::bad_http_head, Error::obs_fold},
        HeadsCase{"two_heads_in_one_part", "req-hdr=0, null-body=" + off(2 * kReqLen), kReqmod,
                  kHttpReq + kHttpReq, Status::error, IE::http_head_length}));

TEST(EncapsulatedHeads, HttpLimitsApply) {
  Limits http;
  http.max_head_bytes = 20;
  EncapsulatedHeads heads;
  const IcapParseResult r =
      heads_of("req-hdr=0, null-body=" + off(kReqLen), kReqmod, kHttpReq, heads, http);
  EXPECT_EQ(r.error, IcapError::bad_http_head);
  EXPECT_EQ(r.detail, Error::head_too_large);
}

// ---------------------------------------------------------------------------------------
// Chunked body with ieof

struct Decoded {
  Status status = Status::incomplete;
  IcapError error = IcapError::none;
  Error detail = Error::none;
  std::string payload;
  std::string trailers;
  bool ieof = false;
  std::size_t consumed = 0;
};

Decoded decode(std::string_view in, std::size_t piece, std::optional<std::uint64_t> preview,
               Limits lim = {}) {
  IcapChunkedDecoder dec(lim, preview);
  Decoded out;
  std::string pending;
  std::size_t fed = 0;
  for (;;) {
    const IcapChunkedDecoder::Step s = dec.next(pending);
    EXPECT_LE(s.consumed, pending.size());
    out.payload.append(s.data);
    pending.erase(0, s.consumed);
    out.consumed += s.consumed;
    if (s.status != Status::incomplete) {
      out.status = s.status;
      out.error = s.error;
      out.detail = s.detail;
      break;
    }
    if (s.consumed == 0 && s.data.empty()) {
      if (fed == in.size()) break;
      const std::size_t n = std::min(piece, in.size() - fed);
      pending.append(in.substr(fed, n));
      fed += n;
    }
  }
  EXPECT_EQ(dec.payload_bytes(), out.payload.size());
  if (out.status == Status::complete) {
    out.trailers = dec.trailers();
    out.ieof = dec.ieof();
  }
  return out;
}

struct BodyCase {
  const char* name;
  std::string input;
  std::optional<std::uint64_t> preview;
  Status status;
  IcapError error;
  Error detail;
  std::string payload;
  bool ieof;
};

void PrintTo(const BodyCase& c, std::ostream* os) {
  *os << c.name;
}

class IcapBodyTable : public testing::TestWithParam<BodyCase> {};

TEST_P(IcapBodyTable, WholeAndByteByByte) {
  const BodyCase& c = GetParam();
  for (std::size_t piece : {c.input.size() + 1, std::size_t{1}, std::size_t{2}, std::size_t{5}}) {
    const Decoded d = decode(c.input, piece, c.preview);
    EXPECT_EQ(d.status, c.status) << "piece " << piece;
    EXPECT_EQ(d.error, c.error) << "piece " << piece << ": " << describe(d.error);
    EXPECT_EQ(d.detail, c.detail) << "piece " << piece << ": " << describe(d.detail);
    if (c.status == Status::complete) {
      EXPECT_EQ(d.payload, c.payload) << "piece " << piece;
      EXPECT_EQ(d.ieof, c.ieof) << "piece " << piece;
      EXPECT_EQ(d.consumed, c.input.size()) << "piece " << piece;
    }
  }
}

const auto kNoPreview = std::optional<std::uint64_t>();

INSTANTIATE_TEST_SUITE_P(
    Bodies, IcapBodyTable,
    testing::Values(BodyCase{"preview_ieof", "5\r\nhello\r\n0; ieof\r\n\r\n", 10, Status::complete,
                             IE::none, Error::none, "hello", true},
                    BodyCase{"preview_more_to_come", "4\r\nhell\r\n0\r\n\r\n", 4, Status::complete,
                             IE::none, Error::none, "hell", false},
                    BodyCase{"preview_zero_ieof", "0; ieof\r\n\r\n", 0, Status::complete, IE::none,
                             Error::none, "", true},
                    BodyCase{"preview_zero_more", "0\r\n\r\n", 0, Status::complete, IE::none,
                             Error::none, "", false},
                    BodyCase{"ieof_no_space", "0;ieof\r\n\r\n", 0, Status::complete, IE::none,
                             Error::none, "", true},
                    BodyCase{"ieof_upper", "0; IEOF\r\n\r\n", 0, Status::complete, IE::none,
                             Error::none, "", true},
                    BodyCase{"ieof_with_others", "0; a=b; ieof; c=\"d e\"\r\n\r\n", 0,
                             Status::complete, IE::none, Error::none, "", true},
                    BodyCase{"ieof_with_trailers", "2\r\nab\r\n0; ieof\r\nX: y\r\n\r\n", 2,
                             Status::complete, IE::none, Error::none, "ab", true},
                    BodyCase{"preview_split_chunks", "2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n", 5,
                             Status::complete, IE::none, Error::none, "abcde", false},
                    BodyCase{"preview_too_long", "5\r\nhello\r\n0; ieof\r\n\r\n", 4, Status::error,
                             IE::preview_too_long, Error::none, "", false},
                    BodyCase{"preview_too_long_second_chunk", "2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n", 4,
                             Status::error, IE::preview_too_long, Error::none, "", false},
                    BodyCase{"not_preview", "5\r\nhello\r\n0\r\n\r\n", kNoPreview, Status::complete,
                             IE::none, Error::none, "hello", false},
                    BodyCase{"ordinary_extension", "5; name=value\r\nhello\r\n0\r\n\r\n",
                             kNoPreview, Status::complete, IE::none, Error::none, "hello", false},
                    BodyCase{"ieof_on_data_chunk", "5; ieof\r\nhello\r\n0\r\n\r\n", 10,
                             Status::error, IE::bad_chunked, Error::bad_chunk_ext, "", false},
                    BodyCase{"ieof_with_value", "0; ieof=1\r\n\r\n", 0, Status::error,
                             IE::bad_chunked, Error::bad_chunk_ext, "", false},
                    BodyCase{"bad_ext", "0; =x\r\n\r\n", 0, Status::error, IE::bad_chunked,
                             Error::bad_chunk_ext, "", false},
                    BodyCase{"bad_size", "x\r\n\r\n", kNoPreview, Status::error, IE::bad_chunked,
                             Error::bad_chunk_size, "", false},
                    BodyCase{"bare_lf_size", "5\nhello\r\n0\r\n\r\n", kNoPreview, Status::error,
                             IE::bad_chunked, Error::bad_chunk_size, "", false},
                    BodyCase{"bad_chunk_end", "5\r\nhelloX\r\n0\r\n\r\n", kNoPreview, Status::error,
                             IE::bad_chunked, Error::bad_chunk_end, "hello", false},
                    BodyCase{"obs_fold_trailer", "0\r\nX: a\r\n b\r\n\r\n", kNoPreview,
                             Status::error, IE::bad_chunked, Error::obs_fold, "", false},
                    BodyCase{"size_too_long", "00000000000000001\r\na\r\n0\r\n\r\n", kNoPreview,
                             Status::error, IE::bad_chunked, Error::chunk_size_too_long, "",
                             false}));

TEST(IcapBody, IncompleteUntilTheEnd) {
  const std::string in = "5\r\nhello\r\n0; ieof\r\n\r\n";
  for (std::size_t k = 0; k < in.size(); ++k) {
    const Decoded d = decode(in.substr(0, k), 1, 5);
    ASSERT_EQ(d.status, Status::incomplete) << k;
  }
}

TEST(IcapBody, StopsAtTheEndOfTheBody) {
  const std::string body = "3\r\nabc\r\n0; ieof\r\n\r\n";
  IcapChunkedDecoder dec(Limits{}, 3);
  std::string in = body + "REQMOD next";
  std::size_t total = 0;
  std::string payload;
  for (;;) {
    const auto s = dec.next(std::string_view(in).substr(total));
    total += s.consumed;
    payload.append(s.data);
    if (s.status != Status::incomplete) {
      ASSERT_EQ(s.status, Status::complete);
      break;
    }
  }
  EXPECT_EQ(total, body.size());
  EXPECT_EQ(payload, "abc");
  EXPECT_TRUE(dec.ieof());
  std::string ieof;
  append_ieof_chunk(ieof);
  EXPECT_EQ(ieof, "0; ieof\r\n\r\n");
}

TEST(IcapBody, ChunkLimitsApply) {
  Limits lim;
  lim.max_field_bytes = 8;
  EXPECT_EQ(decode("0; ieof\r\n\r\n", 1, 0, lim).status, Status::complete);  // 6 bytes
  EXPECT_EQ(decode("0; ieof; a=b\r\n\r\n", 1, 0, lim).detail, Error::bad_chunk_ext);
}

// ---------------------------------------------------------------------------------------
// Serializers

TEST(IcapBuild, ResponseRoundTrip) {
  const std::vector<Field> fields = {{"Service", "Portcullis"}, {"X-Infection-Found", "none"}};
  IcapParts parts;
  parts.fields = fields;
  parts.res_hdr = kHttpRes;
  parts.body = IcapEntity::res_body;
  std::string out;
  ASSERT_TRUE(append_icap_response(out, 200, "pc-1", IcapMethod::respmod, parts));
  EXPECT_EQ(out.substr(0, 17), "ICAP/1.0 200 OK\r\n");
  EXPECT_NE(out.find("Encapsulated: res-hdr=0, res-body=" + off(kResLen) + "\r\n"),
            std::string::npos);

  IcapResponseHead head;
  const IcapParseResult r = parse_icap_response_head(out, IcapLimits{}, IcapMethod::respmod, head);
  ASSERT_EQ(r.status, Status::complete) << describe(r.error);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.reason, "OK");
  EXPECT_EQ(head.istag, "\"pc-1\"");
  ASSERT_NE(head.find("service"), nullptr);
  EXPECT_EQ(head.find("service")->value, "Portcullis");
  EXPECT_EQ(head.encapsulated.res_hdr, std::optional<std::size_t>(0));
  EXPECT_EQ(head.encapsulated.body, IcapEntity::res_body);
  EncapsulatedHeads heads;
  const IcapParseResult h = parse_encapsulated_heads(
      head.encapsulated, std::string_view(out).substr(r.consumed), Limits{}, heads);
  ASSERT_EQ(h.status, Status::complete);
  EXPECT_EQ(r.consumed + h.consumed, out.size());
  EXPECT_TRUE(heads.has_response);
  EXPECT_EQ(heads.response.bytes(), kHttpRes);

  // Building again from what was parsed gives the same bytes.
  std::vector<Field> again;
  for (const Field& f : head.fields)
    if (!iequals(f.name, "encapsulated") && !iequals(f.name, "istag")) again.push_back(f);
  IcapParts parts2;
  parts2.fields = again;
  parts2.res_hdr = heads.response.bytes();
  parts2.body = head.encapsulated.body;
  std::string out2;
  ASSERT_TRUE(
      append_icap_response(out2, head.status, "pc-1", IcapMethod::respmod, parts2, head.reason));
  EXPECT_EQ(out2, out);
}

struct BuildCase {
  const char* name;
  IcapMethod method;
  std::string req_hdr;
  std::string res_hdr;
  IcapEntity body;
};

void PrintTo(const BuildCase& c, std::ostream* os) {
  *os << c.name;
}

class IcapBuildShapes : public testing::TestWithParam<BuildCase> {};

TEST_P(IcapBuildShapes, ResponseAndRequestParseBack) {
  const BuildCase& c = GetParam();
  IcapParts parts;
  parts.req_hdr = c.req_hdr;
  parts.res_hdr = c.res_hdr;
  parts.body = c.body;
  auto check = [&](const Encapsulated& enc) {
    EXPECT_EQ(enc.req_hdr_size(), c.req_hdr.size());
    EXPECT_EQ(enc.res_hdr_size(), c.res_hdr.size());
    EXPECT_EQ(enc.body, c.body);
    EXPECT_EQ(enc.body_offset, c.req_hdr.size() + c.res_hdr.size());
  };
  // As a response (every shape here is one a response may have).
  std::string out;
  if (append_icap_response(out, 200, "t", c.method, parts)) {
    IcapResponseHead head;
    const IcapParseResult r = parse_icap_response_head(out, IcapLimits{}, c.method, head);
    ASSERT_EQ(r.status, Status::complete) << describe(r.error);
    check(head.encapsulated);
    EncapsulatedHeads heads;
    EXPECT_EQ(parse_encapsulated_heads(head.encapsulated, std::string_view(out).substr(r.consumed),
                                       Limits{}, heads)
                  .status,
              Status::complete);
  }
  // As a request when the shape is one a request may have.
  const std::vector<Field> fields = {{"Host", "icap.example"}, {"Allow", "204"}};
  parts.fields = fields;
  std::string req;
  if (append_icap_request(req, c.method, "icap://icap.example/svc", parts)) {
    IcapRequestHead head;
    const IcapParseResult r = parse_icap_request_head(req, IcapLimits{}, head);
    ASSERT_EQ(r.status, Status::complete) << describe(r.error);
    EXPECT_EQ(head.method, c.method);
    EXPECT_TRUE(head.allow_204);
    check(head.encapsulated);
    EncapsulatedHeads heads;
    const IcapParseResult h = parse_encapsulated_heads(
        head.encapsulated, std::string_view(req).substr(r.consumed), Limits{}, heads);
    EXPECT_EQ(h.status, Status::complete) << describe(h.error);
    EXPECT_EQ(r.consumed + h.consumed, req.size());
  }
  EXPECT_TRUE(!out.empty() || !req.empty()) << "neither direction accepted the shape";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, IcapBuildShapes,
    testing::Values(BuildCase{"reqmod_req_body", kReqmod, kHttpReq, "", E::req_body},
                    BuildCase{"reqmod_req_null", kReqmod, kHttpReq, "", E::null_body},
                    BuildCase{"reqmod_res_body", kReqmod, "", kHttpRes, E::res_body},
                    BuildCase{"reqmod_null", kReqmod, "", "", E::null_body},
                    BuildCase{"respmod_all", kRespmod, kHttpReq, kHttpRes, E::res_body},
                    BuildCase{"respmod_res", kRespmod, "", kHttpRes, E::res_body},
                    BuildCase{"respmod_res_null", kRespmod, "", kHttpRes, E::null_body},
                    BuildCase{"options_opt", kOpt, "", "", E::opt_body},
                    BuildCase{"options_null", kOpt, "", "", E::null_body}));

TEST(IcapBuild, ContinueAndNoContent) {
  std::string out;
  append_icap_continue(out);
  EXPECT_EQ(out, "ICAP/1.0 100 Continue\r\n\r\n");
  IcapResponseHead head;
  ASSERT_EQ(parse_icap_response_head(out, IcapLimits{}, kReqmod, head).status, Status::complete);
  EXPECT_EQ(head.status, 100);

  out.clear();
  const std::vector<Field> fields = {{"Service", "pc"}};
  ASSERT_TRUE(append_icap_no_content(out, "pc-7", fields));
  EXPECT_EQ(out,
            "ICAP/1.0 204 No Content\r\nISTag: \"pc-7\"\r\nService: pc\r\n"
            "Encapsulated: null-body=0\r\n\r\n");
  ASSERT_EQ(parse_icap_response_head(out, IcapLimits{}, kRespmod, head).status, Status::complete);
  EXPECT_EQ(head.status, 204);
  EXPECT_EQ(head.istag, "\"pc-7\"");
  EXPECT_FALSE(head.encapsulated.has_body());
}

TEST(IcapBuild, RefusesWhatWouldNotParse) {
  std::string out;
  IcapParts parts;
  EXPECT_FALSE(append_icap_response(out, 100, "t", kReqmod, parts));
  EXPECT_FALSE(append_icap_response(out, 600, "t", kReqmod, parts));
  EXPECT_FALSE(append_icap_response(out, 200, "", kReqmod, parts));
  EXPECT_FALSE(append_icap_response(out, 200, std::string(33, 't'), kReqmod, parts));
  EXPECT_FALSE(append_icap_response(out, 200, "a\"b", kReqmod, parts));
  EXPECT_FALSE(append_icap_response(out, 200, "t", kReqmod, parts, "bad\r\nreason"));
  const std::vector<Field> enc = {{"Encapsulated", "null-body=0"}};
  parts.fields = enc;
  EXPECT_FALSE(append_icap_response(out, 200, "t", kReqmod, parts));
  const std::vector<Field> istag = {{"ISTag", "\"x\""}};
  parts.fields = istag;
  EXPECT_FALSE(append_icap_response(out, 200, "t", kReqmod, parts));
  const std::vector<Field> bad_name = {{"Bad Name", "x"}};
  parts.fields = bad_name;
  EXPECT_FALSE(append_icap_response(out, 200, "t", kReqmod, parts));
  const std::vector<Field> bad_value = {{"X", "a\r\nY: b"}};
  parts.fields = bad_value;
  EXPECT_FALSE(append_icap_response(out, 200, "t", kReqmod, parts));
  const std::vector<Field> padded = {{"X", " a"}};
  parts.fields = padded;
  EXPECT_FALSE(append_icap_response(out, 200, "t", kReqmod, parts));
  parts.fields = {};
  parts.req_hdr = kHttpReq;
  parts.res_hdr = kHttpRes;
  parts.body = E::res_body;
  EXPECT_FALSE(append_icap_response(out, 200, "t", kReqmod, parts));  // both heads
  EXPECT_FALSE(append_icap_response(out, 204, "t", kRespmod, parts));
  parts.req_hdr = "GET / HTTP/1.1\r\n";  // not a complete head
  parts.res_hdr = {};
  parts.body = E::req_body;
  EXPECT_FALSE(append_icap_response(out, 200, "t", kReqmod, parts));
  EXPECT_TRUE(out.empty());

  const std::vector<Field> host = {{"Host", "a"}};
  IcapParts req;
  req.fields = host;
  EXPECT_FALSE(append_icap_request(out, kReqmod, "icap://a/", req));  // no service
  EXPECT_FALSE(append_icap_request(out, kReqmod, "icap://a/s s", req));
  IcapParts no_host;
  EXPECT_FALSE(append_icap_request(out, kReqmod, "icap://a/s", no_host));
  const std::vector<Field> bad_preview = {{"Host", "a"}, {"Preview", "x"}};
  req.fields = bad_preview;
  EXPECT_FALSE(append_icap_request(out, kReqmod, "icap://a/s", req));
  req.fields = host;
  req.body = E::opt_body;
  EXPECT_FALSE(append_icap_request(out, kReqmod, "icap://a/s", req));
  EXPECT_TRUE(out.empty());
  req.body = E::req_body;
  EXPECT_TRUE(append_icap_request(out, kReqmod, "icap://a/s", req));
  EXPECT_EQ(out, "REQMOD icap://a/s ICAP/1.0\r\nHost: a\r\nEncapsulated: req-body=0\r\n\r\n");
}

// ---------------------------------------------------------------------------------------
// Errors

TEST(IcapErrors, StatusAndDescription) {
  EXPECT_EQ(icap_status_for(IcapError::unknown_method), 501);
  EXPECT_EQ(icap_status_for(IcapError::unsupported_version), 505);
  EXPECT_EQ(icap_status_for(IcapError::missing_service), 404);
  EXPECT_EQ(icap_status_for(IcapError::bad_encapsulated), 400);
  EXPECT_EQ(icap_status_for(IcapError::head_too_large), 400);
  for (int e = 0; e <= static_cast<int>(IcapError::preview_too_long); ++e) {
    const auto err = static_cast<IcapError>(e);
    EXPECT_NE(describe(err), "unknown error") << e;
  }
  EXPECT_EQ(icap_reason(404), "ICAP Service Not Found");
  EXPECT_EQ(icap_reason(299), "Unknown");
  EXPECT_EQ(icap_method_name(IcapMethod::respmod), "RESPMOD");
  EXPECT_EQ(entity_name(IcapEntity::null_body), "null-body");
}

}  // namespace
}  // namespace pc::wire
