#!/usr/bin/python3
"""The policy engine through the proxy, end to end: default allow, rule and list blocks and
their pages (English and Japanese, escaping), the organisation's approved and blocked lists,
warn pages with their signed "Continue" token and cookie, category databases (UT1 layout) and
URLhaus-style reputation feeds, response-phase rules (content types), guest listeners, and
policy reloads (file watch, SIGHUP, broken files), `check-config` and `policy test`."""

import html
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GEN_CATDB = os.path.join(HERE, "..", "..", "tools", "gen_catdb.py")
WARN_COOKIE = "__portcullis_warn"
CONTINUE_PARAM = "__portcullis_continue"
SPOOFED_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n\r\nspoofed by the video!"


# ---------------------------------------------------------------------------------------
# Helpers

class CatchAllDNS(h.FakeDNS):
    """Every name resolves to 127.0.0.1 (where the origin listens)."""

    def action(self, name):
        return "127.0.0.1"


class TypedOrigin(h.OriginServer):
    """The harness origin plus /typed?ct=TYPE&n=N: N payload bytes with that Content-Type."""

    def respond(self, sock, reader, req, path, q, keep):
        if path == "/typed":
            ct = q.get("ct", "text/html")
            n = int(q.get("n", "1000"))
            body = h.payload(n)
            ka = b"" if keep else b"Connection: close\r\n"
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
                         % (ct.encode(), n, ka) + (b"" if req.method == "HEAD" else body))
            return True
        if path == "/videoresp":
            # a "video" whose bytes look like an HTTP response
            body = SPOOFED_RESPONSE
            ka = b"" if keep else b"Connection: close\r\n"
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: %d\r\n%s\r\n"
                         % (len(body), ka) + body)
            return True
        return super().respond(sock, reader, req, path, q, keep)


def write_file(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def bump_mtime(path, seconds=2):
    """Rewritten files may keep the same mtime on coarse clocks: move it forward."""
    st = os.stat(path)
    t = max(time.time_ns(), st.st_mtime_ns) + seconds * 1_000_000_000
    os.utime(path, ns=(t, t))


def policy_proxy(workdir, policy_text, overrides=None, listeners=None):
    """A Proxy (not started) whose config names policy.toml in its own folder."""
    p = h.Proxy(workdir, overrides, listeners)
    path = os.path.join(p.dir, "policy.toml")
    write_file(path, policy_text)
    p.cfg["policy"] = {"file": path}
    p.write_config()
    p.policy_path = path
    return p


def dns_overrides(dns):
    return {"dns": {"servers": [dns.server], "timeout": 0.5, "tries": 1, "hosts_file": False}}


def page_field(body, label):
    """The value shown after <dt>label</dt> on a page (HTML-unescaped), or None."""
    m = re.search(r"<dt>%s</dt><dd>(?:<code>)?(.*?)(?:</code>)?</dd>" % re.escape(label), body, re.S)
    return html.unescape(m.group(1)) if m else None


def continue_link(body):
    for href in re.findall(r'href="([^"]*)"', body):
        u = html.unescape(href)
        if CONTINUE_PARAM + "=" in u:
            return u
    return None


class PolicyCase(h.PortcullisTestCase):
    def record_for(self, p, url, n=1, timeout=5.0, pred=None):
        """The n-th access-log record for url (waits, bounded)."""
        return p.access_matching(lambda r: (url is None or r.get("url") == url)
                                 and (pred is None or pred(r)), n, timeout)[n - 1]

    def get(self, port, url, headers=None, method="GET", host="127.0.0.1", source=None):
        """One request through the proxy with http.client (headers exactly as given)."""
        c = http.client.HTTPConnection(host, port, timeout=20,
                                       source_address=(source, 0) if source else None)
        self.addCleanup(c.close)
        c.request(method, url, headers=headers or {})
        r = c.getresponse()
        return r, r.read()

    def curl_via(self, port, url, *args, source=None):
        extra = ["--interface", source] if source else []
        return self.curl_status("-x", "http://127.0.0.1:%d" % port, *extra, *args, url)

    def raw_connect(self, port, authority):
        resp = self.raw(port, ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority)).encode(),
                        method="CONNECT")
        self.assertIsNotNone(resp, "no response to CONNECT %s" % authority)
        return resp


# ---------------------------------------------------------------------------------------
# Decisions, pages, lists, warn, categories, content types, guests (one shared gateway)

MAIN_POLICY = """
[settings]
time_zone = "UTC"
warn_duration = 600

[lists]
approved = ["ok.corp.example"]
blocked = ["corp.example", "files.example/dangerous/"]

[[databases]]
name = "ut1"
version = "2026-01-15"
format = "squidguard"
path = "{catdb}"

[[rules]]
name = "no gambling sites"
note = "e2e"
domains = ["blocked.example", "ok.corp.example"]
action = "block"

[[rules]]
name = "careful with forums"
domains = ["warned.example"]
action = "warn"

[[rules]]
name = "blocked category"
categories = ["{category}", "e2e_handmade"]
action = "block"

[[rules]]
name = "no video"
content_types = ["video/*"]
action = "block"

[[rules]]
name = "guests not here"
guest = true
domains = ["guestblocked.example"]
action = "block"

[default]
action = "allow"
"""


class Decisions(PolicyCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.o = TypedOrigin()
        cls.addClassCleanup(cls.o.close)
        cls.dns = CatchAllDNS({})
        cls.addClassCleanup(cls.dns.close)
        # A generated UT1-layout database plus one hand-written category folder.
        cls.catdb = os.path.join(cls.workdir, "ut1")
        r = subprocess.run([sys.executable, GEN_CATDB, "--out", cls.catdb, "--domains", "2000",
                            "--categories", "8", "--seed", "7", "--samples", "50"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if r.returncode != 0:
            raise AssertionError("gen_catdb.py failed: %s" % r.stderr.decode(errors="replace"))
        samples = []
        with open(os.path.join(cls.catdb, "samples.tsv")) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 3 and parts[0] == "domain":
                    samples.append((parts[1], parts[2]))
        if not samples:
            raise AssertionError("gen_catdb.py wrote no domain samples")
        cls.sample_domain, cls.sample_category = samples[0]
        hand = os.path.join(cls.catdb, "e2e_handmade")
        os.makedirs(hand, exist_ok=True)
        write_file(os.path.join(hand, "domains"), "# hand-written\nhandmade-cat.example\n")
        listeners = [{"name": "proxy", "address": "127.0.0.1", "port": h.free_port()},
                     {"name": "guest", "address": "127.0.0.1", "port": h.free_port(), "guest": True}]
        cls.p = policy_proxy(cls.workdir, MAIN_POLICY.format(catdb=cls.catdb, category=cls.sample_category),
                             dns_overrides(cls.dns), listeners)
        cls.addClassCleanup(cls.p.stop)
        cls.p.start()
        cls.guest_port = listeners[1]["port"]

    def setUp(self):
        self.p.revive()

    def u(self, host, path="/echo"):
        return "http://%s:%d%s" % (host, self.o.port, path)

    # -- allow / block / lists ---------------------------------------------------------
    def test_default_allows(self):
        url = self.u("allowed.example", "/echo?t=default")
        status, body, hdrs = self.curl_via(self.p.port, url)
        self.assertEqual(status, 200, body[:500])
        self.assertEqual(json.loads(body)["target"], "/echo?t=default")
        rec = self.record_for(self.p, url)
        self.assertEqual((rec.get("decision"), rec.get("rule"), rec.get("result")), ("allow", "default", "allowed"))

    def test_rule_block_page_and_log(self):
        url = self.u("www.blocked.example", "/page?t=rule")
        before = len(self.o.heads)
        status, body, hdrs = self.curl_via(self.p.port, url)
        self.assertEqual(status, 403)
        text = body.decode("utf-8")
        self.assertIn("blocked by your organisation&#39;s policy", text, "not the rule_block page")
        self.assertEqual(page_field(text, "Rule"), "no gambling sites")
        self.assertEqual(page_field(text, "URL"), url)
        rid = page_field(text, "Request ID")
        self.assertTrue(rid, "the page shows no request ID")
        self.assertRegex(hdrs, r"(?im)^Content-Type: text/html; charset=utf-8\r?$")
        self.assertRegex(hdrs, r"(?im)^Cache-Control: no-store\r?$")
        rec = self.record_for(self.p, url)
        self.assertEqual(rec.get("decision"), "block")
        self.assertEqual(rec.get("rule"), "no gambling sites")
        self.assertEqual(rec.get("result"), "denied")
        self.assertEqual(rec.get("status"), 403)
        self.assertEqual(rec.get("request_id"), rid, "page and access log show different request IDs")
        self.assertNoOriginRequest(self.o, before=before, marker="t=rule")

    def test_blocked_list_page(self):
        url = self.u("intranet.corp.example", "/x?t=list")
        status, body, _ = self.curl_via(self.p.port, url)
        self.assertEqual(status, 403)
        text = body.decode("utf-8")
        self.assertIn("list of blocked sites", text, "not the list_block page")
        self.assertEqual(page_field(text, "URL"), url)
        self.assertEqual(page_field(text, "Host"), "intranet.corp.example")
        self.assertTrue(page_field(text, "Request ID"))
        rec = self.record_for(self.p, url)
        self.assertEqual((rec.get("decision"), rec.get("rule"), rec.get("result")),
                         ("block", "blocked list", "denied"))
        # a URL-prefix entry of the blocked list
        url2 = self.u("files.example", "/dangerous/tool.bin")
        status, body, _ = self.curl_via(self.p.port, url2)
        self.assertEqual(status, 403)
        self.assertIn("list of blocked sites", body.decode("utf-8"))
        status, body, _ = self.curl_via(self.p.port, self.u("files.example", "/echo?safe=1"))
        self.assertEqual(status, 200)

    def test_approved_list_wins(self):
        # ok.corp.example: on the approved list, under a blocked-list domain, and named by a
        # block rule. The approved list wins over both.
        url = self.u("ok.corp.example", "/echo?t=approved")
        status, body, _ = self.curl_via(self.p.port, url)
        self.assertEqual(status, 200, body[:600])
        rec = self.record_for(self.p, url)
        self.assertEqual((rec.get("decision"), rec.get("rule"), rec.get("result")),
                         ("allow", "approved list", "allowed"))

    def test_connect_blocked_and_warned(self):
        for authority, rule in (("blocked.example:443", "no gambling sites"),
                                ("warned.example:443", "careful with forums")):
            with self.subTest(authority=authority):
                resp = self.raw_connect(self.p.port, authority)
                self.assertEqual(resp.status, 403, resp)
                rec = self.record_for(self.p, None, pred=lambda r: r.get("method") == "CONNECT"
                                      and authority.split(":")[0] in (r.get("url") or ""))
                self.assertEqual(rec.get("rule"), rule)
                self.assertEqual(rec.get("result"), "denied")

    # -- pages: languages, escaping -----------------------------------------------------
    def test_languages(self):
        cases = [
            ("ja, ja-JP;q=0.9, en;q=0.8", "ja"),
            ("ja-JP", "ja"),
            ("fr, ja;q=0.5", "ja"),
            ("en-US,en;q=0.9,ja;q=0.8", "en"),
            ("ja;q=0, en", "en"),
            (None, "en"),
        ]
        for al, lang in cases:
            with self.subTest(accept_language=al):
                headers = {"Accept-Language": al} if al is not None else {}
                r, body = self.get(self.p.port, self.u("blocked.example", "/lang"), headers)
                self.assertEqual(r.status, 403)
                text = body.decode("utf-8")
                self.assertIn('<html lang="%s">' % lang, text)
                self.assertEqual(r.getheader("Content-Language"), lang)
                self.assertEqual(r.getheader("Cache-Control"), "no-store")
                self.assertEqual(r.getheader("Content-Type"), "text/html; charset=utf-8")
                if lang == "ja":
                    self.assertIn("アクセスがブロックされました", text)
                else:
                    self.assertIn("Access blocked", text)
                self.assertIn("no gambling sites", text)
        # the warn page in Japanese too
        r, body = self.get(self.p.port, self.u("warned.example", "/lang"), {"Accept-Language": "ja"})
        self.assertEqual(r.status, 403)
        self.assertIn('<html lang="ja">', body.decode("utf-8"))
        self.assertEqual(r.getheader("Content-Language"), "ja")
        self.assertIsNotNone(continue_link(body.decode("utf-8")))

    def test_script_in_url_is_escaped(self):
        evil_path = "/<script>alert(1)</script>?\"onerror=x&y='z'"
        for host, kind in (("blocked.example", "block"), ("warned.example", "warn")):
            with self.subTest(page=kind):
                url = "http://%s:%d%s" % (host, self.o.port, evil_path)
                s = h.connect(self.p.port)
                self.addCleanup(s.close)
                s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n"
                           % (url, host, self.o.port)).encode())
                resp = h.read_response(h.ConnReader(s))
                self.assertIsNotNone(resp)
                text = resp.text()
                self.assertEqual(resp.status, 403, text[:300])
                self.assertNotIn("<script", text.lower(), "literal <script> from the URL on the page")
                self.assertNotIn("alert(1)</", text)
                self.assertNotIn('"onerror', text)
                self.assertNotIn("'z'", text)
                self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;?&quot;onerror=x", text)
                self.assertEqual(page_field(text, "URL"), url)
                for href in re.findall(r'href="([^"]*)"', text):
                    self.assertNotIn("<", href)
                    self.assertNotIn("'", href)
                if kind == "warn":
                    link = continue_link(text)
                    self.assertTrue(link and link.startswith(url + "&" + CONTINUE_PARAM + "="), link)
        # the same through curl (which sends the URL as given)
        status, body, _ = self.curl_via(self.p.port, "http://blocked.example/%3Cscript%3E?%22x=<script>y")
        page = body.decode("utf-8", "replace")
        self.assertEqual(status, 403)
        self.assertNotIn("<script", page.lower())
        self.assertIn("%3Cscript%3E?%22x=&lt;script&gt;y", page)

    # -- warn -------------------------------------------------------------------------
    def test_warn_continue_cookie_flow(self):
        jar = os.path.join(tempfile.mkdtemp(prefix="jar-", dir=self.workdir), "cookies")
        url = self.u("warned.example", "/echo?a=1&b=two")
        status, body, hdrs = self.curl_via(self.p.port, url, "-c", jar, "-b", jar)
        self.assertEqual(status, 403)
        text = body.decode("utf-8")
        self.assertIn("Please check before you continue", text)
        self.assertEqual(page_field(text, "Rule"), "careful with forums")
        self.assertRegex(hdrs, r"(?im)^Cache-Control: no-store\r?$")
        link = continue_link(text)
        self.assertIsNotNone(link, "no Continue link on the warn page:\n" + text[-1500:])
        self.assertTrue(link.startswith(url + "&" + CONTINUE_PARAM + "="), link)
        token = link.split(CONTINUE_PARAM + "=", 1)[1]
        self.assertRegex(token, r"^[A-Za-z0-9_-]+$", "token is not base64url")
        rec = self.record_for(self.p, url)
        self.assertEqual((rec.get("decision"), rec.get("rule"), rec.get("result")),
                         ("warn", "careful with forums", "denied"))

        # Continue: 302 to the URL without the token, and the cookie.
        n_before = len(self.o.heads)
        status, body, hdrs = self.curl_via(self.p.port, link, "-c", jar, "-b", jar)
        self.assertEqual(status, 302, hdrs)
        loc = re.search(r"(?im)^Location: (.*?)\r?$", hdrs)
        self.assertIsNotNone(loc, hdrs)
        self.assertEqual(loc.group(1), url)
        sc = re.search(r"(?im)^Set-Cookie: (.*?)\r?$", hdrs)
        self.assertIsNotNone(sc, hdrs)
        self.assertTrue(sc.group(1).startswith(WARN_COOKIE + "="), sc.group(1))
        self.assertIn("HttpOnly", sc.group(1))
        self.assertNoOriginRequest(self.o, before=n_before, settle=0.2)

        # Now the site passes; the origin never sees the gateway's cookie.
        status, body, _ = self.curl_via(self.p.port, url, "-c", jar, "-b", jar)
        self.assertEqual(status, 200, body[:600])
        seen = json.loads(body)
        self.assertEqual(seen["target"], "/echo?a=1&b=two")
        cookies = [v for n, v in seen["headers"] if n.lower() == "cookie"]
        self.assertFalse(any(WARN_COOKIE in c for c in cookies), cookies)
        rec = self.record_for(self.p, url, pred=lambda r: r.get("result") == "allowed")
        self.assertEqual((rec.get("decision"), rec.get("status")), ("warn", 200))
        # other paths of the same site pass too
        status, _, _ = self.curl_via(self.p.port, self.u("warned.example", "/echo?other=1"), "-b", jar)
        self.assertEqual(status, 200)

        # Other cookies survive, in order, around ours (http.client: exact header).
        cookie_val = self.cookie_from_jar(jar)
        r, body = self.get(self.p.port, url,
                           {"Cookie": "a=1; %s=%s; b=2" % (WARN_COOKIE, cookie_val)})
        self.assertEqual(r.status, 200, body[:600])
        cookies = [v for n, v in json.loads(body)["headers"] if n.lower() == "cookie"]
        self.assertEqual(cookies, ["a=1; b=2"])
        r, body = self.get(self.p.port, url, {"Cookie": "%s=%s" % (WARN_COOKIE, cookie_val)})
        self.assertEqual(r.status, 200)
        cookies = [v for n, v in json.loads(body)["headers"] if n.lower() == "cookie"]
        self.assertEqual(cookies, [], "an empty Cookie field (or ours) reached the origin")

        # The cookie is bound to the client address: from 127.0.0.2 it does not count.
        r, body = self.get(self.p.port, url, {"Cookie": "%s=%s" % (WARN_COOKIE, cookie_val)},
                           source="127.0.0.2")
        self.assertEqual(r.status, 403, "cookie from 127.0.0.1 accepted from 127.0.0.2")
        self.assertIn("Please check before you continue", body.decode("utf-8"))
        status, body, _ = self.curl_via(self.p.port, url, "-b", jar, source="127.0.0.2")
        self.assertEqual(status, 403)
        # and so is the Continue link
        status, body, hdrs = self.curl_via(self.p.port, link, source="127.0.0.2")
        self.assertEqual(status, 403, "a Continue link issued to 127.0.0.1 worked from 127.0.0.2")
        self.assertNotRegex(hdrs, r"(?im)^Set-Cookie:")
        # ... and it is bound to the site
        other_link = self.u("www.warned.example", "/echo?x=1") + "&" + CONTINUE_PARAM + "=" + token
        status, _, hdrs = self.curl_via(self.p.port, other_link)
        self.assertEqual(status, 403, "a token for warned.example worked for www.warned.example")

    def cookie_from_jar(self, jar):
        with open(jar) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 7 and parts[5] == WARN_COOKIE:
                    return parts[6]
        self.fail("no %s cookie in the jar:\n%s" % (WARN_COOKIE, open(jar).read()))

    def test_warn_tampered_token(self):
        url = self.u("warned.example", "/echo?t=tamper")
        status, body, _ = self.curl_via(self.p.port, url)
        self.assertEqual(status, 403)
        link = continue_link(body.decode("utf-8"))
        self.assertIsNotNone(link)
        token = link.split(CONTINUE_PARAM + "=", 1)[1]
        mid = len(token) // 2
        flipped = token[:mid] + ("A" if token[mid] != "A" else "B") + token[mid + 1:]
        for bad in (flipped, token[:-2], token + "A", "", "garbage"):
            with self.subTest(token=bad):
                before = len(self.o.heads)
                status, body, hdrs = self.curl_via(self.p.port, url + "&" + CONTINUE_PARAM + "=" + bad)
                self.assertEqual(status, 403)
                self.assertIn("Please check before you continue", body.decode("utf-8"))
                self.assertNotRegex(hdrs, r"(?im)^Set-Cookie:")
                self.assertNoOriginRequest(self.o, before=before, settle=0.1)
        # a tampered cookie does not pass either
        r, body = self.get(self.p.port, url, {"Cookie": "%s=%s" % (WARN_COOKIE, flipped)})
        self.assertEqual(r.status, 403)
        # the genuine token still works afterwards
        status, _, hdrs = self.curl_via(self.p.port, link)
        self.assertEqual(status, 302)

    # -- categories -----------------------------------------------------------------------
    def test_category_block_and_subdomain(self):
        for host in (self.sample_domain, "deep.sub." + self.sample_domain):
            with self.subTest(host=host):
                url = self.u(host, "/cat")
                status, body, _ = self.curl_via(self.p.port, url)
                self.assertEqual(status, 403, "category %s not blocked for %s" % (self.sample_category, host))
                text = body.decode("utf-8")
                self.assertEqual(page_field(text, "Rule"), "blocked category")
                self.assertEqual(page_field(text, "Category"), self.sample_category)
                rec = self.record_for(self.p, url)
                self.assertEqual(rec.get("decision"), "block")
                self.assertEqual(rec.get("rule"), "blocked category")
                self.assertEqual(rec.get("category"), self.sample_category)
                self.assertEqual(rec.get("category_source"), "ut1 2026-01-15")
        # the hand-written category folder
        url = self.u("www.handmade-cat.example", "/cat")
        status, _, _ = self.curl_via(self.p.port, url)
        self.assertEqual(status, 403)
        rec = self.record_for(self.p, url)
        self.assertEqual((rec.get("category"), rec.get("category_source")), ("e2e_handmade", "ut1 2026-01-15"))
        # a look-alike that is not a subdomain is not in the category
        url = self.u("not" + self.sample_domain, "/echo?cat=0")
        status, _, _ = self.curl_via(self.p.port, url)
        self.assertEqual(status, 200)

    # -- response phase -------------------------------------------------------------------
    def test_content_type_block(self):
        c = http.client.HTTPConnection("127.0.0.1", self.p.port, timeout=20)
        self.addCleanup(c.close)
        n = 300000
        c.request("GET", self.u("media.example", "/typed?ct=video/mp4&n=%d" % n))
        r = c.getresponse()
        body = r.read()
        self.assertEqual(r.status, 403)
        self.assertNotIn(h.payload(64), body, "video bytes reached the client")
        text = body.decode("utf-8", "replace")
        self.assertIn('<html lang="en">', text)
        self.assertEqual(page_field(text, "Rule"), "no video")
        rec = self.record_for(self.p, self.u("media.example", "/typed?ct=video/mp4&n=%d" % n))
        self.assertEqual((rec.get("decision"), rec.get("rule"), rec.get("result")), ("block", "no video", "denied"))
        # text/html passes (on a new connection: reusing the one above is
        # test_blocked_response_bytes_never_reach_a_later_request)
        c.close()
        c = http.client.HTTPConnection("127.0.0.1", self.p.port, timeout=20)
        self.addCleanup(c.close)
        c.request("GET", self.u("media.example", "/typed?ct=text/html;%20charset=utf-8&n=5000"))
        r = c.getresponse()
        body = r.read()
        self.assertEqual(r.status, 200)
        self.assertEqual(body, h.payload(5000))
        # a parameterised video type and video/webm too
        for ct in ("video/webm", "VIDEO/MP4;%20codecs=avc1"):
            with self.subTest(ct=ct):
                status, body, _ = self.curl_via(self.p.port, self.u("media.example", "/typed?ct=%s&n=2000" % ct))
                self.assertEqual(status, 403)
                self.assertNotIn(h.payload(64), body)
        status, body, _ = self.curl_via(self.p.port, self.u("media.example", "/typed?ct=audio/mpeg&n=2000"))
        self.assertEqual(status, 200)

    @staticmethod
    def raw_get(url):
        authority = url.split("/", 3)[2]
        return ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (url, authority)).encode()

    def test_blocked_response_bytes_never_reach_a_later_request(self):
        # The body of a response refused in the response phase must be discarded with its
        # connection: the next request on the same client connection gets its own response.
        for n in (100, 300000):
            with self.subTest(video_bytes=n):
                s = h.connect(self.p.port)
                self.addCleanup(s.close)
                rd = h.ConnReader(s)
                s.sendall(self.raw_get(self.u("media.example", "/typed?ct=video/mp4&n=%d" % n)))
                r1 = h.read_response(rd)
                self.assertEqual(r1.status, 403)
                if (r1.header("Connection") or "").lower() == "close":
                    continue
                url2 = self.u("next.example", "/echo?after=%d" % n)
                s.sendall(self.raw_get(url2))
                r2 = h.read_response(rd)
                self.assertEqual(r2.status, 200, "second request on the connection got %d: %s"
                                 % (r2.status, page_field(r2.text(), "Reason") or r2.text()[:200]))
                self.assertEqual(r2.json()["target"], "/echo?after=%d" % n)
        # ... and a refused body shaped like a response is never served as the next one
        s = h.connect(self.p.port)
        self.addCleanup(s.close)
        rd = h.ConnReader(s)
        s.sendall(self.raw_get(self.u("media.example", "/videoresp")))
        r1 = h.read_response(rd)
        self.assertEqual(r1.status, 403)
        if (r1.header("Connection") or "").lower() != "close":
            s.sendall(self.raw_get(self.u("other.example", "/echo?spoof=1")))
            r2 = h.read_response(rd)
            self.assertNotIn(b"spoofed by the video", r2.body,
                             "the body of the blocked video was served as the response for another site")
            self.assertEqual(r2.status, 200)

    # -- guest listener -------------------------------------------------------------------
    def test_guest_rule(self):
        url = self.u("guestblocked.example", "/echo?g=1")
        status, _, _ = self.curl_via(self.p.port, url)
        self.assertEqual(status, 200, "a guest = true rule applied on the normal listener")
        status, body, _ = self.curl_via(self.guest_port, url)
        self.assertEqual(status, 403, "a guest = true rule did not apply on the guest listener")
        self.assertEqual(page_field(body.decode("utf-8"), "Rule"), "guests not here")
        rec = self.record_for(self.p, url, pred=lambda r: r.get("listener") == "guest")
        self.assertEqual((rec.get("guest"), rec.get("rule"), rec.get("result")), (True, "guests not here", "denied"))
        # other sites pass on the guest listener
        status, _, _ = self.curl_via(self.guest_port, self.u("allowed.example", "/echo?g=2"))
        self.assertEqual(status, 200)


# ---------------------------------------------------------------------------------------
# Reputation feeds and sensitivity

REPUTATION_POLICY = """
[settings]
reputation_sensitivity = "low"

[[reputation]]
name = "urlhaus"
format = "urlhaus"
path = "urlhaus.csv"

[[reputation]]
name = "watch"
format = "domains"
path = "suspicious.txt"
level = "suspicious"

[[rules]]
name = "rep low"
listeners = ["low"]
reputation = "low"
action = "block"

[[rules]]
name = "rep medium"
listeners = ["medium"]
reputation = "medium"
action = "block"

[[rules]]
name = "rep high"
listeners = ["high"]
reputation = "high"
action = "block"

[[rules]]
name = "rep default"
listeners = ["dflt"]
reputation = "default"
action = "block"
"""

RULE_OF = {"low": "rep low", "medium": "rep medium", "high": "rep high", "dflt": "rep default"}

URLHAUS_CSV = """################################################################
# abuse.ch URLhaus Database Dump (CSV - recent URLs active and inactive)
#
# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter
################################################################
"3000001","2026-01-10 10:00:00","http://mal.example/payload.exe","online","2026-01-10 10:00:00","malware_download","exe","https://urlhaus.abuse.ch/url/3000001/","e2e"
"3000002","2026-01-10 10:00:00","http://old.example/old.bin","offline","2026-01-09 10:00:00","malware_download","elf","https://urlhaus.abuse.ch/url/3000002/","e2e"
"3000004","2026-01-10 10:00:00","https://tls-bad.example/","online","2026-01-10 10:00:00","malware_download","","https://urlhaus.abuse.ch/url/3000004/","e2e"
"3000003","2026-01-10 10:00:00","http://mal.example:8080/other/x.sh","online","2026-01-10 10:00:00","malware_download","sh","https://urlhaus.abuse.ch/url/3000003/","e2e"
"""


class Reputation(PolicyCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.o = TypedOrigin()
        cls.addClassCleanup(cls.o.close)
        cls.dns = CatchAllDNS({})
        cls.addClassCleanup(cls.dns.close)
        cls.ports = {n: h.free_port() for n in ("low", "medium", "high", "dflt")}
        listeners = [{"name": n, "address": "127.0.0.1", "port": port} for n, port in cls.ports.items()]
        cls.p = policy_proxy(cls.workdir, REPUTATION_POLICY, dns_overrides(cls.dns), listeners)
        write_file(os.path.join(cls.p.dir, "urlhaus.csv"), URLHAUS_CSV)
        write_file(os.path.join(cls.p.dir, "suspicious.txt"), "# watch list\nsus.example\n")
        cls.addClassCleanup(cls.p.stop)
        cls.p.start()

    def setUp(self):
        self.p.revive()

    def u(self, host, path):
        return "http://%s:%d%s" % (host, self.o.port, path)

    def test_sensitivity_levels(self):
        # (url, level, {listener: blocked?})
        cases = [
            (self.u("mal.example", "/payload.exe?x=1"), "dangerous",
             {"low": True, "medium": True, "high": True, "dflt": True}),
            (self.u("mal.example", "/other/x.sh"), "dangerous",
             {"low": True, "medium": True, "high": True, "dflt": True}),
            (self.u("old.example", "/old.bin"), "highly suspicious",
             {"low": False, "medium": True, "high": True, "dflt": False}),
            (self.u("www.sus.example", "/echo?s=1"), "suspicious",
             {"low": False, "medium": False, "high": True, "dflt": False}),
            (self.u("clean.example", "/echo?c=1"), "untested",
             {"low": False, "medium": False, "high": True, "dflt": False}),
            # a path not under a listed URL prefix of a listed host is not listed
            (self.u("mal.example", "/echo?fine=1"), "untested",
             {"low": False, "medium": False, "high": True, "dflt": False}),
        ]
        for url, level, expect in cases:
            for listener, blocked in expect.items():
                with self.subTest(url=url, listener=listener):
                    url_req = url  # the origin answers 404 for paths other than /echo: still passed
                    status, body, _ = self.curl_via(self.ports[listener], url_req)
                    if blocked:
                        self.assertEqual(status, 403, "%s (%s) not blocked at sensitivity %s" % (url, level, listener))
                        self.assertEqual(page_field(body.decode("utf-8"), "Rule"), RULE_OF[listener])
                    else:
                        self.assertIn(status, (200, 404), "%s (%s) blocked at sensitivity %s" % (url, level, listener))
                    rec = self.record_for(self.p, url_req, pred=lambda r, l=listener: r.get("listener") == l)
                    self.assertEqual(rec.get("reputation"), level)
                    self.assertEqual(rec.get("result"), "denied" if blocked else "allowed")
                    if blocked:
                        self.assertEqual((rec.get("decision"), rec.get("rule")), ("block", RULE_OF[listener]))

    def test_medium_blocks_listed_https_site_at_connect(self):
        # A whole HTTPS site listed online: CONNECT is refused at sensitivity medium. Its
        # URL entry with a path (mal.example/payload.exe) does not cover a tunnel ("/").
        resp = self.raw_connect(self.ports["medium"], "tls-bad.example:443")
        self.assertEqual(resp.status, 403)
        rec = self.record_for(self.p, None, pred=lambda r: r.get("method") == "CONNECT"
                              and "tls-bad.example" in (r.get("url") or ""))
        self.assertEqual((rec.get("rule"), rec.get("reputation")), ("rep medium", "dangerous"))


# ---------------------------------------------------------------------------------------
# Reloads, check-config, policy test

BASE_POLICY = """
[[rules]]
name = "first"
domains = ["one.example"]
action = "block"
"""

CHANGED_POLICY = """
[[rules]]
name = "second"
domains = ["two.example"]
action = "block"
"""

BROKEN_POLICY = """[settings]
time_zone = "UTC"

[[rules]]
name = "broken"
domains = ["two.example"]
action = "explode"
colour = "red"
"""


class Reload(PolicyCase):
    def setUp(self):
        self.o = self.origin()
        self.dns = CatchAllDNS({})
        self.addCleanup(self.dns.close)

    def start(self, text):
        p = policy_proxy(self.workdir, text, dns_overrides(self.dns))
        self.addCleanup(p.stop)
        p.start()
        return p

    def status(self, p, host):
        s, _, _ = self.curl_via(p.port, "http://%s:%d/echo" % (host, self.o.port))
        return s

    def wait_status(self, p, host, want, timeout):
        t0 = time.monotonic()
        ok = h.wait_until(lambda: self.status(p, host) == want, timeout, interval=0.2)
        return ok, time.monotonic() - t0

    def test_file_change_reloads_without_sighup(self):
        p = self.start(BASE_POLICY)
        self.assertEqual(self.status(p, "one.example"), 403)
        self.assertEqual(self.status(p, "two.example"), 200)
        write_file(p.policy_path, CHANGED_POLICY)
        bump_mtime(p.policy_path)
        ok, took = self.wait_status(p, "two.example", 403, 8.0)
        self.assertTrue(ok, "the changed policy did not apply within 8 s\n" + p.stderr_text())
        self.assertLess(took, 6.0, "the changed policy took %.1f s" % took)
        self.assertEqual(self.status(p, "one.example"), 200)
        self.assertTrue(h.wait_until(lambda: "policy reloaded" in p.stderr_text(), 3.0), p.stderr_text())
        self.assertEqual(p.proc.poll(), None)

    def test_database_change_reloads(self):
        p = policy_proxy(self.workdir, '[[databases]]\nname = "local"\nformat = "domains"\npath = "local.txt"\n'
                         'category = "ads"\n\n[[rules]]\nname = "no ads"\ncategories = ["ads"]\naction = "block"\n',
                         dns_overrides(self.dns))
        db = os.path.join(p.dir, "local.txt")
        write_file(db, "ads-one.example\n")
        self.addCleanup(p.stop)
        p.start()
        self.assertEqual(self.status(p, "ads-one.example"), 403)
        self.assertEqual(self.status(p, "ads-two.example"), 200)
        write_file(db, "ads-one.example\nads-two.example\n")
        bump_mtime(db)
        ok, took = self.wait_status(p, "ads-two.example", 403, 8.0)
        self.assertTrue(ok, "a changed database did not apply within 8 s\n" + p.stderr_text())

    def test_sighup_reloads(self):
        p = self.start(BASE_POLICY)
        self.assertEqual(self.status(p, "two.example"), 200)
        # change the content but keep the mtime, so only SIGHUP can notice
        st = os.stat(p.policy_path)
        write_file(p.policy_path, CHANGED_POLICY)
        os.utime(p.policy_path, ns=(st.st_atime_ns, st.st_mtime_ns))
        time.sleep(2.5)  # one watch period: nothing may change by itself
        self.assertEqual(self.status(p, "two.example"), 200, "reloaded although the mtime did not change")
        p.signal(signal.SIGHUP)
        ok, took = self.wait_status(p, "two.example", 403, 3.0)
        self.assertTrue(ok, "SIGHUP did not reload the policy\n" + p.stderr_text())
        self.assertEqual(self.status(p, "one.example"), 200)
        self.assertIn("reloaded", p.stderr_text())

    def test_broken_policy_keeps_old(self):
        p = self.start(BASE_POLICY)
        write_file(p.policy_path, BROKEN_POLICY)
        bump_mtime(p.policy_path)
        got = h.wait_until(lambda: "policy reload failed" in p.stderr_text(), 8.0)
        self.assertTrue(got, "no log line about the refused policy\n" + p.stderr_text())
        err = p.stderr_text()
        self.assertRegex(err, re.escape(p.policy_path) + r":7:\d+:", "the log does not name file:line of 'action'")
        self.assertRegex(err, re.escape(p.policy_path) + r":8:\d+:", "the log does not name file:line of 'colour'")
        self.assertEqual(self.status(p, "one.example"), 403, "the old policy stopped serving")
        self.assertEqual(self.status(p, "two.example"), 200)
        # SIGHUP with the broken file: refused too, with file:line
        p.signal(signal.SIGHUP)
        got = h.wait_until(lambda: "reload failed, keeping the running configuration" in p.stderr_text(), 5.0)
        self.assertTrue(got, p.stderr_text())
        tail = p.stderr_text().split("reload failed, keeping the running configuration", 1)[1]
        self.assertRegex(tail, re.escape(p.policy_path) + r":7:\d+:")
        self.assertEqual(self.status(p, "one.example"), 403)
        # fixed again: applies
        write_file(p.policy_path, CHANGED_POLICY)
        bump_mtime(p.policy_path, 4)
        ok, _ = self.wait_status(p, "two.example", 403, 8.0)
        self.assertTrue(ok, "the fixed policy did not apply\n" + p.stderr_text())

    def test_start_with_broken_policy_refused(self):
        p = policy_proxy(self.workdir, BROKEN_POLICY)
        r = subprocess.run([h.portcullis_bin(), "run", "-c", p.config_path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=15, cwd=p.dir)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr.decode(errors="replace"), re.escape(p.policy_path) + r":7:\d+:")

    def test_check_config(self):
        p = policy_proxy(self.workdir, BROKEN_POLICY)
        r = subprocess.run([h.portcullis_bin(), "check-config", "-c", p.config_path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=15)
        err = r.stderr.decode(errors="replace")
        self.assertNotEqual(r.returncode, 0, err)
        self.assertRegex(err, re.escape(p.policy_path) + r":7:\d+: ")
        self.assertRegex(err, re.escape(p.policy_path) + r":8:\d+: ")
        self.assertFalse(os.path.exists(os.path.join(p.state_dir, "warn.key")), "check-config created the warn key")
        # a missing database is an error too
        write_file(p.policy_path, '[[databases]]\nname = "x"\nformat = "squidguard"\npath = "nope"\n')
        r = subprocess.run([h.portcullis_bin(), "check-config", "-c", p.config_path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=15)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr.decode(errors="replace"), re.escape(p.policy_path) + r":4:\d+: ")
        # a good one
        write_file(p.policy_path, BASE_POLICY)
        r = subprocess.run([h.portcullis_bin(), "check-config", "-c", p.config_path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=15)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        self.assertIn("ok", r.stdout.decode())

    def test_policy_test_command(self):
        text = """
[settings]
time_zone = "UTC"

[[schedules]]
name = "weekend"
days = ["sat-sun"]

[[rules]]
name = "guest streaming"
guest = true
domains = ["stream.example"]
action = "block"

[[rules]]
name = "weekend forums"
domains = ["forum.example"]
schedule = "weekend"
action = "warn"

[default]
action = "allow"
"""
        p = policy_proxy(self.workdir, text)

        def run(*args):
            r = subprocess.run([h.portcullis_bin(), "policy", "test", "-c", p.config_path] + list(args),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=15)
            return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")

        def field(out, name):
            m = re.search(r"(?m)^%s:\s*(.*)$" % name, out)
            return m.group(1).strip() if m else None

        rc, out, err = run("--url", "http://stream.example/live")
        self.assertEqual(rc, 0, err)
        self.assertEqual((field(out, "decision"), field(out, "rule")), ("allow", "default"), out)
        self.assertIn("trace:", out)
        rc, out, err = run("--url", "http://stream.example/live", "--guest")
        self.assertEqual(rc, 0, err)
        self.assertEqual((field(out, "decision"), field(out, "rule")), ("block", "guest streaming"), out)
        self.assertIn("guest streaming", out.split("trace:", 1)[1])
        # 2026-01-03 is a Saturday, 2026-01-05 a Monday
        rc, out, err = run("--url", "http://forum.example/", "--time", "2026-01-03T10:00:00Z")
        self.assertEqual(rc, 0, err)
        self.assertEqual((field(out, "decision"), field(out, "rule")), ("warn", "weekend forums"), out)
        rc, out, err = run("--url", "http://forum.example/", "--time", "2026-01-05T10:00:00+09:00")
        self.assertEqual(rc, 0, err)
        self.assertEqual((field(out, "decision"), field(out, "rule")), ("allow", "default"), out)
        trace = out.split("trace:", 1)[1]
        self.assertIn("weekend forums", trace, "the trace does not mention the rule that did not match")
        # Sunday 23:30 in UTC+09:00 is Sunday 14:30 UTC
        rc, out, err = run("--url", "http://forum.example/", "--time", "2026-01-04T23:30:00+09:00")
        self.assertEqual(field(out, "decision"), "warn", out)
        # bad input is refused
        rc, out, err = run("--url", "http://forum.example/", "--time", "yesterday")
        self.assertNotEqual(rc, 0)
        write_file(p.policy_path, BROKEN_POLICY)
        rc, out, err = run("--url", "http://forum.example/")
        self.assertNotEqual(rc, 0)
        self.assertRegex(err, re.escape(p.policy_path) + r":7:\d+:")


if __name__ == "__main__":
    h.main()
