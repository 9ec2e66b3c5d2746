#include "txn/scan.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>

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

// The true file type of a spooled body from its head, and its last bytes when there are more
// (a large OOXML document's zip directory is at its end). May call libmagic: offload pool
// only, never a worker.
std::string detect_type(const Spool& sp) {
  auto head = std::as_bytes(std::span(sp.head().data(), sp.head().size()));
  std::string scratch;
  std::string_view tail;
  if (sp.size() > sp.head().size()) {
    const std::uint64_t n =
        std::min<std::uint64_t>(inspect::kFileTypeHeadBytes, sp.size() - sp.head().size());
    tail = sp.read(sp.size() - n, static_cast<std::size_t>(n), scratch);
  }
  return std::string(
      inspect::detect_file_type(head, std::as_bytes(std::span(tail.data(), tail.size()))).name);
}

// A spool's body as one span of memory: its buffer, or its memory file mapped (read-only,
// pages faulted in at once). Not ok() when the file cannot be mapped.
class SpoolView {
 public:
  explicit SpoolView(const Spool& sp) {
    if (sp.in_memory()) {
      data_ = sp.memory().data();
      size_ = sp.size();
    } else if (sp.size() > 0) {
      void* m = ::mmap(nullptr, sp.size(), PROT_READ, MAP_PRIVATE | MAP_POPULATE, sp.fd(), 0);
      if (m == MAP_FAILED) {
        ok_ = false;
      } else {
        mapped_ = m;
        data_ = m;
        size_ = sp.size();
      }
    }
  }
  ~SpoolView() {
    if (mapped_) ::munmap(mapped_, size_);
  }
  SpoolView(const SpoolView&) = delete;
  SpoolView& operator=(const SpoolView&) = delete;
  bool ok() const { return ok_; }
  const void* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  bool ok_ = true;
  const void* data_ = nullptr;
  std::size_t size_ = 0;
  void* mapped_ = nullptr;
};

// The scan itself (offload pool): the true file type, ClamAV, then YARA when ClamAV found
// nothing. The spool stays alive and unchanged while the caller waits. Both engines read the
// body in memory: a memory file is mapped rather than handed to libclamav as a descriptor,
// which it would copy page by page (a fifth more time for a 1 MiB body).
inspect::ScanFacts scan_job(const Engines& e, const Spool& sp) {
  inspect::ScanFacts r;
  r.file_type = detect_type(sp);
  const SpoolView body(sp);
  r.verdict = body.ok() ? e.clam->scan_buffer(body.data(), body.size()) : e.clam->scan_fd(sp.fd());
  r.engine = e.clam_name;
  if (r.verdict.kind != Verdict::clean || !e.yara) return r;
  if (!body.ok()) {
    r.verdict = {Verdict::error, "cannot map the spool for YARA"};
    return r;
  }
  r.verdict = e.yara->scan(body.data(), body.size());
  r.engine = r.verdict.kind == Verdict::clean ? e.clam_name + " + " + e.yara_name : e.yara_name;
  return r;
}

// On the worker (the pool could not take the job): the first 4 KiB only, which every
// signature the native detector knows fits in, so that an overloaded worker pays microseconds.
std::string_view sniff(const Spool& sp) {
  const auto head = sp.head();
  return inspect::sniff_file_type(
             std::as_bytes(std::span(head.data(), std::min<std::size_t>(head.size(), 4096))))
      .name;
}

// The true file type of a body that is not scanned, for the failure mode and the record:
// detected on the offload pool, or by the native detector alone from its first bytes when the
// pool is full.
net::asio::awaitable<std::string> type_off_worker(ScanService& svc, const Spool& spool) {
  const Spool* sp = &spool;
  auto job = [sp]() { return detect_type(*sp); };
  std::optional<std::string> type;
  try {
    type = co_await svc.offload.run(job);
  } catch (const std::exception&) {
    type.reset();
  }
  if (!type) type = std::string(sniff(spool));
  co_return std::move(*type);
}

// ---- file names ----

constexpr std::size_t kMaxFileName = 255;
constexpr std::size_t kMaxDispositionBytes = 8192;

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    int hi = -1, lo = -1;
    if (s[i] == '%' && i + 2 < s.size()) {
      hi = hex_digit(s[i + 1]);
      lo = hex_digit(s[i + 2]);
    }
    if (hi >= 0 && lo >= 0) {
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// The last path component, made safe for a log line: control characters and quotes become
// '_', at most kMaxFileName bytes (not splitting a UTF-8 sequence); "", "." and ".." give "".
std::string clean_file_name(std::string_view name) {
  auto slash = name.find_last_of("/\\");
  if (slash != std::string_view::npos) name.remove_prefix(slash + 1);
  name = base::trim(name);
  if (name == "." || name == "..") return {};
  std::string out(name.substr(0, kMaxFileName + 4));
  for (auto& c : out) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '"') c = '_';
  }
  if (out.size() > kMaxFileName) {
    std::size_t n = kMaxFileName;
    while (n > 0 && (static_cast<unsigned char>(out[n]) & 0xC0) == 0x80) --n;
    out.resize(n);
  }
  return out;
}

// An ext-value (RFC 8187): charset'language'percent-encoded. UTF-8 is kept, ISO-8859-1 is
// converted to UTF-8; another charset gives "".
std::string decode_ext_value(std::string_view v) {
  auto q1 = v.find('\'');
  if (q1 == std::string_view::npos) return {};
  auto q2 = v.find('\'', q1 + 1);
  if (q2 == std::string_view::npos) return {};
  const auto charset = v.substr(0, q1);
  std::string raw = percent_decode(v.substr(q2 + 1));
  if (base::iequals(charset, "utf-8")) return raw;
  if (!base::iequals(charset, "iso-8859-1")) return {};
  std::string out;
  for (char c : raw) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x80) {
      out.push_back(c);
    } else {
      out.push_back(static_cast<char>(0xC0 | (u >> 6)));
      out.push_back(static_cast<char>(0x80 | (u & 0x3F)));
    }
  }
  return out;
}

// The file name of a Content-Disposition value (filename* before filename); "" when none.
std::string disposition_file_name(std::string_view v) {
  v = v.substr(0, kMaxDispositionBytes);
  std::string plain, ext;
  bool have_plain = false, have_ext = false;
  auto semi = v.find(';');  // after the disposition type
  std::size_t i = semi == std::string_view::npos ? v.size() : semi + 1;
  while (i < v.size()) {
    while (i < v.size() && (v[i] == ' ' || v[i] == '\t' || v[i] == ';')) ++i;
    const std::size_t name_at = i;
    while (i < v.size() && v[i] != '=' && v[i] != ';') ++i;
    const auto pname = base::trim(v.substr(name_at, i - name_at));
    if (i >= v.size() || v[i] != '=') continue;  // a parameter without a value
    ++i;
    while (i < v.size() && (v[i] == ' ' || v[i] == '\t')) ++i;
    std::string value;
    if (i < v.size() && v[i] == '"') {
      // A backslash escapes a quote or a backslash only: Windows paths keep theirs.
      for (++i; i < v.size() && v[i] != '"'; ++i) {
        if (v[i] == '\\' && i + 1 < v.size() && (v[i + 1] == '"' || v[i + 1] == '\\')) ++i;
        value.push_back(v[i]);
      }
      if (i < v.size()) ++i;  // the closing quote
      while (i < v.size() && v[i] != ';') ++i;
    } else {
      const std::size_t at = i;
      while (i < v.size() && v[i] != ';') ++i;
      value = std::string(base::trim(v.substr(at, i - at)));
    }
    if (!have_ext && base::iequals(pname, "filename*")) {
      ext = decode_ext_value(value);
      have_ext = !ext.empty();
    } else if (!have_plain && base::iequals(pname, "filename")) {
      plain = std::move(value);
      have_plain = true;
    }
  }
  return clean_file_name(have_ext ? ext : plain);
}

// The filename of the first part of a multipart body that names one, among the part header
// lines in `head`.
std::string multipart_file_name(std::string_view head) {
  constexpr std::string_view kField = "content-disposition:";
  while (!head.empty()) {
    auto nl = head.find('\n');
    auto line = head.substr(0, nl);
    head = nl == std::string_view::npos ? std::string_view() : head.substr(nl + 1);
    if (line.size() > kField.size() && base::iequals(line.substr(0, kField.size()), kField)) {
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      auto name = disposition_file_name(line.substr(kField.size()));
      if (!name.empty()) return name;
    }
  }
  return {};
}

// The last segment of a URL's path, percent-decoded.
std::string url_file_name(std::string_view url) {
  if (auto p = url.find("://"); p != std::string_view::npos) {
    url.remove_prefix(p + 3);
    auto path = url.find('/');
    url = path == std::string_view::npos ? std::string_view() : url.substr(path);
  }
  url = url.substr(0, url.find_first_of("?#"));
  auto slash = url.rfind('/');
  if (slash != std::string_view::npos) url.remove_prefix(slash + 1);
  return clean_file_name(percent_decode(url));
}

}  // namespace

// ---- engines ----

std::shared_ptr<const Engines> load_engines(const config::Scan& s,
                                            const std::filesystem::path& scratch) {
  auto e = std::make_shared<Engines>();
  e->generation = ++g_generation;
  if (!s.enabled) return e;
  std::string err;
  auto limits = clam_limits(s);
  limits.tmpdir = scratch;
  e->clam = inspect::ClamEngine::load(clam_dirs(s), limits, err);
  if (!e->clam) e->error = "ClamAV: " + err;
  if (!s.yara_dir.empty()) {
    std::string yerr;
    e->yara = inspect::YaraRules::load(s.yara_dir, yerr);
    if (!e->yara) e->error += (e->error.empty() ? "" : "; ") + std::string("YARA: ") + yerr;
  }
  e->version = e->clam ? e->clam->version().text() : "ClamAV not loaded";
  if (e->clam) {
    const auto& v = e->clam->version();
    e->clam_name = "ClamAV " + v.libclamav + "/" + std::to_string(v.db_version);
  }
  if (e->yara) {
    e->yara_name = "YARA " + std::to_string(e->yara->rule_count()) + " rules";
    e->version += "; " + e->yara_name;
  }
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

// ---- scratch folder ----

namespace {

constexpr std::string_view kScratchPrefix = "portcullis-scan-";

// Removes base/portcullis-scan-<pid>-* folders whose process no longer runs.
void remove_orphans(const std::filesystem::path& base) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (fs::directory_iterator it(base, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.starts_with(kScratchPrefix)) continue;
    const std::string rest = name.substr(kScratchPrefix.size());
    const auto dash = rest.find('-');
    if (dash == std::string::npos || dash == 0) continue;
    const std::string pid = rest.substr(0, dash);
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code e2;
    if (fs::exists(fs::path("/proc") / pid, e2) || e2) continue;
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid())
      continue;
    fs::remove_all(it->path(), e2);
    if (!e2)
      log::info("removed the scratch folder {} of a gateway that no longer runs",
                it->path().string());
  }
}

}  // namespace

ScratchDir::ScratchDir(const std::filesystem::path& base) {
  if (base.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(base, ec);
  remove_orphans(base);
  std::string tmpl =
      (base / (std::string(kScratchPrefix) + std::to_string(::getpid()) + "-XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) {  // mode 0700
    error_ = "cannot make a scratch folder in " + base.string() + ": " + std::strerror(errno);
    return;
  }
  path_ = tmpl;
}

ScratchDir::~ScratchDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::filesystem::path default_scratch_base() {
  std::error_code ec;
  if (std::filesystem::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK | X_OK) == 0)
    return "/dev/shm";
  auto tmp = std::filesystem::temp_directory_path(ec);
  return ec ? std::filesystem::path("/tmp") : tmp;
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

ScanOutcome too_large_outcome(const config::Scan& s, ScanService& svc, std::uint64_t size) {
  ScanOutcome o;
  svc.too_large.fetch_add(1, std::memory_order_relaxed);
  o.block = s.block_too_large;
  o.verdict = "not scanned";
  o.name = "larger than scan.max_scan_size";
  o.size = size;
  o.reason = std::string(o.block ? "blocked" : "passed unscanned") + ": body larger than " +
             std::to_string(s.max_scan_size) + " bytes (scan.max_scan_size)";
  return o;
}

net::asio::awaitable<ScanOutcome> failure_outcome(const config::Scan& s, ScanService& svc,
                                                  const Spool& spool, std::string_view why) {
  ScanOutcome o;
  o.size = spool.size();
  auto type = co_await type_off_worker(svc, spool);
  o.file_type = std::move(type);
  apply_failure(s, svc, o, std::string(why));
  co_return o;
}

net::asio::awaitable<ScanOutcome> scan_spool(const Snapshot& snap, ScanService& svc, Spool& spool) {
  const auto& s = snap.config->scan;
  ScanOutcome o;
  auto digest = spool.digest();
  o.sha256 = inspect::Sha256::hex(digest);
  o.size = spool.size();
  svc.scans.fetch_add(1, std::memory_order_relaxed);
  const auto engines = snap.engines;
  if (!engines || !engines->clam) {
    auto type = co_await type_off_worker(svc, spool);
    o.file_type = std::move(type);
    apply_failure(s, svc, o, engines && !engines->error.empty() ? engines->error : "no engine");
    co_return o;
  }
  // A hit has the verdict, the true file type and the engine: nothing runs on this thread.
  std::optional<inspect::ScanFacts> facts = svc.cache.find(digest, engines->generation);
  if (facts) {
    o.cached = true;
  } else {
    const Spool* sp = &spool;
    auto job = [engines, sp]() { return scan_job(*engines, *sp); };
    try {
      facts = co_await svc.offload.run(job);
    } catch (const std::exception& e) {
      facts = inspect::ScanFacts{{Verdict::error, e.what()}, std::string(sniff(spool)), {}};
    }
    if (!facts) {
      // The pool is full: the failure mode decides, by the type the first bytes show.
      o.file_type = std::string(sniff(spool));
      apply_failure(s, svc, o, "scan queue full");
      co_return o;
    }
    svc.cache.insert(digest, engines->generation, *facts);
  }
  o.file_type = std::move(facts->file_type);
  o.engine = std::move(facts->engine);
  const auto& v = facts->verdict;
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

std::string body_file_name(std::string_view content_disposition, std::string_view content_type,
                           std::string_view body_head, std::string_view url) {
  if (auto name = disposition_file_name(content_disposition); !name.empty()) return name;
  auto media = base::to_lower(base::trim(content_type.substr(0, content_type.find(';'))));
  if (media.starts_with("multipart/")) {
    if (auto name = multipart_file_name(body_head); !name.empty()) return name;
  }
  return url_file_name(url);
}

std::string body_file_name(const wire::Head& head, std::string_view body_head,
                           std::string_view url) {
  const auto* cd = head.find("Content-Disposition");
  const auto* ct = head.find("Content-Type");
  return body_file_name(cd ? cd->value : std::string_view(), ct ? ct->value : std::string_view(),
                        body_head, url);
}

}  // namespace pc::txn
