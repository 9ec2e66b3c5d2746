#include "proxy/pages.h"

#include <fmt/format.h>

namespace pc::proxy {

std::string html_escape(std::string_view s) {
  std::string r;
  r.reserve(s.size() + 16);
  for (char c : s) {
    switch (c) {
      case '&':
        r += "&amp;";
        break;
      case '<':
        r += "&lt;";
        break;
      case '>':
        r += "&gt;";
        break;
      case '"':
        r += "&quot;";
        break;
      case '\'':
        r += "&#39;";
        break;
      default:
        r += c;
    }
  }
  return r;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    case 508:
      return "Loop Detected";
    default:
      return "Error";
  }
}

std::string render_page(const Page& p, bool close, bool head_only) {
  std::string body = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width\">"
      "<title>{0}</title><style>body{{font-family:system-ui,sans-serif;margin:3em auto;"
      "max-width:40em;color:#222}}h1{{font-size:1.4em}}dt{{font-weight:bold}}"
      "code{{word-break:break-all}}</style></head><body>\n<h1>{0}</h1>\n<p>{1}</p>\n<dl>\n",
      html_escape(p.title), html_escape(p.message));
  if (!p.url.empty())
    body += fmt::format("<dt>URL</dt><dd><code>{}</code></dd>\n", html_escape(p.url));
  body += fmt::format("<dt>Status</dt><dd>{} {}</dd>\n", p.status, reason_phrase(p.status));
  if (!p.request_id.empty())
    body += fmt::format("<dt>Request ID</dt><dd><code>{}</code></dd>\n", html_escape(p.request_id));
  body +=
      fmt::format("</dl>\n<hr><p><small>{}</small></p>\n</body></html>\n", html_escape(p.gateway));
  std::string out = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n"
      "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n{}\r\n",
      p.status, reason_phrase(p.status), body.size(), close ? "Connection: close\r\n" : "");
  if (!head_only) out += body;
  return out;
}

}  // namespace pc::proxy
