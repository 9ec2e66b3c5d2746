#!/usr/bin/python3
"""The monitoring listener (issue #6 "Health and metrics", docs/monitoring.md), end to end:

  * /healthz, /readyz and /status (version, policy revision, ClamAV and signature database
    versions, YARA rule count) on a running gateway;
  * /metrics read by a strict parser of the Prometheus text format 0.0.4 written here (HELP and
    TYPE once per family and before its samples, a family's samples together, valid names,
    label escapes, counters ending in _total, histogram buckets cumulative up to +Inf equal
    to _count);
  * counters that move with traffic: curl through the proxy (allowed, blocked, an upstream
    error, scanned downloads and an infected upload, a cached verdict), c-icap-client and raw
    ICAP through the ICAP listener;
  * the proxy refusing to forward to the monitoring port (GET and CONNECT);
  * not ready: scanning engines that cannot load (ready again once the signatures appear), a
    policy reload that fails (still ready, reported), draining; the port already in use; the
    listener disabled; a non-loopback address refused by check-config.
"""

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

C_ICAP_CLIENT = "/usr/bin/c-icap-client"
SHIPPED_SIGNATURES = os.path.abspath(os.path.join(h.HERE, "..", "..", "signatures", "clamav"))
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

POLICY = """
[settings]
time_zone = "UTC"

[[rules]]
name = "blocked domain"
domains = ["blocked.example"]
action = "block"

[default]
action = "allow"
"""

YARA_RULE = """
rule portcullis_e2e_marker {
  strings:
    $a = "PORTCULLIS-E2E-YARA-MARKER"
  condition:
    $a
}
"""


# ---------------------------------------------------------------------------------------
# A strict reader of the Prometheus text exposition format 0.0.4

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class ExpositionError(AssertionError):
    pass


def parse_float(text, where):
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
        raise ExpositionError("%s: %r is not a number" % (where, text))
    return float(text)


def parse_labels(text, pos, where):
    """text[pos] == '{'; returns (labels dict, position after '}')."""
    labels = {}
    pos += 1
    while True:
        if pos < len(text) and text[pos] == "}":
            return labels, pos + 1
        m = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*").match(text, pos)
        if not m:
            raise ExpositionError("%s: bad label name at %d" % (where, pos))
        name = m.group(0)
        if name.startswith("__"):
            raise ExpositionError("%s: reserved label name %s" % (where, name))
        if name in labels:
            raise ExpositionError("%s: label %s repeated" % (where, name))
        pos = m.end()
        if text[pos:pos + 2] != '="':
            raise ExpositionError("%s: expected =\" after %s" % (where, name))
        pos += 2
        value = []
        while True:
            if pos >= len(text):
                raise ExpositionError("%s: unterminated label value" % where)
            c = text[pos]
            if c == "\\":
                nxt = text[pos + 1:pos + 2]
                if nxt not in ("\\", '"', "n"):
                    raise ExpositionError("%s: invalid escape \\%s" % (where, nxt))
                value.append({"\\": "\\", '"': '"', "n": "\n"}[nxt])
                pos += 2
            elif c == '"':
                pos += 1
                break
            elif c == "\n":
                raise ExpositionError("%s: raw newline in a label value" % where)
            else:
                value.append(c)
                pos += 1
        labels[name] = "".join(value)
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos < len(text) and text[pos] == "}":
            continue
        else:
            raise ExpositionError("%s: expected , or } at %d" % (where, pos))


def parse_exposition(text):
    """Returns {family: {"type", "help", "samples": [(name, labels, value)]}}; raises
    ExpositionError on anything the format (or our conventions: HELP and TYPE for every
    family) does not allow."""
    if not text.endswith("\n"):
        raise ExpositionError("the text does not end with a newline")
    families = {}
    order = []
    current = None
    closed = set()
    seen_series = set()

    def family_of(sample_name):
        for suffix in ("_bucket", "_sum", "_count"):
            base = sample_name[: -len(suffix)] if sample_name.endswith(suffix) else None
            if base and base in families and families[base]["type"] == "histogram":
                return base
        return sample_name

    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d %r" % (n, line[:120])
        if line == "":
            continue
        if line.startswith("#"):
            m = re.fullmatch(r"# (HELP|TYPE) (\S+) ?(.*)", line)
            if not m:
                continue  # a plain comment
            kind, name, rest = m.groups()
            if not METRIC_NAME.match(name):
                raise ExpositionError("%s: invalid metric name" % where)
            if name in closed:
                raise ExpositionError("%s: family %s appears again after other families" % (where, name))
            fam = families.get(name)
            if fam is None:
                fam = families[name] = {"type": None, "help": None, "samples": []}
                order.append(name)
            if fam["samples"]:
                raise ExpositionError("%s: %s after samples" % (where, kind))
            if kind == "HELP":
                if fam["help"] is not None:
                    raise ExpositionError("%s: second HELP" % where)
                if re.search(r"\\[^\\n]", rest.replace("\\\\", "")):
                    raise ExpositionError("%s: invalid escape in HELP" % where)
                fam["help"] = rest.replace("\\n", "\n").replace("\\\\", "\\")
            else:
                if fam["type"] is not None:
                    raise ExpositionError("%s: second TYPE" % where)
                if rest not in TYPES:
                    raise ExpositionError("%s: unknown type %r" % (where, rest))
                fam["type"] = rest
            if current is not None and current != name:
                closed.add(current)
            current = name
            continue
        m = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*").match(line)
        if not m:
            raise ExpositionError("%s: no metric name" % where)
        name = m.group(0)
        pos = m.end()
        labels = {}
        if pos < len(line) and line[pos] == "{":
            labels, pos = parse_labels(line, pos, where)
        if pos >= len(line) or line[pos] != " ":
            raise ExpositionError("%s: expected a space before the value" % where)
        parts = line[pos + 1:].split(" ")
        if len(parts) not in (1, 2) or parts[0] == "":
            raise ExpositionError("%s: expected a value and an optional timestamp" % where)
        value = parse_float(parts[0], where)
        if len(parts) == 2 and not re.fullmatch(r"-?\d+", parts[1]):
            raise ExpositionError("%s: bad timestamp" % where)
        fname = family_of(name)
        fam = families.get(fname)
        if fam is None or fam["type"] is None or fam["help"] is None:
            raise ExpositionError("%s: sample before its HELP and TYPE" % where)
        if fname != current:
            raise ExpositionError("%s: sample of %s outside its family's block" % (where, fname))
        key = (name, tuple(sorted(labels.items())))
        if key in seen_series:
            raise ExpositionError("%s: series written twice" % where)
        seen_series.add(key)
        t = fam["type"]
        if t == "counter":
            if not fname.endswith("_total"):
                raise ExpositionError("%s: counter %s does not end in _total" % (where, fname))
            if value < 0 or math.isnan(value):
                raise ExpositionError("%s: a counter cannot be %r" % (where, value))
        if t in ("counter", "gauge") and name != fname:
            raise ExpositionError("%s: sample name differs from its family" % where)
        if t == "histogram":
            if name == fname:
                raise ExpositionError("%s: a histogram has only _bucket, _sum and _count" % where)
            if name.endswith("_bucket") != ("le" in labels):
                raise ExpositionError("%s: le goes with _bucket and only there" % where)
        fam["samples"].append((name, labels, value))

    for fname in order:
        fam = families[fname]
        if fam["type"] is None or fam["help"] is None:
            raise ExpositionError("family %s lacks HELP or TYPE" % fname)
        if fam["type"] != "histogram":
            continue
        series = {}
        for name, labels, value in fam["samples"]:
            base = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            s = series.setdefault(base, {"buckets": [], "sum": None, "count": None})
            if name.endswith("_bucket"):
                s["buckets"].append((parse_float(labels["le"], fname), value))
            elif name.endswith("_sum"):
                s["sum"] = value
            else:
                s["count"] = value
        for base, s in series.items():
            what = "%s%s" % (fname, dict(base))
            bounds = [b for b, _ in s["buckets"]]
            counts = [c for _, c in s["buckets"]]
            if not bounds or bounds[-1] != math.inf:
                raise ExpositionError("%s: the last bucket is not +Inf" % what)
            if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
                raise ExpositionError("%s: bucket bounds not increasing" % what)
            if counts != sorted(counts):
                raise ExpositionError("%s: buckets are not cumulative" % what)
            if s["sum"] is None or s["count"] is None:
                raise ExpositionError("%s: _sum or _count missing" % what)
            if counts[-1] != s["count"]:
                raise ExpositionError("%s: +Inf bucket %r != _count %r" % (what, counts[-1], s["count"]))
    return families


def value(families, family, sample=None, **labels):
    """The value of one series (0 when absent: a series appears when first counted)."""
    fam = families.get(family)
    if fam is None:
        return 0
    want = sample or family
    for name, ls, v in fam["samples"]:
        if name == want and ls == labels:
            return v
    return 0


class ParserSelfTest(unittest.TestCase):
    """The parser above refuses what it must (a test whose checks cannot fail is worthless)."""

    GOOD = ("# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\"} 1\n"
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
            "h_sum 3.5\nh_count 2\n")

    def test_accepts_good_text(self):
        f = parse_exposition(self.GOOD)
        self.assertEqual(f["a_total"]["samples"][0][1], {"x": "q\"\\\n"})
        self.assertEqual(value(f, "h", "h_count"), 2)

    def test_refuses_bad_text(self):
        bad = {
            "no newline": self.GOOD.rstrip("\n"),
            "counter without _total": "# HELP a A.\n# TYPE a counter\na 1\n",
            "no TYPE": "# HELP a A.\na 1\n",
            "sample first": "a 1\n# HELP a A.\n# TYPE a gauge\n",
            "bad escape": "# HELP a A.\n# TYPE a gauge\na{x=\"\\t\"} 1\n",
            "interleaved": "# HELP a A.\n# TYPE a gauge\na{x=\"1\"} 1\n# HELP b B.\n# TYPE b gauge\nb 1\n"
                           "a{x=\"2\"} 1\n",
            "duplicate series": "# HELP a A.\n# TYPE a gauge\na 1\na 2\n",
            "not cumulative": "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
                              "h_sum 1\nh_count 1\n",
            "no +Inf": "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
            "count differs": "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 2\n",
            "bad value": "# HELP a A.\n# TYPE a gauge\na one\n",
            "two TYPE": "# HELP a A.\n# TYPE a gauge\n# TYPE a gauge\na 1\n",
        }
        for what, text in bad.items():
            with self.subTest(what=what):
                with self.assertRaises(ExpositionError):
                    parse_exposition(text)


# ---------------------------------------------------------------------------------------

def write_file(path, text):
    with open(path, "w") as f:
        f.write(text)


class MonitoringCase(h.PortcullisTestCase):
    def get(self, p, path, method="GET"):
        r = p.monitoring_get(path, method)
        self.assertIsNotNone(r, "no answer from the monitoring listener for %s" % path)
        return r

    def scrape(self, p):
        r = self.get(p, "/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), CONTENT_TYPE)
        try:
            return parse_exposition(r.body.decode("utf-8"))
        except ExpositionError as e:
            self.fail("/metrics is not valid exposition text: %s\n%s" % (e, r.body.decode("utf-8", "replace")[:4000]))

    def wait_metric(self, p, pred, timeout=5.0):
        """Scrapes until pred(families) holds (records and ticks land shortly after the
        traffic); returns the last scrape."""
        last = [None]

        def check():
            last[0] = self.scrape(p)
            return pred(last[0])

        h.wait_until(check, timeout, 0.1)
        return last[0]

    def readyz(self, p):
        r = self.get(p, "/readyz")
        self.assertEqual(r.header("Content-Type"), "application/json")
        return r.status, json.loads(r.body)


class Monitoring(MonitoringCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.o = cls.class_origin()
        yara_dir = tempfile.mkdtemp(prefix="yara-", dir=cls.workdir)
        write_file(os.path.join(yara_dir, "marker.yar"), YARA_RULE)
        listeners = [{"name": "proxy", "address": "127.0.0.1", "port": h.free_port()},
                     {"name": "icap", "address": "127.0.0.1", "port": h.free_port(), "protocol": "icap"}]
        p = h.Proxy(cls.workdir, {"scan": {"yara_dir": yara_dir}}, listeners)
        policy = os.path.join(p.dir, "policy.toml")
        write_file(policy, POLICY)
        p.cfg["policy"] = {"file": policy}
        # The monitoring port is a CONNECT port too: only the "never to itself" rule refuses it.
        p.cfg["proxy"]["connect_ports"] = [443, p.monitoring_port]
        p.write_config()
        cls.addClassCleanup(p.stop)
        p.start()
        cls.p = p
        cls.icap_port = listeners[1]["port"]

    def setUp(self):
        self.p.revive()

    # -- health ----------------------------------------------------------------------
    def test_healthz(self):
        r = self.get(self.p, "/healthz")
        self.assertEqual((r.status, r.body), (200, b"ok\n"))
        self.assertEqual(r.header("Cache-Control"), "no-store")
        head = self.get(self.p, "/healthz", "HEAD")
        self.assertEqual((head.status, head.body), (200, b""))
        post = self.get(self.p, "/healthz", "POST")
        self.assertEqual(post.status, 405)
        self.assertEqual(post.header("Allow"), "GET, HEAD")
        self.assertEqual(self.get(self.p, "/nope").status, 404)

    def test_malformed_requests_get_400(self):
        for raw in (b"GET /healthz HTTP/1.1\nHost: x\n\n",  # bare LF
                    b"GET http://x/healthz HTTP/1.1\r\nHost: x\r\n\r\n",  # not origin-form
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 10000 + b"\r\n\r\n"):
            with self.subTest(raw=raw[:40]):
                r = self.raw(self.p.monitoring_port, raw)
                self.assertIsNotNone(r)
                self.assertEqual(r.status, 400, r)
        self.assertEqual(self.get(self.p, "/healthz").status, 200)  # still serving

    def test_readyz(self):
        status, body = self.readyz(self.p)
        self.assertEqual(status, 200, body)
        self.assertIs(body["ready"], True)
        checks = {c["name"]: c for c in body["checks"]}
        self.assertEqual(set(checks), {"policy", "scanning", "listeners", "workers", "log sink access_log",
                                       "log sink security_log", "log sink log_store"})
        for c in checks.values():
            self.assertIs(c["ok"], True, c)
        self.assertIn("ClamAV", checks["scanning"]["detail"])
        self.assertIn("proxy", checks["listeners"]["detail"])
        self.assertIn("icap", checks["listeners"]["detail"])
        self.assertIn("revision", checks["policy"]["detail"])

    def test_status_names_versions(self):
        r = self.get(self.p, "/status")
        self.assertEqual(r.status, 200)
        st = json.loads(r.body)
        version = subprocess.run([h.portcullis_bin(), "version"], stdout=subprocess.PIPE, check=True,
                                 timeout=10).stdout.decode().split()[-1]
        self.assertEqual(st["version"], version)
        self.assertEqual(st["name"], h.GATEWAY_NAME)
        self.assertIs(st["ready"], True)
        self.assertGreaterEqual(st["uptime_seconds"], 0)
        self.assertEqual(st["workers"], 2)
        self.assertEqual([l["name"] for l in st["listeners"]], ["proxy", "icap"])
        self.assertRegex(st["policy"]["revision"], r"^[0-9a-f]{16}$")
        self.assertNotEqual(st["policy"]["revision"], "0" * 16)
        self.assertEqual(st["policy"]["rules"], 1)
        self.assertGreater(st["policy"]["table_bytes"], 0)
        scan = st["scan"]
        self.assertIs(scan["loaded"], True)
        self.assertRegex(scan["clamav"]["version"], r"^\d+\.\d+")
        self.assertGreaterEqual(scan["clamav"]["signatures"], 2)
        files = [os.path.basename(d["file"]) for d in scan["clamav"]["databases"]]
        self.assertIn("portcullis.hdb", files)
        self.assertIn("portcullis.ndb", files)
        self.assertEqual(scan["yara"], {"rules": 1, "files": 1})
        self.assertIn("YARA 1 rules", scan["engines"])
        sinks = {s["name"]: s for s in st["log_sinks"]}
        self.assertIs(sinks["access_log"]["connected"], True)

    # -- metrics ---------------------------------------------------------------------
    def test_metrics_parse_and_name_every_family(self):
        f = self.scrape(self.p)
        expected = {
            "portcullis_build_info": "gauge",
            "portcullis_ready": "gauge",
            "portcullis_check_ok": "gauge",
            "portcullis_connections_open": "gauge",
            "portcullis_front_connections": "gauge",
            "portcullis_front_connections_limit": "gauge",
            "portcullis_connections_accepted_total": "counter",
            "portcullis_client_bytes_total": "counter",
            "portcullis_phase_duration_seconds": "histogram",
            "portcullis_upstream_errors_total": "counter",
            "portcullis_dns_errors_total": "counter",
            "portcullis_dns_queries_total": "counter",
            "portcullis_scans_total": "counter",
            "portcullis_event_loop_lag_seconds": "histogram",
            "portcullis_event_loop_lag_last_seconds": "gauge",
            "portcullis_scan_queue_depth": "gauge",
            "portcullis_scan_failures_total": "counter",
            "portcullis_verdict_cache_hits_total": "counter",
            "portcullis_verdict_cache_misses_total": "counter",
            "portcullis_log_records_written_total": "counter",
            "portcullis_log_records_dropped_total": "counter",
            "portcullis_log_sink_connected": "gauge",
            "portcullis_reloads_total": "counter",
            "portcullis_yara_rules": "gauge",
        }
        for name, t in expected.items():
            with self.subTest(family=name):
                self.assertIn(name, f)
                self.assertEqual(f[name]["type"], t)
        self.assertEqual(value(f, "portcullis_ready"), 1)
        self.assertEqual(value(f, "portcullis_yara_rules"), 1)
        phases = {ls["phase"] for _, ls, _ in f["portcullis_phase_duration_seconds"]["samples"]}
        self.assertEqual(phases, {"transaction", "dns", "connect", "first_byte", "scan"})
        workers = {ls["worker"] for _, ls, _ in f["portcullis_event_loop_lag_seconds"]["samples"]}
        self.assertEqual(workers, {"0", "1"})
        self.assertEqual(value(f, "portcullis_log_sink_connected", sink="access_log"), 1)
        self.assertEqual(value(f, "portcullis_front_connections_limit", front="proxy"), 1000)

    def test_event_loop_lag_is_measured(self):
        def ticks(f):
            return sum(value(f, "portcullis_event_loop_lag_seconds", "portcullis_event_loop_lag_seconds_count",
                             worker=w) for w in ("0", "1"))
        before = ticks(self.scrape(self.p))
        after = self.wait_metric(self.p, lambda f: ticks(f) >= before + 4)
        self.assertGreaterEqual(ticks(after), before + 4, "the workers' ticks did not advance")

    def test_counters_follow_proxy_traffic(self):
        p, o = self.p, self.o
        allowed = dict(listener="proxy", mode="http", decision="allow", result="allowed")
        blocked = dict(listener="proxy", mode="http", decision="block", result="denied")
        f0 = self.scrape(p)
        n = 3
        for i in range(n):  # the same body: the second and third verdicts come from the cache
            self.curl("-x", p.url, o.url("/bytes?n=20000"), "-o", os.devnull)
        status, _, _ = self.curl_status("-x", p.url, "http://blocked.example/x")
        self.assertEqual(status, 403)
        status, _, _ = self.curl_status("-x", p.url, o.url("/garbage"))
        self.assertEqual(status, 502)
        dead = h.free_port()
        status, _, _ = self.curl_status("-x", p.url, "http://127.0.0.1:%d/" % dead)
        self.assertEqual(status, 502)
        self.assertEqual(self.post_eicar(), 403)  # an infected upload, never forwarded

        def moved(f):
            return (value(f, "portcullis_transactions_total", **allowed) >= value(f0, "portcullis_transactions_total", **allowed) + n
                    and value(f, "portcullis_log_records_written_total", sink="access_log")
                    >= value(f0, "portcullis_log_records_written_total", sink="access_log") + n + 4)
        f1 = self.wait_metric(p, moved)

        def delta(family, sample=None, **labels):
            return value(f1, family, sample, **labels) - value(f0, family, sample, **labels)

        self.assertEqual(delta("portcullis_transactions_total", **allowed), n)
        self.assertEqual(delta("portcullis_transactions_total", **blocked), 1)
        # /garbage and the dead port: allowed by policy, failed upstream.
        self.assertEqual(delta("portcullis_transactions_total", listener="proxy", mode="http", decision="allow",
                               result="error"), 2)
        self.assertEqual(delta("portcullis_upstream_errors_total", kind="malformed"), 1)
        self.assertEqual(delta("portcullis_upstream_errors_total", kind="connect"), 1)
        self.assertEqual(delta("portcullis_scans_total", result="infected"), 1)
        self.assertEqual(delta("portcullis_scans_total", result="clean"), n)
        self.assertGreaterEqual(delta("portcullis_verdict_cache_hits_total"), n - 1)
        self.assertGreaterEqual(delta("portcullis_verdict_cache_misses_total"), 1)
        self.assertGreaterEqual(delta("portcullis_connections_accepted_total", listener="proxy"), n + 4)
        self.assertGreaterEqual(delta("portcullis_client_bytes_total", listener="proxy", direction="out"), n * 20000)
        self.assertGreaterEqual(delta("portcullis_client_bytes_total", listener="proxy", direction="in"), len(EICAR))
        self.assertGreaterEqual(delta("portcullis_phase_duration_seconds", "portcullis_phase_duration_seconds_count",
                                      phase="transaction"), n + 4)
        self.assertGreaterEqual(delta("portcullis_phase_duration_seconds", "portcullis_phase_duration_seconds_count",
                                      phase="first_byte"), n)
        self.assertGreaterEqual(delta("portcullis_phase_duration_seconds", "portcullis_phase_duration_seconds_count",
                                      phase="connect"), 1)
        self.assertGreaterEqual(delta("portcullis_phase_duration_seconds", "portcullis_phase_duration_seconds_count",
                                      phase="scan"), 2)  # the first download and the upload
        self.assertEqual(delta("portcullis_log_records_dropped_total", sink="access_log"), 0)
        # Every connection has closed again.
        f2 = self.wait_metric(p, lambda f: value(f, "portcullis_connections_open", listener="proxy") == 0)
        self.assertEqual(value(f2, "portcullis_connections_open", listener="proxy"), 0)

    def post_eicar(self):
        """POSTs EICAR through the proxy; returns the status."""
        r = self.curl("-x", self.p.url, "-o", os.devnull, "-w", "%{http_code}", "-H",
                      "Content-Type: application/octet-stream", "--data-binary", "@-",
                      self.o.url("/echo?eicar=1"), input=EICAR, check=False)
        return int(r.stdout.decode() or "0")

    @unittest.skipUnless(os.path.exists(C_ICAP_CLIENT), "c-icap-client not installed")
    def test_counters_follow_icap_traffic(self):
        p = self.p
        f0 = self.scrape(p)
        body = os.path.join(self.workdir, "icap-body.bin")
        with open(body, "wb") as f:
            f.write(h.payload(5000))
        out = os.path.join(tempfile.mkdtemp(prefix="cicap-", dir=self.workdir), "out")
        for args in (["-s", "respmod"],  # OPTIONS
                     ["-s", "respmod", "-resp", "http://allowed.example/f", "-f", body, "-o", out],
                     ["-s", "reqmod", "-req", "http://blocked.example/x", "-o", out]):
            r = subprocess.run([C_ICAP_CLIENT, "-i", "127.0.0.1", "-p", str(self.icap_port)] + args,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, env=h.clean_env())
            self.assertEqual(r.returncode, 0, r.stderr)
        # And one REQMOD over a raw socket.
        req = h.http_request_head("GET", "http://allowed.example/raw", [])
        s = h.connect(self.icap_port)
        try:
            s.sendall(h.icap_head("REQMOD", "icap://127.0.0.1:%d/reqmod" % self.icap_port, [("Allow", "204")],
                                  req_hdr=req, body_kind="null-body"))
            resp = h.read_icap_response(h.ConnReader(s))
        finally:
            s.close()
        self.assertEqual(resp.status, 204, resp)

        def tx(f, mode, decision, result):
            return value(f, "portcullis_transactions_total", listener="icap", mode=mode, decision=decision,
                         result=result)

        f1 = self.wait_metric(p, lambda f: tx(f, "reqmod", "allow", "allowed") >= tx(f0, "reqmod", "allow", "allowed") + 1
                              and tx(f, "reqmod", "block", "denied") >= tx(f0, "reqmod", "block", "denied") + 1)
        self.assertGreaterEqual(tx(f1, "options", "none", "allowed") - tx(f0, "options", "none", "allowed"), 1)
        self.assertEqual(tx(f1, "respmod", "allow", "allowed") - tx(f0, "respmod", "allow", "allowed"), 1)
        self.assertEqual(tx(f1, "reqmod", "block", "denied") - tx(f0, "reqmod", "block", "denied"), 1)
        self.assertEqual(tx(f1, "reqmod", "allow", "allowed") - tx(f0, "reqmod", "allow", "allowed"), 1)
        self.assertGreaterEqual(value(f1, "portcullis_connections_accepted_total", listener="icap")
                                - value(f0, "portcullis_connections_accepted_total", listener="icap"), 4)
        self.assertGreaterEqual(value(f1, "portcullis_client_bytes_total", listener="icap", direction="in")
                                - value(f0, "portcullis_client_bytes_total", listener="icap", direction="in"), 5000)

    # -- never through the proxy -----------------------------------------------------
    def test_proxy_refuses_the_monitoring_port(self):
        p = self.p
        mport = p.monitoring_port
        for url in ("http://127.0.0.1:%d/metrics" % mport, "http://localhost:%d/status" % mport):
            with self.subTest(url=url):
                status, body, _ = self.curl_status("-x", p.url, url)
                self.assertEqual(status, 403)
                self.assertNotIn(b"portcullis_", body)
                self.assertNotIn(b"\"uptime_seconds\"", body)
        conn = self.raw(p.port, b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (mport, mport),
                        method="CONNECT")
        self.assertEqual(conn.status, 403)
        def mine():
            return [r for r in p.access_records() if ":%d" % mport in r["url"]]
        h.wait_until(lambda: len(mine()) >= 3)
        self.assertEqual(len(mine()), 3, p.access_records()[-5:])
        for r in mine():
            self.assertEqual(r["reason"], "destination is the gateway itself", r)


class NotReady(MonitoringCase):
    def test_unloadable_signatures_then_fixed(self):
        sigdir = os.path.join(self.workdir, "signatures-later")
        p = self.proxy({"scan": {"shipped_signatures": sigdir}})
        status, body = self.readyz(p)
        self.assertEqual(status, 503, body)
        self.assertIs(body["ready"], False)
        checks = {c["name"]: c for c in body["checks"]}
        self.assertIs(checks["scanning"]["ok"], False)
        self.assertIn(sigdir, checks["scanning"]["detail"])
        self.assertIn("scan.on_failure", checks["scanning"]["detail"])
        self.assertIs(checks["listeners"]["ok"], True)  # only scanning fails
        self.assertEqual(self.get(p, "/healthz").status, 200)  # alive all the same
        f = self.scrape(p)
        self.assertEqual(value(f, "portcullis_ready"), 0)
        self.assertEqual(value(f, "portcullis_check_ok", check="scanning"), 0)
        self.assertEqual(value(f, "portcullis_check_ok", check="policy"), 1)
        self.assertEqual(value(f, "portcullis_scan_engines_loaded"), 0)
        st = json.loads(self.get(p, "/status").body)
        self.assertIs(st["scan"]["loaded"], False)
        self.assertIn(sigdir, st["scan"]["error"])

        # The signatures arrive (an offline update): the engines load and the gateway is ready.
        shutil.copytree(SHIPPED_SIGNATURES, sigdir)
        h.wait_until(lambda: self.readyz(p)[0] == 200, timeout=20, interval=0.2)
        status, body = self.readyz(p)
        self.assertEqual(status, 200, body)
        f = self.scrape(p)
        self.assertEqual(value(f, "portcullis_scan_engines_loaded"), 1)
        self.assertGreaterEqual(value(f, "portcullis_reloads_total", what="engines", result="ok"), 1)

    def test_failed_policy_reload_is_reported_but_ready(self):
        p = self.proxy(start=False)
        policy = os.path.join(p.dir, "policy.toml")
        write_file(policy, POLICY)
        p.cfg["policy"] = {"file": policy}
        p.cfg["scan"] = {"enabled": False}
        p.write_config()
        p.start()
        f0 = self.scrape(p)
        write_file(policy, POLICY + "\n[[rules]]\nname = \"broken\"\naction = \"explode\"\n")
        h.wait_until(lambda: value(self.scrape(p), "portcullis_reloads_total", what="policy", result="failed")
                     > value(f0, "portcullis_reloads_total", what="policy", result="failed"), timeout=15, interval=0.2)
        f1 = self.scrape(p)
        self.assertEqual(value(f1, "portcullis_reloads_total", what="policy", result="failed"), 1)
        status, body = self.readyz(p)
        self.assertEqual(status, 200, body)  # the previous policy runs
        checks = {c["name"]: c for c in body["checks"]}
        self.assertIn("a reload failed", checks["policy"]["detail"])
        self.assertIn("'action' must be", checks["policy"]["detail"])
        self.assertEqual(checks["scanning"]["detail"], "scanning is off (scan.enabled = false)")
        st = json.loads(self.get(p, "/status").body)
        self.assertEqual(st["reloads"]["policy"]["failed"], 1)
        self.assertIn("'action' must be", st["reloads"]["policy"]["last_error"])

    def test_not_ready_while_draining(self):
        o = self.origin()
        p = self.proxy({"scan": {"enabled": False}})
        # A slow download keeps the gateway draining for a while after SIGTERM.
        s = h.connect(p.port)
        self.addCleanup(s.close)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (o.url("/slow?n=1000&secs=3").encode(),
                                                            o.authority.encode()))
        h.wait_until(lambda: o.heads, timeout=5)
        self.assertEqual(self.readyz(p)[0], 200)
        p.signal(signal.SIGTERM)
        got = h.wait_until(lambda: self.readyz(p)[0] == 503, timeout=3, interval=0.05)
        self.assertTrue(got, "/readyz did not turn 503 while draining")
        body = self.readyz(p)[1]
        self.assertIn("draining", json.dumps(body))
        self.assertEqual(p.wait_exit(15), 0)

    def test_port_in_use_stops_the_start(self):
        holder = socket.socket()
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        p = self.proxy({"monitoring": {"port": port}, "scan": {"enabled": False}}, start=False)
        p.expect_exit = True
        with self.assertRaises(h.ProxyCrashed):
            p.start()
        self.assertIn("monitoring listener: 127.0.0.1 port %d is already in use" % port, p.stderr_text())

    def test_disabled(self):
        p = self.proxy({"monitoring": {"enabled": False}, "scan": {"enabled": False}})
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", p.monitoring_port), timeout=2).close()
        o = self.origin()
        self.curl("-x", p.url, o.url("/bytes?n=10"), "-o", os.devnull)

    def test_check_config_refuses_a_remote_address(self):
        d = tempfile.mkdtemp(prefix="cfg-", dir=self.workdir)
        path = os.path.join(d, "portcullis.toml")
        write_file(path, "[monitoring]\naddress = \"0.0.0.0\"\n[scan]\nenabled = false\n")
        r = subprocess.run([h.portcullis_bin(), "check-config", "-c", path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn(b"must be a loopback address", r.stderr)
        write_file(path, "[monitoring]\naddress = \"0.0.0.0\"\nallow_remote = true\n[scan]\nenabled = false\n")
        r = subprocess.run([h.portcullis_bin(), "check-config", "-c", path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    h.main()
