#include "app/server.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <fstream>
#include <random>

#include "base/log.h"
#include "icap/session.h"
#include "proxy/session.h"
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
  auto snap = txn::build_snapshot(cfg_, ++generation_, errors);
  if (!snap) {
    std::string all;
    for (const auto& e : errors) all += "\n  " + e;
    throw std::runtime_error("invalid configuration:" + all);
  }
  scan_ = std::make_unique<txn::ScanService>(cfg_->scan.threads, cfg_->scan.queue,
                                             cfg_->scan.cache_entries);
  shared_->scan = scan_.get();
  snap = txn::with_engines(*snap, load_engines_logged(cfg_->scan), generation_);
  current_ = snap;
  remember_inputs();
  if (cfg_->has_protocol(config::Protocol::icaps)) {
    const auto& ic = cfg_->icap;
    auto err = tls::ensure_self_signed(ic.tls_certificate, ic.tls_key, cfg_->name);
    if (!err.empty()) throw std::runtime_error("ICAPS certificate: " + err);
    icap_tls_ = tls::make_server_context(ic.tls_certificate, ic.tls_key, ic.tls_client_ca);
    log::info("ICAPS certificate: {}", tls::describe_certificate(ic.tls_certificate));
  }
  for (unsigned i = 0; i < cfg_->workers; ++i)
    workers_.push_back(std::make_unique<txn::Worker>(*shared_, i, snap));
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
  auto e = txn::load_engines(scan);
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
  publish(txn::with_engines(*current_, load_engines_logged(cfg_->scan), ++generation_), false);
}

void Server::release() {
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
    log::info("listening on {} port {} ({}{})", l.address, port, config::to_string(l.protocol),
              l.guest ? ", guest" : "");
  }
  // Ports bound as 0 are known only now: rebuild the snapshot so is_self() knows them.
  auto copy = std::make_shared<config::Config>(*cfg_);
  for (std::size_t i = 0; i < copy->listeners.size(); ++i) copy->listeners[i].port = ports_[i];
  cfg_ = copy;
  publish(txn::with_config(*current_, cfg_, ++generation_), true);

  for (std::size_t wi = 0; wi < workers_.size(); ++wi) {
    for (auto& l : listeners_[wi]) l->start();
    auto* w = workers_[wi].get();
    threads_.emplace_back([w] {
      auto guard = asio::make_work_guard(w->io);
      w->io.run();
    });
  }
}

void Server::publish(std::shared_ptr<const txn::Snapshot> snap, bool before_start) {
  current_ = snap;
  remember_inputs();
  if (before_start) {
    for (auto& w : workers_) w->apply(snap);
    return;
  }
  for (auto& w : workers_) asio::post(w->io, [w = w.get(), snap] { w->apply(snap); });
}

void Server::remember_inputs() {
  inputs_.clear();
  for (const auto& p : current_->policy->inputs()) {
    std::error_code ec;
    inputs_.emplace_back(p, std::filesystem::last_write_time(p, ec));
  }
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
  std::vector<policy::LoadError> perrs;
  auto pol = policy::Policy::load_file(cfg_->policy_file, perrs);
  for (const auto& e : perrs) errors.push_back(policy::format(e));
  if (!pol) {
    remember_inputs();  // do not retry until the files change again
    return false;
  }
  publish(txn::with_policy(*current_, std::move(pol), ++generation_), false);
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
  restart_note(loaded->name != cfg_->name, "gateway.name (in log records)");
  if (loaded->scan.threads != cfg_->scan.threads || loaded->scan.queue != cfg_->scan.queue ||
      loaded->scan.cache_entries != cfg_->scan.cache_entries)
    why += std::string(why.empty() ? "" : "; ") +
           "scan.threads, scan.queue and scan.cache_entries changes take effect after a restart";
  // What cannot change while running is kept as it runs (port-0 listeners keep their ports).
  auto cfg = std::make_shared<config::Config>(*loaded);
  cfg->listeners = cfg_->listeners;
  cfg->workers = cfg_->workers;
  cfg->access_log_path = cfg_->access_log_path;
  cfg->security_log_path = cfg_->security_log_path;
  cfg->syslog = cfg_->syslog;
  auto snap = txn::build_snapshot(cfg, ++generation_, errors);
  if (!snap) return false;                           // the running configuration and policy stay
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

int run_main(const std::string& config_path) {
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
