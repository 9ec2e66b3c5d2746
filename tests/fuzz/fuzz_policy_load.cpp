// Fuzzes the policy compiler (policy::Policy::load_string) and decides with what it compiles.
//
// The input is a policy document named "<scratch>/policy.toml"; the scratch folder (made once
// per process) holds small databases under data/ that documents may name by relative path.
// Documents whose `path` values are absolute or climb out with ".." are skipped, so the fuzzer
// never reads the rest of the file system.
//
// Invariants: the compiler returns a policy exactly when it reports no error; every error
// names the file and a line and column inside the document; compiling is deterministic (same
// revision, same decisions); decisions are well formed (a rule name; list decisions are
// final; only letting-through decisions can be provisional); and the indexed rule scan agrees
// with the linear trace of explain(): no rule before the deciding one matches.
#include <toml++/toml.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "fuzz_scratch.h"
#include "policy/policy.h"

namespace fs = std::filesystem;
using namespace pc::policy;

namespace {

void write(const fs::path& p, std::string_view text) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!out) std::abort();
}

const fs::path& scratch() {
  static const fs::path dir = [] {
    const fs::path& d = pc::fuzz::scratch_dir("pc-fuzz-policy");
    write(d / "data/ut1/adult/domains", "adult.example\nporn.example\n# comment\n");
    write(d / "data/ut1/gambling/domains", "casino.example\n.bet.example\nbadline..\n");
    write(d / "data/ut1/gambling/urls", "games.example/poker/\nhttp://cards.example/blackjack\n");
    write(d / "data/ut1/malware/domains", "malware.example\n");
    write(d / "data/ut1/malware/expressions", "evil[0-9]+\\.example\n");
    write(d / "data/ut1/social_networks/domains", "social.example\n");
    for (const char* c : {"phishing", "audio-video", "games", "webmail"})
      write(d / "data/ut1" / c / "domains", std::string(c) + ".example\n");
    write(d / "data/local-blocklist.hosts",
          "127.0.0.1 localhost\n0.0.0.0 ads.example.net tracker.example\n::1 ip6-localhost\n");
    write(d / "data/urlhaus.csv",
          "# URLhaus\nid,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n"
          "\"1\",\"2026-01-01 00:00:00\",\"http://malware.example/payload.exe\",\"online\",\"\","
          "\"malware_download\",\"exe\",\"https://urlhaus.abuse.ch/url/1/\",\"x\"\n"
          "2,2026-01-01,http://old.example:8080/x,offline,,malware_download,,,y\n");
    write(d / "data/phishing.txt", "phish.example\nlogin-bank.example\n");
    write(d / "data/feed.txt", "suspicious.example/path\n# c\nhttps://dl.example/files/\n");
    return d;
  }();
  return dir;
}

// True when every `path` value stays inside the scratch folder.
bool paths_contained(const toml::node& n, std::string_view key) {
  if (const toml::table* t = n.as_table()) {
    for (auto&& [k, v] : *t)
      if (!paths_contained(v, k.str())) return false;
    return true;
  }
  if (const toml::array* a = n.as_array()) {
    for (const toml::node& e : *a)
      if (!paths_contained(e, key)) return false;
    return true;
  }
  if (key != "path") return true;
  auto s = n.value_exact<std::string>();
  if (!s) return true;
  fs::path p(*s);
  if (p.is_absolute() || s->find("..") != std::string::npos) return false;
  return true;
}

// Hosts, paths, users, groups, methods and ports named by the document, to build facts that
// reach its rules and lists.
struct Harvest {
  std::vector<std::string> hosts = {"casino.example",  "www.adult.example", "malware.example",
                                    "ads.example.net", "phish.example",     "unknown.example",
                                    "evil42.example",  "games.example"};
  std::vector<std::string> paths = {"/", "/poker/table?x=1", "/payload.exe", "/path"};
  std::vector<std::string> users = {"alice"};
  std::vector<std::string> groups = {"staff"};
  std::vector<std::string> methods = {"GET", "CONNECT"};
  std::vector<std::uint16_t> ports = {80, 443};
};

void add_host_or_url(Harvest& h, std::string s) {
  while (!s.empty() && (s[0] == '=' || s[0] == '*' || s[0] == '.')) s.erase(0, 1);
  if (s.starts_with("re:")) return;
  if (auto scheme = s.find("://"); scheme != std::string::npos) s.erase(0, scheme + 3);
  auto slash = s.find('/');
  std::string host = s.substr(0, slash);
  if (auto colon = host.find(':'); colon != std::string::npos) host.resize(colon);
  for (char& c : host)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  if (!host.empty() && host.size() < 200 && h.hosts.size() < 24) {
    h.hosts.push_back(host);
    h.hosts.push_back("www." + host);
  }
  if (slash != std::string::npos && h.paths.size() < 12) h.paths.push_back(s.substr(slash));
}

void harvest(const toml::node& n, std::string_view key, Harvest& h) {
  if (const toml::table* t = n.as_table()) {
    for (auto&& [k, v] : *t) harvest(v, k.str(), h);
    return;
  }
  if (const toml::array* a = n.as_array()) {
    for (const toml::node& e : *a) harvest(e, key, h);
    return;
  }
  if (auto i = n.value_exact<std::int64_t>()) {
    if (key == "ports" && *i > 0 && *i < 65536 && h.ports.size() < 8)
      h.ports.push_back(static_cast<std::uint16_t>(*i));
    return;
  }
  auto s = n.value_exact<std::string>();
  if (!s) return;
  if (key == "domains" || key == "urls" || key == "approved" || key == "blocked")
    add_host_or_url(h, *s);
  else if (key == "users" && h.users.size() < 4)
    h.users.push_back(*s);
  else if (key == "groups" && h.groups.size() < 4)
    h.groups.push_back(*s);
  else if (key == "methods" && h.methods.size() < 4)
    h.methods.push_back(*s);
}

std::size_t line_count(std::string_view text) {
  std::size_t n = 1;
  for (char c : text) n += c == '\n';
  return n;
}

std::size_t count(std::string_view hay, std::string_view needle) {
  std::size_t n = 0;
  for (std::size_t pos = hay.find(needle); pos != std::string_view::npos;
       pos = hay.find(needle, pos + 1))
    ++n;
  return n;
}

bool lets_through(Action a) {
  return a == Action::allow || a == Action::monitor || a == Action::allow_no_scan;
}

void check_decision(const Decision& d, const Policy& p) {
  (void)p;
  FUZZ_CHECK(!d.rule.empty());
  if (d.from_list) {
    FUZZ_CHECK(d.final);
    FUZZ_CHECK(d.condition == "list");
    FUZZ_CHECK(d.rule == "approved list" || d.rule == "blocked list");
    FUZZ_CHECK(d.action == (d.rule == "approved list" ? Action::allow : Action::block));
  }
  if (!d.final) FUZZ_CHECK(lets_through(d.action));
  if (d.rule == "default") FUZZ_CHECK(d.condition.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 64 * 1024) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const fs::path name = scratch() / "policy.toml";

  Harvest h;
  try {
    toml::table root = toml::parse(text, name.string());
    if (!paths_contained(root, "")) return 0;
    harvest(root, "", h);
  } catch (const toml::parse_error&) {
    // The compiler must report it too.
  }

  std::vector<LoadError> errors;
  auto p = Policy::load_string(text, name, errors);
  static const bool debug = std::getenv("PC_FUZZ_DEBUG") != nullptr;
  if (debug) {
    for (const LoadError& e : errors) std::fprintf(stderr, "error: %s\n", format(e).c_str());
    if (p)
      std::fprintf(stderr, "loaded: %zu rules, %zu warnings\n", p->rule_count(),
                   p->warnings().size());
  }
  FUZZ_CHECK((p == nullptr) == !errors.empty());
  const std::size_t lines = line_count(text);
  for (const LoadError& e : errors) {
    if (e.line < 1 || static_cast<std::size_t>(e.line) > lines || e.column < 1)
      std::fprintf(stderr, "error without a usable position: %s\n", format(e).c_str());
    FUZZ_CHECK(e.file == name.string());
    FUZZ_CHECK(e.line >= 1 && static_cast<std::size_t>(e.line) <= lines);
    FUZZ_CHECK(e.column >= 1);
    FUZZ_CHECK(!e.message.empty());
    FUZZ_CHECK(format(e).starts_with(name.string() + ":" + std::to_string(e.line) + ":"));
  }
  if (!p) return 0;

  // Deterministic.
  std::vector<LoadError> again_errors;
  auto again = Policy::load_string(text, name, again_errors);
  FUZZ_CHECK(again && again_errors.empty());
  FUZZ_CHECK(again->revision() == p->revision());
  FUZZ_CHECK(again->rule_count() == p->rule_count());
  FUZZ_CHECK(p->settings().warn_duration.count() >= 1);
  FUZZ_CHECK(!p->inputs().empty());

  // Decide for facts built from what the document names.
  const bool check_trace = text.find("MATCH") == std::string_view::npos;
  std::size_t k = 0;
  for (const std::string& host : h.hosts) {
    const std::string& path = h.paths[k % h.paths.size()];
    const std::string url = "http://" + host + path;
    std::vector<std::string> groups = {h.groups[k % h.groups.size()]};
    const std::string user = h.users[k % h.users.size()];
    Facts f;
    f.client = pc::base::IpBytes::from_v4({10, 1, static_cast<std::uint8_t>(k), 7});
    f.guest = (k % 3) == 1;
    f.listener = (k % 2) ? "guest" : "main";
    f.user = (k % 4) == 3 ? std::string_view() : std::string_view(user);
    f.groups = groups;
    f.method = h.methods[k % h.methods.size()];
    f.scheme = "http";
    f.host = host;
    f.port = h.ports[k % h.ports.size()];
    f.path = path;
    f.url = url;
    f.time = std::chrono::system_clock::time_point(std::chrono::seconds(1'790'000'000 + 3607 * k));
    f.content_type = (k % 2) ? "video/mp4" : "text/html";
    f.file_type = (k % 3) ? "exe" : "";
    p->classify(f);
    const Decision req = p->decide(f, Phase::request);
    check_decision(req, *p);
    const Decision res = p->decide(f, Phase::response);
    check_decision(res, *p);
    FUZZ_CHECK(res.final);
    if (req.final) FUZZ_CHECK(res.action == req.action && res.rule == req.rule);
    // Pure, and the same from an identical compilation.
    const Decision req2 = again->decide(f, Phase::request);
    FUZZ_CHECK(req2.action == req.action && req2.rule == req.rule && req2.final == req.final);
    FUZZ_CHECK(req2.condition == req.condition && req2.detail == req.detail);

    const std::string trace = p->explain(f, Phase::request);
    FUZZ_CHECK(trace.find("decision: ") != std::string::npos);
    if (check_trace) {
      // explain() walks the rules linearly up to the deciding one; decide() uses the index.
      // A rule decided: it is the only MATCH. The default decided: no rule matched.
      const std::size_t matches = count(trace, "': MATCH: ");
      if (req.from_list) {
        FUZZ_CHECK(matches == 0);
      } else if (req.rule == "default") {
        if (matches != 0) std::fprintf(stderr, "index missed a rule:\n%s", trace.c_str());
        FUZZ_CHECK(matches == 0);
      } else {
        if (matches != 1) std::fprintf(stderr, "index and trace disagree:\n%s", trace.c_str());
        FUZZ_CHECK(matches == 1);
      }
    }
    (void)p->explain(f, Phase::response);
    ++k;
  }
  return 0;
}
