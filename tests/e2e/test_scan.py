#!/usr/bin/python3
"""Malware scanning through the forward proxy (issue #5), end to end: EICAR as a plain
download, chunked, in a zip and a zip in a zip, in a POST body and a multipart upload (never
reaching the origin); the files of Debian's clamav-testfiles; clean downloads and uploads
byte-exact; the verdict cache; scan.max_scan_size with too_large = pass and block; trickled
slow downloads (bytes before the end; an infected body cut off, never complete); endless
streams; a full scan queue with on_failure = closed and open; an engine reload under load;
the engine's private scratch folder.

The shipped signatures (signatures/clamav) are found through the compiled-in path."""

import io
import json
import os
import shutil
import socket
import sys
import threading
import time
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

MiB = 1 << 20
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
EICAR_SIG = "Portcullis.Test.EICAR"
TESTFILES = "/usr/share/clamav-testfiles"
RELOAD_MARKER = b"PORTCULLIS-E2E-RELOAD-MARKER-7f3a9c"


def zipped(name, data, store=False):
    buf = io.BytesIO()
    method = zipfile.ZIP_STORED if store else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w", method) as z:
        z.writestr(name, data)
    return buf.getvalue()


class ScanOrigin(h.OriginServer):
    """The harness origin plus:
      /file/NAME[?chunked=1][&cd=FILENAME]   the bytes registered in .files[NAME]
                               (Content-Length or chunked; cd: with Content-Disposition)
      /stream?n=N              N bytes of video/mp4 without a length (closes after)
      /dribble/NAME?first=F    .files[NAME] with Content-Length: F bytes at once, then 64 KiB
                               every 50 ms until .gate is set (at most up to the last MiB),
                               then the rest
    """

    def __init__(self, *a, **kw):
        self.files = {}
        self.gate = threading.Event()
        super().__init__(*a, **kw)

    def respond(self, sock, reader, req, path, q, keep):
        ka = b"" if keep else b"Connection: close\r\n"
        if path.startswith("/file/"):
            data = self.files[path[len("/file/"):]]
            if "cd" in q:
                ka += b'Content-Disposition: attachment; filename="%s"\r\n' % q["cd"].encode()
            if q.get("chunked") == "1":
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Transfer-Encoding: chunked\r\n%s\r\n" % ka)
                for i in range(0, len(data), 10000):
                    piece = data[i:i + 10000]
                    sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
            else:
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Content-Length: %d\r\n%s\r\n" % (len(data), ka) + data)
            return True
        if path == "/stream":
            n = int(q.get("n", "100000"))
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nConnection: close\r\n\r\n")
            data = h.payload(n)
            for i in range(0, n, 65536):
                sock.sendall(data[i:i + 65536])
            sock.shutdown(socket.SHUT_WR)
            return False
        if path.startswith("/dribble/"):
            data = self.files[path[len("/dribble/"):]]
            first = int(q.get("first", str(MiB)))
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\n%s\r\n" % (len(data), ka) + data[:first])
            at = first
            deadline = time.monotonic() + 60
            while not self.gate.is_set() and at < len(data) - MiB and time.monotonic() < deadline:
                sock.sendall(data[at:at + 65536])
                at += 65536
                time.sleep(0.05)
            self.gate.wait(60)
            try:
                sock.sendall(data[at:])
            except OSError:
                return False
            return True
        return super().respond(sock, reader, req, path, q, keep)


class ScanCase(h.PortcullisTestCase):
    def scan_origin(self):
        o = ScanOrigin()
        self.addCleanup(o.close)
        return o

    def record_for(self, p, marker, n=1, timeout=10.0, contains=False):
        """The access records whose URL ends with marker (contains: has it anywhere); waits
        for n of them."""
        def match(r):
            url = r.get("url", "")
            return marker in url if contains else url.endswith(marker)
        return p.access_matching(match, n, timeout)

    def get(self, p, url, *args, timeout=60):
        return self.curl_status("-x", p.url, *args, url, timeout=timeout)

    def block_log_line(self, p, rec):
        """The diagnostic log line of a blocked transaction (by its request ID)."""
        rid = rec["request_id"]

        def line():
            for ln in p.stderr_text(400000).splitlines():
                if rid in ln and "sha256" in ln:
                    return ln
            return None
        found = h.wait_until(line, timeout=10)
        self.assertTrue(found, "no block log line for %s" % rid)
        return found

    def assertThreatBlocked(self, p, o, name, data, path=None, threat=EICAR_SIG):
        o.files[name] = data
        url = o.url(path or "/file/" + name)
        status, body, _ = self.get(p, url)
        self.assertEqual(status, 403, "%s passed: %r" % (name, body[:200]))
        self.assertIn(threat, body.decode("utf-8", "replace"))
        rec = self.record_for(p, url.split("//", 1)[1])[-1]
        self.assertEqual(rec["result"], "denied")
        self.assertEqual(rec["scan"], "infected")
        self.assertIn(threat, rec["threat"])
        self.assertEqual(rec["sha256"], h.sha256(data))
        return rec


class DefaultScanTest(ScanCase):
    """The default [scan] settings."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.o = ScanOrigin()
        cls.addClassCleanup(cls.o.close)
        cls.p = cls.class_proxy()

    def setUp(self):
        self.p.revive()

    def test_eicar_plain_download(self):
        self.assertThreatBlocked(self.p, self.o, "eicar.com", EICAR)

    def test_eicar_chunked_download(self):
        self.o.files["eicar-chunked.com"] = EICAR + b"\n"
        self.assertThreatBlocked(self.p, self.o, "eicar-chunked.com", EICAR + b"\n",
                                 path="/file/eicar-chunked.com?chunked=1")

    def test_eicar_in_zip(self):
        rec = self.assertThreatBlocked(self.p, self.o, "eicar.zip", zipped("eicar.com", EICAR))
        self.assertEqual(rec["file_type"], "zip")

    def test_eicar_in_zip_in_zip(self):
        inner = zipped("eicar.com", EICAR)
        self.assertThreatBlocked(self.p, self.o, "eicar2.zip", zipped("inner.zip", inner))

    def test_eicar_upload_post_body(self):
        status, body, _ = self.get(self.p, self.o.url("/echo?m=upload-plain"), "--data-binary", EICAR.decode())
        self.assertEqual(status, 403)
        self.assertIn(EICAR_SIG, body.decode("utf-8", "replace"))
        self.assertNoOriginRequest(self.o, marker="upload-plain")
        rec = self.record_for(self.p, "upload-plain")[-1]
        self.assertEqual(rec["scan"], "infected")
        self.assertEqual(rec["result"], "denied")

    def test_eicar_upload_multipart(self):
        d = os.path.join(self.workdir, "mp")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "eicar.com")
        with open(path, "wb") as f:
            f.write(EICAR)
        status, body, _ = self.get(self.p, self.o.url("/echo?m=upload-multipart"), "-F", "file=@" + path,
                                   "-F", "comment=hello")
        self.assertEqual(status, 403)
        self.assertNoOriginRequest(self.o, marker="upload-multipart")
        rec = self.record_for(self.p, "upload-multipart")[-1]
        self.assertEqual(rec["scan"], "infected")

    def test_clean_multipart_upload_arrives_unchanged(self):
        path = os.path.join(self.workdir, "clean.txt")
        data = b"just a clean text file\n" * 40
        with open(path, "wb") as f:
            f.write(data)
        r = self.curl("-x", self.p.url, "-F", "file=@" + path, self.o.url("/echo?m=mp-clean"))
        echo = json.loads(r.stdout)
        body = echo["body"].encode("latin-1")
        self.assertTrue(body.startswith(b"--"), body[:80])
        self.assertIn(data, body)
        self.assertEqual(echo["body_len"], len(body))
        rec = self.record_for(self.p, "mp-clean")[-1]
        self.assertEqual(rec["scan"], "clean")

    def test_clamav_testfiles(self):
        if not os.path.isdir(TESTFILES):
            self.skipTest("clamav-testfiles is not installed")
        names = sorted(os.listdir(TESTFILES))
        self.assertTrue(names)
        failures = []
        for name in names:
            with open(os.path.join(TESTFILES, name), "rb") as f:
                data = f.read()
            self.o.files["tf-" + name] = data
            url = self.o.url("/file/tf-" + name)
            status, body, _ = self.get(self.p, url)
            rec = self.record_for(self.p, "/file/tf-" + name)[-1]
            want = "unscannable" if name == "clam_cache_emax.tgz" else "infected"
            if status != 403 or rec.get("scan") != want or rec.get("result") != "denied":
                failures.append((name, status, rec.get("scan"), rec.get("threat"), rec.get("reason")))
        self.assertEqual(failures, [])

    def test_clean_50mib_download_byte_exact(self):
        n = 50 * MiB
        status, body, _ = self.get(self.p, self.o.url("/bytes?n=%d" % n), timeout=120)
        self.assertEqual(status, 200)
        self.assertEqual(len(body), n)
        self.assertEqual(h.sha256(body), h.payload_sha(n))
        rec = self.record_for(self.p, "/bytes?n=%d" % n)[-1]
        self.assertEqual(rec["scan"], "clean")
        self.assertEqual(rec["sha256"], h.payload_sha(n))
        self.assertEqual(rec["result"], "allowed")

    def test_clean_chunked_download_byte_exact(self):
        n = 3 * MiB + 17
        status, body, _ = self.get(self.p, self.o.url("/chunked?n=%d&trailer=1" % n))
        self.assertEqual(status, 200)
        self.assertEqual(h.sha256(body), h.payload_sha(n))

    def test_scanned_chunked_download_keeps_trailers(self):
        n = 300000
        url = self.o.url("/chunked?n=%d&trailer=1&m=dltrailer" % n)
        s = h.connect(self.p.port)
        self.addCleanup(s.close)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nTE: trailers\r\n\r\n"
                  % (url.encode(), self.o.authority.encode()))
        resp = h.read_response(h.ConnReader(s, timeout=30))
        self.assertEqual(resp.status, 200)
        self.assertEqual(h.sha256(resp.body), h.payload_sha(n))
        self.assertIn("chunked", (resp.header("Transfer-Encoding") or "").lower())
        self.assertIn(("X-Trailer", "done"), resp.trailers, "trailer field lost")
        self.assertEqual(self.record_for(self.p, "dltrailer")[-1].get("scan"), "clean")

    def test_clean_5mib_upload_byte_exact(self):
        n = 5 * MiB
        path = os.path.join(self.workdir, "up5")
        with open(path, "wb") as f:
            f.write(h.payload(n))
        # curl sends Expect: 100-continue for a body this large: the gateway answers it.
        r = self.curl("-x", self.p.url, "--data-binary", "@" + path, self.o.url("/echo?m=upload5"), timeout=120)
        echo = json.loads(r.stdout)
        self.assertEqual(echo["body_len"], n)
        self.assertEqual(echo["body_sha256"], h.payload_sha(n))
        rec = self.record_for(self.p, "upload5")[-1]
        self.assertEqual(rec["result"], "allowed")

    def test_scanned_chunked_upload_keeps_trailers(self):
        data = h.payload(200000)
        url = self.o.url("/echo?m=uptrailer")
        s = h.connect(self.p.port)
        self.addCleanup(s.close)
        s.sendall(("POST %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n"
                   "Trailer: X-Checksum\r\n\r\n" % (url, self.o.authority)).encode())
        for pos in range(0, len(data), 65536):
            piece = data[pos:pos + 65536]
            s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        s.sendall(b"0\r\nX-Checksum: abc123\r\n\r\n")
        resp = h.read_response(h.ConnReader(s, timeout=30))
        self.assertEqual(resp.status, 200, resp.body[:300])
        j = resp.json()
        self.assertEqual((j["body_len"], j["body_sha256"]), (len(data), h.sha256(data)))
        self.assertTrue(j["chunked"], "a body with trailers must stay chunked upstream")
        self.assertIn(["X-Checksum", "abc123"], j["trailers"])
        self.assertEqual(self.record_for(self.p, "uptrailer")[-1].get("scan"), "clean")

    def test_verdict_cache(self):
        n = 123457
        for _ in range(2):
            status, body, _ = self.get(self.p, self.o.url("/bytes?n=%d&cache=1" % n))
            self.assertEqual(status, 200)
            self.assertEqual(h.sha256(body), h.payload_sha(n))
        recs = self.record_for(self.p, "cache=1", n=2)
        self.assertEqual(recs[-1]["scan"], "clean")
        self.assertTrue(recs[-1]["scan_cached"])

    def test_threat_logged_with_file_name_size_type_and_engine(self):
        # The file name from Content-Disposition, else from the URL.
        for name, path, want in (("cd-eicar", "/file/cd-eicar?cd=invoice.pdf.exe", "invoice.pdf.exe"),
                                 ("url-eicar.com", "/file/url-eicar.com", "url-eicar.com")):
            with self.subTest(path=path):
                self.o.files[name] = EICAR
                url = self.o.url(path)
                status, _, _ = self.get(self.p, url)
                self.assertEqual(status, 403)
                rec = self.record_for(self.p, url.split("//", 1)[1])[-1]
                line = self.block_log_line(self.p, rec)
                self.assertIn("threat found: " + EICAR_SIG, line)
                self.assertIn("sha256 " + h.sha256(EICAR), line)
                self.assertIn('file "%s"' % want, line)
                self.assertIn("%d bytes" % len(EICAR), line)
                self.assertRegex(line, r"engine ClamAV [0-9.]+/[0-9]+")

    def test_one_scan_per_record_upload_then_download(self):
        up = "a clean upload body\n" * 50
        # clean upload, infected download: the record is the download's, infected
        self.o.files["after-upload.com"] = EICAR
        status, _, _ = self.get(self.p, self.o.url("/file/after-upload.com?m=updl1"), "--data-binary", up)
        self.assertEqual(status, 403)
        rec = self.record_for(self.p, "m=updl1")[-1]
        self.assertEqual(rec["scan"], "infected")
        self.assertEqual(rec["sha256"], h.sha256(EICAR))
        self.assertEqual(self.o.requests[-1].body, up.encode(), "the clean upload reached the origin")
        # clean upload, clean download: the response body's scan
        data = h.payload(5000)
        self.o.files["after-upload.bin"] = data
        status, body, _ = self.get(self.p, self.o.url("/file/after-upload.bin?m=updl2"), "--data-binary", up)
        self.assertEqual(status, 200)
        self.assertEqual(body, data)
        rec = self.record_for(self.p, "m=updl2")[-1]
        self.assertEqual(rec["scan"], "clean")
        self.assertEqual(rec["sha256"], h.sha256(data))
        self.assertNotEqual(rec["sha256"], h.sha256(up.encode()))

    def test_endless_stream_passes_unscanned(self):
        n = 300000
        status, body, _ = self.get(self.p, self.o.url("/stream?n=%d" % n))
        self.assertEqual(status, 200)
        self.assertEqual(h.sha256(body), h.payload_sha(n))
        rec = self.record_for(self.p, "/stream?n=%d" % n)[-1]
        self.assertEqual(rec["scan"], "not scanned")
        self.assertIn("endless stream", rec["reason"])

    def test_head_is_not_scanned(self):
        self.o.files["eicar-head.com"] = EICAR
        status, _, hdrs = self.get(self.p, self.o.url("/file/eicar-head.com"), "-I")
        self.assertEqual(status, 200)


class ScratchFolderTest(ScanCase):
    """scan.scratch_dir: a private folder for the engine's scratch files, made at start,
    made again when removed under the gateway, removed at exit."""

    def test_private_folder_made_again_and_removed(self):
        o = self.scan_origin()
        base = os.path.join(self.workdir, "scratch-%d" % os.getpid())
        os.makedirs(base, exist_ok=True)
        p = self.proxy({"scan": {"scratch_dir": base}})
        mine = [n for n in os.listdir(base) if n.startswith("portcullis-scan-%d-" % p.proc.pid)]
        self.assertEqual(len(mine), 1, os.listdir(base))
        folder = os.path.join(base, mine[0])
        self.assertEqual(os.stat(folder).st_mode & 0o777, 0o700)
        # Binary bodies make libclamav use the folder for every scan.
        self.assertThreatBlocked(p, o, "a.zip", zipped("eicar.com", EICAR))
        shutil.rmtree(folder)
        self.assertThreatBlocked(p, o, "b.zip", zipped("eicar.com", EICAR + b" "))
        self.assertTrue(os.path.isdir(folder))
        p.stop()
        p.expect_exit = True  # stopped here: the cleanup's stop finds it gone
        self.assertEqual(os.listdir(base), [])


class TooLargeTest(ScanCase):
    def proxy_with(self, too_large):
        return self.proxy({"scan": {"max_scan_size": MiB, "too_large": too_large}})

    def test_pass(self):
        p = self.proxy_with("pass")
        o = self.scan_origin()
        n = 2 * MiB
        for path in ("/bytes?n=%d" % n, "/chunked?n=%d" % n):
            status, body, _ = self.get(p, o.url(path))
            self.assertEqual(status, 200, path)
            self.assertEqual(h.sha256(body), h.payload_sha(n), path)
            rec = self.record_for(p, path)[-1]
            self.assertEqual(rec["scan"], "not scanned", path)
            self.assertIn("passed unscanned", rec["reason"])
        # an upload over the limit streams through unscanned
        path = os.path.join(self.workdir, "up2")
        with open(path, "wb") as f:
            f.write(h.payload(n))
        r = self.curl("-x", p.url, "--data-binary", "@" + path, o.url("/echo?m=bigup"))
        self.assertEqual(json.loads(r.stdout)["body_sha256"], h.payload_sha(n))
        # an upload passed unscanned, then a clean download: the record keeps the more severe
        # "not scanned", with the upload's (empty) hash rather than the download's
        o.files["small-after-bigup"] = b"small and clean\n"
        status, body, _ = self.get(p, o.url("/file/small-after-bigup"), "--data-binary", "@" + path)
        self.assertEqual(status, 200)
        self.assertEqual(body, b"small and clean\n")
        rec = self.record_for(p, "/file/small-after-bigup")[-1]
        self.assertEqual(rec["scan"], "not scanned")
        self.assertIn("passed unscanned", rec["reason"])
        self.assertEqual(rec.get("sha256", ""), "")
        # a small infected file is still scanned
        self.assertThreatBlocked(p, o, "small-eicar.com", EICAR)

    def test_block(self):
        p = self.proxy_with("block")
        o = self.scan_origin()
        n = 2 * MiB
        for path in ("/bytes?n=%d" % n, "/chunked?n=%d" % n):
            status, body, _ = self.get(p, o.url(path))
            self.assertEqual(status, 403, path)
            rec = self.record_for(p, path)[-1]
            self.assertEqual(rec["scan"], "not scanned")
            self.assertEqual(rec["result"], "denied")
        path = os.path.join(self.workdir, "up-block")
        with open(path, "wb") as f:
            f.write(h.payload(n))
        status, _, _ = self.get(p, o.url("/echo?m=bigblock"), "--data-binary", "@" + path)
        self.assertEqual(status, 403)
        self.assertNoOriginRequest(o, marker="bigblock")


class TrickleTest(ScanCase):
    """trickle_after = 0.5: a body still arriving is delivered as it comes, minus a held-back
    tail; the verdict decides whether the tail follows."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.p = cls.class_proxy({"scan": {"trickle_after": 0.5}})

    def fetch_dribbled(self, o, name):
        """Requests /dribble/NAME raw; returns (head fields, body bytes received before the
        gate opened, body bytes in all, whether the connection ended cleanly)."""
        s = h.connect(self.p.port, timeout=30)
        self.addCleanup(s.close)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                  % (o.url("/dribble/" + name).encode(), o.authority.encode()))
        reader = h.ConnReader(s, timeout=30)
        raw = reader.read_until(b"\r\n\r\n")
        self.assertIsNotNone(raw, "no response head")
        start, fields = h.parse_head(raw)
        self.assertIn(" 200 ", start + " ")
        # bytes arrive while the origin is still sending (gate closed)
        got = h.wait_until(lambda: reader.buf or reader._fill(), timeout=30)
        early = len(reader.buf)
        self.assertFalse(o.gate.is_set())
        o.gate.set()
        clean = True
        try:
            while reader._fill():
                pass
        except (OSError, socket.timeout):
            clean = False
        return fields, early, reader.buf, clean, got

    def test_slow_clean_download_trickles(self):
        o = self.scan_origin()
        n = 6 * MiB
        o.files["slow-clean"] = h.payload(n)
        fields, early, body, _, got = self.fetch_dribbled(o, "slow-clean")
        self.assertTrue(got, "no body bytes before the end of the download")
        self.assertGreater(early, 0)
        self.assertEqual(int(h.get_field(fields, "Content-Length")), n)
        self.assertEqual(len(body), n)
        self.assertEqual(h.sha256(body), h.payload_sha(n))
        rec = self.record_for(self.p, "/dribble/slow-clean")[-1]
        self.assertEqual(rec["scan"], "clean")

    def test_slow_infected_download_is_cut(self):
        o = self.scan_origin()
        n = 6 * MiB
        data = EICAR + h.payload(n - len(EICAR))
        o.files["slow-eicar"] = data
        fields, early, body, _, got = self.fetch_dribbled(o, "slow-eicar")
        self.assertTrue(got, "no body bytes before the end of the download")
        self.assertEqual(int(h.get_field(fields, "Content-Length")), n)
        self.assertLess(len(body), n, "the infected file was delivered complete")
        self.assertLessEqual(len(body), n - MiB)
        rec = self.record_for(self.p, "/dribble/slow-eicar")[-1]
        self.assertEqual(rec["scan"], "infected")
        self.assertEqual(rec["result"], "denied")
        self.assertEqual(rec["sha256"], h.sha256(data))

    def test_slow_infected_download_curl_fails(self):
        o = self.scan_origin()
        n = 4 * MiB
        o.files["curl-eicar"] = EICAR + h.payload(n - len(EICAR))
        threading.Timer(2.0, o.gate.set).start()
        r = self.curl("-x", self.p.url, "-o", os.devnull, "-w", "%{size_download}",
                      o.url("/dribble/curl-eicar"), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertLess(int(r.stdout or b"0"), n)


class QueueOverflowTest(ScanCase):
    """scan.threads = 1 and queue = 1: concurrent downloads overflow the scan queue; the
    failure mode decides."""

    N = 10
    SIZE = 24 * MiB

    def run_concurrently(self, p, o, tag):
        results = [None] * self.N
        barrier = threading.Barrier(self.N)

        def one(i):
            barrier.wait(10)
            n = self.SIZE + i
            results[i] = self.get(p, o.url("/bytes?n=%d&%s=%d" % (n, tag, i)), timeout=120)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(self.N)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(150)
        recs = self.record_for(p, "&%s=" % tag, n=self.N, contains=True)
        return results, recs

    def test_closed(self):
        p = self.proxy({"scan": {"threads": 1, "queue": 1, "on_failure": "closed"}})
        o = self.scan_origin()
        results, recs = self.run_concurrently(p, o, "closed")
        statuses = [r[0] for r in results]
        self.assertTrue(all(s in (200, 403) for s in statuses), statuses)
        refused = [r for r in recs if "fail-closed" in r.get("reason", "")]
        self.assertEqual(len(refused), statuses.count(403))
        self.assertGreater(len(refused), 0, "no scan was refused: %r" % statuses)
        for r in refused:
            self.assertEqual(r["result"], "denied")
            self.assertEqual(r["scan"], "error")

    def test_open(self):
        p = self.proxy({"scan": {"threads": 1, "queue": 1, "on_failure": "open"}})
        o = self.scan_origin()
        results, recs = self.run_concurrently(p, o, "open")
        for i, (status, body, _) in enumerate(results):
            self.assertEqual(status, 200)
            self.assertEqual(h.sha256(body), h.payload_sha(self.SIZE + i))
        self.assertEqual([r["result"] for r in recs], ["allowed"] * self.N)


class FileTypePolicyTest(ScanCase):
    """A response-phase rule on the true file type is decided after the scan."""

    def test_file_type_rule(self):
        pol = os.path.join(self.workdir, "filetype-policy.toml")
        with open(pol, "w") as f:
            f.write('[[rules]]\nname = "no executables"\nfile_types = ["exe"]\naction = "block"\n\n'
                    '[default]\naction = "allow"\n')
        p = self.proxy({"policy": {"file": pol}})
        o = self.scan_origin()
        with open("/bin/true", "rb") as f:
            o.files["tool.bin"] = f.read()
        o.files["notes.txt"] = b"plain text, nothing to see\n" * 10
        status, body, _ = self.get(p, o.url("/file/tool.bin"))
        self.assertEqual(status, 403)
        rec = self.record_for(p, "/file/tool.bin")[-1]
        self.assertEqual(rec["scan"], "clean")
        self.assertEqual(rec["file_type"], "exe")
        self.assertEqual(rec["rule"], "no executables")
        self.assertEqual(rec["result"], "denied")
        status, body, _ = self.get(p, o.url("/file/notes.txt"))
        self.assertEqual(status, 200)
        self.assertEqual(body, o.files["notes.txt"])


class ReloadTest(ScanCase):
    def test_reload_under_load(self):
        sigdir = os.path.join(self.workdir, "clamav")
        os.makedirs(sigdir, exist_ok=True)
        p = self.proxy({"scan": {"clamav_dir": sigdir}})
        o = self.scan_origin()
        o.files["marker.bin"] = RELOAD_MARKER + h.payload(1000)
        stop = threading.Event()
        outcomes = []

        def load(k):
            i = 0
            while not stop.is_set() and i < 200:
                n = 2 * MiB + k * 1000 + i
                status, body, _ = self.get(p, o.url("/bytes?n=%d&reload=%d" % (n, k)))
                outcomes.append((status, h.sha256(body) == h.payload_sha(n)))
                i += 1

        threads = [threading.Thread(target=load, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        try:
            h.wait_until(lambda: len(outcomes) >= 3, timeout=30)
            with open(os.path.join(sigdir, "e2e.ndb"), "w") as f:
                f.write("Portcullis.Test.Reload:0:0:%s\n" % RELOAD_MARKER.hex())
            logged = h.wait_until(lambda: "loading new scanning engines" in p.stderr_text(200000), timeout=30)
            self.assertTrue(logged, "no engine reload logged")
            before = len(outcomes)
            h.wait_until(lambda: len(outcomes) >= before + 3, timeout=30)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        self.assertTrue(outcomes)
        self.assertEqual([o_ for o_ in outcomes if o_ != (200, True)], [])
        # the new signature is in use once the new engines are (they load in the background)
        def blocked():
            status, _, _ = self.get(p, o.url("/file/marker.bin?t=%f" % time.monotonic()))
            return status == 403
        self.assertTrue(h.wait_until(blocked, timeout=30, interval=0.5), "new signature not in use")


if __name__ == "__main__":
    h.main()
