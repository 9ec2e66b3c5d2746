// The policy's table of host names (detail::HostTable): built once per policy, read by every
// decision. See policy_impl.h for the layout.
#include <bit>
#include <unordered_map>

#include "policy/policy_impl.h"

namespace pc::policy::detail {

std::size_t HostTable::Record::posting_bytes(int k) const {
  const std::uint16_t n = head_.n[k];
  if (n & kDense) return sizeof(std::uint32_t);
  return std::size_t{n} * (k < kPostings / 2 ? sizeof(Prefilter::Entry) : sizeof(std::uint16_t));
}

bool HostTable::Record::domain(std::uint32_t set, int first, int second,
                               std::string_view& out) const {
  const unsigned char* at = p_ + refs_start();
  for (std::uint32_t i = 0; i < head_.domain_refs; ++i, at += sizeof(DomainRef)) {
    DomainRef r;
    std::memcpy(&r, at, sizeof r);
    if (r.set > set) break;  // ascending
    if (r.set != set) continue;
    for (int k : {first, second}) {
      if (!(r.kinds & (1U << k))) continue;
      // The entries of a set follow one another in Kind order.
      const std::size_t entry =
          (r.kinds >> 3) + static_cast<unsigned>(std::popcount(r.kinds & ((1U << k) - 1)));
      std::memcpy(&out, p_ + head_.tail + entry * sizeof(std::string_view), sizeof out);
      return true;
    }
    return false;
  }
  return false;
}

bool HostTable::Record::url_patterns(std::uint32_t set, const unsigned char*& at,
                                     std::uint32_t& n) const {
  const unsigned char* p = p_ + refs_start() + std::size_t{head_.domain_refs} * sizeof(DomainRef);
  for (std::uint32_t i = 0; i < head_.url_refs; ++i, p += sizeof(UrlRef)) {
    UrlRef r;
    std::memcpy(&r, p, sizeof r);
    if (r.set > set) break;  // ascending
    if (r.set != set) continue;
    at = p_ + url_start() + std::size_t{r.first} * sizeof(UrlPattern);
    n = r.patterns;
    return true;
  }
  return false;
}

const unsigned char* HostTable::find(std::uint64_t h, std::string_view name) const {
  const std::uint32_t rec = index_.find(h, [&](std::uint32_t r) { return is(r, name); });
  return rec ? at(rec) : nullptr;
}

void HostTable::lookup_slots(const HostKeys& host, std::uint32_t* slot) const {
  for (std::size_t i = 0; i < host.size(); ++i) {
    const std::uint64_t h = host.hash(i);
    slot[i] = index_.may_hold(h) ? static_cast<std::uint32_t>(index_.home(h)) : kNoSlot;
    if (slot[i] != kNoSlot) __builtin_prefetch(&index_.slot(slot[i]));
  }
}

void HostTable::lookup_records(const HostKeys& host, std::uint32_t* slot) const {
  for (std::size_t i = 0; i < host.size(); ++i) {
    if (slot[i] == kNoSlot) continue;
    const auto tag = static_cast<std::uint32_t>(host.hash(i));
    for (std::size_t j = slot[i];; j = index_.next(j)) {
      const SlotIndex::Slot s = index_.slot(j);
      if (s.ref == 0) {
        slot[i] = kNoSlot;
        break;
      }
      if (s.tag == tag) {
        slot[i] = static_cast<std::uint32_t>(j);
        __builtin_prefetch(at(s.ref));
        __builtin_prefetch(at(s.ref) + sizeof(Line));  // most records with postings span two
        break;
      }
    }
  }
}

void HostTable::lookup_names(const HostKeys& host, const std::uint32_t* slot,
                             const unsigned char** out) const {
  for (std::size_t i = 0; i < host.size(); ++i) {
    out[i] = nullptr;
    if (slot[i] == kNoSlot) continue;
    const std::string_view name = host.name(i);
    const auto tag = static_cast<std::uint32_t>(host.hash(i));
    for (std::size_t j = slot[i];; j = index_.next(j)) {
      const SlotIndex::Slot s = index_.slot(j);
      if (s.ref == 0) break;
      if (s.tag == tag && is(s.ref, name)) {
        out[i] = at(s.ref);
        break;
      }
    }
  }
}

void HostTable::build(Policy::Impl& p) {
  struct Domains {
    std::uint32_t set;
    std::string_view entry[3];  // per DomainSet::Kind; empty: none
  };
  struct Urls {
    std::uint32_t set;
    std::vector<UrlPattern> patterns;
  };
  struct Build {
    std::string_view key;
    std::vector<Domains> domains;
    std::vector<Urls> urls;
    const Prefilter::DomainPost* post = nullptr;
  };
  std::vector<Build> recs;
  std::unordered_map<std::string_view, std::size_t> index;
  auto rec = [&](std::string_view key) -> Build& {
    auto [it, fresh] = index.emplace(key, recs.size());
    if (fresh) recs.push_back(Build{key, {}, {}, nullptr});
    return recs[it->second];
  };
  std::uint32_t next = 0;
  auto add_domains = [&](DomainSet& set) {
    set.id = next++;
    for (const auto& item : set.slots()) {
      Domains d{set.id, {}};
      for (int k = 0; k < 3; ++k)
        if (item.value.of[k] != kNone) d.entry[k] = set.entries()[item.value.of[k]];
      rec(item.key).domains.push_back(d);
    }
  };
  // The organisation's lists first: every decision looks for them in the records.
  add_domains(p.approved_domains);
  add_domains(p.blocked_domains);
  const std::uint32_t org_domain_sets = next;
  for (auto& set : p.domain_sets) add_domains(set);
  next = 0;
  auto add_urls = [&](UrlSet& set) {
    set.id = next++;
    for (const auto& item : set.hosts()) {
      Urls u{set.id, {}};
      for (std::uint32_t i : item.value) {
        const UrlSet::Pattern& pat = set.pattern(i);
        u.patterns.push_back({pat.path, pat.text, pat.port,
                              static_cast<std::uint8_t>(pat.kind == UrlSet::Pattern::Kind::exact),
                              static_cast<std::uint8_t>(pat.scheme.empty()     ? 0
                                                        : pat.scheme == "http" ? 1
                                                                               : 2)});
      }
      rec(item.key).urls.push_back(std::move(u));
    }
  };
  add_urls(p.approved_urls);
  add_urls(p.blocked_urls);
  const std::uint32_t org_url_sets = next;
  for (auto& set : p.url_sets) add_urls(set);
  for (const auto& item : p.prefilter.by_domain.items()) rec(item.key).post = &item.value;
  for (Rule& r : p.rules) {
    if (r.domains.size() <= Rule::kInlineSets) {
      r.domain_sets = static_cast<std::uint8_t>(r.domains.size());
      for (std::size_t i = 0; i < r.domains.size(); ++i) r.domain_set[i] = r.domains[i]->id;
    }
    if (r.urls.size() == 1 && r.urls[0]->host_bound()) r.url_set = r.urls[0]->id;
  }
  if (recs.empty()) return;

  // The records, one after the other, each from an 8-byte boundary.
  std::vector<unsigned char> bytes;
  std::vector<std::uint32_t> offset;  // per record, in lines
  const Prefilter& f = p.prefilter;
  for (const Build& b : recs) {
    offset.push_back(static_cast<std::uint32_t>(bytes.size() / sizeof(Line)));
    const std::size_t start = bytes.size();
    auto put = [&](const void* data, std::size_t n) {
      const auto* c = static_cast<const unsigned char*>(data);
      bytes.insert(bytes.end(), c, c + n);
    };
    Head head{};
    head.key_len = static_cast<std::uint16_t>(b.key.size());
    for (const Domains& d : b.domains)
      if (d.set < org_domain_sets) head.flags = kOrgLists;
    for (const Urls& u : b.urls)
      if (u.set < org_url_sets) head.flags = kOrgLists;
    head.domain_refs = static_cast<std::uint32_t>(b.domains.size());
    head.url_refs = static_cast<std::uint32_t>(b.urls.size());
    const Prefilter::Posting* postings[kPostings] = {};
    if (b.post) {
      for (int k = 0; k < 4; ++k) {
        const Prefilter::Post& post = k < 3 ? b.post->of[k] : b.post->url;
        postings[k] = &post.anchored;
        postings[4 + k] = &post.all;
      }
      for (int k = 0; k < kPostings; ++k)
        head.n[k] =
            postings[k]->dense() ? kDense : static_cast<std::uint16_t>(postings[k]->count());
    }
    put(&head, sizeof head);
    put(b.key.data(), b.key.size());
    while ((bytes.size() - start) % 4) bytes.push_back(0);
    std::uint32_t texts = 0;
    for (const Domains& d : b.domains) {
      DomainRef r{d.set, texts << 3};
      for (int k = 0; k < 3; ++k)
        if (!d.entry[k].empty()) {
          r.kinds |= 1U << k;
          ++texts;
        }
      put(&r, sizeof r);
    }
    std::uint32_t patterns = 0;
    for (const Urls& u : b.urls) {
      UrlRef r{u.set, static_cast<std::uint32_t>(u.patterns.size()), patterns};
      patterns += r.patterns;
      put(&r, sizeof r);
    }
    for (int k = 0; k < kPostings; ++k) {
      if (!postings[k] || postings[k]->empty()) continue;
      const Prefilter::Posting& v = *postings[k];
      if (v.dense())
        put(&v.off, sizeof v.off);
      else
        put(f.rules_at(v, k < 4),
            v.count() * (k < 4 ? sizeof(Prefilter::Entry) : sizeof(std::uint16_t)));
    }
    while ((bytes.size() - start) % 8) bytes.push_back(0);
    head.tail = static_cast<std::uint32_t>(bytes.size() - start);
    for (const Domains& d : b.domains)
      for (int k = 0; k < 3; ++k)
        if (!d.entry[k].empty()) put(&d.entry[k], sizeof d.entry[k]);
    head.patterns_at = static_cast<std::uint32_t>(bytes.size() - start);
    std::memcpy(bytes.data() + start, &head, sizeof head);
    for (const Urls& u : b.urls)
      for (const UrlPattern& pat : u.patterns) put(&pat, sizeof pat);
    while (bytes.size() % sizeof(Line)) bytes.push_back(0);
  }
  arena_.assign(bytes.size() / sizeof(Line), Line{});
  std::memcpy(arena_.data(), bytes.data(), bytes.size());

  index_.reset(recs.size());
  for (std::size_t r = 0; r < recs.size(); ++r)
    index_.place(suffix_hash(recs[r].key), offset[r] + 1);
}

void Ctx::start_records() {
  if (host_stage_ > 0) return;
  host_stage_ = 1;
  if (table && !table->empty() && host.complete()) table->lookup_slots(host, host_slots_);
}

void Ctx::fetch_records() {
  start_records();
  if (host_stage_ > 1) return;
  host_stage_ = 2;
  if (table && !table->empty() && host.complete()) table->lookup_records(host, host_slots_);
}

const unsigned char* const* Ctx::records() {
  if (host_stage_ < 3) {
    fetch_records();
    host_stage_ = 3;
    if (table && !table->empty() && host.complete())
      table->lookup_names(host, host_slots_, records_);
    else
      for (std::size_t i = 0; i < host.size(); ++i) records_[i] = nullptr;
  }
  return records_;
}

bool Ctx::in_org_lists() {
  if (!table || table->empty() || !host.complete()) return true;
  const unsigned char* const* r = records();
  for (std::size_t i = 0; i < host.size(); ++i)
    if (r[i] && HostTable::Record(r[i]).in_org_lists()) return true;
  return false;
}

const unsigned char* Ctx::own_record() {
  if (!table || table->empty() || host.host().empty()) return nullptr;
  if (!host.complete()) return table->find(host.own_hash(), host.host());
  const unsigned char* const* r = records();
  for (std::size_t i = host.size(); i-- > 0;)
    if (host.own(i)) return r[i];
  return nullptr;
}

}  // namespace pc::policy::detail
