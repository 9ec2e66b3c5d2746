#!/usr/bin/env bash
# Scanning benchmark (issue #5): the cost of malware scanning in Portcullis, and Portcullis's
# ICAP RESPMOD with scanning against c-icap's virus_scan module with the same signatures.
#   1. one scan alone (bench/scan_bench: type detection + ClamAV, SHA-256), for reference;
#   2. clean 1 MiB downloads through the proxy, scanning on against off: unique content per
#      request (no cache can answer), one connection (latency), and the same file repeated
#      (the verdict cache);
#   3. ICAP RESPMOD with scanning: Portcullis against c-icap + virus_scan + clamav_mod,
#      unique and repeated bodies;
#   4. resident memory of each server with the signatures loaded.
# Writes the SCAN section of bench/RESULTS.md (between its markers, see bench/results_md.py;
# the rest of the file is left as it is). Not a test: run it by hand.
# Everything runs on 127.0.0.1 with configs and logs under bench/out/scan/; no system service
# is touched. Knobs: bench/README.md (Scanning).
set -euo pipefail
{ # bash reads the whole block before running it: edits to this file during a run are harmless

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
PY=${PYTHON:-python3}
BENCH_TAG=bench-scan
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"

# ------------------------------------------------------------------ settings
QUICK=${BENCH_QUICK:-0}
if [[ "$QUICK" == "1" ]]; then
  DURATION=${BENCH_DURATION:-3}
  MIN_TIME=${BENCH_SCAN_MIN_TIME:-0.2}
else
  DURATION=${BENCH_DURATION:-10}
  MIN_TIME=${BENCH_SCAN_MIN_TIME:-2}
fi
PARTS=${BENCH_SCAN_PARTS:-"micro proxy icap"}
CONNS=${BENCH_SCAN_CONNS:-32}               # proxy throughput cases
ICAP_SIZES=${BENCH_SCAN_ICAP_SIZES:-"1k 64k 1m"}
ICAP_CONNS=${BENCH_SCAN_ICAP_CONNS:-16}
ICAP_BODIES=${BENCH_SCAN_ICAP_BODIES:-"unique repeated"}
CLAMAV_DIR=${BENCH_CLAMAV_DIR:-/var/lib/clamav} # the official databases, when present
CICAP_THREADS=${BENCH_ICAP_CICAP_THREADS:-64}
PORT_BASE=${BENCH_PORT_BASE:-28080}
OUT=${BENCH_OUT:-"$BENCH/out"}
RESULTS=${BENCH_RESULTS:-"$BENCH/RESULTS.md"}
BUILD=${BENCH_BUILD:-auto}
PORTCULLIS=${BENCH_PORTCULLIS:-"$ROOT/build/release/src/app/portcullis"}
SCAN_BENCH=${BENCH_SCAN_BENCH:-"$ROOT/build/release/bench/scan_bench"}
CICAP=${BENCH_CICAP:-/usr/bin/c-icap}
CICAP_LIB=${BENCH_CICAP_LIB:-/usr/lib/x86_64-linux-gnu/c_icap}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
START_TIMEOUT=${BENCH_START_TIMEOUT:-300} # the official databases take a while to load
KEEP_LOGS=${BENCH_KEEP_LOGS:-0}
LABEL=${BENCH_SCAN_LABEL:-}                 # said above the tables (e.g. "machine busy")
ICAP_URL="http://bench.example/download.bin"

int_in "$DURATION" 1 600 || die "BENCH_DURATION must be whole seconds, 1..600 (got '$DURATION')"
int_in "$PORT_BASE" 1024 65000 || die "BENCH_PORT_BASE must be 1024..65000"
int_in "$CONNS" 1 4096 || die "BENCH_SCAN_CONNS must be 1..4096"
int_in "$START_TIMEOUT" 1 3600 || die "BENCH_START_TIMEOUT must be 1..3600 s"
int_in "$CICAP_THREADS" 1 4096 || die "BENCH_ICAP_CICAP_THREADS must be 1..4096"
[[ "$MIN_TIME" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "BENCH_SCAN_MIN_TIME must be seconds (e.g. 0.5)"
for c in $ICAP_CONNS; do int_in "$c" 1 4096 || die "BENCH_SCAN_ICAP_CONNS must be 1..4096"; done
for s in $ICAP_SIZES; do
  case $s in 1k | 64k | 1m) ;; *) die "unknown ICAP size '$s' (1k 64k 1m)" ;; esac
done
for b in $ICAP_BODIES; do
  case $b in unique | repeated) ;; *) die "unknown body kind '$b' (unique repeated)" ;; esac
done
for p in $PARTS; do
  case $p in micro | proxy | icap) ;; *) die "unknown part '$p' (micro proxy icap)" ;; esac
done
has_part() { [[ " $PARTS " == *" $1 "* ]]; }
for tool in taskset g++ gcc "$PY"; do command -v "$tool" >/dev/null || die "$tool not found"; done
if has_part proxy; then
  for tool in nginx wrk; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/bootstrap.sh bench)"
  done
fi
PATH="$PATH:/usr/sbin:/sbin"

if (($(nproc) >= 2)); then
  ON_SERVER=(taskset -c "$PROXY_CPU")
  ON_LOAD=(taskset -c "$LOAD_CPU")
  PLACEMENT="server under test on CPU $PROXY_CPU (its worker and its scan threads alike); nginx origin, wrk and the ICAP load generator on CPU $LOAD_CPU"
else
  ON_SERVER=()
  ON_LOAD=()
  PLACEMENT="single CPU: nothing pinned (numbers are not comparable with a 2-core run)"
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ------------------------------------------------------------------ workspace and cleanup
RUN="$OUT/scan"
mkdir -p "$OUT"
rm -rf -- "$RUN"
mkdir -p "$RUN"/{www,nginx/tmp,cicap,raw,signatures}
chmod 755 "$OUT" "$RUN" "$RUN/www"
META="$RUN/meta.tsv"
JSONL="$RUN/results.jsonl"
: >"$JSONL"

PIDS=()
CLEANUP_DIRS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do alive "$pid" && kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do stop_tree "$pid" 5; done
  rm -rf -- "$RUN/www" "${CLEANUP_DIRS[@]}"
  if [[ "$KEEP_LOGS" != "1" ]]; then
    for f in "$RUN"/portcullis*/access.log "$RUN"/cicap/access.log; do
      [[ -f "$f" ]] || continue
      echo "$(wc -l <"$f") lines" >"$f.summary"
      tail -n 20 "$f" >>"$f.summary"
      rm -f -- "$f"
    done
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'exit 143' TERM

meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }

# ------------------------------------------------------------------ build
build_portcullis "$RUN/build.log" portcullis scan_bench
[[ "$PC_STATE" == ok ]] || die "Portcullis cannot be measured: $PC_MSG"
[[ -z "$PC_MSG" ]] || log "warning: $PC_MSG"
g++ -O2 -std=c++20 -Wall -o "$RUN/icap_load" "$BENCH/icap_load.cpp" 2>"$RUN/icap_load-build.log" ||
  die "could not build bench/icap_load.cpp (see $RUN/icap_load-build.log)"
LOAD="$RUN/icap_load"

# The signatures: the shipped set, then the official databases when CLAMAV_DIR has them.
# Portcullis reads them from both directories; c-icap's clamav_mod reads one directory,
# libclamav's compiled-in one (cl_retdbdir): a preloaded shim points it at a folder with
# links to the same files, so both servers scan with exactly the same signatures.
SHIPPED="$ROOT/signatures/clamav"
SIGS="$RUN/signatures"
for f in "$SHIPPED"/*; do ln -s "$f" "$SIGS/"; done
OFFICIAL=""
if [[ -d "$CLAMAV_DIR" ]]; then
  for f in "$CLAMAV_DIR"/*.cvd "$CLAMAV_DIR"/*.cld "$CLAMAV_DIR"/*.cud; do
    [[ -f "$f" ]] || continue
    OFFICIAL+="${OFFICIAL:+, }$(basename "$f") ($(du -m "$f" | cut -f1) MB)"
  done
  # Everything libclamav would load from that directory (local .ndb, .ign2, ... too).
  for f in "$CLAMAV_DIR"/*; do [[ -f "$f" && ! -e "$SIGS/$(basename "$f")" ]] && ln -s "$f" "$SIGS/"; done
fi
cat >"$RUN/dbdir_shim.c" <<'EOF'
/* Preloaded into c-icap: libclamav's database directory is $BENCH_CLAMAV_DBDIR. */
#include <stdlib.h>
const char *cl_retdbdir(void) {
  const char *d = getenv("BENCH_CLAMAV_DBDIR");
  return d ? d : "/var/lib/clamav";
}
EOF
gcc -shared -fPIC -O2 -o "$RUN/dbdir_shim.so" "$RUN/dbdir_shim.c" ||
  die "could not build the c-icap database-directory shim"

CI_STATE=ok
CI_MSG=""
if has_part icap; then
  if [[ ! -x "$CICAP" || ! -f "$CICAP_LIB/virus_scan.so" || ! -f "$CICAP_LIB/clamav_mod.so" ]]; then
    CI_STATE=skipped
    CI_MSG="c-icap's virus_scan is not installed ($CICAP, $CICAP_LIB/virus_scan.so, clamav_mod.so; scripts/bootstrap.sh bench)"
    log "$CI_MSG"
  fi
fi

# ------------------------------------------------------------------ metadata
pc_version=$(timeout 5 "$PORTCULLIS" version 2>&1 | head -n 1) || pc_version="unknown"
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then # .git is a file in a worktree
  pc_version="$pc_version (commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
  if [[ -n "$(git -C "$ROOT" status --porcelain -- src 2>/dev/null)" ]]; then
    pc_version+=", working tree with uncommitted changes under src/"
  fi
  pc_version+=")"
fi
{
  printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'quick\t%s\n' "$QUICK"
  printf 'label\t%s\n' "$LABEL"
  printf 'duration\t%s\n' "$DURATION"
  printf 'nproc\t%s\n' "$(nproc)"
  printf 'cpu\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  printf 'kernel\t%s\n' "$(uname -r)"
  printf 'os\t%s\n' "$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release 2>/dev/null)"
  printf 'placement\t%s\n' "$PLACEMENT"
  printf 'loadavg_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'version_portcullis\t%s\n' "$pc_version"
  printf 'version_cicap\t%s\n' "$([[ -x "$CICAP" ]] && "$CICAP" -V 2>&1 | head -n 1 || echo 'not installed')"
  printf 'version_cicap_modules\t%s\n' "$(dpkg-query -W -f='${Version}' libc-icap-mod-virus-scan 2>/dev/null || echo '?')"
  printf 'version_libclamav\t%s\n' "$(dpkg-query -W -f='${Version}' libclamav12 2>/dev/null || echo '?')"
  printf 'official\t%s\n' "$OFFICIAL"
  printf 'clamav_dir\t%s\n' "$CLAMAV_DIR"
  printf 'conns\t%s\n' "$CONNS"
  printf 'cicap_threads\t%s\n' "$CICAP_THREADS"
  printf 'ci_state\t%s\n' "$CI_STATE"
  printf 'ci_msg\t%s\n' "$CI_MSG"
  printf 'parts\t%s\n' "$PARTS"
} >"$META"

# ------------------------------------------------------------------ 1. one scan alone
if has_part micro; then
  if [[ -x "$SCAN_BENCH" ]]; then
    log "scan_bench: one scan alone (engine load first), ${MIN_TIME} s per benchmark"
    PC_CLAMAV_DIR="$CLAMAV_DIR" timeout 1800 "${ON_SERVER[@]}" "$SCAN_BENCH" \
      --benchmark_min_time="$MIN_TIME" --benchmark_format=json \
      >"$RUN/raw/scan_bench.json" 2>"$RUN/raw/scan_bench.err" ||
      log "scan_bench failed: see $RUN/raw/scan_bench.err"
  else
    log "no $SCAN_BENCH (built when libbenchmark-dev is installed): one scan alone not measured"
  fi
fi

# ------------------------------------------------------------------ servers
watch_start() { # pid tag
  start_bg "raw/$2.procmon" "${ON_LOAD[@]}" "$PY" "$BENCH/procmon.py" watch "$1" \
    "$RUN/raw/$2.procmon.json" $((DURATION + 120)) "$$"
  WATCH_PID=$LAST_PID
  sleep 0.3 # first sample before the load starts
}
watch_stop() { stop_pid "$WATCH_PID" 5; }

# Portcullis: `portcullis run -c DIR/portcullis.toml`, one worker. Sets TARGET_PORT, TARGET_PID.
start_portcullis() { # dir port-offset kind(proxy|icap) scan(on|off)
  local d="$RUN/$1" proto=""
  mkdir -p "$d"
  TARGET_PORT=$(free_port $((PORT_BASE + $2)))
  [[ "$3" == icap ]] && proto='protocol = "icap"'
  cat >"$d/portcullis.toml" <<EOF
[gateway]
name = "portcullis"
workers = 1
state_dir = "$d"

[[listeners]]
name = "$3"
address = "127.0.0.1"
port = $TARGET_PORT
$proto

[proxy]
client_networks = ["127.0.0.0/8"]
max_connections = 20000
max_connections_per_client = 20000

[icap]
client_networks = ["127.0.0.0/8"]

# [scan] defaults otherwise: the verdict cache on, one scan thread per core.
[scan]
enabled = $([[ "$4" == on ]] && echo true || echo false)
clamav_dir = "$CLAMAV_DIR"

$(gateway_config_tail "$d")
EOF
  start_bg "$1" "${ON_SERVER[@]}" "$PORTCULLIS" run -c "$d/portcullis.toml"
  TARGET_PID=$LAST_PID
}

start_cicap() { # port-offset
  local d="$RUN/cicap" scratch="$RUN/cicap"
  TARGET_PORT=$(free_port $((PORT_BASE + $1)))
  # libclamav's scratch files where Portcullis keeps its own by default (a private folder
  # in /dev/shm when it is writable): each scan makes a folder there, which costs tens of
  # microseconds on a disk file system. The same place for both, so that the comparison is
  # of the servers, not of where their scratch folders are.
  if [[ -d /dev/shm && -w /dev/shm ]]; then
    scratch=$(mktemp -d /dev/shm/bench-cicap-scratch.XXXXXX)
    CLEANUP_DIRS+=("$scratch")
  fi
  # As icap.sh's c-icap (one process, enough threads for every connection, bodies in memory
  # up to 2 MiB, access log on), with the virus_scan service and the clamav_mod engine. Its
  # virus_scan settings are Debian's (/etc/c-icap/virus_scan.conf), which scan every type
  # this benchmark sends; 204 for a clean body when the client allows it.
  cat >"$d/c-icap.conf" <<EOF
PidFile $d/c-icap.pid
CommandsSocket $d/c-icap.ctl
Port 127.0.0.1:$TARGET_PORT
Timeout 300
MaxKeepAliveRequests 0
KeepAliveTimeout 600
StartServers 1
MaxServers 1
MinSpareThreads 1
MaxSpareThreads $CICAP_THREADS
ThreadsPerChild $CICAP_THREADS
MaxRequestsPerChild 0
TmpDir $d
MaxMemObject 2097152
Pipelining on
DebugLevel 1
ModulesDir $CICAP_LIB
ServicesDir $CICAP_LIB
TemplateDir /usr/share/c_icap/templates/
TemplateDefaultLanguage en
LoadMagicFile /etc/c-icap/c-icap.magic
ServerLog $d/server.log
AccessLog $d/access.log
Module common clamav_mod.so
clamav_mod.TmpDir $scratch
clamav_mod.MaxScanSize 100M
Service virus_scan virus_scan.so
virus_scan.ScanFileTypes TEXT DATA EXECUTABLE ARCHIVE GIF JPEG MSOFFICE
virus_scan.SendPercentData 5
virus_scan.StartSendPercentDataAfter 2M
virus_scan.MaxObjectSize 5M
virus_scan.Allow204Responces on
virus_scan.DefaultEngine clamav
EOF
  start_bg cicap env LD_PRELOAD="$RUN/dbdir_shim.so" BENCH_CLAMAV_DBDIR="$SIGS" \
    "${ON_SERVER[@]}" "$CICAP" -N -D -f "$d/c-icap.conf"
  TARGET_PID=$LAST_PID
}

# Waits until a server accepts connections and passes `check` (which may fail while the
# signatures are still loading). Sets START_S; false with START_ERR set.
await_ready() { # name port pid check-cmd...
  local name=$1 port=$2 pid=$3 t0=$EPOCHREALTIME i out=""
  shift 3
  START_ERR=""
  for ((i = 0; i < START_TIMEOUT * 2; i++)); do
    if ! alive "$pid"; then
      START_ERR="exited before it was ready: $(tail -n 3 "$RUN/$name.err" 2>/dev/null | tr '\n|' ' /' | cut -c1-300)"
      return 1
    fi
    if port_open "$port" && out=$("$@" 2>&1); then
      START_S=$("$PY" -c 'import sys; print("%.1f" % (float(sys.argv[1]) - float(sys.argv[2])))' \
        "$EPOCHREALTIME" "$t0")
      return 0
    fi
    sleep 0.5
  done
  START_ERR="not ready within $START_TIMEOUT s: ${out:0:300}"
  return 1
}

# ------------------------------------------------------------------ 2. proxy
head -c $((1 << 20)) /dev/urandom >"$RUN/www/1m.bin"
# shellcheck disable=SC2016  # the EICAR test string, literally
printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' >"$RUN/www/eicar.com"
chmod 644 "$RUN"/www/*

# GET through a proxy: status and body length (and, for a threat, that it was refused).
proxy_get() { # port path want-status want-length
  timeout 30 "$PY" - "$@" "$ORIGIN" <<'EOF'
import http.client, sys
port, path, status, length, origin = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
c.request("GET", "http://" + origin + path, headers={"Host": origin})
r = c.getresponse()
body = r.read()
if r.status != status or (length >= 0 and len(body) != length):
    sys.exit(f"{path}: status {r.status}, {len(body)} body bytes")
EOF
}
proxy_ready() { # port scan(on|off)
  proxy_get "$1" /u/1m.bin 200 $(((1 << 20) + 32)) &&
    if [[ "$2" == on ]]; then proxy_get "$1" /eicar.com 403 -1; else proxy_get "$1" /eicar.com 200 68; fi
}

# The scan fields of the access records written since line `from` of a log.
count_scans() { # access-log from-line out-json
  sleep 0.3 # the writer wakes every 100 ms
  "$PY" - "$@" <<'EOF'
import json, sys
path, start, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
n = scanned = cached = other = 0
try:
    with open(path) as f:
        for i, line in enumerate(f):
            if i < start:
                continue
            try:
                r = json.loads(line)
            except ValueError:
                continue
            n += 1
            if r.get("scan") == "clean":
                if r.get("scan_cached"):
                    cached += 1
                else:
                    scanned += 1
            else:
                other += 1
except OSError:
    pass
json.dump({"records": n, "scanned": scanned, "cached": cached, "other": other}, open(out, "w"))
EOF
}
lines_of() { if [[ -f "$1" ]]; then wc -l <"$1"; else echo 0; fi; }

run_wrk() { # target port pid path conns tag
  local t=$1 port=$2 pid=$3 path=$4 c=$5 tag=$6
  watch_start "$pid" "$tag"
  BENCH_PATH="http://$ORIGIN$path" BENCH_HOST="$ORIGIN" timeout --foreground -k 5 $((DURATION + 90)) \
    "${ON_LOAD[@]}" wrk -t1 -c"$c" -d"${DURATION}s" --timeout 60s --latency -s "$BENCH/request.lua" \
    "http://127.0.0.1:$port/" >"$RUN/raw/$tag.wrk" 2>&1 || true
  watch_stop
  "$PY" "$BENCH/report.py" wrk "$t" "$tag" "$c" "$RUN/raw/$tag.wrk" "$RUN/raw/$tag.procmon.json" "$JSONL"
  grep -E 'Requests/sec|Non-2xx|Socket errors' "$RUN/raw/$tag.wrk" | tr -s ' ' | paste -sd ';' |
    sed "s|^|  $tag: |" >&2 || true
}

# One proxy case on one of the two processes.
proxy_case() { # off|on port pid name path conns
  local log0
  log "proxy, scanning $1: $4 1 MiB downloads x $6 connections, ${DURATION} s"
  log0=$(lines_of "$RUN/portcullis-on/access.log")
  run_wrk "proxy-$1" "$2" "$3" "$5" "$6" "proxy-$4-$1"
  if [[ "$1" == on ]]; then
    count_scans "$RUN/portcullis-on/access.log" "$log0" "$RUN/raw/proxy-$4-on.scans.json"
  fi
}

bench_proxy() {
  local n="$RUN/nginx" off_port off_pid on_port on_pid i=0 case name path c
  local nginx_port
  nginx_port=$(free_port $((PORT_BASE + 30)))
  # /u/...: the file after a 32-hex-digit prefix unique to each request ($request_id through
  # the addition module; the file itself still goes out with sendfile). Chunked.
  write_nginx_conf "$n" "$nginx_port" "$RUN/www" '        location = /stamp { internal; default_type text/plain; return 200 "$request_id"; }
        location /u/ {
            alias '"$RUN"'/www/;
            addition_types *;
            add_before_body /stamp;
        }'
  start_bg nginx "${ON_LOAD[@]}" nginx -e "$n/error.log" -p "$n/" -c "$n/nginx.conf"
  local ngx=$LAST_PID
  wait_port "$nginx_port" "$ngx" 15 || die "nginx did not start: $(tail -n 5 "$n/error.log" 2>/dev/null)"
  ORIGIN="127.0.0.1:$nginx_port"

  start_portcullis portcullis-off 31 proxy off
  off_port=$TARGET_PORT off_pid=$TARGET_PID
  if ! await_ready portcullis-off "$off_port" "$off_pid" proxy_ready "$off_port" off; then
    meta proxy_error "Portcullis without scanning: $START_ERR"
    return 0
  fi
  meta start_proxy_off "$START_S"
  start_portcullis portcullis-on 32 proxy on
  on_port=$TARGET_PORT on_pid=$TARGET_PID
  if ! await_ready portcullis-on "$on_port" "$on_pid" proxy_ready "$on_port" on; then
    meta proxy_error "Portcullis with scanning: $START_ERR"
    return 0
  fi
  meta start_proxy_on "$START_S"
  meta engines "$(grep -m1 -o 'scanning engines loaded: .*' "$RUN/portcullis-on.err" | cut -d' ' -f4-)"
  # Warm both up (and put the repeated file in the verdict cache), then their memory.
  for pp in "$off_port:$off_pid" "$on_port:$on_pid"; do
    BENCH_PATH="http://$ORIGIN/1m.bin" BENCH_HOST="$ORIGIN" timeout 60 "${ON_LOAD[@]}" wrk -t1 -c4 -d1s \
      -s "$BENCH/request.lua" "http://127.0.0.1:${pp%%:*}/" >/dev/null 2>&1 || true
  done
  meta rss_proxy_off "$("$PY" "$BENCH/procmon.py" rss "$off_pid")"
  meta rss_proxy_on "$("$PY" "$BENCH/procmon.py" rss "$on_pid")"

  # Cases: name path connections. The scanning process's access-log lines of each case are
  # counted (scanned / from the cache) to show what the case measured.
  for case in "unique:/u/1m.bin:$CONNS" "latency:/u/1m.bin:1" "repeated:/1m.bin:$CONNS"; do
    IFS=: read -r name path c <<<"$case"
    if ! alive "$off_pid" || ! alive "$on_pid"; then break; fi
    if ((i++ % 2 == 0)); then
      proxy_case off "$off_port" "$off_pid" "$name" "$path" "$c"
      proxy_case on "$on_port" "$on_pid" "$name" "$path" "$c"
    else
      proxy_case on "$on_port" "$on_pid" "$name" "$path" "$c"
      proxy_case off "$off_port" "$off_pid" "$name" "$path" "$c"
    fi
  done
  for pp in "off:$off_pid" "on:$on_pid"; do
    if ! alive "${pp#*:}"; then meta proxy_error "Portcullis (scanning ${pp%%:*}) exited during the run"; fi
    stop_pid "${pp#*:}" 10
  done
  stop_pid "$ngx" 5
}

# ------------------------------------------------------------------ 3. ICAP
# One RESPMOD of a 64 KiB body with EICAR in its middle: the server must not let it through
# (not 204, no echo); and a clean one must pass. Proves the server scans this benchmark's
# bodies with the shared signatures.
icap_ready() { # port service
  timeout 30 "$PY" - "$@" <<'EOF' || return 1
import os, socket, sys
port, service = int(sys.argv[1]), sys.argv[2]
eicar = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

def respmod(body):
    req = b"GET http://bench.example/x HTTP/1.1\r\nHost: bench.example\r\n\r\n"
    res = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % len(body)
    head = (b"RESPMOD icap://127.0.0.1:%d/%s ICAP/1.0\r\nHost: 127.0.0.1\r\nAllow: 204\r\n"
            b"Encapsulated: req-hdr=0, res-hdr=%d, res-body=%d\r\n\r\n"
            % (port, service.encode(), len(req), len(req) + len(res)))
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(head + req + res + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        more = s.recv(65536)
        if not more:
            break
        data += more
    status = data.split(b" ", 2)[1] if data.startswith(b"ICAP/1.0 ") else b"?"
    s.close()
    return status

clean = os.urandom(65536)
bad = clean[:30000] + eicar + clean[30000:]
a, b = respmod(clean), respmod(bad)
if a != b"204" or b == b"204":
    sys.exit(f"clean body answered {a.decode()}, body with EICAR answered {b.decode()}")
EOF
}

run_icap() { # target port pid service size conns body tag
  local t=$1 port=$2 pid=$3 service=$4 size=$5 c=$6 body=$7 tag=$8 uniq=() log0
  [[ "$body" == unique ]] && uniq=(--unique)
  log0=$(lines_of "$RUN/portcullis-icap/access.log")
  watch_start "$pid" "$tag"
  timeout --foreground -k 5 $((DURATION + 90)) "${ON_LOAD[@]}" "$LOAD" --port "$port" \
    --service "$service" --method RESPMOD --mode nopreview --size "$size" --conns "$c" \
    --duration "$DURATION" --warmup 0.5 --timeout 60 --url "$ICAP_URL" "${uniq[@]}" \
    >"$RUN/raw/$tag.json" 2>"$RUN/raw/$tag.err" || true
  watch_stop
  [[ "$t" == portcullis ]] && count_scans "$RUN/portcullis-icap/access.log" "$log0" "$RUN/raw/$tag.scans.json"
  printf '%s\t%s\t%s\t%s\t%s\n' "$tag" "$t" "$body" "$size" "$c" >>"$RUN/icap-cases.tsv"
  "$PY" - "$RUN/raw/$tag.json" "$RUN/raw/$tag.procmon.json" <<'EOF' >&2 || true
import json, sys
try:
    r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
    o = json.load(open(sys.argv[2])).get("other_cpu_pct", -1)
    print(f"    {r['tps']:,.0f} tx/s, p99 {r['p99_ms']:.2f} ms, 204/200 {r['s204']}/{r['s200']}, "
          f"errors {r['errors']}" + (f" ({r['first_error']})" if r['first_error'] else "")
          + f"; other CPU {o:.0f}%")
except Exception as e:
    print(f"    no result ({e})")
EOF
}

bench_icap() {
  local p_port p_pid c_port c_pid i=0 body size c order spec t port pid svc
  : >"$RUN/icap-cases.tsv"
  start_portcullis portcullis-icap 33 icap on
  p_port=$TARGET_PORT p_pid=$TARGET_PID
  if ! await_ready portcullis-icap "$p_port" "$p_pid" icap_ready "$p_port" respmod; then
    meta icap_error "Portcullis: $START_ERR"
    return 0
  fi
  meta start_icap_portcullis "$START_S"
  meta engines "$(grep -m1 -o 'scanning engines loaded: .*' "$RUN/portcullis-icap.err" | cut -d' ' -f4-)"
  if [[ "$CI_STATE" != ok ]]; then
    meta icap_error "$CI_MSG"
    return 0
  fi
  start_cicap 34
  c_port=$TARGET_PORT c_pid=$TARGET_PID
  if ! await_ready cicap "$c_port" "$c_pid" icap_ready "$c_port" virus_scan; then
    meta icap_error "c-icap: $START_ERR (see bench/out/scan/cicap/server.log)"
    return 0
  fi
  meta start_icap_cicap "$START_S"
  # Warm-up, then memory with the signatures loaded.
  for spec in "portcullis:$p_port:$p_pid:/respmod" "cicap:$c_port:$c_pid:/virus_scan"; do
    IFS=: read -r t port pid svc <<<"$spec"
    timeout 60 "${ON_LOAD[@]}" "$LOAD" --port "$port" --service "$svc" --method RESPMOD \
      --mode nopreview --size 64k --conns 4 --duration 1 --unique >/dev/null 2>&1 || true
    meta "rss_icap_$t" "$("$PY" "$BENCH/procmon.py" rss "$pid")"
    meta "pss_icap_$t" "$("$PY" "$BENCH/procmon.py" pss "$pid")"
  done
  for body in $ICAP_BODIES; do
    for size in $ICAP_SIZES; do
      for c in $ICAP_CONNS; do
        order=("portcullis:$p_port:$p_pid:/respmod" "cicap:$c_port:$c_pid:/virus_scan")
        if ((i++ % 2 == 1)); then order=("${order[1]}" "${order[0]}"); fi
        for spec in "${order[@]}"; do
          IFS=: read -r t port pid svc <<<"$spec"
          alive "$pid" || continue
          log "ICAP $t: RESPMOD $body bodies of $size x $c connections, ${DURATION} s"
          run_icap "$t" "$port" "$pid" "$svc" "$size" "$c" "$body" "icap-$t-$body-$size-$c"
        done
      done
    done
  done
  alive "$p_pid" || meta icap_error "Portcullis exited during the run (bench/out/scan/portcullis-icap.err)"
  alive "$c_pid" || meta icap_error "c-icap exited during the run (bench/out/scan/cicap/server.log)"
  stop_tree "$p_pid" 10
  stop_tree "$c_pid" 10
}

has_part proxy && bench_proxy
has_part icap && bench_icap
meta loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"

# ------------------------------------------------------------------ report
"$PY" "$BENCH/scan_report.py" "$RUN" >"$RUN/section.md"
replace_section "$RESULTS" SCAN bench/scan.sh "$RUN/section.md"
log "wrote the scan section of $RESULTS"
exit 0
}
