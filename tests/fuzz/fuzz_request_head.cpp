// Fuzzes request head parsing, target splitting and request analysis.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "wire/http.h"

using namespace pc::wire;
using pc::wire::fuzz::inside;

namespace {

void check(std::string_view in, const Limits& lim) {
  RequestHead head;
  const ParseResult r = parse_request_head(in, lim, head);
  switch (r.status) {
    case Status::incomplete:
      FUZZ_CHECK(r.error == Error::none);
      FUZZ_CHECK(in.size() <= lim.max_head_bytes);
      break;
    case Status::error:
      FUZZ_CHECK(r.error != Error::none);
      FUZZ_CHECK(r.error_offset < in.size());
      FUZZ_CHECK(head.fields.empty());
      break;
    case Status::complete: {
      FUZZ_CHECK(r.consumed <= in.size() && r.consumed <= lim.max_head_bytes);
      FUZZ_CHECK(head.raw_size <= r.consumed);
      const std::string_view bytes = head.bytes();
      FUZZ_CHECK(bytes == in.substr(r.consumed - head.raw_size, head.raw_size));
      FUZZ_CHECK(bytes.size() >= 4 && bytes.substr(bytes.size() - 4) == "\r\n\r\n");
      FUZZ_CHECK(inside(head.method, bytes) && !head.method.empty());
      FUZZ_CHECK(inside(head.target, bytes) && !head.target.empty());
      FUZZ_CHECK(head.target.size() <= lim.max_url_bytes);
      FUZZ_CHECK(head.fields.size() <= lim.max_fields);
      FUZZ_CHECK(head.version_minor == 0 || head.version_minor == 1);
      for (const Field& f : head.fields) {
        FUZZ_CHECK(inside(f.name, bytes) && inside(f.value, bytes) && !f.name.empty());
        FUZZ_CHECK(f.name.size() + f.value.size() < lim.max_field_bytes);
      }
      Target target;
      if (parse_target(head.method, head.target, target) == Error::none) {
        FUZZ_CHECK(inside(target.scheme, head.target));
        FUZZ_CHECK(inside(target.host, head.target));
        FUZZ_CHECK(inside(target.path, head.target) || target.path == "/");
        MessageInfo info;
        const Error e = analyze_request(head, target, info);
        if (e == Error::none) {
          FUZZ_CHECK(info.body != BodyKind::until_close);
          for (std::string_view opt : info.connection_options) FUZZ_CHECK(inside(opt, bytes));
          // A handshake passed on is a bodiless HTTP/1.1 GET asking for an upgrade.
          if (websocket_upgrade(head, info))
            FUZZ_CHECK(info.upgrade && head.method == "GET" && head.version_minor == 1 &&
                       info.content_length == 0 && info.body != BodyKind::chunked);
        }
      }
      // The same bytes alone parse identically.
      RequestHead again;
      const ParseResult r2 = parse_request_head(in.substr(0, r.consumed), lim, again);
      FUZZ_CHECK(r2.status == Status::complete && r2.consumed == r.consumed);
      FUZZ_CHECK(again.fields.size() == head.fields.size());
      FUZZ_CHECK(again.target == head.target);
      break;
    }
  }
  // Any proper prefix is incomplete or fails the same way; it never completes differently.
  const std::size_t end = r.status == Status::complete ? r.consumed : in.size();
  for (std::size_t k : {end / 2, end / 3, end > 0 ? end - 1 : 0}) {
    if (k >= end) continue;
    RequestHead part;
    const ParseResult p = parse_request_head(in.substr(0, k), lim, part);
    FUZZ_CHECK(p.status != Status::complete);
    if (p.status == Status::error) FUZZ_CHECK(r.status == Status::error && p.error == r.error);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  check(in, Limits{});
  Limits tight;
  tight.max_head_bytes = 200;
  tight.max_fields = 4;
  tight.max_field_bytes = 40;
  tight.max_url_bytes = 24;
  check(in, tight);
  return 0;
}
