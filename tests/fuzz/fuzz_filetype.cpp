// Fuzzes the true-file-type detection (inspect/filetype.h): the zip entry-name scan and the
// OLE directory scan are our own parsers of untrusted bytes. Invariants: no crash or
// out-of-bounds read; a finding in a prefix is also a finding in the whole input (records are
// only read within bounds, so more bytes never lose one); detect_file_type returns one of the
// documented names and "office-macro" only with a zip or OLE finding behind it; so does
// sniff_file_type (magic numbers and the OLE root class ID, read within bounds).
//
// Input: byte 0 picks where the head ends (the rest is the tail), the remainder is the body.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "inspect/filetype.h"

namespace {

constexpr std::array<std::string_view, 20> kNames = {
    "exe",   "script", "zip",   "rar",  "7z",   "gzip",   "bzip2",
    "xz",    "tar",    "cab",   "msi",  "pdf",  "office", "office-macro",
    "image", "audio",  "video", "text", "html", "unknown"};

bool known(std::string_view name) {
  for (auto n : kNames)
    if (n == name) return true;
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pc::inspect;
  if (size == 0) return 0;
  std::span<const std::byte> body(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  const std::size_t split = body.size() * data[0] / 255;
  auto head = body.first(split);
  auto tail = body.subspan(split);

  auto whole = detail::scan_zip_names(body);
  auto prefix = detail::scan_zip_names(head);
  FUZZ_CHECK(!prefix.any || whole.any);
  FUZZ_CHECK(!prefix.ooxml || whole.ooxml);
  FUZZ_CHECK(!prefix.vba_project || whole.vba_project);
  FUZZ_CHECK(!whole.ooxml || whole.any);

  const bool ole_whole = detail::ole_has_macros(body);
  FUZZ_CHECK(!detail::ole_has_macros(head) || ole_whole);

  FileType ft = detect_file_type(head, tail);
  FUZZ_CHECK(known(ft.name));
  FUZZ_CHECK(known(sniff_file_type(body)));
  if (ft.name == "office-macro" && ft.mime.find("macroEnabled") == std::string::npos) {
    auto t = detail::scan_zip_names(tail);
    FUZZ_CHECK(prefix.vba_project || t.vba_project || detail::ole_has_macros(head));
  }
  return 0;
}
