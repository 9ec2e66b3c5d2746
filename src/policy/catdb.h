// Category and reputation databases: domain and URL lists compiled into a compact, immutable
// lookup. Import formats: the squidGuard / UT1 directory layout (one folder per category with
// `domains`, `urls` and optionally `expressions` files), plain domain lists, hosts files, and
// (for reputation) URLhaus CSV. Built off the data plane; looked up from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/facts.h"

namespace pc::policy {

struct SourceInfo {
  std::string name;     // e.g. "ut1"
  std::string version;  // e.g. "2026-11-01"; shown in decisions
};

// One match, for explaining a decision.
struct DbMatch {
  std::uint16_t category = 0;  // category id (for reputation DBs: a Reputation value)
  std::uint16_t source = 0;    // source id
  std::string_view entry;      // the part of the looked-up input that matched (a host suffix,
                               // "host/path" prefix, or the expression text)
};

class CategoryDb {
 public:
  class Builder;

  // Adds every category that host (+ path) belongs to into hits, longest host-suffix and
  // longest URL-prefix matches first; returns how many matches there were and fills
  // *first (when not null) with the first. Allocation-free.
  std::size_t lookup(std::string_view host, std::string_view path, CategoryHits& hits,
                     DbMatch* first = nullptr) const;

  std::string_view category_name(std::uint16_t id) const;
  // Category id for a name, or -1.
  int category_id(std::string_view name) const;
  std::size_t categories() const;
  const SourceInfo& source(std::uint16_t id) const;
  std::size_t entries() const;       // domains + URL prefixes + expressions
  std::size_t memory_bytes() const;  // resident size of the compiled tables

  ~CategoryDb();

 private:
  CategoryDb() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class CategoryDb::Builder {
 public:
  Builder();
  ~Builder();
  std::uint16_t add_source(SourceInfo s);
  std::uint16_t category(std::string_view name);  // id for a name, created on first use
  // Entries are normalised (lower-case, no scheme, no trailing dot, "www." kept as given).
  // A bare public suffix ("com", "co.uk") is refused with false (libpsl).
  bool add_domain(std::string_view domain, std::uint16_t category, std::uint16_t source);
  bool add_url(std::string_view url, std::uint16_t category, std::uint16_t source);
  bool add_expression(std::string_view re2_pattern, std::uint16_t category, std::uint16_t source,
                      std::string* error);
  std::shared_ptr<const CategoryDb> build();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Importers. Problems are appended to `errors` as "file:line: message"; a bad line is
// skipped, never fatal.
void import_squidguard_dir(CategoryDb::Builder& b, std::uint16_t source,
                           const std::filesystem::path& dir, std::vector<std::string>& errors);
void import_domain_list(CategoryDb::Builder& b, std::uint16_t source, std::uint16_t category,
                        const std::filesystem::path& file, std::vector<std::string>& errors);
void import_hosts_file(CategoryDb::Builder& b, std::uint16_t source, std::uint16_t category,
                       const std::filesystem::path& file, std::vector<std::string>& errors);
// URLhaus CSV (id,dateadded,url,url_status,...): online -> dangerous, offline -> highly
// suspicious; the builder's categories are the Reputation values by name.
void import_urlhaus_csv(CategoryDb::Builder& b, std::uint16_t source,
                        const std::filesystem::path& file, std::vector<std::string>& errors);

// True when domain is a public suffix (libpsl's built-in list).
bool is_public_suffix(std::string_view domain);

}  // namespace pc::policy
