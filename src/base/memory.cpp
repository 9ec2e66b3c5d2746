#include "base/memory.h"

#include <malloc.h>
#include <sys/mman.h>

#include <cstdint>
#include <new>
#include <utility>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define PC_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define PC_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define PC_POISON(p, n) ((void)(p), (void)(n))
#define PC_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

// Defined by tcmalloc when the executable links it; null otherwise.
extern "C" void MallocExtension_ReleaseFreeMemory() __attribute__((weak));

namespace pc::base {

void release_free_memory() {
  if (MallocExtension_ReleaseFreeMemory != nullptr) {
    MallocExtension_ReleaseFreeMemory();
    return;
  }
  malloc_trim(0);
}

Region::Region(std::size_t bytes) {
  if (bytes == 0) return;
  constexpr std::size_t kPage = 4096, kHuge = std::size_t{2} << 20;
  size_ = (bytes + kPage - 1) / kPage * kPage;
  if (size_ < kHuge) {
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    data_ = p;
    return;
  }
  // Mapped with a huge page's room to spare, then trimmed to an aligned start.
  size_ = (size_ + kHuge - 1) / kHuge * kHuge;
  void* p =
      ::mmap(nullptr, size_ + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  const auto base = reinterpret_cast<std::uintptr_t>(p);
  const auto aligned = (base + kHuge - 1) / kHuge * kHuge;
  if (aligned > base) ::munmap(p, aligned - base);
  if (std::size_t tail = base + size_ + kHuge - (aligned + size_); tail != 0)
    ::munmap(reinterpret_cast<void*>(aligned + size_), tail);
  data_ = reinterpret_cast<void*>(aligned);
#ifdef MADV_HUGEPAGE
  ::madvise(data_, size_, MADV_HUGEPAGE);
#endif
}

Region::Region(Region&& o) noexcept : data_(o.data_), size_(o.size_) {
  o.data_ = nullptr;
}

Region& Region::operator=(Region&& o) noexcept {
  std::swap(data_, o.data_);
  std::swap(size_, o.size_);
  return *this;
}

Region::~Region() {
  if (data_) ::munmap(data_, size_);
}

namespace {

constexpr std::size_t kLine = 64;
#if defined(__SANITIZE_ADDRESS__)
constexpr std::size_t kGap = kLine;  // unaddressable, between allocations
#else
constexpr std::size_t kGap = 0;
#endif

}  // namespace

Arena::Arena(std::size_t bytes) : region_(bytes), room_(bytes) {
  PC_POISON(region_.as<void>(), region_.size());
}

Arena::Arena(Arena&& o) noexcept
    : region_(std::move(o.region_)),
      room_(std::exchange(o.room_, 0)),
      used_(std::exchange(o.used_, 0)) {}

Arena& Arena::operator=(Arena&& o) noexcept {
  if (this != &o) {
    release();
    region_ = std::move(o.region_);
    room_ = std::exchange(o.room_, 0);
    used_ = std::exchange(o.used_, 0);
  }
  return *this;
}

Arena::~Arena() {
  release();
}

void Arena::release() {
  // The mapping's addresses may be mapped again: nothing of them stays marked.
  PC_UNPOISON(region_.as<void>(), region_.size());
  region_ = Region();
  room_ = used_ = 0;
}

std::size_t Arena::place(std::size_t used, std::size_t bytes) {
  if (bytes == 0) return used;
  return (used + kLine - 1) / kLine * kLine + bytes + kGap;
}

void* Arena::take(std::size_t bytes) {
  if (bytes == 0) return region_.as<unsigned char>() + used_;
  const std::size_t end = place(used_, bytes);
  if (end > room_) throw std::bad_alloc();
  unsigned char* p = region_.as<unsigned char>() + (end - bytes - kGap);
  PC_UNPOISON(p, bytes);
  used_ = end;
  return p;
}

}  // namespace pc::base
