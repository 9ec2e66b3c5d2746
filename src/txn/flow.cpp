#include "txn/flow.h"

#include "base/log.h"
#include "base/strings.h"
#include "txn/worker.h"

namespace pc::txn {

using telemetry::Result;

namespace {

// The value of parameter `name` in the query of path, if present.
std::optional<std::string_view> query_param(std::string_view path, std::string_view name) {
  auto q = path.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view rest = path.substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    auto item = rest.substr(0, amp);
    if (item.size() > name.size() && item.starts_with(name) && item[name.size()] == '=')
      return item.substr(name.size() + 1);
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

// url without the parameter `name`.
std::string without_param(std::string_view url, std::string_view name) {
  auto q = url.find('?');
  if (q == std::string_view::npos) return std::string(url);
  std::string out(url.substr(0, q));
  std::string_view rest = url.substr(q + 1);
  char sep = '?';
  while (!rest.empty()) {
    auto amp = rest.find('&');
    auto item = rest.substr(0, amp);
    if (!(item.starts_with(name) && (item.size() == name.size() || item[name.size()] == '='))) {
      out += sep;
      out.append(item);
      sep = '&';
    }
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return out;
}

// The warn cookie's value among the request's Cookie fields, if present.
std::optional<std::string_view> warn_cookie(const wire::RequestHead& req) {
  std::optional<std::string_view> found;
  for (const auto& field : req.fields) {
    if (!found && base::iequals(field.name, "Cookie"))
      base::for_each_list_item(
          field.value,
          [&](std::string_view pair) {
            if (!found) found = warn_cookie_value(pair);
          },
          ';');
  }
  return found;
}

void record_decision(Exchange& ex) {
  const auto& d = ex.decision;
  ex.rec.decision = std::string(policy::to_string(d.action));
  ex.rec.rule = std::string(d.rule);
  ex.rec.category = std::string(d.category);
  if (ex.rec.category.empty() && ex.facts.categories.count > 0)
    ex.rec.category = std::string(ex.snap->policy->category_name(ex.facts.categories.ids[0]));
  ex.rec.category_source = std::string(d.source);
  ex.rec.reputation = std::string(policy::to_string(ex.facts.reputation));
}

}  // namespace

std::string canonical_url(std::string_view scheme, std::string_view host, std::uint16_t port,
                          std::string_view path) {
  std::string u(scheme);
  u += "://";
  bool v6 = host.find(':') != std::string_view::npos;
  if (v6) u += '[';
  u.append(host);
  if (v6) u += ']';
  if (!((scheme == "http" && port == 80) || (scheme == "https" && port == 443)))
    u += ":" + std::to_string(port);
  u.append(path);
  return u;
}

std::string decision_reason(const Exchange& ex) {
  const auto& d = ex.decision;
  std::string why = d.from_list ? std::string(d.rule) : "rule \"" + std::string(d.rule) + "\"";
  if (!d.condition.empty()) {
    why += " (" + std::string(d.condition);
    if (!d.detail.empty()) why += ": " + std::string(d.detail);
    why += ")";
  }
  return why;
}

bool decide_response(Exchange& ex, const wire::ResponseHead& head) {
  if (const auto* ct = head.find("Content-Type")) {
    ex.content_type = base::to_lower(base::trim(ct->value.substr(0, ct->value.find(';'))));
  }
  ex.facts.content_type = ex.content_type;
  auto d = ex.snap->policy->decide(ex.facts, policy::Phase::response);
  if (d.rule == ex.decision.rule && d.action == ex.decision.action) return true;
  ex.decision = d;
  record_decision(ex);
  switch (d.action) {
    case policy::Action::allow:
    case policy::Action::allow_no_scan:
      return true;
    case policy::Action::monitor:
      ex.rec.reason = "monitored: " + decision_reason(ex);
      return true;
    case policy::Action::block:
    case policy::Action::warn:  // a response cannot be resumed after a warning: refused
      ex.response_blocked = true;
      return false;
  }
  return true;
}

bool decide_request(Exchange& ex, const wire::RequestHead& req, std::string_view scheme,
                    std::uint16_t port, std::string_view path) {
  const bool connect = req.method == "CONNECT";
  auto& f = ex.facts;
  f.user = ex.user;
  f.groups = ex.groups;
  f.method = req.method;
  f.scheme = connect ? "https" : scheme;
  f.host = ex.host;
  f.port = port;
  f.path = connect ? std::string_view("/") : path;
  ex.url = canonical_url(f.scheme, ex.host, port, f.path);
  f.url = ex.url;
  f.request_head = &req;
  f.time = std::chrono::system_clock::now();
  const auto& pol = *ex.snap->policy;
  pol.classify(f);
  ex.decision = pol.decide(f, policy::Phase::request);
  record_decision(ex);

  using policy::Action;
  switch (ex.decision.action) {
    case Action::allow:
    case Action::allow_no_scan:
      return true;
    case Action::monitor:
      ex.rec.reason = "monitored: " + decision_reason(ex);
      return true;
    case Action::block:
      ex.reply = {ex.decision.from_list ? pages::Kind::list_block : pages::Kind::rule_block, 403,
                  Result::denied, "blocked by " + decision_reason(ex)};
      return false;
    case Action::warn:
      break;
  }

  // warn
  if (connect) {
    // A tunnel cannot show a page (browsers do not display a proxy's answer to CONNECT).
    ex.reply = {pages::Kind::rule_block, 403, Result::denied,
                "warn on a tunnel acts as block: " + decision_reason(ex)};
    return false;
  }
  const auto& signer = *ex.snap->warn_signer;
  const auto now = std::chrono::system_clock::now();
  // Accepted before: the cookie set by the redirect below.
  if (auto token = warn_cookie(req)) {
    if (signer.verify(*token, ex.client_text, ex.host, now)) {
      ex.rec.reason = "warning accepted: " + decision_reason(ex);
      return true;
    }
  }
  const auto duration = ex.snap->policy->settings().warn_duration;
  // "Continue" clicked: remember it for this site and go to the URL without the token.
  if (auto token = query_param(path, kContinueParam)) {
    if (signer.verify(*token, ex.client_text, ex.host, now)) {
      std::string target = without_param(ex.url, kContinueParam);
      Reply r{pages::Kind::warn, 302, Result::allowed, "warning accepted: " + decision_reason(ex)};
      r.extra_headers = "Location: " + target + "\r\nSet-Cookie: " + std::string(kWarnCookie) +
                        "=" + std::string(*token) +
                        "; Max-Age=" + std::to_string(duration.count()) +
                        "; Path=/; HttpOnly; SameSite=Lax\r\n";
      r.continue_url = target;
      ex.reply = std::move(r);
      return false;
    }
  }
  std::string token = signer.issue(ex.client_text, ex.host, now + duration);
  std::string base_url = without_param(ex.url, kContinueParam);
  Reply r{pages::Kind::warn, 403, Result::denied, "warned: " + decision_reason(ex)};
  r.continue_url = base_url + (base_url.find('?') == std::string::npos ? "?" : "&") +
                   std::string(kContinueParam) + "=" + token;
  ex.reply = std::move(r);
  return false;
}

Page render_reply(Exchange& ex, const wire::RequestHead* req) {
  Reply& r = ex.reply;
  Page page;
  page.status = r.status != 0 ? r.status : pages::status_for(r.kind, r.dns);
  const auto* al = req ? req->find("Accept-Language") : nullptr;
  const auto lang = pages::negotiate(al ? al->value : std::string_view());
  page.lang = pages::to_string(lang);
  pages::Vars v;
  v.url = ex.rec.url;
  v.host = ex.host;
  v.category = ex.rec.category;
  v.rule = ex.rec.rule;
  v.reason = r.reason;
  v.user = ex.user.empty() ? ex.client_text : ex.user;
  v.time = pages::format_time(std::chrono::system_clock::now());
  v.request_id = ex.rec.request_id;
  v.gateway = ex.cfg().name;
  v.continue_url = std::move(r.continue_url);
  if (const auto* ref = req ? req->find("Referer") : nullptr) v.back_url = std::string(ref->value);
  v.dns = r.dns;
  v.threat = std::move(r.threat);
  v.status = page.status;
  page.html = ex.snap->templates->render(r.kind, lang, v);
  ex.rec.status = page.status;
  ex.rec.result = r.result;
  ex.rec.reason = std::move(r.reason);
  ex.rec.content_type = "text/html";
  return page;
}

namespace {

// How much a scan outcome says about a transaction's risk: which one its record keeps.
int scan_severity(std::string_view verdict) {
  if (verdict == "infected") return 4;
  if (verdict == "unscannable") return 3;
  if (verdict == "error") return 2;
  if (verdict == "not scanned") return 1;
  return 0;  // clean
}

}  // namespace

bool apply_scan(Exchange& ex, const ScanOutcome& o) {
  const bool keep =
      o.block || ex.rec.scan.empty() || scan_severity(o.verdict) >= scan_severity(ex.rec.scan);
  if (keep) {
    ex.rec.scan = o.verdict;
    ex.rec.threat = o.threat ? o.name : "";
    ex.rec.sha256 = o.sha256;
    ex.rec.file_type = o.file_type;
    ex.rec.scan_cached = o.cached;
    ex.rec.scan_engine = o.engine;
    ex.rec.file_name = ex.scan_file_name;
    ex.rec.scanned_size = o.size;
    if (!o.block && !o.reason.empty()) ex.rec.reason = o.reason;
  }
  // Whichever body the record keeps, a scan that failed is an error of the transaction.
  if (o.verdict == "error" && ex.rec.error.empty()) ex.rec.error = o.reason;
  if (!o.block) return true;
  if (o.threat) {
    Reply r{pages::Kind::threat, 403, Result::denied, o.reason};
    r.threat = o.name;
    ex.reply = std::move(r);
  } else {
    ex.reply = {pages::Kind::rule_block, 403, Result::denied, o.reason};
  }
  log::info("{} {} {}: {} (sha256 {}, file \"{}\", {} bytes, type {}, engine {})",
            ex.rec.request_id, ex.rec.client, ex.rec.url, o.reason,
            o.sha256.empty() ? "-" : o.sha256, ex.scan_file_name, o.size,
            o.file_type.empty() ? "-" : o.file_type, o.engine.empty() ? "-" : o.engine);
  return false;
}

void finish(Exchange& ex, Worker& w) {
  ex.rec.duration =
      std::chrono::duration_cast<std::chrono::microseconds>(net::Clock::now() - ex.start);
  if (ex.rec.method.empty()) ex.rec.method = "-";
  if (ex.rec.status >= 500 && ex.rec.result == Result::allowed) ex.rec.result = Result::error;
  if (ex.rec.result == Result::error && ex.rec.error.empty()) ex.rec.error = ex.rec.reason;
  log::debug("{} {} {} {} {}", ex.rec.client, ex.rec.method, ex.rec.url, ex.rec.status,
             ex.rec.reason);
  w.metrics().transaction(ex.rec);
  w.shared.access_log.submit(std::move(ex.rec));
}

}  // namespace pc::txn
