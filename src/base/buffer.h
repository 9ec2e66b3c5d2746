// A contiguous byte buffer with a read position: read into prepare()/commit(), parse from
// data(), drop what was used with consume(). Compacts instead of growing when it can.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>

namespace pc::base {

class Buffer {
 public:
  explicit Buffer(std::size_t initial = 16384) : cap_(initial) {}

  std::string_view data() const { return {buf_.get() + rd_, wr_ - rd_}; }
  std::size_t size() const { return wr_ - rd_; }
  bool empty() const { return rd_ == wr_; }

  // At least `min` writable bytes (allocating on first use).
  std::span<char> prepare(std::size_t min = 4096) {
    if (!buf_) buf_ = std::make_unique<char[]>(cap_);
    if (cap_ - wr_ < min) {
      if (rd_ > 0) {  // compact
        std::memmove(buf_.get(), buf_.get() + rd_, wr_ - rd_);
        wr_ -= rd_;
        rd_ = 0;
      }
      if (cap_ - wr_ < min) {
        std::size_t ncap = cap_ * 2;
        while (ncap - wr_ < min) ncap *= 2;
        auto nb = std::make_unique<char[]>(ncap);
        std::memcpy(nb.get(), buf_.get(), wr_);
        buf_ = std::move(nb);
        cap_ = ncap;
      }
    }
    return {buf_.get() + wr_, cap_ - wr_};
  }
  void commit(std::size_t n) { wr_ += n; }
  void consume(std::size_t n) {
    rd_ += n;
    if (rd_ == wr_) rd_ = wr_ = 0;
  }
  void clear() { rd_ = wr_ = 0; }
  // Frees the storage (idle keep-alive connections hold no buffer).
  void release() {
    if (empty()) {
      buf_.reset();
      rd_ = wr_ = 0;
    }
  }
  std::size_t capacity() const { return buf_ ? cap_ : 0; }

 private:
  std::unique_ptr<char[]> buf_;
  std::size_t cap_;
  std::size_t rd_ = 0, wr_ = 0;
};

}  // namespace pc::base
