// True file type for policy: what the bytes are, whatever the name or Content-Type says.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace pc::inspect {

// Bytes of a body's start worth passing to detect_file_type by default.
inline constexpr std::size_t kFileTypeHeadBytes = 64 * 1024;

struct FileType {
  // One of: exe (PE/DOS "MZ", ELF executables and shared objects, Mach-O), script, zip, rar,
  // 7z, gzip, bzip2, xz, tar, cab, msi, pdf, office (OOXML, OLE documents, OpenDocument, RTF),
  // office-macro (OOXML with vbaProject.bin, OLE with a VBA or Macros storage), image,
  // audio, video, text, html, unknown.
  std::string_view name = "unknown";
  std::string mime;  // the MIME type behind the name, for the log ("" when nothing is known)
};

// What the native detector (sniff_file_type) made of a body.
struct Sniffed {
  std::string_view name = "unknown";  // a FileType name
  std::string_view mime;              // a static string ("" when nothing is known)
  // False when libmagic may know better: text that might be a script or HTML by libmagic's
  // heuristics (name "text"), or binary that is neither a known format nor noise (name
  // "unknown"). See docs/scanning.md, "True file type".
  bool settled = false;
};

// The native detector: magic numbers and a few bounded structural checks on `head` (the
// body's first bytes) and `tail` (its last bytes, when at hand: a large OOXML document's zip
// directory is at its end). No libmagic, no allocation, no I/O; time linear in the bytes
// given and bounded by them (tens of microseconds for 64 KiB of text, well under one for a
// signature), so a worker may call it on a head when the scan pool cannot take a detection.
Sniffed sniff_file_type(std::span<const std::byte> head, std::span<const std::byte> tail = {});

// The true file type: sniff_file_type, then libmagic (one handle per thread, the default
// database) only when the native detector is not settled. Never throws; libmagic costs 0.2 to
// 3 ms a body, so call this on the offload pool, not a worker.
FileType detect_file_type(std::span<const std::byte> head, std::span<const std::byte> tail = {});

// The mapping from a MIME type to the short policy name (no content inspection).
std::string_view policy_name_for_mime(std::string_view mime);

namespace detail {

// What the zip entry names in `data` (local file headers and central directory records, at
// any offset, each bounds-checked) say: OOXML ([Content_Types].xml), which application, and
// a VBA project.
struct ZipNames {
  bool any = false;          // at least one well-formed zip header was found
  bool ooxml = false;        // an entry named [Content_Types].xml
  bool vba_project = false;  // an entry whose name ends with vbaProject.bin (any case)
  char part = 0;             // 'w', 'x' or 'p': an entry under word/, xl/ or ppt/ (the last seen)
};
ZipNames scan_zip_names(std::span<const std::byte> data);

// True when `data` (the start of an OLE compound file) holds a directory entry naming a VBA
// project: "VBA", "_VBA_PROJECT", "_VBA_PROJECT_CUR" or "Macros". Only directory sectors
// within `data` are seen.
bool ole_has_macros(std::span<const std::byte> data);

// The type libmagic gives `head` (its MIME type mapped by policy_name_for_mime), refined by
// the zip and OLE directory scans like the native detector: detect_file_type's fallback, and
// the reference the native detector is tested against. "unknown" when libmagic cannot load.
FileType libmagic_file_type(std::span<const std::byte> head, std::span<const std::byte> tail);

// True when the first 4 KiB of `data` look like random bytes (compressed or encrypted
// content): at least 64 bytes whose byte entropy is close to that of uniform noise.
bool looks_like_noise(std::span<const std::byte> data);

}  // namespace detail

}  // namespace pc::inspect
