// Loading a policy document: TOML -> validated, compiled Policy::Impl. Runs on the control
// thread; every problem becomes a LoadError with the file position of the offending node.
#include <openssl/evp.h>
#include <toml++/toml.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "base/strings.h"
#include "policy/policy.h"
#include "policy/policy_impl.h"

namespace pc::policy {

using detail::Cond;
using detail::Rule;

namespace {

using NodeStrings = std::vector<std::pair<std::string, const toml::node*>>;

// SHA-256 of everything a policy is built from; the revision is its first 8 bytes.
class Hasher {
 public:
  Hasher() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Hasher() { EVP_MD_CTX_free(ctx_); }
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void update(std::string_view s) {
    std::uint64_t n = s.size();
    EVP_DigestUpdate(ctx_, &n, sizeof n);
    EVP_DigestUpdate(ctx_, s.data(), s.size());
  }
  void file(const std::filesystem::path& p) {
    update(p.string());
    std::ifstream in(p, std::ios::binary);
    char buf[65536];
    while (in) {
      in.read(buf, sizeof buf);
      EVP_DigestUpdate(ctx_, buf, static_cast<std::size_t>(in.gcount()));
    }
  }
  void tree(const std::filesystem::path& p) {
    std::error_code ec;
    if (!std::filesystem::is_directory(p, ec)) {
      file(p);
      return;
    }
    std::vector<std::filesystem::path> files;
    for (auto it = std::filesystem::recursive_directory_iterator(p, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
      if (it->is_regular_file(ec)) files.push_back(it->path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) file(f);
  }
  std::uint64_t finish() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    std::uint64_t r = 0;
    for (int i = 0; i < 8; ++i) r = (r << 8) | md[i];
    return r;
  }

 private:
  EVP_MD_CTX* ctx_;
};

constexpr std::string_view kDayNames[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

int day_index(std::string_view s) {
  for (int i = 0; i < 7; ++i)
    if (base::iequals(s, kDayNames[i])) return i;
  return -1;
}

// "HH:MM" -> minutes; 24:00 only when allow_24.
int parse_hm(std::string_view s, bool allow_24) {
  if (s.size() != 5 || s[2] != ':') return -1;
  for (int i : {0, 1, 3, 4})
    if (s[static_cast<std::size_t>(i)] < '0' || s[static_cast<std::size_t>(i)] > '9') return -1;
  int h = (s[0] - '0') * 10 + (s[1] - '0');
  int m = (s[3] - '0') * 10 + (s[4] - '0');
  if (m > 59) return -1;
  if (h == 24 && m == 0 && allow_24) return 1440;
  if (h > 23) return -1;
  return h * 60 + m;
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

std::optional<Action> parse_action(std::string_view s) {
  for (Action a :
       {Action::allow, Action::block, Action::warn, Action::monitor, Action::allow_no_scan})
    if (s == to_string(a)) return a;
  return std::nullopt;
}

std::optional<Sensitivity> parse_sensitivity(std::string_view s) {
  if (s == "low") return Sensitivity::low;
  if (s == "medium") return Sensitivity::medium;
  if (s == "high") return Sensitivity::high;
  return std::nullopt;
}

std::optional<Reputation> parse_level(std::string_view s) {
  if (s == "dangerous") return Reputation::dangerous;
  if (s == "highly_suspicious" || s == "highly suspicious") return Reputation::highly_suspicious;
  if (s == "suspicious") return Reputation::suspicious;
  if (s == "clean") return Reputation::clean;
  if (s == "unknown" || s == "untested") return Reputation::unknown;
  return std::nullopt;
}

// A plain URL feed: one URL prefix per line ("host/path", scheme optional); empty lines and
// lines starting with '#' are skipped, a bad line is reported and skipped.
void import_url_feed(CategoryDb::Builder& b, std::uint16_t source, std::uint16_t cat,
                     const std::filesystem::path& file, std::vector<std::string>& problems) {
  std::ifstream in(file);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    auto s = base::trim(line);
    if (!s.empty() && s.back() == '\r') s = base::trim(s.substr(0, s.size() - 1));
    if (s.empty() || s.front() == '#') continue;
    if (!b.add_url(s, cat, source))
      problems.push_back(file.string() + ":" + std::to_string(n) + ": invalid URL");
  }
}

}  // namespace

class PolicyLoader {
 public:
  PolicyLoader(std::string file, std::filesystem::path base, Policy::Impl& p)
      : file_(std::move(file)), base_(std::move(base)), p_(p) {}

  std::vector<LoadError> errors;

  void error(const toml::node* n, std::string msg) {
    LoadError e{file_, 0, 0, std::move(msg)};
    if (n) {
      e.line = static_cast<int>(n->source().begin.line);
      e.column = static_cast<int>(n->source().begin.column);
    }
    errors.push_back(std::move(e));
  }

  void load(const toml::table& root, std::string_view text) {
    check_keys(root,
               {"settings", "lists", "ip_groups", "domain_lists", "url_lists", "categories",
                "schedules", "header_filters", "databases", "reputation", "rules", "default"},
               "");
    hasher_.update(text);
    read_settings(root);
    read_databases(root);
    read_reputation(root);
    read_ip_groups(root);
    read_domain_lists(root);
    read_url_lists(root);
    read_schedules(root);
    read_header_filters(root);
    read_lists(root);
    read_rules(root);
    read_default(root);
    p_.revision = hasher_.finish();
    if (errors.empty()) p_.build_indexes();
  }

 private:
  std::string file_;
  std::filesystem::path base_;
  Policy::Impl& p_;
  Hasher hasher_;

  std::unordered_map<std::string, const detail::CidrSet*> ip_groups_;
  std::unordered_map<std::string, const detail::DomainSet*> domain_lists_;
  std::unordered_map<std::string, const detail::UrlSet*> url_lists_;
  std::unordered_map<std::string, const detail::Schedule*> schedules_;
  std::unordered_map<std::string, const detail::HeaderFilter*> header_filters_;

  // ---- TOML helpers ----

  void check_keys(const toml::table& t, std::initializer_list<std::string_view> known,
                  std::string_view where) {
    for (auto&& [k, v] : t) {
      bool ok = false;
      for (auto name : known) ok = ok || k.str() == name;
      if (!ok) {
        std::string msg = "unknown key '" + std::string(k.str()) + "'";
        if (!where.empty()) msg += " in " + std::string(where);
        error(&v, msg);
      }
    }
  }

  const toml::table* table(const toml::table& t, std::string_view key) {
    const toml::node* n = t.get(key);
    if (!n) return nullptr;
    if (!n->is_table()) {
      error(n, "'" + std::string(key) + "' must be a table ([" + std::string(key) + "])");
      return nullptr;
    }
    return n->as_table();
  }

  // [[key]]: calls f(table) for each element.
  template <class F>
  void each_table(const toml::table& root, std::string_view key, F&& f) {
    const toml::node* n = root.get(key);
    if (!n) return;
    const toml::array* a = n->as_array();
    if (!a) {
      error(n,
            "'" + std::string(key) + "' must be an array of tables ([[" + std::string(key) + "]])");
      return;
    }
    for (const toml::node& e : *a) {
      if (!e.is_table()) {
        error(&e, "each element of '" + std::string(key) + "' must be a table");
        continue;
      }
      f(*e.as_table());
    }
  }

  std::optional<std::string> string(const toml::table& t, std::string_view key, bool required,
                                    const toml::node* where, std::string_view what) {
    const toml::node* n = t.get(key);
    if (!n) {
      if (required) error(where, std::string(what) + ": missing '" + std::string(key) + "'");
      return std::nullopt;
    }
    auto v = n->value_exact<std::string>();
    if (!v) {
      error(n, "'" + std::string(key) + "' must be a string");
      return std::nullopt;
    }
    return v;
  }

  // A string or an array of strings; false (and no error) when absent.
  bool strings(const toml::table& t, std::string_view key, NodeStrings& out) {
    const toml::node* n = t.get(key);
    if (!n) return false;
    if (auto s = n->value_exact<std::string>()) {
      out.emplace_back(*s, n);
      return true;
    }
    const toml::array* a = n->as_array();
    if (!a) {
      error(n, "'" + std::string(key) + "' must be a string or an array of strings");
      return false;
    }
    if (a->empty()) {
      error(n, "'" + std::string(key) + "' is empty");
      return false;
    }
    bool ok = true;
    for (const toml::node& e : *a) {
      auto s = e.value_exact<std::string>();
      if (!s) {
        error(&e, "'" + std::string(key) + "' must hold strings");
        ok = false;
        continue;
      }
      out.emplace_back(*s, &e);
    }
    return ok;
  }

  // name = "..." for a named object; checks uniqueness in `seen`.
  template <class Map>
  std::optional<std::string> object_name(const toml::table& t, std::string_view kind,
                                         const Map& seen) {
    auto name = string(t, "name", true, &t, kind);
    if (!name) return std::nullopt;
    if (name->empty()) {
      error(t.get("name"), std::string(kind) + ": 'name' is empty");
      return std::nullopt;
    }
    if (seen.count(*name)) {
      error(t.get("name"), "duplicate " + std::string(kind) + " name '" + *name + "'");
      return std::nullopt;
    }
    return name;
  }

  std::filesystem::path resolve(const std::string& path) const {
    std::filesystem::path p(path);
    if (p.is_relative()) p = base_ / p;
    return p.lexically_normal();
  }

  // ---- sections ----

  void read_settings(const toml::table& root) {
    const toml::table* s = table(root, "settings");
    if (!s) {
      load_time_zone(nullptr);
      return;
    }
    check_keys(*s, {"time_zone", "warn_duration", "reputation_sensitivity"}, "[settings]");
    if (auto tz = string(*s, "time_zone", false, s, "[settings]")) p_.settings.time_zone = *tz;
    load_time_zone(s->get("time_zone"));
    if (const toml::node* n = s->get("warn_duration")) {
      auto v = n->value_exact<std::int64_t>();
      if (!v || *v < 1 || *v > 30 * 86400)
        error(n, "'warn_duration' must be a number of seconds between 1 and 2592000");
      else
        p_.settings.warn_duration = std::chrono::seconds(*v);
    }
    if (auto v = string(*s, "reputation_sensitivity", false, s, "[settings]")) {
      if (auto sens = parse_sensitivity(*v))
        p_.settings.reputation_default = *sens;
      else
        error(s->get("reputation_sensitivity"),
              "'reputation_sensitivity' must be low, medium or high");
    }
  }

  void load_time_zone(const toml::node* n) {
    std::string why;
    auto tz = TimeZone::load(p_.settings.time_zone, why);
    if (!tz) {
      error(n, why);
      return;
    }
    p_.tz = std::move(*tz);
  }

  bool check_path(const toml::table& t, const std::filesystem::path& path, bool dir) {
    std::error_code ec;
    bool ok =
        dir ? std::filesystem::is_directory(path, ec) : std::filesystem::is_regular_file(path, ec);
    if (!ok) {
      error(t.get("path"), "cannot read " + std::string(dir ? "directory" : "file") + " '" +
                               path.string() + "'" +
                               (std::filesystem::exists(path, ec) ? "" : ": no such file"));
      return false;
    }
    return true;
  }

  void read_databases(const toml::table& root) {
    std::unique_ptr<CategoryDb::Builder> b;
    struct Source {
      std::string_view label;
      std::vector<std::string> categories;
    };
    std::vector<Source> sources;
    std::set<std::string> names;
    auto builder = [&]() -> CategoryDb::Builder& {
      if (!b) b = std::make_unique<CategoryDb::Builder>();
      return *b;
    };
    each_table(root, "databases", [&](const toml::table& t) {
      check_keys(t, {"name", "version", "format", "path", "category"}, "[[databases]]");
      auto name = object_name(t, "database", names);
      auto version = string(t, "version", false, &t, "database");
      auto format = string(t, "format", true, &t, "database");
      auto path = string(t, "path", true, &t, "database");
      auto category = string(t, "category", false, &t, "database");
      if (!name || !format || !path) return;
      names.insert(*name);
      bool squid = *format == "squidguard";
      if (!squid && *format != "domains" && *format != "hosts") {
        error(t.get("format"), "database format must be squidguard, domains or hosts");
        return;
      }
      if (squid && category) {
        error(t.get("category"),
              "'category' is not used with the squidguard format (each "
              "folder is a category)");
        return;
      }
      if (!squid && !category) {
        error(&t,
              "database '" + *name + "': missing 'category' (required for format " + *format + ")");
        return;
      }
      if (category && category->empty()) {
        error(t.get("category"), "'category' is empty");
        return;
      }
      auto full = resolve(*path);
      if (!check_path(t, full, squid)) return;
      p_.inputs.push_back(full);
      hasher_.tree(full);
      std::string label = *name;
      if (version && !version->empty()) label += " " + *version;
      Source src{p_.strings.add(label), {}};
      auto& bld = builder();
      auto id = bld.add_source({*name, version.value_or("")});
      std::vector<std::string> problems;
      if (squid) {
        std::error_code ec;
        for (const auto& e : std::filesystem::directory_iterator(full, ec))
          if (e.is_directory(ec)) src.categories.push_back(e.path().filename().string());
        std::sort(src.categories.begin(), src.categories.end());
        import_squidguard_dir(bld, id, full, problems);
      } else {
        auto cat = bld.category(*category);
        src.categories.push_back(*category);
        if (*format == "domains")
          import_domain_list(bld, id, cat, full, problems);
        else
          import_hosts_file(bld, id, cat, full, problems);
      }
      for (auto& m : problems) p_.warnings.push_back(std::move(m));
      sources.push_back(std::move(src));
    });

    // Custom categories.
    std::set<std::string> custom;
    std::uint16_t policy_source = 0;
    each_table(root, "categories", [&](const toml::table& t) {
      check_keys(t, {"name", "domains", "urls"}, "[[categories]]");
      auto name = object_name(t, "category", custom);
      if (!name) return;
      custom.insert(*name);
      auto& bld = builder();
      if (custom.size() == 1) policy_source = bld.add_source({"policy", ""});
      auto cat = bld.category(*name);
      NodeStrings domains, urls;
      bool has_d = strings(t, "domains", domains);
      bool has_u = strings(t, "urls", urls);
      if (!has_d && !has_u && !t.get("domains") && !t.get("urls"))
        error(&t, "category '" + *name + "': needs 'domains' or 'urls'");
      for (auto& [d, n] : domains) {
        std::string dom = base::to_lower(base::trim(d));
        if (dom.empty() || dom.find('/') != std::string::npos || dom.front() == '.' ||
            dom.front() == '=') {
          error(n, "category '" + *name + "': '" + d +
                       "' is not a domain (a domain entry matches it and its subdomains)");
          continue;
        }
        if (!bld.add_domain(dom, cat, policy_source))
          error(n, "category '" + *name + "': '" + d + "' is a public suffix or invalid");
      }
      for (auto& [u, n] : urls) {
        std::string_view s = base::trim(u);
        if (s.empty() || s.starts_with("re:") || s.find('*') != std::string_view::npos ||
            s.find('/') == std::string_view::npos) {
          error(n, "category '" + *name + "': '" + u +
                       "' is not a URL prefix (host/path, scheme optional)");
          continue;
        }
        if (!bld.add_url(s, cat, policy_source))
          error(n, "category '" + *name + "': invalid URL '" + u + "'");
      }
    });

    if (!b) return;
    p_.categories = b->build();
    const CategoryDb& db = *p_.categories;
    p_.category_source.assign(db.categories(), std::string_view());
    auto attribute = [&](const std::string& cat, std::string_view label) {
      int id = db.category_id(cat);
      if (id >= 0 && static_cast<std::size_t>(id) < p_.category_source.size() &&
          p_.category_source[static_cast<std::size_t>(id)].empty())
        p_.category_source[static_cast<std::size_t>(id)] = label;
    };
    for (const auto& s : sources)
      for (const auto& c : s.categories) attribute(c, s.label);
    for (const auto& c : custom) attribute(c, "policy");
  }

  void read_reputation(const toml::table& root) {
    std::unique_ptr<CategoryDb::Builder> b;
    std::set<std::string> names;
    constexpr Reputation kLevels[] = {Reputation::dangerous, Reputation::highly_suspicious,
                                      Reputation::suspicious};
    each_table(root, "reputation", [&](const toml::table& t) {
      check_keys(t, {"name", "format", "path", "level"}, "[[reputation]]");
      auto name = object_name(t, "reputation feed", names);
      auto format = string(t, "format", true, &t, "reputation feed");
      auto path = string(t, "path", true, &t, "reputation feed");
      auto level = string(t, "level", false, &t, "reputation feed");
      if (!name || !format || !path) return;
      names.insert(*name);
      bool urlhaus = *format == "urlhaus";
      if (!urlhaus && *format != "urls" && *format != "domains" && *format != "hosts") {
        error(t.get("format"), "reputation format must be urlhaus, urls, domains or hosts");
        return;
      }
      std::optional<Reputation> lvl;
      if (urlhaus && level) {
        error(t.get("level"), "'level' is not used with the urlhaus format");
        return;
      }
      if (!urlhaus) {
        if (!level) {
          error(&t, "reputation feed '" + *name + "': missing 'level'");
          return;
        }
        lvl = parse_level(*level);
        if (!lvl || *lvl == Reputation::unknown || *lvl == Reputation::clean) {
          error(t.get("level"), "'level' must be dangerous, highly_suspicious or suspicious");
          return;
        }
      }
      auto full = resolve(*path);
      if (!check_path(t, full, false)) return;
      p_.inputs.push_back(full);
      hasher_.file(full);
      if (!b) {
        b = std::make_unique<CategoryDb::Builder>();
        for (Reputation r : kLevels) b->category(to_string(r));  // ids follow the enum
      }
      auto id = b->add_source({*name, ""});
      std::vector<std::string> problems;
      if (urlhaus) {
        import_urlhaus_csv(*b, id, full, problems);
      } else {
        auto cat = b->category(to_string(*lvl));
        if (*format == "domains")
          import_domain_list(*b, id, cat, full, problems);
        else if (*format == "hosts")
          import_hosts_file(*b, id, cat, full, problems);
        else
          import_url_feed(*b, id, cat, full, problems);
      }
      for (auto& m : problems) p_.warnings.push_back(std::move(m));
    });
    if (!b) return;
    p_.reputation = b->build();
    const CategoryDb& db = *p_.reputation;
    p_.reputation_of.assign(db.categories(), Reputation::unknown);
    for (std::size_t i = 0; i < db.categories(); ++i) {
      auto lvl = parse_level(db.category_name(static_cast<std::uint16_t>(i)));
      if (lvl)
        p_.reputation_of[i] = *lvl;
      else if (i < std::size(kLevels))
        p_.reputation_of[i] = kLevels[i];
    }
  }

  void read_ip_groups(const toml::table& root) {
    each_table(root, "ip_groups", [&](const toml::table& t) {
      check_keys(t, {"name", "addresses"}, "[[ip_groups]]");
      auto name = object_name(t, "ip group", ip_groups_);
      NodeStrings addrs;
      bool has = strings(t, "addresses", addrs);
      if (!t.get("addresses")) error(&t, "ip group: missing 'addresses'");
      if (!name || !has) return;
      auto& set = p_.cidr_sets.emplace_back();
      for (auto& [a, n] : addrs)
        if (!set.add(a, p_.strings)) error(n, "bad address or CIDR '" + a + "'");
      ip_groups_.emplace(*name, &set);
    });
  }

  void read_domain_lists(const toml::table& root) {
    each_table(root, "domain_lists", [&](const toml::table& t) {
      check_keys(t, {"name", "domains"}, "[[domain_lists]]");
      auto name = object_name(t, "domain list", domain_lists_);
      NodeStrings domains;
      bool has = strings(t, "domains", domains);
      if (!t.get("domains")) error(&t, "domain list: missing 'domains'");
      if (!name || !has) return;
      auto& set = p_.domain_sets.emplace_back();
      add_domains(set, domains);
      domain_lists_.emplace(*name, &set);
    });
  }

  void add_domains(detail::DomainSet& set, const NodeStrings& domains) {
    std::string why;
    for (auto& [d, n] : domains)
      if (!set.add(d, p_.strings, &why)) error(n, why);
  }

  void read_url_lists(const toml::table& root) {
    each_table(root, "url_lists", [&](const toml::table& t) {
      check_keys(t, {"name", "urls"}, "[[url_lists]]");
      auto name = object_name(t, "url list", url_lists_);
      NodeStrings urls;
      bool has = strings(t, "urls", urls);
      if (!t.get("urls")) error(&t, "url list: missing 'urls'");
      if (!name || !has) return;
      auto& set = p_.url_sets.emplace_back();
      std::string why;
      for (auto& [u, n] : urls)
        if (!set.add(u, p_.strings, &why)) error(n, why);
      url_lists_.emplace(*name, &set);
    });
  }

  void read_schedules(const toml::table& root) {
    each_table(root, "schedules", [&](const toml::table& t) {
      check_keys(t, {"name", "days", "times"}, "[[schedules]]");
      auto name = object_name(t, "schedule", schedules_);
      NodeStrings days, times;
      bool has_days = strings(t, "days", days);
      bool has_times = strings(t, "times", times);
      if (!name) return;
      if (!t.get("days") && !t.get("times")) {
        error(&t, "schedule '" + *name + "': needs 'days' or 'times'");
        return;
      }
      bool day_set[7] = {};
      if (has_days) {
        for (auto& [d, n] : days) {
          auto dash = d.find('-');
          int a = day_index(d.substr(0, dash));
          int z = dash == std::string::npos ? a : day_index(d.substr(dash + 1));
          if (a < 0 || z < 0) {
            error(n, "bad day '" + d +
                         "' (mon, tue, wed, thu, fri, sat, sun or a range "
                         "such as mon-fri)");
            continue;
          }
          for (int i = a;; i = (i + 1) % 7) {
            day_set[i] = true;
            if (i == z) break;
          }
        }
      } else if (!t.get("days")) {
        for (bool& b : day_set) b = true;
      }
      std::vector<std::pair<int, int>> ranges;
      if (has_times) {
        for (auto& [s, n] : times) {
          auto dash = s.find('-');
          int a = dash == std::string::npos ? -1 : parse_hm(s.substr(0, dash), false);
          int z = dash == std::string::npos ? -1 : parse_hm(s.substr(dash + 1), true);
          if (a < 0 || z < 0 || a == z) {
            error(n, "bad time range '" + s +
                         "' (HH:MM-HH:MM, 24-hour, end may be 24:00; "
                         "a range may cross midnight)");
            continue;
          }
          ranges.emplace_back(a, z);
        }
      } else if (!t.get("times")) {
        ranges.emplace_back(0, 1440);
      }
      auto& sch = p_.schedules.emplace_back();
      sch.name = p_.strings.add(*name);
      auto set = [&](int day, int from, int to) {
        for (int m = from; m < to; ++m) sch.minutes.set(static_cast<std::size_t>(day * 1440 + m));
      };
      for (int d = 0; d < 7; ++d) {
        if (!day_set[d]) continue;
        for (auto [a, z] : ranges) {
          if (a < z) {
            set(d, a, z);
          } else {  // crosses midnight: the part after midnight belongs to the next day
            set(d, a, 1440);
            set((d + 1) % 7, 0, z);
          }
        }
      }
      schedules_.emplace(*name, &sch);
    });
  }

  void read_header_filters(const toml::table& root) {
    each_table(root, "header_filters", [&](const toml::table& t) {
      check_keys(t, {"name", "header", "contains", "equals", "regex", "greater_than", "less_than"},
                 "[[header_filters]]");
      auto name = object_name(t, "header filter", header_filters_);
      auto header = string(t, "header", true, &t, "header filter");
      if (!name || !header) return;
      if (!is_token(*header)) {
        error(t.get("header"), "'header' must be a header field name");
        return;
      }
      const toml::node* op_node = nullptr;
      std::string_view op_key;
      int ops = 0;
      for (std::string_view k : {"contains", "equals", "regex", "greater_than", "less_than"}) {
        if (const toml::node* n = t.get(k)) {
          ++ops;
          op_node = n;
          op_key = k;
        }
      }
      if (ops != 1) {
        error(&t, "header filter '" + *name +
                      "': needs exactly one of contains, equals, regex, greater_than, less_than");
        return;
      }
      detail::HeaderFilter f;
      f.name = p_.strings.add(*name);
      f.header = p_.strings.add(*header);
      if (op_key == "greater_than" || op_key == "less_than") {
        auto v = op_node->value_exact<std::int64_t>();
        if (!v) {
          error(op_node, "'" + std::string(op_key) + "' must be an integer");
          return;
        }
        f.op = op_key == "greater_than" ? detail::HeaderFilter::Op::greater_than
                                        : detail::HeaderFilter::Op::less_than;
        f.number = *v;
      } else {
        auto v = op_node->value_exact<std::string>();
        if (!v) {
          error(op_node, "'" + std::string(op_key) + "' must be a string");
          return;
        }
        f.value = p_.strings.add(*v);
        if (op_key == "contains") {
          f.op = detail::HeaderFilter::Op::contains;
        } else if (op_key == "equals") {
          f.op = detail::HeaderFilter::Op::equals;
        } else {
          f.op = detail::HeaderFilter::Op::regex;
          std::string why;
          f.re = detail::compile_regex(*v, &why);
          if (!f.re) {
            error(op_node, why);
            return;
          }
        }
      }
      auto& stored = p_.header_filters.emplace_back(std::move(f));
      header_filters_.emplace(*name, &stored);
    });
  }

  void read_lists(const toml::table& root) {
    const toml::table* t = table(root, "lists");
    if (!t) return;
    check_keys(*t, {"approved", "blocked"}, "[lists]");
    auto fill = [&](std::string_view key, detail::DomainSet& d, detail::UrlSet& u) {
      NodeStrings items;
      strings(*t, key, items);
      std::string why;
      for (auto& [s, n] : items) {
        std::string_view v = base::trim(s);
        bool ok;
        if (v.starts_with("re:") || v.find('*') != std::string_view::npos) {
          why = "'" + s + "': the organisation-wide lists hold domains and URL prefixes only";
          ok = false;
        } else if (v.find('/') != std::string_view::npos) {
          ok = u.add(v, p_.strings, &why);
        } else {
          ok = d.add(v, p_.strings, &why);
        }
        if (!ok) error(n, why);
      }
    };
    fill("approved", p_.approved_domains, p_.approved_urls);
    fill("blocked", p_.blocked_domains, p_.blocked_urls);
  }

  static bool looks_like_domain(std::string_view s) {
    return s.find('.') != std::string_view::npos || s.starts_with('=');
  }

  static bool looks_like_url(std::string_view s) {
    return s.starts_with("re:") || s.starts_with('*') || s.starts_with('=') ||
           s.find('/') != std::string_view::npos || s.find('.') != std::string_view::npos;
  }

  void read_rules(const toml::table& root) {
    std::set<std::string> names;
    std::uint32_t index = 0;
    each_table(root, "rules", [&](const toml::table& t) {
      check_keys(t,
                 {"name", "note", "enabled", "action", "source", "guest", "listeners", "users",
                  "groups", "domains", "urls", "categories", "reputation", "methods", "ports",
                  "headers", "schedule", "content_types", "file_types"},
                 "[[rules]]");
      Rule r;
      r.index = index;
      r.line = static_cast<int>(t.source().begin.line);
      auto name = object_name(t, "rule", names);
      if (name) {
        if (*name == "default" || *name == "approved list" || *name == "blocked list")
          error(t.get("name"), "rule name '" + *name + "' is reserved");
        names.insert(*name);
        r.name = p_.strings.add(*name);
      }
      if (auto note = string(t, "note", false, &t, "rule")) r.note = p_.strings.add(*note);
      if (const toml::node* n = t.get("enabled")) {
        if (auto v = n->value_exact<bool>())
          r.enabled = *v;
        else
          error(n, "'enabled' must be true or false");
      }
      if (auto a = string(t, "action", true, &t, "rule " + name.value_or("?"))) {
        if (auto act = parse_action(*a))
          r.action = *act;
        else
          error(t.get("action"), "'action' must be allow, block, warn, monitor or allow_no_scan");
      }
      read_conditions(t, r);
      p_.rules.push_back(std::move(r));
      ++index;
    });
  }

  void read_conditions(const toml::table& t, Rule& r) {
    NodeStrings v;
    auto list = [&](std::string_view key, Cond c) {
      v.clear();
      if (!strings(t, key, v)) return false;
      r.conds |= detail::bit(c);
      return true;
    };
    if (list("source", Cond::source)) {
      detail::CidrSet* literals = nullptr;
      for (auto& [s, n] : v) {
        if (auto it = ip_groups_.find(s); it != ip_groups_.end()) {
          r.sources.emplace_back(it->second, p_.strings.add(s));
          continue;
        }
        if (!literals) {
          literals = &p_.cidr_sets.emplace_back();
          r.sources.emplace_back(literals, std::string_view());
        }
        if (!literals->add(s, p_.strings)) error(n, "unknown ip group or bad CIDR '" + s + "'");
      }
    }
    if (const toml::node* n = t.get("guest")) {
      if (auto g = n->value_exact<bool>()) {
        r.guest = *g;
        r.conds |= detail::bit(Cond::guest);
      } else {
        error(n, "'guest' must be true or false");
      }
    }
    auto plain = [&](std::string_view key, Cond c, std::vector<std::string_view>& out, bool upper) {
      if (!list(key, c)) return;
      for (auto& [s, n] : v) {
        if (s.empty()) {
          error(n, "empty entry in '" + std::string(key) + "'");
          continue;
        }
        std::string val = s;
        if (upper)
          for (auto& ch : val) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        out.push_back(p_.strings.add(std::move(val)));
      }
    };
    plain("listeners", Cond::listener, r.listeners, false);
    plain("users", Cond::user, r.users, false);
    plain("groups", Cond::group, r.groups, false);
    if (t.get("methods")) {
      plain("methods", Cond::method, r.methods, true);
      for (auto& [s, n] : v)
        if (!is_token(s)) error(n, "bad method '" + s + "'");
    }
    if (list("domains", Cond::domain)) {
      detail::DomainSet* literals = nullptr;
      std::string why;
      for (auto& [s, n] : v) {
        if (auto it = domain_lists_.find(s); it != domain_lists_.end()) {
          r.domains.push_back(it->second);
          continue;
        }
        if (!looks_like_domain(s)) {
          error(n, "unknown domain list '" + s + "'");
          continue;
        }
        if (!literals) {
          literals = &p_.domain_sets.emplace_back();
          r.domains.push_back(literals);
        }
        if (!literals->add(s, p_.strings, &why)) error(n, why);
      }
    }
    if (list("urls", Cond::url)) {
      detail::UrlSet* literals = nullptr;
      std::string why;
      for (auto& [s, n] : v) {
        if (auto it = url_lists_.find(s); it != url_lists_.end()) {
          r.urls.push_back(it->second);
          continue;
        }
        if (!looks_like_url(s)) {
          error(n, "unknown url list '" + s + "'");
          continue;
        }
        if (!literals) {
          literals = &p_.url_sets.emplace_back();
          r.urls.push_back(literals);
        }
        if (!literals->add(s, p_.strings, &why)) error(n, why);
      }
    }
    if (list("categories", Cond::category)) {
      for (auto& [s, n] : v) {
        int id = p_.categories ? p_.categories->category_id(s) : -1;
        if (id < 0)
          error(n, "unknown category '" + s + "' (not in any database or [[categories]])");
        else
          r.categories.push_back(static_cast<std::uint16_t>(id));
      }
    }
    if (const toml::node* n = t.get("reputation")) {
      auto s = n->value_exact<std::string>();
      std::optional<Sensitivity> sens;
      if (s && *s == "default")
        sens = p_.settings.reputation_default;
      else if (s)
        sens = parse_sensitivity(*s);
      if (!sens) {
        error(n, "'reputation' must be low, medium, high or default");
      } else {
        r.reputation = *sens;
        r.conds |= detail::bit(Cond::reputation);
      }
    }
    if (const toml::node* n = t.get("ports")) read_ports(n, r);
    if (list("headers", Cond::header)) {
      for (auto& [s, n] : v) {
        if (auto it = header_filters_.find(s); it != header_filters_.end())
          r.headers.push_back(it->second);
        else
          error(n, "unknown header filter '" + s + "'");
      }
    }
    if (list("schedule", Cond::schedule)) {
      for (auto& [s, n] : v) {
        if (auto it = schedules_.find(s); it != schedules_.end())
          r.schedules.push_back(it->second);
        else
          error(n, "unknown schedule '" + s + "'");
      }
    }
    if (list("content_types", Cond::content_type)) {
      for (auto& [s, n] : v) {
        std::string ct = base::to_lower(base::trim(s));
        auto slash = ct.find('/');
        bool ok = ct == "*" || (slash != std::string::npos && slash > 0 && slash + 1 < ct.size() &&
                                is_token(ct.substr(0, slash)) && is_token(ct.substr(slash + 1)));
        if (!ok || (ct.find('*') != std::string::npos && !ct.ends_with("/*") && ct != "*")) {
          error(n, "bad content type '" + s + "' (type/subtype or type/*)");
          continue;
        }
        r.content_types.push_back(p_.strings.add(std::move(ct)));
      }
    }
    if (list("file_types", Cond::file_type)) {
      for (auto& [s, n] : v) {
        std::string ft = base::to_lower(base::trim(s));
        if (!ft.empty() && ft.front() == '.') ft.erase(0, 1);
        if (ft.empty()) {
          error(n, "empty file type");
          continue;
        }
        r.file_types.push_back(p_.strings.add(std::move(ft)));
      }
    }
  }

  void read_ports(const toml::node* n, Rule& r) {
    auto one = [&](const toml::node& e) {
      detail::PortRange pr;
      if (auto i = e.value_exact<std::int64_t>()) {
        if (*i < 1 || *i > 65535) {
          error(&e, "port must be between 1 and 65535");
          return;
        }
        pr.lo = pr.hi = static_cast<std::uint16_t>(*i);
        pr.text = p_.strings.add(std::to_string(*i));
      } else if (auto s = e.value_exact<std::string>()) {
        auto dash = s->find('-');
        std::uint64_t lo = 0, hi = 0;
        bool ok = base::parse_u64(s->substr(0, dash), lo);
        hi = lo;
        if (ok && dash != std::string::npos) ok = base::parse_u64(s->substr(dash + 1), hi);
        if (!ok || lo < 1 || hi > 65535 || lo > hi) {
          error(&e, "bad port range '" + *s + "' (e.g. \"8000-8999\")");
          return;
        }
        pr.lo = static_cast<std::uint16_t>(lo);
        pr.hi = static_cast<std::uint16_t>(hi);
        pr.text = p_.strings.add(*s);
      } else {
        error(&e, "'ports' must hold port numbers or \"lo-hi\" ranges");
        return;
      }
      r.ports.push_back(pr);
    };
    if (const toml::array* a = n->as_array()) {
      if (a->empty()) {
        error(n, "'ports' is empty");
        return;
      }
      for (const toml::node& e : *a) one(e);
    } else {
      one(*n);
    }
    r.conds |= detail::bit(Cond::port);
  }

  void read_default(const toml::table& root) {
    const toml::table* t = table(root, "default");
    if (!t) return;
    check_keys(*t, {"action"}, "[default]");
    if (auto a = string(*t, "action", false, t, "[default]")) {
      if (auto act = parse_action(*a))
        p_.default_action = *act;
      else
        error(t->get("action"), "'action' must be allow, block, warn, monitor or allow_no_scan");
    }
  }
};

std::shared_ptr<const Policy> Policy::load_string(std::string_view text,
                                                  const std::filesystem::path& name,
                                                  std::vector<LoadError>& errors) {
  std::shared_ptr<Policy> policy(new Policy());
  Impl& p = *policy->impl_;
  p.file = name.string();
  auto base = name.parent_path();
  if (base.empty()) base = ".";
  p.inputs.push_back(std::filesystem::absolute(name).lexically_normal());
  PolicyLoader loader(name.string(), base, p);
  try {
    toml::table root = toml::parse(text, name.string());
    loader.load(root, text);
  } catch (const toml::parse_error& e) {
    loader.errors.push_back({name.string(), static_cast<int>(e.source().begin.line),
                             static_cast<int>(e.source().begin.column),
                             std::string(e.description())});
  }
  if (!loader.errors.empty()) {
    for (auto& e : loader.errors) errors.push_back(std::move(e));
    return nullptr;
  }
  return policy;
}

std::shared_ptr<const Policy> Policy::load_file(const std::filesystem::path& file,
                                                std::vector<LoadError>& errors) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    errors.push_back({file.string(), 0, 0, "cannot open file"});
    return nullptr;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return load_string(ss.str(), file, errors);
}

}  // namespace pc::policy
