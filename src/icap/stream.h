// A client connection that is plain TCP (ICAP) or TLS over TCP (ICAPS), with the few
// operations a session needs. Worker thread only.
#pragma once

#include <boost/asio/ssl.hpp>
#include <optional>
#include <span>
#include <utility>

#include "net/io.h"

namespace pc::icap {

class Stream {
 public:
  using error_code = boost::system::error_code;
  using ssl_stream = boost::asio::ssl::stream<net::tcp::socket>;

  explicit Stream(net::tcp::socket s) : plain_(std::move(s)) {}
  Stream(net::tcp::socket s, boost::asio::ssl::context& ctx)
      : tls_(std::in_place, std::move(s), ctx) {}

  bool is_tls() const { return tls_.has_value(); }
  net::tcp::socket& socket() { return tls_ ? tls_->next_layer() : *plain_; }
  SSL* native_tls() { return tls_ ? tls_->native_handle() : nullptr; }

  net::asio::awaitable<error_code> handshake() {
    if (!tls_) co_return error_code{};
    auto [ec] =
        co_await tls_->async_handshake(boost::asio::ssl::stream_base::server, net::use_nothrow);
    co_return ec;
  }

  net::asio::awaitable<std::pair<error_code, std::size_t>> read_some(std::span<char> into) {
    auto b = net::asio::buffer(into.data(), into.size());
    if (tls_) {
      auto [ec, n] = co_await tls_->async_read_some(b, net::use_nothrow);
      co_return std::pair{ec, n};
    }
    auto [ec, n] = co_await plain_->async_read_some(b, net::use_nothrow);
    co_return std::pair{ec, n};
  }

  // Writes every buffer of the sequence.
  template <class Buffers>
  net::asio::awaitable<error_code> write(const Buffers& bufs) {
    if (tls_) {
      auto [ec, n] = co_await net::asio::async_write(*tls_, bufs, net::use_nothrow);
      co_return ec;
    }
    auto [ec, n] = co_await net::asio::async_write(*plain_, bufs, net::use_nothrow);
    co_return ec;
  }

  // Waits until the peer sends something (or closes) without reading it.
  net::asio::awaitable<error_code> wait_readable() {
    auto [ec] = co_await socket().async_wait(net::tcp::socket::wait_read, net::use_nothrow);
    co_return ec;
  }

  void close() {
    error_code ignore;
    if (socket().is_open()) socket().close(ignore);
  }
  void shutdown_send() {
    error_code ignore;
    socket().shutdown(net::tcp::socket::shutdown_send, ignore);
  }

 private:
  std::optional<net::tcp::socket> plain_;
  std::optional<ssl_stream> tls_;
};

}  // namespace pc::icap
