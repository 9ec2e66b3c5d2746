// store_bench: how fast the log store takes records and answers queries (docs/log-store.md).
// Not a test: it reports numbers and never fails on them.
//
//   store_bench [--records N] [--dir DIR] [--results FILE]
//
// Writes a database of N generated records (default 1,000,000) in DIR (default
// bench/out/store, emptied first) four ways, then times queries on it:
//   insert      Store::insert, 8192 records per transaction (the Writer's batch), each
//               followed by maintain() (which builds the indexes of closed partitions)
//   writer      Writer::submit in batches of 512 from another thread (the access log's batch),
//               then flush: the copy, the queue and the thread included
//   at limit    Store::insert + maintain() with max_bytes at a quarter of what N records take:
//               retention deletes the oldest as fast as records come in
//   queries     Reader::query, 100 records per page, each filter several times
// With --results FILE it replaces its section of FILE (the STORE SECTION markers of
// bench/results_md.py; appended when missing) and leaves the rest as it is; otherwise it
// prints the report.
#include <sys/resource.h>
#include <sys/utsname.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "store/query.h"
#include "store/store.h"
#include "store/writer.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using pc::telemetry::AccessRecord;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// CPU seconds (user + system) the process has used so far, all threads.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Records shaped like a gateway's: 5,000 clients, 2,000 users (a third of the records
// without one), 20,000 hosts, URLs of 40-200 bytes, a category on most, 5% blocked, one in
// a thousand with a threat, times one millisecond apart.
std::vector<AccessRecord> generate(std::size_t n, std::chrono::system_clock::time_point start) {
  std::mt19937_64 rng(42);
  const char* cats[] = {"news",      "search engines", "social networks", "shopping", "webmail",
                        "streaming", "gambling",       "adult",           ""};
  const char* types[] = {"text/html", "image/png", "application/javascript", "application/json",
                         "video/mp4"};
  std::vector<AccessRecord> v;
  v.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    AccessRecord r;
    r.time = start + std::chrono::milliseconds(i);
    r.duration = std::chrono::microseconds(rng() % 2000000);
    r.request_id = "a1b2c3d4-" + std::to_string(i);
    r.listener = "proxy";
    r.client = "10." + std::to_string(rng() % 20) + "." + std::to_string(rng() % 250) + "." +
               std::to_string(rng() % 250 / 10 + 1);
    if (rng() % 3) r.user = "user" + std::to_string(rng() % 2000);
    if (!r.user.empty()) r.groups = "staff,dept" + std::to_string(rng() % 20);
    bool tunnel = rng() % 5 == 0;
    std::string host = "www.host" + std::to_string(rng() % 20000) + ".example.com";
    if (tunnel) {
      r.method = "CONNECT";
      r.url = host + ":443";
    } else {
      r.method = rng() % 10 ? "GET" : "POST";
      r.url = "http://" + host + "/" + std::string(10 + rng() % 150, 'p') +
              "?id=" + std::to_string(rng());
    }
    r.status = rng() % 20 ? 200 : 404;
    r.bytes_in = 300 + rng() % 2000;
    r.bytes_out = rng() % 2000000;
    r.upstream = "203.0.113." + std::to_string(rng() % 250) + ":" + (tunnel ? "443" : "80");
    r.content_type = types[rng() % 5];
    bool block = rng() % 20 == 0;
    r.result = block ? pc::telemetry::Result::denied : pc::telemetry::Result::allowed;
    r.decision = block ? "block" : "allow";
    r.rule = block ? "Blocked categories" : "default";
    if (block) r.reason = "category gambling";
    r.category = cats[rng() % 9];
    if (!r.category.empty()) r.category_source = "ut1 2026-02-01";
    r.reputation = "untested";
    if (!tunnel && rng() % 4 == 0) {
      r.scan = "clean";
      r.sha256 = std::string(64, 'e');
      r.file_type = "html";
      if (rng() % 250 == 0) {
        r.scan = "infected";
        r.threat = "Win.Test.EICAR_HDB-1";
      }
    }
    v.push_back(std::move(r));
  }
  return v;
}

struct Result {
  std::string name;
  std::size_t records = 0;
  double seconds = 0;
  double cpu = 0;  // CPU seconds of the process meanwhile
  std::string note;
};

double load_average() {
  double l = 0;
  std::ifstream("/proc/loadavg") >> l;
  return l;
}

std::string machine() {
  std::string model = "unknown CPU";
  std::ifstream cpu("/proc/cpuinfo");
  for (std::string line; std::getline(cpu, line);) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  utsname u{};
  uname(&u);
  char buf[512];
  std::snprintf(buf, sizeof buf, "%u CPUs (%s), Linux %s, SQLite %s, load average %.2f at start",
                std::thread::hardware_concurrency(), model.c_str(), u.release, sqlite3_libversion(),
                load_average());
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 1000000;
  fs::path dir = "bench/out/store";
  std::string results;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--records" && i + 1 < argc)
      n = std::stoul(argv[++i]);
    else if (a == "--dir" && i + 1 < argc)
      dir = argv[++i];
    else if (a == "--results" && i + 1 < argc)
      results = argv[++i];
    else {
      std::fprintf(stderr, "usage: store_bench [--records N] [--dir DIR] [--results FILE]\n");
      return 2;
    }
  }
  n = std::max<std::size_t>(n, 10000);
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir);
  std::string load_at_start = machine();
  double start_load = load_average();
  auto start = std::chrono::system_clock::now() - std::chrono::hours(24);
  std::fprintf(stderr, "generating %zu records\n", n);
  auto records = generate(n, start);
  std::vector<Result> out;

  pc::store::Options o;
  o.retention = std::chrono::seconds(0);
  o.max_bytes = std::uint64_t{64} << 30;

  // 1. Store::insert
  o.path = dir / "insert.db";
  std::uint64_t full_size = 0;
  {
    pc::store::Store store(o);
    auto t0 = Clock::now();
    double c0 = cpu_seconds();
    std::span<const AccessRecord> all(records);
    while (!all.empty()) {
      auto chunk = all.first(std::min(all.size(), pc::store::Writer::kBatch));
      all = all.subspan(chunk.size());
      if (!store.insert(chunk)) {
        std::fprintf(stderr, "insert failed: %s\n", store.stats().last_error.c_str());
        return 1;
      }
      store.maintain(std::chrono::system_clock::now());
    }
    // The indexes of the last closed partitions, as the Writer would build them next.
    while (store.maintain(std::chrono::system_clock::now())) {
    }
    out.push_back({"Store::insert + maintain, 8192 per transaction", n, seconds_since(t0),
                   cpu_seconds() - c0, ""});
    full_size = store.stats().size_bytes;
  }

  // 2. Writer from another thread
  {
    pc::store::WriterOptions wo;
    wo.store = o;
    wo.store.path = dir / "writer.db";
    wo.queue_limit = 1 << 20;
    std::optional<pc::store::Writer> writer_storage;
    writer_storage.emplace(wo);
    auto& writer = *writer_storage;
    auto t0 = Clock::now();
    double c0 = cpu_seconds();
    std::thread producer([&] {
      std::span<const AccessRecord> all(records);
      while (!all.empty()) {
        auto chunk = all.first(std::min<std::size_t>(all.size(), 512));
        all = all.subspan(chunk.size());
        writer.submit(chunk);
      }
    });
    producer.join();
    writer.flush();
    auto s = writer.stats();
    writer_storage.reset();  // stopping: the indexes it has not built yet are left
    char note[96];
    std::snprintf(note, sizeof note, "%llu dropped (queue of 1,048,576)",
                  static_cast<unsigned long long>(s.dropped));
    out.push_back({"Writer::submit (512 per call) + flush", s.written, seconds_since(t0),
                   cpu_seconds() - c0, note});
  }

  // 3. At the size limit: every batch followed by retention.
  {
    auto lo = o;
    lo.path = dir / "limit.db";
    lo.max_bytes = std::max<std::uint64_t>(full_size / 4, 8 << 20);
    pc::store::Store store(lo);
    auto t0 = Clock::now();
    double c0 = cpu_seconds();
    std::span<const AccessRecord> all(records);
    while (!all.empty()) {
      auto chunk = all.first(std::min(all.size(), pc::store::Writer::kBatch));
      all = all.subspan(chunk.size());
      store.insert(chunk);
      store.maintain(std::chrono::system_clock::now());
    }
    auto s = store.stats();
    char note[160];
    std::snprintf(note, sizeof note, "limit %llu MiB, file %llu MiB, %llu deleted, %llu dropped",
                  static_cast<unsigned long long>(lo.max_bytes >> 20),
                  static_cast<unsigned long long>(s.size_bytes >> 20),
                  static_cast<unsigned long long>(s.deleted),
                  static_cast<unsigned long long>(s.dropped));
    out.push_back({"insert + retention at the size limit", s.written, seconds_since(t0),
                   cpu_seconds() - c0, note});
  }

  // 4. Queries on the first database.
  struct Q {
    const char* name;
    pc::store::Filter f;
  };
  std::vector<Q> queries;
  auto mid = start + std::chrono::milliseconds(n / 2);
  queries.push_back({"newest 100", {}});
  {
    pc::store::Filter f;
    f.client = records[n / 2].client;
    queries.push_back({"client", f});
  }
  {
    pc::store::Filter f;
    f.user = "user1234";
    queries.push_back({"user", f});
  }
  {
    pc::store::Filter f;
    f.host = "host1234.";
    queries.push_back({"host substring (one host)", f});
  }
  {
    pc::store::Filter f;
    f.host = "host12";
    queries.push_back({"host substring (111 hosts)", f});
  }
  {
    pc::store::Filter f;
    f.url = "id=12345";
    queries.push_back({"URL substring (rare)", f});
  }
  {
    pc::store::Filter f;
    f.decision = "block";
    f.from = mid;
    f.to = mid + std::chrono::hours(1);
    queries.push_back({"decision + time range", f});
  }
  {
    pc::store::Filter f;
    f.category = "gambling";
    queries.push_back({"category", f});
  }
  {
    pc::store::Filter f;
    f.threat = "";
    queries.push_back({"any threat", f});
  }
  std::string qtable;
  {
    // The statistics retention gathers in service.
    pc::store::Options qo = o;
    qo.path = dir / "insert.db";
    pc::store::Store(qo).maintain(std::chrono::system_clock::now() + std::chrono::hours(2));
    pc::store::Reader reader;
    std::string error;
    if (!reader.open(qo.path, error)) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
    for (auto& q : queries) {
      pc::store::Page page;
      const int reps = 20;
      std::vector<double> ms;
      std::size_t pages2 = 0;
      for (int i = 0; i < reps; ++i) {
        auto t0 = Clock::now();
        if (!reader.query(q.f, page, error)) {
          std::fprintf(stderr, "%s: %s\n", q.name, error.c_str());
          return 1;
        }
        if (!page.next_page_token.empty()) {  // and the next page
          auto f2 = q.f;
          f2.page_token = page.next_page_token;
          pc::store::Page p2;
          reader.query(f2, p2, error);
          pages2 = p2.rows.size();
        }
        ms.push_back(seconds_since(t0) * 1000);
      }
      std::sort(ms.begin(), ms.end());
      char line[256];
      std::snprintf(line, sizeof line, "| %s | %zu + %zu | %.2f | %.2f |\n", q.name,
                    page.rows.size(), pages2, ms[reps / 2], ms[reps - 1]);
      qtable += line;
    }
  }

  std::ostringstream r;
  const std::string begin =
      "<!-- BEGIN STORE SECTION: written by bench/store_bench; edits inside are lost -->";
  const std::string end = "<!-- END STORE SECTION -->";
  r << begin << "\n## Log store (bench/store_bench.cpp)\n\n";
  // The benchmark itself keeps up to two threads busy.
  double end_load = load_average();
  r << "Machine: " << load_at_start << ", " << end_load << " at the end";
  if (start_load > 1.0 || end_load > 2.5)
    r << " (**machine busy**: other programs were running; the numbers are lower than on an "
         "idle machine)";
  r << ". Build: `release` preset. " << n << " generated records (" << (full_size >> 20)
    << " MiB database, " << full_size / n << " bytes per record with its indexes).\n\n";
  r << "*records/s* is records ÷ elapsed seconds; *per CPU second* is records ÷ the CPU time "
       "the process used meanwhile (all its threads), what one core would do alone.\n\n"
       "| ingest | records | seconds | records/s | CPU s | per CPU second | |\n"
       "|---|---|---|---|---|---|---|\n";
  for (auto& x : out) {
    char line[320];
    std::snprintf(line, sizeof line, "| %s | %zu | %.2f | %.0f | %.2f | %.0f | %s |\n",
                  x.name.c_str(), x.records, x.seconds, static_cast<double>(x.records) / x.seconds,
                  x.cpu, static_cast<double>(x.records) / x.cpu, x.note.c_str());
    r << line;
  }
  r << "\nQueries on the " << n
    << "-record database, 100 records per page (first page + next page, 20 runs):\n\n"
       "| filter | records | median ms | max ms |\n|---|---|---|---|\n"
    << qtable << "\nTarget (issue #6): at least 50,000 records/s.\n"
    << end << "\n";

  if (results.empty()) {
    std::fputs(r.str().c_str(), stdout);
    return 0;
  }
  std::string text;
  {
    std::ifstream in(results);
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  auto b = text.find("<!-- BEGIN STORE SECTION");
  auto e = text.find(end);
  if (b != std::string::npos && e != std::string::npos && e > b) {
    e += end.size();
    if (e < text.size() && text[e] == '\n') ++e;
    text.replace(b, e - b, r.str());
  } else {
    while (!text.empty() && text.back() == '\n') text.pop_back();
    text += "\n\n" + r.str();
  }
  std::ofstream(results) << text;
  std::fputs(r.str().c_str(), stdout);
  return 0;
}
