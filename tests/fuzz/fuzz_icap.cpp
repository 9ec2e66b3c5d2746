// Fuzzes the ICAP codec: request and response heads, Encapsulated, the encapsulated HTTP
// heads, the chunked body with ieof, and parse-build-parse round trips.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "wire/icap.h"

using namespace pc::wire;
using pc::wire::fuzz::inside;

namespace {

struct BodyOutcome {
  Status status = Status::incomplete;
  IcapError error = IcapError::none;
  Error detail = Error::none;
  std::string payload;
  std::size_t consumed = 0;
  bool ieof = false;
};

// Decodes in pieces of `piece` bytes (0: all at once).
BodyOutcome decode(std::string_view in, std::size_t piece, const Limits& lim,
                   std::optional<std::uint64_t> preview) {
  IcapChunkedDecoder dec(lim, preview);
  BodyOutcome out;
  std::string pending;
  std::size_t fed = 0;
  for (;;) {
    const IcapChunkedDecoder::Step s = dec.next(pending);
    FUZZ_CHECK(s.consumed <= pending.size());
    FUZZ_CHECK(inside(s.data, pending));
    FUZZ_CHECK(s.status == Status::error || s.error == IcapError::none);
    FUZZ_CHECK(s.status != Status::error || s.error != IcapError::none);
    out.payload.append(s.data);
    pending.erase(0, s.consumed);
    out.consumed += s.consumed;
    if (s.status != Status::incomplete) {
      out.status = s.status;
      out.error = s.error;
      out.detail = s.detail;
      break;
    }
    if (s.consumed == 0 && s.data.empty()) {
      FUZZ_CHECK(pending.empty());
      if (fed == in.size()) break;
      const std::size_t n = piece == 0 ? in.size() - fed : std::min(piece, in.size() - fed);
      pending.append(in.substr(fed, n));
      fed += n;
    }
  }
  FUZZ_CHECK(dec.payload_bytes() == out.payload.size());
  if (preview) FUZZ_CHECK(out.payload.size() <= *preview);
  out.ieof = out.status == Status::complete && dec.ieof();
  return out;
}

void check_body(std::string_view in, const Limits& lim, std::optional<std::uint64_t> preview) {
  const BodyOutcome whole = decode(in, 0, lim, preview);
  for (std::size_t piece : {std::size_t{1}, std::size_t{3}}) {
    const BodyOutcome o = decode(in, piece, lim, preview);
    FUZZ_CHECK(o.status == whole.status && o.error == whole.error && o.detail == whole.detail);
    FUZZ_CHECK(o.payload == whole.payload);
    FUZZ_CHECK(o.ieof == whole.ieof);
    if (whole.status != Status::error) FUZZ_CHECK(o.consumed == whole.consumed);
  }
  FUZZ_CHECK(whole.consumed <= in.size());
}

void check_encapsulated(const Encapsulated& enc, const IcapLimits& lim) {
  if (!enc.present) {
    FUZZ_CHECK(enc.body_offset == 0 && !enc.req_hdr && !enc.res_hdr && !enc.has_body());
    return;
  }
  FUZZ_CHECK(enc.body_offset <= lim.max_encapsulated_bytes);
  FUZZ_CHECK(enc.req_hdr_size() + enc.res_hdr_size() == enc.body_offset);
  if (enc.req_hdr) FUZZ_CHECK(*enc.req_hdr == 0 && enc.req_hdr_size() > 0);
  if (enc.res_hdr) FUZZ_CHECK(enc.res_hdr_size() > 0 && *enc.res_hdr < enc.body_offset);
  if (!enc.req_hdr && !enc.res_hdr) FUZZ_CHECK(enc.body_offset == 0);
}

bool same_encapsulated(const Encapsulated& a, const Encapsulated& b) {
  return a.req_hdr == b.req_hdr && a.res_hdr == b.res_hdr && a.body == b.body &&
         a.body_offset == b.body_offset;
}

// Parses the encapsulated heads after a head of `head_size` bytes; returns the bytes of the
// heads (empty when absent) or nullopt when they did not parse.
struct Parts {
  std::string req_hdr;
  std::string res_hdr;
  std::size_t consumed = 0;
};
std::optional<Parts> check_heads(const Encapsulated& enc, std::string_view section,
                                 const IcapLimits& lim) {
  EncapsulatedHeads heads;
  const IcapParseResult r = parse_encapsulated_heads(enc, section, lim.http, heads);
  switch (r.status) {
    case Status::incomplete:
      FUZZ_CHECK(section.size() < enc.body_offset);
      return std::nullopt;
    case Status::error:
      FUZZ_CHECK(r.error == IcapError::bad_http_head || r.error == IcapError::http_head_length);
      FUZZ_CHECK(r.error_offset < section.size() && r.error_offset < enc.body_offset);
      return std::nullopt;
    case Status::complete:
      break;
  }
  FUZZ_CHECK(r.consumed == enc.body_offset);
  FUZZ_CHECK(heads.has_request == enc.req_hdr.has_value());
  FUZZ_CHECK(heads.has_response == enc.res_hdr.has_value());
  Parts p;
  p.consumed = r.consumed;
  if (heads.has_request) {
    FUZZ_CHECK(heads.request.bytes() == section.substr(*enc.req_hdr, enc.req_hdr_size()));
    p.req_hdr = heads.request.bytes();
  }
  if (heads.has_response) {
    FUZZ_CHECK(heads.response.bytes() == section.substr(*enc.res_hdr, enc.res_hdr_size()));
    p.res_hdr = heads.response.bytes();
  }
  return p;
}

void check_request(std::string_view in, const IcapLimits& lim) {
  IcapRequestHead head;
  const IcapParseResult r = parse_icap_request_head(in, lim, head);
  // No proper prefix completes; one that fails, fails the same way.
  const std::size_t end = r.status == Status::complete ? r.consumed : in.size();
  for (std::size_t k : {end / 2, end > 0 ? end - 1 : 0}) {
    if (k >= end) continue;
    IcapRequestHead part;
    const IcapParseResult p = parse_icap_request_head(in.substr(0, k), lim, part);
    FUZZ_CHECK(p.status != Status::complete);
    if (p.status == Status::error) FUZZ_CHECK(r.status == Status::error && p.error == r.error);
  }
  switch (r.status) {
    case Status::incomplete:
      FUZZ_CHECK(r.error == IcapError::none && in.size() <= lim.max_head_bytes);
      return;
    case Status::error:
      FUZZ_CHECK(r.error != IcapError::none && r.error_offset < in.size());
      FUZZ_CHECK(head.fields.empty() && head.raw_size == 0);
      return;
    case Status::complete:
      break;
  }
  const std::string_view bytes = head.bytes();
  FUZZ_CHECK(r.consumed <= in.size() && r.consumed <= lim.max_head_bytes);
  FUZZ_CHECK(bytes == in.substr(0, r.consumed));
  FUZZ_CHECK(bytes.size() >= 4 && bytes.substr(bytes.size() - 4) == "\r\n\r\n");
  FUZZ_CHECK(head.method_name == icap_method_name(head.method));
  FUZZ_CHECK(inside(head.uri, bytes) && head.uri.size() <= lim.max_uri_bytes);
  FUZZ_CHECK(inside(head.target.host, head.uri) && inside(head.target.service, head.uri));
  FUZZ_CHECK(inside(head.target.query, head.uri) && !head.target.service.empty());
  FUZZ_CHECK(head.fields.size() <= lim.max_fields);
  for (const Field& f : head.fields) FUZZ_CHECK(inside(f.name, bytes) && inside(f.value, bytes));
  if (head.preview) FUZZ_CHECK(*head.preview <= lim.max_preview);
  check_encapsulated(head.encapsulated, lim);
  if (head.method != IcapMethod::options) FUZZ_CHECK(head.encapsulated.present);

  const std::string_view section = in.substr(r.consumed);
  const std::optional<Parts> parts = check_heads(head.encapsulated, section, lim);
  if (!parts) return;
  if (head.encapsulated.has_body())
    check_body(section.substr(parts->consumed), lim.http, head.preview);

  // Build the same request from what was parsed and parse it again.
  std::vector<Field> fields;
  for (const Field& f : head.fields)
    if (!iequals(f.name, "encapsulated")) fields.push_back(f);
  IcapParts build;
  build.fields = fields;
  build.req_hdr = parts->req_hdr;
  build.res_hdr = parts->res_hdr;
  build.body = head.encapsulated.body;
  std::string out;
  FUZZ_CHECK(append_icap_request(out, head.method, head.uri, build));
  IcapLimits roomy = lim;
  roomy.max_head_bytes = out.size();
  roomy.max_fields = fields.size() + 1;
  roomy.max_field_bytes = std::max<std::size_t>(lim.max_field_bytes, 64);
  IcapRequestHead again;
  const IcapParseResult r2 = parse_icap_request_head(out, roomy, again);
  FUZZ_CHECK(r2.status == Status::complete);
  FUZZ_CHECK(again.method == head.method && again.uri == head.uri);
  FUZZ_CHECK(again.fields.size() == fields.size() + 1);
  FUZZ_CHECK(again.preview == head.preview && again.allow_204 == head.allow_204 &&
             again.allow_206 == head.allow_206 && again.connection_close == head.connection_close);
  FUZZ_CHECK(same_encapsulated(again.encapsulated, head.encapsulated));
  const std::optional<Parts> parts2 =
      check_heads(again.encapsulated, std::string_view(out).substr(r2.consumed), roomy);
  FUZZ_CHECK(parts2 && parts2->req_hdr == parts->req_hdr && parts2->res_hdr == parts->res_hdr);
  FUZZ_CHECK(r2.consumed + parts2->consumed == out.size());
}

void check_response(std::string_view in, const IcapLimits& lim, IcapMethod method) {
  IcapResponseHead head;
  const IcapParseResult r = parse_icap_response_head(in, lim, method, head);
  switch (r.status) {
    case Status::incomplete:
      FUZZ_CHECK(r.error == IcapError::none && in.size() <= lim.max_head_bytes);
      return;
    case Status::error:
      FUZZ_CHECK(r.error != IcapError::none && r.error_offset < in.size());
      FUZZ_CHECK(head.fields.empty());
      return;
    case Status::complete:
      break;
  }
  const std::string_view bytes = head.bytes();
  FUZZ_CHECK(bytes == in.substr(0, r.consumed));
  FUZZ_CHECK(head.status >= 100 && head.status <= 599);
  FUZZ_CHECK(inside(head.reason, bytes) && inside(head.istag, bytes));
  check_encapsulated(head.encapsulated, lim);
  if (head.status == 100 || head.status == 204) FUZZ_CHECK(head.encapsulated.body_offset == 0);
  const std::optional<Parts> parts = check_heads(head.encapsulated, in.substr(r.consumed), lim);
  if (!parts || head.status < 200) return;

  // Rebuild with a fixed ISTag; the result must parse to the same Encapsulated.
  std::vector<Field> fields;
  for (const Field& f : head.fields)
    if (!iequals(f.name, "encapsulated") && !iequals(f.name, "istag")) fields.push_back(f);
  IcapParts build;
  build.fields = fields;
  build.req_hdr = parts->req_hdr;
  build.res_hdr = parts->res_hdr;
  build.body = head.encapsulated.body;
  std::string out;
  FUZZ_CHECK(append_icap_response(out, head.status, "fuzz", method, build, head.reason));
  IcapLimits roomy = lim;
  roomy.max_head_bytes = out.size();
  roomy.max_fields = fields.size() + 2;
  roomy.max_field_bytes = std::max<std::size_t>(lim.max_field_bytes, 64);
  IcapResponseHead again;
  const IcapParseResult r2 = parse_icap_response_head(out, roomy, method, again);
  FUZZ_CHECK(r2.status == Status::complete);
  FUZZ_CHECK(again.status == head.status && again.istag == "\"fuzz\"");
  FUZZ_CHECK(again.fields.size() == fields.size() + 2);
  FUZZ_CHECK(same_encapsulated(again.encapsulated, head.encapsulated) ||
             (!head.encapsulated.present && again.encapsulated.body_offset == 0 &&
              !again.encapsulated.has_body()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Layout: 1 byte of options (bit 0: tight limits; bits 1-2: the request method a response
  // answers; bit 3: decode the whole input as a body with a 16-byte preview), then the input.
  if (size < 1) return 0;
  const std::uint8_t opts = data[0];
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  IcapLimits lim;
  if ((opts & 1) != 0) {
    lim.max_head_bytes = 256;
    lim.max_fields = 6;
    lim.max_field_bytes = 48;
    lim.max_uri_bytes = 32;
    lim.max_encapsulated_bytes = 128;
    lim.max_preview = 64;
    lim.http.max_head_bytes = 96;
    lim.http.max_fields = 4;
    lim.http.max_field_bytes = 40;
    lim.http.max_chunk_size_digits = 4;
  }
  static constexpr IcapMethod kMethods[] = {IcapMethod::options, IcapMethod::reqmod,
                                            IcapMethod::respmod, IcapMethod::respmod};
  check_request(in, lim);
  check_response(in, lim, kMethods[(opts >> 1) & 3]);
  check_body(in, lim.http, (opts & 8) != 0 ? std::optional<std::uint64_t>(16) : std::nullopt);
  return 0;
}
