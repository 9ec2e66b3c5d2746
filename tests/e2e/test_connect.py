#!/usr/bin/python3
"""CONNECT tunnels: TLS through curl -p and http.client set_tunnel, IPv6 clients, port
policy (proxy.connect_ports), unreachable destinations."""

import http.client
import json
import os
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


class Connect(h.PortcullisTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = os.path.join(cls.workdir, "tls")
        os.makedirs(d)
        cls.cert, cls.key = h.make_cert(d)
        cls.tls = cls.class_origin(tls_context=h.server_tls_context(cls.cert, cls.key))
        cls.plain = cls.class_origin()
        cls.closed_port = h.free_port()
        cls.listeners = [
            {"name": "proxy", "address": "127.0.0.1", "port": h.free_port()},
            {"name": "proxy6", "address": "::1", "port": h.free_port("::1")},
        ]
        cls.p = cls.class_proxy({"proxy": {"connect_ports": [443, cls.tls.port, cls.closed_port]}},
                                listeners=cls.listeners)

    def setUp(self):
        self.p.revive()

    def test_curl_tunnel(self):
        r = self.curl("-p", "-x", self.p.url, "--cacert", self.cert, self.tls.url("/echo?tls=1"))
        j = json.loads(r.stdout)
        self.assertEqual(j["target"], "/echo?tls=1")
        # inside the tunnel the proxy does not touch the request
        names = [n.lower() for n, _ in j["headers"]]
        self.assertNotIn("via", names)
        self.assertNotIn("x-forwarded-for", names)

    def test_curl_tunnel_ipv6_client(self):
        r = self.curl("-p", "-x", "http://[::1]:%d" % self.listeners[1]["port"], "--cacert", self.cert,
                      self.tls.url("/bytes?n=200000"))
        self.assertEqual(r.stdout, h.payload(200000))

    def test_http_client_set_tunnel(self):
        ctx = h.client_tls_context(self.cert)
        c = http.client.HTTPSConnection("127.0.0.1", self.p.port, timeout=20, context=ctx)
        self.addCleanup(c.close)
        c.set_tunnel("localhost", self.tls.port)
        for i in range(3):  # several requests inside one tunnel
            c.request("POST", "/echo", body=b"secret %d" % i)
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            j = json.loads(r.read())
            self.assertEqual(j["body"], "secret %d" % i)

    def test_tunnel_large_both_ways(self):
        data = h.payload(8 * 1024 * 1024 + 1)
        path = os.path.join(self.workdir, "tunnel-up.bin")
        with open(path, "wb") as f:
            f.write(data)
        self.addCleanup(os.unlink, path)
        r = self.curl("-p", "-x", self.p.url, "--cacert", self.cert, "--data-binary", "@" + path,
                      self.tls.url("/echo"), timeout=60)
        j = json.loads(r.stdout)
        self.assertEqual((j["body_len"], j["body_sha256"]), (len(data), h.sha256(data)))

    def test_connect_raw_response(self):
        s = h.connect(self.p.port)
        self.addCleanup(s.close)
        s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (self.tls.port, self.tls.port))
        rd = h.ConnReader(s)
        resp = h.read_response(rd, "CONNECT")
        self.assertEqual(resp.status, 200)
        self.assertIsNone(resp.header("Content-Length"), "a 2xx to CONNECT carries no Content-Length")
        self.assertIsNone(resp.header("Transfer-Encoding"))
        self.assertEqual(rd.buf, b"")
        ctx = h.client_tls_context(self.cert)
        ts = ctx.wrap_socket(s, server_hostname="localhost")
        self.addCleanup(ts.close)
        ts.sendall(b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        inner = h.read_response(h.ConnReader(ts))
        self.assertEqual(inner.status, 200)
        self.assertEqual(inner.json()["target"], "/echo")

    def test_connect_port_not_allowed(self):
        before = self.plain.accepted
        resp = self.raw(self.p.port, b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                        % (self.plain.port, self.plain.port), method="CONNECT")
        self.assertIsNotNone(resp)
        self.assertEqual(resp.status, 403)
        self.assertRegex(resp.header("Content-Type", ""), r"(?i)text/html")
        self.assertEqual(self.plain.accepted, before, "the proxy connected to a forbidden port")

    def test_connect_port_not_allowed_curl(self):
        r = self.curl("-p", "-x", self.p.url, "-k", "-v", "https://127.0.0.1:%d/" % self.plain.port, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr.decode(errors="replace"), r"(?i)(CONNECT|HTTP/1\.[01]) .*403|403")

    def test_connect_closed_port(self):
        # Nothing listens there: RFC 9110 leaves the exact status open; a gateway error (5xx,
        # 502 expected) and not a 200 is what matters.
        resp = self.raw(self.p.port, b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                        % (self.closed_port, self.closed_port), method="CONNECT")
        self.assertIsNotNone(resp)
        self.assertIn(resp.status, (502, 503, 504))
        time.sleep(0.5)
        self.p.assert_alive()

    def test_connect_bad_authority(self):
        for target in (b"127.0.0.1", b"/path", b"http://127.0.0.1:%d/" % self.tls.port):
            with self.subTest(target=target):
                resp = self.raw(self.p.port, b"CONNECT %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % target,
                                method="CONNECT")
                self.assertIsNotNone(resp)
                self.assertEqual(resp.status, 400)


if __name__ == "__main__":
    h.main()
