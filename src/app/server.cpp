#include "app/server.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>

#include "app/logs_query.h"
#include "base/json.h"
#include "base/log.h"
#include "base/memory.h"
#include "icap/session.h"
#include "proxy/session.h"
#include "store/sink.h"
#include "telemetry/syslog.h"
#include "tls/tls.h"
#include "txn/snapshot.h"

#ifndef PORTCULLIS_VERSION
#define PORTCULLIS_VERSION "0.0.0"
#endif

namespace pc::app {

namespace asio = boost::asio;

namespace {
telemetry::Format log_format(const config::Config& c) {
  return c.access_log_format == config::LogFormat::squid ? telemetry::Format::squid
                                                         : telemetry::Format::json;
}

std::string random_prefix() {
  std::random_device rd;
  std::uint32_t v = rd();
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

// Workers share a port through SO_REUSEPORT, which would also let a second gateway started
// by mistake share it silently. A plain bind first proves the port is really free.
void ensure_port_free(const config::Listener& l) {
  std::string text = l.address;
  if (text.size() > 2 && text.front() == '[') text = text.substr(1, text.size() - 2);
  auto addr = asio::ip::make_address(text);
  asio::io_context io;
  asio::ip::tcp::acceptor probe(io);
  boost::system::error_code ec;
  probe.open(addr.is_v6() ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), ec);
  if (ec) return;  // no such address family: the listener reports it
  probe.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  probe.bind({addr, l.port}, ec);
  if (ec == asio::error::address_in_use)
    throw std::runtime_error("listener " + l.name + ": " + l.address + " port " +
                             std::to_string(l.port) + " is already in use");
}

// A log sink as monitoring sees it: its counts (a record dropped before the writer, the queue
// being full, is lost to every sink), whether it can deliver now and why not. For a file,
// also whether it (or, before it exists, its folder) can still be written.
telemetry::SinkState sink_state(const telemetry::AccessLog& log, std::size_t i,
                                const std::filesystem::path& file) {
  auto all = log.sink_stats();
  if (i >= all.size()) return {0, 0, false, "no such sink"};
  const auto& st = all[i];
  telemetry::SinkState s{st.written, st.dropped + log.dropped(), st.connected, st.detail};
  if (file.empty() || file == "-" || !s.connected) return s;
  if (::access(file.c_str(), W_OK) == 0) return s;
  int err = errno;
  if (err == ENOENT) {
    if (::access(file.parent_path().c_str(), W_OK | X_OK) == 0) return s;
    err = errno;
  }
  s.connected = false;
  s.detail = file.string() + ": " + std::strerror(err);
  return s;
}

// "2024-05-01T12:00:00Z"
std::string utc_text(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += v[i];
  }
  return out;
}

// A worker whose event loop has not run its tick for this long is stalled: not ready.
constexpr auto kStalled = std::chrono::seconds(10);

bool same_listeners(const config::Config& a, const config::Config& b) {
  if (a.listeners.size() != b.listeners.size() || a.workers != b.workers) return false;
  for (std::size_t i = 0; i < a.listeners.size(); ++i) {
    const auto &x = a.listeners[i], &y = b.listeners[i];
    if (x.name != y.name || x.address != y.address || x.port != y.port || x.guest != y.guest ||
        x.protocol != y.protocol)
      return false;
  }
  return true;
}
}  // namespace

Server::Server(std::shared_ptr<const config::Config> cfg) : configured_(cfg), cfg_(std::move(cfg)) {
  log::set_level(cfg_->log_level);
  access_log_ = make_access_log(*cfg_);
  shared_ = std::make_unique<txn::Shared>(*access_log_);
  shared_->id_prefix = random_prefix();
  std::vector<std::string> errors;
  const Stamps before = stamp({cfg_->policy_file});
  auto snap = txn::build_snapshot(cfg_, ++generation_, errors);
  if (!snap) {
    std::string all;
    for (const auto& e : errors) all += "\n  " + e;
    throw std::runtime_error("invalid configuration:" + all);
  }
  const std::filesystem::path scratch_base =
      cfg_->scan.scratch_dir.empty() ? txn::default_scratch_base() : cfg_->scan.scratch_dir;
  scan_ = std::make_unique<txn::ScanService>(cfg_->scan.threads, cfg_->scan.queue,
                                             cfg_->scan.cache_entries, scratch_base);
  if (!scan_->scratch.error().empty())
    log::warn("{}; libclamav writes its scratch files to $TMPDIR", scan_->scratch.error());
  shared_->scan = scan_.get();
  snap = txn::with_engines(*snap, load_engines_logged(cfg_->scan), generation_);
  current_ = snap;
  remember_inputs(before);
  if (cfg_->has_protocol(config::Protocol::icaps)) {
    const auto& ic = cfg_->icap;
    auto err = tls::ensure_self_signed(ic.tls_certificate, ic.tls_key, cfg_->name);
    if (!err.empty()) throw std::runtime_error("ICAPS certificate: " + err);
    icap_tls_ = tls::make_server_context(ic.tls_certificate, ic.tls_key, ic.tls_client_ca);
    log::info("ICAPS certificate: {}", tls::describe_certificate(ic.tls_certificate));
  }
  for (unsigned i = 0; i < cfg_->workers; ++i)
    workers_.push_back(std::make_unique<txn::Worker>(*shared_, i, snap));
  status_snap_ = snap;
  {
    const auto* log = access_log_.get();
    const auto sinks = log->sink_stats();
    for (std::size_t i = 0; i < sinks.size(); ++i) {
      const auto& name = sinks[i].name;
      std::filesystem::path file = name == "access_log"     ? cfg_->access_log_path
                                   : name == "security_log" ? cfg_->security_log_path
                                                            : std::filesystem::path();
      add_sink(name, [log, i, file] { return sink_state(*log, i, file); });
    }
  }
  register_collectors();
}

std::unique_ptr<telemetry::AccessLog> Server::make_access_log(const config::Config& c) {
  using telemetry::FileSink;
  std::vector<std::unique_ptr<telemetry::LogSink>> sinks;
  if (!c.access_log_path.empty()) {
    auto f = std::make_unique<FileSink>("access_log", c.access_log_path, log_format(c),
                                        FileSink::Filter::all, c.name);
    access_file_ = f.get();
    sinks.push_back(std::move(f));
  }
  if (!c.security_log_path.empty())
    sinks.push_back(std::make_unique<FileSink>("security_log", c.security_log_path,
                                               telemetry::Format::json, FileSink::Filter::security,
                                               c.name));
  for (const auto& d : c.syslog) {
    telemetry::SyslogOptions o;
    o.name = d.name;
    o.host = d.host;
    o.port = d.port;
    o.transport = d.transport == config::SyslogTransport::udp   ? telemetry::Transport::udp
                  : d.transport == config::SyslogTransport::tcp ? telemetry::Transport::tcp
                                                                : telemetry::Transport::tls;
    o.format = d.format == config::SyslogFormat::rfc5424 ? telemetry::SyslogFormat::rfc5424
               : d.format == config::SyslogFormat::cef   ? telemetry::SyslogFormat::cef
                                                         : telemetry::SyslogFormat::json;
    o.security_only = d.security_only;
    o.header.facility = d.facility;
    o.header.hostname = c.name;
    o.header.procid = std::to_string(::getpid());
    o.header.version = PORTCULLIS_VERSION;
    o.tls_ca = d.tls_ca;
    o.tls_certificate = d.tls_certificate;
    o.tls_key = d.tls_key;
    o.queue_limit = d.queue_limit;
    o.spool_dir = c.state_dir / "spool" / "syslog" / d.name;
    try {
      sinks.push_back(std::make_unique<telemetry::SyslogSink>(std::move(o)));
    } catch (const std::exception& e) {
      throw std::runtime_error("syslog destination " + d.name + ": " + e.what());
    }
  }
  if (c.log_store.enabled)
    sinks.push_back(std::make_unique<store::StoreSink>(log_store_options(c)));
  return std::make_unique<telemetry::AccessLog>(std::move(sinks));
}

txn::Listener::OnAccept Server::on_accept(const config::Listener& l) {
  if (l.protocol == config::Protocol::proxy) {
    proxy::ListenerInfo info{l.name, l.guest};
    return [info](txn::Worker& w, net::tcp::socket sock) {
      auto s = std::make_shared<proxy::Session>(w, std::move(sock), info);
      asio::co_spawn(w.io, s->run(s), asio::detached);
    };
  }
  auto tls = l.protocol == config::Protocol::icaps ? icap_tls_ : nullptr;
  return [name = l.name, tls](txn::Worker& w, net::tcp::socket sock) {
    auto s = std::make_shared<icap::Session>(w, std::move(sock), name, tls);
    asio::co_spawn(w.io, s->run(s), asio::detached);
  };
}

Server::~Server() {
  if (!stopped_) {
    for (auto& w : workers_) w->io.stop();
    for (auto& t : threads_) t.join();
  }
  release();
}

std::shared_ptr<const txn::Engines> Server::load_engines_logged(const config::Scan& scan) {
  auto e = txn::load_engines(scan, scan_->scratch.path());
  if (!scan.enabled)
    log::info("scanning is off (scan.enabled = false)");
  else if (!e->error.empty())
    log::error("scanning engines: {} (scan.on_failure applies to every body)", e->error);
  else
    log::info("scanning engines loaded: {}", e->version);
  return e;
}

bool Server::engines_changed() const {
  return txn::engines_stale(*current_->engines, cfg_->scan);
}

void Server::reload_engines() {
  auto engines = load_engines_logged(cfg_->scan);
  std::vector<std::string> errors;
  if (!engines->error.empty()) errors.push_back(engines->error);
  count_reload(kEngines, errors.empty(), errors);
  publish(txn::with_engines(*current_, std::move(engines), ++generation_), false);
}

void Server::release() {
  if (monitor_) monitor_->stop();        // its collectors read the workers
  if (scan_) scan_->offload.shutdown();  // pending scans complete (not scanned) on their worker
  for (auto& ls : listeners_)
    for (auto& l : ls) l->close();
  for (auto& w : workers_) w->shutdown();
  listeners_.clear();
  workers_.clear();
}

void Server::start() {
  listeners_.resize(workers_.size());
  ports_.clear();
  for (const auto& l : cfg_->listeners) {
    std::uint16_t port = l.port;
    if (port != 0) ensure_port_free(l);
    for (std::size_t wi = 0; wi < workers_.size(); ++wi) {
      auto lis = std::make_unique<txn::Listener>(*workers_[wi], l, port, on_accept(l));
      port = lis->port();  // port 0: the others join the port the first one got
      listeners_[wi].push_back(std::move(lis));
    }
    ports_.push_back(port);
    auto& first = *listeners_[0].back();
    log::info("listening on {} port {} ({}{}, {})", l.address, port, config::to_string(l.protocol),
              l.guest ? ", guest" : "", first.describe());
    for (const auto& n : first.notes()) {
      if (n.in_file)
        log::warn("listener {}: {}", l.name, n.text);
      else
        log::info("listener {}: {}", l.name, n.text);
    }
  }
  if (cfg_->monitoring.enabled) {
    MonitorHandlers h;
    h.metrics = [this] { return registry_.render(); };
    h.checks = [this] { return checks(); };
    h.status = [this] { return status_json(); };
    monitor_ = std::make_unique<Monitor>(cfg_->monitoring, std::move(h));
    log::info("monitoring on {} port {} (/healthz /readyz /metrics /status)",
              cfg_->monitoring.address, monitor_->port());
  }
  // Ports bound as 0 are known only now: rebuild the snapshot so is_self() knows them.
  auto copy = std::make_shared<config::Config>(*cfg_);
  for (std::size_t i = 0; i < copy->listeners.size(); ++i) copy->listeners[i].port = ports_[i];
  if (monitor_) copy->monitoring.port = monitor_->port();
  cfg_ = copy;
  publish(txn::with_config(*current_, cfg_, ++generation_), true);

  for (std::size_t wi = 0; wi < workers_.size(); ++wi) {
    for (auto& l : listeners_[wi]) l->start();
    auto* w = workers_[wi].get();
    w->start_ticks();
    threads_.emplace_back([w] {
      auto guard = asio::make_work_guard(w->io);
      w->io.run();
    });
  }
  if (monitor_) monitor_->start();
}

void Server::publish(std::shared_ptr<const txn::Snapshot> snap, bool before_start) {
  current_ = snap;
  {
    std::lock_guard lk(status_mu_);
    if (!status_snap_ || status_snap_->policy != snap->policy)
      policy_loaded_ = std::chrono::system_clock::now();
    status_snap_ = snap;
  }
  // What building the snapshot allocated and freed (a policy's load peaks well above what it
  // keeps) goes back to the system.
  base::release_free_memory();
  if (before_start) {
    for (auto& w : workers_) w->apply(snap);
    return;
  }
  for (auto& w : workers_) asio::post(w->io, [w = w.get(), snap] { w->apply(snap); });
}

Server::Stamps Server::stamp(const std::vector<std::filesystem::path>& files) {
  Stamps out;
  for (const auto& p : files) {
    std::error_code ec;
    out.emplace_back(p, std::filesystem::last_write_time(p, ec));
  }
  return out;
}

void Server::remember_inputs(const Stamps& before) {
  inputs_.clear();
  for (const auto& p : current_->policy->inputs()) {
    auto at =
        std::find_if(before.begin(), before.end(), [&](const auto& s) { return s.first == p; });
    inputs_.push_back(at != before.end() ? *at : stamp({p}).front());
  }
}

std::vector<std::filesystem::path> Server::input_files() const {
  std::vector<std::filesystem::path> out;
  for (const auto& [p, t] : inputs_) out.push_back(p);
  return out;
}

bool Server::policy_changed() const {
  for (const auto& [p, t] : inputs_) {
    std::error_code ec;
    if (std::filesystem::last_write_time(p, ec) != t) return true;
  }
  return false;
}

bool Server::reload_policy(std::vector<std::string>& errors) {
  if (cfg_->policy_file.empty()) return true;
  const Stamps before = stamp(input_files());
  std::vector<policy::LoadError> perrs;
  auto pol = policy::Policy::load_file(cfg_->policy_file, perrs);
  for (const auto& e : perrs) errors.push_back(policy::format(e));
  if (!pol) {
    if (errors.empty()) errors.push_back(cfg_->policy_file.string() + ": cannot load the policy");
    count_reload(kPolicy, false, errors);
    remember_inputs(before);  // do not retry until the files change again
    return false;
  }
  count_reload(kPolicy, true, errors);
  publish(txn::with_policy(*current_, std::move(pol), ++generation_), false);
  remember_inputs(before);
  return true;
}

bool Server::reload(std::shared_ptr<const config::Config> loaded, std::string& why,
                    std::vector<std::string>& errors) {
  why.clear();
  if (!same_listeners(*configured_, *loaded))
    why = "listener and worker changes take effect after a restart";
  auto restart_note = [&](bool changed, std::string_view what) {
    if (changed)
      why += std::string(why.empty() ? "" : "; ") + std::string(what) +
             " changes take effect after a restart";
  };
  restart_note(loaded->access_log_path != cfg_->access_log_path, "access_log.path");
  restart_note(loaded->security_log_path != cfg_->security_log_path, "access_log.security_path");
  restart_note(loaded->syslog != cfg_->syslog, "[[syslog]]");
  restart_note(loaded->log_store != cfg_->log_store, "[log_store]");
  restart_note(loaded->name != cfg_->name, "gateway.name (in log records)");
  if (loaded->scan.threads != cfg_->scan.threads || loaded->scan.queue != cfg_->scan.queue ||
      loaded->scan.cache_entries != cfg_->scan.cache_entries)
    why += std::string(why.empty() ? "" : "; ") +
           "scan.threads, scan.queue and scan.cache_entries changes take effect after a restart";
  const auto &lm = loaded->monitoring, &rm = configured_->monitoring;
  if (lm.enabled != rm.enabled || lm.address != rm.address || lm.port != rm.port ||
      lm.allow_remote != rm.allow_remote)
    why +=
        std::string(why.empty() ? "" : "; ") + "[monitoring] changes take effect after a restart";
  // What cannot change while running is kept as it runs (port-0 listeners keep their ports).
  auto cfg = std::make_shared<config::Config>(*loaded);
  cfg->listeners = cfg_->listeners;
  cfg->workers = cfg_->workers;
  cfg->access_log_path = cfg_->access_log_path;
  cfg->security_log_path = cfg_->security_log_path;
  cfg->syslog = cfg_->syslog;
  cfg->log_store = cfg_->log_store;
  cfg->monitoring = cfg_->monitoring;
  std::vector<std::filesystem::path> files = input_files();
  files.push_back(cfg->policy_file);
  const Stamps before = stamp(files);
  auto snap = txn::build_snapshot(cfg, ++generation_, errors);
  if (!snap) {
    count_reload(kConfig, false, errors);
    return false;  // the running configuration and policy stay
  }
  count_reload(kConfig, true, errors);
  snap = txn::with_config(*snap, cfg, generation_);  // own addresses for the running ports
  snap = txn::with_engines(*snap,
                           txn::engines_stale(*current_->engines, cfg->scan)
                               ? load_engines_logged(cfg->scan)
                               : current_->engines,
                           generation_);
  log::set_level(cfg->log_level);
  if (access_file_) access_file_->set_format(log_format(*cfg));
  cfg_ = cfg;
  publish(snap, false);
  remember_inputs(before);
  return true;
}

void Server::drain_and_stop() {
  if (stopped_) return;
  shared_->draining.store(true);
  for (std::size_t wi = 0; wi < workers_.size(); ++wi) {
    auto* w = workers_[wi].get();
    auto* ls = &listeners_[wi];
    asio::post(w->io, [w, ls] {
      for (auto& l : *ls) l->close();
      w->drain();
    });
  }
  auto deadline = std::chrono::steady_clock::now() + cfg_->timeouts.drain;
  while (connections() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (connections() > 0) log::warn("drain timeout: closing {} connection(s)", connections());
  for (auto& w : workers_) w->io.stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
  stopped_ = true;
  release();
  access_log_->flush();
}

// ---- monitoring ----

void Server::add_sink(std::string name, std::function<telemetry::SinkState()> probe) {
  std::lock_guard lk(status_mu_);
  sinks_.emplace_back(std::move(name), std::move(probe));
}

void Server::count_reload(Reload what, bool ok, const std::vector<std::string>& errors) {
  std::lock_guard lk(status_mu_);
  ++reloads_[what][ok ? 0 : 1];
  if (!ok) reload_error_[what] = join(errors, "; ");
}

void Server::reload_failed(const std::vector<std::string>& errors) {
  count_reload(kConfig, false, errors);
}

std::vector<Check> Server::checks() const {
  std::shared_ptr<const txn::Snapshot> snap;
  std::string policy_error;
  std::vector<std::pair<std::string, std::function<telemetry::SinkState()>>> sinks;
  {
    std::lock_guard lk(status_mu_);
    snap = status_snap_;
    sinks = sinks_;
    if (reloads_[kPolicy][1] > 0) policy_error = reload_error_[kPolicy];
  }
  std::vector<Check> out;

  Check pol{"policy", true, {}};
  if (!snap || !snap->policy) {
    pol.ok = false;
    pol.detail = "no policy loaded";
  } else {
    const auto& file = snap->config->policy_file;
    pol.detail = file.empty() ? "no policy file: everything is allowed"
                              : fmt::format("{} revision {:016x}, {} rules", file.string(),
                                            snap->policy->revision(), snap->policy->rule_count());
    // A failed reload keeps the running policy: still ready, but say so.
    if (!policy_error.empty())
      pol.detail += "; a reload failed, the previous policy runs: " + policy_error;
  }
  out.push_back(std::move(pol));

  Check scan{"scanning", true, {}};
  if (!snap || !snap->config->scan.enabled) {
    scan.detail = "scanning is off (scan.enabled = false)";
  } else if (!snap->engines || !snap->engines->clam || !snap->engines->error.empty()) {
    scan.ok = false;
    scan.detail = snap->engines && !snap->engines->error.empty()
                      ? snap->engines->error + " (scan.on_failure applies to every body)"
                      : "scanning engines not loaded";
  } else {
    scan.detail = snap->engines->version;
  }
  out.push_back(std::move(scan));

  Check lis{"listeners", true, {}};
  if (shared_->draining.load()) {
    lis.ok = false;
    lis.detail = "draining: new connections are refused";
  } else {
    std::vector<std::string> down, up;
    const auto& listeners = snap->config->listeners;  // kept as running by reloads
    for (std::size_t li = 0; li < listeners.size(); ++li) {
      std::size_t open = 0;
      for (const auto& per_worker : listeners_)
        if (li < per_worker.size() && per_worker[li]->accepting()) ++open;
      const auto& l = listeners[li];
      std::string what = fmt::format("{} ({} port {})", l.name, l.address,
                                     ports_.size() > li ? ports_[li] : l.port);
      if (open == workers_.size() && open > 0)
        up.push_back(std::move(what));
      else
        down.push_back(fmt::format("{}: {} of {} workers accepting", what, open, workers_.size()));
    }
    lis.ok = down.empty();
    lis.detail = down.empty() ? "accepting on " + join(up, ", ") : join(down, "; ");
  }
  out.push_back(std::move(lis));

  Check wk{"workers", true, {}};
  {
    const auto now = std::chrono::steady_clock::now();
    std::vector<std::string> stalled;
    for (const auto& w : workers_) {
      const auto last_ns = w->metrics().last_tick_ns();
      const auto last =
          last_ns > 0 ? std::chrono::steady_clock::time_point(std::chrono::nanoseconds(last_ns))
                      : started_;
      const auto age = now - last;
      if (age > kStalled)
        stalled.push_back(fmt::format("worker {}: event loop stalled for {:.1f} s", w->index,
                                      std::chrono::duration<double>(age).count()));
    }
    wk.ok = stalled.empty();
    wk.detail =
        stalled.empty() ? fmt::format("{} workers running", workers_.size()) : join(stalled, "; ");
  }
  out.push_back(std::move(wk));

  for (const auto& [name, probe] : sinks) {
    auto st = probe();
    out.push_back({"log sink " + name, st.connected, st.detail});
  }
  return out;
}

std::string Server::status_json() const {
  std::shared_ptr<const txn::Snapshot> snap;
  std::chrono::system_clock::time_point policy_loaded;
  std::uint64_t reloads[kReloadKinds][2];
  std::string reload_error[kReloadKinds];
  std::vector<std::pair<std::string, std::function<telemetry::SinkState()>>> sinks;
  {
    std::lock_guard lk(status_mu_);
    snap = status_snap_;
    policy_loaded = policy_loaded_;
    std::memcpy(reloads, reloads_, sizeof reloads);
    for (int i = 0; i < kReloadKinds; ++i) reload_error[i] = reload_error_[i];
    sinks = sinks_;
  }
  const auto checks_now = checks();
  std::string o = "{";
  auto key = [&](std::string_view k) {
    if (o.size() > 1 && o.back() != '{' && o.back() != '[') o += ',';
    base::append_json_string(o, k);
    o += ':';
  };
  auto str = [&](std::string_view k, std::string_view v) {
    key(k);
    base::append_json_string(o, v);
  };
  auto num = [&](std::string_view k, auto v) {
    key(k);
    o += fmt::format("{}", v);
  };
  auto boolean = [&](std::string_view k, bool v) {
    key(k);
    o += v ? "true" : "false";
  };
  const auto& cfg = *snap->config;
  str("name", cfg.name);
  str("version", PORTCULLIS_VERSION);
  str("started", utc_text(started_wall_));
  num("uptime_seconds",
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_)
          .count());
  bool ready = true;
  for (const auto& c : checks_now) ready = ready && c.ok;
  boolean("ready", ready);
  num("workers", workers_.size());

  key("listeners");
  o += '[';
  for (std::size_t li = 0; li < cfg.listeners.size(); ++li) {
    const auto& l = cfg.listeners[li];
    if (li) o += ',';
    o += '{';
    str("name", l.name);
    str("protocol", config::to_string(l.protocol));
    str("address", l.address);
    num("port", ports_.size() > li ? ports_[li] : l.port);
    boolean("guest", l.guest);
    o += '}';
  }
  o += ']';

  key("policy");
  o += '{';
  str("file", cfg.policy_file.string());
  str("revision", fmt::format("{:016x}", snap->policy->revision()));
  num("rules", snap->policy->rule_count());
  num("table_bytes", snap->policy->table_bytes());
  str("loaded", utc_text(policy_loaded));
  o += '}';

  key("scan");
  o += '{';
  const auto& e = snap->engines;
  boolean("enabled", cfg.scan.enabled);
  boolean("loaded", cfg.scan.enabled && e && e->clam && e->error.empty());
  str("engines", e ? e->version : "");
  str("error", e ? e->error : "");
  key("clamav");
  if (e && e->clam) {
    const auto& v = e->clam->version();
    o += '{';
    str("version", v.libclamav);
    num("signatures", v.signatures);
    num("database_version", v.db_version);
    str("database_time",
        v.db_time ? utc_text(std::chrono::system_clock::from_time_t(v.db_time)) : std::string());
    str("fingerprint", v.fingerprint);
    key("databases");
    o += '[';
    for (std::size_t i = 0; i < v.databases.size(); ++i) {
      const auto& db = v.databases[i];
      if (i) o += ',';
      o += '{';
      str("file", db.file.string());
      num("version", db.version);
      num("signatures", db.signatures);
      str("built",
          db.built ? utc_text(std::chrono::system_clock::from_time_t(db.built)) : std::string());
      o += '}';
    }
    o += "]}";
  } else {
    o += "null";
  }
  key("yara");
  if (e && e->yara) {
    o += '{';
    num("rules", e->yara->rule_count());
    num("files", e->yara->file_count());
    o += '}';
  } else {
    o += "null";
  }
  o += '}';

  key("reloads");
  o += '{';
  constexpr std::string_view kinds[] = {"config", "policy", "engines"};
  for (int i = 0; i < kReloadKinds; ++i) {
    key(kinds[i]);
    o += '{';
    num("ok", reloads[i][0]);
    num("failed", reloads[i][1]);
    str("last_error", reload_error[i]);
    o += '}';
  }
  o += '}';

  key("log_sinks");
  o += '[';
  for (std::size_t i = 0; i < sinks.size(); ++i) {
    auto st = sinks[i].second();
    if (i) o += ',';
    o += '{';
    str("name", sinks[i].first);
    boolean("connected", st.connected);
    num("written", st.written);
    num("dropped", st.dropped);
    str("detail", st.detail);
    o += '}';
  }
  o += ']';

  key("checks");
  // checks_json() is an object {"ready":..,"checks":[...]}: take its array.
  std::string cj = checks_json(checks_now);
  auto at = cj.find('[');
  o += cj.substr(at, cj.size() - at - 1);
  o += '}';
  return o;
}

void Server::register_collectors() {
  registry_.add([this](telemetry::MetricWriter& w) {
    w.gauge("portcullis_build_info", "Always 1; the version is a label.",
            {{"version", PORTCULLIS_VERSION}}, 1);
    w.gauge("portcullis_start_time_seconds", "When the process started (Unix time).", {},
            static_cast<double>(
                std::chrono::duration_cast<std::chrono::seconds>(started_wall_.time_since_epoch())
                    .count()));
    auto cs = checks();
    bool ready = true;
    for (const auto& c : cs) ready = ready && c.ok;
    w.gauge("portcullis_ready", "1 when every readiness check passes (see /readyz).", {},
            ready ? 1 : 0);
    for (const auto& c : cs)
      w.gauge("portcullis_check_ok", "Each readiness check: 1 passing, 0 failing.",
              {{"check", c.name}}, c.ok ? 1 : 0);
  });

  registry_.add([this](telemetry::MetricWriter& w) {
    std::shared_ptr<const txn::Snapshot> snap;
    {
      std::lock_guard lk(status_mu_);
      snap = status_snap_;
    }
    constexpr std::string_view kConnHelp =
        "Client connections counted against the limit (proxy.max_connections for proxy "
        "listeners, icap.max_connections for ICAP ones).";
    constexpr std::string_view kLimitHelp = "proxy.max_connections and icap.max_connections.";
    w.gauge("portcullis_front_connections", kConnHelp, {{"front", "proxy"}},
            static_cast<double>(shared_->connections.load(std::memory_order_relaxed)));
    w.gauge("portcullis_front_connections", kConnHelp, {{"front", "icap"}},
            static_cast<double>(shared_->icap_connections.load(std::memory_order_relaxed)));
    w.gauge("portcullis_front_connections_limit", kLimitHelp, {{"front", "proxy"}},
            static_cast<double>(snap->config->max_connections));
    w.gauge("portcullis_front_connections_limit", kLimitHelp, {{"front", "icap"}},
            static_cast<double>(snap->config->icap.max_connections));
    std::vector<const txn::WorkerMetrics*> ms;
    for (const auto& wk : workers_) ms.push_back(&wk->metrics());
    txn::WorkerMetrics::collect(ms, w);
  });

  registry_.add([this](telemetry::MetricWriter& w) {
    auto& svc = *scan_;
    const auto oc = svc.offload.counters();
    w.gauge("portcullis_scan_queue_depth", "Scans waiting for a scanning thread.", {},
            static_cast<double>(oc.queued));
    w.gauge("portcullis_scan_queue_capacity", "Scans that may wait (scan.queue).", {},
            static_cast<double>(svc.offload.capacity()));
    w.gauge("portcullis_scan_running", "Scans running now.", {}, static_cast<double>(oc.running));
    w.gauge("portcullis_scan_threads", "Scanning threads (scan.threads).", {},
            static_cast<double>(svc.offload.threads()));
    w.counter("portcullis_scan_rejected_total",
              "Scans refused because the queue was full (scan.on_failure applied).", {},
              oc.rejected);
    w.counter("portcullis_scan_jobs_completed_total", "Scans run by the scanning threads.", {},
              oc.completed);
    w.counter("portcullis_verdict_cache_hits_total", "Scans answered from the verdict cache.", {},
              svc.cache.hits());
    w.counter("portcullis_verdict_cache_misses_total", "Scans the verdict cache could not answer.",
              {}, svc.cache.misses());
    w.gauge("portcullis_verdict_cache_entries", "Verdicts in the cache.", {},
            static_cast<double>(svc.cache.size()));
    constexpr std::string_view kFailHelp =
        "Bodies the gateway could not scan (no engine, queue or spool full, engine error), by "
        "what scan.on_failure did: passed (fail-open) or blocked (fail-closed).";
    w.counter("portcullis_scan_failures_total", kFailHelp, {{"action", "passed"}},
              svc.failed_open.load(std::memory_order_relaxed));
    w.counter("portcullis_scan_failures_total", kFailHelp, {{"action", "blocked"}},
              svc.failed_closed.load(std::memory_order_relaxed));
    w.counter("portcullis_scan_too_large_total",
              "Bodies not scanned for their size (scan.max_scan_size, endless streams).", {},
              svc.too_large.load(std::memory_order_relaxed));
    w.gauge("portcullis_scan_spooled_bytes", "Bytes held by bodies being collected for a scan.", {},
            static_cast<double>(svc.spooled.load(std::memory_order_relaxed)));

    std::shared_ptr<const txn::Snapshot> snap;
    {
      std::lock_guard lk(status_mu_);
      snap = status_snap_;
    }
    const auto& e = snap->engines;
    const bool loaded = snap->config->scan.enabled && e && e->clam && e->error.empty();
    w.gauge("portcullis_scan_engines_loaded",
            "1 when scanning is on and every engine loaded, 0 otherwise.", {}, loaded ? 1 : 0);
    if (e && e->clam) {
      const auto& v = e->clam->version();
      const std::string db = std::to_string(v.db_version);
      w.gauge("portcullis_clamav_signatures", "Signatures in the loaded ClamAV engine.",
              {{"clamav_version", v.libclamav}, {"database_version", db}},
              static_cast<double>(v.signatures));
    }
    if (e && e->yara)
      w.gauge("portcullis_yara_rules", "YARA rules loaded.", {},
              static_cast<double>(e->yara->rule_count()));
  });

  registry_.add([this](telemetry::MetricWriter& w) {
    std::vector<std::pair<std::string, std::function<telemetry::SinkState()>>> sinks;
    std::uint64_t reloads[kReloadKinds][2];
    {
      std::lock_guard lk(status_mu_);
      sinks = sinks_;
      std::memcpy(reloads, reloads_, sizeof reloads);
    }
    for (const auto& [name, probe] : sinks) {
      auto st = probe();
      w.counter("portcullis_log_records_written_total", "Log records a sink delivered.",
                {{"sink", name}}, st.written);
      w.counter("portcullis_log_records_dropped_total",
                "Log records a sink lost (queue full, write failed, destination down).",
                {{"sink", name}}, st.dropped);
      w.gauge("portcullis_log_sink_connected", "1 when a sink can deliver now.", {{"sink", name}},
              st.connected ? 1 : 0);
    }
    constexpr std::string_view kinds[] = {"config", "policy", "engines"};
    for (int i = 0; i < kReloadKinds; ++i)
      for (int r = 0; r < 2; ++r)
        w.counter("portcullis_reloads_total",
                  "Reloads of the configuration (SIGHUP), the policy (its files changed) and the "
                  "scanning engines (signature or rule files changed), by result.",
                  {{"what", kinds[i]}, {"result", r == 0 ? "ok" : "failed"}}, reloads[i][r]);
  });
}

int run_main(const std::string& config_path) {
  // The signals the control loop below handles wait, blocked, until it is set up: one that
  // arrives while the gateway starts is acted on once it has started rather than taking its
  // default action (ending the process half-started, without draining). Threads started
  // meanwhile keep them blocked, so they reach this thread.
  sigset_t handled;
  sigemptyset(&handled);
  for (int sig : {SIGHUP, SIGTERM, SIGINT, SIGUSR1}) sigaddset(&handled, sig);
  pthread_sigmask(SIG_BLOCK, &handled, nullptr);

  auto loaded = config::load_file(config_path);
  if (!loaded.config) {
    for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", config::format(e).c_str());
    return 2;
  }
  std::unique_ptr<Server> server;
  try {
    server = std::make_unique<Server>(loaded.config);
    server->start();
  } catch (const std::exception& e) {
    log::error("cannot start: {}", e.what());
    return 1;
  }
  log::info("portcullis started with {} worker(s), config {}", loaded.config->workers, config_path);

  asio::io_context control;
  asio::signal_set signals(control, SIGHUP, SIGTERM, SIGINT);
  signals.add(SIGUSR1);
  std::function<void(const boost::system::error_code&, int)> on_signal;
  on_signal = [&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      auto next = config::load_file(config_path);
      std::vector<std::string> errors;
      std::string why;
      if (!next.config) {
        for (const auto& e : next.errors) errors.push_back(config::format(e));
        server->reload_failed(errors);
      } else if (server->reload(next.config, why, errors)) {
        log::info("configuration and policy reloaded{}{}", why.empty() ? "" : " (",
                  why.empty() ? "" : why + ")");
      }
      if (!errors.empty()) {
        log::error("reload failed, keeping the running configuration and policy:");
        for (const auto& e : errors) log::error("  {}", e);
      }
    } else if (sig == SIGUSR1) {
      server->reopen_logs();
      log::info("log files reopened");
    } else {
      log::info("draining (signal {})", sig);
      server->drain_and_stop();
      control.stop();
      return;
    }
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);
  pthread_sigmask(SIG_UNBLOCK, &handled, nullptr);  // the loop below takes them from here on

  // The policy also reloads when its file or a database it names changes.
  asio::steady_timer watch(control);
  std::function<void(const boost::system::error_code&)> on_watch;
  on_watch = [&](const boost::system::error_code& ec) {
    if (ec) return;
    if (server->engines_changed()) {
      log::info("signature or rule files changed: loading new scanning engines");
      server->reload_engines();
    }
    if (server->policy_changed()) {
      std::vector<std::string> errors;
      if (server->reload_policy(errors)) {
        log::info("policy reloaded (its files changed)");
      } else {
        log::error("policy reload failed, keeping the running policy:");
        for (const auto& e : errors) log::error("  {}", e);
      }
    }
    watch.expires_after(std::chrono::seconds(2));
    watch.async_wait(on_watch);
  };
  watch.expires_after(std::chrono::seconds(2));
  watch.async_wait(on_watch);
  control.run();
  log::info("stopped");
  return 0;
}

}  // namespace pc::app
