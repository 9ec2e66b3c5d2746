#!/usr/bin/env python3
"""Renders the scan section of bench/RESULTS.md from bench/scan.sh's work folder.

  scan_report.py RUN_DIR   (prints the section, markers included, on standard output)
"""
import glob
import json
import os
import sys

SIZE = {"1k": "1 KiB", "64k": "64 KiB", "1m": "1 MiB"}


def load_json(path):
    """A JSON document, or the last line of a file of JSON lines; {} when there is none."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return {}
    for candidate in (text, text.splitlines()[-1] if text else ""):
        try:
            return json.loads(candidate)
        except ValueError:
            pass
    return {}


def num(v, d=0):
    return f"{v:,.{d}f}"


def ms(us):
    return f"{us / 1000:.2f}" if us < 100000 else f"{us / 1000:,.0f}"


def mib(kb):
    return f"{kb / 1024:.1f}"


def main(run):
    meta, errors = {}, []
    for line in open(os.path.join(run, "meta.tsv")):
        if "\t" not in line:
            continue
        k, v = line.rstrip("\n").split("\t", 1)
        if k in ("proxy_error", "icap_error"):
            errors.append(v)
        elif k not in meta or k != "engines":  # the first engines line (both load the same)
            meta[k] = v
    quick = meta.get("quick") == "1"
    label = meta.get("label", "")
    title = "## Malware scanning"
    if label:
        title += f" ({label})"
    elif quick:
        title += " (quick run)"
    L = [title, ""]
    L.append("Written by `bench/scan.sh`; see the scanning section of `bench/README.md` for what "
             "each number means.")
    if quick or label:
        L.append("")
        note = (label[:1].upper() + label[1:]) if label else "Quick run"
        L.append(f"**{note}: {meta.get('duration')} s per case. These numbers "
                 "check that the harness works and give orders of magnitude; they are not the "
                 "measurement (run the full benchmark on an idle machine).**")
    L.append("")
    L.append(f"- Date: {meta.get('date', '?')}")
    L.append(f"- Mode: {'quick' if quick else 'full'}, {meta.get('duration')} s per case")
    L.append(f"- Machine: {meta.get('nproc')} CPUs, {meta.get('cpu')}, kernel {meta.get('kernel')}, "
             f"{meta.get('os')}")
    L.append(f"- Placement: {meta.get('placement')}")
    L.append(f"- Versions: portcullis: {meta.get('version_portcullis')}; "
             f"c-icap: {meta.get('version_cicap')}, modules {meta.get('version_cicap_modules')}; "
             f"libclamav {meta.get('version_libclamav')}")
    official = meta.get("official", "")
    L.append("- Signatures: the shipped set (`signatures/clamav`)"
             + (f" and the official databases in `{meta.get('clamav_dir')}`: {official}"
                if official else
                f"; no official database in `{meta.get('clamav_dir')}` (shipped set only)")
             + ", the same files for both servers.")
    if meta.get("engines"):
        L.append(f"- Portcullis engines: `{meta['engines']}`")
    L.append(f"- Load average (1, 5, 15 min) at start: {meta.get('loadavg_start')}, at end: "
             f"{meta.get('loadavg_end')}")
    for e in errors:
        L.append(f"- **Not measured:** {e}")
    others = []
    for p in glob.glob(os.path.join(run, "raw", "*.procmon.json")):
        o = load_json(p).get("other_cpu_pct")
        if o is not None:
            others.append(o)
    if others and max(others) > 10:
        L.append("")
        L.append(f"**Warning: other programs used up to {max(others):.0f}% of a core during the "
                 "cases (*other CPU %*): the numbers are disturbed.**")
    L.append("")

    # ---- one scan alone
    sb = load_json(os.path.join(run, "raw", "scan_bench.json"))
    bm = {b["name"]: b for b in sb.get("benchmarks", []) if "real_time" in b}

    def t_us(name):
        b = bm.get(name)
        if not b:
            return None
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b.get("time_unit", "ns")]
        return b["real_time"] * scale, b["cpu_time"] * scale

    scan_1m = t_us("BM_ScanJob/1048576")
    sha_1m = t_us("BM_Sha256/1048576")
    L.append("### One scan, alone (`scan_bench`)")
    L.append("")
    if not bm:
        L.append("Not measured (`build/release/bench/scan_bench` is built when libbenchmark-dev is "
                 "installed).")
    else:
        L.append("What the scan pool does for one body (true file type on the first and last "
                 "64 KiB, then ClamAV from memory), and the SHA-256 a worker computes as the body "
                 "arrives, on the server's core with nothing else running; each body differs so "
                 "that libclamav's own cache never answers. Wall time (CPU time).")
        L.append("")
        L.append("| work | 1 KiB | 64 KiB | 1 MiB |")
        L.append("|---|--:|--:|--:|")
        # BM_FileType* run on named bodies (random_1k, random_64k...): the random ones are the
        # scan job's.
        sizes = {1024: "1k", 65536: "64k", 1 << 20: "1m"}
        for label_, name in (("scan job (type + ClamAV)", "BM_ScanJob"), ("ClamAV alone", "BM_ClamScan"),
                             ("true file type alone", "BM_FileType"),
                             ("true file type, libmagic only (before)", "BM_FileTypeLibmagic"),
                             ("SHA-256", "BM_Sha256")):
            cells = []
            for n in (1024, 65536, 1 << 20):
                t = t_us(f"{name}/random_{sizes[n]}" if name.startswith("BM_FileType")
                         else f"{name}/{n}")
                cells.append(f"{t[0]:,.1f} µs ({t[1]:,.1f})" if t else "–")
            L.append(f"| {label_} | " + " | ".join(cells) + " |")
        sn = t_us("BM_SniffFileType/random_64k")
        if sn:
            L.append(f"| native detector alone (queue full) | | {sn[0]:,.1f} µs | |")
        L.append("")

    # ---- proxy
    recs = {}
    try:
        for line in open(os.path.join(run, "results.jsonl")):
            r = json.loads(line)
            if r.get("kind") == "http":
                recs[r["size"]] = r  # size holds the case tag
    except (OSError, ValueError):
        pass
    L.append("### Proxy: clean 1 MiB downloads, scanning on against off")
    L.append("")
    if not recs:
        L.append("Not measured.")
        L.append("")
    else:
        L.append("Two Portcullis processes side by side, `[scan] enabled = false` and the `[scan]` "
                 "defaults (verdict cache on); each case runs on one then the other. *unique*: "
                 "every response starts with a different 32-byte prefix (the nginx origin's "
                 "addition module), so every body is scanned and no cache answers (the verdict "
                 "cache is cold); *latency*: the same with one connection; *repeated*: the same "
                 f"file every time (cached after the first). {meta.get('conns')} connections, "
                 "wrk. *per CPU-s*: requests per second of the proxy's CPU, on ÷ off. *records* "
                 "counts the access records of the scanning process during the case: scanned / "
                 "answered from the cache.")
        L.append("")
        L.append("| case | req/s off | req/s on | on ÷ off | per CPU-s on ÷ off | p50 ms off / on "
                 "| p99 ms off / on | CPU % off / on | RSS MiB off / on | other CPU % "
                 "| records scanned / cached | errors off / on |")
        L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|")
        for name in ("unique", "latency", "repeated"):
            a = recs.get(f"proxy-{name}-off", {})
            b = recs.get(f"proxy-{name}-on", {})
            if not a and not b:
                continue
            sc = load_json(os.path.join(run, "raw", f"proxy-{name}-on.scans.json"))
            ratio = b["rps"] / a["rps"] if a.get("rps") and b.get("rps") else None
            eff = None
            if ratio and a.get("proc_cpu_pct", 0) > 5 and b.get("proc_cpu_pct", 0) > 5:
                eff = ratio * a["proc_cpu_pct"] / b["proc_cpu_pct"]
            oth = max(a.get("proc_other_cpu_pct", 0), b.get("proc_other_cpu_pct", 0))

            def e(r):
                if not r or r.get("failed"):
                    return "no result"
                return f"{r.get('errors', 0) + r.get('non2xx', 0):,}"
            L.append(
                f"| {name} | {num(a.get('rps', 0))} | {num(b.get('rps', 0))} | "
                f"{f'{100 * ratio:.0f}%' if ratio else '–'} | {f'{100 * eff:.0f}%' if eff else '–'} | "
                f"{ms(a.get('p50_us', 0))} / {ms(b.get('p50_us', 0))} | "
                f"{ms(a.get('p99_us', 0))} / {ms(b.get('p99_us', 0))} | "
                f"{num(a.get('proc_cpu_pct', 0))} / {num(b.get('proc_cpu_pct', 0))} | "
                f"{mib(a.get('proc_rss_max_kb', 0))} / {mib(b.get('proc_rss_max_kb', 0))} | "
                f"{oth:.0f} | {sc.get('scanned', 0):,} / {sc.get('cached', 0):,} | {e(a)} / {e(b)} |")
        L.append("")
        L.append("Targets (issue #5):")
        L.append("")
        a, b = recs.get("proxy-unique-off", {}), recs.get("proxy-unique-on", {})
        if a.get("rps") and b.get("rps"):
            r = b["rps"] / a["rps"]
            L.append(f"- clean 1 MiB downloads, verdicts not cached, ≥ 70% of the unscanned "
                     f"throughput: **{'met' if r >= 0.7 else 'not met'}** ({100 * r:.0f}%: "
                     f"{num(b['rps'])} against {num(a['rps'])} req/s)")
        a, b = recs.get("proxy-latency-off", {}), recs.get("proxy-latency-on", {})
        if a.get("p50_us") and b.get("p50_us") and scan_1m:
            added = b["p50_us"] - a["p50_us"]
            budget = scan_1m[0] + (sha_1m[0] if sha_1m else 0)
            L.append(f"- latency added by scanning (one connection, p50) no more than the scan "
                     f"time: **{'met' if added <= budget else 'not met'}** (added "
                     f"{added / 1000:.2f} ms; the scan alone: {budget / 1000:.2f} ms = scan job "
                     f"{scan_1m[0] / 1000:.2f} ms + SHA-256 {(sha_1m[0] if sha_1m else 0) / 1000:.2f} ms)")
        a, b = recs.get("proxy-repeated-off", {}), recs.get("proxy-repeated-on", {})
        if a.get("rps") and b.get("rps"):
            r = b["rps"] / a["rps"]
            L.append(f"- repeated download (verdict cache): {100 * r:.0f}% of the unscanned "
                     f"throughput ({num(b['rps'])} against {num(a['rps'])} req/s)")
        L.append("")

    # ---- ICAP
    cases = []
    try:
        for line in open(os.path.join(run, "icap-cases.tsv")):
            p = line.rstrip("\n").split("\t")
            if len(p) >= 5:
                r = load_json(os.path.join(run, "raw", p[0] + ".json"))
                r["pm"] = load_json(os.path.join(run, "raw", p[0] + ".procmon.json"))
                r["scans"] = load_json(os.path.join(run, "raw", p[0] + ".scans.json"))
                r.update(tag=p[0], target=p[1], body_=p[2], size_=p[3], conns_=int(p[4]))
                cases.append(r)
    except OSError:
        pass
    mat = {(r["target"], r["body_"], r["size_"], r["conns_"]): r for r in cases}
    L.append("### ICAP RESPMOD with scanning: Portcullis against c-icap virus_scan")
    L.append("")
    if not cases:
        L.append("Not measured.")
        L.append("")
    else:
        L.append(f"c-icap {meta.get('version_cicap', '')} with `virus_scan.so` and `clamav_mod.so` "
                 f"(Debian's virus_scan settings, one process × {meta.get('cicap_threads')} "
                 "threads, access log on), reading the same signature files as Portcullis "
                 "(`[scan]` defaults, one worker, ICAP listener, access log on), with libclamav's "
                 "scratch folder (`clamav_mod.TmpDir`) in /dev/shm as Portcullis keeps its own "
                 "by default (`scan.scratch_dir`). `bench/icap_load` "
                 "RESPMOD, no preview, `Allow: 204`, the body chunked in 64 KiB chunks; a clean "
                 "body is answered 204 by both, except that Portcullis echoes a body larger than "
                 "`icap.buffer_for_204` (64 KiB by default) with a 200 it starts before the body ends "
                 "(docs/icap.md), where c-icap holds it whole and answers 204. *unique*: every body starts with a different "
                 "counter (`--unique`), so every one is scanned by both servers; *repeated*: the "
                 "same body each time (Portcullis answers from its verdict cache; libclamav's "
                 "own cache of clean content helps both). The servers run side by side; each "
                 "case runs on one then the other. *per CPU-s ratio*: transactions per second of "
                 "server CPU, Portcullis ÷ c-icap (less disturbed by other programs than tx/s; "
                 "not a target).")
        L.append("")
        L.append("| bodies | size × conns | c-icap tx/s | Portcullis tx/s | ratio | per CPU-s ratio "
                 "| p99 ms c-icap / Portcullis | CPU % c-icap / Portcullis | RSS MiB c-icap / "
                 "Portcullis | other CPU % | Portcullis records scanned / cached | errors c-icap / "
                 "Portcullis | ≥ 3× |")
        L.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|---|")
        verdicts = []
        for body in ("unique", "repeated"):
            for size in ("1k", "64k", "1m"):
                for c in sorted({k[3] for k in mat}):
                    a = mat.get(("cicap", body, size, c))
                    b = mat.get(("portcullis", body, size, c))
                    if not a and not b:
                        continue
                    a, b = a or {}, b or {}
                    ratio = b["tps"] / a["tps"] if a.get("tps") and b.get("tps") else None
                    ca, cb = a.get("pm", {}).get("cpu_pct", 0), b.get("pm", {}).get("cpu_pct", 0)
                    eff = ratio * ca / cb if ratio and ca > 5 and cb > 5 else None
                    if ratio is not None and body == "unique":
                        verdicts.append((f"{SIZE[size]} × {c}", ratio,
                                         ratio >= 3.0 and b.get("errors", 0) == 0))
                    oth = max(a.get("pm", {}).get("other_cpu_pct", 0), b.get("pm", {}).get("other_cpu_pct", 0))
                    sc = b.get("scans", {})

                    def err(r):
                        if "tx" not in r:
                            return "no result"
                        s = f"{r.get('errors', 0):,}"
                        if r.get("errors") and r.get("first_error"):
                            s += f" ({r['first_error'][:50]})"
                        return s
                    L.append(
                        f"| {body} | {SIZE[size]} × {c} | {num(a.get('tps', 0))} | {num(b.get('tps', 0))} | "
                        f"{f'{ratio:.2f}×' if ratio else '–'} | {f'{eff:.2f}×' if eff else '–'} | "
                        f"{a.get('p99_ms', 0):.2f} / {b.get('p99_ms', 0):.2f} | "
                        f"{num(a.get('pm', {}).get('cpu_pct', 0))} / {num(b.get('pm', {}).get('cpu_pct', 0))} | "
                        f"{mib(a.get('pm', {}).get('rss_max_kb', 0))} / {mib(b.get('pm', {}).get('rss_max_kb', 0))} | "
                        f"{oth:.0f} | {sc.get('scanned', 0):,} / {sc.get('cached', 0):,} | "
                        f"{err(a)} / {err(b)} | "
                        f"{('met' if ratio >= 3.0 else '**not met**') if ratio and body == 'unique' else '–'} |")
        L.append("")
        if verdicts:
            bad = [v for v in verdicts if not v[2]]
            L.append(f"Target (issue #5), ≥ 3× c-icap virus_scan's transactions/s with every body "
                     f"scanned (*unique*): **{'met' if not bad else 'not met'}** (met in "
                     f"{len(verdicts) - len(bad)} of {len(verdicts)} cases"
                     + ("; not met for " + ", ".join(f"{n}: {v:.2f}×" for n, v, _ in bad) if bad else "")
                     + ").")
            L.append("")

    # ---- memory
    L.append("### Resident memory with the signatures loaded")
    L.append("")
    rows = []
    if meta.get("rss_proxy_off"):
        rows.append(("Portcullis proxy, scanning off", meta.get("rss_proxy_off"), None))
    if meta.get("rss_proxy_on"):
        rows.append(("Portcullis proxy, scanning on", meta.get("rss_proxy_on"), None))
    if meta.get("rss_icap_portcullis"):
        rows.append(("Portcullis ICAP, scanning on", meta.get("rss_icap_portcullis"),
                     meta.get("pss_icap_portcullis")))
    if meta.get("rss_icap_cicap"):
        rows.append(("c-icap + virus_scan + clamav_mod (all processes)", meta.get("rss_icap_cicap"),
                     meta.get("pss_icap_cicap")))
    if not rows:
        L.append("Not measured.")
    else:
        L.append("After start, the check transactions and a 1 s warm-up. PSS counts pages shared "
                 "between a server's processes once (c-icap loads the signatures before it forks "
                 "its server process).")
        L.append("")
        L.append("| process | RSS MiB | PSS MiB | start to ready s |")
        L.append("|---|--:|--:|--:|")
        starts = {"Portcullis proxy, scanning off": meta.get("start_proxy_off"),
                  "Portcullis proxy, scanning on": meta.get("start_proxy_on"),
                  "Portcullis ICAP, scanning on": meta.get("start_icap_portcullis")}
        for name, rss, pss in rows:
            st = starts.get(name) or (meta.get("start_icap_cicap") if name.startswith("c-icap") else None)
            L.append(f"| {name} | {mib(int(rss))} | {mib(int(pss)) if pss else '–'} | {st or '–'} |")
    print("\n".join(L))


if __name__ == "__main__":
    main(sys.argv[1])
