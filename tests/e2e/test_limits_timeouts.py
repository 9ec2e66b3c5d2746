#!/usr/bin/python3
"""Client ACL, requests aimed at the gateway's own listeners, timeouts (header read,
keep-alive idle, upstream first byte) and per-client connection limits."""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


class Acl(h.PortcullisTestCase):
    def test_client_not_in_client_networks(self):
        o = self.origin()
        p = self.proxy({"proxy": {"client_networks": ["10.0.0.0/8"]}})
        status, body, hdrs = self.curl_status("-x", p.url, o.url("/echo"))
        self.assertEqual(status, 403)
        self.assertRegex(hdrs, r"(?im)^content-type:\s*text/html")
        resp = self.raw(p.port, b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n", method="CONNECT")
        self.assertIsNotNone(resp)
        self.assertEqual(resp.status, 403)
        self.assertNoOriginRequest(o, 0)
        self.assertEqual(o.accepted, 0)
        recs = p.wait_access_records(2)
        self.assertTrue(recs and all(r.get("result") == "denied" for r in recs), recs)

    def test_ipv6_client_not_in_client_networks(self):
        o = self.origin()
        lst = [{"name": "v6", "address": "::1", "port": h.free_port("::1")}]
        self.proxy({"proxy": {"client_networks": ["127.0.0.0/8"]}}, listeners=lst)
        status, _, _ = self.curl_status("-x", "http://[::1]:%d" % lst[0]["port"], o.url("/echo"))
        self.assertEqual(status, 403)
        self.assertEqual(o.accepted, 0)


class SelfDestination(h.PortcullisTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.listeners = [
            {"name": "a", "address": "127.0.0.1", "port": h.free_port()},
            {"name": "b", "address": "127.0.0.1", "port": h.free_port(), "guest": True},
        ]
        cls.p = cls.class_proxy({"proxy": {"connect_ports": [443] + [l["port"] for l in cls.listeners]}},
                                listeners=cls.listeners)

    def setUp(self):
        self.p.revive()

    def test_absolute_form_to_own_listener(self):
        for l in self.listeners:
            for host in ("127.0.0.1", "localhost"):
                with self.subTest(listener=l["name"], host=host):
                    auth = "%s:%d" % (host, l["port"])
                    resp = self.raw(self.p.port, b"GET http://%s/ HTTP/1.1\r\nHost: %s\r\n\r\n"
                                    % (auth.encode(), auth.encode()), timeout=10)
                    self.assertIsNotNone(resp, "no response (the proxy may have looped)")
                    self.assertEqual(resp.status, 403)

    def test_connect_to_own_listener(self):
        for l in self.listeners:
            with self.subTest(listener=l["name"]):
                resp = self.raw(self.p.port, b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                                % (l["port"], l["port"]), method="CONNECT", timeout=10)
                self.assertIsNotNone(resp)
                self.assertEqual(resp.status, 403)

    def test_still_alive_and_serving(self):
        o = self.origin()
        r = self.curl("-x", self.p.url, o.url("/echo"))
        self.assertIn(b'"target": "/echo"', r.stdout)


class Timeouts(h.PortcullisTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.o = cls.class_origin()
        cls.p = cls.class_proxy({"timeouts": {"header_read": 1, "keepalive_idle": 2, "upstream_first_byte": 1}})

    def setUp(self):
        self.p.revive()

    def test_header_read_timeout_does_not_block_others(self):
        slow = h.connect(self.p.port)
        self.addCleanup(slow.close)
        t0 = time.monotonic()
        slow.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nX-Half" % (self.o.url("/echo").encode(),
                                                               self.o.authority.encode()))
        # meanwhile another client is served at once
        r = self.curl("-x", self.p.url, self.o.url("/echo?other=1"), timeout=10)
        self.assertIn(b"/echo?other=1", r.stdout)
        self.assertLess(time.monotonic() - t0, 1.0, "the other client waited for the stalled one")
        closed = h.is_closed(slow, 6.0)
        elapsed = time.monotonic() - t0
        self.assertTrue(closed, "stalled client still connected after %.1fs (header_read = 1)" % elapsed)
        self.assertGreater(elapsed, 0.8, "closed before header_read elapsed")
        self.assertLess(elapsed, 4.0)

    def test_header_read_timeout_slowloris(self):
        # trickling bytes does not extend the header deadline
        s = h.connect(self.p.port)
        self.addCleanup(s.close)
        t0 = time.monotonic()
        s.sendall(b"GET %s HTTP/1.1\r\n" % self.o.url("/echo").encode())
        closed = False
        for i in range(40):
            try:
                s.sendall(b"X-%d: y\r\n" % i)
            except OSError:
                closed = True
                break
            if h.is_closed(s, 0.2):
                closed = True
                break
        elapsed = time.monotonic() - t0
        self.assertTrue(closed, "slowloris client still connected after %.1fs" % elapsed)
        self.assertLess(elapsed, 4.0)

    def test_keepalive_idle(self):
        s = h.connect(self.p.port)
        self.addCleanup(s.close)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.o.url("/echo").encode(), self.o.authority.encode()))
        rd = h.ConnReader(s)
        self.assertEqual(h.read_response(rd).status, 200)
        t0 = time.monotonic()
        self.assertTrue(h.is_closed(s, 6.0), "idle keep-alive connection not closed (keepalive_idle = 2)")
        self.assertGreater(time.monotonic() - t0, 1.5)

    def test_upstream_first_byte_timeout(self):
        t0 = time.monotonic()
        resp = self.raw(self.p.port, b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n"
                        % (self.o.url("/hang").encode(), self.o.authority.encode()), timeout=15)
        elapsed = time.monotonic() - t0
        self.assertIsNotNone(resp)
        self.assertEqual(resp.status, 504)
        self.assertGreater(elapsed, 0.8)
        self.assertLess(elapsed, 5.0)

    def test_slow_body_within_timeouts_is_fine(self):
        # the first byte arrives at once, then the body trickles: no first-byte timeout
        status, body, _ = self.curl_status("-x", self.p.url, self.o.url("/slow?n=50000&secs=2&steps=4"))
        self.assertEqual(status, 200)
        self.assertEqual(body, h.payload(50000))


class ConnectionLimits(h.PortcullisTestCase):
    def test_max_connections_per_client(self):
        o = self.origin()
        p = self.proxy({"proxy": {"max_connections_per_client": 2}})
        req = b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (o.url("/echo").encode(), o.authority.encode())
        held = []
        for i in range(2):
            s = h.connect(p.port)
            self.addCleanup(s.close)
            s.sendall(req)
            resp = h.read_response(h.ConnReader(s))
            self.assertEqual(resp.status, 200, "connection %d" % (i + 1))
            held.append(s)
        third = h.connect(p.port)
        self.addCleanup(third.close)
        try:
            third.sendall(req)
            resp = h.read_response(h.ConnReader(third, timeout=5))
        except (OSError, EOFError):
            resp = None
        if resp is not None:
            self.assertNotEqual(resp.status, 200, "a third concurrent connection was served")
            self.assertTrue(h.is_closed(third, 3.0))
        # freeing one slot lets a new connection in
        held[0].close()

        def fourth_ok():
            try:
                s = h.connect(p.port, timeout=3)
            except OSError:
                return False
            try:
                s.sendall(req)
                r = h.read_response(h.ConnReader(s, timeout=3))
                return r is not None and r.status == 200
            except (OSError, EOFError, ValueError):
                return False
            finally:
                s.close()
        self.assertTrue(h.wait_until(fourth_ok, 5.0, 0.2), "no new connection accepted after one closed")


if __name__ == "__main__":
    h.main()
