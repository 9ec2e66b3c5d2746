// Memory: giving what the process no longer uses back to the system, mappings of their own
// (Region) and tables packed into one (Arena, ArenaAllocator).
#pragma once

#include <cstddef>
#include <memory>
#include <type_traits>

namespace pc::base {

// Returns the allocator's free pages to the kernel: tcmalloc's when the process is linked with
// it (ADR 0007), else glibc's (malloc_trim). For after a large build-up and tear-down, such as
// loading a policy and its databases; can take milliseconds, never on a worker thread.
void release_free_memory();

// Zero-filled anonymous memory in a mapping of its own. From 2 MiB it is aligned for
// transparent huge pages and advised to use them: the kernel gives them when its setting
// (/sys/kernel/mm/transparent_hugepage/enabled) is "always" or "madvise", and 4 KiB pages
// otherwise. Throws std::bad_alloc when the mapping fails.
class Region {
 public:
  Region() = default;
  explicit Region(std::size_t bytes);
  Region(Region&& o) noexcept;
  Region& operator=(Region&& o) noexcept;
  ~Region();
  template <class T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  std::size_t size() const { return data_ ? size_ : 0; }

 private:
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

// Memory handed out in order from one Region and given back all at once when the Arena goes:
// for tables built on the heap and copied in once final, so that what a hot path reads lies
// in a few (huge) pages and in as few cache lines as its data. Each allocation starts a cache
// line. Sanitizer builds leave a gap after each and mark the memory no allocation holds
// unaddressable.
class Arena {
 public:
  Arena() = default;
  // Room for allocations totalling `bytes` as placed by place().
  explicit Arena(std::size_t bytes);
  Arena(Arena&& o) noexcept;
  Arena& operator=(Arena&& o) noexcept;
  ~Arena();
  // Where an allocation of `bytes` (of any alignment up to 64: it starts a cache line) made
  // after `used` bytes ends: sum the allocations to come with it to size an Arena.
  static std::size_t place(std::size_t used, std::size_t bytes);
  // Throws std::bad_alloc beyond the room it was made with.
  void* take(std::size_t bytes);
  std::size_t used() const { return used_; }
  std::size_t room() const { return room_; }
  bool holds(const void* p) const {
    const auto* b = region_.as<const unsigned char>();
    return b && p >= b && p < b + region_.size();
  }

 private:
  void release();
  Region region_;
  std::size_t room_ = 0, used_ = 0;
};

// A standard allocator taking from an Arena (and never giving back: the Arena does, whole),
// or from the heap when made without one. Copies of a container go to the heap; moving one
// takes its allocator along.
template <class T>
class ArenaAllocator {
 public:
  using value_type = T;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_swap = std::true_type;
  using is_always_equal = std::false_type;

  ArenaAllocator() = default;
  explicit ArenaAllocator(Arena* a) : arena_(a) {}
  template <class U>
  ArenaAllocator(const ArenaAllocator<U>& o) : arena_(o.arena()) {}  // NOLINT: rebinding

  T* allocate(std::size_t n) {
    static_assert(alignof(T) <= 64);
    if (arena_) return static_cast<T*>(arena_->take(n * sizeof(T)));
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) {
    if (!arena_) std::allocator<T>().deallocate(p, n);
  }
  ArenaAllocator select_on_container_copy_construction() const { return {}; }
  Arena* arena() const { return arena_; }
  template <class U>
  bool operator==(const ArenaAllocator<U>& o) const {
    return arena_ == o.arena();
  }

 private:
  Arena* arena_ = nullptr;
};

}  // namespace pc::base
