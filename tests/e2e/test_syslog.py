#!/usr/bin/python3
"""Syslog forwarding and the security log end to end (docs/logging.md), with real rsyslog
(Debian rsyslog and rsyslog-openssl) as the receiver:
  * UDP (RFC 5424), TCP (CEF; JSON with only security events) and TLS with a client
    certificate (RFC 5424): rsyslog parses every message; its header fields and structured
    data (parsed by rsyslog's mmpstrucdata), the CEF extension and the JSON objects match the
    gateway's own access log record for record, escaping included;
  * the security log file holds exactly the blocks and threats;
  * a TLS receiver whose certificate the configured CA did not sign gets nothing;
  * a TCP receiver stopped for a while and started again receives every record, in order,
    none lost and none twice; so does one that was down while the gateway restarted.
Traffic is ICAP (REQMOD and RESPMOD on one persistent connection), so every record is
submitted in a known order. Everything listens on 127.0.0.1 on free ports; each rsyslogd runs
in the foreground with its own config and folder."""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
EICAR_SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"

POLICY = """
[settings]
time_zone = "UTC"
[[rules]]
name = "blocked \\"domain\\" [x]"
domains = ["blocked.example"]
action = "block"
[default]
action = "allow"
"""

# A user name with every character RFC 5424 makes us escape in structured data, and the ones
# CEF escapes in extension values.
ODD_USER = 'o"d\\d]us=er'


def parse_cef(line):
    """'CEF:0|...|ext' -> (header fields, {key: value}), both unescaped."""
    header, field, i = [], "", 0
    while i < len(line) and len(header) < 7:
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            field += line[i + 1]
            i += 2
        elif c == "|":
            header.append(field)
            field = ""
            i += 1
        else:
            field += c
            i += 1
    ext = line[i:]
    # keys: a word right before an unescaped '='
    keys = []
    k = 0
    while k < len(ext):
        if ext[k] == "\\":
            k += 2
            continue
        if ext[k] == "=":
            start = ext.rfind(" ", 0, k) + 1
            keys.append((start, k))
        k += 1
    out = {}
    for n, (start, eq) in enumerate(keys):
        end = keys[n + 1][0] - 1 if n + 1 < len(keys) else len(ext)
        raw, v, j = ext[eq + 1:end], "", 0
        while j < len(raw):
            if raw[j] == "\\" and j + 1 < len(raw):
                e = raw[j + 1]
                v += {"n": "\n", "r": "\r"}.get(e, e)
                j += 2
            else:
                v += raw[j]
                j += 1
        out[ext[start:eq]] = v
    return header, out


class IcapClient:
    """One persistent ICAP connection; each call is one transaction (one access record)."""

    def __init__(self, port):
        self.port = port
        self.sock = h.connect(port)
        self.reader = h.ConnReader(self.sock)

    def close(self):
        self.sock.close()

    def reqmod(self, url, user=None):
        fields = [("Allow", "204"), ("X-Client-IP", "192.0.2.10")]
        if user is not None:
            fields.append(("X-Authenticated-User", user))
        data = h.icap_head("REQMOD", "icap://127.0.0.1:%d/reqmod" % self.port, fields,
                           req_hdr=h.http_request_head("GET", url))
        self.sock.sendall(data)
        return h.read_icap_response(self.reader)

    def respmod(self, url, body):
        req = h.http_request_head("GET", url)
        res = h.http_response_head(200, [("Content-Type", "application/octet-stream"),
                                         ("Content-Length", str(len(body)))])
        data = h.icap_head("RESPMOD", "icap://127.0.0.1:%d/respmod" % self.port,
                           [("Allow", "204"), ("X-Client-IP", "192.0.2.10")],
                           req_hdr=req, res_hdr=res, body_kind="res-body")
        self.sock.sendall(data + h.icap_chunked(body) + h.icap_last_chunk())
        return h.read_icap_response(self.reader)


class SyslogCase(h.PortcullisTestCase):
    def setUp(self):
        self.pki = h.make_pki(tempfile.mkdtemp(prefix="pki-", dir=self.workdir))

    def receiver(self, transport, client_auth=False, pki=None, start=True):
        r = h.Rsyslog(self.workdir, transport, pki or self.pki, client_auth)
        self.addCleanup(r.stop)
        if start:
            r.start()
        return r

    def gateway(self, destinations, scan=None):
        """A gateway with one ICAP listener, the test policy and these [[syslog]] tables."""
        listeners = [{"name": "icap", "address": "127.0.0.1", "port": h.free_port(), "protocol": "icap"}]
        p = h.Proxy(self.workdir, {"icap": {"client_networks": ["127.0.0.0/8"], "user_encoding": "plain"},
                                   "scan": scan or {}}, listeners)
        path = os.path.join(p.dir, "policy.toml")
        with open(path, "w") as f:
            f.write(POLICY)
        p.cfg["policy"] = {"file": path}
        p.cfg["access_log"]["security_path"] = "security.log"
        p.cfg["syslog"] = destinations
        p.write_config()
        self.addCleanup(p.stop)
        p.start()
        return p

    def icap(self, p):
        c = IcapClient(p.port)
        self.addCleanup(c.close)
        return c

    def readyz(self, p):
        r = p.monitoring_get("/readyz")
        self.assertIsNotNone(r, "no answer from the monitoring listener")
        return r.status, json.loads(r.body)

    def sink_ready(self, p, name):
        """The ok of the readiness check of log sink `name` (None when there is none)."""
        for c in self.readyz(p)[1]["checks"]:
            if c["name"] == "log sink " + name:
                return c["ok"]
        return None

    def wait_stderr(self, p, pattern, timeout=30.0):
        found = h.wait_until(lambda: re.search(pattern, p.stderr_text()), timeout, 0.1)
        self.assertTrue(found, "no /%s/ in the gateway's log\n%s" % (pattern, p.stderr_text()))


class FormatsAndTransports(SyslogCase):
    """UDP, TCP and TLS to real rsyslog; RFC 5424, CEF and JSON checked against the access log."""

    def test_every_record_reaches_every_receiver_in_its_format(self):
        udp = self.receiver("udp")
        tcp = self.receiver("tcp")
        tls = self.receiver("tls", client_auth=True)
        sec = self.receiver("tcp")
        p = self.gateway([
            {"name": "udp5424", "host": "127.0.0.1", "port": udp.port, "transport": "udp",
             "format": "rfc5424", "facility": "local3"},
            {"name": "tcpcef", "host": "127.0.0.1", "port": tcp.port, "transport": "tcp", "format": "cef"},
            {"name": "tls5424", "host": "127.0.0.1", "port": tls.port, "transport": "tls",
             "format": "rfc5424", "tls_ca": self.pki["ca"], "tls_certificate": self.pki["client_cert"],
             "tls_key": self.pki["client_key"]},
            {"name": "secjson", "host": "localhost", "port": sec.port, "transport": "tcp",
             "format": "json", "records": "security"},
        ])
        c = self.icap(p)
        self.assertEqual(c.reqmod("http://allowed.example/a?q=1").status, 204)
        self.assertEqual(c.reqmod("http://allowed.example/user", user=ODD_USER).status, 204)
        blocked = c.reqmod("http://blocked.example/x")
        self.assertEqual(blocked.status, 200)
        self.assertEqual(blocked.http_status(), 403)
        threat = c.respmod("http://allowed.example/eicar.com", EICAR)
        self.assertEqual(threat.status, 200)
        self.assertEqual(threat.http_status(), 403)
        self.assertEqual(c.reqmod("http://allowed.example/last").status, 204)

        log = p.wait_access_records(5)
        self.assertEqual(len(log), 5, log)
        by_id = {r["request_id"]: r for r in log}
        order = [r["request_id"] for r in log]

        # -- UDP, RFC 5424: rsyslog's parse of the header and the structured data.
        got = udp.wait_records(5)
        self.assertEqual(len(got), 5, udp.log_text())
        self.assertEqual(sorted(m["sd"]["portcullis@32473"]["request_id"] for m in got), sorted(order))
        for m in got:
            sd = m["sd"]["portcullis@32473"]
            rec = by_id[sd["request_id"]]
            self.assertEqual(m["facility"], "19", m)  # local3
            self.assertEqual(m["hostname"], h.GATEWAY_NAME)
            self.assertEqual(m["app"], "portcullis")
            self.assertEqual(m["procid"], str(p.proc.pid))
            self.assertTrue(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]00:00)", m["timestamp"]), m)
            self.assertEqual(m["timestamp"][:19], rec["time"][:19])
            for key in ("client", "method", "url", "scheme", "host", "path", "result", "decision",
                        "rule", "reputation", "listener", "icap_client", "icap_mode"):
                self.assertEqual(sd.get(key, ""), str(rec.get(key, "")), (key, m, rec))
            for key in ("status", "bytes_in", "bytes_out", "icap_status"):
                self.assertEqual(sd[key], str(rec[key]), (key, m, rec))
            self.assertEqual(sd.get("reason", ""), rec["reason"])
            self.assertEqual(sd.get("user", ""), rec.get("user", ""))
            self.assertFalse(m["raw"].startswith("\ufeff"))
        odd = [m for m in got if m["sd"]["portcullis@32473"].get("user")]
        self.assertEqual(len(odd), 1, got)
        self.assertEqual(odd[0]["sd"]["portcullis@32473"]["user"], ODD_USER)  # escaped and back
        self.assertIn('user="o\\"d\\\\d\\]us=er"', odd[0]["raw"])
        kinds = {m["sd"]["portcullis@32473"]["request_id"]: (m["msgid"], m["severity"]) for m in got}
        self.assertEqual(kinds[order[0]], ("access", "6"))
        self.assertEqual(kinds[order[2]], ("block", "4"))
        self.assertEqual(kinds[order[3]], ("threat", "2"))
        threat_sd = [m["sd"]["portcullis@32473"] for m in got if m["msgid"] == "threat"][0]
        self.assertEqual(threat_sd["sha256"], EICAR_SHA256)
        self.assertEqual(threat_sd["threat"], by_id[order[3]]["threat"])
        self.assertEqual(threat_sd["scan"], "infected")
        blocked_sd = [m["sd"]["portcullis@32473"] for m in got if m["msgid"] == "block"][0]
        self.assertEqual(blocked_sd["rule"], 'blocked "domain" [x]')

        # -- TCP, CEF: in order; header and extension keys.
        got = tcp.wait_records(5)
        self.assertEqual(len(got), 5, tcp.log_text())
        for m, rid in zip(got, order):
            rec = by_id[rid]
            self.assertTrue(m["msg"].startswith("CEF:0|Portcullis|Portcullis|"), m)
            head, ext = parse_cef(m["msg"])
            self.assertEqual(len(head), 7, m)
            self.assertEqual(ext["externalId"], rid)
            self.assertEqual(ext["src"], "192.0.2.10")
            self.assertEqual(ext["request"], rec["url"])
            self.assertEqual(ext["requestMethod"], "GET")
            self.assertEqual(ext["app"], "HTTP")
            self.assertEqual(ext["dhost"], "allowed.example" if "allowed" in rec["url"] else "blocked.example")
            self.assertEqual(ext["in"], str(rec["bytes_in"]))
            self.assertEqual(ext["out"], str(rec["bytes_out"]))
            self.assertEqual(ext["outcome"], rec["result"])
            self.assertEqual(ext["dvchost"], h.GATEWAY_NAME)
            self.assertEqual(ext["deviceInboundInterface"], "icap")
            self.assertTrue(re.fullmatch(r"\d{13}", ext["rt"]), ext)
            self.assertEqual(ext.get("suser", ""), rec.get("user", ""))
        h0, e0 = parse_cef(got[0]["msg"])
        self.assertEqual((h0[4], h0[5], h0[6], e0["act"]), ("access", "Access allowed", "1", "allow"))
        self.assertEqual(parse_cef(got[1]["msg"])[1]["suser"], ODD_USER)
        self.assertIn("suser=o\"d\\\\d]us\\=er", got[1]["msg"])
        h2, e2 = parse_cef(got[2]["msg"])
        self.assertEqual((h2[4], h2[5], h2[6], e2["act"]), ("block", "Access blocked", "5", "block"))
        self.assertEqual(e2["cs2Label"], "rule")
        self.assertEqual(e2["cs2"], 'blocked "domain" [x]')
        h3, e3 = parse_cef(got[3]["msg"])
        self.assertEqual((h3[4], h3[5], h3[6], e3["act"]), ("threat", "Threat blocked", "8", "block"))
        self.assertEqual(e3["cs1Label"], "threatName")
        self.assertEqual(e3["cs1"], by_id[order[3]]["threat"])
        self.assertEqual(e3["fileHash"], EICAR_SHA256)
        self.assertEqual(e3["fsize"], str(by_id[order[3]].get("scanned_size", 0)))

        # -- TLS with a client certificate, RFC 5424: in order.
        got = tls.wait_records(5)
        self.assertEqual([m["sd"]["portcullis@32473"]["request_id"] for m in got], order, tls.log_text())
        self.assertEqual(got[1]["sd"]["portcullis@32473"]["user"], ODD_USER)

        # -- TCP, JSON, security events only: the block and the threat.
        got = sec.wait_records(2)
        self.assertEqual(len(got), 2, sec.log_text())
        objs = [json.loads(m["msg"]) for m in got]
        self.assertEqual([o["request_id"] for o in objs], [order[2], order[3]])
        self.assertEqual([o["event"] for o in objs], ["block", "threat"])
        for o in objs:
            rec = dict(by_id[o["request_id"]])
            self.assertEqual(o, rec)  # the same object as the access log line
        self.assertEqual([m["msgid"] for m in got], ["block", "threat"])

        # -- the security log file: the same two.
        sec_lines = [json.loads(l) for l in h.complete_lines(os.path.join(p.state_dir, "security.log"))]
        self.assertEqual([r["request_id"] for r in sec_lines], [order[2], order[3]])
        self.assertEqual(sec_lines[1]["threat"], by_id[order[3]]["threat"])

        # Nothing further arrives (the receivers got each record once).
        c.reqmod("http://allowed.example/marker")
        self.assertEqual(len(p.wait_access_records(6)), 6)
        self.assertEqual(len(tcp.wait_records(6)), 6)
        self.assertEqual(len(tls.wait_records(6)), 6)
        self.assertEqual(len(udp.wait_records(6)), 6)
        self.assertEqual(len(sec.records()), 2)

    def test_tls_receiver_with_a_certificate_from_another_ca_gets_nothing(self):
        other = h.make_pki(tempfile.mkdtemp(prefix="pki-other-", dir=self.workdir), "other")
        tls = self.receiver("tls", pki=other)
        p = self.gateway([{"name": "wrongca", "host": "127.0.0.1", "port": tls.port, "transport": "tls",
                           "tls_ca": self.pki["ca"]}])
        c = self.icap(p)
        self.assertEqual(c.reqmod("http://allowed.example/").status, 204)
        self.wait_stderr(p, r"syslog wrongca: TLS handshake with 127\.0\.0\.1:%d failed: certificate verify failed"
                         % tls.port)
        self.assertEqual(tls.records(), [])
        # The record waits on disk for a receiver the gateway can trust.
        spool = os.path.join(p.state_dir, "spool", "syslog", "wrongca")
        queued = h.wait_until(lambda: any(n.endswith(".seg") and os.path.getsize(os.path.join(spool, n)) > 0
                                          for n in os.listdir(spool)), 10)
        self.assertTrue(queued, os.listdir(spool))
        self.assertEqual(tls.records(), [])


class ReceiverOutages(SyslogCase):
    """TCP: nothing lost while the receiver is down, in order once it is back."""

    def records_in_order(self, receiver, p, n):
        got = receiver.wait_records(n, timeout=60)
        ids = [m["sd"]["portcullis@32473"]["request_id"] for m in got]
        want = [r["request_id"] for r in p.wait_access_records(n)]
        return ids, want

    def test_receiver_stopped_and_started_again_gets_everything_in_order(self):
        rx = self.receiver("tcp")
        p = self.gateway([{"name": "outage", "host": "127.0.0.1", "port": rx.port, "transport": "tcp"}],
                         scan={"enabled": False})
        c = self.icap(p)
        for i in range(20):
            c.reqmod("http://allowed.example/before/%d" % i)
        self.assertEqual(len(rx.wait_records(20)), 20, rx.log_text())

        self.assertTrue(self.sink_ready(p, "syslog:outage"), self.readyz(p))

        rx.stop()
        for i in range(30):
            c.reqmod("http://allowed.example/during/%d" % i)
        # The gateway noticed: the connection was closed, then refused; monitoring says so.
        self.wait_stderr(p, r"syslog outage: cannot connect to 127\.0\.0\.1:%d" % rx.port)
        self.assertEqual(len(p.wait_access_records(50)), 50)
        self.assertTrue(h.wait_until(lambda: self.sink_ready(p, "syslog:outage") is False, 10), self.readyz(p))
        status, body = self.readyz(p)
        self.assertEqual(status, 503, body)
        check = [c for c in body["checks"] if c["name"] == "log sink syslog:outage"][0]
        self.assertIn("Connection refused", check["detail"])

        rx.start()
        for i in range(10):
            c.reqmod("http://allowed.example/after/%d" % i)
        ids, want = self.records_in_order(rx, p, 60)
        self.assertEqual(len(want), 60)
        self.assertEqual(ids, want, "records lost, repeated or out of order\n" + p.stderr_text())
        self.assertTrue(h.wait_until(lambda: self.sink_ready(p, "syslog:outage"), 10), self.readyz(p))
        metrics = p.monitoring_get("/metrics").body.decode()
        self.assertIn('portcullis_log_records_written_total{sink="syslog:outage"} 60', metrics)
        self.assertIn('portcullis_log_records_dropped_total{sink="syslog:outage"} 0', metrics)
        urls = [m["sd"]["portcullis@32473"]["url"] for m in rx.records()]
        self.assertEqual(urls[20], "http://allowed.example/during/0")
        self.assertEqual(urls[-1], "http://allowed.example/after/9")
        self.wait_stderr(p, r"syslog outage: connected to 127\.0\.0\.1:%d over tcp after \d+ failed attempt" % rx.port)

    def test_records_queued_while_the_receiver_is_down_survive_a_gateway_restart(self):
        rx = self.receiver("tcp", start=False)
        p = self.gateway([{"name": "restart", "host": "127.0.0.1", "port": rx.port, "transport": "tcp"}],
                         scan={"enabled": False})
        c = self.icap(p)
        for i in range(15):
            c.reqmod("http://allowed.example/first-run/%d" % i)
        first = [r["request_id"] for r in p.wait_access_records(15)]
        self.assertEqual(len(first), 15)
        c.close()
        p.stop()
        self.assertIn("15 record(s) not sent yet are kept in", p.stderr_text())

        rx.start()
        p.start()
        c = self.icap(p)
        for i in range(5):
            c.reqmod("http://allowed.example/second-run/%d" % i)
        want = [r["request_id"] for r in p.wait_access_records(20)]
        got = rx.wait_records(20, timeout=60)
        ids = [m["sd"]["portcullis@32473"]["request_id"] for m in got]
        self.assertEqual(ids[:15], first)
        self.assertEqual(ids, want, p.stderr_text())


class Configuration(SyslogCase):
    def test_unusable_tls_files_are_reported_by_check_config_and_stop_the_start(self):
        missing = os.path.join(self.workdir, "no-such-ca.pem")
        listeners = [{"name": "icap", "address": "127.0.0.1", "port": h.free_port(), "protocol": "icap"}]
        p = h.Proxy(self.workdir, {"scan": {"enabled": False}}, listeners)
        p.cfg["syslog"] = [{"name": "siem", "host": "127.0.0.1", "transport": "tls", "tls_ca": missing}]
        p.write_config()
        r = subprocess.run([h.portcullis_bin(), "check-config", "-c", p.config_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("syslog destination siem: cannot load the CA bundle " + missing, r.stderr.decode())
        r = subprocess.run([h.portcullis_bin(), "run", "-c", p.config_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("cannot start: syslog destination siem: cannot load the CA bundle", r.stderr.decode())

    def test_spool_folder_is_not_readable_by_others(self):
        rx = self.receiver("tcp", start=False)
        p = self.gateway([{"name": "private", "host": "127.0.0.1", "port": rx.port, "transport": "tcp"}],
                         scan={"enabled": False})
        spool = os.path.join(p.state_dir, "spool", "syslog", "private")
        self.assertTrue(os.path.isdir(spool))
        self.assertEqual(os.stat(spool).st_mode & 0o007, 0)


if __name__ == "__main__":
    h.main()
