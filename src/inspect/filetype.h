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
  // One of: exe (PE, ELF, Mach-O), script, zip, rar, 7z, gzip, bzip2, xz, tar, cab, msi, pdf,
  // office (OOXML, OLE documents, OpenDocument, RTF), office-macro (OOXML with
  // vbaProject.bin, OLE with a VBA or Macros storage), image, audio, video, text, html,
  // unknown.
  std::string_view name = "unknown";
  std::string mime;  // libmagic's MIME type, for the log ("" when libmagic is unavailable)
};

// Classifies the first bytes of a body (`head`, typically kFileTypeHeadBytes of them). `tail`
// may carry the last bytes of the body when they are at hand (a spooled file): a large OOXML
// document's zip central directory is at its end. Uses libmagic (one handle per thread, the
// default database) plus a scan of zip and OLE directory names for macros. Never throws;
// "unknown" when libmagic cannot be loaded. Fast enough for a worker for small heads, but
// libmagic is not bounded in time: prefer the offload pool.
FileType detect_file_type(std::span<const std::byte> head, std::span<const std::byte> tail = {});

// The policy name from the magic numbers at the start of a body alone, without libmagic: exe
// (PE/DOS "MZ", ELF, Mach-O), script ("#!"), zip, rar, 7z, gzip, bzip2, xz, tar, cab, msi
// (an OLE compound file whose root storage has an installer class ID) and office (any other
// OLE compound file), else "unknown". A few fixed-offset comparisons (under 0.2 us, where
// detect_file_type takes 0.1 to 1.5 ms): for when detect_file_type cannot run off the worker,
// that is when the scan pool is full. Coarser than detect_file_type: an OOXML document is
// "zip", macros are not seen.
std::string_view sniff_file_type(std::span<const std::byte> head);

// The mapping from a MIME type to the short policy name (no content inspection).
std::string_view policy_name_for_mime(std::string_view mime);

namespace detail {

// What the zip entry names in `data` (local file headers and central directory records, at
// any offset, each bounds-checked) say: OOXML ([Content_Types].xml) and a VBA project.
struct ZipNames {
  bool any = false;          // at least one well-formed zip header was found
  bool ooxml = false;        // an entry named [Content_Types].xml
  bool vba_project = false;  // an entry whose name ends with vbaProject.bin (any case)
};
ZipNames scan_zip_names(std::span<const std::byte> data);

// True when `data` (the start of an OLE compound file) holds a directory entry naming a VBA
// project: "VBA", "_VBA_PROJECT", "_VBA_PROJECT_CUR" or "Macros". Only directory sectors
// within `data` are seen.
bool ole_has_macros(std::span<const std::byte> data);

}  // namespace detail

}  // namespace pc::inspect
