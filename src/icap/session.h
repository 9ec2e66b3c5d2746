// One accepted ICAP client connection (RFC 3507): a coroutine that loops over the ICAP
// messages on it (persistent connections), running each through the shared phases
//   admit -> identify -> classify -> decide -> deliver (204, echo or a page) -> log.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "base/buffer.h"
#include "config/config.h"
#include "icap/stream.h"
#include "net/io.h"
#include "txn/flow.h"
#include "txn/worker.h"
#include "wire/icap.h"

namespace pc::icap {

// The ISTag of a snapshot ("pc-" and 16 hex digits): it changes whenever the policy or the
// scanning engines change. A value, made without allocating.
struct IsTag {
  char text[19] = {};
  std::size_t size = 0;
  bool empty() const { return size == 0; }
  operator std::string_view() const { return {text, size}; }
};
IsTag istag(const txn::Snapshot& snap);

class Session : public txn::Connection, public std::enable_shared_from_this<Session> {
 public:
  // tls: the server context for ICAPS, null for plain ICAP.
  Session(txn::Worker& w, net::tcp::socket s, std::string listener,
          std::shared_ptr<boost::asio::ssl::context> tls);
  ~Session() override;

  // Runs the connection to its end. Call as co_spawn(ex, s->run(s), detached).
  net::asio::awaitable<void> run(std::shared_ptr<Session> self);

  void close_if_idle() override {
    if (idle_) stream_.close();
  }
  void close() override {
    watchdog_.stop();
    stream_.close();
  }
  void tick() override {
    if (hot_ && ++hot_ticks_ >= 2) {
      cooled_ = true;
      boost::system::error_code ignore;
      stream_.socket().cancel(ignore);  // the pending read ends: the buffer goes back
    }
  }

 private:
  struct Txn;
  enum class Service { none, reqmod, respmod };
  enum class BodyEnd { ok, closed, malformed };

  net::asio::awaitable<bool> message();  // one ICAP transaction; false: close the connection
  net::asio::awaitable<bool> read_head(Txn& t, bool& clean_eof);
  net::asio::awaitable<bool> fill();  // reads more into buf_; false on EOF or error
  net::asio::awaitable<bool> send(Txn& t, const std::string& bytes);
  // An ICAP error reply (400, 404, ...) for the reason in t.rec.reason; logs the transaction.
  // Returns whether the connection may carry another message.
  net::asio::awaitable<bool> send_error(Txn& t, int status, bool close);
  net::asio::awaitable<bool> send_options(Txn& t, Service svc);
  net::asio::awaitable<bool> modify(Txn& t, Service svc);
  net::asio::awaitable<bool> send_page(Txn& t);
  net::asio::awaitable<bool> send_allow(Txn& t);
  // Streams the encapsulated body from buf_ (re-chunked): the echo. `head` (the reply head,
  // when not sent yet) goes out in the first write, with the body bytes already here; it is
  // never held back while waiting for more (a client may wait for it before sending on).
  net::asio::awaitable<bool> echo_body(Txn& t, std::string head = {});
  // Reads the rest of the encapsulated body (or preview) and discards it.
  net::asio::awaitable<BodyEnd> drain_body(Txn& t);
  // Scanning: collect, scan, deliver (204, echo or page), trickling large bodies.
  enum class Collect { done, more, stalled, closed, malformed, spool_full };
  net::asio::awaitable<bool> scan_and_deliver(Txn& t);
  // Decodes the body into the spool until it ends or holds at least stop_at bytes; with
  // `stall`, also returns `stalled` when no byte arrives for that long.
  net::asio::awaitable<Collect> collect(Txn& t, txn::Spool& spool, std::uint64_t stop_at,
                                        std::chrono::milliseconds stall = {});
  // The echo's ICAP head and the original HTTP heads, announcing a body or not.
  std::string echo_head(Txn& t, bool with_body);
  net::asio::awaitable<bool> send_echo_head(Txn& t, bool with_body);
  // Sends spool bytes [from, to) as chunks; `last` adds the last chunk. `head` goes out in
  // the first write. Writes carry up to 256 KiB of body each.
  net::asio::awaitable<bool> send_spool(Txn& t, const txn::Spool& spool, std::uint64_t from,
                                        std::uint64_t to, bool last, std::string head = {});
  // Response-phase rules on the true file type; true when they refuse the response.
  bool rescan_policy(Txn& t, const txn::ScanOutcome& o);
  Service service_for(const Txn& t) const;
  void identify(Txn& t);
  void finish(Txn& t);

  txn::Worker& w_;
  Stream stream_;
  std::shared_ptr<boost::asio::ssl::context> tls_;  // keeps the context alive
  std::string listener_;
  std::string peer_;  // the ICAP client's address
  base::IpBytes peer_ip_;
  std::size_t metrics_slot_ = 0;  // the listener's slot in the worker's metrics
  bool counted_ = false;
  bool idle_ = false;
  bool first_ = true;
  // Waiting for the next message with buf_ kept (txn::Worker::hot_waiters); tick() counts
  // the worker's ticks meanwhile and sets cooled_ when it cancels the wait.
  bool hot_ = false;
  bool cooled_ = false;
  int hot_ticks_ = 0;
  // Bytes read from the connection and taken from buf_ so far.
  std::uint64_t consumed() const { return read_total_ - buf_.size(); }

  base::Buffer buf_;
  std::uint64_t read_total_ = 0;  // bytes read from the connection
  net::Watchdog watchdog_;
  net::asio::steady_timer stall_timer_;
};

}  // namespace pc::icap
