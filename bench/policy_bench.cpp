// Policy engine benchmarks.
//
// 1. The full policy: a 10,000-rule policy over a 5,000,000-domain UT1-layout category
//    database and a URLhaus feed (bench/gen_policy.py), loaded with Policy::load_file: load
//    time and memory; then classify() + decide() over a mix of 200,000 transactions
//    (facts.tsv: hosts from the database's samples, hosts listed nowhere, hosts the policy
//    names; users and groups, sources, methods, ports, header fields, times over a week):
//    decisions per second and latency percentiles of classify+decide, of decide alone and of
//    classify alone.
// 2. The category database alone (CategoryDb): import time and memory, lookups per second
//    and lookup latency percentiles.
//
//   policy_bench                        # generates everything into a temporary folder
//   PC_CATDB_DOMAINS=1000000 policy_bench
//   PC_POLICY_DIR=bench/out/policy policy_bench   # gen_policy.py output (reused, not removed;
//                                                 # generated there when missing)
//   PC_CATDB_DIR=/path/to/blacklists policy_bench # an existing database for the CategoryDb
//                                                 # benchmarks (not removed)
//   PC_POLICY_RULES=10000 (default) rules in a generated policy
//   PC_FACTS_LIMIT=300 policy_bench   # cycle over the first 300 transactions only (caches hot)
//
// A generated temporary folder is removed at exit unless PC_CATDB_KEEP=1.
//
// Counters of BM_PolicyLoad (the first iteration for memory; the process has loaded nothing
// else before it): load_s (first load), load_s_min, rules, domains (generated into the
// database), rss_MB (resident growth once loaded and the heap's free memory given back, as the
// daemon does), peak_MB (VmHWM growth during the load),
// bytes_per_domain (rss growth / domains).
// Latency counters (ns): p50, p99, p999, max, measured one decision at a time with
// steady_clock (its overhead, about 20 ns, is included), after reading what the transaction's
// facts point to (warm()), as a proxy has just parsed them: the policy's memory is cold, the
// transaction's is not. Throughput benchmarks copy the facts
// of each transaction (classify writes into them): a few ns included.
// Catdb import counters: import_s (reading the text files), build_s (compiling the table),
// entries, memory_MB (CategoryDb::memory_bytes), rss_MB, bytes_per_entry.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "base/cidr.h"
#include "base/memory.h"
#include "policy/catdb.h"
#include "policy/policy.h"
#include "wire/http.h"

namespace {

namespace fs = std::filesystem;
using pc::policy::CategoryDb;
using pc::policy::CategoryHits;
using pc::policy::Decision;
using pc::policy::Facts;
using pc::policy::Phase;
using pc::policy::Policy;

struct Query {
  std::string host;
  std::string path;
};

// One transaction of facts.tsv; Facts views point into it (kept in a deque: never moved).
struct Txn {
  std::string host, path, url, method, scheme, user, kind;
  std::vector<std::string> groups;
  pc::wire::RequestHead head;
  Facts facts;
};

struct State {
  fs::path tmp;  // generated temporary folder (removed at exit)
  fs::path policy_dir, catdb_dir;
  std::shared_ptr<const CategoryDb> db;
  std::vector<Query> hits, misses, mixed;

  std::shared_ptr<const Policy> policy;
  std::deque<Txn> txns;
  std::vector<Facts> classified;   // txns' facts after classify()
  std::vector<std::string> kinds;  // kind per txn index
  Txn proxy_txn;                   // what bench/run.sh's proxy case asks

  ~State() {
    if (!tmp.empty() && !std::getenv("PC_CATDB_KEEP")) {
      std::error_code ec;
      fs::remove_all(tmp, ec);
    }
  }
};

State& state() {
  static State s;
  return s;
}

double status_mb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  std::size_t n = std::char_traits<char>::length(key);
  while (std::getline(in, line))
    if (line.compare(0, n, key) == 0) return std::atof(line.c_str() + n) / 1024.0;
  return 0;
}
double rss_mb() {
  return status_mb("VmRSS:");
}
double hwm_mb() {
  return status_mb("VmHWM:");
}

const char* env_or(const char* name, const char* dflt) {
  const char* v = std::getenv(name);
  return v && *v ? v : dflt;
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The gen_policy.py output folder: PC_POLICY_DIR (generated there when it has no STAMP of
// the same parameters), else a temporary folder.
const fs::path& policy_dir() {
  State& s = state();
  if (!s.policy_dir.empty()) return s.policy_dir;
  if (const char* d = std::getenv("PC_POLICY_DIR"); d && *d) {
    s.policy_dir = d;
  } else {
    std::string tmpl = (fs::temp_directory_path() / "pc-policy-bench-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) {
      std::perror("mkdtemp");
      std::exit(1);
    }
    s.tmp = tmpl;
    s.policy_dir = s.tmp / "policy";
  }
  std::string cmd = "python3 '" PC_SOURCE_DIR "/bench/gen_policy.py' --out '" +
                    s.policy_dir.string() + "' --domains " + env_or("PC_CATDB_DOMAINS", "5000000") +
                    " --rules " + env_or("PC_POLICY_RULES", "10000");
  std::fprintf(stderr, "generating: %s\n", cmd.c_str());
  auto t0 = std::chrono::steady_clock::now();
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "gen_policy.py failed\n");
    std::exit(1);
  }
  std::fprintf(stderr, "generated (or reused) in %.1f s\n", since(t0));
  return s.policy_dir;
}

const fs::path& database_dir() {
  State& s = state();
  if (s.catdb_dir.empty()) {
    const char* d = std::getenv("PC_CATDB_DIR");
    s.catdb_dir = d && *d ? fs::path(d) : policy_dir() / "ut1";
  }
  return s.catdb_dir;
}

std::size_t generated_domains() {
  std::ifstream in(policy_dir() / "ut1" / "VERSION");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto at = text.find("domains=");
  return at == std::string::npos ? 0 : std::strtoull(text.c_str() + at + 8, nullptr, 10);
}

// ------------------------------------------------------------------ the full policy

void fill_txn(Txn& t, const std::string& client, const std::string& user, const std::string& groups,
              const std::string& method, const std::string& scheme, const std::string& host,
              int port, const std::string& path, const std::string& ua,
              const std::string& content_length, long long when, const std::string& kind) {
  t.host = host;
  t.method = method;
  t.scheme = scheme;
  t.user = user == "-" ? "" : user;
  t.kind = kind;
  if (groups != "-") {
    std::stringstream ss(groups);
    std::string g;
    while (std::getline(ss, g, ',')) t.groups.push_back(g);
  }
  t.path = method == "CONNECT" ? "/" : path;
  bool default_port = (scheme == "http" && port == 80) || (scheme == "https" && port == 443);
  t.url = scheme + "://" + host + (default_port ? "" : ":" + std::to_string(port)) + t.path;
  std::string raw = "GET / HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: " + ua +
                    "\r\nAccept: */*\r\nAccept-Language: en-US,en;q=0.9,de;q=0.8\r\n"
                    "Accept-Encoding: gzip, deflate, br\r\n";
  if (content_length != "-")
    raw += "Content-Length: " + content_length +
           "\r\nContent-Type: multipart/form-data; boundary=x\r\n";
  raw += "\r\n";
  auto r = pc::wire::parse_request_head(raw, pc::wire::Limits{}, t.head);
  if (r.status != pc::wire::Status::complete) {
    std::fprintf(stderr, "bad generated head for %s\n", host.c_str());
    std::exit(1);
  }
  Facts& f = t.facts;
  auto ip = pc::base::parse_ip(client);
  f.client = ip ? *ip : pc::base::IpBytes{};
  f.listener = "proxy";
  f.user = t.user;
  f.groups = t.groups;
  f.method = t.method;
  f.scheme = t.scheme;
  f.host = t.host;
  f.port = static_cast<std::uint16_t>(port);
  f.path = t.path;
  f.url = t.url;
  f.request_head = &t.head;
  f.time = std::chrono::system_clock::time_point(std::chrono::seconds(when));
}

const std::shared_ptr<const Policy>& loaded_policy() {
  static std::mutex mu;
  std::lock_guard lock(mu);
  State& s = state();
  if (!s.policy) {
    std::vector<pc::policy::LoadError> errs;
    s.policy = Policy::load_file(policy_dir() / "policy.toml", errs);
    for (const auto& e : errs) std::fprintf(stderr, "%s\n", pc::policy::format(e).c_str());
    if (!s.policy) std::exit(1);
  }
  return s.policy;
}

void load_facts() {
  static std::once_flag once;
  std::call_once(once, [] {
    State& s = state();
    const Policy& pol = *loaded_policy();
    std::ifstream in(policy_dir() / "facts.tsv");
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::vector<std::string> c;
      std::stringstream ss(line);
      std::string x;
      while (std::getline(ss, x, '\t')) c.push_back(x);
      if (c.size() != 12) continue;
      Txn& t = s.txns.emplace_back();
      fill_txn(t, c[0], c[1], c[2], c[3], c[4], c[5], std::atoi(c[6].c_str()), c[7], c[8], c[9],
               std::atoll(c[10].c_str()), c[11]);
    }
    if (s.txns.empty()) {
      std::fprintf(stderr, "no facts in %s\n", (policy_dir() / "facts.tsv").c_str());
      std::exit(1);
    }
    // Classified copies (for decide() alone) and a summary of what the policy decides.
    std::map<std::string, std::size_t> by_action, by_how;
    std::size_t with_cat = 0, nonfinal = 0;
    for (Txn& t : s.txns) {
      Facts f = t.facts;
      pol.classify(f);
      with_cat += f.categories.count > 0;
      s.classified.push_back(f);
      Decision d = pol.decide(f, Phase::request);
      ++by_action[std::string(pc::policy::to_string(d.action))];
      ++by_how[d.from_list ? "list" : d.rule == "default" ? "default" : "rule"];
      nonfinal += !d.final;
    }
    double n = static_cast<double>(s.txns.size());
    std::fprintf(stderr, "facts: %zu transactions, %.1f%% with a category;", s.txns.size(),
                 100.0 * static_cast<double>(with_cat) / n);
    for (const auto& [k, v] : by_how)
      std::fprintf(stderr, " %s %.1f%%", k.c_str(), 100.0 * static_cast<double>(v) / n);
    std::fprintf(stderr, "; actions:");
    for (const auto& [k, v] : by_action)
      std::fprintf(stderr, " %s %.1f%%", k.c_str(), 100.0 * static_cast<double>(v) / n);
    std::fprintf(stderr, "; not final %.1f%%\n", 100.0 * static_cast<double>(nonfinal) / n);
    fill_txn(s.proxy_txn, "127.0.0.1", "-", "-", "GET", "http", "127.0.0.1", 28080, "/1k.bin",
             "portcullis-bench", "-", 1796371200, "proxy");
  });
}

void BM_PolicyLoad(benchmark::State& st) {
  fs::path file = policy_dir() / "policy.toml";
  double first_s = 0, min_s = 1e300, rss = 0, peak = 0;
  std::size_t rules = 0, warnings = 0;
  bool first = true;
  for (auto _ : st) {
    state().policy.reset();
    double rss0 = rss_mb(), hwm0 = hwm_mb();
    auto t0 = std::chrono::steady_clock::now();
    std::vector<pc::policy::LoadError> errs;
    auto p = Policy::load_file(file, errs);
    double s = since(t0);
    if (!p) {
      for (const auto& e : errs) std::fprintf(stderr, "%s\n", pc::policy::format(e).c_str());
      st.SkipWithError("the policy did not load");
      return;
    }
    if (first) {
      first_s = s;
      pc::base::release_free_memory();  // as the daemon does once a policy is loaded
      rss = rss_mb() - rss0;
      peak = hwm_mb() - hwm0;
      first = false;
    }
    min_s = std::min(min_s, s);
    rules = p->rule_count();
    warnings = p->warnings().size();
    state().policy = std::move(p);
  }
  double domains = static_cast<double>(generated_domains());
  st.counters["load_s"] = first_s;
  st.counters["load_s_min"] = min_s;
  st.counters["rules"] = static_cast<double>(rules);
  st.counters["warnings"] = static_cast<double>(warnings);
  st.counters["domains"] = domains;
  st.counters["rss_MB"] = rss;
  st.counters["peak_MB"] = peak;
  st.counters["bytes_per_domain"] = domains > 0 ? rss * 1048576.0 / domains : 0;
}
BENCHMARK(BM_PolicyLoad)->Unit(benchmark::kMillisecond)->Iterations(3);

// PC_FACTS_LIMIT=N: the benchmarks below cycle over the first N transactions only (what
// they touch of the policy and the databases then stays in the caches: the cost of the
// computation alone). Default: all of facts.tsv.
std::size_t facts_limit(std::size_t all) {
  const char* v = std::getenv("PC_FACTS_LIMIT");
  const std::size_t n = v && *v ? std::strtoull(v, nullptr, 10) : 0;
  return n == 0 || n > all ? all : n;
}

// classify() + decide(), facts copied per transaction.
void run_classify_decide(benchmark::State& st, const Policy& pol) {
  load_facts();
  const auto& txns = state().txns;
  const std::size_t lim = facts_limit(txns.size());
  std::size_t i = static_cast<std::size_t>(st.thread_index()) * 7919 % lim;
  std::size_t blocked = 0;
  for (auto _ : st) {
    Facts f = txns[i].facts;
    if (++i == lim) i = 0;
    pol.classify(f);
    Decision d = pol.decide(f, Phase::request);
    blocked += d.action == pc::policy::Action::block;
    benchmark::DoNotOptimize(d);
  }
  st.SetItemsProcessed(st.iterations());
  st.counters["blocked_pct"] = benchmark::Counter(
      100.0 * static_cast<double>(blocked) / static_cast<double>(st.iterations()),
      benchmark::Counter::kAvgThreads);
}

void BM_ClassifyDecide(benchmark::State& st) {
  run_classify_decide(st, *loaded_policy());
}
BENCHMARK(BM_ClassifyDecide);
BENCHMARK(BM_ClassifyDecide)->Threads(2);

void BM_ClassifyDecideEmptyPolicy(benchmark::State& st) {
  run_classify_decide(st, *Policy::allow_all());
}
BENCHMARK(BM_ClassifyDecideEmptyPolicy);

void BM_Decide(benchmark::State& st) {
  const Policy& pol = *loaded_policy();
  load_facts();
  const auto& fs_ = state().classified;
  std::size_t i = 0;
  const std::size_t lim = facts_limit(fs_.size());
  for (auto _ : st) {
    Decision d = pol.decide(fs_[i], Phase::request);
    if (++i == lim) i = 0;
    benchmark::DoNotOptimize(d);
  }
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_Decide);

// What bench/run.sh's proxy-with-policy case asks: GET http://127.0.0.1:28080/1k.bin from
// 127.0.0.1, no user; decided by the default after every unindexed rule is checked.
void BM_ClassifyDecideProxyRequest(benchmark::State& st) {
  const Policy& pol = *loaded_policy();
  load_facts();
  const Facts& src = state().proxy_txn.facts;
  for (auto _ : st) {
    Facts f = src;
    pol.classify(f);
    Decision d = pol.decide(f, Phase::request);
    benchmark::DoNotOptimize(d);
  }
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_ClassifyDecideProxyRequest);

// classify() alone: the category and reputation lookups of every request.
void BM_Classify(benchmark::State& st) {
  const Policy& pol = *loaded_policy();
  load_facts();
  const auto& txns = state().txns;
  const std::size_t lim = facts_limit(txns.size());
  std::size_t i = 0;
  for (auto _ : st) {
    Facts f = txns[i].facts;
    if (++i == lim) i = 0;
    pol.classify(f);
    benchmark::DoNotOptimize(f.categories);
  }
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_Classify);

void BM_ClassifyProxyRequest(benchmark::State& st) {
  const Policy& pol = *loaded_policy();
  load_facts();
  const Facts& src = state().proxy_txn.facts;
  for (auto _ : st) {
    Facts f = src;
    pol.classify(f);
    benchmark::DoNotOptimize(f.categories);
  }
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_ClassifyProxyRequest);

void set_percentiles(benchmark::State& st, std::vector<std::uint32_t>& ns, const char* prefix) {
  std::sort(ns.begin(), ns.end());
  auto pct = [&](double p) {
    return ns.empty() ? 0.0
                      : static_cast<double>(
                            ns[static_cast<std::size_t>(p * static_cast<double>(ns.size() - 1))]);
  };
  std::string p(prefix);
  st.counters[p + "p50_ns"] = pct(0.50);
  st.counters[p + "p99_ns"] = pct(0.99);
  st.counters[p + "p999_ns"] = pct(0.999);
  if (p.empty()) st.counters["max_ns"] = ns.empty() ? 0.0 : static_cast<double>(ns.back());
}

// Reads every byte of what the facts point to (the request head, strings, groups), as a
// proxy that has just parsed the request has them in its caches; the latency benchmarks call
// it before starting the clock so that they measure the policy's own memory, not the
// transaction's.
std::uint64_t warm(const Facts& f) {
  std::uint64_t sum = 0;
  auto touch = [&](std::string_view s) {
    for (char c : s) sum += static_cast<unsigned char>(c);
  };
  for (auto s : {f.listener, f.user, f.method, f.scheme, f.host, f.path, f.url}) touch(s);
  for (const auto& g : f.groups) touch(g);
  if (f.request_head) {
    touch(f.request_head->bytes());
    for (const auto& fld : f.request_head->fields) sum += fld.name.size() + fld.value.size();
  }
  return sum;
}

}  // namespace

// In-process A/B of two code paths (bench/README.md): a scratch build of the engine that
// defines this variable and branches on it gets BM_DecisionLatency's decisions alternating
// between variant 0 and 1 in blocks of 1,000 transactions (flipped at each pass over the
// mix), with their percentiles apart. Undefined (null) in the engine as it ships.
extern "C" int pc_policy_variant __attribute__((weak));

namespace {

// Latency, one decision at a time over the whole mix (1,000,000 decisions: each transaction
// five times). classify=1: classify + decide; 0: decide alone on classified facts; 2:
// classify alone. Also p99 per kind of host (db: in the database; unlisted: nowhere; listed:
// named by the policy).
void BM_DecisionLatency(benchmark::State& st) {
  const Policy& pol = *loaded_policy();
  load_facts();
  const bool with_classify = st.range(0) == 1;
  const bool classify_only = st.range(0) == 2;
  const auto& txns = state().txns;
  const auto& cls = state().classified;
  std::vector<std::uint32_t> ns;
  std::vector<std::uint8_t> kind, variant;
  ns.reserve(1 << 20);
  kind.reserve(1 << 20);
  variant.reserve(1 << 20);
  const bool ab = &pc_policy_variant != nullptr;
  std::size_t i = 0;
  const std::size_t lim = facts_limit(txns.size());
  for (auto _ : st) {
    std::chrono::steady_clock::time_point t0, t1;
    const auto var = static_cast<std::uint8_t>((ns.size() / lim + i / 1000) & 1);
    if (ab) pc_policy_variant = var;
    if (classify_only) {
      Facts f = txns[i].facts;
      benchmark::DoNotOptimize(warm(f));
      t0 = std::chrono::steady_clock::now();
      pol.classify(f);
      t1 = std::chrono::steady_clock::now();
      benchmark::DoNotOptimize(f.categories);
    } else if (with_classify) {
      Facts f = txns[i].facts;
      benchmark::DoNotOptimize(warm(f));
      t0 = std::chrono::steady_clock::now();
      pol.classify(f);
      Decision d = pol.decide(f, Phase::request);
      t1 = std::chrono::steady_clock::now();
      benchmark::DoNotOptimize(d);
    } else {
      const Facts f = cls[i];
      benchmark::DoNotOptimize(warm(f));
      t0 = std::chrono::steady_clock::now();
      Decision d = pol.decide(f, Phase::request);
      t1 = std::chrono::steady_clock::now();
      benchmark::DoNotOptimize(d);
    }
    if (ns.size() < (1u << 20)) {
      ns.push_back(static_cast<std::uint32_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
      const std::string& k = txns[i].kind;
      kind.push_back(k.rfind("db_", 0) == 0 ? 0 : k == "unlisted" ? 1 : 2);
      variant.push_back(var);
    }
    if (++i == lim) i = 0;
  }
  std::vector<std::uint32_t> per[3], by_variant[2];
  for (std::size_t j = 0; j < ns.size(); ++j) {
    per[kind[j]].push_back(ns[j]);
    by_variant[variant[j]].push_back(ns[j]);
  }
  if (ab) {
    set_percentiles(st, by_variant[0], "v0_");
    set_percentiles(st, by_variant[1], "v1_");
  }
  set_percentiles(st, ns, "");
  const char* names[] = {"db_", "unlisted_", "listed_"};
  for (int k = 0; k < 3; ++k) {
    std::sort(per[k].begin(), per[k].end());
    if (!per[k].empty())
      st.counters[std::string(names[k]) + "p99_ns"] = static_cast<double>(
          per[k][static_cast<std::size_t>(0.99 * static_cast<double>(per[k].size() - 1))]);
  }
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_DecisionLatency)->ArgName("classify")->Arg(1)->Arg(0)->Arg(2)->Iterations(1000000);

// ------------------------------------------------------------------ the category database

// Queries: hits are sampled entries (domains under a random subdomain, URL entries with a
// longer path); misses are names of the same shape that are not listed.
void make_queries() {
  State& s = state();
  if (!s.mixed.empty()) return;
  std::mt19937_64 rng(42);
  std::ifstream in(database_dir() / "samples.tsv");
  std::string line;
  const char* subs[] = {"", "", "www.", "a.b.", "static.cdn."};
  while (std::getline(in, line)) {
    auto t1 = line.find('\t');
    auto t2 = line.find('\t', t1 + 1);
    if (t1 == std::string::npos || t2 == std::string::npos) continue;
    std::string kind = line.substr(0, t1), entry = line.substr(t1 + 1, t2 - t1 - 1);
    if (kind == "domain") {
      s.hits.push_back({subs[rng() % 5] + entry, "/index.html?q=" + std::to_string(rng() % 1000)});
    } else {
      auto slash = entry.find('/');
      s.hits.push_back({entry.substr(0, slash), entry.substr(slash) + "page/1"});
    }
  }
  if (s.hits.empty()) {  // a database without samples: its own category names as hosts
    for (int i = 0; i < 1000; ++i)
      s.hits.push_back({"www.example" + std::to_string(i) + ".com", "/"});
  }
  const char* tlds[] = {"com", "net", "org", "de", "co.uk", "com.au", "io", "fr"};
  for (std::size_t i = 0; i < s.hits.size(); ++i) {
    std::string host = "www.qz" + std::to_string(rng() % 100000000) + "miss." + tlds[rng() % 8];
    s.misses.push_back({host, "/path/to/page.html"});
  }
  for (std::size_t i = 0; i < s.hits.size(); ++i) {
    s.mixed.push_back(s.hits[i]);
    s.mixed.push_back(s.misses[i]);
  }
  std::shuffle(s.mixed.begin(), s.mixed.end(), rng);
}

void BM_Import(benchmark::State& st) {
  const fs::path& dir = database_dir();
  double import_s = 0, build_s = 0, rss = 0;
  std::size_t errors = 0;
  for (auto _ : st) {
    state().db.reset();
    double rss0 = rss_mb();
    auto t0 = std::chrono::steady_clock::now();
    CategoryDb::Builder b;
    auto src = b.add_source({"bench", "1"});
    std::vector<std::string> errs;
    pc::policy::import_squidguard_dir(b, src, dir, errs);
    auto t1 = std::chrono::steady_clock::now();
    auto db = b.build();
    auto t2 = std::chrono::steady_clock::now();
    import_s = std::chrono::duration<double>(t1 - t0).count();
    build_s = std::chrono::duration<double>(t2 - t1).count();
    rss = rss_mb() - rss0;
    errors = errs.size();
    state().db = std::move(db);
  }
  const CategoryDb& db = *state().db;
  st.counters["import_s"] = import_s;
  st.counters["build_s"] = build_s;
  st.counters["entries"] = static_cast<double>(db.entries());
  st.counters["errors"] = static_cast<double>(errors);
  st.counters["memory_MB"] = static_cast<double>(db.memory_bytes()) / 1048576.0;
  st.counters["rss_MB"] = rss;
  st.counters["bytes_per_entry"] = static_cast<double>(db.memory_bytes()) /
                                   static_cast<double>(std::max<std::size_t>(1, db.entries()));
}
BENCHMARK(BM_Import)->Unit(benchmark::kMillisecond)->Iterations(3);

const std::shared_ptr<const CategoryDb>& loaded() {
  static std::mutex mu;  // benchmark threads arrive together
  std::lock_guard lock(mu);
  if (!state().db) {
    CategoryDb::Builder b;
    auto src = b.add_source({"bench", "1"});
    std::vector<std::string> errs;
    pc::policy::import_squidguard_dir(b, src, database_dir(), errs);
    state().db = b.build();
  }
  make_queries();
  return state().db;
}

void run_lookups(benchmark::State& st, const std::vector<Query>& qs) {
  const CategoryDb& db = *loaded();
  std::size_t i = 0, matched = 0;
  for (auto _ : st) {
    const Query& q = qs[i];
    if (++i == qs.size()) i = 0;
    CategoryHits hits;
    matched += db.lookup(q.host, q.path, hits) != 0;
    benchmark::DoNotOptimize(hits);
  }
  st.SetItemsProcessed(st.iterations());
  st.counters["matched_pct"] = benchmark::Counter(
      100.0 * static_cast<double>(matched) / static_cast<double>(st.iterations()),
      benchmark::Counter::kAvgThreads);
}

void BM_LookupHit(benchmark::State& st) {
  loaded();
  run_lookups(st, state().hits);
}
void BM_LookupMiss(benchmark::State& st) {
  loaded();
  run_lookups(st, state().misses);
}
void BM_LookupMixed(benchmark::State& st) {
  loaded();
  run_lookups(st, state().mixed);
}
BENCHMARK(BM_LookupHit);
BENCHMARK(BM_LookupMiss);
BENCHMARK(BM_LookupMixed);
BENCHMARK(BM_LookupMixed)->Threads(2);

void BM_LookupLatency(benchmark::State& st) {
  const CategoryDb& db = *loaded();
  const auto& qs = state().mixed;
  std::vector<std::uint32_t> ns;
  ns.reserve(1 << 20);
  std::size_t i = 0;
  for (auto _ : st) {
    const Query& q = qs[i];
    if (++i == qs.size()) i = 0;
    CategoryHits hits;
    auto t0 = std::chrono::steady_clock::now();
    db.lookup(q.host, q.path, hits);
    auto t1 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(hits);
    if (ns.size() < (1u << 20))
      ns.push_back(static_cast<std::uint32_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
  }
  std::sort(ns.begin(), ns.end());
  auto pct = [&](double p) {
    return ns.empty() ? 0.0
                      : static_cast<double>(
                            ns[static_cast<std::size_t>(p * static_cast<double>(ns.size() - 1))]);
  };
  st.counters["p50_ns"] = pct(0.50);
  st.counters["p99_ns"] = pct(0.99);
  st.counters["p999_ns"] = pct(0.999);
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_LookupLatency)->Iterations(1000000);

// Where the tail comes from: every transaction of facts.tsv decided 5 times back to back, the
// first call (its memory cold, as in the mix) against the fastest (its memory hot). Prints
// both distributions, the kinds of host among the slowest 1% (hot) and the 25 slowest.
void BM_DecisionCostByTransaction(benchmark::State& st) {
  const Policy& pol = *loaded_policy();
  load_facts();
  const auto& txns = state().txns;
  const auto& cls = state().classified;
  struct Cost {
    std::uint32_t hot, cold;
    std::size_t i;
  };
  std::vector<Cost> costs;
  auto ns = [](auto a, auto b) {
    return static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
  };
  for (auto _ : st) {
    costs.clear();
    for (std::size_t i = 0; i < txns.size(); ++i) {
      const Facts f = cls[i];
      benchmark::DoNotOptimize(warm(f));
      Cost c{~0U, 0, i};
      for (int k = 0; k < 5; ++k) {
        auto t0 = std::chrono::steady_clock::now();
        Decision d = pol.decide(f, Phase::request);
        auto t1 = std::chrono::steady_clock::now();
        benchmark::DoNotOptimize(d);
        if (k == 0) c.cold = ns(t0, t1);
        c.hot = std::min(c.hot, ns(t0, t1));
      }
      costs.push_back(c);
    }
  }
  std::vector<std::uint32_t> hot, cold;
  for (const auto& c : costs) {
    hot.push_back(c.hot);
    cold.push_back(c.cold);
  }
  std::sort(hot.begin(), hot.end());
  std::sort(cold.begin(), cold.end());
  auto at = [](const std::vector<std::uint32_t>& v, double p) {
    return static_cast<double>(v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))]);
  };
  for (auto [name, q] : {std::pair{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p999", 0.999}}) {
    st.counters[std::string("hot_") + name + "_ns"] = at(hot, q);
    st.counters[std::string("cold_") + name + "_ns"] = at(cold, q);
  }
  std::sort(costs.begin(), costs.end(), [](const Cost& a, const Cost& b) { return a.hot > b.hot; });
  std::map<std::string, std::pair<int, int>> kinds;  // all, among the slowest 1%
  for (std::size_t j = 0; j < costs.size(); ++j) {
    auto& k = kinds[txns[costs[j].i].kind];
    ++k.first;
    if (j < costs.size() / 100) ++k.second;
  }
  for (const auto& [k, n] : kinds)
    std::fprintf(stderr, "%s: %d transactions, %d among the slowest 1%% (hot)\n", k.c_str(),
                 n.first, n.second);
  std::fprintf(stderr,
               "the 25 slowest (hot/cold ns, kind, request, user, groups, categories, rule):\n");
  for (std::size_t j = 0; j < std::min<std::size_t>(25, costs.size()); ++j) {
    const auto& t = txns[costs[j].i];
    const Decision d = pol.decide(cls[costs[j].i], Phase::request);
    std::fprintf(stderr, "%u/%u %s %s %s user=%s groups=%zu categories=%u -> %.*s\n", costs[j].hot,
                 costs[j].cold, t.kind.c_str(), t.method.c_str(), t.url.substr(0, 60).c_str(),
                 t.user.c_str(), t.groups.size(), unsigned{cls[costs[j].i].categories.count},
                 static_cast<int>(d.rule.size()), d.rule.data());
  }
}
BENCHMARK(BM_DecisionCostByTransaction)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
