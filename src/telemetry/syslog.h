// Syslog forwarding: one SyslogSink per destination ([[syslog]] in the configuration).
//
// The access-log writer formats each record (RFC 5424, CEF or JSON) and hands it to the
// destination; a thread of the destination's own sends it:
//   udp      one datagram per record (RFC 5426) from a bounded queue in memory; never waits
//            for the receiver; a full queue drops and counts.
//   tcp/tls  RFC 6587 octet counting over TCP, or TLS (RFC 5425) with the server certificate
//            verified; every record goes through a bounded queue on disk (DiskQueue), so a
//            receiver that is down or slow loses nothing while the queue has room: the sender
//            reconnects with exponential back-off and sends the queue in order. A full queue
//            drops and counts.
// Workers never touch any of this (they only queue the record for the writer).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "telemetry/disk_queue.h"
#include "telemetry/sink.h"
#include "telemetry/syslog_format.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace pc::telemetry {

enum class Transport : std::uint8_t { udp, tcp, tls };
std::string_view to_string(Transport t);

struct SyslogOptions {
  std::string name;  // logs, stats ("syslog:<name>") and the spool folder's name
  std::string host;
  std::uint16_t port = 514;
  Transport transport = Transport::udp;
  SyslogFormat format = SyslogFormat::rfc5424;
  bool security_only = false;    // only security events (security_event(r) != none)
  SyslogHeader header;           // facility, host name (the gateway's name), process ID, version
  std::filesystem::path tls_ca;  // empty: the system's trusted CAs
  std::filesystem::path tls_certificate, tls_key;  // client certificate (optional)
  std::uint64_t queue_limit = 256ull << 20;  // bytes waiting: on disk (tcp, tls), in memory (udp)
  std::filesystem::path spool_dir;           // tcp, tls: the DiskQueue folder
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds retry_min{500}, retry_max{30000};  // reconnect back-off
  std::chrono::milliseconds send_timeout{30000};  // no progress writing for this long: reconnect
  std::chrono::milliseconds stop_grace{3000};     // at stop: time left to send what is queued
};

class SyslogSink : public LogSink {
 public:
  // Throws std::runtime_error with a clear message when the TLS files or the spool folder
  // cannot be used.
  explicit SyslogSink(SyslogOptions o);
  // Sends what it can within stop_grace; the rest stays on disk (tcp, tls) for the next start.
  ~SyslogSink() override;

  void write(const Batch& batch) override;
  SinkStats stats() const override;

  static constexpr std::size_t kMaxFrame = 1 << 20;  // far above any message we build

 private:
  class Link;
  void run_stream();
  void run_udp();
  void count_drops(std::uint64_t n, std::string_view why);
  bool stopping_past_grace();
  void set_state(bool connected, std::string error);

  SyslogOptions o_;
  std::string stats_name_;
  std::shared_ptr<SSL_CTX> tls_;
  std::unique_ptr<DiskQueue> spool_;  // tcp, tls
  std::string msg_, frames_;          // writer thread: reused buffers

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> mem_;  // udp
  std::uint64_t mem_bytes_ = 0;
  bool stop_ = false;
  std::chrono::steady_clock::time_point stop_deadline_{};

  std::atomic<std::uint64_t> written_{0}, dropped_{0};
  std::atomic<bool> connected_{false};
  std::string last_error_;  // under mu_: why the last connect or send failed
  std::mutex drop_log_mu_;
  std::chrono::steady_clock::time_point last_drop_log_{};
  std::uint64_t drops_logged_ = 0;
  std::thread thread_;
};

}  // namespace pc::telemetry
