#include "txn/scan.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "base/log.h"
#include "base/strings.h"
#include "txn/snapshot.h"

namespace pc::txn {

using inspect::Verdict;

namespace {

std::atomic<std::uint64_t> g_generation{0};

// The ClamAV directories of a configuration: the shipped set, then the administrator's when
// it exists (an absent official directory means "no offline update yet", not an error).
std::vector<std::filesystem::path> clam_dirs(const config::Scan& s) {
  std::vector<std::filesystem::path> dirs;
  if (!s.shipped_signatures.empty()) dirs.push_back(s.shipped_signatures);
  std::error_code ec;
  if (!s.clamav_dir.empty() && std::filesystem::is_directory(s.clamav_dir, ec))
    dirs.push_back(s.clamav_dir);
  return dirs;
}

inspect::Limits clam_limits(const config::Scan& s) {
  inspect::Limits l;
  l.max_recursion = s.max_recursion;
  l.max_files = s.max_files;
  l.max_scan_size = s.max_expanded;
  l.max_file_size = std::max<std::uint64_t>(s.max_expanded, s.max_scan_size);
  return l;
}

bool is_executable_or_archive(std::string_view type) {
  for (std::string_view t : {"exe", "zip", "rar", "7z", "gzip", "bzip2", "xz", "tar", "cab", "msi"})
    if (type == t) return true;
  return false;
}

// The failure mode: the gateway could not scan (no engine, queue full, engine error).
void apply_failure(const config::Scan& s, ScanService& svc, ScanOutcome& o, std::string why) {
  bool block = s.on_failure == config::FailMode::closed ||
               (s.on_failure == config::FailMode::by_type && is_executable_or_archive(o.file_type));
  o.block = block;
  o.verdict = "error";
  o.name = why;
  o.reason =
      (block ? "not scanned, blocked (fail-closed): " : "not scanned, passed (fail-open): ") + why;
  (block ? svc.failed_closed : svc.failed_open).fetch_add(1, std::memory_order_relaxed);
}

struct JobResult {
  Verdict verdict;
  std::string file_type;
};

}  // namespace

// ---- engines ----

std::shared_ptr<const Engines> load_engines(const config::Scan& s) {
  auto e = std::make_shared<Engines>();
  e->generation = ++g_generation;
  if (!s.enabled) return e;
  std::string err;
  e->clam = inspect::ClamEngine::load(clam_dirs(s), clam_limits(s), err);
  if (!e->clam) e->error = "ClamAV: " + err;
  if (!s.yara_dir.empty()) {
    std::string yerr;
    e->yara = inspect::YaraRules::load(s.yara_dir, yerr);
    if (!e->yara) e->error += (e->error.empty() ? "" : "; ") + std::string("YARA: ") + yerr;
  }
  e->version = e->clam ? e->clam->version().text() : "ClamAV not loaded";
  if (e->yara) e->version += "; YARA " + std::to_string(e->yara->rule_count()) + " rules";
  return e;
}

bool engines_stale(const Engines& e, const config::Scan& s) {
  if (!s.enabled) return e.clam != nullptr || e.yara != nullptr;
  if (!e.clam) return true;  // try again: the directory may have been fixed
  if (e.clam->dirs() != clam_dirs(s)) return true;
  const auto& l = e.clam->limits();
  const auto want = clam_limits(s);
  if (l.max_recursion != want.max_recursion || l.max_files != want.max_files ||
      l.max_scan_size != want.max_scan_size || l.max_file_size != want.max_file_size)
    return true;
  if ((e.yara != nullptr) != !s.yara_dir.empty()) return true;
  return e.clam->stale();
}

// ---- spool ----

Spool::Spool(ScanService& svc, std::size_t memory_limit, std::uint64_t total_limit)
    : svc_(svc), memory_limit_(memory_limit), total_limit_(total_limit) {}

Spool::~Spool() {
  if (fd_ >= 0) ::close(fd_);
  if (counted_ > 0) svc_.spooled.fetch_sub(counted_, std::memory_order_relaxed);
}

bool Spool::append(std::string_view data) {
  if (data.empty()) return true;
  if (!intact_) return false;
  const bool within =
      svc_.spooled.fetch_add(data.size(), std::memory_order_relaxed) + data.size() <= total_limit_;
  counted_ += data.size();
  sha_.update(data);
  if (head_.size() < inspect::kFileTypeHeadBytes)
    head_.append(data.substr(0, inspect::kFileTypeHeadBytes - head_.size()));
  if (fd_ < 0 && mem_.size() + data.size() <= memory_limit_) {
    mem_.append(data);
    size_ += data.size();
    return within;
  }
  auto write_all = [this](std::string_view d) {
    while (!d.empty()) {
      ssize_t w = ::write(fd_, d.data(), d.size());
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      d.remove_prefix(static_cast<std::size_t>(w));
    }
    return true;
  };
  if (fd_ < 0) {
    fd_ = ::memfd_create("portcullis-spool", MFD_CLOEXEC);
    if (fd_ < 0 || !write_all(mem_)) {
      intact_ = false;
      return false;
    }
    std::string().swap(mem_);
  }
  if (!write_all(data)) {
    intact_ = false;
    return false;
  }
  size_ += data.size();
  return within;
}

std::string_view Spool::read(std::uint64_t offset, std::size_t n, std::string& scratch) const {
  if (offset >= size_) return {};
  n = static_cast<std::size_t>(std::min<std::uint64_t>(n, size_ - offset));
  if (fd_ < 0) return std::string_view(mem_).substr(static_cast<std::size_t>(offset), n);
  scratch.resize(n);
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd_, scratch.data() + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
  }
  scratch.resize(got);
  return scratch;
}

inspect::Digest Spool::digest() {
  return sha_.final();
}

// ---- scanning ----

bool is_endless_stream(std::string_view content_type) {
  auto t = base::to_lower(base::trim(content_type.substr(0, content_type.find(';'))));
  return t.starts_with("audio/") || t.starts_with("video/") ||
         t == "application/vnd.apple.mpegurl" || t == "application/x-mpegurl" ||
         t == "text/event-stream" || t == "multipart/x-mixed-replace";
}

ScanOutcome too_large_outcome(const config::Scan& s, ScanService& svc) {
  ScanOutcome o;
  svc.too_large.fetch_add(1, std::memory_order_relaxed);
  o.block = s.block_too_large;
  o.verdict = "not scanned";
  o.name = "larger than scan.max_scan_size";
  o.reason = std::string(o.block ? "blocked" : "passed unscanned") + ": body larger than " +
             std::to_string(s.max_scan_size) + " bytes (scan.max_scan_size)";
  return o;
}

ScanOutcome failure_outcome(const config::Scan& s, ScanService& svc, std::string_view head,
                            std::string why) {
  ScanOutcome o;
  auto bytes = std::as_bytes(std::span(head.data(), head.size()));
  o.file_type = std::string(inspect::detect_file_type(bytes).name);
  apply_failure(s, svc, o, std::move(why));
  return o;
}

net::asio::awaitable<ScanOutcome> scan_spool(const Snapshot& snap, ScanService& svc, Spool& spool) {
  const auto& s = snap.config->scan;
  ScanOutcome o;
  auto digest = spool.digest();
  o.sha256 = inspect::Sha256::hex(digest);
  svc.scans.fetch_add(1, std::memory_order_relaxed);
  const auto engines = snap.engines;
  if (!engines || !engines->clam) {
    auto head = std::as_bytes(std::span(spool.head().data(), spool.head().size()));
    o.file_type = std::string(inspect::detect_file_type(head).name);
    apply_failure(s, svc, o, engines && !engines->error.empty() ? engines->error : "no engine");
    co_return o;
  }
  std::optional<JobResult> result;
  if (auto hit = svc.cache.find(digest, engines->generation)) {
    // The cache keeps verdicts only; the type is cheap to find again for the log and policy.
    auto head = std::as_bytes(std::span(spool.head().data(), spool.head().size()));
    result = JobResult{*hit, std::string(inspect::detect_file_type(head).name)};
    o.cached = true;
  } else {
    // The job reads the spool while this coroutine waits: it stays alive and unchanged.
    const Spool* sp = &spool;
    auto job = [engines, sp]() {
      JobResult r;
      auto head = std::as_bytes(std::span(sp->head().data(), sp->head().size()));
      r.file_type = std::string(inspect::detect_file_type(head).name);
      r.verdict = sp->in_memory() ? engines->clam->scan_buffer(sp->memory().data(), sp->size())
                                  : engines->clam->scan_fd(sp->fd());
      if (r.verdict.kind == Verdict::clean && engines->yara) {
        if (sp->in_memory()) {
          r.verdict = engines->yara->scan(sp->memory().data(), sp->size());
        } else {
          void* m = ::mmap(nullptr, sp->size(), PROT_READ, MAP_PRIVATE, sp->fd(), 0);
          if (m == MAP_FAILED) {
            r.verdict = {Verdict::error, "cannot map the spool for YARA"};
          } else {
            r.verdict = engines->yara->scan(m, sp->size());
            ::munmap(m, sp->size());
          }
        }
      }
      return r;
    };
    try {
      result = co_await svc.offload.run(job);
    } catch (const std::exception& e) {
      result = JobResult{{Verdict::error, e.what()}, "unknown"};
    }
    if (!result) {
      auto head = std::as_bytes(std::span(spool.head().data(), spool.head().size()));
      o.file_type = std::string(inspect::detect_file_type(head).name);
      apply_failure(s, svc, o, "scan queue full");
      co_return o;
    }
    svc.cache.insert(digest, engines->generation, result->verdict);
  }
  o.file_type = result->file_type;
  const auto& v = result->verdict;
  o.verdict = std::string(inspect::kind_name(v.kind));
  o.name = v.name;
  switch (v.kind) {
    case Verdict::clean:
      break;
    case Verdict::infected:
      svc.infected.fetch_add(1, std::memory_order_relaxed);
      o.block = true;
      o.threat = true;
      o.reason = "threat found: " + v.name;
      break;
    case Verdict::unscannable:
      svc.unscannable.fetch_add(1, std::memory_order_relaxed);
      o.block = s.block_unscannable;
      o.reason = std::string(o.block ? "blocked" : "passed") + " unscannable content: " + v.name;
      break;
    case Verdict::error:
      apply_failure(s, svc, o, "scan error: " + v.name);
      break;
  }
  co_return o;
}

}  // namespace pc::txn
