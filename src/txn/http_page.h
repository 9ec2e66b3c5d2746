// The HTTP side of the gateway's own pages: status line and headers around an HTML page
// rendered by pages::Templates.
#pragma once

#include <string>
#include <string_view>

namespace pc::txn {

std::string_view reason_phrase(int status);

// A complete HTTP/1.1 response: Content-Type text/html, Content-Length, Content-Language,
// Cache-Control: no-store, nosniff, the extra header lines given (each ending in CRLF) and,
// when close is set, Connection: close. head_only omits the body (HEAD requests).
std::string http_page(int status, std::string_view html, std::string_view lang, bool close,
                      bool head_only = false, std::string_view extra_headers = {});

}  // namespace pc::txn
