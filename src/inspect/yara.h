// YARA: the organisation's own rules, compiled once and shared read-only by every scanning
// thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "inspect/verdict.h"

struct YR_RULES;

namespace pc::inspect {

class YaraRules {
 public:
  // Compiles every *.yar and *.yara file of `dir` (not recursive, sorted by name), each in
  // its own namespace named after the file's stem. Returns null and sets `error` when the
  // directory cannot be read or a file does not compile; compile errors name the file and
  // line ("dir/a.yar:7: syntax error, ..."), one per line, for every failing file. An empty
  // directory gives rules that match nothing. Slow for large rule sets: call it off the data
  // plane. The first call initialises libyara for the process.
  static std::shared_ptr<const YaraRules> load(const std::filesystem::path& dir,
                                               std::string& error);

  ~YaraRules();
  YaraRules(const YaraRules&) = delete;
  YaraRules& operator=(const YaraRules&) = delete;

  // Scans a buffer: infected with "namespace:rule" of the first matching rule, clean, or
  // error (a timeout, memory). Safe to call from many threads at once on the same rules.
  Verdict scan(const void* data, std::size_t size, int timeout_seconds = 30) const;

  std::size_t rule_count() const { return rule_count_; }
  std::size_t file_count() const { return file_count_; }
  // Process-unique, increases with every successful load.
  std::uint64_t generation() const { return generation_; }

 private:
  YaraRules() = default;

  YR_RULES* rules_ = nullptr;
  std::size_t rule_count_ = 0;
  std::size_t file_count_ = 0;
  std::uint64_t generation_ = 0;
};

}  // namespace pc::inspect
