// Fuzzes response head parsing and response framing.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "wire/http.h"

using namespace pc::wire;
using pc::wire::fuzz::inside;

namespace {

void check(std::string_view in, const Limits& lim) {
  ResponseHead head;
  const ParseResult r = parse_response_head(in, lim, head);
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
      FUZZ_CHECK(head.raw_size == r.consumed);
      const std::string_view bytes = head.bytes();
      FUZZ_CHECK(bytes == in.substr(0, r.consumed));
      FUZZ_CHECK(head.status >= 100 && head.status <= 599);
      FUZZ_CHECK(inside(head.reason, bytes));
      FUZZ_CHECK(head.fields.size() <= lim.max_fields);
      for (const Field& f : head.fields)
        FUZZ_CHECK(inside(f.name, bytes) && inside(f.value, bytes) && !f.name.empty());
      for (std::string_view method : {"GET", "HEAD", "CONNECT", "POST"}) {
        MessageInfo info;
        const Error e = analyze_response(head, method, info);
        if (e != Error::none) continue;
        if (method == "HEAD" || head.status < 200 || head.status == 204 || head.status == 304)
          FUZZ_CHECK(info.body == BodyKind::none);
        if (info.body == BodyKind::until_close) FUZZ_CHECK(!info.keep_alive);
        for (std::string_view opt : info.connection_options) FUZZ_CHECK(inside(opt, bytes));
        if (websocket_accepted(head, info))
          FUZZ_CHECK(head.status == 101 && info.upgrade && info.body == BodyKind::none);
      }
      break;
    }
  }
  const std::size_t end = r.status == Status::complete ? r.consumed : in.size();
  for (std::size_t k : {end / 2, end > 0 ? end - 1 : 0}) {
    if (k >= end) continue;
    ResponseHead part;
    const ParseResult p = parse_response_head(in.substr(0, k), lim, part);
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
  check(in, tight);
  return 0;
}
