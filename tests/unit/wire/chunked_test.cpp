// Chunked transfer coding: decoder (whole and byte by byte) and encoder helpers.
#include <gtest/gtest.h>

#include <string>

#include "wire/http.h"

namespace pc::wire {
namespace {

using namespace std::string_literals;

struct Decoded {
  Status status = Status::incomplete;
  Error error = Error::none;
  std::string payload;
  std::string trailers;
  std::size_t consumed = 0;  // total bytes consumed
};

// Feeds `in` in pieces of at most `piece` bytes, keeping unconsumed bytes like a caller's
// buffer would.
Decoded decode(std::string_view in, std::size_t piece, Limits lim = {}) {
  ChunkedDecoder dec(lim);
  Decoded out;
  std::string pending;
  std::size_t fed = 0;
  for (;;) {
    ChunkedDecoder::Step s = dec.next(pending);
    EXPECT_LE(s.consumed, pending.size());
    if (!s.data.empty()) {
      EXPECT_GE(s.data.data(), pending.data());
      EXPECT_LE(s.data.data() + s.data.size(), pending.data() + pending.size());
    }
    out.payload.append(s.data);
    pending.erase(0, s.consumed);
    out.consumed += s.consumed;
    if (s.status != Status::incomplete) {
      out.status = s.status;
      out.error = s.error;
      break;
    }
    if (s.consumed == 0 && s.data.empty()) {
      if (fed == in.size()) break;
      const std::size_t n = std::min(piece, in.size() - fed);
      pending.append(in.substr(fed, n));
      fed += n;
    }
  }
  if (out.status == Status::complete) out.trailers = dec.trailers();
  return out;
}

struct ChunkCase {
  const char* name;
  std::string input;
  Status status;
  Error error;
  std::string payload;
  std::string trailers;
};

void PrintTo(const ChunkCase& c, std::ostream* os) {
  *os << c.name;
}

class ChunkedTable : public testing::TestWithParam<ChunkCase> {};

TEST_P(ChunkedTable, WholeAndByteByByte) {
  const ChunkCase& c = GetParam();
  for (std::size_t piece : {c.input.size() + 1, std::size_t{1}, std::size_t{2}, std::size_t{7}}) {
    Decoded d = decode(c.input, piece);
    EXPECT_EQ(d.status, c.status) << "piece " << piece;
    EXPECT_EQ(d.error, c.error) << "piece " << piece << ": " << describe(d.error);
    if (c.status == Status::complete) {
      EXPECT_EQ(d.payload, c.payload) << "piece " << piece;
      EXPECT_EQ(d.trailers, c.trailers) << "piece " << piece;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Wire, ChunkedTable,
    testing::Values(
        ChunkCase{"simple", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT", Status::complete,
                  Error::none, "hello world", ""},
        ChunkCase{"empty_body", "0\r\n\r\n", Status::complete, Error::none, "", ""},
        ChunkCase{"upper_hex_leading_zeros", "000A\r\n0123456789\r\n0\r\n\r\n", Status::complete,
                  Error::none, "0123456789", ""},
        ChunkCase{"extensions",
                  "3;a=b\r\nabc\r\n2 ; x ; y = \"q\\\"v\" \t;z=1\r\nde\r\n0;last\r\n\r\n",
                  Status::complete, Error::none, "abcde", ""},
        ChunkCase{"trailers", "1\r\nx\r\n0\r\nX-Sum: 12\r\nX-B:\tv \r\n\r\n", Status::complete,
                  Error::none, "x", "X-Sum: 12\r\nX-B:\tv \r\n"},
        ChunkCase{"incomplete", "5\r\nhel", Status::incomplete, Error::none, "", ""},
        ChunkCase{"incomplete_trailer", "0\r\nX: 1\r\n", Status::incomplete, Error::none, "", ""},
        ChunkCase{"bad_size_empty", "\r\n", Status::error, Error::bad_chunk_size, "", ""},
        ChunkCase{"bad_size_char", "g\r\n", Status::error, Error::bad_chunk_size, "", ""},
        ChunkCase{"bad_size_0x", "0x5\r\nhello\r\n0\r\n\r\n", Status::error, Error::bad_chunk_size,
                  "", ""},
        ChunkCase{"bad_size_leading_ws", " 5\r\nhello\r\n", Status::error, Error::bad_chunk_size,
                  "", ""},
        ChunkCase{"bad_size_sign", "-5\r\n", Status::error, Error::bad_chunk_size, "", ""},
        ChunkCase{"bad_size_bare_lf", "5\nhello\r\n", Status::error, Error::bad_chunk_size, "", ""},
        ChunkCase{"bad_size_bare_cr", "5\rhello\r\n", Status::error, Error::bad_chunk_size, "", ""},
        ChunkCase{"size_too_long", "00000000000000001\r\n", Status::error,
                  Error::chunk_size_too_long, "", ""},
        ChunkCase{"size_max_digits_incomplete", "ffffffffffffffff\r\n", Status::incomplete,
                  Error::none, "", ""},
        ChunkCase{"size_overflow", "10000000000000000\r\n", Status::error,
                  Error::chunk_size_too_long, "", ""},
        ChunkCase{"ext_trailing_ws", "5 \r\nhello\r\n", Status::error, Error::bad_chunk_ext, "",
                  ""},
        ChunkCase{"ext_no_name", "5;\r\nhello\r\n", Status::error, Error::bad_chunk_ext, "", ""},
        ChunkCase{"ext_no_value", "5;a=\r\nhello\r\n", Status::error, Error::bad_chunk_ext, "", ""},
        ChunkCase{"ext_open_quote", "5;a=\"x\r\nhello\r\n", Status::error, Error::bad_chunk_ext, "",
                  ""},
        ChunkCase{"ext_ctl", "5;a\x01\r\nhello\r\n", Status::error, Error::bad_chunk_ext, "", ""},
        ChunkCase{"ext_lf", "5;a\nhello\r\n", Status::error, Error::bad_chunk_ext, "", ""},
        ChunkCase{"ext_nul", "5;a\0\r\nhello\r\n"s, Status::error, Error::bad_chunk_ext, "", ""},
        ChunkCase{"ext_bad_token", "5;a b\r\nhello\r\n", Status::error, Error::bad_chunk_ext, "",
                  ""},
        ChunkCase{"bad_end_missing_crlf", "5\r\nhelloX\r\n0\r\n\r\n", Status::error,
                  Error::bad_chunk_end, "", ""},
        ChunkCase{"bad_end_bare_lf", "5\r\nhello\n0\r\n\r\n", Status::error, Error::bad_chunk_end,
                  "", ""},
        ChunkCase{"bad_end_bare_cr", "5\r\nhello\r0\r\n\r\n", Status::error, Error::bad_chunk_end,
                  "", ""},
        ChunkCase{"trailer_obs_fold", "0\r\nX: a\r\n b\r\n\r\n", Status::error, Error::obs_fold, "",
                  ""},
        ChunkCase{"trailer_bare_lf", "0\r\nX: a\n\r\n", Status::error, Error::bare_lf, "", ""},
        ChunkCase{"trailer_final_bare_lf", "0\r\n\n", Status::error, Error::bare_lf, "", ""},
        ChunkCase{"trailer_bare_cr", "0\r\nX: a\rb\r\n\r\n", Status::error, Error::bare_cr, "", ""},
        ChunkCase{"trailer_nul", "0\r\nX: a\0\r\n\r\n"s, Status::error, Error::nul_byte, "", ""},
        ChunkCase{"trailer_ctl", "0\r\nX: \x01\r\n\r\n", Status::error, Error::bad_field_value, "",
                  ""},
        ChunkCase{"trailer_ws_before_colon", "0\r\nX : a\r\n\r\n", Status::error,
                  Error::ws_before_colon, "", ""},
        ChunkCase{"trailer_bad_name", "0\r\nX(: a\r\n\r\n", Status::error, Error::bad_field_name,
                  "", ""}));

TEST(Chunked, SizeDigitLimitBoundary) {
  Limits lim;
  lim.max_chunk_size_digits = 4;
  EXPECT_EQ(decode("0005\r\nhello\r\n0\r\n\r\n", 1, lim).status, Status::complete);
  Decoded d = decode("00005\r\nhello\r\n0\r\n\r\n", 1, lim);
  EXPECT_EQ(d.error, Error::chunk_size_too_long);
}

TEST(Chunked, LargeSizeDoesNotOverflow) {
  ChunkedDecoder dec{Limits{}};
  const std::string in = "ffffffffffffffff\r\nabc";
  ChunkedDecoder::Step s = dec.next(in);
  ASSERT_EQ(s.status, Status::incomplete);
  EXPECT_EQ(s.data, "abc");
  EXPECT_EQ(s.consumed, in.size());
  EXPECT_EQ(dec.payload_bytes(), 3u);
}

TEST(Chunked, TrailerLimits) {
  Limits lim;
  lim.max_field_bytes = 8;
  lim.max_fields = 2;
  // "X: 12345" is 8 bytes: at the limit.
  EXPECT_EQ(decode("0\r\nX: 12345\r\n\r\n", 1, lim).status, Status::complete);
  EXPECT_EQ(decode("0\r\nX: 123456\r\n\r\n", 100, lim).error, Error::field_too_large);
  EXPECT_EQ(decode("0\r\nX: 123456\r\n\r\n", 1, lim).error, Error::field_too_large);
  EXPECT_EQ(decode("0\r\nA: 1\r\nB: 2\r\n\r\n", 1, lim).status, Status::complete);
  EXPECT_EQ(decode("0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 1, lim).error, Error::too_many_fields);
  lim.max_head_bytes = 14;  // trailer section incl. final CRLF
  EXPECT_EQ(decode("0\r\nA: 1\r\nB: 2\r\n\r\n", 3, lim).status, Status::complete);
  EXPECT_EQ(decode("0\r\nA: 1\r\nB: 22\r\n\r\n", 3, lim).error, Error::head_too_large);
}

TEST(Chunked, ExtensionLimit) {
  Limits lim;
  lim.max_field_bytes = 6;
  EXPECT_EQ(decode("1;a=bcd\r\nx\r\n0\r\n\r\n", 1, lim).status, Status::complete);
  EXPECT_EQ(decode("1;a=bcde\r\nx\r\n0\r\n\r\n", 1, lim).error, Error::bad_chunk_ext);
}

// ICAP's "ieof" rules (IcapChunkedDecoder) are options: in HTTP, ieof is an extension like
// any other, with or without a value, on any chunk.
TEST(Chunked, IeofIsAnOrdinaryExtensionInHttp) {
  EXPECT_EQ(decode("1; ieof=1\r\nx\r\n0; IEOF\r\n\r\n", 1).status, Status::complete);
  ChunkedDecoder dec{Limits{}};
  EXPECT_EQ(dec.next("0; ieof\r\n\r\n").status, Status::complete);
  EXPECT_FALSE(dec.ieof());
}

TEST(Chunked, MaxPayloadOption) {
  ChunkedOptions opt;
  opt.max_payload = 4;
  ChunkedDecoder dec(Limits{}, opt);
  ChunkedDecoder::Step s = dec.next("2\r\nab\r\n3\r\n");
  EXPECT_EQ(s.data, "ab");
  s = dec.next("\r\n3\r\n");
  EXPECT_EQ(s.status, Status::error);
  EXPECT_EQ(s.error, Error::chunk_over_limit);
  EXPECT_EQ(s.consumed, 4u);  // the LF ending the size line of the chunk over the limit
}

TEST(Chunked, ErrorIsSticky) {
  ChunkedDecoder dec{Limits{}};
  EXPECT_EQ(dec.next("x").status, Status::error);
  ChunkedDecoder::Step s = dec.next("0\r\n\r\n");
  EXPECT_EQ(s.status, Status::error);
  EXPECT_EQ(s.error, Error::bad_chunk_size);
}

TEST(Chunked, CompleteStopsAtEnd) {
  ChunkedDecoder dec{Limits{}};
  const std::string in = "2\r\nab\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
  std::string_view rest = in;
  std::string payload;
  ChunkedDecoder::Step s;
  do {
    s = dec.next(rest);
    payload.append(s.data);
    rest.remove_prefix(s.consumed);
  } while (s.status == Status::incomplete);
  EXPECT_EQ(s.status, Status::complete);
  EXPECT_EQ(payload, "ab");
  EXPECT_EQ(rest, "GET / HTTP/1.1\r\n");
  EXPECT_EQ(dec.payload_bytes(), 2u);
  EXPECT_EQ(dec.next(rest).status, Status::complete);
  EXPECT_EQ(dec.next(rest).consumed, 0u);
}

TEST(Chunked, EncodeRoundTrip) {
  std::string out;
  append_chunk_header(out, 0x1a);
  EXPECT_EQ(out, "1a\r\n");
  out += std::string(0x1a, 'z') + "\r\n";
  append_chunk_header(out, 1);
  out += "y\r\n";
  append_last_chunk(out, "X-T: 1\r\n");
  EXPECT_EQ(out.substr(out.size() - 13), "0\r\nX-T: 1\r\n\r\n");
  Decoded d = decode(out, 3);
  EXPECT_EQ(d.status, Status::complete);
  EXPECT_EQ(d.payload, std::string(0x1a, 'z') + "y");
  EXPECT_EQ(d.trailers, "X-T: 1\r\n");

  std::string big;
  append_chunk_header(big, static_cast<std::size_t>(-1));
  EXPECT_EQ(big, "ffffffffffffffff\r\n");
  std::string last;
  append_last_chunk(last);
  EXPECT_EQ(last, "0\r\n\r\n");
}

}  // namespace
}  // namespace pc::wire
