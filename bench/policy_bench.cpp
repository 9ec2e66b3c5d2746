// Category database benchmarks: import time and memory of a large squidGuard-layout database,
// lookups per second and lookup latency percentiles.
//
//   policy_bench                       # generates 5,000,000 domains into a temporary folder
//   PC_CATDB_DOMAINS=1000000 policy_bench
//   PC_CATDB_DIR=/path/to/blacklists policy_bench   # an existing database (not removed)
//
// The generated folder is removed at exit unless PC_CATDB_KEEP=1. Import counters:
// import_s (reading the text files), build_s (compiling the table), entries, memory_MB
// (CategoryDb::memory_bytes), rss_MB (resident growth, measured after the build), and
// bytes_per_entry. Latency counters (ns): p50, p99, p999, measured one lookup at a time
// with steady_clock (its overhead, about 20 ns, is included).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "policy/catdb.h"

namespace {

namespace fs = std::filesystem;
using pc::policy::CategoryDb;
using pc::policy::CategoryHits;

struct Query {
  std::string host;
  std::string path;
};

struct State {
  fs::path dir;
  bool generated = false;
  std::shared_ptr<const CategoryDb> db;
  std::vector<Query> hits, misses, mixed;

  ~State() {
    if (generated && !std::getenv("PC_CATDB_KEEP")) {
      std::error_code ec;
      fs::remove_all(dir.parent_path(), ec);
    }
  }
};

State& state() {
  static State s;
  return s;
}

double rss_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  return 0;
}

const fs::path& database_dir() {
  State& s = state();
  if (!s.dir.empty()) return s.dir;
  if (const char* d = std::getenv("PC_CATDB_DIR"); d && *d) {
    s.dir = d;
    return s.dir;
  }
  const char* n = std::getenv("PC_CATDB_DOMAINS");
  std::string domains = n && *n ? n : "5000000";
  std::string tmpl = (fs::temp_directory_path() / "pc-policy-bench-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) {
    std::perror("mkdtemp");
    std::exit(1);
  }
  s.dir = fs::path(tmpl) / "db";
  s.generated = true;
  std::string cmd = "python3 '" PC_SOURCE_DIR "/tools/gen_catdb.py' --out '" + s.dir.string() +
                    "' --domains " + domains + " --samples 100000";
  std::fprintf(stderr, "generating: %s\n", cmd.c_str());
  auto t0 = std::chrono::steady_clock::now();
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "gen_catdb.py failed\n");
    std::exit(1);
  }
  std::fprintf(stderr, "generated in %.1f s\n",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return s.dir;
}

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

}  // namespace

BENCHMARK_MAIN();
