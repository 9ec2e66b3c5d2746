// Fuzzes the category and reputation importers (policy/catdb.h) and CategoryDb::lookup.
//
// Input: byte 0 picks the importer (0 squidGuard folder, 1 domain list, 2 URL list, 3 hosts
// file, 4 URLhaus CSV), byte 1 holds flags, the rest is the file. The file is written to one
// scratch path created once per process and rewritten per input. For squidGuard the rest is a
// list of records, each "@@ CATEGORY/FILE" on a line of its own followed by the file's lines
// ("@@ ALIAS -> CATEGORY" makes ALIAS a symbolic link to the CATEGORY folder).
//
// Invariants: every problem names the file (and a line that exists); every line the importer
// accepted (no problem reported) and that is plainly a domain or URL is found again by lookup
// under its category (domains also for a subdomain, URL prefixes also for a longer path);
// lookup agrees with itself whether path follows host in memory or not, for upper-case
// input and with a trailing dot; hit counts, ids and the reported entry are consistent. The
// expressions of a squidGuard input match, through lookup (which searches them only when
// the text holds a literal they need), exactly the texts RE2 matches them in one by one.
#include <re2/re2.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "fuzz_scratch.h"
#include "policy/catdb.h"

namespace fs = std::filesystem;
using namespace pc::policy;
using pc::wire::fuzz::inside;

namespace {

const fs::path& scratch() {
  return pc::fuzz::scratch_dir("pc-fuzz-catdb");
}

void write(const fs::path& p, std::string_view text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!out) std::abort();
}

std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t nl = text.find('\n', start);
    std::size_t stop = nl == std::string_view::npos ? text.size() : nl;
    out.push_back(text.substr(start, stop - start));
    start = stop + 1;
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

bool host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

// "label(.label)*" of letters, digits, '-' and '_': a name every importer takes as written.
bool plain_domain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  std::size_t label = 0;
  for (char c : s) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
    } else if (!host_char(c) || ++label > 63) {
      return false;
    }
  }
  return label != 0;
}

bool path_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' ||
         c == '.' || c == '-' || c == '_';
}

// "[http[s]://]host[/path]" with a plain host and a plain path: the host and the path.
bool plain_url(std::string_view s, std::string_view& host, std::string_view& path) {
  if (s.starts_with("http://"))
    s.remove_prefix(7);
  else if (s.starts_with("https://"))
    s.remove_prefix(8);
  auto slash = s.find('/');
  host = s.substr(0, slash);
  path = slash == std::string_view::npos ? std::string_view() : s.substr(slash);
  if (!plain_domain(host)) return false;
  for (char c : path)
    if (!path_char(c)) return false;
  return true;
}

// The line numbers of the problems reported for file.
std::set<std::size_t> bad_lines(const std::vector<std::string>& errors, const std::string& file) {
  std::set<std::size_t> out;
  for (const auto& e : errors) {
    if (!e.starts_with(file + ":")) continue;
    std::size_t n = 0;
    std::size_t i = file.size() + 1;
    bool digits = false;
    while (i < e.size() && e[i] >= '0' && e[i] <= '9') {
      n = n * 10 + static_cast<std::size_t>(e[i] - '0');
      ++i;
      digits = true;
    }
    if (digits) out.insert(n);
  }
  return out;
}

// Every problem names one of the files written, and a line that exists in it.
void check_errors(const std::vector<std::string>& errors,
                  const std::vector<std::pair<std::string, std::string>>& files,
                  const std::string& root) {
  for (const auto& e : errors) {
    bool named = false;
    for (const auto& [path, text] : files) {
      if (!e.starts_with(path + ":")) continue;
      named = true;
      std::size_t i = path.size() + 1;
      std::size_t n = 0;
      bool digits = false;
      while (i < e.size() && e[i] >= '0' && e[i] <= '9') {
        n = n * 10 + static_cast<std::size_t>(e[i] - '0');
        ++i;
        digits = true;
      }
      if (digits) {
        FUZZ_CHECK(n >= 1 && n <= lines_of(text).size());
        FUZZ_CHECK(e.compare(i, 2, ": ") == 0);
      }
    }
    // Folder-level problems name the folder.
    if (!named) named = e.starts_with(root);
    if (!named) std::fprintf(stderr, "problem names no file: %s\n", e.c_str());
    FUZZ_CHECK(named);
  }
}

struct Result {
  std::size_t count = 0;
  CategoryHits hits;
  DbMatch first;
};

Result look(const CategoryDb& db, std::string_view host, std::string_view path) {
  Result r;
  r.first.category = 0xbeef;
  r.count = db.lookup(host, path, r.hits, &r.first);
  FUZZ_CHECK(r.hits.count <= CategoryHits::kMax);
  FUZZ_CHECK(r.hits.count <= r.count);
  if (r.count > 0) FUZZ_CHECK(r.hits.count > 0);
  if (r.count == 0) FUZZ_CHECK(r.first.category == 0xbeef);  // left alone
  for (std::uint8_t i = 0; i < r.hits.count; ++i) {
    FUZZ_CHECK(r.hits.ids[i] < db.categories());
    for (std::uint8_t j = 0; j < i; ++j) FUZZ_CHECK(r.hits.ids[i] != r.hits.ids[j]);
  }
  if (r.count > 0) {
    FUZZ_CHECK(r.hits.has(r.first.category));
    FUZZ_CHECK(r.first.category == r.hits.ids[0]);
  }
  return r;
}

bool same(const Result& a, const Result& b) {
  if (a.count != b.count || a.hits.count != b.hits.count) return false;
  for (std::uint8_t i = 0; i < a.hits.count; ++i)
    if (a.hits.ids[i] != b.hits.ids[i]) return false;
  return true;
}

std::string upper(std::string_view s) {
  std::string r(s);
  for (char& c : r)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
  return r;
}

// Looks up host + path several ways that must agree. With no expressions in the database,
// the reported entry is a slice of the input.
void lookup_variants(const CategoryDb& db, std::string_view host, std::string_view path,
                     bool no_expressions) {
  if (path.size() > 4096) path = path.substr(0, 4096);
  // Path directly after host in memory: the entry may span both.
  std::string joined = std::string(host) + std::string(path);
  std::string_view jh(joined.data(), host.size());
  std::string_view jp(joined.data() + host.size(), path.size());
  Result a = look(db, jh, jp);
  if (a.count > 0 && no_expressions) FUZZ_CHECK(inside(a.first.entry, joined));
  // Separate buffers: the entry lies in one of them.
  std::string h(host);
  std::string pad = "#" + std::string(path);
  std::string_view sp(pad.data() + 1, path.size());
  Result b = look(db, h, sp);
  FUZZ_CHECK(same(a, b));
  if (b.count > 0 && no_expressions)
    FUZZ_CHECK(inside(b.first.entry, h) || inside(b.first.entry, sp));
  // A trailing dot on the host changes nothing.
  if (!host.empty() && host.size() < 250) {
    std::string dotted = h + ".";
    FUZZ_CHECK(same(look(db, dotted, sp), b));
  }
  // ASCII case does not matter (an expression may switch case sensitivity back on with (?-i)).
  if (no_expressions) FUZZ_CHECK(same(look(db, upper(h), upper(sp)), b));
}

// Domain entries match the name and its subdomains (never a name that merely ends the same).
void expect_domain(const CategoryDb& db, std::string_view domain, std::uint16_t category) {
  std::string d = std::string(domain);
  if (d.ends_with(".")) d.pop_back();
  Result r = look(db, d, "/");
  if (!r.hits.has(category) && r.count < CategoryHits::kMax)
    std::fprintf(stderr, "accepted domain %s not found under category %u\n", d.c_str(), category);
  FUZZ_CHECK(r.hits.has(category) || r.hits.count == CategoryHits::kMax);
  // An IPv4 literal (digits and dots) matches only itself; every name matches its subdomains
  // (tests/unit/policy/fuzz_regressions_test.cpp, DomainEndingInDigitMatchesSubdomains).
  const bool address_like = d.find_first_not_of("0123456789.") == std::string::npos;
  if (!address_like && d.size() <= 240) {
    Result s = look(db, "sub." + d, "/x");
    FUZZ_CHECK(s.hits.has(category) || s.hits.count == CategoryHits::kMax);
  }
}

// URL prefixes match the host with that path and any longer path below it.
void expect_url(const CategoryDb& db, std::string_view host, std::string_view path,
                std::uint16_t category) {
  std::string p(path);
  if (p.empty()) p = "/";
  Result r = look(db, host, p);
  if (!r.hits.has(category) && r.hits.count < CategoryHits::kMax)
    std::fprintf(stderr, "accepted URL %.*s%s not found under category %u\n",
                 static_cast<int>(host.size()), host.data(), p.c_str(), category);
  FUZZ_CHECK(r.hits.has(category) || r.hits.count == CategoryHits::kMax);
  std::size_t slashes = 0;
  for (char c : p) slashes += c == '/';
  // Lookup considers the first 31 '/'-prefixes of a path: deeper entries match only exactly.
  if (slashes <= 30) {
    std::string longer = p.ends_with("/") ? p + "zz" : p + "/zz";
    Result l = look(db, host, longer);
    FUZZ_CHECK(l.hits.has(category) || l.hits.count == CategoryHits::kMax);
    Result q = look(db, host, p + "?q=1");
    FUZZ_CHECK(q.hits.has(category) || q.hits.count == CategoryHits::kMax);
  }
}

void check_domain_file(const CategoryDb& db, const std::string& file, std::string_view text,
                       const std::vector<std::string>& errors, std::uint16_t category) {
  auto bad = bad_lines(errors, file);
  auto lines = lines_of(text);
  for (std::size_t i = 0; i < lines.size() && i < 64; ++i) {
    if (bad.count(i + 1)) continue;
    std::string_view l = lines[i];
    l = trim(l.substr(0, l.find('#')));
    if (plain_domain(l)) expect_domain(db, l, category);
  }
}

void check_url_file(const CategoryDb& db, const std::string& file, std::string_view text,
                    const std::vector<std::string>& errors, std::uint16_t category) {
  auto bad = bad_lines(errors, file);
  auto lines = lines_of(text);
  for (std::size_t i = 0; i < lines.size() && i < 64; ++i) {
    if (bad.count(i + 1)) continue;
    std::string_view host, path;
    if (plain_url(trim(lines[i]), host, path)) expect_url(db, host, path, category);
  }
}

void check_hosts_file(const CategoryDb& db, const std::string& file, std::string_view text,
                      const std::vector<std::string>& errors, std::uint16_t category) {
  auto bad = bad_lines(errors, file);
  auto lines = lines_of(text);
  for (std::size_t i = 0; i < lines.size() && i < 64; ++i) {
    if (bad.count(i + 1)) continue;
    std::string_view l = trim(lines[i].substr(0, lines[i].find('#')));
    if (l.empty()) continue;
    auto sp = l.find_first_of(" \t");
    if (sp == std::string_view::npos) continue;
    std::string_view rest = trim(l.substr(sp));
    while (!rest.empty()) {
      auto e = rest.find_first_of(" \t");
      std::string_view name = rest.substr(0, e);
      rest = e == std::string_view::npos ? std::string_view() : trim(rest.substr(e));
      std::string lower(name);
      for (char& c : lower)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
      if (lower == "localhost" || lower == "local" || lower == "0.0.0.0" ||
          lower.starts_with("ip6-") || lower == "broadcasthost" || lower == "localhost.localdomain")
        continue;
      if (plain_domain(name)) expect_domain(db, name, category);
    }
  }
}

void check_urlhaus(const CategoryDb& db, const std::string& file, std::string_view text,
                   const std::vector<std::string>& errors) {
  auto bad = bad_lines(errors, file);
  auto lines = lines_of(text);
  for (std::size_t i = 0; i < lines.size() && i < 64; ++i) {
    if (bad.count(i + 1)) continue;
    std::string_view l = trim(lines[i]);
    if (l.find('"') != std::string_view::npos || l.starts_with("#")) continue;  // comments
    std::vector<std::string_view> f;
    std::size_t start = 0;
    while (f.size() < 9) {
      auto comma = l.find(',', start);
      f.push_back(l.substr(start, comma == std::string_view::npos ? comma : comma - start));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    if (f.size() < 4 || f[0] == "id") continue;
    std::string_view host, path;
    if (!plain_url(f[2], host, path)) continue;
    if (f[3] == "online")
      expect_url(db, host, path, static_cast<std::uint16_t>(Reputation::dangerous));
    if (f[3] == "offline")
      expect_url(db, host, path, static_cast<std::uint16_t>(Reputation::highly_suspicious));
  }
}

// squidGuard records: "@@ category/file" or "@@ alias -> category".
struct Record {
  std::string category, file, alias_to;
  std::string text;
};

std::string safe_name(std::string_view s) {
  std::string r;
  for (char c : s.substr(0, 24)) r += (host_char(c) || c == '.') ? c : '_';
  if (r.empty() || r == "." || r == "..") r = "x";
  return r;
}

std::vector<Record> records(std::string_view text) {
  std::vector<Record> out;
  for (std::string_view line : lines_of(text)) {
    if (line.starts_with("@@ ")) {
      if (out.size() == 8) break;
      Record r;
      std::string_view h = trim(line.substr(3));
      if (auto arrow = h.find(" -> "); arrow != std::string_view::npos) {
        r.category = safe_name(trim(h.substr(0, arrow)));
        r.alias_to = safe_name(trim(h.substr(arrow + 4)));
      } else {
        auto slash = h.find('/');
        r.category = safe_name(h.substr(0, slash));
        r.file = slash == std::string_view::npos ? "domains" : safe_name(h.substr(slash + 1));
      }
      out.push_back(std::move(r));
    } else if (!out.empty()) {
      out.back().text.append(line);
      out.back().text += '\n';
    }
  }
  return out;
}

// The expressions files' lines (up to 16), compiled alone, against RE2 on every line of
// the input and every expression's own text (where their literals are) as "host/path".
void check_expressions(const std::vector<Record>& recs, std::string_view text) {
  CategoryDb::Builder b;
  const std::uint16_t source = b.add_source({"fuzz", "1"});
  const std::uint16_t category = b.category("expr");
  re2::RE2::Options opt;
  opt.set_case_sensitive(false);
  opt.set_log_errors(false);
  std::vector<std::unique_ptr<re2::RE2>> res;
  std::vector<std::string_view> texts = lines_of(text);
  for (const Record& r : recs) {
    if (r.file != "expressions") continue;
    for (std::string_view line : lines_of(r.text)) {
      line = trim(line);
      if (line.empty() || line.starts_with("#") || res.size() == 16) continue;
      std::string error;
      if (!b.add_expression(line, category, source, &error)) continue;
      res.push_back(std::make_unique<re2::RE2>(re2::StringPiece(line.data(), line.size()), opt));
      FUZZ_CHECK(res.back()->ok());
      texts.push_back(line);
    }
  }
  if (res.empty()) return;
  auto db = b.build();
  for (std::string_view t : texts) {
    if (t.size() > 1024) t = t.substr(0, 1024);
    auto slash = t.find('/');
    std::string_view host = t.substr(0, slash);
    std::string_view path = slash == std::string_view::npos ? std::string_view() : t.substr(slash);
    while (!host.empty() && host.back() == '.') host.remove_suffix(1);
    if (host.empty() || host.size() > 253) continue;  // what lookup takes no host for
    std::string joined = std::string(host) + std::string(path);
    std::size_t want = 0;
    for (const auto& re : res) want += re2::RE2::PartialMatch(joined, *re) ? 1 : 0;
    Result got = look(*db, host, path);
    if (got.count != want)
      std::fprintf(stderr, "'%s': lookup %zu expression matches, RE2 %zu\n", joined.c_str(),
                   got.count, want);
    FUZZ_CHECK(got.count == want);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const unsigned which = data[0] % 5;
  const unsigned flags = data[1];
  const std::string_view text(reinterpret_cast<const char*>(data) + 2, size - 2);
  const fs::path& dir = scratch();
  const std::string file = (dir / "input").string();

  CategoryDb::Builder b;
  const std::uint16_t source = b.add_source({"fuzz", "1"});
  std::vector<std::string> errors;
  std::vector<std::pair<std::string, std::string>> files;
  bool expressions = false;
  std::vector<std::pair<std::string, const Record*>> categories;  // folder name, record
  std::vector<Record> recs;
  std::uint16_t category = 0;

  switch (which) {
    case 0: {
      const fs::path root = dir / "sg";
      std::error_code ec;
      fs::remove_all(root, ec);
      fs::create_directories(root);
      recs = records(text);
      for (const Record& r : recs) {
        if (!r.alias_to.empty()) {
          fs::create_directory_symlink(r.alias_to, root / r.category, ec);
          continue;
        }
        fs::create_directories(root / r.category, ec);
        if (ec) continue;
        const fs::path p = root / r.category / r.file;
        if (fs::exists(p, ec)) continue;
        write(p, r.text);
        files.emplace_back(p.string(), r.text);
        if (r.file == "expressions") expressions = true;
      }
      import_squidguard_dir(b, source, root, errors);
      check_errors(errors, files, root.string());
      break;
    }
    case 1:
    case 2:
    case 3:
      category = b.category((flags & 1) ? "ads" : "malware");
      write(file, text);
      files.emplace_back(file, std::string(text));
      if (which == 1) import_domain_list(b, source, category, file, errors);
      if (which == 2) import_url_list(b, source, category, file, errors);
      if (which == 3) import_hosts_file(b, source, category, file, errors);
      check_errors(errors, files, file);
      break;
    case 4: {
      // A builder whose first category is not a reputation level is refused as a whole.
      const bool foreign = (flags & 3) == 3;
      if (foreign) b.category("gambling");
      write(file, text);
      files.emplace_back(file, std::string(text));
      import_urlhaus_csv(b, source, file, errors);
      check_errors(errors, files, file);
      if (foreign) FUZZ_CHECK(errors.size() == 1);
      break;
    }
  }
  auto db = b.build();
  FUZZ_CHECK(db != nullptr);
  FUZZ_CHECK(db->source(source).name == "fuzz");
  if (which == 4 && (flags & 3) == 3) FUZZ_CHECK(db->entries() == 0);

  // Accepted lines are found again.
  switch (which) {
    case 0: {
      for (const Record& r : recs) {
        if (!r.alias_to.empty() || r.category.starts_with(".")) continue;
        const int id = db->category_id(r.category);
        if (id < 0) continue;  // a folder that could not be made
        const std::string p = (dir / "sg" / r.category / r.file).string();
        bool written = false;
        for (const auto& [path, t] : files) written = written || (path == p && t == r.text);
        if (!written) continue;
        if (r.file == "domains")
          check_domain_file(*db, p, r.text, errors, static_cast<std::uint16_t>(id));
        if (r.file == "urls")
          check_url_file(*db, p, r.text, errors, static_cast<std::uint16_t>(id));
      }
      break;
    }
    case 1:
      check_domain_file(*db, file, text, errors, category);
      break;
    case 2:
      check_url_file(*db, file, text, errors, category);
      break;
    case 3:
      check_hosts_file(*db, file, text, errors, category);
      break;
    case 4:
      if ((flags & 3) != 3) check_urlhaus(*db, file, text, errors);
      break;
  }

  if (which == 0 && expressions) check_expressions(recs, text);

  // Arbitrary host and path: each line, split at its first '/'.
  const bool case_free = !expressions;
  std::size_t n = 0;
  for (std::string_view line : lines_of(text)) {
    if (++n > 16) break;
    auto slash = line.find('/');
    std::string_view host = line.substr(0, slash);
    std::string_view path =
        slash == std::string_view::npos ? std::string_view() : line.substr(slash);
    if (host.starts_with("http:") || host.starts_with("https:")) {
      auto rest = line.substr(line.find(':') + 1);
      while (rest.starts_with("/")) rest.remove_prefix(1);
      slash = rest.find('/');
      host = rest.substr(0, slash);
      path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
    }
    lookup_variants(*db, host, path, case_free);
  }
  return 0;
}
