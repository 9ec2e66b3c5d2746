// txn/scan and the scan part of txn/flow: the verdict cache answering with the stored true
// file type (no detection on the caller's thread), the failure mode's type when the pool is
// full, file names for the record, and one coherent scan per access record.
#include "txn/scan.h"

#include <gtest/gtest.h>

#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <optional>
#include <string>
#include <thread>

#include "temp_dir.h"
#include "txn/flow.h"
#include "txn/snapshot.h"

namespace pc::txn {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

const std::string kEicar =
    R"(X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*)";

template <class P>
bool eventually(P pred) {
  for (int i = 0; i < 5000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return pred();
}

std::string read_file(const char* path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A snapshot with the shipped signatures only.
std::shared_ptr<Snapshot> snapshot(config::FailMode on_failure = config::FailMode::by_type) {
  auto cfg = std::make_shared<config::Config>();
  cfg->scan.shipped_signatures = PC_SHIPPED_SIGNATURES_DIR;
  cfg->scan.clamav_dir.clear();
  cfg->scan.on_failure = on_failure;
  auto snap = std::make_shared<Snapshot>();
  snap->config = cfg;
  snap->engines = load_engines(cfg->scan);
  return snap;
}

// Runs one awaitable to completion on its own io_context.
template <class T>
T run(asio::awaitable<T> a) {
  asio::io_context io;
  std::optional<T> out;
  asio::co_spawn(io, std::move(a), [&](std::exception_ptr e, T v) {
    if (e) std::rethrow_exception(e);
    out = std::move(v);
  });
  io.run();
  return std::move(*out);
}

ScanOutcome scan(const Snapshot& snap, ScanService& svc, const std::string& body) {
  Spool spool(svc, 1 << 20, 1 << 30);
  EXPECT_TRUE(spool.append(body));
  return run(scan_spool(snap, svc, spool));
}

TEST(ScanSpool, ScansWithTypeEngineAndSize) {
  auto snap = snapshot();
  ASSERT_TRUE(snap->engines->clam) << snap->engines->error;
  ScanService svc(1, 4, 100);
  const auto exe = read_file("/bin/true");
  auto o = scan(*snap, svc, exe);
  EXPECT_EQ(o.verdict, "clean");
  EXPECT_EQ(o.file_type, "exe");
  EXPECT_EQ(o.size, exe.size());
  EXPECT_FALSE(o.cached);
  EXPECT_EQ(o.engine, snap->engines->clam_name);
  EXPECT_TRUE(o.engine.starts_with("ClamAV ")) << o.engine;

  auto bad = scan(*snap, svc, kEicar);
  EXPECT_EQ(bad.verdict, "infected");
  EXPECT_TRUE(bad.block);
  EXPECT_TRUE(bad.threat);
  EXPECT_EQ(bad.engine, snap->engines->clam_name);
  EXPECT_EQ(bad.size, kEicar.size());
  EXPECT_EQ(bad.sha256, inspect::Sha256::hex(inspect::Sha256::of(kEicar.data(), kEicar.size())));

  // Again: from the cache, with the same type and engine.
  auto again = scan(*snap, svc, exe);
  EXPECT_TRUE(again.cached);
  EXPECT_EQ(again.file_type, "exe");
  EXPECT_EQ(again.engine, o.engine);
  auto bad_again = scan(*snap, svc, kEicar);
  EXPECT_TRUE(bad_again.cached);
  EXPECT_EQ(bad_again.verdict, "infected");
  EXPECT_EQ(bad_again.name, bad.name);
}

// A body beyond the memory buffer is in a memory file: both engines read a mapping of it,
// with the same answers as for a body in memory.
TEST(ScanSpool, BodyInAMemoryFile) {
  auto snap = snapshot();
  ASSERT_TRUE(snap->engines->clam) << snap->engines->error;
  ScanService svc(1, 4, 100);
  auto in_file = [&](const std::string& body) {
    Spool spool(svc, 16, 1 << 30);
    EXPECT_TRUE(spool.append(body));
    EXPECT_FALSE(spool.in_memory());
    return run(scan_spool(*snap, svc, spool));
  };
  const auto exe = read_file("/bin/true");
  auto o = in_file(exe);
  EXPECT_EQ(o.verdict, "clean");
  EXPECT_EQ(o.file_type, "exe");
  EXPECT_EQ(o.size, exe.size());
  EXPECT_FALSE(o.cached);
  const std::string infected = std::string(kEicar) + std::string(200000, '\n');
  auto bad = in_file(infected);
  EXPECT_EQ(bad.verdict, "infected");
  EXPECT_TRUE(bad.block);
  EXPECT_EQ(bad.size, infected.size());
}

// A hit is answered from the cache entry alone: its stored type, not one detected again
// (here the entry deliberately disagrees with what the bytes are).
TEST(ScanSpool, CacheHitUsesTheStoredFileType) {
  auto snap = snapshot();
  ScanService svc(1, 4, 100);
  const auto exe = read_file("/bin/true");
  const auto digest = inspect::Sha256::of(exe.data(), exe.size());
  svc.cache.insert(digest, snap->engines->generation,
                   {{inspect::Verdict::clean, {}}, "office-macro", "stored engine"});
  const auto completed = svc.offload.counters().completed;
  auto o = scan(*snap, svc, exe);
  EXPECT_TRUE(o.cached);
  EXPECT_EQ(o.file_type, "office-macro");
  EXPECT_EQ(o.engine, "stored engine");
  EXPECT_EQ(svc.offload.counters().completed, completed);  // no job either
}

// No engine: the failure mode decides by the type detected on the pool.
TEST(ScanSpool, NoEngineDetectsTheTypeOnThePool) {
  auto snap = snapshot();
  snap->engines = std::make_shared<Engines>();
  ScanService svc(1, 4, 100);
  auto o = scan(*snap, svc, read_file("/bin/true"));
  EXPECT_EQ(o.verdict, "error");
  EXPECT_EQ(o.file_type, "exe");
  EXPECT_TRUE(o.block);  // by_type: executables are blocked
  EXPECT_EQ(svc.offload.counters().completed, 1u);
  auto text = scan(*snap, svc, "Just plain text, nothing else.\n");
  EXPECT_EQ(text.file_type, "text");
  EXPECT_FALSE(text.block);
}

// A blocker occupies the single pool thread, a second job fills the one queue slot.
struct FullPool {
  explicit FullPool(ScanService& service) : svc(service) {
    gate = release.get_future().share();
    auto blocker = [g = gate]() {
      g.wait();
      return 0;
    };
    asio::co_spawn(io, wait_for(blocker), asio::detached);
    io.poll();
    EXPECT_TRUE(eventually([&] { return svc.offload.counters().running == 1; }));
    asio::co_spawn(io, wait_for(blocker), asio::detached);
    io.poll();
    EXPECT_EQ(svc.offload.counters().queued, 1u);
  }
  ~FullPool() {
    release.set_value();
    io.run();
  }
  template <class F>
  asio::awaitable<void> wait_for(F f) {
    (void)co_await svc.offload.run(f);
  }
  ScanService& svc;
  asio::io_context io;
  std::promise<void> release;
  std::shared_future<void> gate;
};

TEST(ScanSpool, QueueFullSniffsTheType) {
  auto snap = snapshot();
  ScanService svc(1, 1, 100);
  FullPool full(svc);
  auto o = scan(*snap, svc, read_file("/bin/true"));
  EXPECT_EQ(o.verdict, "error");
  EXPECT_EQ(o.name, "scan queue full");
  EXPECT_EQ(o.file_type, "exe");
  EXPECT_TRUE(o.block);

  Spool spool(svc, 1 << 20, 1 << 30);
  spool.append(std::string("PK\x03\x04", 4) + std::string(100, 'x'));
  auto f = run(failure_outcome(snap->config->scan, svc, spool, "the spool is full"));
  EXPECT_EQ(f.file_type, "zip");
  EXPECT_TRUE(f.block);
  EXPECT_EQ(f.size, 104u);
  EXPECT_NE(f.reason.find("the spool is full"), std::string::npos) << f.reason;
}

TEST(ScanSpool, FailureOutcomeDetectsOnThePool) {
  auto snap = snapshot(config::FailMode::open);
  ScanService svc(1, 4, 100);
  Spool spool(svc, 1 << 20, 1 << 30);
  spool.append("%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n");
  auto f = run(failure_outcome(snap->config->scan, svc, spool, "why"));
  EXPECT_EQ(f.file_type, "pdf");
  EXPECT_FALSE(f.block);
  EXPECT_EQ(svc.offload.counters().completed, 1u);
}

TEST(BodyFileName, ContentDisposition) {
  EXPECT_EQ(body_file_name(R"(attachment; filename="report.pdf")", "", "", "http://h/x"),
            "report.pdf");
  EXPECT_EQ(body_file_name("attachment; filename=plain.exe", "", "", ""), "plain.exe");
  // filename* wins, in either order; ISO-8859-1 becomes UTF-8
  EXPECT_EQ(
      body_file_name(R"(attachment; filename="a.txt"; filename*=UTF-8''%e2%82%ac%20rates.txt)", "",
                     "", ""),
      "\xe2\x82\xac rates.txt");
  EXPECT_EQ(
      body_file_name("attachment; filename*=iso-8859-1'en'%A3.zip; filename=b.zip", "", "", ""),
      "\xc2\xa3.zip");
  // an unknown charset: the plain name
  EXPECT_EQ(body_file_name("attachment; filename*=koi8-r''%c1; filename=c.doc", "", "", ""),
            "c.doc");
  // quoted-pairs and separators inside quotes
  EXPECT_EQ(body_file_name(R"(inline; x="a;b"; filename="we\"ird;name.zip")", "", "", ""),
            "we_ird;name.zip");
  // directories and control characters
  EXPECT_EQ(body_file_name(R"(attachment; filename="..\..\windows\evil.exe")", "", "", ""),
            "evil.exe");
  EXPECT_EQ(body_file_name("attachment; filename=\"a\x01\x1b[31mb.exe\"", "", "", ""),
            "a__[31mb.exe");
  // no name: the URL's
  EXPECT_EQ(body_file_name("attachment", "", "", "http://h/dir/setup%20v2.msi?x=1#f"),
            "setup v2.msi");
  EXPECT_EQ(body_file_name(R"(attachment; filename="..")", "", "", "http://h/d/f.bin"), "f.bin");
}

TEST(BodyFileName, UrlAndMultipart) {
  EXPECT_EQ(body_file_name("", "", "", "http://example.com/a/b/tool.exe"), "tool.exe");
  EXPECT_EQ(body_file_name("", "", "", "http://example.com/"), "");
  EXPECT_EQ(body_file_name("", "", "", "http://example.com"), "");
  EXPECT_EQ(body_file_name("", "", "", "http://example.com/x%2F..%2Fy.exe"), "y.exe");
  EXPECT_EQ(body_file_name("", "", "", "/relative/name.txt?q"), "name.txt");
  const std::string form =
      "MIME-Version: 1.0\r\nContent-Type: multipart/form-data; boundary=XX\r\n\r\n"
      "--XX\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\nhello\r\n"
      "--XX\r\ncontent-disposition: form-data; name=\"file\"; filename=\"eicar.com\"\r\n"
      "Content-Type: application/octet-stream\r\n\r\nX5O...\r\n--XX--\r\n";
  EXPECT_EQ(body_file_name("", "multipart/form-data; boundary=XX", form, "http://h/upload"),
            "eicar.com");
  // not multipart: the parts are not looked at
  EXPECT_EQ(body_file_name("", "application/octet-stream", form, "http://h/upload"), "upload");
  std::string huge(100000, 'a');
  auto name = body_file_name("attachment; filename=" + huge, "", "", "");
  EXPECT_LE(name.size(), 255u);
  EXPECT_FALSE(name.empty());
  // a long UTF-8 name is not cut inside a character
  std::string euros;
  for (int i = 0; i < 100; ++i) euros += "\xe2\x82\xac";
  auto cut = body_file_name("attachment; filename=\"" + euros + "\"", "", "", "");
  EXPECT_EQ(cut.size(), 255u);
  EXPECT_EQ(cut, euros.substr(0, 255));
}

ScanOutcome outcome(std::string verdict, std::string sha, bool block = false) {
  ScanOutcome o;
  o.verdict = std::move(verdict);
  o.sha256 = std::move(sha);
  o.file_type = "type-" + o.sha256;
  o.block = block;
  o.threat = o.verdict == "infected";
  if (o.threat) o.name = "Threat." + o.sha256;
  if (o.verdict == "not scanned") o.reason = "passed unscanned: " + o.sha256;
  return o;
}

// One scan per record, every field from the same body.
TEST(ApplyScan, OneCoherentScanPerRecord) {
  {  // clean upload, clean download: the download's
    Exchange ex;
    EXPECT_TRUE(apply_scan(ex, outcome("clean", "up")));
    EXPECT_TRUE(apply_scan(ex, outcome("clean", "down")));
    EXPECT_EQ(ex.rec.sha256, "down");
    EXPECT_EQ(ex.rec.file_type, "type-down");
  }
  {  // clean upload, infected download: infected beats clean
    Exchange ex;
    EXPECT_TRUE(apply_scan(ex, outcome("clean", "up")));
    EXPECT_FALSE(apply_scan(ex, outcome("infected", "down", true)));
    EXPECT_EQ(ex.rec.scan, "infected");
    EXPECT_EQ(ex.rec.threat, "Threat.down");
    EXPECT_EQ(ex.rec.sha256, "down");
    EXPECT_EQ(ex.reply.kind, pages::Kind::threat);
  }
  {  // an upload passed unscanned, a clean download: the record says "not scanned"
    Exchange ex;
    EXPECT_TRUE(apply_scan(ex, outcome("not scanned", "up")));
    EXPECT_TRUE(apply_scan(ex, outcome("clean", "down")));
    EXPECT_EQ(ex.rec.scan, "not scanned");
    EXPECT_EQ(ex.rec.sha256, "up");
    EXPECT_EQ(ex.rec.file_type, "type-up");
    EXPECT_EQ(ex.rec.reason, "passed unscanned: up");
  }
  {  // unscannable but passed, then a download passed unscanned: the more severe stays
    Exchange ex;
    EXPECT_TRUE(apply_scan(ex, outcome("unscannable", "up")));
    EXPECT_TRUE(apply_scan(ex, outcome("not scanned", "down")));
    EXPECT_EQ(ex.rec.scan, "unscannable");
    EXPECT_EQ(ex.rec.sha256, "up");
    EXPECT_EQ(ex.rec.reason, "");  // not the download's
  }
  {  // the scan that blocks is the one recorded, even if less severe
    Exchange ex;
    EXPECT_TRUE(apply_scan(ex, outcome("unscannable", "up")));
    EXPECT_FALSE(apply_scan(ex, outcome("not scanned", "down", true)));
    EXPECT_EQ(ex.rec.scan, "not scanned");
    EXPECT_EQ(ex.rec.sha256, "down");
  }
  {  // a cached clean verdict does not leave the earlier body's cache flag behind
    Exchange ex;
    auto up = outcome("clean", "up");
    up.cached = true;
    EXPECT_TRUE(apply_scan(ex, up));
    EXPECT_TRUE(apply_scan(ex, outcome("clean", "down")));
    EXPECT_FALSE(ex.rec.scan_cached);
  }
}

// ---- the scratch folder ----

TEST(ScratchDir, PrivateFolderRemovedWithTheObject) {
  const pc::testing::TempDir tmp;
  const auto& base = tmp.path;
  std::filesystem::path made;
  {
    ScratchDir d(base);
    ASSERT_TRUE(d.error().empty()) << d.error();
    made = d.path();
    EXPECT_EQ(made.parent_path(), base);
    EXPECT_TRUE(made.filename().string().starts_with("portcullis-scan-" +
                                                     std::to_string(::getpid()) + "-"));
    struct stat st {};
    ASSERT_EQ(::stat(made.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    std::ofstream(made / "left-over") << "x";  // what a scan may leave
  }
  EXPECT_FALSE(std::filesystem::exists(made));
}

TEST(ScratchDir, RemovesOnlyTheFoldersOfGoneProcesses) {
  const pc::testing::TempDir tmp;
  const auto& base = tmp.path;
  long pid_max = 4194304;
  std::ifstream("/proc/sys/kernel/pid_max") >> pid_max;
  const auto gone = base / ("portcullis-scan-" + std::to_string(pid_max + 1) + "-abc123");
  const auto running = base / ("portcullis-scan-" + std::to_string(::getppid()) + "-abc123");
  const auto other = base / "portcullis-scan-notapid-abc123";
  for (const auto& d : {gone, running, other}) std::filesystem::create_directories(d / "sub");
  {
    ScratchDir d(base);
    ASSERT_TRUE(d.error().empty()) << d.error();
    EXPECT_FALSE(std::filesystem::exists(gone));
    EXPECT_TRUE(std::filesystem::exists(running));
    EXPECT_TRUE(std::filesystem::exists(other));
  }
}

TEST(ScratchDir, UnusableBaseSaysWhy) {
  ScratchDir d("/proc/portcullis-no-such-place");
  EXPECT_TRUE(d.path().empty());
  EXPECT_NE(d.error().find("/proc/portcullis-no-such-place"), std::string::npos) << d.error();
}

TEST(ScratchDir, LibclamavWritesItsScratchFilesThere) {
  const pc::testing::TempDir tmp;
  const auto& base = tmp.path;
  ScratchDir dir(base);
  ASSERT_FALSE(dir.path().empty()) << dir.error();
  auto snap = snapshot();
  snap->engines = load_engines(snap->config->scan, dir.path());
  ASSERT_TRUE(snap->engines->clam) << snap->engines->error;
  EXPECT_EQ(snap->engines->clam->limits().tmpdir, dir.path());
  ScanService svc(1, 4, 0);
  std::string body(1024, '\0');  // binary data: libclamav makes a folder for its scan
  for (std::size_t i = 0; i < body.size(); ++i)
    body[i] = static_cast<char>((i * 131 + 7) ^ (i >> 3));
  // libclamav makes (and removes) a folder for the scan inside ours.
  const int in = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  ASSERT_GE(in, 0);
  ASSERT_GE(::inotify_add_watch(in, dir.path().c_str(), IN_CREATE), 0);
  EXPECT_EQ(scan(*snap, svc, body).verdict, "clean");
  alignas(inotify_event) char buf[4096];
  const ssize_t n = ::read(in, buf, sizeof buf);
  ::close(in);
  ASSERT_GT(n, 0) << "nothing was made in the scratch folder";
  const auto* ev = reinterpret_cast<const inotify_event*>(buf);
  EXPECT_TRUE(ev->mask & IN_ISDIR);
  EXPECT_NE(std::string_view(ev->name).find("scantemp"), std::string_view::npos) << ev->name;
}

}  // namespace
}  // namespace pc::txn
