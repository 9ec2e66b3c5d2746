#!/usr/bin/env bash
# Benchmark: Portcullis against Squid, tinyproxy and direct-to-origin nginx on this machine.
# Writes bench/RESULTS.md. Not a test: run it by hand or with `make bench`.
# Everything runs on 127.0.0.1 with configs and folders written under bench/out/run/; no
# system service is touched. See bench/README.md for the knobs (BENCH_* variables).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
PY=${PYTHON:-python3}
BENCH_TAG=bench
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"

# ------------------------------------------------------------------ settings
QUICK=${BENCH_QUICK:-0}
if [[ "$QUICK" == "1" ]]; then
  DURATION=${BENCH_DURATION:-3}
  SIZES=${BENCH_SIZES:-"1k 16m"}
  CONNS=${BENCH_CONNS:-"32"}
  TUNNEL_CONNS=${BENCH_TUNNEL_CONNS-"32"}
  IDLE_CONNS=${BENCH_IDLE_CONNS:-2000}
else
  DURATION=${BENCH_DURATION:-10}
  SIZES=${BENCH_SIZES:-"0 1k 64k 1m 16m"}
  CONNS=${BENCH_CONNS:-"32 256"}
  TUNNEL_CONNS=${BENCH_TUNNEL_CONNS-"32 256"}
  IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
fi
PROXIES=${BENCH_PROXIES:-"direct squid tinyproxy portcullis"}
# Portcullis with a full policy (bench/gen_policy.py: 10,000 rules, a 5M-domain category
# database) against Portcullis without one, case by case. Off in quick mode: the first run
# generates the database (about 10 s; kept in $OUT/policy and reused), and the cases add
# 2 x (cases) x (duration + 1 s).
if [[ "$QUICK" == "1" ]]; then POLICY=${BENCH_POLICY:-0}; else POLICY=${BENCH_POLICY:-1}; fi
POLICY_CASES=${BENCH_POLICY_CASES:-"0:32 0:256 1k:32 1k:256"}
POLICY_DOMAINS=${BENCH_POLICY_DOMAINS:-5000000}
POLICY_RULES=${BENCH_POLICY_RULES:-10000}
IDLE_TARGETS=${BENCH_IDLE_TARGETS:-"squid portcullis"}
PORT_BASE=${BENCH_PORT_BASE:-28080}   # below the ephemeral range
OUT=${BENCH_OUT:-"$BENCH/out"}
RESULTS=${BENCH_RESULTS:-"$BENCH/RESULTS.md"}
POLICY_DIR=$(realpath -m -- "${BENCH_POLICY_DIR:-"$OUT/policy"}") # generated once, reused while its STAMP matches
BUILD=${BENCH_BUILD:-auto}             # auto: configure if needed, then incremental build; 0: never
PORTCULLIS=${BENCH_PORTCULLIS:-"$ROOT/build/release/src/app/portcullis"}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
START_TIMEOUT=${BENCH_START_TIMEOUT:-15}  # seconds for a server to accept connections
KEEP_LOGS=${BENCH_KEEP_LOGS:-0}

int_in "$DURATION" 1 600 || die "BENCH_DURATION must be whole seconds, 1..600 (got '$DURATION')"
int_in "$IDLE_CONNS" 0 50000 || die "BENCH_IDLE_CONNS must be 0..50000"
int_in "$PORT_BASE" 1024 65000 || die "BENCH_PORT_BASE must be 1024..65000"
if read -r eph_lo eph_hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null &&
  ((PORT_BASE + 8 >= eph_lo && PORT_BASE <= eph_hi)); then
  log "warning: BENCH_PORT_BASE $PORT_BASE is in the ephemeral range $eph_lo-$eph_hi;" \
    "a client socket may hold a port a server needs"
fi
for s in $SIZES; do
  case $s in 0 | 1k | 64k | 1m | 16m) ;; *) die "unknown size '$s' (0 1k 64k 1m 16m)" ;; esac
done
[[ "$POLICY" == 0 || "$POLICY" == 1 ]] || die "BENCH_POLICY must be 0 or 1"
int_in "$POLICY_DOMAINS" 0 100000000 || die "BENCH_POLICY_DOMAINS must be 0..100000000"
int_in "$POLICY_RULES" 0 1000000 || die "BENCH_POLICY_RULES must be 0..1000000"
for pc_case in $POLICY_CASES; do
  [[ "$pc_case" =~ ^(0|1k|64k|1m|16m):([0-9]+)$ ]] && int_in "${BASH_REMATCH[2]}" 1 4096 ||
    die "BENCH_POLICY_CASES: '$pc_case' is not SIZE:CONNS (e.g. 1k:256)"
done
for c in $CONNS $TUNNEL_CONNS; do
  int_in "$c" 1 4096 || die "connection counts must be 1..4096"
done
for t in $PROXIES; do
  case $t in direct | squid | tinyproxy | portcullis) ;; *) die "unknown target '$t'" ;; esac
done
for tool in nginx wrk taskset g++ "$PY"; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/bootstrap.sh bench installs the peers)"
done
PATH="$PATH:/usr/sbin:/sbin"

# Two cores or more: proxy alone on PROXY_CPU, origin + load generators on LOAD_CPU.
NPROC=$(nproc)
if ((NPROC >= 2)); then
  ON_PROXY=(taskset -c "$PROXY_CPU")
  ON_LOAD=(taskset -c "$LOAD_CPU")
  PLACEMENT="process under test on CPU $PROXY_CPU; nginx origin, wrk and the load client on CPU $LOAD_CPU"
else
  ON_PROXY=()
  ON_LOAD=()
  PLACEMENT="single CPU: nothing pinned (numbers are not comparable with a 2-core run)"
fi

# Descriptor limit: 10,000 idle connections need that many on each side.
want_fds=$((IDLE_CONNS + 4096))
hard=$(ulimit -Hn)
if [[ "$hard" != "unlimited" ]] && ((hard < want_fds)); then
  log "warning: hard descriptor limit $hard < $want_fds; idle case may be capped"
  ulimit -n "$hard"
else
  ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$hard"
fi
NOFILE=$(ulimit -n)

# ------------------------------------------------------------------ workspace and cleanup
RUN="$OUT/run"
mkdir -p "$OUT"
rm -rf -- "$RUN"
mkdir -p "$RUN"/{www,nginx/tmp,squid,tinyproxy,portcullis,raw}
chmod 755 "$OUT" "$RUN" "$RUN/www"
JSONL="$RUN/results.jsonl"
META="$RUN/meta.tsv"
: >"$JSONL"

PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do alive "$pid" && kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do stop_pid "$pid" 5; done
  rm -rf -- "$RUN/www"
  if [[ "$KEEP_LOGS" != "1" ]]; then
    # Access logs of millions of requests: keep only their tails.
    for f in "$RUN"/squid/access.log "$RUN"/portcullis*/access.log "$RUN"/tinyproxy/tinyproxy.log; do
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

# ------------------------------------------------------------------ build
PC_STATE=ok
PC_MSG=""
if [[ " $PROXIES " == *" portcullis "* ]]; then build_portcullis "$RUN/build.log"; fi

# The full policy for the with-policy case: generated once into $POLICY_DIR, then reused.
prepare_policy "$PROXIES" BENCH_PROXIES

g++ -O2 -std=c++20 -Wall -o "$RUN/loadgen" "$BENCH/loadgen.cpp" 2>"$RUN/loadgen-build.log" ||
  die "could not build bench/loadgen.cpp (see $RUN/loadgen-build.log)"
LOADGEN="$RUN/loadgen"

# ------------------------------------------------------------------ metadata
first_line() { "$@" 2>&1 | head -n 1 | tr -d '\r' || true; }
pc_version="not built"
if [[ -x "$PORTCULLIS" ]]; then
  pc_version=$(timeout 5 "$PORTCULLIS" version 2>&1 | head -n 1) ||
    pc_version=$(timeout 5 "$PORTCULLIS" --version 2>&1 | head -n 1) || pc_version="unknown"
  [[ -n "$pc_version" ]] || pc_version="unknown"
  if [[ -d "$ROOT/.git" ]]; then
    pc_version="$pc_version (commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
  fi
fi
{
  printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'quick\t%s\n' "$QUICK"
  printf 'duration\t%s\n' "$DURATION"
  printf 'nproc\t%s\n' "$NPROC"
  printf 'cpu\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  printf 'kernel\t%s\n' "$(uname -r)"
  printf 'os\t%s\n' "$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release 2>/dev/null)"
  printf 'placement\t%s\n' "$PLACEMENT"
  printf 'loadavg_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'version_portcullis\t%s\n' "$pc_version"
  printf 'version_squid\t%s\n' "$(command -v squid >/dev/null && first_line squid -v || echo 'not installed')"
  printf 'version_tinyproxy\t%s\n' "$(command -v tinyproxy >/dev/null && first_line tinyproxy -v || echo 'not installed')"
  printf 'version_nginx\t%s\n' "$(first_line nginx -v)"
  printf 'version_wrk\t%s\n' "$(first_line wrk -v)"
  printf 'targets\t%s\n' "$PROXIES"
  printf 'sizes\t%s\n' "$SIZES"
  printf 'conns\t%s\n' "$CONNS"
  printf 'tunnel_conns\t%s\n' "$TUNNEL_CONNS"
  printf 'idle_conns\t%s\n' "$IDLE_CONNS"
  printf 'idle_targets\t%s\n' "$( ((IDLE_CONNS > 0)) && echo "$IDLE_TARGETS")"
  printf 'policy\t%s\n' "$POLICY_STATE"
  printf 'policy_msg\t%s\n' "$POLICY_MSG"
  printf 'policy_cases\t%s\n' "$POLICY_CASES"
  printf 'policy_rules\t%s\n' "$POLICY_RULES"
  printf 'policy_domains\t%s\n' "$POLICY_DOMAINS"
} >"$META"

# ------------------------------------------------------------------ origin (nginx)
log "generating origin files"
: >"$RUN/www/0.bin"
head -c 1024 /dev/urandom >"$RUN/www/1k.bin"
head -c 65536 /dev/urandom >"$RUN/www/64k.bin"
head -c $((1 << 20)) /dev/urandom >"$RUN/www/1m.bin"
head -c $((16 << 20)) /dev/urandom >"$RUN/www/16m.bin"
chmod 644 "$RUN"/www/*.bin

NGINX_PORT=$(free_port "$PORT_BASE")
N="$RUN/nginx"
write_nginx_conf "$N" "$NGINX_PORT" "$RUN/www"
log "starting nginx on 127.0.0.1:$NGINX_PORT"
start_bg nginx "${ON_LOAD[@]}" nginx -e "$N/error.log" -p "$N/" -c "$N/nginx.conf"
NGINX_PID=$LAST_PID
wait_port "$NGINX_PORT" "$NGINX_PID" "$START_TIMEOUT" ||
  die "nginx did not start: $(tail -n 5 "$N/error.log" "$RUN/nginx.err" 2>/dev/null)"
ORIGIN="127.0.0.1:$NGINX_PORT"

# ------------------------------------------------------------------ proxies
# Each start_* sets TARGET_PID and TARGET_PORT, or returns non-zero with START_ERR set.
start_squid() {
  command -v squid >/dev/null || { START_ERR="squid is not installed"; return 1; }
  local d="$RUN/squid"
  TARGET_PORT=$(free_port $((PORT_BASE + 1)))
  cat >"$d/squid.conf" <<EOF
http_port 127.0.0.1:$TARGET_PORT
workers 1
pid_filename $d/squid.pid
cache_log $d/cache.log
access_log stdio:$d/access.log squid
cache_store_log none
coredump_dir $d
cache deny all
max_filedescriptors $NOFILE
shutdown_lifetime 1 seconds
logfile_rotate 0
netdb_filename none
pinger_enable off
acl bench_client src 127.0.0.1/32
acl bench_origin_port port $NGINX_PORT
acl CONNECT method CONNECT
http_access allow CONNECT bench_client bench_origin_port
http_access deny CONNECT
http_access allow bench_client
http_access deny all
EOF
  # As root, Squid switches to its own user; that user must be able to write its logs.
  if [[ $(id -u) -eq 0 ]] && id proxy >/dev/null 2>&1; then chown -R proxy "$d"; fi
  start_bg "$PROC_NAME" "${ON_PROXY[@]}" squid -N -f "$d/squid.conf"
  TARGET_PID=$LAST_PID
}

start_tinyproxy() {
  command -v tinyproxy >/dev/null || { START_ERR="tinyproxy is not installed"; return 1; }
  local d="$RUN/tinyproxy"
  TARGET_PORT=$(free_port $((PORT_BASE + 2)))
  # tinyproxy has no access log: its per-connection log lines (LogLevel Connect) are each
  # written with an fsync, which would measure the disk, so it logs warnings only.
  cat >"$d/tinyproxy.conf" <<EOF
Port $TARGET_PORT
Listen 127.0.0.1
Timeout 600
MaxClients 4096
Allow 127.0.0.1
ConnectPort $NGINX_PORT
LogFile "$d/tinyproxy.log"
LogLevel Warning
PidFile "$d/tinyproxy.pid"
EOF
  if [[ $(id -u) -eq 0 ]] && id nobody >/dev/null 2>&1; then chown -R nobody "$d"; fi
  start_bg "$PROC_NAME" "${ON_PROXY[@]}" tinyproxy -d -c "$d/tinyproxy.conf"
  TARGET_PID=$LAST_PID
}

start_portcullis() { # PC_DIR (default $RUN/portcullis), PC_POLICY_FILE (default none)
  if [[ "$PC_STATE" != ok ]]; then START_ERR="$PC_MSG"; return 1; fi
  local d=${PC_DIR:-"$RUN/portcullis"}
  mkdir -p "$d"
  TARGET_PORT=$(free_port $((PORT_BASE + 3)))
  # Same schema as config/portcullis.toml: one worker, one IPv4 listener, no guest listener.
  cat >"$d/portcullis.toml" <<EOF
[gateway]
name = "portcullis"
workers = 1
state_dir = "$d"

[[listeners]]
name = "proxy"
address = "127.0.0.1"
port = $TARGET_PORT

[proxy]
client_networks = ["127.0.0.0/8"]
connect_ports = [$NGINX_PORT]
x_forwarded_for = "add"
max_connections = 20000
max_connections_per_client = 20000

[limits]
max_head_bytes = 65536
max_fields = 100
max_field_bytes = 16384
max_url_bytes = 8192
max_chunk_size_digits = 16

[timeouts]
header_read = 30
keepalive_idle = 60
upstream_connect = 10
upstream_first_byte = 60
body_idle = 60
tunnel_idle = 600
upstream_keepalive_idle = 30
drain = 30

[dns]
servers = []
timeout = 2.0
tries = 2
hosts_file = true
cache_entries = 10000
min_ttl = 5
max_ttl = 3600
negative_ttl = 10

[upstream]
direct_domains = []
retry_after = 30

# Squid and tinyproxy do not scan: the comparison is of proxying and policy (scanning is
# measured on its own by bench/scan.sh).
[scan]
enabled = false

$(gateway_config_tail "$d")
EOF
  if [[ -n "${PC_POLICY_FILE:-}" ]]; then
    printf '\n[policy]\nfile = "%s"\n' "$PC_POLICY_FILE" >>"$d/portcullis.toml"
  fi
  START_T0=$EPOCHREALTIME
  start_bg "$PROC_NAME" "${ON_PROXY[@]}" "$PORTCULLIS" run -c "$d/portcullis.toml"
  TARGET_PID=$LAST_PID
}

# The two processes of the with-policy case (same configuration but for [policy]).
start_portcullis_nopolicy() { PC_DIR="$RUN/portcullis-nopolicy" PC_POLICY_FILE="" start_portcullis; }
start_portcullis_policy() {
  PC_DIR="$RUN/portcullis-policy" PC_POLICY_FILE="$POLICY_DIR/policy.toml" start_portcullis
}

# GET the 1 KiB file through the target; checks status 200 and the body length.
smoke() { # port absolute(0|1)
  timeout 15 "$PY" - "$1" "$2" "$ORIGIN" <<'EOF'
import http.client, sys
port, absolute, origin = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.request("GET", ("http://" + origin if absolute else "") + "/1k.bin", headers={"Host": origin})
r = c.getresponse()
body = r.read()
if r.status != 200 or len(body) != 1024:
    sys.exit(f"status {r.status}, {len(body)} body bytes")
EOF
}

# ------------------------------------------------------------------ measurements
declare -A SIZE_FILE=([0]=0.bin [1k]=1k.bin [64k]=64k.bin [1m]=1m.bin [16m]=16m.bin)

watch_start() { # pid tag
  start_bg "raw/$2.procmon" "${ON_LOAD[@]}" "$PY" "$BENCH/procmon.py" watch "$1" \
    "$RUN/raw/$2.procmon.json" $((DURATION + 120)) "$$"
  WATCH_PID=$LAST_PID
  sleep 0.3 # first sample before the load starts
}
watch_stop() { stop_pid "$WATCH_PID" 5; }

run_wrk() { # target port pid size conns [seconds] -> appends a record (unless warm-up)
  local t=$1 port=$2 pid=$3 size=$4 c=$5 secs=${6:-$DURATION}
  local tag="$t-http-$size-$c" path="/${SIZE_FILE[$size]}"
  [[ "$t" == direct ]] || path="http://$ORIGIN$path"
  [[ -n "${6:-}" ]] && tag="$t-warmup"
  watch_start "$pid" "$tag"
  BENCH_PATH="$path" BENCH_HOST="$ORIGIN" timeout --foreground -k 5 $((secs + 60)) "${ON_LOAD[@]}" \
    wrk -t1 -c"$c" -d"${secs}s" --timeout 30s --latency -s "$BENCH/request.lua" \
    "http://127.0.0.1:$port/" >"$RUN/raw/$tag.wrk" 2>&1 || true
  watch_stop
  [[ -n "${6:-}" ]] && return 0
  "$PY" "$BENCH/report.py" wrk "$t" "$size" "$c" "$RUN/raw/$tag.wrk" \
    "$RUN/raw/$tag.procmon.json" "$JSONL"
  grep -E 'Requests/sec|Transfer/sec|Non-2xx|Socket errors' "$RUN/raw/$tag.wrk" |
    tr -s ' ' | paste -sd ';' | sed "s|^|  $tag: |" >&2 || true
}

run_tunnel() { # target port pid conns
  local t=$1 port=$2 pid=$3 c=$4 tag="$1-tunnel-$4" extra=()
  [[ "$t" == direct ]] && extra=(--direct)
  watch_start "$pid" "$tag"
  timeout --foreground -k 5 $((DURATION + 60)) "${ON_LOAD[@]}" "$LOADGEN" tunnel --proxy "$port" \
    --target "$ORIGIN" --path /1k.bin --conns "$c" --duration "$DURATION" "${extra[@]}" \
    >"$RUN/raw/$tag.out" 2>&1 || true
  watch_stop
  "$PY" "$BENCH/report.py" tunnel "$t" "$c" "$RUN/raw/$tag.out" \
    "$RUN/raw/$tag.procmon.json" "$JSONL"
  sed "s|^|  $tag: |" "$RUN/raw/$tag.out" >&2
}

run_idle() { # target port pid
  local t=$1 port=$2 pid=$3 tag="$1-idle" before after i lg
  before=$("$PY" "$BENCH/procmon.py" rss "$pid")
  start_bg "raw/$tag" "${ON_LOAD[@]}" "$LOADGEN" idle --proxy "$port" --target "$ORIGIN" \
    --path /0.bin --conns "$IDLE_CONNS" --concurrency 64 --hold 180
  lg=$LAST_PID
  for ((i = 0; i < 900; i++)); do # at most 90 s to open them all
    grep -q '^READY' "$RUN/raw/$tag.out" 2>/dev/null && break
    alive "$lg" || break
    sleep 0.1
  done
  sleep 2 # let the proxy settle
  after=$("$PY" "$BENCH/procmon.py" rss "$pid")
  stop_pid "$lg" 10
  "$PY" "$BENCH/report.py" idle "$t" "$IDLE_CONNS" "$RUN/raw/$tag.out" "$before" "$after" "$JSONL"
  sed "s|^|  $tag: |" "$RUN/raw/$tag.out" >&2
  echo "  $tag: RSS before ${before} KiB, after ${after} KiB" >&2
}

# Starts target $1 (logs named $2), checks one GET through it and warms it up for 1 s.
# Sets LPORT and LPID; on failure returns non-zero with START_ERR set.
launch() {
  local t=$1 err
  PROC_NAME=$2
  START_ERR=""
  TARGET_PID=""
  if [[ "$t" == direct ]]; then
    LPORT=$NGINX_PORT
    LPID=$NGINX_PID
  else
    if ! "start_$t" || ! wait_port "$TARGET_PORT" "$TARGET_PID" "${LAUNCH_TIMEOUT:-$START_TIMEOUT}"; then
      if [[ -z "$START_ERR" ]]; then
        if [[ -n "$TARGET_PID" ]] && ! alive "$TARGET_PID"; then
          local st=0
          wait "$TARGET_PID" 2>/dev/null || st=$?
          START_ERR="exited with status $st before accepting connections"
        else
          START_ERR="did not accept connections on 127.0.0.1:$TARGET_PORT within ${LAUNCH_TIMEOUT:-$START_TIMEOUT} s"
        fi
        local err_tail
        err_tail=$(tail -n 3 "$RUN/$PROC_NAME.err" 2>/dev/null | tr '\n|' ' /' | cut -c1-300)
        [[ -z "${err_tail// /}" ]] || START_ERR+=": $err_tail"
      fi
      [[ -z "$TARGET_PID" ]] || stop_pid "$TARGET_PID" 5
      return 1
    fi
    LPORT=$TARGET_PORT
    LPID=$TARGET_PID
    # Seconds from start to accepting connections (to within 0.1 s).
    LSTART_S=$("$PY" -c 'import sys; print("%.1f" % (float(sys.argv[1]) - float(sys.argv[2])))' \
      "$EPOCHREALTIME" "${START_T0:-$EPOCHREALTIME}")
  fi
  log "$t: listening on 127.0.0.1:$LPORT (pid $LPID)"
  if ! err=$(smoke "$LPORT" "$([[ $t == direct ]] && echo 0 || echo 1)" 2>&1); then
    START_ERR="a GET of /1k.bin through it failed: ${err//$'\n'/ }"
    [[ "$t" == direct ]] || stop_pid "$LPID" 10
    return 1
  fi
  run_wrk "$t" "$LPORT" "$LPID" 1k 32 1 # warm-up, not recorded
}

not_measured() { # target
  local state=failed
  [[ "$1" == portcullis && "$PC_STATE" == skipped ]] && state=skipped
  log "$1: not measured: $START_ERR"
  "$PY" "$BENCH/report.py" status "$1" "$state" "$START_ERR" "$JSONL"
}

bench_target() { # target
  local t=$1 port pid size c
  # Idle connections on a fresh process, so that memory freed by the load cases cannot
  # hide their cost; then a new process for the load cases.
  if ((IDLE_CONNS > 0)) && [[ " $IDLE_TARGETS " == *" $t "* ]]; then
    launch "$t" "$t-idle" || { not_measured "$t"; return 0; }
    log "$t: $IDLE_CONNS idle connections"
    run_idle "$t" "$LPORT" "$LPID"
    [[ "$t" == direct ]] || stop_pid "$LPID" 10
  fi
  launch "$t" "$t" || { not_measured "$t"; return 0; }
  port=$LPORT
  pid=$LPID
  for size in $SIZES; do
    for c in $CONNS; do
      alive "$pid" || break 2
      log "$t: GET $size x $c connections, ${DURATION} s"
      run_wrk "$t" "$port" "$pid" "$size" "$c"
    done
  done
  for c in $TUNNEL_CONNS; do
    alive "$pid" || break
    log "$t: CONNECT tunnel x $c connections, ${DURATION} s"
    run_tunnel "$t" "$port" "$pid" "$c"
  done
  if ! alive "$pid"; then
    log "$t: the process exited during the run"
    "$PY" "$BENCH/report.py" status "$t" failed \
      "the process exited during the run (see bench/out/run/$t.err)" "$JSONL"
  else
    "$PY" "$BENCH/report.py" status "$t" ok "" "$JSONL"
  fi
  [[ "$t" == direct ]] || stop_pid "$pid" 10
}

# Portcullis with the full policy against Portcullis without one: both processes started
# (one after the other; the one not measured is idle), then each case runs on one and right
# after on the other (the order alternates), so that both see the same machine.
bench_policy() {
  local a_port a_pid b_port b_pid a_start b_start a_rss b_rss size c i=0 decision
  local err="" to=$((START_TIMEOUT > 120 ? START_TIMEOUT : 120))
  if [[ "$POLICY_STATE" != ok ]]; then
    "$PY" "$BENCH/report.py" policyinfo "$POLICY_STATE" "$POLICY_MSG" - - - - - "$JSONL"
    return 0
  fi
  if ! launch portcullis_nopolicy portcullis-nopolicy; then
    err="Portcullis without policy: $START_ERR"
  else
    a_port=$LPORT a_pid=$LPID a_start=$LSTART_S
    a_rss=$("$PY" "$BENCH/procmon.py" rss "$a_pid")
    log "portcullis with the policy: loading ${POLICY_DIR#"$ROOT/"}/policy.toml"
    if ! LAUNCH_TIMEOUT=$to launch portcullis_policy portcullis-policy; then
      err="Portcullis with the policy: $START_ERR"
      stop_pid "$a_pid" 10
    else
      b_port=$LPORT b_pid=$LPID b_start=$LSTART_S
      b_rss=$("$PY" "$BENCH/procmon.py" rss "$b_pid")
    fi
  fi
  if [[ -n "$err" ]]; then
    log "policy case: not measured: $err"
    "$PY" "$BENCH/report.py" policyinfo failed "$err" - - - - - "$JSONL"
    return 0
  fi
  log "portcullis: accepting after $a_start s without policy (RSS $a_rss KiB)," \
    "$b_start s with it (RSS $b_rss KiB)"
  # What the policy decides for the benchmark's request (an allow, or the smoke GET fails).
  timeout 60 "$PORTCULLIS" policy test -c "$RUN/portcullis-policy/portcullis.toml" \
    --url "http://$ORIGIN/1k.bin" --client 127.0.0.1 >"$RUN/raw/policy-test.txt" 2>&1 || true
  decision=$(awk '/^decision:/ { d = $2 } /^rule:/ { sub(/^rule: */, ""); r = $0 }
    END { print d ", rule " r }' "$RUN/raw/policy-test.txt")
  for pc_case in $POLICY_CASES; do
    size=${pc_case%%:*} c=${pc_case##*:}
    alive "$a_pid" && alive "$b_pid" || break
    log "portcullis without / with policy: GET $size x $c connections, ${DURATION} s each"
    if ((i++ % 2 == 0)); then
      run_wrk portcullis_nopolicy "$a_port" "$a_pid" "$size" "$c"
      run_wrk portcullis_policy "$b_port" "$b_pid" "$size" "$c"
    else
      run_wrk portcullis_policy "$b_port" "$b_pid" "$size" "$c"
      run_wrk portcullis_nopolicy "$a_port" "$a_pid" "$size" "$c"
    fi
  done
  local state=ok msg=""
  if ! alive "$a_pid" || ! alive "$b_pid"; then
    state=failed
    msg="a Portcullis process exited during the run (bench/out/run/portcullis-*.err)"
  fi
  "$PY" "$BENCH/report.py" policyinfo "$state" "$msg" "$a_start" "$b_start" "$a_rss" "$b_rss" \
    "$decision" "$JSONL"
  stop_pid "$a_pid" 10
  stop_pid "$b_pid" 10
}

cases=$(($(wc -w <<<"$SIZES") * $(wc -w <<<"$CONNS") + $(wc -w <<<"$TUNNEL_CONNS")))
log "$(wc -w <<<"$PROXIES") targets x $cases cases x ${DURATION} s (+ idle connections); results in $RESULTS"
for t in $PROXIES; do
  bench_target "$t"
  [[ "$t" != portcullis || "$POLICY" != 1 ]] || bench_policy
done

printf 'loadavg_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$META"
"$PY" "$BENCH/report.py" render "$META" "$JSONL" "$RESULTS"
log "wrote $RESULTS"
