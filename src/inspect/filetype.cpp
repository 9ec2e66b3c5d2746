#include "inspect/filetype.h"

#include <magic.h>

#include <array>
#include <cstdint>
#include <cstring>

#include "base/log.h"

namespace pc::inspect {
namespace {

// One libmagic handle per thread (a handle is not thread-safe), loaded on first use.
class MagicHandle {
 public:
  MagicHandle() {
    cookie_ = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS | MAGIC_ERROR);
    if (cookie_ && magic_load(cookie_, nullptr) != 0) {
      log::warn("filetype: cannot load the libmagic database: {}", magic_error(cookie_));
      magic_close(cookie_);
      cookie_ = nullptr;
    }
  }
  ~MagicHandle() {
    if (cookie_) magic_close(cookie_);
  }
  MagicHandle(const MagicHandle&) = delete;
  MagicHandle& operator=(const MagicHandle&) = delete;

  std::string mime(std::span<const std::byte> data) {
    if (!cookie_) return {};
    const char* m = magic_buffer(cookie_, data.data(), data.size());
    return m ? std::string(m) : std::string();
  }

 private:
  magic_t cookie_ = nullptr;
};

bool starts_with(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool iends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && iequals(s.substr(s.size() - suffix.size()), suffix);
}

std::uint16_t u16(std::span<const std::byte> d, std::size_t at) {
  return static_cast<std::uint16_t>(std::to_integer<unsigned>(d[at]) |
                                    (std::to_integer<unsigned>(d[at + 1]) << 8));
}

bool has_bytes(std::span<const std::byte> d, std::size_t at, std::string_view sig) {
  if (at > d.size() || d.size() - at < sig.size()) return false;
  return std::memcmp(d.data() + at, sig.data(), sig.size()) == 0;
}

void note_zip_name(std::string_view name, detail::ZipNames& out) {
  out.any = true;
  if (name == "[Content_Types].xml") out.ooxml = true;
  if (iends_with(name, "vbaProject.bin")) out.vba_project = true;
}

}  // namespace

namespace detail {

ZipNames scan_zip_names(std::span<const std::byte> d) {
  ZipNames out;
  constexpr std::size_t kLocalFixed = 30, kCentralFixed = 46;
  // Signatures may sit anywhere (a truncated head, data descriptors, a tail slice): look at
  // every "PK" and check the record's bounds before reading its name.
  for (std::size_t i = 0; i + 4 <= d.size(); ++i) {
    if (d[i] != std::byte{'P'} || d[i + 1] != std::byte{'K'}) continue;
    if (has_bytes(d, i, std::string_view("PK\x03\x04", 4))) {
      if (d.size() - i < kLocalFixed) continue;
      std::size_t len = u16(d, i + 26);
      if (len == 0 || d.size() - i - kLocalFixed < len) continue;
      note_zip_name({reinterpret_cast<const char*>(d.data() + i + kLocalFixed), len}, out);
    } else if (has_bytes(d, i, std::string_view("PK\x01\x02", 4))) {
      if (d.size() - i < kCentralFixed) continue;
      std::size_t len = u16(d, i + 28);
      if (len == 0 || d.size() - i - kCentralFixed < len) continue;
      note_zip_name({reinterpret_cast<const char*>(d.data() + i + kCentralFixed), len}, out);
    }
  }
  return out;
}

bool ole_has_macros(std::span<const std::byte> d) {
  static constexpr std::string_view kOleMagic("\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", 8);
  if (!has_bytes(d, 0, kOleMagic)) return false;
  static constexpr std::string_view names[] = {"VBA", "_VBA_PROJECT", "_VBA_PROJECT_CUR", "Macros"};
  // Directory entries are 128 bytes and every sector starts at a multiple of 512 (v3) or
  // 4096 (v4) bytes: candidates are the 128-byte slots after the 512-byte header.
  for (std::size_t p = 512; p + 128 <= d.size(); p += 128) {
    std::size_t len = u16(d, p + 64);  // bytes, including the UTF-16 terminator
    auto type = std::to_integer<unsigned>(d[p + 66]);
    if (len < 4 || len > 64 || len % 2 != 0 || (type != 1 && type != 2)) continue;
    std::array<char, 32> name{};
    std::size_t n = len / 2 - 1;
    bool ascii = true;
    for (std::size_t k = 0; k < n; ++k) {
      auto lo = std::to_integer<unsigned>(d[p + 2 * k]);
      auto hi = std::to_integer<unsigned>(d[p + 2 * k + 1]);
      if (hi != 0 || lo == 0 || lo > 0x7e) {
        ascii = false;
        break;
      }
      name[k] = static_cast<char>(lo);
    }
    if (!ascii) continue;
    std::string_view s(name.data(), n);
    for (auto want : names)
      if (iequals(s, want)) return true;
  }
  return false;
}

}  // namespace detail

std::string_view policy_name_for_mime(std::string_view m) {
  struct Entry {
    std::string_view mime;
    std::string_view name;
  };
  static constexpr Entry exact[] = {
      {"application/x-dosexec", "exe"},
      {"application/x-msdownload", "exe"},
      {"application/vnd.microsoft.portable-executable", "exe"},
      {"application/x-executable", "exe"},
      {"application/x-pie-executable", "exe"},
      {"application/x-sharedlib", "exe"},
      {"application/x-mach-binary", "exe"},
      {"application/x-mach-o-executable", "exe"},
      {"application/x-elf", "exe"},
      {"text/x-shellscript", "script"},
      {"application/x-shellscript", "script"},
      {"text/x-python", "script"},
      {"text/x-script.python", "script"},
      {"text/x-perl", "script"},
      {"text/x-ruby", "script"},
      {"text/x-php", "script"},
      {"text/x-tcl", "script"},
      {"text/x-lua", "script"},
      {"text/x-msdos-batch", "script"},
      {"text/x-awk", "script"},
      {"application/javascript", "script"},
      {"text/javascript", "script"},
      {"application/x-powershell", "script"},
      {"application/zip", "zip"},
      {"application/x-zip-compressed", "zip"},
      {"application/java-archive", "zip"},
      {"application/x-rar", "rar"},
      {"application/vnd.rar", "rar"},
      {"application/x-rar-compressed", "rar"},
      {"application/x-7z-compressed", "7z"},
      {"application/gzip", "gzip"},
      {"application/x-gzip", "gzip"},
      {"application/x-bzip2", "bzip2"},
      {"application/x-xz", "xz"},
      {"application/x-tar", "tar"},
      {"application/x-ustar", "tar"},
      {"application/vnd.ms-cab-compressed", "cab"},
      {"application/x-msi", "msi"},
      {"application/x-ole-storage", "office"},
      {"application/CDFV2", "office"},
      {"application/msword", "office"},
      {"application/vnd.ms-excel", "office"},
      {"application/vnd.ms-powerpoint", "office"},
      {"application/vnd.ms-office", "office"},
      {"application/vnd.ms-outlook", "office"},
      {"application/rtf", "office"},
      {"text/rtf", "office"},
      {"application/pdf", "pdf"},
      {"text/html", "html"},
      {"application/xhtml+xml", "html"},
      {"application/json", "text"},
      {"application/xml", "text"},
  };
  for (const auto& e : exact)
    if (iequals(m, e.mime)) return e.name;
  if (m.find("macroEnabled") != std::string_view::npos) return "office-macro";
  if (starts_with(m, "application/vnd.openxmlformats-officedocument.") ||
      starts_with(m, "application/vnd.oasis.opendocument.") ||
      starts_with(m, "application/vnd.ms-word") || starts_with(m, "application/vnd.ms-excel") ||
      starts_with(m, "application/vnd.ms-powerpoint"))
    return "office";
  if (starts_with(m, "image/")) return "image";
  if (starts_with(m, "audio/")) return "audio";
  if (starts_with(m, "video/")) return "video";
  if (starts_with(m, "text/")) return "text";
  return "unknown";
}

std::string_view sniff_file_type(std::span<const std::byte> d) {
  struct Magic {
    std::size_t at;
    std::string_view bytes;
    std::string_view name;
  };
  using namespace std::string_view_literals;
  static constexpr Magic magics[] = {
      {0, "MZ"sv, "exe"},
      {0, "\x7f\x45LF"sv, "exe"},
      {0, "\xfe\xed\xfa\xce"sv, "exe"},  // Mach-O, 32 and 64 bits, both byte orders
      {0, "\xfe\xed\xfa\xcf"sv, "exe"},
      {0, "\xce\xfa\xed\xfe"sv, "exe"},
      {0, "\xcf\xfa\xed\xfe"sv, "exe"},
      {0, "#!"sv, "script"},
      {0, "PK\x03\x04"sv, "zip"},
      {0, "PK\x05\x06"sv, "zip"},  // empty archive
      {0, "PK\x07\x08"sv, "zip"},  // spanned archive
      {0, "Rar!\x1a\x07"sv, "rar"},
      {0, "7z\xbc\xaf\x27\x1c"sv, "7z"},
      {0, "\x1f\x8b"sv, "gzip"},
      {0, "BZh"sv, "bzip2"},
      {0, "\xfd\x37zXZ\x00"sv, "xz"},
      {257, "ustar"sv, "tar"},
      {0, "MSCF\0\0\0\0"sv, "cab"},
  };
  for (const auto& m : magics)
    if (has_bytes(d, m.at, m.bytes)) return m.name;
  static constexpr std::string_view kOleMagic("\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", 8);
  if (!has_bytes(d, 0, kOleMagic)) return "unknown";
  // The root storage is the first entry of the first directory sector; its class ID tells an
  // installer database (.msi), patch (.msp) or transform (.mst): {000C108x-0000-0000-C000-
  // 000000000046}. A directory beyond `d` is not seen: "office".
  if (d.size() < 0x34) return "office";
  const unsigned shift = u16(d, 0x1e);
  if (shift != 9 && shift != 12) return "office";
  const std::uint64_t dir_sector = u16(d, 0x30) | (std::uint64_t{u16(d, 0x32)} << 16);
  const std::uint64_t root = (dir_sector + 1) << shift;
  if (dir_sector >= 0xfffffffaull || root > d.size() || d.size() - root < 0x60) return "office";
  const auto* clsid = d.data() + root + 0x50;
  static constexpr std::string_view kInstallerTail(
      "\x0c\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46", 14);
  const unsigned first = std::to_integer<unsigned>(clsid[0]);
  if (std::to_integer<unsigned>(clsid[1]) == 0x10 &&
      (first == 0x82 || first == 0x84 || first == 0x86) &&
      std::memcmp(clsid + 2, kInstallerTail.data(), kInstallerTail.size()) == 0)
    return "msi";
  return "office";
}

FileType detect_file_type(std::span<const std::byte> head, std::span<const std::byte> tail) {
  thread_local MagicHandle magic;
  FileType ft;
  ft.mime = magic.mime(head);
  ft.name = policy_name_for_mime(ft.mime);

  if (ft.name == "zip" || ft.name == "office") {
    auto names = detail::scan_zip_names(head);
    if (!tail.empty()) {
      auto more = detail::scan_zip_names(tail);
      names.ooxml |= more.ooxml;
      names.vba_project |= more.vba_project;
    }
    if (names.vba_project && (names.ooxml || ft.name == "office"))
      ft.name = "office-macro";
    else if (names.ooxml)
      ft.name = "office";
    if (ft.name == "office" && detail::ole_has_macros(head)) ft.name = "office-macro";
  }
  return ft;
}

}  // namespace pc::inspect
