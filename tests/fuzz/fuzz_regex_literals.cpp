// Fuzzes the policy's regular expressions that are only literals (policy::detail::
// literal_form()). Invariants: a pattern RE2 compiles compiles in the policy too, and its
// search gives RE2's answer on any text, whether or not it has a literal form; a literal form
// never has more than 32 strings.
//
// Input: the pattern up to the first newline, the text after it.
#include <re2/re2.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "policy/policy_impl.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::size_t nl = in.find('\n');
  const std::string_view pattern = in.substr(0, nl);
  const std::string_view text = nl == std::string_view::npos ? "" : in.substr(nl + 1);
  const auto literals = pc::policy::detail::literal_form(pattern);
  FUZZ_CHECK(!literals || literals->texts.size() <= 32);
  RE2::Options opt;
  opt.set_log_errors(false);
  const RE2 re(re2::StringPiece(pattern.data(), pattern.size()), opt);
  if (!re.ok()) return 0;
  std::string error;
  const pc::policy::detail::Regex compiled = pc::policy::detail::compile_regex(pattern, &error);
  FUZZ_CHECK(compiled);
  FUZZ_CHECK(compiled.search(text) ==
             RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), re));
  return 0;
}
