// OpenSSL server contexts and the self-signed certificate used by ICAP over TLS.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <filesystem>
#include <memory>
#include <string>

namespace pc::tls {

// Creates a self-signed server certificate and its private key when NEITHER file exists:
// EC P-256 key, SHA-256 signature, serial random 16 bytes, valid from now-1h for 10 years,
// subject and issuer CN=common_name, subjectAltName DNS:common_name, DNS:localhost,
// IP:127.0.0.1, IP:::1, basicConstraints CA:FALSE, keyUsage digitalSignature,
// extendedKeyUsage serverAuth. Parent folders are created; the key file is written with mode
// 0600 (created with that mode, never world-readable even briefly), both as PEM.
// When both exist: nothing happens. When only one exists: error (never overwrite a key).
// Returns an empty string on success, else a clear message naming the file and the reason.
std::string ensure_self_signed(const std::filesystem::path& cert, const std::filesystem::path& key,
                               const std::string& common_name);

// A TLS server context: TLS 1.2 minimum, no compression, no renegotiation, server cipher
// preference, certificate chain file + private key (checked to match each other). When
// client_ca is not empty: load it as the CA bundle for client certificates and require a
// client certificate (verify_peer | verify_fail_if_no_peer_cert); the names of the CAs are
// sent to clients. Throws std::runtime_error with a message naming the file and OpenSSL's
// reason (ERR_error_string) on any failure.
// The returned context is meant to be shared, read-only, by every worker thread.
std::shared_ptr<boost::asio::ssl::context> make_server_context(
    const std::filesystem::path& cert, const std::filesystem::path& key,
    const std::filesystem::path& client_ca);

// A TLS client context for outgoing connections (syslog over TLS): TLS 1.2 minimum, no
// compression, no renegotiation, the server certificate verified against the CA bundle `ca`
// (empty: the system's trust store), and a client certificate when `cert` is not empty (with
// `key`, checked to match). Throws std::runtime_error naming the file and OpenSSL's reason.
// Shared read-only by the threads that connect with it.
std::shared_ptr<SSL_CTX> make_client_context(const std::filesystem::path& ca,
                                             const std::filesystem::path& cert,
                                             const std::filesystem::path& key);

// Before SSL_connect: the name the server certificate must carry. An IP address literal must
// be an iPAddress subjectAltName; a host name a DNS name (wildcards as RFC 6125) and is also
// sent as SNI. False when OpenSSL refuses the name.
bool expect_server_name(SSL* ssl, const std::string& host);

// This thread's OpenSSL error queue as text ("; "-separated), emptied; "" when empty.
std::string take_errors();

// "subject CN, expires YYYY-MM-DD, sha256 AB:CD:..." of a PEM certificate file, for logs;
// empty string when the file cannot be read. Control characters in the CN are replaced by '?'.
std::string describe_certificate(const std::filesystem::path& cert);

// The subject CN of the peer certificate of an established TLS connection (mutual TLS), or
// empty. Empty as well when the peer certificate did not pass verification. The CN is returned
// as UTF-8, unescaped: escape it before logging.
std::string peer_common_name(SSL* ssl);

}  // namespace pc::tls
