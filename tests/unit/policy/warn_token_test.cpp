#include "policy/warn_token.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>

namespace pc::policy {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

const Clock::time_point kNow = Clock::time_point(std::chrono::seconds(1'800'000'000));

WarnSigner signer() {
  return WarnSigner(std::string(32, 'k'));
}

TEST(WarnToken, ValidTokenVerifies) {
  auto s = signer();
  std::string t = s.issue("alice", "example.org", kNow + 1h);
  EXPECT_TRUE(s.verify(t, "alice", "example.org", kNow));
  EXPECT_TRUE(s.verify(t, "alice", "example.org", kNow + 1h - 1s));
}

TEST(WarnToken, UrlAndCookieSafe) {
  auto s = signer();
  for (int i = 0; i < 200; ++i) {
    std::string t = s.issue("10.0.0." + std::to_string(i), "h" + std::to_string(i) + ".example",
                            kNow + std::chrono::seconds(i * 7919));
    EXPECT_EQ(t.size(), 55u);
    for (char c : t)
      EXPECT_TRUE((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_')
          << t;
  }
}

TEST(WarnToken, ExpiredFails) {
  auto s = signer();
  std::string t = s.issue("alice", "example.org", kNow + 1h);
  EXPECT_FALSE(s.verify(t, "alice", "example.org", kNow + 1h));
  EXPECT_FALSE(s.verify(t, "alice", "example.org", kNow + 2h));
  EXPECT_FALSE(s.verify(s.issue("alice", "example.org", kNow - 1s), "alice", "example.org", kNow));
}

TEST(WarnToken, EveryTamperedByteFails) {
  auto s = signer();
  std::string t = s.issue("alice", "example.org", kNow + 1h);
  for (std::size_t i = 0; i < t.size(); ++i) {
    for (char repl : {'A', 'z', '-', '_', '0'}) {
      if (t[i] == repl) continue;
      std::string bad = t;
      bad[i] = repl;
      EXPECT_FALSE(s.verify(bad, "alice", "example.org", kNow)) << i << " " << bad;
    }
  }
}

TEST(WarnToken, LaterExpiryCannotBeForged) {
  // Changing the expiry characters (even to a later time) breaks the MAC.
  auto s = signer();
  std::string t = s.issue("alice", "example.org", kNow + 1s);
  std::string later = s.issue("alice", "example.org", kNow + 24h);
  std::string spliced = later.substr(0, 12) + t.substr(12);
  EXPECT_FALSE(s.verify(spliced, "alice", "example.org", kNow));
}

TEST(WarnToken, OtherSiteFails) {
  auto s = signer();
  std::string t = s.issue("alice", "example.org", kNow + 1h);
  EXPECT_FALSE(s.verify(t, "alice", "example.com", kNow));
  EXPECT_FALSE(s.verify(t, "alice", "www.example.org", kNow));
  EXPECT_FALSE(s.verify(t, "alice", "", kNow));
  EXPECT_TRUE(s.verify(t, "alice", "EXAMPLE.org", kNow));  // host names ignore case
}

TEST(WarnToken, OtherUserFails) {
  auto s = signer();
  std::string t = s.issue("alice", "example.org", kNow + 1h);
  EXPECT_FALSE(s.verify(t, "bob", "example.org", kNow));
  EXPECT_FALSE(s.verify(t, "Alice", "example.org", kNow));
  EXPECT_FALSE(s.verify(t, "", "example.org", kNow));
  std::string c = s.issue("192.0.2.1", "example.org", kNow + 1h);
  EXPECT_FALSE(s.verify(c, "192.0.2.10", "example.org", kNow));
}

TEST(WarnToken, BindingIsUnambiguous) {
  // Moving bytes between who and site must not produce the same signed message.
  auto s = signer();
  std::string t = s.issue("ab", "c.example", kNow + 1h);
  EXPECT_FALSE(s.verify(t, "a", "bc.example", kNow));
  EXPECT_FALSE(s.verify(t, "abc.example", "", kNow));
}

TEST(WarnToken, OtherKeyFails) {
  auto s = signer();
  WarnSigner other(std::string(32, 'j'));
  std::string t = s.issue("alice", "example.org", kNow + 1h);
  EXPECT_FALSE(other.verify(t, "alice", "example.org", kNow));
}

TEST(WarnToken, GarbageNeverVerifies) {
  auto s = signer();
  std::string t = s.issue("alice", "example.org", kNow + 1h);
  const std::string cases[] = {
      "",
      "a",
      "====",
      t.substr(0, t.size() - 1),
      t + "A",
      t + "=",
      t.substr(0, 54) + "=",
      std::string(55, 'A'),
      std::string(55, '/'),
      std::string(55, '\0'),
      std::string(100000, 'x'),
      "not a token at all, but with spaces and ; = , characters",
  };
  for (const auto& g : cases) EXPECT_FALSE(s.verify(g, "alice", "example.org", kNow));
  std::mt19937 rng(42);
  for (int i = 0; i < 5000; ++i) {
    std::string g(rng() % 80, '\0');
    for (auto& c : g) c = static_cast<char>(rng() & 0xff);
    EXPECT_FALSE(s.verify(g, "alice", "example.org", kNow));
  }
}

TEST(WarnToken, NonCanonicalEncodingFails) {
  // 41 bytes leave 2 unused bits in the last character; only the zero spelling is accepted.
  auto s = signer();
  std::string t = s.issue("alice", "example.org", kNow + 1h);
  std::string alt = t;
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  auto v = alphabet.find(t.back());
  ASSERT_NE(v, std::string::npos);
  alt.back() = alphabet[v | 1];
  ASSERT_NE(alt, t);
  EXPECT_FALSE(s.verify(alt, "alice", "example.org", kNow));
}

TEST(WarnToken, ShortKeyRejected) {
  EXPECT_THROW(WarnSigner(std::string(15, 'k')), std::invalid_argument);
  EXPECT_NO_THROW(WarnSigner(std::string(16, 'k')));
}

TEST(WarnToken, GeneratedKeysAreRandom) {
  std::string a = WarnSigner::generate_key();
  std::string b = WarnSigner::generate_key();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
}

class KeyFile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pc-warn-key-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(KeyFile, CreatedWithMode0600AndReused) {
  auto file = dir_ / "warn.key";
  std::string key = WarnSigner::load_or_create_key(file);
  EXPECT_EQ(key.size(), 32u);
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, 32);
  EXPECT_EQ(WarnSigner::load_or_create_key(file), key);
  // Only the key file is left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_),
                          std::filesystem::directory_iterator()),
            1);
  // Tokens survive a restart that reads the same key.
  WarnSigner a(key), b(WarnSigner::load_or_create_key(file));
  EXPECT_TRUE(b.verify(a.issue("u", "h.example", kNow + 1h), "u", "h.example", kNow));
}

TEST_F(KeyFile, ExistingKeyIsRead) {
  auto file = dir_ / "warn.key";
  std::ofstream(file) << "0123456789abcdef0123";
  EXPECT_EQ(WarnSigner::load_or_create_key(file), "0123456789abcdef0123");
}

TEST_F(KeyFile, BadKeyFilesThrow) {
  auto short_file = dir_ / "short.key";
  std::ofstream(short_file) << "short";
  EXPECT_THROW(WarnSigner::load_or_create_key(short_file), std::runtime_error);
  auto long_file = dir_ / "long.key";
  std::ofstream(long_file) << std::string(5000, 'x');
  EXPECT_THROW(WarnSigner::load_or_create_key(long_file), std::runtime_error);
  EXPECT_THROW(WarnSigner::load_or_create_key(dir_), std::runtime_error);  // a directory
  EXPECT_THROW(WarnSigner::load_or_create_key(dir_ / "missing" / "warn.key"), std::runtime_error);
}

}  // namespace
}  // namespace pc::policy
