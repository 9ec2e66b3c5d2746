// decide() (indexes and the candidate prefilter) against decide_unindexed() (every rule
// checked in full, in order) over randomly generated policies and facts: the same decision,
// field by field, in both phases. The generated values come from small pools so that rules
// match often, and cover every condition kind, mixed case, IPv4 and IPv6 networks of many
// prefix lengths, wide port ranges, disabled rules, lists and response-phase rules.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "base/cidr.h"
#include "policy/policy.h"
#include "policy/policy_impl.h"
#include "policy/policy_tz.h"
#include "wire/http.h"

namespace pc::policy {
namespace {

using Rng = std::mt19937;

const std::vector<std::string> kHosts = {"example.com",
                                         "www.example.com",
                                         "a.b.example.com",
                                         "shop.example.net",
                                         "example.net",
                                         "news.test",
                                         "x.news.test",
                                         "cdn.test",
                                         "files.cdn.test",
                                         "other.org",
                                         "Mixed.Test",
                                         "10.1.2.3",
                                         "deep.a.b.c.d.e",
                                         "c.d.e",
                                         "e",
                                         "co.uk",
                                         "bbc.co.uk",
                                         "www.bbc.co.uk"};
const std::vector<std::string> kDomainEntries = {
    "example.com", ".example.com", "=www.example.com", "example.net", ".news.test",
    "news.test",   "=cdn.test",    "cdn.test",         "other.org",   "c.d.e",
    "d.e",         "co.uk",        "=bbc.co.uk",       "10.1.2.3",    "b.example.com"};
const std::vector<std::string> kPaths = {
    "/", "/a", "/a/b", "/admin/", "/dl/setup.exe", "/x?id=1", "/crack/it", "/A/B", "/files/f.zip"};
const std::vector<std::string> kUrlEntries = {"example.com/a",
                                              "=example.com/x?id=1",
                                              "https://www.example.com/a/b",
                                              "shop.example.net:8080/",
                                              "news.test/",
                                              "*crack*",
                                              "*.ZIP*",
                                              "re:\\.exe$",
                                              "re:^https://[^/]+/admin/",
                                              "cdn.test/files/",
                                              "http://other.org/A/B",
                                              "=files.cdn.test/files/f.zip"};
const std::vector<std::string> kUsers = {"alice", "Bob", "carol", "DAVE", "eve"};
const std::vector<std::string> kGroups = {"staff", "Admins", "guests", "ops", "dev", "HR"};
const std::vector<std::string> kMethods = {"GET", "POST", "CONNECT", "HEAD", "PUT", "DELETE"};
const std::vector<std::string> kListeners = {"main", "guest", "lab"};
const std::vector<std::string> kClients = {"10.0.0.5",    "10.0.1.7",   "10.1.2.3",   "192.168.1.9",
                                           "172.16.5.5",  "127.0.0.1",  "fd00::1",    "fd00:1::2",
                                           "2001:db8::5", "10.200.0.1", "192.168.2.1"};
const std::vector<std::string> kCidrs = {
    "10.0.0.0/8",     "10.0.0.0/16",    "10.0.0.0/24",   "10.0.1.7",    "10.1.0.0/16",
    "192.168.0.0/16", "192.168.1.0/24", "172.16.0.0/12", "fd00::/8",    "fd00:1::/32",
    "2001:db8::/32",  "0.0.0.0/0",      "::/0",          "10.1.2.3/32", "192.168.2.0/23"};
const std::vector<std::string> kPorts = {"80",   "443",        "8080",      "\"8000-8100\"",
                                         "8443", "\"1-2000\"", "\"20-30\"", "21"};
const std::vector<int> kFactPorts = {80, 443, 8080, 8443, 21, 25, 1500, 8090};
const std::vector<std::string> kSchedules = {"office", "night", "weekend"};
const std::vector<std::string> kHeaders = {"ua-curl", "big", "json", "ua-re"};
const std::vector<std::string> kContentTypes = {"video/*", "application/zip", "text/html", "*/*"};
const std::vector<std::string> kFileTypes = {"exe", "zip", "iso"};
const std::vector<std::string> kCategories = {"cat-a", "cat-b", "cat-c"};
const std::vector<std::string> kActions = {"allow", "block", "warn", "monitor", "allow_no_scan"};

template <class T>
const T& pick(Rng& rng, const std::vector<T>& v) {
  return v[std::uniform_int_distribution<std::size_t>(0, v.size() - 1)(rng)];
}
bool chance(Rng& rng, double p) {
  return std::uniform_real_distribution<double>(0, 1)(rng) < p;
}
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    out += c;
  }
  return out + "\"";
}
std::string some(Rng& rng, const std::vector<std::string>& pool, int most, bool quote = true) {
  int n = std::uniform_int_distribution<int>(1, most)(rng);
  std::string out = "[";
  for (int i = 0; i < n; ++i) {
    if (i) out += ", ";
    out += quote ? quoted(pick(rng, pool)) : pick(rng, pool);
  }
  return out + "]";
}

std::string policy_text(Rng& rng, int rules) {
  std::ostringstream o;
  o << "[settings]\ntime_zone = \"UTC\"\n\n";
  o << "[lists]\napproved = [\"=approved.example\", \"ok.test/safe/\"]\n"
    << "blocked = [\"blocked.example\", \"cdn.test/files/f\"]\n\n";
  o << "[[ip_groups]]\nname = \"lan\"\naddresses = [\"10.0.0.0/16\", \"fd00::/16\"]\n\n";
  o << "[[ip_groups]]\nname = \"lab\"\naddresses = [\"192.168.1.0/24\", \"10.1.2.0/28\"]\n\n";
  o << "[[domain_lists]]\nname = \"dl1\"\ndomains = " << some(rng, kDomainEntries, 4) << "\n\n";
  o << "[[domain_lists]]\nname = \"dl2\"\ndomains = " << some(rng, kDomainEntries, 4) << "\n\n";
  o << "[[url_lists]]\nname = \"ul1\"\nurls = " << some(rng, kUrlEntries, 3) << "\n\n";
  o << "[[url_lists]]\nname = \"ul2\"\nurls = [\"example.com/a\", \"cdn.test/files/\"]\n\n";
  for (std::size_t i = 0; i < kCategories.size(); ++i) {
    o << "[[categories]]\nname = " << quoted(kCategories[i]) << "\ndomains = ["
      << quoted(kHosts[i * 3 % kHosts.size()]) << ", "
      << quoted(kHosts[(i * 5 + 1) % kHosts.size()]) << "]\nurls = [\"other.org/A/\"]\n\n";
  }
  o << "[[schedules]]\nname = \"office\"\ndays = [\"mon-fri\"]\ntimes = [\"08:00-18:00\"]\n\n"
    << "[[schedules]]\nname = \"night\"\ntimes = [\"22:00-06:00\"]\n\n"
    << "[[schedules]]\nname = \"weekend\"\ndays = [\"sat\", \"sun\"]\n\n";
  o << "[[header_filters]]\nname = \"ua-curl\"\nheader = \"User-Agent\"\ncontains = \"curl\"\n\n"
    << "[[header_filters]]\nname = \"big\"\nheader = \"Content-Length\"\ngreater_than = 1000\n\n"
    << "[[header_filters]]\nname = \"json\"\nheader = \"Content-Type\"\nequals = "
       "\"application/json\"\n\n"
    << "[[header_filters]]\nname = \"ua-re\"\nheader = \"User-Agent\"\nregex = \"^Wget/\"\n\n";
  for (int r = 0; r < rules; ++r) {
    o << "[[rules]]\nname = \"r" << r << "\"\naction = " << quoted(pick(rng, kActions)) << "\n";
    if (chance(rng, 0.05)) o << "enabled = false\n";
    // One to four conditions of random kinds (a few rules have none).
    int conds = std::uniform_int_distribution<int>(chance(rng, 0.03) ? 0 : 1, 4)(rng);
    std::vector<bool> used(16, false);
    for (int c = 0; c < conds; ++c) {
      int k = std::uniform_int_distribution<int>(0, 15)(rng);
      if (used[static_cast<std::size_t>(k)] || (k == 15 && (used[0] || used[9]))) continue;
      used[static_cast<std::size_t>(k)] = true;
      if (k == 15) used[0] = used[9] = true;
      switch (k) {
        case 0:
          o << "domains = "
            << (chance(rng, 0.3) ? std::string(chance(rng, 0.5) ? "\"dl1\"" : "[\"dl2\"]")
                                 : some(rng, kDomainEntries, 3))
            << "\n";
          break;
        case 1:
          o << "urls = "
            << (chance(rng, 0.3) ? std::string(chance(rng, 0.5) ? "[\"ul1\"]" : "[\"ul2\"]")
                                 : some(rng, kUrlEntries, 2))
            << "\n";
          break;
        case 2:
          o << "categories = " << some(rng, kCategories, 2) << "\n";
          break;
        case 3:
          o << "reputation = "
            << quoted(pick(rng, std::vector<std::string>{"low", "medium", "high"})) << "\n";
          break;
        case 4:
          o << "users = " << some(rng, kUsers, 2) << "\n";
          break;
        case 5:
          o << "groups = " << some(rng, kGroups, 2) << "\n";
          break;
        case 6:
          o << "source = "
            << (chance(rng, 0.4)
                    ? std::string(chance(rng, 0.5) ? "[\"lan\"]" : "[\"lab\", \"10.9.0.0/16\"]")
                    : some(rng, kCidrs, 2))
            << "\n";
          break;
        case 7:
          o << "guest = " << (chance(rng, 0.5) ? "true" : "false") << "\n";
          break;
        case 8:
          o << "listeners = " << some(rng, kListeners, 2) << "\n";
          break;
        case 9:
          o << "methods = " << some(rng, kMethods, 2) << "\n";
          break;
        case 10:
          o << "ports = " << some(rng, kPorts, 2, false) << "\n";
          break;
        case 11:
          o << "schedule = " << some(rng, kSchedules, 2) << "\n";
          break;
        case 12:
          o << "headers = " << some(rng, kHeaders, 2) << "\n";
          break;
        case 13:
          o << "content_types = " << some(rng, kContentTypes, 2) << "\n";
          break;
        case 14:
          o << "file_types = " << some(rng, kFileTypes, 2) << "\n";
          break;
        default:
          o << "domains = [\"c.d.e\"]\nmethods = [\"get\"]\n";
          break;
      }
    }
    o << "\n";
  }
  o << "[default]\naction = " << quoted(chance(rng, 0.5) ? "allow" : "block") << "\n";
  return o.str();
}

// One transaction; facts() views into it.
struct Txn {
  std::string scheme, host, path, url, method, user, listener, content_type, file_type;
  std::vector<std::string> groups;
  std::uint16_t port = 80;
  bool guest = false;
  base::IpBytes client;
  wire::RequestHead head;
  std::chrono::system_clock::time_point time;
  std::optional<Reputation> reputation;

  void make(Rng& rng) {
    host = chance(rng, 0.05)   ? "approved.example"
           : chance(rng, 0.05) ? "blocked.example"
                               : pick(rng, kHosts);
    if (chance(rng, 0.1)) host = "w." + host;
    if (chance(rng, 0.02)) host = "";
    path = pick(rng, kPaths);
    method = pick(rng, kMethods);
    if (chance(rng, 0.2)) method = chance(rng, 0.5) ? "get" : "Post";
    scheme = method == "CONNECT" || chance(rng, 0.3) ? "https" : "http";
    port = static_cast<std::uint16_t>(chance(rng, 0.6) ? (scheme == "https" ? 443 : 80)
                                                       : pick(rng, kFactPorts));
    if (method == "CONNECT") path = "/";
    url = scheme + "://" + host + (port == 80 || port == 443 ? "" : ":" + std::to_string(port)) +
          path;
    user = chance(rng, 0.6) ? pick(rng, kUsers) : "";
    if (chance(rng, 0.2)) {
      for (auto& ch : user) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    }
    groups.clear();
    int ng = std::uniform_int_distribution<int>(0, 3)(rng);
    for (int i = 0; i < ng; ++i) groups.push_back(pick(rng, kGroups));
    if (chance(rng, 0.1) && !groups.empty()) groups[0] = "ADMINS";
    listener = pick(rng, kListeners);
    if (chance(rng, 0.1)) listener = "Main";
    guest = chance(rng, 0.3);
    client = *base::parse_ip(pick(rng, kClients));
    content_type = pick(rng, std::vector<std::string>{"", "video/mp4", "application/zip",
                                                      "text/html", "application/json"});
    file_type = pick(rng, std::vector<std::string>{"", "exe", "zip", "pdf"});
    std::string raw = method + " " + (path.empty() ? "/" : path) + " HTTP/1.1\r\nHost: x\r\n";
    if (chance(rng, 0.3)) raw += "User-Agent: curl/8.0\r\n";
    if (chance(rng, 0.2)) raw += "User-Agent: Wget/1.21\r\n";
    if (chance(rng, 0.3)) raw += "Content-Length: " + std::to_string(rng() % 5000) + "\r\n";
    if (chance(rng, 0.2)) raw += "Content-Type: application/json\r\n";
    raw += "\r\n";
    EXPECT_EQ(wire::parse_request_head(raw, wire::Limits{}, head).status, wire::Status::complete);
    // Any minute of a week (2024-01-15 is a Monday).
    time = std::chrono::system_clock::time_point(std::chrono::seconds(
        days_from_civil(2024, 1, 15) * 86400 + static_cast<std::int64_t>(rng() % (7 * 86400))));
    reputation.reset();
    if (chance(rng, 0.5))
      reputation =
          pick(rng, std::vector<Reputation>{Reputation::dangerous, Reputation::highly_suspicious,
                                            Reputation::suspicious, Reputation::clean});
  }

  Facts facts(const Policy& p) const {
    Facts f;
    f.client = client;
    f.guest = guest;
    f.listener = listener;
    f.user = user;
    f.groups = groups;
    f.method = method;
    f.scheme = scheme;
    f.host = host;
    f.port = port;
    f.path = path;
    f.url = url;
    f.request_head = &head;
    f.time = time;
    p.classify(f);
    if (reputation) f.reputation = *reputation;
    f.content_type = content_type;
    f.file_type = file_type;
    return f;
  }
};

void expect_same(const Policy& p, const Facts& f, Phase phase, const std::string& where) {
  Decision a = p.decide(f, phase);
  Decision b = p.decide_unindexed(f, phase);
  SCOPED_TRACE(where + " " + std::string(f.url) + " user '" + std::string(f.user) + "' method " +
               std::string(f.method) + (phase == Phase::request ? " request" : " response"));
  EXPECT_EQ(a.action, b.action);
  EXPECT_EQ(a.rule, b.rule);
  EXPECT_EQ(a.condition, b.condition);
  EXPECT_EQ(a.detail, b.detail);
  EXPECT_EQ(a.category, b.category);
  EXPECT_EQ(a.source, b.source);
  EXPECT_EQ(a.from_list, b.from_list);
  EXPECT_EQ(a.final, b.final);
}

std::shared_ptr<const Policy> load(const std::string& text) {
  std::vector<LoadError> errors;
  auto p = Policy::load_string(text, "generated.toml", errors);
  for (auto& e : errors) ADD_FAILURE() << format(e);
  return p;
}

TEST(PolicyPrefilter, SameDecisionsAsCheckingEveryRule) {
  for (unsigned seed = 1; seed <= 40; ++seed) {
    Rng rng(seed);
    const int rules = std::uniform_int_distribution<int>(1, seed % 4 == 0 ? 600 : 80)(rng);
    const std::string text = policy_text(rng, rules);
    auto p = load(text);
    ASSERT_TRUE(p) << text;
    Txn t;
    int mismatches = 0;
    for (int i = 0; i < 400; ++i) {
      t.make(rng);
      Facts f = t.facts(*p);
      for (Phase phase : {Phase::request, Phase::response}) {
        expect_same(*p, f, phase, "seed " + std::to_string(seed));
        if (::testing::Test::HasFailure() && ++mismatches > 3) FAIL() << text;
      }
    }
  }
}

// More rules than the prefilter takes (16,384): the phase indexes decide alike.
TEST(PolicyPrefilter, LargePolicyWithoutPrefilter) {
  Rng rng(99);
  auto p = load(policy_text(rng, 16500));
  ASSERT_TRUE(p);
  Txn t;
  for (int i = 0; i < 300; ++i) {
    t.make(rng);
    Facts f = t.facts(*p);
    expect_same(*p, f, Phase::request, "large");
    expect_same(*p, f, Phase::response, "large");
  }
}

// A transaction that hits more postings than one decision collects (here: 300 groups, each
// named by a rule) is still decided exactly: those kinds are then checked in full.
TEST(PolicyPrefilter, ManyPostingsHit) {
  std::ostringstream o;
  for (int g = 0; g < 300; ++g)
    o << "[[rules]]\nname = \"g" << g << "\"\ngroups = [\"grp" << g << "\"]\nmethods = [\"POST\"]\n"
      << "action = \"block\"\n\n";
  o << "[[rules]]\nname = \"last\"\ngroups = [\"grp299\"]\naction = \"warn\"\n";
  auto p = load(o.str());
  ASSERT_TRUE(p);
  Rng rng(5);
  Txn t;
  t.make(rng);
  for (int g = 0; g < 300; ++g) t.groups.push_back("GRP" + std::to_string(g));
  for (const char* method : {"GET", "post"}) {
    t.method = method;
    Facts f = t.facts(*p);
    expect_same(*p, f, Phase::request, method);
    Decision d = p->decide(f, Phase::request);
    EXPECT_EQ(d.rule, std::string(method) == "GET" ? "last" : "g0");
  }
}

// The same when the kind that overflows is only checked on rules anchored on another (here
// groups, on rules anchored on their domain): a rule whose group is missing never matches.
TEST(PolicyPrefilter, ManyPostingsHitOnKeyKind) {
  std::ostringstream o;
  for (int g = 0; g < 300; ++g)
    o << "[[rules]]\nname = \"d" << g << "\"\ndomains = [\"d" << g << ".test\"]\ngroups = [\"grp"
      << g << "\"]\naction = \"block\"\n\n";
  o << "[[rules]]\nname = \"other\"\ndomains = [\"example.com\"]\ngroups = [\"grp-none\"]\n"
    << "action = \"block\"\n";
  auto p = load(o.str());
  ASSERT_TRUE(p);
  Rng rng(6);
  Txn t;
  t.make(rng);
  t.method = "GET";
  for (int g = 0; g < 300; ++g) t.groups.push_back("grp" + std::to_string(g));
  for (const char* host : {"example.com", "d7.test"}) {
    t.host = host;
    t.url = t.scheme + "://" + t.host + t.path;
    Facts f = t.facts(*p);
    expect_same(*p, f, Phase::request, host);
    Decision d = p->decide(f, Phase::request);
    EXPECT_EQ(d.rule, std::string(host) == "example.com" ? "default" : "d7");
  }
}

// Many source networks, nested and disjoint, IPv4 and IPv6: every client, including those on
// an interval's edges, gets the rules of exactly the networks holding it.
TEST(PolicyPrefilter, ManySourceNetworks) {
  Rng rng(21);
  std::ostringstream o;
  std::vector<std::string> clients = {"0.0.0.0", "255.255.255.255", "::", "ffff::1", "10.0.0.0"};
  for (int r = 0; r < 700; ++r) {
    const unsigned a = rng() % 4, b = rng() % 256, c = rng() % 256;
    std::string net;
    if (r % 5 == 4) {
      const unsigned len = 32 + rng() % 97;
      net = "2001:db8:" + std::to_string(a) + ":" + std::to_string(b) + "::/" + std::to_string(len);
      clients.push_back("2001:db8:" + std::to_string(a) + ":" + std::to_string(b) +
                        "::" + std::to_string(rng() % 9));
    } else {
      const unsigned len = std::vector<unsigned>{8, 16, 20, 24, 24, 30, 32}[rng() % 7];
      const std::string base = "10." + std::to_string(a) + "." + std::to_string(b) + ".";
      net = base + std::to_string(c) + "/" + std::to_string(len);
      const int start = static_cast<int>(c & (len >= 24 ? ~((1U << (32 - len)) - 1) : 0U));
      const int end = len >= 24 ? start + (1 << (32 - len)) - 1 : 255;
      for (int d : {-1, 0, 1}) {  // around its start and end (of its /24 when shorter)
        for (int last : {start + d, end + d})
          if (last >= 0 && last < 256) clients.push_back(base + std::to_string(last));
      }
    }
    o << "[[rules]]\nname = \"s" << r << "\"\nsource = [\"" << net << "\"]\n"
      << (r % 3 == 0 ? "methods = [\"POST\"]\n" : "") << "action = \"block\"\n\n";
  }
  auto p = load(o.str());
  ASSERT_TRUE(p);
  Txn t;
  t.make(rng);
  for (const auto& c : clients) {
    t.client = *base::parse_ip(c);
    for (const char* method : {"GET", "POST"}) {
      t.method = method;
      expect_same(*p, t.facts(*p), Phase::request, "client " + c);
    }
  }
}

// A rule whose first condition is its source is explained by the first of its sources, in
// order, holding the client, and within an unnamed set by its first network holding it:
// nested networks, an address in a group and written in the rule, IPv4 and IPv6.
TEST(PolicyPrefilter, SourceExplainedByFirstNetworkHolding) {
  auto p = load(R"(
[[ip_groups]]
name = "outer"
addresses = ["10.0.0.0/8", "10.1.0.0/16"]

[[ip_groups]]
name = "inner"
addresses = ["10.1.2.0/24", "2001:db8::/32"]

[[rules]]
name = "posts"
source = ["10.1.2.3", "inner", "outer"]
methods = ["POST"]
action = "block"

[[rules]]
name = "nested"
source = ["10.2.0.0/16", "10.2.0.0/24", "outer"]
action = "warn"

[[rules]]
name = "groups"
source = ["outer", "inner"]
action = "monitor"
)");
  ASSERT_TRUE(p);
  Rng rng(5);
  Txn t;
  t.make(rng);
  const std::vector<std::tuple<std::string, std::string, std::string, std::string>> cases = {
      {"10.1.2.3", "POST", "posts", "10.1.2.3"},    {"10.1.2.4", "POST", "posts", "inner"},
      {"10.9.9.9", "POST", "posts", "outer"},       {"2001:db8::7", "POST", "posts", "inner"},
      {"10.2.0.5", "GET", "nested", "10.2.0.0/16"}, {"10.2.7.5", "GET", "nested", "10.2.0.0/16"},
      {"10.1.2.4", "GET", "nested", "outer"},       {"2001:db8::7", "GET", "groups", "inner"},
  };
  for (const auto& [client, method, rule, detail] : cases) {
    t.client = *base::parse_ip(client);
    t.method = method;
    const Facts f = t.facts(*p);
    const Decision d = p->decide(f, Phase::request);
    EXPECT_EQ(d.rule, rule) << client << " " << method;
    EXPECT_EQ(d.condition, "source") << client << " " << method;
    EXPECT_EQ(d.detail, detail) << client << " " << method;
    expect_same(*p, f, Phase::request, "client " + client);
  }
}

// More candidates left by their anchor than one pass lists (512): here 1,200 rules anchored
// on a group the facts hold, each also needing a category.
TEST(PolicyPrefilter, ManyCandidates) {
  std::ostringstream o;
  for (std::size_t c = 0; c < kCategories.size(); ++c)
    o << "[[categories]]\nname = " << quoted(kCategories[c]) << "\ndomains = [" << quoted(kHosts[c])
      << "]\n\n";
  for (int r = 0; r < 1200; ++r)
    o << "[[rules]]\nname = \"r" << r << "\"\ngroups = [\"staff\"]\ncategories = ["
      << quoted(kCategories[static_cast<std::size_t>(r) % kCategories.size()]) << "]\n"
      << (r % 7 == 0 ? "methods = [\"POST\"]\n" : "") << "action = \"block\"\n\n";
  auto p = load(o.str());
  ASSERT_TRUE(p);
  Rng rng(8);
  Txn t;
  for (int i = 0; i < 200; ++i) {
    t.make(rng);
    t.groups = {"Staff"};
    Facts f = t.facts(*p);
    expect_same(*p, f, Phase::request, "many candidates");
  }
}

// Rules anchored on a category and a group together, and a decision hitting more key pairs
// than one batch of pair lookups holds (here 8 categories x 20 groups): every batch is looked
// up, whichever pair decides.
TEST(PolicyPrefilter, ManyPairLookups) {
  std::ostringstream o;
  for (int c = 0; c < 8; ++c)
    o << "[[categories]]\nname = \"cat" << c << "\"\ndomains = [\"example.com\"]\n\n";
  for (int g = 0; g < 20; ++g)
    for (int c = 0; c < 8; ++c)
      o << "[[rules]]\nname = \"g" << g << "c" << c << "\"\ngroups = [\"grp" << g
        << "\"]\ncategories = [\"cat" << c << "\"]\n"
        << (g < 19 || c < 7 ? "methods = [\"DELETE\"]\n" : "") << "action = \"block\"\n\n";
  auto p = load(o.str());
  ASSERT_TRUE(p);
  Rng rng(11);
  Txn t;
  t.make(rng);
  t.host = "www.example.com";
  t.method = "GET";
  t.groups.clear();
  for (int g = 0; g < 20; ++g) t.groups.push_back("grp" + std::to_string(g));
  Facts f = t.facts(*p);
  expect_same(*p, f, Phase::request, "many pairs");
  EXPECT_EQ(p->decide(f, Phase::request).rule, "g19c7");
  t.method = "DELETE";
  f = t.facts(*p);
  expect_same(*p, f, Phase::request, "many pairs, delete");
  EXPECT_EQ(p->decide(f, Phase::request).rule, "g0c0");
}

// More distinct lists of methods, listeners and schedules than the per-rule masks take (64):
// those kinds go through their postings.
TEST(PolicyPrefilter, ManyContextLists) {
  std::ostringstream o;
  for (int s = 0; s < 70; ++s)
    o << "[[schedules]]\nname = \"s" << s << "\"\ndays = [\"mon-fri\"]\ntimes = [\""
      << (s % 24 < 10 ? "0" : "") << s % 24 << ":00-" << (s % 24 + 1 < 10 ? "0" : "") << s % 24 + 1
      << ":00\"]\n\n";
  for (int r = 0; r < 300; ++r) {
    o << "[[rules]]\nname = \"r" << r << "\"\nusers = [\""
      << kUsers[static_cast<std::size_t>(r) % kUsers.size()] << "\"]\n";
    if (r % 3 == 0) o << "methods = [\"GET\", \"M" << r << "\"]\n";
    if (r % 3 == 1) o << "listeners = [\"main\", \"l" << r << "\"]\n";
    if (r % 3 == 2) o << "schedule = [\"s" << r % 70 << "\"]\n";
    o << "action = \"block\"\n\n";
  }
  auto p = load(o.str());
  ASSERT_TRUE(p);
  Rng rng(9);
  Txn t;
  for (int i = 0; i < 400; ++i) {
    t.make(rng);
    Facts f = t.facts(*p);
    expect_same(*p, f, Phase::request, "many lists");
  }
}

// Users and groups by the thousand (their tables then have a filter in front): every name
// the policy holds finds its rule, in any case, whatever its length; names it does not hold
// (a held name with bytes added) find none.
TEST(PolicyPrefilter, ManyNames) {
  std::ostringstream o;
  auto user = [](int u) {
    return "user" + std::to_string(u) + (u % 5 == 0 ? "-whose-name-is-too-long-to-be-inline" : "");
  };
  for (int u = 0; u < 1500; ++u)
    o << "[[rules]]\nname = \"u" << u << "\"\nusers = [\"" << user(u) << "\"]\ngroups = [\"Grp" << u
      << "\"]\naction = \"" << (u % 2 ? "block" : "warn") << "\"\n\n";
  for (int g = 0; g < 1500; ++g)
    o << "[[rules]]\nname = \"g" << g << "\"\ngroups = [\"Grp" << g
      << "\"]\naction = \"block\"\n\n";
  auto p = load(o.str());
  ASSERT_TRUE(p);
  Rng rng(12);
  Txn t;
  t.make(rng);
  for (int u = 0; u < 1500; u += 7) {
    std::string name = user(u);
    if (u % 3 == 0) name[0] = 'U';
    t.user = name;
    t.groups = {"grp" + std::to_string(u)};
    Facts f = t.facts(*p);
    expect_same(*p, f, Phase::request, name);
    EXPECT_EQ(p->decide(f, Phase::request).rule, "u" + std::to_string(u)) << name;
    t.user = name + "x";  // not held
    f = t.facts(*p);
    expect_same(*p, f, Phase::request, t.user);
    EXPECT_EQ(p->decide(f, Phase::request).rule, "g" + std::to_string(u)) << t.user;
    t.groups = {"grp" + std::to_string(u) + "0000"};
    f = t.facts(*p);
    expect_same(*p, f, Phase::request, t.groups[0]);
    EXPECT_EQ(p->decide(f, Phase::request).rule, "default") << t.groups[0];
  }
}

// More distinct lists of URL keywords than one decision remembers (512): the others are
// checked on the rule each time.
TEST(PolicyPrefilter, ManyUrlLists) {
  std::ostringstream o;
  for (int r = 0; r < 700; ++r)
    o << "[[rules]]\nname = \"r" << r << "\"\nusers = [\""
      << kUsers[static_cast<std::size_t>(r) % kUsers.size()] << "\"]\nurls = [\"*"
      << kPaths[static_cast<std::size_t>(r) % kPaths.size()].substr(1, 2) << r % 7 << "*\", \"*"
      << (r % 3 ? "ab" : "cr") << "*\"]\naction = \"block\"\n\n";
  auto p = load(o.str());
  ASSERT_TRUE(p);
  Rng rng(10);
  Txn t;
  for (int i = 0; i < 300; ++i) {
    t.make(rng);
    Facts f = t.facts(*p);
    expect_same(*p, f, Phase::request, "many url lists");
  }
}

// URL expressions, each run once per decision however many rules name them: case,
// case-insensitive flags, non-ASCII URLs.
TEST(PolicyPrefilter, Expressions) {
  auto p = load(R"toml(
[[url_lists]]
name = "x"
urls = ["re:\\.exe$", "re:(?i)/(admin|phpmyadmin)/", "re:(?i)kelvin", "re:[?&](cmd|exec)=",
        "re:^https?://[^/]+/.*\\.(msi|scr)(\\?|$)"]

[[rules]]
name = "x"
urls = ["x"]
action = "block"
)toml");
  ASSERT_TRUE(p);
  const std::pair<const char*, bool> cases[] = {{"http://a.test/setup.exe", true},
                                                {"http://a.test/setup.EXE", false},
                                                {"http://a.test/setup.exe?x", false},
                                                {"http://a.test/ADMIN/", true},
                                                {"http://a.test/PhpMyAdmin/x", true},
                                                {"http://a.test/admin", false},
                                                {"http://a.test/KELVIN", true},
                                                {"http://a.test/\xE2\x84\xAA"
                                                 "elvin",
                                                 true},
                                                {"http://a.test/s\xC3\xA9?cmd=1", true},
                                                {"http://a.test/?Cmd=1", false},
                                                {"https://a.test/d/x.msi", true},
                                                {"https://a.test/d/x.msi?v=2", true},
                                                {"https://a.test/d/x.MSI", false},
                                                {"http://a.test/plain", false}};
  Rng rng(3);
  Txn t;
  t.make(rng);
  for (const auto& [url, blocked] : cases) {
    t.url = url;
    t.scheme = t.url.substr(0, t.url.find(':'));
    t.host = "a.test";
    t.path = t.url.substr(t.url.find('/', 8));
    Facts f = t.facts(*p);
    expect_same(*p, f, Phase::request, url);
    EXPECT_EQ(p->decide(f, Phase::request).rule, blocked ? "x" : "default") << url;
  }
}

// URL keywords at every place of URLs of many lengths (the search handles 16 places at a time).
TEST(PolicyPrefilter, KeywordsAnywhere) {
  const std::vector<std::string> keywords = {"abcab", "zq", "x/y-z0123456789_long"};
  std::string doc;
  for (std::size_t k = 0; k < keywords.size(); ++k)
    doc += "[[rules]]\nname = \"k" + std::to_string(k) + "\"\nurls = [\"*" + keywords[k] +
           "*\"]\naction = \"block\"\n\n";
  auto p = load(doc);
  ASSERT_TRUE(p);
  Rng rng(4);
  Txn t;
  t.make(rng);
  t.host = "h.test";
  for (std::size_t len = 0; len < 90; ++len) {
    for (std::size_t k = 0; k < keywords.size(); ++k) {
      for (std::size_t at = 0; at <= len; ++at) {
        std::string path(len, 'a');
        for (std::size_t j = 0; j < len; ++j) path[j] = "abcAB/zQ"[(j * 7 + at) % 8];
        std::string kw = keywords[k];
        if (at % 3 == 1) kw[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(kw[0])));
        if (at % 5 == 2) kw.back() = '#';  // a near miss
        path.insert(at, kw);
        t.path = "/" + path;
        t.url = "http://h.test" + t.path;
        std::string lower = t.url;
        for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string want = "default";
        for (std::size_t q = 0; q < keywords.size(); ++q)
          if (lower.find(keywords[q]) != std::string::npos) {
            want = "k" + std::to_string(q);
            break;
          }
        Facts f = t.facts(*p);
        ASSERT_EQ(p->decide(f, Phase::request).rule, want) << t.url;
      }
    }
  }
}

// The names of a host and their hashes, taken in one pass, are those of each name hashed
// alone, for labels of every length from 0 to 19.
TEST(PolicyPrefilter, HostKeysHashEachName) {
  std::vector<std::string> hosts = {"",
                                    ".",
                                    "..",
                                    "a",
                                    "a.",
                                    "com",
                                    "example.com",
                                    "a.b.example.co.uk",
                                    "a..b",
                                    "xn--bcher-kva.example."};
  for (int a = 0; a < 20; ++a)
    for (int b = 0; b < 20; ++b) {
      hosts.push_back(std::string(a, 'a') + "." + std::string(b, 'b') + ".com");
      hosts.push_back(std::string(a, 'x') + "." + std::string(b, 'y') + ".");
    }
  for (const std::string& host : hosts) {
    const detail::HostKeys keys(host);
    ASSERT_TRUE(keys.complete()) << host;
    EXPECT_EQ(keys.own_hash(), detail::suffix_hash(host)) << host;
    std::vector<std::string_view> names;  // most specific first
    keys.each([&](std::string_view name, std::uint64_t h, bool own) {
      EXPECT_EQ(h, detail::suffix_hash(name)) << host << ": " << name;
      EXPECT_EQ(own, name.size() == host.size()) << host << ": " << name;
      names.push_back(name);
      return false;
    });
    std::vector<std::string_view> want;  // none for an empty host
    if (!host.empty()) want.push_back(host);
    for (std::size_t i = 0; i < host.size(); ++i)
      if (host[i] == '.') want.push_back(std::string_view(host).substr(i + 1));
    EXPECT_EQ(names, want) << host;
  }
  // Names that differ only in length, zero bytes or order hash apart.
  const std::string zero("a\0", 2);
  EXPECT_NE(detail::suffix_hash("a"), detail::suffix_hash(zero));
  EXPECT_NE(detail::suffix_hash(""), detail::suffix_hash(std::string(8, '\0')));
  EXPECT_NE(detail::suffix_hash("aaaaaaaabbbbbbbb"), detail::suffix_hash("bbbbbbbbaaaaaaaa"));
}

// A host of more labels than the per-decision table holds (128) still matches by suffix.
TEST(PolicyPrefilter, HostWithManyLabels) {
  auto p = load(
      "[[rules]]\nname = \"deep\"\ndomains = [\"deep.example\"]\naction = \"block\"\n\n"
      "[[rules]]\nname = \"exact\"\ndomains = [\"=a.deep.example\"]\naction = \"warn\"\n");
  ASSERT_TRUE(p);
  Rng rng(6);
  Txn t;
  t.make(rng);
  std::string host;
  for (int i = 0; i < 200; ++i) host += "a.";
  for (std::string h : {host + "deep.example", host + "other.example",
                        std::string("a.deep.example"), std::string("deep.example.")}) {
    t.host = h;
    t.url = "http://" + h + "/";
    t.path = "/";
    Facts f = t.facts(*p);
    expect_same(*p, f, Phase::request, "many labels");
  }
  t.host = host + "deep.example";
  t.url = "http://" + t.host + "/";
  EXPECT_EQ(p->decide(t.facts(*p), Phase::request).rule, "deep");
}

// Names in several domain sets, a rule naming more domain sets than it keeps ids of, long
// user and group names, host patterns with scheme and port: the decision and what it reports
// are those of the lists and conditions as written.
TEST(PolicyPrefilter, HostNamesInManySets) {
  const std::string long_user = "a-very-long-user-name-well-beyond-a-cache-line@example.com";
  const std::string long_group = "a-group-whose-name-is-longer-than-the-item-holds";
  auto p = load(
      "[lists]\napproved = [\"ok.example\", \"ok2.example/path/\"]\n"
      "blocked = [\"=bad.example\", \".sub.example\"]\n\n"
      "[[domain_lists]]\nname = \"a\"\ndomains = [\"shared.example\", \"=x.shared.example\"]\n\n"
      "[[domain_lists]]\nname = \"b\"\ndomains = [\".shared.example\"]\n\n"
      "[[domain_lists]]\nname = \"c\"\ndomains = [\"other.example\"]\n\n"
      "[[domain_lists]]\nname = \"d\"\ndomains = [\"x.shared.example\", \"sub.example\"]\n\n"
      "[[rules]]\nname = \"four\"\ndomains = [\"c\", \"b\", \"d\", \"a\"]\naction = \"block\"\n\n"
      "[[rules]]\nname = \"two\"\ndomains = [\"a\", \"d\"]\nusers = [\"bob\"]\naction = "
      "\"warn\"\n\n"
      "[[rules]]\nname = \"long user\"\nusers = [\"" +
      long_user + "\"]\naction = \"warn\"\n\n" + "[[rules]]\nname = \"long group\"\ngroups = [\"" +
      long_group +
      "\"]\naction = \"monitor\"\n\n"
      "[[rules]]\nname = \"url\"\nurls = [\"http://www.shop.example:8080/cart\", "
      "\"www.shop.example/basket\"]\naction = \"allow_no_scan\"\n");
  ASSERT_TRUE(p);
  Rng rng(8);
  Txn t;
  t.make(rng);
  t.user = "";
  t.groups.clear();
  struct Case {
    std::string url, user, group, rule, detail;
  };
  const Case cases[] = {
      {"http://x.shared.example/", "", "", "four", ".shared.example"},
      {"http://y.x.shared.example/", "bob", "", "four", ".shared.example"},
      {"http://shared.example/", "", "", "four", "shared.example"},
      {"http://shared.example/", "BOB", "", "four", "shared.example"},
      {"http://other.example/", "", "", "four", "other.example"},
      {"http://ok.example/", "", "", "approved list", "ok.example"},
      {"http://ok2.example/path/x", "", "", "approved list", "ok2.example/path/"},
      {"http://ok2.example/other", "", "", "default", ""},
      {"http://bad.example/", "", "", "blocked list", "=bad.example"},
      {"http://a.sub.example/", "", "", "blocked list", ".sub.example"},
      {"http://sub.example/", "", "", "four", "sub.example"},
      {"http://none.example/", long_user, "", "long user", long_user},
      {"http://none.example/", "A-Very-Long-User-Name-Well-Beyond-A-Cache-Line@Example.com", "",
       "long user", long_user},
      {"http://none.example/", "", long_group, "long group", long_group},
      {"http://www.shop.example:8080/cart/1", "", "", "url", "http://www.shop.example:8080/cart"},
      {"https://www.shop.example/basket", "", "", "url", "www.shop.example/basket"},
      {"http://www.shop.example/cart", "", "", "default", ""},
      {"https://www.shop.example:8080/cart", "", "", "default", ""},
  };
  for (const Case& c : cases) {
    const auto scheme_end = c.url.find("://");
    t.scheme = c.url.substr(0, scheme_end);
    const auto host_start = scheme_end + 3;
    const auto path_start = c.url.find('/', host_start);
    const std::string authority = c.url.substr(host_start, path_start - host_start);
    const auto colon = authority.find(':');
    t.host = authority.substr(0, colon);
    t.port = static_cast<std::uint16_t>(colon == std::string::npos
                                            ? (t.scheme == "https" ? 443 : 80)
                                            : std::stoi(authority.substr(colon + 1)));
    t.path = c.url.substr(path_start);
    t.url = c.url;
    t.user = c.user;
    t.groups.clear();
    if (!c.group.empty()) t.groups.push_back(c.group);
    Facts f = t.facts(*p);
    f.reputation = Reputation::clean;
    SCOPED_TRACE(c.url + " user '" + c.user + "'");
    Decision d = p->decide(f, Phase::request);
    EXPECT_EQ(d.rule, c.rule);
    EXPECT_EQ(d.detail, c.detail);
    expect_same(*p, f, Phase::request, "many sets");
  }
}

}  // namespace
}  // namespace pc::policy
