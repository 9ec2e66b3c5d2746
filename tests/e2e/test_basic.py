#!/usr/bin/python3
"""Basic forwarding: methods and versions through curl, wget and http.client; IPv4/IPv6
clients and origins; guest listeners; keep-alive on both sides; the local page; proxy
duties (hop-by-hop fields, Via, loops, Max-Forwards, X-Forwarded-For)."""

import http.client
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


class Forwarding(h.PortcullisTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.o = cls.class_origin()
        cls.p = cls.class_proxy()

    def setUp(self):
        self.p.revive()

    def via_proxy(self, method, path, body=None, headers=None, conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.p.port, timeout=20)
        if conn is None:
            self.addCleanup(c.close)
        c.request(method, self.o.url(path), body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r, data

    def test_curl_get_http11(self):
        r = self.curl("-x", self.p.url, self.o.url("/echo?q=1"))
        j = json.loads(r.stdout)
        self.assertEqual(j["method"], "GET")
        # a proxy forwarding to an origin server sends origin-form (RFC 9112 3.2.1)
        self.assertEqual(j["target"], "/echo?q=1")
        self.assertEqual(j["version"], "HTTP/1.1")
        hosts = [v for n, v in j["headers"] if n.lower() == "host"]
        self.assertEqual(hosts, [self.o.authority])

    def test_curl_http10_client(self):
        status, body, hdrs = self.curl_status("-0", "-x", self.p.url, self.o.url("/bytes?n=5000"))
        self.assertEqual(status, 200)
        self.assertEqual(body, h.payload(5000))
        self.assertRegex(hdrs, r"^HTTP/1\.[01] 200", "response status line")

    def test_http10_raw_gets_no_chunked(self):
        # An HTTP/1.0 client must not receive chunked framing (RFC 9112 7.1), even when
        # the origin answers chunked.
        s = h.connect(self.p.port)
        self.addCleanup(s.close)
        s.sendall(b"GET %s HTTP/1.0\r\n\r\n" % self.o.url("/chunked?n=70000").encode())
        rd = h.ConnReader(s)
        resp = h.read_response(rd)
        self.assertEqual(resp.status, 200)
        self.assertNotIn("chunked", (resp.header("Transfer-Encoding") or "").lower())
        self.assertEqual(resp.body, h.payload(70000))

    def test_methods_http11(self):
        for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"):
            with self.subTest(method=method):
                body = None if method in ("GET", "HEAD") else ("body of " + method).encode()
                r, data = self.via_proxy(method, "/echo", body=body)
                self.assertEqual(r.status, 200)
                if method == "HEAD":
                    self.assertEqual(data, b"")
                    last = self.o.last()
                    self.assertEqual(last.method, "HEAD")
                    continue
                j = json.loads(data)
                self.assertEqual(j["method"], method)
                self.assertEqual(j["body"], (body or b"").decode())

    def test_methods_http10_raw(self):
        for method in ("GET", "POST", "PUT", "DELETE", "OPTIONS"):
            with self.subTest(method=method):
                body = b"" if method == "GET" else b"ten bytes!"
                req = (b"%s %s HTTP/1.0\r\nContent-Length: %d\r\n\r\n"
                       % (method.encode(), self.o.url("/echo").encode(), len(body)) + body)
                resp = self.raw(self.p.port, req)
                self.assertIsNotNone(resp, "no response to HTTP/1.0 " + method)
                self.assertEqual(resp.status, 200)
                j = resp.json()
                self.assertEqual(j["method"], method)
                self.assertEqual(j["body"], body.decode())

    def test_wget_env_proxy(self):
        env = h.clean_env(http_proxy=self.p.url + "/")
        r = subprocess.run(["wget", "-q", "-O", "-", "-t", "1", "-T", "20", self.o.url("/bytes?n=12345")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, h.payload(12345))
        self.assertTrue(any(v.startswith("Wget") for v in self.o.last().headers("User-Agent")),
                        "the request did not come from wget")

    def test_wget_use_proxy_flag(self):
        env = h.clean_env(http_proxy=self.p.url)
        r = subprocess.run(["wget", "-q", "-O", "-", "-t", "1", "-T", "20", "-e", "use_proxy=yes",
                            "--post-data", "from wget", self.o.url("/echo")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        j = json.loads(r.stdout)
        self.assertEqual((j["method"], j["body"]), ("POST", "from wget"))

    def test_ipv6_origin(self):
        o6 = self.origin("::1")
        r = self.curl("-g", "-x", self.p.url, o6.url("/echo"))
        j = json.loads(r.stdout)
        self.assertEqual(j["target"], "/echo")
        self.assertEqual(o6.accepted, 1)

    def test_keepalive_client_connection(self):
        c = http.client.HTTPConnection("127.0.0.1", self.p.port, timeout=20)
        self.addCleanup(c.close)
        local = None
        for i in range(5):
            r, data = self.via_proxy("POST" if i % 2 else "GET", "/echo", body=b"x" * i if i % 2 else None, conn=c)
            self.assertEqual(r.status, 200)
            self.assertFalse(r.will_close, "proxy asked to close the client connection after request %d" % i)
            name = c.sock.getsockname()
            if local is None:
                local = name
            self.assertEqual(name, local, "http.client had to reconnect: the proxy closed the connection")

    def test_upstream_reuse(self):
        o = self.origin()
        for i in range(5):
            r = self.curl("-x", self.p.url, o.url("/echo?i=%d" % i))
            self.assertEqual(json.loads(r.stdout)["target"], "/echo?i=%d" % i)
        self.assertEqual(len(o.complete_requests()), 5)
        self.assertLess(o.accepted, 5, "no upstream connection was reused (origin saw %d connections)" % o.accepted)

    def test_origin_form_gets_local_page(self):
        before = len(self.o.heads)
        status, body, hdrs = self.curl_status(self.p.url + "/")
        self.assertEqual(status, 200)
        self.assertRegex(hdrs, r"(?im)^content-type:\s*text/html")
        self.assertIn(b"<", body)
        self.assertLess(len(body), 64 * 1024)
        self.assertNoOriginRequest(self.o, before)


class ListenersAndFamilies(h.PortcullisTestCase):
    def test_ipv6_client_and_guest_listener(self):
        o = self.origin()
        lst = [
            {"name": "main4", "address": "127.0.0.1", "port": h.free_port()},
            {"name": "main6", "address": "::1", "port": h.free_port("::1")},
            {"name": "guests", "address": "127.0.0.1", "port": h.free_port(), "guest": True},
        ]
        p = self.proxy(listeners=lst)
        r = self.curl("-x", "http://[::1]:%d" % lst[1]["port"], o.url("/echo?v6"))
        self.assertEqual(json.loads(r.stdout)["target"], "/echo?v6")
        r = self.curl("-x", "http://127.0.0.1:%d" % lst[2]["port"], o.url("/echo?guest"))
        self.assertEqual(json.loads(r.stdout)["target"], "/echo?guest")
        r = self.curl("-x", "http://127.0.0.1:%d" % lst[0]["port"], o.url("/echo?v4"))
        self.assertEqual(json.loads(r.stdout)["target"], "/echo?v4")
        recs = p.wait_access_records(3)
        by_query = {}
        for rec in recs:
            for q in ("v6", "guest", "v4"):
                if str(rec.get("url", "")).endswith("?" + q):
                    by_query[q] = rec
        self.assertEqual(set(by_query), {"v6", "guest", "v4"}, "access log records: %r" % recs)
        self.assertIs(by_query["guest"]["guest"], True)
        self.assertIs(by_query["v4"]["guest"], False)
        self.assertIs(by_query["v6"]["guest"], False)
        self.assertEqual(by_query["guest"]["listener"], "guests")
        self.assertEqual(by_query["v6"]["listener"], "main6")
        self.assertIn("::1", str(by_query["v6"]["client"]))
        self.assertIn("127.0.0.1", str(by_query["v4"]["client"]))


class ProxyDuties(h.PortcullisTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.o = cls.class_origin()
        cls.p = cls.class_proxy()

    def setUp(self):
        self.p.revive()

    def send(self, method, path, headers=(), body=b"", version="HTTP/1.1"):
        head = "%s %s %s\r\nHost: %s\r\n" % (method, self.o.url(path), version, self.o.authority)
        for n, v in headers:
            head += "%s: %s\r\n" % (n, v)
        if body:
            head += "Content-Length: %d\r\n" % len(body)
        return self.raw(self.p.port, head.encode() + b"\r\n" + body, method=method)

    def test_hop_by_hop_request_fields_removed(self):
        resp = self.send("GET", "/echo", [
            ("Connection", "keep-alive, X-Conn-Named"),
            ("X-Conn-Named", "must go"),
            ("Proxy-Connection", "keep-alive"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Trailer", "X-Something"),
            ("Upgrade", "example/1"),
            ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
            ("X-End-To-End", "kept"),
        ])
        self.assertEqual(resp.status, 200)
        seen = {n.lower(): v for n, v in resp.json()["headers"]}
        for name in ("x-conn-named", "proxy-connection", "keep-alive", "te", "trailer", "upgrade",
                     "proxy-authorization"):
            self.assertNotIn(name, seen, "hop-by-hop field %s reached the origin" % name)
        if "connection" in seen:
            self.assertNotIn("x-conn-named", seen["connection"].lower())
            self.assertNotIn("keep-alive, x-conn", seen["connection"].lower())
        self.assertEqual(seen.get("x-end-to-end"), "kept")

    def test_hop_by_hop_response_fields_removed(self):
        resp = self.send("GET", "/hopresp")
        self.assertEqual(resp.status, 200)
        names = {n.lower() for n, _ in resp.fields}
        self.assertNotIn("x-resp-hop", names)
        self.assertNotIn("keep-alive", names)
        self.assertNotIn("proxy-authenticate", names)
        self.assertEqual(resp.header("X-End"), "kept")
        self.assertEqual(resp.body, b"hop")

    def test_via_added_to_request_and_response(self):
        resp = self.send("GET", "/echo", [("Via", "1.0 upstream-cache")])
        self.assertEqual(resp.status, 200)
        vias = [v for n, v in resp.json()["headers"] if n.lower() == "via"]
        joined = ", ".join(vias)
        self.assertIn("1.0 upstream-cache", joined)
        self.assertIn("1.1 " + h.GATEWAY_NAME, joined)
        self.assertLess(joined.index("1.0 upstream-cache"), joined.index("1.1 " + h.GATEWAY_NAME),
                        "our Via entry must be appended after the existing one")
        # RFC 9110 7.6.3: the proxy adds Via to the responses it forwards too
        self.assertIn("1.1 " + h.GATEWAY_NAME, ", ".join(resp.headers("Via")))

    def test_via_loop_refused(self):
        before = len(self.o.heads)
        resp = self.send("GET", "/echo", [("Via", "1.1 somewhere, 1.1 " + h.GATEWAY_NAME)])
        self.assertIsNotNone(resp)
        self.assertEqual(resp.status, 403)
        self.assertRegex(resp.header("Content-Type", ""), r"(?i)text/html")
        self.assertNoOriginRequest(self.o, before)

    def test_max_forwards_zero_answered_locally(self):
        for method in ("OPTIONS", "TRACE"):
            with self.subTest(method=method):
                before = len(self.o.heads)
                resp = self.send(method, "/echo", [("Max-Forwards", "0")])
                self.assertIsNotNone(resp)
                self.assertEqual(resp.status, 200)
                self.assertNoOriginRequest(self.o, before)

    def test_max_forwards_decremented(self):
        for method in ("OPTIONS", "TRACE"):
            with self.subTest(method=method):
                resp = self.send(method, "/echo", [("Max-Forwards", "3")])
                self.assertEqual(resp.status, 200)
                self.assertEqual(self.o.last().method, method)
                self.assertEqual(self.o.last().headers("Max-Forwards"), ["2"])

    def test_xff_add(self):
        resp = self.send("GET", "/echo")
        self.assertEqual(h.get_fields(resp.json()["headers"], "X-Forwarded-For"), ["127.0.0.1"])
        resp = self.send("GET", "/echo", [("X-Forwarded-For", "192.0.2.7")])
        xff = ", ".join(h.get_fields(resp.json()["headers"], "X-Forwarded-For"))
        self.assertRegex(xff, r"^192\.0\.2\.7,\s*127\.0\.0\.1$")


class XForwardedForModes(h.PortcullisTestCase):
    def run_mode(self, mode):
        o = self.origin()
        p = self.proxy({"proxy": {"x_forwarded_for": mode}})
        out = []
        for hdr in ((), (("X-Forwarded-For", "192.0.2.7"),)):
            c = http.client.HTTPConnection("127.0.0.1", p.port, timeout=20)
            self.addCleanup(c.close)
            c.request("GET", o.url("/echo"), headers=dict(hdr))
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            out.append(h.get_fields(json.loads(r.read())["headers"], "X-Forwarded-For"))
        return out

    def test_keep(self):
        self.assertEqual(self.run_mode("keep"), [[], ["192.0.2.7"]])

    def test_remove(self):
        self.assertEqual(self.run_mode("remove"), [[], []])

    def test_add(self):
        without, with_ = self.run_mode("add")
        self.assertEqual(without, ["127.0.0.1"])
        self.assertRegex(", ".join(with_), r"^192\.0\.2\.7,\s*127\.0\.0\.1$")


if __name__ == "__main__":
    h.main()
