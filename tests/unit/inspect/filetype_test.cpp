#include "inspect/filetype.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "zip_writer.h"

namespace pc::inspect {
namespace {

using testing::ZipWriter;

std::span<const std::byte> bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string_view type_of(const std::string& s) {
  return detect_file_type(bytes(s)).name;
}

std::string read_head(const char* path, std::size_t n = kFileTypeHeadBytes) {
  std::ifstream in(path, std::ios::binary);
  std::string data(n, '\0');
  in.read(data.data(), static_cast<std::streamsize>(n));
  data.resize(static_cast<std::size_t>(in.gcount()));
  return data;
}

std::string ooxml(bool with_macros) {
  ZipWriter z;
  z.add(
      "[Content_Types].xml",
      R"(<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>)");
  z.add("_rels/.rels", R"(<?xml version="1.0"?><Relationships/>)");
  z.add("word/document.xml", R"(<?xml version="1.0"?><w:document/>)");
  if (with_macros) z.add("word/vbaProject.bin", std::string(600, '\x01'));
  return z.finish();
}

// A minimal OLE compound file: header, then one directory sector with the root entry and
// `storage` (a storage, type 1).
std::string ole(const std::string& storage) {
  std::string f(512 + 512, '\0');
  const char magic[] = "\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";
  std::copy(magic, magic + 8, f.begin());
  auto entry = [&](std::size_t at, const std::string& name, char type) {
    for (std::size_t i = 0; i < name.size(); ++i) f[at + 2 * i] = name[i];
    f[at + 64] = static_cast<char>((name.size() + 1) * 2);
    f[at + 66] = type;
  };
  entry(512, "Root Entry", 5);
  entry(512 + 128, storage, 1);
  return f;
}

TEST(FileType, ElfFromBinTrue) {
  std::string elf = read_head("/bin/true");
  ASSERT_GT(elf.size(), 64u);
  auto ft = detect_file_type(bytes(elf));
  EXPECT_EQ(ft.name, "exe") << ft.mime;
}

TEST(FileType, PeHeader) {
  // MZ stub with e_lfanew pointing at a PE signature and a minimal COFF header.
  std::string pe(512, '\0');
  pe[0] = 'M';
  pe[1] = 'Z';
  pe[0x3c] = static_cast<char>(0x80);
  pe.replace(0x80, 4, std::string("PE\0\0", 4));
  pe[0x84] = static_cast<char>(0x4c);  // i386
  pe[0x85] = static_cast<char>(0x01);
  pe[0x86] = 1;                        // one section
  pe[0x94] = static_cast<char>(0xe0);  // optional header size
  pe[0x96] = 0x02;                     // executable image
  pe[0x98] = 0x0b;                     // PE32 magic
  pe[0x99] = 0x01;
  EXPECT_EQ(type_of(pe), "exe") << detect_file_type(bytes(pe)).mime;
}

TEST(FileType, Archives) {
  EXPECT_EQ(type_of(ZipWriter::single("a.txt", "hello")), "zip");
  std::string gz("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00",
                 20);
  EXPECT_EQ(type_of(gz), "gzip") << detect_file_type(bytes(gz)).mime;
  EXPECT_EQ(type_of(std::string("BZh91AY&SY\x01\x02\x03\x04", 14)), "bzip2");
  EXPECT_EQ(type_of(std::string("\xFD"
                                "7zXZ\0\0\x04\xE6\xD6\xB4\x46",
                                12)),
            "xz");
  EXPECT_EQ(type_of(std::string("7z\xBC\xAF\x27\x1C\x00\x04", 8) + std::string(24, '\0')), "7z");
  EXPECT_EQ(type_of(std::string("Rar!\x1A\x07\x00", 7) + std::string(32, '\0')), "rar");
}

TEST(FileType, Documents) {
  std::string pdf = "%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n";
  EXPECT_EQ(type_of(pdf), "pdf");
  EXPECT_EQ(type_of(ooxml(true)), "office-macro") << detect_file_type(bytes(ooxml(true))).mime;
  EXPECT_EQ(type_of(ooxml(false)), "office") << detect_file_type(bytes(ooxml(false))).mime;
}

TEST(FileType, Text) {
  EXPECT_EQ(type_of("Just some plain text.\nOn two lines.\n"), "text");
  EXPECT_EQ(type_of("<!DOCTYPE html>\n<html><head><title>x</title></head><body>hi</body></html>\n"),
            "html");
  EXPECT_EQ(type_of("#!/bin/sh\necho hello\nexit 0\n"), "script");
}

TEST(FileType, UnknownAndEmpty) {
  std::string noise;
  for (int i = 0; i < 256; ++i) noise.push_back(static_cast<char>((i * 151 + 7) & 0xFF));
  EXPECT_EQ(type_of(noise), "unknown") << detect_file_type(bytes(noise)).mime;
  EXPECT_EQ(detect_file_type({}).name, "unknown");
}

Sniffed sniffed(const std::string& s) {
  return sniff_file_type(bytes(s));
}

// An OLE compound file whose root storage has class ID `clsid` (16 bytes): a 512-byte
// header (sector shift 9, first directory sector 0), then the directory sector.
std::string ole_with_root_class(const std::string& clsid) {
  std::string f = ole("Other");
  f[0x1e] = 9;
  f[0x30] = 0;  // directory at sector 0: the bytes at 512
  f.replace(512 + 0x50, 16, clsid);
  return f;
}

TEST(FileType, SniffTellsInstallersFromOtherOleFiles) {
  const std::string msi_class("\x84\x10\x0c\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46",
                              16);
  const std::string doc_class("\x06\x09\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46",
                              16);  // Word 97
  EXPECT_EQ(sniffed(ole_with_root_class(msi_class)).name, "msi");
  EXPECT_EQ(sniffed(ole_with_root_class(doc_class)).name, "office");
  EXPECT_EQ(sniffed(ole("WordDocument")).name, "office");  // no valid sector shift
  EXPECT_EQ(sniffed(ole("VBA")).name, "office-macro");
  // A directory sector beyond the bytes at hand, or a bogus one: not read, "office".
  std::string far = ole_with_root_class(msi_class);
  far[0x30] = 7;
  EXPECT_EQ(sniffed(far).name, "office");
  far[0x30] = far[0x31] = far[0x32] = far[0x33] = '\xff';
  EXPECT_EQ(sniffed(far).name, "office");
  EXPECT_EQ(sniffed(far.substr(0, 8)).name, "office");
}

TEST(FileType, MacroInTheTailOfALargeDocument) {
  // The head holds only the start; the central directory (in the tail) names the VBA project.
  std::string doc = ooxml(true);
  std::string head = doc.substr(0, 300);
  std::string tail = doc.substr(doc.size() - 200);
  ASSERT_FALSE(detail::scan_zip_names(bytes(head)).vba_project);
  EXPECT_EQ(detect_file_type(bytes(head), bytes(tail)).name, "office-macro");
}

TEST(FileType, ZipNamesFromTruncatedData) {
  std::string doc = ooxml(true);
  for (std::size_t n = 0; n <= doc.size(); ++n) {
    auto names = detail::scan_zip_names(bytes(doc.substr(0, n)));
    if (n < 30) {
      EXPECT_FALSE(names.any);
    }
  }
  auto names = detail::scan_zip_names(bytes(doc));
  EXPECT_TRUE(names.any);
  EXPECT_TRUE(names.ooxml);
  EXPECT_TRUE(names.vba_project);
}

TEST(FileType, OleMacroStorages) {
  EXPECT_TRUE(detail::ole_has_macros(bytes(ole("Macros"))));
  EXPECT_TRUE(detail::ole_has_macros(bytes(ole("_VBA_PROJECT_CUR"))));
  EXPECT_FALSE(detail::ole_has_macros(bytes(ole("WordDocument"))));
  EXPECT_FALSE(detail::ole_has_macros(bytes(ole("Macros").substr(0, 600))));
  EXPECT_FALSE(detail::ole_has_macros(bytes("not an OLE file")));
}

TEST(FileType, MimeMapping) {
  EXPECT_EQ(policy_name_for_mime("application/x-dosexec"), "exe");
  EXPECT_EQ(policy_name_for_mime("application/x-mach-binary"), "exe");
  EXPECT_EQ(policy_name_for_mime("application/vnd.ms-cab-compressed"), "cab");
  EXPECT_EQ(policy_name_for_mime("application/x-msi"), "msi");
  EXPECT_EQ(policy_name_for_mime("application/x-tar"), "tar");
  EXPECT_EQ(policy_name_for_mime("application/msword"), "office");
  EXPECT_EQ(policy_name_for_mime("application/vnd.ms-excel.sheet.macroEnabled.12"), "office-macro");
  EXPECT_EQ(policy_name_for_mime("image/png"), "image");
  EXPECT_EQ(policy_name_for_mime("audio/mpeg"), "audio");
  EXPECT_EQ(policy_name_for_mime("video/mp4"), "video");
  EXPECT_EQ(policy_name_for_mime("application/octet-stream"), "unknown");
  EXPECT_EQ(policy_name_for_mime(""), "unknown");
}

TEST(FileType, EachThreadHasItsOwnHandle) {
  std::string pdf = "%PDF-1.4\n";
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) ok[t] += detect_file_type(bytes(pdf)).name == "pdf";
    });
  for (auto& th : threads) th.join();
  for (int n : ok) EXPECT_EQ(n, 50);
}

// ---- the native detector, format by format ----

std::string le16(unsigned v) {
  return {static_cast<char>(v & 0xff), static_cast<char>((v >> 8) & 0xff)};
}
std::string le32(std::uint32_t v) {
  return le16(v & 0xffff) + le16(v >> 16);
}
std::string be32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>((v >> 16) & 0xff),
          static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
}

// Pseudo-random bytes (noise), the same on every run.
std::string noise(std::size_t n, unsigned seed = 1) {
  std::string s(n, '\0');
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

std::string pe_file() {
  std::string pe(512, '\0');
  pe[0] = 'M';
  pe[1] = 'Z';
  pe[2] = static_cast<char>(0x90);
  pe[0x3c] = static_cast<char>(0x80);
  pe.replace(0x80, 4, std::string("PE\0\0", 4));
  pe.replace(0x84, 2, le16(0x14c));  // i386
  pe.replace(0x86, 2, le16(1));      // one section
  pe.replace(0x94, 2, le16(0xe0));   // optional header size
  pe.replace(0x96, 2, le16(0x102));  // executable image, 32-bit
  pe.replace(0x98, 2, le16(0x10b));  // PE32
  return pe + noise(1024);
}

std::string riff(std::string_view form, std::string chunk) {
  return "RIFF" + le32(static_cast<std::uint32_t>(4 + chunk.size())) + std::string(form) + chunk;
}

std::string wav() {
  std::string fmt =
      "fmt " + le32(16) + le16(1) + le16(1) + le32(8000) + le32(16000) + le16(2) + le16(16);
  return riff("WAVE", fmt + "data" + le32(512) + noise(512));
}

std::string ftyp(std::string_view brand) {
  std::string box =
      be32(24) + "ftyp" + std::string(brand) + be32(0x200) + "isom" + std::string(brand);
  return box + be32(8 + 256) + "mdat" + noise(256);
}

std::string ogg(std::string_view packet) {
  std::string page = "OggS" + std::string(1, '\0') + std::string(1, '\x02') + std::string(8, '\0') +
                     le32(0x1234) + le32(0) + le32(0) + std::string(1, '\x01') +
                     std::string(1, static_cast<char>(packet.size()));
  return page + std::string(packet) + noise(200);
}

std::string ebml(std::string_view doctype) {
  std::string header =
      std::string("\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08", 16) +
      "\x42\x82" + std::string(1, static_cast<char>(0x80 | doctype.size())) + std::string(doctype);
  return std::string("\x1a\x45\xdf\xa3", 4) +
         std::string(1, static_cast<char>(0x80 | header.size())) + header + noise(300);
}

std::string mpeg_ts() {
  std::string s;
  for (int i = 0; i < 8; ++i) s += std::string("\x47\x40\x00\x10", 4) + noise(184, i + 2);
  return s;
}

// Overwrites `h` at `at` with `s`.
void put(std::string& h, std::size_t at, std::string_view s) {
  std::copy(s.begin(), s.end(), h.begin() + static_cast<std::ptrdiff_t>(at));
}

std::string tar_file(bool ustar) {
  std::string h(512, '\0');
  put(h, 0, "a.txt");
  put(h, 100, "0000644");
  put(h, 108, "0001750");
  put(h, 116, "0001750");
  put(h, 124, "00000000005");
  put(h, 136, "14712345670");
  h[156] = '0';
  if (ustar)
    put(h, 257,
        std::string_view("ustar\0"
                         "00",
                         8));
  put(h, 148, "        ");
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  char field[8];
  std::snprintf(field, sizeof field, "%06o", sum);
  put(h, 148, std::string(field, 6) + '\0');
  return h + "hello" + std::string(512 - 5, '\0') + std::string(1024, '\0');
}

std::string odf() {
  ZipWriter z;
  z.add("mimetype", "application/vnd.oasis.opendocument.text");
  z.add("content.xml", R"(<?xml version="1.0"?><office:document-content/>)");
  z.add("META-INF/manifest.xml", R"(<?xml version="1.0"?><manifest:manifest/>)");
  return z.finish();
}

std::string lines(std::string_view line, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += line;
  return s;
}

struct Case {
  const char* what;
  std::string body;
  std::string_view name;  // what detect_file_type says
  bool settled = true;    // the native detector decides (false: libmagic does)
  // What libmagic says when it differs (docs/scanning.md lists why), else "".
  std::string_view libmagic = "";
};

std::vector<Case> cases() {
  const std::string prose = lines("The quick brown fox jumps over the lazy dog again.\n", 40);
  return {
      {"PE executable", pe_file(), "exe"},
      {"DOS executable", std::string("MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0", 16) + noise(200),
       "exe", true, "unknown"},
      {"ELF executable", read_head("/bin/true"), "exe"},
      {"ELF object",
       std::string("\x7f"
                   "ELF\x02\x01\x01\0",
                   8) +
           std::string(8, '\0') + le16(1) + noise(100),
       "unknown"},
      {"Mach-O 64",
       std::string("\xcf\xfa\xed\xfe\x07\0\0\x01\x03\0\0\0\x02\0\0\0", 16) + noise(200), "exe"},
      {"Mach-O fat",
       std::string("\xca\xfe\xba\xbe\0\0\0\x02\x01\0\0\x07\x80\0\0\x03", 16) + noise(200), "exe"},
      {"Java class", std::string("\xca\xfe\xba\xbe\0\0\0\x34\0\x1d", 10) + noise(200), "unknown"},
      {"shell script", "#!/bin/sh\necho hello\nexit 0\n", "script"},
      {"env python", "#!/usr/bin/env python3\nprint('hi')\n", "script"},
      {"PHP", "<?php echo 'hello'; ?>\n", "script"},
      {"batch", "@echo off\r\necho hello\r\n", "script"},
      {"JavaScript", "(function () {\n  'use strict';\n  var x = 1;\n})();\n", "script", false},
      {"Python", "import os\nimport sys as system\n\ndef main(argv):\n    return 0\n", "script",
       false},
      {"zip", ZipWriter::single("a.txt", "hello"), "zip"},
      {"OOXML", ooxml(false), "office"},
      {"OOXML with macros", ooxml(true), "office-macro"},
      {"OpenDocument", odf(), "office"},
      {"RAR 4", std::string("Rar!\x1a\x07\x00\xcf\x90\x73\x00\x00\x0d\x00", 14) + noise(100),
       "rar"},
      {"RAR 5", std::string("Rar!\x1a\x07\x01\x00", 8) + noise(100), "rar"},
      {"7z", std::string("7z\xbc\xaf\x27\x1c\x00\x04", 8) + noise(100), "7z"},
      {"gzip", std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10) + noise(100), "gzip"},
      {"bzip2", std::string("BZh91AY&SY", 10) + noise(100), "bzip2"},
      {"xz",
       std::string("\xfd"
                   "7zXZ\0\0\x04\xe6\xd6\xb4\x46",
                   12) +
           noise(100),
       "xz"},
      {"tar (ustar)", tar_file(true), "tar"},
      {"tar (old)", tar_file(false), "tar"},
      {"cab",
       "MSCF" + le32(0) + le32(400) + le32(0) + le32(44) + le32(0) + std::string("\x03\x01", 2) +
           le16(1) + le16(1) + le16(0) + le16(0x1234) + le16(0) + noise(360),
       "cab"},
      {"PDF", "%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "pdf"},
      {"PDF after junk", std::string(300, ' ') + "\n%PDF-1.4\n1 0 obj\n<< >>\nendobj\n", "pdf",
       true, "text"},
      {"RTF", "{\\rtf1\\ansi\\deff0 {\\fonttbl {\\f0 Times;}} Hello.}\n", "office"},
      {"PNG",
       std::string("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0", 29) +
           noise(300),
       "image"},
      {"JPEG",
       std::string("\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0", 20) + noise(300),
       "image"},
      {"GIF", std::string("GIF89a\x10\0\x10\0\x80\0\0", 13) + noise(100), "image"},
      {"BMP",
       "BM" + le32(1078) + le32(0) + le32(54) + le32(40) + le32(16) + le32(16) + le16(1) +
           le16(24) + std::string(24, '\0') + noise(768),
       "image"},
      {"WebP", riff("WEBP", "VP8 " + le32(200) + noise(200)), "image"},
      {"ICO",
       std::string("\0\0\x01\0\x01\0\x10\x10\0\0\x01\0\x20\0", 14) + le32(1128) + le32(22) +
           le32(40) + noise(500),
       "image"},
      {"TIFF", std::string("II*\0\x08\0\0\0", 8) + noise(200), "image"},
      {"SVG",
       "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"><rect/></svg>\n",
       "image"},
      {"SVG with a prolog",
       "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- drawn -->\n<svg "
       "xmlns=\"http://www.w3.org/2000/svg\"><rect/></svg>\n",
       "image"},
      {"XPM", "/* XPM */\nstatic char *x[] = {\n\"1 1 1 1\",\n\"a c #000000\",\n\"a\"};\n",
       "image"},
      {"AVIF", ftyp("avif"), "image"},
      {"MP3 with ID3",
       std::string("ID3\x04\0\0\0\0\0\x0a", 10) + std::string(10, '\0') +
           std::string("\xff\xfb\x90\x64", 4) + noise(400),
       "audio"},
      {"MP3 frames", std::string("\xff\xfb\x90\x64", 4) + noise(400), "audio"},
      {"AAC ADTS", std::string("\xff\xf1\x50\x80\x2e\x7f\xfc", 7) + noise(300), "audio"},
      {"Ogg Vorbis", ogg(std::string("\x01vorbis\0\0\0\0\x02\x44\xac\0\0", 16)), "audio"},
      {"Ogg Opus", ogg("OpusHead\x01\x02\x38\x01\x80\xbb\0\0\0\0\0"), "audio"},
      {"FLAC", std::string("fLaC\0\0\0\x22\x10\0\x10\0", 12) + noise(200), "audio"},
      {"WAV", wav(), "audio"},
      {"M4A", ftyp("M4A "), "audio"},
      {"MIDI", std::string("MThd\0\0\0\x06\0\x01\0\x02\x01\xe0MTrk", 18) + noise(100), "audio"},
      {"MP4", ftyp("isom"), "video"},
      {"QuickTime", ftyp("qt  "), "video"},
      {"WebM", ebml("webm"), "video"},
      {"Matroska", ebml("matroska"), "video"},
      {"AVI", riff("AVI ", "LIST" + le32(200) + "hdrl" + noise(196)), "video"},
      {"MPEG-TS", mpeg_ts(), "video"},
      {"FLV", std::string("FLV\x01\x05\0\0\0\x09", 9) + noise(200), "video"},
      {"HTML", "<!DOCTYPE html>\n<html><head><title>x</title></head><body>hi</body></html>\n",
       "html"},
      {"HTML after a BOM and a comment",
       "\xef\xbb\xbf\n  <!-- generated -->\n<html lang=\"en\"><body>hi</body></html>\n", "html"},
      {"HTML fragment", "<div><p>Some <a href=\"/x\">text</a></p></div>\n", "html", false},
      {"plain text", prose, "text"},
      {"UTF-8 text", lines("Grüße aus Köln, très bien — ça va ? 日本語\n", 20), "text"},
      {"Latin-1 text",
       lines("Gr\xfc\xdf"
             "e aus K\xf6ln\n",
             20),
       "text"},
      {"JSON", "{\"items\": [{\"id\": 1, \"name\": \"a\"}, {\"id\": 2, \"name\": \"b\"}]}\n",
       "text"},
      {"CSS",
       "body {\n  margin: 0;\n  font-family: sans-serif;\n}\n.nav > a:hover { color: #336; }\n",
       "text"},
      {"XML", "<?xml version=\"1.0\"?>\n<feed><entry><id>1</id></entry></feed>\n", "text"},
      {"prose about PDF", "A PDF starts with %PDF- and a version.\n" + prose, "text", true, "pdf"},
      {"prose starting with BZh", "BZh is not a bzip2 stream.\n" + prose, "text", true, "bzip2"},
      {"noise", noise(4096), "unknown"},
      {"WOFF2", "wOF2" + noise(500), "unknown"},
      {"short binary", std::string("\x01\x02\x03\x00\x05", 5), "unknown", false},
      {"empty", "", "unknown"},
  };
}

TEST(FileType, NativeDetectorFormatByFormat) {
  for (const auto& c : cases()) {
    const auto s = sniffed(c.body);
    EXPECT_EQ(s.settled, c.settled) << c.what;
    if (s.settled) {
      EXPECT_EQ(s.name, c.name) << c.what << ": " << s.mime;
      EXPECT_FALSE(s.mime.empty()) << c.what;
    } else {
      // Undecided: the best guess for the queue-full path, text or unknown.
      EXPECT_TRUE(s.name == "text" || s.name == "unknown") << c.what << ": " << s.name;
    }
    const auto ft = detect_file_type(bytes(c.body));
    EXPECT_EQ(ft.name, c.name) << c.what << ": " << ft.mime;
  }
}

// Every prefix of every sample (a body cut short, or a head that ends mid-header): never a
// read past the end (the sanitizer builds check), always a documented name, and a settled
// answer always with a MIME type.
TEST(FileType, NativeDetectorOnTruncatedBodies) {
  static constexpr std::string_view names[] = {
      "exe",   "script", "zip",   "rar",  "7z",   "gzip",   "bzip2",
      "xz",    "tar",    "cab",   "msi",  "pdf",  "office", "office-macro",
      "image", "audio",  "video", "text", "html", "unknown"};
  for (const auto& c : cases()) {
    for (std::size_t n = 0; n <= std::min<std::size_t>(c.body.size(), 700); ++n) {
      // A copy of exactly n bytes, so that reading past it is an error the sanitizer sees.
      const std::string prefix = c.body.substr(0, n);
      const auto s = sniffed(prefix);
      EXPECT_NE(std::find(std::begin(names), std::end(names), s.name), std::end(names))
          << c.what << " cut at " << n;
      EXPECT_TRUE(!s.settled || !s.mime.empty()) << c.what << " cut at " << n;
    }
  }
  std::string tar = std::string(257, '\0') + "ustar";
  EXPECT_EQ(sniffed(tar).name, "unknown");  // a tar header needs 512 bytes
  EXPECT_EQ(sniffed("M").name, "text");
  EXPECT_EQ(sniffed("MZ").name, "text");  // too short for a DOS header
}

// The same bodies through libmagic: where it agrees, the synthetic samples are real enough;
// the differences are the ones docs/scanning.md lists.
TEST(FileType, LibmagicOnTheSameBodies) {
  for (const auto& c : cases()) {
    const auto magic = detail::libmagic_file_type(bytes(c.body), {});
    EXPECT_EQ(magic.name, c.libmagic.empty() ? c.name : c.libmagic) << c.what << ": " << magic.mime;
  }
}

}  // namespace
}  // namespace pc::inspect
