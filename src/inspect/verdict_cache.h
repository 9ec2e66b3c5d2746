// A bounded LRU of scan verdicts keyed by content hash and engine generation (with the true
// file type and the engine that decided, so that a hit needs no work at all), and the
// incremental SHA-256 that computes the key while a body streams.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "inspect/verdict.h"

struct evp_md_ctx_st;

namespace pc::inspect {

using Digest = std::array<std::uint8_t, 32>;

// Incremental SHA-256 (OpenSSL EVP). Not copyable; one per body.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&& o) noexcept : ctx_(o.ctx_) { o.ctx_ = nullptr; }
  Sha256& operator=(Sha256&&) = delete;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, std::size_t size);
  void update(std::string_view s) { update(s.data(), s.size()); }
  void update(std::span<const std::byte> s) { update(s.data(), s.size()); }
  // The digest of everything fed so far; the object is then reset for a new input.
  Digest final();

  static Digest of(const void* data, std::size_t size);
  static std::string hex(const Digest& d);  // 64 lower-case hex digits

 private:
  evp_md_ctx_st* ctx_;
};

// What a scan found out about one content: the verdict, its true file type and which engine
// decided. Everything a cache hit needs, so that a hit costs no detection or scan.
struct ScanFacts {
  Verdict verdict;
  std::string file_type;  // FileType::name ("exe", "zip", ... "unknown")
  std::string engine;     // the engine that decided ("ClamAV 1.4.6/27345", "YARA 12 rules"...)

  bool operator==(const ScanFacts&) const = default;
};

// Thread-safe LRU: `capacity` entries at most (the least recently used is evicted). The key
// includes the engine generation, so a new engine never sees its predecessor's verdicts (they
// age out). Only clean, infected and unscannable verdicts are stored: an error is not a fact
// about the content.
class VerdictCache {
 public:
  explicit VerdictCache(std::size_t capacity);

  std::optional<ScanFacts> find(const Digest& sha256, std::uint64_t generation);
  // False when the verdict is an error (not stored) or the capacity is 0.
  bool insert(const Digest& sha256, std::uint64_t generation, const ScanFacts& facts);
  // Drops every entry (for example when an engine generation is retired).
  void clear();

  std::size_t size() const;
  std::size_t capacity() const { return capacity_; }
  std::uint64_t hits() const { return hits_.load(std::memory_order_relaxed); }
  std::uint64_t misses() const { return misses_.load(std::memory_order_relaxed); }

 private:
  struct Key {
    Digest sha;
    std::uint64_t generation;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept;
  };
  using Lru = std::list<std::pair<Key, ScanFacts>>;

  const std::size_t capacity_;
  mutable std::mutex mu_;
  Lru lru_;  // most recently used first
  std::unordered_map<Key, Lru::iterator, KeyHash> index_;
  std::atomic<std::uint64_t> hits_{0};
  std::atomic<std::uint64_t> misses_{0};
};

}  // namespace pc::inspect
