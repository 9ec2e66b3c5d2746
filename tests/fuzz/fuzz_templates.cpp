// Fuzzes administrator page templates (pages::Templates::load and render): fuzzed files are
// written into a scratch folder, loaded, and every page is rendered with hostile values.
// Invariants: load returns a set exactly when it reports no error, every error names a file,
// a loaded file is the source of its page, text without "{{" renders verbatim, and no value
// ever reaches the page unescaped (values are marked with 0xFE bytes, which are removed from
// the fuzzed template text, so every 0xFE in the output comes from a value).
//
// Input layout: byte 0 selects what is written (bits 0-4: the page, 20 slots of kind and
// language, 20..31 an invalid file name); byte 1 selects the values (bit 0: hostile or empty,
// bits 1-2: DNS failure kind, bit 3: a second file from the rest after a 0xFF byte). The rest
// is the template text.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "fuzz_scratch.h"
#include "pages/pages.h"

namespace fs = std::filesystem;
using namespace pc::pages;

namespace {

constexpr Kind kKinds[] = {
    Kind::rule_block,
    Kind::list_block,
    Kind::warn,
    Kind::threat,
    Kind::bad_request,
    Kind::dns_failure,
    Kind::upstream_unreachable,
    Kind::upstream_timeout,
    Kind::gateway_info,
    Kind::cert_error,
};
constexpr Lang kLangs[] = {Lang::en, Lang::ja};
constexpr char kMark = '\xfe';

const fs::path& scratch() {
  return pc::fuzz::scratch_dir("pc-fuzz-templates");
}

std::string file_name(unsigned selector) {
  selector %= 32;
  if (selector < 20)
    return std::string(to_string(kKinds[selector / 2])) + "." +
           std::string(to_string(kLangs[selector % 2])) + ".html";
  static const char* const kBad[] = {
      "rule_block.fr.html", "nope.en.html", "warn.html",        "warn.en.ja.html",
      ".en.html",           "warn..html",   "WARN.en.html",     "warn.EN.html",
      "threat.ja.HTML",     "x.html",       "warn.en.html.bak", "warn.en.htm",
  };
  return kBad[selector - 20];
}

bool valid_name(const std::string& name) {
  for (Kind k : kKinds)
    for (Lang l : kLangs)
      if (name == std::string(to_string(k)) + "." + std::string(to_string(l)) + ".html")
        return true;
  return false;
}

void write(const fs::path& p, std::string_view text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!out) std::abort();
}

std::string without_mark(std::string_view s) {
  std::string r;
  r.reserve(s.size());
  for (char c : s) r += c == kMark ? '?' : c;
  return r;
}

std::string escaped(std::string_view s) {
  return html_escape(s);
}

Vars hostile(unsigned dns) {
  Vars v;
  auto val = [](std::string_view name) {
    return std::string(1, kMark) + std::string(name) + "<script>alert('x\")</script>&amp;" +
           std::string(1, kMark);
  };
  v.url = val("url");
  v.host = val("host");
  v.category = val("category");
  v.rule = val("rule");
  v.reason = val("reason");
  v.user = val("user");
  v.time = val("time");
  v.request_id = val("request_id");
  v.gateway = val("gateway");
  v.threat = val("threat");
  // Links: a web URL with markup characters (kept, escaped) and a script URL (dropped).
  v.continue_url = std::string("http://gw.example/c?") + kMark + "a=\"><svg onload=x>&b='" + kMark;
  v.back_url = std::string("javascript:") + kMark + "alert(1)" + kMark;
  v.dns = static_cast<DnsError>(dns % 3);
  return v;
}

// Every 0xFE-delimited value in the output is the escaped form of a value that may be shown.
void check_values_escaped(const std::string& html, const Vars& v) {
  std::vector<std::string> allowed;
  for (const std::string* s : {&v.url, &v.host, &v.category, &v.rule, &v.reason, &v.user, &v.time,
                               &v.request_id, &v.gateway, &v.threat, &v.continue_url}) {
    std::string e = escaped(*s);
    // The marks delimit the value; what lies between them must be the escaped text.
    auto a = e.find(kMark);
    auto b = e.rfind(kMark);
    if (a != std::string::npos && b > a) allowed.push_back(e.substr(a, b - a + 1));
  }
  std::size_t pos = 0;
  while ((pos = html.find(kMark, pos)) != std::string::npos) {
    auto end = html.find(kMark, pos + 1);
    FUZZ_CHECK(end != std::string::npos);  // marks come in pairs
    std::string_view got(html.data() + pos, end - pos + 1);
    bool ok = false;
    for (const auto& a : allowed) ok = ok || got == a;
    if (!ok) {
      std::fprintf(stderr, "unescaped or unexpected value: %.*s\n", static_cast<int>(got.size()),
                   got.data());
    }
    FUZZ_CHECK(ok);
    // And nothing raw slipped through between the marks.
    FUZZ_CHECK(got.find('<') == std::string_view::npos);
    FUZZ_CHECK(got.find('"') == std::string_view::npos);
    FUZZ_CHECK(got.find('\'') == std::string_view::npos);
    pos = end + 1;
  }
  // back_url (a script URL here) is not in `allowed`: had it been kept, its marked body would
  // have failed the check above.
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const unsigned selector = data[0];
  const unsigned flags = data[1];
  std::string_view body(reinterpret_cast<const char*>(data) + 2, size - 2);
  std::string_view second;
  bool two = (flags & 8) != 0;
  if (two) {
    auto cut = body.find('\xff');
    if (cut != std::string_view::npos) {
      second = body.substr(cut + 1);
      body = body.substr(0, cut);
    } else {
      two = false;
    }
  }

  const fs::path& dir = scratch();
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) fs::remove(e.path(), ec);

  std::vector<std::pair<std::string, std::string>> files;
  files.emplace_back(file_name(selector), without_mark(body));
  if (two) {
    std::string n2 = file_name(selector + 1 + (flags >> 4));
    if (n2 == files[0].first)
      two = false;
    else
      files.emplace_back(n2, without_mark(second));
  }
  for (const auto& [name, text] : files) write(dir / name, text);
  // A file not ending in .html is ignored.
  if ((flags & 16) != 0) write(dir / "README.txt", "{{nonsense");

  std::vector<std::string> errors;
  auto t = Templates::load(dir, errors);
  FUZZ_CHECK((t == nullptr) == !errors.empty());
  for (const auto& e : errors) {
    bool names_a_file = false;
    for (const auto& [name, text] : files) names_a_file = names_a_file || e.find(name) != e.npos;
    FUZZ_CHECK(names_a_file);
  }
  // Names not ending in ".html" are ignored; other unknown .html names are errors.
  bool all_valid = true;
  for (const auto& [name, text] : files)
    all_valid = all_valid && (valid_name(name) || !name.ends_with(".html"));
  if (!all_valid) FUZZ_CHECK(t == nullptr);
  if (!t) return 0;

  Vars evil = hostile(flags >> 1);
  Vars empty;
  empty.dns = evil.dns;
  for (std::size_t ki = 0; ki < std::size(kKinds); ++ki) {
    for (std::size_t li = 0; li < std::size(kLangs); ++li) {
      const Kind k = kKinds[ki];
      const Lang l = kLangs[li];
      std::string expected_source = "built-in";
      const std::string* text = nullptr;
      for (const auto& [name, content] : files) {
        if (name == std::string(to_string(k)) + "." + std::string(to_string(l)) + ".html") {
          expected_source = (dir / name).string();
          text = &content;
        }
      }
      FUZZ_CHECK(t->source(k, l) == expected_source);
      // Only the fuzzed pages and one built-in page per input (the built-ins are tested).
      if (!text && ki != selector % std::size(kKinds)) continue;
      const std::string html = t->render(k, l, (flags & 1) ? evil : empty);
      check_values_escaped(html, (flags & 1) ? evil : empty);
      if (text) {
        if (text->find("{{") == std::string::npos) FUZZ_CHECK(html == *text);
        // Rendering never adds more than the values: with every value empty and no sections
        // kept, the output is at most the template text plus the fallbacks and status.
        if ((flags & 1) == 0) FUZZ_CHECK(html.size() <= text->size() * 13 + 64);
      }
    }
  }
  return 0;
}
