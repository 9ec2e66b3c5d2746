#include <charconv>

#include "base/strings.h"
#include "policy/policy_impl.h"

namespace pc::policy::detail {
namespace {

bool icontains(std::string_view hay, std::string_view needle) {
  if (needle.empty()) return true;
  if (needle.size() > hay.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    std::size_t j = 0;
    while (j < needle.size() && base::ascii_lower(hay[i + j]) == base::ascii_lower(needle[j])) ++j;
    if (j == needle.size()) return true;
  }
  return false;
}

bool valid_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
         c == ':';
}

// Lower-cases and checks a host name or address; strips one trailing dot.
bool normalise_host(std::string_view in, std::string& out, std::string* error) {
  out = base::to_lower(in);
  if (!out.empty() && out.back() == '.') out.pop_back();
  if (out.size() > 2 && out.front() == '[' && out.back() == ']')
    out = out.substr(1, out.size() - 2);
  if (out.empty()) {
    *error = "empty host name";
    return false;
  }
  for (char c : out) {
    if (!valid_host_char(c)) {
      *error = "invalid character in host name '" + std::string(in) + "'";
      return false;
    }
  }
  if (out.front() == '.' || out.find("..") != std::string::npos) {
    *error = "empty label in host name '" + std::string(in) + "'";
    return false;
  }
  return true;
}

RE2::Options re_options() {
  RE2::Options o;
  o.set_log_errors(false);
  return o;
}

}  // namespace

std::string_view cond_name(Cond c) {
  switch (c) {
    case Cond::content_type:
      return "content_type";
    case Cond::file_type:
      return "file_type";
    case Cond::domain:
      return "domain";
    case Cond::url:
      return "url";
    case Cond::category:
      return "category";
    case Cond::reputation:
      return "reputation";
    case Cond::header:
      return "header";
    case Cond::user:
      return "user";
    case Cond::group:
      return "group";
    case Cond::source:
      return "source";
    case Cond::guest:
      return "guest";
    case Cond::listener:
      return "listener";
    case Cond::method:
      return "method";
    case Cond::port:
      return "port";
    case Cond::schedule:
      return "schedule";
    case Cond::count:
      break;
  }
  return "";
}

std::unique_ptr<RE2> compile_re2(std::string_view pattern, std::string* error) {
  auto re = std::make_unique<RE2>(re2::StringPiece(pattern.data(), pattern.size()), re_options());
  if (!re->ok()) {
    *error = "bad regular expression '" + std::string(pattern) + "': " + re->error();
    return nullptr;
  }
  return re;
}

bool DomainSet::add(std::string_view text, Strings& strings, std::string* error) {
  std::string_view s = base::trim(text);
  Kind kind = Kind::subtree;
  if (s.starts_with('=')) {
    kind = Kind::exact;
    s.remove_prefix(1);
  } else if (s.starts_with("*.")) {
    kind = Kind::subonly;
    s.remove_prefix(2);
  } else if (s.starts_with('.')) {
    kind = Kind::subonly;
    s.remove_prefix(1);
  }
  if (s.find('/') != std::string_view::npos) {
    *error = "'" + std::string(text) + "' is not a domain (a URL belongs in a URL list)";
    return false;
  }
  std::string host;
  if (!normalise_host(s, host, error)) return false;
  auto idx = static_cast<std::uint32_t>(entries_.size());
  auto it = map_.find(host);
  if (it == map_.end()) it = map_.emplace(strings.add(std::move(host)), Slot{}).first;
  auto& slot = it->second.of[static_cast<int>(kind)];
  if (slot != kNone) return true;  // a repeated entry
  slot = idx;
  entries_.push_back(strings.add(std::string(base::trim(text))));
  return true;
}

std::string_view DomainSet::match(std::string_view host) const {
  if (host.empty() || map_.empty()) return {};
  if (auto it = map_.find(host); it != map_.end()) {
    const Slot& s = it->second;
    if (s.of[static_cast<int>(Kind::exact)] != kNone)
      return entries_[s.of[static_cast<int>(Kind::exact)]];
    if (s.of[static_cast<int>(Kind::subtree)] != kNone)
      return entries_[s.of[static_cast<int>(Kind::subtree)]];
  }
  for (std::size_t pos = host.find('.'); pos != std::string_view::npos;
       pos = host.find('.', pos + 1)) {
    auto it = map_.find(host.substr(pos + 1));
    if (it == map_.end()) continue;
    const Slot& s = it->second;
    if (s.of[static_cast<int>(Kind::subtree)] != kNone)
      return entries_[s.of[static_cast<int>(Kind::subtree)]];
    if (s.of[static_cast<int>(Kind::subonly)] != kNone)
      return entries_[s.of[static_cast<int>(Kind::subonly)]];
  }
  return {};
}

bool UrlSet::add(std::string_view text, Strings& strings, std::string* error) {
  std::string_view s = base::trim(text);
  Pattern p;
  p.text = strings.add(std::string(s));
  if (s.starts_with("re:")) {
    p.kind = Pattern::Kind::regex;
    p.re = compile_re2(s.substr(3), error);
    if (!p.re) return false;
  } else if (s.size() >= 2 && s.front() == '*' && s.back() == '*') {
    p.kind = Pattern::Kind::keyword;
    auto kw = s.substr(1, s.size() - 2);
    if (kw.empty() || kw.find('*') != std::string_view::npos) {
      *error = "bad keyword pattern '" + std::string(s) + "'";
      return false;
    }
    p.path = strings.add(std::string(kw));
  } else {
    if (s.starts_with('=')) {
      p.kind = Pattern::Kind::exact;
      s.remove_prefix(1);
    }
    if (s.find('*') != std::string_view::npos || s.find(' ') != std::string_view::npos) {
      *error = "bad URL pattern '" + std::string(text) +
               "' (wildcards only as *keyword*, regular expressions as re:...)";
      return false;
    }
    if (auto sep = s.find("://"); sep != std::string_view::npos) {
      std::string scheme = base::to_lower(s.substr(0, sep));
      if (scheme != "http" && scheme != "https") {
        *error = "URL pattern '" + std::string(text) + "': scheme must be http or https";
        return false;
      }
      p.scheme = scheme == "http" ? "http" : "https";
      s.remove_prefix(sep + 3);
    }
    auto slash = s.find('/');
    std::string_view authority = s.substr(0, slash);
    p.path = slash == std::string_view::npos ? std::string_view("/")
                                             : strings.add(std::string(s.substr(slash)));
    std::string_view host = authority;
    auto colon = authority.rfind(':');
    if (colon != std::string_view::npos &&
        (authority.front() != '[' || authority.find(']') < colon)) {
      host = authority.substr(0, colon);
      std::uint64_t port = 0;
      if (!base::parse_u64(authority.substr(colon + 1), port) || port == 0 || port > 65535) {
        *error = "URL pattern '" + std::string(text) + "': bad port";
        return false;
      }
      p.port = static_cast<std::uint16_t>(port);
    }
    std::string h;
    if (!normalise_host(host, h, error)) {
      *error = "URL pattern '" + std::string(text) + "': " + *error;
      return false;
    }
    p.host = strings.add(std::move(h));
  }
  auto idx = static_cast<std::uint32_t>(patterns_.size());
  if (p.kind == Pattern::Kind::prefix || p.kind == Pattern::Kind::exact)
    by_host_[p.host].push_back(idx);
  else
    scan_.push_back(idx);
  patterns_.push_back(std::move(p));
  return true;
}

std::string_view UrlSet::match(const Facts& f) const {
  if (!by_host_.empty()) {
    if (auto it = by_host_.find(f.host); it != by_host_.end()) {
      for (std::uint32_t i : it->second) {
        const Pattern& p = patterns_[i];
        if (!p.scheme.empty() && p.scheme != f.scheme) continue;
        if (p.port != 0 && p.port != f.port) continue;
        if (p.kind == Pattern::Kind::exact ? f.path == p.path : f.path.starts_with(p.path))
          return p.text;
      }
    }
  }
  for (std::uint32_t i : scan_) {
    const Pattern& p = patterns_[i];
    if (p.kind == Pattern::Kind::keyword) {
      if (icontains(f.url, p.path)) return p.text;
    } else if (RE2::PartialMatch(re2::StringPiece(f.url.data(), f.url.size()), *p.re)) {
      return p.text;
    }
  }
  return {};
}

bool CidrSet::add(std::string_view text, Strings& strings) {
  auto c = base::Cidr::parse(base::trim(text));
  if (!c) return false;
  nets_.emplace_back(*c, strings.add(std::string(base::trim(text))));
  return true;
}

std::string_view CidrSet::match(const base::IpBytes& ip) const {
  for (const auto& [net, text] : nets_)
    if (net.contains(ip)) return text;
  return {};
}

bool HeaderFilter::match(const wire::Head* head) const {
  if (!head) return false;
  for (const wire::Field& fld : head->fields) {
    if (!base::iequals(fld.name, header)) continue;
    switch (op) {
      case Op::contains:
        if (icontains(fld.value, value)) return true;
        break;
      case Op::equals:
        if (base::iequals(fld.value, value)) return true;
        break;
      case Op::regex:
        if (RE2::PartialMatch(re2::StringPiece(fld.value.data(), fld.value.size()), *re))
          return true;
        break;
      case Op::greater_than:
      case Op::less_than: {
        std::int64_t n = 0;
        auto v = base::trim(fld.value);
        auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (ec != std::errc() || ptr != v.data() + v.size()) break;
        if (op == Op::greater_than ? n > number : n < number) return true;
        break;
      }
    }
  }
  return false;
}

}  // namespace pc::policy::detail
