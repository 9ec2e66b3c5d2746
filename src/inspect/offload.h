// A bounded pool of threads for blocking or CPU-heavy work (scans), awaited from a worker's
// coroutine: `std::optional<R> r = co_await offload.run(fn);`.
#pragma once

#include <atomic>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace pc::inspect {

namespace asio = boost::asio;

class Offload {
 public:
  struct Counters {
    std::uint64_t queued = 0;     // now waiting for a thread (gauge)
    std::uint64_t running = 0;    // now running (gauge)
    std::uint64_t rejected = 0;   // refused: queue full, or shut down before they ran (total)
    std::uint64_t completed = 0;  // ran to the end, value or exception (total)
  };

  // `threads` >= 1 threads; at most `queue_capacity` jobs wait for one (>= 1).
  Offload(unsigned threads, std::size_t queue_capacity);
  // Shuts down (see shutdown()).
  ~Offload();
  Offload(const Offload&) = delete;
  Offload& operator=(const Offload&) = delete;

  // Runs fn() on a pool thread and resumes the calling coroutine on its own executor with
  // the result. Returns nullopt at once, without suspending, when the queue is full or the
  // pool is shut down (counted as rejected), and nullopt as well when the pool is shut down
  // before the job started. An exception thrown by fn is rethrown in the caller. While the
  // job is pending, the caller's io_context counts it as outstanding work (run() does not
  // return). fn is moved to the pool thread and must not touch the caller's state without
  // synchronisation.
  template <class F, class R = std::decay_t<std::invoke_result_t<F&>>>
  asio::awaitable<std::optional<R>> run(F fn) {
    static_assert(!std::is_void_v<R>, "Offload::run needs a function that returns a value");
    if (!reserve()) co_return std::nullopt;
    auto ex = co_await asio::this_coro::executor;
    co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&,
                                            void(std::exception_ptr, std::optional<R>)>(
        Initiate<F, R>{this, ex}, asio::use_awaitable, std::move(fn));
  }

  // Stops taking jobs; jobs still queued complete at once with nullopt (counted as rejected);
  // running jobs finish; then the threads are joined. Idempotent. Call it before the
  // io_contexts of pending callers are destroyed.
  void shutdown();

  Counters counters() const;
  unsigned threads() const { return static_cast<unsigned>(threads_.size()); }
  std::size_t capacity() const { return capacity_; }

 private:
  struct Job {
    virtual ~Job() = default;
    virtual void run(Offload& pool) noexcept = 0;  // on a pool thread
    virtual void drop() noexcept = 0;              // never ran: complete with nullopt
  };

  template <class F, class R, class Handler>
  struct JobImpl final : Job {
    JobImpl(F f, Handler h, asio::any_io_executor w)
        : fn(std::move(f)), handler(std::move(h)), work(std::move(w)) {}
    void run(Offload& pool) noexcept override {
      std::exception_ptr ep;
      std::optional<R> result;
      try {
        result.emplace(fn());
      } catch (...) {
        ep = std::current_exception();
      }
      pool.finished();  // counted before the caller can see the result
      complete(ep, std::move(result));
    }
    void drop() noexcept override { complete(nullptr, std::nullopt); }
    void complete(std::exception_ptr ep, std::optional<R> result) noexcept {
      auto ex = asio::get_associated_executor(handler, work);
      asio::post(ex, asio::append(std::move(handler), ep, std::move(result)));
      work = asio::any_io_executor();  // the posted completion now keeps the context busy
    }
    F fn;
    Handler handler;
    asio::any_io_executor work;  // tracks outstanding work on the caller's context
  };

  template <class F, class R>
  struct Initiate {
    Offload* self;
    asio::any_io_executor ex;
    template <class Handler>
    void operator()(Handler&& handler, F fn) const {
      asio::any_io_executor work = asio::prefer(ex, asio::execution::outstanding_work.tracked);
      self->push(std::make_unique<JobImpl<F, R, std::decay_t<Handler>>>(
          std::move(fn), std::forward<Handler>(handler), std::move(work)));
    }
  };

  bool reserve();                   // takes a queue slot; false (and counted) when none
  void push(std::unique_ptr<Job>);  // fills a reserved slot
  void loop();
  void finished() noexcept;

  const std::size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> queue_;
  std::size_t reserved_ = 0;  // slots taken by run() whose job is not pushed yet
  bool stopped_ = false;
  std::vector<std::thread> threads_;
  std::atomic<std::uint64_t> queued_{0};
  std::atomic<std::uint64_t> running_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<std::uint64_t> completed_{0};
};

}  // namespace pc::inspect
