// Fuzzes txn::body_file_name (txn/scan.h): the Content-Disposition parameter parser (quoted
// strings, RFC 8187 ext-values), the multipart part-header scan and the URL's last segment
// all read untrusted bytes. Invariants: no crash or out-of-bounds read; the name is at most
// 255 bytes, has no directory separator, no quote and no control character, and is never
// "." or "..".
//
// Input: four fields separated by NUL bytes: Content-Disposition, Content-Type, the body's
// first bytes, the URL (missing fields are empty).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "txn/scan.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view parts[4];
  for (auto& p : parts) {
    auto nul = in.find('\0');
    p = in.substr(0, nul);
    in = nul == std::string_view::npos ? std::string_view() : in.substr(nul + 1);
  }
  const std::string name = pc::txn::body_file_name(parts[0], parts[1], parts[2], parts[3]);
  FUZZ_CHECK(name.size() <= 255);
  FUZZ_CHECK(name != "." && name != "..");
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    FUZZ_CHECK(u >= 0x20 && u != 0x7f && c != '"' && c != '/' && c != '\\');
  }
  return 0;
}
