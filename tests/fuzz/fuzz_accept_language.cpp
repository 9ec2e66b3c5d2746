// Fuzzes Accept-Language negotiation (pages::negotiate) against an independent reference
// written from the documented rules, plus metamorphic properties.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "pages/pages.h"

using pc::pages::Lang;
using pc::pages::negotiate;

namespace {

std::string_view ows_trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}

// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths; -1 if malformed.
int qvalue(std::string_view s) {
  if (s.empty() || (s[0] != '0' && s[0] != '1')) return -1;
  if (s.size() == 1) return s[0] == '1' ? 1000 : 0;
  if (s[1] != '.' || s.size() > 5) return -1;
  int frac = 0;
  int scale = 100;
  for (char c : s.substr(2)) {
    if (c < '0' || c > '9') return -1;
    frac += (c - '0') * scale;
    scale /= 10;
  }
  if (s[0] == '1') return frac == 0 ? 1000 : -1;
  return frac;
}

// The documented behaviour, written independently: the q of an exact range, else the best q
// of the language's longer ranges ("ja-JP"), else that of "*"; the highest q above 0 wins,
// ties go to the range that came first, nothing acceptable gives English. Items with a
// malformed q or an invalid range are ignored. Only the first 4096 bytes are read.
Lang reference(std::string_view v) {
  if (v.size() > 4096) v = v.substr(0, 4096);
  struct Best {
    int q = -1;
    int pos = 0;
  };
  std::array<Best, 2> exact{}, longer{};
  Best star;
  int pos = 0;
  std::size_t start = 0;
  while (start <= v.size()) {
    std::size_t comma = v.find(',', start);
    std::size_t stop = comma == std::string_view::npos ? v.size() : comma;
    std::string_view item = ows_trim(v.substr(start, stop - start));
    start = stop + 1;
    if (item.empty()) {
      if (comma == std::string_view::npos) break;
      continue;
    }
    ++pos;
    std::size_t semi = item.find(';');
    std::string_view range = ows_trim(item.substr(0, semi));
    int q = 1000;
    bool ok = true;
    while (semi != std::string_view::npos) {
      std::size_t next = item.find(';', semi + 1);
      std::string_view param = ows_trim(item.substr(
          semi + 1, next == std::string_view::npos ? std::string_view::npos : next - semi - 1));
      std::size_t eq = param.find('=');
      if (eq != std::string_view::npos) {
        std::string_view name = ows_trim(param.substr(0, eq));
        if (name.size() == 1 && lower(name[0]) == 'q') {
          int parsed = qvalue(ows_trim(param.substr(eq + 1)));
          if (parsed < 0)
            ok = false;
          else
            q = parsed;
        }
      }
      semi = next;
    }
    if (!ok || range.empty()) {
      if (comma == std::string_view::npos) break;
      continue;
    }
    if (range == "*") {
      if (star.q < 0) star = {q, pos};
    } else {
      bool valid = true;
      for (char c : range)
        valid = valid && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '-');
      std::string primary;
      for (char c : range.substr(0, range.find('-'))) primary += lower(c);
      int lang = primary == "en" ? 0 : primary == "ja" ? 1 : -1;
      if (valid && lang >= 0) {
        if (range.size() == primary.size()) {
          if (exact[lang].q < 0) exact[lang] = {q, pos};
        } else if (q > longer[lang].q) {
          longer[lang] = {q, pos};
        }
      }
    }
    if (comma == std::string_view::npos) break;
  }
  Best score[2];
  for (int l = 0; l < 2; ++l)
    score[l] = exact[l].q >= 0 ? exact[l] : longer[l].q >= 0 ? longer[l] : star;
  if (score[0].q <= 0 && score[1].q <= 0) return Lang::en;
  if (score[1].q > score[0].q) return Lang::ja;
  if (score[0].q > score[1].q) return Lang::en;
  return score[1].pos < score[0].pos ? Lang::ja : Lang::en;
}

bool is_lang(Lang l) {
  return l == Lang::en || l == Lang::ja;
}

bool icontains(std::string_view hay, std::string_view needle) {
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    std::size_t j = 0;
    while (j < needle.size() && lower(hay[i + j]) == lower(needle[j])) ++j;
    if (j == needle.size()) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const Lang got = negotiate(in);
  FUZZ_CHECK(is_lang(got));
  FUZZ_CHECK(negotiate(in) == got);  // pure
  FUZZ_CHECK(got == reference(in));

  // Japanese only when something named it: "ja..." or the wildcard.
  if (got == Lang::ja) FUZZ_CHECK(icontains(in, "ja") || in.find('*') != std::string_view::npos);

  if (size > 4096) {
    FUZZ_CHECK(negotiate(in.substr(0, 4096)) == got);
    return 0;
  }
  // ASCII case does not matter (ranges, "q", qvalues have no letters).
  std::string upper(in);
  for (char& c : upper)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
  FUZZ_CHECK(negotiate(upper) == got);

  if (size <= 4000) {
    const std::string base(in);
    // Ranges that name neither language, and a q=0 wildcard, appended at the end change
    // nothing (a wildcard named earlier wins; unnamed languages stay unacceptable).
    FUZZ_CHECK(negotiate(base + ",fr-CA;q=0.9,de") == got);
    FUZZ_CHECK(negotiate(base + ",*;q=0") == got);
    // Optional whitespace around the separators changes nothing.
    std::string spaced;
    for (char c : base) {
      if (c == ',' || c == ';') {
        spaced += ' ';
        spaced += c;
        spaced += '\t';
      } else {
        spaced += c;
      }
    }
    if (spaced.size() <= 4096) FUZZ_CHECK(negotiate(spaced) == got);
    // A leading exact range with q=1 for a language decides (ties go to the first range).
    FUZZ_CHECK(negotiate("ja," + base) == Lang::ja);
    FUZZ_CHECK(negotiate("en," + base) == Lang::en);
  }
  return 0;
}
