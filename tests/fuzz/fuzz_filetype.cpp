// Fuzzes the true-file-type detection (inspect/filetype.h): the native detector
// (sniff_file_type: magic numbers, tar, OLE, zip, ICO, EBML, text and markup checks), the zip
// entry-name scan and the OLE directory scan are our own parsers of untrusted bytes.
// Invariants: no crash or out-of-bounds read; a finding in a prefix is also a finding in the
// whole input (records are only read within bounds, so more bytes never lose one); the
// native detector returns one of the documented names, "text" or "unknown" when it leaves the
// decision to libmagic, a MIME type when it decides, and "office-macro" only with a zip or OLE
// finding behind it; detect_file_type returns a documented name, the native one when settled.
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

  const Sniffed native = sniff_file_type(head, tail);
  FUZZ_CHECK(known(native.name));
  FUZZ_CHECK(native.settled || native.name == "text" || native.name == "unknown");
  FUZZ_CHECK(!native.settled || !native.mime.empty());
  if (native.name == "office-macro") {
    auto t = detail::scan_zip_names(tail);
    FUZZ_CHECK(prefix.vba_project || t.vba_project || detail::ole_has_macros(head));
  }
  FUZZ_CHECK(known(sniff_file_type(body).name));

  FileType ft = detect_file_type(head, tail);
  FUZZ_CHECK(known(ft.name));
  FUZZ_CHECK(!native.settled || ft.name == native.name);
  (void)detail::looks_like_noise(body);
  return 0;
}
