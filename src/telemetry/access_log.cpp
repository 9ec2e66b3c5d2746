#include "telemetry/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "telemetry/disk_queue.h"

namespace pc::telemetry {

// ---- FileSink ----

FileSink::FileSink(std::string name, std::filesystem::path path, Format format, Filter filter,
                   std::string gateway)
    : name_(std::move(name)),
      path_(std::move(path)),
      format_(format),
      filter_(filter),
      gateway_(std::move(gateway)) {
  open_file();
}

FileSink::~FileSink() {
  if (fd_ > 2) ::close(fd_);
}

bool FileSink::open_file() {
  if (path_ == "-") {
    fd_ = STDOUT_FILENO;
    open_.store(true);
    return true;
  }
  std::error_code ec;
  std::filesystem::create_directories(path_.parent_path(), ec);
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) {
    log::error("cannot open {} {}: {}", name_, path_.string(), std::strerror(errno));
    return false;
  }
  if (fd_ > 2) ::close(fd_);
  fd_ = fd;
  open_.store(true);
  return true;
}

void FileSink::reopen() {
  if (path_ != "-") open_file();
}

SinkStats FileSink::stats() const {
  SinkStats s;
  s.name = name_;
  s.written = written_.load(std::memory_order_relaxed);
  s.dropped = dropped_.load(std::memory_order_relaxed);
  s.connected = open_.load(std::memory_order_relaxed);
  s.detail = path_ == "-" ? std::string("standard output")
                          : (s.connected ? "" : "cannot open ") + path_.string();
  return s;
}

void FileSink::write(const Batch& batch) {
  // Formatted and written in pieces of about kFlushBytes, so that a large batch (the backlog
  // of a stall) never makes the buffer, which is kept for the next batch, as large as itself.
  buf_.clear();
  const Format f = format_.load();
  std::uint64_t pending = 0;  // records in buf_
  bool failed = false;
  auto flush = [&] {
    if (pending == 0) return;
    if (fd_ < 0 || failed || !write_all(fd_, buf_)) {  // lost, and counted
      failed = true;
      dropped_.fetch_add(pending, std::memory_order_relaxed);
    } else {
      written_.fetch_add(pending, std::memory_order_relaxed);
    }
    buf_.clear();
    pending = 0;
  };
  for (const auto& r : *batch) {
    if (filter_ == Filter::security && security_event(r) == Event::none) continue;
    if (f == Format::json)
      append_json(buf_, r, gateway_);
    else
      append_squid(buf_, r);
    buf_ += '\n';
    ++pending;
    if (buf_.size() >= kFlushBytes) flush();
  }
  flush();
}

// ---- AccessLog ----

AccessLog::AccessLog(std::vector<std::unique_ptr<LogSink>> sinks, std::size_t queue_limit)
    : sinks_(std::move(sinks)), limit_(queue_limit), queue_(std::make_shared<Records>()) {
  if (sinks_.empty()) return;
  queue_->reserve(std::min(limit_, 2 * kBatch));
  thread_ = std::thread([this] { run(); });
}

AccessLog::~AccessLog() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  sinks_.clear();  // each sink stops its own threads
}

void AccessLog::submit(AccessRecord&& r) {
  if (sinks_.empty()) return;
  bool wake;
  {
    std::lock_guard lk(mu_);
    if (queue_->size() >= limit_) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    // The writer reserved room for a batch: no allocation here in the steady state.
    queue_->push_back(std::move(r));
    // The writer wakes on its own every kBatchWait; a full batch wakes it early. Waking it
    // for every record would cost a context switch per transaction.
    wake = queue_->size() == kBatch;
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
  if (sinks_.empty()) return;
  std::unique_lock lk(mu_);
  flush_ = true;
  cv_.notify_one();
  idle_cv_.wait(lk, [this] { return (queue_->empty() && !busy_) || stop_; });
  flush_ = false;
}

std::vector<SinkStats> AccessLog::sink_stats() const {
  std::vector<SinkStats> v;
  v.reserve(sinks_.size());
  for (const auto& s : sinks_) v.push_back(s->stats());
  return v;
}

void AccessLog::run() {
  std::shared_ptr<Records> spare = std::make_shared<Records>();
  std::size_t last = 0;
  for (;;) {
    bool do_reopen = false;
    std::shared_ptr<Records> batch;
    // The next queue, with room for about as much as the last batch (allocated here, not on
    // the workers that fill it), but not more than kMaxReserve: after a burst the queue
    // grows on its own rather than keep megabytes reserved.
    const std::size_t want = std::min({limit_, kMaxReserve, std::max(2 * kBatch, last + last / 2)});
    if (spare->capacity() < want) spare->reserve(want);
    {
      std::unique_lock lk(mu_);
      busy_ = false;
      idle_cv_.notify_all();
      cv_.wait_for(lk, kBatchWait, [this] {
        return stop_ || reopen_ || queue_->size() >= kBatch || (flush_ && !queue_->empty());
      });
      if (queue_->empty() && !stop_ && !reopen_) continue;
      if (stop_ && queue_->empty()) return;
      batch = std::move(queue_);
      queue_ = std::move(spare);
      do_reopen = reopen_;
      reopen_ = false;
      busy_ = true;
    }
    if (do_reopen)
      for (auto& s : sinks_) s->reopen();
    last = batch->size();
    if (!batch->empty()) {
      Batch shared = batch;
      for (auto& s : sinks_) s->write(shared);
    }
    // Reuse the batch's storage when no sink kept it (and it is not oversized).
    if (batch.use_count() == 1 && batch->capacity() <= kMaxReserve) {
      batch->clear();
      spare = std::move(batch);
    } else {
      spare = std::make_shared<Records>();
    }
  }
}

}  // namespace pc::telemetry
