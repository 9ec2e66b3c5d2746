#!/usr/bin/python3
"""Strict parsing with raw sockets: every malformed or ambiguous request is refused with
the right status and a small HTML page, and the origin never sees it. Malformed origin
responses become 502."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

LIMITS = {
    "max_head_bytes": 8192,
    "max_fields": 30,
    "max_field_bytes": 4096,
    "max_url_bytes": 1024,
    "max_chunk_size_digits": 8,
}


class Smuggling(h.PortcullisTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.o = cls.class_origin()
        cls.p = cls.class_proxy({"limits": LIMITS})
        cls.host = cls.o.authority.encode()

    def setUp(self):
        self.p.revive()
        # every test's requests carry its own marker, so a late head from an earlier test
        # (a streamed body that failed later) is never blamed on this one
        self.marker = "case=" + self._testMethodName
        self.url = self.o.url("/echo?" + self.marker).encode()

    def line(self, method=b"GET", target=None, version=b"HTTP/1.1"):
        return b"%s %s %s\r\n" % (method, target or self.url, version)

    def reject(self, data, status, must_close=True):
        """Sends data on a new connection; asserts one response with status and an HTML
        page, no request at the origin, and (for framing errors) a closed connection."""
        s = h.connect(self.p.port)
        self.addCleanup(s.close)
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        rd = h.ConnReader(s, timeout=5)
        try:
            resp = h.read_response(rd)
        except (ConnectionResetError, EOFError, socket.timeout) as e:
            self.fail("no response (%r) for %r" % (e, data[:200]))
        self.assertIsNotNone(resp, "connection closed without a response for %r" % data[:200])
        self.assertEqual(resp.status, status, "for %r: got %d %s" % (data[:200], resp.status, resp.text()[:300]))
        self.assertRegex(resp.header("Content-Type", ""), r"(?i)^text/html", "error page content type")
        self.assertIn(b"<", resp.body, "error page is not HTML")
        self.assertLess(len(resp.body), 16384, "error page is not small")
        if must_close:
            self.assertTrue(rd.eof or h.is_closed(s, 3.0),
                            "connection stayed open after a framing error (RFC 9112 6.3 requires close)")
        self.assertNoOriginRequest(self.o, marker=self.marker)
        return resp

    def test_cl_and_te(self):
        self.reject(self.line(b"POST") + b"Host: " + self.host +
                    b"\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)

    def test_te_and_cl_smuggled_request_not_forwarded(self):
        inner = b"GET " + self.url + b"&smuggled HTTP/1.1\r\nHost: " + self.host + b"\r\n\r\n"
        self.reject(self.line(b"POST") + b"Host: " + self.host +
                    b"\r\nTransfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n0\r\n\r\n" % (5 + len(inner)) +
                    inner, 400)

    def test_two_content_length(self):
        self.reject(self.line(b"POST") + b"Host: " + self.host +
                    b"\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400)

    def test_content_length_list(self):
        self.reject(self.line(b"POST") + b"Host: " + self.host + b"\r\nContent-Length: 5, 6\r\n\r\nhello!", 400)

    def test_invalid_content_length(self):
        for value in (b"abc", b"-1", b"+5", b"5x", b"0x10", b"99999999999999999999999999"):
            with self.subTest(value=value):
                self.reject(self.line(b"POST") + b"Host: " + self.host + b"\r\nContent-Length: " + value +
                            b"\r\n\r\nhello", 400)

    def test_te_chunked_not_last(self):
        self.reject(self.line(b"POST") + b"Host: " + self.host +
                    b"\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400)

    def test_te_gzip_alone(self):
        # RFC 9112 6.1: chunked not last in a request -> the length is unknown -> MUST 400.
        self.reject(self.line(b"POST") + b"Host: " + self.host + b"\r\nTransfer-Encoding: gzip\r\n\r\n", 400)

    def test_te_unknown_coding(self):
        # A coding the gateway does not implement, with chunked last: 501 Not Implemented.
        self.reject(self.line(b"POST") + b"Host: " + self.host +
                    b"\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501)

    def test_te_in_http10(self):
        # RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
        self.reject(self.line(b"POST", version=b"HTTP/1.0") + b"Host: " + self.host +
                    b"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)

    def test_obs_fold(self):
        self.reject(self.line() + b"Host: " + self.host + b"\r\nX-Folded: a\r\n b\r\n\r\n", 400)

    def test_bare_lf(self):
        self.reject(b"GET " + self.url + b" HTTP/1.1\nHost: " + self.host + b"\nX-A: b\n\n", 400)

    def test_bare_lf_in_one_field(self):
        self.reject(self.line() + b"Host: " + self.host + b"\r\nX-A: b\nX-B: c\r\n\r\n", 400)

    def test_bare_cr(self):
        self.reject(self.line() + b"Host: " + self.host + b"\r\nX-A: b\rc\r\n\r\n", 400)

    def test_whitespace_before_colon(self):
        self.reject(self.line() + b"Host: " + self.host + b"\r\nX-A : b\r\n\r\n", 400)

    def test_invalid_field_name(self):
        for name in (b"X@A", b"X(A)", b"X A", b"X\x7fA", b"\xc3\xa4"):
            with self.subTest(name=name):
                self.reject(self.line() + b"Host: " + self.host + b"\r\n" + name + b": b\r\n\r\n", 400)

    def test_nul_in_header(self):
        self.reject(self.line() + b"Host: " + self.host + b"\r\nX-A: a\x00b\r\n\r\n", 400)

    def test_host_mismatch(self):
        self.reject(self.line() + b"Host: other.example:8080\r\n\r\n", 400)

    def test_missing_host(self):
        # RFC 9112 3.2: an HTTP/1.1 request without Host gets 400.
        self.reject(self.line() + b"Accept: */*\r\n\r\n", 400)

    def test_duplicate_host(self):
        self.reject(self.line() + b"Host: " + self.host + b"\r\nHost: " + self.host + b"\r\n\r\n", 400)

    def test_url_too_long(self):
        target = self.url + b"&" + b"a" * LIMITS["max_url_bytes"]
        self.reject(self.line(target=target) + b"Host: " + self.host + b"\r\n\r\n", 414)

    def test_url_at_limit_passes(self):
        base = self.url + b"&"
        target = base + b"a" * (LIMITS["max_url_bytes"] - len(base))
        self.assertEqual(len(target), LIMITS["max_url_bytes"])
        resp = self.raw(self.p.port, self.line(target=target) + b"Host: " + self.host + b"\r\n\r\n")
        self.assertEqual(resp.status, 200)

    def test_head_too_large(self):
        fields = b"".join(b"X-Big-%d: %s\r\n" % (i, b"v" * 1000) for i in range(10))
        self.reject(self.line() + b"Host: " + self.host + b"\r\n" + fields + b"\r\n", 431)

    def test_too_many_fields(self):
        fields = b"".join(b"X-F-%d: v\r\n" % i for i in range(LIMITS["max_fields"] + 5))
        self.reject(self.line() + b"Host: " + self.host + b"\r\n" + fields + b"\r\n", 431)

    def test_field_too_large(self):
        self.reject(self.line() + b"Host: " + self.host + b"\r\nX-Long: " +
                    b"v" * (LIMITS["max_field_bytes"] + 10) + b"\r\n\r\n", 431)

    def test_http2_request_line(self):
        self.reject(self.line(version=b"HTTP/2.0") + b"Host: " + self.host + b"\r\n\r\n", 505)

    def test_bad_version(self):
        self.reject(self.line(version=b"HTTP/1.1x") + b"Host: " + self.host + b"\r\n\r\n", 400)

    def test_chunk_size_too_many_digits(self):
        digits = b"0" * LIMITS["max_chunk_size_digits"] + b"5"  # one digit over the limit
        data = (self.line(b"POST") + b"Host: " + self.host + b"\r\nTransfer-Encoding: chunked\r\n\r\n" +
                digits + b"\r\nhello\r\n0\r\n\r\n")
        s = h.connect(self.p.port)
        self.addCleanup(s.close)
        s.sendall(data)
        rd = h.ConnReader(s, timeout=10)
        try:
            resp = h.read_response(rd)
        except (ConnectionResetError, EOFError):
            resp = None
        self.assertIsNotNone(resp, "connection closed without a response")
        self.assertEqual(resp.status, 400)
        time.sleep(0.5)  # a streamed head may have reached the origin; let it settle
        self.assertEqual([r for r in self.o.complete_requests() if self.marker in r.target], [],
                         "the origin received a complete request with a bad chunk size")

    def test_chunk_size_at_limit_passes(self):
        digits = b"0" * (LIMITS["max_chunk_size_digits"] - 1) + b"5"
        data = (self.line(b"POST") + b"Host: " + self.host + b"\r\nTransfer-Encoding: chunked\r\n\r\n" +
                digits + b"\r\nhello\r\n0\r\n\r\n")
        resp = self.raw(self.p.port, data)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.json()["body"], "hello")

    def test_bad_chunk_size(self):
        data = (self.line(b"POST") + b"Host: " + self.host + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"zz\r\nhello\r\n0\r\n\r\n")
        resp = self.raw(self.p.port, data)
        self.assertIsNotNone(resp, "connection closed without a response")
        self.assertEqual(resp.status, 400)
        time.sleep(0.5)
        self.assertEqual([r for r in self.o.complete_requests() if self.marker in r.target], [])

    def test_proxy_still_healthy(self):
        resp = self.raw(self.p.port, self.line() + b"Host: " + self.host + b"\r\n\r\n")
        self.assertEqual(resp.status, 200)


class BadOriginResponses(h.PortcullisTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.o = cls.class_origin()
        cls.p = cls.class_proxy()

    def check_502(self, path):
        resp = self.raw(self.p.port, b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n"
                        % (self.o.url(path).encode(), self.o.authority.encode()))
        self.assertIsNotNone(resp, "no response for " + path)
        self.assertEqual(resp.status, 502, "%s: %r" % (path, resp.body[:300]))
        self.assertNotIn(b"hello", resp.body, "the malformed response leaked through")

    def test_garbage_status_line(self):
        self.check_502("/garbage")

    def test_response_cl_and_te(self):
        self.check_502("/clte")

    def test_response_duplicate_cl(self):
        self.check_502("/dupcl")


if __name__ == "__main__":
    h.main()
