#include "tls/tls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <system_error>

namespace pc::tls {
namespace {

namespace fs = std::filesystem;
namespace ssl = boost::asio::ssl;

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const {
    Free(p);
  }
};
template <class T, auto Free>
using Ptr = std::unique_ptr<T, Deleter<Free>>;

using BioPtr = Ptr<BIO, &BIO_free_all>;
using BnPtr = Ptr<BIGNUM, &BN_free>;
using PkeyPtr = Ptr<EVP_PKEY, &EVP_PKEY_free>;
using X509Ptr = Ptr<X509, &X509_free>;
using ExtPtr = Ptr<X509_EXTENSION, &X509_EXTENSION_free>;
using GeneralNamesPtr = Ptr<GENERAL_NAMES, &GENERAL_NAMES_free>;
using GeneralNamePtr = Ptr<GENERAL_NAME, &GENERAL_NAME_free>;
using Asn1StringPtr = Ptr<ASN1_STRING, &ASN1_STRING_free>;

// Every error in this thread's OpenSSL queue (which is left empty), "; "-separated.
std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    std::array<char, 256> buf{};
    ERR_error_string_n(e, buf.data(), buf.size());
    if (!out.empty()) out += "; ";
    out += buf.data();
  }
  return out.empty() ? std::string("unknown OpenSSL error") : out;
}

// A PEM memory BIO's contents.
std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return n > 0 && data != nullptr ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

// The last (most specific) CN of a name, as UTF-8; empty when there is none.
std::string common_name_of(const X509_NAME* name) {
  if (name == nullptr) return {};
  int last = -1;
  for (int i = -1; (i = X509_NAME_get_index_by_NID(name, NID_commonName, i)) >= 0;) last = i;
  if (last < 0) return {};
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, last));
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0 || utf8 == nullptr) {
    ERR_clear_error();
    return {};
  }
  std::string out(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

bool push_name(GENERAL_NAMES* names, int type, const unsigned char* data, int len) {
  Asn1StringPtr value(type == GEN_DNS ? ASN1_IA5STRING_new() : ASN1_OCTET_STRING_new());
  GeneralNamePtr name(GENERAL_NAME_new());
  if (!value || !name || ASN1_STRING_set(value.get(), data, len) != 1) return false;
  GENERAL_NAME_set0_value(name.get(), type, value.release());
  if (sk_GENERAL_NAME_push(names, name.get()) <= 0) return false;
  name.release();
  return true;
}

bool push_dns(GENERAL_NAMES* names, const std::string& dns) {
  return push_name(names, GEN_DNS, reinterpret_cast<const unsigned char*>(dns.data()),
                   static_cast<int>(dns.size()));
}

// A DNS name in a certificate is an IA5String: printable ASCII, no spaces.
bool fits_dns_name(const std::string& s) {
  for (const char c : s)
    if (c <= ' ' || c > '~') return false;
  return !s.empty();
}

bool add_extension(X509* x, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  return ext && X509_add_ext(x, ext.get(), -1) == 1;
}

struct Pem {
  std::string cert;
  std::string key;
  ~Pem() { OPENSSL_cleanse(key.data(), key.size()); }
};

// Builds the key and the certificate in memory; returns a reason on failure.
std::string generate(const std::string& common_name, Pem& out) {
  char curve[] = "P-256";  // read through va_arg as a char*
  PkeyPtr pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
  if (!pkey) return "cannot generate an EC P-256 key: " + openssl_errors();

  X509Ptr x(X509_new());
  if (!x || X509_set_version(x.get(), X509_VERSION_3) != 1)
    return "cannot create a certificate: " + openssl_errors();

  std::array<unsigned char, 16> serial{};
  if (RAND_bytes(serial.data(), static_cast<int>(serial.size())) != 1)
    return "cannot draw a random serial number: " + openssl_errors();
  serial[0] = static_cast<unsigned char>((serial[0] & 0x7f) | 0x40);  // positive, 16 bytes long
  BnPtr bn(BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x.get())) == nullptr)
    return "cannot set the serial number: " + openssl_errors();

  // From an hour ago (clocks drift) to the same time ten years later (29 February becomes
  // 1 March).
  using namespace std::chrono;
  const auto start = floor<seconds>(system_clock::now()) - hours(1);
  const auto start_day = floor<days>(start);
  const auto end = sys_days(year_month_day(start_day) + years(10)) + (start - start_day);
  if (ASN1_TIME_set(X509_getm_notBefore(x.get()), system_clock::to_time_t(start)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(x.get()), system_clock::to_time_t(end)) == nullptr)
    return "cannot set the validity period: " + openssl_errors();

  X509_NAME* subject = X509_get_subject_name(x.get());
  if (X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.data()),
                                 static_cast<int>(common_name.size()), -1, 0) != 1 ||
      X509_set_issuer_name(x.get(), subject) != 1)
    return "cannot set the common name \"" + common_name + "\": " + openssl_errors();
  if (X509_set_pubkey(x.get(), pkey.get()) != 1)
    return "cannot set the public key: " + openssl_errors();

  GeneralNamesPtr names(GENERAL_NAMES_new());
  static constexpr std::array<unsigned char, 4> kLoopback4{127, 0, 0, 1};
  static constexpr std::array<unsigned char, 16> kLoopback6{0, 0, 0, 0, 0, 0, 0, 0,
                                                            0, 0, 0, 0, 0, 0, 0, 1};
  const bool own_dns = fits_dns_name(common_name) && common_name != "localhost";
  if (!names || (own_dns && !push_dns(names.get(), common_name)) ||
      !push_dns(names.get(), "localhost") ||
      !push_name(names.get(), GEN_IPADD, kLoopback4.data(), kLoopback4.size()) ||
      !push_name(names.get(), GEN_IPADD, kLoopback6.data(), kLoopback6.size()) ||
      X509_add1_ext_i2d(x.get(), NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1)
    return "cannot set the subject alternative names: " + openssl_errors();

  if (!add_extension(x.get(), NID_basic_constraints, "critical,CA:FALSE") ||
      !add_extension(x.get(), NID_key_usage, "critical,digitalSignature") ||
      !add_extension(x.get(), NID_ext_key_usage, "serverAuth"))
    return "cannot set the certificate extensions: " + openssl_errors();

  if (X509_sign(x.get(), pkey.get(), EVP_sha256()) <= 0)
    return "cannot sign the certificate: " + openssl_errors();

  BioPtr key_bio(BIO_new(BIO_s_mem()));
  BioPtr cert_bio(BIO_new(BIO_s_mem()));
  if (!key_bio || !cert_bio ||
      PEM_write_bio_PrivateKey(key_bio.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1 ||
      PEM_write_bio_X509(cert_bio.get(), x.get()) != 1)
    return "cannot encode the certificate and key as PEM: " + openssl_errors();
  out.key = bio_contents(key_bio.get());
  out.cert = bio_contents(cert_bio.get());
  if (out.key.empty() || out.cert.empty()) return "cannot encode the certificate and key as PEM";
  return {};
}

// Creates `path` (which must not exist, not even as a symbolic link) with exactly `mode` and
// writes `data`. On failure the file is removed and the reason returned.
std::string write_new_file(const fs::path& path, const std::string& data, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return "cannot create " + path.string() + ": " + std::strerror(errno);
  auto fail = [&](const char* what) {
    const int err = errno;
    ::close(fd);
    ::unlink(path.c_str());
    return std::string("cannot ") + what + " " + path.string() + ": " + std::strerror(err);
  };
  // The umask may have removed bits from `mode`; it never adds any.
  if (::fchmod(fd, mode) != 0) return fail("set the mode of");
  for (std::size_t done = 0; done < data.size();) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("write");
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("write");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    return "cannot write " + path.string() + ": " + std::strerror(err);
  }
  return {};
}

// True when something (even a dangling symbolic link) is at `path`; sets `error` when that
// cannot be known.
bool present(const fs::path& path, std::string& error) {
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(path, ec);
  // A missing folder, or a file where a folder should be: not there (create_parent explains).
  if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory) {
    error = "cannot check " + path.string() + ": " + ec.message();
    return false;
  }
  return fs::exists(st);
}

std::string create_parent(const fs::path& file) {
  const fs::path dir = file.parent_path();
  if (dir.empty()) return {};
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return "cannot create the folder " + dir.string() + " for " + file.string() + ": " +
           ec.message();
  return {};
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + openssl_errors());
}

}  // namespace

std::string ensure_self_signed(const fs::path& cert, const fs::path& key,
                               const std::string& common_name) {
  if (cert.empty() || key.empty()) return "no certificate or key file given";
  std::string error;
  const bool have_cert = present(cert, error);
  if (!error.empty()) return error;
  const bool have_key = present(key, error);
  if (!error.empty()) return error;
  if (have_cert && have_key) return {};
  if (have_cert)
    return "the certificate " + cert.string() + " exists but its key " + key.string() +
           " does not: provide the key, or remove the certificate to generate a new pair";
  if (have_key)
    return "the key " + key.string() + " exists but its certificate " + cert.string() +
           " does not: provide the certificate, or remove the key to generate a new pair";

  if (common_name.empty() || common_name.size() > 64)
    return "cannot generate " + cert.string() + ": the common name must be 1 to 64 bytes long";

  ERR_clear_error();
  Pem pem;
  if (std::string reason = generate(common_name, pem); !reason.empty())
    return "cannot generate " + cert.string() + ": " + reason;

  if (error = create_parent(key); !error.empty()) return error;
  if (error = create_parent(cert); !error.empty()) return error;
  if (error = write_new_file(key, pem.key, 0600); !error.empty()) return error;
  if (error = write_new_file(cert, pem.cert, 0644); !error.empty()) {
    ::unlink(key.c_str());  // created just above and never used: no key is lost
    return error;
  }
  return {};
}

std::shared_ptr<ssl::context> make_server_context(const fs::path& cert, const fs::path& key,
                                                  const fs::path& client_ca) {
  ERR_clear_error();
  std::shared_ptr<ssl::context> ctx;
  try {
    ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error(std::string("cannot create a TLS server context: ") + e.what());
  }
  SSL_CTX* h = ctx->native_handle();

  if (SSL_CTX_set_min_proto_version(h, TLS1_2_VERSION) != 1)
    fail("cannot require TLS 1.2 or newer");
  SSL_CTX_set_options(
      h, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Without it, a client resuming a session is refused once client certificates are verified.
  static constexpr unsigned char kSessionContext[] = "portcullis";
  if (SSL_CTX_set_session_id_context(h, kSessionContext, sizeof kSessionContext - 1) != 1)
    fail("cannot set the session id context");

  if (cert.empty()) throw std::runtime_error("no TLS certificate file given");
  if (key.empty()) throw std::runtime_error("no TLS private key file given");
  if (SSL_CTX_use_certificate_chain_file(h, cert.c_str()) != 1)
    fail("cannot load the certificate chain " + cert.string());
  if (SSL_CTX_use_PrivateKey_file(h, key.c_str(), SSL_FILETYPE_PEM) != 1)
    fail("cannot load the private key " + key.string() + " (for the certificate " + cert.string() +
         ")");
  if (SSL_CTX_check_private_key(h) != 1)
    fail("the private key " + key.string() + " does not match the certificate " + cert.string());

  if (!client_ca.empty()) {
    if (SSL_CTX_load_verify_file(h, client_ca.c_str()) != 1)
      fail("cannot load the client CA bundle " + client_ca.string());
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(client_ca.c_str());
    if (names == nullptr) fail("cannot read the CA names in " + client_ca.string());
    SSL_CTX_set_client_CA_list(h, names);  // takes ownership
    SSL_CTX_set_verify(h, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return ctx;
}

std::shared_ptr<SSL_CTX> make_client_context(const fs::path& ca, const fs::path& cert,
                                             const fs::path& key) {
  ERR_clear_error();
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_client_method()), &SSL_CTX_free);
  if (!ctx) fail("cannot create a TLS client context");
  SSL_CTX* h = ctx.get();
  if (SSL_CTX_set_min_proto_version(h, TLS1_2_VERSION) != 1)
    fail("cannot require TLS 1.2 or newer");
  SSL_CTX_set_options(h, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(h, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (ca.empty()) {
    if (SSL_CTX_set_default_verify_paths(h) != 1) fail("cannot load the system's trusted CAs");
  } else if (SSL_CTX_load_verify_file(h, ca.c_str()) != 1) {
    fail("cannot load the CA bundle " + ca.string());
  }
  SSL_CTX_set_verify(h, SSL_VERIFY_PEER, nullptr);
  if (!cert.empty()) {
    if (key.empty()) throw std::runtime_error("no private key given for " + cert.string());
    if (SSL_CTX_use_certificate_chain_file(h, cert.c_str()) != 1)
      fail("cannot load the client certificate chain " + cert.string());
    if (SSL_CTX_use_PrivateKey_file(h, key.c_str(), SSL_FILETYPE_PEM) != 1)
      fail("cannot load the private key " + key.string() + " (for the certificate " +
           cert.string() + ")");
    if (SSL_CTX_check_private_key(h) != 1)
      fail("the private key " + key.string() + " does not match the certificate " + cert.string());
  }
  return ctx;
}

bool expect_server_name(SSL* ssl, const std::string& host) {
  unsigned char ip[16];
  bool literal =
      inet_pton(AF_INET, host.c_str(), ip) == 1 || inet_pton(AF_INET6, host.c_str(), ip) == 1;
  if (literal) return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) == 1;
  return SSL_set_tlsext_host_name(ssl, host.c_str()) == 1 && SSL_set1_host(ssl, host.c_str()) == 1;
}

std::string take_errors() {
  if (ERR_peek_error() == 0) return {};
  return openssl_errors();
}

std::string describe_certificate(const fs::path& cert) {
  BioPtr bio(BIO_new_file(cert.c_str(), "r"));
  X509Ptr x(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  std::tm expiry{};
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int md_len = 0;
  if (!x || ASN1_TIME_to_tm(X509_get0_notAfter(x.get()), &expiry) != 1 ||
      X509_digest(x.get(), EVP_sha256(), md.data(), &md_len) != 1) {
    ERR_clear_error();
    return {};
  }

  std::string cn = common_name_of(X509_get_subject_name(x.get()));
  for (char& c : cn)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  if (cn.empty()) cn = "(no CN)";

  std::array<char, 32> date{};
  std::strftime(date.data(), date.size(), "%Y-%m-%d", &expiry);
  std::string out = cn + ", expires " + date.data() + ", sha256 ";
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned int i = 0; i < md_len; ++i) {
    if (i > 0) out += ':';
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

std::string peer_common_name(SSL* ssl) {
  if (ssl == nullptr) return {};
  X509Ptr peer(SSL_get1_peer_certificate(ssl));
  if (!peer || SSL_get_verify_result(ssl) != X509_V_OK) return {};
  return common_name_of(X509_get_subject_name(peer.get()));
}

}  // namespace pc::tls
