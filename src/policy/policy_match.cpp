#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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
  if (out.size() > 253) {
    *error = "host name longer than 253 bytes: '" + std::string(in.substr(0, 64)) + "...'";
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

// Whether needle occurs in hay (exact bytes). Short texts (URLs, header values): candidate
// positions are those where the first and the last byte of needle match, 16 at a time.
bool contains(std::string_view hay, std::string_view needle) {
  const std::size_t n = hay.size(), m = needle.size();
  if (m == 0) return true;
  if (m > n) return false;
  const char* h = hay.data();
  const char* s = needle.data();
  if (m == 1) return std::memchr(h, s[0], n) != nullptr;
  const std::size_t starts = n - m + 1;
  std::size_t i = 0;
#ifdef __SSE2__
  if (starts >= 16) {
    const __m128i first = _mm_set1_epi8(s[0]), last = _mm_set1_epi8(s[m - 1]);
    // Blocks of 16 starts; the last block overlaps the one before (skip = starts seen).
    for (std::size_t skip = 0;; i += 16) {
      if (i + 16 > starts) {
        skip = i - (starts - 16);
        i = starts - 16;
      }
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i + m - 1));
      auto mask = static_cast<unsigned>(
          _mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, first), _mm_cmpeq_epi8(b, last))));
      mask &= ~((1U << skip) - 1);
      for (; mask; mask &= mask - 1) {
        const std::size_t at = i + static_cast<unsigned>(__builtin_ctz(mask));
        if (std::memcmp(h + at + 1, s + 1, m - 2) == 0) return true;
      }
      if (i + 16 >= starts) return false;
    }
  }
#endif
  for (; i < starts; ++i)
    if (h[i] == s[0] && h[i + m - 1] == s[m - 1] && std::memcmp(h + i + 1, s + 1, m - 2) == 0)
      return true;
  return false;
}

// Whether field i of the decision's request head may match re: whether it holds one of the
// literals re's matches need (ASCII case-insensitively); true when unknown (no literal known,
// a byte above 0x7F, or a value too long to lower-case).
bool field_may_match(const Regex& re, Ctx& ctx, std::size_t i) {
  if (re.needs.empty()) return true;
  bool ascii = false;
  const std::string_view v = ctx.lower_field(i, &ascii);
  if (!v.data() || !ascii) return true;
  for (const auto& atom : re.needs)
    if (contains(v, atom)) return true;
  return false;
}

// literal_form()'s parser: each part of the pattern gives the set of strings it matches,
// sequences their products.
class LiteralParser {
 public:
  static constexpr std::size_t kMaxTexts = 32, kMaxLength = 1024;
  static constexpr int kMaxDepth = 8;  // groups in groups
  using Texts = std::vector<std::string>;

  explicit LiteralParser(std::string_view p) : p_(p) {}
  // The alternatives up to ')' or the end; *branches: how many.
  bool alternatives(Texts& out, int* branches) {
    *branches = 0;
    out.clear();
    for (;;) {
      Texts one;
      if (!sequence(one)) return false;
      out.insert(out.end(), one.begin(), one.end());
      ++*branches;
      if (out.size() > kMaxTexts) return false;
      if (at_end() || p_[i_] != '|') return true;
      ++i_;
    }
  }
  bool at_end() const { return i_ == p_.size(); }
  bool take(char c) {
    if (at_end() || p_[i_] != c) return false;
    ++i_;
    return true;
  }

 private:
  bool sequence(Texts& out) {
    out.assign(1, std::string());
    while (!at_end() && p_[i_] != '|' && p_[i_] != ')') {
      Texts part;
      if (!atom(part)) return false;
      if (take('?')) {
        if (!at_end() && (p_[i_] == '?' || p_[i_] == '+')) return false;
        part.emplace_back();
      }
      Texts product;
      if (out.size() * part.size() > kMaxTexts) return false;
      for (const auto& a : out)
        for (const auto& b : part) {
          if (a.size() + b.size() > kMaxLength) return false;
          product.push_back(a + b);
        }
      out = std::move(product);
    }
    return true;
  }
  // A literal character: printable ASCII that is not an operator, or escaped punctuation.
  bool literal(bool in_class, char* c) {
    if (at_end()) return false;
    const char x = p_[i_++];
    if (x == '\\') {
      if (at_end()) return false;
      const char e = p_[i_++];
      *c = e;
      return std::ispunct(static_cast<unsigned char>(e)) != 0;
    }
    *c = x;
    if (x < 0x20 || x > 0x7e) return false;
    const std::string_view ops = in_class ? "[]^-" : ".*+?()[]{}|^$";
    return ops.find(x) == std::string_view::npos;
  }
  bool atom(Texts& out) {
    if (take('(')) {
      if (take('?') && !take(':')) return false;  // flags, names and the like
      if (++depth_ > kMaxDepth) return false;
      int branches = 0;
      const bool ok = alternatives(out, &branches) && take(')');
      --depth_;
      return ok;
    }
    if (take('[')) {
      std::string chars;
      do {
        char c = 0;
        if (!literal(true, &c)) return false;
        if (chars.find(c) == std::string::npos) chars += c;
      } while (!take(']'));
      for (char c : chars) out.emplace_back(1, c);
      return true;
    }
    char c = 0;
    if (!literal(false, &c)) return false;
    out.emplace_back(1, c);
    return true;
  }

  std::string_view p_;
  std::size_t i_ = 0;
  int depth_ = 0;
};

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

Regex compile_regex(std::string_view pattern, std::string* error, std::string_view given) {
  Regex r;
  r.re = std::make_unique<RE2>(re2::StringPiece(pattern.data(), pattern.size()), re_options());
  if (!r.re->ok()) {
    *error = "bad regular expression '" + std::string(pattern) + "': " + r.re->error();
    r.re.reset();
    return r;
  }
  if (auto atoms = required_atoms({pattern}, re_options(), given)) r.needs = std::move(*atoms);
  r.literals = literal_form(pattern);
  return r;
}

std::optional<Literals> literal_form(std::string_view pattern) {
  Literals out;
  if (pattern.starts_with("(?i)")) {
    out.icase = true;
    pattern.remove_prefix(4);
  }
  if (pattern.starts_with('^')) {
    out.at_start = true;
    pattern.remove_prefix(1);
  }
  if (pattern.ends_with('$')) {  // unless escaped (an odd number of backslashes before it)
    std::size_t slashes = 0;
    while (slashes + 1 < pattern.size() && pattern[pattern.size() - 2 - slashes] == '\\') ++slashes;
    if (slashes % 2 == 0) {
      out.at_end = true;
      pattern.remove_suffix(1);
    }
  }
  LiteralParser parser(pattern);
  int branches = 0;
  if (!parser.alternatives(out.texts, &branches) || !parser.at_end()) return std::nullopt;
  if (branches > 1 && (out.at_start || out.at_end)) return std::nullopt;  // "^a|b$"
  if (out.icase)
    for (auto& t : out.texts) t = base::to_lower(t);
  return out;
}

int Literals::match(std::string_view text) const {
  if (icase) {
    unsigned char bytes = 0;
    for (char c : text) bytes |= static_cast<unsigned char>(c);
    if (bytes & 0x80) return -1;
  }
  auto equal = [&](std::string_view a, std::string_view b) {
    return icase ? base::iequals(a, b) : a == b;
  };
  for (const auto& t : texts) {
    if (t.size() > text.size()) continue;
    bool hit;
    if (at_start && at_end)
      hit = equal(text, t);
    else if (at_start)
      hit = equal(text.substr(0, t.size()), t);
    else if (at_end)
      hit = equal(text.substr(text.size() - t.size()), t);
    else
      hit = icase ? icontains(text, t) : text.find(t) != std::string_view::npos;
    if (hit) return 1;
  }
  return 0;
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
  const std::uint64_t h = suffix_hash(host);
  std::string_view key;
  if (const Slot* found = map_.find(h, std::string_view(host))) {
    if (found->of[static_cast<int>(kind)] != kNone) return true;  // a repeated entry
    key = host;  // insert() finds the existing item
  } else {
    key = strings.add(std::move(host));
  }
  map_.insert(h, key).of[static_cast<int>(kind)] = idx;
  entries_.push_back(strings.add(std::string(base::trim(text))));
  return true;
}

std::string_view DomainSet::match(const HostKeys& host) const {
  if (host.host().empty() || map_.empty()) return {};
  std::string_view out;
  host.each([&](std::string_view name, std::uint64_t h, bool own) {
    const Slot* s = map_.find(h, name);
    if (!s) return false;
    const Kind first = own ? Kind::exact : Kind::subtree;
    const Kind second = own ? Kind::subtree : Kind::subonly;
    if (s->of[static_cast<int>(first)] != kNone) {
      out = entries_[s->of[static_cast<int>(first)]];
      return true;
    }
    if (s->of[static_cast<int>(second)] != kNone) {
      out = entries_[s->of[static_cast<int>(second)]];
      return true;
    }
    return false;
  });
  return out;
}

std::string_view DomainSet::match(Ctx& ctx) const {
  if (entries_.empty() || ctx.host.host().empty()) return {};
  if (id == kNone || !ctx.table || ctx.table->empty()) return match(ctx.host);
  return match_in(ctx, id);
}

std::string_view DomainSet::match_in(Ctx& ctx, std::uint32_t id) {
  if (ctx.host.host().empty()) return {};
  std::string_view out;
  ctx.each_record([&](const unsigned char* rec, bool own) {
    const Kind first = own ? Kind::exact : Kind::subtree;
    const Kind second = own ? Kind::subtree : Kind::subonly;
    return HostTable::Record(rec).domain(id, static_cast<int>(first), static_cast<int>(second),
                                         out);
  });
  return out;
}

HostKeys::HostKeys(std::string_view host) : host_(host) {
  if (host.size() > 0xffffffffU) {
    complete_ = false;
    own_ = suffix_hash(host);
    return;
  }
  // Right to left: the hash of host.substr(i) is known at i; a name starts at 0 and after
  // each '.' (also the empty name after a final '.').
  std::uint64_t h = kHashSeed;
  const std::size_t n = host.size();
  if (n > 0 && host[n - 1] == '.') {
    hash_[n_] = hash_finish(h);
    pos_[n_++] = static_cast<std::uint32_t>(n);
  }
  for (std::size_t i = n; i-- > 0;) {
    h = hash_step(h, host[i]);
    if (i == 0 || host[i - 1] == '.') {
      if (n_ == kMax) {
        complete_ = false;
        break;
      }
      hash_[n_] = hash_finish(h);
      pos_[n_++] = static_cast<std::uint32_t>(i);
    }
  }
  own_ = complete_ ? (n_ > 0 && pos_[n_ - 1] == 0 ? hash_[n_ - 1] : hash_finish(kHashSeed))
                   : suffix_hash(host);
}

std::string_view Ctx::lower_url() {
  if (url_state_ == 0) {
    const std::string_view u = facts.url;
    if (u.size() > kUrlBuf) {
      url_state_ = 2;
    } else {
      url_ascii_ = lower_copy(u, url_);
      url_len_ = u.size();
      std::memset(url_pairs_, 0, sizeof url_pairs_);
      for (std::size_t j = 0; j + 1 < u.size(); ++j) {
        const unsigned h = pair_slot(url_[j], url_[j + 1]);
        url_pairs_[h >> 6] |= std::uint64_t{1} << (h & 63);
      }
      url_state_ = 1;
    }
  }
  return url_state_ == 1 ? std::string_view(url_, url_len_) : std::string_view();
}

std::string_view Ctx::lower_field(std::size_t i, bool* ascii) {
  if (i >= kFields) return {};
  Field& fl = field_[i];
  if (!((fields_made_ >> i) & 1)) {
    fields_made_ |= std::uint32_t{1} << i;
    const std::string_view v = facts.request_head->fields[i].value;
    fl.fits = v.size() <= kFieldBuf - fields_used_;
    if (fl.fits) {
      fl.at = static_cast<std::uint16_t>(fields_used_);
      fl.len = static_cast<std::uint16_t>(v.size());
      fl.ascii = lower_copy(v, field_buf_ + fields_used_);
      fields_used_ += static_cast<std::uint32_t>(v.size());
    }
  }
  if (!fl.fits) return {};
  *ascii = fl.ascii;
  return {field_buf_ + fl.at, fl.len};
}

bool UrlSet::add(std::string_view text, Strings& strings, std::string* error) {
  std::string_view s = base::trim(text);
  Pattern p;
  p.text = strings.add(std::string(s));
  if (s.starts_with("re:")) {
    p.kind = Pattern::Kind::regex;
    p.re = compile_regex(s.substr(3), error, "http://https://");  // URLs start with either
    if (!p.re) return false;
  } else if (s.size() >= 2 && s.front() == '*' && s.back() == '*') {
    p.kind = Pattern::Kind::keyword;
    auto kw = s.substr(1, s.size() - 2);
    if (kw.empty() || kw.find('*') != std::string_view::npos) {
      *error = "bad keyword pattern '" + std::string(s) + "'";
      return false;
    }
    p.path = strings.add(std::string(kw));
    p.lower = strings.add(base::to_lower(kw));
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
    by_host_.insert(suffix_hash(p.host), p.host).push_back(idx);
  else
    scan_.push_back({p.kind == Pattern::Kind::keyword ? p.lower : std::string_view(), idx});
  patterns_.push_back(std::move(p));
  return true;
}

std::string_view UrlSet::match_hosts_in(Ctx& ctx, std::uint32_t id) {
  // The patterns on the host, in order, from its record.
  const Facts& f = ctx.facts;
  const unsigned char* pat = nullptr;
  std::uint32_t n = 0;
  if (const unsigned char* rec = ctx.own_record())
    if (HostTable::Record(rec).url_patterns(id, pat, n))
      for (std::uint32_t i = 0; i < n; ++i, pat += sizeof(HostTable::UrlPattern)) {
        HostTable::UrlPattern p;
        std::memcpy(&p, pat, sizeof p);
        if (p.scheme != 0 && f.scheme != (p.scheme == 1 ? "http" : "https")) continue;
        if (p.port != 0 && p.port != f.port) continue;
        if (p.exact ? f.path == p.path : f.path.starts_with(p.path)) return p.text;
      }
  return {};
}

std::string_view UrlSet::match_hosts(Ctx& ctx) const {
  if (by_host_.empty()) return {};
  if (id != kNone && ctx.table && !ctx.table->empty()) return match_hosts_in(ctx, id);
  return match(ctx.facts, by_host_.find(ctx.host.own_hash(), ctx.facts.host), nullptr, false);
}

bool url_has_keyword(Ctx& ctx, std::string_view keyword) {
  const std::string_view lower_url = ctx.lower_url();
  return lower_url.data() ? ctx.url_may_contain(keyword) && contains(lower_url, keyword)
                          : icontains(ctx.facts.url, keyword);
}

bool url_matches(Ctx& ctx, const Regex& re) {
  if (!re.needs.empty() && !ctx.url_may_contain_one(re.needs)) return false;
  return re.search(ctx.facts.url);
}

std::string_view UrlSet::match(const Facts& f, Ctx& ctx) const {
  const std::vector<std::uint32_t>* at = nullptr;
  if (!by_host_.empty()) {
    if (id != kNone && ctx.table && !ctx.table->empty() && &f == &ctx.facts) {
      if (auto e = match_hosts_in(ctx, id); !e.empty()) return e;
    } else {
      at = by_host_.find(&f == &ctx.facts ? ctx.host.own_hash() : suffix_hash(f.host), f.host);
    }
  }
  return match(f, at, &ctx, true);
}

std::string_view UrlSet::match(const Facts& f, const std::vector<std::uint32_t>* at, Ctx* ctx,
                               bool scan) const {
  if (at) {
    for (std::uint32_t i : *at) {
      const Pattern& p = patterns_[i];
      if (!p.scheme.empty() && p.scheme != f.scheme) continue;
      if (p.port != 0 && p.port != f.port) continue;
      if (p.kind == Pattern::Kind::exact ? f.path == p.path : f.path.starts_with(p.path))
        return p.text;
    }
  }
  if (!scan) return {};
  for (const Scan& s : scan_) {
    auto check = [&] {
      if (ctx && &f == &ctx->facts)
        return !s.lower.empty() ? url_has_keyword(*ctx, s.lower)
                                : url_matches(*ctx, patterns_[s.pattern].re);
      return !s.lower.empty() ? icontains(f.url, s.lower) : patterns_[s.pattern].re.search(f.url);
    };
    if (ctx ? ctx->url_memo.get(s.memo, check) : check()) return patterns_[s.pattern].text;
  }
  return {};
}

void UrlSet::number_patterns(std::unordered_map<std::string, std::uint32_t>& ids) {
  for (Scan& s : scan_) {
    // Same text, same result on the same URL (expressions all compile with re_options()).
    std::string key = !s.lower.empty() ? "k" + std::string(s.lower)
                                       : "r" + std::string(patterns_[s.pattern].text);
    s.memo = ids.emplace(std::move(key), static_cast<std::uint32_t>(ids.size())).first->second;
  }
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

void HeaderFilter::prepare() {
  lower = op == Op::contains ? base::to_lower(value) : std::string();
}

bool HeaderFilter::match(Ctx& ctx) const {
  return header_matches(ctx, op, header, op == Op::contains ? std::string_view(lower) : value,
                        number, &re);
}

bool Prefilter::HeaderCheck::match(Ctx& ctx) const {
  if (!fits) return filter->match(ctx);
  return header_matches(ctx, op, {bytes, name_len}, {bytes + name_len, value_len}, number,
                        op == HeaderFilter::Op::regex ? &filter->re : nullptr);
}

bool header_matches(Ctx& ctx, HeaderFilter::Op op, std::string_view header, std::string_view text,
                    std::int64_t number, const Regex* re) {
  using Op = HeaderFilter::Op;
  const wire::Head* head = ctx.facts.request_head;
  if (!head) return false;
  for (std::size_t i = 0; i < head->fields.size(); ++i) {
    const wire::Field& fld = head->fields[i];
    if (!base::iequals(fld.name, header)) continue;
    switch (op) {
      case Op::contains: {
        bool ascii = false;
        const std::string_view v = ctx.lower_field(i, &ascii);
        if (v.data() ? contains(v, text) : icontains(fld.value, text)) return true;
        break;
      }
      case Op::equals:
        if (base::iequals(fld.value, text)) return true;
        break;
      case Op::regex:
        if (field_may_match(*re, ctx, i) && re->search(fld.value)) return true;
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
