#!/usr/bin/python3
"""Operations: the access log (JSON and Squid formats, SIGUSR1 reopen), check-config and
version, SIGHUP reloads (good and broken files), SIGTERM draining."""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

REQUIRED = ("time", "duration_ms", "request_id", "listener", "guest", "client", "method", "url", "status",
            "bytes_in", "bytes_out", "upstream", "result", "reason")


class AccessLog(h.PortcullisTestCase):
    def test_json_records(self):
        o = self.origin()
        p = self.proxy({"proxy": {"connect_ports": [443]}})
        self.curl("-x", p.url, o.url("/bytes?n=100000"))
        upload = h.payload(50000)
        self.curl("-x", p.url, "--data-binary", "@-", o.url("/echo?up=1"), input=upload)
        denied = self.raw(p.port, b"GET %s HTTP/1.1\r\nHost: %s\r\nVia: 1.1 %s\r\n\r\n"
                          % (o.url("/echo?loop=1").encode(), o.authority.encode(), h.GATEWAY_NAME.encode()))
        self.assertEqual(denied.status, 403)
        bad = self.raw(p.port, b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (o.url("/garbage").encode(),
                                                                        o.authority.encode()))
        self.assertEqual(bad.status, 502)
        conn = self.raw(p.port, b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (o.port, o.port),
                        method="CONNECT")
        self.assertEqual(conn.status, 403)

        recs = p.wait_access_records(5)
        self.assertEqual(len(recs), 5, "expected one line per transaction:\n" + "\n".join(p.access_lines()))
        for r in recs:
            missing = [k for k in REQUIRED if k not in r]
            self.assertEqual(missing, [], "fields missing in %r" % r)
            self.assertIsInstance(r["duration_ms"], (int, float))
            self.assertGreaterEqual(r["duration_ms"], 0)
            self.assertIsInstance(r["status"], int)
            self.assertIsInstance(r["bytes_in"], int)
            self.assertIsInstance(r["bytes_out"], int)
            self.assertIs(r["guest"], False)
            self.assertEqual(r["listener"], "proxy")
            self.assertIn("127.0.0.1", str(r["client"]))
            self.assertIn(r["result"], ("allowed", "denied", "error"))
            self.assertTrue(str(r["time"]).strip())
        self.assertEqual(len({r["request_id"] for r in recs}), 5, "request ids are not unique")

        def find(pred):
            hits = [r for r in recs if pred(r)]
            self.assertEqual(len(hits), 1, recs)
            return hits[0]

        dl = find(lambda r: "/bytes?n=100000" in str(r["url"]))
        self.assertEqual((dl["method"], dl["status"], dl["result"]), ("GET", 200, "allowed"))
        self.assertEqual(dl["url"], o.url("/bytes?n=100000"))
        self.assertGreaterEqual(dl["bytes_out"], 100000, "bytes_out counts bytes sent to the client")
        self.assertLess(dl["bytes_in"], 100000)
        self.assertIn(str(o.port), str(dl["upstream"]))
        up = find(lambda r: "/echo?up=1" in str(r["url"]))
        self.assertEqual((up["method"], up["status"], up["result"]), ("POST", 200, "allowed"))
        self.assertGreaterEqual(up["bytes_in"], 50000, "bytes_in counts bytes received from the client")
        loop = find(lambda r: "loop=1" in str(r["url"]))
        self.assertEqual((loop["status"], loop["result"]), (403, "denied"))
        self.assertTrue(str(loop["reason"]).strip(), "a denial carries a reason")
        err = find(lambda r: "/garbage" in str(r["url"]))
        self.assertEqual((err["status"], err["result"]), (502, "error"))
        self.assertTrue(str(err["reason"]).strip(), "an error carries a reason")
        c = find(lambda r: r["method"] == "CONNECT")
        self.assertEqual((c["status"], c["result"]), (403, "denied"))
        self.assertIn(str(o.port), str(c["url"]))

    def test_log_store_holds_what_was_logged(self):
        """Every access record also reaches the local store; `logs query` finds it, with
        filters, in JSON and CSV, while the gateway keeps writing."""
        o = self.origin()
        p = self.proxy({"log_store": {"flush_interval": 0.2}})
        for i in range(3):
            self.curl("-x", p.url, o.url("/bytes?n=10&k=%d" % i))
        loop = self.raw(p.port, b"GET %s HTTP/1.1\r\nHost: %s\r\nVia: 1.1 %s\r\n\r\n"
                        % (o.url("/echo?loop=1").encode(), o.authority.encode(), h.GATEWAY_NAME.encode()))
        self.assertEqual(loop.status, 403)
        logged = p.wait_access_records(4)

        def query(*args):
            r = subprocess.run([h.portcullis_bin(), "logs", "query", "-c", p.config_path] + list(args),
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            return r.stdout

        def stored(*args):
            return [json.loads(line) for line in query("--format", "json", *args).splitlines() if line.strip()]

        self.assertTrue(h.wait_until(lambda: len(stored()) >= 4, timeout=20),
                        "the store did not receive the records: %r" % query("--format", "json"))
        rows = stored()
        self.assertEqual(sorted(r["request_id"] for r in rows), sorted(r["request_id"] for r in logged))
        by_id = {r["request_id"]: r for r in rows}
        for r in logged:  # the same fields as the access log wrote
            for key in ("url", "status", "result", "client", "method", "bytes_out", "reason"):
                self.assertEqual(by_id[r["request_id"]].get(key), r.get(key), key)
        # No policy here: nothing was decided "block" (the loop refusal is not a decision).
        self.assertEqual(stored("--decision", "block"), [])
        denied = [r for r in rows if r["result"] == "denied"]
        self.assertEqual(len(denied), 1)
        self.assertEqual([r["request_id"] for r in stored("--url", "loop=1")],
                         [r["request_id"] for r in denied])
        self.assertEqual(len(stored("--url", "k=1")), 1)
        self.assertEqual(stored("--host", "no-such-host.example"), [])
        csv_text = query("--format", "csv")
        self.assertTrue(csv_text.startswith("time,"), csv_text[:200])
        self.assertEqual(len(csv_text.strip().splitlines()), 1 + len(rows))
        # The store is a sink the monitoring listener reports, healthy.
        ready = p.monitoring_get("/readyz")
        self.assertEqual(ready.status, 200, ready.body)
        self.assertIn(b"log_store", ready.body)
        metrics = p.monitoring_get("/metrics").body.decode()
        self.assertIn('sink="log_store"', metrics)

    def test_squid_format(self):
        o = self.origin()
        p = self.proxy({"access_log": {"format": "squid"}})
        self.curl("-x", p.url, o.url("/bytes?n=4321"))
        status, _, _ = self.curl_status("-x", p.url, o.url("/garbage"))
        self.assertEqual(status, 502)
        wait = h.wait_until(lambda: len(p.access_lines()) >= 2, 5)
        lines = p.access_lines()
        self.assertEqual(len(lines), 2, lines)
        # time elapsed client code/status bytes method URL user hierarchy/peer type
        pat = re.compile(r"^(\d+\.\d{3})\s+(\d+)\s+(\S+)\s+(\S+)/(\d{3})\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)/(\S+)"
                         r"\s+(\S+)$")
        m = pat.match(lines[0])
        self.assertIsNotNone(m, "not a Squid native line: %r" % lines[0])
        self.assertAlmostEqual(float(m.group(1)), time.time(), delta=120)
        self.assertEqual(m.group(3), "127.0.0.1")
        self.assertEqual(m.group(5), "200")
        self.assertGreaterEqual(int(m.group(6)), 4321)
        self.assertEqual(m.group(7), "GET")
        self.assertEqual(m.group(8), o.url("/bytes?n=4321"))
        m2 = pat.match(lines[1])
        self.assertIsNotNone(m2, "not a Squid native line: %r" % lines[1])
        self.assertEqual(m2.group(5), "502")
        with self.assertRaises(ValueError):
            json.loads(lines[0])

    def test_sigusr1_reopens(self):
        o = self.origin()
        p = self.proxy()
        self.curl("-x", p.url, o.url("/echo?first=1"))
        path = p.access_log_path()
        self.assertTrue(h.wait_until(lambda: len(p.access_lines()) >= 1, 5), "no access log record")
        os.rename(path, path + ".1")
        p.signal(signal.SIGUSR1)
        time.sleep(0.5)
        self.curl("-x", p.url, o.url("/echo?second=1"))
        self.assertTrue(h.wait_until(lambda: os.path.exists(path) and len(p.access_lines()) >= 1, 5),
                        "no new access log file after SIGUSR1")
        new = p.access_records()
        old = p.access_records(path + ".1")
        self.assertEqual([r["url"] for r in new], [o.url("/echo?second=1")])
        self.assertEqual([r["url"] for r in old], [o.url("/echo?first=1")])
        p.assert_alive()


class CheckConfig(h.PortcullisTestCase):
    def run_check(self, path):
        r = subprocess.run([h.portcullis_bin(), "check-config", "-c", path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertGreaterEqual(r.returncode, 0, "check-config crashed with signal %d" % -r.returncode)
        return r.returncode, (r.stdout + r.stderr).decode(errors="replace")

    def test_valid_config(self):
        p = h.Proxy(self.workdir)
        rc, out = self.run_check(p.config_path)
        self.assertEqual(rc, 0, out)

    def test_shipped_config(self):
        path = os.path.join(h.HERE, "..", "..", "config", "portcullis.toml")
        rc, out = self.run_check(os.path.abspath(path))
        self.assertEqual(rc, 0, out)

    def test_scanning_engines_are_checked(self):
        yara = os.path.join(self.workdir, "yara")
        os.makedirs(yara)
        with open(os.path.join(yara, "good.yar"), "w") as f:
            f.write('rule ok { strings: $a = "abc" condition: $a }\n')
        p = h.Proxy(self.workdir, {"scan": {"yara_dir": yara}})
        rc, out = self.run_check(p.config_path)
        self.assertEqual(rc, 0, out)
        self.assertIn("scanning engines: ClamAV", out)
        with open(os.path.join(yara, "bad.yar"), "w") as f:
            f.write("rule broken {\n  condition: $missing\n}\n")
        rc, out = self.run_check(p.config_path)
        self.assertNotEqual(rc, 0, "check-config accepted a broken YARA rule:\n" + out)
        self.assertRegex(out, r"bad\.yar:\d+:", out)

    def test_errors_with_line_numbers(self):
        p = h.Proxy(self.workdir, {"proxy": {"x_forwarded_for": "sometimes",
                                             "client_networks": ["127.0.0.0/8", "10.0.0.0/33"]}})
        p.cfg["listeners"][0]["port"] = "abc"
        text = p.write_config()
        lines = text.splitlines()

        def line_of(prefix):
            hits = [i + 1 for i, l in enumerate(lines) if l.startswith(prefix)]
            self.assertEqual(len(hits), 1, prefix)
            return hits[0]
        expected = {
            "port": line_of("port = \"abc\""),
            "x_forwarded_for": line_of("x_forwarded_for ="),
            "client_networks": line_of("client_networks ="),
        }
        rc, out = self.run_check(p.config_path)
        self.assertNotEqual(rc, 0, "check-config accepted a broken file:\n" + out)
        for key, line in expected.items():
            with self.subTest(key=key):
                self.assertRegex(out, r"(?m)%s:%d:\d+: \S" % (re.escape(p.config_path), line),
                                 "no error for %s at line %d in:\n%s" % (key, line, out))

    def test_syntax_error(self):
        path = os.path.join(self.workdir, "syntax.toml")
        with open(path, "w") as f:
            f.write("[gateway]\nname = \"x\"\n[proxy\nx = 1\n")
        rc, out = self.run_check(path)
        self.assertNotEqual(rc, 0)
        self.assertRegex(out, r"%s:\d+:\d+: " % re.escape(path))

    def test_version(self):
        r = subprocess.run([h.portcullis_bin(), "version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=10)
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.decode(), r"\d+\.\d+")


class Signals(h.PortcullisTestCase):
    def xff(self, conn, o, path="/echo"):
        conn.request("GET", o.url(path))
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        return h.get_fields(json.loads(r.read())["headers"], "X-Forwarded-For")

    def fresh_xff(self, p, o):
        """X-Forwarded-For seen by the origin for a request on a new connection (None when
        the request failed)."""
        c = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
        try:
            c.request("GET", o.url("/echo"))
            r = c.getresponse()
            if r.status != 200:
                return None
            return h.get_fields(json.loads(r.read())["headers"], "X-Forwarded-For")
        except (OSError, http.client.HTTPException, ValueError):
            return None
        finally:
            c.close()

    def test_sighup_applies_new_config_keeping_connections(self):
        o = self.origin()
        p = self.proxy({"proxy": {"x_forwarded_for": "add"}})
        keep = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
        self.addCleanup(keep.close)
        self.assertEqual(self.xff(keep, o), ["127.0.0.1"])
        local = keep.sock.getsockname()
        p.cfg["proxy"]["x_forwarded_for"] = "remove"
        p.write_config()
        p.signal(signal.SIGHUP)
        self.assertTrue(h.wait_until(lambda: self.fresh_xff(p, o) == [], 5, 0.2),
                        "x_forwarded_for = remove not in effect after SIGHUP\n" + p.stderr_text())
        # the keep-alive connection opened before the reload is still served
        self.xff(keep, o)
        self.assertEqual(keep.sock.getsockname(), local, "the keep-alive connection was dropped by the reload")
        p.assert_alive()

    def test_sighup_broken_file_keeps_old_config(self):
        o = self.origin()
        p = self.proxy({"proxy": {"x_forwarded_for": "add"}})
        self.assertEqual(self.fresh_xff(p, o), ["127.0.0.1"])
        err_before = os.path.getsize(p.stderr_path)
        p.write_config("[proxy\nx_forwarded_for = \"remove\"\n")
        p.signal(signal.SIGHUP)
        self.assertTrue(h.wait_until(lambda: os.path.getsize(p.stderr_path) > err_before, 5),
                        "nothing logged about the failed reload")
        time.sleep(0.3)
        p.assert_alive()
        for _ in range(3):
            self.assertEqual(self.fresh_xff(p, o), ["127.0.0.1"], "old config not kept")
        # a later valid file is applied again
        p.cfg["proxy"]["x_forwarded_for"] = "remove"
        p.write_config()
        p.signal(signal.SIGHUP)
        self.assertTrue(h.wait_until(lambda: self.fresh_xff(p, o) == [], 5, 0.2),
                        "a valid config after a broken one was not applied")

    def test_sigterm_while_starting_is_acted_on_once_started(self):
        """A SIGTERM sent while the gateway starts ends it cleanly once it has started (exit 0,
        after draining), never by the signal's default action. The test holds the signal back
        with a blocked mask the gateway inherits, so it arrives before the gateway has even
        read its configuration, whatever the timing."""
        p = self.proxy(start=False)
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            with open(p.stderr_path, "wb") as err:
                proc = subprocess.Popen([h.portcullis_bin(), "run", "-c", p.config_path],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=err, cwd=p.dir)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            rc = None
        with open(p.stderr_path, encoding="utf-8", errors="replace") as f:
            err = f.read()
        self.assertIsNotNone(rc, "the SIGTERM was never acted on\n" + err)
        self.assertEqual(rc, 0, err)
        self.assertIn("portcullis started", err)
        self.assertIn("draining (signal %d)" % signal.SIGTERM, err)

    def test_sigterm_drains_in_flight_download(self):
        o = self.origin()
        p = self.proxy({"timeouts": {"drain": 15}})
        n = 3000000
        out = os.path.join(self.workdir, "drain.bin")
        cmd = ["curl", "-sS", "--max-time", "30", "-x", p.url, "-o", out, o.url("/slow?n=%d&secs=3&steps=15" % n)]
        curl = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=h.clean_env())
        self.addCleanup(lambda: curl.poll() is None and curl.kill())
        self.assertTrue(h.wait_until(lambda: len(o.heads) >= 1, 5), "the download never reached the origin")
        time.sleep(0.5)
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)

        def refused():
            try:
                with socket.create_connection(("127.0.0.1", p.port), timeout=0.5) as s:
                    s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (o.url("/echo").encode(),
                                                                      o.authority.encode()))
                    r = h.read_response(h.ConnReader(s, timeout=1))
                    return r is None or r.status != 200
            except (OSError, EOFError, ValueError):
                return True
        self.assertTrue(h.wait_until(refused, 3, 0.1), "still accepting new requests after SIGTERM")
        try:
            _, err = curl.communicate(timeout=25)
        except subprocess.TimeoutExpired:
            curl.kill()
            self.fail("the in-flight download did not finish")
        self.assertEqual(curl.returncode, 0, err)
        with open(out, "rb") as f:
            self.assertEqual(h.sha256(f.read()), h.payload_sha(n), "download cut short by the drain")
        rc = p.wait_exit(10)
        self.assertIsNotNone(rc, "portcullis did not exit after draining")
        self.assertEqual(rc, 0, p.stderr_text())
        self.assertLess(time.monotonic() - t0, 12)

    def test_sigterm_idle_exits_promptly(self):
        o = self.origin()
        p = self.proxy({"timeouts": {"drain": 20}})
        idle = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
        self.addCleanup(idle.close)
        idle.request("GET", o.url("/echo"))
        idle.getresponse().read()
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)
        rc = p.wait_exit(15)
        self.assertIsNotNone(rc, "portcullis waited for an idle keep-alive connection")
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 5, "an idle connection is not in flight; no need to wait")

    def test_sigterm_drain_deadline(self):
        o = self.origin()
        p = self.proxy({"timeouts": {"drain": 1}})
        cmd = ["curl", "-sS", "--max-time", "30", "-x", p.url, "-o", os.devnull,
               o.url("/slow?n=100000&secs=10&steps=20")]
        curl = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=h.clean_env())
        self.addCleanup(lambda: curl.poll() is None and curl.kill())
        self.assertTrue(h.wait_until(lambda: len(o.heads) >= 1, 5))
        time.sleep(0.3)
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)
        rc = p.wait_exit(10)
        self.assertIsNotNone(rc, "portcullis outlived timeouts.drain")
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 5)
        try:
            curl.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            curl.kill()
        self.assertNotEqual(curl.returncode, 0, "the download cannot have completed")


if __name__ == "__main__":
    h.main()
