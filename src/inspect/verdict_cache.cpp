#include "inspect/verdict_cache.h"

#include <openssl/evp.h>

#include <cstring>
#include <new>

namespace pc::inspect {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) throw std::bad_alloc();
}

Sha256::~Sha256() {
  if (ctx_) EVP_MD_CTX_free(ctx_);
}

void Sha256::update(const void* data, std::size_t size) {
  if (size) EVP_DigestUpdate(ctx_, data, size);
}

Digest Sha256::final() {
  Digest d{};
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx_, d.data(), &len);
  EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr);
  return d;
}

Digest Sha256::of(const void* data, std::size_t size) {
  Sha256 h;
  h.update(data, size);
  return h.final();
}

std::string Sha256::hex(const Digest& d) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (auto b : d) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 15]);
  }
  return out;
}

std::size_t VerdictCache::KeyHash::operator()(const Key& k) const noexcept {
  // The digest is already uniformly distributed.
  std::uint64_t h;
  std::memcpy(&h, k.sha.data(), sizeof h);
  return static_cast<std::size_t>(h ^ (k.generation * 0x9e3779b97f4a7c15ull));
}

VerdictCache::VerdictCache(std::size_t capacity) : capacity_(capacity) {}

std::optional<ScanFacts> VerdictCache::find(const Digest& sha256, std::uint64_t generation) {
  std::lock_guard lock(mu_);
  auto it = index_.find(Key{sha256, generation});
  if (it == index_.end()) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  hits_.fetch_add(1, std::memory_order_relaxed);
  return it->second->second;
}

bool VerdictCache::insert(const Digest& sha256, std::uint64_t generation, const ScanFacts& facts) {
  if (facts.verdict.kind == Verdict::error || capacity_ == 0) return false;
  Key key{sha256, generation};
  std::lock_guard lock(mu_);
  if (auto it = index_.find(key); it != index_.end()) {
    it->second->second = facts;
    lru_.splice(lru_.begin(), lru_, it->second);
    return true;
  }
  if (lru_.size() >= capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  lru_.emplace_front(key, facts);
  index_.emplace(key, lru_.begin());
  return true;
}

void VerdictCache::clear() {
  std::lock_guard lock(mu_);
  index_.clear();
  lru_.clear();
}

std::size_t VerdictCache::size() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}

}  // namespace pc::inspect
