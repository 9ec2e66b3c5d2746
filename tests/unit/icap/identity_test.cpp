// icap/identity.h: decoding and normalising the identity fields an ICAP client sends.
#include "icap/identity.h"

#include <gtest/gtest.h>

namespace pc::icap {
namespace {

using config::UserEncoding;

TEST(DecodeIdentity, AutoDecodesBase64OfPrintableText) {
  EXPECT_EQ(decode_identity("YWxpY2U=", UserEncoding::automatic), "alice");
  // "CORP\alice" and a UTF-8 name
  EXPECT_EQ(decode_identity("Q09SUFxhbGljZQ==", UserEncoding::automatic), "CORP\\alice");
  EXPECT_EQ(decode_identity("5bGx55Sw", UserEncoding::automatic), "山田");
}

TEST(DecodeIdentity, AutoKeepsPlainText) {
  EXPECT_EQ(decode_identity("alice", UserEncoding::automatic), "alice");  // not base64 (length)
  // valid base64 whose bytes are not printable UTF-8: taken as plain text
  EXPECT_EQ(decode_identity("bobb", UserEncoding::automatic), "bobb");
  EXPECT_EQ(decode_identity("WinNT://CORP/alice", UserEncoding::automatic), "WinNT://CORP/alice");
  EXPECT_EQ(decode_identity("  alice  ", UserEncoding::automatic), "alice");
}

TEST(DecodeIdentity, ExplicitEncodings) {
  EXPECT_EQ(decode_identity("YWxpY2U=", UserEncoding::plain), "YWxpY2U=");
  EXPECT_EQ(decode_identity("YWxpY2U=", UserEncoding::base64), "alice");
  EXPECT_EQ(decode_identity("alice", UserEncoding::base64), std::nullopt);
  EXPECT_EQ(decode_identity("AAEC", UserEncoding::base64), std::nullopt);  // control bytes
}

TEST(DecodeIdentity, RefusesControlCharactersAndHugeValues) {
  EXPECT_EQ(decode_identity(std::string_view("al\x01ice", 6), UserEncoding::plain), std::nullopt);
  EXPECT_EQ(decode_identity("al\x7fice", UserEncoding::plain), std::nullopt);
  EXPECT_EQ(decode_identity("\xff\xfe", UserEncoding::plain), std::nullopt);      // not UTF-8
  EXPECT_EQ(decode_identity("\xc0\xaf", UserEncoding::plain), std::nullopt);      // overlong
  EXPECT_EQ(decode_identity("\xed\xa0\x80", UserEncoding::plain), std::nullopt);  // surrogate
  EXPECT_EQ(decode_identity("\xc2\x85", UserEncoding::plain), std::nullopt);      // C1 control
  EXPECT_EQ(decode_identity(std::string(1025, 'a'), UserEncoding::plain), std::nullopt);
  EXPECT_EQ(decode_identity(std::string(1024, 'a'), UserEncoding::plain), std::string(1024, 'a'));
}

struct PrincipalCase {
  const char* in;
  const char* name;
  const char* domain;
};

class Principals : public ::testing::TestWithParam<PrincipalCase> {};

TEST_P(Principals, Parse) {
  auto p = parse_principal(GetParam().in);
  EXPECT_EQ(p.name, GetParam().name) << GetParam().in;
  EXPECT_EQ(p.domain, GetParam().domain) << GetParam().in;
}

INSTANTIATE_TEST_SUITE_P(
    Forms, Principals,
    ::testing::Values(PrincipalCase{"alice", "alice", ""},
                      PrincipalCase{"CORP\\alice", "alice", "CORP"},
                      PrincipalCase{"alice@corp.example", "alice", "corp.example"},
                      PrincipalCase{"WinNT://CORP/alice", "alice", "CORP"},
                      PrincipalCase{"winnt://CORP/alice", "alice", "CORP"},
                      PrincipalCase{"NTLM://CORP/alice", "alice", "CORP"},
                      PrincipalCase{"Local://alice", "alice", ""},
                      PrincipalCase{"WinNT://CORP/WS01/alice", "alice", "CORP"},
                      PrincipalCase{"LDAP://dc1/cn=Alice Smith,ou=Staff,dc=corp,dc=example",
                                    "Alice Smith", "corp.example"},
                      PrincipalCase{"ldaps://dc1:636/uid=alice,dc=corp", "alice", "corp"},
                      PrincipalCase{"cn=Staff,ou=Groups,dc=corp,dc=example", "Staff",
                                    "corp.example"},
                      PrincipalCase{"  bob  ", "bob", ""}, PrincipalCase{"", "", ""},
                      PrincipalCase{"CORP\\", "", "CORP"}));

TEST(PrincipalDisplay, DomainBackslashName) {
  EXPECT_EQ(parse_principal("alice@corp.example").display(), "corp.example\\alice");
  EXPECT_EQ(parse_principal("alice").display(), "alice");
}

TEST(PrincipalList, SplitsAtCommasButKeepsDns) {
  auto v = parse_principals(
      "WinNT://CORP/Staff, LDAP://dc1/cn=Admins,ou=Groups,dc=corp,dc=example, sales,"
      "cn=VPN,ou=Groups,dc=corp");
  ASSERT_EQ(v.size(), 4u);
  EXPECT_EQ(v[0].name, "Staff");
  EXPECT_EQ(v[0].domain, "CORP");
  EXPECT_EQ(v[1].name, "Admins");
  EXPECT_EQ(v[1].domain, "corp.example");
  EXPECT_EQ(v[2].name, "sales");
  EXPECT_EQ(v[3].name, "VPN");
  EXPECT_EQ(v[3].domain, "corp");
}

TEST(PrincipalList, EmptyItemsAreSkipped) {
  auto v = parse_principals(" , a,, b ,");
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].name, "a");
  EXPECT_EQ(v[1].name, "b");
  EXPECT_TRUE(parse_principals("").empty());
}

}  // namespace
}  // namespace pc::icap
