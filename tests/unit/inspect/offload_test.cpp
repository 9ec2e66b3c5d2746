#include "inspect/offload.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <future>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

namespace pc::inspect {
namespace {

using namespace std::chrono_literals;

// Waits (bounded) until pred() holds; false if it never did.
template <class P>
bool eventually(P pred) {
  for (int i = 0; i < 5000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return pred();
}

struct Record {
  std::optional<int> result;
  std::thread::id resumed_on;
  std::thread::id ran_on;
  bool done = false;
};

// A function object that blocks its pool thread until `gate` is released.
struct Blocker {
  std::shared_future<void> gate;
  std::thread::id* ran_on;
  int value;
  int operator()() const {
    *ran_on = std::this_thread::get_id();
    gate.wait();
    return value;
  }
};

asio::awaitable<void> run_one(Offload& pool, Blocker fn, Record& rec) {
  rec.result = co_await pool.run(fn);
  rec.resumed_on = std::this_thread::get_id();
  rec.done = true;
}

struct Square {
  int x;
  int operator()() const { return x * x; }
};

asio::awaitable<void> run_square(Offload& pool, int x, std::atomic<int>& sum,
                                 std::atomic<int>& rejected) {
  std::optional<int> r = co_await pool.run(Square{x});
  if (r)
    sum += *r;
  else
    ++rejected;
}

struct Thrower {
  int operator()() const { throw std::runtime_error("scan failed"); }
};

asio::awaitable<void> run_thrower(Offload& pool, std::string& what) {
  try {
    co_await pool.run(Thrower{});
  } catch (const std::runtime_error& e) {
    what = e.what();
  }
}

TEST(Offload, ResultComesBackOnTheCallersThread) {
  Offload pool(2, 8);
  asio::io_context io(1);
  std::promise<void> gate;
  Record rec;
  std::thread::id ran_on;
  gate.set_value();
  asio::co_spawn(io, run_one(pool, Blocker{gate.get_future().share(), &ran_on, 7}, rec),
                 asio::detached);
  std::thread::id io_thread;
  std::thread t([&] {
    io_thread = std::this_thread::get_id();
    io.run();  // returns only once the job's completion ran: the job is outstanding work
  });
  t.join();
  ASSERT_TRUE(rec.done);
  EXPECT_EQ(rec.result, 7);
  EXPECT_EQ(rec.resumed_on, io_thread);
  EXPECT_NE(ran_on, io_thread);
  EXPECT_EQ(pool.counters().completed, 1u);
  EXPECT_EQ(pool.counters().queued, 0u);
  EXPECT_EQ(pool.counters().running, 0u);
}

TEST(Offload, FullQueueRejectsAtOnce) {
  Offload pool(1, 1);
  asio::io_context io(1);
  std::promise<void> gate;
  auto shared = gate.get_future().share();
  Record first, second, third;
  std::thread::id r1, r2, r3;
  asio::co_spawn(io, run_one(pool, Blocker{shared, &r1, 1}, first), asio::detached);
  std::thread t([&] { io.run(); });
  ASSERT_TRUE(eventually([&] { return pool.counters().running == 1; }));
  asio::co_spawn(io, run_one(pool, Blocker{shared, &r2, 2}, second), asio::detached);
  ASSERT_TRUE(eventually([&] { return pool.counters().queued == 1; }));
  asio::co_spawn(io, run_one(pool, Blocker{shared, &r3, 3}, third), asio::detached);
  ASSERT_TRUE(eventually([&] { return pool.counters().rejected == 1; }));
  gate.set_value();
  t.join();
  EXPECT_EQ(first.result, 1);
  EXPECT_EQ(second.result, 2);
  EXPECT_TRUE(third.done);
  EXPECT_FALSE(third.result.has_value());
  auto c = pool.counters();
  EXPECT_EQ(c.completed, 2u);
  EXPECT_EQ(c.rejected, 1u);
}

TEST(Offload, ManyConcurrentRunsComplete) {
  constexpr int kJobs = 2000;
  Offload pool(3, kJobs);
  asio::io_context io(1);
  std::atomic<int> sum{0}, rejected{0};
  int expected = 0;
  for (int i = 0; i < kJobs; ++i) {
    asio::co_spawn(io, run_square(pool, i % 100, sum, rejected), asio::detached);
    expected += (i % 100) * (i % 100);
  }
  io.run();
  EXPECT_EQ(rejected.load(), 0);
  EXPECT_EQ(sum.load(), expected);
  EXPECT_EQ(pool.counters().completed, static_cast<unsigned>(kJobs));
  EXPECT_EQ(pool.counters().queued, 0u);
}

TEST(Offload, ExceptionsReachTheCaller) {
  Offload pool(1, 4);
  asio::io_context io(1);
  std::string what;
  asio::co_spawn(io, run_thrower(pool, what), asio::detached);
  io.run();
  EXPECT_EQ(what, "scan failed");
  EXPECT_EQ(pool.counters().completed, 1u);
}

TEST(Offload, ShutdownWithPendingWorkIsClean) {
  auto pool = std::make_unique<Offload>(1, 8);
  asio::io_context io(1);
  std::promise<void> gate;
  auto shared = gate.get_future().share();
  std::vector<Record> recs(4);
  std::vector<std::thread::id> ran(4);
  asio::co_spawn(io, run_one(*pool, Blocker{shared, &ran[0], 10}, recs[0]), asio::detached);
  std::thread t([&] { io.run(); });
  ASSERT_TRUE(eventually([&] { return pool->counters().running == 1; }));
  for (int i = 1; i < 4; ++i)
    asio::co_spawn(io, run_one(*pool, Blocker{shared, &ran[i], 10 + i}, recs[i]), asio::detached);
  ASSERT_TRUE(eventually([&] { return pool->counters().queued == 3; }));

  // shutdown() drops the queued jobs at once, then waits for the running one.
  std::thread stopper([&] { pool->shutdown(); });
  ASSERT_TRUE(eventually([&] { return pool->counters().rejected == 3; }));
  gate.set_value();
  stopper.join();
  t.join();
  EXPECT_EQ(recs[0].result, 10);
  for (int i = 1; i < 4; ++i) {
    EXPECT_TRUE(recs[i].done);
    EXPECT_FALSE(recs[i].result.has_value());
  }
  // After shutdown, run() refuses at once.
  Record late;
  std::thread::id late_ran;
  io.restart();
  asio::co_spawn(io, run_one(*pool, Blocker{shared, &late_ran, 99}, late), asio::detached);
  io.run();
  EXPECT_TRUE(late.done);
  EXPECT_FALSE(late.result.has_value());
  pool.reset();
}

}  // namespace
}  // namespace pc::inspect
