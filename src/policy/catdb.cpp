// CategoryDb: the compiled lookup, its builder, and the public-suffix check.
//
// Layout. Every entry is a 64-bit hash of its normalised key plus a 32-bit value (category id
// in the high half, source id in the low half). Domain keys and URL keys are hashed with
// different seeds, so both live in one table: an ordered linear-probing hash table, keys[] and
// vals[] side by side. Each key has a home slot, home(k) = k * capacity / 2^64 (monotonic in
// k); entries are laid out in increasing key order, each at max(home, previous slot + 1), so a
// probe starts at home(k), skips smaller keys and stops at a larger key or an empty slot (0).
// Load factor 0.75: about 16 bytes per entry, one cache line read per probe (the arrays are on
// transparent huge pages when the kernel allows). A key may have several entries (one per
// category and source), adjacent. No entry text is stored; a match reports the slice of the
// looked-up input that matched. Two different keys with the same 64-bit hash would be
// confused: with n entries the chance that a given probe hits a foreign key is about n / 2^64
// (5e6 entries: 3e-13), accepted.
//
// Hashing: FNV-1a over the lower-cased bytes, then a 64-bit finaliser (murmur3 fmix64).
//   - domain key: the bytes of the domain from right to left, so that one pass over a host
//     yields the hash of every label-boundary suffix;
//   - URL key: "host" + "/path..." left to right, so that one pass over host and path yields
//     the hash of every '/'-boundary prefix. Every host with URL entries also gets a marker
//     entry under its bare URL key, so that a host without URL entries costs one probe.
#include "policy/catdb.h"

#include <libpsl.h>
#include <re2/re2.h>
#include <re2/set.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <new>
#include <unordered_map>
#include <unordered_set>

#include "base/memory.h"
#include "policy/atoms.h"

namespace pc::policy {

using detail::required_atoms;

namespace {

constexpr std::uint64_t kFnvPrime = 0x100000001b3ULL;
constexpr std::uint64_t kDomainSeed = 0xcbf29ce484222325ULL;
constexpr std::uint64_t kUrlSeed = 0x84222325cbf29ce4ULL;
constexpr std::size_t kMaxHost = 253;

inline unsigned char lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<unsigned char>(c + 32) : c;
}
inline std::uint64_t step(std::uint64_t h, char c) {
  return (h ^ lower(static_cast<unsigned char>(c))) * kFnvPrime;
}
// The final key; never 0 (0 marks an empty slot).
inline std::uint64_t fmix(std::uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h != 0 ? h : 1;
}

constexpr std::uint32_t kUrlMarker = 0xffffffffu;  // "this host has URL entries"

std::uint64_t domain_key(std::string_view d) {
  std::uint64_t h = kDomainSeed;
  for (std::size_t i = d.size(); i-- > 0;) h = step(h, d[i]);
  return fmix(h);
}

inline std::uint32_t pack(std::uint16_t category, std::uint16_t source) {
  return (std::uint32_t{category} << 16) | source;
}

std::string_view trim_all(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// Removes "scheme://" when present.
std::string_view strip_scheme(std::string_view s) {
  auto p = s.find("://");
  if (p == std::string_view::npos || p == 0) return s;
  for (std::size_t i = 0; i < p; ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (i > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'));
    if (!ok) return s;
  }
  return s.substr(p + 3);
}

// Lower-cases and checks a host name into out (NUL-terminated). Accepts letters, digits, '-',
// '_' and UTF-8 bytes; labels of 1..63 bytes; 1..253 bytes in all. Returns the length, or 0.
std::size_t normalise_host(std::string_view in, char (&out)[kMaxHost + 1]) {
  if (in.empty() || in.size() > kMaxHost) return 0;
  std::size_t label = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    auto c = lower(static_cast<unsigned char>(in[i]));
    if (c == '.') {
      if (label == 0) return 0;
      label = 0;
    } else {
      bool ok =
          (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c >= 0x80;
      if (!ok || ++label > 63) return 0;
    }
    out[i] = static_cast<char>(c);
  }
  if (label == 0) return 0;
  out[in.size()] = '\0';
  return in.size();
}

// ---- public suffixes --------------------------------------------------------------------

// The list libpsl answers from: the system list (Debian package publicsuffix) when present,
// else libpsl's built-in list. When the system list is used, its text also gives a prefilter:
// the set of domains under which the ICANN section has any rule. A multi-label ASCII name whose
// parent is not in that set cannot be an ICANN public suffix, so libpsl (about 400 ns a
// query) is asked only for the few names under such parents (co.uk, com.au, ...).
struct Psl {
  const psl_ctx_t* ctx = nullptr;
  bool prefilter = false;
  std::unordered_set<std::uint64_t> parents;  // domain_key of rule parents

  Psl() {
    const char* dat = "/usr/share/publicsuffix/public_suffix_list.dat";
    if (const char* dist = psl_dist_filename(); dist && *dist) {
      std::string d(dist);
      if (auto dot = d.rfind('.'); dot != std::string::npos) {
        d = d.substr(0, dot) + ".dat";
        struct stat st {};
        if (::stat(d.c_str(), &st) == 0) dat_path = d;
      }
    }
    if (dat_path.empty()) dat_path = dat;
    if (psl_ctx_t* loaded = psl_load_file(dat_path.c_str())) {
      ctx = loaded;  // kept for the life of the process
      prefilter = read_parents(dat_path);
    } else {
      ctx = psl_builtin();
    }
  }

  bool read_parents(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "r");
    if (!f) return false;
    char line[512];
    bool icann = false, seen = false;
    while (std::fgets(line, sizeof line, f)) {
      std::string_view l = trim_all(line);
      if (!l.empty() && l.back() == '\n') l = trim_all(l.substr(0, l.size() - 1));
      if (l.find("===BEGIN ICANN DOMAINS===") != std::string_view::npos) {
        icann = seen = true;
        continue;
      }
      if (l.find("===END ICANN DOMAINS===") != std::string_view::npos) {
        icann = false;
        continue;
      }
      if (!icann || l.empty() || l.starts_with("//")) continue;
      l = l.substr(0, l.find_first_of(" \t"));
      if (l.starts_with("!")) l.remove_prefix(1);
      auto dot = l.find('.');
      if (dot == std::string_view::npos) continue;
      parents.insert(domain_key(l.substr(dot + 1)));
    }
    std::fclose(f);
    return seen && !parents.empty();
  }

  std::string dat_path;
};

const Psl& psl() {
  static const Psl p;
  return p;
}

bool public_suffix_normalised(const char* d, std::size_t n) {
  const Psl& p = psl();
  if (!p.ctx) return false;
  std::string_view s(d, n);
  auto dot = s.find('.');
  if (p.prefilter && dot != std::string_view::npos && s.find("xn--") == std::string_view::npos) {
    bool ascii = true;
    for (char c : s)
      if (static_cast<unsigned char>(c) >= 0x80) ascii = false;
    if (ascii && !p.parents.contains(domain_key(s.substr(dot + 1)))) return false;
  }
  return psl_is_public_suffix2(p.ctx, d, PSL_TYPE_ICANN | PSL_TYPE_NO_STAR_RULE) != 0;
}

// An IPv4 literal, or anything with ':' (IPv6): matched as a whole host, never by suffix.
// An IP literal (IPv6, or IPv4 written as digits and dots), which matches only itself;
// "host1" or "example.web3" are names whose subdomains match.
bool is_address(std::string_view host) {
  if (host.empty()) return false;
  if (host.find(':') != std::string_view::npos) return true;
  for (char c : host)
    if (!((c >= '0' && c <= '9') || c == '.')) return false;
  return true;
}

struct Entry {
  std::uint64_t key;
  std::uint32_t val;
};

using base::Region;

struct Expression {
  std::string pattern;
  std::uint32_t val;
  std::unique_ptr<re2::RE2> re;  // the expression alone (when the set cannot answer)
};

// How expressions are compiled: case-insensitive, no capturing groups, RE2's default memory
// budget (CategoryDb::Builder::set_expression_memory sets the set's own).
re2::RE2::Options expression_options() {
  re2::RE2::Options opt;
  opt.set_log_errors(false);
  opt.set_case_sensitive(false);
  opt.set_never_capture(true);
  return opt;
}

// Whether a text may match one of the expressions: whether it contains one of the literal
// strings ("atoms") that, by RE2's analysis (FilteredRE2), every match of every expression
// contains one of. An Aho-Corasick automaton, as a full transition table over byte classes,
// ASCII letters folded to lower case (the atoms are lower-case). A byte of 0x80 and above
// always answers "may match": the atoms are lower-cased by Unicode rules, the text here only
// in ASCII. Searching "host/path" for a few dozen atoms this way costs a few cycles a byte;
// RE2's set search costs several hundred cycles for any text.
class AtomScanner {
 public:
  // False when the atoms cannot be used: none, an empty or non-ASCII one, or an automaton of
  // more than kMaxCells transitions.
  bool build(const std::vector<std::string>& atoms) {
    if (atoms.empty()) return false;
    cls_.fill(0);  // class 0: bytes in no atom
    classes_ = 1;
    for (const auto& a : atoms) {
      if (a.empty()) return false;
      for (char ch : a) {
        const auto c = static_cast<unsigned char>(ch);
        if (c >= 0x80 || (c >= 'A' && c <= 'Z')) return false;
        if (cls_[c] == 0) cls_[c] = static_cast<std::uint8_t>(classes_++);
      }
    }
    for (unsigned c = 'A'; c <= 'Z'; ++c) cls_[c] = cls_[c + 32];
    for (unsigned c = 0x80; c < 256; ++c) cls_[c] = kAny;
    // The trie (0: no edge; state 0 is the root, never a target).
    std::vector<std::uint32_t> next(classes_, 0);
    std::vector<std::uint8_t> out(1, 0);
    for (const auto& a : atoms) {
      std::uint32_t s = 0;
      for (char ch : a) {
        std::uint32_t& t = next[s * classes_ + cls_[static_cast<unsigned char>(ch)]];
        if (t == 0) {
          t = static_cast<std::uint32_t>(out.size());
          out.push_back(0);
          if (out.size() * classes_ > kMaxCells) return false;
          next.resize(out.size() * classes_, 0);
        }
        s = next[s * classes_ + cls_[static_cast<unsigned char>(ch)]];
      }
      out[s] = 1;
    }
    // Failure links, breadth first, folded into the table; then every transition into a
    // state that ends an atom (itself or through its failure chain) becomes kHit.
    std::vector<std::uint32_t> fail(out.size(), 0), queue;
    for (std::uint32_t c = 0; c < classes_; ++c)
      if (next[c] != 0) queue.push_back(next[c]);
    for (std::size_t q = 0; q < queue.size(); ++q) {
      const std::uint32_t s = queue[q];
      out[s] |= out[fail[s]];
      for (std::uint32_t c = 0; c < classes_; ++c) {
        std::uint32_t& t = next[s * classes_ + c];
        const std::uint32_t via_fail = next[fail[s] * classes_ + c];
        if (t != 0) {
          fail[t] = via_fail;
          queue.push_back(t);
        } else {
          t = via_fail;
        }
      }
    }
    for (auto& t : next)
      if (out[t]) t = kHit;
    next_ = std::move(next);
    return true;
  }

  bool may_match(std::string_view text) const {
    std::uint32_t s = 0;
    for (char ch : text) {
      const std::uint8_t c = cls_[static_cast<unsigned char>(ch)];
      if (c == kAny) return true;
      s = next_[s * classes_ + c];
      if (s == kHit) return true;
    }
    return false;
  }

  std::size_t memory_bytes() const { return next_.capacity() * sizeof(std::uint32_t); }

 private:
  static constexpr std::size_t kMaxCells = std::size_t{1} << 22;  // 16 MiB of table
  static constexpr std::uint8_t kAny = 0xff;
  static constexpr std::uint32_t kHit = 0xffffffffu;
  std::array<std::uint8_t, 256> cls_{};
  std::uint32_t classes_ = 0;
  std::vector<std::uint32_t> next_;  // [state * classes_ + class]
};

// The scanner for a set of expressions, or null when some expression has no atom (RE2 finds
// none it must contain, e.g. "^[0-9]+$") or the atoms cannot be scanned for.
std::unique_ptr<AtomScanner> expression_atoms(const std::vector<Expression>& expressions,
                                              const re2::RE2::Options& opt) {
  std::vector<std::string_view> patterns;
  patterns.reserve(expressions.size());
  for (const auto& e : expressions) patterns.push_back(e.pattern);
  const auto atoms = required_atoms(patterns, opt);
  if (!atoms) return nullptr;
  auto scanner = std::make_unique<AtomScanner>();
  if (!scanner->build(*atoms)) return nullptr;
  return scanner;
}

}  // namespace

bool is_public_suffix(std::string_view domain) {
  domain = trim_all(domain);
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  char buf[kMaxHost + 1];
  std::size_t n = normalise_host(domain, buf);
  return n != 0 && public_suffix_normalised(buf, n);
}

// ---- the compiled database --------------------------------------------------------------

struct CategoryDb::Impl {
  std::size_t capacity = 0;  // home slots; 0: empty table
  Region key_region, val_region;
  const std::uint64_t* keys = nullptr;  // slots (capacity + overflow + one empty sentinel)
  const std::uint32_t* vals = nullptr;
  std::size_t stored = 0;  // entries, without URL markers
  bool has_urls = false;
  std::vector<std::string> categories;
  std::unordered_map<std::string, std::uint16_t> category_index;
  std::vector<SourceInfo> sources;
  std::vector<Expression> expressions;
  std::unique_ptr<re2::RE2::Set> set;  // all expressions; null when it did not compile
  std::unique_ptr<AtomScanner> atoms;  // when set: expressions searched only if it may match

  std::size_t home(std::uint64_t key) const {
    __extension__ using u128 = unsigned __int128;
    return static_cast<std::size_t>((static_cast<u128>(key) * capacity) >> 64);
  }
  // Calls f(value) for every entry with this key.
  template <class F>
  void probe(std::uint64_t key, F&& f) const {
    if (capacity == 0) return;
    std::size_t i = home(key);
    while (keys[i] != 0 && keys[i] < key) ++i;
    for (; keys[i] == key; ++i) f(vals[i]);
  }
  bool contains(std::uint64_t key) const {
    if (capacity == 0) return false;
    std::size_t i = home(key);
    while (keys[i] != 0 && keys[i] < key) ++i;
    return keys[i] == key;
  }
  // The home slot's key and value: a probe that finds its key reads both.
  void prefetch(std::uint64_t key) const {
    if (capacity == 0) return;
    const std::size_t i = home(key);
    __builtin_prefetch(&keys[i]);
    __builtin_prefetch(&vals[i]);
  }
};

CategoryDb::~CategoryDb() = default;

std::string_view CategoryDb::category_name(std::uint16_t id) const {
  return id < impl_->categories.size() ? std::string_view(impl_->categories[id])
                                       : std::string_view();
}

int CategoryDb::category_id(std::string_view name) const {
  auto it = impl_->category_index.find(std::string(name));
  return it == impl_->category_index.end() ? -1 : it->second;
}

std::size_t CategoryDb::categories() const {
  return impl_->categories.size();
}

const SourceInfo& CategoryDb::source(std::uint16_t id) const {
  static const SourceInfo none;
  return id < impl_->sources.size() ? impl_->sources[id] : none;
}

std::size_t CategoryDb::entries() const {
  return impl_->stored + impl_->expressions.size();
}

std::size_t CategoryDb::memory_bytes() const {
  const Impl& m = *impl_;
  std::size_t n = sizeof(Impl) + m.key_region.size() + m.val_region.size();
  for (const auto& c : m.categories) n += sizeof c + c.capacity() + 32;
  for (const auto& s : m.sources) n += sizeof s + s.name.capacity() + s.version.capacity();
  // RE2 does not report the size of a compiled set or expression; count their patterns
  // generously.
  for (const auto& e : m.expressions) n += sizeof e + e.pattern.capacity() * 32;
  if (m.atoms) n += sizeof *m.atoms + m.atoms->memory_bytes();
  return n;
}

CategoryKeys::CategoryKeys(std::string_view h, std::string_view p, bool urls) {
  while (!h.empty() && h.back() == '.') h.remove_suffix(1);
  if (h.empty() || h.size() > kMaxHost) return;
  host = h;
  path = p;
  contiguous = !path.empty() && host.data() + host.size() == path.data();
  {
    std::uint64_t v = kDomainSeed;
    const bool whole_only = is_address(host);
    for (std::size_t i = host.size(); i-- > 0;) {
      v = step(v, host[i]);
      if ((i == 0 || (host[i - 1] == '.' && !whole_only)) && nd < kMaxLabels) {
        dkeys[nd] = fmix(v);
        dpos[nd++] = static_cast<std::uint8_t>(i);
      }
    }
  }
  if (!urls) return;
  std::uint64_t v = kUrlSeed;
  for (char c : host) v = step(v, c);
  ukeys[nu] = fmix(v);
  ulen[nu++] = 0;
  std::size_t query = 0;  // path.find_first_of("?#"), without a call per byte
  while (query < path.size() && path[query] != '?' && path[query] != '#') ++query;
  if (query == path.size()) query = std::string_view::npos;
  std::string_view q = path.substr(0, query);
  const std::uint64_t v_host = v;
  std::size_t i = 0;
  bool skipped = false;
  for (; i < q.size(); ++i) {
    if (q[i] == '/' && i > 0) {
      if (nu < kMaxUrl - 3) {
        ukeys[nu] = fmix(v);
        ulen[nu++] = static_cast<std::uint32_t>(i);
      } else {
        skipped = true;
      }
    }
    v = step(v, q[i]);
  }
  if (skipped) {
    // A path deeper than the boundaries tried still matches an entry equal to it (entries
    // are stored without trailing slashes).
    std::string_view trimmed = q;
    while (trimmed.ends_with('/')) trimmed.remove_suffix(1);
    if (!trimmed.empty() && trimmed.size() != q.size()) {
      std::uint64_t vt = v_host;
      for (char c : trimmed) vt = step(vt, c);
      ukeys[nu] = fmix(vt);
      ulen[nu++] = static_cast<std::uint32_t>(trimmed.size());
    }
  }
  if (!q.empty() && q.back() != '/') {
    ukeys[nu] = fmix(v);
    ulen[nu++] = static_cast<std::uint32_t>(q.size());
  }
  if (query != std::string_view::npos && path[query] == '?') {
    std::size_t end = path.find('#', query);
    if (end == std::string_view::npos) end = path.size();
    for (i = query; i < end; ++i) v = step(v, path[i]);
    ukeys[nu] = fmix(v);
    ulen[nu++] = static_cast<std::uint32_t>(end);
  }
}

void CategoryDb::prefetch(const CategoryKeys& k) const {
  const Impl& m = *impl_;
  for (std::size_t i = 0; i < k.nd; ++i) m.prefetch(k.dkeys[i]);
  if (m.has_urls && k.nu != 0) m.prefetch(k.ukeys[0]);
}

bool CategoryDb::has_urls() const {
  return impl_->has_urls;
}

std::size_t CategoryDb::lookup(std::string_view host, std::string_view path, CategoryHits& hits,
                               DbMatch* first) const {
  const CategoryKeys k(host, path, impl_->has_urls);
  prefetch(k);
  return lookup(k, hits, first);
}

std::size_t CategoryDb::lookup(const CategoryKeys& k, CategoryHits& hits, DbMatch* first) const {
  const Impl& m = *impl_;
  if (k.host.empty()) return 0;
  const std::string_view host = k.host, path = k.path;
  std::size_t count = 0;
  auto emit = [&](std::uint32_t val, std::string_view entry) {
    hits.add(static_cast<std::uint16_t>(val >> 16));
    if (count++ == 0 && first) {
      first->category = static_cast<std::uint16_t>(val >> 16);
      first->source = static_cast<std::uint16_t>(val & 0xffff);
      first->entry = entry;
    }
  };

  // The path candidates are fetched only once the host's marker says it has URL entries.
  if (m.has_urls && k.nu != 0 && m.contains(k.ukeys[0])) {
    for (std::size_t i = 1; i < k.nu; ++i) m.prefetch(k.ukeys[i]);
    for (std::size_t i = k.nu; i-- > 0;) {
      std::string_view entry;
      if (k.contiguous)
        entry = std::string_view(host.data(), host.size() + k.ulen[i]);
      else
        entry = k.ulen[i] == 0 ? host : path.substr(0, k.ulen[i]);
      m.probe(k.ukeys[i], [&](std::uint32_t v) {
        if (v != kUrlMarker) emit(v, entry);
      });
    }
  }
  for (std::size_t i = k.nd; i-- > 0;)
    m.probe(k.dkeys[i], [&](std::uint32_t v) { emit(v, host.substr(k.dpos[i])); });
  if (!m.expressions.empty()) {
    // Expressions see "host/path" (the path up to 8 KiB when it has to be copied).
    char buf[kMaxHost + 8192];
    std::string_view text;
    if (k.contiguous || path.empty()) {
      text = std::string_view(host.data(), host.size() + path.size());
    } else {
      std::size_t pn = std::min(path.size(), sizeof buf - host.size());
      std::memcpy(buf, host.data(), host.size());
      std::memcpy(buf + host.size(), path.data(), pn);
      text = std::string_view(buf, host.size() + pn);
    }
    const re2::StringPiece sp(text.data(), text.size());
    thread_local std::vector<int> matched;
    matched.clear();
    if (!m.atoms || m.atoms->may_match(text)) {
      // A first pass without the list of matches stops at the first match and allocates
      // nothing; only a match pays for the second pass (which allocates inside RE2).
      bool answered = false;
      if (m.set) {
        re2::RE2::Set::ErrorInfo err{};
        if (m.set->Match(sp, nullptr, &err))
          answered = m.set->Match(sp, &matched, &err);
        else
          answered = err.kind == re2::RE2::Set::kNoError;
      }
      if (!answered) {
        // No set, or its DFA ran out of memory on this text: each expression alone (RE2
        // falls back from its DFA by itself). Slower, never a missed match.
        matched.clear();
        for (std::size_t i = 0; i < m.expressions.size(); ++i)
          if (re2::RE2::PartialMatch(sp, *m.expressions[i].re))
            matched.push_back(static_cast<int>(i));
      }
      std::sort(matched.begin(), matched.end());
      for (int idx : matched) {
        const Expression& e = m.expressions[static_cast<std::size_t>(idx)];
        emit(e.val, e.pattern);
      }
    }
  }
  return count;
}

// ---- the builder ------------------------------------------------------------------------

struct CategoryDb::Builder::Impl {
  std::vector<std::string> categories;
  std::unordered_map<std::string, std::uint16_t> category_index;
  std::vector<SourceInfo> sources;
  std::vector<Entry> entries;
  std::uint64_t last_marker = 0;  // the marker added last (URL lists are grouped by host)
  std::vector<Expression> expressions;
  std::int64_t expression_memory = std::int64_t{64} << 20;
};

CategoryDb::Builder::Builder() : impl_(std::make_unique<Impl>()) {}
CategoryDb::Builder::~Builder() = default;

std::uint16_t CategoryDb::Builder::add_source(SourceInfo s) {
  if (impl_->sources.size() >= 0xfffe) return 0xffff;
  impl_->sources.push_back(std::move(s));
  return static_cast<std::uint16_t>(impl_->sources.size() - 1);
}

std::uint16_t CategoryDb::Builder::category(std::string_view name) {
  std::string key(name);
  auto it = impl_->category_index.find(key);
  if (it != impl_->category_index.end()) return it->second;
  if (impl_->categories.size() >= 0xfffe) return 0xffff;  // 0xffff: marker values
  auto id = static_cast<std::uint16_t>(impl_->categories.size());
  impl_->categories.push_back(key);
  impl_->category_index.emplace(std::move(key), id);
  return id;
}

bool CategoryDb::Builder::add_domain(std::string_view domain, std::uint16_t category,
                                     std::uint16_t source) {
  domain = strip_scheme(trim_all(domain));
  if (domain.starts_with("*.")) domain.remove_prefix(2);
  if (domain.starts_with(".")) domain.remove_prefix(1);
  if (domain.ends_with(".")) domain.remove_suffix(1);
  char buf[kMaxHost + 1];
  std::size_t n = normalise_host(domain, buf);
  if (n == 0 || public_suffix_normalised(buf, n)) return false;
  if (category == 0xffff && source == 0xffff) return false;
  impl_->entries.push_back({domain_key(std::string_view(buf, n)), pack(category, source)});
  return true;
}

bool CategoryDb::Builder::add_url(std::string_view url, std::uint16_t category,
                                  std::uint16_t source) {
  url = strip_scheme(trim_all(url));
  std::size_t host_end = url.find_first_of("/?#");
  std::string_view authority = url.substr(0, host_end);
  std::string_view rest =
      host_end == std::string_view::npos ? std::string_view() : url.substr(host_end);
  if (auto at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  std::string_view host = authority;
  if (host.starts_with("[")) {  // IPv6 literal
    auto close = host.find(']');
    if (close == std::string_view::npos) return false;
    host = host.substr(1, close - 1);
    if (host.empty() || host.find_first_not_of("0123456789abcdefABCDEF:.") != host.npos)
      return false;
  } else if (auto colon = host.find(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);  // the port is not part of the key
  }
  if (host.ends_with(".")) host.remove_suffix(1);
  char buf[kMaxHost + 1];
  std::size_t n = 0;
  if (host.find(':') != std::string_view::npos) {  // IPv6: checked above, lower-cased here
    if (host.size() > kMaxHost) return false;
    for (char c : host) buf[n++] = static_cast<char>(lower(static_cast<unsigned char>(c)));
    buf[n] = '\0';
  } else {
    n = normalise_host(host, buf);
    if (n == 0 || public_suffix_normalised(buf, n)) return false;
  }
  // Path: the fragment is dropped; "?q" alone becomes "/?q"; trailing '/' of the path part
  // (not of a query) removed.
  rest = rest.substr(0, rest.find('#'));
  for (char c : rest)
    if (static_cast<unsigned char>(c) <= ' ') return false;
  if (category == 0xffff && source == 0xffff) return false;
  std::uint64_t h = kUrlSeed;
  for (std::size_t i = 0; i < n; ++i) h = step(h, buf[i]);
  if (std::uint64_t marker = fmix(h); marker != impl_->last_marker) {
    impl_->entries.push_back({marker, kUrlMarker});
    impl_->last_marker = marker;
  }
  if (rest.starts_with("?")) h = step(h, '/');
  if (rest.find('?') == std::string_view::npos)
    while (rest.ends_with("/")) rest.remove_suffix(1);
  for (char c : rest) h = step(h, c);
  impl_->entries.push_back({fmix(h), pack(category, source)});
  return true;
}

bool CategoryDb::Builder::add_expression(std::string_view re2_pattern, std::uint16_t category,
                                         std::uint16_t source, std::string* error) {
  re2_pattern = trim_all(re2_pattern);
  if (re2_pattern.empty()) {
    if (error) *error = "empty expression";
    return false;
  }
  auto re = std::make_unique<re2::RE2>(re2::StringPiece(re2_pattern.data(), re2_pattern.size()),
                                       expression_options());
  if (!re->ok()) {
    if (error) *error = re->error();
    return false;
  }
  impl_->expressions.push_back({std::string(re2_pattern), pack(category, source), std::move(re)});
  return true;
}

void CategoryDb::Builder::set_expression_memory(std::int64_t bytes) {
  impl_->expression_memory = bytes;
}

std::shared_ptr<const CategoryDb> CategoryDb::Builder::build() {
  auto impl = std::make_unique<CategoryDb::Impl>();
  Impl& b = *impl_;
  std::vector<Entry> entries;
  entries.swap(b.entries);
  const std::size_t n = entries.size();
  if (n != 0) {
    // 1. Sort by (key, value): counting sort on the top bits, then each (tiny) bucket; drop
    //    duplicates.
    unsigned bits = 1;
    while ((std::size_t{1} << bits) < n && bits < 40) ++bits;
    const std::size_t buckets = std::size_t{1} << bits;
    std::vector<Entry> sorted(n);
    {
      std::vector<std::uint32_t> start(buckets + 1, 0);
      for (const Entry& e : entries) ++start[(e.key >> (64 - bits)) + 1];
      for (std::size_t i = 1; i <= buckets; ++i) start[i] += start[i - 1];
      for (const Entry& e : entries) sorted[start[e.key >> (64 - bits)]++] = e;
    }
    std::vector<Entry>().swap(entries);
    auto less = [](const Entry& x, const Entry& y) {
      return x.key < y.key || (x.key == y.key && x.val < y.val);
    };
    std::size_t out = 0;
    for (std::size_t i = 0; i < n;) {
      std::size_t j = i + 1;
      const std::uint64_t b0 = sorted[i].key >> (64 - bits);
      while (j < n && (sorted[j].key >> (64 - bits)) == b0) ++j;
      if (j - i > 1)
        std::sort(sorted.begin() + static_cast<std::ptrdiff_t>(i),
                  sorted.begin() + static_cast<std::ptrdiff_t>(j), less);
      for (std::size_t k = i; k < j; ++k) {
        if (out != 0 && sorted[out - 1].key == sorted[k].key &&
            sorted[out - 1].val == sorted[k].val)
          continue;
        sorted[out++] = sorted[k];
      }
      i = j;
    }
    // 2. Lay out: each entry at max(home, previous + 1).
    impl->capacity = out + out / 3;  // load factor 0.75
    std::size_t slots = 0, markers = 0;
    for (std::size_t i = 0; i < out; ++i) {
      slots = std::max(impl->home(sorted[i].key), slots) + 1;
      markers += sorted[i].val == kUrlMarker;
    }
    slots += 1;  // an empty slot ends every scan
    impl->key_region = Region(slots * sizeof(std::uint64_t));
    impl->val_region = Region(slots * sizeof(std::uint32_t));
    auto* keys = impl->key_region.as<std::uint64_t>();
    auto* vals = impl->val_region.as<std::uint32_t>();
    std::size_t next = 0;
    for (std::size_t i = 0; i < out; ++i) {
      std::size_t at = std::max(impl->home(sorted[i].key), next);
      keys[at] = sorted[i].key;
      vals[at] = sorted[i].val;
      next = at + 1;
    }
    impl->keys = keys;
    impl->vals = vals;
    impl->stored = out - markers;
    impl->has_urls = markers != 0;
  }

  if (!b.expressions.empty()) {
    // One RE2 set searches all expressions at once. Should it not compile within its memory
    // budget, every lookup that may match searches them one by one instead.
    re2::RE2::Options opt = expression_options();
    opt.set_max_mem(b.expression_memory);
    auto set = std::make_unique<re2::RE2::Set>(opt, re2::RE2::UNANCHORED);
    bool added = true;
    for (const auto& e : b.expressions)
      added = added && set->Add(re2::StringPiece(e.pattern.data(), e.pattern.size()), nullptr) >= 0;
    if (added && set->Compile()) impl->set = std::move(set);
    impl->expressions = std::move(b.expressions);
    impl->atoms = expression_atoms(impl->expressions, expression_options());
  }

  impl->categories = std::move(b.categories);
  impl->category_index = std::move(b.category_index);
  impl->sources = std::move(b.sources);
  impl_ = std::make_unique<Impl>();  // the builder starts over

  std::shared_ptr<CategoryDb> db(new CategoryDb());
  db->impl_ = std::move(impl);
  return db;
}

}  // namespace pc::policy
