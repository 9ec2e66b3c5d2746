// Internals of the compiled Policy, shared by the loader (policy_load.cpp), the matchers
// (policy_match.cpp) and the decision code (policy.cpp). Not part of the public interface.
#pragma once

#include <string_view>  // before RE2, which keys its string_view support on it

#include <re2/re2.h>

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/cidr.h"
#include "base/memory.h"
#include "policy/atoms.h"
#include "policy/catdb.h"
#include "policy/facts.h"
#include "policy/policy.h"
#include "policy/policy_tz.h"

namespace pc::policy::detail {

inline constexpr std::uint32_t kNone = 0xffffffffU;

// The tables a decision reads: built on the heap, then moved together into the policy's
// Arena once final (Policy::Impl::pack()). Each class holding some lists them to
// each_table(f), which calls f(table) for every one.
template <class T>
using Table = std::vector<T, base::ArenaAllocator<T>>;

// Owns strings for the lifetime of the Policy; views into it stay valid (deque elements never
// move).
class Strings {
 public:
  std::string_view add(std::string s) { return store_.emplace_back(std::move(s)); }

 private:
  std::deque<std::string> store_;
};

// ---- Hashing of names --------------------------------------------------------------------
// FNV-1a, then a 64-bit finaliser (murmur3 fmix64); never 0 (0 marks an empty FlatMap slot).
inline constexpr std::uint64_t kHashSeed = 0xcbf29ce484222325ULL;
inline std::uint64_t hash_step(std::uint64_t h, char c) {
  return (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
}
inline std::uint64_t hash_finish(std::uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h != 0 ? h : 1;
}
// A name hashed from its last byte to its first (exact bytes), so that one pass over a host
// gives the hash of each of its suffixes (HostKeys).
inline std::uint64_t suffix_hash(std::string_view s) {
  std::uint64_t h = kHashSeed;
  for (std::size_t i = s.size(); i-- > 0;) h = hash_step(h, s[i]);
  return hash_finish(h);
}
inline char lower_char(char c) {  // ASCII; branch-free
  const auto u = static_cast<unsigned char>(c);
  return static_cast<char>(u | (static_cast<unsigned>(static_cast<unsigned>(u - 'A') < 26U) << 5));
}
// Eight bytes at a time: ASCII 'A'..'Z' in each byte of x lower-cased.
inline std::uint64_t lower_word(std::uint64_t x) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
  const std::uint64_t low7 = x & ~kHigh;
  const std::uint64_t ge_a = low7 + (0x80 - 'A') * kOnes;      // high bit: low7 >= 'A'
  const std::uint64_t gt_z = low7 + (0x80 - 'Z' - 1) * kOnes;  // high bit: low7 > 'Z'
  return x | (((ge_a & ~gt_z) & ~x & kHigh) >> 2);
}
inline std::uint64_t load_word(const char* p) {
  std::uint64_t x;
  std::memcpy(&x, p, 8);
  return x;
}
// s lower-cased (ASCII) into out (room for s.size() bytes), eight bytes at a time; whether
// every byte of s is ASCII.
inline bool lower_copy(std::string_view s, char* out) {
  std::uint64_t bytes = 0;  // every byte ORed: its high bits tell a non-ASCII byte
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    const std::uint64_t w = load_word(s.data() + i);
    bytes |= w;
    const std::uint64_t l = lower_word(w);
    std::memcpy(out + i, &l, 8);
  }
  for (; i < s.size(); ++i) {
    bytes |= static_cast<unsigned char>(s[i]);
    out[i] = lower_char(s[i]);
  }
  return (bytes & 0x8080808080808080ULL) == 0;
}
// The n (0..8) bytes at p in a word, the rest zero.
inline std::uint64_t load_tail(const char* p, std::size_t n) {
  if (n >= 4) {
    std::uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    return a | (std::uint64_t{b} << (8 * (n - 4)));
  }
  if (n == 0) return 0;
  auto at = [&](std::size_t i) {
    return std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  };
  return at(0) | at(n / 2) | at(n - 1);
}
// ASCII case-insensitive hash, for names compared with nocase_equal (base::iequals).
inline std::uint64_t nocase_hash(std::string_view s) {
  std::uint64_t h = kHashSeed ^ s.size();
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8)
    h = (h ^ lower_word(load_word(s.data() + i))) * 0x9e3779b97f4a7c15ULL;
  if (i < s.size())
    h = (h ^ lower_word(load_tail(s.data() + i, s.size() - i))) * 0x9e3779b97f4a7c15ULL;
  return hash_finish(h);
}
inline bool nocase_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  std::size_t i = 0;
  for (; i + 8 <= a.size(); i += 8)
    if (lower_word(load_word(a.data() + i)) != lower_word(load_word(b.data() + i))) return false;
  return i == a.size() || lower_word(load_tail(a.data() + i, a.size() - i)) ==
                              lower_word(load_tail(b.data() + i, b.size() - i));
}

// The names a host is looked up under, most specific first: the host itself, then the part
// after each '.', left to right ("a.b.example.com", "b.example.com", "example.com", "com"),
// each with its suffix_hash. Computed once per decision in one pass over the host; shared by
// the lists, the domain conditions, the URL hosts and the prefilter. Allocation-free.
class HostKeys {
 public:
  explicit HostKeys(std::string_view host);
  std::string_view host() const { return host_; }
  std::uint64_t own_hash() const { return own_; }
  // The names stored (all of them when complete()), least specific first: name(i), hash(i).
  bool complete() const { return complete_; }
  std::size_t size() const { return n_; }
  std::string_view name(std::size_t i) const { return host_.substr(pos_[i]); }
  std::uint64_t hash(std::size_t i) const { return hash_[i]; }
  bool own(std::size_t i) const { return pos_[i] == 0; }
  static constexpr std::size_t kMax = 128;
  // Calls f(name, hash, own) for each name, most specific first, until f returns true; returns
  // whether one did.
  template <class F>
  bool each(F&& f) const {
    if (complete_) {
      for (std::size_t i = n_; i-- > 0;)
        if (f(host_.substr(pos_[i]), hash_[i], pos_[i] == 0)) return true;
      return false;
    }
    // More names than kMax (an absurd host): hashed one by one.
    if (f(host_, own_, true)) return true;
    for (std::size_t at = host_.find('.'); at != std::string_view::npos;
         at = host_.find('.', at + 1)) {
      auto name = host_.substr(at + 1);
      if (f(name, suffix_hash(name), false)) return true;
    }
    return false;
  }

 private:
  std::string_view host_;
  std::uint64_t own_ = 0;
  bool complete_ = true;
  std::size_t n_ = 0;  // names stored, least specific first
  std::uint64_t hash_[kMax];
  std::uint32_t pos_[kMax];  // where each name starts in host_
};

// A blocked Bloom filter in front of a hash table of `slots` slots (a power of two, at most
// half full): 8 bits a slot, so 16 bits or more a key, both bits of a key in one word
// (chosen by the low bits of its hash; the table's slot comes from the high bits), about 2%
// false positives. Most lookups of keys the table does not hold stop at one word of an array
// 8 times smaller than the slots. An empty filter lets every key through.
class BlockedFilter {
 public:
  void reset(std::size_t slots) { words_.assign(std::max<std::size_t>(slots / 8, 1), 0); }
  void clear() { words_.clear(); }
  bool empty() const { return words_.empty(); }
  void add(std::uint64_t h) { words_[h & (words_.size() - 1)] |= bits(h); }
  // False when h was certainly not added; true when it may have been.
  bool may_hold(std::uint64_t h) const {
    if (words_.empty()) return true;
    const std::uint64_t want = bits(h);
    return (words_[h & (words_.size() - 1)] & want) == want;
  }
  void prefetch(std::uint64_t h) const {
    if (!words_.empty()) __builtin_prefetch(&words_[h & (words_.size() - 1)]);
  }
  template <class F>
  void each_table(F&& f) {
    f(words_);
  }

 private:
  static std::uint64_t bits(std::uint64_t h) {
    return (std::uint64_t{1} << ((h >> 40) & 63)) | (std::uint64_t{1} << ((h >> 46) & 63));
  }
  Table<std::uint64_t> words_;  // power of two
};

// The slots of the policy's hash tables (FlatMap, HostTable): open addressing, linear
// probing, at most half full, over 64-bit hashes computed by the caller. A slot is 8 bytes
// (32 bits of the hash and a reference, 1 + an item's index or offset; 0: empty), so a key is
// compared only when they match. Indexes of kFilterFrom slots and more also keep a
// BlockedFilter that most failed lookups stop at.
class SlotIndex {
 public:
  struct Slot {
    std::uint32_t tag = 0;  // low 32 bits of the hash
    std::uint32_t ref = 0;  // 1 + the item; 0: empty
  };

  // Empties the index and sizes it for n items.
  void reset(std::size_t n) {
    std::size_t cap = 8;
    while (cap < n * 2) cap *= 2;
    unsigned bits = 0;
    while ((std::size_t{1} << bits) < cap) ++bits;
    shift_ = 64 - bits;
    slots_.assign(cap, Slot{});
    filter_.clear();
    if (cap >= kFilterFrom) filter_.reset(cap);
  }
  // Files ref under hash h (an item not filed yet; the index has room).
  void place(std::uint64_t h, std::uint32_t ref) {
    std::size_t i = home(h);
    while (slots_[i].ref != 0) i = next(i);
    slots_[i] = {static_cast<std::uint32_t>(h), ref};
    if (!filter_.empty()) filter_.add(h);
  }
  static constexpr std::size_t kFilterFrom = 2048;  // slots
  // The ref of the first item under h for which is(ref) holds (tags compared first); 0: none.
  template <class Is>
  std::uint32_t find(std::uint64_t h, Is&& is) const {
    if (slots_.empty() || !may_hold(h)) return 0;
    const auto tag = static_cast<std::uint32_t>(h);
    for (std::size_t i = home(h);; i = next(i)) {
      const Slot s = slots_[i];
      if (s.ref == 0) return 0;
      if (s.tag == tag && is(s.ref)) return s.ref;
    }
  }
  // Asks for the memory a find(h, ...) reads first.
  void prefetch(std::uint64_t h) const {
    if (slots_.empty()) return;
    filter_.prefetch(h);
    __builtin_prefetch(&slots_[home(h)]);
  }
  // False when h is certainly not filed (the filter); true when it may be.
  bool may_hold(std::uint64_t h) const { return filter_.may_hold(h); }
  // For lookups that walk the slots themselves (HostTable::lookup_slots and after).
  bool empty() const { return slots_.empty(); }
  std::size_t slots() const { return slots_.size(); }
  std::size_t home(std::uint64_t h) const { return h >> shift_; }
  std::size_t next(std::size_t i) const { return (i + 1) & (slots_.size() - 1); }
  const Slot& slot(std::size_t i) const { return slots_[i]; }
  template <class F>
  void each_table(F&& f) {
    f(slots_);
    filter_.each_table(f);
  }

 private:
  Table<Slot> slots_;  // power of two
  BlockedFilter filter_;
  unsigned shift_ = 64;
};

// A hash table (SlotIndex) of items kept in insertion order, for the lookups of decide().
// Built once; read-only afterwards.
template <class K, class V>
class FlatMap {
 public:
  struct Item {
    K key;
    V value;
    std::uint64_t hash = 0;
  };

  template <class Q, class Eq>
  const V* find(std::uint64_t h, const Q& key, Eq&& eq) const {
    const std::uint32_t ref =
        index_.find(h, [&](std::uint32_t r) { return eq(items_[r - 1].key, key); });
    return ref ? &items_[ref - 1].value : nullptr;
  }
  const V* find(std::uint64_t h, const K& key) const {
    return find(h, key, [](const K& a, const K& b) { return a == b; });
  }
  // The value under key (hash h), value-initialised when new. The reference is valid until
  // the next insert.
  V& insert(std::uint64_t h, const K& key) {
    if (const std::uint32_t ref =
            index_.find(h, [&](std::uint32_t r) { return items_[r - 1].key == key; }))
      return items_[ref - 1].value;
    items_.push_back(Item{key, V{}, h});
    if (items_.size() * 2 > index_.slots()) {
      index_.reset(items_.size());
      for (std::size_t n = 0; n < items_.size(); ++n)
        index_.place(items_[n].hash, static_cast<std::uint32_t>(n + 1));
    } else {
      index_.place(h, static_cast<std::uint32_t>(items_.size()));
    }
    return items_.back().value;
  }
  // Asks for the memory a find(h, ...) reads first.
  void prefetch(std::uint64_t h) const { index_.prefetch(h); }
  bool empty() const { return items_.empty(); }
  std::size_t size() const { return items_.size(); }
  const Table<Item>& items() const { return items_; }
  Table<Item>& items() { return items_; }
  template <class F>
  void each_table(F&& f) {
    index_.each_table(f);
    f(items_);
  }

 private:
  SlotIndex index_;
  Table<Item> items_;
};

struct Ctx;
class HostTable;

// A read-only table of names for lookups that usually find their name (users, groups): open
// addressing (linear probing, at most half full) over the items themselves, each one cache
// line holding the value and the name (and the name's bytes when it has at most kInline of
// them), so that a lookup reads one line, rarely two; a BlockedFilter in front (from
// SlotIndex::kFilterFrom items) for the names it does not hold.
template <class V>
class NameTable {
 public:
  static constexpr std::size_t kInline = 47 - sizeof(V);
  static_assert(sizeof(V) <= 40, "NameTable values fit in the item's line");

  void assign(const FlatMap<std::string_view, V>& map) {
    const auto& from = map.items();
    std::size_t cap = 8;
    unsigned bits = 3;
    for (; cap < from.size() * 2; cap *= 2) ++bits;
    shift_ = 64 - bits;
    items_.assign(cap, Item{});
    filter_.clear();
    if (cap >= SlotIndex::kFilterFrom) filter_.reset(cap);
    for (const auto& f : from) {
      std::size_t i = f.hash >> shift_;
      while (items_[i].used) i = (i + 1) & (cap - 1);
      Item& it = items_[i];
      it.key = f.key;
      it.value = f.value;
      it.used = true;
      if (it.key.size() <= kInline) std::memcpy(it.inline_key, it.key.data(), it.key.size());
      if (!filter_.empty()) filter_.add(f.hash);
    }
  }
  // Asks for the item a find(h, ...) reads first, when the filter lets h through.
  void prefetch(std::uint64_t h) const {
    if (!items_.empty() && filter_.may_hold(h)) __builtin_prefetch(&items_[h >> shift_]);
  }
  template <class Eq>
  const V* find(std::uint64_t h, std::string_view key, Eq&& eq) const {
    if (items_.empty() || !filter_.may_hold(h)) return nullptr;
    for (std::size_t i = h >> shift_;; i = (i + 1) & (items_.size() - 1)) {
      const Item& it = items_[i];
      if (!it.used) return nullptr;
      if (it.key.size() != key.size()) continue;
      const std::string_view name =
          it.key.size() <= kInline ? std::string_view(it.inline_key, it.key.size()) : it.key;
      if (eq(name, key)) return &it.value;
    }
  }
  template <class F>
  void each_table(F&& f) {
    f(items_);
    filter_.each_table(f);
  }

 private:
  struct alignas(64) Item {
    std::string_view key;
    V value;
    bool used = false;
    char inline_key[kInline];  // the key's bytes when it fits
  };
  static_assert(sizeof(Item) == 64);
  Table<Item> items_;  // power of two
  BlockedFilter filter_;
  unsigned shift_ = 64;
};

// Domain entries: "example.com" (it and its subdomains), ".example.com" (subdomains only),
// "=host.example.com" (that host only). Lookup walks the host's suffixes: a handful of hash
// probes, no allocation.
class DomainSet {
 public:
  enum class Kind : std::uint8_t { subtree, subonly, exact };
  struct Slot {
    std::uint32_t of[3] = {kNone, kNone, kNone};  // entry index per Kind
  };
  using Map = FlatMap<std::string_view, Slot>;  // normalised domain (suffix_hash) -> entries

  // Normalises and adds one entry; false with *error on a malformed one.
  bool add(std::string_view text, Strings& strings, std::string* error);
  // The entry (as written) that matches host, most specific first; empty when none.
  std::string_view match(const HostKeys& host) const;
  // The same through the decision's host records (HostTable), once the set is in the table.
  std::string_view match(Ctx& ctx) const;
  // The match of the set numbered id in the decision's HostTable (ctx.table set).
  static std::string_view match_in(Ctx& ctx, std::uint32_t id);
  bool empty() const { return entries_.empty(); }
  std::size_t size() const { return entries_.size(); }
  const Table<Map::Item>& slots() const { return map_.items(); }
  const std::vector<std::string_view>& entries() const { return entries_; }
  std::uint32_t id = kNone;  // in the policy's HostTable; kNone: not in it

 private:
  Map map_;
  std::vector<std::string_view> entries_;  // as written
};

// What a regular expression matches when it is no more than a few literal strings, anchored
// or not (`^(curl|Wget|python-requests)/`, `(?i)(sqlmap|nikto)`, `\.(zip|rar)$`;
// literal_form()): compared byte by byte, with the result RE2 would give.
struct Literals {
  std::vector<std::string> texts;  // lower-case when icase
  bool icase = false, at_start = false, at_end = false;
  // 1: matches, 0: does not, -1: RE2 must tell (icase and a byte above 0x7F in text, whose
  // case folding is Unicode's: "k" also matches U+212A).
  int match(std::string_view text) const;
};
// The literal strings pattern matches, when it is only: "(?i)" first, "^" first, "$" last,
// literal characters, escaped punctuation ("\."), groups of alternatives ("(a|b)", "(?:a|b)"),
// classes of listed characters ("[?&]") and "?" after any of these, for at most 32 strings;
// alternatives at the top only without "^" and "$". std::nullopt for anything else.
std::optional<Literals> literal_form(std::string_view pattern);

// A regular expression of the policy, searched anywhere in a text, with the literals one of
// which its matches need (".exe", "/admin/", "sqlmap"...; required_atoms()). Most texts hold
// none of them: a URL pattern is then ruled out by the decision's set of the URL's byte pairs
// (Ctx::url_may_contain), a header filter by a search for the literals in the lower-cased
// value, before RE2, which costs about 100 ns a search and reads code and memory of its own
// that other decisions have evicted. An expression that is a few literals (literal_form())
// is decided without RE2.
struct Regex {
  std::unique_ptr<RE2> re;
  std::vector<std::string> needs;    // empty: none known
  std::optional<Literals> literals;  // when it is only literals
  explicit operator bool() const { return re != nullptr; }
  bool search(std::string_view text) const {
    if (literals)
      if (const int m = literals->match(text); m >= 0) return m == 1;
    return RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), *re);
  }
};
struct Ctx;
// Whether the decision's URL holds keyword (lower-case), ASCII case-insensitively.
bool url_has_keyword(Ctx& ctx, std::string_view keyword);
// Whether re matches the decision's URL.
bool url_matches(Ctx& ctx, const Regex& re);
// Compiles pattern; an empty Regex with *error on a bad one. `given`: text every searched
// text holds (required_atoms()).
Regex compile_regex(std::string_view pattern, std::string* error, std::string_view given = {});

// URL patterns:
//   [scheme://]host[:port][/path]  prefix: same host (exactly), path starts with /path
//   =[scheme://]host[:port]/path   exact: same host, path (with query) equal
//   *keyword*                      the URL contains keyword (ASCII case-insensitive)
//   re:PATTERN                     RE2, searched anywhere in the URL (anchor with ^ and $)
class UrlSet {
 public:
  struct Pattern {
    enum class Kind : std::uint8_t { prefix, exact, keyword, regex };
    Kind kind = Kind::prefix;
    std::string_view text;    // as written
    std::string_view scheme;  // empty: any
    std::string_view host;
    std::uint16_t port = 0;  // 0: any
    std::string_view path;   // prefix / exact; the keyword for keywords
    std::string_view lower;  // keywords: the keyword lower-cased
    Regex re;
  };
  using Hosts = FlatMap<std::string_view, std::vector<std::uint32_t>>;  // host (suffix_hash)

  bool add(std::string_view text, Strings& strings, std::string* error);
  // The pattern (as written) that matches the URL of f, with the host's hash and the
  // lower-cased URL of the decision; empty when none.
  std::string_view match(const Facts& f, Ctx& ctx) const;
  // The match among the host-bound patterns of the set numbered id in the decision's
  // HostTable (ctx.table set), on the decision's facts.
  static std::string_view match_hosts_in(Ctx& ctx, std::uint32_t id);
  // The match among the patterns on the decision's host only (no keywords or expressions).
  std::string_view match_hosts(Ctx& ctx) const;
  bool has_hosts() const { return !by_host_.empty(); }
  // Calls fn(keyword lower-cased, or empty for an expression; Ctx::url_memo id; the
  // expression, or null) for each keyword and expression, in order.
  template <class F>
  void each_scan(F&& fn) const {
    for (const Scan& s : scan_)
      fn(s.lower, s.memo, s.lower.empty() ? &patterns_[s.pattern].re : nullptr);
  }
  bool empty() const { return patterns_.empty(); }
  // True when every pattern names its host (no keywords or expressions): then the set can
  // only match hosts in hosts().
  bool host_bound() const { return scan_.empty(); }
  const Table<Hosts::Item>& hosts() const { return by_host_.items(); }
  const Pattern& pattern(std::uint32_t i) const { return patterns_[i]; }
  std::uint32_t id = kNone;  // in the policy's HostTable; kNone: not in it
  // Numbers the keywords and expressions by text (ids shared by every set of the policy), so
  // that a decision checks each text once (Ctx::url_memo).
  void number_patterns(std::unordered_map<std::string, std::uint32_t>& ids);

 private:
  // at: the patterns on the facts' host (by_host_), or null; scan: the keywords and
  // expressions too.
  std::string_view match(const Facts& f, const std::vector<std::uint32_t>* at, Ctx* ctx,
                         bool scan) const;
  // A keyword or expression as the scan of every URL reads it, side by side with the others
  // of the set: the pattern itself is read only for an expression or a match.
  struct Scan {
    std::string_view lower;      // a keyword lower-cased (never empty); empty: an expression
    std::uint32_t pattern = 0;   // in patterns_
    std::uint32_t memo = kNone;  // id of the same text policy-wide (number_patterns())
  };
  std::deque<Pattern> patterns_;
  Hosts by_host_;
  std::vector<Scan> scan_;  // keywords and regexes, in order
};

class CidrSet {
 public:
  bool add(std::string_view text, Strings& strings);
  std::string_view match(const base::IpBytes& ip) const;
  const std::vector<std::pair<base::Cidr, std::string_view>>& nets() const { return nets_; }

 private:
  std::vector<std::pair<base::Cidr, std::string_view>> nets_;
};

struct HeaderFilter {
  enum class Op : std::uint8_t { contains, equals, regex, greater_than, less_than };
  std::uint32_t id = 0;  // position among the policy's filters (Ctx::header_memo)
  std::string lower;     // contains: the value lower-cased
  void prepare();        // fills lower (once loaded)
  std::string_view name;
  std::string_view header;
  Op op = Op::contains;
  std::string_view value;
  std::int64_t number = 0;
  Regex re;
  bool match(Ctx& ctx) const;  // on the decision's request head
};
// Whether a field of the decision's request head named `header` holds for op: text is the
// value (lower-cased for contains), re the expression (regex only; may be null otherwise).
bool header_matches(Ctx& ctx, HeaderFilter::Op op, std::string_view header, std::string_view text,
                    std::int64_t number, const Regex* re);

struct Schedule {
  std::string_view name;
  std::bitset<7 * 1440> minutes;  // weekday (0 = Monday) * 1440 + minute of the day
  bool match(int weekday, int minute) const {
    return minutes.test(static_cast<std::size_t>(weekday * 1440 + minute));
  }
};

// Condition kinds, in the order a matched rule reports its deciding condition.
enum class Cond : std::uint8_t {
  content_type,
  file_type,
  domain,
  url,
  category,
  reputation,
  header,
  user,
  group,
  source,
  guest,
  listener,
  method,
  port,
  schedule,
  count
};
std::string_view cond_name(Cond c);
inline constexpr std::uint32_t bit(Cond c) {
  return 1U << static_cast<unsigned>(c);
}
inline constexpr std::uint32_t kResponseConds = bit(Cond::content_type) | bit(Cond::file_type);

struct PortRange {
  std::uint16_t lo = 0, hi = 0;
  std::string_view text;
};

// What a decision reads of every rule it checks or reports (conds to explain_values) comes
// first, in the rule's first cache line.
struct alignas(64) Rule {
  std::uint32_t conds = 0;  // bit(Cond) per condition present
  std::uint32_t index = 0;  // position in the document (0-based)
  std::string_view name;
  Action action = Action::allow;
  bool enabled = true;
  // The ids of its categories when it names at most kInlineCategories of them (as many as
  // explain_categories): explaining a decision finds the one that holds here rather than in
  // its ExplainItems.
  static constexpr std::size_t kInlineCategories = 4;
  std::uint16_t category[kInlineCategories] = {};
  // The HostTable ids (DomainSet::id) of the rule's domain sets, in order, when it has at
  // most kInlineSets of them (domain_sets of them; 0: look in domains); the id of its URL set
  // when it has one only and that one is host-bound (UrlSet::id; else kNone). Checking or
  // explaining those conditions then goes straight to the host's records.
  static constexpr std::size_t kInlineSets = 3;
  std::uint8_t domain_sets = 0;
  std::uint32_t domain_set[kInlineSets] = {kNone, kNone, kNone};
  std::uint32_t url_set = kNone;
  // Its items in Policy::Impl::explain, from `explain`: one per category it names, then one
  // per value of its first condition when that is users or groups, or per network of its
  // sources when those come first.
  std::uint32_t explain = 0;
  std::uint16_t explain_categories = 0, explain_values = 0;

  std::vector<const DomainSet*> domains;
  std::vector<const UrlSet*> urls;
  std::vector<std::pair<const CidrSet*, std::string_view>> sources;  // set, group name or ""
  std::vector<std::uint16_t> categories;
  Sensitivity reputation = Sensitivity::medium;
  bool guest = false;
  std::vector<std::string_view> users, groups, listeners, methods;
  std::vector<PortRange> ports;
  std::vector<const HeaderFilter*> headers;
  std::vector<const Schedule*> schedules;
  std::vector<std::string_view> content_types, file_types;
  int line = 0;
  std::string_view note;

  bool response() const { return (conds & kResponseConds) != 0; }
};

// What explaining a decision reads of a value a rule names (Rule::explain): the value's key as
// the decision has it (a category id; the nocase_hash of a user or group name; the id of a
// source network, Prefilter::source_id) beside the text the decision reports, so that the
// explanation reads one short array rather than the rule's lists and the names they point to.
struct ExplainItem {
  std::uint64_t key;
  std::string_view text;
  std::string_view source;  // a category's database ("name version")
};

// Per-decision scratch: what is derived from the facts once (the host's names and their
// hashes, local time, the lower-cased URL).
struct Ctx {
  explicit Ctx(const Facts& f, const HostTable* t = nullptr) : facts(f), host(f.host), table(t) {}
  Ctx(const Ctx&) = delete;
  Ctx& operator=(const Ctx&) = delete;

  const Facts& facts;
  HostKeys host;
  const HostTable* table;  // may be null
  // The HostTable record of each of the host's names (as HostKeys numbers them; null: none),
  // looked up on first use, all names at once.
  const unsigned char* const* records();
  // The first two steps of that lookup, taken early by prefetch() and candidates()
  // (records() takes those not yet taken).
  void start_records();
  void fetch_records();
  // The record of the host itself, or null.
  const unsigned char* own_record();
  // False when none of the host's names is in the organisation's lists (their records say
  // so); true when one is, or when the names were not looked up in the table.
  bool in_org_lists();
  // Calls f(record, own) for each of the host's names with a record, most specific first,
  // until f returns true; returns whether one did.
  template <class F>
  bool each_record(F&& f);
  bool have_time = false;
  int weekday = 0;
  int minute = 0;
  // What the prefilter looks the facts up under, computed once (prefetch()): the hashes of
  // the user, the method, the listener and the first kMaxGroups groups, and the client's
  // interval among the policy's networks (none: no networks).
  struct Keys {
    bool ready = false;
    std::uint64_t user = 0, method = 0, listener = 0;
    static constexpr std::size_t kMaxGroups = 16;
    std::uint64_t groups[kMaxGroups];
    std::size_t source_interval = ~std::size_t{0};
  } keys;
  // The URL lower-cased (ASCII) for keyword patterns, made on first use; empty when longer
  // than the buffer (the keywords then compare case-insensitively in place).
  std::string_view lower_url();
  // The value of field i of the request head lower-cased (ASCII), made on first use, for the
  // header filters; an empty view (no data) when it does not fit. *ascii: whether every byte
  // of the value is ASCII.
  std::string_view lower_field(std::size_t i, bool* ascii);
  // Whether the lower-cased URL may contain text (a lower-case needle): false when one of
  // its pairs of adjacent bytes is in no place of the URL (a 1,024-bit set of byte pairs,
  // made with lower_url). Fast rejection of keywords.
  bool url_may_contain(std::string_view text) {
    if (lower_url().data() == nullptr) return true;
    for (std::size_t i = 0; i + 1 < text.size(); ++i) {
      const unsigned h = pair_slot(text[i], text[i + 1]);
      if (!((url_pairs_[h >> 6] >> (h & 63)) & 1)) return false;
    }
    return true;
  }
  // Whether the URL may contain one of texts (lower-case).
  bool url_may_contain_one(const std::vector<std::string>& texts) {
    if (lower_url().data() == nullptr || !url_ascii_) return true;
    for (const auto& t : texts)
      if (url_may_contain(t)) return true;
    return false;
  }

  // Results of checks that many rules share, by id, computed once per decision: URL keywords
  // and expressions (UrlSet::Scan::memo), header filters (HeaderFilter::id).
  template <std::uint32_t kIds>
  class Memo {
    static_assert(kIds / 64 <= 32);

   public:
    template <class F>
    bool get(std::uint32_t id, F&& check) {
      if (id >= kIds) return check();
      const std::size_t w = id >> 6;
      const std::uint64_t b = std::uint64_t{1} << (id & 63);
      if (!((started_ >> w) & 1)) {  // the word's first result: its bits start cleared
        started_ |= 1U << w;
        known_[w] = value_[w] = 0;
      } else if (known_[w] & b) {
        return (value_[w] & b) != 0;
      }
      const bool v = check();
      known_[w] |= b;
      if (v) value_[w] |= b;
      return v;
    }

   private:
    // A decision uses few of the words: each is cleared when first used, not up front.
    std::uint32_t started_ = 0;  // bit per word of known_ and value_ in use
    std::uint64_t known_[kIds / 64];
    std::uint64_t value_[kIds / 64];
  };
  Memo<256> url_memo, header_memo;
  // The URL and header conditions of rules, by list (Prefilter::url_list_at, header_list_at).
  static constexpr std::uint32_t kMaxLists = 512;  // of each
  Memo<2 * kMaxLists> list_memo;

 private:
  static constexpr std::size_t kUrlBuf = 2048;
  static unsigned pair_slot(char a, char b) {
    return ((static_cast<unsigned char>(a) * 37U) ^ static_cast<unsigned char>(b)) & 1023U;
  }
  int host_stage_ = 0;  // HostTable lookup steps done: 1 slots, 2 records asked for, 3 found
  std::uint32_t host_slots_[HostKeys::kMax];
  const unsigned char* records_[HostKeys::kMax];
  int url_state_ = 0;      // 0: not made yet, 1: made, 2: too long
  bool url_ascii_ = true;  // no byte of the URL is 0x80 or above
  std::uint64_t url_pairs_[16];
  std::size_t url_len_ = 0;
  char url_[kUrlBuf];
  static constexpr std::size_t kFields = 32, kFieldBuf = 4096;
  std::uint32_t fields_made_ = 0;  // bit per field of lower_field() made
  std::uint32_t fields_used_ = 0;  // of field_buf_
  struct Field {
    std::uint16_t at, len;
    bool fits, ascii;
  } field_[kFields];
  char field_buf_[kFieldBuf];
};

// Candidate rules of one phase. Each rule is posted under one key of its most selective
// indexable condition (domain, URL host, category, user, group, port); rules with none of
// them are in `others`. decide() merges the postings the facts hit with `others`, in rule
// order; every candidate is still checked in full. All vectors hold ascending rule indices.
struct PhaseIndex {
  using Posting = std::vector<std::uint32_t>;
  struct DomainPost {
    Posting of[3];  // per DomainSet::Kind
  };
  std::unordered_map<std::string_view, DomainPost> by_domain;
  std::unordered_map<std::string_view, Posting> by_url_host;
  std::vector<Posting> by_category;                        // category id -> rules
  std::unordered_map<std::string_view, Posting> by_user;   // lower-case
  std::unordered_map<std::string_view, Posting> by_group;  // lower-case
  std::unordered_map<std::uint16_t, Posting> by_port;
  Posting others;
  Posting all;
};

// Candidate prefilter over all enabled rules (both phases), for policies of up to 16,384
// rules. Condition kinds it indexes: domain, URL host, category, user, group, source network,
// port ("key" kinds: per key, a posting of the rules whose condition holds for it), and guest,
// reputation, method, listener, schedule ("context" kinds: a few values per policy, checked
// per rule from Prefilter::Info). URL keywords and expressions, port ranges wider than 1,024
// ports, header filters, content and file types are not indexed.
//
// Each rule is *anchored* on one of its indexed conditions, the one least likely to hold (a
// domain rather than a method), or on two key kinds at once (a network and a category: the
// rule is found under the pair of keys); rules with none are `unanchored`. A decision:
//   1. takes the union of the anchored postings the facts hit (the host's names through
//      HostKeys, the user, the groups, the client's networks...) and the unanchored rules: a
//      rule whose anchor does not hold cannot match, so this leaves a few dozen rules out of
//      thousands;
//   2. checks each of those on its other indexed conditions: context kinds against bitmasks
//      computed once per decision, key kinds against the postings the facts hit;
//   3. leaves the rules left, in rule order, to a full check of the conditions the tables do
//      not decide (Info::rest, usually none; URL paths, keywords and expressions, header
//      filters...). The indexed kinds are exact: a rule left in holds them.
// Decision-time sets live on the stack (kMaxWords words); a larger policy uses the PhaseIndex.
struct Prefilter {
  static constexpr std::size_t kMaxWords = 256;  // 16,384 rules
  static constexpr std::size_t kMaxHits = 256;   // postings one decision may hit; beyond, the
                                                 // kind is not filtered (and checked in full)
  static constexpr std::size_t kMaxSets = 63;    // distinct method, listener or schedule lists
                                                 // checked per rule; beyond, through postings
  using Bits = Table<std::uint64_t>;
  // Rules under one key, ascending: in `ids` (or `entries` for anchored postings), or a bitset
  // of `words` words in `bits` when they are many (more than max(words / 4, 32)). Postings
  // live in these pools, those of one key side by side; a posting of one rule (most pair
  // postings) holds it in place of its offset, so that reading it costs no other fetch.
  struct Posting {
    static constexpr std::uint32_t kDense = 0x80000000U;
    static constexpr std::uint32_t kInPlace = 0x40000000U;
    std::uint32_t off = 0;  // into ids or entries, (kDense) into bits, or (kInPlace) the rule:
                            // the bytes of its Entry (anchored) or of its number
    std::uint32_t n = 0;    // rules, | kDense for a bitset, | kInPlace for one rule in `off`
    bool empty() const { return n == 0; }
    bool dense() const { return (n & kDense) != 0; }
    bool in_place() const { return (n & kInPlace) != 0; }
    std::uint32_t count() const { return n & ~(kDense | kInPlace); }
  };
  // The rules whose condition of one kind holds for one key: those anchored on that kind, and
  // the others (`all`; a rule is never checked through the postings of its anchor's kind).
  struct Post {
    Posting all, anchored;
    std::uint32_t id = 0;  // key kinds: names the key in pair anchors
  };
  // Rules anchored on two key kinds at once (a source network and a category, say): they are
  // candidates only when both hold, found in `pair_postings` under the ids of the two keys'
  // posts.
  struct Pair {
    Cond a = Cond::count, b = Cond::count;  // kind(a) < kind(b)
    Bits all;  // every rule anchored on the pair (when the facts cannot be told)
  };
  // The postings of every pair anchor, keyed by (id of a's post) << 32 | (id of b's post):
  // open addressing, at most half full, each slot holding its key (never 0: post ids start at
  // 1) beside the posting, so that a lookup reads one slot, rarely two. Most pairs a decision
  // looks up hold no rule: a BlockedFilter answers them first. A decision looks up all
  // its pairs together, in steps, so that the memory of every lookup is asked for at once:
  // hash(), prefetch_filter(); may_hold(), prefetch_slot(); find().
  class PairIndex {
   public:
    struct Slot {
      std::uint64_t key = 0;  // 0: empty
      Posting posting;
    };
    void build(const std::vector<Slot>& items);
    template <class F>
    void each_table(F&& f) {
      f(slots_);
      filter_.each_table(f);
    }
    static std::uint64_t hash(std::uint64_t key) {
      return hash_finish(key * 0x9e3779b97f4a7c15ULL);
    }
    void prefetch_filter(std::uint64_t h) const { filter_.prefetch(h); }
    bool may_hold(std::uint64_t h) const { return !slots_.empty() && filter_.may_hold(h); }
    void prefetch_slot(std::uint64_t h) const { __builtin_prefetch(&slots_[h >> shift_]); }
    // The posting under key (hash h, may_hold(h)), or null.
    const Posting* find(std::uint64_t key, std::uint64_t h) const {
      for (std::size_t i = h >> shift_;; i = (i + 1) & (slots_.size() - 1)) {
        const Slot& s = slots_[i];
        if (s.key == key) return &s.posting;
        if (s.key == 0) return nullptr;
      }
    }

   private:
    Table<Slot> slots_;  // power of two
    BlockedFilter filter_;
    unsigned shift_ = 64;
  };
  struct DomainPost {
    Post of[3];  // domain conditions, per DomainSet::Kind
    Post url;    // URL conditions whose patterns all name their host: this host
  };
  struct NetKey {
    std::uint64_t hi = 0, lo = 0;
    bool operator==(const NetKey&) const = default;
  };
  struct SourceKey {
    std::uint32_t prefix = 0;  // 0..128, in the IPv4-mapped space
    NetKey net;                // masked network
    bool operator==(const SourceKey&) const = default;
  };
  // Per rule: what remains to check once its anchor holds. No member initialisers (Info{}
  // zeroes): arrays of Entry on the stack are left uninitialised.
  struct Info {
    std::uint32_t rest;  // bit(Cond): other conditions, checked in full on the Rule
    std::uint16_t url_list, header_list;      // 0: none; else 1 + the rule's URL sets (not
                                              // host-bound) / header filters, in url_list_at /
                                              // header_list_at
    std::uint16_t keys;                       // bit(Cond): key kinds to check through postings
    std::uint8_t context;                     // non-zero when one of the following is set
    std::uint8_t guest;                       // 0: not checked here; else 1 + the value wanted
    std::uint8_t reputation;                  // 0: not checked here; else 1 + the Sensitivity
    std::uint8_t method, listener, schedule;  // 0: not checked here; else 1 + set
  };

  // A rule of a sparse anchored posting, with its Info as an index into `infos` (the distinct
  // Info values of the policy, those of the most rules first: few, and read by every
  // decision): candidates come with what remains to check, read in sequence rather than from
  // `info` at random.
  struct Entry {
    std::uint16_t rule;  // below 16,384 (kMaxWords)
    std::uint16_t info;
  };
  // A candidate of a decision with its Info (Candidates).
  struct Candidate {
    std::uint32_t rule;
    Info info;
  };

  // Where the rules of posting v (not dense) are: Entry items (of_entries: an anchored
  // posting) or 16-bit numbers.
  const unsigned char* rules_at(const Posting& v, bool of_entries) const {
    if (v.in_place()) return reinterpret_cast<const unsigned char*>(&v.off);
    return of_entries ? reinterpret_cast<const unsigned char*>(entries.data() + v.off)
                      : reinterpret_cast<const unsigned char*>(ids.data() + v.off);
  }

  bool usable = false;  // rule count fits kMaxWords
  std::size_t words = 0;
  Bits request, response;        // enabled rules of each phase
  std::uint32_t active = 0;      // bit(Cond) per kind with at least one indexed rule
  std::uint32_t anchors = 0;     // bit(Cond) per kind at least one rule is anchored on
  Table<Info> info;              // per rule
  Table<Info> infos;             // distinct values of `info`, those with nothing to check first
  std::uint16_t sure_infos = 0;  // infos[0, sure_infos): nothing to check beyond the context
  Table<std::uint16_t> ids;      // posting pools: rules of `all` postings,
  Table<Entry> entries;          // of anchored postings,
  Bits bits;                     // bitsets of either
  Bits anchored[static_cast<int>(Cond::count)];  // every rule anchored on a kind
  Table<Pair> pairs;
  PairIndex pair_postings;
  Posting unanchored;

  FlatMap<std::string_view, DomainPost> by_domain;  // domain (suffix_hash) -> rules; moved
                                                    // into HostTable records once built
  Table<Post> by_category;                          // category id -> rules
  FlatMap<std::string_view, Post> by_user;          // lower-case, nocase_hash
  FlatMap<std::string_view, Post> by_group;         // lower-case, nocase_hash
  NameTable<Post> user_names, group_names;          // the same, for decisions
  FlatMap<std::uint16_t, Post> by_port;
  FlatMap<SourceKey, Post> by_source;  // network (prefix length, masked address) -> rules
  // The address space cut where networks start or end: the sorted starts of its intervals
  // (the first is 0), stored in breadth-first (Eytzinger) order from index 1, with each
  // one's place in sorted order. The search for a client's interval fetches the nodes a cache
  // line holds, levels down (two here, four in source_tree4), while it compares, instead of
  // waiting for each level in turn.
  Table<NetKey> source_tree;
  Table<std::uint32_t> source_rank;
  // The same for IPv4 clients in a quarter of the memory: the starts within ::ffff:0:0/96 as
  // 32-bit addresses, from index 1 in the same order, with each one's place among them; the
  // first of them is start number source_base4 (those below are IPv6).
  Table<std::uint32_t> source_tree4, source_rank4;
  std::uint32_t source_base4 = 0;
  Table<std::uint32_t> source_first;  // per interval (+ one): its first in source_nets
  Table<std::uint32_t> source_nets;   // by_source items covering each interval
  // The same per interval, as copies of the networks' posts (outer first) in one cache line,
  // which a decision asks for as soon as it knows the interval and reads without going
  // through source_first, source_nets and by_source; an interval held by more than kNest
  // networks is read through those.
  static constexpr std::size_t kNest = 3;
  static constexpr std::uint32_t kOverflow = 0xffffffffU;
  struct alignas(64) SourceGroup {
    Post post[kNest];
    std::uint32_t count = 0;  // posts in `post`, or kOverflow
  };
  Table<SourceGroup> source_groups;
  // Calls stop(post) for the post of each network holding source interval `interval`, outer
  // first, until one returns true; whether one did.
  template <class F>
  bool each_holding(std::size_t interval, F&& stop) const {
    const SourceGroup& g = source_groups[interval];
    if (g.count != kOverflow) {
      for (std::uint32_t k = 0; k < g.count; ++k)
        if (stop(g.post[k])) return true;
      return false;
    }
    for (std::uint32_t j = source_first[interval]; j < source_first[interval + 1]; ++j)
      if (stop(by_source.items()[source_nets[j]].value)) return true;
    return false;
  }
  // The Post id of network `net` in by_source (0: none): what explaining a rule's source
  // condition matches against the networks holding the client (Rule::explain).
  std::uint32_t source_id(const base::Cidr& net) const;
  // The text of the first of n networks (ExplainItems keyed by source_id) that holds the
  // clients of source interval `interval`; empty when none does.
  std::string_view first_holding(const ExplainItem* items, std::uint16_t n,
                                 std::size_t interval) const;
  // Context kinds: postings (for anchors, and for checks when there are more than kMaxSets
  // lists), and per key the method / listener / schedule lists (bit per set) it satisfies.
  FlatMap<std::string_view, Post> by_method;    // lower-case, nocase_hash
  FlatMap<std::string_view, Post> by_listener;  // exact, suffix_hash
  Post by_guest[2];                             // guest = false, true
  Post by_reputation[5];                        // per Reputation level of the facts
  Table<std::pair<const Schedule*, Post>> by_schedule;
  // Bit 1 + id per list (Info's numbering; bit 0 stays clear: the decision sets it).
  FlatMap<std::string_view, std::uint64_t> method_sets;    // lower-case, nocase_hash
  FlatMap<std::string_view, std::uint64_t> listener_sets;  // exact, suffix_hash
  Table<std::uint16_t> minute_class;                       // weekday * 1440 + minute -> class
  Table<std::uint64_t> class_sets;                         // class -> schedule lists holding
  // Distinct lists of URL sets and of header filters that rules name (Info::url_list,
  // header_list): many rules share one, checked once per decision (Ctx::list_memo). A URL
  // list is kept as what checking it reads, side by side in one array (its checks from
  // url_list_at[id] to url_list_at[id + 1]) rather than the sets, their patterns and the
  // keywords' bytes: for each set of the list, its patterns on the host (when it has some),
  // then its keywords and expressions.
  struct UrlCheck {
    enum Kind : std::uint8_t { hosts, keyword, expression };
    static constexpr std::size_t kInline = 15;
    const void* ref;     // hosts: the UrlSet; expression: its Regex; keyword: its bytes
    std::uint32_t memo;  // Ctx::url_memo id of a keyword or expression
    std::uint32_t size;  // keyword length
    Kind kind;
    char inline_keyword[kInline];  // the keyword (lower-case) when it fits
    std::string_view text() const {
      return {size <= kInline ? inline_keyword : static_cast<const char*>(ref), size};
    }
  };
  Table<UrlCheck> url_checks;
  Table<std::uint32_t> url_list_at;
  // A header list likewise (its checks from header_list_at[id] to header_list_at[id + 1]):
  // each filter's header name and value in one line; the filter itself is read only for an
  // expression, or when name and value do not fit in the line.
  struct alignas(64) HeaderCheck {
    static constexpr std::size_t kInline = 40;
    const HeaderFilter* filter;
    std::int64_t number;
    std::uint32_t memo;  // HeaderFilter::id (Ctx::header_memo)
    HeaderFilter::Op op;
    bool fits;  // name and value are in bytes
    std::uint8_t name_len, value_len;
    char bytes[kInline];  // the header's name, then the value (lower-cased for contains)
    bool match(Ctx& ctx) const;
  };
  static_assert(sizeof(HeaderCheck) == 64);
  Table<HeaderCheck> header_checks;
  Table<std::uint32_t> header_list_at;

  template <class F>
  void each_table(F&& f) {
    for (Bits* b : {&request, &response, &bits}) f(*b);
    for (Bits& b : anchored) f(b);
    for (Pair& pr : pairs) f(pr.all);
    f(pairs);
    f(info);
    f(infos);
    f(ids);
    f(entries);
    pair_postings.each_table(f);
    f(by_category);
    user_names.each_table(f);
    group_names.each_table(f);
    by_port.each_table(f);
    by_source.each_table(f);
    by_method.each_table(f);
    by_listener.each_table(f);
    method_sets.each_table(f);
    listener_sets.each_table(f);
    for (auto* t : {&source_rank, &source_tree4, &source_rank4, &source_first, &source_nets}) f(*t);
    f(source_tree);
    f(source_groups);
    f(by_schedule);
    f(minute_class);
    f(class_sets);
    f(url_checks);
    f(url_list_at);
    f(header_checks);
    f(header_list_at);
  }
};

// Every name a host is looked up under, policy-wide, with one record per name holding what
// each host-keyed structure has for it: the entries of the domain sets (the organisation's
// lists, the domain lists, the rules' literal domains), the URL sets' patterns on that host,
// and the prefilter's domain and URL-host postings. A decision looks each of the host's names
// up once (Ctx::records()), every lookup at once so that their memory is fetched together,
// and every list, condition and posting is then answered from the records.
//
// A record is a run of bytes in one array, its parts side by side, what every decision on
// the name reads first: Head, the name, a DomainRef per domain set holding the name, a UrlRef
// per URL set with patterns on that host (both ascending by set: the organisation's lists
// first), the prefilter's postings (kPostings of them, rules in place: Prefilter::Entry items
// for the anchored ones, rule numbers (16 bits) for the others; a bitset posting as an offset into
// Prefilter::bits); then what only a match reads: the domain entries as written
// (std::string_view) and the URL patterns (UrlPattern). A record starts a cache line, so
// that Head and a name of up to 32 bytes are read together. Slots (open addressing, at most
// half full) hold 32 bits of the name's suffix_hash and the record; a blocked Bloom filter in
// front of them answers most names listed nowhere from one word.
class HostTable {
 public:
  static constexpr int kPostings = 8;  // per Prefilter::DomainPost: anchored of[0..2], url,
                                       // then all of[0..2], url
  struct Head {
    std::uint16_t key_len;  // at most 253 (normalise_host)
    std::uint16_t flags;    // kOrgLists
    std::uint32_t domain_refs, url_refs;
    std::uint32_t tail;          // where the entries start (from the record)
    std::uint32_t patterns_at;   // where the URL patterns start (from the record)
    std::uint16_t n[kPostings];  // rules; | kDense: a bitset (one u32: offset into bits)
  };
  static constexpr std::uint16_t kDense = 0x8000;
  // Head::flags: the name is in the organisation's approved or blocked lists (an entry of
  // their domains, or URL patterns on that host).
  static constexpr std::uint16_t kOrgLists = 1;
  struct DomainRef {
    std::uint32_t set;    // DomainSet::id
    std::uint32_t kinds;  // bit per DomainSet::Kind present | (its first entry in the tail) << 3
  };
  struct UrlRef {
    std::uint32_t set;       // UrlSet::id
    std::uint32_t patterns;  // how many
    std::uint32_t first;     // its first UrlPattern in the tail
  };
  struct UrlPattern {  // a prefix or exact pattern of UrlSet
    std::string_view path, text;
    std::uint16_t port;   // 0: any
    std::uint8_t exact;   // 1: exact, 0: prefix
    std::uint8_t scheme;  // 0: any, 1: http, 2: https
  };
  // A record read in place.
  class Record {
   public:
    explicit Record(const unsigned char* p) : p_(p) { std::memcpy(&head_, p, sizeof head_); }
    bool in_org_lists() const { return (head_.flags & kOrgLists) != 0; }
    std::string_view key() const {
      return {reinterpret_cast<const char*>(p_ + sizeof(Head)), head_.key_len};
    }
    std::uint16_t count(int k) const { return head_.n[k]; }
    // The data of posting k (rules or the bitset offset).
    const unsigned char* posting(int k) const {
      std::size_t at = refs_start() + std::size_t{head_.domain_refs} * sizeof(DomainRef) +
                       std::size_t{head_.url_refs} * sizeof(UrlRef);
      for (int j = 0; j < k; ++j) at += posting_bytes(j);
      return p_ + at;
    }
    // The entry of the domain set `set` under this name, of kind first, else of kind second;
    // false when it has neither.
    bool domain(std::uint32_t set, int first, int second, std::string_view& out) const;
    // The patterns of the URL set `set` on this host: n UrlPattern items from at; false when
    // it has none.
    bool url_patterns(std::uint32_t set, const unsigned char*& at, std::uint32_t& n) const;

   private:
    std::size_t refs_start() const { return (sizeof(Head) + head_.key_len + 3) & ~std::size_t{3}; }
    std::size_t url_start() const { return head_.patterns_at; }
    std::size_t posting_bytes(int k) const;
    const unsigned char* p_;
    Head head_;
  };

  // Building (HostTable::build in policy_hosts.cpp).
  void build(Policy::Impl& p);
  // The record of name (hash suffix_hash(name)), or null.
  const unsigned char* find(std::uint64_t h, std::string_view name) const;
  // The records of every name of host, out[i] for host.name(i) (host.complete(), not
  // empty()), in three steps, so that the memory of every name is asked for before any is
  // waited on, and other work can go on between the steps: the filter, then asks for the
  // first slot of each name (slot[i], kNoSlot: none); the slot whose tag matches, then asks
  // for its record; the records' names compared.
  static constexpr std::uint32_t kNoSlot = ~std::uint32_t{0};
  void lookup_slots(const HostKeys& host, std::uint32_t* slot) const;
  void lookup_records(const HostKeys& host, std::uint32_t* slot) const;
  void lookup_names(const HostKeys& host, const std::uint32_t* slot,
                    const unsigned char** out) const;
  bool empty() const { return index_.empty(); }
  template <class F>
  void each_table(F&& f) {
    index_.each_table(f);
    f(arena_);
    f(texts_);
  }

 private:
  struct alignas(64) Line {
    unsigned char bytes[64];
  };
  const unsigned char* at(std::uint32_t rec) const { return arena_[rec - 1].bytes; }
  bool is(std::uint32_t rec, std::string_view name) const { return Record(at(rec)).key() == name; }
  SlotIndex index_;                // refs: 1 + the record's first line in arena_
  Table<Line> arena_;              // the records, each from the start of a cache line
  Table<std::string_view> texts_;  // domain entries as written, of every set
};

template <class F>
bool Ctx::each_record(F&& f) {
  if (!table || table->empty()) return false;
  if (host.complete()) {
    const unsigned char* const* r = records();
    for (std::size_t i = host.size(); i-- > 0;)
      if (r[i] && f(r[i], host.own(i))) return true;
    return false;
  }
  return host.each([&](std::string_view name, std::uint64_t h, bool own) {
    const unsigned char* rec = table->find(h, name);
    return rec && f(rec, own);
  });
}

// The candidates of one decision (both phases), in rule order: usually a list of rules with
// their Info (`listed`); else (a bitset posting hit, or more than kMaxList rules) a bitset
// over the rules and its non-zero words. On the stack; filled by candidates().
struct Candidates {
  static constexpr std::size_t kMaxList = 256;
  std::uint32_t unverified = 0;  // kinds not filtered: checked in full for every candidate
  bool listed = false;
  std::size_t count = 0;  // entries in entry[] (listed)
  Prefilter::Candidate entry[kMaxList];
  std::size_t words = 0;  // non-zero words in word[] (not listed)
  std::uint16_t word[Prefilter::kMaxWords];
  std::uint64_t bits[Prefilter::kMaxWords];  // only the words in word[] are meaningful
  std::uint64_t has[Prefilter::kMaxWords];   // candidates()'s scratch
};

void build_prefilter(Policy::Impl& p);  // policy_prefilter.cpp
// Fills ctx.keys and asks for the first memory of every lookup the decision makes on the
// facts (the host's names in the HostTable, the user, the groups, the client's networks, the
// method, listener and port), so that they arrive together rather than one after the other:
// called first (candidates() calls it when it was not).
void prefetch(const Policy::Impl& p, Ctx& ctx);
void candidates(const Policy::Impl& p, Ctx& ctx, Candidates& out);
void need_time(Ctx& ctx, const TimeZone& tz);  // fills weekday and minute once

}  // namespace pc::policy::detail

namespace pc::policy {

struct Policy::Impl {
  // Holds the tables decisions read once pack() has moved them in: first, so that it goes last.
  base::Arena arena;
  Settings settings;
  TimeZone tz;
  std::uint64_t revision = 0;
  std::vector<std::filesystem::path> inputs;
  std::vector<std::string> warnings;
  std::string file;

  detail::Strings strings;
  std::deque<detail::DomainSet> domain_sets;
  std::deque<detail::UrlSet> url_sets;
  std::deque<detail::CidrSet> cidr_sets;
  std::deque<detail::HeaderFilter> header_filters;
  std::deque<detail::Schedule> schedules;

  detail::DomainSet approved_domains, blocked_domains;
  detail::UrlSet approved_urls, blocked_urls;

  detail::Table<detail::Rule> rules;
  detail::Table<detail::ExplainItem> explain;  // Rule::explain
  Action default_action = Action::allow;
  detail::PhaseIndex request_index, response_index;
  detail::Prefilter prefilter;
  detail::HostTable hosts;  // built after the prefilter (it takes the domain postings)

  std::shared_ptr<const CategoryDb> categories;   // databases + custom categories; may be null
  std::vector<std::string_view> category_source;  // category id -> "name version"
  std::shared_ptr<const CategoryDb> reputation;   // feeds; may be null
  std::vector<Reputation> reputation_of;          // reputation db category id -> level

  void build_indexes();
  // Moves every table a decision reads into `arena` (build_indexes() does, last).
  void pack();
  template <class F>
  void each_table(F&& f) {
    f(rules);
    f(explain);
    prefilter.each_table(f);
    hosts.each_table(f);
  }
};

}  // namespace pc::policy
