#include "store/query.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "base/cidr.h"
#include "base/time.h"
#include "store/columns.h"
#include "store/schema.h"

namespace pc::store {
namespace {

// A bound value: a number or a text.
struct Param {
  Param(std::int64_t n) : number(n) {}                         // NOLINT: implicit on purpose
  Param(std::string t) : text(std::move(t)), is_text(true) {}  // NOLINT
  std::int64_t number = 0;
  std::string text;
  bool is_text = false;
};

// "%s%" with LIKE's own characters (%, _ and the escape \) escaped.
std::string like_substring(std::string_view s) {
  std::string p = "%";
  for (char c : s) {
    if (c == '%' || c == '_' || c == '\\') p += '\\';
    p += c;
  }
  p += '%';
  return p;
}

// A client filter naming a network rather than one address.
bool is_network(std::string_view client) {
  return client.find('/') != std::string_view::npos;
}

// SQL pc_in_network(address, network): 1 when the address (text) is in the network (CIDR
// text), else 0. The network is parsed once per statement.
void in_network(sqlite3_context* ctx, int, sqlite3_value** argv) {
  auto text = [](sqlite3_value* v) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_value_text(v));
    return p ? std::string_view(p, static_cast<std::size_t>(sqlite3_value_bytes(v)))
             : std::string_view();
  };
  base::Cidr parsed;
  const auto* net = static_cast<const base::Cidr*>(sqlite3_get_auxdata(ctx, 1));
  if (!net) {
    auto n = base::Cidr::parse(text(argv[1]));
    if (!n) {
      sqlite3_result_int(ctx, 0);
      return;
    }
    parsed = *n;
    net = &parsed;
    // Kept for the statement's next rows (SQLite frees it at once when it cannot).
    sqlite3_set_auxdata(ctx, 1, new base::Cidr(parsed),
                        [](void* p) { delete static_cast<base::Cidr*>(p); });
  }
  const auto ip = base::parse_ip(text(argv[0]));
  sqlite3_result_int(ctx, ip && net->contains(*ip) ? 1 : 0);
}

// Host substrings matching at most this many host names of a partition are looked up first
// and given to its query as a list, so that the planner knows how many records it selects;
// beyond it the records are read newest first and checked against the matching names.
constexpr std::int64_t kHostList = 500;

struct Partition {
  std::int64_t n, min_time, max_time;
};

// The partitions that may hold matching records, the newest records first.
bool candidates(sqlite3* db, const Filter& f, std::vector<Partition>& out, std::string& error) {
  std::int64_t cursor_time = INT64_MAX, cursor_id = 0;
  if (!f.page_token.empty()) parse_page_token(f.page_token, cursor_time, cursor_id);
  sql::Stmt st;
  if (st.prepare(db,
                 "SELECT n, min_time, max_time FROM partitions WHERE rows > 0 "
                 "ORDER BY max_time DESC, n DESC") != SQLITE_OK) {
    error = "query failed: " + std::string(sqlite3_errmsg(db));
    return false;
  }
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    Partition p{st.int64(0), st.int64(1), st.int64(2)};
    if (f.from && p.max_time < columns::to_micros(*f.from)) continue;
    if (f.to && p.min_time >= columns::to_micros(*f.to)) continue;
    if (p.min_time > cursor_time) continue;
    out.push_back(p);
  }
  if (rc != SQLITE_DONE) {
    error = "query failed: " + std::string(sqlite3_errmsg(db));
    return false;
  }
  return true;
}

// The query for a filter on partition n: fixed SQL fragments chosen by which conditions are
// set; every value from the filter is a bound parameter. `none` when the partition cannot
// match (no host name does).
bool build(sqlite3* db, std::int64_t n, const Filter& f, std::string& sql,
           std::vector<Param>& params, bool& none, std::string& error) {
  const std::string num = std::to_string(n);
  none = false;
  std::vector<std::int64_t> hosts;
  bool host_list = false;
  if (!f.host.empty()) {
    sql::Stmt st;
    if (st.prepare(db, "SELECT id FROM host_" + num + " WHERE name LIKE ?1 ESCAPE '\\' LIMIT ?2") !=
        SQLITE_OK) {
      error = "query failed: " + std::string(sqlite3_errmsg(db));
      return false;
    }
    std::string pattern = like_substring(f.host);
    st.bind(1, pattern);
    st.bind(2, kHostList + 1);
    int rc;
    while ((rc = st.step()) == SQLITE_ROW) hosts.push_back(st.int64(0));
    if (rc != SQLITE_DONE) {
      error = "query failed: " + std::string(sqlite3_errmsg(db));
      return false;
    }
    none = hosts.empty();
    host_list = hosts.size() <= static_cast<std::size_t>(kHostList);
  }
  sql = "SELECT id, " + std::string(columns::kNames) + ", (SELECT name FROM host_" + num +
        " AS h WHERE h.id = a.host_id) FROM access_" + num + " AS a WHERE 1";
  auto cond = [&](const char* text, Param p) {
    sql += " AND ";
    sql += text;
    params.push_back(std::move(p));
  };
  if (f.from) cond("time >= ?", columns::to_micros(*f.from));
  if (f.to) cond("time < ?", columns::to_micros(*f.to));
  if (!f.client.empty())
    cond(is_network(f.client) ? "pc_in_network(client, ?)" : "client = ?", f.client);
  if (!f.user.empty()) cond("\"user\" = ?", f.user);
  if (host_list) {
    sql += " AND host_id IN (";
    for (std::size_t i = 0; i < hosts.size(); ++i) {
      sql += i ? ",?" : "?";
      params.push_back(hosts[i]);
    }
    sql += ")";
  } else if (!f.host.empty()) {
    cond(("host_id IN (SELECT id FROM host_" + num + " WHERE name LIKE ? ESCAPE '\\')").c_str(),
         like_substring(f.host));
  }
  if (!f.url.empty()) cond("url LIKE ? ESCAPE '\\'", like_substring(f.url));
  if (!f.category.empty()) cond("category = ?", f.category);
  if (!f.decision.empty()) cond("decision = ?", f.decision);
  if (f.threat) {
    if (f.threat->empty())
      sql += " AND threat > ''";  // not NULL, written so that the planner takes the index
    else
      cond("threat = ?", *f.threat);
  }
  if (!f.page_token.empty()) {
    std::int64_t t = 0, id = 0;
    parse_page_token(f.page_token, t, id);  // validated before
    sql += " AND (time, id) < (?, ?)";
    params.push_back(t);
    params.push_back(id);
  }
  sql += " ORDER BY time DESC, id DESC LIMIT ?";
  params.push_back(static_cast<std::int64_t>(f.limit + 1));  // one more: is there a next page?
  return true;
}

// A read transaction: one snapshot of every partition for the whole query.
struct ReadTxn {
  sqlite3* db;
  explicit ReadTxn(sqlite3* d) : db(d) { sql::exec(db, "BEGIN"); }
  ~ReadTxn() {
    if (!sqlite3_get_autocommit(db)) sql::exec(db, "COMMIT");
  }
};

void bind_all(sql::Stmt& st, const std::vector<Param>& params) {
  for (std::size_t i = 0; i < params.size(); ++i) {
    int n = static_cast<int>(i + 1);
    if (params[i].is_text)
      st.bind(n, params[i].text);
    else
      st.bind(n, params[i].number);
  }
}

void csv_field(std::string& out, std::string_view s) {
  bool formula =
      !s.empty() && std::string_view("=+-@\t\r").find(s.front()) != std::string_view::npos;
  bool quote = s.find_first_of(",\"\r\n") != std::string_view::npos;
  if (quote) out += '"';
  if (formula) out += '\'';
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  if (quote) out += '"';
}

}  // namespace

std::string validate(const Filter& f) {
  if (f.limit < 1 || f.limit > kMaxLimit)
    return "limit must be between 1 and " + std::to_string(kMaxLimit);
  for (auto [name, value] : {std::pair<const char*, const std::string*>{"client", &f.client},
                             {"user", &f.user},
                             {"host", &f.host},
                             {"url", &f.url},
                             {"category", &f.category},
                             {"decision", &f.decision},
                             {"threat", f.threat ? &*f.threat : nullptr}}) {
    if (value && value->size() > kMaxFilterBytes)
      return std::string(name) + " is longer than " + std::to_string(kMaxFilterBytes) + " bytes";
    // SQLite's LIKE would stop at a NUL: "a\0b" would match like "a".
    if (value && value->find('\0') != std::string::npos)
      return std::string(name) + " contains a NUL character";
  }
  if (is_network(f.client) && !base::Cidr::parse(f.client))
    return "client is neither an address nor a network (10.1.0.0/16)";
  if (f.from && f.to && *f.from >= *f.to) return "the time range is empty (from is not before to)";
  std::int64_t t, id;
  if (!f.page_token.empty() && !parse_page_token(f.page_token, t, id)) return "invalid page token";
  return {};
}

bool Reader::open(const std::filesystem::path& path, std::string& error) {
  db_.reset();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    error = "no log store at " + path.string();
    return false;
  }
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  sql::Db db(raw);
  if (rc != SQLITE_OK) {
    error = "cannot open " + path.string() + ": " + (db ? db.error() : sqlite3_errstr(rc));
    return false;
  }
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), 5000);
  int v = schema::version_of(db.get());
  int want = schema::current_version();
  if (v == -2)
    error = "cannot read " + path.string() + ": " + db.error();
  else if (v == -1 || v == 0)
    error = path.string() + " is not a Portcullis log store";
  else if (v > want)
    error = path.string() + " was written by a newer Portcullis (schema version " +
            std::to_string(v) + "; this one reads " + std::to_string(want) + ")";
  else if (v < want)
    error = path.string() + " has schema version " + std::to_string(v) + " (this one reads " +
            std::to_string(want) + "): start the gateway once to upgrade it";
  if (!error.empty()) return false;
  sql::exec(db.get(), "PRAGMA query_only = 1");
  if (sqlite3_create_function_v2(db.get(), "pc_in_network", 2,
                                 SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, nullptr,
                                 in_network, nullptr, nullptr, nullptr) != SQLITE_OK) {
    error = "cannot open " + path.string() + ": " + db.error();
    return false;
  }
  db_ = std::move(db);
  return true;
}

bool Reader::query(const Filter& f, Page& out, std::string& error) {
  out.rows.clear();
  out.next_page_token.clear();
  if (!db_) {
    error = "the log store is not open";
    return false;
  }
  error = validate(f);
  if (!error.empty()) return false;
  ReadTxn txn(db_.get());
  std::vector<Partition> parts;
  if (!candidates(db_.get(), f, parts, error)) return false;
  const std::size_t want = f.limit + 1;
  auto newer = [](const Row& a, const Row& b) {
    return a.record.time != b.record.time ? a.record.time > b.record.time : a.id > b.id;
  };
  auto& rows = out.rows;
  for (const auto& p : parts) {
    // Partitions come newest first: once the page is full of records newer than anything
    // this one holds, the rest cannot change it.
    if (rows.size() >= want && columns::to_micros(rows[want - 1].record.time) > p.max_time) break;
    std::string sql;
    std::vector<Param> params;
    bool none = false;
    if (!build(db_.get(), p.n, f, sql, params, none, error)) return false;
    if (none) continue;
    sql::Stmt st;
    if (st.prepare(db_.get(), sql) != SQLITE_OK) {
      error = "query failed: " + db_.error();
      return false;
    }
    bind_all(st, params);
    int rc;
    while ((rc = st.step()) == SQLITE_ROW) {
      Row row;
      row.id = st.int64(0);
      columns::read(st, 1, row.record);
      row.host = st.text(1 + columns::kCount);
      rows.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE) {
      error = "query failed: " + db_.error();
      rows.clear();
      return false;
    }
    std::sort(rows.begin(), rows.end(), newer);
    if (rows.size() > want) rows.resize(want);
  }
  if (rows.size() > f.limit) {
    rows.pop_back();
    const Row& last = rows.back();
    out.next_page_token = make_page_token(columns::to_micros(last.record.time), last.id);
  }
  return true;
}

std::string Reader::explain(const Filter& f) {
  if (!db_) return "the log store is not open";
  std::string error = validate(f);
  if (!error.empty()) return error;
  ReadTxn txn(db_.get());
  std::vector<Partition> parts;
  if (!candidates(db_.get(), f, parts, error)) return error;
  std::string plan;
  for (const auto& p : parts) {
    std::string sql;
    std::vector<Param> params;
    bool none = false;
    plan += "access_" + std::to_string(p.n) + ":\n";
    if (!build(db_.get(), p.n, f, sql, params, none, error)) return error;
    if (none) {
      plan += "  no matching host\n";
      continue;
    }
    sql::Stmt st;
    if (st.prepare(db_.get(), "EXPLAIN QUERY PLAN " + sql) != SQLITE_OK) return db_.error();
    bind_all(st, params);
    while (st.step() == SQLITE_ROW) plan += "  " + st.text(3) + "\n";
  }
  return plan;
}

std::string csv_header() {
  return "time,duration_ms,request_id,listener,guest,client,user,groups,method,url,host,status,"
         "bytes_in,bytes_out,upstream,via_parent,content_type,result,reason,decision,rule,"
         "category,category_source,reputation,scan,threat,sha256,file_type,scan_cached,"
         "icap_client,icap_mode,icap_status,error,scan_engine,file_name,scanned_size\r\n";
}

void append_csv(std::string& out, const Row& row) {
  const auto& r = row.record;
  char num[32];
  auto text = [&](std::string_view s) {
    csv_field(out, s);
    out += ',';
  };
  auto integer = [&](std::uint64_t v) {
    out += std::to_string(v);
    out += ',';
  };
  auto flag = [&](bool b) { out += b ? "true," : "false,"; };
  out += base::format_rfc3339_ms(r.time);
  std::snprintf(num, sizeof num, ",%.3f,", static_cast<double>(r.duration.count()) / 1000.0);
  out += num;
  text(r.request_id);
  text(r.listener);
  flag(r.guest);
  text(r.client);
  text(r.user);
  text(r.groups);
  text(r.method);
  text(r.url);
  text(row.host);
  integer(static_cast<std::uint64_t>(r.status));
  integer(r.bytes_in);
  integer(r.bytes_out);
  text(r.upstream);
  flag(r.via_parent);
  text(r.content_type);
  text(telemetry::to_string(r.result));
  text(r.reason);
  text(r.decision);
  text(r.rule);
  text(r.category);
  text(r.category_source);
  text(r.reputation);
  text(r.scan);
  text(r.threat);
  text(r.sha256);
  text(r.file_type);
  flag(r.scan_cached);
  text(r.icap_client);
  text(r.icap_mode);
  integer(static_cast<std::uint64_t>(r.icap_status));
  text(r.error);
  text(r.scan_engine);
  text(r.file_name);
  out += std::to_string(r.scanned_size);
  out += "\r\n";
}

void append_json(std::string& out, const Row& row) {
  out += telemetry::format_json(row.record);
}

std::string make_page_token(std::int64_t time_us, std::int64_t id) {
  return std::to_string(time_us) + "." + std::to_string(id);
}

bool parse_page_token(std::string_view s, std::int64_t& time_us, std::int64_t& id) {
  auto dot = s.find('.');
  if (dot == std::string_view::npos) return false;
  auto number = [](std::string_view d, std::int64_t& v) {
    if (d.empty() || d.size() > 19) return false;
    for (char c : d)
      if (c < '0' || c > '9') return false;
    auto [p, ec] = std::from_chars(d.data(), d.data() + d.size(), v);
    return ec == std::errc() && p == d.data() + d.size();
  };
  std::int64_t t = 0, i = 0;
  if (!number(s.substr(0, dot), t) || !number(s.substr(dot + 1), i) || i < 1) return false;
  time_us = t;
  id = i;
  return true;
}

bool parse_time_arg(std::string_view s, std::chrono::system_clock::time_point now,
                    std::chrono::system_clock::time_point& out) {
  if (s == "now") {
    out = now;
    return true;
  }
  if (s.size() >= 3 && s.front() == '-') {
    std::int64_t unit;
    switch (s.back()) {
      case 's':
        unit = 1;
        break;
      case 'm':
        unit = 60;
        break;
      case 'h':
        unit = 3600;
        break;
      case 'd':
        unit = 86400;
        break;
      case 'w':
        unit = 7 * 86400;
        break;
      default:
        return false;
    }
    std::string_view digits = s.substr(1, s.size() - 2);
    if (digits.size() > 10) return false;
    std::int64_t n = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return false;
      n = n * 10 + (c - '0');
    }
    constexpr std::int64_t kMaxBack = std::int64_t{100} * 366 * 86400;
    if (n > kMaxBack / unit) return false;
    out = now - std::chrono::seconds(n * unit);
    return true;
  }
  if (s.size() == 10) return base::parse_rfc3339(std::string(s) + "T00:00:00Z", out);
  return base::parse_rfc3339(s, out);
}

}  // namespace pc::store
