// The native file type detector against real files: a table of known samples from Debian
// packages (clamav-testfiles, icons, fonts...), and a differential test against the libmagic
// path (detail::libmagic_file_type, what detect_file_type was before the native detector)
// over a bounded, deterministic selection of the files installed on the machine.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "inspect/filetype.h"

namespace pc::inspect {
namespace {

namespace fs = std::filesystem;

std::span<const std::byte> bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// A file's head and tail as the scanner passes them (txn/scan.cpp, detect_type).
struct Body {
  std::string head, tail;
};

bool read_body(const fs::path& path, Body& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  in.seekg(0, std::ios::end);
  const auto size = static_cast<std::size_t>(in.tellg());
  in.seekg(0);
  out.head.assign(std::min(size, kFileTypeHeadBytes), '\0');
  in.read(out.head.data(), static_cast<std::streamsize>(out.head.size()));
  out.tail.clear();
  if (size > out.head.size()) {
    const std::size_t n = std::min(kFileTypeHeadBytes, size - out.head.size());
    out.tail.assign(n, '\0');
    in.seekg(static_cast<std::streamoff>(size - n));
    in.read(out.tail.data(), static_cast<std::streamsize>(n));
  }
  return static_cast<bool>(in);
}

// ---- the table ----

struct Sample {
  const char* path;
  std::string_view name;
  bool settled = true;  // the native detector decides (false: libmagic does)
};

const Sample kSamples[] = {
    {"/usr/share/clamav-testfiles/clam.exe", "exe"},
    {"/usr/share/clamav-testfiles/clam-upx.exe", "exe"},
    {"/usr/share/clamav-testfiles/clam_ISmsi_ext.exe", "exe"},
    {"/bin/true", "exe"},
    {"/usr/share/clamav-testfiles/clam.zip", "zip"},
    {"/usr/share/clamav-testfiles/clam.impl.zip", "zip"},
    {"/usr/share/clamav-testfiles/clam.7z", "7z"},
    {"/usr/share/clamav-testfiles/clam.cab", "cab"},
    {"/usr/share/clamav-testfiles/clam.tar.gz", "gzip"},
    {"/usr/share/clamav-testfiles/clam.exe.bz2", "bzip2"},
    {"/usr/share/clamav-testfiles/clam.ole.doc", "office"},
    {"/usr/share/clamav-testfiles/clam.ppt", "office"},
    {"/usr/share/clamav-testfiles/clam.exe.rtf", "office"},
    {"/usr/share/clamav-testfiles/clam.pdf", "pdf"},
    {"/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf", "pdf"},
    {"/usr/share/clamav-testfiles/clam.exe.html", "html", false},  // starts with "<a href"
    {"/usr/share/clamav-testfiles/clam.exe.mbox.base64", "text"},
    {"/usr/share/clamav-testfiles/clam.arj", "unknown", false},
    {"/usr/share/pixmaps/debian-logo.png", "image"},
    {"/usr/share/pixmaps/python3.xpm", "image"},
    {"/usr/share/icons/Adwaita/scalable/actions/address-book-new-symbolic.svg", "image"},
    {"/usr/share/tcltk/tk8.6/images/logo64.gif", "image"},
    {"/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "unknown"},
    {"/usr/share/common-licenses/GPL-3", "text"},
};

TEST(FileTypeSamples, KnownFiles) {
  int seen = 0;
  for (const auto& s : kSamples) {
    Body b;
    if (!read_body(s.path, b)) {
      std::cout << "  skipped (not installed): " << s.path << "\n";
      continue;
    }
    ++seen;
    auto native = sniff_file_type(bytes(b.head), bytes(b.tail));
    EXPECT_EQ(native.settled, s.settled) << s.path;
    if (native.settled) {
      EXPECT_EQ(native.name, s.name) << s.path << ": " << native.mime;
    }
    auto ft = detect_file_type(bytes(b.head), bytes(b.tail));
    EXPECT_EQ(ft.name, s.name) << s.path << ": " << ft.mime;
    EXPECT_EQ(detail::libmagic_file_type(bytes(b.head), bytes(b.tail)).name, s.name) << s.path;
  }
  if (seen == 0) GTEST_SKIP() << "none of the sample files is installed (clamav-testfiles...)";
}

// ---- the differential test ----

// Directories of files from Debian packages, and how many files to take from each (spread
// evenly over the sorted list of what is there, so the choice is the same on every run).
struct Root {
  const char* dir;
  std::size_t take;
};

const Root kRoots[] = {
    {"/usr/share/clamav-testfiles", 100},
    {"/usr/share/pixmaps", 20},
    {"/usr/share/icons", 120},
    {"/usr/share/fonts", 30},
    {"/usr/share/tcltk", 60},
    {"/usr/share/doc", 400},
    {"/usr/share/javascript", 60},
    {"/usr/share/perl5", 60},
    {"/usr/share/mime", 30},
    {"/usr/share/locale", 30},
    {"/usr/share/zoneinfo", 20},
    {"/usr/share/common-licenses", 20},
    {"/usr/share/misc", 10},
    {"/usr/bin", 250},
    {"/usr/sbin", 60},
    {"/usr/lib/x86_64-linux-gnu", 200},
    {"/usr/lib/python3", 250},
    {"/usr/lib/jvm", 40},
    {"/usr/include", 150},
    {"/etc", 150},
};

constexpr std::size_t kWalkLimit = 50000;  // entries visited per root

std::vector<fs::path> pick(const Root& root) {
  std::vector<fs::path> all;
  std::error_code ec;
  fs::recursive_directory_iterator it(root.dir, fs::directory_options::skip_permission_denied, ec);
  if (ec) return all;
  std::size_t visited = 0;
  for (; it != fs::recursive_directory_iterator() && visited < kWalkLimit; it.increment(ec)) {
    if (ec) break;
    ++visited;
    if (it->is_symlink(ec) || !it->is_regular_file(ec)) continue;
    const auto size = it->file_size(ec);
    if (ec || size == 0) continue;
    all.push_back(it->path());
  }
  std::sort(all.begin(), all.end());
  std::vector<fs::path> out;
  if (all.empty()) return out;
  const std::size_t n = std::min(root.take, all.size());
  for (std::size_t i = 0; i < n; ++i) out.push_back(all[i * all.size() / n]);
  return out;
}

bool starts(const std::string& s, std::string_view p) {
  return std::string_view(s).substr(0, p.size()) == p;
}

// The documented differences (docs/scanning.md): where the native detector is right and
// libmagic's name is not a policy type, or is a guess the native detector does not repeat.
// Returns the reason, or "" when the difference is not one of them.
std::string_view accepted_difference(const Body& b, const Sniffed& native, const FileType& magic) {
  const auto& h = b.head;
  // Text libmagic names by a MIME type that is no policy type (mail, news, PostScript...).
  if (native.name == "text" && magic.name == "unknown") return "text with a non-policy MIME type";
  // A "#!" interpreter libmagic does not know.
  if (native.name == "script" && starts(h, "#!") && magic.name == "text")
    return "#! script of an interpreter libmagic does not know";
  // Zip-based formats libmagic names by application (EPUB, APK, XPI, JAR...).
  if (native.name == "zip" && starts(h, "PK") && magic.name == "unknown")
    return "zip-based format libmagic names by application";
  // DOS, NE and LE executables (and damaged PE) libmagic names by another MIME or not at all.
  if (native.name == "exe" && starts(h, "MZ") && magic.name == "unknown")
    return "MZ executable libmagic does not call one";
  // XHTML with an XML declaration: libmagic's XML rule answers before its XHTML rule.
  if (native.name == "html" && magic.name == "text" && starts(h, "<?xml"))
    return "XHTML with an XML declaration";
  // SVG whose root follows a comment: libmagic looks for "<svg" only at the start.
  if (native.name == "image" && native.mime == "image/svg+xml" && magic.name == "text" &&
      starts(h, "<!--"))
    return "SVG after a leading comment";
  return "";
}

TEST(FileTypeSamples, NativeAgreesWithLibmagic) {
  std::size_t files = 0, settled = 0;
  std::map<std::string, std::size_t> by_name, accepted;
  std::vector<std::string> failures;
  for (const auto& root : kRoots) {
    for (const auto& path : pick(root)) {
      Body b;
      if (!read_body(path, b)) continue;
      ++files;
      const auto native = sniff_file_type(bytes(b.head), bytes(b.tail));
      const auto magic = detail::libmagic_file_type(bytes(b.head), bytes(b.tail));
      const auto ft = detect_file_type(bytes(b.head), bytes(b.tail));
      settled += native.settled;
      ++by_name[std::string(ft.name)];
      if (!native.settled) {
        EXPECT_EQ(ft.name, magic.name) << path;  // the fallback is libmagic's answer
        continue;
      }
      EXPECT_EQ(ft.name, native.name) << path;
      if (native.name == magic.name) continue;
      if (auto why = accepted_difference(b, native, magic); !why.empty()) {
        ++accepted[std::string(why)];
        continue;
      }
      failures.push_back(path.string() + ": native " + std::string(native.name) + " (" +
                         std::string(native.mime) + "), libmagic " + std::string(magic.name) +
                         " (" + magic.mime + ")");
    }
  }
  if (files < 50) GTEST_SKIP() << "too few sample files on this machine (" << files << ")";
  std::cout << "  " << files << " files, " << settled << " settled natively, " << files - settled
            << " to libmagic\n  types:";
  for (const auto& [name, n] : by_name) std::cout << " " << name << "=" << n;
  std::cout << "\n";
  for (const auto& [why, n] : accepted)
    std::cout << "  accepted difference: " << why << ": " << n << "\n";
  for (const auto& f : failures) ADD_FAILURE() << f;
}

}  // namespace
}  // namespace pc::inspect
