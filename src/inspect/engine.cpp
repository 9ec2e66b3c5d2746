#include "inspect/engine.h"

#include <clamav.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <system_error>

#include "base/log.h"
#include "inspect/verdict_cache.h"

namespace pc::inspect {
namespace {

namespace fs = std::filesystem;

// Error messages of libclamav while the current thread loads databases (cl_load reports only
// a code; the reason, with the file and line, goes to the message callback).
thread_local std::string* tl_load_messages = nullptr;
// The same while the current thread scans: libclamav reports some failures only there and
// still answers "clean" (a scratch folder it cannot make: nothing is scanned at all).
thread_local std::string* tl_scan_errors = nullptr;

void on_clamav_message(enum cl_msg severity, const char* fullmsg, const char* msg, void*) {
  std::string_view text = msg ? msg : (fullmsg ? fullmsg : "");
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  if (severity == CL_MSG_ERROR) {
    for (std::string* out : {tl_load_messages, tl_scan_errors}) {
      if (!out || out->size() >= 4096) continue;
      if (!out->empty()) out->append("; ");
      out->append(text);
    }
  }
  log::debug("clamav: {}", text);
}

std::once_flag g_init_once;
cl_error_t g_init_result = CL_SUCCESS;

bool init_clamav(std::string& error) {
  std::call_once(g_init_once, [] {
    cl_set_clcb_msg(on_clamav_message);
    g_init_result = cl_init(CL_INIT_DEFAULT);
  });
  if (g_init_result != CL_SUCCESS) {
    error = fmt::format("cl_init failed: {}", cl_strerror(g_init_result));
    return false;
  }
  return true;
}

std::atomic<std::uint64_t> g_generation{0};

// Extensions libclamav loads from a database directory (CLI_DBEXT in libclamav 1.x).
bool is_db_file(const fs::path& p) {
  static constexpr std::string_view exts[] = {
      ".db",  ".hdb",  ".hdu",  ".hsb",  ".hsu",  ".mdb", ".mdu", ".msb", ".msu", ".ndb",
      ".ndu", ".ldb",  ".ldu",  ".sdb",  ".zmd",  ".rmd", ".pdb", ".gdb", ".wdb", ".ftm",
      ".ign", ".ign2", ".cfg",  ".cvd",  ".cld",  ".cud", ".cdb", ".cat", ".crb", ".idb",
      ".ioc", ".yar",  ".yara", ".pwdb", ".info", ".imp", ".fp",  ".sfp", ".cbc"};
  const std::string ext = p.extension().string();
  return std::find(std::begin(exts), std::end(exts), ext) != std::end(exts);
}

bool is_cvd(const fs::path& p) {
  const std::string ext = p.extension().string();
  return ext == ".cvd" || ext == ".cld" || ext == ".cud";
}

// The database files of a directory, sorted by name. False when it cannot be read.
bool list_db_files(const fs::path& dir, std::vector<fs::path>& out, std::string& error) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    error = fmt::format("{}: {}", dir.string(), ec.message());
    return false;
  }
  for (const auto& entry : it) {
    std::error_code fec;
    if (entry.is_regular_file(fec) && is_db_file(entry.path())) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return true;
}

bool has_prefix(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

Verdict map_result(cl_error_t r, const char* virname) {
  if (r == CL_CLEAN) return {Verdict::clean, {}};
  if (r == CL_VIRUS) {
    std::string name = virname ? virname : "unnamed";
    // Encrypted archives or documents and exceeded limits are reported by heuristics: the
    // content was not (completely) scanned.
    if (has_prefix(name, "Heuristics.Encrypted.") || has_prefix(name, "Heuristics.Limits.Exceeded"))
      return {Verdict::unscannable, std::move(name)};
    return {Verdict::infected, std::move(name)};
  }
  switch (r) {
    case CL_EMAXREC:
    case CL_EMAXSIZE:
    case CL_EMAXFILES:
    case CL_ETIMEOUT:
      return {Verdict::unscannable, cl_strerror(r)};
    default:
      return {Verdict::error, cl_strerror(r)};
  }
}

// Runs one libclamav scan call; a "clean" answer with an error reported meanwhile is an
// error, never clean.
template <class F>
Verdict checked_scan(F&& scan) {
  std::string errors;
  tl_scan_errors = &errors;
  const char* virname = nullptr;
  cl_error_t r = scan(&virname);
  tl_scan_errors = nullptr;
  Verdict v = map_result(r, virname);
  if (v.kind == Verdict::clean && !errors.empty()) return {Verdict::error, "libclamav: " + errors};
  return v;
}

cl_scan_options scan_options() {
  cl_scan_options o{};
  o.general = CL_SCAN_GENERAL_HEURISTICS;
  o.parse = ~0u;  // every parser: archives, mail, OLE2, PDF, HTML, PE, ELF, ...
  o.heuristic = CL_SCAN_HEURISTIC_ENCRYPTED_ARCHIVE | CL_SCAN_HEURISTIC_ENCRYPTED_DOC |
                CL_SCAN_HEURISTIC_EXCEEDS_MAX;
  o.mail = 0;
  o.dev = 0;
  return o;
}

}  // namespace

std::string EngineVersion::text() const {
  return fmt::format("ClamAV {}/{}/{} sigs/{}", libclamav, db_version, signatures, fingerprint);
}

std::string ClamEngine::fingerprint(const std::vector<fs::path>& dirs) {
  Sha256 h;
  for (const auto& dir : dirs) {
    std::vector<fs::path> files;
    std::string err;
    if (!list_db_files(dir, files, err)) return {};
    h.update(dir.string());
    h.update(std::string_view("\0", 1));
    for (const auto& f : files) {
      std::error_code ec;
      auto size = fs::file_size(f, ec);
      auto mtime = fs::last_write_time(f, ec);
      h.update(fmt::format("{}\n{}\n{}\n", f.filename().string(), size,
                           static_cast<long long>(mtime.time_since_epoch().count())));
    }
  }
  return Sha256::hex(h.final()).substr(0, 16);
}

std::shared_ptr<const ClamEngine> ClamEngine::load(const std::vector<fs::path>& dirs,
                                                   const Limits& limits, std::string& error) {
  if (!init_clamav(error)) return nullptr;
  std::shared_ptr<ClamEngine> e(new ClamEngine());
  e->limits_ = limits;
  e->dirs_ = dirs;
  e->engine_ = cl_engine_new();
  if (!e->engine_) {
    error = "cl_engine_new failed";
    return nullptr;
  }

  struct NumSetting {
    cl_engine_field field;
    long long value;
    const char* name;
  };
  const NumSetting settings[] = {
      {CL_ENGINE_MAX_RECURSION, limits.max_recursion, "max_recursion"},
      {CL_ENGINE_MAX_FILES, limits.max_files, "max_files"},
      {CL_ENGINE_MAX_SCANSIZE, static_cast<long long>(limits.max_scan_size), "max_scan_size"},
      {CL_ENGINE_MAX_FILESIZE, static_cast<long long>(limits.max_file_size), "max_file_size"},
      {CL_ENGINE_MAX_SCANTIME, limits.max_scan_time_ms, "max_scan_time"},
  };
  for (const auto& s : settings) {
    if (cl_error_t r = cl_engine_set_num(e->engine_, s.field, s.value); r != CL_SUCCESS) {
      error = fmt::format("clamav: cannot set {} to {}: {}", s.name, s.value, cl_strerror(r));
      return nullptr;
    }
  }
  if (!limits.tmpdir.empty()) {
    if (cl_error_t r = cl_engine_set_str(e->engine_, CL_ENGINE_TMPDIR, limits.tmpdir.c_str());
        r != CL_SUCCESS) {
      error = fmt::format("clamav: cannot set the scratch directory {}: {}", limits.tmpdir.string(),
                          cl_strerror(r));
      return nullptr;
    }
  }

  unsigned sigs = 0;
  std::string messages;
  for (const auto& dir : dirs) {
    std::vector<fs::path> files;
    if (!list_db_files(dir, files, error)) return nullptr;
    if (files.empty()) {
      log::debug("clamav: no signature database in {}", dir.string());
      continue;
    }
    for (const auto& f : files) {
      Database db{f};
      if (is_cvd(f)) {
        if (cl_cvd* head = cl_cvdhead(f.c_str())) {
          db.version = head->version;
          db.signatures = head->sigs;
          db.built = static_cast<std::time_t>(head->stime);
          if (head->version > e->version_.db_version) {
            e->version_.db_version = head->version;
            e->version_.db_time = static_cast<std::time_t>(head->stime);
          }
          cl_cvdfree(head);
        }
      }
      e->version_.databases.push_back(std::move(db));
    }
    messages.clear();
    tl_load_messages = &messages;
    cl_error_t r = cl_load(dir.c_str(), e->engine_, &sigs, CL_DB_STDOPT);
    tl_load_messages = nullptr;
    if (r != CL_SUCCESS) {
      error = fmt::format("clamav: cannot load {}: {}{}{}", dir.string(), cl_strerror(r),
                          messages.empty() ? "" : ": ", messages);
      return nullptr;
    }
  }
  if (cl_error_t r = cl_engine_compile(e->engine_); r != CL_SUCCESS) {
    error = fmt::format("clamav: cannot compile the engine: {}", cl_strerror(r));
    return nullptr;
  }
  e->version_.libclamav = cl_retver();
  e->version_.signatures = sigs;
  e->version_.fingerprint = fingerprint(dirs);
  e->version_.generation = ++g_generation;
  log::debug("clamav: engine {} compiled (generation {})", e->version_.text(),
             e->version_.generation);
  return e;
}

ClamEngine::~ClamEngine() {
  if (engine_) cl_engine_free(engine_);
}

// libclamav 1.4 reports an outer object above the file size limit as CL_VIRUS without a
// name: say it here, in its own words.
constexpr std::string_view kMaxFileSize = "Heuristics.Limits.Exceeded.MaxFileSize";

template <class F>
Verdict ClamEngine::scan_restoring_scratch(F&& scan) const {
  Verdict v = checked_scan(scan);
  const auto& dir = limits_.tmpdir;
  if (v.kind != Verdict::error || dir.empty() || ::mkdir(dir.c_str(), 0700) != 0) return v;
  log::warn("clamav: the scratch folder {} was removed; made it again", dir.string());
  return checked_scan(scan);
}

Verdict ClamEngine::scan_fd(int fd) const {
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      static_cast<std::uint64_t>(st.st_size) > limits_.max_file_size)
    return {Verdict::unscannable, std::string(kMaxFileSize)};
  cl_scan_options o = scan_options();
  return scan_restoring_scratch([&](const char** virname) {
    unsigned long scanned = 0;
    if (::lseek(fd, 0, SEEK_SET) < 0 && errno != ESPIPE) return CL_ESEEK;
    return cl_scandesc_callback(fd, nullptr, virname, &scanned, engine_, &o, nullptr);
  });
}

Verdict ClamEngine::scan_buffer(const void* data, std::size_t size) const {
  if (size == 0) return {Verdict::clean, {}};
  if (size > limits_.max_file_size) return {Verdict::unscannable, std::string(kMaxFileSize)};
  cl_fmap_t* map = cl_fmap_open_memory(data, size);
  if (!map) return {Verdict::error, "cl_fmap_open_memory failed"};
  cl_scan_options o = scan_options();
  Verdict v = scan_restoring_scratch([&](const char** virname) {
    unsigned long scanned = 0;
    return cl_scanmap_callback(map, nullptr, virname, &scanned, engine_, &o, nullptr);
  });
  cl_fmap_close(map);
  return v;
}

Verdict ClamEngine::scan_file(const fs::path& path) const {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {Verdict::error, fmt::format("{}: {}", path.string(), std::strerror(errno))};
  Verdict v = scan_fd(fd);
  ::close(fd);
  return v;
}

bool ClamEngine::stale() const {
  return fingerprint(dirs_) != version_.fingerprint;
}

}  // namespace pc::inspect
