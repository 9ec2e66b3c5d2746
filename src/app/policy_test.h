#pragma once

#include <string>
#include <vector>

namespace pc::app {

struct PolicyTestArgs {
  std::string config;
  std::string url;
  std::string client;
  std::string user;
  std::vector<std::string> groups;
  std::string time;  // RFC 3339; empty: now
  std::string method;
  bool guest = false;
};

// Prints the decision and its trace; 0 on success, 2 on bad input or configuration.
int policy_test(const PolicyTestArgs& a);

}  // namespace pc::app
