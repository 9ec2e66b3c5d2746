#!/usr/bin/env python3
"""Collects the benchmark's measurements and renders bench/RESULTS.md. Used by bench/run.sh.

  report.py wrk TARGET SIZE CONNS WRK_OUT PROCMON_JSON JSONL
  report.py tunnel TARGET CONNS LOADGEN_OUT PROCMON_JSON JSONL
  report.py idle TARGET CONNS LOADGEN_OUT RSS_BEFORE_KB RSS_AFTER_KB JSONL
  report.py status TARGET STATE MESSAGE JSONL        (STATE: ok | failed | skipped)
  report.py policyinfo STATE MESSAGE START_S_NOPOLICY START_S_POLICY RSS_KB_NOPOLICY
            RSS_KB_POLICY DECISION JSONL             (the with-policy case; "-": unknown)
  report.py render META_TSV JSONL RESULTS_MD
"""
import json
import sys

from results_md import write_section

TARGETS = ["direct", "squid", "tinyproxy", "portcullis"]
NAMES = {"direct": "direct (nginx)", "squid": "Squid", "tinyproxy": "tinyproxy",
         "portcullis": "Portcullis"}
SIZES = {"0": 0, "1k": 1024, "64k": 65536, "1m": 1 << 20, "16m": 16 << 20}
SIZE_NAMES = {"0": "0 B", "1k": "1 KiB", "64k": "64 KiB", "1m": "1 MiB", "16m": "16 MiB"}


def _load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _append(jsonl, rec):
    with open(jsonl, "a") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")


def _find_line(path, prefix):
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if line.startswith(prefix):
                    return json.loads(line[len(prefix):].strip())
    except (OSError, ValueError):
        pass
    return None


def cmd_wrk(target, size, conns, wrk_out, procmon, jsonl):
    rec = {"kind": "http", "target": target, "size": size, "conns": int(conns)}
    w = _find_line(wrk_out, "BENCHJSON ")
    rec.update({"proc_" + k: v for k, v in _load(procmon).items()})
    if not w or w.get("duration_us", 0) <= 0:
        rec["failed"] = "wrk produced no result (see %s)" % wrk_out
    else:
        secs = w["duration_us"] / 1e6
        rec.update(w)
        rec["rps"] = w["requests"] / secs
        rec["mbps"] = w["bytes"] / secs / 1e6
        rec["errors"] = (w["err_connect"] + w["err_read"] + w["err_write"]
                         + w["err_timeout"])
        rec["non2xx"] = w["err_status"]
    _append(jsonl, rec)


def cmd_tunnel(target, conns, lg_out, procmon, jsonl):
    rec = {"kind": "tunnel", "target": target, "conns": int(conns)}
    rec.update({"proc_" + k: v for k, v in _load(procmon).items()})
    w = _find_line(lg_out, "{")
    if w is None:
        try:
            with open(lg_out) as f:
                w = json.loads(f.readline())
        except (OSError, ValueError):
            w = None
    if not w:
        rec["failed"] = "load client produced no result (see %s)" % lg_out
    else:
        rec.update(w)
        rec["non2xx"] = w.get("bad_status", 0)
        if w.get("requests", 0) == 0:
            rec["failed"] = "no request completed through the tunnel"
    _append(jsonl, rec)


def cmd_idle(target, conns, lg_out, before, after, jsonl):
    rec = {"kind": "idle", "target": target, "conns": int(conns)}
    ready = _find_line(lg_out, "READY ")
    done = _find_line(lg_out, "DONE ")
    try:
        before, after = int(before), int(after)
    except ValueError:
        before = after = 0
    if not ready or before <= 0 or after <= 0:
        rec["failed"] = "idle connections were not established (see %s)" % lg_out
    else:
        rec.update({"held": ready["held"], "failed_open": ready["failed"],
                    "open_s": ready["open_s"], "rss_before_kb": before,
                    "rss_after_kb": after})
        if done:
            rec["closed_while_idle"] = done.get("closed_while_idle", 0)
        if ready["held"] > 0:
            rec["per_conn_kib"] = (after - before) / ready["held"]
        else:
            rec["failed"] = ("no idle connection was held (%d failed to open, %d closed by "
                             "the proxy)" % (ready["failed"],
                                             (done or {}).get("closed_while_idle", 0)))
    _append(jsonl, rec)


def cmd_status(target, state, message, jsonl):
    _append(jsonl, {"kind": "status", "target": target, "state": state, "message": message})


def cmd_policyinfo(state, message, start_a, start_b, rss_a, rss_b, decision, jsonl):
    def num(v):
        try:
            return float(v)
        except ValueError:
            return None
    _append(jsonl, {"kind": "policyinfo", "state": state, "message": message,
                    "start_s_nopolicy": num(start_a), "start_s_policy": num(start_b),
                    "rss_kb_nopolicy": num(rss_a), "rss_kb_policy": num(rss_b),
                    "decision": "" if decision == "-" else decision})


# A drop within this fraction counts as "no measurable drop": repeated runs of one case
# vary by a few percent (README: Limits).
POLICY_NOISE = 0.05


def render_policy(L, meta, recs, http):
    info = next((r for r in recs if r["kind"] == "policyinfo"), None)
    cases = []
    for c in meta.get("policy_cases", "").split():
        size, _, conns = c.partition(":")
        if size in SIZES and conns.isdigit():
            cases.append((size, int(conns)))
    L.append("### Portcullis with the full policy")
    L.append("")
    rules = int(meta.get("policy_rules", "0") or 0)
    domains = int(meta.get("policy_domains", "0") or 0)
    L.append(f"The same Portcullis and configuration, without a policy and with `[policy] file` "
             f"naming a generated policy (`bench/gen_policy.py`: {rules:,} rules of every kind, "
             f"a {domains:,}-domain UT1-layout category database and a 20,000-row URLhaus "
             "feed; kept in `bench/out/policy/` and reused). Both processes run side by side "
             "(the one not measured is idle) and each case runs on one right after the "
             "other, alternating which goes first. The request (`GET http://<origin>/...` "
             "from 127.0.0.1, no user) is matched by no rule: every transaction is "
             "classified and decided, and passes.")
    L.append("")
    if not info or info.get("state") != "ok":
        why = (info or {}).get("message") or meta.get("policy_msg") or "not run"
        state = (info or {}).get("state") or meta.get("policy", "off")
        L.append(f"Not measured ({state}): {why}.")
        L.append("")
        return
    def sec(v):
        return "–" if v is None else f"{v:.1f} s"
    L.append(f"- Decision for the benchmark request: {info.get('decision') or '?'} "
             "(`portcullis policy test`, bench/out/run/raw/policy-test.txt)")
    L.append(f"- Start to accepting connections: {sec(info.get('start_s_nopolicy'))} without "
             f"policy, {sec(info.get('start_s_policy'))} with it (includes loading the policy "
             "and its databases)")
    L.append(f"- RSS after start and a 1 s warm-up: {_mib(info.get('rss_kb_nopolicy'))} MiB "
             f"without policy, {_mib(info.get('rss_kb_policy'))} MiB with it")
    L.append("")
    L.append("| case | req/s without | req/s with | with ÷ without | p99 ms without | "
             "p99 ms with | CPU % without | CPU % with | RSS MiB with | errors with |")
    L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    ratios = []
    for size, c in cases:
        a = http.get(("portcullis_nopolicy", size, c))
        b = http.get(("portcullis_policy", size, c))
        label = f"{SIZE_NAMES[size]} × {c}"
        if not a or not b or "failed" in a or "failed" in b:
            why = (a or {}).get("failed") or (b or {}).get("failed") or "not run"
            L.append(f"| {label} | {why} | | | | | | | | |")
            continue
        r = _ratio(b["rps"], a["rps"])
        ratios.append((label, r))
        L.append(f"| {label} | {_fmt(a['rps'])} | {_fmt(b['rps'])} | {_rfmt(r, True)} | "
                 f"{_ms(a['p99_us'], a)} | {_ms(b['p99_us'], b)} | "
                 f"{_fmt(a.get('proc_cpu_pct'), 0)} | {_fmt(b.get('proc_cpu_pct'), 0)} | "
                 f"{_mib(b.get('proc_rss_max_kb'))} | {_errs(b)} |")
    L.append("")
    got = [(lbl, r) for lbl, r in ratios if r is not None]
    if got:
        worst_lbl, worst = min(got, key=lambda x: x[1])
        ok = worst >= 1 - POLICY_NOISE
        L.append(f"Target — no measurable drop in req/s with the full policy (with ÷ without "
                 f"≥ {100 - POLICY_NOISE * 100:.0f}%, the run-to-run noise): "
                 f"**{'met' if ok else 'not met'}** (worst {worst_lbl}: {_rfmt(worst, True)}).")
    else:
        L.append("Target — no measurable drop in req/s with the full policy: **not measured**.")
    L.append("")


# ---------------------------------------------------------------- rendering

def _fmt(v, nd=0):
    if v is None:
        return "–"
    if nd == 0:
        return f"{v:,.0f}"
    return f"{v:,.{nd}f}"


def _ms(us, r=None):
    if us is None or (r is not None and not r.get("requests")):
        return "–"
    return f"{us / 1000:.2f}"


def _mib(kb):
    return "–" if not kb else f"{kb / 1024:.1f}"


def _ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def _rfmt(r, pct=False):
    if r is None:
        return "–"
    return f"{r * 100:.0f}%" if pct else f"{r:.2f}×"


def _errs(r):
    parts = []
    if "err_read" in r:  # wrk
        for k in ["connect", "read", "write", "timeout"]:
            if r.get("err_" + k):
                parts.append(f"{k} {r['err_' + k]:,}")
    elif r.get("errors"):
        parts.append(f"{r['errors']:,} dropped")
    if r.get("non2xx"):
        parts.append(f"{r['non2xx']:,} non-2xx")
    if r.get("reconnects"):
        parts.append(f"{r['reconnects']:,} reconnects")
    return ", ".join(parts) if parts else "0"


def render(meta_path, jsonl, out_path):
    meta = {}
    with open(meta_path) as f:
        for line in f:
            if "\t" in line:
                k, v = line.rstrip("\n").split("\t", 1)
                meta[k] = v
    recs = []
    try:
        with open(jsonl) as f:
            recs = [json.loads(x) for x in f if x.strip()]
    except OSError:
        pass

    status = {}
    for r in recs:
        if r["kind"] == "status":
            status[r["target"]] = r
    targets = [t for t in TARGETS if t in meta.get("targets", "").split()]

    def usable(r):
        return r is not None and "failed" not in r

    http = {(r["target"], r["size"], r["conns"]): r for r in recs if r["kind"] == "http"}
    tunnel = {(r["target"], r["conns"]): r for r in recs if r["kind"] == "tunnel"}
    idle = {r["target"]: r for r in recs if r["kind"] == "idle"}
    sizes = [s for s in meta.get("sizes", "").split() if s in SIZES]
    conns = [int(c) for c in meta.get("conns", "").split()]
    tconns = [int(c) for c in meta.get("tunnel_conns", "").split()]

    L = []
    L.append("## HTTP forward proxy: Portcullis against Squid and tinyproxy")
    L.append("")
    L.append("Written by `bench/run.sh`; see `bench/README.md` for what each number means.")
    L.append("")
    L.append(f"- Date: {meta.get('date', '?')}")
    L.append(f"- Mode: {'quick (smoke) run' if meta.get('quick') == '1' else 'full run'}, "
             f"{meta.get('duration', '?')} s per case")
    L.append(f"- Machine: {meta.get('nproc', '?')} CPUs, {meta.get('cpu', '?')}, "
             f"kernel {meta.get('kernel', '?')}, {meta.get('os', '?')}")
    L.append(f"- Placement: {meta.get('placement', '?')}")
    L.append("- Versions:")
    for k in ["portcullis", "squid", "tinyproxy", "nginx", "wrk"]:
        L.append(f"  - {k}: {meta.get('version_' + k, '?')}")
    L.append(f"- Load average (1, 5, 15 min) at start: {meta.get('loadavg_start', '?')}, "
             f"at end: {meta.get('loadavg_end', '?')}")
    L.append("")
    worst_other = max((r.get("proc_other_cpu_pct", 0) for r in recs
                       if r["kind"] in ("http", "tunnel")), default=0)
    if worst_other >= 10:
        L.append(f"**Warning: other programs used up to {worst_other:.0f}% of a core during "
                 "the cases (column *other CPU %*). The numbers of the cases concerned are "
                 "disturbed; rerun on an idle machine.**")
        L.append("")
    notes = []
    for t in targets:
        s = status.get(t)
        if s and s["state"] != "ok":
            notes.append(f"- **{NAMES[t]}: {s['state']}** — {s['message']}")
    if notes:
        L.append("### Targets that were not measured")
        L.append("")
        L.extend(notes)
        L.append("")

    L.append("### HTTP GET through the proxy (wrk, absolute-form; direct = origin-form to nginx)")
    L.append("")
    L.append("CPU is the process under test (the proxy; nginx for *direct*) as % of one core; "
             "RSS is its peak during the case; VmHWM its peak since start; *other CPU* is what "
             "programs outside the benchmark used meanwhile (should be near 0). Bytes of "
             "responses still in flight when a case ends count in MB/s, not in req/s: with "
             "16 MiB bodies and many connections few or no responses may complete, and MB/s "
             "is the number to read.")
    if any(r.get("err_read", 0) > 0 and r["target"] == "tinyproxy" for r in http.values()):
        L.append("")
        L.append("tinyproxy answers in HTTP/1.0 and closes the client connection after each "
                 "response; wrk counts each such close as a read error and reconnects, so "
                 "its read errors are not failed requests.")
    L.append("")
    for size in sizes:
        for c in conns:
            L.append(f"#### {SIZE_NAMES[size]} body, {c} connections")
            L.append("")
            L.append("| target | req/s | MB/s | p50 ms | p99 ms | CPU % | RSS MiB | "
                     "VmHWM MiB | other CPU % | errors |")
            L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
            for t in targets:
                r = http.get((t, size, c))
                if r is None:
                    msg = status.get(t, {}).get("state", "not run")
                    L.append(f"| {NAMES[t]} | {msg} | | | | | | | | |")
                elif "failed" in r:
                    L.append(f"| {NAMES[t]} | failed: {r['failed']} | | | | | | | | |")
                else:
                    L.append(f"| {NAMES[t]} | {_fmt(r['rps'])} | {_fmt(r['mbps'], 1)} | "
                             f"{_ms(r['p50_us'], r)} | {_ms(r['p99_us'], r)} | "
                             f"{_fmt(r.get('proc_cpu_pct'), 0)} | "
                             f"{_mib(r.get('proc_rss_max_kb'))} | "
                             f"{_mib(r.get('proc_hwm_kb'))} | "
                             f"{_fmt(r.get('proc_other_cpu_pct'), 0)} | {_errs(r)} |")
            L.append("")

    if tconns:
        L.append("### CONNECT tunnel (bench/loadgen: CONNECT once, then keep-alive GET 1 KiB "
                 "inside the tunnel)")
        L.append("")
        L.append("*direct* sends the same GETs straight to nginx without CONNECT.")
        L.append("")
        for c in tconns:
            L.append(f"#### Tunnel, 1 KiB GETs, {c} connections")
            L.append("")
            L.append("| target | req/s | MB/s | p50 ms | p99 ms | CPU % | RSS MiB | "
                     "other CPU % | errors |")
            L.append("|---|--:|--:|--:|--:|--:|--:|--:|---|")
            for t in targets:
                r = tunnel.get((t, c))
                if r is None:
                    msg = status.get(t, {}).get("state", "not run")
                    L.append(f"| {NAMES[t]} | {msg} | | | | | | | |")
                elif "failed" in r and not r.get("requests"):
                    L.append(f"| {NAMES[t]} | failed: {r['failed']} | | | | | | | |")
                else:
                    L.append(f"| {NAMES[t]} | {_fmt(r['rps'])} | {_fmt(r['mbps'], 1)} | "
                             f"{_ms(r['p50_us'], r)} | {_ms(r['p99_us'], r)} | "
                             f"{_fmt(r.get('proc_cpu_pct'), 0)} | "
                             f"{_mib(r.get('proc_rss_max_kb'))} | "
                             f"{_fmt(r.get('proc_other_cpu_pct'), 0)} | {_errs(r)} |")
            L.append("")

    n_idle = meta.get("idle_conns", "0")
    if idle or meta.get("idle_targets"):
        L.append(f"### Idle connections ({n_idle} clients, each completes one GET and then "
                 "stays open)")
        L.append("")
        L.append("| target | held | RSS before MiB | RSS after MiB | per connection KiB | "
                 "notes |")
        L.append("|---|--:|--:|--:|--:|---|")
        for t in targets:
            if t not in meta.get("idle_targets", "").split():
                continue
            r = idle.get(t)
            if r is None:
                msg = status.get(t, {}).get("state", "not run")
                L.append(f"| {NAMES[t]} | {msg} | | | | |")
            elif "failed" in r:
                L.append(f"| {NAMES[t]} | failed: {r['failed']} | | | | |")
            else:
                note = []
                if r.get("failed_open"):
                    note.append(f"{r['failed_open']} could not open")
                if r.get("closed_while_idle"):
                    note.append(f"{r['closed_while_idle']} closed by the proxy while idle")
                note.append(f"opened in {r['open_s']:.1f} s")
                L.append(f"| {NAMES[t]} | {r['held']:,} | {_mib(r['rss_before_kb'])} | "
                         f"{_mib(r['rss_after_kb'])} | {r['per_conn_kib']:.2f} | "
                         f"{', '.join(note)} |")
        L.append("")

    if meta.get("policy", "off") != "off" or any(r["kind"] == "policyinfo" for r in recs):
        render_policy(L, meta, recs, http)

    # Ratios and targets: only with Portcullis numbers.
    pc_ok = any(usable(r) for (t, _, _), r in http.items() if t == "portcullis")
    L.append("### Portcullis compared with its peers")
    L.append("")
    if not pc_ok:
        why = status.get("portcullis", {}).get("message", "no Portcullis measurement")
        L.append(f"Portcullis was not measured in this run ({why}); no ratios or targets.")
        L.append("")
    else:
        L.append("Ratios are Portcullis ÷ peer. For req/s and MB/s higher is better; "
                 "for p99 latency lower is better.")
        L.append("")
        peers = [t for t in ["squid", "tinyproxy", "direct"] if t in targets]
        hdr = "| case |"
        sep = "|---|"
        for metric in ["req/s", "MB/s", "p99"]:
            for p in peers:
                hdr += f" {metric} ÷ {NAMES[p]} |"
                sep += "--:|"
        L.append(hdr)
        L.append(sep)

        def ratio_row(label, pc, get_peer):
            row = f"| {label} |"
            for metric, key in [("req/s", "rps"), ("MB/s", "mbps"), ("p99", "p99_us")]:
                for p in peers:
                    pr = get_peer(p)
                    if usable(pc) and usable(pr):
                        row += f" {_rfmt(_ratio(pc[key], pr[key]))} |"
                    else:
                        row += " – |"
            return row

        for size in sizes:
            for c in conns:
                L.append(ratio_row(f"{SIZE_NAMES[size]} × {c}", http.get(("portcullis", size, c)),
                                   lambda p, s=size, c=c: http.get((p, s, c))))
        for c in tconns:
            L.append(ratio_row(f"tunnel × {c}", tunnel.get(("portcullis", c)),
                               lambda p, c=c: tunnel.get((p, c))))
        L.append("")

        L.append("#### Targets")
        L.append("")

        def verdict(name, pairs, threshold, pct=False, note=""):
            # pairs: list of (label, ratio or None)
            got = [(lbl, r) for lbl, r in pairs if r is not None]
            if not got:
                L.append(f"- {name}: **not measured** in this run{note}")
                return
            worst_lbl, worst = min(got, key=lambda x: x[1])
            ok = worst >= threshold
            detail = ", ".join(f"{lbl}: {_rfmt(r, pct)}" for lbl, r in got)
            L.append(f"- {name}: **{'met' if ok else 'not met'}** (worst {worst_lbl} "
                     f"{_rfmt(worst, pct)}; {detail}){note}")

        def http_ratio(size, c, peer, key):
            a, b = http.get(("portcullis", size, c)), http.get((peer, size, c))
            if usable(a) and usable(b):
                return _ratio(a[key], b[key])
            return None

        small = [(f"{SIZE_NAMES[s]}×{c}", http_ratio(s, c, "squid", "rps"))
                 for s in ["0", "1k"] if s in sizes for c in conns]
        verdict("≥ 3× Squid req/s on small bodies (0 B, 1 KiB)", small, 3.0)
        alld = [(f"{SIZE_NAMES[s]}×{c}", http_ratio(s, c, "direct", "rps"))
                for s in sizes if s != "16m" for c in conns]
        verdict("≥ 50% of direct req/s (every HTTP case up to 1 MiB; 16 MiB is judged "
                "on throughput below)", alld, 0.5, pct=True)
        big = [(f"16 MiB×{c}", http_ratio("16m", c, "direct", "mbps"))
               for c in conns if "16m" in sizes]
        verdict("≥ 80% of direct throughput (MB/s) at 16 MiB", big, 0.8, pct=True)
        r = idle.get("portcullis")
        if usable(r):
            ok = r["per_conn_kib"] < 16.0
            L.append(f"- < 16 KiB per idle connection: **{'met' if ok else 'not met'}** "
                     f"({r['per_conn_kib']:.2f} KiB over {r['held']:,} connections)")
        else:
            L.append("- < 16 KiB per idle connection: **not measured** in this run")
        if meta.get("quick") == "1":
            L.append("")
            L.append("This was a quick smoke run (short cases, reduced matrix): "
                     "verdicts are indicative only.")
        L.append("")

    write_section(out_path, "PROXY", "bench/run.sh", L)


def main(a):
    cmds = {"wrk": (cmd_wrk, 6), "tunnel": (cmd_tunnel, 5), "idle": (cmd_idle, 6),
            "status": (cmd_status, 4), "policyinfo": (cmd_policyinfo, 8),
            "render": (render, 3)}
    if len(a) < 2 or a[1] not in cmds or len(a) - 2 != cmds[a[1]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    cmds[a[1]][0](*a[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
