#include "inspect/offload.h"

namespace pc::inspect {

Offload::Offload(unsigned threads, std::size_t queue_capacity)
    : capacity_(queue_capacity ? queue_capacity : 1) {
  if (threads == 0) threads = 1;
  threads_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
}

Offload::~Offload() {
  shutdown();
}

bool Offload::reserve() {
  std::lock_guard lock(mu_);
  if (stopped_ || queue_.size() + reserved_ >= capacity_) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  ++reserved_;
  queued_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void Offload::push(std::unique_ptr<Job> job) {
  {
    std::lock_guard lock(mu_);
    --reserved_;
    if (!stopped_) {
      queue_.push_back(std::move(job));
      cv_.notify_one();
      return;
    }
  }
  // Shut down between reserve() and push().
  queued_.fetch_sub(1, std::memory_order_relaxed);
  rejected_.fetch_add(1, std::memory_order_relaxed);
  job->drop();
}

void Offload::loop() {
  for (;;) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopped_ || !queue_.empty(); });
      if (stopped_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      queued_.fetch_sub(1, std::memory_order_relaxed);
      running_.fetch_add(1, std::memory_order_relaxed);
    }
    job->run(*this);
  }
}

void Offload::finished() noexcept {
  running_.fetch_sub(1, std::memory_order_relaxed);
  completed_.fetch_add(1, std::memory_order_relaxed);
}

void Offload::shutdown() {
  std::deque<std::unique_ptr<Job>> pending;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    pending.swap(queue_);
  }
  cv_.notify_all();
  for (auto& job : pending) {
    queued_.fetch_sub(1, std::memory_order_relaxed);
    rejected_.fetch_add(1, std::memory_order_relaxed);
    job->drop();
  }
  pending.clear();
  for (auto& t : threads_) {
    if (!t.joinable()) continue;
    if (t.get_id() == std::this_thread::get_id())
      t.detach();  // shut down from one of its own jobs: that thread ends on its own
    else
      t.join();
  }
}

Offload::Counters Offload::counters() const {
  return {queued_.load(std::memory_order_relaxed), running_.load(std::memory_order_relaxed),
          rejected_.load(std::memory_order_relaxed), completed_.load(std::memory_order_relaxed)};
}

}  // namespace pc::inspect
