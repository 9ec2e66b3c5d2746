// base: Region (mappings of their own, huge-page advised from 2 MiB), Arena and
// ArenaAllocator (tables packed into one Region).
#include "base/memory.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <new>
#include <string>
#include <vector>

namespace pc::base {
namespace {

template <class T>
using Table = std::vector<T, ArenaAllocator<T>>;

std::uintptr_t addr(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p);
}

// The VmFlags line of the mapping of /proc/self/smaps that starts at p.
std::string vm_flags(const void* p) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool in_it = false;
  while (std::getline(in, line)) {
    const auto dash = line.find('-');
    if (dash != std::string::npos && dash > 0 && line.find(' ') > dash &&
        std::isxdigit(static_cast<unsigned char>(line[0]))) {
      in_it = std::stoull(line.substr(0, dash), nullptr, 16) == addr(p);
      continue;
    }
    if (in_it && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return "";
}

TEST(Region, SmallIsPageSizedAndZeroed) {
  Region r(100);
  ASSERT_NE(r.as<unsigned char>(), nullptr);
  EXPECT_EQ(r.size(), 4096u);
  for (std::size_t i = 0; i < r.size(); ++i) ASSERT_EQ(r.as<unsigned char>()[i], 0) << i;
  EXPECT_EQ(Region().size(), 0u);
  EXPECT_EQ(Region(0).as<void>(), nullptr);
}

TEST(Region, LargeIsAlignedForHugePagesAndAdvisedToUseThem) {
  constexpr std::size_t kHuge = std::size_t{2} << 20;
  Region r(kHuge + 1);
  EXPECT_EQ(r.size(), 2 * kHuge);
  EXPECT_EQ(addr(r.as<void>()) % kHuge, 0u);
  r.as<unsigned char>()[r.size() - 1] = 1;  // all of it is mapped
  if (!std::filesystem::exists("/sys/kernel/mm/transparent_hugepage"))
    GTEST_SKIP() << "kernel without transparent huge pages";
  EXPECT_NE(vm_flags(r.as<void>()).find(" hg"), std::string::npos) << vm_flags(r.as<void>());
}

TEST(Region, MovesOwnership) {
  Region a(4096);
  void* p = a.as<void>();
  Region b(std::move(a));
  EXPECT_EQ(b.as<void>(), p);
  EXPECT_EQ(a.size(), 0u);  // NOLINT: moved-from is empty
  Region c;
  c = std::move(b);
  EXPECT_EQ(c.as<void>(), p);
}

TEST(Arena, PlacesEachAllocationOnItsOwnCacheLineWithinTheRoomSized) {
  std::size_t bytes = 0;
  for (std::size_t n : {1u, 64u, 100u, 0u, 3000u}) bytes = Arena::place(bytes, n);
  Arena a(bytes);
  std::vector<std::uintptr_t> at;
  for (std::size_t n : {1u, 64u, 100u, 0u, 3000u}) {
    void* p = a.take(n);
    if (n == 0) continue;
    EXPECT_TRUE(a.holds(p));
    EXPECT_EQ(addr(p) % 64, 0u) << n;
    at.push_back(addr(p));
  }
  EXPECT_EQ(a.used(), bytes);
  for (std::size_t i = 1; i < at.size(); ++i) EXPECT_GT(at[i], at[i - 1]);
  EXPECT_GE(at[1] - at[0], 64u);
  EXPECT_GE(at[2] - at[1], 64u);
  EXPECT_GE(at[3] - at[2], 128u);  // 100 bytes take two lines
  EXPECT_EQ(a.room(), bytes);
  // Beyond the room it was sized for: refused.
  EXPECT_THROW(a.take(1), std::bad_alloc);
  EXPECT_FALSE(a.holds(&bytes));
}

TEST(ArenaAllocator, TablesMovedInLiveInTheArenaAndCopiesOnTheHeap) {
  Table<std::uint64_t> heap{1, 2, 3};
  EXPECT_EQ(heap.get_allocator().arena(), nullptr);
  Arena a(Arena::place(0, 3 * sizeof(std::uint64_t)));
  Table<std::uint64_t> packed{ArenaAllocator<std::uint64_t>(&a)};
  packed.reserve(heap.size());
  packed.assign(heap.begin(), heap.end());
  heap = std::move(packed);  // takes the arena's allocator along
  EXPECT_TRUE(a.holds(heap.data()));
  EXPECT_EQ(heap, (Table<std::uint64_t>{1, 2, 3}));
  const Table<std::uint64_t> copy = heap;
  EXPECT_EQ(copy.get_allocator().arena(), nullptr);
  EXPECT_FALSE(a.holds(copy.data()));
  EXPECT_EQ(copy, heap);
  // The arena is full: growing the packed table fails rather than writing past it.
  EXPECT_THROW(heap.push_back(4), std::bad_alloc);
  EXPECT_EQ(heap.size(), 3u);
}

}  // namespace
}  // namespace pc::base
