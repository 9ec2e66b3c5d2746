// Access-record formatting on the writer thread: JSON and Squid lines for the files, and the
// syslog messages (RFC 5424, CEF, JSON), each appended to one reused buffer as the sinks do.
#include <benchmark/benchmark.h>

#include "telemetry/format.h"
#include "telemetry/syslog_format.h"

namespace {

using namespace pc::telemetry;
using namespace std::chrono_literals;

// What an ICAP REQMOD with no body leaves in the record (the bench/icap.sh 0-byte case).
AccessRecord icap_record() {
  AccessRecord r;
  r.time = std::chrono::system_clock::now();
  r.duration = 123us;
  r.request_id = "5f2c9a1e-1234";
  r.listener = "icap";
  r.client = "192.0.2.9";
  r.method = "GET";
  r.url = "http://bench.example/path";
  r.status = 0;
  r.bytes_in = 312;
  r.bytes_out = 98;
  r.decision = "allow";
  r.rule = "default";
  r.reputation = "untested";
  r.icap_client = "127.0.0.1";
  r.icap_mode = "reqmod";
  r.icap_status = 204;
  return r;
}

void BM_FileJson(benchmark::State& st) {
  auto r = icap_record();
  std::string out;
  for (auto _ : st) {
    out.clear();
    append_json(out, r, "gw-bench");
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_FileJson);

void BM_FileSquid(benchmark::State& st) {
  auto r = icap_record();
  std::string out;
  for (auto _ : st) {
    out.clear();
    append_squid(out, r);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_FileSquid);

void BM_Syslog(benchmark::State& st) {
  auto r = icap_record();
  SyslogHeader h;
  h.hostname = "gw-bench";
  h.procid = "4242";
  h.version = "0.1.0";
  const auto f = static_cast<SyslogFormat>(st.range(0));
  std::string out;
  for (auto _ : st) {
    out.clear();
    append_syslog(out, r, f, h);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Syslog)->Arg(0)->Arg(1)->Arg(2)->ArgNames({"rfc5424|cef|json"});

}  // namespace

BENCHMARK_MAIN();
