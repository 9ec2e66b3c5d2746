#include "txn/http_page.h"

#include <fmt/format.h>

namespace pc::txn {

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 302:
      return "Found";
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

std::string http_page(int status, std::string_view html, std::string_view lang, bool close,
                      bool head_only, std::string_view extra_headers) {
  std::string out = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n"
      "Content-Language: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
      "{}{}\r\n",
      status, reason_phrase(status), html.size(), lang, extra_headers,
      close ? "Connection: close\r\n" : "");
  if (!head_only) out.append(html);
  return out;
}

}  // namespace pc::txn
