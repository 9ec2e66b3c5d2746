// Writer: a Store on its own thread behind a bounded queue. submit() copies records into the
// queue and returns; when the queue is full the records beyond it are dropped and counted.
// The thread writes what is queued every flush interval (or as soon as a full batch is
// waiting) in one transaction, and runs retention between batches. Whatever happens to the
// database (full disk, errors, slow I/O), submit() never waits for it.
#pragma once

#include <condition_variable>
#include <memory>
#include <thread>
#include <vector>

#include "store/store.h"

namespace pc::store {

struct WriterOptions {
  Options store;
  std::size_t queue_limit = 65536;                 // records waiting, at most
  std::chrono::milliseconds flush_interval{1000};  // the longest a record waits in the queue
};

class Writer {
 public:
  explicit Writer(WriterOptions options);  // opens the store (see Store), starts the thread
  ~Writer();                               // writes what is queued, then closes the store
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Any thread; copies the records. Never waits on I/O.
  void submit(std::span<const telemetry::AccessRecord> batch);
  // Waits until everything submitted before the call has been written (or dropped).
  void flush();
  Stats stats() const;  // the store's, with the queue's drops and depth

  // Records written in one transaction, at most; a larger backlog takes several.
  static constexpr std::size_t kBatch = 8192;

 private:
  void run();

  WriterOptions opt_;
  mutable std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::vector<telemetry::AccessRecord> queue_;
  bool stop_ = false, flush_ = false;
  std::uint64_t submitted_ = 0, done_ = 0;  // records accepted into the queue / handled
  std::atomic<std::uint64_t> queue_dropped_{0};
  std::unique_ptr<Store> store_;  // used by the writer thread only (stats() aside)
  std::thread thread_;
};

}  // namespace pc::store
