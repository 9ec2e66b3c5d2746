#include "app/server.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <fstream>
#include <random>

#include "base/log.h"
#include "txn/snapshot.h"

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
    if (x.name != y.name || x.address != y.address || x.port != y.port || x.guest != y.guest)
      return false;
  }
  return true;
}
}  // namespace

Server::Server(std::shared_ptr<const config::Config> cfg) : configured_(cfg), cfg_(std::move(cfg)) {
  log::set_level(cfg_->log_level);
  access_log_ = std::make_unique<telemetry::AccessLog>(cfg_->access_log_path, log_format(*cfg_));
  shared_ = std::make_unique<proxy::Shared>(*access_log_);
  shared_->id_prefix = random_prefix();
  auto snap = txn::make_snapshot(cfg_, ++generation_);
  for (unsigned i = 0; i < cfg_->workers; ++i)
    workers_.push_back(std::make_unique<proxy::Worker>(*shared_, i, snap));
}

Server::~Server() {
  if (!stopped_) {
    for (auto& w : workers_) w->io.stop();
    for (auto& t : threads_) t.join();
  }
  release();
}

void Server::release() {
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
      auto lis = std::make_unique<proxy::Listener>(*workers_[wi], l, port);
      port = lis->port();  // port 0: the others join the port the first one got
      listeners_[wi].push_back(std::move(lis));
    }
    ports_.push_back(port);
    log::info("listening on {} port {}{}", l.address, port, l.guest ? " (guest)" : "");
  }
  // Ports bound as 0 are known only now: rebuild the snapshot so is_self() knows them.
  auto copy = std::make_shared<config::Config>(*cfg_);
  for (std::size_t i = 0; i < copy->listeners.size(); ++i) copy->listeners[i].port = ports_[i];
  cfg_ = copy;
  auto snap = txn::make_snapshot(cfg_, ++generation_);
  for (auto& w : workers_) w->apply(snap);

  for (std::size_t wi = 0; wi < workers_.size(); ++wi) {
    for (auto& l : listeners_[wi]) l->start();
    auto* w = workers_[wi].get();
    threads_.emplace_back([w] {
      auto guard = asio::make_work_guard(w->io);
      w->io.run();
    });
  }
}

void Server::reload(std::shared_ptr<const config::Config> loaded, std::string& why) {
  why.clear();
  if (!same_listeners(*configured_, *loaded))
    why = "listener and worker changes take effect after a restart";
  if (loaded->access_log_path != cfg_->access_log_path)
    why += std::string(why.empty() ? "" : "; ") +
           "access_log.path changes take effect after a restart";
  // What cannot change while running is kept as it runs (port-0 listeners keep their ports).
  auto cfg = std::make_shared<config::Config>(*loaded);
  cfg->listeners = cfg_->listeners;
  cfg->workers = cfg_->workers;
  cfg->access_log_path = cfg_->access_log_path;
  log::set_level(cfg->log_level);
  access_log_->set_format(log_format(*cfg));
  cfg_ = cfg;
  auto snap = txn::make_snapshot(cfg_, ++generation_);
  for (auto& w : workers_) asio::post(w->io, [w = w.get(), snap] { w->apply(snap); });
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
  while (shared_->connections.load() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (shared_->connections.load() > 0)
    log::warn("drain timeout: closing {} connection(s)", shared_->connections.load());
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
      if (!next.config) {
        log::error("reload failed, keeping the running configuration:");
        for (const auto& e : next.errors) log::error("  {}", config::format(e));
      } else {
        std::string why;
        server->reload(next.config, why);
        log::info("configuration reloaded{}{}", why.empty() ? "" : " (",
                  why.empty() ? "" : why + ")");
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
  control.run();
  log::info("stopped");
  return 0;
}

}  // namespace pc::app
