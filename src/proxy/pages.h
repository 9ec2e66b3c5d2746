// Local replies: small HTML pages the gateway answers with itself (errors, refusals, the
// page for requests addressed to the proxy). Everything taken from a request is escaped.
#pragma once

#include <string>
#include <string_view>

namespace pc::proxy {

std::string html_escape(std::string_view s);

std::string_view reason_phrase(int status);

struct Page {
  int status = 500;
  std::string title;    // e.g. "Request blocked"
  std::string message;  // one sentence for the person who sees it
  std::string url;      // what was asked for (may be empty)
  std::string request_id;
  std::string gateway;  // gateway name
};

// A complete HTTP/1.1 response (head + HTML body) with Content-Length, Cache-Control:
// no-store and, when close is set, Connection: close. head_only omits the body (HEAD).
std::string render_page(const Page& p, bool close, bool head_only = false);

}  // namespace pc::proxy
