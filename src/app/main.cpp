#include <CLI/CLI.hpp>
#include <cstdio>

#include "app/logs_query.h"
#include "app/policy_test.h"
#include "app/server.h"
#include "config/config.h"
#include "tls/tls.h"
#include "txn/snapshot.h"

#ifndef PORTCULLIS_VERSION
#define PORTCULLIS_VERSION "0.0.0"
#endif

int main(int argc, char** argv) {
  CLI::App app{"Portcullis secure web gateway"};
  app.require_subcommand(1);
  std::string config_path = "portcullis.toml";

  auto* run = app.add_subcommand("run", "Run the gateway in the foreground");
  run->add_option("-c,--config", config_path, "Configuration file")->required();
  auto* check = app.add_subcommand(
      "check-config", "Check a configuration file and the policy it names; list every error");
  check->add_option("-c,--config", config_path, "Configuration file")->required();
  auto* version = app.add_subcommand("version", "Print the version");

  auto* pol = app.add_subcommand("policy", "Policy tools");
  pol->require_subcommand(1);
  pc::app::PolicyTestArgs pt;
  auto* ptest = pol->add_subcommand("test", "Show what the policy decides for a URL, and why");
  ptest->add_option("-c,--config", pt.config, "Configuration file")->required();
  ptest
      ->add_option("--url", pt.url,
                   "URL (http://..., https://... or host:port with --method CONNECT)")
      ->required();
  ptest->add_option("--client", pt.client, "Client address (default 127.0.0.1)");
  ptest->add_option("--user", pt.user, "User name");
  ptest->add_option("--group", pt.groups, "Group (repeatable)");
  ptest->add_option("--time", pt.time, "Time, RFC 3339 (default: now)");
  ptest->add_option("--method", pt.method, "HTTP method (default GET)");
  ptest->add_flag("--guest", pt.guest, "As if from the guest listener");

  auto* logs = app.add_subcommand("logs", "The local log store");
  logs->require_subcommand(1);
  pc::app::LogsQueryArgs lq;
  std::string threat;
  auto* lquery =
      logs->add_subcommand("query", "Search the log store: matching records, newest first");
  lquery->add_option("-c,--config", lq.config, "Configuration file")->required();
  lquery->add_option("--from", lq.from,
                     "From this time (included): RFC 3339, a date, 'now' or -15m, -1h, -2d...");
  lquery->add_option("--to", lq.to, "To this time (excluded), the same forms");
  lquery->add_option("--client", lq.client, "Client address, exactly, or network (10.1.0.0/16)");
  lquery->add_option("--user", lq.user, "User, exactly (ASCII case ignored)");
  lquery->add_option("--host", lq.host, "Part of the host name");
  lquery->add_option("--url", lq.url, "Part of the URL");
  lquery->add_option("--category", lq.category, "Category, exactly");
  lquery->add_option("--decision", lq.decision,
                     "Decision: allow, block, warn, monitor or allow_no_scan");
  auto* threat_opt =
      lquery->add_option("--threat", threat, "Records with a threat; with NAME, with that threat")
          ->expected(0, 1);
  lquery->add_option("--limit", lq.limit, "Records to print, 0 for all (default 100)");
  lquery->add_option("--page-token", lq.page_token, "Continue after a previous page");
  lquery->add_option("--format", lq.format, "table (default), csv or json (JSON lines)")
      ->check(CLI::IsMember({"table", "csv", "json"}));

  CLI11_PARSE(app, argc, argv);

  if (version->parsed()) {
    std::printf("portcullis %s\n", PORTCULLIS_VERSION);
    return 0;
  }
  if (ptest->parsed()) return pc::app::policy_test(pt);
  if (lquery->parsed()) {
    if (threat_opt->count() > 0) lq.threat = threat;
    return pc::app::logs_query(lq);
  }
  if (check->parsed()) {
    auto r = pc::config::load_file(config_path);
    for (const auto& e : r.errors) std::fprintf(stderr, "%s\n", pc::config::format(e).c_str());
    if (!r.config) return 1;
    std::vector<std::string> errors;
    auto snap = pc::txn::build_snapshot(r.config, 0, errors, /*check_only=*/true);
    for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.c_str());
    if (!snap) return 1;
    // The scanning engines: signature files and YARA rules compile (errors name file:line).
    auto engines = pc::txn::load_engines(r.config->scan);
    if (!engines->error.empty()) {
      std::fprintf(stderr, "%s\n", engines->error.c_str());
      return 1;
    }
    if (r.config->scan.enabled) std::printf("scanning engines: %s\n", engines->version.c_str());
    // Syslog over TLS: the CA bundle, client certificate and key load (and match).
    for (const auto& d : r.config->syslog) {
      if (d.transport != pc::config::SyslogTransport::tls) continue;
      try {
        pc::tls::make_client_context(d.tls_ca, d.tls_certificate, d.tls_key);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "syslog destination %s: %s\n", d.name.c_str(), e.what());
        return 1;
      }
    }
    std::printf("%s: ok\n", config_path.c_str());
    return 0;
  }
  return pc::app::run_main(config_path);
}
