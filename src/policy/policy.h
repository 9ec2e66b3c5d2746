// The policy engine: a policy document (TOML, "policy as code") compiled once into an
// immutable Policy; decide() is pure, synchronous, explainable and allocation-free on the
// common path. Loaded on the control thread; used from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/catdb.h"
#include "policy/facts.h"

namespace pc::policy {

enum class Action : std::uint8_t { allow, block, warn, monitor, allow_no_scan };
std::string_view to_string(Action a);

// Why the policy decided as it did. Views into the Policy (which the caller keeps alive by
// holding its shared_ptr) or into the Facts.
struct Decision {
  Action action = Action::allow;
  std::string_view rule;       // rule name; "approved list", "blocked list" or "default"
  std::string_view condition;  // the deciding condition: "domain", "url", "category",
                               // "reputation", "source", "user", "group", "guest", "listener",
                               // "method", "port", "header", "schedule", "content_type",
                               // "file_type", "list" or "" (a rule without conditions, the
                               // default)
  std::string_view detail;     // what matched: the list entry, domain, URL pattern, header
                               // filter or schedule name
  std::string_view category;   // the first matched category name, when categories matched
  std::string_view source;     // "name version" of the database the category came from
  bool from_list = false;      // decided by the organisation-wide approved/blocked lists
  bool final = true;           // request phase: false when a response-phase rule placed before the
                               // deciding one has matching request conditions (its content type or
                               // file type is still unknown); only allow, monitor and allow_no_scan
                               // can be non-final
};

struct Settings {
  std::string time_zone = "UTC";             // IANA name, read from /usr/share/zoneinfo
  std::chrono::seconds warn_duration{3600};  // how long "continue" on a warn page lasts
  Sensitivity reputation_default = Sensitivity::medium;
};

struct LoadError {
  std::string file;
  int line = 0;
  int column = 0;
  std::string message;
};
std::string format(const LoadError& e);  // "file:line:col: message"

class Policy {
 public:
  // Reads, validates and compiles a policy file and the databases it names. On any error,
  // returns null and lists every error with file:line.
  static std::shared_ptr<const Policy> load_file(const std::filesystem::path& file,
                                                 std::vector<LoadError>& errors);
  static std::shared_ptr<const Policy> load_string(std::string_view text,
                                                   const std::filesystem::path& name,
                                                   std::vector<LoadError>& errors);
  // The policy used when none is configured: allow everything (rule "default").
  static std::shared_ptr<const Policy> allow_all();

  // Fills facts.categories and facts.reputation from the databases and custom categories.
  void classify(Facts& facts) const;
  // Pure: the same facts give the same decision. Request phase: lists, then rules without
  // response-only conditions; response phase: rules with response conditions (content type,
  // file type) placed before the rule that decided the request, first match wins, none
  // matching keeps the request decision (final == true). See docs/policy.md.
  Decision decide(const Facts& facts, Phase phase) const;
  // The same decision found the slow way: every rule checked in full, in order, without the
  // indexes. For tests that compare it with decide().
  Decision decide_unindexed(const Facts& facts, Phase phase) const;
  // A human-readable trace of how decide() went (for `portcullis policy test`).
  std::string explain(const Facts& facts, Phase phase) const;

  const Settings& settings() const;
  std::uint64_t revision() const;  // changes with the content of the file and databases
  // The files this policy was built from (the policy file and database sources), for change
  // detection.
  const std::vector<std::filesystem::path>& inputs() const;
  std::string_view category_name(std::uint16_t id) const;
  int category_id(std::string_view name) const;  // -1 when unknown
  // Problems in database files that did not stop the load (a bad line is skipped), as
  // "file:line: message".
  const std::vector<std::string>& warnings() const;
  std::size_t rule_count() const;
  // Bytes of the tables decisions read, packed into a mapping of their own once compiled.
  std::size_t table_bytes() const;

  struct Impl;

  ~Policy();

 private:
  Policy();
  friend class PolicyLoader;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pc::policy
