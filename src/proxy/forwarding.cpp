#include "proxy/forwarding.h"

#include <fmt/format.h>

#include <algorithm>

#include "base/strings.h"

namespace pc::proxy {
namespace {

bool named_in(const std::vector<std::string_view>& options, std::string_view name) {
  for (auto o : options)
    if (base::iequals(o, name)) return true;
  return false;
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out += ": ";
  out.append(value);
  out += "\r\n";
}

// All values of a (list-valued) field joined with ", ".
std::string joined(const wire::Head& h, std::string_view name) {
  std::string v;
  for (const auto& f : h.fields) {
    if (!base::iequals(f.name, name) || f.value.empty()) continue;
    if (!v.empty()) v += ", ";
    v.append(f.value);
  }
  return v;
}

std::string via_value(const wire::Head& h, int version_minor, std::string_view name) {
  std::string v = joined(h, "Via");
  if (!v.empty()) v += ", ";
  v += version_minor == 0 ? "1.0 " : "1.1 ";
  v.append(name);
  return v;
}

}  // namespace

bool via_has_loop(const wire::RequestHead& req, std::string_view name) {
  bool loop = false;
  for (const auto& f : req.fields) {
    if (!base::iequals(f.name, "Via")) continue;
    base::for_each_list_item(f.value, [&](std::string_view item) {
      // received-protocol SP received-by [ SP comment ]
      auto sp = item.find(' ');
      if (sp == std::string_view::npos) return;
      auto by = base::trim(item.substr(sp + 1));
      by = by.substr(0, by.find(' '));
      if (base::iequals(by, name)) loop = true;
    });
  }
  return loop;
}

bool goes_direct(const config::Config& cfg, std::string_view host) {
  if (auto ip = base::parse_ip(host)) {  // an address matches only itself, never as a "subdomain"
    for (const auto& d : cfg.direct_domains)
      if (auto dip = base::parse_ip(d); dip && *dip == *ip) return true;
    return false;
  }
  for (const auto& d : cfg.direct_domains)
    if (base::domain_matches(host, d)) return true;
  return false;
}

std::string options_reply() {
  return "HTTP/1.1 200 OK\r\nAllow: GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, CONNECT, "
         "PATCH\r\n"
         "Content-Length: 0\r\n\r\n";
}

std::string trace_reply(const wire::RequestHead& req) {
  std::string body = fmt::format("{} {} HTTP/1.{}\r\n", req.method, req.target, req.version_minor);
  for (const auto& f : req.fields) {
    if (base::iequals(f.name, "Authorization") || base::iequals(f.name, "Proxy-Authorization") ||
        base::iequals(f.name, "Cookie"))
      continue;
    append_field(body, f.name, f.value);
  }
  body += "\r\n";
  return fmt::format(
      "HTTP/1.1 200 OK\r\nContent-Type: message/http\r\nContent-Length: {}\r\n\r\n{}", body.size(),
      body);
}

std::string base64(std::string_view in) {
  static constexpr char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += tbl[v & 63];
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += i + 1 < in.size() ? tbl[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

namespace {
void append_parent_auth(std::string& out, const config::Parent& p) {
  if (p.username.empty()) return;
  append_field(out, "Proxy-Authorization", "Basic " + base64(p.username + ":" + p.password));
}
}  // namespace

std::string connect_request(std::string_view authority, const config::Parent& parent) {
  std::string out = fmt::format("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n", authority);
  append_parent_auth(out, parent);
  out += "\r\n";
  return out;
}

std::string upstream_request_head(const wire::RequestHead& req, const wire::Target& target,
                                  const wire::MessageInfo& info, const config::Config& cfg,
                                  std::string_view client_addr, const config::Parent* parent,
                                  bool drop_expect) {
  std::string out;
  out.reserve(req.raw_size + 128);
  out.append(req.method);
  out += ' ';
  if (parent)
    out.append(req.target);  // absolute-form to a parent
  else
    out.append(target.path);
  out += " HTTP/1.1\r\n";

  if (auto* h = req.find("Host")) {
    append_field(out, "Host", h->value);
  } else {
    bool v6 = target.host.find(':') != std::string_view::npos;
    std::string host = v6 ? "[" + std::string(target.host) + "]" : std::string(target.host);
    if (target.port_explicit) host += ":" + std::to_string(target.port);
    append_field(out, "Host", host);
  }

  const bool max_fwd = req.method == "OPTIONS" || req.method == "TRACE";
  for (const auto& f : req.fields) {
    const auto n = f.name;
    if (wire::is_hop_by_hop(n) || named_in(info.connection_options, n) ||
        base::iequals(n, "Host") || base::iequals(n, "Via") ||
        base::iequals(n, "X-Forwarded-For") || base::iequals(n, "Content-Length") ||
        (drop_expect && base::iequals(n, "Expect")))
      continue;
    if (base::iequals(n, "Cookie") && f.value.find(kWarnCookie) != std::string_view::npos) {
      // Drop the gateway's own cookie; keep the others in order.
      std::string kept;
      base::for_each_list_item(
          f.value,
          [&](std::string_view pair) {
            if (warn_cookie_value(pair)) return;
            if (!kept.empty()) kept += "; ";
            kept.append(pair);
          },
          ';');
      if (!kept.empty()) append_field(out, n, kept);
      continue;
    }
    if (max_fwd && base::iequals(n, "Max-Forwards")) {
      std::uint64_t v = 0;
      if (base::parse_u64(f.value, v) && v > 0)
        append_field(out, n, std::to_string(v - 1));
      else
        append_field(out, n, f.value);
      continue;
    }
    append_field(out, n, f.value);
  }
  append_field(out, "Via", via_value(req, req.version_minor, cfg.name));
  switch (cfg.x_forwarded_for) {
    case config::XffMode::add: {
      std::string v = joined(req, "X-Forwarded-For");
      if (!v.empty()) v += ", ";
      v.append(client_addr);
      append_field(out, "X-Forwarded-For", v);
      break;
    }
    case config::XffMode::keep: {
      std::string v = joined(req, "X-Forwarded-For");
      if (!v.empty()) append_field(out, "X-Forwarded-For", v);
      break;
    }
    case config::XffMode::remove:
      break;
  }
  if (info.body == wire::BodyKind::length)
    append_field(out, "Content-Length", std::to_string(info.content_length));
  else if (info.body == wire::BodyKind::chunked)
    append_field(out, "Transfer-Encoding", "chunked");
  if (wire::websocket_upgrade(req, info)) {
    append_field(out, "Connection", "Upgrade");
    append_field(out, "Upgrade", "websocket");
  }
  if (parent) append_parent_auth(out, *parent);
  out += "\r\n";
  return out;
}

std::string response_head_for_client(const wire::ResponseHead& head, const wire::MessageInfo& info,
                                     bool rechunk, bool keep_alive, std::string_view name,
                                     bool interim, bool client10) {
  std::string out;
  out.reserve(head.raw_size + 96);
  out += fmt::format("HTTP/1.1 {} ", head.status);
  out.append(head.reason);
  out += "\r\n";
  const bool bodyless = info.body == wire::BodyKind::none;
  for (const auto& f : head.fields) {
    const auto n = f.name;
    if (wire::is_hop_by_hop(n) || named_in(info.connection_options, n) || base::iequals(n, "Via"))
      continue;
    // Content-Length is re-stated below for bodies; for HEAD and 304 it describes the
    // representation and is passed on as it is.
    if (base::iequals(n, "Content-Length") && (!bodyless || interim)) continue;
    append_field(out, n, f.value);
  }
  if (interim) {
    out += "\r\n";
    return out;
  }
  append_field(out, "Via", via_value(head, head.version_minor, name));
  if (info.body == wire::BodyKind::length)
    append_field(out, "Content-Length", std::to_string(info.content_length));
  else if (rechunk)
    append_field(out, "Transfer-Encoding", "chunked");
  if (!keep_alive)
    append_field(out, "Connection", "close");
  else if (client10)
    append_field(out, "Connection", "keep-alive");
  out += "\r\n";
  return out;
}

std::string switching_head_for_client(const wire::ResponseHead& head, const wire::MessageInfo& info,
                                      std::string_view name) {
  std::string out = response_head_for_client(head, info, false, true, name, true);
  out.resize(out.size() - 2);  // the end of the head, restated below
  append_field(out, "Via", via_value(head, head.version_minor, name));
  append_field(out, "Connection", "Upgrade");
  append_field(out, "Upgrade", "websocket");
  out += "\r\n";
  return out;
}

std::string media_type(std::string_view content_type) {
  return base::to_lower(base::trim(content_type.substr(0, content_type.find(';'))));
}

std::string mime_wrapper(std::string_view content_type) {
  if (!media_type(content_type).starts_with("multipart/")) return {};
  bool boundary = false;
  base::for_each_list_item(
      content_type.substr(content_type.find(';') + 1),
      [&](std::string_view param) {
        auto eq = param.find('=');
        if (eq != std::string_view::npos &&
            base::iequals(base::trim(param.substr(0, eq)), "boundary") &&
            !base::trim(param.substr(eq + 1)).empty())
          boundary = true;
      },
      ';');
  if (!boundary) return {};
  std::string out = "MIME-Version: 1.0\r\nContent-Type: ";
  out.append(content_type);
  out += "\r\n\r\n";
  return out;
}

std::uint64_t trickle_holdback(std::uint64_t announced_length) {
  return std::max<std::uint64_t>(kTrickleHoldBack, announced_length / 8);
}

}  // namespace pc::proxy
