#!/usr/bin/python3
"""CONNECT tunnels: TLS through curl -p and http.client set_tunnel, IPv6 clients, port
policy (proxy.connect_ports), unreachable destinations. WebSocket handshakes sent to the
proxy as plain http:// requests, relayed the same way once the server switches."""

import base64
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



WS_POLICY = """
[[header_filters]]
name = "websocket"
header = "Upgrade"
contains = "websocket"

[[rules]]
name = "no websockets to /websocket?blocked"
headers = ["websocket"]
urls = ["*/websocket?blocked*"]
action = "block"

[default]
action = "allow"
"""


class WebSocket(h.PortcullisTestCase):
    """A WebSocket client that sends its handshake to the proxy (absolute-form GET with
    Connection: Upgrade), as proxy agents of non-browser clients do."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.o = cls.class_origin()
        policy = os.path.join(cls.workdir, "ws-policy.toml")
        with open(policy, "w") as f:
            f.write(WS_POLICY)
        cls.p = cls.class_proxy({"policy": {"file": policy}})

    def setUp(self):
        self.p.revive()

    def record_for(self, url_end):
        return self.p.access_matching(lambda r: r["url"].endswith(url_end), timeout=10)[0]

    def handshake(self, path, upgrade="websocket", version="HTTP/1.1"):
        """Sends an opening handshake through the proxy; returns (socket, reader, status line,
        fields, key)."""
        key = base64.b64encode(os.urandom(16)).decode()
        s = h.connect(self.p.port)
        self.addCleanup(s.close)
        s.sendall(("GET %s %s\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: %s\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                   % (self.o.url(path), version, self.o.authority, upgrade, key)).encode())
        rd = h.ConnReader(s, timeout=20)
        start, fields = h.parse_head(rd.read_until(b"\r\n\r\n"))
        return s, rd, start, fields, key

    def test_messages_both_ways_after_the_switch(self):
        s, rd, start, fields, key = self.handshake("/websocket?echo")
        self.assertEqual(start, "HTTP/1.1 101 Switching Protocols")
        self.assertEqual(h.get_field(fields, "Sec-WebSocket-Accept"), h.websocket_accept(key))
        self.assertEqual(h.get_field(fields, "Upgrade").lower(), "websocket")
        self.assertEqual(h.get_field(fields, "Connection").lower(), "upgrade")
        self.assertEqual(h.get_field(fields, "Via"), "1.1 " + h.GATEWAY_NAME)
        big = h.payload(300000)  # a 64-bit length frame
        for opcode, data in ((1, "hello, ウェブソケット".encode()), (2, big), (9, b"ping")):
            s.sendall(h.ws_frame(opcode, data, mask=os.urandom(4)))
            self.assertEqual(h.read_ws_frame(rd), (opcode, data))
        s.sendall(h.ws_frame(8, b"\x03\xe8", mask=os.urandom(4)))  # close, 1000
        self.assertEqual(h.read_ws_frame(rd), (8, b"\x03\xe8"))
        self.assertEqual(rd.read_all(), b"")  # the server closed: so does the gateway
        s.close()  # the client's half: the exchange is over and logged
        seen = self.o.last()
        self.assertEqual(seen.target, "/websocket?echo")
        self.assertEqual(seen.header("Sec-WebSocket-Key"), key)
        rec = self.record_for("/websocket?echo")
        self.assertEqual((rec["status"], rec["result"], rec["reason"]),
                         (101, "allowed", "switched to websocket"))
        self.assertGreater(rec["bytes_in"], len(big))
        self.assertGreater(rec["bytes_out"], len(big))

    def test_policy_decides_before_the_handshake_goes_on(self):
        n = len(self.o.heads)
        s, rd, start, fields, key = self.handshake("/websocket?blocked")
        self.assertEqual(start.split(" ")[1], "403")
        self.assertEqual(len(self.o.heads), n, "the blocked handshake reached the server")

    def test_other_upgrades_are_not_passed_on(self):
        # h2c, and websocket asked for over HTTP/1.0 (RFC 9110 7.8): the server sees a plain GET.
        for upgrade, version in (("h2c", "HTTP/1.1"), ("websocket", "HTTP/1.0")):
            s, rd, start, fields, key = self.handshake("/websocket?plain", upgrade, version)
            self.assertEqual(start.split(" ")[1], "426", (upgrade, version))
            names = {n.lower() for n, _ in self.o.last().fields}
            self.assertNotIn("upgrade", names)
            self.assertNotIn("connection", names)

    def test_a_switch_not_asked_for_is_refused(self):
        s, rd, start, fields, key = self.handshake("/websocket?proto=h2c")
        self.assertEqual(start.split(" ")[1], "502")
        self.assertIn("other than websocket", self.record_for("/websocket?proto=h2c")["reason"])
        r = self.curl("-x", self.p.url, "-o", "/dev/null", "-w", "%{http_code}",
                      self.o.url("/websocket?force=1"))
        self.assertEqual(r.stdout, b"502")
        self.assertIn("without being asked", self.record_for("/websocket?force=1")["reason"])


if __name__ == "__main__":
    h.main()
