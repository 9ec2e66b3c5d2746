#include "telemetry/disk_queue.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "base/log.h"
#include "telemetry/syslog_format.h"

namespace pc::telemetry {

namespace fs = std::filesystem;

namespace {

std::string errno_text() {
  return std::strerror(errno);
}

bool parse_hex16(std::string_view s, std::uint64_t& out) {
  if (s.size() != 16) return false;
  out = 0;
  for (char c : s) {
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (d < 0) return false;
    out = out << 4 | static_cast<std::uint64_t>(d);
  }
  return true;
}

bool read_file(const fs::path& p, std::string& out) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return n == 0;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace

bool write_all(int fd, std::string_view data) {
  const char* p = data.data();
  std::size_t n = data.size();
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

DiskQueue::DiskQueue(fs::path dir, std::uint64_t limit, std::size_t max_frame)
    : dir_(std::move(dir)),
      limit_(limit),
      max_frame_(max_frame),
      segment_bytes_(std::clamp<std::uint64_t>(limit / 8, 64 * 1024, 16 * 1024 * 1024)) {
  recover();
}

DiskQueue::~DiskQueue() {
  for (int fd : {write_fd_, read_fd_, cursor_fd_})
    if (fd >= 0) ::close(fd);
}

fs::path DiskQueue::segment_path(std::uint64_t id) const {
  char name[32];
  std::snprintf(name, sizeof name, "%016" PRIx64 ".seg", id);
  return dir_ / name;
}

void DiskQueue::recover() {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec)
    throw std::runtime_error("cannot create spool folder " + dir_.string() + ": " + ec.message());
  // Records hold URLs and user names: not for everyone on the host.
  fs::permissions(dir_, fs::perms::others_all, fs::perm_options::remove, ec);
  std::vector<std::uint64_t> ids;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    auto name = it->path().filename().string();
    std::uint64_t id = 0;
    if (name.size() == 20 && name.ends_with(".seg") && parse_hex16(name.substr(0, 16), id))
      ids.push_back(id);
  }
  if (ec)
    throw std::runtime_error("cannot read spool folder " + dir_.string() + ": " + ec.message());
  std::sort(ids.begin(), ids.end());

  // The cursor: "<segment id> <offset>\n", both 16 hex digits.
  std::uint64_t cur_id = 0, cur_off = 0;
  std::string text;
  if (read_file(dir_ / "cursor", text)) {
    if (text.size() < 33 || text[16] != ' ' || !parse_hex16(text.substr(0, 16), cur_id) ||
        !parse_hex16(text.substr(17, 16), cur_off)) {
      log::warn("spool {}: unreadable cursor, sending everything it holds again", dir_.string());
      cur_id = 0;
      cur_off = 0;
    }
  }

  std::string data;
  for (std::uint64_t id : ids) {
    auto path = segment_path(id);
    if (id < cur_id) {  // sent before the last stop
      fs::remove(path, ec);
      continue;
    }
    if (!read_file(path, data))
      throw std::runtime_error("cannot read spool segment " + path.string() + ": " + errno_text());
    std::uint64_t start =
        (id == cur_id && segments_.empty()) ? std::min<std::uint64_t>(cur_off, data.size()) : 0;
    std::uint64_t pos = start, frames = 0;
    while (pos < data.size()) {
      std::string_view msg;
      std::size_t n = 0;
      auto st = parse_octet_frame(std::string_view(data).substr(pos), max_frame_, msg, n);
      if (st != FrameStatus::complete) {
        if (st == FrameStatus::invalid)
          log::error(
              "spool segment {}: not a syslog frame at offset {}; the {} bytes from there are "
              "dropped",
              path.string(), pos, data.size() - pos);
        else
          log::warn("spool segment {}: incomplete last frame ({} bytes) dropped", path.string(),
                    data.size() - pos);
        break;
      }
      pos += n;
      ++frames;
    }
    if (pos < data.size()) {
      if (::truncate(path.c_str(), static_cast<off_t>(pos)) != 0)
        throw std::runtime_error("cannot repair spool segment " + path.string() + ": " +
                                 errno_text());
    }
    if (segments_.empty()) head_offset_ = start;
    segments_.push_back({id, pos});
    pending_bytes_ += pos - start;
    pending_frames_ += frames;
  }
  cursor_fd_ = ::open((dir_ / "cursor").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (cursor_fd_ < 0)
    throw std::runtime_error("cannot write spool cursor in " + dir_.string() + ": " + errno_text());
  save_cursor();
  if (pending_frames_ > 0)
    log::info("spool {}: {} record(s) ({} bytes) from an earlier run to send", dir_.string(),
              pending_frames_, pending_bytes_);
}

void DiskQueue::save_cursor() {
  char text[40];
  std::uint64_t id = segments_.empty() ? 0 : segments_.front().id;
  int n = std::snprintf(text, sizeof text, "%016" PRIx64 " %016" PRIx64 "\n", id, head_offset_);
  if (cursor_fd_ >= 0 && ::pwrite(cursor_fd_, text, static_cast<std::size_t>(n), 0) != n)
    log::debug("spool {}: cannot write the cursor: {}", dir_.string(), errno_text());
}

bool DiskQueue::open_writer(std::string* error) {
  if (write_fd_ >= 0) ::close(write_fd_);
  write_fd_ = -1;
  bool reuse = !segments_.empty() && segments_.back().size < segment_bytes_;
  std::uint64_t id =
      reuse ? segments_.back().id : (segments_.empty() ? 1 : segments_.back().id + 1);
  auto path = segment_path(id);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) {
    if (error) *error = "cannot open " + path.string() + ": " + errno_text();
    return false;
  }
  write_fd_ = fd;
  if (!reuse) segments_.push_back({id, 0});
  return true;
}

std::size_t DiskQueue::append(std::string_view frames, std::string* error) {
  std::lock_guard lk(mu_);
  // How many whole frames fit under the limit.
  std::size_t bytes = 0, count = 0;
  while (bytes < frames.size()) {
    std::string_view msg;
    std::size_t n = 0;
    if (parse_octet_frame(frames.substr(bytes), max_frame_, msg, n) != FrameStatus::complete)
      break;  // the caller builds frames: not reached
    if (pending_bytes_ + bytes + n > limit_) break;
    bytes += n;
    ++count;
  }
  if (count == 0) return 0;
  if (write_fd_ < 0 || segments_.back().size >= segment_bytes_) {
    if (!open_writer(error)) return 0;
  }
  auto& seg = segments_.back();
  if (!write_all(write_fd_, std::string_view(frames.data(), bytes))) {
    if (error) *error = "cannot write " + segment_path(seg.id).string() + ": " + errno_text();
    // Take back a partial write so the segment stays a sequence of whole frames.
    if (::ftruncate(write_fd_, static_cast<off_t>(seg.size)) != 0) {
      ::close(write_fd_);
      write_fd_ = -1;  // the next append starts a new segment
      seg.size = segment_bytes_;
    }
    return 0;
  }
  seg.size += bytes;
  pending_bytes_ += bytes;
  pending_frames_ += count;
  return count;
}

void DiskQueue::drop_head() {
  auto id = segments_.front().id;
  if (read_fd_ >= 0 && read_id_ == id) {
    ::close(read_fd_);
    read_fd_ = -1;
  }
  std::error_code ec;
  fs::remove(segment_path(id), ec);
  segments_.pop_front();
  head_offset_ = 0;
}

std::size_t DiskQueue::peek(std::string& out, std::size_t max_bytes) {
  for (;;) {
    out.clear();
    std::uint64_t id = 0, off = 0, end = 0;
    {
      std::lock_guard lk(mu_);
      while (segments_.size() > 1 && head_offset_ >= segments_.front().size) {
        drop_head();
        save_cursor();
      }
      if (segments_.empty() || head_offset_ >= segments_.front().size) return 0;
      id = segments_.front().id;
      off = head_offset_;
      end = segments_.front().size;
    }
    if (read_fd_ < 0 || read_id_ != id) {
      if (read_fd_ >= 0) ::close(read_fd_);
      read_fd_ = ::open(segment_path(id).c_str(), O_RDONLY | O_CLOEXEC);
      read_id_ = id;
      if (read_fd_ < 0) {
        log::error("spool {}: cannot read segment {:016x}: {}", dir_.string(), id, errno_text());
        return 0;
      }
    }
    // A frame is at most max_frame_ bytes plus its length and a space: one always fits.
    std::size_t want = static_cast<std::size_t>(
        std::min<std::uint64_t>(end - off, std::max(max_bytes, max_frame_ + 16)));
    out.resize(want);
    std::size_t got = 0;
    while (got < want) {
      ssize_t n = ::pread(read_fd_, out.data() + got, want - got, static_cast<off_t>(off + got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    out.resize(got);
    std::size_t pos = 0, count = 0;
    bool damaged = false;
    while (pos < out.size()) {
      std::string_view msg;
      std::size_t n = 0;
      auto st = parse_octet_frame(std::string_view(out).substr(pos), max_frame_, msg, n);
      if (st != FrameStatus::complete) {
        damaged = count == 0;  // whole frames only are written: the file was changed under us
        break;
      }
      if (count > 0 && pos + n > max_bytes) break;
      pos += n;
      ++count;
    }
    if (count == 0 && (damaged || got < want)) {
      log::error("spool {}: segment {:016x} is damaged at offset {}; its last {} bytes are skipped",
                 dir_.string(), id, off, end - off);
      std::lock_guard lk(mu_);
      if (!segments_.empty() && segments_.front().id == id && head_offset_ == off) {
        pending_bytes_ -= std::min(pending_bytes_, end - off);
        if (pending_bytes_ == 0) pending_frames_ = 0;
        head_offset_ = end;
        save_cursor();
      }
      continue;
    }
    out.resize(pos);
    return count;
  }
}

void DiskQueue::pop(std::size_t frames, std::size_t bytes) {
  std::lock_guard lk(mu_);
  head_offset_ += bytes;
  pending_bytes_ -= std::min<std::uint64_t>(pending_bytes_, bytes);
  pending_frames_ -= std::min<std::uint64_t>(pending_frames_, frames);
  if (segments_.size() > 1 && head_offset_ >= segments_.front().size) drop_head();
  save_cursor();
}

std::uint64_t DiskQueue::pending_bytes() const {
  std::lock_guard lk(mu_);
  return pending_bytes_;
}

std::uint64_t DiskQueue::pending_frames() const {
  std::lock_guard lk(mu_);
  return pending_frames_;
}

}  // namespace pc::telemetry
