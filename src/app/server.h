// Server assembly: workers, listeners, the access log, reload and drain. The control thread
// is whoever calls these methods (main's signal loop, or a test).
#pragma once

#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "config/config.h"
#include "proxy/listener.h"
#include "proxy/worker.h"
#include "telemetry/access_log.h"

namespace pc::app {

class Server {
 public:
  explicit Server(std::shared_ptr<const config::Config> cfg);
  ~Server();

  // Binds every listener (throws on failure) and starts the worker threads.
  void start();
  // Ports actually bound, in the order of config listeners (port 0 resolved).
  const std::vector<std::uint16_t>& ports() const { return ports_; }

  // Publishes a new configuration to the workers. Listener, worker and access-log path
  // changes need a restart: they are kept as running and `why` says so.
  void reload(std::shared_ptr<const config::Config> cfg, std::string& why);
  // Stops accepting, lets in-flight transactions finish (up to the drain timeout), stops.
  void drain_and_stop();
  void reopen_logs() { access_log_->reopen(); }

  telemetry::AccessLog& access_log() { return *access_log_; }
  std::size_t connections() const { return shared_->connections.load(); }

 private:
  void release();  // threads stopped: unwind connections, free workers and listeners
  std::shared_ptr<const config::Config> configured_;  // as loaded (listener ports may be 0)
  std::shared_ptr<const config::Config> cfg_;         // as running
  std::unique_ptr<telemetry::AccessLog> access_log_;
  std::unique_ptr<proxy::Shared> shared_;
  std::vector<std::unique_ptr<proxy::Worker>> workers_;
  std::vector<std::vector<std::unique_ptr<proxy::Listener>>> listeners_;  // per worker
  std::vector<std::uint16_t> ports_;
  std::vector<std::thread> threads_;
  std::uint64_t generation_ = 0;
  bool stopped_ = false;
};

// The `run` subcommand: runs until SIGTERM/SIGINT; SIGHUP reloads, SIGUSR1 reopens logs.
int run_main(const std::string& config_path);

}  // namespace pc::app
