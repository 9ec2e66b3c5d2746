#include "inspect/engine.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "temp_dir.h"
#include "zip_writer.h"

namespace pc::inspect {
namespace {

namespace fs = std::filesystem;
using pc::testing::TempDir;
using testing::kEicar;
using testing::ZipWriter;

const fs::path kShipped = PC_SHIPPED_SIGNATURES_DIR;
const fs::path kTestFiles = "/usr/share/clamav-testfiles";

bool starts_with(const std::string& s, std::string_view p) {
  return s.rfind(p, 0) == 0;
}

class ClamEngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string error;
    engine_ = ClamEngine::load({kShipped}, Limits{}, error);
    ASSERT_TRUE(engine_) << error;
  }
  static void TearDownTestSuite() { engine_.reset(); }
  static std::shared_ptr<const ClamEngine> engine_;
};
std::shared_ptr<const ClamEngine> ClamEngineTest::engine_;

std::string nest_zip(std::string data, int layers) {
  for (int i = 0; i < layers; ++i)
    data = ZipWriter::single("layer" + std::to_string(i) + ".zip", data);
  return data;
}

TEST_F(ClamEngineTest, VersionDescribesTheShippedSet) {
  const auto& v = engine_->version();
  EXPECT_FALSE(v.libclamav.empty());
  EXPECT_GE(v.signatures, 2u);
  EXPECT_EQ(v.db_version, 0u);  // no official database in the shipped set
  EXPECT_EQ(v.fingerprint.size(), 16u);
  EXPECT_GT(v.generation, 0u);
  EXPECT_NE(v.text().find("ClamAV " + v.libclamav + "/0/"), std::string::npos) << v.text();
  EXPECT_FALSE(engine_->stale());
  // Every file of the shipped set is listed, as plain signature files (no header).
  ASSERT_EQ(v.databases.size(), 2u);
  EXPECT_EQ(v.databases[0].file.filename(), "portcullis.hdb");
  EXPECT_EQ(v.databases[1].file.filename(), "portcullis.ndb");
  for (const auto& db : v.databases) {
    EXPECT_EQ(db.version, 0u);
    EXPECT_EQ(db.built, 0);
  }
}

TEST_F(ClamEngineTest, EicarAsAPlainBuffer) {
  Verdict v = engine_->scan_buffer(kEicar.data(), kEicar.size());
  EXPECT_EQ(v.kind, Verdict::infected) << v.name;
  EXPECT_TRUE(starts_with(v.name, "Portcullis.Test.EICAR")) << v.name;
  std::string padded = kEicar + "\r\n   \r\n";
  EXPECT_EQ(engine_->scan_buffer(padded.data(), padded.size()).kind, Verdict::infected);
}

TEST_F(ClamEngineTest, EicarInsideAZip) {
  std::string zip = ZipWriter::single("eicar.com", kEicar);
  Verdict v = engine_->scan_buffer(zip.data(), zip.size());
  EXPECT_EQ(v.kind, Verdict::infected) << v.name;
  EXPECT_TRUE(starts_with(v.name, "Portcullis.Test.EICAR")) << v.name;
}

TEST_F(ClamEngineTest, EicarInsideAZipInAZip) {
  std::string zip = nest_zip(kEicar, 2);
  Verdict v = engine_->scan_buffer(zip.data(), zip.size());
  EXPECT_EQ(v.kind, Verdict::infected) << v.name;
}

TEST_F(ClamEngineTest, EicarInASpooledFile) {
  char name[] = "/tmp/pc-inspect-spool-XXXXXX";
  int fd = ::mkstemp(name);
  ASSERT_GE(fd, 0);
  ::unlink(name);
  std::string zip = ZipWriter::single("eicar.com", kEicar);
  ASSERT_EQ(::write(fd, zip.data(), zip.size()), static_cast<ssize_t>(zip.size()));
  Verdict v = engine_->scan_fd(fd);  // the offset is at the end: scan_fd rewinds
  EXPECT_EQ(v.kind, Verdict::infected) << v.name;
  ::close(fd);
}

TEST_F(ClamEngineTest, CleanRandomTenMegabytes) {
  std::string data(10u << 20, '\0');
  std::mt19937_64 rng(42);
  for (std::size_t i = 0; i + 8 <= data.size(); i += 8) {
    auto r = rng();
    std::memcpy(&data[i], &r, 8);
  }
  Verdict v = engine_->scan_buffer(data.data(), data.size());
  EXPECT_EQ(v.kind, Verdict::clean) << v.name;
  EXPECT_EQ(engine_->scan_buffer("", 0).kind, Verdict::clean);
}

TEST_F(ClamEngineTest, EncryptedZipIsUnscannable) {
  std::string zip = ZipWriter::single("secret.exe", kEicar, /*encrypted=*/true);
  Verdict v = engine_->scan_buffer(zip.data(), zip.size());
  EXPECT_EQ(v.kind, Verdict::unscannable) << v.name;
  EXPECT_TRUE(starts_with(v.name, "Heuristics.Encrypted.")) << v.name;
}

TEST_F(ClamEngineTest, NestingBeyondTheLimitIsUnscannable) {
  std::string zip = nest_zip("harmless text, but deep", 12);
  Verdict v = engine_->scan_buffer(zip.data(), zip.size());
  EXPECT_EQ(v.kind, Verdict::unscannable) << v.name;
  EXPECT_TRUE(starts_with(v.name, "Heuristics.Limits.Exceeded")) << v.name;
}

TEST_F(ClamEngineTest, AThreatFoundWithinTheLimitsWinsOverALimit) {
  ZipWriter z;
  z.add("deep.zip", nest_zip("deep", 12));
  z.add("eicar.com", kEicar);
  std::string zip = z.finish();
  Verdict v = engine_->scan_buffer(zip.data(), zip.size());
  EXPECT_EQ(v.kind, Verdict::infected) << v.name;
}

TEST(ClamEngine, FileLargerThanTheLimitIsUnscannable) {
  Limits limits;
  limits.max_file_size = 1u << 20;
  limits.max_scan_size = 1u << 20;
  std::string error;
  auto engine = ClamEngine::load({kShipped}, limits, error);
  ASSERT_TRUE(engine) << error;
  std::string data(2u << 20, 'a');
  Verdict v = engine->scan_buffer(data.data(), data.size());
  EXPECT_EQ(v.kind, Verdict::unscannable) << v.name;
  EXPECT_EQ(v.name, "Heuristics.Limits.Exceeded.MaxFileSize");
  // Inside an archive, the inner file is over the limit.
  std::string zip = ZipWriter::single("big.txt", data);
  v = engine->scan_buffer(zip.data(), zip.size());
  EXPECT_EQ(v.kind, Verdict::unscannable) << v.name;
}

TEST(ClamEngine, EveryClamavTestFileIsDetected) {
  if (!fs::is_directory(kTestFiles))
    GTEST_SKIP() << kTestFiles << " is absent (Debian package clamav-testfiles)";
  // clam_cache_emax.tgz nests clam.exe 16 and 18 layers deep (each .tgz is two layers):
  // beyond the default limit of 10 it is unscannable; with a deeper limit it is detected.
  Limits deep;
  deep.max_recursion = 20;
  std::string error;
  auto standard = ClamEngine::load({kShipped}, Limits{}, error);
  ASSERT_TRUE(standard) << error;
  auto engine = ClamEngine::load({kShipped}, deep, error);
  ASSERT_TRUE(engine) << error;
  int files = 0;
  for (const auto& entry : fs::directory_iterator(kTestFiles)) {
    if (!entry.is_regular_file()) continue;
    ++files;
    const std::string name = entry.path().filename().string();
    Verdict v = engine->scan_file(entry.path());
    EXPECT_EQ(v.kind, Verdict::infected) << name << ": " << v.name;
    EXPECT_TRUE(starts_with(v.name, "Portcullis.Test.ClamAV-TestFile")) << name << ": " << v.name;
    Verdict s = standard->scan_file(entry.path());
    if (name == "clam_cache_emax.tgz")
      EXPECT_EQ(s.kind, Verdict::unscannable) << name << ": " << s.name;
    else
      EXPECT_EQ(s.kind, Verdict::infected) << name << ": " << s.name;
  }
  EXPECT_GT(files, 0);
}

TEST(ClamEngine, MissingDirectoryIsAnError) {
  std::string error;
  auto engine = ClamEngine::load({kShipped, "/nonexistent/pc-signatures"}, Limits{}, error);
  EXPECT_FALSE(engine);
  EXPECT_NE(error.find("/nonexistent/pc-signatures"), std::string::npos) << error;
}

TEST(ClamEngine, EmptyAdminDirectoryAddsNothing) {
  TempDir admin;
  admin.write("README.txt", "not a database");
  std::string error;
  auto engine = ClamEngine::load({kShipped, admin.path}, Limits{}, error);
  ASSERT_TRUE(engine) << error;
  EXPECT_EQ(engine->scan_buffer(kEicar.data(), kEicar.size()).kind, Verdict::infected);
}

TEST(ClamEngine, AdminSignaturesAreLoadedAndAChangeMakesTheEngineStale) {
  TempDir admin;
  admin.write("local.ndb", "Local.Test.Marker:0:*:706f727463756c6c69732d6d61726b6572\n");
  std::string error;
  auto engine = ClamEngine::load({kShipped, admin.path}, Limits{}, error);
  ASSERT_TRUE(engine) << error;
  std::string data = "xx portcullis-marker xx";
  Verdict v = engine->scan_buffer(data.data(), data.size());
  EXPECT_EQ(v.kind, Verdict::infected);
  EXPECT_TRUE(starts_with(v.name, "Local.Test.Marker")) << v.name;
  EXPECT_FALSE(engine->stale());
  admin.write("more.hdb", "aa15bcf478d165efd2065190eb473bcb:544:Local.Test.Other\n");
  EXPECT_TRUE(engine->stale());
  auto next = ClamEngine::load({kShipped, admin.path}, Limits{}, error);
  ASSERT_TRUE(next) << error;
  EXPECT_GT(next->version().generation, engine->version().generation);
  EXPECT_NE(next->version().fingerprint, engine->version().fingerprint);
}

TEST(ClamEngine, MalformedDatabaseIsAnErrorNamingTheDirectory) {
  TempDir admin;
  admin.write("broken.ndb", "this is not a signature\n");
  std::string error;
  auto engine = ClamEngine::load({kShipped, admin.path}, Limits{}, error);
  EXPECT_FALSE(engine);
  EXPECT_NE(error.find(admin.path.string()), std::string::npos) << error;
}

// libclamav answers "clean" for anything, EICAR included, when it cannot make its per-scan
// folder (it reports the failure only to the message callback): that must be an error. A
// scratch folder removed under the gateway is made again.
TEST(ClamEngineScratch, AScratchFolderItCannotUseIsAnErrorNeverClean) {
  const TempDir tmp;
  const fs::path dir = tmp.path / "scratch";
  fs::create_directories(dir);
  Limits limits;
  limits.tmpdir = dir;
  std::string error;
  auto engine = ClamEngine::load({kShipped}, limits, error);
  ASSERT_TRUE(engine) << error;
  const std::string zip = ZipWriter::single("eicar.com", kEicar);
  EXPECT_EQ(engine->scan_buffer(kEicar.data(), kEicar.size()).kind, Verdict::infected);

  fs::remove_all(dir);  // removed: made again, the scan completes
  EXPECT_EQ(engine->scan_buffer(zip.data(), zip.size()).kind, Verdict::infected);
  EXPECT_TRUE(fs::is_directory(dir));

  fs::remove_all(dir);  // a file in its place: it cannot be made again
  std::ofstream(dir) << "not a folder";
  for (const std::string* body : {&kEicar, &zip}) {
    Verdict v = engine->scan_buffer(body->data(), body->size());
    EXPECT_EQ(v.kind, Verdict::error) << v.name;
    EXPECT_NE(v.name.find("temporary directory"), std::string::npos) << v.name;
  }
}

}  // namespace
}  // namespace pc::inspect
