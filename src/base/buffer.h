// A contiguous byte buffer with a read position: read into prepare()/commit(), parse from
// data(), drop what was used with consume(). Compacts instead of growing when it can.
// Storage of the standard block size comes from a small per-thread cache, so that a
// keep-alive connection can give its buffer back between requests at almost no cost.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace pc::base {

class Buffer {
 public:
  static constexpr std::size_t kBlock = 64 * 1024;

  // block: the first allocation's size. Only kBlock-sized storage goes through the cache.
  explicit Buffer(std::size_t block = kBlock) : block_(block) {}
  ~Buffer() { free_storage(); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  std::string_view data() const { return {buf_ + rd_, wr_ - rd_}; }
  std::size_t size() const { return wr_ - rd_; }
  bool empty() const { return rd_ == wr_; }

  // At least `min` writable bytes; the span is all the free space, often more.
  std::span<char> prepare(std::size_t min = 4096) {
    if (!buf_) {
      cap_ = block_;
      while (cap_ < min) cap_ *= 2;
      buf_ = cap_ == kBlock ? take_block() : new char[cap_];
    }
    if (cap_ - wr_ < min) {
      if (rd_ > 0) {  // compact
        std::memmove(buf_, buf_ + rd_, wr_ - rd_);
        wr_ -= rd_;
        rd_ = 0;
      }
      if (cap_ - wr_ < min) {
        std::size_t ncap = cap_ * 2;
        while (ncap - wr_ < min) ncap *= 2;
        char* nb = new char[ncap];
        std::memcpy(nb, buf_, wr_);
        free_storage();
        buf_ = nb;
        cap_ = ncap;
      }
    }
    return {buf_ + wr_, cap_ - wr_};
  }
  void commit(std::size_t n) { wr_ += n; }
  void consume(std::size_t n) {
    rd_ += n;
    if (rd_ == wr_) rd_ = wr_ = 0;
  }
  void clear() { rd_ = wr_ = 0; }
  // Gives the storage back when empty (idle keep-alive connections hold no buffer).
  void release() {
    if (!empty()) return;
    free_storage();
    rd_ = wr_ = 0;
  }
  std::size_t capacity() const { return buf_ ? cap_ : 0; }

 private:
  struct Cache {
    std::vector<char*> blocks;
    ~Cache() {
      for (char* b : blocks) delete[] b;
    }
  };
  static Cache& cache() {
    thread_local Cache c;
    return c;
  }
  static char* take_block() {
    auto& c = cache().blocks;
    if (c.empty()) return new char[kBlock];
    char* b = c.back();
    c.pop_back();
    return b;
  }
  void free_storage() {
    if (!buf_) return;
    auto& c = cache().blocks;
    if (cap_ == kBlock && c.size() < 256)
      c.push_back(buf_);
    else
      delete[] buf_;
    buf_ = nullptr;
    cap_ = 0;
  }

  std::size_t block_;
  char* buf_ = nullptr;
  std::size_t cap_ = 0;
  std::size_t rd_ = 0, wr_ = 0;
};

}  // namespace pc::base
