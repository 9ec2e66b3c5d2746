#!/usr/bin/python3
"""Name resolution through a fake DNS server (found, NXDOMAIN, REFUSED, no answer) and
parent proxies (Basic credentials, direct_domains, failover)."""

import base64
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

RULES = {
    "good.e2e.test": "127.0.0.1",
    "*.direct.e2e.test": "127.0.0.1",
    "direct.e2e.test": "127.0.0.1",
    "nx.e2e.test": "NXDOMAIN",
    "refused.e2e.test": "REFUSED",
    "silent.e2e.test": "DROP",
}


class Dns(h.PortcullisTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dns = h.FakeDNS(RULES)
        cls.addClassCleanup(cls.dns.close)
        cls.o = cls.class_origin()
        d = os.path.join(cls.workdir, "tls")
        os.makedirs(d)
        cls.cert, cls.key = h.make_cert(d)
        cls.tls = cls.class_origin(tls_context=h.server_tls_context(cls.cert, cls.key))
        cls.p = cls.class_proxy({
            "dns": {"servers": [cls.dns.server], "timeout": 0.5, "tries": 1, "hosts_file": False},
            "proxy": {"connect_ports": [443, cls.tls.port]},
        })

    def setUp(self):
        self.p.revive()

    def get(self, host, path="/echo", port=None):
        port = port or self.o.port
        url = "http://%s:%d%s" % (host, port, path)
        t0 = time.monotonic()
        resp = self.raw(self.p.port, b"GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (url.encode(), host.encode(), port),
                        timeout=15)
        return resp, time.monotonic() - t0

    def test_found(self):
        resp, _ = self.get("good.e2e.test")
        self.assertIsNotNone(resp)
        self.assertEqual(resp.status, 200)
        hosts = h.get_fields(resp.json()["headers"], "Host")
        self.assertEqual(hosts, ["good.e2e.test:%d" % self.o.port])
        self.assertIn("good.e2e.test", self.dns.names_queried())

    def test_found_curl_connect(self):
        r = self.curl("-p", "-x", self.p.url, "--cacert", self.cert,
                      "https://good.e2e.test:%d/echo?c=1" % self.tls.port)
        self.assertEqual(json.loads(r.stdout)["target"], "/echo?c=1")

    def test_nxdomain(self):
        before = len(self.o.heads)
        resp, _ = self.get("nx.e2e.test")
        self.assertIsNotNone(resp)
        self.assertEqual(resp.status, 502)
        self.assertRegex(resp.text(), r"(?i)not found|nxdomain|no such|does not exist|unknown")
        self.assertNotRegex(resp.text(), r"(?i)refused")
        self.assertNoOriginRequest(self.o, before)

    def test_refused(self):
        resp, _ = self.get("refused.e2e.test")
        self.assertIsNotNone(resp)
        self.assertEqual(resp.status, 502)
        self.assertRegex(resp.text(), r"(?i)refused")

    def test_timeout(self):
        resp, elapsed = self.get("silent.e2e.test")
        self.assertIsNotNone(resp)
        self.assertEqual(resp.status, 504)
        self.assertLess(elapsed, 8, "DNS timeout took far longer than dns.timeout * tries")
        self.assertIn("silent.e2e.test", self.dns.names_queried())

    def test_connect_nxdomain(self):
        resp = self.raw(self.p.port, b"CONNECT nx.e2e.test:%d HTTP/1.1\r\nHost: nx.e2e.test:%d\r\n\r\n"
                        % (self.tls.port, self.tls.port), method="CONNECT")
        self.assertIsNotNone(resp)
        self.assertEqual(resp.status, 502)


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


class Parents(h.PortcullisTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = os.path.join(cls.workdir, "tls")
        os.makedirs(d)
        cls.cert, cls.key = h.make_cert(d)

    def setUp(self):
        self.dns = self.fake_dns(RULES)
        self.o = self.origin()
        self.tls = self.origin(tls_context=h.server_tls_context(self.cert, self.key))

    def start(self, parents, direct=()):
        return self.proxy({
            "dns": {"servers": [self.dns.server], "timeout": 0.5, "tries": 1, "hosts_file": False},
            "proxy": {"connect_ports": [443, self.tls.port]},
            "upstream": {"parents": parents, "direct_domains": list(direct), "retry_after": 30},
        })

    def test_parent_gets_absolute_form_with_basic_auth(self):
        par = self.parent("p1")
        p = self.start([{"host": "127.0.0.1", "port": par.port, "username": "alice", "password": "s3cret"}])
        r = self.curl("-x", p.url, "-H", "Proxy-Authorization: Basic Y2xpZW50OmNsaWVudA==",
                      "http://far.e2e.test:8000/path?q=1")
        j = json.loads(r.stdout)
        self.assertEqual(j["parent"], "p1")
        self.assertEqual(j["method"], "GET")
        self.assertEqual(j["target"], "http://far.e2e.test:8000/path?q=1")
        auth = h.get_fields(j["headers"], "Proxy-Authorization")
        self.assertEqual(auth, [basic("alice", "s3cret")], "the parent must see the gateway's credentials only")
        self.assertIn("1.1 " + h.GATEWAY_NAME, ", ".join(h.get_fields(j["headers"], "Via")))
        self.assertEqual(self.o.accepted, 0)

    def test_parent_gets_connect_with_basic_auth(self):
        par = self.parent("p1")
        p = self.start([{"host": "127.0.0.1", "port": par.port, "username": "alice", "password": "s3cret"}])
        r = self.curl("-p", "-x", p.url, "--cacert", self.cert, "https://far.e2e.test:%d/echo?t=1" % self.tls.port)
        self.assertEqual(json.loads(r.stdout)["target"], "/echo?t=1")
        connects = [(m, t, f) for m, t, f in par.recorded() if m == "CONNECT"]
        self.assertEqual(len(connects), 1, par.recorded())
        self.assertEqual(connects[0][1], "far.e2e.test:%d" % self.tls.port)
        self.assertEqual(h.get_fields(connects[0][2], "Proxy-Authorization"), [basic("alice", "s3cret")])

    def test_direct_domains_bypass_parent(self):
        par = self.parent("p1")
        p = self.start([{"host": "127.0.0.1", "port": par.port, "username": "alice", "password": "s3cret"}],
                       direct=["direct.e2e.test"])
        for host in ("direct.e2e.test", "www.direct.e2e.test"):
            with self.subTest(host=host):
                r = self.curl("-x", p.url, "http://%s:%d/echo?d=1" % (host, self.o.port))
                j = json.loads(r.stdout)
                self.assertNotIn("parent", j)
                self.assertEqual(j["target"], "/echo?d=1")
        r = self.curl("-x", p.url, "http://notdirect.e2e.test/x")
        self.assertEqual(json.loads(r.stdout)["parent"], "p1")
        self.assertEqual([t for _, t, _ in par.recorded()], ["http://notdirect.e2e.test/x"])

    def test_failover_to_second_parent(self):
        dead_port = h.free_port()
        par = self.parent("second")
        p = self.start([{"host": "127.0.0.1", "port": dead_port, "username": "u1", "password": "p1"},
                        {"host": "127.0.0.1", "port": par.port, "username": "u2", "password": "p2"}])
        for i in range(3):
            status, body, _ = self.curl_status("-x", p.url, "http://far.e2e.test/f%d" % i, timeout=30)
            self.assertEqual(status, 200, body[:300])
            j = json.loads(body)
            self.assertEqual(j["parent"], "second")
            self.assertEqual(h.get_fields(j["headers"], "Proxy-Authorization"), [basic("u2", "p2")])
        r = self.curl("-p", "-x", p.url, "--cacert", self.cert, "https://far.e2e.test:%d/echo" % self.tls.port)
        self.assertEqual(json.loads(r.stdout)["target"], "/echo")


if __name__ == "__main__":
    h.main()
