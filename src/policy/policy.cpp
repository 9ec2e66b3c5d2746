#include "policy/policy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "base/strings.h"
#include "policy/policy_impl.h"

namespace pc::policy {

using detail::Cond;
using detail::Ctx;
using detail::kNone;
using detail::PhaseIndex;
using detail::Rule;

namespace {

struct Hit {
  bool ok = false;
  std::string_view detail;
  std::uint16_t category = 0;
};

Hit yes(std::string_view d) {
  return {true, d, 0};
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

bool media_type_matches(std::string_view pattern, std::string_view type) {
  if (type.empty()) return false;
  if (pattern == "*/*" || pattern == "*") return true;
  if (pattern.ends_with("/*")) {
    auto major = pattern.substr(0, pattern.size() - 1);  // "video/"
    return type.size() > major.size() && base::iequals(type.substr(0, major.size()), major);
  }
  return base::iequals(pattern, type);
}

// Evaluates one condition of a rule. Allocation-free.
Hit eval(const Policy::Impl& p, const Rule& r, Cond c, Ctx& ctx) {
  const Facts& f = ctx.facts;
  switch (c) {
    case Cond::content_type:
      for (auto pat : r.content_types)
        if (media_type_matches(pat, f.content_type)) return yes(pat);
      return {};
    case Cond::file_type:
      for (auto t : r.file_types)
        if (!f.file_type.empty() && base::iequals(t, f.file_type)) return yes(t);
      return {};
    case Cond::domain:
      for (const auto* set : r.domains)
        if (auto e = set->match(f.host); !e.empty()) return yes(e);
      return {};
    case Cond::url:
      for (const auto* set : r.urls)
        if (auto e = set->match(f); !e.empty()) return yes(e);
      return {};
    case Cond::category:
      for (auto id : r.categories)
        if (f.categories.has(id)) {
          Hit h = yes(p.categories ? p.categories->category_name(id) : std::string_view("?"));
          h.category = id;
          return h;
        }
      return {};
    case Cond::reputation:
      if (reputation_matches(f.reputation, r.reputation)) return yes(to_string(f.reputation));
      return {};
    case Cond::header:
      for (const auto* h : r.headers)
        if (h->match(f.request_head)) return yes(h->name);
      return {};
    case Cond::user:
      if (f.user.empty()) return {};
      for (auto u : r.users)
        if (base::iequals(u, f.user)) return yes(u);
      return {};
    case Cond::group:
      for (const auto& g : f.groups)
        for (auto want : r.groups)
          if (base::iequals(want, g)) return yes(want);
      return {};
    case Cond::source:
      for (const auto& [set, group] : r.sources)
        if (auto e = set->match(f.client); !e.empty()) return yes(group.empty() ? e : group);
      return {};
    case Cond::guest:
      if (f.guest == r.guest) return yes(r.guest ? "true" : "false");
      return {};
    case Cond::listener:
      for (auto l : r.listeners)
        if (l == f.listener) return yes(l);
      return {};
    case Cond::method:
      for (auto m : r.methods)
        if (base::iequals(m, f.method)) return yes(m);
      return {};
    case Cond::port:
      for (const auto& pr : r.ports)
        if (f.port >= pr.lo && f.port <= pr.hi) return yes(pr.text);
      return {};
    case Cond::schedule:
      need_time(ctx, p.tz);
      for (const auto* s : r.schedules)
        if (s->match(ctx.weekday, ctx.minute)) return yes(s->name);
      return {};
    case Cond::count:
      break;
  }
  return {};
}

// Cheapest first.
constexpr Cond kEvalOrder[] = {Cond::guest,      Cond::listener,     Cond::method,   Cond::port,
                               Cond::user,       Cond::group,        Cond::source,   Cond::category,
                               Cond::reputation, Cond::schedule,     Cond::domain,   Cond::url,
                               Cond::header,     Cond::content_type, Cond::file_type};

// The first condition (in evaluation order) that does not hold, or Cond::count when all hold.
Cond first_failure(const Policy::Impl& p, const Rule& r, Ctx& ctx, bool request_side_only) {
  for (Cond c : kEvalOrder) {
    if (!(r.conds & detail::bit(c))) continue;
    if (request_side_only && (detail::kResponseConds & detail::bit(c))) continue;
    if (!eval(p, r, c, ctx).ok) return c;
  }
  return Cond::count;
}

bool matches(const Policy::Impl& p, const Rule& r, Ctx& ctx, bool request_side_only) {
  return first_failure(p, r, ctx, request_side_only) == Cond::count;
}

// First rule of the phase index below `limit` that matches, or kNone. Candidates come from
// the domain and category postings that the facts hit, merged in rule order with the rules
// that have neither.
std::uint32_t scan(const Policy::Impl& p, const PhaseIndex& ix, Ctx& ctx, std::uint32_t limit,
                   bool request_side_only) {
  if (ix.all.empty()) return kNone;
  const Facts& f = ctx.facts;
  struct Cursor {
    const std::uint32_t* it;
    const std::uint32_t* end;
  };
  constexpr std::size_t kMax = 96;
  Cursor cur[kMax];
  std::size_t n = 0;
  bool overflow = false;
  auto push = [&](const std::vector<std::uint32_t>& v) {
    if (v.empty()) return;
    if (n == kMax) {
      overflow = true;
      return;
    }
    cur[n++] = {v.data(), v.data() + v.size()};
  };
  auto push_key = [&](const std::unordered_map<std::string_view, PhaseIndex::Posting>& m,
                      std::string_view key) {
    if (m.empty()) return;
    if (auto it = m.find(key); it != m.end()) push(it->second);
  };
  // Lower-cases into buf for the case-insensitive keys; too long a value disables the index.
  char buf[256];
  auto lower = [&](std::string_view s) -> std::string_view {
    if (s.size() > sizeof buf) {
      overflow = true;
      return {};
    }
    for (std::size_t i = 0; i < s.size(); ++i) buf[i] = base::ascii_lower(s[i]);
    return {buf, s.size()};
  };
  push(ix.others);
  if (!ix.by_domain.empty() && !f.host.empty()) {
    using K = detail::DomainSet::Kind;
    if (auto it = ix.by_domain.find(f.host); it != ix.by_domain.end()) {
      push(it->second.of[static_cast<int>(K::exact)]);
      push(it->second.of[static_cast<int>(K::subtree)]);
    }
    for (std::size_t pos = f.host.find('.'); pos != std::string_view::npos;
         pos = f.host.find('.', pos + 1)) {
      if (auto it = ix.by_domain.find(f.host.substr(pos + 1)); it != ix.by_domain.end()) {
        push(it->second.of[static_cast<int>(K::subtree)]);
        push(it->second.of[static_cast<int>(K::subonly)]);
      }
    }
  }
  push_key(ix.by_url_host, f.host);
  for (std::uint8_t i = 0; i < f.categories.count; ++i) {
    auto id = f.categories.ids[i];
    if (id < ix.by_category.size()) push(ix.by_category[id]);
  }
  if (!ix.by_user.empty() && !f.user.empty()) push_key(ix.by_user, lower(f.user));
  if (!ix.by_group.empty())
    for (const auto& g : f.groups) push_key(ix.by_group, lower(g));
  if (!ix.by_port.empty())
    if (auto it = ix.by_port.find(f.port); it != ix.by_port.end()) push(it->second);
  if (overflow) {
    n = 0;
    push(ix.all);
  }
  for (;;) {
    std::uint32_t best = kNone;
    for (std::size_t i = 0; i < n; ++i)
      if (cur[i].it != cur[i].end && *cur[i].it < best) best = *cur[i].it;
    if (best == kNone || best >= limit) return kNone;
    for (std::size_t i = 0; i < n; ++i)
      if (cur[i].it != cur[i].end && *cur[i].it == best) ++cur[i].it;
    if (matches(p, p.rules[best], ctx, request_side_only)) return best;
  }
}

// --- Candidate prefilter (detail::Prefilter) ---

using detail::Prefilter;

Prefilter::NetKey net_key(const base::IpBytes& ip) {
  Prefilter::NetKey k;
  for (int i = 0; i < 8; ++i) {
    k.hi = (k.hi << 8) | ip.b[static_cast<std::size_t>(i)];
    k.lo = (k.lo << 8) | ip.b[static_cast<std::size_t>(i + 8)];
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

void set_bit(std::uint64_t* bits, std::uint32_t i) {
  bits[i >> 6] |= std::uint64_t{1} << (i & 63);
}

void build_prefilter(Policy::Impl& p) {
  Prefilter& f = p.prefilter;
  const std::size_t words = (p.rules.size() + 127) / 128 * 2;  // even: two words at a time
  f.words = words;
  f.usable = words <= Prefilter::kMaxWords;
  if (!f.usable) return;
  f.request.assign(words, 0);
  f.response.assign(words, 0);
  for (auto& b : f.free) b.assign(words, 0);
  auto add = [](Prefilter::Posting& v, std::uint32_t i) {
    if (v.rules.empty() || v.rules.back() != i) v.rules.push_back(i);
  };
  std::unordered_map<const detail::Schedule*, std::size_t> schedule_slot;
  std::unordered_map<int, std::size_t> prefix_slot;
  for (const Rule& r : p.rules) {
    if (!r.enabled) continue;
    const std::uint32_t i = r.index;
    set_bit((r.response() ? f.response : f.request).data(), i);
    auto has = [&](Cond c) { return (r.conds & detail::bit(c)) != 0; };
    // Marks condition kind c as indexed for rule i, or free when it has no such condition.
    auto indexed = [&](Cond c, bool can) {
      if (has(c) && can) {
        f.active |= detail::bit(c);
        return true;
      }
      set_bit(f.free[static_cast<int>(c)].data(), i);
      return false;
    };
    if (indexed(Cond::domain, true))
      for (const auto* set : r.domains)
        for (const auto& [key, slot] : set->slots())
          for (int k = 0; k < 3; ++k)
            if (slot.of[k] != kNone) add(f.by_domain[key].of[k], i);
    bool url_bound = true;
    for (const auto* set : r.urls) url_bound = url_bound && set->host_bound();
    if (indexed(Cond::url, url_bound))
      for (const auto* set : r.urls)
        for (const auto& entry : set->hosts()) add(f.by_domain[entry.first].url, i);
    if (indexed(Cond::category, true))
      for (auto id : r.categories) {
        if (id >= f.by_category.size()) f.by_category.resize(std::size_t{id} + 1);
        add(f.by_category[id], i);
      }
    if (indexed(Cond::reputation, true)) add(f.by_reputation[static_cast<int>(r.reputation)], i);
    if (indexed(Cond::user, true))
      for (auto u : r.users) add(f.by_user[p.strings.add(base::to_lower(u))], i);
    if (indexed(Cond::group, true))
      for (auto g : r.groups) add(f.by_group[p.strings.add(base::to_lower(g))], i);
    if (indexed(Cond::source, true))
      for (const auto& [set, group] : r.sources)
        for (const auto& [net, text] : set->nets()) {
          auto [it, fresh] = prefix_slot.emplace(net.prefix, f.by_source.size());
          if (fresh) {
            f.by_source.emplace_back();
            f.by_source.back().prefix = net.prefix;
            f.by_source.back().mask = net_mask(net.prefix);
          }
          auto& nets = f.by_source[it->second];
          add(nets.by_net[masked(net_key(net.net), nets.mask)], i);
        }
    if (indexed(Cond::guest, true)) add(f.by_guest[r.guest ? 1 : 0], i);
    if (indexed(Cond::listener, true))
      for (auto l : r.listeners) add(f.by_listener[l], i);
    if (indexed(Cond::method, true))
      for (auto m : r.methods) add(f.by_method[p.strings.add(base::to_lower(m))], i);
    std::size_t port_span = 0;
    for (const auto& pr : r.ports) port_span += std::size_t{pr.hi} - pr.lo + 1;
    if (indexed(Cond::port, port_span <= 1024))
      for (const auto& pr : r.ports)
        for (std::uint32_t port = pr.lo; port <= pr.hi; ++port)
          add(f.by_port[static_cast<std::uint16_t>(port)], i);
    if (indexed(Cond::schedule, true))
      for (const auto* s : r.schedules) {
        auto [it, fresh] = schedule_slot.emplace(s, f.by_schedule.size());
        if (fresh) f.by_schedule.emplace_back(s, Prefilter::Posting{});
        add(f.by_schedule[it->second].second, i);
      }
    // Not indexed (checked in full): header, content_type, file_type.
    for (Cond c : {Cond::header, Cond::content_type, Cond::file_type})
      set_bit(f.free[static_cast<int>(c)].data(), i);
  }
  // Large postings become bitsets.
  auto finish = [&](Prefilter::Posting& v) {
    if (v.rules.size() <= words / 4) return;
    v.bits.assign(words, 0);
    for (auto i : v.rules) set_bit(v.bits.data(), i);
    std::vector<std::uint32_t>().swap(v.rules);
  };
  for (auto& [key, post] : f.by_domain) {
    for (auto& v : post.of) finish(v);
    finish(post.url);
  }
  for (auto* m : {&f.by_user, &f.by_group, &f.by_method, &f.by_listener})
    for (auto& [key, v] : *m) finish(v);
  for (auto& v : f.by_category) finish(v);
  for (auto& [port, v] : f.by_port) finish(v);
  for (auto& v : f.by_guest) finish(v);
  for (auto& v : f.by_reputation) finish(v);
  for (auto& [s, v] : f.by_schedule) finish(v);
  for (auto& nets : f.by_source)
    for (auto& [key, v] : nets.by_net) finish(v);
  // Kinds no rule constrains need no bitset.
  for (int c = 0; c < static_cast<int>(Cond::count); ++c)
    if (!(f.active & (1U << c))) Prefilter::Bits().swap(f.free[c]);
}

// Fills cand (p.prefilter.words words) with the rules that may match the facts: the AND over
// the active condition kinds of (rules free of that kind | rules the facts hit). Stack only,
// no allocation.
void candidates(const Policy::Impl& p, Ctx& ctx, std::uint64_t* cand) {
  const Prefilter& f = p.prefilter;
  const Facts& facts = ctx.facts;
  const std::size_t words = f.words;  // even
  // Two words at a time (SSE2 / NEON); loads and stores through memcpy (no alignment needed).
  using V = std::uint64_t __attribute__((vector_size(16)));
  auto load = [](const std::uint64_t* at) {
    V v;
    std::memcpy(&v, at, sizeof v);
    return v;
  };
  auto store = [](std::uint64_t* at, V v) { std::memcpy(at, &v, sizeof v); };
  for (std::size_t w = 0; w < words; w += 2)
    store(cand + w, load(f.request.data() + w) | load(f.response.data() + w));
  // The rules the facts hit for the current kind; zero between kinds.
  std::uint64_t hit[Prefilter::kMaxWords];
  std::memset(hit, 0, words * sizeof hit[0]);
  char buf[256];
  // Lower-cases into buf; false when too long (the kind is then not filtered).
  auto lower = [&](std::string_view s, std::string_view& out) {
    if (s.size() > sizeof buf) return false;
    for (std::size_t i = 0; i < s.size(); ++i) buf[i] = base::ascii_lower(s[i]);
    out = {buf, s.size()};
    return true;
  };
  auto post = [&](const Prefilter::Posting& v) {
    if (!v.bits.empty())
      for (std::size_t w = 0; w < words; w += 2)
        store(hit + w, load(hit + w) | load(v.bits.data() + w));
    else
      for (std::uint32_t i : v.rules) set_bit(hit, i);
  };
  auto post_key = [&](const std::unordered_map<std::string_view, Prefilter::Posting>& m,
                      std::string_view key) {
    if (auto it = m.find(key); it != m.end()) post(it->second);
  };
  // Runs fill(), which posts the rules the facts hit (false: cannot tell, keep every rule),
  // then ANDs free | hit into cand and clears hit, in one pass.
  auto apply = [&](Cond c, auto&& fill) {
    if (!(f.active & detail::bit(c))) return;
    const std::uint64_t* free = f.free[static_cast<int>(c)].data();
    const V ones = ~V{};
    const V keep = fill() ? V{} : ones;
    for (std::size_t w = 0; w < words; w += 2) {
      store(cand + w, load(cand + w) & (load(free + w) | load(hit + w) | keep));
      store(hit + w, V{});
    }
  };
  apply(Cond::guest, [&] {
    post(f.by_guest[facts.guest ? 1 : 0]);
    return true;
  });
  apply(Cond::listener, [&] {
    post_key(f.by_listener, facts.listener);
    return true;
  });
  apply(Cond::method, [&] {
    std::string_view m;
    if (!lower(facts.method, m)) return false;
    post_key(f.by_method, m);
    return true;
  });
  apply(Cond::port, [&] {
    if (auto it = f.by_port.find(facts.port); it != f.by_port.end()) post(it->second);
    return true;
  });
  apply(Cond::user, [&] {
    if (facts.user.empty()) return true;
    std::string_view u;
    if (!lower(facts.user, u)) return false;
    post_key(f.by_user, u);
    return true;
  });
  apply(Cond::group, [&] {
    for (const auto& g : facts.groups) {
      std::string_view k;
      if (!lower(g, k)) return false;
      post_key(f.by_group, k);
    }
    return true;
  });
  apply(Cond::source, [&] {
    const auto key = net_key(facts.client);
    for (const auto& nets : f.by_source)
      if (auto it = nets.by_net.find(masked(key, nets.mask)); it != nets.by_net.end())
        post(it->second);
    return true;
  });
  apply(Cond::category, [&] {
    for (std::uint8_t k = 0; k < facts.categories.count; ++k) {
      auto id = facts.categories.ids[k];
      if (id < f.by_category.size()) post(f.by_category[id]);
    }
    return true;
  });
  apply(Cond::reputation, [&] {
    for (auto s : {Sensitivity::low, Sensitivity::medium, Sensitivity::high})
      if (reputation_matches(facts.reputation, s)) post(f.by_reputation[static_cast<int>(s)]);
    return true;
  });
  apply(Cond::schedule, [&] {
    need_time(ctx, p.tz);
    for (const auto& [s, rules] : f.by_schedule)
      if (s->match(ctx.weekday, ctx.minute)) post(rules);
    return true;
  });
  // The host's own entry serves both the domain and the URL kinds.
  const Prefilter::DomainPost* own = nullptr;
  if (!facts.host.empty() && (f.active & (detail::bit(Cond::domain) | detail::bit(Cond::url))))
    if (auto it = f.by_domain.find(facts.host); it != f.by_domain.end()) own = &it->second;
  apply(Cond::domain, [&] {
    if (facts.host.empty()) return true;
    using K = detail::DomainSet::Kind;
    const auto& host = facts.host;
    if (own) {
      post(own->of[static_cast<int>(K::exact)]);
      post(own->of[static_cast<int>(K::subtree)]);
    }
    for (std::size_t pos = host.find('.'); pos != std::string_view::npos;
         pos = host.find('.', pos + 1)) {
      if (auto it = f.by_domain.find(host.substr(pos + 1)); it != f.by_domain.end()) {
        post(it->second.of[static_cast<int>(K::subtree)]);
        post(it->second.of[static_cast<int>(K::subonly)]);
      }
    }
    return true;
  });
  apply(Cond::url, [&] {
    if (own) post(own->url);
    return true;
  });
}

// First rule among cand & phase below limit that matches, or kNone: candidates in rule order.
std::uint32_t scan_bits(const Policy::Impl& p, const std::uint64_t* cand,
                        const Prefilter::Bits& phase, Ctx& ctx, std::uint32_t limit,
                        bool request_side_only) {
  const std::size_t words = std::min(p.prefilter.words, (std::size_t{limit} + 63) / 64);
  for (std::size_t w = 0; w < words; ++w) {
    std::uint64_t b = cand[w] & phase[w];
    while (b) {
      const auto i = static_cast<std::uint32_t>(w * 64 + static_cast<unsigned>(__builtin_ctzll(b)));
      if (i >= limit) return kNone;
      if (matches(p, p.rules[i], ctx, request_side_only)) return i;
      b &= b - 1;
    }
  }
  return kNone;
}

// Per-decision candidates, computed on first use (not at all when a list decides).
struct Cands {
  bool ready = false;
  std::uint64_t bits[Prefilter::kMaxWords];
};

std::uint32_t find_rule(const Policy::Impl& p, bool response, Ctx& ctx, Cands& cands,
                        std::uint32_t limit, bool request_side_only) {
  const Prefilter& f = p.prefilter;
  if (!f.usable) {
    return scan(p, response ? p.response_index : p.request_index, ctx, limit, request_side_only);
  }
  if (!cands.ready) {
    candidates(p, ctx, cands.bits);
    cands.ready = true;
  }
  return scan_bits(p, cands.bits, response ? f.response : f.request, ctx, limit, request_side_only);
}

void set_category(const Policy::Impl& p, Decision& d, std::uint16_t id) {
  if (!p.categories) return;
  d.category = p.categories->category_name(id);
  if (id < p.category_source.size()) d.source = p.category_source[id];
}

Decision from_rule(const Policy::Impl& p, const Rule& r, Ctx& ctx) {
  Decision d;
  d.action = r.action;
  d.rule = r.name;
  for (unsigned c = 0; c < static_cast<unsigned>(Cond::count); ++c) {
    if (!(r.conds & (1U << c))) continue;
    Hit h = eval(p, r, static_cast<Cond>(c), ctx);
    d.condition = detail::cond_name(static_cast<Cond>(c));
    d.detail = h.detail;
    break;
  }
  if (r.conds & detail::bit(Cond::category)) {
    Hit h = eval(p, r, Cond::category, ctx);
    if (h.ok) set_category(p, d, h.category);
  }
  return d;
}

struct Outcome {
  Decision decision;
  std::uint32_t rule = kNone;  // deciding rule, kNone for a list or the default
  std::uint32_t limit = 0;     // response-phase rules before this one may still decide
};

bool lets_through(Action a) {
  return a != Action::block && a != Action::warn;
}

std::string_view list_match(const detail::DomainSet& d, const detail::UrlSet& u, const Facts& f) {
  if (auto e = d.match(f.host); !e.empty()) return e;
  return u.match(f);
}

Outcome request_phase(const Policy::Impl& p, Ctx& ctx, Cands& cands) {
  Outcome out;
  Decision& d = out.decision;
  const Facts& f = ctx.facts;
  if (auto e = list_match(p.approved_domains, p.approved_urls, f); !e.empty()) {
    d.action = Action::allow;
    d.rule = "approved list";
    d.condition = "list";
    d.detail = e;
    d.from_list = true;
  } else if (auto b = list_match(p.blocked_domains, p.blocked_urls, f); !b.empty()) {
    d.action = Action::block;
    d.rule = "blocked list";
    d.condition = "list";
    d.detail = b;
    d.from_list = true;
  } else {
    const auto count = static_cast<std::uint32_t>(p.rules.size());
    out.rule = find_rule(p, false, ctx, cands, count, false);
    if (out.rule == kNone) {
      d.action = p.default_action;
      d.rule = "default";
      out.limit = count;
    } else {
      d = from_rule(p, p.rules[out.rule], ctx);
      out.limit = out.rule;
    }
    d.final = !lets_through(d.action) || find_rule(p, true, ctx, cands, out.limit, true) == kNone;
  }
  if (d.category.empty() && f.categories.count > 0) set_category(p, d, f.categories.ids[0]);
  return out;
}

Decision decide_impl(const Policy::Impl& p, const Facts& facts, Phase phase,
                     std::uint32_t* response_rule, Outcome* request) {
  Ctx ctx{facts};
  Cands cands;  // uninitialised words: written before being read
  Outcome out = request_phase(p, ctx, cands);
  if (request) *request = out;
  if (phase == Phase::request || out.decision.final) return out.decision;
  std::uint32_t r = find_rule(p, true, ctx, cands, out.limit, false);
  if (response_rule) *response_rule = r;
  if (r == kNone) {
    out.decision.final = true;
    return out.decision;
  }
  Decision d = from_rule(p, p.rules[r], ctx);
  if (d.category.empty() && facts.categories.count > 0) set_category(p, d, facts.categories.ids[0]);
  return d;
}

std::string ip_text(const base::IpBytes& ip) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ip.is_v4())
    inet_ntop(AF_INET, ip.b.data() + 12, buf, sizeof buf);
  else
    inet_ntop(AF_INET6, ip.b.data(), buf, sizeof buf);
  return buf;
}

constexpr std::string_view kDays[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

std::string fact_text(const Policy::Impl& p, Cond c, Ctx& ctx) {
  const Facts& f = ctx.facts;
  auto q = [](std::string_view s) { return "'" + std::string(s) + "'"; };
  switch (c) {
    case Cond::content_type:
      return "content type " + q(f.content_type);
    case Cond::file_type:
      return "file type " + q(f.file_type);
    case Cond::domain:
      return "host " + q(f.host);
    case Cond::url:
      return "URL " + q(f.url);
    case Cond::category: {
      std::string s = "categories [";
      for (std::uint8_t i = 0; i < f.categories.count; ++i) {
        if (i) s += ", ";
        s += p.categories ? std::string(p.categories->category_name(f.categories.ids[i])) : "?";
      }
      return s + "]";
    }
    case Cond::reputation:
      return "reputation " + std::string(to_string(f.reputation));
    case Cond::header:
      return f.request_head ? "request header filters" : "no request head";
    case Cond::user:
      return "user " + q(f.user);
    case Cond::group: {
      std::string s = "groups [";
      for (std::size_t i = 0; i < f.groups.size(); ++i) s += (i ? ", " : "") + f.groups[i];
      return s + "]";
    }
    case Cond::source:
      return "client " + ip_text(f.client);
    case Cond::guest:
      return f.guest ? "guest" : "not guest";
    case Cond::listener:
      return "listener " + q(f.listener);
    case Cond::method:
      return "method " + q(f.method);
    case Cond::port:
      return "port " + std::to_string(f.port);
    case Cond::schedule: {
      need_time(ctx, p.tz);
      char buf[32];
      std::snprintf(buf, sizeof buf, "%02d:%02d", ctx.minute / 60, ctx.minute % 60);
      return "local time " + std::string(kDays[ctx.weekday]) + " " + buf + " (" +
             p.settings.time_zone + ")";
    }
    case Cond::count:
      break;
  }
  return "";
}

std::string describe_match(const Policy::Impl& p, const Rule& r, Ctx& ctx) {
  std::string s;
  for (unsigned c = 0; c < static_cast<unsigned>(Cond::count); ++c) {
    if (!(r.conds & (1U << c))) continue;
    Hit h = eval(p, r, static_cast<Cond>(c), ctx);
    if (!s.empty()) s += ", ";
    s += std::string(detail::cond_name(static_cast<Cond>(c))) + " " + std::string(h.detail);
  }
  return s.empty() ? "no conditions" : s;
}

void describe_decision(std::ostringstream& o, const Decision& d) {
  o << "decision: " << to_string(d.action) << " by '" << d.rule << "'";
  if (!d.condition.empty()) o << " (" << d.condition << " " << d.detail << ")";
  if (!d.category.empty()) o << ", category " << d.category;
  if (!d.source.empty()) o << " from " << d.source;
  o << (d.final ? ", final" : ", response-phase rules may still decide") << "\n";
}

}  // namespace

std::string_view to_string(Action a) {
  switch (a) {
    case Action::allow:
      return "allow";
    case Action::block:
      return "block";
    case Action::warn:
      return "warn";
    case Action::monitor:
      return "monitor";
    case Action::allow_no_scan:
      return "allow_no_scan";
  }
  return "allow";
}

Policy::Policy() : impl_(std::make_unique<Impl>()) {}
Policy::~Policy() = default;

std::shared_ptr<const Policy> Policy::allow_all() {
  std::shared_ptr<Policy> p(new Policy());
  p->impl_->file = "(built-in)";
  return p;
}

const Settings& Policy::settings() const {
  return impl_->settings;
}
std::uint64_t Policy::revision() const {
  return impl_->revision;
}
const std::vector<std::filesystem::path>& Policy::inputs() const {
  return impl_->inputs;
}
const std::vector<std::string>& Policy::warnings() const {
  return impl_->warnings;
}
std::size_t Policy::rule_count() const {
  return impl_->rules.size();
}

std::string_view Policy::category_name(std::uint16_t id) const {
  return impl_->categories ? impl_->categories->category_name(id) : std::string_view();
}

int Policy::category_id(std::string_view name) const {
  return impl_->categories ? impl_->categories->category_id(name) : -1;
}

void Policy::classify(Facts& facts) const {
  const Impl& p = *impl_;
  if (p.categories) p.categories->lookup(facts.host, facts.path, facts.categories);
  facts.reputation = Reputation::unknown;
  if (p.reputation) {
    CategoryHits hits;
    p.reputation->lookup(facts.host, facts.path, hits);
    for (std::uint8_t i = 0; i < hits.count; ++i) {
      auto id = hits.ids[i];
      if (id < p.reputation_of.size() && p.reputation_of[id] < facts.reputation)
        facts.reputation = p.reputation_of[id];
    }
  }
}

Decision Policy::decide(const Facts& facts, Phase phase) const {
  return decide_impl(*impl_, facts, phase, nullptr, nullptr);
}

std::string Policy::explain(const Facts& f, Phase phase) const {
  const Impl& p = *impl_;
  std::ostringstream o;
  Ctx ctx{f};
  std::uint32_t response_rule = kNone;
  Outcome req;
  Decision final_decision = decide_impl(p, f, phase, &response_rule, &req);

  o << "policy " << p.file << ", " << (phase == Phase::request ? "request" : "response")
    << " phase\n";
  o << "facts: client " << ip_text(f.client) << ", listener '" << f.listener << "'"
    << (f.guest ? " (guest)" : "") << ", user '" << f.user << "', " << f.method << " " << f.url
    << ", " << fact_text(p, Cond::category, ctx) << ", reputation " << to_string(f.reputation);
  if (phase == Phase::response)
    o << ", content type '" << f.content_type << "', file type '" << f.file_type << "'";
  o << "\n";

  const Decision& rd = req.decision;
  auto list_line = [&](std::string_view what, const detail::DomainSet& d, const detail::UrlSet& u) {
    auto e = list_match(d, u, f);
    o << what << ": " << (e.empty() ? "no match" : "matches '" + std::string(e) + "'") << "\n";
    return !e.empty();
  };
  bool listed = list_line("approved list", p.approved_domains, p.approved_urls) ||
                list_line("blocked list", p.blocked_domains, p.blocked_urls);
  if (!listed) {
    for (const Rule& r : p.rules) {
      if (r.index > req.limit) break;
      if (r.index == req.limit && req.rule == kNone) break;
      o << "rule " << (r.index + 1) << " '" << r.name << "': ";
      if (!r.enabled) {
        o << "disabled\n";
        continue;
      }
      Cond failed = first_failure(p, r, ctx, true);
      if (r.response()) {
        o << "response-phase rule; ";
        if (failed != Cond::count)
          o << "no match on " << detail::cond_name(failed) << " (" << fact_text(p, failed, ctx)
            << ")\n";
        else
          o << "request conditions match, decided once the response is known\n";
        continue;
      }
      if (failed != Cond::count) {
        o << "no match on " << detail::cond_name(failed) << " (" << fact_text(p, failed, ctx)
          << ")\n";
      } else {
        o << "MATCH: " << describe_match(p, r, ctx) << " -> " << to_string(r.action) << "\n";
      }
    }
    if (req.rule == kNone) o << "default: " << to_string(p.default_action) << "\n";
  }
  if (phase == Phase::request || rd.final) {
    describe_decision(o, phase == Phase::request ? rd : final_decision);
    return o.str();
  }
  o << "request decision: " << to_string(rd.action) << " by '" << rd.rule << "'\n";
  o << "response phase:\n";
  for (const Rule& r : p.rules) {
    if (r.index >= req.limit) break;
    if (!r.enabled || !r.response()) continue;
    o << "rule " << (r.index + 1) << " '" << r.name << "': ";
    Cond failed = first_failure(p, r, ctx, false);
    if (failed != Cond::count) {
      o << "no match on " << detail::cond_name(failed) << " (" << fact_text(p, failed, ctx)
        << ")\n";
    } else {
      o << "MATCH: " << describe_match(p, r, ctx) << " -> " << to_string(r.action) << "\n";
      break;
    }
  }
  if (response_rule == kNone) o << "no response-phase rule matches; the request decision stands\n";
  describe_decision(o, final_decision);
  return o.str();
}

void Policy::Impl::build_indexes() {
  for (const Rule& r : rules) {
    if (!r.enabled) continue;
    PhaseIndex& ix = r.response() ? response_index : request_index;
    ix.all.push_back(r.index);
    auto add = [&](std::vector<std::uint32_t>& v) {
      if (v.empty() || v.back() != r.index) v.push_back(r.index);
    };
    auto has = [&](Cond c) { return (r.conds & detail::bit(c)) != 0; };
    bool url_bound = has(Cond::url);
    for (const auto* set : r.urls) url_bound = url_bound && set->host_bound();
    std::size_t port_span = 0;
    for (const auto& pr : r.ports) port_span += std::size_t{pr.hi} - pr.lo + 1;
    if (has(Cond::domain)) {
      for (const auto* set : r.domains)
        for (const auto& [key, slot] : set->slots())
          for (int k = 0; k < 3; ++k)
            if (slot.of[k] != kNone) add(ix.by_domain[key].of[k]);
    } else if (url_bound) {
      for (const auto* set : r.urls)
        for (const auto& entry : set->hosts()) add(ix.by_url_host[entry.first]);
    } else if (has(Cond::category)) {
      for (auto id : r.categories) {
        if (id >= ix.by_category.size()) ix.by_category.resize(std::size_t{id} + 1);
        add(ix.by_category[id]);
      }
    } else if (has(Cond::user)) {
      for (auto u : r.users) add(ix.by_user[strings.add(base::to_lower(u))]);
    } else if (has(Cond::group)) {
      for (auto g : r.groups) add(ix.by_group[strings.add(base::to_lower(g))]);
    } else if (has(Cond::port) && port_span <= 1024) {
      for (const auto& pr : r.ports)
        for (std::uint32_t port = pr.lo; port <= pr.hi; ++port)
          add(ix.by_port[static_cast<std::uint16_t>(port)]);
    } else {
      ix.others.push_back(r.index);
    }
  }
  build_prefilter(*this);
}

std::string format(const LoadError& e) {
  return e.file + ":" + std::to_string(e.line) + ":" + std::to_string(e.column) + ": " + e.message;
}

}  // namespace pc::policy
