// Regressions found by the policy fuzz targets (tests/fuzz/fuzz_catdb_import.cpp,
// fuzz_policy_load.cpp, fuzz_warn_token.cpp). Each test names the input that showed the bug.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "policy/catdb.h"

namespace pc::policy {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "pc-fuzzreg.XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// fuzz_catdb_import, input "\x01\x00host1\n" (a domain list with one name ending in a digit):
// the entry matches "host1" but not "www.host1". lookup() treats every host whose last
// character is a digit as an IP address (catdb.cpp, is_address) and then probes only the
// whole host, so a domain entry ending in a digit never matches its subdomains, contrary to
// catdb.h ("a domain entry matches ... every subdomain; entries that are IP addresses match
// only that address"). A check with inet_pton (or "all labels numeric") would fix it.
TEST(CatDbFuzzRegressions, DomainEndingInDigitMatchesSubdomains) {
  CategoryDb::Builder b;
  auto src = b.add_source({"t", ""});
  auto cat = b.category("c");
  ASSERT_TRUE(b.add_domain("host1", cat, src));
  ASSERT_TRUE(b.add_domain("example.web3", cat, src));
  auto db = b.build();
  CategoryHits hits;
  EXPECT_EQ(db->lookup("host1", "/", hits), 1u);
  hits = {};
  EXPECT_EQ(db->lookup("www.host1", "/", hits), 1u);
  hits = {};
  EXPECT_EQ(db->lookup("a.b.example.web3", "/", hits), 1u);
}

// Input tests/fuzz/corpus/fuzz_catdb_import/regress-deep-url: a URL entry deeper than the
// '/' boundaries lookup tries was never found, not even for the same URL.
TEST(CatDbFuzzRegressions, DeepUrlEntryMatchesItself) {
  CategoryDb::Builder b;
  auto src = b.add_source({"t", ""});
  auto cat = b.category("c");
  std::string path;
  for (int i = 0; i < 40; ++i) path += "/d";
  ASSERT_TRUE(b.add_url("deep.example" + path + "//", cat, src));
  auto db = b.build();
  for (const std::string& p : {path, path + "/", path + "//"}) {
    CategoryHits hits;
    EXPECT_EQ(db->lookup("deep.example", p, hits), 1u) << p;
  }
  CategoryHits hits;
  EXPECT_EQ(db->lookup("deep.example", "/d/d", hits), 0u);
}

// Still right after the fix: addresses match only themselves.
TEST(CatDbFuzzRegressions, AddressEntriesMatchOnlyTheAddress) {
  CategoryDb::Builder b;
  auto src = b.add_source({"t", ""});
  auto cat = b.category("c");
  ASSERT_TRUE(b.add_domain("192.0.2.10", cat, src));
  auto db = b.build();
  CategoryHits hits;
  EXPECT_EQ(db->lookup("192.0.2.10", "/", hits), 1u);
  hits = {};
  EXPECT_EQ(db->lookup("1.192.0.2.10", "/", hits), 0u);
}

// Found reading the importers for the fuzz target (not reachable from the fuzzer, which only
// writes regular files): a squidGuard category whose `domains` (or `urls`, `expressions`) is a
// FIFO blocks the importer forever in open(2) (catdb_import.cpp, MappedFile::open opens
// O_RDONLY before checking S_ISREG), so a policy reload hangs the control thread. Opening with
// O_NONBLOCK (or checking with stat first) gives the documented "not a regular file" error.
TEST(CatDbFuzzRegressions, FifoInSquidGuardFolderDoesNotBlock) {
  TempDir dir;
  fs::create_directories(dir.path() / "ads");
  const fs::path fifo = dir.path() / "ads" / "domains";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  CategoryDb::Builder b;
  auto src = b.add_source({"t", ""});
  std::vector<std::string> errors;
  auto done =
      std::async(std::launch::async, [&] { import_squidguard_dir(b, src, dir.path(), errors); });
  const bool blocked = done.wait_for(std::chrono::seconds(2)) == std::future_status::timeout;
  if (blocked) {
    // Unblock the reader (open for writing, then close: it reads end of file).
    int fd = ::open(fifo.c_str(), O_WRONLY);
    if (fd >= 0) ::close(fd);
  }
  done.wait();
  EXPECT_FALSE(blocked) << "import_squidguard_dir blocked on a FIFO";
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("not a regular file"), std::string::npos) << errors[0];
}

}  // namespace
}  // namespace pc::policy
