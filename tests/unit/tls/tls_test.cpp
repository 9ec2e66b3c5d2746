// Self-signed certificate generation, server contexts, and real handshakes over 127.0.0.1.
#include "tls/tls.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace pc::tls {
namespace {

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const {
    Free(p);
  }
};
using BioPtr = std::unique_ptr<BIO, Deleter<&BIO_free_all>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<&EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<&X509_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<&X509_EXTENSION_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<&GENERAL_NAMES_free>>;
using BasicConstraintsPtr = std::unique_ptr<BASIC_CONSTRAINTS, Deleter<&BASIC_CONSTRAINTS_free>>;

// A fresh folder under the system's temporary folder, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ =
        fs::temp_directory_path() / ("pc_tls_test_" + std::string(info ? info->name() : "x") + "_" +
                                     std::to_string(::getpid()) + "_" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_bytes(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
  ASSERT_TRUE(out.good()) << p;
}

X509Ptr load_cert(const fs::path& p) {
  BioPtr bio(BIO_new_file(p.c_str(), "r"));
  if (!bio) return nullptr;
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

PkeyPtr load_key(const fs::path& p) {
  BioPtr bio(BIO_new_file(p.c_str(), "r"));
  if (!bio) return nullptr;
  return PkeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

std::string subject_cn(X509* x) {
  std::array<char, 256> buf{};
  X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf.data(),
                            static_cast<int>(buf.size()));
  return buf.data();
}

std::set<std::string> alt_names(X509* x) {
  std::set<std::string> out;
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names.get(), i);
    if (g->type == GEN_DNS) {
      out.insert("DNS:" +
                 std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(g->d.dNSName)),
                             static_cast<std::size_t>(ASN1_STRING_length(g->d.dNSName))));
    } else if (g->type == GEN_IPADD) {
      const unsigned char* p = ASN1_STRING_get0_data(g->d.iPAddress);
      const int n = ASN1_STRING_length(g->d.iPAddress);
      if (n == 4) {
        asio::ip::address_v4::bytes_type b;
        std::copy(p, p + 4, b.begin());
        out.insert("IP:" + asio::ip::address_v4(b).to_string());
      } else if (n == 16) {
        asio::ip::address_v6::bytes_type b;
        std::copy(p, p + 16, b.begin());
        out.insert("IP:" + asio::ip::address_v6(b).to_string());
      }
    } else {
      out.insert("other");
    }
  }
  return out;
}

std::string exception_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no exception)";
}

// --- a CA and a client certificate, built with the OpenSSL API ---------------------------

PkeyPtr new_key() {
  char curve[] = "P-256";
  return PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
}

void add_ext(X509* x, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, x, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  ASSERT_TRUE(ext) << value;
  ASSERT_EQ(X509_add_ext(x, ext.get(), -1), 1);
}

// A certificate for `key`; self-signed when `issuer` is null.
X509Ptr make_cert(const std::string& cn, EVP_PKEY* key, bool ca, X509* issuer,
                  EVP_PKEY* issuer_key) {
  static std::atomic<long> serial{1000};
  X509Ptr x(X509_new());
  EXPECT_EQ(X509_set_version(x.get(), X509_VERSION_3), 1);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), ++serial);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 86400);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.data()),
                             static_cast<int>(cn.size()), -1, 0);
  X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer) : name);
  X509_set_pubkey(x.get(), key);
  X509* signer = issuer ? issuer : x.get();
  if (ca) {
    add_ext(x.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_ext(x.get(), signer, NID_subject_key_identifier, "hash");
  } else {
    add_ext(x.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(x.get(), signer, NID_key_usage, "critical,digitalSignature");
    add_ext(x.get(), signer, NID_ext_key_usage, "clientAuth");
  }
  EXPECT_GT(X509_sign(x.get(), issuer_key ? issuer_key : key, EVP_sha256()), 0);
  return x;
}

void write_pem(const fs::path& p, X509* x) {
  BioPtr bio(BIO_new_file(p.c_str(), "w"));
  ASSERT_TRUE(bio);
  ASSERT_EQ(PEM_write_bio_X509(bio.get(), x), 1);
}

void write_pem(const fs::path& p, EVP_PKEY* k) {
  BioPtr bio(BIO_new_file(p.c_str(), "w"));
  ASSERT_TRUE(bio);
  ASSERT_EQ(PEM_write_bio_PrivateKey(bio.get(), k, nullptr, nullptr, 0, nullptr, nullptr), 1);
}

// ca.pem; client.pem + client.key signed by it (CN "icap-client-1"); rogue.pem + rogue.key
// self-signed with the same CN.
struct ClientPki {
  explicit ClientPki(const TempDir& dir)
      : ca(dir / "ca.pem"),
        client_cert(dir / "client.pem"),
        client_key(dir / "client.key"),
        rogue_cert(dir / "rogue.pem"),
        rogue_key(dir / "rogue.key") {
    PkeyPtr ca_key = new_key();
    X509Ptr ca_cert = make_cert("Test Client CA", ca_key.get(), true, nullptr, nullptr);
    PkeyPtr key = new_key();
    X509Ptr cert = make_cert("icap-client-1", key.get(), false, ca_cert.get(), ca_key.get());
    PkeyPtr other_key = new_key();
    X509Ptr other = make_cert("icap-client-1", other_key.get(), false, nullptr, nullptr);
    write_pem(ca, ca_cert.get());
    write_pem(client_cert, cert.get());
    write_pem(client_key, key.get());
    write_pem(rogue_cert, other.get());
    write_pem(rogue_key, other_key.get());
  }
  fs::path ca, client_cert, client_key, rogue_cert, rogue_key;
};

// --- handshakes -----------------------------------------------------------------------------

struct Outcome {
  bool server_done = false;
  bool client_done = false;
  error_code server_ec;  // accept + handshake
  error_code client_ec;  // connect + handshake + reading the server's first byte
  std::string peer_cn;   // peer_common_name on the server after its handshake
};

// One connection over 127.0.0.1 on one io_context, bounded by a timeout. When its handshake
// succeeds, the server sends one byte, which the client reads: with TLS 1.3 the client
// completes its handshake before the server has checked the client certificate, so a refusal
// only shows on the client's first read.
Outcome handshake(ssl::context& server_ctx, ssl::context& client_ctx,
                  const std::string& host = "localhost") {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  ssl::stream<tcp::socket> server(io, server_ctx);
  ssl::stream<tcp::socket> client(io, client_ctx);
  client.set_verify_callback(ssl::host_name_verification(host));
  Outcome out;
  std::array<char, 1> sent{'x'};
  std::array<char, 1> received{};

  acceptor.async_accept(server.next_layer(), [&](error_code ec) {
    if (ec) {
      out.server_ec = ec;
      out.server_done = true;
      return;
    }
    server.async_handshake(ssl::stream_base::server, [&](error_code hec) {
      out.server_ec = hec;
      out.server_done = true;
      if (hec) {
        server.next_layer().close();
        return;
      }
      out.peer_cn = peer_common_name(server.native_handle());
      asio::async_write(server, asio::buffer(sent), [](error_code, std::size_t) {});
    });
  });
  client.next_layer().async_connect(acceptor.local_endpoint(), [&](error_code ec) {
    if (ec) {
      out.client_ec = ec;
      out.client_done = true;
      return;
    }
    client.async_handshake(ssl::stream_base::client, [&](error_code hec) {
      if (hec) {
        out.client_ec = hec;
        out.client_done = true;
        return;
      }
      asio::async_read(client, asio::buffer(received), [&](error_code rec, std::size_t) {
        out.client_ec = rec;
        out.client_done = true;
      });
    });
  });
  io.run_for(10s);
  EXPECT_TRUE(out.server_done) << "server timed out";
  EXPECT_TRUE(out.client_done) << "client timed out";
  return out;
}

// A client that trusts `trusted` and verifies the server's certificate.
std::unique_ptr<ssl::context> client_context(const fs::path& trusted) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  ctx->load_verify_file(trusted.string());
  ctx->set_verify_mode(ssl::verify_peer);
  return ctx;
}

struct ServerFiles {
  explicit ServerFiles(const TempDir& dir) : cert(dir / "server.pem"), key(dir / "server.key") {
    EXPECT_EQ(ensure_self_signed(cert, key, "gw.test"), "");
  }
  fs::path cert, key;
};

// --- ensure_self_signed ------------------------------------------------------------------

TEST(EnsureSelfSigned, CreatesCertificateAndPrivateKey) {
  TempDir dir;
  const fs::path cert = dir / "state/tls/icap.pem";
  const fs::path key = dir / "state/private/icap.key";
  const mode_t old_umask = ::umask(0);  // the key's mode must not depend on the umask
  const std::string error = ensure_self_signed(cert, key, "gw-paris-1");
  ::umask(old_umask);
  ASSERT_EQ(error, "");
  ASSERT_TRUE(fs::is_regular_file(cert));
  ASSERT_TRUE(fs::is_regular_file(key));

  struct stat st {};
  ASSERT_EQ(::stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat(cert.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0077, 0044u);  // public

  X509Ptr x = load_cert(cert);
  ASSERT_TRUE(x);
  PkeyPtr k = load_key(key);
  ASSERT_TRUE(k);
  EXPECT_EQ(X509_check_private_key(x.get(), k.get()), 1);
  EXPECT_TRUE(EVP_PKEY_is_a(k.get(), "EC"));
  std::array<char, 64> group{};
  std::size_t group_len = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(k.get(), group.data(), group.size(), &group_len), 1);
  EXPECT_STREQ(group.data(), "prime256v1");
  EXPECT_EQ(X509_get_signature_nid(x.get()), NID_ecdsa_with_SHA256);
  EXPECT_EQ(X509_get_version(x.get()), X509_VERSION_3);
  EXPECT_EQ(X509_verify(x.get(), k.get()), 1);  // self-signed

  EXPECT_EQ(subject_cn(x.get()), "gw-paris-1");
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(x.get()), X509_get_issuer_name(x.get())), 0);
  EXPECT_EQ(alt_names(x.get()),
            (std::set<std::string>{"DNS:gw-paris-1", "DNS:localhost", "IP:127.0.0.1", "IP:::1"}));

  const ASN1_INTEGER* serial = X509_get0_serialNumber(x.get());
  EXPECT_EQ(ASN1_STRING_length(serial), 16);

  BasicConstraintsPtr bc(static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(x.get(), NID_basic_constraints, nullptr, nullptr)));
  ASSERT_TRUE(bc);
  EXPECT_EQ(bc->ca, 0);
  EXPECT_EQ(X509_get_key_usage(x.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  EXPECT_EQ(X509_get_extended_key_usage(x.get()), static_cast<uint32_t>(XKU_SSL_SERVER));

  // Valid from an hour ago for ten years.
  std::time_t now = std::time(nullptr);
  int days = 0;
  int secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notBefore(x.get())), 1);
  const long before = days * 86400L + secs;
  EXPECT_GE(before, -3600 - 60);
  EXPECT_LE(before, -3600 + 60);
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x.get()), X509_get0_notAfter(x.get())),
            1);
  EXPECT_GE(days, 3652);  // 10 * 365 + 2 or 3 leap days
  EXPECT_LE(days, 3653);
  EXPECT_EQ(X509_cmp_time(X509_get0_notAfter(x.get()), &now), 1);
}

TEST(EnsureSelfSigned, LocalhostAsCommonNameIsNotRepeated) {
  TempDir dir;
  ASSERT_EQ(ensure_self_signed(dir / "c.pem", dir / "k.pem", "localhost"), "");
  X509Ptr x = load_cert(dir / "c.pem");
  ASSERT_TRUE(x);
  EXPECT_EQ(subject_cn(x.get()), "localhost");
  EXPECT_EQ(alt_names(x.get()), (std::set<std::string>{"DNS:localhost", "IP:127.0.0.1", "IP:::1"}));
  EXPECT_EQ(
      sk_GENERAL_NAME_num(GeneralNamesPtr(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(
                                              x.get(), NID_subject_alt_name, nullptr, nullptr)))
                              .get()),
      3);
}

TEST(EnsureSelfSigned, SecondCallLeavesTheFilesUnchanged) {
  TempDir dir;
  const fs::path cert = dir / "c.pem";
  const fs::path key = dir / "k.pem";
  ASSERT_EQ(ensure_self_signed(cert, key, "gw.test"), "");
  const std::string cert_bytes = read_bytes(cert);
  const std::string key_bytes = read_bytes(key);
  ASSERT_FALSE(cert_bytes.empty());
  ASSERT_FALSE(key_bytes.empty());
  EXPECT_EQ(ensure_self_signed(cert, key, "gw.test"), "");
  EXPECT_EQ(ensure_self_signed(cert, key, "another.name"), "");
  EXPECT_EQ(read_bytes(cert), cert_bytes);
  EXPECT_EQ(read_bytes(key), key_bytes);
}

TEST(EnsureSelfSigned, OnlyOneFileIsAnError) {
  TempDir dir;
  const fs::path cert = dir / "c.pem";
  const fs::path key = dir / "k.pem";
  ASSERT_EQ(ensure_self_signed(cert, key, "gw.test"), "");
  const std::string key_bytes = read_bytes(key);

  // Only the key: it is never overwritten.
  fs::remove(cert);
  std::string error = ensure_self_signed(cert, key, "gw.test");
  EXPECT_NE(error.find(cert.string()), std::string::npos) << error;
  EXPECT_NE(error.find(key.string()), std::string::npos) << error;
  EXPECT_FALSE(fs::exists(cert));
  EXPECT_EQ(read_bytes(key), key_bytes);

  // Only the certificate.
  write_bytes(cert, "not touched");
  fs::remove(key);
  error = ensure_self_signed(cert, key, "gw.test");
  EXPECT_NE(error.find(key.string()), std::string::npos) << error;
  EXPECT_FALSE(fs::exists(key));
  EXPECT_EQ(read_bytes(cert), "not touched");

  // A dangling symbolic link counts as a file: nothing is written through it.
  fs::remove(cert);
  fs::create_symlink(dir / "elsewhere.key", key);
  error = ensure_self_signed(cert, key, "gw.test");
  EXPECT_NE(error.find(key.string()), std::string::npos) << error;
  EXPECT_FALSE(fs::exists(cert));
  EXPECT_FALSE(fs::exists(dir / "elsewhere.key"));
}

TEST(EnsureSelfSigned, UnwritableFolderGivesAMessage) {
  TempDir dir;
  // A regular file where a folder should be: fails even for root.
  write_bytes(dir / "plain", "x");
  const fs::path cert = dir / "plain/sub/c.pem";
  const fs::path key = dir / "plain/sub/k.pem";
  std::string error;
  ASSERT_NO_THROW(error = ensure_self_signed(cert, key, "gw.test"));
  EXPECT_NE(error.find((dir / "plain/sub").string()), std::string::npos) << error;

  if (::geteuid() != 0) {  // root ignores folder permissions
    fs::create_directory(dir / "ro");
    fs::permissions(dir / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    ASSERT_NO_THROW(error = ensure_self_signed(dir / "ro/c.pem", dir / "ro/k.pem", "gw.test"));
    EXPECT_NE(error.find((dir / "ro/k.pem").string()), std::string::npos) << error;
    fs::permissions(dir / "ro", fs::perms::owner_all);
  }

  // The key's folder is writable but not the certificate's: no key is left behind.
  fs::create_directory(dir / "keys");
  ASSERT_NO_THROW(error = ensure_self_signed(dir / "plain/c.pem", dir / "keys/k.pem", "gw.test"));
  EXPECT_NE(error.find("plain"), std::string::npos) << error;
  EXPECT_FALSE(fs::exists(dir / "keys/k.pem"));
}

TEST(EnsureSelfSigned, BadCommonNameGivesAMessage) {
  TempDir dir;
  EXPECT_NE(ensure_self_signed(dir / "c.pem", dir / "k.pem", ""), "");
  EXPECT_NE(ensure_self_signed(dir / "c.pem", dir / "k.pem", std::string(65, 'a')), "");
  EXPECT_FALSE(fs::exists(dir / "c.pem"));
  EXPECT_FALSE(fs::exists(dir / "k.pem"));
}

// --- describe_certificate ----------------------------------------------------------------

TEST(DescribeCertificate, NamesCnExpiryAndFingerprint) {
  TempDir dir;
  ASSERT_EQ(ensure_self_signed(dir / "c.pem", dir / "k.pem", "gw.test"), "");
  const std::string d = describe_certificate(dir / "c.pem");
  EXPECT_TRUE(std::regex_match(
      d,
      std::regex(R"(gw\.test, expires \d{4}-\d{2}-\d{2}, sha256 ([0-9A-F]{2}:){31}[0-9A-F]{2})")))
      << d;
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  const int year = std::stoi(d.substr(d.find("expires ") + 8, 4));
  EXPECT_GE(year, tm.tm_year + 1900 + 9);
  EXPECT_LE(year, tm.tm_year + 1900 + 10);

  // The fingerprint is the certificate's SHA-256.
  X509Ptr x = load_cert(dir / "c.pem");
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int n = 0;
  ASSERT_EQ(X509_digest(x.get(), EVP_sha256(), md.data(), &n), 1);
  std::array<char, 4> first{};
  std::snprintf(first.data(), first.size(), "%02X", md[0]);
  EXPECT_EQ(d.substr(d.find("sha256 ") + 7, 2), first.data());
}

TEST(DescribeCertificate, EmptyWhenUnreadable) {
  TempDir dir;
  EXPECT_EQ(describe_certificate(dir / "missing.pem"), "");
  write_bytes(dir / "garbage.pem",
              "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  EXPECT_EQ(describe_certificate(dir / "garbage.pem"), "");
  EXPECT_EQ(describe_certificate(dir.path()), "");
  EXPECT_EQ(ERR_peek_error(), 0u);  // no stale OpenSSL errors left behind
}

// --- make_server_context -----------------------------------------------------------------

TEST(MakeServerContext, LoadsTheGeneratedPair) {
  TempDir dir;
  ServerFiles server(dir);
  std::shared_ptr<ssl::context> ctx;
  ASSERT_NO_THROW(ctx = make_server_context(server.cert, server.key, {}));
  ASSERT_TRUE(ctx);
  SSL_CTX* h = ctx->native_handle();
  EXPECT_EQ(SSL_CTX_get_min_proto_version(h), TLS1_2_VERSION);
  const uint64_t opts = SSL_CTX_get_options(h);
  EXPECT_NE(opts & SSL_OP_NO_COMPRESSION, 0u);
  EXPECT_NE(opts & SSL_OP_NO_RENEGOTIATION, 0u);
  EXPECT_NE(opts & SSL_OP_CIPHER_SERVER_PREFERENCE, 0u);
  EXPECT_EQ(SSL_CTX_get_verify_mode(h), SSL_VERIFY_NONE);
}

TEST(MakeServerContext, ClientCaRequiresClientCertificates) {
  TempDir dir;
  ServerFiles server(dir);
  ClientPki pki(dir);
  std::shared_ptr<ssl::context> ctx;
  ASSERT_NO_THROW(ctx = make_server_context(server.cert, server.key, pki.ca));
  SSL_CTX* h = ctx->native_handle();
  EXPECT_EQ(SSL_CTX_get_verify_mode(h), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
  const STACK_OF(X509_NAME)* names = SSL_CTX_get_client_CA_list(h);
  ASSERT_NE(names, nullptr);
  ASSERT_EQ(sk_X509_NAME_num(names), 1);
  std::array<char, 128> cn{};
  X509_NAME_get_text_by_NID(sk_X509_NAME_value(names, 0), NID_commonName, cn.data(),
                            static_cast<int>(cn.size()));
  EXPECT_STREQ(cn.data(), "Test Client CA");
}

TEST(MakeServerContext, MismatchedKeyThrows) {
  TempDir dir;
  ASSERT_EQ(ensure_self_signed(dir / "a.pem", dir / "a.key", "a.test"), "");
  ASSERT_EQ(ensure_self_signed(dir / "b.pem", dir / "b.key", "b.test"), "");
  const std::string msg =
      exception_message([&] { make_server_context(dir / "a.pem", dir / "b.key", {}); });
  EXPECT_NE(msg.find((dir / "b.key").string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("mismatch"), std::string::npos) << msg;
}

TEST(MakeServerContext, MissingOrBadFileThrowsNamingIt) {
  TempDir dir;
  ServerFiles server(dir);
  const fs::path missing = dir / "missing.pem";
  std::string msg = exception_message([&] { make_server_context(missing, server.key, {}); });
  EXPECT_NE(msg.find(missing.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;

  msg = exception_message([&] { make_server_context(server.cert, missing, {}); });
  EXPECT_NE(msg.find(missing.string()), std::string::npos) << msg;

  msg = exception_message([&] { make_server_context(server.cert, server.key, missing); });
  EXPECT_NE(msg.find(missing.string()), std::string::npos) << msg;

  write_bytes(dir / "garbage.pem", "garbage\n");
  msg = exception_message([&] { make_server_context(dir / "garbage.pem", server.key, {}); });
  EXPECT_NE(msg.find((dir / "garbage.pem").string()), std::string::npos) << msg;
  msg =
      exception_message([&] { make_server_context(server.cert, server.key, dir / "garbage.pem"); });
  EXPECT_NE(msg.find((dir / "garbage.pem").string()), std::string::npos) << msg;
  EXPECT_EQ(ERR_peek_error(), 0u);
}

// --- handshakes over 127.0.0.1 ---------------------------------------------------------------

TEST(Handshake, ClientTrustingTheCertificateConnects) {
  TempDir dir;
  ServerFiles server(dir);
  auto server_ctx = make_server_context(server.cert, server.key, {});
  auto client_ctx = client_context(server.cert);
  const Outcome out = handshake(*server_ctx, *client_ctx, "localhost");
  EXPECT_FALSE(out.server_ec) << out.server_ec.message();
  EXPECT_FALSE(out.client_ec) << out.client_ec.message();
  EXPECT_EQ(out.peer_cn, "");  // no client certificate

  // The certificate's own name is also in it.
  const Outcome by_name = handshake(*server_ctx, *client_ctx, "gw.test");
  EXPECT_FALSE(by_name.client_ec) << by_name.client_ec.message();
}

TEST(Handshake, ClientVerificationIsEffective) {
  TempDir dir;
  ServerFiles server(dir);
  auto server_ctx = make_server_context(server.cert, server.key, {});

  // Wrong host name.
  auto client_ctx = client_context(server.cert);
  EXPECT_TRUE(handshake(*server_ctx, *client_ctx, "wrong.test").client_ec);

  // A client that trusts another certificate.
  ASSERT_EQ(ensure_self_signed(dir / "o.pem", dir / "o.key", "gw.test"), "");
  auto distrustful = client_context(dir / "o.pem");
  EXPECT_TRUE(handshake(*server_ctx, *distrustful, "localhost").client_ec);
}

TEST(Handshake, ClientCaRefusesAClientWithoutCertificate) {
  TempDir dir;
  ServerFiles server(dir);
  ClientPki pki(dir);
  auto server_ctx = make_server_context(server.cert, server.key, pki.ca);
  auto client_ctx = client_context(server.cert);
  const Outcome out = handshake(*server_ctx, *client_ctx);
  EXPECT_TRUE(out.server_ec);
  EXPECT_TRUE(out.client_ec);
  EXPECT_EQ(out.peer_cn, "");
}

TEST(Handshake, ClientCaAcceptsACertificateItSigned) {
  TempDir dir;
  ServerFiles server(dir);
  ClientPki pki(dir);
  auto server_ctx = make_server_context(server.cert, server.key, pki.ca);
  auto client_ctx = client_context(server.cert);
  client_ctx->use_certificate_chain_file(pki.client_cert.string());
  client_ctx->use_private_key_file(pki.client_key.string(), ssl::context::pem);
  const Outcome out = handshake(*server_ctx, *client_ctx);
  EXPECT_FALSE(out.server_ec) << out.server_ec.message();
  EXPECT_FALSE(out.client_ec) << out.client_ec.message();
  EXPECT_EQ(out.peer_cn, "icap-client-1");

  // Also over TLS 1.2, where the server checks the certificate within the handshake.
  SSL_CTX_set_max_proto_version(client_ctx->native_handle(), TLS1_2_VERSION);
  const Outcome tls12 = handshake(*server_ctx, *client_ctx);
  EXPECT_FALSE(tls12.server_ec) << tls12.server_ec.message();
  EXPECT_FALSE(tls12.client_ec) << tls12.client_ec.message();
  EXPECT_EQ(tls12.peer_cn, "icap-client-1");
}

TEST(Handshake, ClientCaRefusesACertificateFromElsewhere) {
  TempDir dir;
  ServerFiles server(dir);
  ClientPki pki(dir);
  auto server_ctx = make_server_context(server.cert, server.key, pki.ca);
  auto client_ctx = client_context(server.cert);
  client_ctx->use_certificate_chain_file(pki.rogue_cert.string());
  client_ctx->use_private_key_file(pki.rogue_key.string(), ssl::context::pem);
  const Outcome out = handshake(*server_ctx, *client_ctx);
  EXPECT_TRUE(out.server_ec);
  EXPECT_TRUE(out.client_ec);
  EXPECT_EQ(out.peer_cn, "");
}

TEST(Handshake, Tls11ClientIsRefused) {
  TempDir dir;
  ServerFiles server(dir);
  auto server_ctx = make_server_context(server.cert, server.key, {});
  auto client_ctx = client_context(server.cert);
  // OpenSSL 3 refuses TLS 1.1 below security level 0 on its own: lower the client's level so
  // that the ClientHello is sent and it is the server that refuses it.
  SSL_CTX* h = client_ctx->native_handle();
  SSL_CTX_set_security_level(h, 0);
  ASSERT_EQ(SSL_CTX_set_cipher_list(h, "DEFAULT:@SECLEVEL=0"), 1);
  ASSERT_EQ(SSL_CTX_set_min_proto_version(h, TLS1_VERSION), 1);
  ASSERT_EQ(SSL_CTX_set_max_proto_version(h, TLS1_1_VERSION), 1);
  const Outcome out = handshake(*server_ctx, *client_ctx);
  ASSERT_TRUE(out.server_ec);
  EXPECT_EQ(out.server_ec.category(), asio::error::get_ssl_category());
  EXPECT_EQ(ERR_GET_REASON(static_cast<unsigned long>(out.server_ec.value())),
            SSL_R_UNSUPPORTED_PROTOCOL)
      << out.server_ec.message();
  EXPECT_TRUE(out.client_ec);
}

// --- make_client_context, expect_server_name ------------------------------------------------

// A raw OpenSSL handshake over a socket pair: the server with `server_ctx` on a thread, the
// client with `client_ctx` expecting `name`. The client's verify result (X509_V_OK when it
// trusted the server), or -1 when the handshake failed for another reason.
long client_handshake(SSL_CTX* server_ctx, SSL_CTX* client_ctx, const std::string& name) {
  std::signal(SIGPIPE, SIG_IGN);  // one side gives up while the other still writes
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return -1;
  std::thread server([&] {
    SSL* s = SSL_new(server_ctx);
    SSL_set_fd(s, sv[0]);
    SSL_accept(s);  // fails when the client gives up: the client's result is what counts
    SSL_free(s);
    ::shutdown(sv[0], SHUT_RDWR);
  });
  SSL* c = SSL_new(client_ctx);
  SSL_set_fd(c, sv[1]);
  long result = -1;
  if (expect_server_name(c, name)) {
    int rc = SSL_connect(c);
    result = SSL_get_verify_result(c);
    if (rc != 1 && result == X509_V_OK) result = -1;
  }
  SSL_free(c);
  ::shutdown(sv[1], SHUT_RDWR);
  server.join();
  ::close(sv[0]);
  ::close(sv[1]);
  ERR_clear_error();
  return result;
}

TEST(MakeClientContext, VerifiesTheServerAgainstTheCaAndTheName) {
  TempDir dir;
  ServerFiles server(dir);  // self-signed: its own CA; names gw.test, localhost, 127.0.0.1, ::1
  auto server_ctx = make_server_context(server.cert, server.key, {});
  std::shared_ptr<SSL_CTX> client;
  ASSERT_NO_THROW(client = make_client_context(server.cert, {}, {}));
  EXPECT_EQ(SSL_CTX_get_min_proto_version(client.get()), TLS1_2_VERSION);
  EXPECT_EQ(SSL_CTX_get_verify_mode(client.get()), SSL_VERIFY_PEER);
  SSL_CTX* sh = server_ctx->native_handle();
  EXPECT_EQ(client_handshake(sh, client.get(), "gw.test"), X509_V_OK);
  EXPECT_EQ(client_handshake(sh, client.get(), "localhost"), X509_V_OK);
  EXPECT_EQ(client_handshake(sh, client.get(), "127.0.0.1"), X509_V_OK);
  EXPECT_EQ(client_handshake(sh, client.get(), "::1"), X509_V_OK);
  EXPECT_EQ(client_handshake(sh, client.get(), "other.example"), X509_V_ERR_HOSTNAME_MISMATCH);
  EXPECT_EQ(client_handshake(sh, client.get(), "192.0.2.1"), X509_V_ERR_IP_ADDRESS_MISMATCH);

  // Another CA: not trusted, whatever the name.
  TempDir other;
  ServerFiles stranger(other);
  auto trusting_other = make_client_context(stranger.cert, {}, {});
  EXPECT_NE(client_handshake(sh, trusting_other.get(), "gw.test"), X509_V_OK);
}

TEST(MakeClientContext, ClientCertificateAndErrors) {
  TempDir dir;
  ServerFiles server(dir);
  TempDir mine;
  ServerFiles client_files(mine);
  std::shared_ptr<SSL_CTX> ctx;
  ASSERT_NO_THROW(ctx = make_client_context(server.cert, client_files.cert, client_files.key));
  EXPECT_NE(SSL_CTX_get0_certificate(ctx.get()), nullptr);
  try {
    make_client_context(dir / "missing-ca.pem", {}, {});
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot load the CA bundle " +
                                         (dir / "missing-ca.pem").string()),
              std::string::npos)
        << e.what();
  }
  // A key that does not belong to the certificate.
  EXPECT_THROW(make_client_context(server.cert, client_files.cert, server.key), std::runtime_error);
  EXPECT_THROW(make_client_context(server.cert, client_files.cert, {}), std::runtime_error);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(PeerCommonName, EmptyWithoutConnection) {
  EXPECT_EQ(peer_common_name(nullptr), "");
}

}  // namespace
}  // namespace pc::tls
