// The candidate prefilter (detail::Prefilter): built once per policy by build_prefilter(),
// used by candidates() on every decision. See policy_impl.h for the scheme.
#include <algorithm>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <cstring>
#include <map>
#include <unordered_map>

#include "base/strings.h"
#include "policy/policy_impl.h"

namespace pc::policy::detail {
namespace {

using Post = Prefilter::Post;
using Posting = Prefilter::Posting;

constexpr int kind(Cond c) {
  return static_cast<int>(c);
}

// The kinds the prefilter indexes (the first breaks a tie between equally good anchors).
constexpr Cond kIndexed[] = {Cond::domain,     Cond::url,      Cond::user,     Cond::group,
                             Cond::source,     Cond::category, Cond::port,     Cond::schedule,
                             Cond::reputation, Cond::method,   Cond::listener, Cond::guest};
constexpr std::uint32_t kContextKinds = bit(Cond::guest) | bit(Cond::reputation) |
                                        bit(Cond::method) | bit(Cond::listener) |
                                        bit(Cond::schedule);
constexpr Reputation kLevels[] = {Reputation::dangerous, Reputation::highly_suspicious,
                                  Reputation::suspicious, Reputation::unknown, Reputation::clean};

// The address as two big-endian 64-bit halves.
Prefilter::NetKey net_key(const base::IpBytes& ip) {
  Prefilter::NetKey k;
  std::memcpy(&k.hi, ip.b.data(), 8);
  std::memcpy(&k.lo, ip.b.data() + 8, 8);
  if constexpr (std::endian::native == std::endian::little) {
    k.hi = __builtin_bswap64(k.hi);
    k.lo = __builtin_bswap64(k.lo);
  }
  return k;
}

Prefilter::NetKey net_mask(int prefix) {
  auto part = [](int bits) -> std::uint64_t {
    if (bits <= 0) return 0;
    if (bits >= 64) return ~std::uint64_t{0};
    return ~std::uint64_t{0} << (64 - bits);
  };
  return {part(prefix), part(prefix - 64)};
}

Prefilter::NetKey masked(const Prefilter::NetKey& k, const Prefilter::NetKey& m) {
  return {k.hi & m.hi, k.lo & m.lo};
}

std::uint64_t source_hash(const Prefilter::SourceKey& k) {
  std::uint64_t h = kHashSeed;
  h = (h ^ k.net.hi) * 0x100000001b3ULL;
  h = (h ^ k.net.lo) * 0x100000001b3ULL;
  h = (h ^ k.prefix) * 0x100000001b3ULL;
  return hash_finish(h);
}

Prefilter::SourceKey source_key(const base::Cidr& net) {
  return {static_cast<std::uint32_t>(net.prefix), masked(net_key(net.net), net_mask(net.prefix))};
}

std::uint64_t port_hash(std::uint16_t port) {
  return hash_finish(kHashSeed ^ port);
}

// Key kinds a rule may be anchored on two at a time, and the most key pairs one rule may
// post (a rule with 4 networks and 3 categories posts 12).
constexpr Cond kPairKinds[] = {Cond::user, Cond::group, Cond::source, Cond::category, Cond::port};
constexpr std::size_t kMaxPairKeys = 64;

std::size_t key_count(const Rule& r, Cond c) {
  std::size_t n = 0;
  switch (c) {
    case Cond::user:
      return r.users.size();
    case Cond::group:
      return r.groups.size();
    case Cond::source:
      for (const auto& [set, group] : r.sources) n += set->nets().size();
      return n;
    case Cond::category:
      return r.categories.size();
    case Cond::port:
      for (const auto& pr : r.ports) n += std::size_t{pr.hi} - pr.lo + 1;
      return n;
    default:
      return kMaxPairKeys + 1;
  }
}

void set_bit(std::uint64_t* bits, std::uint32_t i) {
  bits[i >> 6] |= std::uint64_t{1} << (i & 63);
}

// How likely a rule's condition of kind c is to hold for a request, roughly in percent: the
// rule is anchored on its least likely indexed condition. Only the speed depends on it.
double anchor_cost(const Rule& r, Cond c) {
  switch (c) {
    case Cond::domain:
    case Cond::url:
      return 0.01;
    case Cond::user:
      return 0.05 * static_cast<double>(r.users.size());
    case Cond::group:
      return 0.5 * static_cast<double>(r.groups.size());
    case Cond::source: {
      double sum = 0;
      for (const auto& [set, group] : r.sources)
        for (const auto& [net, text] : set->nets()) {
          // IPv4 /8 (a whole site) ~ 100 %, each further bit halves it; IPv6 from /16.
          int len = net.prefix >= 96 ? net.prefix - 96 - 8 : net.prefix - 16;
          sum +=
              len <= 0 ? 100.0 : 100.0 / static_cast<double>(std::uint64_t{1} << std::min(len, 60));
        }
      return sum;
    }
    case Cond::category:
      return 3.0 * static_cast<double>(r.categories.size());
    case Cond::reputation:
      return r.reputation == Sensitivity::low ? 0.5 : r.reputation == Sensitivity::medium ? 1 : 90;
    case Cond::port: {
      double sum = 0;
      for (const auto& pr : r.ports) {
        bool web = (pr.lo <= 80 && 80 <= pr.hi) || (pr.lo <= 443 && 443 <= pr.hi);
        sum += web ? 50.0 : 0.5;
      }
      return sum;
    }
    case Cond::schedule: {
      std::bitset<7 * 1440> all;
      for (const auto* s : r.schedules) all |= s->minutes;
      return 100.0 * static_cast<double>(all.count()) / (7 * 1440);
    }
    case Cond::method: {
      double sum = 0;
      for (auto m : r.methods)
        sum += base::iequals(m, "GET")                                   ? 70
               : base::iequals(m, "POST") || base::iequals(m, "CONNECT") ? 15
                                                                         : 1;
      return sum;
    }
    case Cond::listener:
      return 50.0 * static_cast<double>(r.listeners.size());
    case Cond::guest:
      return r.guest ? 20 : 80;
    default:
      return 1e9;
  }
}

// The map's key equal to text lower-cased, added to strings when new.
template <class V>
std::pair<std::uint64_t, std::string_view> lower_key(const FlatMap<std::string_view, V>& map,
                                                     std::string_view text, std::string& buf,
                                                     Strings& strings) {
  buf = base::to_lower(text);
  const std::uint64_t h = nocase_hash(buf);
  if (map.find(h, std::string_view(buf))) return {h, buf};
  return {h, strings.add(buf)};
}

template <class F>
void each_post(Prefilter& f, F&& fn) {
  for (auto& item : f.by_domain.items()) {
    for (auto& p : item.value.of) fn(p);
    fn(item.value.url);
  }
  for (auto& p : f.by_category) fn(p);
  for (auto* m : {&f.by_user, &f.by_group, &f.by_method, &f.by_listener})
    for (auto& item : m->items()) fn(item.value);
  for (auto& item : f.by_port.items()) fn(item.value);
  for (auto& p : f.by_guest) fn(p);
  for (auto& p : f.by_reputation) fn(p);
  for (auto& [s, p] : f.by_schedule) fn(p);
  for (auto& item : f.by_source.items()) fn(item.value);
}

// Numbers distinct lists (of methods, listeners, schedules) from 0.
template <class Key>
class SetIds {
 public:
  int id(const Key& k) {
    auto [it, fresh] = ids_.emplace(k, static_cast<int>(ids_.size()));
    return it->second;
  }
  std::size_t size() const { return ids_.size(); }
  const std::map<Key, int>& all() const { return ids_; }

 private:
  std::map<Key, int> ids_;
};

__extension__ using U128 = unsigned __int128;
U128 wide(const Prefilter::NetKey& k) {
  return (U128{k.hi} << 64) | k.lo;
}
Prefilter::NetKey narrow(U128 v) {
  return {static_cast<std::uint64_t>(v >> 64), static_cast<std::uint64_t>(v)};
}

// The sorted values [from, to) laid out from index 1 of `tree` in breadth-first (Eytzinger)
// order, an in-order walk of the implicit tree (children of k: 2k, 2k + 1), with each one's
// place in sorted order in `rank`.
template <class It, class T, class Convert>
void breadth_first(It from, It to, Table<T>& tree, Table<std::uint32_t>& rank, Convert convert) {
  const auto n = static_cast<std::size_t>(to - from);
  tree.assign(n + 1, T{});
  rank.assign(n + 1, 0);
  std::size_t i = 0;
  auto fill = [&](auto&& self, std::size_t k) -> void {
    if (k > n) return;
    self(self, 2 * k);
    tree[k] = convert(from[static_cast<std::ptrdiff_t>(i)]);
    rank[k] = static_cast<std::uint32_t>(i++);
    self(self, 2 * k + 1);
  };
  fill(fill, 1);
}

// Cuts the address space where source networks start and end; each interval lists the
// networks holding it. Networks nest or are disjoint, so a sweep keeps them on a stack.
void build_source_intervals(Prefilter& f) {
  struct Net {
    U128 lo, hi;
    std::uint32_t item;
  };
  std::vector<Net> nets;
  const auto& items = f.by_source.items();
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto& k = items[i].key;
    const U128 lo = wide(k.net);
    const U128 size_mask = k.prefix >= 128 ? U128{0} : (~U128{0} >> k.prefix);
    nets.push_back({lo, lo | size_mask, static_cast<std::uint32_t>(i)});
  }
  // Outer networks first: by start, then by end descending.
  std::sort(nets.begin(), nets.end(),
            [](const Net& a, const Net& b) { return a.lo != b.lo ? a.lo < b.lo : a.hi > b.hi; });
  std::vector<U128> cuts;
  for (const Net& n : nets) {
    cuts.push_back(n.lo);
    if (n.hi != ~U128{0}) cuts.push_back(n.hi + 1);
  }
  cuts.push_back(0);
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  std::vector<const Net*> open;
  std::size_t next = 0;
  for (const U128 at : cuts) {
    while (!open.empty() && open.back()->hi < at) open.pop_back();
    while (next < nets.size() && nets[next].lo == at) open.push_back(&nets[next++]);
    f.source_first.push_back(static_cast<std::uint32_t>(f.source_nets.size()));
    for (const Net* n : open) f.source_nets.push_back(n->item);
  }
  f.source_first.push_back(static_cast<std::uint32_t>(f.source_nets.size()));
  breadth_first(cuts.begin(), cuts.end(), f.source_tree, f.source_rank, narrow);
  const U128 v4 = U128{0xffff} << 32;  // ::ffff:0.0.0.0
  const auto first4 = std::lower_bound(cuts.begin(), cuts.end(), v4);
  const auto end4 = std::lower_bound(first4, cuts.end(), v4 + (U128{1} << 32));
  f.source_base4 = static_cast<std::uint32_t>(first4 - cuts.begin());
  breadth_first(first4, end4, f.source_tree4, f.source_rank4,
                [](U128 c) { return static_cast<std::uint32_t>(c); });
}

}  // namespace

std::uint32_t Prefilter::source_id(const base::Cidr& net) const {
  const SourceKey key = source_key(net);
  const Post* post = by_source.find(source_hash(key), key);
  return post ? post->id : 0;
}

std::string_view Prefilter::first_holding(const ExplainItem* items, std::uint16_t n,
                                          std::size_t interval) const {
  for (std::uint16_t i = 0; i < n; ++i)
    if (each_holding(interval, [&](const Post& post) { return post.id == items[i].key; }))
      return items[i].text;
  return {};
}

namespace {

// The index in tree[1..n] (breadth-first order, Prefilter::source_tree) of the first node
// above a key, at_most(node) telling whether node <= key; 0: none. It asks for the nodes that
// fill one cache line, levels down, while it compares, and no branch depends on the key.
template <class T, class AtMost>
std::size_t first_above(const Table<T>& tree, AtMost at_most) {
  constexpr std::size_t kLine = 64 / sizeof(T);  // nodes a line holds, log2 of them levels down
  const T* t = tree.data();
  const std::size_t n = tree.size() - 1;
  std::size_t k = 1;
  while (k <= n) {
    __builtin_prefetch(t + kLine * k);
    __builtin_prefetch(t + kLine * k + kLine - 1);
    k = 2 * k + at_most(t[k]);
  }
  // The path turned left last at the first node above the key.
  return k >> __builtin_ffsll(static_cast<long long>(~k));
}

// The interval of f's source cuts holding `key`: the starts at or below it, less one (the
// first start, 0, is never above a key). An IPv4 key is searched among the 32-bit starts;
// none at or below it there: the last interval below that space.
std::size_t source_interval(const Prefilter& f, const Prefilter::NetKey& key) {
  if (key.hi == 0 && key.lo >> 32 == 0xffff) {
    const auto x = static_cast<std::uint32_t>(key.lo);
    const std::size_t k = first_above(f.source_tree4, [&](std::uint32_t c) { return c <= x; });
    return f.source_base4 + (k == 0 ? f.source_tree4.size() - 1 : f.source_rank4[k]) - 1;
  }
  const U128 v = wide(key);
  const std::size_t k =
      first_above(f.source_tree, [&](const Prefilter::NetKey& c) { return wide(c) <= v; });
  return (k == 0 ? f.source_tree.size() - 1 : f.source_rank[k]) - 1;
}

// Sorts the n distinct values of v (below 2^31; v has room for 4 more) into out, ascending:
// each value's place is the number of values below it, counted four at a time. No branch
// depends on the values, so none is mispredicted (an insertion sort of a decision's few
// dozen candidates mispredicts about once a candidate).
void sort_distinct(std::uint32_t* v, std::size_t n, std::uint32_t* out) {
#ifdef __SSE2__
  if (n > 1 && n <= 64) {
    for (std::size_t j = n; j < (n + 3) / 4 * 4; ++j) v[j] = 0x7fffffff;  // above every value
    for (std::size_t i = 0; i < n; ++i) {
      const __m128i x = _mm_set1_epi32(static_cast<int>(v[i]));
      __m128i below = _mm_setzero_si128();
      for (std::size_t j = 0; j < n; j += 4)
        below = _mm_sub_epi32(
            below, _mm_cmplt_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + j)), x));
      below = _mm_add_epi32(below, _mm_shuffle_epi32(below, 0x4e));
      below = _mm_add_epi32(below, _mm_shuffle_epi32(below, 0xb1));
      out[_mm_cvtsi128_si32(below)] = v[i];
    }
    return;
  }
#endif
  std::copy(v, v + n, out);
  std::sort(out, out + n);
}

}  // namespace

void Prefilter::PairIndex::build(const std::vector<Slot>& items) {
  std::size_t cap = 8;
  unsigned log2_cap = 3;
  while (cap < items.size() * 2) {
    cap *= 2;
    ++log2_cap;
  }
  shift_ = 64 - log2_cap;
  slots_.assign(cap, Slot{});
  filter_.reset(cap);
  for (const Slot& item : items) {
    const std::uint64_t h = hash(item.key);
    std::size_t i = h >> shift_;
    while (slots_[i].key != 0) i = (i + 1) & (cap - 1);
    slots_[i] = item;
    filter_.add(h);
  }
}

void build_prefilter(Policy::Impl& p) {
  Prefilter& f = p.prefilter;
  const std::size_t words = (p.rules.size() + 127) / 128 * 2;  // even: two words at a time
  f.words = words;
  f.usable = words <= Prefilter::kMaxWords;
  if (!f.usable) return;
  f.request.assign(words, 0);
  f.response.assign(words, 0);
  f.info.assign(p.rules.size(), Prefilter::Info{});
  for (auto& b : f.anchored) b.assign(words, 0);
  // While building, a posting's off is 1 + its list in `lists` (0: none yet).
  std::vector<std::vector<std::uint32_t>> lists;
  auto add = [&](Posting& v, std::uint32_t i) {
    if (v.off == 0) {
      lists.emplace_back();
      v.off = static_cast<std::uint32_t>(lists.size());
    }
    auto& list = lists[v.off - 1];
    if (list.empty() || list.back() != i) list.push_back(i);
  };
  std::unordered_map<const Schedule*, std::size_t> schedule_slot;
  std::string buf;
  // Per rule: the kinds indexed and its anchor (bit(Cond) of one kind or of a pair); the lists
  // of its context conditions.
  std::vector<std::uint32_t> indexed_of(p.rules.size(), 0);
  std::vector<std::uint32_t> anchor_of(p.rules.size(), 0);
  std::uint32_t next_post_id = 0;
  std::map<std::uint64_t, Posting> pair_posts;  // Prefilter::pair_postings, while building
  std::vector<std::uint32_t> key_ids[static_cast<int>(Cond::count)];  // of the current rule
  SetIds<std::vector<std::string>> method_ids, listener_ids;
  SetIds<std::vector<const Schedule*>> schedule_ids;
  std::vector<int> method_of(p.rules.size(), -1), listener_of(p.rules.size(), -1),
      schedule_of(p.rules.size(), -1);

  for (const Rule& r : p.rules) {
    if (!r.enabled) continue;
    const std::uint32_t i = r.index;
    set_bit((r.response() ? f.response : f.request).data(), i);
    auto has = [&](Cond c) { return (r.conds & bit(c)) != 0; };
    bool url_bound = true;
    for (const auto* set : r.urls) url_bound = url_bound && set->host_bound();
    std::size_t port_span = 0;
    for (const auto& pr : r.ports) port_span += std::size_t{pr.hi} - pr.lo + 1;
    std::uint32_t indexed = 0;
    Cond anchor = Cond::count;
    double best = 0;
    for (Cond c : kIndexed) {
      if (!has(c)) continue;
      if (c == Cond::url && !url_bound) continue;
      if (c == Cond::port && port_span > 1024) continue;
      indexed |= bit(c);
      double cost = anchor_cost(r, c);
      if (anchor == Cond::count || cost < best) {
        anchor = c;
        best = cost;
      }
    }
    // A pair of key kinds, when both together are much less likely (and their keys combine
    // into few pairs).
    Cond pair_a = Cond::count, pair_b = Cond::count;
    for (Cond a : kPairKinds)
      for (Cond b : kPairKinds) {
        if (kind(a) >= kind(b) || !(indexed & bit(a)) || !(indexed & bit(b))) continue;
        if (key_count(r, a) * key_count(r, b) > kMaxPairKeys) continue;
        const double cost = anchor_cost(r, a) * anchor_cost(r, b) / 100 * 4;
        if (cost < best) {
          pair_a = a;
          pair_b = b;
          best = cost;
        }
      }
    const std::uint32_t anchor_bits = pair_a != Cond::count   ? bit(pair_a) | bit(pair_b)
                                      : anchor != Cond::count ? bit(anchor)
                                                              : 0;
    if (pair_a != Cond::count) anchor = Cond::count;
    indexed_of[i] = indexed;
    anchor_of[i] = anchor_bits;
    f.active |= indexed;
    if (!anchor_bits) {
      add(f.unanchored, i);
    } else if (anchor != Cond::count) {
      set_bit(f.anchored[kind(anchor)].data(), i);
      f.anchors |= bit(anchor);
    }
    for (auto& v : key_ids) v.clear();
    // A rule anchored on c never has c checked through the postings (Info::keys leaves its
    // anchor out): `all` holds the others only.
    auto post = [&](Post& to, Cond c) {
      if (c == anchor)
        add(to.anchored, i);
      else
        add(to.all, i);
      if (to.id == 0) to.id = ++next_post_id;
      key_ids[kind(c)].push_back(to.id);
    };

    if (indexed & bit(Cond::domain))
      for (const auto* set : r.domains)
        for (const auto& item : set->slots())
          for (int k = 0; k < 3; ++k)
            if (item.value.of[k] != kNone)
              post(f.by_domain.insert(suffix_hash(item.key), item.key).of[k], Cond::domain);
    if (indexed & bit(Cond::url))
      for (const auto* set : r.urls)
        for (const auto& item : set->hosts())
          post(f.by_domain.insert(suffix_hash(item.key), item.key).url, Cond::url);
    if (indexed & bit(Cond::category))
      for (auto id : r.categories) {
        if (id >= f.by_category.size()) f.by_category.resize(std::size_t{id} + 1);
        post(f.by_category[id], Cond::category);
      }
    if (indexed & bit(Cond::user))
      for (auto u : r.users) {
        auto [h, key] = lower_key(f.by_user, u, buf, p.strings);
        post(f.by_user.insert(h, key), Cond::user);
      }
    if (indexed & bit(Cond::group))
      for (auto g : r.groups) {
        auto [h, key] = lower_key(f.by_group, g, buf, p.strings);
        post(f.by_group.insert(h, key), Cond::group);
      }
    if (indexed & bit(Cond::source))
      for (const auto& [set, group] : r.sources)
        for (const auto& [net, text] : set->nets()) {
          const Prefilter::SourceKey key = source_key(net);
          post(f.by_source.insert(source_hash(key), key), Cond::source);
        }
    if (indexed & bit(Cond::port))
      for (const auto& pr : r.ports)
        for (std::uint32_t port = pr.lo; port <= pr.hi; ++port) {
          auto key = static_cast<std::uint16_t>(port);
          post(f.by_port.insert(port_hash(key), key), Cond::port);
        }
    if (pair_a != Cond::count) {
      auto it = std::find_if(f.pairs.begin(), f.pairs.end(), [&](const Prefilter::Pair& q) {
        return q.a == pair_a && q.b == pair_b;
      });
      if (it == f.pairs.end()) {
        it = f.pairs.emplace(f.pairs.end());
        it->a = pair_a;
        it->b = pair_b;
        it->all.assign(words, 0);
      }
      for (std::uint32_t ka : key_ids[kind(pair_a)])
        for (std::uint32_t kb : key_ids[kind(pair_b)]) {
          add(pair_posts[(std::uint64_t{ka} << 32) | kb], i);
        }
      set_bit(it->all.data(), i);
    }
    if (indexed & bit(Cond::guest)) post(f.by_guest[r.guest ? 1 : 0], Cond::guest);
    if (indexed & bit(Cond::reputation))
      for (auto level : kLevels)
        if (reputation_matches(level, r.reputation))
          post(f.by_reputation[static_cast<int>(level)], Cond::reputation);
    if (indexed & bit(Cond::method)) {
      std::vector<std::string> set;
      for (auto m : r.methods) {
        auto [h, key] = lower_key(f.by_method, m, buf, p.strings);
        post(f.by_method.insert(h, key), Cond::method);
        set.push_back(base::to_lower(m));
      }
      std::sort(set.begin(), set.end());
      set.erase(std::unique(set.begin(), set.end()), set.end());
      method_of[i] = method_ids.id(set);
    }
    if (indexed & bit(Cond::listener)) {
      std::vector<std::string> set;
      for (auto l : r.listeners) {
        post(f.by_listener.insert(suffix_hash(l), l), Cond::listener);
        set.emplace_back(l);
      }
      std::sort(set.begin(), set.end());
      set.erase(std::unique(set.begin(), set.end()), set.end());
      listener_of[i] = listener_ids.id(set);
    }
    if (indexed & bit(Cond::schedule)) {
      std::vector<const Schedule*> set;
      for (const auto* s : r.schedules) {
        auto [it, fresh] = schedule_slot.emplace(s, f.by_schedule.size());
        if (fresh) f.by_schedule.emplace_back(s, Post{});
        post(f.by_schedule[it->second].second, Cond::schedule);
        set.push_back(s);
      }
      std::sort(set.begin(), set.end());
      set.erase(std::unique(set.begin(), set.end()), set.end());
      schedule_of[i] = schedule_ids.id(set);
    }
  }

  // Context kinds with few enough distinct lists are checked per rule against bitmasks.
  std::uint32_t inline_kinds = bit(Cond::guest) | bit(Cond::reputation);
  if (method_ids.size() <= Prefilter::kMaxSets) {
    inline_kinds |= bit(Cond::method);
    for (const auto& [set, id] : method_ids.all())
      for (const auto& m : set) {
        auto [h, key] = lower_key(f.method_sets, m, buf, p.strings);
        f.method_sets.insert(h, key) |= std::uint64_t{2} << id;
      }
  }
  if (listener_ids.size() <= Prefilter::kMaxSets) {
    inline_kinds |= bit(Cond::listener);
    for (const auto& [set, id] : listener_ids.all())
      for (const auto& l : set) {
        std::string_view key = p.strings.add(l);
        f.listener_sets.insert(suffix_hash(key), key) |= std::uint64_t{2} << id;
      }
  }
  if (schedule_ids.size() <= Prefilter::kMaxSets) {
    inline_kinds |= bit(Cond::schedule);
    if (schedule_ids.size() > 0) {
      // Minutes of the week with the same lists holding share a class.
      std::map<std::uint64_t, std::uint16_t> classes;
      f.minute_class.assign(7 * 1440, 0);
      for (int m = 0; m < 7 * 1440; ++m) {
        std::uint64_t holding = 0;
        for (const auto& [set, id] : schedule_ids.all())
          for (const auto* s : set)
            if (s->match(m / 1440, m % 1440)) {
              holding |= std::uint64_t{2} << id;
              break;
            }
        auto [it, fresh] =
            classes.emplace(holding, static_cast<std::uint16_t>(f.class_sets.size()));
        if (fresh) f.class_sets.push_back(holding);
        f.minute_class[static_cast<std::size_t>(m)] = it->second;
      }
    }
  }

  std::vector<std::vector<const UrlSet*>> url_lists;
  std::map<std::vector<const UrlSet*>, std::uint16_t> url_list_ids;
  std::vector<std::vector<const HeaderFilter*>> header_lists;
  std::map<std::vector<const HeaderFilter*>, std::uint16_t> header_list_ids;
  for (const Rule& r : p.rules) {
    if (!r.enabled) continue;
    const std::uint32_t i = r.index;
    Prefilter::Info& in = f.info[i];
    const std::uint32_t indexed = indexed_of[i];
    // URL conditions are indexed by host only: their paths are still checked in full.
    in.rest = r.conds & ~(indexed & ~bit(Cond::url));
    // URL conditions not bound to hosts (keywords, expressions) and header filters: by list.
    if ((r.conds & bit(Cond::url)) && !(indexed & bit(Cond::url))) {
      std::vector<const UrlSet*> sets(r.urls.begin(), r.urls.end());
      std::sort(sets.begin(), sets.end());
      sets.erase(std::unique(sets.begin(), sets.end()), sets.end());
      auto [it, fresh] = url_list_ids.emplace(sets, static_cast<std::uint16_t>(url_lists.size()));
      if (fresh && url_lists.size() < Ctx::kMaxLists) url_lists.push_back(sets);
      if (it->second < Ctx::kMaxLists) {
        in.url_list = static_cast<std::uint16_t>(1 + it->second);
        in.rest &= ~bit(Cond::url);
      }
    }
    if (r.conds & bit(Cond::header)) {
      std::vector<const HeaderFilter*> filters(r.headers.begin(), r.headers.end());
      std::sort(filters.begin(), filters.end());
      filters.erase(std::unique(filters.begin(), filters.end()), filters.end());
      auto [it, fresh] =
          header_list_ids.emplace(filters, static_cast<std::uint16_t>(header_lists.size()));
      if (fresh && header_lists.size() < Ctx::kMaxLists) header_lists.push_back(filters);
      if (it->second < Ctx::kMaxLists) {
        in.header_list = static_cast<std::uint16_t>(1 + it->second);
        in.rest &= ~bit(Cond::header);
      }
    }
    const std::uint32_t other = anchor_of[i] ? indexed & ~anchor_of[i] : 0;
    in.keys = static_cast<std::uint16_t>(other & ~(inline_kinds & kContextKinds));
    const std::uint32_t context = other & inline_kinds & kContextKinds;
    if (context & bit(Cond::guest)) in.guest = r.guest ? 2 : 1;
    if (context & bit(Cond::reputation))
      in.reputation = static_cast<std::uint8_t>(1 + static_cast<int>(r.reputation));
    if (context & bit(Cond::method)) in.method = static_cast<std::uint8_t>(1 + method_of[i]);
    if (context & bit(Cond::listener)) in.listener = static_cast<std::uint8_t>(1 + listener_of[i]);
    if (context & bit(Cond::schedule)) in.schedule = static_cast<std::uint8_t>(1 + schedule_of[i]);
    in.context = context != 0;
  }

  build_source_intervals(f);

  for (const auto& sets : url_lists) {
    f.url_list_at.push_back(static_cast<std::uint32_t>(f.url_checks.size()));
    for (const UrlSet* set : sets) {
      if (set->has_hosts()) f.url_checks.push_back({set, 0, 0, Prefilter::UrlCheck::hosts, {}});
      set->each_scan([&](std::string_view keyword, std::uint32_t memo, const Regex* re) {
        Prefilter::UrlCheck c{re, memo, 0, Prefilter::UrlCheck::expression, {}};
        if (!re) {
          c.kind = Prefilter::UrlCheck::keyword;
          c.ref = keyword.data();
          c.size = static_cast<std::uint32_t>(keyword.size());
          if (keyword.size() <= Prefilter::UrlCheck::kInline)
            std::memcpy(c.inline_keyword, keyword.data(), keyword.size());
        }
        f.url_checks.push_back(c);
      });
    }
  }
  f.url_list_at.push_back(static_cast<std::uint32_t>(f.url_checks.size()));
  for (const auto& filters : header_lists) {
    f.header_list_at.push_back(static_cast<std::uint32_t>(f.header_checks.size()));
    for (const HeaderFilter* h : filters) {
      Prefilter::HeaderCheck c{h, h->number, h->id, h->op, false, 0, 0, {}};
      const std::string_view value = h->op == HeaderFilter::Op::contains ? h->lower : h->value;
      if (h->header.size() + value.size() <= Prefilter::HeaderCheck::kInline) {
        c.fits = true;
        c.name_len = static_cast<std::uint8_t>(h->header.size());
        c.value_len = static_cast<std::uint8_t>(value.size());
        std::copy(h->header.begin(), h->header.end(), c.bytes);
        std::copy(value.begin(), value.end(), c.bytes + h->header.size());
      }
      f.header_checks.push_back(c);
    }
  }
  f.header_list_at.push_back(static_cast<std::uint32_t>(f.header_checks.size()));

  // Distinct Info values, numbered for the anchored postings: those of the most rules first,
  // so that the few lines of `infos` most candidates read stay in the cache.
  std::vector<std::uint16_t> info_id(p.rules.size(), 0);
  {
    std::map<std::string, std::vector<std::uint32_t>> rules_of;  // an Info's bytes -> its rules
    for (std::uint32_t i = 0; i < p.rules.size(); ++i)
      rules_of[std::string(reinterpret_cast<const char*>(&f.info[i]), sizeof(Prefilter::Info))]
          .push_back(i);
    std::vector<const std::vector<std::uint32_t>*> by_use;
    for (const auto& [bytes, rules] : rules_of) by_use.push_back(&rules);
    // Those with nothing to check beyond the context first, so that a candidate's number
    // tells whether it matches once its context holds.
    auto sure = [&](const std::vector<std::uint32_t>* rules) {
      const Prefilter::Info& in = f.info[rules->front()];
      return !(in.rest | in.url_list | in.header_list | in.keys);
    };
    std::stable_sort(by_use.begin(), by_use.end(), [&](const auto* a, const auto* b) {
      return sure(a) != sure(b) ? sure(a) : a->size() > b->size();
    });
    for (const auto* rules : by_use) {
      const auto id = static_cast<std::uint16_t>(f.infos.size());
      f.infos.push_back(f.info[rules->front()]);
      for (const auto i : *rules) info_id[i] = id;
      if (sure(rules)) f.sure_infos = static_cast<std::uint16_t>(id + 1);
    }
  }

  // Into the pools, those of one key side by side; large postings become bitsets; anchored
  // ones carry each rule's Info.
  auto finish = [&](Posting& v, bool anchored) {
    if (v.off == 0) return;
    std::vector<std::uint32_t> list;
    list.swap(lists[v.off - 1]);
    const auto n = static_cast<std::uint32_t>(list.size());
    if (n > std::max<std::size_t>(words / 4, 32)) {
      v.off = static_cast<std::uint32_t>(f.bits.size());
      v.n = n | Posting::kDense;
      f.bits.resize(f.bits.size() + words, 0);
      for (auto i : list) set_bit(f.bits.data() + v.off, i);
    } else if (n == 1) {
      v.n = 1 | Posting::kInPlace;
      v.off = 0;
      const auto rule = static_cast<std::uint16_t>(list[0]);
      if (anchored) {
        const Prefilter::Entry e{rule, info_id[rule]};
        std::memcpy(&v.off, &e, sizeof e);
      } else {
        std::memcpy(&v.off, &rule, sizeof rule);
      }
    } else if (anchored) {
      v.off = static_cast<std::uint32_t>(f.entries.size());
      v.n = n;
      for (auto i : list) f.entries.push_back({static_cast<std::uint16_t>(i), info_id[i]});
    } else {
      v.off = static_cast<std::uint32_t>(f.ids.size());
      v.n = n;
      for (auto i : list) f.ids.push_back(static_cast<std::uint16_t>(i));
    }
  };
  each_post(f, [&](Post& post) {
    finish(post.all, false);
    finish(post.anchored, true);
  });
  finish(f.unanchored, true);
  std::vector<Prefilter::PairIndex::Slot> pair_slots;
  for (auto& [key, posting] : pair_posts) {
    finish(posting, true);
    pair_slots.push_back({key, posting});
  }
  f.pair_postings.build(pair_slots);
  // Once the posts are final: their copies per source interval.
  if (!f.source_first.empty()) {
    f.source_groups.assign(f.source_first.size() - 1, {});
    for (std::size_t lo = 0; lo < f.source_groups.size(); ++lo) {
      Prefilter::SourceGroup& g = f.source_groups[lo];
      const std::uint32_t n = f.source_first[lo + 1] - f.source_first[lo];
      g.count = n > Prefilter::kNest ? Prefilter::kOverflow : n;
      for (std::uint32_t k = 0; k < n && k < Prefilter::kNest; ++k)
        g.post[k] = f.by_source.items()[f.source_nets[f.source_first[lo] + k]].value;
    }
  }
  f.user_names.assign(f.by_user);
  f.group_names.assign(f.by_group);
  f.ids.shrink_to_fit();
  f.entries.shrink_to_fit();
  f.bits.shrink_to_fit();
  for (int c = 0; c < static_cast<int>(Cond::count); ++c)
    if (!(f.anchors & (1U << c))) Prefilter::Bits().swap(f.anchored[c]);
}

void need_time(Ctx& c, const TimeZone& tz) {
  if (c.have_time) return;
  const std::int64_t secs =
      std::chrono::duration_cast<std::chrono::seconds>(c.facts.time.time_since_epoch()).count();
  const std::int64_t local = secs + tz.utc_offset(secs);
  std::int64_t days = local / 86400;
  if (local % 86400 < 0) --days;
  c.weekday = weekday_from_days(days);
  c.minute = static_cast<int>((local - days * 86400) / 60);
  c.have_time = true;
}

void prefetch(const Policy::Impl& p, Ctx& ctx) {
  const Prefilter& f = p.prefilter;
  if (!f.usable) return;
  const Facts& facts = ctx.facts;
  Ctx::Keys& keys = ctx.keys;
  keys.ready = true;
  ctx.start_records();  // the host's names: their slots now, their records below
  keys.user = nocase_hash(facts.user);
  keys.method = nocase_hash(facts.method);
  keys.listener = suffix_hash(facts.listener);
  for (std::size_t k = 0; k < facts.groups.size() && k < Ctx::Keys::kMaxGroups; ++k) {
    keys.groups[k] = nocase_hash(facts.groups[k]);
    if (f.active & bit(Cond::group)) f.group_names.prefetch(keys.groups[k]);
  }
  if (f.active & bit(Cond::user) && !facts.user.empty()) f.user_names.prefetch(keys.user);
  if (f.active & bit(Cond::source) && f.source_tree.size() >= 2) {
    keys.source_interval = source_interval(f, net_key(facts.client));
    __builtin_prefetch(&f.source_groups[keys.source_interval]);
  }
  if (f.active & bit(Cond::method)) {
    f.by_method.prefetch(keys.method);
    f.method_sets.prefetch(keys.method);
  }
  if (f.active & bit(Cond::listener)) {
    f.by_listener.prefetch(keys.listener);
    f.listener_sets.prefetch(keys.listener);
  }
  if (f.active & bit(Cond::port)) f.by_port.prefetch(port_hash(facts.port));
  if (!f.minute_class.empty()) {  // the schedules' class of the minute (context_init)
    need_time(ctx, p.tz);
    __builtin_prefetch(&f.minute_class[static_cast<std::size_t>(ctx.weekday * 1440 + ctx.minute)]);
  }
}

void candidates(const Policy::Impl& p, Ctx& ctx, Candidates& out) {
  const Prefilter& f = p.prefilter;
  const Facts& facts = ctx.facts;
  const std::size_t words = f.words;
  std::uint64_t* const cand = out.bits;
  std::uint16_t* const nz = out.word;
  if (!ctx.keys.ready) prefetch(p, ctx);
  const Ctx::Keys& keys = ctx.keys;

  // The postings the facts hit, looked up kind by kind when first needed: a Post, or posting
  // k of a HostTable record (the domain and URL-host postings).
  struct Hit {
    const void* at;  // the Post (k < 0) or the record
    int k;
    const Post* post() const { return k < 0 ? static_cast<const Post*>(at) : nullptr; }
    const unsigned char* rec() const { return static_cast<const unsigned char*>(at); }
  };
  // A posting's rules in place: Prefilter::Entry items (anchored), rule numbers (all, 16
  // bits), or a bitset (dense).
  struct Rules {
    const unsigned char* data;
    std::uint32_t n;
    bool dense;
  };
  auto rules = [&](const Posting& v, bool anchored) -> Rules {
    if (v.dense()) return {reinterpret_cast<const unsigned char*>(f.bits.data() + v.off), 0, true};
    return {f.rules_at(v, anchored), v.count(), false};
  };
  auto record_rules = [&](const unsigned char* rec, int k) -> Rules {
    const HostTable::Record r(rec);
    const std::uint16_t n = r.count(k);
    const unsigned char* at = r.posting(k);
    if (!(n & HostTable::kDense)) return {at, n, false};
    std::uint32_t off;
    std::memcpy(&off, at, sizeof off);
    return {reinterpret_cast<const unsigned char*>(f.bits.data() + off), 0, true};
  };
  auto all_of = [&](const Hit& h) {
    return h.k < 0 ? rules(h.post()->all, false)
                   : record_rules(h.rec(), HostTable::kPostings / 2 + h.k);
  };
  auto anchored_of = [&](const Hit& h) {
    return h.k < 0 ? rules(h.post()->anchored, true) : record_rules(h.rec(), h.k);
  };
  Hit hits[Prefilter::kMaxHits];
  constexpr int kKinds = static_cast<int>(Cond::count);
  std::uint16_t begin[kKinds], end[kKinds];
  std::size_t n = 0;
  std::uint32_t gathered = 0;
  std::uint32_t unknown = 0;  // kinds with more postings hit than kMaxHits
  const unsigned char* own = nullptr;
  bool own_looked_up = false;
  auto gather = [&](Cond c) {
    const int k = kind(c);
    gathered |= bit(c);
    begin[k] = static_cast<std::uint16_t>(n);
    auto add = [&](const Hit& h) {
      if (n == Prefilter::kMaxHits) {
        unknown |= bit(c);
        return;
      }
      hits[n++] = h;
    };
    auto push = [&](const Post* post) {
      if (post && !(post->all.empty() && post->anchored.empty())) add({post, -1});
    };
    auto push_record = [&](const unsigned char* rec, int slot) {
      const HostTable::Record r(rec);
      if (r.count(HostTable::kPostings / 2 + slot) != 0 || r.count(slot) != 0) add({rec, slot});
    };
    switch (c) {
      case Cond::domain:
        if (!facts.host.empty())
          ctx.each_record([&](const unsigned char* rec, bool self) {
            using K = DomainSet::Kind;
            if (self) {
              own = rec;
              push_record(rec, static_cast<int>(K::exact));
              push_record(rec, static_cast<int>(K::subtree));
            } else {
              push_record(rec, static_cast<int>(K::subtree));
              push_record(rec, static_cast<int>(K::subonly));
            }
            return false;
          });
        own_looked_up = true;
        break;
      case Cond::url:
        if (!own_looked_up && !facts.host.empty()) own = ctx.own_record();
        own_looked_up = true;
        if (own) push_record(own, 3);  // Prefilter::DomainPost::url
        break;
      case Cond::user:
        if (!facts.user.empty()) push(f.user_names.find(keys.user, facts.user, nocase_equal));
        break;
      case Cond::group:
        for (std::size_t j = 0; j < facts.groups.size(); ++j) {
          const std::string_view g = facts.groups[j];
          push(f.group_names.find(j < Ctx::Keys::kMaxGroups ? keys.groups[j] : nocase_hash(g), g,
                                  nocase_equal));
        }
        break;
      case Cond::source: {
        if (keys.source_interval == ~std::size_t{0}) break;
        f.each_holding(keys.source_interval, [&](const Post& post) {
          push(&post);
          return false;
        });
        break;
      }
      case Cond::category:
        for (std::uint8_t j = 0; j < facts.categories.count; ++j) {
          auto id = facts.categories.ids[j];
          if (id < f.by_category.size()) push(&f.by_category[id]);
        }
        break;
      case Cond::port:
        push(f.by_port.find(port_hash(facts.port), facts.port));
        break;
      case Cond::schedule:
        need_time(ctx, p.tz);
        for (const auto& [s, post] : f.by_schedule)
          if (s->match(ctx.weekday, ctx.minute)) push(&post);
        break;
      case Cond::reputation:
        if (static_cast<std::size_t>(facts.reputation) < 5)
          push(&f.by_reputation[static_cast<int>(facts.reputation)]);
        break;
      case Cond::method:
        push(f.by_method.find(keys.method, facts.method, nocase_equal));
        break;
      case Cond::listener:
        push(f.by_listener.find(keys.listener, facts.listener));
        break;
      case Cond::guest:
        push(&f.by_guest[facts.guest ? 1 : 0]);
        break;
      default:
        break;
    }
    end[k] = static_cast<std::uint16_t>(n);
  };

  // Context kinds, per rule, against the lists of methods, listeners and schedules the facts
  // satisfy (computed on first use): bit v of a mask holds when the Info's field v does,
  // bit 0 (a field of 0: not checked here) always.
  struct {
    bool ready = false;
    std::uint64_t method = 1, listener = 1, schedule = 1, reputation = 1, guest = 1;
  } ok;
  auto context_init = [&]() __attribute__((noinline)) {
    ok.ready = true;
    if (const auto* m = f.method_sets.find(keys.method, facts.method, nocase_equal))
      ok.method |= *m;
    if (const auto* l = f.listener_sets.find(keys.listener, facts.listener)) ok.listener |= *l;
    if (!f.minute_class.empty()) {
      need_time(ctx, p.tz);
      ok.schedule |=
          f.class_sets[f.minute_class[static_cast<std::size_t>(ctx.weekday * 1440 + ctx.minute)]];
    }
    for (auto s : {Sensitivity::low, Sensitivity::medium, Sensitivity::high})
      if (reputation_matches(facts.reputation, s)) ok.reputation |= 2U << static_cast<int>(s);
    ok.guest |= facts.guest ? 4 : 2;
  };
  // Inlined in the candidates' loops (a call per candidate costs more than the check), and
  // without a branch on the Info (which rules hold is unpredictable).
  auto context_holds = [&](const Prefilter::Info& in) __attribute__((always_inline))->bool {
    if (!ok.ready && in.context) context_init();
    return ((ok.guest >> in.guest) & (ok.reputation >> in.reputation) & (ok.method >> in.method) &
            (ok.listener >> in.listener) & (ok.schedule >> in.schedule) & 1U) != 0;
  };
  // 1. The union of the anchored postings hit: every rule that may match is in it. Sparse
  //    postings hold each rule with its Info: those whose context holds are collected
  //    (unsorted, once each) as they are taken; a bitset posting, or more rules than
  //    kMaxList, leave the bitset alone.
  using Entry = Prefilter::Candidate;
  constexpr std::size_t kMaxList = Candidates::kMaxList;
  Entry* const cl = out.entry;
  std::uint32_t took[kMaxList + 4];  // rule << 16 | its Info in `infos`, in the order taken
                                     // (room for sort_distinct())
  std::size_t taken = 0;
  // The first rule taken whose context holds with nothing left to check: it matches, so no
  // rule after it can decide, in either phase (the response phase looks below the request's
  // rule). Rules after it are left out from then on.
  constexpr std::uint32_t kNoRule = 0xffff;
  std::uint32_t first_sure = kNoRule;
  bool dense = false;
  std::memset(cand, 0, words * sizeof cand[0]);
  using V = std::uint64_t __attribute__((vector_size(16)));
  auto or_bits = [&](const std::uint64_t* bits) {
    for (std::size_t w = 0; w < words; w += 2) {
      V a, b;
      std::memcpy(&a, cand + w, sizeof a);
      std::memcpy(&b, bits + w, sizeof b);
      a |= b;
      std::memcpy(cand + w, &a, sizeof a);
    }
    dense = true;
  };
  auto take = [&](const Rules& v) {
    if (v.dense) {
      or_bits(reinterpret_cast<const std::uint64_t*>(v.data));
      return;
    }
    for (const unsigned char *at = v.data, *stop = at + v.n * sizeof(Prefilter::Entry); at != stop;
         at += sizeof(Prefilter::Entry)) {
      Prefilter::Entry e;
      std::memcpy(&e, at, sizeof e);
      if (e.rule > first_sure) break;  // postings are ascending
      std::uint64_t& word = cand[e.rule >> 6];
      if ((word >> (e.rule & 63)) & 1) continue;
      // Without a branch on whether its context holds (unpredictable): one that does not is
      // left out of the bitset and overwritten in `took`.
      const bool holds = context_holds(f.infos[e.info]);
      word |= std::uint64_t{holds} << (e.rule & 63);
      if (taken < kMaxList) took[taken] = (std::uint32_t{e.rule} << 16) | e.info;
      taken += holds;
      const std::uint32_t sure_rule = (holds & (e.info < f.sure_infos)) ? e.rule : kNoRule;
      first_sure = std::min(first_sure, sure_rule);
    }
  };
  // Pair anchors: the key pairs the facts hit, every pair's, looked up together, in steps:
  // the filter's words asked for as the keys are made, the slots the filter lets through
  // asked for before the anchored postings are taken (while they arrive), then read.
  auto id_of = [](const Hit& h) { return h.k < 0 ? h.post()->id : 0; };
  constexpr std::size_t kPairBatch = 64;  // lookups asked for at once
  std::uint64_t pair_key[kPairBatch], pair_hash[kPairBatch];
  std::size_t pair_keys = 0, pair_maybe = 0;
  auto ask_pairs = [&] {
    const Prefilter::PairIndex& ix = f.pair_postings;
    pair_maybe = 0;
    for (std::size_t x = 0; x < pair_keys; ++x) {
      pair_key[pair_maybe] = pair_key[x];
      pair_hash[pair_maybe] = pair_hash[x];
      const bool may = ix.may_hold(pair_hash[x]);
      if (may) ix.prefetch_slot(pair_hash[x]);
      pair_maybe += may;
    }
  };
  auto take_pairs = [&] {
    const Prefilter::PairIndex& ix = f.pair_postings;
    for (std::size_t x = 0; x < pair_maybe; ++x)
      if (const Posting* v = ix.find(pair_key[x], pair_hash[x])) take(rules(*v, true));
    pair_keys = pair_maybe = 0;
  };
  std::uint32_t pairs_unknown = 0;  // added to `unknown` once the anchors are taken
  for (const auto& pair : f.pairs) {
    if (!(gathered & bit(pair.a))) gather(pair.a);
    if (!(gathered & bit(pair.b))) gather(pair.b);
    if (unknown & (bit(pair.a) | bit(pair.b))) {
      // Not told: every rule on the pair, with both kinds checked in full.
      or_bits(pair.all.data());
      pairs_unknown |= bit(pair.a) | bit(pair.b);
      continue;
    }
    for (std::size_t ja = begin[kind(pair.a)]; ja < end[kind(pair.a)]; ++ja)
      for (std::size_t jb = begin[kind(pair.b)]; jb < end[kind(pair.b)]; ++jb) {
        if (pair_keys == kPairBatch) {
          ask_pairs();
          take_pairs();
        }
        const std::uint64_t key = (std::uint64_t{id_of(hits[ja])} << 32) | id_of(hits[jb]);
        pair_key[pair_keys] = key;
        pair_hash[pair_keys] = Prefilter::PairIndex::hash(key);
        f.pair_postings.prefetch_filter(pair_hash[pair_keys++]);
      }
  }
  ask_pairs();
  // Anchors, kind by kind, the host's (domain, URL) last. The host's records are asked for
  // once the first kind is taken (their slots, asked for by prefetch(), have had the time to
  // arrive) and have the time of the other kinds to arrive.
  constexpr std::uint32_t kHost = bit(Cond::domain) | bit(Cond::url);
  const std::uint64_t anchor_order =
      (std::uint64_t{f.anchors & kHost} << 32) | (f.anchors & ~kHost);
  bool records_asked = false;
  auto ask_records = [&] {
    if (!records_asked) ctx.fetch_records();
    records_asked = true;
  };
  for (std::uint64_t m = anchor_order; m; m &= m - 1) {
    const auto c = static_cast<Cond>(__builtin_ctzll(m) & 31);
    if (bit(c) & kHost) ask_records();
    if (!(gathered & bit(c))) gather(c);
    if (unknown & bit(c))
      or_bits(f.anchored[kind(c)].data());
    else
      for (std::size_t j = begin[kind(c)]; j < end[kind(c)]; ++j) take(anchored_of(hits[j]));
    ask_records();
  }
  unknown |= pairs_unknown;
  take_pairs();
  take(rules(f.unanchored, true));

  auto drop = [&](std::uint32_t i) { cand[i >> 6] &= ~(std::uint64_t{1} << (i & 63)); };

  // 2. Key kinds: for each kind some candidate needs, the rules of the postings hit of that
  //    kind are marked in `has`; each candidate needing the kind and not marked is dropped
  //    (drop_missing(b, marked)). `has` is clear between kinds.
  std::uint64_t* const has = out.has;
  auto verify = [&](std::uint32_t need, auto&& drop_missing) {
    std::memset(has, 0, words * sizeof has[0]);
    for (std::uint32_t kinds = need; kinds; kinds &= kinds - 1) {
      const auto c = static_cast<Cond>(__builtin_ctz(kinds));
      const int k = kind(c);
      const auto b = static_cast<std::uint16_t>(bit(c));
      if (!(gathered & b)) gather(c);
      if (unknown & b) continue;  // not filtered: checked in full
      bool dense_hit = false;
      auto each_rule = [&](const Rules& v, auto&& fn) {
        for (const unsigned char *at = v.data, *stop = at + v.n * sizeof(std::uint16_t); at != stop;
             at += sizeof(std::uint16_t)) {
          std::uint16_t rule;
          std::memcpy(&rule, at, sizeof rule);
          fn(rule);
        }
      };
      for (std::size_t j = begin[k]; j < end[k]; ++j) {
        const Rules v = all_of(hits[j]);
        if (v.dense) {
          const auto* bits = reinterpret_cast<const std::uint64_t*>(v.data);
          for (std::size_t w = 0; w < words; ++w) has[w] |= bits[w];
          dense_hit = true;
        } else {
          each_rule(v, [&](std::uint16_t r) { has[r >> 6] |= std::uint64_t{1} << (r & 63); });
        }
      }
      drop_missing(b, [&](std::uint32_t i) { return (has[i >> 6] >> (i & 63)) & 1; });
      if (dense_hit) {
        std::memset(has, 0, words * sizeof has[0]);
      } else {
        for (std::size_t j = begin[k]; j < end[k]; ++j)
          each_rule(all_of(hits[j]), [&](std::uint16_t r) { has[r >> 6] = 0; });
      }
    }
  };

  if (!dense && taken <= kMaxList) {
    // The usual case: the entries collected, those after first_sure (taken before it was
    // known) left out, those missing a key kind dropped, then the rest sorted.
    const std::uint64_t above = std::uint64_t{first_sure + 1} << 16;
    std::size_t left = 0;
    std::uint32_t need = 0;
    for (std::size_t x = 0; x < taken; ++x) {
      took[left] = took[x];
      const bool in = took[x] < above;
      need |= in ? f.infos[took[x] & 0xffff].keys : 0U;
      left += in;
    }
    taken = left;
    if (need) {
      verify(need, [&](std::uint16_t b, auto&& marked) {
        for (std::size_t x = 0; x < taken; ++x)
          if ((f.infos[took[x] & 0xffff].keys & b) && !marked(took[x] >> 16)) drop(took[x] >> 16);
      });
      left = 0;
      for (std::size_t x = 0; x < taken; ++x) {
        took[left] = took[x];
        left += (cand[took[x] >> 22] >> ((took[x] >> 16) & 63)) & 1;
      }
      taken = left;
    }
    std::uint32_t sorted[kMaxList];
    sort_distinct(took, taken, sorted);
    // The first with nothing left to check decides unless one before it does: its rule,
    // which the decision then reads, is asked for now.
    std::size_t sure = kMaxList;
    for (std::size_t x = 0; x < taken; ++x) {
      const Prefilter::Info& in = f.infos[sorted[x] & 0xffff];
      cl[x] = {sorted[x] >> 16, in};
      if (sure == kMaxList && !(in.rest | in.url_list | in.header_list)) sure = x;
    }
    if (sure != kMaxList) __builtin_prefetch(&p.rules[cl[sure].rule]);
    out.unverified = unknown;  // with the kinds verify() gathered
    out.listed = true;
    out.count = taken;
    return;
  }

  // Else from the bitset, with each rule's Info from `info`, up to first_sure.
  std::size_t live = words;
  if (first_sure != kNoRule) {
    live = first_sure / 64 + 1;
    cand[live - 1] &= ~std::uint64_t{0} >> (63 - first_sure % 64);
  }
  std::size_t count = 0;
  for (std::size_t w = 0; w < live; ++w) {
    nz[count] = static_cast<std::uint16_t>(w);
    count += cand[w] != 0;
  }
  std::uint32_t need = 0;
  for (std::size_t t = 0; t < count; ++t) {
    const std::size_t w = nz[t];
    for (std::uint64_t b = cand[w]; b; b &= b - 1) {
      const auto i = static_cast<std::uint32_t>(w * 64 + static_cast<unsigned>(__builtin_ctzll(b)));
      const Prefilter::Info& in = f.info[i];
      if (in.context && !context_holds(in))
        drop(i);
      else
        need |= in.keys;
    }
  }
  if (need) {
    verify(need, [&](std::uint16_t kb, auto&& marked) {
      for (std::size_t t = 0; t < count; ++t) {
        const std::size_t w = nz[t];
        for (std::uint64_t b = cand[w]; b; b &= b - 1) {
          const auto i =
              static_cast<std::uint32_t>(w * 64 + static_cast<unsigned>(__builtin_ctzll(b)));
          if ((f.info[i].keys & kb) && !marked(i)) drop(i);
        }
      }
    });
  }
  std::size_t kept = 0;
  for (std::size_t t = 0; t < count; ++t) {
    nz[kept] = nz[t];
    kept += cand[nz[t]] != 0;
  }
  out.unverified = unknown;
  out.listed = false;
  out.words = kept;
}

}  // namespace pc::policy::detail
