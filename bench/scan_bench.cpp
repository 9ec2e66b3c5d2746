// Micro-benchmarks of one body's scan as the scan pool runs it (txn/scan.cpp, scan_job): the
// true file type (the native detector, and libmagic when it cannot decide, on the first and
// last 64 KiB), the ClamAV scan of the whole body from memory, and the SHA-256 a worker
// computes as the body arrives. bench/scan.sh runs it to compare the latency scanning adds
// to a download with the time the scan itself takes.
//
// Signatures: the shipped set (signatures/clamav), then PC_CLAMAV_DIR (default
// /var/lib/clamav) when it holds database files, as the gateway loads them; libclamav's
// scratch folder where the gateway puts it by default.
// Bodies: pseudo-random bytes whose first 8 bytes change at every iteration, so that
// libclamav's own cache of clean content never answers (every scan is a real one).
//
//   build/release/bench/scan_bench [--benchmark_filter=...] [--benchmark_format=json]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "inspect/engine.h"
#include "inspect/filetype.h"
#include "inspect/verdict_cache.h"
#include "txn/scan.h"

namespace {

namespace fs = std::filesystem;
using namespace pc::inspect;

std::vector<fs::path> signature_dirs() {
  std::vector<fs::path> dirs{fs::path(PC_SOURCE_DIR) / "signatures" / "clamav"};
  const char* env = std::getenv("PC_CLAMAV_DIR");
  fs::path official = env ? env : "/var/lib/clamav";
  std::error_code ec;
  bool has_db = false;
  if (fs::is_directory(official, ec))
    for (const auto& e : fs::directory_iterator(official, ec)) {
      const auto ext = e.path().extension().string();
      if (ext == ".cvd" || ext == ".cld" || ext == ".cud") has_db = true;
    }
  if (has_db) dirs.push_back(official);
  return dirs;
}

// libclamav's scratch folder where the gateway puts it by default (txn::ScratchDir):
// scan_bench's own private folder in /dev/shm when it is writable, else $TMPDIR.
const ClamEngine& engine() {
  static std::unique_ptr<pc::txn::ScratchDir> scratch =
      std::make_unique<pc::txn::ScratchDir>(pc::txn::default_scratch_base());
  static std::shared_ptr<const ClamEngine> e = [] {
    std::string err;
    Limits limits;
    limits.tmpdir = scratch->path();
    auto loaded = ClamEngine::load(signature_dirs(), limits, err);
    if (!loaded) {
      std::fprintf(stderr, "scan_bench: cannot load the signatures: %s\n", err.c_str());
      std::exit(1);
    }
    return loaded;
  }();
  return *e;
}

std::string body(std::size_t n) {
  std::string s(n, '\0');
  std::mt19937_64 rng(42);
  for (std::size_t i = 0; i < n; i += 8) {
    std::uint64_t v = rng();
    std::memcpy(s.data() + i, &v, std::min<std::size_t>(8, n - i));
  }
  return s;
}

void stamp(std::string& s, std::uint64_t i) {
  std::memcpy(s.data(), &i, std::min<std::size_t>(8, s.size()));
}

std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

// The pool's job for a body of state.range(0) bytes: type, then ClamAV.
void BM_ScanJob(benchmark::State& state) {
  const auto& e = engine();
  std::string b = body(static_cast<std::size_t>(state.range(0)));
  std::uint64_t i = 0;
  for (auto _ : state) {
    stamp(b, ++i);
    std::string_view v(b);
    auto head = v.substr(0, kFileTypeHeadBytes);
    auto tail = v.size() > head.size()
                    ? v.substr(v.size() - std::min(kFileTypeHeadBytes, v.size() - head.size()))
                    : std::string_view();
    auto type = detect_file_type(bytes(head), bytes(tail));
    auto verdict = e.scan_buffer(b.data(), b.size());
    benchmark::DoNotOptimize(type);
    if (verdict.kind != Verdict::clean) state.SkipWithError(verdict.name.c_str());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_ScanJob)->Arg(1024)->Arg(64 << 10)->Arg(1 << 20)->Unit(benchmark::kMicrosecond);

void BM_ClamScan(benchmark::State& state) {
  const auto& e = engine();
  std::string b = body(static_cast<std::size_t>(state.range(0)));
  std::uint64_t i = 0;
  for (auto _ : state) {
    stamp(b, ++i);
    auto verdict = e.scan_buffer(b.data(), b.size());
    if (verdict.kind != Verdict::clean) state.SkipWithError(verdict.name.c_str());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_ClamScan)->Arg(1024)->Arg(1 << 20)->Unit(benchmark::kMicrosecond);

// Bodies of the kinds web traffic is made of, `n` bytes long (give or take a line).
enum class Kind { random, text, html, json, script, png };

std::string sample(Kind kind, std::size_t n) {
  std::string s;
  switch (kind) {
    case Kind::random:
      return body(n);
    case Kind::text:
      for (int i = 0; s.size() < n; ++i)
        s += "Line " + std::to_string(i) +
             ": the quick brown fox jumps over the lazy dog again and again.\n";
      break;
    case Kind::html:
      s = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>A page</title>"
          "<link rel=\"stylesheet\" href=\"/site.css\"></head>\n<body>\n";
      for (int i = 0; s.size() < n; ++i)
        s += "<p class=\"para\">Paragraph " + std::to_string(i) +
             " with a <a href=\"/next\">link</a> and some words.</p>\n";
      s += "</body></html>\n";
      break;
    case Kind::json:
      s = "{\"items\": [";
      for (int i = 0; s.size() < n; ++i)
        s += (i ? ", " : "") + std::string("{\"id\": ") + std::to_string(i) +
             ", \"name\": \"item\", \"tags\": [\"a\", \"b\"], \"price\": 1.5}";
      s += "]}\n";
      break;
    case Kind::script:
      s = "(function () {\n  'use strict';\n";
      for (int i = 0; s.size() < n; ++i)
        s += "  var x" + std::to_string(i) + " = document.getElementById('id" + std::to_string(i) +
             "');\n";
      s += "})();\n";
      break;
    case Kind::png:
      s = std::string("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0", 29);
      s += std::string("\x1f\xf3\xff\x61", 4);  // CRC
      s += body(n > s.size() ? n - s.size() : 0);
      break;
  }
  return s;
}

// The true file type of one body (the head only, as for a body up to 64 KiB): the native
// detector, and libmagic when it leaves the decision to it (BM_FileType); libmagic alone, as
// detect_file_type was before the native detector (BM_FileTypeLibmagic).
void BM_FileType(benchmark::State& state, Kind kind, std::size_t n) {
  std::string b = sample(kind, n);
  for (auto _ : state) benchmark::DoNotOptimize(detect_file_type(bytes(b)));
}

void BM_FileTypeLibmagic(benchmark::State& state, Kind kind, std::size_t n) {
  std::string b = sample(kind, n);
  for (auto _ : state) benchmark::DoNotOptimize(detail::libmagic_file_type(bytes(b), {}));
}

#define PC_FILE_TYPE_BENCHMARKS(fn)                                                         \
  BENCHMARK_CAPTURE(fn, random_1k, Kind::random, 1024)->Unit(benchmark::kMicrosecond);      \
  BENCHMARK_CAPTURE(fn, random_64k, Kind::random, 64 << 10)->Unit(benchmark::kMicrosecond); \
  BENCHMARK_CAPTURE(fn, text_1k, Kind::text, 1024)->Unit(benchmark::kMicrosecond);          \
  BENCHMARK_CAPTURE(fn, text_64k, Kind::text, 64 << 10)->Unit(benchmark::kMicrosecond);     \
  BENCHMARK_CAPTURE(fn, html_1k, Kind::html, 1024)->Unit(benchmark::kMicrosecond);          \
  BENCHMARK_CAPTURE(fn, html_64k, Kind::html, 64 << 10)->Unit(benchmark::kMicrosecond);     \
  BENCHMARK_CAPTURE(fn, json_1k, Kind::json, 1024)->Unit(benchmark::kMicrosecond);          \
  BENCHMARK_CAPTURE(fn, json_64k, Kind::json, 64 << 10)->Unit(benchmark::kMicrosecond);     \
  BENCHMARK_CAPTURE(fn, script_1k, Kind::script, 1024)->Unit(benchmark::kMicrosecond);      \
  BENCHMARK_CAPTURE(fn, png_1k, Kind::png, 1024)->Unit(benchmark::kMicrosecond);            \
  BENCHMARK_CAPTURE(fn, png_64k, Kind::png, 64 << 10)->Unit(benchmark::kMicrosecond)
PC_FILE_TYPE_BENCHMARKS(BM_FileType);
PC_FILE_TYPE_BENCHMARKS(BM_FileTypeLibmagic);

// The native detector alone on 64 KiB (what a worker runs when the scan pool is full).
void BM_SniffFileType(benchmark::State& state, Kind kind) {
  std::string b = sample(kind, 64 << 10);
  for (auto _ : state) benchmark::DoNotOptimize(sniff_file_type(bytes(b)));
}
BENCHMARK_CAPTURE(BM_SniffFileType, random_64k, Kind::random)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SniffFileType, text_64k, Kind::text)->Unit(benchmark::kMicrosecond);

void BM_Sha256(benchmark::State& state) {
  std::string b = body(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(Sha256::of(b.data(), b.size()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Sha256)->Arg(1024)->Arg(1 << 20)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
