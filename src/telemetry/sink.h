// Log sinks: where the access-log writer sends each batch of records. The writer thread calls
// every sink in turn with the same batch, in submission order. Implementations: FileSink (the
// access log and the security log), SyslogSink (one per [[syslog]] destination); the local
// store is meant to be one more.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "telemetry/record.h"

namespace pc::telemetry {

using Records = std::vector<AccessRecord>;
// Immutable once handed to the sinks; a sink that works on its own thread keeps the pointer
// instead of copying the records.
using Batch = std::shared_ptr<const Records>;

// What monitoring reads about a sink (any thread).
struct SinkStats {
  std::string name;           // "access_log", "security_log", "syslog:<name>"
  std::uint64_t written = 0;  // records delivered: written to the file, sent to the receiver
  std::uint64_t dropped = 0;  // records lost: queue or spool full, write or send errors
  std::uint64_t queued = 0;   // records accepted but not delivered yet
  bool connected = true;      // file open; receiver connected (UDP: its address resolved)
  std::string detail;         // where it writes, or why it cannot
};

class LogSink {
 public:
  virtual ~LogSink() = default;
  // Writer thread. Must not wait on the network or on another process: a sink that can stall
  // hands the batch (or what it made of it) to its own thread and returns.
  virtual void write(const Batch& batch) = 0;
  // Writer thread, on SIGUSR1: reopen files after rotation.
  virtual void reopen() {}
  virtual SinkStats stats() const = 0;
};

}  // namespace pc::telemetry
