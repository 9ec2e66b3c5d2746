"""Shared pieces of the Portcullis end-to-end tests.

Everything here uses the Python standard library only and binds loopback addresses only
(127.0.0.1 and ::1) on ports picked at run time. Every wait is bounded.

Pieces:
  free_port()                  a currently unused TCP port
  PortcullisTestCase           unittest base: start_proxy(), origins, raw requests, curl
  Proxy                        one running `portcullis run` with a generated config
  OriginServer                 threaded HTTP/1.1 origin with routes (see OriginServer.ROUTES)
  FakeDNS                      UDP DNS server answering A/AAAA by a rule table
  FakeParent                   parent proxy recording requests (absolute-form and CONNECT)
  make_cert()                  self-signed certificate via `openssl req -x509`
  make_pki()                   a test CA with server and client certificates (openssl CLI)
  Rsyslog                      a real rsyslogd receiving syslog on UDP, TCP or TLS
"""

import base64
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_BIN = os.path.join(HERE, "..", "..", "build", "dev", "src", "app", "portcullis")
GATEWAY_NAME = "pc-e2e"


def portcullis_bin():
    return os.path.abspath(os.environ.get("PORTCULLIS_BIN", DEFAULT_BIN))


_handed_out = set()  # ports free_port() gave: the kernel may offer a closed one again


def free_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    while True:
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def complete_lines(path):
    """The non-blank lines of a file another process is appending to. A last line
    without its newline is still being written and is left for the next read."""
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return []
    return [l for l in text[: text.rfind("\n") + 1].splitlines() if l.strip()]


def wait_until(pred, timeout=5.0, interval=0.05):
    """Polls pred() until it is truthy or timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def clean_env(**extra):
    """Environment for client tools without any inherited proxy settings."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------
# Deterministic payloads

_BLOCK = hashlib.sha256(b"seed").digest()
_PATTERN = b"".join(hashlib.sha256(_BLOCK + i.to_bytes(4, "big")).digest() for i in range(2048))
_PATTERN = _PATTERN[:65521]  # a prime length, so shifted or repeated pieces do not line up


def payload(n):
    """n deterministic, non-periodic-looking bytes."""
    reps, rest = divmod(n, len(_PATTERN))
    return _PATTERN * reps + _PATTERN[:rest]


_payload_sha_cache = {}


def payload_sha(n):
    if n not in _payload_sha_cache:
        _payload_sha_cache[n] = sha256(payload(n))
    return _payload_sha_cache[n]


# ---------------------------------------------------------------------------------------
# TOML writer for the generated configs (only what the schema needs)

def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError("unsupported TOML value %r" % (v,))


def to_toml(cfg):
    """cfg: {section: {key: value}} with "listeners" a list of tables and
    cfg["upstream"]["parents"] a list of tables."""
    out = []
    for section, body in cfg.items():
        if isinstance(body, list):
            for item in body:
                out.append("[[%s]]" % section)
                for k, v in item.items():
                    out.append("%s = %s" % (k, _toml_value(v)))
                out.append("")
            continue
        out.append("[%s]" % section)
        arrays = []
        for k, v in body.items():
            if isinstance(v, list) and v and isinstance(v[0], dict):
                arrays.append((k, v))
            else:
                out.append("%s = %s" % (k, _toml_value(v)))
        out.append("")
        for k, items in arrays:
            for item in items:
                out.append("[[%s.%s]]" % (section, k))
                for kk, vv in item.items():
                    out.append("%s = %s" % (kk, _toml_value(vv)))
                out.append("")
    return "\n".join(out) + "\n"


def deep_merge(base, over):
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = v
    return base


# ---------------------------------------------------------------------------------------
# The proxy under test

class ProxyCrashed(AssertionError):
    pass


class Proxy:
    def __init__(self, workdir, overrides=None, listeners=None):
        self.dir = tempfile.mkdtemp(prefix="pc-", dir=workdir)
        self.state_dir = os.path.join(self.dir, "state")
        os.makedirs(self.state_dir)
        self.config_path = os.path.join(self.dir, "portcullis.toml")
        if listeners is None:
            listeners = [{"name": "proxy", "address": "127.0.0.1", "port": free_port()}]
        self.listeners = listeners
        self.port = listeners[0]["port"]
        self.cfg = {
            "gateway": {"name": GATEWAY_NAME, "workers": 2, "state_dir": self.state_dir},
            "listeners": listeners,
            "proxy": {
                "client_networks": ["127.0.0.0/8", "::1/128"],
                "connect_ports": [443],
                "x_forwarded_for": "add",
                "max_connections": 1000,
                "max_connections_per_client": 256,
            },
            "limits": {
                "max_head_bytes": 65536,
                "max_fields": 100,
                "max_field_bytes": 16384,
                "max_url_bytes": 8192,
                "max_chunk_size_digits": 16,
            },
            "timeouts": {
                "header_read": 10,
                "keepalive_idle": 30,
                "upstream_connect": 5,
                "upstream_first_byte": 20,
                "body_idle": 20,
                "tunnel_idle": 60,
                "upstream_keepalive_idle": 30,
                "drain": 10,
            },
            "dns": {
                "servers": [],
                "timeout": 1.0,
                "tries": 1,
                "hosts_file": True,
                "cache_entries": 1000,
                "min_ttl": 1,
                "max_ttl": 60,
                "negative_ttl": 1,
            },
            "upstream": {"direct_domains": [], "retry_after": 30},
            "access_log": {"path": "access.log", "format": "json"},
            "log": {"level": "debug"},
            # Every test gateway has its own monitoring port (the default 2812 is shared).
            "monitoring": {"address": "127.0.0.1", "port": free_port()},
        }
        if overrides:
            deep_merge(self.cfg, overrides)
        self.proc = None
        self.expect_exit = False  # set by wait_exit(): the test itself ended the process
        self.crashes = []  # earlier processes of a shared proxy that died (see revive())
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self._stderr = None
        self._stdout = None
        self.write_config()

    # -- config --------------------------------------------------------------------
    def write_config(self, text=None):
        if text is None:
            text = to_toml(self.cfg)
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)
        return text

    def access_log_path(self):
        return os.path.join(self.state_dir, self.cfg["access_log"]["path"])

    # -- process -------------------------------------------------------------------
    def start(self, timeout=10.0):
        binary = portcullis_bin()
        if not os.path.exists(binary):
            raise unittest.SkipTest("portcullis binary not found at %s (set PORTCULLIS_BIN)" % binary)
        self._stderr = open(self.stderr_path, "wb")
        self._stdout = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen([binary, "run", "-c", self.config_path], stdin=subprocess.DEVNULL,
                                     stdout=self._stdout, stderr=self._stderr, cwd=self.dir)
        deadline = time.monotonic() + timeout
        pending = [(l["address"], l["port"]) for l in self.listeners]
        while pending:
            if self.proc.poll() is not None:
                raise ProxyCrashed("portcullis exited with %s during start-up\n%s"
                                   % (self.proc.returncode, self.stderr_text()))
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("portcullis did not accept on %s within %.0fs\n%s"
                                     % (pending, timeout, self.stderr_text()))
            addr, port = pending[0]
            host = "::1" if ":" in addr else ("127.0.0.1" if addr in ("0.0.0.0",) else addr)
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    pass
                pending.pop(0)
            except OSError:
                time.sleep(0.05)
        return self

    def revive(self):
        """For a proxy shared by a test class: when it is no longer running, remember why
        (stop() reports it at the end) and start a fresh process with the same config so
        the remaining tests still run."""
        if self.proc is None or self.proc.poll() is None:
            return
        rc = self.proc.returncode
        self.crashes.append("portcullis had exited with %s during the tests\n%s" % (rc, self.stderr_text()))
        for f in (self._stderr, self._stdout):
            if f:
                f.close()
        n = len(self.crashes)
        os.replace(self.stderr_path, "%s.%d" % (self.stderr_path, n))
        self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.assert_alive()
        self.proc.send_signal(sig)

    def assert_alive(self):
        if self.proc is None:
            raise AssertionError("portcullis was not started")
        rc = self.proc.poll()
        if rc is not None:
            raise ProxyCrashed("portcullis is no longer running (exit %s)\n%s" % (rc, self.stderr_text()))

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def wait_exit(self, timeout):
        """Waits for the process to exit on its own (after a signal the test sent); returns
        the exit code or None on timeout."""
        self.expect_exit = True
        return self.wait(timeout)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def stop(self, timeout=15.0):
        """SIGTERM and wait; raises if the process crashed (died from a signal) or hung, or
        if a sanitizer reported an error."""
        if self.proc is None:
            return
        try:
            rc = self.proc.poll()
            already_dead = rc is not None
            if not already_dead:
                self.proc.send_signal(signal.SIGTERM)
                rc = self.wait(timeout)
                if rc is None:
                    self.kill()
                    raise AssertionError("portcullis did not exit within %.0fs of SIGTERM\n%s"
                                         % (timeout, self.stderr_text()))
            err = self.stderr_text()
            if rc < 0:
                raise ProxyCrashed("portcullis died from signal %d%s\n%s"
                                   % (-rc, " before the test ended" if already_dead else "", err))
            if already_dead and not self.expect_exit:
                raise ProxyCrashed("portcullis exited on its own with %d before the test ended\n%s" % (rc, err))
            if self.crashes:
                raise ProxyCrashed("\n\n".join(self.crashes))
            for marker in ("AddressSanitizer", "runtime error:", "LeakSanitizer", "ThreadSanitizer"):
                if marker in err:
                    raise AssertionError("sanitizer report in portcullis stderr:\n" + err)
        finally:
            for f in (self._stderr, self._stdout):
                if f:
                    f.close()
            self._stderr = self._stdout = None

    def stderr_text(self, limit=20000):
        try:
            with open(self.stderr_path, "rb") as f:
                data = f.read()
        except OSError:
            return "(no stderr)"
        text = data.decode("utf-8", "replace")
        if len(text) > limit:
            text = "...\n" + text[-limit:]
        return "---- portcullis stderr (%s) ----\n%s\n---- end ----" % (self.stderr_path, text)

    # -- access log ----------------------------------------------------------------
    def access_lines(self, path=None):
        return complete_lines(path or self.access_log_path())

    def access_records(self, path=None):
        recs = []
        for line in self.access_lines(path):
            recs.append(json.loads(line))
        return recs

    def access_matching(self, pred, n=1, timeout=5.0):
        """The access-log records pred accepts, once there are at least n of them (waits,
        bounded); fails with the log's last lines when there are fewer."""
        def find():
            recs = [r for r in self.access_records() if pred(r)]
            return recs if len(recs) >= n else None
        recs = wait_until(find, timeout)
        if not recs:
            raise AssertionError("fewer than %d matching access-log records; last records:\n%s"
                                 % (n, "\n".join(self.access_lines()[-12:])))
        return recs

    def wait_access_records(self, n, timeout=5.0, path=None):
        """Waits until at least n JSON lines exist; returns the parsed records."""
        wait_until(lambda: len(self.access_lines(path)) >= n, timeout)
        return self.access_records(path)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    # -- monitoring listener -------------------------------------------------------
    @property
    def monitoring_port(self):
        return self.cfg["monitoring"]["port"]

    def monitoring_get(self, path, method="GET", timeout=10.0):
        """One request to the monitoring listener; returns a Response (status, fields, body)."""
        s = connect(self.monitoring_port, self.cfg["monitoring"]["address"], timeout)
        try:
            s.sendall(("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % (method, path)).encode())
            return read_response(ConnReader(s, timeout=timeout), method)
        finally:
            s.close()


# ---------------------------------------------------------------------------------------
# Minimal HTTP/1.x reading helpers (used by the origin, the parent and raw clients)

class ConnReader:
    """Buffered reader over a socket with bounded reads."""

    def __init__(self, sock, timeout=10.0):
        self.sock = sock
        self.buf = b""
        self.timeout = timeout
        self.eof = False

    def _fill(self):
        if self.eof:
            return False
        self.sock.settimeout(self.timeout)
        try:
            data = self.sock.recv(262144)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_until(self, delim, limit=1 << 20):
        while delim not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("no %r within %d bytes" % (delim, limit))
            if not self._fill():
                return None
        i = self.buf.index(delim) + len(delim)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        parts = []
        while n > 0:
            if not self.buf and not self._fill():
                raise EOFError("connection closed with %d bytes missing" % n)
            take = self.buf[:n]
            self.buf = self.buf[n:]
            parts.append(take)
            n -= len(take)
        return b"".join(parts)

    def read_all(self, limit=1 << 31):
        parts = [self.buf]
        total = len(self.buf)
        self.buf = b""
        while self._fill():
            parts.append(self.buf)
            total += len(self.buf)
            self.buf = b""
            if total > limit:
                raise ValueError("body longer than %d" % limit)
        return b"".join(parts)


# ---- WebSocket framing (RFC 6455 5.2), for tests that relay it ----

def websocket_accept(key):
    guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    return base64.b64encode(hashlib.sha1((key + guid).encode()).digest()).decode()


def ws_masked(data, mask):
    """data XOR the 4-byte mask, repeated (masking and unmasking alike)."""
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def ws_frame(opcode, data, mask=None):
    """One final frame; mask: 4 bytes for a client's frame, None for a server's."""
    n = len(data)
    head = bytes([0x80 | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + data
    return head + mask + ws_masked(data, mask)


def read_ws_frame(reader):
    """(opcode, payload unmasked) of one frame."""
    b0, b1 = reader.read_exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", reader.read_exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", reader.read_exact(8))[0]
    mask = reader.read_exact(4) if b1 & 0x80 else None
    data = reader.read_exact(n)
    return b0 & 0x0F, ws_masked(data, mask) if mask else data


def parse_head(raw):
    """raw head bytes (ending CRLFCRLF) -> (start line, [(name, value)])."""
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    start = lines[0]
    fields = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        fields.append((name, value.strip(" \t")))
    return start, fields


def get_field(fields, name, default=None):
    for n, v in fields:
        if n.lower() == name.lower():
            return v
    return default


def get_fields(fields, name):
    return [v for n, v in fields if n.lower() == name.lower()]


def read_chunked(reader, max_digits=64):
    """Returns (body, trailer fields)."""
    parts = []
    while True:
        line = reader.read_until(b"\r\n")
        if line is None:
            raise EOFError("eof in chunk size")
        size_s = line[:-2].split(b";", 1)[0].strip()
        size = int(size_s, 16)
        if size == 0:
            trailers = []
            while True:
                tl = reader.read_until(b"\r\n")
                if tl is None:
                    raise EOFError("eof in trailers")
                if tl == b"\r\n":
                    return b"".join(parts), trailers
                n, _, v = tl[:-2].decode("latin-1").partition(":")
                trailers.append((n, v.strip()))
        parts.append(reader.read_exact(size))
        if reader.read_exact(2) != b"\r\n":
            raise ValueError("chunk data not followed by CRLF")


class Response:
    def __init__(self, version, status, reason, fields, body, trailers=(), interim=()):
        self.version = version
        self.status = status
        self.reason = reason
        self.fields = fields
        self.body = body
        self.trailers = list(trailers)
        self.interim = list(interim)  # [(status, fields)] of 1xx responses before this one

    def header(self, name, default=None):
        return get_field(self.fields, name, default)

    def headers(self, name):
        return get_fields(self.fields, name)

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Response %s %d %r %d body bytes>" % (self.version, self.status, self.fields, len(self.body))


def read_response(reader, method="GET", keep_interim=True):
    """Reads one response (skipping and recording 1xx). Returns Response, or None on a
    clean EOF before any byte."""
    interim = []
    while True:
        raw = reader.read_until(b"\r\n\r\n", limit=1 << 20)
        if raw is None:
            if not reader.buf and not interim:
                return None
            raise EOFError("eof inside a response head: %r" % reader.buf[:200])
        start, fields = parse_head(raw)
        m = re.match(r"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", start)
        if not m:
            raise ValueError("bad status line %r" % start)
        version, status, reason = m.group(1), int(m.group(2)), m.group(3) or ""
        if 100 <= status < 200 and status != 101:
            interim.append((status, fields))
            continue
        break
    te = get_field(fields, "Transfer-Encoding")
    cl = get_field(fields, "Content-Length")
    trailers = []
    if method == "HEAD" or status in (204, 304) or (method == "CONNECT" and 200 <= status < 300):
        body = b""
    elif te is not None and te.lower().split(",")[-1].strip() == "chunked":
        body, trailers = read_chunked(reader)
    elif cl is not None:
        body = reader.read_exact(int(cl))
    else:
        body = reader.read_all()
    return Response(version, status, reason, fields, body, trailers, interim)


# ---------------------------------------------------------------------------------------
# Origin server

class OriginRequest:
    def __init__(self, conn_id, method, target, version, fields, body, trailers, chunked, raw_head):
        self.conn_id = conn_id
        self.method = method
        self.target = target
        self.version = version
        self.fields = fields
        self.body = body
        self.trailers = trailers
        self.chunked = chunked
        self.raw_head = raw_head

    def header(self, name, default=None):
        return get_field(self.fields, name, default)

    def headers(self, name):
        return get_fields(self.fields, name)

    def as_json(self):
        return {
            "conn_id": self.conn_id,
            "method": self.method,
            "target": self.target,
            "version": self.version,
            "headers": [[n, v] for n, v in self.fields],
            "body_len": len(self.body),
            "body_sha256": sha256(self.body),
            "body": self.body.decode("latin-1") if len(self.body) <= 4096 else None,
            "trailers": [[n, v] for n, v in self.trailers],
            "chunked": self.chunked,
        }


class _TCPServerBase:
    """Threaded accept loop with bookkeeping; subclasses implement handle(sock, conn_id)."""

    def __init__(self, host="127.0.0.1", port=0, tls_context=None):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.host = host
        self.tls_context = tls_context
        self.lsock = socket.socket(fam, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(128)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.accepted = 0
        self.peers = []
        self.errors = []
        self._conns = set()
        self._stop = threading.Event()
        self._threads = []
        self._t = threading.Thread(target=self._accept_loop, daemon=True)
        self._t.start()

    @property
    def authority(self):
        return ("[%s]:%d" if ":" in self.host else "%s:%d") % (self.host, self.port)

    def url(self, path="/"):
        scheme = "https" if self.tls_context else "http"
        return "%s://%s%s" % (scheme, self.authority, path)

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                sock, peer = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            with self.lock:
                self.accepted += 1
                conn_id = self.accepted
                self.peers.append(peer)
                self._conns.add(sock)
            t = threading.Thread(target=self._run, args=(sock, conn_id), daemon=True)
            self._threads.append(t)
            t.start()

    def _run(self, sock, conn_id):
        try:
            if self.tls_context is not None:
                sock.settimeout(10)
                tsock = self.tls_context.wrap_socket(sock, server_side=True)
                with self.lock:
                    self._conns.discard(sock)
                    self._conns.add(tsock)
                sock = tsock
            self.handle(sock, conn_id)
        except (OSError, EOFError, ValueError, ssl.SSLError) as e:
            if not self._stop.is_set():
                with self.lock:
                    self.errors.append(repr(e))
        finally:
            with self.lock:
                self._conns.discard(sock)
            try:
                sock.close()
            except OSError:
                pass

    def close(self):
        self._stop.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass
        self._t.join(2)
        for t in self._threads:
            t.join(1)


class OriginServer(_TCPServerBase):
    """HTTP/1.1 origin. Routes (path, query parameters):
      /echo                JSON of the received request (method, target, headers, body sha...)
      /bytes?n=N           N payload bytes with Content-Length; X-Body-Sha256 header
      /chunked?n=N&trailer=1   N payload bytes chunked (varying sizes), trailer X-Trailer
      /close?n=N           N bytes, no length, HTTP/1.1 with Connection: close, close after
      /close10?n=N         the same as an HTTP/1.0 response
      /slow?n=N&secs=S     N bytes with Content-Length, spread over S seconds
      /status?code=C&cl=N  a response with status C (204/304: no body; for HEAD: Content-Length N)
      /info1xx             103 Early Hints then 200 with a small body
      /hopresp             response carrying hop-by-hop fields (Connection: X-Resp-Hop, ...)
      /hang                reads the request and never answers (until the peer closes)
      /garbage             a garbage status line, then close
      /clte                response with both Content-Length and Transfer-Encoding
      /dupcl               response with two different Content-Length fields
    Every request (after its body was read) is appended to .requests.
    Expect: 100-continue is answered with 100 Continue before reading the body (unless
    the query has nocontinue=1)."""

    def __init__(self, host="127.0.0.1", port=0, tls_context=None):
        self.requests = []
        self.heads = []  # every request head seen, even if the body never completed
        super().__init__(host, port, tls_context)

    def handle(self, sock, conn_id):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) if not isinstance(sock, ssl.SSLSocket) else None
        reader = ConnReader(sock, timeout=30)
        while not self._stop.is_set():
            raw = reader.read_until(b"\r\n\r\n", limit=1 << 20)
            if raw is None:
                return
            start, fields = parse_head(raw)
            parts = start.split(" ")
            if len(parts) != 3:
                sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            method, target, version = parts
            with self.lock:
                self.heads.append((conn_id, method, target, fields))
            path, _, qs = target.partition("?")
            if path.startswith("http://") or path.startswith("https://"):
                path = urllib.parse.urlsplit(path).path or "/"
            q = dict(urllib.parse.parse_qsl(qs))
            te = get_field(fields, "Transfer-Encoding")
            cl = get_field(fields, "Content-Length")
            expect = get_field(fields, "Expect", "")
            if expect.lower() == "100-continue" and q.get("nocontinue") != "1":
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            trailers = []
            chunked = False
            if te is not None and "chunked" in te.lower():
                body, trailers = read_chunked(reader)
                chunked = True
            elif cl is not None:
                body = reader.read_exact(int(cl))
            else:
                body = b""
            req = OriginRequest(conn_id, method, target, version, fields, body, trailers, chunked, raw)
            with self.lock:
                self.requests.append(req)
            conn_hdr = (get_field(fields, "Connection") or "").lower()
            keep = version == "HTTP/1.1" and "close" not in conn_hdr
            if version == "HTTP/1.0" and "keep-alive" in conn_hdr:
                keep = True
            if not self.respond(sock, reader, req, path, q, keep):
                return
            if not keep:
                return

    def respond(self, sock, reader, req, path, q, keep):
        """Writes the response; returns False when the connection must close."""
        ka = b"" if keep else b"Connection: close\r\n"
        if path == "/echo":
            body = json.dumps(req.as_json()).encode()
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
                         % (len(body), ka) + body)
            return True
        if path == "/bytes":
            n = int(q.get("n", "1000"))
            data = payload(n)
            head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n"
                    b"X-Body-Sha256: %s\r\n%s\r\n" % (n, payload_sha(n).encode(), ka))
            if req.method == "HEAD":
                sock.sendall(head)
            else:
                sock.sendall(head)
                view = memoryview(data)
                for i in range(0, n, 1 << 20):
                    sock.sendall(view[i:i + (1 << 20)])
            return True
        if path == "/chunked":
            n = int(q.get("n", "1000"))
            data = payload(n)
            out = [b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n"
                   b"X-Body-Sha256: %s\r\n" % payload_sha(n).encode()]
            if q.get("trailer"):
                out.append(b"Trailer: X-Trailer\r\n")
            out.append(ka + b"\r\n")
            sock.sendall(b"".join(out))
            if req.method == "HEAD":
                return True
            sizes = [1, 7, 100, 4096, 65536, 3, 100000]
            i = k = 0
            while i < n:
                sz = min(sizes[k % len(sizes)], n - i)
                k += 1
                sock.sendall(b"%x\r\n" % sz + data[i:i + sz] + b"\r\n")
                i += sz
            tail = b"0\r\n"
            if q.get("trailer"):
                tail += b"X-Trailer: done\r\n"
            sock.sendall(tail + b"\r\n")
            return True
        if path in ("/close", "/close10"):
            n = int(q.get("n", "1000"))
            ver = b"HTTP/1.0" if path == "/close10" else b"HTTP/1.1"
            sock.sendall(ver + b" 200 OK\r\nContent-Type: application/octet-stream\r\nX-Body-Sha256: %s\r\n"
                         b"Connection: close\r\n\r\n" % payload_sha(n).encode())
            if req.method != "HEAD":
                data = payload(n)
                for i in range(0, n, 65536):
                    sock.sendall(data[i:i + 65536])
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return False
        if path == "/slow":
            n = int(q.get("n", "100000"))
            secs = float(q.get("secs", "2"))
            steps = int(q.get("steps", "10"))
            data = payload(n)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n"
                         b"X-Body-Sha256: %s\r\n%s\r\n" % (n, payload_sha(n).encode(), ka))
            per = -(-n // steps)
            for i in range(0, n, per):
                if self._stop.is_set():
                    return False
                sock.sendall(data[i:i + per])
                time.sleep(secs / steps)
            return True
        if path == "/status":
            code = int(q.get("code", "200"))
            cl = int(q.get("cl", "0"))
            reasons = {204: b"No Content", 304: b"Not Modified", 200: b"OK", 404: b"Not Found"}
            head = b"HTTP/1.1 %d %s\r\nETag: \"e2e\"\r\n" % (code, reasons.get(code, b"Whatever"))
            if code in (204, 304):
                sock.sendall(head + ka + b"\r\n")
            elif req.method == "HEAD":
                sock.sendall(head + b"Content-Length: %d\r\n%s\r\n" % (cl, ka))
            else:
                body = payload(cl)
                sock.sendall(head + b"Content-Length: %d\r\n%s\r\n" % (cl, ka) + body)
            return True
        if path == "/info1xx":
            body = b"after early hints"
            sock.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            time.sleep(0.05)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), ka) + body)
            return True
        if path == "/hopresp":
            body = b"hop"
            sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: X-Resp-Hop\r\nX-Resp-Hop: secret\r\n"
                         b"Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic realm=\"x\"\r\nX-End: kept\r\n"
                         b"Content-Length: %d\r\n%s\r\n" % (len(body), ka) + body)
            return True
        if path == "/hang":
            deadline = time.monotonic() + 30
            sock.settimeout(0.2)
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    if not sock.recv(4096):
                        break
                except socket.timeout:
                    continue
            return False
        if path == "/websocket":
            return self.websocket(sock, reader, req, q, ka)
        if path == "/garbage":
            sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
            return False
        if path == "/clte":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5\r\nhello\r\n0\r\n\r\n")
            return False
        if path == "/dupcl":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
            return False
        body = b"not found"
        sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n%s\r\n" % (len(body), ka) + body)
        return True

    def websocket(self, sock, reader, req, q, ka):
        """/websocket: an echo server after the opening handshake (RFC 6455 4.2.2); without
        one, 426 with the request as JSON. q: proto=P answers 101 with Upgrade: P instead;
        force=1 answers 101 even without a handshake."""
        key = req.header("Sec-WebSocket-Key", "")
        asked = ("upgrade" in (req.header("Connection") or "").lower()
                 and "websocket" in (req.header("Upgrade") or "").lower() and key)
        if not asked and q.get("force") != "1":
            body = json.dumps(req.as_json()).encode()
            sock.sendall(b"HTTP/1.1 426 Upgrade Required\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n%s\r\n" % (len(body), ka) + body)
            return True
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: %s\r\n\r\n"
                     % (q.get("proto", "websocket").encode(), websocket_accept(key).encode()))
        while True:
            opcode, data = read_ws_frame(reader)
            sock.sendall(ws_frame(opcode, data))  # echoed unmasked, as a server sends
            if opcode == 8:  # close
                return False

    def complete_requests(self):
        with self.lock:
            return list(self.requests)

    def last(self):
        with self.lock:
            return self.requests[-1] if self.requests else None


# ---------------------------------------------------------------------------------------
# TLS

def make_cert(directory, names=("localhost", "*.e2e.test"), ips=("127.0.0.1", "::1")):
    """Self-signed certificate + key via openssl; returns (cert_path, key_path)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    san = ",".join(["DNS:" + n for n in names] + ["IP:" + i for i in ips])
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=" + san],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl failed: " + r.stderr.decode(errors="replace"))
    return cert, key


def _openssl(*args):
    r = subprocess.run(["openssl"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], r.stderr.decode(errors="replace")))


def make_pki(directory, name="ca"):
    """A test CA (EC P-256) that signs a server certificate for localhost / 127.0.0.1 / ::1
    and a client certificate (CN=gateway). Returns {"ca", "server_cert", "server_key",
    "client_cert", "client_key"} (paths in directory, prefixed with name)."""
    out = {k: os.path.join(directory, "%s-%s.pem" % (name, k))
           for k in ("ca", "ca_key", "server_cert", "server_key", "client_cert", "client_key")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", out["ca_key"], "-out", out["ca"], "-days", "2",
             "-subj", "/CN=Portcullis test CA %s" % name, "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for who, subj, ext in (("server", "/CN=localhost",
                            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n"),
                           ("client", "/CN=gateway", "extendedKeyUsage=clientAuth\n")):
        csr = os.path.join(directory, "%s-%s.csr" % (name, who))
        extfile = os.path.join(directory, "%s-%s.ext" % (name, who))
        with open(extfile, "w") as f:
            f.write(ext)
        _openssl("req", *ec, "-keyout", out[who + "_key"], "-out", csr, "-subj", subj)
        _openssl("x509", "-req", "-in", csr, "-CA", out["ca"], "-CAkey", out["ca_key"], "-CAcreateserial",
                 "-out", out[who + "_cert"], "-days", "2", "-extfile", extfile)
    return out


def server_tls_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def client_tls_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    return ctx


# ---------------------------------------------------------------------------------------
# Fake DNS (UDP)

class FakeDNS:
    """rules: {name: action} with action one of
         "127.0.0.1" (any IPv4 literal: an A answer; AAAA gets NOERROR without data),
         "NXDOMAIN", "REFUSED", "SERVFAIL", "DROP" (never answer).
       A rule key starting with "*." also matches every subdomain. Unknown names: NXDOMAIN."""

    def __init__(self, rules, host="127.0.0.1"):
        self.rules = {k.lower().rstrip("."): v for k, v in rules.items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.server = "%s:%d" % (host, self.port)
        self.queries = []  # (name, qtype)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def action(self, name):
        name = name.lower().rstrip(".")
        if name in self.rules:
            return self.rules[name]
        parts = name.split(".")
        for i in range(1, len(parts)):
            wild = "*." + ".".join(parts[i:])
            if wild in self.rules:
                return self.rules[wild]
        return "NXDOMAIN"

    def names_queried(self):
        with self.lock:
            return [q[0] for q in self.queries]

    def _loop(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            try:
                resp = self._answer(data)
            except Exception as e:  # malformed query: ignore
                resp = None
            if resp is not None:
                try:
                    self.sock.sendto(resp, peer)
                except OSError:
                    pass

    def _answer(self, data):
        qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", data[:12])
        i = 12
        labels = []
        while True:
            ln = data[i]
            i += 1
            if ln == 0:
                break
            labels.append(data[i:i + ln].decode("ascii", "replace"))
            i += ln
        qtype, qclass = struct.unpack("!HH", data[i:i + 4])
        question = data[12:i + 4]
        name = ".".join(labels)
        with self.lock:
            self.queries.append((name.lower(), qtype))
        act = self.action(name)
        rd = flags & 0x0100
        if act == "DROP":
            return None
        rcode = {"NXDOMAIN": 3, "REFUSED": 5, "SERVFAIL": 2}.get(act, 0)
        answers = b""
        count = 0
        if rcode == 0 and qtype == 1 and qclass == 1:
            try:
                addr = socket.inet_aton(act)
            except OSError:
                addr = None
            if addr:
                answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + addr
                count = 1
        rflags = 0x8000 | 0x0400 | rd | 0x0080 | rcode  # QR, AA, RD copy, RA
        return struct.pack("!HHHHHH", qid, rflags, 1, count, 0, 0) + question + answers

    def close(self):
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        self._t.join(2)


# ---------------------------------------------------------------------------------------
# Fake parent proxy

class FakeParent(_TCPServerBase):
    """A parent proxy. Absolute-form requests are answered by the parent itself with JSON
    describing what it received ({"parent": name, "method", "target", "headers", ...}).
    CONNECT host:port is answered 200 and relayed to 127.0.0.1:port (the host is recorded
    but never resolved). Every request head is recorded in .requests as
    (method, target, fields)."""

    def __init__(self, name="parent", host="127.0.0.1"):
        self.name = name
        self.requests = []
        super().__init__(host, 0)

    def handle(self, sock, conn_id):
        reader = ConnReader(sock, timeout=30)
        while True:
            raw = reader.read_until(b"\r\n\r\n")
            if raw is None:
                return
            start, fields = parse_head(raw)
            method, target, version = start.split(" ", 2)
            with self.lock:
                self.requests.append((method, target, fields))
            if method == "CONNECT":
                port = int(target.rsplit(":", 1)[1])
                try:
                    up = socket.create_connection(("127.0.0.1", port), timeout=5)
                except OSError:
                    sock.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    return
                sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if reader.buf:
                    up.sendall(reader.buf)
                    reader.buf = b""
                relay(sock, up)
                return
            te = get_field(fields, "Transfer-Encoding")
            cl = get_field(fields, "Content-Length")
            if te and "chunked" in te.lower():
                body, _ = read_chunked(reader)
            elif cl:
                body = reader.read_exact(int(cl))
            else:
                body = b""
            out = json.dumps({"parent": self.name, "method": method, "target": target, "version": version,
                              "headers": [[n, v] for n, v in fields], "body_len": len(body)}).encode()
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Parent: %s\r\n"
                         b"Content-Length: %d\r\n\r\n" % (self.name.encode(), len(out)) + out)

    def recorded(self):
        with self.lock:
            return list(self.requests)


def relay(a, b, idle=30):
    """Copies bytes both ways between sockets a and b until both directions end."""
    socks = [a, b]
    open_dirs = {a: b, b: a}
    try:
        while open_dirs:
            r, _, _ = select.select(list(open_dirs), [], [], idle)
            if not r:
                break
            for s in r:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                peer = open_dirs.get(s)
                if peer is None:
                    continue
                if data:
                    try:
                        peer.sendall(data)
                    except OSError:
                        return
                else:
                    del open_dirs[s]
                    try:
                        peer.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
    finally:
        for s in socks:
            try:
                s.close()
            except OSError:
                pass


# ---------------------------------------------------------------------------------------
# Raw client helpers

def connect(port, host="127.0.0.1", timeout=10.0):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def raw_exchange(port, data, host="127.0.0.1", method="GET", timeout=10.0):
    """Sends data on a new connection and reads one response. Returns (Response or None,
    rest) where rest is whatever followed the response until close (bounded)."""
    s = connect(port, host, timeout)
    try:
        s.sendall(data)
        reader = ConnReader(s, timeout=timeout)
        resp = read_response(reader, method)
        return resp, reader
    finally:
        pass


def is_closed(sock, timeout=3.0):
    """True when the peer closes (or resets) the connection within timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            d = sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        except OSError:
            return True
        if not d:
            return True
    return False


# ---------------------------------------------------------------------------------------
# Base test case

class PortcullisTestCase(unittest.TestCase):
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(portcullis_bin()):
            if os.environ.get("PORTCULLIS_BIN"):
                raise AssertionError("PORTCULLIS_BIN=%s does not exist" % portcullis_bin())
            raise unittest.SkipTest("portcullis binary not found at %s (set PORTCULLIS_BIN)" % portcullis_bin())
        cls.workdir = tempfile.mkdtemp(prefix="pc-e2e-")
        cls.addClassCleanup(shutil.rmtree, cls.workdir, True)

    def tearDown(self):
        # a proxy shared by the class must survive every test; the test that ended it fails
        p = getattr(type(self), "p", None)
        if isinstance(p, Proxy) and p.proc is not None and not p.expect_exit and p.proc.poll() is not None:
            self.fail("portcullis died during this test (exit %s)\n%s" % (p.proc.returncode, p.stderr_text()))

    # -- servers -------------------------------------------------------------------
    def origin(self, host="127.0.0.1", tls_context=None):
        o = OriginServer(host, 0, tls_context)
        self.addCleanup(o.close)
        return o

    def fake_dns(self, rules):
        d = FakeDNS(rules)
        self.addCleanup(d.close)
        return d

    def parent(self, name="parent"):
        p = FakeParent(name)
        self.addCleanup(p.close)
        return p

    def tls_files(self):
        d = tempfile.mkdtemp(prefix="tls-", dir=self.workdir)
        return make_cert(d)

    def proxy(self, overrides=None, listeners=None, start=True):
        p = Proxy(self.workdir, overrides, listeners)
        self.addCleanup(p.stop)
        if start:
            p.start()
        return p

    @classmethod
    def class_proxy(cls, overrides=None, listeners=None):
        p = Proxy(cls.workdir, overrides, listeners)
        cls.addClassCleanup(p.stop)
        p.start()
        return p

    @classmethod
    def class_origin(cls, host="127.0.0.1", tls_context=None):
        o = OriginServer(host, 0, tls_context)
        cls.addClassCleanup(o.close)
        return o

    # -- clients -------------------------------------------------------------------
    def curl(self, *args, timeout=60, check=True, input=None, env=None):
        """Runs curl -sS with args; returns CompletedProcess (stdout bytes)."""
        cmd = ["curl", "-sS", "--max-time", str(int(timeout) - 5 if timeout > 10 else timeout)] + list(args)
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           env=env or clean_env(), input=input)
        if check and r.returncode != 0:
            self.fail("curl failed (%d): %s\nstderr: %s" % (r.returncode, " ".join(cmd),
                                                            r.stderr.decode(errors="replace")))
        return r

    def curl_status(self, *args, timeout=30):
        """Runs curl and returns (status, body bytes, headers text)."""
        d = tempfile.mkdtemp(prefix="curl-", dir=self.workdir)
        hdr = os.path.join(d, "h")
        body = os.path.join(d, "b")
        r = self.curl("-D", hdr, "-o", body, *args, timeout=timeout, check=False)
        try:
            with open(hdr, "rb") as f:
                h = f.read().decode("latin-1")
        except OSError:
            h = ""
        try:
            with open(body, "rb") as f:
                b = f.read()
        except OSError:
            b = b""
        statuses = re.findall(r"^HTTP/\S+ (\d{3})", h, re.M)
        if not statuses:
            self.fail("curl got no response (rc %d): %s\n%s" % (r.returncode, args, r.stderr.decode(errors="replace")))
        return int(statuses[-1]), b, h

    def raw(self, port, data, host="127.0.0.1", method="GET", timeout=10.0):
        """Sends raw bytes, returns the first Response (or None if closed without one)."""
        s = connect(port, host, timeout)
        self.addCleanup(s.close)
        reader = ConnReader(s, timeout=timeout)
        try:
            s.sendall(data)
            return read_response(reader, method)
        except (ConnectionResetError, BrokenPipeError, EOFError):
            return None
        except socket.timeout:
            self.fail("no complete response within %.0fs to %r" % (timeout, data[:300]))

    def assertNoOriginRequest(self, origin, before=0, settle=0.5, marker=None):
        """No request head reached origin: none beyond the first `before`, or (with marker)
        none whose target contains marker."""
        time.sleep(settle)
        with origin.lock:
            heads = list(origin.heads)
        if marker is not None:
            bad = [hd for hd in heads if marker in hd[2]]
            self.assertEqual(bad, [], "the origin received a request it must not have")
            return
        self.assertEqual(len(heads), before, "the origin received a request it must not have: %r"
                         % (heads[before:],))


def main():
    unittest.main(verbosity=2)


# ---------------------------------------------------------------------------------------
# ICAP (RFC 3507) client pieces: building requests, reading responses

def icap_chunked(data, size=16384):
    """data as ICAP/HTTP chunks of at most `size` bytes, without the last chunk."""
    return b"".join(b"%x\r\n" % len(data[i:i + size]) + data[i:i + size] + b"\r\n"
                    for i in range(0, len(data), size))


def icap_last_chunk(ieof=False):
    return b"0; ieof\r\n\r\n" if ieof else b"0\r\n\r\n"


def icap_head(method, uri, fields=(), req_hdr=None, res_hdr=None, body_kind=None, host="127.0.0.1"):
    """An ICAP request head followed by the encapsulated HTTP heads (bytes, each ending
    CRLFCRLF). Encapsulated is computed: req-hdr and res-hdr at their offsets, then
    body_kind ("req-body", "res-body", "null-body" or "opt-body"; default: "null-body").
    fields: [(name, value)] added after Host."""
    parts = []
    enc = []
    off = 0
    for name, head in (("req-hdr", req_hdr), ("res-hdr", res_hdr)):
        if head is not None:
            enc.append("%s=%d" % (name, off))
            parts.append(head)
            off += len(head)
    enc.append("%s=%d" % (body_kind or "null-body", off))
    lines = ["%s %s ICAP/1.0" % (method, uri), "Host: %s" % host]
    lines += ["%s: %s" % (n, v) for n, v in fields]
    lines.append("Encapsulated: " + ", ".join(enc))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + b"".join(parts)


def http_request_head(method, url, fields=()):
    """An HTTP/1.1 request head for encapsulation (absolute-form target)."""
    host = urllib.parse.urlsplit(url).netloc
    lines = ["%s %s HTTP/1.1" % (method, url), "Host: %s" % host]
    lines += ["%s: %s" % (n, v) for n, v in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def http_response_head(status=200, fields=(("Content-Type", "text/plain"),), reason="OK"):
    lines = ["HTTP/1.1 %d %s" % (status, reason)] + ["%s: %s" % (n, v) for n, v in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class IcapResponse:
    """One ICAP response. heads: {"req-hdr"|"res-hdr": raw HTTP head bytes}; body: the
    decoded encapsulated body (None when the response has none)."""

    def __init__(self, version, status, reason, fields, encapsulated, heads, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.fields = fields
        self.encapsulated = encapsulated  # [(entity, offset)]
        self.heads = heads
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        return get_field(self.fields, name, default)

    def headers(self, name):
        return get_fields(self.fields, name)

    def http(self, entity=None):
        """(start line, [(name, value)]) of the encapsulated res-hdr (else req-hdr), or None."""
        raw = self.heads.get(entity) if entity else (self.heads.get("res-hdr") or self.heads.get("req-hdr"))
        return parse_head(raw) if raw else None

    def http_status(self):
        h = self.heads.get("res-hdr")
        if not h:
            return None
        m = re.match(rb"^HTTP/\d\.\d (\d{3})", h)
        return int(m.group(1)) if m else None

    def http_header(self, name, entity=None):
        parsed = self.http(entity)
        return get_field(parsed[1], name) if parsed else None

    def __repr__(self):
        return "<IcapResponse %s %d %r heads=%s body=%s>" % (
            self.version, self.status, self.fields, {k: len(v) for k, v in self.heads.items()},
            None if self.body is None else len(self.body))


def parse_encapsulated(value):
    out = []
    for item in value.split(","):
        name, _, off = item.strip().partition("=")
        out.append((name.strip().lower(), int(off.strip())))
    return out


def read_icap_response(reader, head_limit=1 << 20):
    """Reads one ICAP response (a 100 Continue is returned as it is, with no body). Returns
    IcapResponse, or None on a clean EOF before any byte."""
    raw = reader.read_until(b"\r\n\r\n", limit=head_limit)
    if raw is None:
        if not reader.buf:
            return None
        raise EOFError("eof inside an ICAP response head: %r" % reader.buf[:200])
    start, fields = parse_head(raw)
    m = re.match(r"^(ICAP/\d\.\d) (\d{3})(?: (.*))?$", start)
    if not m:
        raise ValueError("bad ICAP status line %r" % start)
    version, status, reason = m.group(1), int(m.group(2)), m.group(3) or ""
    enc_v = get_field(fields, "Encapsulated")
    enc = parse_encapsulated(enc_v) if enc_v else []
    heads = {}
    body = None
    if status != 100 and enc:
        total = enc[-1][1]
        blob = reader.read_exact(total) if total else b""
        for i, (name, off) in enumerate(enc[:-1]):
            end = enc[i + 1][1]
            heads[name] = blob[off:end]
        last = enc[-1][0]
        if last in ("req-body", "res-body", "opt-body"):
            body, _ = read_chunked(reader)
    return IcapResponse(version, status, reason, fields, enc, heads, body, raw)


# ---------------------------------------------------------------------------------------
# Squid as an ICAP client (foreground, its own folder, never the system instance)

SQUID_BIN = "/usr/sbin/squid"


def squid_has_openssl(binary=SQUID_BIN):
    try:
        out = subprocess.run([binary, "-v"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=10).stdout.decode(errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--with-openssl" in out


class SquidServer:
    """One `squid -N -f conf` on 127.0.0.1:<free port> with a generated config in its own
    world-readable temp folder (Squid started as root switches to the `proxy` user, which
    must reach its logs). `lines` are appended to the base config (icap_service,
    adaptation_access, auth...); "{dir}" in them is the Squid folder (copy_in() files there
    before start()). `hosts` ({name: address}) become Squid's hosts_file, so
    test names resolve without DNS. start() waits until the port accepts; wait_ready(url)
    until a request through it succeeds."""

    BASE = """http_port 127.0.0.1:{port}
workers 1
pid_filename {d}/squid.pid
cache_log {d}/cache.log
access_log stdio:{d}/access.log squid
cache_store_log none
coredump_dir {d}
cache deny all
cache_mem 8 MB
maximum_object_size_in_memory 64 KB
shutdown_lifetime 1 seconds
logfile_rotate 0
netdb_filename none
pinger_enable off
dns_nameservers 127.0.0.1
hosts_file {d}/hosts
forwarded_for on
"""

    def __init__(self, lines, hosts=None, binary=SQUID_BIN):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="pc-squid-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.conf_path = os.path.join(self.dir, "squid.conf")
        with open(os.path.join(self.dir, "hosts"), "w") as f:
            f.write("127.0.0.1 localhost\n")
            for name, addr in (hosts or {}).items():
                f.write("%s %s\n" % (addr, name))
        extra = "\n".join(line.replace("{dir}", self.dir) for line in lines)
        self.text = self.BASE.format(port=self.port, d=self.dir) + extra + "\n"
        with open(self.conf_path, "w") as f:
            f.write(self.text)
        self.proc = None
        self._out = None

    def copy_in(self, path):
        """Copies a file into the Squid folder (readable by Squid's user); returns the copy."""
        dst = os.path.join(self.dir, os.path.basename(path))
        shutil.copyfile(path, dst)
        os.chmod(dst, 0o644)
        return dst

    def start(self, timeout=20.0):
        if not os.path.exists(self.binary):
            raise unittest.SkipTest("squid not installed at %s" % self.binary)
        if os.geteuid() == 0:
            try:
                import pwd
                ent = pwd.getpwnam("proxy")
                for root, dirs, files in os.walk(self.dir):
                    for n in [root] + [os.path.join(root, x) for x in files]:
                        os.chown(n, ent.pw_uid, ent.pw_gid)
            except KeyError:
                pass
        self._out = open(os.path.join(self.dir, "stdout.log"), "wb")
        self.proc = subprocess.Popen([self.binary, "-N", "-f", self.conf_path], stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT, cwd=self.dir)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("squid exited with %s during start-up\n%s"
                                     % (self.proc.returncode, self.log_text()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("squid did not accept on %d within %.0fs\n%s"
                                     % (self.port, timeout, self.log_text()))
            time.sleep(0.1)

    def wait_ready(self, url, timeout=30.0, curl_args=()):
        """Waits until `curl -x squid url` answers 200 (Squid fetched the ICAP OPTIONS and
        the services are up); returns True, or False after timeout."""
        def ok():
            if self.proc.poll() is not None:
                return True
            r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                                "-x", self.proxy_url] + list(curl_args) + [url],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10, env=clean_env())
            return r.stdout.strip() == b"200"
        done = wait_until(ok, timeout, 0.3)
        if self.proc.poll() is not None:
            raise AssertionError("squid exited with %s\n%s" % (self.proc.returncode, self.log_text()))
        return bool(done)

    @property
    def proxy_url(self):
        return "http://127.0.0.1:%d" % self.port

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self, limit=8000):
        out = []
        for name in ("stdout.log", "cache.log"):
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    t = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            if len(t) > limit:
                t = "...\n" + t[-limit:]
            out.append("---- squid %s ----\n%s" % (name, t))
        return "\n".join(out) or "(no squid logs)"

    def stop(self, timeout=15.0):
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    try:
                        self.proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        pass
        finally:
            if self._out:
                self._out.close()
                self._out = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, True)


# ---------------------------------------------------------------------------------------
# rsyslog as a syslog receiver (foreground, its own folder and config, never the system one)

RSYSLOGD = "/usr/sbin/rsyslogd"


class Rsyslog:
    """One `rsyslogd -n -f conf -i pidfile` with a single input on 127.0.0.1:<free port>:
    transport "udp", "tcp" (octet counting or not, as rsyslog detects) or "tls" (the
    rsyslog-openssl driver; pki from make_pki(); client_auth: clients must present a
    certificate from that CA). Every message received becomes one JSON line in self.out with
    what rsyslog parsed: pri, facility, severity, hostname, app, procid, msgid, timestamp,
    sd (the RFC 5424 structured data as parsed by mmpstrucdata: {sd-id: {name: value}}),
    msg and raw. stop() then start() again keeps the port (a receiver restarted)."""

    def __init__(self, workdir, transport, pki=None, client_auth=False):
        self.transport = transport
        self.dir = tempfile.mkdtemp(prefix="rsyslog-%s-" % transport, dir=workdir)
        self.port = free_port() if transport != "udp" else self._free_udp_port()
        self.out = os.path.join(self.dir, "received.jsonl")
        self.conf = os.path.join(self.dir, "rsyslog.conf")
        self.pidfile = os.path.join(self.dir, "rsyslogd.pid")
        self.log_path = os.path.join(self.dir, "rsyslogd.log")
        self.proc = None
        tls_global = ""
        module = ""
        if transport == "udp":
            module = 'module(load="imudp")'
            inp = 'input(type="imudp" address="127.0.0.1" port="%d" ruleset="r")' % self.port
        else:
            if transport == "tls":
                tls_global = ('DefaultNetstreamDriverCAFile="%s" DefaultNetstreamDriverCertFile="%s" '
                              'DefaultNetstreamDriverKeyFile="%s"'
                              % (pki["ca"], pki["server_cert"], pki["server_key"]))
                module = ('module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1" '
                          'StreamDriver.AuthMode="%s")' % ("x509/certvalid" if client_auth else "anon"))
            else:
                module = 'module(load="imtcp")'
            inp = 'input(type="imtcp" address="127.0.0.1" port="%d" ruleset="r")' % self.port
        text = """global(workDirectory="{d}" maxMessageSize="64k" {tls})
{module}
module(load="mmpstrucdata")
template(name="jsonl" type="list" option.jsonf="on") {{
  property(outname="pri" name="pri" format="jsonf")
  property(outname="facility" name="syslogfacility" format="jsonf")
  property(outname="severity" name="syslogseverity" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="sd" name="$!rfc5424-sd" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="raw" name="rawmsg" format="jsonf")
}}
ruleset(name="r") {{
  action(type="mmpstrucdata")
  action(type="omfile" file="{out}" template="jsonl")
}}
{inp}
""".format(d=self.dir, tls=tls_global, module=module, out=self.out, inp=inp)
        with open(self.conf, "w") as f:
            f.write(text)

    @staticmethod
    def _free_udp_port():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def _listening(self):
        if self.transport == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.bind(("127.0.0.1", self.port))
                    return False
                except OSError:
                    return True
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def start(self, timeout=20.0):
        if not os.path.exists(RSYSLOGD):
            raise unittest.SkipTest("rsyslogd not installed (Debian package rsyslog)")
        if os.path.exists(self.pidfile):
            os.unlink(self.pidfile)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([RSYSLOGD, "-n", "-f", self.conf, "-i", self.pidfile],
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     cwd=self.dir)
        deadline = time.monotonic() + timeout
        while not self._listening():
            if self.proc.poll() is not None:
                raise AssertionError("rsyslogd exited with %s\n%s" % (self.proc.returncode, self.log_text()))
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("rsyslogd did not listen on %d within %.0fs\n%s"
                                     % (self.port, timeout, self.log_text()))
            time.sleep(0.05)
        return self

    def stop(self, timeout=15.0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        self._log.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def records(self):
        """The messages received so far (parsed; sd decoded), in the order written."""
        recs = []
        for line in complete_lines(self.out):
            r = json.loads(line)
            r["sd"] = json.loads(r["sd"]) if r.get("sd") else {}
            recs.append(r)
        return recs

    def wait_records(self, n, timeout=30.0):
        """Waits until at least n messages arrived; returns them all."""
        wait_until(lambda: len(self.records()) >= n, timeout, 0.1)
        return self.records()

    def log_text(self, limit=8000):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return "(no rsyslogd log)"
        return "---- rsyslogd log (%s) ----\n%s\n---- end ----" % (self.log_path, text[-limit:])
