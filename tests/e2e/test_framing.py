#!/usr/bin/python3
"""Message bodies through the proxy: Content-Length, chunked with trailers in both
directions, read-until-close origins, 64 MiB byte-exact transfers, Expect: 100-continue,
bodiless responses (HEAD, 204, 304) on a reused connection, 1xx relaying."""

import hashlib
import http.client
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

MiB = 1024 * 1024


class Framing(h.PortcullisTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.o = cls.class_origin()
        cls.p = cls.class_proxy()

    def setUp(self):
        self.p.revive()

    def file_of(self, data):
        path = os.path.join(self.workdir, "upload-%d-%d.bin" % (len(data), time.monotonic_ns()))
        with open(path, "wb") as f:
            f.write(data)
        self.addCleanup(os.unlink, path)
        return path

    def test_content_length_upload(self):
        data = h.payload(3 * MiB + 17)
        c = http.client.HTTPConnection("127.0.0.1", self.p.port, timeout=60)
        self.addCleanup(c.close)
        c.request("PUT", self.o.url("/echo"), body=data)
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        j = json.loads(r.read())
        self.assertEqual((j["body_len"], j["body_sha256"]), (len(data), h.sha256(data)))

    def test_chunked_upload_with_trailers(self):
        data = h.payload(300000)
        s = h.connect(self.p.port)
        self.addCleanup(s.close)
        head = ("POST %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
                % (self.o.url("/echo"), self.o.authority)).encode()
        s.sendall(head)
        pos = 0
        for size in (1, 10, 4000, 65536, 100000, 130453):
            piece = data[pos:pos + size]
            s.sendall(b"%x;ext=1\r\n" % len(piece) + piece + b"\r\n")
            pos += size
        self.assertEqual(pos, len(data))
        s.sendall(b"0\r\nX-Checksum: abc123\r\n\r\n")
        resp = h.read_response(h.ConnReader(s, timeout=30))
        self.assertEqual(resp.status, 200)
        j = resp.json()
        self.assertEqual((j["body_len"], j["body_sha256"]), (len(data), h.sha256(data)))
        req = self.o.last()
        if req.chunked:
            # Still chunked upstream: the trailer section must travel with it.
            self.assertIn(["X-Checksum", "abc123"], [list(t) for t in req.trailers])

    def test_chunked_upload_curl(self):
        data = h.payload(2 * MiB + 5)
        path = self.file_of(data)
        r = self.curl("-x", self.p.url, "-H", "Transfer-Encoding: chunked", "--data-binary", "@" + path,
                      self.o.url("/echo"))
        j = json.loads(r.stdout)
        self.assertEqual((j["body_len"], j["body_sha256"]), (len(data), h.sha256(data)))

    def test_chunked_download_with_trailers(self):
        n = 500000
        s = h.connect(self.p.port)
        self.addCleanup(s.close)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nTE: trailers\r\n\r\n"
                  % (self.o.url("/chunked?n=%d&trailer=1" % n).encode(), self.o.authority.encode()))
        resp = h.read_response(h.ConnReader(s, timeout=30))
        self.assertEqual(resp.status, 200)
        self.assertEqual(len(resp.body), n)
        self.assertEqual(h.sha256(resp.body), h.payload_sha(n))
        if "chunked" in (resp.header("Transfer-Encoding") or "").lower():
            self.assertIn(("X-Trailer", "done"), resp.trailers, "trailer field lost")

    def test_chunked_download_curl(self):
        status, body, _ = self.curl_status("-x", self.p.url, self.o.url("/chunked?n=%d" % (3 * MiB)))
        self.assertEqual(status, 200)
        self.assertEqual(h.sha256(body), h.payload_sha(3 * MiB))

    def test_read_until_close_origin(self):
        for path in ("/close", "/close10"):
            for client_version in ("HTTP/1.1", "HTTP/1.0"):
                with self.subTest(path=path, client=client_version):
                    n = 777777
                    s = h.connect(self.p.port)
                    self.addCleanup(s.close)
                    s.sendall(b"GET %s %s\r\nHost: %s\r\n\r\n" % (self.o.url("%s?n=%d" % (path, n)).encode(),
                                                                 client_version.encode(),
                                                                 self.o.authority.encode()))
                    resp = h.read_response(h.ConnReader(s, timeout=30))
                    self.assertEqual(resp.status, 200)
                    self.assertEqual(len(resp.body), n)
                    self.assertEqual(h.sha256(resp.body), h.payload_sha(n))

    def test_64mib_download_byte_exact(self):
        n = 64 * MiB
        out = os.path.join(self.workdir, "big.bin")
        self.addCleanup(lambda: os.path.exists(out) and os.unlink(out))
        self.curl("-x", self.p.url, "-o", out, self.o.url("/bytes?n=%d" % n), timeout=120)
        hs = hashlib.sha256()
        with open(out, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                hs.update(block)
        self.assertEqual(os.path.getsize(out), n)
        self.assertEqual(hs.hexdigest(), h.payload_sha(n))

    def test_large_upload_expect_100_continue(self):
        data = h.payload(32 * MiB + 3)
        path = self.file_of(data)
        t0 = time.monotonic()
        # curl waits up to --expect100-timeout for the 100 before sending the body anyway;
        # a long timeout makes a proxy that swallows the 100 visible as a slow transfer.
        r = self.curl("-v", "-x", self.p.url, "-H", "Expect: 100-continue", "--expect100-timeout", "20",
                      "--data-binary", "@" + path, self.o.url("/echo"), timeout=120)
        elapsed = time.monotonic() - t0
        j = json.loads(r.stdout)
        self.assertEqual((j["body_len"], j["body_sha256"]), (len(data), h.sha256(data)))
        self.assertIn(b"100 Continue", r.stderr, "client never saw 100 Continue")
        self.assertLess(elapsed, 15, "the upload waited for curl's expect100-timeout")

    def test_expect_100_raw_small(self):
        s = h.connect(self.p.port)
        self.addCleanup(s.close)
        s.sendall(b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
                  % (self.o.url("/echo").encode(), self.o.authority.encode()))
        rd = h.ConnReader(s, timeout=10)
        head = rd.read_until(b"\r\n\r\n")
        self.assertIsNotNone(head, "connection closed before 100 Continue")
        self.assertRegex(head.decode("latin-1"), r"^HTTP/1\.1 100 ")
        s.sendall(b"hello")
        resp = h.read_response(rd)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.json()["body"], "hello")

    def test_bodiless_responses_on_one_connection(self):
        s = h.connect(self.p.port)
        self.addCleanup(s.close)
        rd = h.ConnReader(s, timeout=10)
        seq = [
            ("HEAD", "/bytes?n=123456", 200),
            ("GET", "/status?code=204", 204),
            ("GET", "/status?code=304", 304),
            ("HEAD", "/chunked?n=1000", 200),
            ("HEAD", "/status?code=404&cl=99", 404),
            ("GET", "/bytes?n=10", 200),
        ]
        for method, path, code in seq:
            s.sendall(b"%s %s HTTP/1.1\r\nHost: %s\r\n\r\n"
                      % (method.encode(), self.o.url(path).encode(), self.o.authority.encode()))
            resp = h.read_response(rd, method)
            self.assertIsNotNone(resp, "connection closed before the response to %s %s" % (method, path))
            self.assertEqual(resp.status, code, "%s %s" % (method, path))
            if method == "HEAD" and path.startswith("/bytes"):
                self.assertEqual(resp.header("Content-Length"), "123456")
        self.assertEqual(resp.body, h.payload(10))
        # nothing stray (a body of a bodiless response) may follow
        s.settimeout(0.3)
        try:
            extra = s.recv(100)
        except OSError:
            extra = b""
        self.assertEqual(extra, b"")

    def test_1xx_relayed(self):
        s = h.connect(self.p.port)
        self.addCleanup(s.close)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.o.url("/info1xx").encode(),
                                                          self.o.authority.encode()))
        resp = h.read_response(h.ConnReader(s))
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, b"after early hints")
        self.assertEqual([st for st, _ in resp.interim], [103])
        self.assertEqual(h.get_field(resp.interim[0][1], "Link"), "</style.css>; rel=preload")

    def test_1xx_not_sent_to_http10_client(self):
        # RFC 9110 15.2: a server must not send 1xx to an HTTP/1.0 client.
        s = h.connect(self.p.port)
        self.addCleanup(s.close)
        s.sendall(b"GET %s HTTP/1.0\r\n\r\n" % self.o.url("/info1xx").encode())
        resp = h.read_response(h.ConnReader(s))
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.interim, [])
        self.assertEqual(resp.body, b"after early hints")


if __name__ == "__main__":
    h.main()
