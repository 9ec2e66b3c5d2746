// base::parse_ip and base::Cidr.
#include <gtest/gtest.h>

#include "base/cidr.h"

namespace pc::base {
namespace {

IpBytes ip(const char* s) {
  auto r = parse_ip(s);
  EXPECT_TRUE(r.has_value()) << s;
  return r.value_or(IpBytes{});
}

TEST(ParseIp, V4IsStoredMapped) {
  auto a = ip("192.0.2.1");
  EXPECT_TRUE(a.is_v4());
  std::array<std::uint8_t, 16> want{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
  EXPECT_EQ(a.b, want);
  EXPECT_EQ(a, IpBytes::from_v4({192, 0, 2, 1}));
}

TEST(ParseIp, V6) {
  auto a = ip("2001:db8::1");
  EXPECT_FALSE(a.is_v4());
  std::array<std::uint8_t, 16> want{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  EXPECT_EQ(a.b, want);
  EXPECT_EQ(a, IpBytes::from_v6(want));
  EXPECT_EQ(ip("::1").b[15], 1);
  EXPECT_FALSE(ip("::1").is_v4());
  EXPECT_FALSE(ip("::").is_v4());
}

TEST(ParseIp, BracketedV6) {
  EXPECT_EQ(ip("[2001:db8::1]"), ip("2001:db8::1"));
  EXPECT_EQ(ip("[::1]"), ip("::1"));
}

TEST(ParseIp, V4MappedV6EqualsV4) {
  EXPECT_EQ(ip("::ffff:192.0.2.1"), ip("192.0.2.1"));
  EXPECT_EQ(ip("::ffff:c000:0201"), ip("192.0.2.1"));
  EXPECT_TRUE(ip("::ffff:192.0.2.1").is_v4());
  // IPv4-compatible (deprecated) and NAT64 forms are not IPv4.
  EXPECT_FALSE(ip("::192.0.2.1").is_v4());
  EXPECT_FALSE(ip("64:ff9b::192.0.2.1").is_v4());
}

TEST(ParseIp, Invalid) {
  for (const char* s : {"",
                        " ",
                        "1.2.3",
                        "1.2.3.4.5",
                        "256.0.0.1",
                        "1.2.3.4 ",
                        " 1.2.3.4",
                        "01.2.3.4",
                        "1.2.3.-4",
                        "::g",
                        "1:2:3:4:5:6:7:8:9",
                        "2001:db8:::1",
                        "[1.2.3.4]x",
                        "[::1",
                        "::1]",
                        "[]",
                        "[1.2.3.4",
                        "example.com",
                        "1.2.3.4/8",
                        "0x7f.0.0.1",
                        "1.2.3.4:80",
                        "fe80::1%eth0"}) {
    EXPECT_FALSE(parse_ip(s).has_value()) << "'" << s << "'";
  }
}

TEST(ParseIp, EmbeddedNulIsNotIgnored) {
  std::string s("1.2.3.4\0garbage", 15);
  EXPECT_FALSE(parse_ip(s).has_value());
}

struct CidrCase {
  const char* net;
  const char* addr;
  bool inside;
};

class CidrContains : public ::testing::TestWithParam<CidrCase> {};

TEST_P(CidrContains, Table) {
  const auto& p = GetParam();
  auto c = Cidr::parse(p.net);
  ASSERT_TRUE(c.has_value()) << p.net;
  EXPECT_EQ(c->contains(ip(p.addr)), p.inside) << p.net << " contains " << p.addr;
}

const CidrCase kContains[] = {
    // /0
    {"0.0.0.0/0", "0.0.0.0", true},
    {"0.0.0.0/0", "255.255.255.255", true},
    {"0.0.0.0/0", "::ffff:1.2.3.4", true},
    {"0.0.0.0/0", "::1", false},  // IPv4 /0 is all of IPv4, not IPv6
    {"0.0.0.0/0", "2001:db8::1", false},
    {"::/0", "2001:db8::1", true},
    {"::/0", "1.2.3.4", true},  // IPv6 /0 is everything, mapped IPv4 included
    // /8
    {"10.0.0.0/8", "10.0.0.0", true},
    {"10.0.0.0/8", "10.255.255.255", true},
    {"10.0.0.0/8", "11.0.0.0", false},
    {"10.0.0.0/8", "9.255.255.255", false},
    {"10.0.0.0/8", "::ffff:10.1.2.3", true},  // v4-mapped matches the IPv4 network
    {"10.0.0.0/8", "::10.1.2.3", false},
    {"10.0.0.0/8", "a00::", false},
    // host bits set in the network are ignored
    {"10.1.2.3/8", "10.200.0.1", true},
    // /7 (a partial byte)
    {"fc00::/7", "fc00::1", true},
    {"fc00::/7", "fd12:3456::1", true},
    {"fc00::/7", "fe00::1", false},
    {"fc00::/7", "fb00::1", false},
    {"172.16.0.0/12", "172.16.0.1", true},
    {"172.16.0.0/12", "172.31.255.255", true},
    {"172.16.0.0/12", "172.32.0.0", false},
    {"172.16.0.0/12", "172.15.255.255", false},
    {"128.0.0.0/1", "200.0.0.1", true},
    {"128.0.0.0/1", "127.255.255.255", false},
    // /32 and /128
    {"192.0.2.1/32", "192.0.2.1", true},
    {"192.0.2.1/32", "192.0.2.2", false},
    {"192.0.2.1/32", "::ffff:192.0.2.1", true},
    {"192.0.2.1", "192.0.2.1", true},  // a bare address is a host network
    {"192.0.2.1", "192.0.2.0", false},
    {"::1/128", "::1", true},
    {"::1/128", "::2", false},
    {"::1/128", "::ffff:0.0.0.1", false},
    {"::1", "::1", true},
    {"2001:db8::/32", "2001:db8:ffff::1", true},
    {"2001:db8::/32", "2001:db9::1", false},
    {"[2001:db8::]/32", "2001:db8::5", true},
    // IPv6 networks never match by accident on IPv4
    {"::/96", "1.2.3.4", false},
    {"::ffff:0.0.0.0/0", "1.2.3.4", true},  // written v4-mapped: an IPv4 network
};

INSTANTIATE_TEST_SUITE_P(Table, CidrContains, ::testing::ValuesIn(kContains));

TEST(Cidr, PrefixIsStoredIn128BitSpace) {
  EXPECT_EQ(Cidr::parse("10.0.0.0/8")->prefix, 104);
  EXPECT_EQ(Cidr::parse("10.0.0.0/0")->prefix, 96);
  EXPECT_EQ(Cidr::parse("10.0.0.1")->prefix, 128);
  EXPECT_EQ(Cidr::parse("10.0.0.1/32")->prefix, 128);
  EXPECT_EQ(Cidr::parse("fc00::/7")->prefix, 7);
  EXPECT_EQ(Cidr::parse("::/0")->prefix, 0);
  EXPECT_EQ(Cidr::parse("::1")->prefix, 128);
  EXPECT_EQ(Cidr::parse("::1/128")->prefix, 128);
}

TEST(Cidr, Invalid) {
  for (const char* s :
       {"", "/", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/100", "::/129", "::/1000",
        "10.0.0.0/8/8", "10.0.0.0/+8", "10.0.0.0/-8", "10.0.0.0/ 8", "10.0.0.0/8 ", "10.0.0.0/0x8",
        "10.0.0/8", "example.com/8", "fc00::/7a", "fc00::/0007"}) {
    EXPECT_FALSE(Cidr::parse(s).has_value()) << "'" << s << "'";
  }
}

}  // namespace
}  // namespace pc::base
