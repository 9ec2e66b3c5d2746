// ClamAV: one compiled engine shared, read-only, by every thread that scans.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "inspect/verdict.h"

struct cl_engine;

namespace pc::inspect {

// Archive and size limits. Beyond any of them the verdict is unscannable (the engine reports
// a "Heuristics.Limits.Exceeded.*" name), never clean.
struct Limits {
  std::uint32_t max_recursion = 10;            // archive layers
  std::uint32_t max_files = 50'000;            // files inside one scanned object
  std::uint64_t max_scan_size = 200ull << 20;  // bytes expanded, in total
  std::uint64_t max_file_size = 200ull << 20;  // bytes of one file (outer or inner)
  std::uint32_t max_scan_time_ms = 120'000;    // libclamav's own per-scan time limit
  std::filesystem::path tmpdir;                // libclamav's scratch files; empty: $TMPDIR
};

// One signature database file an engine was loaded from.
struct Database {
  std::filesystem::path file;
  unsigned version = 0;     // .cvd/.cld/.cud header version (0: a plain signature file)
  unsigned signatures = 0;  // from the header (0: a plain signature file)
  std::time_t built = 0;    // header build time (0: a plain signature file)
};

// What a loaded engine is made of, for the ISTag, the health endpoint and the log.
struct EngineVersion {
  std::string libclamav;            // "1.4.6"
  unsigned signatures = 0;          // signatures loaded, all directories together
  unsigned db_version = 0;          // newest .cvd/.cld/.cud version loaded (0: none, shipped only)
  std::time_t db_time = 0;          // build time of that database (0: none)
  std::string fingerprint;          // 16 hex digits over every loaded file's name, size and mtime
  std::uint64_t generation = 0;     // process-unique, increases with every successful load
  std::vector<Database> databases;  // every database file loaded, in load order

  // "ClamAV 1.4.6/27345/9012345 sigs/3f2a..." (db_version 0 when only the shipped set).
  std::string text() const;
};

class ClamEngine {
 public:
  // Loads every signature database file of each directory, in order (typically the shipped
  // set, then the administrator's directory where an offline update drops .cvd/.cld/.cud
  // files), and compiles the engine. A directory without database files adds nothing; a
  // directory that cannot be read is an error. Returns null and sets `error` on failure.
  // Slow (seconds with the official databases, and hundreds of MB): call it off the data
  // plane. The first call initialises libclamav for the process and routes its messages to
  // the diagnostic log at debug level.
  static std::shared_ptr<const ClamEngine> load(const std::vector<std::filesystem::path>& dirs,
                                                const Limits& limits, std::string& error);

  ~ClamEngine();
  ClamEngine(const ClamEngine&) = delete;
  ClamEngine& operator=(const ClamEngine&) = delete;

  // Scans an open file (a spooled body) from its start; the descriptor is not closed.
  Verdict scan_fd(int fd) const;
  // Scans a memory buffer without copying it to disk (inner archive members may still be
  // written to the scratch directory by libclamav).
  Verdict scan_buffer(const void* data, std::size_t size) const;
  // Opens and scans a file.
  Verdict scan_file(const std::filesystem::path& path) const;

  const EngineVersion& version() const { return version_; }
  const Limits& limits() const { return limits_; }
  const std::vector<std::filesystem::path>& dirs() const { return dirs_; }

  // True when the database files of the directories differ (added, removed, resized or
  // touched) from those this engine was loaded from: time to load a new engine. Reads the
  // directories: call it off the data plane.
  bool stale() const;

  // The fingerprint `stale` compares; empty when a directory cannot be read.
  static std::string fingerprint(const std::vector<std::filesystem::path>& dirs);

 private:
  // One scan call through checked_scan; when it fails because the scratch folder was removed
  // under the gateway (a cleanup of /dev/shm or /tmp), the folder is made again (0700) and
  // the scan runs once more.
  template <class F>
  Verdict scan_restoring_scratch(F&& scan) const;
  ClamEngine() = default;

  cl_engine* engine_ = nullptr;
  Limits limits_;
  std::vector<std::filesystem::path> dirs_;
  EngineVersion version_;
};

}  // namespace pc::inspect
