// Access records and the access-log writer. Workers hand records to a bounded queue; one
// writer thread formats and writes them (JSON lines or Squid's native format). A full queue
// drops and counts, never blocks a worker.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

namespace pc::telemetry {

enum class Result : std::uint8_t { allowed, denied, error };
std::string_view to_string(Result r);

// One record per transaction, proxy and ICAP alike.
struct AccessRecord {
  std::chrono::system_clock::time_point time;  // transaction start
  std::chrono::microseconds duration{0};
  std::string request_id;
  std::string listener;
  bool guest = false;
  std::string client;  // the end user's address (ICAP: X-Client-IP, else the ICAP client)
  std::string user;    // the user, when known (ICAP identity fields)
  std::string groups;  // the user's groups, comma-separated, when known
  std::string method;
  std::string url;
  int status = 0;
  std::uint64_t bytes_in = 0;   // from the client (head + body)
  std::uint64_t bytes_out = 0;  // to the client (head + body)
  std::string upstream;         // address:port the request went to (parent or origin)
  bool via_parent = false;      // upstream is a parent proxy
  std::string content_type;
  Result result = Result::allowed;
  std::string reason;  // why denied or what failed; empty when allowed normally
  // The policy's decision and why (empty when no decision was made, e.g. a parse error).
  std::string decision;         // allow | block | warn | monitor | allow_no_scan
  std::string rule;             // rule name, "approved list", "blocked list" or "default"
  std::string category;         // first matched category
  std::string category_source;  // "name version" of the database it came from
  std::string reputation;       // dangerous | highly suspicious | suspicious | untested
  // Scanning (empty when the body was not scanned)
  std::string scan;       // clean | infected | unscannable | error | not scanned
  std::string threat;     // threat name when infected
  std::string sha256;     // of the scanned body
  std::string file_type;  // true file type ("exe", "zip", ...)
  bool scan_cached = false;
  // ICAP transactions only (empty / 0 for the proxy)
  std::string icap_client;  // the ICAP client's address
  std::string icap_mode;    // reqmod | respmod | options
  int icap_status = 0;      // the ICAP status answered (200, 204, 400, ...)
};

enum class Format : std::uint8_t { json, squid };

std::string format_json(const AccessRecord& r);
std::string format_squid(const AccessRecord& r);

class AccessLog {
 public:
  // path "-" writes to standard output; empty disables the log.
  AccessLog(std::filesystem::path path, Format format, std::size_t queue_limit = 65536);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  void submit(AccessRecord&& r);  // any thread; never blocks on I/O
  void reopen();                  // SIGUSR1: reopen the file (after rotation)
  void flush();                   // wait until everything queued so far is written
  void set_format(Format f) { format_.store(f); }

  std::uint64_t written() const { return written_.load(); }
  std::uint64_t dropped() const { return dropped_.load(); }

 private:
  void run();
  bool open_file();

  std::filesystem::path path_;
  std::atomic<Format> format_;
  std::size_t limit_;
  std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<AccessRecord> queue_;
  static constexpr std::size_t kBatch = 512;
  static constexpr std::chrono::milliseconds kBatchWait{100};
  bool stop_ = false, reopen_ = false, busy_ = false, flush_ = false;
  std::atomic<std::uint64_t> written_{0}, dropped_{0};
  int fd_ = -1;
  std::thread thread_;
};

}  // namespace pc::telemetry
