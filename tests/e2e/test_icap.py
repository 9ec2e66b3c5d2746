#!/usr/bin/python3
"""The ICAP/1.0 server (RFC 3507, docs/icap.md) end to end, with real ICAP clients:

  * c-icap-client (Debian c-icap): OPTIONS, REQMOD and RESPMOD with and without preview and
    204, echoed bodies compared byte for byte, block pages, ICAPS;
  * Squid 5 (Debian squid) as the proxy in front: allowed transfers arrive byte-exact in both
    directions, request- and response-phase blocks give Portcullis's block page, the user
    Squid authenticated reaches the policy (base64 or plain), ICAPS when Squid has OpenSSL;
  * raw sockets: malformed messages, errors, persistent connections, preview and 204
    handling, the "never wait for a large body" rule, identity fields in every documented
    form, client networks, ISTag changes, the generated ICAPS certificate, mutual TLS.

Everything listens on 127.0.0.1 on free ports; Squid runs in the foreground from its own
temp folder (never the system instance)."""

import base64
import hashlib
import html
import io
import json
import os
import random
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import warnings
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

C_ICAP_CLIENT = "/usr/bin/c-icap-client"
SQUID = h.SQUID_BIN
BASIC_FAKE_AUTH = "/usr/lib/squid/basic_fake_auth"

# Names Squid resolves through its own hosts_file (all to the origin's address).
HOSTS = {n: "127.0.0.1" for n in ("allowed.example", "blocked.example", "www.blocked.example",
                                  "users.example")}

POLICY = """
[settings]
time_zone = "UTC"

[[rules]]
name = "no video"
content_types = ["video/*"]
action = "block"

[[rules]]
name = "blocked domain"
domains = ["blocked.example"]
action = "block"

[[rules]]
name = "blocked url"
urls = ["allowed.example/forbidden/"]
action = "block"

[[rules]]
name = "not for alice"
users = ["alice", "Alice Smith"]
action = "block"

[[rules]]
name = "no interns"
groups = ["interns"]
action = "block"

[[rules]]
name = "not from the lab"
source = ["192.0.2.0/24", "2001:db8:1::/48"]
action = "block"

[default]
action = "allow"
"""


# ---------------------------------------------------------------------------------------
# Helpers

EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")


def zipped(name, data):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    return buf.getvalue()


def eicar_body(wrap, pad=0):
    """EICAR as a file, in a zip, or in a zip in a zip; pad: bytes of padding after a plain
    EICAR (the shipped signature anchors it at offset 0)."""
    if wrap == "zip":
        return zipped("eicar.com", EICAR)
    if wrap == "zipzip":
        return zipped("inner.zip", zipped("eicar.com", EICAR))
    return EICAR + b"\n" * pad


class TypedOrigin(h.OriginServer):
    """The harness origin plus /typed?ct=TYPE&n=N: N payload bytes with that Content-Type, and
    /eicar?wrap=plain|zip|zipzip&pad=N: the EICAR test file."""

    def respond(self, sock, reader, req, path, q, keep):
        if path == "/eicar":
            body = eicar_body(q.get("wrap", "plain"), int(q.get("pad", "0")))
            ka = b"" if keep else b"Connection: close\r\n"
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\n%s\r\n" % (len(body), ka)
                         + (b"" if req.method == "HEAD" else body))
            return True
        if path == "/typed":
            ct = q.get("ct", "text/html")
            n = int(q.get("n", "1000"))
            ka = b"" if keep else b"Connection: close\r\n"
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
                         % (ct.encode(), n, ka) + (b"" if req.method == "HEAD" else h.payload(n)))
            return True
        return super().respond(sock, reader, req, path, q, keep)


def read_text(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def write_file(path, data):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def file_sha256(path):
    d = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            d.update(block)
    return d.hexdigest()


def b64(s):
    return base64.b64encode(s.encode("utf-8")).decode("ascii")


def page_field(body, label):
    """The value shown after <dt>label</dt> on a page, raw (still HTML-escaped), or None."""
    m = re.search(r"<dt>%s</dt><dd>(?:<code>)?(.*?)(?:</code>)?</dd>" % re.escape(label), body, re.S)
    return m.group(1) if m else None


def icap_portcullis(workdir, policy_text=POLICY, icap=None, tls=None, scan=None):
    """A Proxy (not started) with an ICAP listener first (p.port) and, with tls=(cert, key) or
    tls="generate", an ICAP listener (p.icaps_port); the policy in its own folder. scan: the
    [scan] table (default: scanning on with the shipped signatures)."""
    listeners = [{"name": "icap", "address": "127.0.0.1", "port": h.free_port(), "protocol": "icap"}]
    if tls:
        listeners.append({"name": "icaps", "address": "127.0.0.1", "port": h.free_port(), "protocol": "icaps"})
    icap_cfg = {"client_networks": ["127.0.0.0/8", "::1/128"], "preview": 1024, "buffer_for_204": 65536}
    if tls and tls != "generate":
        icap_cfg["tls_certificate"], icap_cfg["tls_key"] = tls
    icap_cfg.update(icap or {})
    p = h.Proxy(workdir, {"icap": icap_cfg, "scan": scan or {}}, listeners)
    path = os.path.join(p.dir, "policy.toml")
    write_file(path, policy_text)
    p.cfg["policy"] = {"file": path}
    p.write_config()
    p.policy_path = path
    p.icaps_port = listeners[1]["port"] if tls else None
    return p


def cicap_sections(text):
    """c-icap-client -v output -> {section label: [lines]} (the tab-indented lines after
    'ICAP HEADERS:', 'REQMOD HEADERS:', 'RESPMOD HEADERS:', 'OPTIONS:'...)."""
    sections = {}
    cur = None
    for line in text.splitlines():
        if line.startswith("\t") and cur is not None:
            sections[cur].append(line.strip())
        elif line.rstrip().endswith(":") and not line.startswith(" "):
            cur = line.strip()[:-1]
            sections.setdefault(cur, [])
        elif line.strip():
            cur = None
    return sections


def field_of(lines, name):
    for line in lines:
        n, sep, v = line.partition(":")
        if sep and n.strip().lower() == name.lower():
            return v.strip()
    return None


class IcapCase(h.PortcullisTestCase):
    """Shared pieces: raw ICAP exchanges, access-log lookups, block-page checks."""

    p = None

    def setUp(self):
        if isinstance(self.p, h.Proxy):
            self.p.revive()

    @property
    def icap_port(self):
        return self.p.port

    def uri(self, service="reqmod", port=None):
        return "icap://127.0.0.1:%d/%s" % (port or self.icap_port, service)

    def open_icap(self, port=None, timeout=10.0):
        s = h.connect(port or self.icap_port, timeout=timeout)
        self.addCleanup(s.close)
        return s, h.ConnReader(s, timeout=timeout)

    def exchange(self, data, port=None, timeout=10.0):
        """New connection, send data, read one ICAP response. Returns (resp, sock, reader)."""
        s, r = self.open_icap(port, timeout)
        s.sendall(data)
        try:
            resp = h.read_icap_response(r)
        except socket.timeout:
            self.fail("no ICAP response within %.0fs to %r" % (timeout, data[:300]))
        return resp, s, r

    def options(self, service, port=None):
        resp, s, r = self.exchange(("OPTIONS %s ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: null-body=0\r\n\r\n"
                                    % self.uri(service, port)).encode(), port)
        return resp

    def reqmod(self, url, fields=(), http_fields=(), body=None, allow204=True, preview=None, method=None,
               service="reqmod"):
        """A complete REQMOD (body sent whole, after the preview dance when preview is set
        and the server asks for more). Returns the final IcapResponse."""
        ifields = list(fields)
        if allow204:
            ifields.append(("Allow", "204"))
        hf = list(http_fields)
        if body is not None:
            hf.append(("Content-Length", str(len(body))))
        head = h.http_request_head(method or ("POST" if body is not None else "GET"), url, hf)
        return self._send(service, ifields, head, None, body, preview)

    def respmod(self, url, ctype="text/plain", body=b"", fields=(), allow204=True, preview=None,
                with_req=True, service="respmod"):
        ifields = list(fields)
        if allow204:
            ifields.append(("Allow", "204"))
        req = h.http_request_head("GET", url) if with_req else None
        res = h.http_response_head(200, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        return self._send(service, ifields, req, res, body, preview)

    def _send(self, service, ifields, req, res, body, preview, sock=None, reader=None):
        kind = None if body is None else ("res-body" if res is not None else "req-body")
        if preview is not None and body is not None:
            ifields = ifields + [("Preview", str(preview))]
        data = h.icap_head("RESPMOD" if res is not None else "REQMOD", self.uri(service), ifields,
                           req_hdr=req, res_hdr=res, body_kind=kind)
        if sock is None:
            sock, reader = self.open_icap()
        continued = False
        if body is None:
            sock.sendall(data)
            resp = h.read_icap_response(reader)
        elif preview is not None:
            pv = body[:preview]
            ieof = len(body) <= preview
            sock.sendall(data + h.icap_chunked(pv) + h.icap_last_chunk(ieof))
            resp = h.read_icap_response(reader)
            if resp is not None and resp.status == 100:
                self.assertFalse(ieof, "100 Continue after ieof")
                continued = True
                sock.sendall(h.icap_chunked(body[preview:]) + h.icap_last_chunk())
                resp = h.read_icap_response(reader)
        else:
            sock.sendall(data + h.icap_chunked(body) + h.icap_last_chunk())
            resp = h.read_icap_response(reader)
        self.assertIsNotNone(resp, "the connection closed without an ICAP response")
        resp.continued = continued
        return resp

    # -- access log ------------------------------------------------------------------
    def records(self, pred, n=1, timeout=5.0):
        return self.p.access_matching(pred, n, timeout)

    def record_for(self, url, mode=None, timeout=5.0):
        return self.records(lambda r: r.get("url") == url and (mode is None or r.get("icap_mode") == mode),
                            timeout=timeout)[-1]

    # -- pages -----------------------------------------------------------------------
    def assertBlockPage(self, body, url, rule=None):
        """body: the page bytes. Checks the rule_block page: the URL (HTML-escaped), the rule
        and a request ID; returns the request ID (callers compare it with the access log)."""
        text = body.decode("utf-8")
        self.assertIn("blocked by your organisation&#39;s policy", text, "not the block page:\n" + text[:600])
        raw_url = page_field(text, "URL")
        self.assertIsNotNone(raw_url, "the block page shows no URL")
        self.assertEqual(html.unescape(raw_url), url)
        for ch in "<>\"'":
            self.assertNotIn(ch, raw_url, "unescaped %r in the page's URL" % ch)
        self.assertNotRegex(raw_url, r"&(?![a-zA-Z]+;|#\d+;|#x[0-9a-fA-F]+;)", "unescaped & in the page's URL")
        if rule is not None:
            self.assertEqual(html.unescape(page_field(text, "Rule") or ""), rule)
        rid = page_field(text, "Request ID")
        self.assertTrue(rid, "the block page shows no request ID")
        return html.unescape(rid)


# ---------------------------------------------------------------------------------------
# Raw protocol

class RawProtocol(IcapCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.p = icap_portcullis(cls.workdir, icap={"options_ttl": 1800, "max_connections": 500,
                                                   "transfer_ignore": ["jpg", "GIF"],
                                                   "transfer_complete": ["exe"]},
                                scan={"enabled": False})
        cls.addClassCleanup(cls.p.stop)
        cls.p.start()

    # -- OPTIONS ---------------------------------------------------------------------
    def test_options_services_and_aliases(self):
        expect = {"reqmod": "REQMOD", "respmod": "RESPMOD", "reqmod_precache": "REQMOD", "request": "REQMOD",
                  "wwreqmod": "REQMOD", "respmod_precache": "RESPMOD", "response": "RESPMOD",
                  "avscan": "RESPMOD", "srv_clamav": "RESPMOD", "reqmod?profile=x": "REQMOD"}
        istags = set()
        for service, method in expect.items():
            with self.subTest(service=service):
                r = self.options(service)
                self.assertEqual((r.version, r.status), ("ICAP/1.0", 200), r)
                self.assertEqual(r.header("Methods"), method)
                self.assertRegex(r.header("ISTag") or "", r'^"[^"]{1,32}"$')
                istags.add(r.header("ISTag"))
                self.assertEqual(r.header("Allow"), "204")
                self.assertEqual(r.header("Preview"), "1024")
                self.assertEqual(r.header("Encapsulated"), "null-body=0")
                self.assertEqual(r.header("Options-TTL"), "1800")
                self.assertEqual(r.header("Max-Connections"), "500")
                self.assertEqual(r.header("Transfer-Preview"), "*")  # Squid previews only what this lists
                self.assertEqual(r.header("Transfer-Ignore"), "jpg, gif")
                self.assertEqual(r.header("Transfer-Complete"), "exe")
                include = [x.strip().lower() for x in (r.header("X-Include") or "").split(",")]
                self.assertIn("x-client-ip", include)
                self.assertIn("x-authenticated-user", include)
                self.assertIsNone(r.body)
        self.assertEqual(len(istags), 1, "one policy, one ISTag: %s" % istags)
        rec = self.records(lambda r: r.get("icap_mode") == "options")[-1]
        self.assertEqual(rec.get("icap_client"), "127.0.0.1")

    # -- errors ----------------------------------------------------------------------
    def assertErrorClosed(self, data, status):
        resp, s, r = self.exchange(data)
        self.assertIsNotNone(resp, "connection closed without a response to %r" % data[:200])
        self.assertEqual((resp.version, resp.status), ("ICAP/1.0", status), "%r -> %r" % (data[:200], resp))
        self.assertTrue(h.is_closed(s, 5), "the connection stayed open after %d" % status)
        return resp

    def test_bad_start_lines_400_closed(self):
        for data in (b"REQMOD icap://127.0.0.1/reqmod\r\nHost: 127.0.0.1\r\nEncapsulated: null-body=0\r\n\r\n",
                     b"this is not ICAP at all\r\n\r\n",
                     b"OPTIONS  icap://127.0.0.1/reqmod ICAP/1.0\r\nHost: 127.0.0.1\r\n"
                     b"Encapsulated: null-body=0\r\n\r\n",
                     b"OPTIONS icap://127.0.0.1/reqmod ICAP/1.0 extra\r\nHost: x\r\nEncapsulated: null-body=0\r\n\r\n",
                     b"OPTIONS icap://127.0.0.1/reqmod ICAP/x.y\r\nHost: x\r\nEncapsulated: null-body=0\r\n\r\n"):
            with self.subTest(data=data[:60]):
                self.assertErrorClosed(data, 400)

    def test_encapsulated_out_of_order_400_closed(self):
        req = h.http_request_head("GET", "http://allowed.example/enc")
        res = h.http_response_head()
        cases = [
            # req-body before req-hdr
            b"REQMOD %s ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: req-body=%d, req-hdr=0\r\n\r\n"
            % (self.uri().encode(), len(req)) + req + b"0\r\n\r\n",
            # res-hdr before req-hdr in RESPMOD
            b"RESPMOD %s ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: res-hdr=0, req-hdr=%d, null-body=%d\r\n\r\n"
            % (self.uri("respmod").encode(), len(res), len(res) + len(req)) + res + req,
            # offsets not increasing
            b"REQMOD %s ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: req-hdr=0, null-body=0\r\n\r\n"
            % self.uri().encode() + req,
            # res-hdr in REQMOD
            b"REQMOD %s ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: res-hdr=0, null-body=%d\r\n\r\n"
            % (self.uri().encode(), len(res)) + res,
        ]
        for data in cases:
            with self.subTest(encapsulated=re.search(rb"Encapsulated: [^\r]*", data).group(0)):
                self.assertErrorClosed(data, 400)

    def test_bad_chunk_size_400_closed(self):
        req = h.http_request_head("POST", "http://allowed.example/chunk", [("Content-Length", "5")])
        for label, fields, chunks in (
                ("allow 204", [("Allow", "204")], b"zz\r\nhello\r\n0\r\n\r\n"),
                ("preview", [("Preview", "5")], b"5x\r\nhello\r\n0; ieof\r\n\r\n"),
                ("overflow", [("Allow", "204")], b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
                ("negative", [("Allow", "204")], b"-5\r\nhello\r\n0\r\n\r\n")):
            with self.subTest(label):
                data = h.icap_head("REQMOD", self.uri(), fields, req_hdr=req, body_kind="req-body") + chunks
                self.assertErrorClosed(data, 400)

    def test_oversized_heads_400_closed(self):
        pad = [("X-Pad-%d" % i, "p" * 10000) for i in range(7)]  # ~70 KiB of ICAP head
        self.assertErrorClosed(h.icap_head("OPTIONS", self.uri(), pad), 400)
        big_req = h.http_request_head("GET", "http://allowed.example/big", pad)  # 70 KiB HTTP head
        self.assertErrorClosed(h.icap_head("REQMOD", self.uri(), [("Allow", "204")], req_hdr=big_req), 400)

    def test_unknown_service_404_and_wrong_method_405(self):
        """404 and 405 leave the connection in step: unless the answer says
        "Connection: close", the next request on it is answered properly (the encapsulated
        heads and body of the refused request must be skipped)."""
        req = h.http_request_head("GET", "http://allowed.example/x")
        post = h.http_request_head("POST", "http://allowed.example/x", [("Content-Length", "5")])
        res = h.http_response_head(200, [("Content-Type", "text/plain"), ("Content-Length", "5")])
        body = h.icap_chunked(b"hello") + h.icap_last_chunk()
        cases = [
            ("OPTIONS", "nosuch", 404, h.icap_head("OPTIONS", self.uri("nosuch"))),
            ("REQMOD", "nosuch", 404, h.icap_head("REQMOD", self.uri("nosuch"), [("Allow", "204")], req_hdr=req)),
            ("REQMOD+body", "nosuch", 404, h.icap_head("REQMOD", self.uri("nosuch"), [("Allow", "204")],
                                                       req_hdr=post, body_kind="req-body") + body),
            ("RESPMOD", "nosuch", 404, h.icap_head("RESPMOD", self.uri("nosuch"), [("Allow", "204")], req_hdr=req,
                                                   res_hdr=res)),
            ("REQMOD", "respmod", 405, h.icap_head("REQMOD", self.uri("respmod"), [("Allow", "204")], req_hdr=req)),
            ("REQMOD+body", "respmod", 405, h.icap_head("REQMOD", self.uri("respmod"), [("Allow", "204")],
                                                        req_hdr=post, body_kind="req-body") + body),
            ("RESPMOD", "reqmod", 405, h.icap_head("RESPMOD", self.uri("reqmod"), [("Allow", "204")], req_hdr=req,
                                                   res_hdr=res)),
            ("RESPMOD+body", "reqmod", 405, h.icap_head("RESPMOD", self.uri("reqmod"), [("Allow", "204")],
                                                        req_hdr=req, res_hdr=res, body_kind="res-body") + body),
        ]
        for label, service, status, data in cases:
            with self.subTest(request=label, service=service):
                s, r = self.open_icap()
                s.sendall(data)
                resp = h.read_icap_response(r)
                self.assertIsNotNone(resp, "closed without a response")
                self.assertEqual(resp.status, status, resp)
                if "close" in (resp.header("Connection") or "").lower():
                    self.assertTrue(h.is_closed(s, 5), "Connection: close but the connection stayed open")
                    continue
                follow = h.icap_head("OPTIONS", self.uri("reqmod"))
                try:
                    s.sendall(follow)
                    nxt = h.read_icap_response(r)
                except (OSError, EOFError) as e:
                    nxt = e
                self.assertTrue(isinstance(nxt, h.IcapResponse) and nxt.status == 200,
                                "after %r\nanswered %r\nthe next request on the connection %r\ngot %r"
                                % (data, resp.raw_head, follow, getattr(nxt, "raw_head", nxt)))

    def test_version_505_and_unknown_method_501_closed(self):
        self.assertErrorClosed(b"OPTIONS %s ICAP/1.1\r\nHost: 127.0.0.1\r\nEncapsulated: null-body=0\r\n\r\n"
                               % self.uri().encode(), 505)
        self.assertErrorClosed(b"OPTIONS %s ICAP/2.0\r\nHost: 127.0.0.1\r\nEncapsulated: null-body=0\r\n\r\n"
                               % self.uri().encode(), 505)
        self.assertErrorClosed(b"BREW %s ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: null-body=0\r\n\r\n"
                               % self.uri().encode(), 501)

    # -- decisions on one persistent connection --------------------------------------
    def test_connection_serves_after_idle_pauses(self):
        # Right after a message the connection waits for the next one with its buffer; after
        # 0.25-0.5 s of waiting it gives the buffer back and waits without: both must serve.
        s, r = self.open_icap()
        for pause in (0, 0.05, 0.8, 0, 1.3, 0.1):
            with self.subTest(pause=pause):
                time.sleep(pause)
                url = "http://allowed.example/pause?s=%s" % pause
                resp = self._send("reqmod", [("Allow", "204")], h.http_request_head("GET", url), None, None,
                                  None, s, r)
                self.assertEqual(resp.status, 204, resp)
                s.sendall(h.icap_head("OPTIONS", self.uri()))
                self.assertEqual(h.read_icap_response(r).status, 200)

    def test_persistent_connection_carries_many_requests(self):
        s, r = self.open_icap()
        steps = []
        for i in range(3):
            steps.append(("options", None))
            steps.append(("allow", "http://allowed.example/persist?i=%d" % i))
            steps.append(("block", "http://www.blocked.example/persist?i=%d" % i))
            steps.append(("body204", "http://allowed.example/upload?i=%d" % i))
            steps.append(("echo", "http://allowed.example/echo?i=%d" % i))
            steps.append(("respmod", "http://allowed.example/resp?i=%d" % i))
        for kind, url in steps:
            with self.subTest(kind=kind, url=url):
                if kind == "options":
                    s.sendall(h.icap_head("OPTIONS", self.uri()))
                    resp = h.read_icap_response(r)
                    self.assertEqual(resp.status, 200)
                elif kind == "allow":
                    resp = self._send("reqmod", [("Allow", "204")], h.http_request_head("GET", url), None, None,
                                      None, s, r)
                    self.assertEqual(resp.status, 204, resp)
                elif kind == "block":
                    resp = self._send("reqmod", [("Allow", "204")], h.http_request_head("GET", url), None, None,
                                      None, s, r)
                    self.assertEqual((resp.status, resp.http_status()), (200, 403), resp)
                    self.assertBlockPage(resp.body, url, "blocked domain")
                elif kind == "body204":
                    body = h.payload(3000)
                    resp = self._send("reqmod", [("Allow", "204")],
                                      h.http_request_head("POST", url, [("Content-Length", "3000")]), None, body,
                                      None, s, r)
                    self.assertEqual(resp.status, 204, resp)
                elif kind == "echo":
                    body = h.payload(2000)
                    resp = self._send("reqmod", [], h.http_request_head("POST", url, [("Content-Length", "2000")]),
                                      None, body, None, s, r)
                    self.assertEqual(resp.status, 200, resp)
                    self.assertEqual(resp.body, body)
                else:
                    body = h.payload(5000)
                    resp = self._send("respmod", [("Allow", "204")], h.http_request_head("GET", url),
                                      h.http_response_head(200, [("Content-Type", "text/plain"),
                                                                 ("Content-Length", "5000")]),
                                      body, 1024, s, r)
                    self.assertEqual(resp.status, 204, resp)
                    self.assertFalse(resp.continued, "100 Continue for an allowed preview")
        self.assertFalse(h.is_closed(s, 0.3), "the server closed the persistent connection")
        rec = self.record_for("http://www.blocked.example/persist?i=2", "reqmod")
        self.assertEqual((rec.get("decision"), rec.get("rule"), rec.get("icap_client")),
                         ("block", "blocked domain", "127.0.0.1"))
        rec = self.record_for("http://allowed.example/resp?i=1", "respmod")
        self.assertEqual(rec.get("icap_client"), "127.0.0.1")

    # -- preview and 204 -------------------------------------------------------------
    def test_preview_with_ieof_gets_204(self):
        for n in (0, 1, 500, 1024):
            with self.subTest(n=n):
                s, r = self.open_icap()
                body = h.payload(n)
                req = h.http_request_head("POST", "http://allowed.example/ieof?n=%d" % n, [("Content-Length", str(n))])
                s.sendall(h.icap_head("REQMOD", self.uri(), [("Preview", "1024")], req_hdr=req, body_kind="req-body")
                          + h.icap_chunked(body, 300) + h.icap_last_chunk(ieof=True))
                resp = h.read_icap_response(r)
                self.assertEqual(resp.status, 204, resp)

    def test_preview_without_ieof_big_body_204_without_continue(self):
        s, r = self.open_icap()
        n = 1 << 20
        body = h.payload(n)
        for mode in ("reqmod", "respmod"):
            with self.subTest(mode=mode):
                url = "http://allowed.example/preview-big-%s" % mode
                if mode == "reqmod":
                    data = h.icap_head("REQMOD", self.uri(), [("Preview", "1024")],
                                       req_hdr=h.http_request_head("POST", url, [("Content-Length", str(n))]),
                                       body_kind="req-body")
                else:
                    data = h.icap_head("RESPMOD", self.uri("respmod"), [("Preview", "1024")],
                                       req_hdr=h.http_request_head("GET", url),
                                       res_hdr=h.http_response_head(200, [("Content-Type", "application/zip"),
                                                                          ("Content-Length", str(n))]),
                                       body_kind="res-body")
                s.sendall(data + h.icap_chunked(body[:1024]) + h.icap_last_chunk())
                resp = h.read_icap_response(r)
                self.assertNotEqual(resp.status, 100, "Portcullis asked for the rest of an allowed body")
                self.assertEqual(resp.status, 204, resp)
        # still in step: the connection carries the next request
        s.sendall(h.icap_head("OPTIONS", self.uri()))
        self.assertEqual(h.read_icap_response(r).status, 200)

    def test_without_allow_204_the_message_is_echoed(self):
        for n in (0, 1, 4096, 70000):
            with self.subTest(mode="reqmod", n=n):
                url = "http://allowed.example/echo-req?n=%d" % n
                body = h.payload(n)
                head = h.http_request_head("POST", url, [("Content-Length", str(n)), ("X-Keep", "a  b")])
                resp = self._send("reqmod", [], head, None, body, None)
                self.assertEqual(resp.status, 200, resp)
                self.assertIn("req-hdr", resp.heads, resp)
                self.assertEqual(h.parse_head(resp.heads["req-hdr"]), h.parse_head(head))
                self.assertEqual(resp.body if n else (resp.body or b""), body)
            with self.subTest(mode="respmod", n=n):
                url = "http://allowed.example/echo-resp?n=%d" % n
                body = h.payload(n)
                res = h.http_response_head(200, [("Content-Type", "text/plain"), ("Content-Length", str(n)),
                                                 ("X-Keep", "yes")])
                resp = self._send("respmod", [], h.http_request_head("GET", url), res, body, None)
                self.assertEqual(resp.status, 200, resp)
                self.assertIn("res-hdr", resp.heads, resp)
                self.assertEqual(h.parse_head(resp.heads["res-hdr"]), h.parse_head(res))
                self.assertEqual(resp.body if n else (resp.body or b""), body)
        # a GET without a body: the head alone comes back
        url = "http://allowed.example/echo-get"
        head = h.http_request_head("GET", url, [("Accept", "*/*")])
        resp = self._send("reqmod", [], head, None, None, None)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(h.parse_head(resp.heads["req-hdr"]), h.parse_head(head))

    def test_echo_head_does_not_wait_for_the_body(self):
        """The echo's head goes out at once when no body byte has arrived yet (a client may
        wait for it before sending the body), and with the first bytes when they have."""
        url = "http://allowed.example/echo-head-first"
        body = h.payload(3000)
        head = h.http_request_head("POST", url, [("Content-Length", str(len(body)))])
        s, r = self.open_icap()
        s.sendall(h.icap_head("REQMOD", self.uri(), [], req_hdr=head, body_kind="req-body"))
        got = r.read_until(b"\r\n\r\n")  # the ICAP head, before any body byte was sent
        self.assertTrue(got.startswith(b"ICAP/1.0 200 "), got)
        self.assertIn(b"Encapsulated: req-hdr=0, req-body=", got)
        http_head = r.read_until(b"\r\n\r\n")
        self.assertEqual(h.parse_head(http_head), h.parse_head(head))
        s.sendall(h.icap_chunked(body) + h.icap_last_chunk())
        self.assertEqual(h.read_chunked(r)[0], body)
        # Then the whole message at once: the same answer, the body complete.
        resp = self._send("reqmod", [], head, None, body, None, sock=s, reader=r)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.body, body)

    def test_echo_of_large_chunks_arriving_in_pieces(self):
        """The echo of large chunks is byte-exact whatever the chunk sizes, extensions and how
        the bytes are cut on the wire, and never takes the next message's bytes, sent right
        behind the body, for body."""
        sizes = [100000, 16384, 16383, 16385, 70000, 5, 300000, 1, 65536, 40000]
        body = h.payload(sum(sizes))
        wire, at = b"", 0
        for i, n in enumerate(sizes):
            ext = b"; x=y" if i % 3 == 1 else b""
            wire += b"%x%s\r\n" % (n, ext) + body[at:at + n] + b"\r\n"
            at += n
        url = "http://allowed.example/echo-pieces"
        head = h.http_request_head("POST", url, [("Content-Length", str(len(body)))])
        msg = h.icap_head("REQMOD", self.uri(), [], req_hdr=head, body_kind="req-body") + wire + h.icap_last_chunk()
        nxt = h.icap_head("OPTIONS", self.uri())
        s, r = self.open_icap(timeout=20)
        rng = random.Random(7)

        def send():
            data, i = msg + msg + nxt, 0
            while i < len(data):
                k = rng.choice((1, 2, 7, 300, 5000, 65536, 200000))
                s.sendall(data[i:i + k])
                i += k
                if rng.random() < 0.05:
                    time.sleep(0.002)
        t = threading.Thread(target=send, daemon=True)
        t.start()
        for _ in range(2):
            resp = h.read_icap_response(r)
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(h.parse_head(resp.heads["req-hdr"]), h.parse_head(head))
            self.assertEqual(len(resp.body), len(body))
            self.assertEqual(h.sha256(resp.body), h.sha256(body))
        self.assertEqual(h.read_icap_response(r).status, 200)  # the OPTIONS behind them
        t.join(20)
        recs = self.records(lambda rec: rec.get("url") == url, n=2)
        for rec in recs[-2:]:
            self.assertEqual((rec.get("result"), rec.get("icap_status")), ("allowed", 200), rec)
            self.assertGreater(rec.get("bytes_in", 0), len(body))
            self.assertGreater(rec.get("bytes_out", 0), len(body))

    def test_allow_204_small_body_outside_preview_gets_204(self):
        for n in (1, 20000, 65536):
            with self.subTest(n=n):
                resp = self.reqmod("http://allowed.example/small204?n=%d" % n, body=h.payload(n))
                self.assertEqual(resp.status, 204, resp)

    def test_allow_204_large_body_gets_204_before_the_body_ends(self):
        """docs/icap.md: beyond icap.buffer_for_204 the 204 is sent with the body still arriving
        (the client keeps its copy); the server must not wait for the whole body (Squid stops
        sending what it cannot keep), and it reads the rest before the next request."""
        n = 200 * 1024
        body = h.payload(n)
        url = "http://allowed.example/deadlock-trap"
        head = h.http_request_head("POST", url, [("Content-Length", str(n))])
        s, r = self.open_icap(timeout=10)
        first = h.icap_chunked(body[:100 * 1024], 8192)
        s.sendall(h.icap_head("REQMOD", self.uri(), [("Allow", "204")], req_hdr=head, body_kind="req-body") + first)
        try:
            resp = h.read_icap_response(r)
        except socket.timeout:
            self.fail("no ICAP reply within 10 s while 100 KiB of a 200 KiB body were sent: the "
                      "server waits for the whole body (the Squid deadlock of docs/icap.md)")
        self.assertEqual(resp.status, 204, resp)
        s.sendall(h.icap_chunked(body[100 * 1024:], 8192) + h.icap_last_chunk())
        # the rest of the body was read, not taken for the next request
        s.sendall(h.icap_head("OPTIONS", self.uri()))
        self.assertEqual(h.read_icap_response(r).status, 200)

    def test_allow_204_large_body_fully_sent_gets_204(self):
        for n in (65537, 1 << 20):
            with self.subTest(n=n):
                resp = self.reqmod("http://allowed.example/large204?n=%d" % n, body=h.payload(n))
                self.assertEqual(resp.status, 204, resp)

    def test_block_answers_before_the_body_and_discards_it(self):
        """A block is sent as soon as the heads decide it; the rest of the body is read and
        discarded, and the connection carries the next request."""
        n = 300 * 1024
        body = h.payload(n)
        url = "http://allowed.example/video-early"
        s, r = self.open_icap()
        res = h.http_response_head(200, [("Content-Type", "video/mp4"), ("Content-Length", str(n))])
        s.sendall(h.icap_head("RESPMOD", self.uri("respmod"), [("Allow", "204")],
                              req_hdr=h.http_request_head("GET", url), res_hdr=res, body_kind="res-body")
                  + h.icap_chunked(body[:8192]))
        try:
            resp = h.read_icap_response(r)
        except socket.timeout:
            self.fail("the block waited for the end of the body")
        self.assertEqual((resp.status, resp.http_status()), (200, 403), resp)
        self.assertBlockPage(resp.body, url, "no video")
        s.sendall(h.icap_chunked(body[8192:], 16384) + h.icap_last_chunk())
        s.sendall(h.icap_head("REQMOD", self.uri(), [("Allow", "204")],
                              req_hdr=h.http_request_head("GET", "http://allowed.example/after-discard")))
        resp = h.read_icap_response(r)
        self.assertIsNotNone(resp, "closed after a discarded body")
        self.assertEqual(resp.status, 204, resp)

    # -- decisions -------------------------------------------------------------------
    def test_request_and_response_blocks(self):
        url = "http://www.blocked.example/page?a=1&b='x'"
        resp = self.reqmod(url)
        self.assertEqual((resp.status, resp.http_status()), (200, 403), resp)
        self.assertRegex(resp.http_header("Content-Type") or "", r"^text/html")
        rid = self.assertBlockPage(resp.body, url, "blocked domain")
        rec = self.record_for(url, "reqmod")
        self.assertEqual(rec.get("request_id"), rid)
        self.assertEqual((rec.get("decision"), rec.get("icap_client")), ("block", "127.0.0.1"))
        # URL rule
        url = "http://allowed.example/forbidden/file.txt"
        resp = self.reqmod(url)
        self.assertEqual(resp.http_status(), 403, resp)
        self.assertBlockPage(resp.body, url, "blocked url")
        # response phase: content type, with and without a preview
        for preview in (None, 1024):
            url = "http://allowed.example/movie.mp4?preview=%s" % preview
            resp = self.respmod(url, "video/mp4", h.payload(5000), preview=preview)
            self.assertEqual((resp.status, resp.http_status()), (200, 403), resp)
            self.assertBlockPage(resp.body, url, "no video")
            rec = self.record_for(url, "respmod")
            self.assertEqual(rec.get("rule"), "no video")
        # a RESPMOD of a blocked URL replaces the response too
        url = "http://blocked.example/resp"
        resp = self.respmod(url, "text/plain", b"hello")
        self.assertEqual(resp.http_status(), 403, resp)
        self.assertBlockPage(resp.body, url, "blocked domain")
        # allowed content types pass
        resp = self.respmod("http://allowed.example/t.txt", "text/plain", h.payload(5000), preview=1024)
        self.assertEqual(resp.status, 204, resp)


# ---------------------------------------------------------------------------------------
# Identity

USER_FORMS = [
    # (received, the bare user the policy matches, the domain, blocked by "not for alice")
    ("alice", "alice", None, True),
    ("ALICE", "ALICE", None, True),
    ("CORP\\alice", "alice", "CORP", True),
    ("alice@corp.example", "alice", "corp.example", True),
    ("WinNT://CORP/alice", "alice", "CORP", True),
    ("NTLM://CORP/alice", "alice", "CORP", True),
    ("Local://alice", "alice", None, True),
    ("LDAP://dc1/cn=Alice Smith,ou=Staff,dc=corp,dc=example", "Alice Smith", "corp.example", True),
    ("bob", "bob", None, False),
    ("CORP\\bob", "bob", "CORP", False),
    ("bob@corp.example", "bob", "corp.example", False),
    ("WinNT://CORP/bob", "bob", "CORP", False),
]


def logged_users(user, domain):
    """What the access log's `user` may say: the bare name, or DOMAIN\\name when the client
    named a domain (docs/icap.md: "domain (logged)")."""
    return {user} if not domain else {user, "%s\\%s" % (domain, user)}


class Identity(IcapCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.p = icap_portcullis(cls.workdir)
        cls.addClassCleanup(cls.p.stop)
        cls.p.start()
        cls.seq = 0

    def next_url(self, tag):
        type(self).seq += 1
        return "http://users.example/id/%d?%s" % (self.seq, tag)

    def check(self, fields, blocked, user, client="10.9.8.7", mode="reqmod", domain=None):
        url = self.next_url("u")
        fields = list(fields) + [("X-Client-IP", client)]
        if mode == "reqmod":
            resp = self.reqmod(url, fields=fields)
        else:
            resp = self.respmod(url, "text/plain", h.payload(100), fields=fields, preview=1024)
        if blocked:
            self.assertEqual((resp.status, resp.http_status()), (200, 403), "%s: %r" % (fields, resp))
            self.assertBlockPage(resp.body, url)
        else:
            self.assertEqual(resp.status, 204, "%s: %r" % (fields, resp))
        rec = self.record_for(url, mode)
        self.assertIn(rec.get("user"), logged_users(user, domain), rec)
        self.assertEqual(rec.get("client"), client, rec)
        self.assertEqual(rec.get("icap_client"), "127.0.0.1", rec)
        self.assertEqual(rec.get("icap_mode"), mode, rec)
        return rec

    def test_user_forms_plain_and_base64(self):
        for received, user, domain, blocked in USER_FORMS:
            for enc in ("plain", "base64"):
                with self.subTest(received=received, encoding=enc):
                    value = received if enc == "plain" else b64(received)
                    self.check([("X-Authenticated-User", value)], blocked, user, domain=domain)

    def test_other_user_fields_and_respmod(self):
        self.check([("X-Client-Username", b64("alice"))], True, "alice")
        self.check([("X-Client-Username", "bob")], False, "bob")
        self.check([("X-Username", "CORP\\alice")], True, "alice", domain="CORP")
        self.check([("X-Username", b64("bob@corp.example"))], False, "bob", domain="corp.example")
        self.check([("X-Authenticated-User", b64("alice"))], True, "alice", mode="respmod")
        self.check([("X-Authenticated-User", "bob")], False, "bob", mode="respmod")

    def test_groups(self):
        for value in ("interns", "staff, interns", b64("staff,interns"), "CORP\\interns",
                      "LDAP://dc1/cn=interns,ou=Groups,dc=corp,dc=example"):
            with self.subTest(groups=value):
                self.check([("X-Authenticated-User", "bob"), ("X-Authenticated-Groups", value)], True, "bob")
        self.check([("X-Authenticated-User", "bob"), ("X-Authenticated-Groups", "staff, sales")], False, "bob")

    def test_client_address_from_x_client_ip(self):
        for value, expect, blocked in (("192.0.2.5", "192.0.2.5", True), ("2001:db8:1::7", "2001:db8:1::7", True),
                                       ("198.51.100.1", "198.51.100.1", False),
                                       ("not-an-address", "127.0.0.1", False)):
            with self.subTest(x_client_ip=value):
                url = self.next_url("ip")
                resp = self.reqmod(url, fields=[("X-Client-IP", value)])
                if blocked:
                    self.assertEqual(resp.http_status(), 403, resp)
                    self.assertBlockPage(resp.body, url, "not from the lab")
                else:
                    self.assertEqual(resp.status, 204, resp)
                rec = self.record_for(url, "reqmod")
                self.assertEqual((rec.get("client"), rec.get("icap_client")), (expect, "127.0.0.1"), rec)

    def test_no_identity(self):
        url = self.next_url("anon")
        resp = self.reqmod(url)
        self.assertEqual(resp.status, 204, resp)
        rec = self.record_for(url, "reqmod")
        self.assertIn(rec.get("user"), (None, ""), rec)
        self.assertEqual(rec.get("client"), "127.0.0.1", "without X-Client-IP the client is the ICAP client")


# ---------------------------------------------------------------------------------------
# c-icap-client

@unittest.skipUnless(os.path.exists(C_ICAP_CLIENT), "c-icap-client not installed")
class CIcapClient(IcapCase):
    SIZES = (1, 1000, 1024, 1025, 5000, 65536, 100 * 1024, 1 << 20)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        tls_dir = tempfile.mkdtemp(prefix="tls-", dir=cls.workdir)
        cls.cert, cls.key = h.make_cert(tls_dir, names=("localhost",), ips=("127.0.0.1",))
        cls.p = icap_portcullis(cls.workdir, tls=(cls.cert, cls.key), scan={"enabled": False})
        cls.addClassCleanup(cls.p.stop)
        cls.p.start()
        cls.files = {}
        for n in cls.SIZES:
            path = os.path.join(cls.workdir, "body-%d.bin" % n)
            write_file(path, h.payload(n))
            cls.files[n] = path

    def cicap(self, *args, port=None, tls=False, env=None, timeout=60):
        cmd = [C_ICAP_CLIENT, "-i", "127.0.0.1", "-p", str(port or self.icap_port)]
        if tls:
            cmd.append("-tls")
        cmd += list(args)
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           env=env or h.clean_env())
        text = r.stdout.decode("utf-8", "replace") + "\n" + r.stderr.decode("utf-8", "replace")
        self.assertEqual(r.returncode, 0, "c-icap-client failed: %s\n%s" % (" ".join(cmd), text))
        return text, cicap_sections(text)

    def out_path(self):
        d = tempfile.mkdtemp(prefix="cicap-", dir=self.workdir)
        return os.path.join(d, "out")

    def icap_status(self, sections, text):
        lines = sections.get("ICAP HEADERS")
        self.assertTrue(lines, "no ICAP HEADERS in c-icap-client output:\n" + text)
        m = re.match(r"ICAP/1\.0 (\d{3})", lines[0])
        self.assertTrue(m, lines[0])
        return int(m.group(1)), lines

    def test_options(self):
        for service, method in (("reqmod", "REQMOD"), ("respmod", "RESPMOD")):
            with self.subTest(service=service):
                text, sec = self.cicap("-s", service, "-v")
                status, hdrs = self.icap_status(sec, text)
                self.assertEqual(status, 200, text)
                self.assertEqual(field_of(hdrs, "Methods"), method, text)
                self.assertRegex(field_of(hdrs, "ISTag") or "", r'^"[^"]+"$', text)
                self.assertEqual(field_of(hdrs, "Allow"), "204", text)
                self.assertEqual(field_of(hdrs, "Preview"), "1024", text)
                self.assertEqual(field_of(hdrs, "Encapsulated"), "null-body=0", text)
                opts = sec.get("OPTIONS", [])
                self.assertIn("Allow 204: Yes", opts, text)
                self.assertIn("Preview: 1024", opts, text)

    def test_respmod_with_preview_gets_204(self):
        for n in self.SIZES:
            for extra in ((), ("-no204",), ("-w", "100")):
                with self.subTest(n=n, extra=extra):
                    text, sec = self.cicap("-s", "respmod", "-f", self.files[n], "-v", *extra)
                    status, _ = self.icap_status(sec, text)
                    self.assertEqual(status, 204, text)
                    self.assertIn("No modification needed", text)

    def test_respmod_without_preview(self):
        for n in self.SIZES:
            with self.subTest(n=n, allow204=True):
                out = self.out_path()
                text, sec = self.cicap("-s", "respmod", "-f", self.files[n], "-nopreview", "-o", out, "-v")
                status, _ = self.icap_status(sec, text)
                # the client keeps its copy: a 204 whatever the size (beyond buffer_for_204 it is
                # sent while the body still arrives, and the rest is read, not an error)
                self.assertEqual(status, 204, text)
            with self.subTest(n=n, allow204=False):
                out = self.out_path()
                text, sec = self.cicap("-s", "respmod", "-f", self.files[n], "-nopreview", "-no204", "-o", out, "-v")
                status, _ = self.icap_status(sec, text)
                self.assertEqual(status, 200, text)
                self.assertEqual(os.path.getsize(out), n)
                self.assertEqual(file_sha256(out), h.payload_sha(n), "echoed body differs (%d bytes)" % n)
        # c-icap-client may stop sending a large body once it has the 204: that is no error
        self.records(lambda r: r.get("icap_status") == 200 and r.get("bytes_out", 0) > (1 << 20))
        recs = self.p.access_records()
        closed = [r for r in recs if r.get("reason") == "client closed the body after the 204"]
        self.assertEqual({(r.get("icap_status"), r.get("result")) for r in closed} - {(204, "allowed")}, set())
        self.assertEqual([r for r in recs if r.get("result") == "error"], [])

    def test_reqmod(self):
        for n in (1000, 5000, 100 * 1024):
            with self.subTest(n=n, preview=True):
                text, sec = self.cicap("-s", "reqmod", "-req", "http://allowed.example/up?n=%d" % n, "-method", "POST",
                                       "-f", self.files[n], "-v")
                status, _ = self.icap_status(sec, text)
                self.assertEqual(status, 204, text)
            with self.subTest(n=n, preview=False, allow204=False):
                out = self.out_path()
                text, sec = self.cicap("-s", "reqmod", "-req", "http://allowed.example/up2?n=%d" % n,
                                       "-method", "POST", "-f", self.files[n], "-nopreview", "-no204", "-o", out, "-v")
                status, _ = self.icap_status(sec, text)
                self.assertEqual(status, 200, text)
                self.assertEqual(file_sha256(out), h.payload_sha(n))
        text, sec = self.cicap("-s", "reqmod", "-req", "http://allowed.example/get", "-v")
        self.assertEqual(self.icap_status(sec, text)[0], 204, text)

    def test_blocked(self):
        # REQMOD of a blocked URL: the block page as the encapsulated response
        url = "http://www.blocked.example/x?y=1&z=2"
        out = self.out_path()
        text, sec = self.cicap("-s", "reqmod", "-req", url, "-o", out, "-v")
        status, _ = self.icap_status(sec, text)
        self.assertEqual(status, 200, text)
        self.assertRegex(text, r"HTTP/1\.[01] 403", text)
        with open(out, "rb") as f:
            rid = self.assertBlockPage(f.read(), url, "blocked domain")
        self.assertEqual(self.record_for(url, "reqmod").get("request_id"), rid)
        # RESPMOD: a blocked content type, and a blocked URL with a harmless body. The body
        # fits the preview (ieof) or is sent without one: c-icap-client (0.5.10) does not read
        # a final 200 to a preview without ieof (ci_client_handle_previewed_response), which
        # Portcullis sends for a block decided on the heads; Squid does read it.
        for args, url, rule in ((("-rhx", "Content-Type: video/mp4"), "http://allowed.example/v.mp4", "no video"),
                                ((), "http://blocked.example/r", "blocked domain")):
            for n, extra in ((1000, ()), (5000, ("-nopreview",)), (100 * 1024, ("-nopreview", "-no204"))):
                with self.subTest(url=url, n=n, extra=extra):
                    out = self.out_path()
                    text, sec = self.cicap("-s", "respmod", "-resp", url, "-f", self.files[n], "-o", out, "-v",
                                           *args, *extra)
                    status, _ = self.icap_status(sec, text)
                    self.assertEqual(status, 200, text)
                    with open(out, "rb") as f:
                        self.assertBlockPage(f.read(), url, rule)
        # identity through an ICAP header
        url = "http://allowed.example/who"
        out = self.out_path()
        text, sec = self.cicap("-s", "reqmod", "-req", url, "-x", "X-Authenticated-User: " + b64("alice"), "-o", out,
                               "-v")
        self.assertEqual(self.icap_status(sec, text)[0], 200, text)
        with open(out, "rb") as f:
            self.assertBlockPage(f.read(), url, "not for alice")
        self.assertEqual(self.record_for(url, "reqmod").get("user"), "alice")

    def test_icaps(self):
        env = h.clean_env(SSL_CERT_FILE=self.cert)
        text, sec = self.cicap("-s", "reqmod", "-v", port=self.p.icaps_port, tls=True, env=env)
        status, hdrs = self.icap_status(sec, text)
        self.assertEqual(status, 200, text)
        self.assertEqual(field_of(hdrs, "Methods"), "REQMOD")
        url = "http://www.blocked.example/over-tls"
        out = self.out_path()
        text, sec = self.cicap("-s", "reqmod", "-req", url, "-o", out, "-v", port=self.p.icaps_port, tls=True, env=env)
        self.assertEqual(self.icap_status(sec, text)[0], 200, text)
        with open(out, "rb") as f:
            self.assertBlockPage(f.read(), url, "blocked domain")
        out = self.out_path()
        text, sec = self.cicap("-s", "respmod", "-f", self.files[100 * 1024], "-nopreview", "-no204", "-o", out, "-v",
                               port=self.p.icaps_port, tls=True, env=env)
        self.assertEqual(self.icap_status(sec, text)[0], 200, text)
        self.assertEqual(file_sha256(out), h.payload_sha(100 * 1024))
        rec = self.record_for(url, "reqmod")
        self.assertEqual(rec.get("icap_client"), "127.0.0.1")
        self.assertEqual(rec.get("listener"), "icaps")


# ---------------------------------------------------------------------------------------
# Squid in front

def squid_icap_lines(icap_port, encode=True, username_header=None, scheme="icap", tls_opts="", preview=True):
    lines = [
        "icap_enable on",
        "icap_preview_enable %s" % ("on" if preview else "off"),
        "icap_preview_size 1024",
        "icap_persistent_connections on",
        "adaptation_send_client_ip on",
        "adaptation_send_username on",
        "icap_client_username_encode %s" % ("on" if encode else "off"),
        "icap_service_failure_limit -1",
        "icap_service svc_req reqmod_precache bypass=0 %s://127.0.0.1:%d/reqmod %s" % (scheme, icap_port, tls_opts),
        "icap_service svc_resp respmod_precache bypass=0 %s://127.0.0.1:%d/respmod %s" % (scheme, icap_port, tls_opts),
        "adaptation_access svc_req allow all",
        "adaptation_access svc_resp allow all",
    ]
    if username_header:
        lines.append("icap_client_username_header %s" % username_header)
    return lines


OPEN_ACCESS = ["http_access allow localhost", "http_access deny all"]
AUTH_ACCESS = ["auth_param basic program %s" % BASIC_FAKE_AUTH,
               "auth_param basic children 2",
               "auth_param basic realm e2e",
               "acl authed proxy_auth REQUIRED",
               "http_access allow authed",
               "http_access deny all"]


@unittest.skipUnless(os.path.exists(SQUID), "squid not installed")
class SquidCase(IcapCase):
    squids = ()

    @classmethod
    def start_squid(cls, lines, ready_args=(), files=()):
        """lines may name "{dir}" (Squid's folder); files are copied into it first."""
        sq = h.SquidServer(lines, HOSTS)
        cls.addClassCleanup(sq.cleanup)
        for path in files:
            sq.copy_in(path)
        sq.start()
        probe = "http://allowed.example:%d/bytes?n=1" % cls.o.port
        if not sq.wait_ready(probe, 30, ready_args):
            raise AssertionError("no 200 through squid within 30 s\n%s\n%s" % (sq.log_text(), cls.p.stderr_text()))
        return sq

    def setUp(self):
        super().setUp()
        for sq in self.squids:
            self.assertTrue(sq.alive(), "squid is no longer running\n" + sq.log_text())

    def via(self, sq, url, *args, timeout=60):
        status, body, hdrs = self.curl_status("-x", sq.proxy_url, *args, url, timeout=timeout)
        return status, body, hdrs

    def content_type(self, hdrs):
        m = re.findall(r"(?im)^Content-Type:\s*([^\r\n]*)", hdrs)
        return m[-1] if m else ""


class SquidIcap(SquidCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.o = TypedOrigin()
        cls.addClassCleanup(cls.o.close)
        cls.p = icap_portcullis(cls.workdir)
        cls.addClassCleanup(cls.p.stop)
        cls.p.start()
        cls.sq = cls.start_squid(squid_icap_lines(cls.p.port) + OPEN_ACCESS)
        cls.squids = (cls.sq,)

    def u(self, host, path):
        return "http://%s:%d%s" % (host, self.o.port, path)

    def test_allowed_downloads_byte_exact(self):
        for n in (0, 1024, 70 * 1024, 1 << 20, 50 << 20):
            with self.subTest(n=n):
                url = self.u("allowed.example", "/bytes?n=%d" % n)
                d = tempfile.mkdtemp(prefix="dl-", dir=self.workdir)
                out = os.path.join(d, "b")
                r = self.curl("-x", self.sq.proxy_url, "-o", out, "-w", "%{http_code}", url, timeout=120)
                self.assertEqual(r.stdout, b"200", self.sq.log_text())
                if n == 0 and not os.path.exists(out):
                    write_file(out, b"")  # curl creates no file for an empty body
                self.assertEqual(os.path.getsize(out), n)
                self.assertEqual(file_sha256(out), h.payload_sha(n))
                os.unlink(out)
                for mode in ("reqmod", "respmod"):
                    rec = self.record_for(url, mode)
                    self.assertEqual(rec.get("icap_client"), "127.0.0.1", rec)
                    self.assertEqual(rec.get("decision"), "allow", rec)
        for n in (5000, 200 * 1024):
            with self.subTest(chunked=n):
                url = self.u("allowed.example", "/chunked?n=%d" % n)
                status, body, hdrs = self.via(self.sq, url)
                self.assertEqual(status, 200)
                self.assertEqual(h.sha256(body), h.payload_sha(n))

    def test_uploads_byte_exact(self):
        for n in (100 * 1024, 1 << 20):
            with self.subTest(n=n):
                d = tempfile.mkdtemp(prefix="up-", dir=self.workdir)
                src = os.path.join(d, "up")
                write_file(src, h.payload(n))
                url = self.u("allowed.example", "/echo?up=%d" % n)
                status, body, hdrs = self.via(self.sq, url, "--data-binary", "@" + src,
                                              "-H", "Content-Type: application/octet-stream")
                self.assertEqual(status, 200, body[:500])
                j = json.loads(body)
                self.assertEqual((j["method"], j["body_len"], j["body_sha256"]), ("POST", n, h.payload_sha(n)))
                rec = self.record_for(url, "reqmod")
                self.assertEqual(rec.get("method"), "POST")

    def test_blocked_domain_and_url(self):
        for host, path, rule in (("www.blocked.example", "/page?a=1&b='x'", "blocked domain"),
                                 ("blocked.example", "/", "blocked domain"),
                                 ("allowed.example", "/forbidden/thing?x=1&y=2", "blocked url")):
            with self.subTest(host=host, path=path):
                url = self.u(host, path)
                before = len(self.o.heads)
                status, body, hdrs = self.via(self.sq, url)
                self.assertEqual(status, 403, body[:300])
                self.assertRegex(self.content_type(hdrs), r"^text/html")
                rec = self.record_for(url, "reqmod")
                self.assertEqual((rec.get("decision"), rec.get("rule")), ("block", rule), rec)
                rid = self.assertBlockPage(body, url, rule)
                self.assertEqual(rec.get("request_id"), rid)
                self.assertEqual(rec.get("icap_client"), "127.0.0.1")
                self.assertNoOriginRequest(self.o, before=before, settle=0.2)

    def test_response_phase_content_type_block(self):
        for n in (100, 2 << 20):
            with self.subTest(n=n):
                url = self.u("allowed.example", "/typed?ct=video/mp4&n=%d" % n)
                status, body, hdrs = self.via(self.sq, url)
                self.assertEqual(status, 403, body[:300])
                self.assertRegex(self.content_type(hdrs), r"^text/html")
                rid = self.assertBlockPage(body, url, "no video")
                rec = self.record_for(url, "respmod")
                self.assertEqual(rec.get("request_id"), rid)
        # the next requests still go through (the ICAP connection stayed in step)
        url = self.u("allowed.example", "/typed?ct=text/plain&n=3000")
        status, body, hdrs = self.via(self.sq, url)
        self.assertEqual(status, 200)
        self.assertEqual(body, h.payload(3000))

    def test_client_ip_from_squid(self):
        url = self.u("allowed.example", "/bytes?n=10&ip=1")
        status, body, hdrs = self.via(self.sq, url)
        self.assertEqual(status, 200)
        rec = self.record_for(url, "reqmod")
        self.assertEqual(rec.get("client"), "127.0.0.1")
        self.assertEqual(rec.get("icap_client"), "127.0.0.1")


class SquidTransferIgnore(SquidCase):
    """Squid honours the OPTIONS answer's Transfer-Ignore: URLs with those extensions are not
    sent to the ICAP service at all (the admin's choice), every other URL still is."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.o = TypedOrigin()
        cls.addClassCleanup(cls.o.close)
        cls.p = icap_portcullis(cls.workdir, icap={"transfer_ignore": ["jpg"]}, scan={"enabled": False})
        cls.addClassCleanup(cls.p.stop)
        cls.p.start()
        cls.sq = cls.start_squid(squid_icap_lines(cls.p.port) + OPEN_ACCESS)
        cls.squids = (cls.sq,)

    def test_ignored_extension_skips_icap(self):
        blocked = "http://www.blocked.example:%d/photo.png" % self.o.port
        status, body, hdrs = self.via(self.sq, blocked)
        self.assertEqual(status, 403, body[:300])
        self.assertEqual(self.record_for(blocked, "reqmod").get("decision"), "block")
        ignored = "http://www.blocked.example:%d/photo.jpg" % self.o.port
        before = len(self.o.heads)
        status, body, hdrs = self.via(self.sq, ignored)
        self.assertNotEqual(status, 403, "Squid sent a Transfer-Ignore URL to ICAP\n" + self.sq.log_text())
        self.assertGreater(len(self.o.heads), before, "the request did not reach the origin")
        time.sleep(0.5)
        self.assertEqual([r for r in self.p.access_records() if r.get("url") == ignored], [])


class SquidScan(SquidCase):
    """Scanning through Squid: downloads and uploads carrying EICAR get the threat page."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.o = TypedOrigin()
        cls.addClassCleanup(cls.o.close)
        cls.p = icap_portcullis(cls.workdir)
        cls.addClassCleanup(cls.p.stop)
        cls.p.start()
        cls.sq = cls.start_squid(squid_icap_lines(cls.p.port) + OPEN_ACCESS)
        cls.squids = (cls.sq,)

    def u(self, path):
        return "http://allowed.example:%d%s" % (self.o.port, path)

    def assert_threat_page(self, status, body, url):
        text = body.decode("utf-8", "replace")
        self.assertEqual(status, 403, text[:600])
        self.assertIn("Portcullis.Test.EICAR", text, text[:1200])
        rec = self.record_for(url, "respmod") or self.record_for(url, "reqmod")
        self.assertEqual(rec.get("scan"), "infected", rec)
        self.assertTrue(rec.get("threat", "").startswith("Portcullis.Test.EICAR"), rec)
        self.assertEqual(len(rec.get("sha256", "")), 64, rec)

    def test_eicar_downloads_blocked(self):
        for wrap in ("plain", "zip", "zipzip"):
            with self.subTest(wrap=wrap):
                url = self.u("/eicar?wrap=%s" % wrap)
                status, body, hdrs = self.via(self.sq, url)
                self.assert_threat_page(status, body, url)

    def test_eicar_upload_blocked_before_the_origin(self):
        d = tempfile.mkdtemp(prefix="up-", dir=self.workdir)
        src = os.path.join(d, "eicar.com")
        write_file(src, EICAR)
        for args in (("--data-binary", "@" + src), ("-F", "file=@" + src)):
            with self.subTest(args=args[0]):
                before = len(self.o.complete_requests())
                url = self.u("/echo?eicar=%s" % args[0].strip("-"))
                status, body, hdrs = self.via(self.sq, url, *args)
                self.assertEqual(status, 403, body[:600])
                self.assertIn(b"Portcullis.Test.EICAR", body)
                self.assertNoOriginRequest(self.o, before=before, marker="eicar=")

    def test_clean_bodies_scanned_and_cached(self):
        url = self.u("/bytes?n=%d" % (300 * 1024))
        for i in range(2):
            status, body, hdrs = self.via(self.sq, url)
            self.assertEqual(status, 200)
            self.assertEqual(h.sha256(body), h.payload_sha(300 * 1024))
        def respmods():
            return [r for r in self.p.access_records() if r.get("url") == url and r.get("icap_mode") == "respmod"]
        recs = h.wait_until(lambda: len(respmods()) >= 2 and respmods()) or respmods()
        self.assertGreaterEqual(len(recs), 2, recs)
        self.assertEqual(recs[0].get("scan"), "clean", recs[0])
        self.assertTrue(recs[-1].get("scan_cached"), recs[-1])

    def test_infected_large_body_is_cut_off(self):
        # 3 MiB starting with EICAR: the reply starts before the end (trickle), the verdict
        # comes at the end, and the transfer never completes.
        url = self.u("/eicar?wrap=plain&pad=%d" % (3 << 20))
        r = self.curl("-x", self.sq.proxy_url, "-o", os.devnull, "-w", "%{http_code} %{size_download}",
                      url, timeout=60, check=False)
        self.assertNotEqual(r.returncode, 0, "the infected download completed: %r" % r.stdout)
        rec = self.record_for(url, "respmod")
        self.assertEqual(rec.get("scan"), "infected", rec)
        self.assertIn("cut off", rec.get("reason", ""), rec)


class ScanProtocol(IcapCase):
    """Scanning seen from a raw ICAP client: 100 Continue after a preview, the limits, the
    failure mode."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.p = icap_portcullis(cls.workdir, scan={"max_scan_size": 200000})
        cls.addClassCleanup(cls.p.stop)
        cls.p.start()

    def respmod(self, body, preview=1024, allow_204=True, content_length=None, url="http://allowed.example/f",
                res_fields=b""):
        """Sends a RESPMOD with a preview; answers 100 Continue with the rest. Returns the final
        response and whether 100 Continue came. res_fields: more response header lines."""
        n = len(body) if content_length is None else content_length
        req = h.http_request_head("GET", url, [])
        res = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n" % n
               + res_fields + b"\r\n")
        fields = [("Preview", str(preview))] + ([("Allow", "204")] if allow_204 else [])
        s, r = self.open_icap()
        first, rest = body[:preview], body[preview:]
        s.sendall(h.icap_head("RESPMOD", self.uri("respmod"), fields, req_hdr=req, res_hdr=res, body_kind="res-body")
                  + h.icap_chunked(first) + h.icap_last_chunk(ieof=not rest))
        resp = h.read_icap_response(r)
        continued = resp.status == 100
        if continued:
            s.sendall(h.icap_chunked(rest) + h.icap_last_chunk())
            resp = h.read_icap_response(r)
        return resp, continued

    def test_eicar_after_the_preview_gets_the_threat_page(self):
        body = b"a" * 1500 + EICAR + b"b" * 500
        resp, continued = self.respmod(body)
        self.assertTrue(continued, "no 100 Continue: the scan needs the whole body")
        self.assertEqual(resp.status, 200, resp)
        self.assertIn(b"403", resp.heads.get("res-hdr", b"").split(b"\r\n")[0])
        self.assertIn(b"Portcullis.Test.EICAR", resp.body)

    def test_threat_logged_with_file_name_size_type_and_engine(self):
        body = EICAR + b"\n" * 3000
        url = "http://allowed.example/dl?id=7"
        resp, _ = self.respmod(body, url=url,
                               res_fields=b"Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.exe\r\n")
        self.assertIn(b"Portcullis.Test.EICAR", resp.body)
        rec = self.record_for(url, "respmod")
        self.assertEqual(rec.get("scan"), "infected", rec)
        rid = rec["request_id"]
        line = h.wait_until(lambda: next((ln for ln in self.p.stderr_text(400000).splitlines()
                                          if rid in ln and "sha256" in ln), None), timeout=10)
        self.assertTrue(line, "no block log line for %s" % rid)
        self.assertIn("sha256 " + h.sha256(body), line)
        self.assertIn('file "r\u00e9sum\u00e9.exe"', line)
        self.assertIn("%d bytes" % len(body), line)
        self.assertRegex(line, r"engine ClamAV [0-9.]+/[0-9]+")

    def test_clean_body_after_the_preview_gets_204(self):
        resp, continued = self.respmod(h.payload(5000))
        self.assertTrue(continued)
        self.assertEqual(resp.status, 204, resp)
        resp, continued = self.respmod(h.payload(5000), allow_204=False)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.body, h.payload(5000))

    def test_whole_body_in_the_preview(self):
        resp, continued = self.respmod(EICAR)
        self.assertFalse(continued)
        self.assertEqual(resp.status, 200)
        self.assertIn(b"Portcullis.Test.EICAR", resp.body)
        resp, continued = self.respmod(b"hello", allow_204=False)
        self.assertFalse(continued)
        self.assertEqual(resp.status, 204, "a whole body in the preview may get 204")

    def test_announced_larger_than_max_scan_size_passes_unscanned(self):
        url = "http://allowed.example/too-large"
        resp, continued = self.respmod(EICAR + b"x" * 1000, content_length=300000, url=url)
        self.assertFalse(continued, "not scanned: no need for the rest")
        self.assertEqual(resp.status, 204, resp)
        rec = self.record_for(url, "respmod")
        self.assertEqual(rec.get("scan"), "not scanned", rec)


class ScanFailureMode(IcapCase):
    """No engine (the signature directory is missing): on_failure decides, by true type."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        missing = os.path.join(cls.workdir, "no-such-signatures")
        cls.p = icap_portcullis(cls.workdir, scan={"shipped_signatures": missing, "on_failure": "by_type"})
        cls.addClassCleanup(cls.p.stop)
        cls.p.start()

    def test_by_type_blocks_executables_and_passes_text(self):
        with open("/bin/true", "rb") as f:
            elf = f.read()
        for name, body, blocked in (("elf", elf[:20000], True), ("text", b"plain words\n" * 100, False)):
            with self.subTest(name=name):
                url = "http://allowed.example/%s" % name
                req = h.http_request_head("GET", url, [])
                res = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
                resp, s, r = self.exchange(
                    h.icap_head("RESPMOD", self.uri("respmod"), [("Allow", "204")], req_hdr=req, res_hdr=res,
                                body_kind="res-body") + h.icap_chunked(body) + h.icap_last_chunk())
                rec = self.record_for(url, "respmod")
                self.assertEqual(rec.get("scan"), "error", rec)
                if blocked:
                    self.assertEqual(resp.status, 200, resp)
                    self.assertIn(b"fail-closed", resp.body)
                else:
                    self.assertEqual(resp.status, 204, resp)
        self.assertIn("scanning engines", self.p.stderr_text())


class SquidNoPreview(SquidCase):
    """Squid with icap_preview_enable off: every body goes to Portcullis whole, with
    "Allow: 204" when Squid can keep a copy. Portcullis answers 204 for short bodies and
    must start the 200 echo of a long one before it ends (docs/icap.md)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.o = TypedOrigin()
        cls.addClassCleanup(cls.o.close)
        cls.p = icap_portcullis(cls.workdir)
        cls.addClassCleanup(cls.p.stop)
        cls.p.start()
        cls.sq = cls.start_squid(squid_icap_lines(cls.p.port, preview=False) + OPEN_ACCESS)
        cls.squids = (cls.sq,)

    def u(self, path):
        return "http://allowed.example:%d%s" % (self.o.port, path)

    def test_downloads_and_uploads_byte_exact(self):
        for n in (0, 10 * 1024, 70 * 1024, 1 << 20, 50 << 20):
            with self.subTest(download=n):
                url = self.u("/bytes?n=%d&np=1" % n)
                d = tempfile.mkdtemp(prefix="dl-", dir=self.workdir)
                out = os.path.join(d, "b")
                r = self.curl("-x", self.sq.proxy_url, "-o", out, "-w", "%{http_code}", url, timeout=120)
                self.assertEqual(r.stdout, b"200", self.sq.log_text())
                if n == 0 and not os.path.exists(out):
                    write_file(out, b"")
                self.assertEqual(os.path.getsize(out), n)
                self.assertEqual(file_sha256(out), h.payload_sha(n))
                os.unlink(out)
                rec = self.record_for(url, "respmod")
                self.assertEqual(rec.get("decision"), "allow", rec)
        for n in (10 * 1024, 100 * 1024, 1 << 20):
            with self.subTest(upload=n):
                d = tempfile.mkdtemp(prefix="up-", dir=self.workdir)
                src = os.path.join(d, "up")
                write_file(src, h.payload(n))
                status, body, hdrs = self.via(self.sq, self.u("/echo?np-up=%d" % n), "--data-binary", "@" + src,
                                              "-H", "Content-Type: application/octet-stream")
                self.assertEqual(status, 200, body[:500])
                j = json.loads(body)
                self.assertEqual((j["body_len"], j["body_sha256"]), (n, h.payload_sha(n)))

    def test_blocks(self):
        url = self.u("/typed?ct=video/webm&n=%d" % (3 << 20))
        status, body, hdrs = self.via(self.sq, url)
        self.assertEqual(status, 403)
        self.assertBlockPage(body, url, "no video")
        url = "http://www.blocked.example:%d/np" % self.o.port
        status, body, hdrs = self.via(self.sq, url)
        self.assertEqual(status, 403)
        self.assertBlockPage(body, url, "blocked domain")
        # the ICAP connections stay usable
        status, body, hdrs = self.via(self.sq, self.u("/typed?ct=text/plain&n=100000"))
        self.assertEqual((status, body), (200, h.payload(100000)))


@unittest.skipUnless(os.path.exists(BASIC_FAKE_AUTH), "squid's basic_fake_auth helper not installed")
class SquidIdentity(SquidCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.o = TypedOrigin()
        cls.addClassCleanup(cls.o.close)
        cls.p = icap_portcullis(cls.workdir)
        cls.addClassCleanup(cls.p.stop)
        cls.p.start()
        # base64 in X-Authenticated-User, and plain in Squid's default X-Client-Username
        cls.sq_b64 = cls.start_squid(squid_icap_lines(cls.p.port, True, "X-Authenticated-User") + AUTH_ACCESS,
                                     ("-U", "bob:x"))
        cls.sq_plain = cls.start_squid(squid_icap_lines(cls.p.port, False) + AUTH_ACCESS, ("-U", "bob:x"))
        cls.squids = (cls.sq_b64, cls.sq_plain)

    def test_alice_blocked_bob_allowed(self):
        for label, sq in (("base64", self.sq_b64), ("plain", self.sq_plain)):
            with self.subTest(encoding=label):
                url = "http://allowed.example:%d/bytes?n=2000&who=alice-%s" % (self.o.port, label)
                status, body, hdrs = self.via(sq, url, "-U", "alice:x")
                self.assertEqual(status, 403, body[:300])
                rid = self.assertBlockPage(body, url, "not for alice")
                rec = self.record_for(url, "reqmod")
                self.assertEqual((rec.get("user"), rec.get("icap_client"), rec.get("request_id")),
                                 ("alice", "127.0.0.1", rid), rec)
                url = "http://allowed.example:%d/bytes?n=2000&who=bob-%s" % (self.o.port, label)
                status, body, hdrs = self.via(sq, url, "-U", "bob:x")
                self.assertEqual(status, 200)
                self.assertEqual(body, h.payload(2000))
                rec = self.record_for(url, "reqmod")
                self.assertEqual((rec.get("user"), rec.get("icap_client")), ("bob", "127.0.0.1"), rec)
                # without credentials Squid itself refuses (407) before any ICAP
                status, body, hdrs = self.via(sq, url + "&anon=1")
                self.assertEqual(status, 407)


class SquidIcaps(SquidCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not h.squid_has_openssl(SQUID):
            raise unittest.SkipTest("this squid is built without --with-openssl: its icap_service ignores "
                                    "tls-cafile and Squid 5.7/GnuTLS aborts on icaps:// (Xaction.cc assertion)")
        cls.o = TypedOrigin()
        cls.addClassCleanup(cls.o.close)
        tls_dir = tempfile.mkdtemp(prefix="tls-", dir=cls.workdir)
        cls.cert, cls.key = h.make_cert(tls_dir, names=("localhost",), ips=("127.0.0.1",))
        cls.p = icap_portcullis(cls.workdir, tls=(cls.cert, cls.key))
        cls.addClassCleanup(cls.p.stop)
        cls.p.start()
        cls.sq = cls.start_squid(squid_icap_lines(cls.p.icaps_port, scheme="icaps",
                                                  tls_opts="tls-cafile={dir}/%s" % os.path.basename(cls.cert))
                                 + OPEN_ACCESS, files=[cls.cert])
        cls.squids = (cls.sq,)

    def test_through_icaps(self):
        url = "http://allowed.example:%d/bytes?n=%d" % (self.o.port, 1 << 20)
        status, body, hdrs = self.via(self.sq, url)
        self.assertEqual(status, 200)
        self.assertEqual(h.sha256(body), h.payload_sha(1 << 20))
        url = "http://www.blocked.example:%d/tls" % self.o.port
        status, body, hdrs = self.via(self.sq, url)
        self.assertEqual(status, 403)
        self.assertBlockPage(body, url, "blocked domain")
        self.assertEqual(self.record_for(url, "reqmod").get("listener"), "icaps")


# ---------------------------------------------------------------------------------------
# Configuration: client networks, ISTag, generated certificate, mutual TLS

class IcapConfig(IcapCase):
    def test_client_not_in_networks_gets_403_closed(self):
        self.p = icap_portcullis(self.workdir, icap={"client_networks": ["10.0.0.0/8"]})
        self.addCleanup(self.p.stop)
        self.p.start()
        resp, s, r = self.exchange(h.icap_head("OPTIONS", self.uri()))
        self.assertIsNotNone(resp, "closed without an answer")
        self.assertEqual(resp.status, 403, resp)
        self.assertTrue(h.is_closed(s, 5))
        rec = self.records(lambda r: r.get("icap_client") == "127.0.0.1")[-1]
        self.assertTrue(rec.get("reason"), "the error's reason is not logged: %r" % rec)

    def test_too_many_connections_503_closed(self):
        self.p = icap_portcullis(self.workdir, icap={"max_connections": 3})
        self.addCleanup(self.p.stop)
        # Proxy.start() probes each listener with a connection that closes at once; wait
        # until those are gone before counting.
        self.p.start()
        held = []
        deadline = time.monotonic() + 10
        while True:
            s, r = self.open_icap()
            s.sendall(h.icap_head("OPTIONS", self.uri()))
            resp = h.read_icap_response(r)
            if resp is not None and resp.status == 200:
                held.append((s, r))
                if len(held) == 3:
                    break
            elif time.monotonic() > deadline:
                self.fail("could not hold 3 ICAP connections under max_connections = 3: %r" % resp)
            else:
                time.sleep(0.1)
        resp, s, r = self.exchange(h.icap_head("OPTIONS", self.uri()))
        self.assertIsNotNone(resp, "closed without an answer")
        self.assertEqual(resp.status, 503, resp)
        self.assertTrue(h.is_closed(s, 5))
        # the held connections still work, and a slot frees when one closes
        hs, hr = held[0]
        hs.sendall(h.icap_head("OPTIONS", self.uri()))
        self.assertEqual(h.read_icap_response(hr).status, 200)
        held[1][0].close()
        def slot_free():
            resp = self.options("reqmod")
            return resp is not None and resp.status == 200
        self.assertTrue(h.wait_until(slot_free, 10, 0.2), "no slot after a connection closed")

    def test_socket_settings_per_listener(self):
        """ICAP listeners give their connections cubic and a 1 MiB receive buffer by default,
        a listener's tcp_congestion and receive_buffer others, proxy listeners the kernel's;
        what the kernel refuses is logged and its own value used."""
        system = read_text("/proc/sys/net/ipv4/tcp_congestion_control").strip()
        available = set(read_text("/proc/sys/net/ipv4/tcp_available_congestion_control").split())
        autotuned = int(read_text("/proc/sys/net/ipv4/tcp_rmem").split()[1])
        ports = {name: h.free_port() for name in ("icap", "set", "proxy", "bogus")}
        listeners = [
            {"name": "icap", "address": "127.0.0.1", "port": ports["icap"], "protocol": "icap"},
            {"name": "set", "address": "127.0.0.1", "port": ports["set"], "protocol": "icap",
             "tcp_congestion": "reno", "receive_buffer": 262144},
            {"name": "proxy", "address": "127.0.0.1", "port": ports["proxy"]},
            {"name": "bogus", "address": "127.0.0.1", "port": ports["bogus"], "protocol": "icap",
             "tcp_congestion": "nosuchcc", "receive_buffer": 0},
        ]
        self.p = h.Proxy(self.workdir, {"icap": {"client_networks": ["127.0.0.0/8"]}}, listeners)
        self.addCleanup(self.p.stop)
        self.p.start()
        log = read_text(self.p.stderr_path)
        self.assertRegex(log, r'warn listener bogus: TCP congestion control "nosuchcc" unavailable \(.+\): '
                              r"the system's is used")
        cubic_refused = 'listener icap: TCP congestion control "cubic" unavailable' in log
        # The kernel reports twice the size asked for (its bookkeeping), as SO_RCVBUF does.
        expected = {"icap": (system if cubic_refused else "cubic", 2 * 1048576),
                    "set": ("reno", 2 * 262144), "proxy": (system, autotuned), "bogus": (system, autotuned)}
        for name, port in ports.items():
            s = h.connect(port)
            self.addCleanup(s.close)
            self.assertIn("port %d (%s, TCP congestion control %s" % (
                port, "proxy" if name == "proxy" else "icap", expected[name][0]), log)

            def settings():  # the accepted connection's, as ss shows them
                out = subprocess.run(["ss", "-Htinm", "state", "established", "( sport = :%d )" % port],
                                     capture_output=True, text=True, timeout=10).stdout
                cc = next((w for w in out.split() if w in available), None)
                rb = re.search(r"\brb(\d+)\b", out)
                return (cc, int(rb.group(1))) if cc and rb else None
            self.assertEqual(h.wait_until(settings, 5), expected[name], "listener %s" % name)
        # The ICAP listeners still answer.
        for name in ("icap", "set", "bogus"):
            self.assertEqual(self.options("reqmod", port=ports[name]).status, 200, name)

    def test_user_encoding_setting(self):
        for encoding, value, blocked in (("plain", b64("alice"), False), ("plain", "alice", True),
                                         ("base64", b64("alice"), True)):
            with self.subTest(user_encoding=encoding, value=value):
                self.p = icap_portcullis(self.workdir, icap={"user_encoding": encoding})
                self.addCleanup(self.p.stop)
                self.p.start()
                resp = self.reqmod("http://allowed.example/enc", fields=[("X-Authenticated-User", value)])
                if blocked:
                    self.assertEqual(resp.http_status(), 403, resp)
                else:
                    self.assertEqual(resp.status, 204, resp)

    def test_istag_changes_with_the_policy(self):
        self.p = icap_portcullis(self.workdir)
        self.addCleanup(self.p.stop)
        self.p.start()
        tag1 = self.options("reqmod").header("ISTag")
        self.assertEqual(self.options("respmod").header("ISTag"), tag1)
        write_file(self.p.policy_path, POLICY.replace('domains = ["blocked.example"]',
                                                      'domains = ["blocked.example", "new.example"]'))
        st = os.stat(self.p.policy_path)
        os.utime(self.p.policy_path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
        changed = h.wait_until(lambda: self.options("reqmod").header("ISTag") != tag1, 15, 0.2)
        self.assertTrue(changed, "ISTag did not change after a policy reload\n" + self.p.stderr_text())
        resp = self.reqmod("http://new.example/x")
        self.assertEqual(resp.http_status(), 403, resp)

    def peer_cert_text(self, port, ctx):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                der = s.getpeercert(binary_form=True)
                version = s.version()
                s.sendall(h.icap_head("OPTIONS", self.uri("reqmod", port)))
                resp = h.read_icap_response(h.ConnReader(s, 10))
        r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-text"], input=der,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        return r.stdout.decode(errors="replace"), version, resp

    def test_icaps_generated_certificate(self):
        self.p = icap_portcullis(self.workdir, tls="generate")
        self.addCleanup(self.p.stop)
        self.p.start()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        text, version, resp = self.peer_cert_text(self.p.icaps_port, ctx)
        self.assertEqual(resp.status, 200, resp)
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
        self.assertRegex(text, r"Subject:.*CN\s*=\s*%s" % re.escape(h.GATEWAY_NAME), text)
        self.assertRegex(text, r"(prime256v1|P-256)", text)
        # TLS below 1.2 is refused
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname = False
        old.verify_mode = ssl.CERT_NONE
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                old.minimum_version = ssl.TLSVersion.TLSv1
                old.maximum_version = ssl.TLSVersion.TLSv1_1
            old.set_ciphers("ALL:@SECLEVEL=0")
        except (ValueError, ssl.SSLError):
            return
        with self.assertRaises((ssl.SSLError, OSError)):
            self.peer_cert_text(self.p.icaps_port, old)

    def test_icaps_mutual_tls(self):
        sdir = tempfile.mkdtemp(prefix="tls-s-", dir=self.workdir)
        cdir = tempfile.mkdtemp(prefix="tls-c-", dir=self.workdir)
        odir = tempfile.mkdtemp(prefix="tls-o-", dir=self.workdir)
        cert, key = h.make_cert(sdir, names=("localhost",), ips=("127.0.0.1",))
        ccert, ckey = h.make_cert(cdir, names=("client.e2e.test",), ips=())
        ocert, okey = h.make_cert(odir, names=("other.e2e.test",), ips=())
        self.p = icap_portcullis(self.workdir, tls=(cert, key), icap={"tls_client_ca": ccert})
        self.addCleanup(self.p.stop)
        self.p.start()

        def attempt(chain):
            ctx = h.client_tls_context(cert)
            if chain:
                ctx.load_cert_chain(*chain)
            try:
                text, version, resp = self.peer_cert_text(self.p.icaps_port, ctx)
                return resp.status if resp else None
            except (ssl.SSLError, OSError, EOFError):
                return None

        self.assertEqual(attempt((ccert, ckey)), 200)
        self.assertIsNone(attempt(None), "served an ICAPS client without a certificate")
        self.assertIsNone(attempt((ocert, okey)), "served an ICAPS client with an unknown certificate")


if __name__ == "__main__":
    h.main()
