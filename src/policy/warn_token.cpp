#include "policy/warn_token.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <system_error>

#include "base/log.h"
#include "base/strings.h"

namespace pc::policy {

namespace {

constexpr std::uint8_t kVersion = 1;
constexpr std::size_t kMacSize = 32;
constexpr std::size_t kRawSize = 1 + 8 + kMacSize;          // version, expiry, MAC
constexpr std::size_t kTokenSize = (kRawSize * 8 + 5) / 6;  // base64url without padding: 55
constexpr std::size_t kMinKey = 16;
constexpr std::size_t kMaxKey = 4096;
constexpr std::size_t kKeySize = 32;

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url(const std::uint8_t* p, std::size_t n) {
  std::string out;
  out.reserve((n * 8 + 5) / 6);
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < n; ++i) {
    acc = (acc << 8) | p[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 0x3f];
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 0x3f];
  return out;
}

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// Strict: exactly kTokenSize characters of the alphabet, no padding, zero trailing bits.
bool decode_token(std::string_view s, std::array<std::uint8_t, kRawSize>& out) {
  if (s.size() != kTokenSize) return false;
  std::uint32_t acc = 0;
  int bits = 0;
  std::size_t n = 0;
  for (char c : s) {
    int v = b64_value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (n >= out.size()) return false;
      out[n++] = static_cast<std::uint8_t>((acc >> bits) & 0xff);
    }
  }
  if (n != out.size()) return false;
  return (acc & ((1u << bits) - 1)) == 0;  // unused low bits must be zero (one spelling only)
}

void put_u64(std::string& s, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) s += static_cast<char>((v >> (i * 8)) & 0xff);
}

// The signed message: a domain label, version, expiry, then length-prefixed who and site.
std::string message(std::uint8_t version, std::uint64_t expiry, std::string_view who,
                    std::string_view site) {
  std::string m = "portcullis warn token";
  m += '\0';
  m += static_cast<char>(version);
  put_u64(m, expiry);
  put_u64(m, who.size());
  m.append(who);
  std::string host = base::to_lower(site);
  put_u64(m, host.size());
  m += host;
  return m;
}

bool mac(const std::string& key, const std::string& msg, std::uint8_t* out) {
  unsigned int len = 0;
  auto* r = HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                 reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len);
  return r != nullptr && len == kMacSize;
}

std::int64_t to_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
}

[[noreturn]] void fail(const std::filesystem::path& file, std::string_view what, int err) {
  throw std::runtime_error(
      fmt::format("{}: {}: {}", file.string(), what, std::system_category().message(err)));
}

std::string read_key(const std::filesystem::path& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(file, "cannot open the warn key file", errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail(file, "cannot read the warn key file", err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw std::runtime_error(
        fmt::format("{}: the warn key file is not a regular file", file.string()));
  }
  if ((st.st_mode & 077) != 0)
    log::warn("{}: the warn key file is accessible to group or others (mode {:o}); use 0600",
              file.string(), st.st_mode & 0777);
  std::string key;
  char buf[1024];
  while (key.size() <= kMaxKey) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      fail(file, "cannot read the warn key file", err);
    }
    if (n == 0) break;
    key.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (key.size() < kMinKey || key.size() > kMaxKey)
    throw std::runtime_error(fmt::format(
        "{}: the warn key file holds {} bytes; expected {} to {}", file.string(),
        key.size() > kMaxKey ? std::string("more than 4096") : std::to_string(key.size()), kMinKey,
        kMaxKey));
  return key;
}

}  // namespace

WarnSigner::WarnSigner(std::string key) : key_(std::move(key)) {
  if (key_.size() < kMinKey) throw std::invalid_argument("warn token key shorter than 16 bytes");
}

std::string WarnSigner::generate_key() {
  std::string key(kKeySize, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), static_cast<int>(key.size())) != 1)
    throw std::runtime_error("cannot generate a warn token key: the random generator failed");
  return key;
}

std::string WarnSigner::load_or_create_key(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) == 0) return read_key(file);
  if (errno != ENOENT) fail(file, "cannot read the warn key file", errno);

  // Write a new key to a private temporary file beside it, then link it into place: link()
  // never replaces an existing file, so a concurrent creator's key wins and is the one read.
  std::string key = generate_key();
  std::string tmp = file.string() + ".XXXXXX";
  int fd = ::mkstemp(tmp.data());  // mode 0600
  if (fd < 0) fail(file, "cannot create the warn key file", errno);
  auto cleanup = [&] {
    ::close(fd);
    ::unlink(tmp.c_str());
  };
  if (::fchmod(fd, 0600) != 0) {
    int err = errno;
    cleanup();
    fail(file, "cannot create the warn key file", err);
  }
  std::size_t done = 0;
  while (done < key.size()) {
    ssize_t n = ::write(fd, key.data() + done, key.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      cleanup();
      fail(file, "cannot write the warn key file", err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    cleanup();
    fail(file, "cannot write the warn key file", err);
  }
  int linked = ::link(tmp.c_str(), file.c_str());
  int link_err = errno;
  cleanup();
  if (linked != 0) {
    if (link_err == EEXIST) return read_key(file);
    fail(file, "cannot create the warn key file", link_err);
  }
  return key;
}

std::string WarnSigner::issue(std::string_view who, std::string_view site,
                              std::chrono::system_clock::time_point expires) const {
  auto expiry = static_cast<std::uint64_t>(to_seconds(expires));
  std::array<std::uint8_t, kRawSize> raw{};
  raw[0] = kVersion;
  for (int i = 0; i < 8; ++i) raw[1 + i] = static_cast<std::uint8_t>(expiry >> ((7 - i) * 8));
  if (!mac(key_, message(kVersion, expiry, who, site), raw.data() + 9)) return {};
  return base64url(raw.data(), raw.size());
}

bool WarnSigner::verify(std::string_view token, std::string_view who, std::string_view site,
                        std::chrono::system_clock::time_point now) const {
  std::array<std::uint8_t, kRawSize> raw{};
  if (!decode_token(token, raw)) return false;
  if (raw[0] != kVersion) return false;
  std::uint64_t expiry = 0;
  for (int i = 0; i < 8; ++i) expiry = (expiry << 8) | raw[1 + i];
  std::array<std::uint8_t, kMacSize> expected{};
  if (!mac(key_, message(raw[0], expiry, who, site), expected.data())) return false;
  if (CRYPTO_memcmp(expected.data(), raw.data() + 9, kMacSize) != 0) return false;
  return static_cast<std::int64_t>(expiry) > to_seconds(now);
}

}  // namespace pc::policy
