#!/usr/bin/env python3
"""CPU and memory of a process tree, read from /proc. Used by bench/run.sh.

  procmon.py watch PID OUT.json [MAX_SECONDS [OURS_PID]]
      Samples the tree rooted at PID until SIGTERM/SIGINT (or MAX_SECONDS), then writes
      {"cpu_pct": .., "wall_s": .., "rss_max_kb": .., "rss_end_kb": .., "hwm_kb": ..,
       "threads": .., "other_cpu_pct": ..} to OUT.json. cpu_pct is utime+stime of the whole
      tree over the watch, as a percentage of one core. other_cpu_pct is the CPU the whole
      machine spent meanwhile outside the tree rooted at OURS_PID (the benchmark script:
      servers, load generators and their reaped children), also in % of one core: work of
      other programs that disturbs the measurement.
  procmon.py rss PID
      Prints the current VmRSS of the tree in KiB.
  procmon.py pss PID
      Prints the current proportional set size of the tree in KiB (pages shared between its
      processes, e.g. a database loaded before a fork, counted once in all).
"""
import json
import os
import signal
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read().decode("latin-1")
    # The command name may hold spaces and parentheses: split after the last ')'.
    return data[data.rindex(")") + 2:].split()


def tree(root):
    """root and all its descendants that are alive now."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(name)[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo and len(out) < 10000:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def ticks(pids, children=False):
    total = 0
    for p in pids:
        try:
            f = _stat_fields(p)
            # Fields 14..17 of stat (utime, stime, cutime, cstime); index 0 here is field 3.
            total += int(f[11]) + int(f[12])
            if children:
                total += int(f[13]) + int(f[14])
        except (OSError, ValueError, IndexError):
            pass
    return total


def host_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user)
    return sum(v[:8]) - v[3] - v[4]


def status(pids):
    rss = hwm = threads = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm += int(line.split()[1])
                    elif line.startswith("Threads:"):
                        threads += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return rss, hwm, threads


def pss(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except (OSError, ValueError):
            pass
    return total


def watch(root, out_path, max_seconds, ours=None):
    stop = [False]

    def on_signal(*_):
        stop[0] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    pids = tree(root)
    t0 = time.monotonic()
    c0 = ticks(pids)
    h0 = host_busy()
    o0 = ticks(tree(ours), children=True) if ours else 0
    rss_max = 0
    rss = hwm = threads = 0
    n = 0
    while not stop[0] and time.monotonic() - t0 < max_seconds:
        if n % 20 == 0:
            pids = tree(root)  # pick up helpers started meanwhile
        rss, hwm, threads = status(pids)
        rss_max = max(rss_max, rss)
        n += 1
        time.sleep(0.25)
    pids = tree(root)
    c1 = ticks(pids)
    h1 = host_busy()
    o1 = ticks(tree(ours), children=True) if ours else 0
    wall = time.monotonic() - t0
    rss, hwm, threads = status(pids)
    rss_max = max(rss_max, rss)
    result = {
        "cpu_pct": round(100.0 * (c1 - c0) / CLK_TCK / wall, 1) if wall > 0 else 0.0,
        "wall_s": round(wall, 3),
        "rss_max_kb": rss_max,
        "rss_end_kb": rss,
        "hwm_kb": hwm,
        "threads": threads,
    }
    if ours and wall > 0:
        other = (h1 - h0) - (o1 - o0)
        result["other_cpu_pct"] = round(max(0.0, 100.0 * other / CLK_TCK / wall), 1)
    with open(out_path, "w") as f:
        json.dump(result, f)
        f.write("\n")


def main(argv):
    if len(argv) >= 4 and argv[1] == "watch":
        watch(int(argv[2]), argv[3], float(argv[4]) if len(argv) > 4 else 600.0,
              int(argv[5]) if len(argv) > 5 else None)
        return 0
    if len(argv) == 3 and argv[1] == "rss":
        print(status(tree(int(argv[2])))[0])
        return 0
    if len(argv) == 3 and argv[1] == "pss":
        print(pss(tree(int(argv[2]))))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
