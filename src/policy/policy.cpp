#include "policy/policy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <span>
#include <sstream>

#include "base/strings.h"
#include "policy/policy_impl.h"

namespace pc::policy {

using detail::Candidates;
using detail::Cond;
using detail::Ctx;
using detail::kNone;
using detail::need_time;
using detail::PhaseIndex;
using detail::Rule;

namespace {

struct Hit {
  bool ok = false;
  std::string_view detail;
};

Hit yes(std::string_view d) {
  return {true, d};
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
      if (r.domain_sets && ctx.table) {
        for (std::uint8_t i = 0; i < r.domain_sets; ++i)
          if (auto e = detail::DomainSet::match_in(ctx, r.domain_set[i]); !e.empty()) return yes(e);
        return {};
      }
      for (const auto* set : r.domains)
        if (auto e = set->match(ctx); !e.empty()) return yes(e);
      return {};
    case Cond::url:
      if (r.url_set != kNone && ctx.table) {
        if (auto e = detail::UrlSet::match_hosts_in(ctx, r.url_set); !e.empty()) return yes(e);
        return {};
      }
      for (const auto* set : r.urls)
        if (auto e = set->match(f, ctx); !e.empty()) return yes(e);
      return {};
    case Cond::category:
      for (auto id : r.categories)
        if (f.categories.has(id))
          return yes(p.categories ? p.categories->category_name(id) : std::string_view("?"));
      return {};
    case Cond::reputation:
      if (reputation_matches(f.reputation, r.reputation)) return yes(to_string(f.reputation));
      return {};
    case Cond::header:
      for (const auto* h : r.headers)
        if (ctx.header_memo.get(h->id, [&] { return h->match(ctx); })) return yes(h->name);
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

// The first of the conditions in `which` (in evaluation order) that does not hold, or
// Cond::count when all hold.
Cond first_failure(const Policy::Impl& p, const Rule& r, Ctx& ctx, bool request_side_only,
                   std::uint32_t which) {
  if (request_side_only) which &= ~detail::kResponseConds;
  for (Cond c : kEvalOrder) {
    if (!(which & detail::bit(c))) continue;
    if (!eval(p, r, c, ctx).ok) return c;
  }
  return Cond::count;
}

Cond first_failure(const Policy::Impl& p, const Rule& r, Ctx& ctx, bool request_side_only) {
  return first_failure(p, r, ctx, request_side_only, r.conds);
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

// --- Candidates of the prefilter (detail::Prefilter, policy_prefilter.cpp) ---

// Whether the facts hit one of the URL sets (header filters) of a list; once per decision.
bool url_list_holds(const Policy::Impl& p, std::uint32_t id, Ctx& ctx) {
  return ctx.list_memo.get(id, [&] {
    using Check = detail::Prefilter::UrlCheck;
    const auto& f = p.prefilter;
    for (std::uint32_t k = f.url_list_at[id]; k < f.url_list_at[id + 1]; ++k) {
      const Check& c = f.url_checks[k];
      if (c.kind == Check::hosts) {
        if (!static_cast<const detail::UrlSet*>(c.ref)->match_hosts(ctx).empty()) return true;
      } else if (ctx.url_memo.get(c.memo, [&] {
                   return c.kind == Check::keyword
                              ? detail::url_has_keyword(ctx, c.text())
                              : detail::url_matches(ctx, *static_cast<const detail::Regex*>(c.ref));
                 })) {
        return true;
      }
    }
    return false;
  });
}

bool header_list_holds(const Policy::Impl& p, std::uint32_t id, Ctx& ctx) {
  return ctx.list_memo.get(Ctx::kMaxLists + id, [&] {
    const auto& f = p.prefilter;
    for (std::uint32_t k = f.header_list_at[id]; k < f.header_list_at[id + 1]; ++k) {
      const detail::Prefilter::HeaderCheck& c = f.header_checks[k];
      if (ctx.header_memo.get(c.memo, [&] { return c.match(ctx); })) return true;
    }
    return false;
  });
}

// First rule among the candidates of the phase below limit that matches, or kNone: candidates
// in rule order, each checked on the conditions the prefilter did not decide.
std::uint32_t scan_candidates(const Policy::Impl& p, const Candidates& c,
                              const detail::Prefilter::Bits& phase, Ctx& ctx, std::uint32_t limit,
                              bool request_side_only) {
  // Whether rule i, a candidate with what remains to check in `in`, matches.
  auto holds = [&](std::uint32_t i, const detail::Prefilter::Info& in) {
    if (in.url_list && !url_list_holds(p, in.url_list - 1, ctx)) return false;
    if (in.header_list && !header_list_holds(p, in.header_list - 1, ctx)) return false;
    std::uint32_t which = in.rest;
    if (c.unverified) which |= p.rules[i].conds & c.unverified;
    if (request_side_only) which &= ~detail::kResponseConds;
    return !which || first_failure(p, p.rules[i], ctx, false, which) == Cond::count;
  };
  if (c.listed) {
    for (std::size_t t = 0; t < c.count; ++t) {
      const std::uint32_t i = c.entry[t].rule;
      if (i >= limit) return kNone;
      if (((phase[i >> 6] >> (i & 63)) & 1) && holds(i, c.entry[t].info)) return i;
    }
    return kNone;
  }
  const detail::Prefilter::Info* info = p.prefilter.info.data();
  for (std::size_t t = 0; t < c.words; ++t) {
    const std::size_t w = c.word[t];
    std::uint64_t b = c.bits[w] & phase[w];
    while (b) {
      const auto i = static_cast<std::uint32_t>(w * 64 + static_cast<unsigned>(__builtin_ctzll(b)));
      if (i >= limit) return kNone;
      b &= b - 1;
      if (holds(i, info[i])) return i;
    }
  }
  return kNone;
}

// Every enabled rule of the phase below limit, in order, checked in full (decide_unindexed).
std::uint32_t scan_all(const Policy::Impl& p, bool response, Ctx& ctx, std::uint32_t limit,
                       bool request_side_only) {
  for (std::uint32_t i = 0; i < limit && i < p.rules.size(); ++i) {
    const Rule& r = p.rules[i];
    if (r.enabled && r.response() == response && matches(p, r, ctx, request_side_only)) return i;
  }
  return kNone;
}

// How a decision finds its rules: the prefilter's candidates (computed once, by
// need_candidates()), the phase indexes for policies too large for it, or every rule.
struct Finder {
  bool naive = false;
  bool ready = false;
  Candidates cands;  // uninitialised words: written before being read
};

void need_candidates(const Policy::Impl& p, Ctx& ctx, Finder& fd) {
  if (fd.ready || fd.naive || !p.prefilter.usable) return;
  detail::candidates(p, ctx, fd.cands);
  fd.ready = true;
}

std::uint32_t find_rule(const Policy::Impl& p, bool response, Ctx& ctx, Finder& fd,
                        std::uint32_t limit, bool request_side_only) {
  if (fd.naive) return scan_all(p, response, ctx, limit, request_side_only);
  const detail::Prefilter& f = p.prefilter;
  if (!f.usable)
    return scan(p, response ? p.response_index : p.request_index, ctx, limit, request_side_only);
  need_candidates(p, ctx, fd);
  return scan_candidates(p, fd.cands, response ? f.response : f.request, ctx, limit,
                         request_side_only);
}

void set_category(const Policy::Impl& p, Decision& d, std::uint16_t id) {
  if (!p.categories) return;
  d.category = p.categories->category_name(id);
  if (id < p.category_source.size()) d.source = p.category_source[id];
}

// What explains a category a rule names: its name and its database.
detail::ExplainItem category_item(const Policy::Impl& p, std::uint16_t id) {
  return {id, p.categories ? p.categories->category_name(id) : "?",
          id < p.category_source.size() ? p.category_source[id] : ""};
}

// The decision of rule r, which holds: its action, and what explains it (the value that holds
// of its first condition, its category). Users and groups are told apart by their hashes
// (Ctx::keys), categories by id (Rule::category, when it has room for them), source networks
// by the prefilter's ids of those holding the client, all through the rule's ExplainItems: the
// rule's lists, the sets and the names they point to are not read. eval() explains the other
// conditions. Written into d, a Decision as constructed.
void from_rule(const Policy::Impl& p, const Rule& r, Ctx& ctx, Decision& d) {
  d.action = r.action;
  d.rule = r.name;
  const Facts& f = ctx.facts;
  const detail::ExplainItem* const items = p.explain.data() + r.explain;
  // The first of its categories the facts have: from its first line when it names a few.
  const bool inline_ids = r.explain_categories <= Rule::kInlineCategories;
  const detail::ExplainItem* category = nullptr;
  detail::ExplainItem held;
  for (std::uint16_t i = 0; i < r.explain_categories && !category; ++i)
    if (const auto id = inline_ids ? r.category[i] : static_cast<std::uint16_t>(items[i].key);
        f.categories.has(id)) {
      held = category_item(p, id);
      category = &held;
    }
  // The first of the rule's values (items from `values`) that one of the facts' keys equals.
  auto named = [&](std::span<const std::uint64_t> keys) -> std::string_view {
    const detail::ExplainItem* values = items + r.explain_categories;
    for (const std::uint64_t key : keys)
      for (std::uint16_t i = 0; i < r.explain_values; ++i)
        if (values[i].key == key) return values[i].text;
    return {};
  };
  if (r.conds) {
    const auto first = static_cast<Cond>(__builtin_ctz(r.conds));
    d.condition = detail::cond_name(first);
    const std::size_t groups = std::min(f.groups.size(), Ctx::Keys::kMaxGroups);
    if (first == Cond::category)
      d.detail = category ? category->text : std::string_view();
    else if (first == Cond::user && r.explain_values && ctx.keys.ready && !f.user.empty())
      d.detail = named({&ctx.keys.user, 1});
    else if (first == Cond::group && r.explain_values && ctx.keys.ready &&
             f.groups.size() == groups)
      d.detail = named({ctx.keys.groups, groups});
    else if (first == Cond::source && r.explain_values &&
             ctx.keys.source_interval != ~std::size_t{0})
      d.detail = p.prefilter.first_holding(items + r.explain_categories, r.explain_values,
                                           ctx.keys.source_interval);
    if (d.detail.empty()) d.detail = eval(p, r, first, ctx).detail;
  }
  if (category && p.categories) {
    d.category = category->text;
    d.source = category->source;
  }
}

// How the request phase went, beside its Decision.
struct Outcome {
  std::uint32_t rule = kNone;  // deciding rule, kNone for a list or the default
  std::uint32_t limit = 0;     // response-phase rules before this one may still decide
};

bool lets_through(Action a) {
  return a != Action::block && a != Action::warn;
}

std::string_view list_match(const detail::DomainSet& d, const detail::UrlSet& u, Ctx& ctx) {
  if (auto e = d.match(ctx); !e.empty()) return e;
  return u.match(ctx.facts, ctx);
}

// The request phase's decision, written into d (as constructed).
Outcome request_phase(const Policy::Impl& p, Ctx& ctx, Finder& cands, Decision& d) {
  Outcome out;
  const Facts& f = ctx.facts;
  // The candidates before the lists, though a list may decide (rarely): the lists read the
  // host's records, which arrive meanwhile (candidates() reads them last).
  need_candidates(p, ctx, cands);
  // The lists only when the host's records say it is in them: they hold domains and URL
  // prefixes only (the loader refuses keywords and expressions there).
  const bool lists = ctx.in_org_lists();
  std::string_view e, b;
  if (lists && !(e = list_match(p.approved_domains, p.approved_urls, ctx)).empty()) {
    d.action = Action::allow;
    d.rule = "approved list";
    d.condition = "list";
    d.detail = e;
    d.from_list = true;
  } else if (lists && !(b = list_match(p.blocked_domains, p.blocked_urls, ctx)).empty()) {
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
      from_rule(p, p.rules[out.rule], ctx, d);
      out.limit = out.rule;
    }
    d.final = !lets_through(d.action) || find_rule(p, true, ctx, cands, out.limit, true) == kNone;
  }
  if (d.category.empty() && f.categories.count > 0) set_category(p, d, f.categories.ids[0]);
  return out;
}

// *request: the request phase's Outcome and Decision.
Decision decide_impl(const Policy::Impl& p, const Facts& facts, Phase phase,
                     std::uint32_t* response_rule, std::pair<Outcome, Decision>* request,
                     bool naive = false) {
  Ctx ctx(facts, &p.hosts);
  Finder cands;
  cands.naive = naive;
  if (!naive) detail::prefetch(p, ctx);
  // Written field by field where the caller receives it, never copied: a copy would read
  // back fields whose writes have not landed yet (a stall at each one).
  Decision d;
  const Outcome out = request_phase(p, ctx, cands, d);
  if (request) *request = {out, d};
  if (phase == Phase::request || d.final) return d;
  std::uint32_t r = find_rule(p, true, ctx, cands, out.limit, false);
  if (response_rule) *response_rule = r;
  if (r == kNone) {
    d.final = true;
    return d;
  }
  d = Decision();
  from_rule(p, p.rules[r], ctx, d);
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
std::size_t Policy::table_bytes() const {
  return impl_->arena.used();
}

std::string_view Policy::category_name(std::uint16_t id) const {
  return impl_->categories ? impl_->categories->category_name(id) : std::string_view();
}

int Policy::category_id(std::string_view name) const {
  return impl_->categories ? impl_->categories->category_id(name) : -1;
}

void Policy::classify(Facts& facts) const {
  const Impl& p = *impl_;
  facts.reputation = Reputation::unknown;
  if (!p.categories && !p.reputation) return;
  // One hashing for both databases, and their first memory asked for at once.
  const CategoryKeys keys(
      facts.host, facts.path,
      (p.categories && p.categories->has_urls()) || (p.reputation && p.reputation->has_urls()));
  if (p.categories) p.categories->prefetch(keys);
  if (p.reputation) p.reputation->prefetch(keys);
  if (p.categories) p.categories->lookup(keys, facts.categories);
  if (p.reputation) {
    CategoryHits hits;
    p.reputation->lookup(keys, hits);
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

Decision Policy::decide_unindexed(const Facts& facts, Phase phase) const {
  return decide_impl(*impl_, facts, phase, nullptr, nullptr, true);
}

std::string Policy::explain(const Facts& f, Phase phase) const {
  const Impl& p = *impl_;
  std::ostringstream o;
  Ctx ctx(f, &p.hosts);
  std::uint32_t response_rule = kNone;
  std::pair<Outcome, Decision> request;
  Decision final_decision = decide_impl(p, f, phase, &response_rule, &request);
  const Outcome& req = request.first;

  o << "policy " << p.file << ", " << (phase == Phase::request ? "request" : "response")
    << " phase\n";
  o << "facts: client " << ip_text(f.client) << ", listener '" << f.listener << "'"
    << (f.guest ? " (guest)" : "") << ", user '" << f.user << "', " << f.method << " " << f.url
    << ", " << fact_text(p, Cond::category, ctx) << ", reputation " << to_string(f.reputation);
  if (phase == Phase::response)
    o << ", content type '" << f.content_type << "', file type '" << f.file_type << "'";
  o << "\n";

  const Decision& rd = request.second;
  auto list_line = [&](std::string_view what, const detail::DomainSet& d, const detail::UrlSet& u) {
    auto e = list_match(d, u, ctx);
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

namespace {

// The items explaining each rule's categories, and when they come first its users or groups,
// or its source networks (the prefilter's id of each network of each of its sources, in
// order, with what eval() reports of it: the group's name, else the network as written).
void build_explain(Policy::Impl& p) {
  const detail::Prefilter& f = p.prefilter;
  const bool sources = f.usable && (f.active & detail::bit(Cond::source));
  for (Rule& r : p.rules) {
    r.explain = static_cast<std::uint32_t>(p.explain.size());
    for (auto id : r.categories) p.explain.push_back(category_item(p, id));
    r.explain_categories = static_cast<std::uint16_t>(r.categories.size());
    if (r.categories.size() <= Rule::kInlineCategories)
      std::copy(r.categories.begin(), r.categories.end(), r.category);
    const auto first = static_cast<Cond>(__builtin_ctz(r.conds | (1U << 31)));
    const auto& values = first == Cond::user ? r.users : r.groups;
    if ((first == Cond::user || first == Cond::group) && values.size() <= 0xffff) {
      for (auto v : values) p.explain.push_back({detail::nocase_hash(v), v, ""});
      r.explain_values = static_cast<std::uint16_t>(values.size());
    } else if (first == Cond::source && sources) {
      const std::size_t at = p.explain.size();
      bool known = true;
      for (const auto& [set, group] : r.sources)
        for (const auto& [net, text] : set->nets()) {
          const std::uint32_t id = f.source_id(net);
          known = known && id != 0;
          p.explain.push_back({id, group.empty() ? text : group, ""});
        }
      if (known && p.explain.size() - at <= 0xffff)
        r.explain_values = static_cast<std::uint16_t>(p.explain.size() - at);
      else
        p.explain.resize(at);  // explained by eval()
    }
  }
}

// The phase indexes, for policies too large for the prefilter.
void build_phase_indexes(Policy::Impl& p) {
  for (const Rule& r : p.rules) {
    if (!r.enabled) continue;
    PhaseIndex& ix = r.response() ? p.response_index : p.request_index;
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
        for (const auto& item : set->slots())
          for (int k = 0; k < 3; ++k)
            if (item.value.of[k] != kNone) add(ix.by_domain[item.key].of[k]);
    } else if (url_bound) {
      for (const auto* set : r.urls)
        for (const auto& entry : set->hosts()) add(ix.by_url_host[entry.key]);
    } else if (has(Cond::category)) {
      for (auto id : r.categories) {
        if (id >= ix.by_category.size()) ix.by_category.resize(std::size_t{id} + 1);
        add(ix.by_category[id]);
      }
    } else if (has(Cond::user)) {
      for (auto u : r.users) add(ix.by_user[p.strings.add(base::to_lower(u))]);
    } else if (has(Cond::group)) {
      for (auto g : r.groups) add(ix.by_group[p.strings.add(base::to_lower(g))]);
    } else if (has(Cond::port) && port_span <= 1024) {
      for (const auto& pr : r.ports)
        for (std::uint32_t port = pr.lo; port <= pr.hi; ++port)
          add(ix.by_port[static_cast<std::uint16_t>(port)]);
    } else {
      ix.others.push_back(r.index);
    }
  }
}

}  // namespace

void Policy::Impl::build_indexes() {
  std::unordered_map<std::string, std::uint32_t> pattern_ids;
  for (auto& set : url_sets) set.number_patterns(pattern_ids);
  approved_urls.number_patterns(pattern_ids);
  blocked_urls.number_patterns(pattern_ids);
  std::uint32_t filter_id = 0;
  for (auto& h : header_filters) {
    h.id = filter_id++;
    h.prepare();
  }
  detail::build_prefilter(*this);
  build_explain(*this);
  hosts.build(*this);
  prefilter.by_domain = {};  // in the host table's records now
  if (!prefilter.usable) build_phase_indexes(*this);
  pack();
}

// Moves the tables one by one, each copied into place and its heap memory freed (vectors are
// exactly as long as their content there): what decisions read then lies in a few 2 MiB
// pages (when the kernel gives them) rather than thousands of 4 KiB pages among the heap's,
// and costs few address translations, which the work between two decisions otherwise evicts.
void Policy::Impl::pack() {
  std::size_t bytes = 0;
  each_table([&](auto& t) { bytes = base::Arena::place(bytes, t.size() * sizeof(t[0])); });
  arena = base::Arena(bytes);
  each_table([&](auto& t) {
    using T = typename std::decay_t<decltype(t)>::value_type;
    t = detail::Table<T>(std::make_move_iterator(t.begin()), std::make_move_iterator(t.end()),
                         base::ArenaAllocator<T>(&arena));
  });
}

std::string format(const LoadError& e) {
  return e.file + ":" + std::to_string(e.line) + ":" + std::to_string(e.column) + ": " + e.message;
}

}  // namespace pc::policy
