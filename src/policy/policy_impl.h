// Internals of the compiled Policy, shared by the loader (policy_load.cpp), the matchers
// (policy_match.cpp) and the decision code (policy.cpp). Not part of the public interface.
#pragma once

#include <string_view>  // before RE2, which keys its string_view support on it

#include <re2/re2.h>

#include <bitset>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/cidr.h"
#include "policy/catdb.h"
#include "policy/facts.h"
#include "policy/policy.h"
#include "policy/policy_tz.h"

namespace pc::policy::detail {

inline constexpr std::uint32_t kNone = 0xffffffffU;

// Owns strings for the lifetime of the Policy; views into it stay valid (deque elements never
// move).
class Strings {
 public:
  std::string_view add(std::string s) { return store_.emplace_back(std::move(s)); }

 private:
  std::deque<std::string> store_;
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

  // Normalises and adds one entry; false with *error on a malformed one.
  bool add(std::string_view text, Strings& strings, std::string* error);
  // The entry (as written) that matches host, most specific first; empty when none.
  std::string_view match(std::string_view host) const;
  bool empty() const { return entries_.empty(); }
  std::size_t size() const { return entries_.size(); }
  const std::unordered_map<std::string_view, Slot>& slots() const { return map_; }

 private:
  std::unordered_map<std::string_view, Slot> map_;  // normalised domain -> entries
  std::vector<std::string_view> entries_;           // as written
};

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
    std::unique_ptr<RE2> re;
  };

  bool add(std::string_view text, Strings& strings, std::string* error);
  std::string_view match(const Facts& f) const;
  bool empty() const { return patterns_.empty(); }
  // True when every pattern names its host (no keywords or expressions): then the set can
  // only match hosts in hosts().
  bool host_bound() const { return scan_.empty(); }
  const std::unordered_map<std::string_view, std::vector<std::uint32_t>>& hosts() const {
    return by_host_;
  }

 private:
  std::deque<Pattern> patterns_;
  std::unordered_map<std::string_view, std::vector<std::uint32_t>> by_host_;
  std::vector<std::uint32_t> scan_;  // keywords and regexes, in order
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
  std::string_view name;
  std::string_view header;
  Op op = Op::contains;
  std::string_view value;
  std::int64_t number = 0;
  std::unique_ptr<RE2> re;
  bool match(const wire::Head* head) const;
};

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
std::unique_ptr<RE2> compile_re2(std::string_view pattern, std::string* error);
inline constexpr std::uint32_t bit(Cond c) {
  return 1U << static_cast<unsigned>(c);
}
inline constexpr std::uint32_t kResponseConds = bit(Cond::content_type) | bit(Cond::file_type);

struct PortRange {
  std::uint16_t lo = 0, hi = 0;
  std::string_view text;
};

struct Rule {
  std::uint32_t index = 0;  // position in the document (0-based)
  std::string_view name;
  std::string_view note;
  bool enabled = true;
  Action action = Action::allow;
  int line = 0;
  std::uint32_t conds = 0;  // bit(Cond) per condition present

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

  bool response() const { return (conds & kResponseConds) != 0; }
};

// Per-decision scratch: what is derived from the facts once (local time).
struct Ctx {
  const Facts& facts;
  bool have_time = false;
  int weekday = 0;
  int minute = 0;
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

// Candidate prefilter over all enabled rules (both phases), as bitsets over rule indices
// (bit i: rule i). For each condition kind it indexes, `free[kind]` holds the rules without
// that condition (or with one the tables cannot decide: URL keywords and expressions, wide
// port ranges) and the postings below hold the rules whose condition can hold for a key.
// decide() ANDs, over the active kinds, `free[kind]` OR the postings the facts hit: a rule
// left out cannot match; every rule left in is still checked in full. Decision-time bitsets
// live on the stack (kMaxWords words each); a policy with more rules uses the PhaseIndex.
struct Prefilter {
  static constexpr std::size_t kMaxWords = 256;  // 16,384 rules
  using Bits = std::vector<std::uint64_t>;
  // Rules under one key: ascending indices, or a bitset when they are many (OR-ing words is
  // then cheaper than setting bits one by one).
  struct Posting {
    std::vector<std::uint32_t> rules;
    Bits bits;
  };
  struct DomainPost {
    Posting of[3];  // domain conditions, per DomainSet::Kind
    Posting url;    // URL conditions whose patterns all name their host: this host
  };
  struct NetKey {
    std::uint64_t hi = 0, lo = 0;
    bool operator==(const NetKey&) const = default;
  };
  struct NetHash {
    std::size_t operator()(const NetKey& k) const {
      return static_cast<std::size_t>((k.hi * 0x9e3779b97f4a7c15ULL) ^
                                      (k.lo + (k.hi >> 29)) * 0xff51afd7ed558ccdULL);
    }
  };
  struct Nets {
    int prefix = 0;  // 0..128, in the IPv4-mapped space
    NetKey mask;
    std::unordered_map<NetKey, Posting, NetHash> by_net;  // masked network -> rules
  };

  bool usable = false;  // rule count fits kMaxWords
  std::size_t words = 0;
  Bits request, response;    // enabled rules of each phase
  std::uint32_t active = 0;  // bit(Cond) per kind with at least one indexed rule
  Bits free[static_cast<int>(Cond::count)];

  std::unordered_map<std::string_view, DomainPost> by_domain;  // domain -> rules
  std::vector<Posting> by_category;                            // category id -> rules
  std::unordered_map<std::string_view, Posting> by_user;       // lower-case
  std::unordered_map<std::string_view, Posting> by_group;      // lower-case
  std::unordered_map<std::string_view, Posting> by_method;     // lower-case
  std::unordered_map<std::string_view, Posting> by_listener;   // exact
  std::unordered_map<std::uint16_t, Posting> by_port;
  Posting by_guest[2];       // guest = false, true
  Posting by_reputation[3];  // per Sensitivity
  std::vector<std::pair<const Schedule*, Posting>> by_schedule;
  std::vector<Nets> by_source;  // one per prefix length in use
};

}  // namespace pc::policy::detail

namespace pc::policy {

struct Policy::Impl {
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

  std::vector<detail::Rule> rules;
  Action default_action = Action::allow;
  detail::PhaseIndex request_index, response_index;
  detail::Prefilter prefilter;

  std::shared_ptr<const CategoryDb> categories;   // databases + custom categories; may be null
  std::vector<std::string_view> category_source;  // category id -> "name version"
  std::shared_ptr<const CategoryDb> reputation;   // feeds; may be null
  std::vector<Reputation> reputation_of;          // reputation db category id -> level

  void build_indexes();
};

}  // namespace pc::policy
