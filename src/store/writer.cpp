#include "store/writer.h"

#include <algorithm>

namespace pc::store {

Writer::Writer(WriterOptions options)
    : opt_(std::move(options)), store_(std::make_unique<Store>(opt_.store)) {
  thread_ = std::thread([this] { run(); });
}

Writer::~Writer() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Writer::submit(std::span<const telemetry::AccessRecord> batch) {
  if (batch.empty()) return;
  bool wake;
  {
    std::lock_guard lk(mu_);
    std::size_t room = opt_.queue_limit > queue_.size() ? opt_.queue_limit - queue_.size() : 0;
    std::size_t take = std::min(room, batch.size());
    queue_.insert(queue_.end(), batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(take));
    submitted_ += take;
    if (take < batch.size()) queue_dropped_.fetch_add(batch.size() - take);
    // The thread wakes on its own every flush interval; a full batch wakes it early.
    wake = queue_.size() >= kBatch && queue_.size() - take < kBatch;
  }
  if (wake) cv_.notify_one();
}

void Writer::flush() {
  std::unique_lock lk(mu_);
  std::uint64_t target = submitted_;
  flush_ = true;
  cv_.notify_one();
  idle_cv_.wait(lk, [&] { return done_ >= target || stop_; });
  flush_ = false;
}

Stats Writer::stats() const {
  Stats s = store_->stats();
  s.dropped += queue_dropped_.load();
  std::lock_guard lk(mu_);
  s.queued = queue_.size();
  return s;
}

void Writer::run() {
  std::vector<telemetry::AccessRecord> batch;
  bool more = true;  // retention has work left: do not wait
  for (;;) {
    {
      std::unique_lock lk(mu_);
      if (!more)
        cv_.wait_for(lk, opt_.flush_interval, [this] {
          return stop_ || queue_.size() >= kBatch || (flush_ && !queue_.empty());
        });
      if (stop_ && queue_.empty()) break;
      batch.swap(queue_);
    }
    std::span<const telemetry::AccessRecord> all(batch);
    do {
      auto chunk = all.first(std::min(all.size(), kBatch));
      all = all.subspan(chunk.size());
      store_->insert(chunk);
      more = store_->maintain(std::chrono::system_clock::now());
    } while (!all.empty());
    {
      std::lock_guard lk(mu_);
      done_ += batch.size();
    }
    idle_cv_.notify_all();
    batch.clear();
  }
  store_->close();
  idle_cv_.notify_all();
}

}  // namespace pc::store
