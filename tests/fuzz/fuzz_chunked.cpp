// Fuzzes the chunked decoder: decoding in one piece and at arbitrary split points must agree.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "wire/http.h"

using namespace pc::wire;
using pc::wire::fuzz::inside;

namespace {

struct Outcome {
  Status status = Status::incomplete;
  Error error = Error::none;
  std::string payload;
  std::string trailers;
  std::size_t consumed = 0;
  std::uint64_t payload_bytes = 0;
};

// Feeds input in pieces whose sizes come from `splits` (cycled); 0 means "all at once".
Outcome decode(std::string_view in, std::string_view splits, const Limits& lim) {
  ChunkedDecoder dec(lim);
  Outcome out;
  std::string pending;
  std::size_t fed = 0;
  std::size_t split_index = 0;
  for (;;) {
    const ChunkedDecoder::Step s = dec.next(pending);
    FUZZ_CHECK(s.consumed <= pending.size());
    FUZZ_CHECK(inside(s.data, pending));
    if (!s.data.empty()) FUZZ_CHECK(s.data.data() + s.data.size() <= pending.data() + s.consumed);
    FUZZ_CHECK(s.status == Status::error || s.error == Error::none);
    out.payload.append(s.data);
    pending.erase(0, s.consumed);
    out.consumed += s.consumed;
    if (s.status != Status::incomplete) {
      out.status = s.status;
      out.error = s.error;
      break;
    }
    if (s.consumed == 0 && s.data.empty()) {
      // The decoder buffers what it needs: nothing is left unconsumed while incomplete.
      FUZZ_CHECK(pending.empty());
      if (fed == in.size()) break;
      std::size_t n = in.size() - fed;
      if (!splits.empty()) {
        const auto piece = static_cast<unsigned char>(splits[split_index++ % splits.size()]);
        if (piece != 0) n = std::min<std::size_t>(n, piece % 16 + 1);
      }
      pending.append(in.substr(fed, n));
      fed += n;
    }
  }
  out.payload_bytes = dec.payload_bytes();
  if (out.status == Status::complete) out.trailers = dec.trailers();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Layout: 1 byte of limit selection, 4 bytes of split sizes, then the body.
  if (size < 5) return 0;
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  Limits lim;
  if ((data[0] & 1) != 0) {
    lim.max_chunk_size_digits = 4;
    lim.max_field_bytes = 24;
    lim.max_fields = 3;
    lim.max_head_bytes = 64;
  }
  const std::string_view splits = raw.substr(1, 4);
  const std::string_view in = raw.substr(5);

  const Outcome whole = decode(in, {}, lim);
  const Outcome split = decode(in, splits, lim);
  const Outcome bytewise = decode(in, std::string_view("\x10", 1), lim);  // 1-byte pieces
  for (const Outcome* o : {&split, &bytewise}) {
    FUZZ_CHECK(o->status == whole.status);
    FUZZ_CHECK(o->error == whole.error);
    FUZZ_CHECK(o->payload_bytes == o->payload.size());
    // Data before a framing error is delivered whatever the split points.
    FUZZ_CHECK(o->payload == whole.payload);
    if (whole.status != Status::error) {
      FUZZ_CHECK(o->consumed == whole.consumed);
      FUZZ_CHECK(o->trailers == whole.trailers);
    }
  }
  FUZZ_CHECK(whole.consumed <= in.size());
  if (whole.status == Status::incomplete) FUZZ_CHECK(whole.consumed == in.size());
  return 0;
}
