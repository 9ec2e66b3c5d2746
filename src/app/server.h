// Server assembly: workers, listeners, the access log, reload and drain. The control thread
// is whoever calls these methods (main's signal loop, or a test).
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <atomic>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <functional>
#include "config/config.h"

#include "app/monitor.h"
#include "telemetry/access_log.h"
#include "telemetry/metrics.h"
#include "telemetry/syslog.h"
#include "txn/listener.h"
#include "txn/snapshot.h"
#include "txn/worker.h"

namespace pc::app {

class Server {
 public:
  explicit Server(std::shared_ptr<const config::Config> cfg);
  ~Server();

  // Binds every listener and the monitoring listener (throws on failure) and starts the
  // worker threads and the monitoring thread.
  void start();
  // Ports actually bound, in the order of config listeners (port 0 resolved).
  const std::vector<std::uint16_t>& ports() const { return ports_; }
  // The monitoring listener's port (0 when [monitoring] is disabled).
  std::uint16_t monitoring_port() const { return monitor_ ? monitor_->port() : 0; }

  // Publishes a new configuration (and the policy it names, loaded again) to the workers.
  // Listener, worker and access-log path changes need a restart: they are kept as running
  // and `why` says so. On errors (config or policy) returns false and keeps the running ones.
  bool reload(std::shared_ptr<const config::Config> cfg, std::string& why,
              std::vector<std::string>& errors);
  // The policy file or one of its databases changed since the running policy was loaded.
  bool policy_changed() const;
  // Reloads only the policy (same configuration); false with errors keeps the running one.
  bool reload_policy(std::vector<std::string>& errors);
  // The signature or rule files (or the scan settings) changed since the engines were loaded.
  bool engines_changed() const;
  // Loads new engines (slow: seconds with the official databases) and publishes them; traffic
  // goes on with the old ones meanwhile.
  void reload_engines();
  txn::ScanService& scan_service() { return *scan_; }
  const std::shared_ptr<const txn::Snapshot>& snapshot() const { return current_; }
  // Stops accepting, lets in-flight transactions finish (up to the drain timeout), stops.
  void drain_and_stop();
  void reopen_logs() { access_log_->reopen(); }

  // The writer and its sinks; access_log().sink_stats() reports on each sink.
  telemetry::AccessLog& access_log() { return *access_log_; }

  // ---- monitoring (docs/monitoring.md) ----
  // The collectors behind /metrics; a component adds its own (they run on the monitoring
  // thread).
  telemetry::Registry& metrics() { return registry_; }
  // Registers a log sink: its records written and dropped go to /metrics (label sink=name)
  // and its state to /readyz. `probe` runs on the monitoring thread.
  void add_sink(std::string name, std::function<telemetry::SinkState()> probe);
  // Readiness: policy, scanning engines, listeners, workers, log sinks. Any thread.
  std::vector<Check> checks() const;
  // The /status document. Any thread.
  std::string status_json() const;
  // A configuration reload that failed before reaching reload() (the file did not load).
  void reload_failed(const std::vector<std::string>& errors);
  // Open client connections: proxy and ICAP together.
  std::size_t connections() const {
    return shared_->connections.load() + shared_->icap_connections.load();
  }

 private:
  void release();  // threads stopped: unwind connections, free workers and listeners
  // The access log file, the security log file and the syslog destinations (throws when a
  // syslog destination cannot be set up: TLS files, spool folder).
  std::unique_ptr<telemetry::AccessLog> make_access_log(const config::Config& c);
  void publish(std::shared_ptr<const txn::Snapshot> snap, bool before_start);
  using Stamps = std::vector<std::pair<std::filesystem::path, std::filesystem::file_time_type>>;
  static Stamps stamp(const std::vector<std::filesystem::path>& files);  // modification times
  // The running policy's files, for policy_changed(): each with its time in `before` (taken
  // before the policy was read, so that a change while it was read is seen), else as now.
  void remember_inputs(const Stamps& before);
  std::vector<std::filesystem::path> input_files() const;  // of inputs_
  std::shared_ptr<const txn::Engines> load_engines_logged(const config::Scan& scan);
  txn::Listener::OnAccept on_accept(const config::Listener& l);
  void register_collectors();
  enum Reload { kConfig, kPolicy, kEngines, kReloadKinds };
  void count_reload(Reload what, bool ok, const std::vector<std::string>& errors);
  std::shared_ptr<const txn::Snapshot> current_;
  Stamps inputs_;
  std::shared_ptr<const config::Config> configured_;  // as loaded (listener ports may be 0)
  std::shared_ptr<const config::Config> cfg_;         // as running
  std::unique_ptr<telemetry::AccessLog> access_log_;
  telemetry::FileSink* access_file_ = nullptr;  // owned by access_log_; null when off
  std::unique_ptr<txn::Shared> shared_;
  std::unique_ptr<txn::ScanService> scan_;
  std::vector<std::unique_ptr<txn::Worker>> workers_;
  std::vector<std::vector<std::unique_ptr<txn::Listener>>> listeners_;  // per worker
  std::shared_ptr<boost::asio::ssl::context> icap_tls_;                 // ICAPS listeners
  std::vector<std::uint16_t> ports_;
  std::vector<std::thread> threads_;
  std::uint64_t generation_ = 0;
  bool stopped_ = false;

  // Monitoring. The monitoring thread reads what the control thread changes through
  // status_mu_ (the snapshot, reload outcomes, sinks) or atomics.
  telemetry::Registry registry_;
  std::unique_ptr<Monitor> monitor_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  const std::chrono::system_clock::time_point started_wall_ = std::chrono::system_clock::now();
  mutable std::mutex status_mu_;
  std::shared_ptr<const txn::Snapshot> status_snap_;
  std::chrono::system_clock::time_point policy_loaded_ = started_wall_;
  std::uint64_t reloads_[kReloadKinds][2] = {};  // [what][0 ok, 1 failed]
  std::string reload_error_[kReloadKinds];       // the last failure's errors
  std::vector<std::pair<std::string, std::function<telemetry::SinkState()>>> sinks_;
};

// The `run` subcommand: runs until SIGTERM/SIGINT; SIGHUP reloads, SIGUSR1 reopens logs.
int run_main(const std::string& config_path);

}  // namespace pc::app
