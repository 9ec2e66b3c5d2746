// `portcullis policy test`: what the policy decides for a URL, and why.
#include "app/policy_test.h"

#include <cstdio>

#include "base/strings.h"
#include "base/time.h"
#include "config/config.h"
#include "policy/policy.h"
#include "wire/http.h"

namespace pc::app {

int policy_test(const PolicyTestArgs& a) {
  auto cfg = config::load_file(a.config);
  if (!cfg.config) {
    for (const auto& e : cfg.errors) std::fprintf(stderr, "%s\n", config::format(e).c_str());
    return 2;
  }
  std::shared_ptr<const policy::Policy> pol;
  if (cfg.config->policy_file.empty()) {
    pol = policy::Policy::allow_all();
  } else {
    std::vector<policy::LoadError> errors;
    pol = policy::Policy::load_file(cfg.config->policy_file, errors);
    for (const auto& e : errors) std::fprintf(stderr, "%s\n", policy::format(e).c_str());
    if (!pol) return 2;
  }

  // The URL as a proxy would see it: absolute-form, or host:port for CONNECT.
  std::string method = a.method.empty() ? "GET" : a.method;
  wire::Target target;
  auto err = wire::parse_target(method, a.url, target);
  if (err != wire::Error::none) {
    std::fprintf(stderr, "invalid URL '%s': %s\n", a.url.c_str(),
                 std::string(wire::describe(err)).c_str());
    return 2;
  }
  std::string host = base::to_lower(target.host);
  policy::Facts f;
  if (!a.client.empty()) {
    auto ip = base::parse_ip(a.client);
    if (!ip) {
      std::fprintf(stderr, "invalid --client address '%s'\n", a.client.c_str());
      return 2;
    }
    f.client = *ip;
  } else {
    f.client = *base::parse_ip("127.0.0.1");
  }
  f.guest = a.guest;
  f.listener = a.guest ? "guest" : "proxy";
  f.user = a.user;
  f.groups = a.groups;
  f.method = method;
  f.scheme = method == "CONNECT" ? "https" : target.scheme;
  f.host = host;
  f.port = target.port;
  f.path = method == "CONNECT" ? std::string_view("/") : target.path;
  std::string url =
      method == "CONNECT"
          ? "https://" + host + (target.port == 443 ? "" : ":" + std::to_string(target.port)) + "/"
          : a.url;
  f.url = url;
  f.time = std::chrono::system_clock::now();
  if (!a.time.empty() && !base::parse_rfc3339(a.time, f.time)) {
    std::fprintf(stderr, "invalid --time '%s' (expected e.g. 2026-11-30T10:00:00+09:00)\n",
                 a.time.c_str());
    return 2;
  }
  pol->classify(f);
  auto d = pol->decide(f, policy::Phase::request);
  std::printf("decision:   %s\n", std::string(policy::to_string(d.action)).c_str());
  std::printf("rule:       %s\n", std::string(d.rule).c_str());
  if (!d.condition.empty()) std::printf("condition:  %s\n", std::string(d.condition).c_str());
  if (!d.detail.empty()) std::printf("matched:    %s\n", std::string(d.detail).c_str());
  std::string cats;
  for (std::uint8_t i = 0; i < f.categories.count; ++i) {
    if (!cats.empty()) cats += ", ";
    cats += std::string(pol->category_name(f.categories.ids[i]));
  }
  std::printf("categories: %s\n", cats.empty() ? "(none)" : cats.c_str());
  if (!d.source.empty()) std::printf("source:     %s\n", std::string(d.source).c_str());
  std::printf("reputation: %s\n", std::string(policy::to_string(f.reputation)).c_str());
  if (!d.final) std::printf("note:       response-phase rules may still apply\n");
  std::printf("trace:\n%s", pol->explain(f, policy::Phase::request).c_str());
  return 0;
}

}  // namespace pc::app
