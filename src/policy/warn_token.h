// Signed "continue" tokens for warn pages. A token says: until `expires`, `who` (a user name or
// a client address) may continue to `site` (a host) despite a warn decision. It is base64url
// without padding (safe in URLs and cookies): version, expiry and an HMAC-SHA256 over both and
// the bound who and site. Verification is constant-time and never throws. Built on the control
// thread; issue() and verify() are const and safe from any thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>

namespace pc::policy {

class WarnSigner {
 public:
  // key: the secret, at least 16 bytes (throws std::invalid_argument if shorter).
  explicit WarnSigner(std::string key);

  // 32 random bytes from the OpenSSL CSPRNG (throws std::runtime_error if it fails).
  static std::string generate_key();
  // Reads the key from file; when the file does not exist, creates it atomically with a new
  // random 32-byte key and mode 0600. Throws std::runtime_error (naming the file) when it cannot
  // be read or created, or holds fewer than 16 or more than 4096 bytes. Logs a warning when the
  // file is readable by group or others.
  static std::string load_or_create_key(const std::filesystem::path& file);

  // A token valid until expires (whole seconds, rounded down). site is compared
  // case-insensitively, who exactly.
  std::string issue(std::string_view who, std::string_view site,
                    std::chrono::system_clock::time_point expires) const;
  // True only for a token this key issued for the same who and site whose expiry is after now.
  // Any other input (tampered, truncated, garbage, other key) gives false.
  bool verify(std::string_view token, std::string_view who, std::string_view site,
              std::chrono::system_clock::time_point now) const;

 private:
  std::string key_;
};

}  // namespace pc::policy
