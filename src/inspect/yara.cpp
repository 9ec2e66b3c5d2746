#include "inspect/yara.h"

#include <yara.h>

#include <fmt/format.h>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <system_error>

#include "base/log.h"

namespace pc::inspect {
namespace {

namespace fs = std::filesystem;

std::once_flag g_init_once;
int g_init_result = ERROR_SUCCESS;
std::atomic<std::uint64_t> g_generation{0};

// libyara is never finalised: rules may be in use until the process exits.
bool init_yara(std::string& error) {
  std::call_once(g_init_once, [] { g_init_result = yr_initialize(); });
  if (g_init_result != ERROR_SUCCESS) {
    error = fmt::format("yr_initialize failed (error {})", g_init_result);
    return false;
  }
  return true;
}

struct CompileErrors {
  std::string text;
  int count = 0;
};

void on_compile_message(int level, const char* file, int line, const YR_RULE*, const char* msg,
                        void* user) {
  if (level != YARA_ERROR_LEVEL_ERROR) {
    log::debug("yara: {}:{}: warning: {}", file ? file : "?", line, msg ? msg : "");
    return;
  }
  auto* errors = static_cast<CompileErrors*>(user);
  if (!errors->text.empty()) errors->text.push_back('\n');
  errors->text += fmt::format("{}:{}: {}", file ? file : "?", line, msg ? msg : "");
  ++errors->count;
}

struct CompilerPtr {
  YR_COMPILER* c = nullptr;
  ~CompilerPtr() {
    if (c) yr_compiler_destroy(c);
  }
};

// Adds one file to the compiler; false when it does not compile (the messages are in
// `errors`) or cannot be opened.
bool add_file(YR_COMPILER* compiler, const fs::path& file, CompileErrors& errors) {
  std::FILE* f = std::fopen(file.c_str(), "rb");
  if (!f) {
    std::error_code ec(errno, std::generic_category());
    if (!errors.text.empty()) errors.text.push_back('\n');
    errors.text += fmt::format("{}: {}", file.string(), ec.message());
    ++errors.count;
    return false;
  }
  const std::string ns = file.stem().string();
  int n = yr_compiler_add_file(compiler, f, ns.c_str(), file.c_str());
  std::fclose(f);
  return n == 0;
}

struct ScanState {
  std::string match;
};

int on_scan_message(YR_SCAN_CONTEXT*, int message, void* data, void* user) {
  if (message != CALLBACK_MSG_RULE_MATCHING) return CALLBACK_CONTINUE;
  const auto* rule = static_cast<const YR_RULE*>(data);
  auto* st = static_cast<ScanState*>(user);
  st->match = fmt::format("{}:{}", rule->ns->name, rule->identifier);
  return CALLBACK_ABORT;
}

}  // namespace

std::shared_ptr<const YaraRules> YaraRules::load(const fs::path& dir, std::string& error) {
  if (!init_yara(error)) return nullptr;

  std::vector<fs::path> files;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    error = fmt::format("yara: {}: {}", dir.string(), ec.message());
    return nullptr;
  }
  for (const auto& entry : it) {
    std::error_code fec;
    const auto ext = entry.path().extension();
    if (entry.is_regular_file(fec) && (ext == ".yar" || ext == ".yara"))
      files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());

  CompilerPtr compiler;
  if (yr_compiler_create(&compiler.c) != ERROR_SUCCESS) {
    error = "yara: cannot create a compiler (out of memory)";
    return nullptr;
  }
  CompileErrors errors;
  yr_compiler_set_callback(compiler.c, on_compile_message, &errors);
  bool ok = true;
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (ok) {
      ok = add_file(compiler.c, files[i], errors);
      continue;
    }
    // After an error the compiler cannot take more files: check each remaining file on its
    // own so that one load reports every broken file.
    CompilerPtr check;
    if (yr_compiler_create(&check.c) != ERROR_SUCCESS) break;
    yr_compiler_set_callback(check.c, on_compile_message, &errors);
    add_file(check.c, files[i], errors);
  }
  if (!ok) {
    error = errors.text;
    return nullptr;
  }

  std::shared_ptr<YaraRules> r(new YaraRules());
  if (int rc = yr_compiler_get_rules(compiler.c, &r->rules_); rc != ERROR_SUCCESS) {
    error = fmt::format("yara: cannot build the rules (error {})", rc);
    return nullptr;
  }
  YR_RULE* rule = nullptr;
  yr_rules_foreach(r->rules_, rule) {
    ++r->rule_count_;
  }
  r->file_count_ = files.size();
  r->generation_ = ++g_generation;
  log::debug("yara: {} rules from {} files in {} (generation {})", r->rule_count_, r->file_count_,
             dir.string(), r->generation_);
  return r;
}

YaraRules::~YaraRules() {
  if (rules_) yr_rules_destroy(rules_);
}

Verdict YaraRules::scan(const void* data, std::size_t size, int timeout_seconds) const {
  ScanState st;
  // yr_rules_scan_mem creates its own scanner per call: concurrent calls on the same rules
  // are safe in libyara 4.
  int rc = yr_rules_scan_mem(rules_, static_cast<const std::uint8_t*>(data), size,
                             SCAN_FLAGS_FAST_MODE, on_scan_message, &st, timeout_seconds);
  if (rc == ERROR_SUCCESS || (rc == ERROR_CALLBACK_ERROR && !st.match.empty())) {
    if (st.match.empty()) return {Verdict::clean, {}};
    return {Verdict::infected, std::move(st.match)};
  }
  if (!st.match.empty()) return {Verdict::infected, std::move(st.match)};
  switch (rc) {
    case ERROR_SCAN_TIMEOUT:
      return {Verdict::error, "yara: scan timed out"};
    case ERROR_INSUFFICIENT_MEMORY:
      return {Verdict::error, "yara: out of memory"};
    case ERROR_TOO_MANY_MATCHES:
      return {Verdict::error, "yara: too many matches"};
    default:
      return {Verdict::error, fmt::format("yara: scan failed (error {})", rc)};
  }
}

}  // namespace pc::inspect
