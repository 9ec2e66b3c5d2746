#include "telemetry/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace pc::telemetry {
namespace {

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

std::string iso_time(std::chrono::system_clock::time_point t) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>((us % 1000000) / 1000));
  return buf;
}

// Squid prints fields separated by spaces; keep each field free of white space.
std::string squid_field(std::string_view s) {
  if (s.empty()) return "-";
  std::string r;
  r.reserve(s.size());
  for (unsigned char c : s) {
    if (c <= 0x20 || c == 0x7f) {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      r += buf;
    } else {
      r += static_cast<char>(c);
    }
  }
  return r;
}

}  // namespace

std::string_view to_string(Result r) {
  switch (r) {
    case Result::allowed:
      return "allowed";
    case Result::denied:
      return "denied";
    case Result::error:
      return "error";
  }
  return "error";
}

std::string format_json(const AccessRecord& r) {
  std::string o;
  o.reserve(384 + r.url.size());
  o += "{\"time\":\"" + iso_time(r.time) + "\"";
  char dur[32];
  std::snprintf(dur, sizeof dur, "%.3f", static_cast<double>(r.duration.count()) / 1000.0);
  o += ",\"duration_ms\":";
  o += dur;
  o += ",\"request_id\":";
  append_json_string(o, r.request_id);
  o += ",\"listener\":";
  append_json_string(o, r.listener);
  o += r.guest ? ",\"guest\":true" : ",\"guest\":false";
  o += ",\"client\":";
  append_json_string(o, r.client);
  if (!r.user.empty()) {
    o += ",\"user\":";
    append_json_string(o, r.user);
  }
  if (!r.groups.empty()) {
    o += ",\"groups\":";
    append_json_string(o, r.groups);
  }
  o += ",\"method\":";
  append_json_string(o, r.method);
  o += ",\"url\":";
  append_json_string(o, r.url);
  o += ",\"status\":" + std::to_string(r.status);
  o += ",\"bytes_in\":" + std::to_string(r.bytes_in);
  o += ",\"bytes_out\":" + std::to_string(r.bytes_out);
  o += ",\"upstream\":";
  append_json_string(o, r.upstream);
  o += ",\"content_type\":";
  append_json_string(o, r.content_type);
  o += ",\"result\":";
  append_json_string(o, to_string(r.result));
  o += ",\"reason\":";
  append_json_string(o, r.reason);
  o += ",\"decision\":";
  append_json_string(o, r.decision);
  o += ",\"rule\":";
  append_json_string(o, r.rule);
  o += ",\"category\":";
  append_json_string(o, r.category);
  o += ",\"category_source\":";
  append_json_string(o, r.category_source);
  o += ",\"reputation\":";
  append_json_string(o, r.reputation);
  if (!r.scan.empty()) {
    o += ",\"scan\":";
    append_json_string(o, r.scan);
    if (!r.threat.empty()) {
      o += ",\"threat\":";
      append_json_string(o, r.threat);
    }
    o += ",\"sha256\":";
    append_json_string(o, r.sha256);
    o += ",\"file_type\":";
    append_json_string(o, r.file_type);
    o += r.scan_cached ? ",\"scan_cached\":true" : ",\"scan_cached\":false";
  }
  if (!r.icap_mode.empty()) {
    o += ",\"icap_client\":";
    append_json_string(o, r.icap_client);
    o += ",\"icap_mode\":";
    append_json_string(o, r.icap_mode);
    o += ",\"icap_status\":" + std::to_string(r.icap_status);
  }
  o += "}\n";
  return o;
}

// time.ms elapsed_ms client code/status bytes method URL user hierarchy/peer type
std::string format_squid(const AccessRecord& r) {
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(r.time.time_since_epoch()).count();
  std::string code;
  switch (r.result) {
    case Result::allowed:
      code = r.method == "CONNECT" ? "TCP_TUNNEL" : "TCP_MISS";
      break;
    case Result::denied:
      code = "TCP_DENIED";
      break;
    case Result::error:
      code = "TAG_NONE";
      break;
  }
  std::string hier = r.upstream.empty() ? "HIER_NONE/-"
                     : r.via_parent     ? "FIRSTUP_PARENT/" + squid_field(r.upstream)
                                        : "HIER_DIRECT/" + squid_field(r.upstream);
  char head[64];
  std::snprintf(head, sizeof head, "%lld.%03lld %6lld ", static_cast<long long>(ms / 1000),
                static_cast<long long>(ms % 1000),
                static_cast<long long>(r.duration.count() / 1000));
  std::string o = head;
  o += squid_field(r.client) + " " + code + "/" + std::to_string(r.status) + " " +
       std::to_string(r.bytes_out) + " " + squid_field(r.method) + " " + squid_field(r.url) + " " +
       (r.user.empty() ? std::string("-") : squid_field(r.user)) + " " + hier + " " +
       squid_field(r.content_type) + "\n";
  return o;
}

AccessLog::AccessLog(std::filesystem::path path, Format format, std::size_t queue_limit)
    : path_(std::move(path)), format_(format), limit_(queue_limit) {
  if (path_.empty()) return;
  open_file();
  thread_ = std::thread([this] { run(); });
}

AccessLog::~AccessLog() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (fd_ > 2) ::close(fd_);
}

bool AccessLog::open_file() {
  if (path_ == "-") {
    fd_ = STDOUT_FILENO;
    return true;
  }
  std::error_code ec;
  std::filesystem::create_directories(path_.parent_path(), ec);
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) {
    std::fprintf(stderr, "portcullis: cannot open access log %s: %s\n", path_.c_str(),
                 std::strerror(errno));
    return false;
  }
  if (fd_ > 2) ::close(fd_);
  fd_ = fd;
  return true;
}

void AccessLog::submit(AccessRecord&& r) {
  if (path_.empty()) return;
  bool wake;
  {
    std::lock_guard lk(mu_);
    if (queue_.size() >= limit_) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queue_.push_back(std::move(r));
    // The writer wakes on its own every kBatchWait; a full batch wakes it early. Waking it
    // for every record would cost a context switch per transaction.
    wake = queue_.size() == kBatch;
  }
  if (wake) cv_.notify_one();
}

void AccessLog::reopen() {
  {
    std::lock_guard lk(mu_);
    reopen_ = true;
  }
  cv_.notify_one();
}

void AccessLog::flush() {
  if (path_.empty()) return;
  std::unique_lock lk(mu_);
  flush_ = true;
  cv_.notify_one();
  idle_cv_.wait(lk, [this] { return (queue_.empty() && !busy_) || stop_; });
  flush_ = false;
}

void AccessLog::run() {
  std::deque<AccessRecord> batch;
  std::string out;
  for (;;) {
    bool do_reopen = false;
    {
      std::unique_lock lk(mu_);
      busy_ = false;
      idle_cv_.notify_all();
      cv_.wait_for(lk, kBatchWait, [this] {
        return stop_ || reopen_ || queue_.size() >= kBatch || (flush_ && !queue_.empty());
      });
      if (queue_.empty() && !stop_ && !reopen_) continue;
      if (stop_ && queue_.empty()) return;
      batch.swap(queue_);
      do_reopen = reopen_;
      reopen_ = false;
      busy_ = true;
    }
    if (do_reopen && path_ != "-") open_file();
    out.clear();
    Format f = format_.load();
    for (auto& r : batch) out += f == Format::json ? format_json(r) : format_squid(r);
    std::size_t n = batch.size();
    batch.clear();
    const char* p = out.data();
    std::size_t left = out.size();
    if (fd_ < 0) {  // the file could not be opened: these records are lost, and counted
      dropped_.fetch_add(n, std::memory_order_relaxed);
      continue;
    }
    while (left > 0) {
      ssize_t w = ::write(fd_, p, left);
      if (w < 0) {
        if (errno == EINTR) continue;
        dropped_.fetch_add(n, std::memory_order_relaxed);
        n = 0;
        break;
      }
      p += w;
      left -= static_cast<std::size_t>(w);
    }
    written_.fetch_add(n, std::memory_order_relaxed);
  }
}

}  // namespace pc::telemetry
