#include <CLI/CLI.hpp>
#include <cstdio>

#include "app/server.h"
#include "config/config.h"

#ifndef PORTCULLIS_VERSION
#define PORTCULLIS_VERSION "0.0.0"
#endif

int main(int argc, char** argv) {
  CLI::App app{"Portcullis secure web gateway"};
  app.require_subcommand(1);
  std::string config_path = "portcullis.toml";

  auto* run = app.add_subcommand("run", "Run the gateway in the foreground");
  run->add_option("-c,--config", config_path, "Configuration file")->required();
  auto* check =
      app.add_subcommand("check-config", "Check a configuration file and list every error");
  check->add_option("-c,--config", config_path, "Configuration file")->required();
  auto* version = app.add_subcommand("version", "Print the version");

  CLI11_PARSE(app, argc, argv);

  if (version->parsed()) {
    std::printf("portcullis %s\n", PORTCULLIS_VERSION);
    return 0;
  }
  if (check->parsed()) {
    auto r = pc::config::load_file(config_path);
    for (const auto& e : r.errors) std::fprintf(stderr, "%s\n", pc::config::format(e).c_str());
    if (!r.config) return 1;
    std::printf("%s: ok\n", config_path.c_str());
    return 0;
  }
  return pc::app::run_main(config_path);
}
