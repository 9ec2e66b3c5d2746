#include "pages/pages.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <ctime>
#include <fstream>
#include <system_error>

#include "base/log.h"
#include "base/strings.h"
#include "pages/builtin.h"

namespace pc::pages {

namespace {

constexpr std::array<std::string_view, kind_count> kKindNames = {
    "rule_block",
    "list_block",
    "warn",
    "threat",
    "bad_request",
    "dns_failure",
    "upstream_unreachable",
    "upstream_timeout",
    "gateway_info",
    "cert_error",
};
constexpr std::array<std::string_view, lang_count> kLangNames = {"en", "ja"};

// Placeholders. The last three are conditions, usable only as sections.
enum class Var : std::uint8_t {
  url,
  host,
  category,
  rule,
  reason,
  user,
  time,
  request_id,
  gateway,
  threat,
  continue_url,
  back_url,
  status,
  dns_not_found,
  dns_refused,
  dns_timeout,
};
constexpr std::size_t kVarCount = 16;
constexpr std::size_t kFirstCondition = static_cast<std::size_t>(Var::dns_not_found);
constexpr std::array<std::string_view, kVarCount> kVarNames = {
    "url",    "host",          "category",    "rule",        "reason",       "user",
    "time",   "request_id",    "gateway",     "threat",      "continue_url", "back_url",
    "status", "dns_not_found", "dns_refused", "dns_timeout",
};

std::optional<Var> var_from_string(std::string_view s) {
  for (std::size_t i = 0; i < kVarCount; ++i)
    if (kVarNames[i] == s) return static_cast<Var>(i);
  return std::nullopt;
}

// A compiled template: the source text and a flat list of operations over it.
struct Op {
  enum class Type : std::uint8_t { text, var, section, end };
  Type type = Type::text;
  Var var = Var::url;
  std::uint32_t pos = 0;  // text: offset into the source
  std::uint32_t len = 0;  // text: length; section: index of its matching end
};

struct Compiled {
  std::string text;
  std::vector<Op> ops;
  std::string source;  // file path or "built-in"
};

constexpr std::size_t kMaxTemplateSize = 1024 * 1024;

// Compiles text; on failure appends "name:line: message" errors and returns false.
bool compile(std::string text, std::string name, Compiled& out, std::vector<std::string>& errors) {
  if (text.size() > kMaxTemplateSize) {
    errors.push_back(fmt::format("{}: template larger than {} bytes", name, kMaxTemplateSize));
    return false;
  }
  std::vector<Op> ops;
  std::vector<std::pair<std::size_t, Var>> open;  // open sections: op index, variable
  bool ok = true;
  auto line_of = [&](std::size_t pos) {
    std::size_t line = 1;
    for (std::size_t i = 0; i < pos && i < text.size(); ++i)
      if (text[i] == '\n') ++line;
    return line;
  };
  auto fail = [&](std::size_t pos, std::string msg) {
    errors.push_back(fmt::format("{}:{}: {}", name, line_of(pos), msg));
    ok = false;
  };
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t open_at = text.find("{{", pos);
    std::size_t lit_end = open_at == std::string::npos ? text.size() : open_at;
    if (lit_end > pos)
      ops.push_back({Op::Type::text, Var::url, static_cast<std::uint32_t>(pos),
                     static_cast<std::uint32_t>(lit_end - pos)});
    if (open_at == std::string::npos) break;
    std::size_t close_at = text.find("}}", open_at + 2);
    if (close_at == std::string::npos) {
      fail(open_at, "unterminated \"{{\"");
      break;
    }
    std::string_view inner =
        base::trim(std::string_view(text).substr(open_at + 2, close_at - open_at - 2));
    pos = close_at + 2;
    char sigil = inner.empty() ? '\0' : inner.front();
    if (sigil == '#' || sigil == '/') inner = base::trim(inner.substr(1));
    auto v = var_from_string(inner);
    if (!v) {
      fail(open_at,
           fmt::format("unknown placeholder \"{{{{{}}}}}\"",
                       std::string_view(text).substr(open_at + 2, close_at - open_at - 2)));
      continue;
    }
    if (sigil == '#') {
      open.emplace_back(ops.size(), *v);
      ops.push_back({Op::Type::section, *v, 0, 0});
    } else if (sigil == '/') {
      if (open.empty() || open.back().second != *v) {
        fail(open_at, fmt::format("\"{{{{/{}}}}}\" closes no open section", inner));
        continue;
      }
      ops[open.back().first].len = static_cast<std::uint32_t>(ops.size());
      open.pop_back();
      ops.push_back({Op::Type::end, *v, 0, 0});
    } else {
      if (static_cast<std::size_t>(*v) >= kFirstCondition) {
        fail(open_at, fmt::format("\"{}\" is a condition: use it as {{{{#{}}}}}...{{{{/{}}}}}",
                                  inner, inner, inner));
        continue;
      }
      ops.push_back({Op::Type::var, *v, 0, 0});
    }
  }
  for (const auto& [index, v] : open) {
    (void)index;
    errors.push_back(fmt::format("{}: section \"{{{{#{}}}}}\" is never closed", name,
                                 kVarNames[static_cast<std::size_t>(v)]));
    ok = false;
  }
  if (!ok) return false;
  out.text = std::move(text);
  out.ops = std::move(ops);
  out.source = std::move(name);
  return true;
}

void append_escaped(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
}

// An absolute http or https URL with no whitespace or control characters.
bool is_web_url(std::string_view u) {
  bool web = (u.size() > 7 && base::iequals(u.substr(0, 7), "http://")) ||
             (u.size() > 8 && base::iequals(u.substr(0, 8), "https://"));
  if (!web) return false;
  for (char c : u) {
    auto b = static_cast<unsigned char>(c);
    if (b <= 0x20 || b == 0x7f) return false;
  }
  return true;
}

std::size_t slot(Kind k, Lang l) {
  return static_cast<std::size_t>(k) * lang_count + static_cast<std::size_t>(l);
}

// Used only if a built-in template were missing or broken (the unit tests make sure none is).
constexpr std::string_view kFallback =
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{{status}}</title></head>"
    "<body><h1>{{status}}</h1><p><code>{{url}}</code></p><p>{{reason}}</p>"
    "<p>Request ID: <code>{{request_id}}</code></p></body></html>\n";

}  // namespace

struct Templates::Impl {
  std::array<Compiled, kind_count * lang_count> pages;
};

Templates::Templates() : impl_(std::make_unique<Impl>()) {}
Templates::~Templates() = default;

std::shared_ptr<const Templates> Templates::builtin() {
  static const std::shared_ptr<const Templates> instance = [] {
    std::shared_ptr<Templates> t(new Templates());
    std::array<bool, kind_count * lang_count> have{};
    for (std::size_t i = 0; i < detail::kBuiltinTemplateCount; ++i) {
      const auto& b = detail::kBuiltinTemplates[i];
      std::string_view stem = b.name.substr(0, b.name.size() - 5);  // without ".html"
      auto dot = stem.find('.');
      auto k = kind_from_string(stem.substr(0, dot));
      auto l =
          dot == std::string_view::npos ? std::nullopt : lang_from_string(stem.substr(dot + 1));
      if (!k || !l) continue;
      std::vector<std::string> errors;
      if (compile(std::string(b.text), "built-in", t->impl_->pages[slot(*k, *l)], errors))
        have[slot(*k, *l)] = true;
      for (const auto& e : errors) log::error("built-in page template {}: {}", b.name, e);
    }
    for (std::size_t i = 0; i < have.size(); ++i) {
      if (have[i]) continue;
      std::vector<std::string> errors;
      compile(std::string(kFallback), "built-in", t->impl_->pages[i], errors);
    }
    return std::shared_ptr<const Templates>(std::move(t));
  }();
  return instance;
}

std::shared_ptr<const Templates> Templates::load(const std::filesystem::path& dir,
                                                 std::vector<std::string>& errors) {
  auto base_set = builtin();
  if (dir.empty()) return base_set;
  std::shared_ptr<Templates> t(new Templates());
  t->impl_->pages = base_set->impl_->pages;
  std::size_t errors_before = errors.size();

  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) {
    errors.push_back(
        fmt::format("{}: cannot read the page template folder: {}", dir.string(), ec.message()));
    return nullptr;
  }
  // Sorted, so errors come in a stable order.
  std::vector<std::filesystem::path> files;
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (it->path().filename().string().ends_with(".html")) files.push_back(it->path());
  }
  if (ec) {
    errors.push_back(
        fmt::format("{}: cannot read the page template folder: {}", dir.string(), ec.message()));
    return nullptr;
  }
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    std::string file_name = path.filename().string();
    std::error_code sec;
    if (std::filesystem::is_directory(path, sec)) continue;
    if (!std::filesystem::is_regular_file(path, sec)) {
      errors.push_back(fmt::format("{}: not a regular file", path.string()));
      continue;
    }
    std::string stem = file_name.substr(0, file_name.size() - 5);
    auto dot = stem.find('.');
    std::optional<Kind> k;
    std::optional<Lang> l;
    if (dot != std::string::npos) {
      k = kind_from_string(std::string_view(stem).substr(0, dot));
      l = lang_from_string(std::string_view(stem).substr(dot + 1));
    }
    if (!k || !l) {
      errors.push_back(fmt::format(
          "{}: not a page template name (expected <kind>.<lang>.html, kind one of rule_block, "
          "list_block, warn, threat, bad_request, dns_failure, upstream_unreachable, "
          "upstream_timeout, gateway_info, cert_error; lang en or ja)",
          path.string()));
      continue;
    }
    auto size = std::filesystem::file_size(path, sec);
    if (sec) {
      errors.push_back(fmt::format("{}: {}", path.string(), sec.message()));
      continue;
    }
    if (size > kMaxTemplateSize) {
      errors.push_back(
          fmt::format("{}: template larger than {} bytes", path.string(), kMaxTemplateSize));
      continue;
    }
    std::ifstream in(path, std::ios::binary);
    std::string text(static_cast<std::size_t>(size), '\0');
    if (!in || !in.read(text.data(), static_cast<std::streamsize>(text.size()))) {
      errors.push_back(fmt::format("{}: cannot read the file", path.string()));
      continue;
    }
    compile(std::move(text), path.string(), t->impl_->pages[slot(*k, *l)], errors);
  }
  if (errors.size() != errors_before) return nullptr;
  return std::shared_ptr<const Templates>(std::move(t));
}

std::string Templates::render(Kind k, Lang l, const Vars& v) const {
  const Compiled& c = impl_->pages[slot(k, l)];
  std::string status = std::to_string(v.status != 0 ? v.status : status_for(k, v.dns));
  std::array<std::string_view, kVarCount> values = {
      v.url,
      v.host,
      v.category,
      v.rule,
      v.reason,
      v.user,
      v.time,
      v.request_id,
      v.gateway,
      v.threat,
      is_web_url(v.continue_url) ? std::string_view(v.continue_url) : std::string_view("#"),
      is_web_url(v.back_url) ? std::string_view(v.back_url)
                             : std::string_view("javascript:history.back()"),
      status,
      k == Kind::dns_failure && v.dns == DnsError::not_found ? "1" : "",
      k == Kind::dns_failure && v.dns == DnsError::refused ? "1" : "",
      k == Kind::dns_failure && v.dns == DnsError::timeout ? "1" : "",
  };
  std::string out;
  out.reserve(c.text.size() + 512);
  std::string_view text(c.text);
  for (std::size_t i = 0; i < c.ops.size(); ++i) {
    const Op& op = c.ops[i];
    switch (op.type) {
      case Op::Type::text:
        out.append(text.substr(op.pos, op.len));
        break;
      case Op::Type::var:
        append_escaped(out, values[static_cast<std::size_t>(op.var)]);
        break;
      case Op::Type::section:
        if (values[static_cast<std::size_t>(op.var)].empty()) i = op.len;
        break;
      case Op::Type::end:
        break;
    }
  }
  return out;
}

std::string Templates::source(Kind k, Lang l) const {
  return impl_->pages[slot(k, l)].source;
}

std::string_view to_string(Kind k) {
  auto i = static_cast<std::size_t>(k);
  return i < kind_count ? kKindNames[i] : std::string_view("unknown");
}

std::string_view to_string(Lang l) {
  auto i = static_cast<std::size_t>(l);
  return i < lang_count ? kLangNames[i] : std::string_view("en");
}

std::optional<Kind> kind_from_string(std::string_view s) {
  for (std::size_t i = 0; i < kind_count; ++i)
    if (kKindNames[i] == s) return static_cast<Kind>(i);
  return std::nullopt;
}

std::optional<Lang> lang_from_string(std::string_view s) {
  for (std::size_t i = 0; i < lang_count; ++i)
    if (kLangNames[i] == s) return static_cast<Lang>(i);
  return std::nullopt;
}

int status_for(Kind k, DnsError dns) {
  switch (k) {
    case Kind::rule_block:
    case Kind::list_block:
    case Kind::warn:
    case Kind::threat:
      return 403;
    case Kind::bad_request:
      return 400;
    case Kind::dns_failure:
      return dns == DnsError::timeout ? 504 : 502;
    case Kind::upstream_unreachable:
    case Kind::cert_error:
      return 502;
    case Kind::upstream_timeout:
      return 504;
    case Kind::gateway_info:
      return 200;
  }
  return 500;
}

namespace {

// Parses a qvalue ("0", "0.5", "1", "1.000") into thousandths; false when malformed.
bool parse_qvalue(std::string_view s, int& out) {
  if (s.empty() || (s[0] != '0' && s[0] != '1')) return false;
  int whole = s[0] - '0';
  int frac = 0;
  if (s.size() > 1) {
    if (s[1] != '.' || s.size() > 5) return false;
    int scale = 100;
    for (std::size_t i = 2; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      frac += (s[i] - '0') * scale;
      scale /= 10;
    }
  }
  if (whole == 1 && frac != 0) return false;
  out = whole * 1000 + frac;
  return true;
}

bool is_range_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

}  // namespace

Lang negotiate(std::string_view accept_language) {
  // For each language: the q of an exact range ("ja"), else the best of its longer ranges
  // ("ja-JP"), else that of "*". -1 means not named. Positions break ties.
  struct Score {
    int exact = -1, exact_pos = 0;
    int prefixed = -1, prefixed_pos = 0;
  };
  std::array<Score, lang_count> scores{};
  int wildcard = -1, wildcard_pos = 0;
  if (accept_language.size() > 4096) accept_language = accept_language.substr(0, 4096);
  int position = 0;
  base::for_each_list_item(accept_language, [&](std::string_view item) {
    ++position;
    std::string_view range = base::trim(item.substr(0, item.find(';')));
    int q = 1000;
    if (auto semi = item.find(';'); semi != std::string_view::npos) {
      std::string_view params = item.substr(semi + 1);
      bool valid = true;
      while (true) {
        auto next = params.find(';');
        std::string_view p = base::trim(params.substr(0, next));
        auto eq = p.find('=');
        if (eq != std::string_view::npos && base::iequals(base::trim(p.substr(0, eq)), "q")) {
          if (!parse_qvalue(base::trim(p.substr(eq + 1)), q)) valid = false;
        }
        if (next == std::string_view::npos) break;
        params.remove_prefix(next + 1);
      }
      if (!valid) return;
    }
    if (range.empty()) return;
    if (range == "*") {
      if (wildcard < 0) {
        wildcard = q;
        wildcard_pos = position;
      }
      return;
    }
    for (char c : range)
      if (!is_range_char(c)) return;
    std::string_view primary = range.substr(0, range.find('-'));
    auto lang = lang_from_string(base::to_lower(primary));
    if (!lang) return;
    Score& s = scores[static_cast<std::size_t>(*lang)];
    if (primary.size() == range.size()) {
      if (s.exact < 0) {
        s.exact = q;
        s.exact_pos = position;
      }
    } else if (q > s.prefixed) {
      s.prefixed = q;
      s.prefixed_pos = position;
    }
  });
  Lang best = Lang::en;
  int best_q = 0, best_pos = 0;
  for (std::size_t i = 0; i < lang_count; ++i) {
    const Score& s = scores[i];
    int q = s.exact >= 0 ? s.exact : s.prefixed >= 0 ? s.prefixed : wildcard;
    int pos = s.exact >= 0 ? s.exact_pos : s.prefixed >= 0 ? s.prefixed_pos : wildcard_pos;
    if (q > best_q || (q == best_q && q > 0 && pos < best_pos)) {
      best = static_cast<Lang>(i);
      best_q = q;
      best_pos = pos;
    }
  }
  return best;
}

std::string format_time(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return std::string(buf, n);
}

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  append_escaped(out, s);
  return out;
}

}  // namespace pc::pages
