#include "inspect/filetype.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
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

std::string_view sniffed(const std::string& s) {
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

TEST(FileType, SniffByMagicNumbers) {
  EXPECT_EQ(sniffed(read_head("/bin/true")), "exe");
  EXPECT_EQ(sniffed(std::string("MZ\x90\x00", 4)), "exe");
  EXPECT_EQ(sniffed(std::string("\xcf\xfa\xed\xfe\x07\x00\x00\x01", 8)), "exe");
  EXPECT_EQ(sniffed("#!/bin/sh\necho hi\n"), "script");
  EXPECT_EQ(sniffed(ZipWriter::single("a.txt", "hello")), "zip");
  EXPECT_EQ(sniffed(ooxml(true)), "zip");  // coarser than detect_file_type
  EXPECT_EQ(sniffed(std::string("\x1f\x8b\x08\x00", 4)), "gzip");
  EXPECT_EQ(sniffed("BZh91AY&SY"), "bzip2");
  EXPECT_EQ(sniffed(std::string("\xFD"
                                "7zXZ\0\0\x04",
                                8)),
            "xz");
  EXPECT_EQ(sniffed(std::string("7z\xBC\xAF\x27\x1C\x00\x04", 8)), "7z");
  EXPECT_EQ(sniffed(std::string("Rar!\x1A\x07\x01\x00", 8)), "rar");
  EXPECT_EQ(sniffed(std::string("MSCF\0\0\0\0\x10\x00", 10)), "cab");
  std::string tar(512, '\0');
  tar.replace(0, 5, "a.txt");
  tar.replace(257, 6, std::string("ustar\0", 6));
  EXPECT_EQ(sniffed(tar), "tar");
  EXPECT_EQ(sniffed(tar.substr(0, 260)), "unknown");  // "ustar" cut off: never read past the end
  EXPECT_EQ(sniffed("Just some plain text.\n"), "unknown");
  EXPECT_EQ(sniffed(""), "unknown");
  EXPECT_EQ(sniffed("M"), "unknown");
}

TEST(FileType, SniffTellsInstallersFromOtherOleFiles) {
  const std::string msi_class("\x84\x10\x0c\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46",
                              16);
  const std::string doc_class("\x06\x09\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46",
                              16);  // Word 97
  EXPECT_EQ(sniffed(ole_with_root_class(msi_class)), "msi");
  EXPECT_EQ(sniffed(ole_with_root_class(doc_class)), "office");
  EXPECT_EQ(sniffed(ole("VBA")), "office");  // no valid sector shift: not an installer
  // A directory sector beyond the bytes at hand, or a bogus one: not read, "office".
  std::string far = ole_with_root_class(msi_class);
  far[0x30] = 7;
  EXPECT_EQ(sniffed(far), "office");
  far[0x30] = far[0x31] = far[0x32] = far[0x33] = '\xff';
  EXPECT_EQ(sniffed(far), "office");
  EXPECT_EQ(sniffed(far.substr(0, 8)), "office");
}

// Where it matters (the types scan.on_failure = "by_type" blocks), the sniff agrees with
// libmagic.
TEST(FileType, SniffAgreesWithDetectionOnExecutablesAndArchives) {
  const std::string samples[] = {
      read_head("/bin/true"),
      ZipWriter::single("a.txt", "hello"),
      std::string(
          "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20),
      std::string("BZh91AY&SY\x01\x02\x03\x04", 14),
      std::string("7z\xBC\xAF\x27\x1C\x00\x04", 8) + std::string(24, '\0'),
      std::string("Rar!\x1A\x07\x00", 7) + std::string(32, '\0'),
  };
  for (const auto& s : samples) EXPECT_EQ(sniffed(s), type_of(s));
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

}  // namespace
}  // namespace pc::inspect
