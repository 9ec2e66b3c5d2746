// Regular expressions that are only a few literal strings (literal_form()) are decided
// without RE2: which patterns are recognised, and the same result as RE2 over random
// patterns and texts (mixed case, Unicode case-folding partners of ASCII letters, invalid
// UTF-8).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "policy/policy_impl.h"

namespace pc::policy::detail {
namespace {

struct FormCase {
  const char* pattern;
  std::vector<std::string> texts;  // empty: no literal form
  bool icase = false, at_start = false, at_end = false;
};

TEST(LiteralForm, Recognised) {
  const std::vector<FormCase> cases = {
      {"^(curl|Wget|python-requests)/", {"curl/", "Wget/", "python-requests/"}, false, true},
      {"(?i)(sqlmap|nikto|nmap)", {"sqlmap", "nikto", "nmap"}, true},
      {"(?i)sqlmap|NIKTO", {"sqlmap", "nikto"}, true},
      {R"((?i)\.(zip|rar|7z)$)", {".zip", ".rar", ".7z"}, true, false, true},
      {"[?&](cmd|exec)=", {"?cmd=", "?exec=", "&cmd=", "&exec="}},
      {"(?i)/(admin|phpmyadmin)/", {"/admin/", "/phpmyadmin/"}, true},
      {"^https?://a(?:b|)$",
       {"http://ab", "http://a", "https://ab", "https://a"},
       false,
       true,
       true},
      {R"(a\$)", {"a$"}},
      {R"(a\\$)", {"a\\"}, false, false, true},
      {"^", {""}, false, true},
      {"Bot$", {"Bot"}, false, false, true},
      // Not literals: RE2 decides.
      {"^https?://[^/]+/.*\\.(exe)$", {}},
      {"a+", {}},
      {"a*", {}},
      {"a{2}", {}},
      {"\\d", {}},
      {"a.b", {}},
      {"[a-z]", {}},
      {"(?m)^a", {}},
      {"a(?i)b", {}},
      {"^a|b", {}},
      {"a|b$", {}},
      {"a??", {}},
      {"(a|b)c(d|e)f(g|h)i(j|k)l(m|n)o(p|q)", {}},  // 64 strings
      {"caf\xC3\xA9", {}},
  };
  // Groups in groups: eight levels at most, never a deep recursion.
  const std::string deep = std::string(3000, '(') + "a" + std::string(3000, ')');
  EXPECT_FALSE(literal_form(deep));
  EXPECT_TRUE(literal_form("((((((((a))))))))"));
  EXPECT_FALSE(literal_form("(((((((((a)))))))))"));
  for (const auto& c : cases) {
    const auto got = literal_form(c.pattern);
    if (c.texts.empty()) {
      EXPECT_FALSE(got) << c.pattern;
      continue;
    }
    ASSERT_TRUE(got) << c.pattern;
    auto want = c.texts, have = got->texts;
    std::sort(want.begin(), want.end());
    std::sort(have.begin(), have.end());
    EXPECT_EQ(have, want) << c.pattern;
    EXPECT_EQ(got->icase, c.icase) << c.pattern;
    EXPECT_EQ(got->at_start, c.at_start) << c.pattern;
    EXPECT_EQ(got->at_end, c.at_end) << c.pattern;
  }
}

// Random patterns over a small alphabet, some with what literal_form() leaves to RE2.
std::string random_sequence(std::mt19937& rng, int depth);
std::string random_alternatives(std::mt19937& rng, int depth) {
  std::string s = random_sequence(rng, depth);
  for (int n = static_cast<int>(rng() % 3); n > 0; --n) s += "|" + random_sequence(rng, depth);
  return s;
}
std::string random_sequence(std::mt19937& rng, int depth) {
  static const std::vector<std::string> atoms = {
      "a", "b",     "k",     "K",     "s",     "S",     "/",    "-",    "=",
      "&", R"(\.)", R"(\?)", R"(\/)", R"(\$)", R"(\\)", "[?&]", "[ab]", "[kS.]",
      ".", "a+",    R"(\d)", "[^a]",  "[a-c]", "(?i)",  "$",    "^"};
  std::string s;
  for (int n = static_cast<int>(rng() % 4); n > 0; --n) {
    const unsigned pick = rng() % 10;
    if (pick == 0 && depth < 2)
      s += (rng() % 2 ? "(" : "(?:") + random_alternatives(rng, depth + 1) + ")";
    else
      s += atoms[pick < 7 ? rng() % 17 : rng() % atoms.size()];
    if (rng() % 4 == 0) s += "?";
  }
  return s;
}

TEST(LiteralForm, AgreesWithRe2) {
  const std::vector<std::string> pieces = {"a",
                                           "A",
                                           "b",
                                           "B",
                                           "k",
                                           "K",
                                           "\u212A" /* Kelvin sign */,
                                           "s",
                                           "S",
                                           "\u017F" /* long s */,
                                           "/",
                                           "-",
                                           "=",
                                           "&",
                                           "?",
                                           ".",
                                           "$",
                                           "\\",
                                           "1",
                                           "\xC3\xA9",
                                           "\xFF" /* invalid UTF-8 */,
                                           "\x80"};
  std::mt19937 rng(7);
  RE2::Options opt;
  opt.set_log_errors(false);
  std::size_t literal = 0, matched = 0, unicode = 0;
  for (int n = 0; n < 4000; ++n) {
    std::string pattern = (rng() % 3 == 0 ? "(?i)" : "") + std::string(rng() % 3 == 0 ? "^" : "") +
                          random_alternatives(rng, 0) + (rng() % 3 == 0 ? "$" : "");
    const RE2 re(pattern, opt);
    if (!re.ok()) continue;
    std::string error;
    const Regex compiled = compile_regex(pattern, &error);
    ASSERT_TRUE(compiled) << pattern << ": " << error;
    if (!compiled.literals) continue;
    ++literal;
    for (int t = 0; t < 40; ++t) {
      std::string text;
      for (int m = static_cast<int>(rng() % 7); m > 0; --m) text += pieces[rng() % pieces.size()];
      const bool want = RE2::PartialMatch(text, re);
      ASSERT_EQ(compiled.search(text), want) << "pattern '" << pattern << "' text '" << text << "'";
      matched += want;
      unicode += compiled.literals->match(text) < 0;
    }
  }
  // Enough of each kind for the comparison to mean something.
  EXPECT_GT(literal, 1000u);
  EXPECT_GT(matched, 20000u);
  EXPECT_GT(unicode, 5000u);
}

}  // namespace
}  // namespace pc::policy::detail
