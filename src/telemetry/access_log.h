// The access-log writer and its file sink. Workers hand records to a bounded queue; one
// writer thread takes them in batches and passes each batch to every sink (the access log
// file, the security log file, syslog destinations). A full queue drops and counts, never
// blocks a worker.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "telemetry/format.h"
#include "telemetry/record.h"
#include "telemetry/sink.h"

namespace pc::telemetry {

// A log file: the access log (every record, JSON or Squid format) or the security log (only
// security events, JSON). Path "-" writes to standard output.
class FileSink : public LogSink {
 public:
  enum class Filter : std::uint8_t { all, security };
  FileSink(std::string name, std::filesystem::path path, Format format, Filter filter,
           std::string gateway);
  ~FileSink() override;

  void write(const Batch& batch) override;
  void reopen() override;
  SinkStats stats() const override;
  void set_format(Format f) { format_.store(f); }  // any thread; from the next batch

 private:
  bool open_file();

  std::string name_;
  std::filesystem::path path_;
  std::atomic<Format> format_;
  Filter filter_;
  std::string gateway_;
  int fd_ = -1;
  std::atomic<bool> open_{false};
  static constexpr std::size_t kFlushBytes = 256 << 10;
  std::string buf_;  // reused for every batch; written whenever it holds kFlushBytes
  std::atomic<std::uint64_t> written_{0}, dropped_{0};
};

class AccessLog {
 public:
  static constexpr std::size_t kQueueLimit = 16384;  // records, about 1.6 KiB each
  // No sinks: the log is off (submit does nothing, no thread).
  explicit AccessLog(std::vector<std::unique_ptr<LogSink>> sinks,
                     std::size_t queue_limit = kQueueLimit);
  ~AccessLog();  // writes what is queued, then destroys the sinks (each flushes what it can)
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  void submit(AccessRecord&& r);  // any thread; never blocks on I/O
  void reopen();                  // SIGUSR1: the sinks reopen their files (after rotation)
  // Waits until everything queued so far has been handed to every sink (files written;
  // syslog records queued for their destination, not necessarily sent).
  void flush();

  // Records dropped before reaching any sink: the queue was full.
  std::uint64_t dropped() const { return dropped_.load(); }
  // One entry per sink, in configuration order (any thread).
  std::vector<SinkStats> sink_stats() const;

 private:
  void run();

  std::vector<std::unique_ptr<LogSink>> sinks_;
  std::size_t limit_;
  std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::shared_ptr<Records> queue_;
  static constexpr std::size_t kBatch = 512;
  static constexpr std::size_t kMaxReserve = 8 * kBatch;  // records (about 1 KiB each)
  static constexpr std::chrono::milliseconds kBatchWait{100};
  bool stop_ = false, reopen_ = false, busy_ = false, flush_ = false;
  std::atomic<std::uint64_t> dropped_{0};
  std::thread thread_;
};

}  // namespace pc::telemetry
