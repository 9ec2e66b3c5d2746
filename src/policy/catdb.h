// Category and reputation databases: domain and URL lists compiled into a compact, immutable
// lookup. Import formats: the squidGuard / UT1 directory layout (one folder per category with
// `domains`, `urls` and optionally `expressions` files), plain domain lists, hosts files, and
// (for reputation) URLhaus CSV. Built off the data plane; looked up from any thread.
//
// Matching:
//   - a domain entry "example.com" matches example.com and every subdomain (never
//     "badexample.com"); entries that are IP addresses match only that address;
//   - a URL entry "example.com/a/b/" matches that host exactly (not its subdomains) with a path
//     equal to "/a/b" or starting with "/a/b/" (also "/a/b?q"); an entry with a query
//     ("example.com/p?id=5") matches that exact path and query; a host-only URL entry matches
//     every path of that host. Ports, user info and fragments are not part of URL entries;
//   - an expression (RE2, case-insensitive, unanchored) is searched in "host" + path; the
//     expressions are searched only when that text holds (ASCII case ignored) one of the
//     literals RE2's analysis (FilteredRE2) says their matches need, or a non-ASCII byte;
//   - hosts and paths compare case-insensitively; no percent-decoding.
// Storage: 64-bit hashes of the normalised keys, no entry text (about 16 bytes an entry). Two
// keys whose hashes collide would be confused; with n entries a probe hits a foreign key with
// probability about n / 2^64 (5 million entries: 3e-13), accepted. Loading is fast enough
// from the text files (5 million domains in about 1.3 s), so there is no binary cache.
// Public suffixes: the system list (Debian package publicsuffix) through libpsl, libpsl's
// built-in list when that file is missing; only the ICANN section counts (see
// is_public_suffix).
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
// For a URL match, entry is the "host/path-prefix" slice when path directly follows host in
// memory (both views into one "host/path" string); otherwise it is the matched prefix of path
// (the host, for a host-only URL entry).

// A host and path hashed for lookup, so that several databases can be asked without hashing
// again (see CategoryDb::lookup for host and path). URL keys are made only when urls is true
// (no database asked has URL entries otherwise). Holds views of host and path.
class CategoryKeys {
 public:
  CategoryKeys(std::string_view host, std::string_view path, bool urls);

 private:
  friend class CategoryDb;
  static constexpr std::size_t kMaxUrl = 34;
  static constexpr std::size_t kMaxLabels = 253 / 2 + 2;
  std::string_view host, path;  // host empty: nothing to look up
  bool contiguous = false;      // path directly follows host in memory
  // URL keys, shortest first (probed in reverse), with how much of path each covers; domain
  // keys, shortest suffix first, with where each suffix starts in host.
  std::size_t nu = 0, nd = 0;
  std::uint64_t ukeys[kMaxUrl];
  std::uint32_t ulen[kMaxUrl];
  std::uint64_t dkeys[kMaxLabels];
  std::uint8_t dpos[kMaxLabels];
};

class CategoryDb {
 public:
  class Builder;

  // Adds every category that host (+ path) belongs to into hits, longest host-suffix and
  // longest URL-prefix matches first; returns how many matches there were and fills
  // *first (when not null) with the first. Allocation-free.
  // Order: URL prefixes (longest first), domain suffixes (longest first), expressions (in the
  // order added). The count includes matches beyond CategoryHits::kMax. *first is left alone
  // when nothing matches. host: no port, no brackets; a trailing dot is ignored. path: path and
  // query as sent ("/" or empty for none). Expressions see at most 8 KiB of path unless path
  // follows host in memory; only a matching expression makes RE2 allocate. URL entries are
  // tried at the first 30 '/' boundaries of the path and at the whole path: an entry deeper
  // than that matches only a path that equals it.
  std::size_t lookup(std::string_view host, std::string_view path, CategoryHits& hits,
                     DbMatch* first = nullptr) const;
  // The same with keys made once for several databases; prefetch asks for the memory the
  // lookup starts with, so that the databases' first reads overlap.
  std::size_t lookup(const CategoryKeys& keys, CategoryHits& hits, DbMatch* first = nullptr) const;
  void prefetch(const CategoryKeys& keys) const;
  bool has_urls() const;  // whether any URL entry was added

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
  std::uint16_t add_source(SourceInfo s);         // 0xffff when there are too many
  std::uint16_t category(std::string_view name);  // id for a name, created on first use;
                                                  // 0xffff when there are too many
  // Entries are normalised (lower-case, no scheme, no trailing dot, "www." kept as given).
  // A bare public suffix ("com", "co.uk") is refused with false (libpsl).
  // add_domain also strips a leading "." or "*."; it takes host names (letters, digits, '-',
  // '_', UTF-8; labels of 1..63 bytes, 253 in all) and IPv4 addresses, nothing else.
  // add_url takes "[scheme://][user@]host[:port][/path][?query][#fragment]"; an IPv6 host is
  // bracketed; the trailing '/' of the path is dropped; false for a bad host or a control
  // character or space in the rest.
  // add_expression: false with *error set when RE2 cannot compile the pattern.
  bool add_domain(std::string_view domain, std::uint16_t category, std::uint16_t source);
  bool add_url(std::string_view url, std::uint16_t category, std::uint16_t source);
  bool add_expression(std::string_view re2_pattern, std::uint16_t category, std::uint16_t source,
                      std::string* error);
  // RE2's memory budget for the one set that searches all expressions at once (default
  // 64 MiB). A set that does not compile within it, or whose search runs out of it on some
  // text, leaves the expressions searched one by one (each within RE2's default budget):
  // slower, never a missed match. Lowered by the tests to reach those paths.
  void set_expression_memory(std::int64_t bytes);
  // Compiles what was added; the builder is then empty (categories and sources too).
  std::shared_ptr<const CategoryDb> build();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Importers. Problems are appended to `errors` as "file:line: message" (or "path: message"
// for a file or folder that cannot be read); a bad line is skipped, never fatal. Files are
// read through mmap; '#' starts a comment in domain lists and hosts files, and a comment line
// in `urls` and CSV files ("# " in `expressions`). Lines may end in CRLF.
//
// squidGuard / UT1: every sub-folder of dir (sorted; names starting with '.' skipped;
// symbolic links followed, so an alias folder adds its entries under its own name too) is a
// category with optional files `domains`, `urls` and `expressions`; other files are ignored.
void import_squidguard_dir(CategoryDb::Builder& b, std::uint16_t source,
                           const std::filesystem::path& dir, std::vector<std::string>& errors);
void import_domain_list(CategoryDb::Builder& b, std::uint16_t source, std::uint16_t category,
                        const std::filesystem::path& file, std::vector<std::string>& errors);
// One URL prefix per line ("host/path", scheme optional; lines starting with '#' skipped), the
// format of a squidGuard `urls` file.
void import_url_list(CategoryDb::Builder& b, std::uint16_t source, std::uint16_t category,
                     const std::filesystem::path& file, std::vector<std::string>& errors);
// Hosts file: "ADDRESS NAME [NAME...]" (any IPv4 or IPv6 address); localhost and the other
// loopback names are skipped.
void import_hosts_file(CategoryDb::Builder& b, std::uint16_t source, std::uint16_t category,
                       const std::filesystem::path& file, std::vector<std::string>& errors);
// URLhaus CSV (id,dateadded,url,url_status,...): online -> dangerous, offline -> highly
// suspicious; the builder's categories are the Reputation values by name. Fields may be
// quoted ("" inside quotes is a quote); a header line starting with "id," is skipped. The
// category ids must equal the Reputation values: a fresh builder (or one whose first
// categories are the levels in enum order) gets them created; otherwise nothing is imported
// and one error is reported. The port of a listed URL is not part of the entry.
void import_urlhaus_csv(CategoryDb::Builder& b, std::uint16_t source,
                        const std::filesystem::path& file, std::vector<std::string>& errors);

// True when domain is a public suffix: a rule of the ICANN section of the Public Suffix List
// ("com", "co.uk", "com.au"), without the implicit "*" rule (so "localhost" and unknown
// single labels are not). Suffixes of the private section ("github.io", "blogspot.com") are
// not refused: lists legitimately classify whole hosting platforms. The list is the system
// file /usr/share/publicsuffix/public_suffix_list.dat read by libpsl (libpsl's built-in list
// when it is missing); the ICANN rules of that file also give a prefilter so that most names
// cost no libpsl call. Upper case and a trailing dot are accepted.
bool is_public_suffix(std::string_view domain);

}  // namespace pc::policy
