// Policy model, compiler and decide(): table tests (facts -> decision + rule + condition),
// load errors with their lines, time zones, databases and a 10,000-rule policy.
#include "policy/policy.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <new>
#include <random>
#include <sstream>

#include <re2/re2.h>

#include "base/cidr.h"
#include "policy/policy_tz.h"
#include "wire/http.h"

// Counts heap allocations while `counting` is set, to check that decide() allocates nothing.
namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
}  // namespace

// Every form is replaced, so that no allocation made by one form is freed by another (RE2
// allocates with the nothrow form).
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1);
  return std::malloc(n == 0 ? 1 : n);
}
void* operator new(std::size_t n) {
  if (void* p = operator new(n, std::nothrow)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept {
  return operator new(n, t);
}
void* operator new[](std::size_t n) {
  return operator new(n);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}

namespace pc::policy {
namespace {

namespace fs = std::filesystem;
using std::chrono::system_clock;

system_clock::time_point utc(int y, unsigned mo, unsigned d, int h, int mi) {
  auto days = days_from_civil(y, mo, d);
  return system_clock::time_point(std::chrono::seconds(days * 86400 + h * 3600 + mi * 60));
}

// A transaction described by owned strings; facts() returns views into it.
struct Req {
  std::string url = "http://www.example.com/";
  std::string method = "GET";
  std::string client = "10.0.0.5";
  std::string listener = "main";
  std::string user;
  std::vector<std::string> groups;
  bool guest = false;
  std::vector<std::pair<std::string, std::string>> headers;
  system_clock::time_point time = utc(2024, 1, 15, 1, 0);  // Monday 10:00 in Tokyo
  std::string content_type, file_type;
  std::optional<Reputation> reputation;  // overrides classification when set

  // storage
  std::string scheme, host, path;
  std::uint16_t port = 0;
  wire::RequestHead head;

  Facts facts(const Policy& p) {
    auto sep = url.find("://");
    scheme = url.substr(0, sep);
    auto rest = url.substr(sep + 3);
    auto slash = rest.find('/');
    std::string authority = rest.substr(0, slash);
    path = slash == std::string::npos ? "/" : rest.substr(slash);
    port = scheme == "https" ? 443 : 80;
    if (auto colon = authority.rfind(':');
        colon != std::string::npos && authority.find(']') == std::string::npos) {
      port = static_cast<std::uint16_t>(std::stoi(authority.substr(colon + 1)));
      authority = authority.substr(0, colon);
    }
    host = authority;
    std::string raw = method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\n";
    for (auto& [k, v] : headers) raw += k + ": " + v + "\r\n";
    raw += "\r\n";
    EXPECT_EQ(wire::parse_request_head(raw, wire::Limits{}, head).status, wire::Status::complete);
    Facts f;
    f.client = *base::parse_ip(client);
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

std::shared_ptr<const Policy> load(const std::string& text, const fs::path& name = "t.toml") {
  std::vector<LoadError> errors;
  auto p = Policy::load_string(text, name, errors);
  for (auto& e : errors) ADD_FAILURE() << format(e);
  return p;
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "policy-test-XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path); }
  void write(const std::string& rel, const std::string& text) const {
    fs::create_directories((path / rel).parent_path());
    std::ofstream(path / rel) << text;
  }
};

struct Expect {
  Action action;
  std::string rule;
  std::string condition;
  std::string detail;
};

// ---------------------------------------------------------------------------
// Every condition kind, one rule each; the default facts match none of them.

const char* kTable = R"toml(
[settings]
time_zone = "Asia/Tokyo"

[[ip_groups]]
name = "lab"
addresses = ["192.168.50.0/24", "fd00:50::/64"]

[[domain_lists]]
name = "news"
domains = ["news.example", ".sub.example", "=exact.example"]

[[url_lists]]
name = "dl"
urls = ["downloads.example/files/", "=pages.example/exact?x=1", "*casino*",
        "re:^https?://[^/]+/admin(/|$)", "https://secure.example:8443/pay"]

[[categories]]
name = "games"
domains = ["games.example"]
urls = ["portal.example/games/"]

[[schedules]]
name = "night"
days = ["mon-fri"]
times = ["22:00-06:00"]

[[header_filters]]
name = "big-upload"
header = "Content-Length"
greater_than = 1000000

[[header_filters]]
name = "curl"
header = "User-Agent"
contains = "CURL/"

[[header_filters]]
name = "json"
header = "Content-Type"
equals = "application/json"

[[header_filters]]
name = "wget"
header = "User-Agent"
regex = "^Wget/1\\."

[[header_filters]]
name = "tiny"
header = "X-Count"
less_than = 10

[[rules]]
name = "lab"
source = "lab"
action = "block"

[[rules]]
name = "test-net"
source = ["203.0.113.0/24", "2001:db8::/32"]
action = "warn"

[[rules]]
name = "guests"
guest = true
action = "monitor"

[[rules]]
name = "edge"
listeners = ["edge"]
action = "block"

[[rules]]
name = "alice"
users = ["Alice"]
action = "allow_no_scan"

[[rules]]
name = "finance"
groups = ["Finance", "Audit"]
action = "warn"

[[rules]]
name = "news"
domains = ["news"]
action = "block"

[[rules]]
name = "literal"
domains = ["literal.example", "=only.example"]
action = "warn"

[[rules]]
name = "downloads"
urls = ["dl"]
action = "block"

[[rules]]
name = "literal-url"
urls = ["lit.example/x/", "*bet365*"]
action = "warn"

[[rules]]
name = "games"
categories = ["games"]
action = "block"

[[rules]]
name = "risky"
reputation = "medium"
action = "block"

[[rules]]
name = "delete"
methods = ["delete"]
action = "block"

[[rules]]
name = "ports"
ports = [8081, "9000-9100"]
action = "warn"

[[rules]]
name = "headers"
headers = ["big-upload", "curl", "json", "wget", "tiny"]
action = "block"

[[rules]]
name = "night"
schedule = "night"
action = "block"

[[rules]]
name = "video"
content_types = ["video/*", "application/x-msdownload"]
action = "block"

[[rules]]
name = "exe"
file_types = ["exe", ".msi"]
action = "warn"
)toml";

struct Case {
  const char* what;
  std::function<void(Req&)> set;
  Phase phase;
  Expect want;
};

const Case kCases[] = {
    {"nothing matches", [](Req&) {}, Phase::request, {Action::allow, "default", "", ""}},
    {"ip group v4",
     [](Req& r) { r.client = "192.168.50.7"; },
     Phase::request,
     {Action::block, "lab", "source", "lab"}},
    {"ip group v6",
     [](Req& r) { r.client = "fd00:50::9"; },
     Phase::request,
     {Action::block, "lab", "source", "lab"}},
    {"ip outside group",
     [](Req& r) { r.client = "192.168.51.7"; },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"literal CIDR",
     [](Req& r) { r.client = "203.0.113.9"; },
     Phase::request,
     {Action::warn, "test-net", "source", "203.0.113.0/24"}},
    {"literal CIDR v6",
     [](Req& r) { r.client = "2001:db8::1"; },
     Phase::request,
     {Action::warn, "test-net", "source", "2001:db8::/32"}},
    {"guest",
     [](Req& r) { r.guest = true; },
     Phase::request,
     {Action::monitor, "guests", "guest", "true"}},
    {"listener",
     [](Req& r) { r.listener = "edge"; },
     Phase::request,
     {Action::block, "edge", "listener", "edge"}},
    {"listener is case-sensitive",
     [](Req& r) { r.listener = "EDGE"; },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"user, any case",
     [](Req& r) { r.user = "alice"; },
     Phase::request,
     {Action::allow_no_scan, "alice", "user", "Alice"}},
    {"other user",
     [](Req& r) { r.user = "bob"; },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"group, any case",
     [](Req& r) {
       r.groups = {"staff", "audit"};
     },
     Phase::request,
     {Action::warn, "finance", "group", "Audit"}},
    {"domain itself",
     [](Req& r) { r.url = "http://news.example/"; },
     Phase::request,
     {Action::block, "news", "domain", "news.example"}},
    {"subdomain",
     [](Req& r) { r.url = "http://a.b.news.example/x"; },
     Phase::request,
     {Action::block, "news", "domain", "news.example"}},
    {"not a suffix at a dot",
     [](Req& r) { r.url = "http://fakenews.example/"; },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {".sub: subdomain",
     [](Req& r) { r.url = "http://a.sub.example/"; },
     Phase::request,
     {Action::block, "news", "domain", ".sub.example"}},
    {".sub: not itself",
     [](Req& r) { r.url = "http://sub.example/"; },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"=exact: itself",
     [](Req& r) { r.url = "http://exact.example/"; },
     Phase::request,
     {Action::block, "news", "domain", "=exact.example"}},
    {"=exact: not subdomain",
     [](Req& r) { r.url = "http://www.exact.example/"; },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"literal domain",
     [](Req& r) { r.url = "https://x.literal.example/"; },
     Phase::request,
     {Action::warn, "literal", "domain", "literal.example"}},
    {"literal =domain",
     [](Req& r) { r.url = "https://only.example/"; },
     Phase::request,
     {Action::warn, "literal", "domain", "=only.example"}},
    {"url prefix",
     [](Req& r) { r.url = "http://downloads.example/files/a.zip"; },
     Phase::request,
     {Action::block, "downloads", "url", "downloads.example/files/"}},
    {"url prefix: other path",
     [](Req& r) { r.url = "http://downloads.example/other"; },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"url prefix: other host",
     [](Req& r) { r.url = "http://www.downloads.example/files/"; },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"url exact",
     [](Req& r) { r.url = "http://pages.example/exact?x=1"; },
     Phase::request,
     {Action::block, "downloads", "url", "=pages.example/exact?x=1"}},
    {"url exact: other query",
     [](Req& r) { r.url = "http://pages.example/exact?x=2"; },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"url keyword",
     [](Req& r) { r.url = "http://www.example.com/best-CASINO-online"; },
     Phase::request,
     {Action::block, "downloads", "url", "*casino*"}},
    {"url regex",
     [](Req& r) { r.url = "http://x.example/admin/login"; },
     Phase::request,
     {Action::block, "downloads", "url", "re:^https?://[^/]+/admin(/|$)"}},
    {"url regex: no match",
     [](Req& r) { r.url = "http://x.example/administrator"; },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"url scheme and port",
     [](Req& r) { r.url = "https://secure.example:8443/pay/now"; },
     Phase::request,
     {Action::block, "downloads", "url", "https://secure.example:8443/pay"}},
    {"url scheme mismatch",
     [](Req& r) { r.url = "http://secure.example:8443/pay/now"; },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"literal url pattern",
     [](Req& r) { r.url = "http://lit.example/x/y"; },
     Phase::request,
     {Action::warn, "literal-url", "url", "lit.example/x/"}},
    {"literal keyword",
     [](Req& r) { r.url = "http://a.example/?go=bet365"; },
     Phase::request,
     {Action::warn, "literal-url", "url", "*bet365*"}},
    {"custom category domain",
     [](Req& r) { r.url = "http://www.games.example/"; },
     Phase::request,
     {Action::block, "games", "category", "games"}},
    {"custom category url",
     [](Req& r) { r.url = "http://portal.example/games/chess"; },
     Phase::request,
     {Action::block, "games", "category", "games"}},
    {"reputation dangerous",
     [](Req& r) { r.reputation = Reputation::dangerous; },
     Phase::request,
     {Action::block, "risky", "reputation", "dangerous"}},
    {"reputation highly suspicious",
     [](Req& r) { r.reputation = Reputation::highly_suspicious; },
     Phase::request,
     {Action::block, "risky", "reputation", "highly suspicious"}},
    {"reputation suspicious: medium does not",
     [](Req& r) { r.reputation = Reputation::suspicious; },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"method, any case",
     [](Req& r) { r.method = "DELETE"; },
     Phase::request,
     {Action::block, "delete", "method", "DELETE"}},
    {"port",
     [](Req& r) { r.url = "http://www.example.com:8081/"; },
     Phase::request,
     {Action::warn, "ports", "port", "8081"}},
    {"port range",
     [](Req& r) { r.url = "http://www.example.com:9050/"; },
     Phase::request,
     {Action::warn, "ports", "port", "9000-9100"}},
    {"port outside range",
     [](Req& r) { r.url = "http://www.example.com:9101/"; },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"header greater_than",
     [](Req& r) {
       r.headers = {{"Content-Length", "2000000"}};
     },
     Phase::request,
     {Action::block, "headers", "header", "big-upload"}},
    {"header not greater",
     [](Req& r) {
       r.headers = {{"Content-Length", "1000000"}};
     },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"header not a number",
     [](Req& r) {
       r.headers = {{"X-Count", "abc"}};
     },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"header less_than",
     [](Req& r) {
       r.headers = {{"x-count", "3"}};
     },
     Phase::request,
     {Action::block, "headers", "header", "tiny"}},
    {"header contains, any case",
     [](Req& r) {
       r.headers = {{"user-agent", "curl/8.1"}};
     },
     Phase::request,
     {Action::block, "headers", "header", "curl"}},
    {"header equals",
     [](Req& r) {
       r.headers = {{"Content-Type", "Application/JSON"}};
     },
     Phase::request,
     {Action::block, "headers", "header", "json"}},
    {"header equals: not a prefix",
     [](Req& r) {
       r.headers = {{"Content-Type", "application/json; x=1"}};
     },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"header regex",
     [](Req& r) {
       r.headers = {{"User-Agent", "Wget/1.21"}};
     },
     Phase::request,
     {Action::block, "headers", "header", "wget"}},
    {"header regex: no match",
     [](Req& r) {
       r.headers = {{"User-Agent", "Wget/2.0"}};
     },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"schedule: Mon 23:00 Tokyo",
     [](Req& r) { r.time = utc(2024, 1, 15, 14, 0); },
     Phase::request,
     {Action::block, "night", "schedule", "night"}},
    {"schedule: Tue 05:59 Tokyo (Monday's night)",
     [](Req& r) { r.time = utc(2024, 1, 15, 20, 59); },
     Phase::request,
     {Action::block, "night", "schedule", "night"}},
    {"schedule: Tue 06:00 Tokyo",
     [](Req& r) { r.time = utc(2024, 1, 15, 21, 0); },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"schedule: Sat 03:00 Tokyo (Friday's night)",
     [](Req& r) { r.time = utc(2024, 1, 19, 18, 0); },
     Phase::request,
     {Action::block, "night", "schedule", "night"}},
    {"schedule: Sun 03:00 Tokyo",
     [](Req& r) { r.time = utc(2024, 1, 20, 18, 0); },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"schedule: Mon 03:00 Tokyo (Sunday's night)",
     [](Req& r) { r.time = utc(2024, 1, 14, 18, 0); },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"schedule: Mon 22:00 UTC is Tue 07:00 Tokyo",
     [](Req& r) { r.time = utc(2024, 1, 15, 22, 0); },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"content type, request phase",
     [](Req& r) { r.content_type = "video/mp4"; },
     Phase::request,
     {Action::allow, "default", "", ""}},
    {"content type wildcard",
     [](Req& r) { r.content_type = "video/mp4"; },
     Phase::response,
     {Action::block, "video", "content_type", "video/*"}},
    {"content type exact",
     [](Req& r) { r.content_type = "application/x-msdownload"; },
     Phase::response,
     {Action::block, "video", "content_type", "application/x-msdownload"}},
    {"content type other",
     [](Req& r) { r.content_type = "text/html"; },
     Phase::response,
     {Action::allow, "default", "", ""}},
    {"file type",
     [](Req& r) { r.file_type = "exe"; },
     Phase::response,
     {Action::warn, "exe", "file_type", "exe"}},
    {"file type written with a dot",
     [](Req& r) { r.file_type = "MSI"; },
     Phase::response,
     {Action::warn, "exe", "file_type", "msi"}},
    {"first match: source before domain",
     [](Req& r) {
       r.client = "192.168.50.1";
       r.url = "http://news.example/";
     },
     Phase::request,
     {Action::block, "lab", "source", "lab"}},
    {"first match: domain before method",
     [](Req& r) {
       r.method = "DELETE";
       r.url = "http://x.literal.example/";
     },
     Phase::request,
     {Action::warn, "literal", "domain", "literal.example"}},
};

TEST(PolicyTable, EveryConditionKind) {
  auto p = load(kTable);
  ASSERT_TRUE(p);
  for (const Case& c : kCases) {
    Req r;
    c.set(r);
    Facts f = r.facts(*p);
    Decision d = p->decide(f, c.phase);
    SCOPED_TRACE(c.what);
    EXPECT_EQ(d.action, c.want.action) << to_string(d.action) << "\n" << p->explain(f, c.phase);
    EXPECT_EQ(d.rule, c.want.rule);
    EXPECT_EQ(d.condition, c.want.condition);
    EXPECT_EQ(d.detail, c.want.detail);
    EXPECT_FALSE(d.from_list);
  }
}

TEST(PolicyTable, DecideDoesNotAllocate) {
  auto p = load(kTable);
  ASSERT_TRUE(p);
  std::vector<std::unique_ptr<Req>> reqs;
  std::vector<Facts> facts;
  std::vector<Phase> phases;
  for (const Case& c : kCases) {
    reqs.push_back(std::make_unique<Req>());
    c.set(*reqs.back());
    facts.push_back(reqs.back()->facts(*p));
    phases.push_back(c.phase);
  }
  for (std::size_t i = 0; i < facts.size(); ++i) p->decide(facts[i], phases[i]);  // warm RE2
  allocations = 0;
  counting = true;
  int blocked = 0;
  for (std::size_t i = 0; i < facts.size(); ++i)
    blocked += p->decide(facts[i], phases[i]).action == Action::block;
  counting = false;
  EXPECT_EQ(allocations.load(), 0);
  EXPECT_GT(blocked, 0);
}

TEST(PolicyTable, CategoryAndSourceInDecision) {
  auto p = load(kTable);
  ASSERT_TRUE(p);
  Req r;
  r.url = "http://www.games.example/";
  Facts f = r.facts(*p);
  ASSERT_EQ(f.categories.count, 1);
  EXPECT_EQ(p->category_name(f.categories.ids[0]), "games");
  Decision d = p->decide(f, Phase::request);
  EXPECT_EQ(d.category, "games");
  EXPECT_EQ(d.source, "policy");
}

// A rule's categories are explained from the rule itself when it names a few, from its list of
// explanations when it names more: either way the decision names the one that holds.
TEST(PolicyTable, DecisionNamesTheRuleCategoryThatHolds) {
  std::ostringstream doc;
  for (int c = 0; c < 6; ++c)
    doc << "[[categories]]\nname = \"cat" << c << "\"\ndomains = [\"host" << c << ".example\"]\n\n";
  doc << "[[rules]]\nname = \"few\"\naction = \"block\"\ncategories = [\"cat0\", \"cat1\"]\n\n"
      << "[[rules]]\nname = \"many\"\naction = \"warn\"\n"
      << "categories = [\"cat2\", \"cat3\", \"cat4\", \"cat5\", \"cat1\"]\n";
  auto p = load(doc.str());
  ASSERT_TRUE(p);
  const struct {
    const char* host;
    const char* rule;
    const char* category;
  } cases[] = {{"host1.example", "few", "cat1"},
               {"host0.example", "few", "cat0"},
               {"host5.example", "many", "cat5"},
               {"host3.example", "many", "cat3"},
               {"www.example.com", "default", ""}};
  for (const auto& c : cases) {
    Req r;
    r.url = std::string("http://") + c.host + "/";
    Facts f = r.facts(*p);
    Decision d = p->decide(f, Phase::request);
    SCOPED_TRACE(c.host);
    EXPECT_EQ(d.rule, c.rule);
    EXPECT_EQ(d.category, c.category);
    if (std::string_view(c.rule) != "default") {
      EXPECT_EQ(d.condition, "category");
      EXPECT_EQ(d.detail, c.category);
      EXPECT_EQ(d.source, "policy");
    }
  }
}

TEST(PolicyPhases, RequestDecisionIsProvisionalWhileResponseRulesRemain) {
  auto p = load(kTable);
  ASSERT_TRUE(p);
  Req r;
  Facts f = r.facts(*p);
  EXPECT_FALSE(p->decide(f, Phase::request).final);  // "video" and "exe" come later
  EXPECT_TRUE(p->decide(f, Phase::response).final);
  // A block is final: the request is never sent.
  Req b;
  b.method = "DELETE";
  Facts fb = b.facts(*p);
  EXPECT_TRUE(p->decide(fb, Phase::request).final);
}

TEST(PolicyPhases, ResponseRulesAfterTheDecidingRuleDoNotApply) {
  auto p = load(R"(
[[rules]]
name = "updates"
domains = ["updates.example"]
action = "allow_no_scan"

[[rules]]
name = "no-exe"
file_types = ["exe"]
domains = [".example"]
action = "block"

[[rules]]
name = "no-video-for-guests"
guest = true
content_types = ["video/*"]
action = "block"

[[rules]]
name = "guests"
guest = true
action = "monitor"
)");
  ASSERT_TRUE(p);
  Req up;
  up.url = "http://dl.updates.example/setup.exe";
  up.file_type = "exe";
  Facts fu = up.facts(*p);
  Decision d = p->decide(fu, Phase::request);
  EXPECT_EQ(d.rule, "updates");
  EXPECT_TRUE(d.final);
  d = p->decide(fu, Phase::response);
  EXPECT_EQ(d.rule, "updates");
  EXPECT_EQ(d.action, Action::allow_no_scan);

  // A guest's video: "guests" decides the request, the earlier response rule the response.
  Req g;
  g.guest = true;
  g.content_type = "video/webm";
  Facts fg = g.facts(*p);
  d = p->decide(fg, Phase::request);
  EXPECT_EQ(d.rule, "guests");
  EXPECT_FALSE(d.final);
  d = p->decide(fg, Phase::response);
  EXPECT_EQ(d.rule, "no-video-for-guests");
  EXPECT_EQ(d.action, Action::block);
  EXPECT_EQ(d.condition, "content_type");
  EXPECT_TRUE(d.final);
  // Not a guest: the response rule's request conditions fail, so the request is final.
  Req n;
  n.content_type = "video/webm";
  Facts fn = n.facts(*p);
  EXPECT_TRUE(p->decide(fn, Phase::request).final);
  EXPECT_EQ(p->decide(fn, Phase::response).rule, "default");
  // A guest's HTML: the response phase keeps the request decision.
  g.content_type = "text/html";
  fg = g.facts(*p);
  d = p->decide(fg, Phase::response);
  EXPECT_EQ(d.rule, "guests");
  EXPECT_TRUE(d.final);
}

TEST(PolicyRules, DisabledRulesAreSkipped) {
  auto p = load(R"(
[[rules]]
name = "off"
enabled = false
domains = ["example.com"]
action = "block"

[[rules]]
name = "on"
domains = ["example.com"]
action = "warn"
note = "the one in force"
)");
  ASSERT_TRUE(p);
  Req r;
  Facts f = r.facts(*p);
  Decision d = p->decide(f, Phase::request);
  EXPECT_EQ(d.rule, "on");
  EXPECT_EQ(d.action, Action::warn);
  auto trace = p->explain(f, Phase::request);
  EXPECT_NE(trace.find("rule 1 'off': disabled"), std::string::npos) << trace;
  EXPECT_NE(trace.find("rule 2 'on': MATCH: domain example.com -> warn"), std::string::npos)
      << trace;
}

TEST(PolicyRules, FirstMatchWinsAndAllConditionsMustHold) {
  auto p = load(R"(
[default]
action = "block"

[[rules]]
name = "post-to-example"
domains = ["example.com"]
methods = ["POST"]
action = "block"

[[rules]]
name = "example"
domains = ["example.com"]
action = "allow"

[[rules]]
name = "everything"
action = "warn"
)");
  ASSERT_TRUE(p);
  Req r;
  Facts f = r.facts(*p);
  EXPECT_EQ(p->decide(f, Phase::request).rule, "example");
  Req post;
  post.method = "POST";
  Facts fp = post.facts(*p);
  Decision d = p->decide(fp, Phase::request);
  EXPECT_EQ(d.rule, "post-to-example");
  EXPECT_EQ(d.condition, "domain");  // the deciding condition is the most specific one
  Req other;
  other.url = "http://other.example/";
  Facts fo = other.facts(*p);
  d = p->decide(fo, Phase::request);
  EXPECT_EQ(d.rule, "everything");
  EXPECT_EQ(d.condition, "");
  EXPECT_EQ(d.action, Action::warn);
}

// Expressions compiled by RE2 itself, and the rule ("r<i>") that a policy with one rule per
// expression, in order, must decide by on a text.
struct Re2Rules {
  std::vector<std::unique_ptr<re2::RE2>> res;
  explicit Re2Rules(const std::vector<std::string>& patterns) {
    re2::RE2::Options opt;
    opt.set_log_errors(false);
    for (const auto& pat : patterns) res.push_back(std::make_unique<re2::RE2>(pat, opt));
  }
  std::string rule(const std::string& text) const {
    for (std::size_t i = 0; i < res.size(); ++i)
      if (re2::RE2::PartialMatch(text, *res[i])) return "r" + std::to_string(i);
    return "default";
  }
};

// A policy of objects (TOML tables, named "o0", "o1"... in order) and one blocking rule per
// object, r<i> naming o<i> under `condition`; the default allows.
std::string one_rule_each(const std::vector<std::string>& objects, const std::string& condition) {
  std::string doc = "[default]\naction = \"allow\"\n";
  for (const auto& o : objects) doc += o;
  for (std::size_t i = 0; i < objects.size(); ++i)
    doc += "[[rules]]\nname = \"r" + std::to_string(i) + "\"\n" + condition + " = [\"o" +
           std::to_string(i) + "\"]\naction = \"block\"\n";
  return doc;
}

// URL expressions are searched only when the URL holds one of the literals RE2 says a match
// needs (besides "http" and "://", which every URL holds): decisions must be those RE2 gives,
// whatever the case, bytes or expressions.
TEST(PolicyRules, UrlExpressionsAgreeWithRe2) {
  const std::vector<std::string> patterns = {
      R"(^https?://[^/]+/.*\.(exe|msi|scr|bat)(\?|$))",
      R"((?i)/(admin|phpmyadmin)/)",
      R"(^http://[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+(:[0-9]+)?/.*\.(sh|bin)$)",
      R"([?&](cmd|exec)=)",
      R"((?i)\.(zip|rar|7z)$)",
      R"((?i)poker)",         // also matches U+212A (Kelvin sign) for "k"
      R"(/über/)",            // a non-ASCII literal: searched every time
      R"(^https://[0-9]+/)",  // no literal beyond the scheme: searched every time
      R"(WP-Login)",          // case-sensitive
  };
  std::vector<std::string> lists;
  for (std::size_t i = 0; i < patterns.size(); ++i)
    lists.push_back("[[url_lists]]\nname = \"o" + std::to_string(i) +
                    "\"\nurls = ['re:" + patterns[i] + "']\n");
  auto p = load(one_rule_each(lists, "urls"));
  ASSERT_TRUE(p);
  const Re2Rules re2_rules(patterns);

  const std::vector<std::string> pieces = {
      "a",     "x.exe",    ".EXE",     ".msi",  ".bat?",      "/admin/", "/PhpMyAdmin/",
      "?cmd=", "&exec=",   "?q=1",     ".zip",  ".Rar",       "7z",      ".sh",
      ".bin",  "/",        "poker",    "POKER", "po\u212Aer", "/über/",  "/\u00DCBER/",
      "\xFF",  "WP-Login", "wp-login", "1",     "42",         ".",       ":8080",
      "http",  "://"};
  std::mt19937 rng(11);
  std::size_t blocked = 0;
  for (int n = 0; n < 20000; ++n) {
    const bool https = rng() % 2;
    std::string host = (rng() % 4 == 0) ? "10.1.2.3" : "www.example.com";
    if (rng() % 5 == 0) host = std::to_string(rng() % 1000);
    std::string path = "/";
    const int m = static_cast<int>(rng() % 6);
    for (int i = 0; i < m; ++i) path += pieces[rng() % pieces.size()];
    const std::string url = (https ? "https://" : "http://") + host + path;
    Facts f;
    f.client = *base::parse_ip("10.0.0.5");
    f.listener = "main";
    f.method = "GET";
    f.scheme = https ? "https" : "http";
    f.host = host;
    f.port = https ? 443 : 80;
    f.path = path;
    f.url = url;
    const std::string want = re2_rules.rule(url);
    ASSERT_EQ(p->decide(f, Phase::request).rule, want) << url;
    blocked += want != "default";
  }
  EXPECT_GT(blocked, 2000u);  // the URLs do exercise matches
}

// A keyword matches in any case, also in a URL too long for the decision's lower-cased copy
// (then compared in place).
TEST(PolicyRules, KeywordsInLongUrls) {
  auto p = load(R"(
[[rules]]
name = "secret"
urls = ["*SeCret*"]
action = "block"
)");
  ASSERT_TRUE(p);
  for (const std::size_t pad : {10, 5000}) {
    for (const auto& [tail, rule] :
         {std::pair{"/SECRET", "secret"}, {"/secre", "default"}, {"/x?q=sEcReT", "secret"}}) {
      Req r;
      r.url = "http://www.example.com/" + std::string(pad, 'a') + tail;
      EXPECT_EQ(p->decide(r.facts(*p), Phase::request).rule, rule) << pad << tail;
    }
  }
}

// The same for header filters: a value without one of the literals a match needs is not
// searched.
// Header filters read each field's value lower-cased once per decision: several filters on
// one field, values too long for that copy and fields past the ones it keeps (compared in
// place then) all decide alike. The prefilter keeps a filter's name and value beside it when
// together they fit in 40 bytes ("fits", exactly 40), else reads the filter ("long").
TEST(PolicyRules, HeaderFiltersOnLongValuesAndManyFields) {
  auto p = load(R"(
[[header_filters]]
name = "none"
header = "User-Agent"
contains = "zzz"

[[header_filters]]
name = "fits"
header = "X-Device-Tag"
contains = "ABCdefghijklmnopqrstuvwxyz01"

[[header_filters]]
name = "long"
header = "X-Corporate-Device-Compliance"
equals = "Compliant-2026-11"

[[header_filters]]
name = "bot"
header = "User-Agent"
contains = "BoT"

[[header_filters]]
name = "scan"
header = "User-Agent"
regex = '(?i)sqlmap'

[[header_filters]]
name = "late"
header = "X-Late"
contains = "Yes"

[[rules]]
name = "none"
headers = ["none"]
action = "block"

[[rules]]
name = "bot"
headers = ["bot"]
action = "block"

[[rules]]
name = "scan"
headers = ["scan"]
action = "block"

[[rules]]
name = "late"
headers = ["late"]
action = "block"

[[rules]]
name = "device"
headers = ["fits", "long"]
action = "block"
)");
  ASSERT_TRUE(p);
  const std::string pad(5000, 'a');
  std::vector<std::pair<std::string, std::string>> many;  // 40 fields before X-Late
  for (int i = 0; i < 40; ++i) many.emplace_back("X-F" + std::to_string(i), "v");
  struct HeaderCase {
    std::vector<std::pair<std::string, std::string>> headers;
    const char* rule;
  };
  std::vector<HeaderCase> cases = {
      {{{"User-Agent", "Mozilla ROBOT"}}, "bot"},
      {{{"User-Agent", "Mozilla"}}, "default"},
      {{{"User-Agent", pad + "bOt"}}, "bot"},
      {{{"User-Agent", pad + "SqlMap"}}, "scan"},
      {{{"User-Agent", pad}}, "default"},
      {{{"User-Agent", "Mozilla"}, {"X-Late", "yes"}}, "late"},  // two fields lowered
      {{{"X-A", std::string(3000, 'b')}, {"User-Agent", std::string(3000, 'c') + "BOT"}}, "bot"},
      {{{"X-Device-Tag", "x-abcDEFGHIJKLMNOPQRSTUVWXYZ01"}}, "device"},
      {{{"X-Device-Tag", "abcdefghijklmnopqrstuvwxyz0"}}, "default"},
      {{{"x-corporate-device-compliance", "COMPLIANT-2026-11"}}, "device"},
      {{{"X-Corporate-Device-Compliance", "Compliant-2026-1"}}, "default"},
  };
  for (const char* late : {"YES", "no"}) {
    HeaderCase c{many, late[0] == 'Y' ? "late" : "default"};
    c.headers.emplace_back("X-Late", late);
    cases.push_back(c);
  }
  for (const auto& c : cases) {
    Req r;
    r.headers = c.headers;
    EXPECT_EQ(p->decide(r.facts(*p), Phase::request).rule, c.rule)
        << c.headers.size() << " fields, last " << c.headers.back().first << " of "
        << c.headers.back().second.size() << " bytes";
  }
}

TEST(PolicyRules, HeaderExpressionsAgreeWithRe2) {
  const std::vector<std::string> patterns = {
      R"(^(curl|Wget|python-requests)/)",
      R"((?i)(sqlmap|nikto|nmap))",
      R"((?i)kit[0-9])",  // "k" also matches U+212A (Kelvin sign)
      R"(Bot$)",
      R"(^[0-9]+$)",  // no literal: searched every time
  };
  std::vector<std::string> filters;
  for (std::size_t i = 0; i < patterns.size(); ++i)
    filters.push_back("[[header_filters]]\nname = \"o" + std::to_string(i) +
                      "\"\nheader = \"User-Agent\"\nregex = '" + patterns[i] + "'\n");
  auto p = load(one_rule_each(filters, "headers"));
  ASSERT_TRUE(p);
  const Re2Rules re2_rules(patterns);

  const std::vector<std::string> pieces = {
      "curl/",        "Curl/",     "wget/", "Wget/",    "python-requests/",
      "Mozilla/5.0 ", "SQLMap",    "nmap",  "NIKTO",    "kit1",
      "KIT2",         "\u212Ait3", "Bot",   "bot",      "1",
      "23",           " ",         "(",     "\xC3\xA9", "/"};
  std::mt19937 rng(13);
  std::size_t blocked = 0;
  for (int n = 0; n < 5000; ++n) {
    std::string ua;
    const int m = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < m; ++i) ua += pieces[rng() % pieces.size()];
    while (!ua.empty() && (ua.back() == ' ' || ua.front() == ' ')) {
      if (ua.back() == ' ') ua.pop_back();
      if (!ua.empty() && ua.front() == ' ') ua.erase(0, 1);
    }
    if (ua.empty()) ua = "x";
    Req r;
    r.headers = {{"User-Agent", ua}};
    Facts f = r.facts(*p);
    const std::string want = re2_rules.rule(ua);
    ASSERT_EQ(p->decide(f, Phase::request).rule, want) << ua;
    blocked += want != "default";
  }
  EXPECT_GT(blocked, 1000u);
}

TEST(PolicyRules, DefaultAction) {
  auto p = load("[default]\naction = \"block\"\n");
  ASSERT_TRUE(p);
  Req r;
  Facts f = r.facts(*p);
  Decision d = p->decide(f, Phase::request);
  EXPECT_EQ(d.action, Action::block);
  EXPECT_EQ(d.rule, "default");
  auto all = Policy::allow_all();
  Facts fa = r.facts(*all);
  EXPECT_EQ(all->decide(fa, Phase::request).action, Action::allow);
  EXPECT_EQ(all->decide(fa, Phase::request).rule, "default");
  EXPECT_TRUE(all->decide(fa, Phase::request).final);
}

TEST(PolicyLists, ApprovedWinsOverBlockedAndRules) {
  auto p = load(R"(
[lists]
approved = ["partner.example", "files.example/public/"]
blocked = ["partner.example", "bad.example", "files.example/", "=exact.example"]

[[rules]]
name = "block all"
action = "block"
)");
  ASSERT_TRUE(p);
  struct {
    const char* url;
    Action action;
    const char* rule;
    const char* detail;
  } cases[] = {
      {"http://www.partner.example/", Action::allow, "approved list", "partner.example"},
      {"http://bad.example/x", Action::block, "blocked list", "bad.example"},
      {"http://files.example/public/a", Action::allow, "approved list", "files.example/public/"},
      {"http://files.example/private", Action::block, "blocked list", "files.example/"},
      {"http://exact.example/", Action::block, "blocked list", "=exact.example"},
      {"http://www.exact.example/", Action::block, "block all", ""},
      {"http://neutral.example/", Action::block, "block all", ""},
  };
  for (auto& c : cases) {
    Req r;
    r.url = c.url;
    Facts f = r.facts(*p);
    Decision d = p->decide(f, Phase::request);
    SCOPED_TRACE(c.url);
    EXPECT_EQ(d.action, c.action);
    EXPECT_EQ(d.rule, c.rule);
    EXPECT_EQ(d.detail, c.detail);
    EXPECT_EQ(d.from_list, std::string_view(c.rule).ends_with("list"));
    if (d.from_list) {
      EXPECT_EQ(d.condition, "list");
      EXPECT_TRUE(d.final);
    }
  }
}

TEST(PolicyReputation, Sensitivities) {
  const Reputation levels[] = {Reputation::dangerous, Reputation::highly_suspicious,
                               Reputation::suspicious, Reputation::unknown, Reputation::clean};
  struct {
    const char* sensitivity;
    bool want[5];
  } table[] = {
      {"low", {true, false, false, false, false}},
      {"medium", {true, true, false, false, false}},
      {"high", {true, true, true, true, false}},
  };
  for (auto& row : table) {
    auto p = load(std::string("[[rules]]\nname = \"rep\"\nreputation = \"") + row.sensitivity +
                  "\"\naction = \"block\"\n");
    ASSERT_TRUE(p);
    for (int i = 0; i < 5; ++i) {
      Req r;
      r.reputation = levels[i];
      Facts f = r.facts(*p);
      SCOPED_TRACE(std::string(row.sensitivity) + " / " + std::string(to_string(levels[i])));
      EXPECT_EQ(p->decide(f, Phase::request).action == Action::block, row.want[i]);
    }
  }
  // "default" uses [settings] reputation_sensitivity.
  auto p = load(R"(
[settings]
reputation_sensitivity = "low"
[[rules]]
name = "rep"
reputation = "default"
action = "block"
)");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->settings().reputation_default, Sensitivity::low);
  Req r;
  r.reputation = Reputation::highly_suspicious;
  Facts f = r.facts(*p);
  EXPECT_EQ(p->decide(f, Phase::request).action, Action::allow);
}

// ---------------------------------------------------------------------------
// Time zones.

TEST(PolicyTimeZone, SameScheduleInTokyoAndUtc) {
  auto doc = [](const char* tz) {
    return std::string("[settings]\ntime_zone = \"") + tz + R"("
[[schedules]]
name = "office"
days = ["mon", "tue", "wed", "thu", "fri"]
times = ["09:00-12:00", "13:00-18:00"]
[[rules]]
name = "work"
schedule = ["office"]
action = "block"
)";
  };
  auto tokyo = load(doc("Asia/Tokyo"));
  auto utc_p = load(doc("UTC"));
  ASSERT_TRUE(tokyo && utc_p);
  struct {
    system_clock::time_point t;
    bool tokyo, utc;
  } cases[] = {
      {utc(2024, 1, 15, 1, 0), true, false},     // Mon 10:00 JST, Mon 01:00 UTC
      {utc(2024, 1, 15, 10, 0), false, true},    // Mon 19:00 JST, Mon 10:00 UTC
      {utc(2024, 1, 15, 3, 30), false, false},   // lunch in Tokyo, 03:30 UTC
      {utc(2024, 1, 15, 4, 0), true, false},     // 13:00 JST
      {utc(2024, 1, 19, 23, 30), false, false},  // Sat 08:30 JST, Fri 23:30 UTC
      {utc(2024, 1, 14, 23, 30), false, false},  // Mon 08:30 JST, Sun 23:30 UTC
  };
  for (auto& c : cases) {
    Req r;
    r.time = c.t;
    Facts ft = r.facts(*tokyo);
    Facts fu = r.facts(*utc_p);
    EXPECT_EQ(tokyo->decide(ft, Phase::request).action == Action::block, c.tokyo)
        << tokyo->explain(ft, Phase::request);
    EXPECT_EQ(utc_p->decide(fu, Phase::request).action == Action::block, c.utc)
        << utc_p->explain(fu, Phase::request);
  }
}

TEST(PolicyTimeZone, TzifAndPosixFooter) {
  std::string err;
  auto ny = TimeZone::load("America/New_York", err);
  ASSERT_TRUE(ny) << err;
  auto secs = [](system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  };
  EXPECT_EQ(ny->utc_offset(secs(utc(2024, 1, 15, 12, 0))), -5 * 3600);
  EXPECT_EQ(ny->utc_offset(secs(utc(2024, 7, 15, 12, 0))), -4 * 3600);
  // DST starts 2024-03-10 07:00 UTC.
  EXPECT_EQ(ny->utc_offset(secs(utc(2024, 3, 10, 6, 59))), -5 * 3600);
  EXPECT_EQ(ny->utc_offset(secs(utc(2024, 3, 10, 7, 0))), -4 * 3600);
  // Far past the last transition in the file: the footer rule.
  EXPECT_EQ(ny->utc_offset(secs(utc(2099, 7, 1, 12, 0))), -4 * 3600);
  EXPECT_EQ(ny->utc_offset(secs(utc(2099, 12, 1, 12, 0))), -5 * 3600);
  auto tokyo = TimeZone::load("Asia/Tokyo", err);
  ASSERT_TRUE(tokyo) << err;
  EXPECT_EQ(tokyo->utc_offset(secs(utc(2024, 7, 1, 0, 0))), 9 * 3600);
  EXPECT_EQ(tokyo->utc_offset(secs(utc(2090, 7, 1, 0, 0))), 9 * 3600);
  auto london = TimeZone::load("Europe/London", err);
  ASSERT_TRUE(london) << err;
  EXPECT_EQ(london->utc_offset(secs(utc(2080, 7, 1, 0, 0))), 3600);
  EXPECT_EQ(london->utc_offset(secs(utc(2080, 1, 1, 0, 0))), 0);

  EXPECT_FALSE(TimeZone::load("../etc/passwd", err));
  EXPECT_FALSE(TimeZone::load("No/Such_Zone", err));
}

// Every second either side of each whole hour over the years a zone's transitions list covers
// and its current rule already applies: the lookup in the list agrees with the rule.
TEST(PolicyTimeZone, TransitionsAgreeWithTheRule) {
  auto secs = [](system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  };
  struct Zone {
    const char* zone;
    const char* rule;
    int from, to;  // years
  };
  for (const Zone& c : {Zone{"America/New_York", "EST5EDT,M3.2.0,M11.1.0", 2008, 2037},
                        Zone{"Europe/Berlin", "CET-1CEST,M3.5.0,M10.5.0/3", 1997, 2037}}) {
    std::string err;
    auto tz = TimeZone::load(c.zone, err);
    ASSERT_TRUE(tz) << err;
    auto rule = PosixTz::parse(c.rule);
    ASSERT_TRUE(rule);
    int wrong = 0;
    for (std::int64_t t = secs(utc(c.from, 1, 1, 0, 0)); t < secs(utc(c.to, 1, 1, 0, 0)); t += 3600)
      for (std::int64_t at : {t - 1, t})
        if (tz->utc_offset(at) != rule->utc_offset(at) && ++wrong < 5)
          ADD_FAILURE() << c.zone << " at " << at << ": " << tz->utc_offset(at) << " vs "
                        << rule->utc_offset(at);
    EXPECT_EQ(wrong, 0) << c.zone;
  }
}

TEST(PolicyTimeZone, PosixRules) {
  auto secs = [](system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  };
  auto cet = PosixTz::parse("CET-1CEST,M3.5.0,M10.5.0/3");
  ASSERT_TRUE(cet);
  // 2030: DST from Sun 31 March 01:00 UTC to Sun 27 October 01:00 UTC.
  EXPECT_EQ(cet->utc_offset(secs(utc(2030, 3, 31, 0, 59))), 3600);
  EXPECT_EQ(cet->utc_offset(secs(utc(2030, 3, 31, 1, 0))), 7200);
  EXPECT_EQ(cet->utc_offset(secs(utc(2030, 10, 27, 0, 59))), 7200);
  EXPECT_EQ(cet->utc_offset(secs(utc(2030, 10, 27, 1, 0))), 3600);
  // Southern hemisphere: DST across the new year.
  auto syd = PosixTz::parse("AEST-10AEDT,M10.1.0,M4.1.0/3");
  ASSERT_TRUE(syd);
  EXPECT_EQ(syd->utc_offset(secs(utc(2030, 1, 10, 0, 0))), 11 * 3600);
  EXPECT_EQ(syd->utc_offset(secs(utc(2030, 6, 10, 0, 0))), 10 * 3600);
  auto odd = PosixTz::parse("<+0330>-3:30");
  ASSERT_TRUE(odd);
  EXPECT_EQ(odd->utc_offset(0), 3 * 3600 + 1800);
  auto jul = PosixTz::parse("XXX3YYY,J60/0,J300/0");
  ASSERT_TRUE(jul);
  EXPECT_EQ(jul->utc_offset(secs(utc(2031, 3, 2, 12, 0))), -2 * 3600);  // day 61: DST
  EXPECT_FALSE(PosixTz::parse("X1"));
  EXPECT_FALSE(PosixTz::parse("EST5EDT,M13.1.0,M11.1.0"));
}

// ---------------------------------------------------------------------------
// Load errors: each with its line.

struct ErrorCase {
  const char* what;
  const char* text;
  int line;
  const char* message;  // a substring
};

const ErrorCase kErrors[] = {
    {"TOML syntax", "[[rules]]\nname = \"x\nurl = 1\n", 2, ""},
    {"unknown top-level key", "\n\nfoo = 1\n", 3, "unknown key 'foo'"},
    {"unknown key in a rule", "[[rules]]\nname = \"a\"\naction = \"allow\"\ndomain = \"x.com\"\n",
     4, "unknown key 'domain' in [[rules]]"},
    {"unknown key in settings", "[settings]\ntimezone = \"UTC\"\n", 2, "unknown key 'timezone'"},
    {"missing action", "[[rules]]\nname = \"a\"\n", 1, "missing 'action'"},
    {"bad action", "[[rules]]\nname = \"a\"\naction = \"deny\"\n", 3, "'action' must be"},
    {"missing rule name", "[[rules]]\naction = \"allow\"\n", 1, "missing 'name'"},
    {"duplicate rule name",
     "[[rules]]\nname = \"a\"\naction = \"allow\"\n[[rules]]\nname = \"a\"\naction = \"block\"\n",
     5, "duplicate rule name 'a'"},
    {"reserved rule name", "[[rules]]\nname = \"default\"\naction = \"allow\"\n", 2, "reserved"},
    {"duplicate domain list",
     "[[domain_lists]]\nname = \"d\"\ndomains = [\"a.com\"]\n[[domain_lists]]\nname = \"d\"\n"
     "domains = [\"b.com\"]\n",
     5, "duplicate domain list name 'd'"},
    {"bad CIDR in a group",
     "[[ip_groups]]\nname = \"g\"\naddresses = [\"10.0.0.0/8\",\n  \"10.0.0.0/33\"]\n", 4,
     "bad address or CIDR '10.0.0.0/33'"},
    {"unknown ip group", "[[rules]]\nname = \"a\"\naction = \"allow\"\nsource = [\"nogroup\"]\n", 4,
     "unknown ip group or bad CIDR 'nogroup'"},
    {"unknown domain list", "[[rules]]\nname = \"a\"\naction = \"allow\"\ndomains = [\"nolist\"]\n",
     4, "unknown domain list 'nolist'"},
    {"unknown url list", "[[rules]]\nname = \"a\"\naction = \"allow\"\nurls = [\"nolist\"]\n", 4,
     "unknown url list 'nolist'"},
    {"unknown category", "[[rules]]\nname = \"a\"\naction = \"allow\"\ncategories = [\"nocat\"]\n",
     4, "unknown category 'nocat'"},
    {"unknown schedule", "[[rules]]\nname = \"a\"\naction = \"allow\"\nschedule = \"never\"\n", 4,
     "unknown schedule 'never'"},
    {"unknown header filter", "[[rules]]\nname = \"a\"\naction = \"allow\"\nheaders = [\"h\"]\n", 4,
     "unknown header filter 'h'"},
    {"bad regex in a url list", "[[url_lists]]\nname = \"u\"\nurls = [\"re:(unclosed\"]\n", 3,
     "bad regular expression"},
    {"bad regex in a header filter",
     "[[header_filters]]\nname = \"h\"\nheader = \"User-Agent\"\nregex = \"[z-a]\"\n", 4,
     "bad regular expression"},
    {"two header operations",
     "[[header_filters]]\nname = \"h\"\nheader = \"A\"\ncontains = \"x\"\nequals = \"y\"\n", 1,
     "exactly one of"},
    {"bad time", "[[schedules]]\nname = \"s\"\ntimes = [\"09:00-17:00\", \"25:00-26:00\"]\n", 3,
     "bad time range '25:00-26:00'"},
    {"empty time range", "[[schedules]]\nname = \"s\"\ntimes = [\"09:00-09:00\"]\n", 3,
     "bad time range"},
    {"bad day", "[[schedules]]\nname = \"s\"\ndays = [\"mon\", \"funday\"]\n", 3,
     "bad day 'funday'"},
    {"unknown time zone", "[settings]\ntime_zone = \"Mars/Olympus\"\n", 2, "unknown time zone"},
    {"bad warn_duration", "[settings]\nwarn_duration = 0\n", 2, "warn_duration"},
    {"bad sensitivity", "[settings]\nreputation_sensitivity = \"extreme\"\n", 2,
     "reputation_sensitivity"},
    {"bad reputation condition",
     "[[rules]]\nname = \"a\"\naction = \"block\"\nreputation = \"max\"\n", 4,
     "'reputation' must be"},
    {"bad port", "[[rules]]\nname = \"a\"\naction = \"block\"\nports = [80, 70000]\n", 4,
     "port must be between"},
    {"bad port range", "[[rules]]\nname = \"a\"\naction = \"block\"\nports = [\"90-80\"]\n", 4,
     "bad port range"},
    {"bad content type",
     "[[rules]]\nname = \"a\"\naction = \"block\"\ncontent_types = [\"video\"]\n", 4,
     "bad content type"},
    {"empty condition list", "[[rules]]\nname = \"a\"\naction = \"block\"\nusers = []\n", 4,
     "'users' is empty"},
    {"wrong type", "[[rules]]\nname = \"a\"\naction = \"block\"\nguest = \"yes\"\n", 4,
     "'guest' must be true or false"},
    {"bad domain", "[lists]\nblocked = [\"exa mple.com\"]\n", 2, "invalid character"},
    {"host name over 253 bytes",  // 4 labels of 63 bytes
     "[lists]\nblocked = [\""
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "\"]\n",
     2, "longer than 253 bytes"},
    {"wildcard in lists", "[lists]\napproved = [\"*.example.com/x*\"]\n", 2,
     "domains and URL prefixes"},
    {"bad URL pattern", "[[url_lists]]\nname = \"u\"\nurls = [\"a.example/*.exe\"]\n", 3,
     "bad URL pattern"},
    {"missing database file",
     "[[databases]]\nname = \"ut1\"\nformat = \"squidguard\"\npath = \"no/such/dir\"\n", 4,
     "no such file"},
    {"missing reputation file",
     "[[reputation]]\nname = \"uh\"\nformat = \"urlhaus\"\npath = \"no-such.csv\"\n", 4,
     "no such file"},
    {"bad database format", "[[databases]]\nname = \"x\"\nformat = \"csv\"\npath = \"x\"\n", 3,
     "database format must be"},
    {"database without category",
     "[[databases]]\nname = \"x\"\nformat = \"domains\"\npath = \"x\"\n", 1, "missing 'category'"},
    {"reputation without level",
     "[[reputation]]\nname = \"x\"\nformat = \"domains\"\npath = \"x\"\n", 1, "missing 'level'"},
    {"custom category on a public suffix", "[[categories]]\nname = \"c\"\ndomains = [\"co.uk\"]\n",
     3, "public suffix"},
    {"rules not an array", "rules = 1\n", 1, "array of tables"},
    {"unknown default key", "[default]\naction = \"allow\"\nlog = true\n", 3, "unknown key 'log'"},
};

TEST(PolicyLoad, EveryErrorHasItsLine) {
  for (const ErrorCase& c : kErrors) {
    std::vector<LoadError> errors;
    auto p = Policy::load_string(c.text, "/nonexistent/p.toml", errors);
    SCOPED_TRACE(c.what);
    EXPECT_FALSE(p);
    ASSERT_FALSE(errors.empty());
    EXPECT_EQ(errors[0].line, c.line) << format(errors[0]);
    EXPECT_NE(errors[0].message.find(c.message), std::string::npos) << format(errors[0]);
    EXPECT_EQ(errors[0].file, "/nonexistent/p.toml");
    EXPECT_EQ(format(errors[0]).rfind("/nonexistent/p.toml:" + std::to_string(c.line) + ":", 0),
              0U);
  }
}

TEST(PolicyLoad, ReportsEveryError) {
  std::vector<LoadError> errors;
  auto p = Policy::load_string(
      "[[rules]]\nname = \"a\"\naction = \"nope\"\n[[rules]]\nname = \"b\"\naction = \"allow\"\n"
      "domains = [\"missing\"]\n",
      "p.toml", errors);
  EXPECT_FALSE(p);
  ASSERT_EQ(errors.size(), 2U);
  EXPECT_EQ(errors[0].line, 3);
  EXPECT_EQ(errors[1].line, 7);
}

TEST(PolicyLoad, MissingFile) {
  std::vector<LoadError> errors;
  EXPECT_FALSE(Policy::load_file("/nonexistent/policy.toml", errors));
  ASSERT_EQ(errors.size(), 1U);
  EXPECT_NE(errors[0].message.find("cannot open"), std::string::npos);
}

TEST(PolicyLoad, SettingsAndRevision) {
  auto a = load("[settings]\ntime_zone = \"Asia/Tokyo\"\nwarn_duration = 600\n");
  auto b = load("[settings]\ntime_zone = \"Asia/Tokyo\"\nwarn_duration = 601\n");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->settings().time_zone, "Asia/Tokyo");
  EXPECT_EQ(a->settings().warn_duration, std::chrono::seconds(600));
  EXPECT_EQ(a->settings().reputation_default, Sensitivity::medium);
  EXPECT_NE(a->revision(), b->revision());
  EXPECT_EQ(a->revision(),
            load("[settings]\ntime_zone = \"Asia/Tokyo\"\nwarn_duration = 600\n")->revision());
}

// ---------------------------------------------------------------------------
// Databases and reputation feeds.

TEST(PolicyDatabases, ClassifyAndDecide) {
  TempDir dir;
  dir.write("ut1/gambling/domains", "casino.example\npoker.example\n");
  dir.write("ut1/gambling/urls", "portal.example/bet\n");
  dir.write("ut1/adult/domains", "adult.example\n");
  dir.write("social.txt", "# social networks\nsocial.example\n");
  dir.write("ads.hosts", "0.0.0.0 ads.example\n127.0.0.1 tracker.example\n");
  dir.write("urlhaus.csv",
            "# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n"
            "\"1\",\"2024-01-01 00:00:00\",\"http://malware.example/payload.exe\",\"online\","
            "\"2024-01-01 00:00:00\",\"malware_download\",\"exe\",\"https://x/1\",\"r\"\n"
            "\"2\",\"2024-01-01 00:00:00\",\"http://old.example/x.bin\",\"offline\","
            "\"2024-01-01 00:00:00\",\"malware_download\",\"exe\",\"https://x/2\",\"r\"\n");
  dir.write("suspicious.txt", "odd.example\nmalware.example\n");
  dir.write("phish-urls.txt", "# phishing\nhttp://phish.example/login\n");
  std::string doc = R"(
[[databases]]
name = "ut1"
version = "2024-01-01"
format = "squidguard"
path = "ut1"

[[databases]]
name = "social"
format = "domains"
path = "social.txt"
category = "social"

[[databases]]
name = "ads"
format = "hosts"
path = "ads.hosts"
category = "ads"

[[reputation]]
name = "urlhaus"
format = "urlhaus"
path = "urlhaus.csv"

[[reputation]]
name = "odd"
format = "domains"
path = "suspicious.txt"
level = "suspicious"

[[reputation]]
name = "phish"
format = "urls"
path = "phish-urls.txt"
level = "highly_suspicious"

[[categories]]
name = "gambling"
domains = ["lottery.example"]

[[rules]]
name = "gambling"
categories = ["gambling", "adult"]
action = "block"

[[rules]]
name = "social"
categories = "social"
action = "warn"

[[rules]]
name = "ads"
categories = ["ads"]
action = "block"

[[rules]]
name = "bad"
reputation = "medium"
action = "block"

[[rules]]
name = "suspicious"
reputation = "high"
action = "monitor"
)";
  std::vector<LoadError> errors;
  auto p = Policy::load_string(doc, dir.path / "policy.toml", errors);
  for (auto& e : errors) ADD_FAILURE() << format(e);
  ASSERT_TRUE(p);
  for (auto& w : p->warnings()) ADD_FAILURE() << "warning: " << w;
  EXPECT_EQ(p->inputs().size(), 7U);
  struct {
    const char* url;
    Action action;
    const char* rule;
    const char* category;
    const char* source;
    Reputation reputation;
  } cases[] = {
      {"http://www.casino.example/", Action::block, "gambling", "gambling", "ut1 2024-01-01",
       Reputation::unknown},
      {"http://portal.example/bet/x", Action::block, "gambling", "gambling", "ut1 2024-01-01",
       Reputation::unknown},
      {"http://lottery.example/", Action::block, "gambling", "gambling", "ut1 2024-01-01",
       Reputation::unknown},
      {"http://adult.example/", Action::block, "gambling", "adult", "ut1 2024-01-01",
       Reputation::unknown},
      {"http://social.example/", Action::warn, "social", "social", "social", Reputation::unknown},
      {"http://ads.example/", Action::block, "ads", "ads", "ads", Reputation::unknown},
      {"http://malware.example/payload.exe", Action::block, "bad", "", "", Reputation::dangerous},
      {"http://old.example/x.bin", Action::block, "bad", "", "", Reputation::highly_suspicious},
      {"http://phish.example/login", Action::block, "bad", "", "", Reputation::highly_suspicious},
      {"http://odd.example/", Action::monitor, "suspicious", "", "", Reputation::suspicious},
      {"http://www.example.com/", Action::monitor, "suspicious", "", "", Reputation::unknown},
  };
  for (auto& c : cases) {
    Req r;
    r.url = c.url;
    Facts f = r.facts(*p);
    Decision d = p->decide(f, Phase::request);
    SCOPED_TRACE(c.url);
    EXPECT_EQ(f.reputation, c.reputation) << to_string(f.reputation);
    EXPECT_EQ(d.action, c.action) << p->explain(f, Phase::request);
    EXPECT_EQ(d.rule, c.rule);
    EXPECT_EQ(d.category, c.category);
    EXPECT_EQ(d.source, c.source);
  }

  // The revision follows the databases' content.
  auto before = p->revision();
  dir.write("social.txt", "social.example\nmore.example\n");
  auto q = Policy::load_string(doc, dir.path / "policy.toml", errors);
  ASSERT_TRUE(q);
  EXPECT_NE(q->revision(), before);
}

// ---------------------------------------------------------------------------
// explain()

TEST(PolicyExplain, TracesEachRuleUpToTheDecidingOne) {
  auto p = load(kTable);
  ASSERT_TRUE(p);
  Req r;
  r.url = "http://news.example/";
  Facts f = r.facts(*p);
  std::string t = p->explain(f, Phase::request);
  EXPECT_NE(t.find("approved list: no match"), std::string::npos) << t;
  EXPECT_NE(t.find("rule 1 'lab': no match on source (client 10.0.0.5)"), std::string::npos) << t;
  EXPECT_NE(t.find("rule 5 'alice': no match on user (user '')"), std::string::npos) << t;
  EXPECT_NE(t.find("rule 7 'news': MATCH: domain news.example -> block"), std::string::npos) << t;
  EXPECT_EQ(t.find("rule 8 "), std::string::npos) << t;
  EXPECT_NE(t.find("decision: block by 'news' (domain news.example), final"), std::string::npos)
      << t;

  Req v;
  v.content_type = "video/mp4";
  Facts fv = v.facts(*p);
  t = p->explain(fv, Phase::response);
  EXPECT_NE(t.find("rule 17 'video': response-phase rule; request conditions match"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("default: allow"), std::string::npos) << t;
  EXPECT_NE(t.find("response phase:"), std::string::npos) << t;
  EXPECT_NE(t.find("rule 17 'video': MATCH: content_type video/*"), std::string::npos) << t;
  EXPECT_NE(t.find("decision: block by 'video'"), std::string::npos) << t;
}

// ---------------------------------------------------------------------------
// 10,000 rules: indexed decide() gives the same answer as the rule order says.

TEST(PolicyScale, TenThousandRules) {
  std::ostringstream doc;
  doc << "[[ip_groups]]\nname = \"vip\"\naddresses = [\"10.9.0.0/16\"]\n";
  for (int c = 0; c < 50; ++c)
    doc << "[[categories]]\nname = \"cat" << c << "\"\ndomains = [\"c" << c << ".example\"]\n";
  constexpr int kRules = 10000;
  for (int i = 0; i < kRules; ++i) {
    doc << "[[rules]]\nname = \"r" << i << "\"\n";
    switch (i % 5) {
      case 0:  // domain
        doc << "domains = [\"d" << i << ".example\", \".s" << i << ".example\"]\n";
        break;
      case 1:  // domain + method
        doc << "domains = [\"d" << i << ".example\"]\nmethods = [\"POST\"]\n";
        break;
      case 2:  // port (unindexed)
        doc << "ports = [" << (20000 + i) << "]\n";
        break;
      case 3:  // category
        doc << "categories = [\"cat" << (i % 50) << "\"]\nusers = [\"u" << i << "\"]\n";
        break;
      case 4:  // URL prefix
        doc << "urls = [\"u" << i << ".example/p/\"]\n";
        break;
    }
    doc << "action = \"" << (i % 2 ? "block" : "warn") << "\"\n";
  }
  doc << "[[rules]]\nname = \"catch-all-example\"\ndomains = [\".example\"]\naction = "
         "\"monitor\"\n";
  auto p = load(doc.str());
  ASSERT_TRUE(p);
  EXPECT_EQ(p->rule_count(), static_cast<std::size_t>(kRules + 1));
  // Its tables packed together once compiled (every decision below reads them there): a
  // cache line or more per rule, and the indexes.
  EXPECT_GE(p->table_bytes(), std::size_t{kRules} * 64);

  int traced = 0;
  auto expect = [&](Req& r, const std::string& rule) {
    Facts f = r.facts(*p);
    Decision d = p->decide(f, Phase::request);
    EXPECT_EQ(d.rule, rule) << r.url << " " << r.method << " " << r.user;
    // explain() walks every rule in order without the index: exactly one MATCH, the same.
    if (traced++ % 20 == 0) {
      std::string t = p->explain(f, Phase::request);
      auto first = t.find(": MATCH");
      if (rule == "default") {
        EXPECT_EQ(first, std::string::npos);
      } else {
        ASSERT_NE(first, std::string::npos);
        EXPECT_EQ(t.find(": MATCH", first + 1), std::string::npos);
        EXPECT_NE(t.find("'" + rule + "': MATCH"), std::string::npos);
      }
    }
  };
  auto start = std::chrono::steady_clock::now();
  int checked = 0;
  for (int i = 0; i < kRules; i += 7) {
    Req r;
    std::string want = "r" + std::to_string(i);
    switch (i % 5) {
      case 0:
        r.url = "http://www.d" + std::to_string(i) + ".example/";
        expect(r, want);
        r.url = "http://a.s" + std::to_string(i) + ".example/";
        expect(r, want);
        r.url = "http://s" + std::to_string(i) + ".example/";  // subdomains only
        expect(r, "catch-all-example");
        break;
      case 1:
        r.url = "http://d" + std::to_string(i) + ".example/";
        r.method = "POST";
        expect(r, want);
        r.method = "GET";
        expect(r, "catch-all-example");
        break;
      case 2:
        r.url = "http://host.invalid:" + std::to_string(20000 + i) + "/";
        expect(r, want);
        break;
      case 3: {
        r.url = "http://c" + std::to_string(i % 50) + ".example/";
        r.user = "u" + std::to_string(i);
        expect(r, want);
        // Another user of the same category: a later rule of that category, or the catch-all.
        r.user = "nobody";
        expect(r, "catch-all-example");
        break;
      }
      case 4:
        r.url = "http://u" + std::to_string(i) + ".example/p/q";
        expect(r, want);
        break;
    }
    ++checked;
  }
  auto per = (std::chrono::steady_clock::now() - start) / (checked * 2);
  // Generous: this includes building the facts; decide() itself takes microseconds.
  EXPECT_LT(per, std::chrono::milliseconds(5));
  Req none;
  none.url = "http://unrelated.test/";
  expect(none, "default");

  // decide() alone, on a mix of facts: no allocation, and fast.
  std::vector<std::unique_ptr<Req>> reqs;
  std::vector<Facts> facts;
  for (const char* url :
       {"http://www.d9995.example/", "http://a.s5.example/", "http://host.invalid:29997/",
        "http://c3.example/", "http://u9999.example/p/", "http://unrelated.test/"}) {
    reqs.push_back(std::make_unique<Req>());
    reqs.back()->url = url;
    reqs.back()->user = "u9998";
    facts.push_back(reqs.back()->facts(*p));
  }
  allocations = 0;
  counting = true;
  constexpr int kRounds = 200;
  auto t0 = std::chrono::steady_clock::now();
  for (int round = 0; round < kRounds; ++round)
    for (const Facts& f : facts) p->decide(f, Phase::request);
  auto elapsed = std::chrono::steady_clock::now() - t0;
  counting = false;
  EXPECT_EQ(allocations.load(), 0);
  auto each = elapsed / (kRounds * static_cast<int>(facts.size()));
  std::printf("decide() with %d rules: %lld ns per call\n", kRules,
              static_cast<long long>(std::chrono::nanoseconds(each).count()));
  EXPECT_LT(each, std::chrono::microseconds(500));
}

// ---------------------------------------------------------------------------
// The shipped examples load.

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(PolicyExamples, DefaultAllowsEverything) {
  std::vector<LoadError> errors;
  auto p = Policy::load_file(fs::path(PC_SOURCE_DIR) / "config/policy.toml", errors);
  for (auto& e : errors) ADD_FAILURE() << format(e);
  ASSERT_TRUE(p);
  Req r;
  Facts f = r.facts(*p);
  EXPECT_EQ(p->decide(f, Phase::request).action, Action::allow);
  EXPECT_TRUE(p->decide(f, Phase::request).final);
}

TEST(PolicyExamples, OfficeLoadsWithItsDatabases) {
  TempDir dir;
  std::string text = read(fs::path(PC_SOURCE_DIR) / "examples/policy/office.toml");
  ASSERT_FALSE(text.empty());
  dir.write("policy.toml", text);
  for (const char* cat : {"adult", "gambling", "malware", "phishing", "social_networks",
                          "audio-video", "games", "shopping", "webmail"})
    dir.write(std::string("data/ut1/") + cat + "/domains", std::string(cat) + ".example\n");
  dir.write("data/urlhaus.csv", "# URLhaus\n");
  dir.write("data/phishing.txt", "phish.example\n");
  dir.write("data/local-blocklist.hosts", "0.0.0.0 ads.example\n");
  std::vector<LoadError> errors;
  auto p = Policy::load_file(dir.path / "policy.toml", errors);
  for (auto& e : errors) ADD_FAILURE() << format(e);
  ASSERT_TRUE(p);
  Req r;
  r.url = "http://gambling.example/";
  r.client = "10.1.2.3";
  Facts f = r.facts(*p);
  EXPECT_EQ(p->decide(f, Phase::request).action, Action::block) << p->explain(f, Phase::request);
}

TEST(PolicyExamples, TheFullExampleInTheDocsLoads) {
  std::string md = read(fs::path(PC_SOURCE_DIR) / "docs/policy.md");
  auto at = md.find("## A full example");
  ASSERT_NE(at, std::string::npos);
  auto begin = md.find("```toml\n", at);
  auto end = md.find("```\n", begin + 8);
  ASSERT_NE(begin, std::string::npos);
  ASSERT_NE(end, std::string::npos);
  std::string text = md.substr(begin + 8, end - begin - 8);
  TempDir dir;
  for (const char* cat : {"malware", "phishing", "social_networks"})
    dir.write(std::string("data/ut1/") + cat + "/domains", std::string(cat) + ".example\n");
  dir.write("data/urlhaus.csv", "");
  std::vector<LoadError> errors;
  auto p = Policy::load_string(text, dir.path / "policy.toml", errors);
  for (auto& e : errors) ADD_FAILURE() << format(e);
  ASSERT_TRUE(p);
  Req r;
  r.url = "http://www.social_networks.example/";
  r.client = "10.1.0.9";
  r.time = utc(2026, 1, 20, 9, 0);  // Tuesday 10:00 in Berlin
  Facts f = r.facts(*p);
  Decision d = p->decide(f, Phase::request);
  EXPECT_EQ(d.rule, "social networks at work") << p->explain(f, Phase::request);
  EXPECT_EQ(d.condition, "category");
  EXPECT_EQ(d.source, "ut1 2026-01-15");
  Req g;
  g.guest = true;
  g.content_type = "video/mp4";
  Facts fg = g.facts(*p);
  EXPECT_FALSE(p->decide(fg, Phase::request).final);
  EXPECT_EQ(p->decide(fg, Phase::response).rule, "no video for guests");
}

}  // namespace
}  // namespace pc::policy
