#include "inspect/filetype.h"

#include <magic.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>

#include "base/log.h"

namespace pc::inspect {
namespace {

using Bytes = std::span<const std::byte>;
using namespace std::string_view_literals;

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

  std::string mime(Bytes data) {
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

bool istarts_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && iequals(s.substr(0, p.size()), p);
}

bool iends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && iequals(s.substr(s.size() - suffix.size()), suffix);
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool is_upper(char c) {
  return c >= 'A' && c <= 'Z';
}

std::uint8_t byte_at(Bytes d, std::size_t at) {
  return std::to_integer<std::uint8_t>(d[at]);
}

std::uint16_t u16(Bytes d, std::size_t at) {
  return static_cast<std::uint16_t>(byte_at(d, at) | (byte_at(d, at + 1) << 8));
}

std::uint16_t u16be(Bytes d, std::size_t at) {
  return static_cast<std::uint16_t>((byte_at(d, at) << 8) | byte_at(d, at + 1));
}

std::uint32_t u32(Bytes d, std::size_t at) {
  return u16(d, at) | (std::uint32_t{u16(d, at + 2)} << 16);
}

std::uint32_t u32be(Bytes d, std::size_t at) {
  return (std::uint32_t{u16be(d, at)} << 16) | u16be(d, at + 2);
}

bool has_bytes(Bytes d, std::size_t at, std::string_view sig) {
  if (at > d.size() || d.size() - at < sig.size()) return false;
  return std::memcmp(d.data() + at, sig.data(), sig.size()) == 0;
}

std::string_view chars(Bytes d) {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

// Whether `needle` occurs in `hay` (memmem: much faster than a naive search on long text).
bool contains(std::string_view hay, std::string_view needle) {
  return ::memmem(hay.data(), hay.size(), needle.data(), needle.size()) != nullptr;
}

void note_zip_name(std::string_view name, detail::ZipNames& out) {
  out.any = true;
  if (name == "[Content_Types].xml") out.ooxml = true;
  if (iends_with(name, "vbaProject.bin")) out.vba_project = true;
  if (starts_with(name, "word/")) out.part = 'w';
  if (starts_with(name, "xl/")) out.part = 'x';
  if (starts_with(name, "ppt/")) out.part = 'p';
}

constexpr std::string_view kOleMagic("\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", 8);

}  // namespace

namespace detail {

ZipNames scan_zip_names(Bytes d) {
  ZipNames out;
  constexpr std::size_t kLocalFixed = 30, kCentralFixed = 46;
  // Signatures may sit anywhere (a truncated head, data descriptors, a tail slice): look at
  // every "PK" and check the record's bounds before reading its name.
  for (std::size_t i = 0; i + 4 <= d.size(); ++i) {
    if (d[i] != std::byte{'P'} || d[i + 1] != std::byte{'K'}) continue;
    if (has_bytes(d, i, "PK\x03\x04"sv)) {
      if (d.size() - i < kLocalFixed) continue;
      std::size_t len = u16(d, i + 26);
      if (len == 0 || d.size() - i - kLocalFixed < len) continue;
      note_zip_name({reinterpret_cast<const char*>(d.data() + i + kLocalFixed), len}, out);
    } else if (has_bytes(d, i, "PK\x01\x02"sv)) {
      if (d.size() - i < kCentralFixed) continue;
      std::size_t len = u16(d, i + 28);
      if (len == 0 || d.size() - i - kCentralFixed < len) continue;
      note_zip_name({reinterpret_cast<const char*>(d.data() + i + kCentralFixed), len}, out);
    }
  }
  return out;
}

bool ole_has_macros(Bytes d) {
  if (!has_bytes(d, 0, kOleMagic)) return false;
  static constexpr std::string_view names[] = {"VBA", "_VBA_PROJECT", "_VBA_PROJECT_CUR", "Macros"};
  // Directory entries are 128 bytes and every sector starts at a multiple of 512 (v3) or
  // 4096 (v4) bytes: candidates are the 128-byte slots after the 512-byte header.
  for (std::size_t p = 512; p + 128 <= d.size(); p += 128) {
    std::size_t len = u16(d, p + 64);  // bytes, including the UTF-16 terminator
    auto type = byte_at(d, p + 66);
    if (len < 4 || len > 64 || len % 2 != 0 || (type != 1 && type != 2)) continue;
    std::array<char, 32> name{};
    std::size_t n = len / 2 - 1;
    bool ascii = true;
    for (std::size_t k = 0; k < n; ++k) {
      auto lo = byte_at(d, p + 2 * k);
      auto hi = byte_at(d, p + 2 * k + 1);
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

bool looks_like_noise(Bytes d) {
  constexpr std::size_t kWindow = 4096, kMin = 64;
  const std::size_t n = std::min(d.size(), kWindow);
  if (n < kMin) return false;
  std::array<std::uint16_t, 256> count{};
  for (std::size_t i = 0; i < n; ++i) ++count[byte_at(d, i)];
  // Entropy in bits per byte: log2(n) - sum(c log2 c) / n.
  double sum = 0;
  for (auto c : count)
    if (c > 1) sum += c * std::log2(static_cast<double>(c));
  const double entropy = std::log2(static_cast<double>(n)) - sum / static_cast<double>(n);
  // Uniform random bytes measure at least 5.4 bits for 64 bytes, 6.9 for 256, 7.4 for 512
  // and 7.7 from 1024 on (the estimate is low for short samples): stay just below.
  const double threshold = std::min(std::log2(static_cast<double>(n)) - 1.3, 7.2);
  return entropy >= threshold;
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

// ---- The native detector ----

namespace {

constexpr Sniffed settled(std::string_view name, std::string_view mime) {
  return {name, mime, true};
}

// Executables: MZ (DOS, NE, LE and PE alike), ELF, Mach-O (thin and fat, both byte orders).
std::optional<Sniffed> executable(Bytes d) {
  if (has_bytes(d, 0, "MZ") && d.size() >= 64) {
    // A DOS header (64 bytes) holds binary fields; text that happens to start with "MZ"
    // does not. The PE signature sits where e_lfanew points, when that is in the head.
    bool binary = false;
    for (std::size_t i = 2; i < 64 && !binary; ++i) {
      auto c = byte_at(d, i);
      binary = c < 0x07 || (c > 0x0d && c < 0x20 && c != 0x1b) || c == 0x7f;
    }
    if (binary) {
      const std::uint32_t pe = u32(d, 0x3c);
      if (pe >= 64 && has_bytes(d, pe, "PE\0\0"sv))
        return settled("exe", "application/vnd.microsoft.portable-executable");
      return settled("exe", "application/x-dosexec");
    }
  }
  if (has_bytes(d, 0, "\x7f\x45LF"sv)) {
    if (d.size() < 18) return settled("exe", "application/x-elf");
    const unsigned type = byte_at(d, 5) == 2 ? u16be(d, 16) : u16(d, 16);
    switch (type) {
      case 1:  // relocatable object: not run as it is
        return settled("unknown", "application/x-object");
      case 4:  // core dump
        return settled("unknown", "application/x-coredump");
      case 2:
        return settled("exe", "application/x-executable");
      case 3:
        return settled("exe", "application/x-sharedlib");
      default:
        return settled("exe", "application/x-elf");
    }
  }
  for (auto magic : {"\xfe\xed\xfa\xce"sv, "\xfe\xed\xfa\xcf"sv, "\xce\xfa\xed\xfe"sv,
                     "\xcf\xfa\xed\xfe"sv, "\xca\xfe\xba\xbf"sv})
    if (has_bytes(d, 0, magic)) return settled("exe", "application/x-mach-binary");
  if (has_bytes(d, 0, "\xca\xfe\xba\xbe"sv) && d.size() >= 8) {
    // Shared by fat Mach-O (a few architectures follow) and Java classes (a version >= 45).
    const std::uint32_t n = u32be(d, 4);
    if (n >= 1 && n < 20) return settled("exe", "application/x-mach-binary");
    if (n >= 30) return settled("unknown", "application/x-java-applet");
  }
  return std::nullopt;
}

// A tar header: "ustar" at 257 or, for old archives, a valid header checksum.
bool tar_header(Bytes d) {
  if (d.size() < 512) return false;
  if (has_bytes(d, 257, "ustar")) return true;
  std::size_t at = 148, end = 156;  // the checksum: octal digits, then a space or NUL
  while (at < end && byte_at(d, at) == ' ') ++at;
  std::uint32_t recorded = 0;
  std::size_t digits = 0;
  for (; at < end && byte_at(d, at) >= '0' && byte_at(d, at) <= '7'; ++at, ++digits)
    recorded = recorded * 8 + (byte_at(d, at) - '0');
  if (digits == 0 || (at < end && byte_at(d, at) != ' ' && byte_at(d, at) != 0)) return false;
  std::uint32_t sum = 8 * ' ';  // the checksum field counts as spaces
  for (std::size_t i = 0; i < 512; ++i)
    if (i < 148 || i >= 156) sum += byte_at(d, i);
  return sum == recorded;
}

// An OLE compound file: an installer (msi) by its root storage's class ID, else an office
// document, with macros when a VBA storage is in the head.
Sniffed ole(Bytes d) {
  // The root storage is the first entry of the first directory sector; its class ID tells an
  // installer database (.msi), patch (.msp) or transform (.mst): {000C108x-0000-0000-C000-
  // 000000000046}. A directory beyond `d` is not seen.
  const unsigned shift = d.size() >= 0x34 ? u16(d, 0x1e) : 0;
  if (shift == 9 || shift == 12) {
    const std::uint64_t dir_sector = u32(d, 0x30);
    const std::uint64_t root = (dir_sector + 1) << shift;
    if (dir_sector < 0xfffffffaull && root <= d.size() && d.size() - root >= 0x60) {
      static constexpr std::string_view kInstallerTail(
          "\x0c\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46", 14);
      const unsigned first = byte_at(d, root + 0x50);
      if (byte_at(d, root + 0x51) == 0x10 && (first == 0x82 || first == 0x84 || first == 0x86) &&
          has_bytes(d, root + 0x52, kInstallerTail))
        return settled("msi", "application/x-msi");
    }
  }
  if (detail::ole_has_macros(d)) return settled("office-macro", "application/x-ole-storage");
  return settled("office", "application/x-ole-storage");
}

// A zip archive, or a document made of one: OpenDocument and EPUB name themselves in a first
// stored entry "mimetype"; OOXML has [Content_Types].xml (and vbaProject.bin with macros),
// found in the head or, for a large document, in the central directory in the tail.
Sniffed zip(Bytes head, Bytes tail) {
  if (has_bytes(head, 0, "PK\x03\x04"sv) && head.size() >= 30 && u16(head, 8) == 0 &&
      u16(head, 26) == 8 && has_bytes(head, 30, "mimetype")) {
    const std::size_t content = 38 + std::size_t{u16(head, 28)};
    if (has_bytes(head, content, "application/vnd.oasis.opendocument.") ||
        has_bytes(head, content, "application/vnd.sun.xml."))
      return settled("office", "application/vnd.oasis.opendocument");
    if (has_bytes(head, content, "application/epub+zip"))
      return settled("zip", "application/epub+zip");
  }
  auto names = detail::scan_zip_names(head);
  if (!tail.empty()) {
    auto more = detail::scan_zip_names(tail);
    names.ooxml |= more.ooxml;
    names.vba_project |= more.vba_project;
    if (!names.part) names.part = more.part;
  }
  if (names.ooxml && names.vba_project) {
    switch (names.part) {
      case 'w':
        return settled("office-macro", "application/vnd.ms-word.document.macroEnabled.12");
      case 'x':
        return settled("office-macro", "application/vnd.ms-excel.sheet.macroEnabled.12");
      case 'p':
        return settled("office-macro",
                       "application/vnd.ms-powerpoint.presentation.macroEnabled.12");
      default:
        return settled("office-macro", "application/vnd.ms-office");
    }
  }
  if (names.ooxml) {
    switch (names.part) {
      case 'w':
        return settled("office",
                       "application/vnd.openxmlformats-officedocument.wordprocessingml.document");
      case 'x':
        return settled("office",
                       "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
      case 'p':
        return settled("office",
                       "application/vnd.openxmlformats-officedocument.presentationml.presentation");
      default:
        return settled("office", "application/vnd.openxmlformats-officedocument");
    }
  }
  return settled("zip", "application/zip");
}

// Archives and compound documents.
std::optional<Sniffed> container(Bytes head, Bytes tail) {
  if (has_bytes(head, 0, "PK\x03\x04"sv) || has_bytes(head, 0, "PK\x05\x06"sv) ||
      has_bytes(head, 0, "PK\x07\x08"sv))
    return zip(head, tail);
  if (has_bytes(head, 0, kOleMagic)) return ole(head);
  if (has_bytes(head, 0, "Rar!\x1a\x07"sv)) return settled("rar", "application/x-rar");
  if (has_bytes(head, 0, "7z\xbc\xaf\x27\x1c"sv))
    return settled("7z", "application/x-7z-compressed");
  if (has_bytes(head, 0, "\x1f\x8b"sv)) return settled("gzip", "application/gzip");
  if (has_bytes(head, 0, "BZh") && head.size() >= 10 && byte_at(head, 3) >= '1' &&
      byte_at(head, 3) <= '9' &&
      (has_bytes(head, 4, "1AY&SY") || has_bytes(head, 4, "\x17\x72\x45\x38\x50\x90"sv)))
    return settled("bzip2", "application/x-bzip2");
  if (has_bytes(head, 0, "\xfd\x37\x7a\x58\x5a\x00"sv)) return settled("xz", "application/x-xz");
  if (has_bytes(head, 0, "MSCF\0\0\0\0"sv))
    return settled("cab", "application/vnd.ms-cab-compressed");
  if (tar_header(head)) return settled("tar", "application/x-tar");
  return std::nullopt;
}

// The ISO base media file format ("ftyp" box): its major brand tells images, audio and video.
std::optional<Sniffed> iso_media(Bytes d) {
  if (!has_bytes(d, 4, "ftyp") || d.size() < 12) return std::nullopt;
  const std::string_view brand = chars(d.subspan(8, 4));
  for (auto b : {"avif"sv, "avis"sv})
    if (brand == b) return settled("image", "image/avif");
  for (auto b : {"heic"sv, "heix"sv, "hevc"sv, "hevx"sv, "heim"sv, "heis"sv, "hevm"sv, "hevs"sv})
    if (brand == b) return settled("image", "image/heic");
  for (auto b : {"mif1"sv, "msf1"sv, "avic"sv, "avcs"sv})
    if (brand == b) return settled("image", "image/heif");
  for (auto b : {"jp2 "sv, "jpx "sv, "jpm "sv, "JP2 "sv})
    if (brand == b) return settled("image", "image/jp2");
  if (brand == "crx ") return settled("image", "image/x-canon-cr3");
  for (auto b : {"M4A "sv, "M4B "sv, "M4P "sv, "F4A "sv, "F4B "sv})
    if (brand == b) return settled("audio", "audio/mp4");
  if (brand == "qt  ") return settled("video", "video/quicktime");
  if (starts_with(brand, "3gp") || starts_with(brand, "3g2")) return settled("video", "video/3gpp");
  return settled("video", "video/mp4");  // isom, iso2..iso9, mp41, mp42, avc1, dash, M4V ...
}

// An MPEG audio frame header (MP3 and its kin) or an AAC ADTS header.
std::optional<Sniffed> mpeg_audio(Bytes d) {
  if (d.size() < 4 || byte_at(d, 0) != 0xff || (byte_at(d, 1) & 0xe0) != 0xe0) return std::nullopt;
  const unsigned b1 = byte_at(d, 1), b2 = byte_at(d, 2);
  const unsigned version = (b1 >> 3) & 3, layer = (b1 >> 1) & 3;
  if (layer == 0) {
    if ((b1 & 0xf6) == 0xf0 && ((b2 >> 2) & 0xf) < 13) return settled("audio", "audio/aac");
    return std::nullopt;
  }
  if (version == 1 || (b2 >> 4) == 0xf || ((b2 >> 2) & 3) == 3) return std::nullopt;
  return settled("audio", "audio/mpeg");
}

// Images, audio and video with a binary signature.
std::optional<Sniffed> media(Bytes d) {
  struct Magic {
    std::size_t at;
    std::string_view bytes;
    std::string_view name, mime;
  };
  static constexpr Magic magics[] = {
      {0, "\x89PNG\r\n\x1a\n"sv, "image", "image/png"},
      {0, "\xff\xd8\xff"sv, "image", "image/jpeg"},
      {0, "GIF87a"sv, "image", "image/gif"},
      {0, "GIF89a"sv, "image", "image/gif"},
      {0, "II*\0"sv, "image", "image/tiff"},
      {0, "MM\0*"sv, "image", "image/tiff"},
      {0, "II+\0"sv, "image", "image/tiff"},
      {0, "MM\0+"sv, "image", "image/tiff"},
      {0, "8BPS"sv, "image", "image/vnd.adobe.photoshop"},
      {0, "icns"sv, "image", "image/x-icns"},
      {0, "\0\0\0\x0cjP  \r\n\x87\n"sv, "image", "image/jp2"},
      {0, "\0\0\0\x0cJXL \r\n\x87\n"sv, "image", "image/jxl"},
      {0, "\xff\x0a"sv, "image", "image/jxl"},
      {0, "fLaC"sv, "audio", "audio/flac"},
      {0, "MThd"sv, "audio", "audio/midi"},
      {0, "#!AMR"sv, "audio", "audio/amr"},
      {0, ".snd"sv, "audio", "audio/basic"},
      {0, "FLV\x01"sv, "video", "video/x-flv"},
      {0, "\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9\x00\xaa\x00\x62\xce\x6c"sv, "video",
       "video/x-ms-asf"},
      {0, "\0\0\x01\xba"sv, "video", "video/mpeg"},
      {0, "\0\0\x01\xb3"sv, "video", "video/mpeg"},
  };
  for (const auto& m : magics)
    if (has_bytes(d, m.at, m.bytes)) return settled(m.name, m.mime);

  if (has_bytes(d, 0, "BM") && d.size() >= 18) {
    // The info header's size names the variant (OS/2, Windows 3.x, 95/NT4, 98/2000...).
    for (std::uint32_t size : {12u, 16u, 40u, 52u, 56u, 64u, 108u, 124u})
      if (u32(d, 14) == size) return settled("image", "image/bmp");
  }
  if ((has_bytes(d, 0, "\0\0\x01\0"sv) || has_bytes(d, 0, "\0\0\x02\0"sv)) && d.size() >= 22) {
    // An icon or cursor directory: a few entries, each pointing past the directory.
    const unsigned count = u16(d, 4);
    const std::uint32_t size = u32(d, 14), offset = u32(d, 18);
    if (count >= 1 && count <= 256 && byte_at(d, 9) == 0 && size > 0 && offset >= 6 + 16 * count)
      return settled("image",
                     byte_at(d, 2) == 1 ? "image/vnd.microsoft.icon" : "image/x-win-bitmap");
  }
  if (has_bytes(d, 0, "RIFF") && d.size() >= 12) {
    const std::string_view form = chars(d.subspan(8, 4));
    if (form == "WEBP") return settled("image", "image/webp");
    if (form == "WAVE") return settled("audio", "audio/x-wav");
    if (form == "RMID") return settled("audio", "audio/midi");
    if (form == "AVI ") return settled("video", "video/x-msvideo");
  }
  if (has_bytes(d, 0, "FORM") && (has_bytes(d, 8, "AIFF") || has_bytes(d, 8, "AIFC")))
    return settled("audio", "audio/x-aiff");
  if (has_bytes(d, 0, "ID3") && d.size() >= 10 && byte_at(d, 3) != 0xff && byte_at(d, 4) != 0xff)
    return settled("audio", "audio/mpeg");
  if (has_bytes(d, 0, "OggS") && d.size() >= 36) {
    // The first page's first packet names the codec.
    for (auto codec : {"\x01vorbis"sv, "OpusHead"sv, "Speex   "sv, "\x7f\x46LAC"sv})
      if (has_bytes(d, 28, codec)) return settled("audio", "audio/ogg");
    for (auto codec : {"\x80theora"sv, "\x01video\0\0\0"sv, "fishead\0"sv})
      if (has_bytes(d, 28, codec)) return settled("video", "video/ogg");
    return settled("unknown", "application/ogg");
  }
  if (has_bytes(d, 0, "\x1a\x45\xdf\xa3"sv)) {
    // EBML: the DocType element (0x4282, a one-byte size, the name) says WebM or Matroska.
    const auto window = chars(d.subspan(4, std::min<std::size_t>(d.size() - 4, 4096)));
    const auto at = window.find("\x42\x82"sv);
    if (at != std::string_view::npos && at + 3 <= window.size()) {
      const auto name = window.substr(at + 3);
      if (starts_with(name, "webm")) return settled("video", "video/webm");
      if (starts_with(name, "matroska")) return settled("video", "video/x-matroska");
    }
  }
  if (byte_at(d, 0) == 0x47 && d.size() > 188 && byte_at(d, 188) == 0x47 &&
      (d.size() <= 376 || byte_at(d, 376) == 0x47))
    return settled("video", "video/MP2T");  // MPEG transport stream: a sync byte per packet
  if (auto ft = iso_media(d)) return ft;
  return mpeg_audio(d);
}

// Binary formats common on the web that are none of the policy types: known, so that they
// never reach libmagic.
std::optional<Sniffed> other_binary(Bytes d) {
  static constexpr std::pair<std::string_view, std::string_view> magics[] = {
      {"wOFF"sv, "font/woff"},
      {"wOF2"sv, "font/woff2"},
      {"OTTO"sv, "font/otf"},
      {"ttcf"sv, "font/collection"},
      {"\0asm"sv, "application/wasm"},
      {"SQLite format 3\0"sv, "application/vnd.sqlite3"},
      {"!<arch>\n"sv, "application/x-archive"},
      {"\x28\xb5\x2f\xfd"sv, "application/zstd"},
      {"\x04\x22\x4d\x18"sv, "application/x-lz4"},
      {"\x1f\x9d"sv, "application/x-compress"},
      {"LZIP"sv, "application/x-lzip"},
  };
  for (const auto& [magic, mime] : magics)
    if (has_bytes(d, 0, magic)) return settled("unknown", mime);
  // A TrueType font: version 1.0, then a sane number of tables.
  if (has_bytes(d, 0, "\0\x01\0\0"sv) && d.size() >= 12 && u16be(d, 4) >= 1 && u16be(d, 4) <= 64)
    return settled("unknown", "font/sfnt");
  return std::nullopt;
}

// Text as libmagic sees it: no byte that never appears in text (NUL and the other C0
// controls but BEL, BS, HT, LF, VT, FF, CR and ESC; DEL). Bytes from 0x80 on pass (UTF-8,
// ISO-8859 and other 8-bit text alike). Eight bytes at a time while they are all printable.
bool is_text(Bytes d) {
  static constexpr auto kText = [] {
    std::array<bool, 256> t{};
    for (unsigned c = 0; c < 256; ++c)
      t[c] = (c >= 0x07 && c <= 0x0d) || c == 0x1b || (c >= 0x20 && c != 0x7f);
    return t;
  }();
  constexpr std::uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  std::size_t i = 0;
  for (; i + 8 <= d.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, d.data() + i, 8);
    // No byte below 0x20 and none equal to 0x7f: the whole word is text.
    const std::uint64_t below = (w - kOnes * 0x20) & ~w & kHigh;
    const std::uint64_t x = w ^ (kOnes * 0x7f);
    const std::uint64_t del = (x - kOnes) & ~x & kHigh;
    if ((below | del) == 0) continue;
    for (std::size_t k = i; k < i + 8; ++k)
      if (!kText[byte_at(d, k)]) return false;
  }
  for (; i < d.size(); ++i)
    if (!kText[byte_at(d, i)]) return false;
  return true;
}

// The MIME type of a "#!" script, by its interpreter.
std::string_view script_mime(std::string_view t) {
  auto line = t.substr(2, std::min<std::size_t>(t.find('\n'), 256) - 2);
  auto next_word = [&line]() {
    std::size_t b = 0;
    while (b < line.size() && (line[b] == ' ' || line[b] == '\t')) ++b;
    std::size_t e = b;
    while (e < line.size() && !is_space(line[e])) ++e;
    auto word = line.substr(b, e - b);
    line.remove_prefix(e);
    return word.substr(word.rfind('/') == std::string_view::npos ? 0 : word.rfind('/') + 1);
  };
  auto interpreter = next_word();
  if (interpreter == "env") {
    interpreter = next_word();
    if (starts_with(interpreter, "-")) interpreter = next_word();  // env -S
  }
  struct Entry {
    std::string_view prefix, mime;
  };
  static constexpr Entry entries[] = {
      {"python", "text/x-script.python"},
      {"perl", "text/x-perl"},
      {"ruby", "text/x-ruby"},
      {"node", "application/javascript"},
      {"php", "text/x-php"},
      {"tclsh", "text/x-tcl"},
      {"wish", "text/x-tcl"},
      {"lua", "text/x-lua"},
      {"awk", "text/x-awk"},
      {"gawk", "text/x-awk"},
  };
  for (const auto& e : entries)
    if (starts_with(interpreter, e.prefix)) return e.mime;
  return "text/x-shellscript";
}

std::string_view skip_space(std::string_view t) {
  while (!t.empty() && is_space(t.front())) t.remove_prefix(1);
  return t;
}

// A name that ends where a tag name ends.
bool tag_is(std::string_view t, std::string_view name) {
  return istarts_with(t, name) && (t.size() == name.size() || is_space(t[name.size()]) ||
                                   t[name.size()] == '>' || t[name.size()] == '/');
}

// HTML or SVG by its first markup, after a byte order mark, white space, comments, an XML
// declaration and a document type declaration (within the first 4 KiB).
std::optional<Sniffed> markup(std::string_view t) {
  if (starts_with(t, "\xef\xbb\xbf")) t.remove_prefix(3);
  t = skip_space(t.substr(0, 4096));
  for (int steps = 0; steps < 16 && starts_with(t, "<"); ++steps) {
    if (starts_with(t, "<!--") || starts_with(t, "<?")) {
      const auto end = t.find(t[1] == '!' ? "-->"sv : "?>"sv, 2);
      if (end == std::string_view::npos) return std::nullopt;
      t = skip_space(t.substr(end + (t[1] == '!' ? 3 : 2)));
      continue;
    }
    if (istarts_with(t, "<!doctype")) {
      const auto name = skip_space(t.substr(9));
      if (tag_is(name, "html")) return settled("html", "text/html");
      if (tag_is(name, "svg")) return settled("image", "image/svg+xml");
      const auto end = t.find('>');
      if (end == std::string_view::npos) return std::nullopt;
      t = skip_space(t.substr(end + 1));
      continue;
    }
    if (tag_is(t.substr(1), "html")) return settled("html", "text/html");
    if (tag_is(t.substr(1), "svg")) return settled("image", "image/svg+xml");
    return std::nullopt;
  }
  return std::nullopt;
}

// Text by which libmagic might name a script, HTML or a text image: a superset, cheap to
// check, of what its rules test (Python, Ruby and JavaScript constructs in the first 8 KiB,
// HTML tags in the first 4 KiB, Perl's eval exec in the first 1 KiB, "use strict"
// anywhere). Such text goes to libmagic; other text is "text".
bool maybe_script_or_markup(std::string_view t) {
  constexpr auto npos = std::string_view::npos;
  if (t.size() >= 3 && t[0] == 'P' && t[1] >= '1' && t[1] <= '3' && is_space(t[2]))
    return true;                                                             // a Netpbm text image
  if (t.size() >= 3 && starts_with(t, "<?") && is_space(t[2])) return true;  // PHP short tag
  if (starts_with(t, "@")) return true;                                      // batch variants
  for (const char* at = t.data(); at < t.data() + t.size();) {  // "use strict" or 'use strict'
    const auto* hit = static_cast<const char*>(
        ::memmem(at, static_cast<std::size_t>(t.data() + t.size() - at), "use strict", 10));
    if (!hit) break;
    if (hit > t.data() && hit + 10 < t.data() + t.size() && (hit[-1] == '"' || hit[-1] == '\'') &&
        hit[10] == hit[-1])
      return true;
    at = hit + 10;
  }
  const auto w8 = t.substr(0, 8192), w4 = t.substr(0, 4096), w1 = t.substr(0, 1024);
  for (auto token : {"(function"sv, "(async function"sv, "module.exports"sv, "module["sv,
                     "require("sv, "typeof"sv, "if __name__"sv, "__BUNDLE_START_TIME__"sv})
    if (contains(w8, token)) return true;
  if (contains(w4, "try:") && (contains(w8, "except") || contains(w8, "finally:"))) return true;
  for (auto token : {"eval \"exec"sv, "eval 'exec"sv, "eval '(exit"sv})
    if (contains(w1, token)) return true;
  for (auto at = w4.find('<'); at != npos; at = w4.find('<', at + 1)) {
    const auto tag = w4.substr(at + 1);
    if (istarts_with(tag, "!doctype") && istarts_with(skip_space(tag.substr(8)), "html"))
      return true;
    if (istarts_with(tag, "a") && tag.size() > 1 && is_space(tag[1]) &&
        istarts_with(skip_space(tag.substr(1)), "href="))
      return true;
    for (auto name : {"html"sv, "head"sv, "title"sv, "script"sv, "style"sv, "table"sv, "svg"sv})
      if (tag_is(tag, name)) return true;
  }
  // Lines that open a Python, Ruby or JavaScript construct; Ruby's class, module and def
  // count with an "end" line.
  bool ruby_open = false, ruby_end = false;
  for (std::size_t at = 0; at < w8.size();) {
    auto end = w8.find('\n', at);
    if (end == npos) end = w8.size();
    const auto raw = w8.substr(at, end - at);
    at = end + 1;
    auto line = raw;
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
    if (line == "end" || (starts_with(line, "end") && line.size() > 3 && is_space(line[3]))) {
      ruby_end = true;
      continue;
    }
    // Every construct below starts with one of these letters.
    if (line.size() < 5 || std::string_view("cdefimr").find(line[0]) == npos) continue;
    const bool python_block = line.back() == ':' || line.find(": pass") != npos;
    auto word = [&line](std::string_view w) {
      return starts_with(line, w) && line.size() > w.size() && is_space(line[w.size()]);
    };
    if ((word("import") || word("export")) &&
        (line.find(" from ") != npos || line.find(" as ") != npos || line[7] == '"' ||
         line[7] == '\''))
      return true;
    if (word("export"))
      for (auto w : {"function"sv, "class"sv, "default"sv, "const"sv, "var"sv, "let"sv, "async"sv})
        if (starts_with(line.substr(7), w)) return true;
    if (word("from") && line.find(" import") != npos) return true;
    if (starts_with(raw, "class ") && python_block) return true;
    if (word("def") && python_block) return true;
    if (word("require") && line.find('\'') != npos) return true;
    auto capital_after = [&line](std::size_t n) {
      const auto rest = skip_space(line.substr(n));
      return !rest.empty() && is_upper(rest[0]);
    };
    if (word("include") && capital_after(7) && line.find("::") != npos) return true;
    if ((word("class") && capital_after(5)) || (word("module") && capital_after(6)))
      ruby_open = true;
    if (word("def")) ruby_open = true;
  }
  return ruby_open && ruby_end;
}

// Text: scripts that say so, HTML and SVG by their first markup, RTF, XPM; else plain text,
// or libmagic's to decide when it might call it a script or HTML.
Sniffed text(std::string_view t) {
  if (starts_with(t, "#!")) return settled("script", script_mime(t));
  if (istarts_with(t, "<?php")) return settled("script", "text/x-php");
  if (starts_with(t, "@")) {
    const auto rest = t.substr(1);
    for (auto command : {" echo off"sv, "echo off"sv, "rem"sv, "set "sv})
      if (istarts_with(rest, command)) return settled("script", "text/x-msdos-batch");
  }
  if (starts_with(t, "/* XPM */")) return settled("image", "image/x-xpixmap");
  if (auto m = markup(t)) return *m;
  if (maybe_script_or_markup(t)) return {"text", "text/plain", false};
  return settled("text", "text/plain");
}

// "%PDF-" and a version within the first 1 KiB, where readers still find it.
bool pdf(Bytes d) {
  const auto t = chars(d.first(std::min<std::size_t>(d.size(), 1024)));
  if (starts_with(t, "%PDF-")) return true;
  const auto at = t.find("%PDF-");
  return at != std::string_view::npos && at + 5 < t.size() && t[at + 5] >= '1' && t[at + 5] <= '9';
}

}  // namespace

Sniffed sniff_file_type(Bytes head, Bytes tail) {
  if (head.empty()) return settled("unknown", "application/x-empty");
  if (auto ft = executable(head)) return *ft;
  if (auto ft = container(head, tail)) return *ft;
  if (auto ft = media(head)) return *ft;
  if (auto ft = other_binary(head)) return *ft;
  if (pdf(head)) return settled("pdf", "application/pdf");
  if (starts_with(chars(head), "{\\rtf")) return settled("office", "text/rtf");
  if (is_text(head)) return text(chars(head));
  if (detail::looks_like_noise(head)) return settled("unknown", "application/octet-stream");
  return {"unknown", "application/octet-stream", false};
}

namespace detail {

FileType libmagic_file_type(Bytes head, Bytes tail) {
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

}  // namespace detail

FileType detect_file_type(Bytes head, Bytes tail) {
  const Sniffed s = sniff_file_type(head, tail);
  if (!s.settled) {
    FileType ft = detail::libmagic_file_type(head, tail);
    if (!ft.mime.empty()) return ft;  // else libmagic is unavailable: the native guess
  }
  return {s.name, std::string(s.mime)};
}

}  // namespace pc::inspect
