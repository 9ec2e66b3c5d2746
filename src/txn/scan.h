// Malware scanning as the front ends use it: the engines a snapshot scans with, the
// process-wide scan service (offload pool, verdict cache, spool accounting, counters), the
// spool a body is collected in, and one awaitable scan that turns an engine verdict into
// pass or block under the configured limits and failure mode (docs/scanning.md).
#pragma once

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.h"
#include "inspect/engine.h"
#include "inspect/filetype.h"
#include "inspect/offload.h"
#include "inspect/verdict_cache.h"
#include "inspect/yara.h"
#include "net/io.h"
#include "wire/http.h"

namespace pc::txn {

struct Snapshot;

// The engines of one load: ClamAV (null when it could not be loaded: `error` says why, and
// the failure mode applies to every scan) and the organisation's YARA rules (null: none).
struct Engines {
  std::shared_ptr<const inspect::ClamEngine> clam;
  std::shared_ptr<const inspect::YaraRules> yara;
  std::string error;
  std::string version;           // "ClamAV 1.4.6/0/3 sigs/...; YARA 2 rules": log, health
  std::uint64_t generation = 0;  // changes with every load: verdict cache key, ISTag
  // The engines as a verdict names them: "ClamAV 1.4.6/27345" (libclamav, then the newest
  // official database version; 0 with the shipped set alone) and "YARA 12 rules".
  std::string clam_name, yara_name;
};

// Loads the engines for `scan` (the shipped set, then clamav_dir when it exists; yara_dir
// when set), libclamav writing its scratch files under `scratch` (empty: $TMPDIR). Slow: the
// control thread calls it, never a worker.
std::shared_ptr<const Engines> load_engines(const config::Scan& scan,
                                            const std::filesystem::path& scratch = {});
// True when `e` was not loaded for these settings, or its signature or rule files changed.
// Reads directories: control thread.
bool engines_stale(const Engines& e, const config::Scan& scan);

// The process's private folder for libclamav's scratch files (every scan makes and removes a
// folder there; archive members are extracted into it): "portcullis-scan-<pid>-XXXXXX", mode
// 0700, under `base`, removed with the object. Folders of the same pattern whose process is
// gone (a crash) are removed when a new one is made. Empty base: none (path() is empty).
class ScratchDir {
 public:
  explicit ScratchDir(const std::filesystem::path& base);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  const std::string& error() const { return error_; }  // why path() is empty

 private:
  std::filesystem::path path_;
  std::string error_;
};

// Where the scratch folder goes when scan.scratch_dir is not set: /dev/shm (memory: making
// and removing a folder there costs a few microseconds, on a disk file system tens) when it
// is a writable folder, else the system's temporary folder.
std::filesystem::path default_scratch_base();

// Process-wide scanning state shared by every worker.
class ScanService {
 public:
  ScanService(unsigned threads, std::size_t queue, std::size_t cache_entries,
              const std::filesystem::path& scratch_base = {})
      : offload(threads, queue), cache(cache_entries), scratch(scratch_base) {}
  inspect::Offload offload;
  inspect::VerdictCache cache;
  ScratchDir scratch;
  std::atomic<std::uint64_t> spooled{0};  // bytes held by live spools
  std::atomic<std::uint64_t> scans{0}, infected{0}, unscannable{0}, failed_open{0},
      failed_closed{0}, too_large{0};
};

// A body collected for a scan: in memory up to `memory_limit` bytes, then in an anonymous
// memory file (memfd: no disk I/O on the worker). Every spool counts against the service's
// spool limit. Computes the SHA-256 as bytes arrive.
class Spool {
 public:
  Spool(ScanService& svc, std::size_t memory_limit, std::uint64_t total_limit);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // False when the spool limit is reached (the data is kept all the same: stop collecting and
  // apply the failure mode) or the memory file cannot be written (then intact() is false and
  // the body cannot be delivered from the spool).
  bool append(std::string_view data);
  bool intact() const { return intact_; }
  std::uint64_t size() const { return size_; }
  bool in_memory() const { return fd_ < 0; }
  std::string_view memory() const { return mem_; }
  int fd() const { return fd_; }
  // Up to n bytes from `offset`: a view of memory, or read into `scratch` from the file.
  std::string_view read(std::uint64_t offset, std::size_t n, std::string& scratch) const;
  // The first bytes of the body (up to 64 KiB) for the true file type.
  std::string_view head() const { return head_; }
  inspect::Digest digest();  // once, when the body is complete

 private:
  ScanService& svc_;
  std::size_t memory_limit_;
  std::uint64_t total_limit_;
  std::string mem_;
  std::string head_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::uint64_t counted_ = 0;
  bool intact_ = true;
  inspect::Sha256 sha_;
};

// What a scan decided.
struct ScanOutcome {
  bool block = false;
  bool threat = false;     // a threat was found (the threat page, not a policy page)
  std::string verdict;     // clean | infected | unscannable | error | not scanned
  std::string name;        // threat name, or why not clean
  std::string file_type;   // true file type ("exe", "zip", ... "unknown"); empty: not looked at
  std::string sha256;      // hex; empty when not computed
  std::string engine;      // the engine(s) that decided ("ClamAV 1.4.6/27345", "YARA 2 rules")
  std::uint64_t size = 0;  // bytes scanned; not scanned: the body's size as far as known
  bool cached = false;     // the verdict came from the cache
  std::string reason;      // for the access log
};

// Whether a body of this size is scanned at all; when not, too_large applies.
inline bool fits_scan(const config::Scan& s, std::uint64_t size) {
  return size <= s.max_scan_size;
}
// A response that may never end (live media, server-sent events) when it has no length: it
// is not spooled; the too_large setting applies at once. `content_type` as received.
bool is_endless_stream(std::string_view content_type);

// The outcome for a body not scanned because it is larger than max_scan_size; `size`: its
// length as far as known (announced, or collected so far).
ScanOutcome too_large_outcome(const config::Scan& s, ScanService& svc, std::uint64_t size);

// The outcome when the gateway could not scan (here: the spool limit reached): the failure
// mode decides, for by_type by the true file type of what the spool holds (found on the
// offload pool; sniff_file_type when the pool is full). `why` must outlive the call.
net::asio::awaitable<ScanOutcome> failure_outcome(const config::Scan& s, ScanService& svc,
                                                  const Spool& spool, std::string_view why);

// Scans a complete spool with the snapshot's engines on the offload pool, true file type
// included, or answers from the verdict cache (which keeps the type and the engine with the
// verdict: a hit does no work on the worker); applies unscannable and the failure mode.
// libmagic never runs on the calling (worker) thread.
net::asio::awaitable<ScanOutcome> scan_spool(const Snapshot& snap, ScanService& svc, Spool& spool);

// The name of the file a body carries, for the log and security events: the filename of the
// message's Content-Disposition (filename* first, RFC 6266 / RFC 8187), else, for a multipart
// body, the first part's filename found in `body_head` (its first bytes), else the last
// segment of the URL's path (percent-decoded). Directory parts are dropped, control
// characters and quotes become '_', at most 255 bytes; empty when there is no name.
std::string body_file_name(std::string_view content_disposition, std::string_view content_type,
                           std::string_view body_head, std::string_view url);
// The same for a body whose message head (request or response) is `head`.
std::string body_file_name(const wire::Head& head, std::string_view body_head,
                           std::string_view url);

}  // namespace pc::txn
