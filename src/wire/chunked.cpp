// Chunked transfer coding (RFC 9112 7.1): incremental zero-copy decoder and encoder helpers.
#include <algorithm>
#include <cstring>
#include <limits>

#include "wire/detail.h"
#include "wire/http.h"

namespace pc::wire {

namespace {

using detail::is_ws;

// chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
// chunk-ext-val = token / quoted-string
// With icap, an extension named ieof (any case) sets ieof, and one with a value is invalid.
bool valid_chunk_ext(std::string_view s, bool icap, bool& ieof) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  auto skip_ws = [&] {
    while (i < n && is_ws(s[i])) ++i;
  };
  auto token = [&] {
    const std::size_t begin = i;
    while (i < n && detail::is_tchar(s[i])) ++i;
    return i > begin;
  };
  if (n == 0) return false;
  while (i < n) {
    skip_ws();
    if (i == n || s[i] != ';') return false;
    ++i;
    skip_ws();
    const std::size_t name_start = i;
    if (!token()) return false;
    const bool is_ieof = icap && iequals(s.substr(name_start, i - name_start), "ieof");
    if (is_ieof) ieof = true;
    skip_ws();
    if (i < n && s[i] == '=') {
      if (is_ieof) return false;
      ++i;
      skip_ws();
      if (i < n && s[i] == '"') {
        ++i;
        for (;;) {
          if (i == n) return false;
          const char c = s[i];
          if (c == '"') break;
          if (c == '\\') {
            if (++i == n ||
                !detail::has_class(s[i], detail::kVchar | detail::kObsText | detail::kWs))
              return false;
          } else if (!detail::has_class(c, detail::kQdText)) {
            return false;
          }
          ++i;
        }
        ++i;  // closing quote
      } else if (!token()) {
        return false;
      }
    }
  }
  return true;
}

// Bytes that can never appear in a chunk extension (controls other than HTAB, and DEL).
bool ext_byte_ok(char c) {
  return detail::has_class(c, detail::kVchar | detail::kObsText | detail::kWs);
}

}  // namespace

ChunkedDecoder::Step ChunkedDecoder::fail(Error e, std::size_t at) {
  state_ = State::failed;
  error_ = e;
  Step s;
  s.status = Status::error;
  s.error = e;
  s.consumed = at;
  return s;
}

ChunkedDecoder::Step ChunkedDecoder::next(std::string_view in) {
  const char* p = in.data();
  const std::size_t n = in.size();
  std::size_t i = 0;
  while (i < n) {
    switch (state_) {
      case State::size: {
        const char c = p[i];
        const int v = detail::hex_value(c);
        if (v >= 0) {
          if (digits_ >= lim_.max_chunk_size_digits ||
              remaining_ > (std::numeric_limits<std::uint64_t>::max() >> 4))
            return fail(Error::chunk_size_too_long, i);
          remaining_ = (remaining_ << 4) | static_cast<std::uint64_t>(v);
          ++digits_;
          ++i;
          break;
        }
        if (digits_ == 0) return fail(Error::bad_chunk_size, i);
        if (c == ';' || is_ws(c)) {
          state_ = State::ext;
          line_.clear();
          ext_bytes_ = 0;
          break;
        }
        if (c != '\r') return fail(Error::bad_chunk_size, i);
        state_ = State::size_lf;
        ++i;
        break;
      }
      case State::ext: {
        const std::size_t limit = lim_.max_field_bytes;
        const char* cr = static_cast<const char*>(std::memchr(p + i, '\r', n - i));
        const std::size_t stop = cr != nullptr ? static_cast<std::size_t>(cr - p) : n;
        for (std::size_t k = i; k < stop; ++k) {
          if (ext_bytes_ + (k - i) >= limit || !ext_byte_ok(p[k]))
            return fail(Error::bad_chunk_ext, k);
        }
        line_.append(p + i, stop - i);
        ext_bytes_ += stop - i;
        i = stop;
        if (cr != nullptr) {
          bool ieof = false;
          if (!valid_chunk_ext(line_, opt_.ieof, ieof)) return fail(Error::bad_chunk_ext, i);
          if (ieof && remaining_ != 0) return fail(Error::bad_chunk_ext, i);  // last chunk only
          ieof_ = ieof;
          line_.clear();
          state_ = State::size_lf;
          ++i;
        }
        break;
      }
      case State::size_lf:
        if (p[i] != '\n') return fail(Error::bad_chunk_size, i);
        ++i;
        digits_ = 0;
        if (remaining_ == 0) {
          state_ = State::trailer;
          line_.clear();
        } else {
          if (remaining_ > opt_.max_payload - payload_) return fail(Error::chunk_over_limit, i - 1);
          state_ = State::data;
        }
        break;
      case State::data: {
        const std::size_t take =
            static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, n - i));
        Step s;
        s.data = in.substr(i, take);
        remaining_ -= take;
        payload_ += take;
        if (remaining_ == 0) state_ = State::data_cr;
        s.consumed = i + take;
        return s;
      }
      case State::data_cr:
        if (p[i] != '\r') return fail(Error::bad_chunk_end, i);
        state_ = State::data_lf;
        ++i;
        break;
      case State::data_lf:
        if (p[i] != '\n') return fail(Error::bad_chunk_end, i);
        state_ = State::size;
        ++i;
        break;
      case State::trailer: {
        // Accumulate one line (up to and including LF), bounded by the per-line and the
        // per-section limits exactly as if the bytes arrived one at a time.
        const char* lf = static_cast<const char*>(std::memchr(p + i, '\n', n - i));
        const std::size_t avail = (lf != nullptr ? static_cast<std::size_t>(lf - p) + 1 : n) - i;
        const std::size_t line_room =
            lim_.max_field_bytes + 2 > line_.size() ? lim_.max_field_bytes + 2 - line_.size() : 0;
        const std::size_t used = trailers_.size() + line_.size();
        const std::size_t total_room = lim_.max_head_bytes > used ? lim_.max_head_bytes - used : 0;
        if (avail > std::min(line_room, total_room)) {
          if (line_room <= total_room) return fail(Error::field_too_large, i + line_room);
          return fail(Error::head_too_large, i + total_room);
        }
        line_.append(p + i, avail);
        i += avail;
        if (lf == nullptr) break;
        const detail::LineScan ls = detail::scan_field_line(line_, lim_.max_field_bytes);
        if (ls.status != Status::complete) {
          // The line ends in LF, so the scan cannot be incomplete unless the LF is bare.
          return fail(ls.status == Status::error ? ls.error : Error::bare_lf, i - 1);
        }
        if (ls.end != line_.size()) return fail(Error::bare_lf, i - 1);
        if (ls.field.name.empty()) {
          state_ = State::done;
          line_.clear();
          Step s;
          s.status = Status::complete;
          s.consumed = i;
          return s;
        }
        if (trailer_fields_ >= lim_.max_fields) return fail(Error::too_many_fields, i - 1);
        ++trailer_fields_;
        trailers_ += line_;
        line_.clear();
        break;
      }
      case State::done: {
        Step s;
        s.status = Status::complete;
        s.consumed = i;
        return s;
      }
      case State::failed:
        return fail(error_, i);
    }
  }
  Step s;
  if (state_ == State::done) s.status = Status::complete;
  if (state_ == State::failed) {
    s.status = Status::error;
    s.error = error_;
  }
  s.consumed = i;
  return s;
}

void append_chunk_header(std::string& out, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  char buf[2 * sizeof(std::size_t) + 2];
  char* end = buf + sizeof(buf);
  char* p = end;
  *--p = '\n';
  *--p = '\r';
  do {
    *--p = kHex[n & 0xf];
    n >>= 4;
  } while (n != 0);
  out.append(p, static_cast<std::size_t>(end - p));
}

void append_last_chunk(std::string& out, std::string_view trailers) {
  out.append("0\r\n");
  out.append(trailers);
  out.append("\r\n");
}

}  // namespace pc::wire
