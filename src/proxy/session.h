// One accepted client connection of the forward proxy: a coroutine that loops over the
// requests on it, running each through the transaction phases
//   admit -> identify -> classify -> decide -> route -> deliver -> log.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "base/buffer.h"
#include "net/io.h"
#include "telemetry/access_log.h"
#include "txn/flow.h"
#include "txn/worker.h"
#include "wire/http.h"

namespace pc::proxy {

struct ListenerInfo {
  std::string name;
  bool guest = false;
};

class Session : public txn::Connection, public std::enable_shared_from_this<Session> {
 public:
  Session(txn::Worker& w, net::tcp::socket s, ListenerInfo listener);
  ~Session() override;

  // Runs the connection to its end. Call as co_spawn(ex, s->run(s), detached).
  net::asio::awaitable<void> run(std::shared_ptr<Session> self);

  // Worker::drain: closes the connection when it is between requests.
  void close_if_idle() override;
  // Closes both connections (shutdown).
  void close() override {
    watchdog_.stop();
    close_all();
  }

 private:
  struct Txn;         // one request/response exchange (session_txn.h)
  struct BodySource;  // a message body read in its framing (session_txn.h)
  struct Download;    // a response body collected for a scan (scan_delivery.cpp)
  enum class Outcome { keep_alive, close };

  net::asio::awaitable<Outcome> transaction();
  net::asio::awaitable<bool> read_request_head(Txn& t, bool& clean_eof);
  net::asio::awaitable<Outcome> forward(Txn& t);
  net::asio::awaitable<Outcome> tunnel(Txn& t);
  net::asio::awaitable<bool> open_upstream(Txn& t, bool for_connect);
  net::asio::awaitable<bool> connect_direct(Txn& t, const std::string& host, std::uint16_t port);
  net::asio::awaitable<bool> connect_parent(Txn& t);
  net::asio::awaitable<void> upload_body(Txn& t, bool& done, bool& ok);
  net::asio::awaitable<void> relay_response(Txn& t, bool& upload_done, bool& upload_ok);
  net::asio::awaitable<void> relay_body(Txn& t, const wire::MessageInfo& rinfo, std::string& out,
                                        bool rechunk, bool& body_ok, bool& upstream_eof);

  // ---- malware scanning (scan_delivery.cpp) ----
  // Whether bodies of this transaction are scanned: [scan] enabled, a scan service, and a
  // decision other than allow_no_scan.
  bool scan_applies(const Txn& t) const;
  // Appends the next payload bytes of src to out, reading from `from` into buf when needed
  // (raw: bytes read off the wire). False on a read error or malformed framing.
  net::asio::awaitable<bool> read_body(Txn& t, BodySource& src, net::tcp::socket& from,
                                       base::Buffer& buf, std::string& out, std::uint64_t& raw);
  // Uploads: collects the request body into a spool and scans it before anything goes
  // upstream. True to forward it (t.upload set, or unscanned: streamed as usual); false with
  // t.reply prepared.
  net::asio::awaitable<bool> collect_upload(Txn& t);
  // Sends t.upload (and the unscanned rest, if any) upstream; the counterpart of upload_body.
  net::asio::awaitable<void> upload_spooled(Txn& t, bool& done, bool& ok);
  net::asio::awaitable<bool> write_upstream(std::string_view data, bool chunked);
  // Downloads: the response body is collected, scanned, then delivered (trickled when slow).
  // Called once the head is analyzed and allowed; never for bodyless responses.
  net::asio::awaitable<void> deliver_scanned(Txn& t, const wire::ResponseHead& head,
                                             const wire::MessageInfo& rinfo, bool& body_ok,
                                             bool& upstream_eof);
  net::asio::awaitable<bool> send_download_head(Txn& t, const wire::ResponseHead& head,
                                                const wire::MessageInfo& rinfo, Download& dl,
                                                bool whole);
  net::asio::awaitable<bool> send_spooled(Txn& t, Download& dl, std::uint64_t upto);
  net::asio::awaitable<bool> write_piece(Txn& t, std::string_view data, bool chunked);
  net::asio::awaitable<bool> end_download(Txn& t, Download& dl);
  void cut_download(Txn& t);
  net::asio::awaitable<void> pass_unscanned(Txn& t, const wire::ResponseHead& head,
                                            const wire::MessageInfo& rinfo, Download& dl,
                                            std::string_view pending, bool& body_ok);
  // Relays bytes both ways between client and upstream until both sides have finished, or
  // until timeouts.tunnel_idle passes without any (a CONNECT tunnel, a WebSocket).
  net::asio::awaitable<void> relay_both_ways(Txn& t);
  net::asio::awaitable<void> pump(net::tcp::socket& from, net::tcp::socket& to, base::Buffer& buf,
                                  std::uint64_t& counter, bool& eof);
  // Local replies are prepared by a plain function and sent by a coroutine with no
  // temporaries in the co_await expression (g++ 12 mishandles those).
  void set_reply(Txn& t, txn::Reply r);
  // classify + decide for the request phase: true to go on; false with a reply prepared.
  bool decide_request(Txn& t);
  net::asio::awaitable<Outcome> send_reply(Txn& t);
  net::asio::awaitable<bool> write_client(std::string_view data, Txn& t);
  void finish(Txn& t);
  void close_all();
  void on_timeout();

  txn::Worker& w_;
  net::tcp::socket client_;
  net::tcp::socket upstream_;
  net::tcp::endpoint upstream_peer_;
  std::string upstream_key_;  // pool key of upstream_ while open
  bool upstream_reused_ = false;
  ListenerInfo listener_;
  std::string client_addr_;
  base::IpBytes client_ip_;
  std::size_t metrics_slot_ = 0;  // the listener's slot in the worker's metrics
  bool counted_ = false;          // in Shared::connections
  bool counted_client_ = false;   // in Shared's per-client count
  bool upstream_scope_ = false;   // the running deadline is the upstream's: on expiry close only it
  bool skip_pool_ = false;        // retrying after a stale pooled connection
  bool idle_ = false;
  bool first_ = true;
  base::Buffer cbuf_;  // bytes from the client
  base::Buffer ubuf_;  // bytes from the upstream
  net::Watchdog watchdog_;
};

}  // namespace pc::proxy
