// Fuzzes the RFC 6587 octet-counting parser (the syslog disk queue reads its segment files
// with it) and the syslog escapers: frames re-encode to the same bytes; escaped values are
// valid UTF-8 without control characters and without an unescaped special character.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "telemetry/syslog_format.h"

using namespace pc::telemetry;
using pc::wire::fuzz::inside;

namespace {

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    i += n;
  }
  return true;
}

// Valid UTF-8 without control characters.
void check_clean(std::string_view out) {
  FUZZ_CHECK(valid_utf8(out));
  for (char ch : out) {
    auto c = static_cast<unsigned char>(ch);
    FUZZ_CHECK(c >= 0x20 && c != 0x7f);
  }
}

// Clean, every byte of `special` appears only after a backslash, and every backslash starts a
// pair (with '\\', a special byte or one of `also`).
void check_escaped(std::string_view out, std::string_view special, std::string_view also) {
  check_clean(out);
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '\\') {
      FUZZ_CHECK(i + 1 < out.size());
      char next = out[i + 1];
      FUZZ_CHECK(next == '\\' || special.find(next) != std::string_view::npos ||
                 also.find(next) != std::string_view::npos);
      ++i;
      continue;
    }
    FUZZ_CHECK(special.find(out[i]) == std::string_view::npos);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  // Frames, one after the other, as the disk queue reads a segment.
  constexpr std::size_t kMax = 4096;
  std::string_view rest = in;
  for (int guard = 0; guard < 100000 && !rest.empty(); ++guard) {
    std::string_view msg;
    std::size_t n = 0;
    auto st = parse_octet_frame(rest, kMax, msg, n);
    if (st != FrameStatus::complete) {
      if (st == FrameStatus::incomplete) {
        // Only digits, or digits, a space and fewer bytes than announced.
        auto sp = rest.find(' ');
        FUZZ_CHECK(rest.substr(0, sp).find_first_not_of("0123456789") == std::string_view::npos);
      }
      break;
    }
    FUZZ_CHECK(n > 0 && n <= rest.size());
    FUZZ_CHECK(!msg.empty() && msg.size() <= kMax);
    FUZZ_CHECK(inside(msg, rest.substr(0, n)));
    std::string again;
    append_octet_frame(again, msg);
    FUZZ_CHECK(again == rest.substr(0, n));
    rest.remove_prefix(n);
  }

  // Escapers over arbitrary bytes.
  std::string out;
  esc::sd_value(out, in);
  check_escaped(out, "\"]", "");
  out.clear();
  esc::cef_value(out, in);
  check_escaped(out, "=", "nr");
  out.clear();
  esc::cef_header(out, in);
  check_escaped(out, "|", "");
  out.clear();
  esc::text(out, in);
  check_clean(out);
  return 0;
}
