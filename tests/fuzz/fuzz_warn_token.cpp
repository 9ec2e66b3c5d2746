// Fuzzes warn token verification (policy::WarnSigner). Invariants: verify() is true only for
// the exact token the same key issued for the same who (exactly) and site (ASCII case aside)
// with an expiry after now; every mutation of an issued token, of who or of site fails; a
// token verifies under no other key; issue() gives 55 base64url characters whose expiry
// decodes back; verify() never throws, whatever the bytes.
//
// Input: byte 0 picks the mode (raw bytes as a token, or mutations of an issued token), the
// rest drives FuzzedDataProvider.
#include <fuzzer/FuzzedDataProvider.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "policy/warn_token.h"

using pc::policy::WarnSigner;
using Clock = std::chrono::system_clock;

namespace {

const WarnSigner& signer_a() {
  static const WarnSigner s(std::string("0123456789abcdef0123456789ABCDEF"));
  return s;
}
const WarnSigner& signer_b() {
  // Differs from A in the last byte only.
  static const WarnSigner s(std::string("0123456789abcdef0123456789ABCDEG"));
  return s;
}

// Seconds and milliseconds that a system_clock time_point (nanoseconds) holds without overflow.
constexpr std::int64_t kMaxSeconds = (std::int64_t{1} << 33) - 1;

Clock::time_point at(std::int64_t seconds, int millis) {
  return Clock::time_point(std::chrono::seconds(seconds) + std::chrono::milliseconds(millis));
}

std::int64_t floor_seconds(Clock::time_point t) {
  return std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::string ascii_lower(std::string_view s) {
  std::string r(s);
  for (char& c : r)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return r;
}

int b64(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// Reference decoder: the version byte and expiry of a well-formed 55-character token.
std::optional<std::pair<int, std::int64_t>> decode(std::string_view t) {
  if (t.size() != 55) return std::nullopt;
  std::string bytes;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : t) {
    int v = b64(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if (bytes.size() != 41) return std::nullopt;
  std::uint64_t e = 0;
  for (int i = 1; i <= 8; ++i) e = (e << 8) | static_cast<unsigned char>(bytes[i]);
  return std::make_pair(static_cast<unsigned char>(bytes[0]), static_cast<std::int64_t>(e));
}

bool verify_no_throw(const WarnSigner& s, std::string_view token, std::string_view who,
                     std::string_view site, Clock::time_point now) {
  try {
    return s.verify(token, who, site, now);
  } catch (...) {
    FUZZ_CHECK(!"verify threw");
  }
  return false;
}

// verify(token, who, site, now) may only be true if A issued exactly this token for them.
void check_only_issued(std::string_view token, std::string_view who, std::string_view site,
                       Clock::time_point now) {
  if (verify_no_throw(signer_b(), token, who, site, now)) {
    // B may accept only its own tokens; A must then reject the same.
    FUZZ_CHECK(!verify_no_throw(signer_a(), token, who, site, now));
  }
  if (!verify_no_throw(signer_a(), token, who, site, now)) return;
  auto d = decode(token);
  FUZZ_CHECK(d.has_value());
  FUZZ_CHECK(d->first == 1);
  FUZZ_CHECK(d->second > floor_seconds(now));
  // The token is the one A issues for this who, site and expiry: one spelling only.
  if (d->second <= kMaxSeconds) FUZZ_CHECK(signer_a().issue(who, site, at(d->second, 0)) == token);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  FuzzedDataProvider fdp(data + 1, size - 1);
  const std::int64_t now_s =
      fdp.ConsumeIntegralInRange<std::int64_t>(-kMaxSeconds + 1, kMaxSeconds - 1);
  const int now_ms = fdp.ConsumeIntegralInRange<int>(0, 999);
  const Clock::time_point now = at(now_s, now_ms);

  if (data[0] % 2 == 0) {
    // Raw: arbitrary bytes as token, who and site.
    std::string who = fdp.ConsumeRandomLengthString(64);
    std::string site = fdp.ConsumeRandomLengthString(64);
    std::string token = fdp.ConsumeRemainingBytesAsString();
    check_only_issued(token, who, site, now);
    // A 55-character token of the alphabet with the right version is the interesting case:
    // force the length to reach decode and the MAC comparison.
    if (token.size() > 55) check_only_issued(std::string_view(token).substr(0, 55), who, site, now);
    return 0;
  }

  // Issued: a real token, then mutations.
  std::string who = fdp.ConsumeRandomLengthString(32);
  std::string site = fdp.ConsumeRandomLengthString(32);
  const std::int64_t exp_s =
      fdp.ConsumeIntegralInRange<std::int64_t>(-kMaxSeconds + 1, kMaxSeconds - 1);
  const int exp_ms = fdp.ConsumeIntegralInRange<int>(0, 999);
  const std::string token = signer_a().issue(who, site, at(exp_s, exp_ms));
  FUZZ_CHECK(token.size() == 55);
  for (char c : token) FUZZ_CHECK(b64(c) >= 0);
  auto d = decode(token);
  FUZZ_CHECK(d && d->first == 1 && d->second == exp_s);
  const bool live = exp_s > now_s;
  FUZZ_CHECK(verify_no_throw(signer_a(), token, who, site, now) == live);
  FUZZ_CHECK(verify_no_throw(signer_a(), token, who, ascii_lower(site), now) == live);
  FUZZ_CHECK(!verify_no_throw(signer_b(), token, who, site, now));
  // Valid until the last whole second before expiry, not at it.
  FUZZ_CHECK(verify_no_throw(signer_a(), token, who, site, at(exp_s - 1, 999)));
  FUZZ_CHECK(!verify_no_throw(signer_a(), token, who, site, at(exp_s, 0)));
  // Issuing is deterministic.
  FUZZ_CHECK(signer_a().issue(who, site, at(exp_s, exp_ms)) == token);

  std::string t2 = token, who2 = who, site2 = site;
  const int rounds = fdp.ConsumeIntegralInRange<int>(1, 8);
  for (int i = 0; i < rounds && fdp.remaining_bytes() > 0; ++i) {
    const int op = fdp.ConsumeIntegralInRange<int>(0, 9);
    const char c = fdp.ConsumeIntegral<char>();
    std::string& target = op >= 8 ? (op == 8 ? who2 : site2) : t2;
    const std::size_t pos =
        target.empty() ? 0 : fdp.ConsumeIntegralInRange<std::size_t>(0, target.size() - 1);
    switch (op) {
      case 0:  // replace a character
      case 8:
      case 9:
        if (!target.empty())
          target[pos] = c;
        else
          target += c;
        break;
      case 1:  // insert
        t2.insert(t2.begin() + static_cast<std::ptrdiff_t>(pos), c);
        break;
      case 2:  // delete
        if (!t2.empty()) t2.erase(pos, 1);
        break;
      case 3:  // truncate
        t2.resize(pos);
        break;
      case 4:  // append
        t2 += c;
        break;
      case 5:  // flip one bit of the 6 a character carries
        if (!t2.empty() && b64(t2[pos]) >= 0)
          t2[pos] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
              [b64(t2[pos]) ^ (1 << (static_cast<unsigned char>(c) % 6))];
        break;
      case 6:  // swap case
        if (!t2.empty()) {
          char& ch = t2[pos];
          if (ch >= 'a' && ch <= 'z')
            ch = static_cast<char>(ch - 32);
          else if (ch >= 'A' && ch <= 'Z')
            ch = static_cast<char>(ch + 32);
        }
        break;
      case 7:  // padding, as a lenient decoder would accept
        t2 += '=';
        break;
    }
  }
  const bool same = t2 == token && who2 == who && ascii_lower(site2) == ascii_lower(site);
  const bool ok = verify_no_throw(signer_a(), t2, who2, site2, now);
  if (ok) FUZZ_CHECK(same && live);
  if (same) FUZZ_CHECK(ok == live);
  check_only_issued(t2, who2, site2, now);
  return 0;
}
