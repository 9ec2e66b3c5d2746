#include "policy/policy_tz.h"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace pc::policy {
namespace {

constexpr std::int64_t kDay = 86400;

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

std::int64_t civil_year(std::int64_t days) {
  // Howard Hinnant's civil_from_days, year only.
  days += 719468;
  const std::int64_t era = floor_div(days, 146097);
  const std::int64_t doe = days - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t m = mp < 10 ? mp + 3 : mp - 9;
  return yoe + era * 400 + (m <= 2 ? 1 : 0);
}

bool is_leap(std::int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int month_days(std::int64_t y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

// Days since the epoch of the rule date in year y.
std::int64_t rule_day(std::int64_t y, const PosixTz::Date& d) {
  const std::int64_t jan1 = days_from_civil(y, 1, 1);
  switch (d.kind) {
    case PosixTz::Date::Kind::julian1: {
      std::int64_t n = d.day - 1;
      if (is_leap(y) && d.day >= 60) ++n;
      return jan1 + n;
    }
    case PosixTz::Date::Kind::julian0:
      return jan1 + d.day;
    case PosixTz::Date::Kind::month_week_day: {
      const std::int64_t first = days_from_civil(y, static_cast<unsigned>(d.month), 1);
      const std::int64_t wd_first = ((first + 4) % 7 + 7) % 7;  // 0 = Sunday
      std::int64_t day = first + ((d.day - wd_first) % 7 + 7) % 7 + (d.week - 1) * 7;
      const std::int64_t last = first + month_days(y, d.month) - 1;
      while (day > last) day -= 7;
      return day;
    }
  }
  return jan1;
}

class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}
  bool done() const { return i_ >= s_.size(); }
  char peek() const { return done() ? '\0' : s_[i_]; }
  bool eat(char c) {
    if (peek() != c) return false;
    ++i_;
    return true;
  }
  bool name() {
    if (eat('<')) {
      std::size_t n = 0;
      while (!done() && peek() != '>') ++i_, ++n;
      return eat('>') && n >= 3;
    }
    std::size_t n = 0;
    while (!done() && ((peek() >= 'A' && peek() <= 'Z') || (peek() >= 'a' && peek() <= 'z')))
      ++i_, ++n;
    return n >= 3;
  }
  bool number(int& out, int max_digits) {
    int n = 0;
    out = 0;
    while (!done() && peek() >= '0' && peek() <= '9' && n < max_digits) {
      out = out * 10 + (s_[i_] - '0');
      ++i_, ++n;
    }
    return n > 0;
  }
  // [+-]hh[:mm[:ss]] in seconds.
  bool hms(std::int32_t& out, int max_hours) {
    int sign = 1;
    if (eat('-'))
      sign = -1;
    else
      eat('+');
    int h = 0, m = 0, sec = 0;
    if (!number(h, 3) || h > max_hours) return false;
    if (eat(':')) {
      if (!number(m, 2) || m > 59) return false;
      if (eat(':') && (!number(sec, 2) || sec > 59)) return false;
    }
    out = sign * (h * 3600 + m * 60 + sec);
    return true;
  }
  bool date(PosixTz::Date& d) {
    if (eat('M')) {
      d.kind = PosixTz::Date::Kind::month_week_day;
      if (!number(d.month, 2) || d.month < 1 || d.month > 12 || !eat('.')) return false;
      if (!number(d.week, 1) || d.week < 1 || d.week > 5 || !eat('.')) return false;
      if (!number(d.day, 1) || d.day > 6) return false;
    } else if (eat('J')) {
      d.kind = PosixTz::Date::Kind::julian1;
      if (!number(d.day, 3) || d.day < 1 || d.day > 365) return false;
    } else {
      d.kind = PosixTz::Date::Kind::julian0;
      if (!number(d.day, 3) || d.day > 365) return false;
    }
    d.time = 7200;
    if (eat('/') && !hms(d.time, 167)) return false;
    return true;
  }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
};

std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

std::uint64_t be64(const unsigned char* p) {
  return (std::uint64_t{be32(p)} << 32) | std::uint64_t{be32(p + 4)};
}

}  // namespace

std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = floor_div(y, 400);
  const std::int64_t yoe = y - era * 400;
  const std::int64_t mp = m > 2 ? m - 3 : m + 9;
  const std::int64_t doy = (153 * mp + 2) / 5 + d - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int weekday_from_days(std::int64_t days) {
  return static_cast<int>(((days + 3) % 7 + 7) % 7);  // 1970-01-01 was a Thursday
}

std::optional<PosixTz> PosixTz::parse(std::string_view s) {
  PosixTz tz;
  Scanner sc(s);
  std::int32_t off = 0;
  if (!sc.name() || !sc.hms(off, 24)) return std::nullopt;
  tz.std_offset = -off;
  tz.dst_offset = tz.std_offset;
  if (sc.done()) return tz;
  if (!sc.name()) return std::nullopt;
  tz.has_dst = true;
  tz.dst_offset = tz.std_offset + 3600;
  if (!sc.done() && sc.peek() != ',') {
    if (!sc.hms(off, 24)) return std::nullopt;
    tz.dst_offset = -off;
  }
  if (sc.done()) {
    // No rule: the POSIX default (United States rules).
    tz.start = {Date::Kind::month_week_day, 3, 2, 0, 7200};
    tz.end = {Date::Kind::month_week_day, 11, 1, 0, 7200};
    return tz;
  }
  if (!sc.eat(',') || !sc.date(tz.start) || !sc.eat(',') || !sc.date(tz.end) || !sc.done())
    return std::nullopt;
  return tz;
}

std::int32_t PosixTz::utc_offset(std::int64_t t) const {
  if (!has_dst) return std_offset;
  const std::int64_t y = civil_year(floor_div(t + std_offset, kDay));
  const std::int64_t start_utc = rule_day(y, start) * kDay + start.time - std_offset;
  const std::int64_t end_utc = rule_day(y, end) * kDay + end.time - dst_offset;
  bool dst;
  if (start_utc < end_utc)
    dst = t >= start_utc && t < end_utc;
  else
    dst = !(t >= end_utc && t < start_utc);
  return dst ? dst_offset : std_offset;
}

std::optional<TimeZone> TimeZone::load(std::string_view name, std::string& error,
                                       const std::filesystem::path& dir) {
  if (name.empty() || name.front() == '/' || name.find("..") != std::string_view::npos) {
    error = "invalid time zone name '" + std::string(name) + "'";
    return std::nullopt;
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '+' || c == '/';
    if (!ok) {
      error = "invalid time zone name '" + std::string(name) + "'";
      return std::nullopt;
    }
  }
  std::ifstream in(dir / std::string(name), std::ios::binary);
  if (!in) {
    if (name == "UTC" || name == "Etc/UTC") return TimeZone{};
    error = "unknown time zone '" + std::string(name) + "' (no " + (dir / name).string() + ")";
    return std::nullopt;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string bytes = ss.str();
  std::string why;
  auto tz = parse(bytes, why);
  if (!tz) error = "time zone '" + std::string(name) + "': " + why;
  return tz;
}

std::optional<TimeZone> TimeZone::parse(std::string_view bytes, std::string& error) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  std::size_t size = bytes.size();
  auto bad = [&](const char* why) {
    error = why;
    return std::nullopt;
  };
  if (size < 44 || bytes.substr(0, 4) != "TZif") return bad("not a TZif file");
  const char version = bytes[4];
  struct Counts {
    std::uint32_t isut, isstd, leap, time, type, chars;
  };
  auto counts = [&](std::size_t at) {
    return Counts{be32(p + at + 20), be32(p + at + 24), be32(p + at + 28),
                  be32(p + at + 32), be32(p + at + 36), be32(p + at + 40)};
  };
  auto block_size = [](const Counts& c, std::size_t tsize) {
    return std::uint64_t{c.time} * tsize + c.time + std::uint64_t{c.type} * 6 + c.chars +
           std::uint64_t{c.leap} * (tsize + 4) + c.isstd + c.isut;
  };
  Counts c = counts(0);
  std::size_t at = 44;
  std::size_t tsize = 4;
  if (version != '\0') {
    std::uint64_t skip = block_size(c, 4);
    if (at + skip + 44 > size) return bad("truncated TZif file");
    at += skip;
    if (bytes.substr(at, 4) != "TZif") return bad("bad second TZif header");
    c = counts(at);
    at += 44;
    tsize = 8;
  }
  if (c.type == 0 || c.type > 256) return bad("bad TZif type count");
  if (at + block_size(c, tsize) > size) return bad("truncated TZif file");
  TimeZone tz;
  tz.transitions_.reserve(c.time);
  for (std::uint32_t i = 0; i < c.time; ++i, at += tsize) {
    std::int64_t t = tsize == 8
                         ? static_cast<std::int64_t>(be64(p + at))
                         : static_cast<std::int64_t>(static_cast<std::int32_t>(be32(p + at)));
    if (!tz.transitions_.empty() && t <= tz.transitions_.back())
      return bad("TZif transitions out of order");
    tz.transitions_.push_back(t);
  }
  for (std::uint32_t i = 0; i < c.time; ++i, ++at) {
    if (p[at] >= c.type) return bad("bad TZif type index");
    tz.types_at_.push_back(p[at]);
  }
  for (std::uint32_t i = 0; i < c.type; ++i, at += 6)
    tz.offsets_.push_back(static_cast<std::int32_t>(be32(p + at)));
  at += c.chars + std::size_t{c.leap} * (tsize + 4) + c.isstd + c.isut;
  tz.before_first_ = tz.offsets_[0];
  if (version != '\0' && at < size && bytes[at] == '\n') {
    auto end = bytes.find('\n', at + 1);
    if (end != std::string_view::npos) {
      auto footer = bytes.substr(at + 1, end - at - 1);
      if (!footer.empty()) {
        tz.footer_ = PosixTz::parse(footer);
        if (!tz.footer_) return bad("unsupported TZ rule in TZif footer");
      }
    }
  }
  return tz;
}

std::int32_t TimeZone::utc_offset(std::int64_t t) const {
  if (transitions_.empty()) {
    if (footer_) return footer_->utc_offset(t);
    return offsets_.empty() ? 0 : offsets_[0];
  }
  if (t < transitions_.front()) return before_first_;
  if (t >= transitions_.back() && footer_) return footer_->utc_offset(t);
  auto it = std::upper_bound(transitions_.begin(), transitions_.end(), t);
  auto i = static_cast<std::size_t>(it - transitions_.begin()) - 1;
  return offsets_[types_at_[i]];
}

}  // namespace pc::policy
