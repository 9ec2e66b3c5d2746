// A bounded, disk-backed FIFO of syslog frames for one destination: what a TCP or TLS
// receiver has not taken yet survives a receiver outage and a restart of the gateway, and is
// sent in order. One producer thread (the access-log writer) and one consumer thread (the
// destination's sender).
//
// On disk: a folder of append-only segment files "<16 hex digits>.seg" holding RFC 6587
// octet-counted frames exactly as they go on the wire, and a "cursor" file naming the
// segment and offset of the first frame not sent yet. A segment is deleted once everything
// in it has been sent. Writes are not synced: the queue survives the process, not a power cut.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>

namespace pc::telemetry {

// Writes all of `data` to fd (short writes and EINTR retried); false on an error (errno).
bool write_all(int fd, std::string_view data);

class DiskQueue {
 public:
  // Opens the queue in `dir` (created when missing) and recovers what an earlier process
  // left: frames before the cursor are forgotten, a torn frame at the end of a segment (a
  // crash in the middle of a write) is cut off, and a segment that is not a sequence of frames
  // is cut at the first bad byte (logged). Throws std::runtime_error naming the folder when it
  // cannot be created or read. `limit` bounds the bytes waiting to be sent.
  DiskQueue(std::filesystem::path dir, std::uint64_t limit, std::size_t max_frame);
  ~DiskQueue();
  DiskQueue(const DiskQueue&) = delete;
  DiskQueue& operator=(const DiskQueue&) = delete;

  // Producer: appends complete frames (a concatenation of octet-counted frames) in order and
  // returns how many were accepted. The rest (those that would pass the limit, or all of them
  // when the write fails) are not queued: the caller counts them as dropped. `error` is set
  // when a write failed.
  std::size_t append(std::string_view frames, std::string* error = nullptr);

  // Consumer: copies the oldest frames, whole, up to about max_bytes (at least one frame)
  // into `out` (replacing its contents) and returns how many; 0 when nothing is waiting.
  std::size_t peek(std::string& out, std::size_t max_bytes);
  // Consumer: the first `frames` frames, `bytes` bytes in all, of the last peek were sent.
  void pop(std::size_t frames, std::size_t bytes);

  std::uint64_t pending_bytes() const;
  std::uint64_t pending_frames() const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  struct Segment {
    std::uint64_t id = 0;
    std::uint64_t size = 0;  // bytes written
  };
  std::filesystem::path segment_path(std::uint64_t id) const;
  void recover();
  void save_cursor();
  bool open_writer(std::string* error);
  void drop_head();  // the head segment is done: delete it and move to the next

  std::filesystem::path dir_;
  std::uint64_t limit_;
  std::size_t max_frame_;
  std::uint64_t segment_bytes_;
  mutable std::mutex mu_;
  std::deque<Segment> segments_;   // oldest first; the last one is being written
  std::uint64_t head_offset_ = 0;  // in segments_.front(): first byte not sent
  std::uint64_t pending_bytes_ = 0, pending_frames_ = 0;
  int write_fd_ = -1;  // the last segment, for appending (producer)
  int read_fd_ = -1;   // the head segment (consumer)
  std::uint64_t read_id_ = 0;
  int cursor_fd_ = -1;
};

}  // namespace pc::telemetry
