// Blocking socket helpers for the in-process tests: a client connection with timeouts, a
// minimal HTTP/1.1 message reader, and small TCP / HTTP servers on 127.0.0.1.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace pc::itest {

constexpr std::chrono::seconds kIoTimeout{5};

// One connected socket with a read buffer. Every operation is bounded by kIoTimeout.
class Conn {
 public:
  explicit Conn(int fd);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  static std::optional<Conn> connect_to(std::uint16_t port);  // 127.0.0.1:port
  Conn(Conn&& o) noexcept;

  int fd() const { return fd_; }
  bool send_all(std::string_view data);
  void shutdown_write();
  // Reads more bytes into the buffer: false at the end of the stream, on error or timeout.
  bool fill();
  std::optional<std::string> read_until(std::string_view delim);  // delim included
  std::optional<std::string> read_exact(std::size_t n);
  std::string read_to_close();  // everything until the peer closes (or a timeout)
  bool at_eof();                // true when the peer closed with nothing more to read
  bool timed_out() const { return timed_out_; }

 private:
  int fd_ = -1;
  std::string buf_;
  bool timed_out_ = false;
};

struct Message {
  std::string start;  // request or status line
  std::vector<std::pair<std::string, std::string>> fields;
  std::string body;  // decoded
  std::string raw;   // head and body bytes exactly as received
  bool chunked = false;
  bool until_close = false;
  int status = 0;  // responses

  std::optional<std::string> get(std::string_view name) const;  // first, case-insensitive
  std::size_t count(std::string_view name) const;
};

// Reads one request (body by Content-Length or chunked) or one response (no body for HEAD,
// 1xx, 204, 304; otherwise chunked, Content-Length, or until close).
std::optional<Message> read_request(Conn& c);
std::optional<Message> read_response(Conn& c, bool head_request = false);

// A TCP server on 127.0.0.1:0: every accepted connection runs handler on its own thread.
class TcpServer {
 public:
  using Handler = std::function<void(Conn&)>;
  explicit TcpServer(Handler h);
  ~TcpServer();
  TcpServer(const TcpServer&) = delete;
  TcpServer& operator=(const TcpServer&) = delete;

  std::uint16_t port() const { return port_; }
  int accepts() const { return accepts_.load(); }

 private:
  void accept_loop();
  Handler handler_;
  int lfd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepts_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> threads_;
  std::set<int> live_;
};

// An HTTP origin server: records every request and answers with responder(request). A
// responder returning "" closes the connection without answering.
class HttpOrigin {
 public:
  using Responder = std::function<std::string(const Message&)>;
  explicit HttpOrigin(Responder r);

  std::uint16_t port() const { return server_.port(); }
  int accepts() const { return server_.accepts(); }
  std::vector<Message> requests();
  std::size_t request_count();
  bool wait_for_requests(std::size_t n, std::chrono::milliseconds timeout);

 private:
  void serve(Conn& c);
  Responder responder_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Message> requests_;
  TcpServer server_;  // last: its threads use the members above
};

// "HTTP/1.1 200 OK" with Content-Type text/plain and Content-Length.
std::string ok_response(std::string_view body, std::string_view extra_fields = "");

}  // namespace pc::itest
