#!/usr/bin/env bash
# ICAP benchmark: Portcullis's ICAP server against c-icap 0.5 (its echo service) with the same
# ICAP load (bench/icap_load.cpp), and Portcullis with and without the full policy.
# Writes the ICAP section of bench/RESULTS.md (between its markers; the rest of the file is
# left as it is). Not a test: run it by hand. Everything runs on 127.0.0.1 with configs and
# logs under bench/out/icap/; no system service is touched. Knobs: bench/README.md (ICAP).
set -euo pipefail
{ # bash reads the whole block before running it: edits to this file during a run are harmless

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
PY=${PYTHON:-python3}
BENCH_TAG=bench-icap
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"

# ------------------------------------------------------------------ settings
QUICK=${BENCH_QUICK:-0}
if [[ "$QUICK" == "1" ]]; then
  DURATION=${BENCH_DURATION:-2}
  SIZES=${BENCH_ICAP_SIZES:-"0 1k 64k"}
  CONNS=${BENCH_ICAP_CONNS:-"16"}
  MODES=${BENCH_ICAP_MODES:-"nopreview preview0"}
  POLICY=${BENCH_POLICY:-0}
else
  DURATION=${BENCH_DURATION:-5}
  SIZES=${BENCH_ICAP_SIZES:-"0 1k 64k 1m"}
  CONNS=${BENCH_ICAP_CONNS:-"16 64"}
  MODES=${BENCH_ICAP_MODES:-"nopreview preview0 echo"}
  POLICY=${BENCH_POLICY:-1}
fi
METHODS=${BENCH_ICAP_METHODS:-"REQMOD RESPMOD"}
TARGETS=${BENCH_ICAP_TARGETS:-"cicap portcullis"}
WARMUP=${BENCH_ICAP_WARMUP:-0.5}          # seconds of load before each case's window
MAX_COUNT=${BENCH_ICAP_MAX_COUNT:-50000000} # transactions per case, at most
NOISE=${BENCH_ICAP_NOISE:-15}     # % of a core other programs may use during a case
RETRIES=${BENCH_ICAP_RETRIES:-2}  # reruns of a case pair disturbed beyond that
# Portcullis's malware scanning ([scan], on by default) has no counterpart in c-icap's echo
# service: off unless BENCH_ICAP_SCAN=1.
SCAN=${BENCH_ICAP_SCAN:-0}
CICAP_THREADS=${BENCH_ICAP_CICAP_THREADS:-64}
CICAP_SERVERS=${BENCH_ICAP_CICAP_SERVERS:-1}
POLICY_CASES=${BENCH_ICAP_POLICY_CASES:-"0:16 0:64 1k:16 1k:64"}
POLICY_DOMAINS=${BENCH_POLICY_DOMAINS:-5000000}
POLICY_RULES=${BENCH_POLICY_RULES:-10000}
CLIENT_IP=${BENCH_ICAP_CLIENT_IP:-10.200.0.7}  # X-Client-IP: in no network the policy names
ICAP_URL="http://bench.example/path"
PORT_BASE=${BENCH_PORT_BASE:-28080}
OUT=${BENCH_OUT:-"$BENCH/out"}
RESULTS=${BENCH_RESULTS:-"$BENCH/RESULTS.md"}
POLICY_DIR=$(realpath -m -- "${BENCH_POLICY_DIR:-"$OUT/policy"}")
BUILD=${BENCH_BUILD:-auto}
PORTCULLIS=${BENCH_PORTCULLIS:-"$ROOT/build/release/src/app/portcullis"}
CICAP=${BENCH_CICAP:-/usr/bin/c-icap}
CICAP_LIB=${BENCH_CICAP_LIB:-/usr/lib/x86_64-linux-gnu/c_icap}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
START_TIMEOUT=${BENCH_START_TIMEOUT:-15}
KEEP_LOGS=${BENCH_KEEP_LOGS:-0}
# Niceness of the servers and the load generator: on a shared machine a negative value (root
# only) keeps other programs from taking the cores mid-case. Both servers get the same.
NICE=${BENCH_NICE:-0}

int_in "$DURATION" 1 600 || die "BENCH_DURATION must be whole seconds, 1..600 (got '$DURATION')"
int_in "$PORT_BASE" 1024 65000 || die "BENCH_PORT_BASE must be 1024..65000"
int_in "$MAX_COUNT" 1 1000000000 || die "BENCH_ICAP_MAX_COUNT must be 1..1000000000"
int_in "$NOISE" 0 1000 || die "BENCH_ICAP_NOISE must be 0..1000 (% of a core)"
int_in "$RETRIES" 0 10 || die "BENCH_ICAP_RETRIES must be 0..10"
int_in "$CICAP_THREADS" 1 4096 || die "BENCH_ICAP_CICAP_THREADS must be 1..4096"
int_in "$CICAP_SERVERS" 1 64 || die "BENCH_ICAP_CICAP_SERVERS must be 1..64"
[[ "$NICE" =~ ^-?[0-9]+$ ]] && ((NICE >= -20 && NICE <= 19)) || die "BENCH_NICE must be -20..19"
[[ "$WARMUP" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "BENCH_ICAP_WARMUP must be seconds (e.g. 0.5)"
for s in $SIZES; do
  case $s in 0 | 1k | 64k | 1m) ;; *) die "unknown size '$s' (0 1k 64k 1m)" ;; esac
done
for c in $CONNS; do int_in "$c" 1 4096 || die "connection counts must be 1..4096"; done
for m in $MODES; do
  case $m in nopreview | preview0 | echo) ;; *) die "unknown mode '$m' (nopreview preview0 echo)" ;; esac
done
for m in $METHODS; do
  case $m in REQMOD | RESPMOD) ;; *) die "unknown method '$m' (REQMOD RESPMOD)" ;; esac
done
for t in $TARGETS; do
  case $t in cicap | portcullis) ;; *) die "unknown target '$t' (cicap portcullis)" ;; esac
done
[[ "$POLICY" == 0 || "$POLICY" == 1 ]] || die "BENCH_POLICY must be 0 or 1"
[[ "$SCAN" == 0 || "$SCAN" == 1 ]] || die "BENCH_ICAP_SCAN must be 0 or 1"
for pc_case in $POLICY_CASES; do
  [[ "$pc_case" =~ ^(0|1k|64k|1m):([0-9]+)$ ]] && int_in "${BASH_REMATCH[2]}" 1 4096 ||
    die "BENCH_ICAP_POLICY_CASES: '$pc_case' is not SIZE:CONNS (e.g. 1k:64)"
done
for tool in taskset g++ "$PY"; do
  command -v "$tool" >/dev/null || die "$tool not found"
done

NPROC=$(nproc)
PRIO=()
if ((NICE != 0)); then PRIO=(nice -n "$NICE"); fi
if ((NPROC >= 2)); then
  ON_SERVER=("${PRIO[@]}" taskset -c "$PROXY_CPU")
  ON_LOAD=("${PRIO[@]}" taskset -c "$LOAD_CPU")
  PLACEMENT="server under test on CPU $PROXY_CPU; the ICAP load generator on CPU $LOAD_CPU"
else
  ON_SERVER=("${PRIO[@]}")
  ON_LOAD=("${PRIO[@]}")
  PLACEMENT="single CPU: nothing pinned (numbers are not comparable with a 2-core run)"
fi
((NICE == 0)) || PLACEMENT+="; servers and load generator at niceness $NICE (BENCH_NICE)"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ------------------------------------------------------------------ workspace and cleanup
RUN="$OUT/icap"
mkdir -p "$OUT"
rm -rf -- "$RUN"
mkdir -p "$RUN"/{cicap,raw}
META="$RUN/meta.tsv"
INDEX="$RUN/cases.tsv" # tag phase target method mode size conns rss_before_kb attempts
STATUS="$RUN/status.tsv"
: >"$INDEX"
: >"$STATUS"

PIDS=()
AUTOGROUP_OLD=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$AUTOGROUP_OLD" ]]; then echo "$AUTOGROUP_OLD" >"/proc/$$/autogroup" 2>/dev/null || true; fi
  for pid in "${PIDS[@]}"; do alive "$pid" && kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do stop_tree "$pid" 5; done
  if [[ "$KEEP_LOGS" != "1" ]]; then
    # Access logs of millions of transactions: keep only their tails.
    for f in "$RUN"/cicap/access.log "$RUN"/portcullis*/access.log; do
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

# With autogroup scheduling (each session a group), a process's niceness only counts within its
# session: BENCH_NICE also sets this session's group niceness, restored at exit.
if ((NICE != 0)) && [[ -w "/proc/$$/autogroup" ]] &&
  [[ "$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null)" == 1 ]]; then
  AUTOGROUP_OLD=$(sed -n 's/.* nice \(-\{0,1\}[0-9]*\)$/\1/p' "/proc/$$/autogroup")
  echo "$NICE" >"/proc/$$/autogroup" 2>/dev/null || AUTOGROUP_OLD=""
fi

# ------------------------------------------------------------------ build
PC_STATE=ok
PC_MSG=""
if [[ " $TARGETS " == *" portcullis "* ]]; then build_portcullis "$RUN/build.log" portcullis; fi
CI_STATE=ok
CI_MSG=""
if [[ " $TARGETS " == *" cicap "* ]] && [[ ! -x "$CICAP" || ! -f "$CICAP_LIB/srv_echo.so" ]]; then
  CI_STATE=skipped
  CI_MSG="c-icap is not installed ($CICAP, $CICAP_LIB/srv_echo.so; scripts/bootstrap.sh bench)"
fi

prepare_policy "$TARGETS" BENCH_ICAP_TARGETS

g++ -O2 -std=c++20 -Wall -o "$RUN/icap_load" "$BENCH/icap_load.cpp" 2>"$RUN/icap_load-build.log" ||
  die "could not build bench/icap_load.cpp (see $RUN/icap_load-build.log)"
LOAD="$RUN/icap_load"

# ------------------------------------------------------------------ metadata
pc_version="not built"
if [[ -x "$PORTCULLIS" ]]; then
  pc_version=$(timeout 5 "$PORTCULLIS" version 2>&1 | head -n 1) || pc_version="unknown"
  [[ -n "$pc_version" ]] || pc_version="unknown"
  if [[ -d "$ROOT/.git" ]]; then
    pc_version="$pc_version (commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
    if [[ -n "$(git -C "$ROOT" status --porcelain -- src 2>/dev/null)" ]]; then
      pc_version+=", working tree with uncommitted changes under src/"
    fi
    pc_version+=")"
  fi
fi
ci_version="not installed"
[[ -x "$CICAP" ]] && ci_version=$("$CICAP" -V 2>&1 | head -n 1 || true)
{
  printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'quick\t%s\n' "$QUICK"
  printf 'duration\t%s\n' "$DURATION"
  printf 'warmup\t%s\n' "$WARMUP"
  printf 'nproc\t%s\n' "$NPROC"
  printf 'cpu\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  printf 'kernel\t%s\n' "$(uname -r)"
  printf 'tcp_cc\t%s\n' "$(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null)"
  printf 'tcp_rmem\t%s\n' "$(tr -s '\t ' ' ' </proc/sys/net/ipv4/tcp_rmem 2>/dev/null)"
  printf 'os\t%s\n' "$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release 2>/dev/null)"
  printf 'placement\t%s\n' "$PLACEMENT"
  printf 'loadavg_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'version_portcullis\t%s\n' "$pc_version"
  printf 'version_cicap\t%s\n' "$ci_version"
  printf 'targets\t%s\n' "$TARGETS"
  printf 'noise\t%s\n' "$NOISE"
  printf 'retries\t%s\n' "$RETRIES"
  printf 'scan\t%s\n' "$SCAN"
  printf 'cicap_threads\t%s\n' "$CICAP_THREADS"
  printf 'cicap_servers\t%s\n' "$CICAP_SERVERS"
  printf 'client_ip\t%s\n' "$CLIENT_IP"
  printf 'policy\t%s\n' "$POLICY_STATE"
  printf 'policy_msg\t%s\n' "$POLICY_MSG"
  printf 'policy_rules\t%s\n' "$POLICY_RULES"
  printf 'policy_domains\t%s\n' "$POLICY_DOMAINS"
} >"$META"

# ------------------------------------------------------------------ servers
# Each start_* sets TARGET_PID and TARGET_PORT, or returns non-zero with START_ERR set.
start_cicap() {
  if [[ "$CI_STATE" != ok ]]; then START_ERR="$CI_MSG"; return 1; fi
  local d="$RUN/cicap"
  TARGET_PORT=$(free_port $((PORT_BASE + 20)))
  # One process (the core is one), enough threads for every connection (c-icap serves a
  # connection with one thread at a time), no keep-alive limit, bodies kept in memory up
  # to 2 MiB (the default 128 KiB spills 1 MiB bodies to temporary files), access log on.
  cat >"$d/c-icap.conf" <<EOF
PidFile $d/c-icap.pid
CommandsSocket $d/c-icap.ctl
Port 127.0.0.1:$TARGET_PORT
Timeout 300
MaxKeepAliveRequests 0
KeepAliveTimeout 600
StartServers $CICAP_SERVERS
MaxServers $CICAP_SERVERS
MinSpareThreads 1
MaxSpareThreads $((CICAP_THREADS * CICAP_SERVERS))
ThreadsPerChild $CICAP_THREADS
MaxRequestsPerChild 0
TmpDir $d
MaxMemObject 2097152
Pipelining on
DebugLevel 0
ModulesDir $CICAP_LIB
ServicesDir $CICAP_LIB
ServerLog $d/server.log
AccessLog $d/access.log
Service echo srv_echo.so
EOF
  START_T0=$EPOCHREALTIME
  start_bg "$PROC_NAME" "${ON_SERVER[@]}" "$CICAP" -N -D -f "$d/c-icap.conf"
  TARGET_PID=$LAST_PID
}

start_portcullis() { # PC_DIR (default $RUN/portcullis), PC_POLICY_FILE (default none)
  if [[ "$PC_STATE" != ok ]]; then START_ERR="$PC_MSG"; return 1; fi
  local d=${PC_DIR:-"$RUN/portcullis"}
  mkdir -p "$d"
  TARGET_PORT=$(free_port $((PORT_BASE + ${PC_PORT_OFFSET:-21})))
  cat >"$d/portcullis.toml" <<EOF
[gateway]
name = "portcullis"
workers = 1
state_dir = "$d"

[[listeners]]
name = "icap"
address = "127.0.0.1"
port = $TARGET_PORT
protocol = "icap"

[icap]
client_networks = ["127.0.0.0/8"]

# The comparison is with c-icap's echo service: ICAP transport and decision, no malware
# scanning unless BENCH_ICAP_SCAN=1 (scanning is measured on its own, against c-icap's
# virus_scan).
[scan]
enabled = $([[ "$SCAN" == 1 ]] && echo true || echo false)

$(gateway_config_tail "$d")
EOF
  if [[ -n "${PC_POLICY_FILE:-}" ]]; then
    printf '\n[policy]\nfile = "%s"\n' "$PC_POLICY_FILE" >>"$d/portcullis.toml"
  fi
  START_T0=$EPOCHREALTIME
  start_bg "$PROC_NAME" "${ON_SERVER[@]}" "$PORTCULLIS" run -c "$d/portcullis.toml"
  TARGET_PID=$LAST_PID
}
start_portcullis_nopolicy() {
  PC_DIR="$RUN/portcullis-nopolicy" PC_POLICY_FILE="" PC_PORT_OFFSET=22 start_portcullis
}
start_portcullis_policy() {
  PC_DIR="$RUN/portcullis-policy" PC_POLICY_FILE="$POLICY_DIR/policy.toml" PC_PORT_OFFSET=23 \
    start_portcullis
}

service_for() { # target method -> ICAP-URI path
  case $1 in
    cicap) echo /echo ;;
    *) [[ "$2" == REQMOD ]] && echo /reqmod || echo /respmod ;;
  esac
}

# One transaction of each kind the matrix uses; every one must succeed.
smoke() { # target port
  local m mode out
  for m in $METHODS; do
    for mode in nopreview echo; do
      out=$(timeout 15 "$LOAD" --port "$2" --service "$(service_for "$1" "$m")" --method "$m" \
        --mode "$mode" --size 1k --conns 1 --duration 5 --max-count 1 --timeout 5 \
        --max-reconnects 0 --client-ip "$CLIENT_IP" --url "$ICAP_URL" 2>&1) || true
      if [[ "$out" != *'"tx":1,'* || "$out" != *'"errors":0,'* ]]; then
        echo "$m $mode 1 KiB: ${out:0:300}"
        return 1
      fi
    done
  done
}

# ------------------------------------------------------------------ measurements
SIZE_LABEL() { case $1 in 0) echo "0 B" ;; 1k) echo "1 KiB" ;; 64k) echo "64 KiB" ;; 1m) echo "1 MiB" ;; esac; }

watch_start() { # pid tag
  start_bg "raw/$2.procmon" "${ON_LOAD[@]:${#PRIO[@]}}" "$PY" "$BENCH/procmon.py" watch "$1" \
    "$RUN/raw/$2.procmon.json" $((DURATION + 120)) "$$"
  WATCH_PID=$LAST_PID
  sleep 0.3 # first sample before the load starts
}
watch_stop() { stop_pid "$WATCH_PID" 5; }

run_case() { # tag target port pid method mode size conns [warm-up only: 1]
  local tag=$1 t=$2 port=$3 pid=$4 m=$5 mode=$6 size=$7 c=$8 warm=${9:-0} dur=$DURATION
  [[ "$warm" == 1 ]] && dur=1
  # The access logs start each case empty: millions of records a case would otherwise grow
  # them by gigabytes, and the kernel's writeback of those (on the server's CPU too) would
  # be measured in the later cases; a gateway in service rotates its logs.
  for f in "$RUN"/cicap/access.log "$RUN"/portcullis*/access.log; do
    [[ -f "$f" ]] && : >"$f"
  done
  "$PY" "$BENCH/procmon.py" rss "$pid" >"$RUN/raw/$tag.before" 2>/dev/null || echo 0 >"$RUN/raw/$tag.before"
  [[ "$warm" == 1 ]] || watch_start "$pid" "$tag"
  timeout --foreground -k 5 $((dur + 60)) "${ON_LOAD[@]}" "$LOAD" --port "$port" \
    --service "$(service_for "$t" "$m")" --method "$m" --mode "$mode" --size "$size" \
    --conns "$c" --duration "$dur" --warmup "$WARMUP" --max-count "$MAX_COUNT" \
    --client-ip "$CLIENT_IP" --url "$ICAP_URL" >"$RUN/raw/$tag.json" 2>"$RUN/raw/$tag.err" || true
  [[ "$warm" == 1 ]] && return 0
  watch_stop
  "$PY" - "$RUN/raw/$tag.json" "$RUN/raw/$tag.procmon.json" <<'EOF' >&2 || true
import json, sys
try:
    r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
    try:
        o = json.load(open(sys.argv[2])).get("other_cpu_pct", 0)
    except Exception:
        o = -1
    print(f"    {r['tps']:,.0f} tx/s, p99 {r['p99_ms']:.2f} ms, 204/200/100 "
          f"{r['s204']}/{r['s200']}/{r['s100']}, errors {r['errors']}"
          + (f" ({r['first_error']})" if r['first_error'] else "") + f"; other CPU {o:.0f}%")
except Exception as e:
    print(f"    no result ({e})")
EOF
}

other_cpu() { # procmon.json -> whole % of a core used by other programs (999 if unknown)
  local v
  v=$(sed -n 's/.*"other_cpu_pct": *\([0-9.]*\).*/\1/p' "$1" 2>/dev/null)
  [[ -n "$v" ]] && printf '%.0f' "$v" || echo 999
}

# One case on each server of the pair, in the order given ("target:port:pid" ...). A pair
# disturbed by other programs (more than BENCH_ICAP_NOISE % of a core during either run) is
# run again, up to BENCH_ICAP_RETRIES times; the least disturbed attempt is kept.
run_pair() { # phase method mode size conns target:port:pid...
  local phase=$1 m=$2 mode=$3 size=$4 c=$5 spec t port pid a worst best=-1 best_other=100000 f
  shift 5
  for ((a = 0; a <= RETRIES; a++)); do
    worst=0
    for spec in "$@"; do
      IFS=: read -r t port pid <<<"$spec"
      alive "$pid" || continue
      log "$t: $m $mode $(SIZE_LABEL "$size") x $c connections, ${DURATION} s$( ((a > 0)) && echo " (again: disturbed)")"
      run_case "$phase-$t-$m-$mode-$size-$c.a$a" "$t" "$port" "$pid" "$m" "$mode" "$size" "$c"
      f=$(other_cpu "$RUN/raw/$phase-$t-$m-$mode-$size-$c.a$a.procmon.json")
      ((f > worst)) && worst=$f
    done
    if ((worst < best_other)); then best=$a best_other=$worst; fi
    ((worst > NOISE)) || break
  done
  ((best >= 0)) || return 0
  for spec in "$@"; do
    IFS=: read -r t port pid <<<"$spec"
    local tag="$phase-$t-$m-$mode-$size-$c"
    [[ -f "$RUN/raw/$tag.a$best.json" ]] || continue
    for f in json procmon.json err; do
      [[ -f "$RUN/raw/$tag.a$best.$f" ]] && cp -- "$RUN/raw/$tag.a$best.$f" "$RUN/raw/$tag.$f"
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tag" "$phase" "$t" "$m" "$mode" "$size" "$c" \
      "$(cat "$RUN/raw/$tag.a$best.before" 2>/dev/null || echo 0)" "$((a > RETRIES ? RETRIES + 1 : a + 1))" >>"$INDEX"
  done
}

# Starts target $1 (logs named $2), checks one transaction of each kind, warms it up for 1 s.
# Sets LPORT, LPID and LSTART_S; on failure returns non-zero with START_ERR set.
launch() {
  local t=$1 err base=${1%%_*}
  PROC_NAME=$2
  START_ERR=""
  TARGET_PID=""
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
      err_tail=$(tail -n 3 "$RUN/$PROC_NAME.err" "$RUN/$PROC_NAME.out" 2>/dev/null | grep -v '^==>' |
        tr '\n|' ' /' | cut -c1-300)
      [[ -z "${err_tail// /}" ]] || START_ERR+=": $err_tail"
    fi
    [[ -z "$TARGET_PID" ]] || stop_tree "$TARGET_PID" 5
    return 1
  fi
  LPORT=$TARGET_PORT
  LPID=$TARGET_PID
  LSTART_S=$("$PY" -c 'import sys; print("%.1f" % (float(sys.argv[1]) - float(sys.argv[2])))' \
    "$EPOCHREALTIME" "$START_T0")
  log "$t: listening on 127.0.0.1:$LPORT (pid $LPID)"
  if ! err=$(smoke "$base" "$LPORT" 2>&1); then
    START_ERR="a check transaction failed: ${err//$'\n'/ }"
    stop_tree "$LPID" 10
    return 1
  fi
  run_case "$t-warmup" "$base" "$LPORT" "$LPID" REQMOD nopreview 1k 16 1
}

status() { # target state message
  printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$STATUS"
}

# The matrix: both servers run side by side (the one not measured is idle); each case runs
# on one and right after on the other, alternating which goes first.
declare -A TPORT TPID
bench_matrix() {
  local t live=() m mode size c i=0 order
  for t in $TARGETS; do
    if launch "$t" "$t"; then
      TPORT[$t]=$LPORT
      TPID[$t]=$LPID
      live+=("$t")
      printf 'rss_start_%s\t%s\n' "$t" "$("$PY" "$BENCH/procmon.py" rss "$LPID")" >>"$META"
    else
      log "$t: not measured: $START_ERR"
      status "$t" "$([[ $t == portcullis && $PC_STATE == skipped || $t == cicap && $CI_STATE == skipped ]] &&
        echo skipped || echo failed)" "$START_ERR"
    fi
  done
  ((${#live[@]} > 0)) || return 0
  for size in $SIZES; do
    for c in $CONNS; do
      for m in $METHODS; do
        for mode in $MODES; do
          [[ "$mode" == preview0 && "$size" == 0 ]] && continue # nothing to preview
          order=()
          for t in "${live[@]}"; do order+=("$t:${TPORT[$t]}:${TPID[$t]}"); done
          if ((i++ % 2 == 1)) && ((${#order[@]} == 2)); then order=("${order[1]}" "${order[0]}"); fi
          run_pair matrix "$m" "$mode" "$size" "$c" "${order[@]}"
        done
      done
    done
  done
  for t in "${live[@]}"; do
    printf 'rss_end_%s\t%s\n' "$t" "$("$PY" "$BENCH/procmon.py" rss "${TPID[$t]}" 2>/dev/null || echo 0)" >>"$META"
    if alive "${TPID[$t]}"; then
      status "$t" ok ""
    else
      status "$t" failed "the process exited during the run (see bench/out/icap/$t.err)"
    fi
    stop_tree "${TPID[$t]}" 10
  done
}

# Portcullis with the full policy against Portcullis without one (REQMOD, Allow: 204).
bench_policy() {
  local a_port a_pid b_port b_pid size c i=0 err="" to=$((START_TIMEOUT > 120 ? START_TIMEOUT : 120))
  [[ "$POLICY_STATE" == ok ]] || return 0
  if ! launch portcullis_nopolicy portcullis-nopolicy; then
    err="Portcullis without policy: $START_ERR"
  else
    a_port=$LPORT a_pid=$LPID
    printf 'policy_start_without\t%s\npolicy_rss_without\t%s\n' "$LSTART_S" \
      "$("$PY" "$BENCH/procmon.py" rss "$a_pid")" >>"$META"
    log "portcullis with the policy: loading ${POLICY_DIR#"$ROOT/"}/policy.toml"
    if ! LAUNCH_TIMEOUT=$to launch portcullis_policy portcullis-policy; then
      err="Portcullis with the policy: $START_ERR"
      stop_tree "$a_pid" 10
    else
      b_port=$LPORT b_pid=$LPID
      printf 'policy_start_with\t%s\npolicy_rss_with\t%s\n' "$LSTART_S" \
        "$("$PY" "$BENCH/procmon.py" rss "$b_pid")" >>"$META"
    fi
  fi
  if [[ -n "$err" ]]; then
    log "policy case: not measured: $err"
    sed -i "s|^policy\tok$|policy\tfailed|" "$META"
    printf 'policy_msg2\t%s\n' "$err" >>"$META"
    return 0
  fi
  # What the policy decides for the benchmark's requests (each must be an allow).
  local d1 d2
  for meth in GET POST; do
    timeout 60 "$PORTCULLIS" policy test -c "$RUN/portcullis-policy/portcullis.toml" \
      --url "$ICAP_URL" --client "$CLIENT_IP" --method "$meth" >"$RUN/raw/policy-test-$meth.txt" 2>&1 || true
  done
  d1=$(awk '/^decision:/ { d = $2 } /^rule:/ { sub(/^rule: */, ""); r = $0 } END { print d ", rule " r }' \
    "$RUN/raw/policy-test-GET.txt")
  d2=$(awk '/^decision:/ { d = $2 } /^rule:/ { sub(/^rule: */, ""); r = $0 } END { print d ", rule " r }' \
    "$RUN/raw/policy-test-POST.txt")
  printf 'policy_decision\tGET: %s; POST: %s\n' "$d1" "$d2" >>"$META"
  for pc_case in $POLICY_CASES; do
    size=${pc_case%%:*} c=${pc_case##*:}
    alive "$a_pid" && alive "$b_pid" || break
    if ((i++ % 2 == 0)); then
      run_pair policy REQMOD nopreview "$size" "$c" "portcullis_nopolicy:$a_port:$a_pid" \
        "portcullis_policy:$b_port:$b_pid"
    else
      run_pair policy REQMOD nopreview "$size" "$c" "portcullis_policy:$b_port:$b_pid" \
        "portcullis_nopolicy:$a_port:$a_pid"
    fi
  done
  if ! alive "$a_pid" || ! alive "$b_pid"; then
    sed -i "s|^policy\tok$|policy\tfailed|" "$META"
    printf 'policy_msg2\t%s\n' "a Portcullis process exited during the run (bench/out/icap/portcullis-*.err)" >>"$META"
  fi
  stop_tree "$a_pid" 10
  stop_tree "$b_pid" 10
}

ncases=0
for size in $SIZES; do for mode in $MODES; do
  [[ "$mode" == preview0 && "$size" == 0 ]] || ncases=$((ncases + 1))
done; done
ncases=$((ncases * $(wc -w <<<"$CONNS") * $(wc -w <<<"$METHODS")))
log "$(wc -w <<<"$TARGETS") targets x $ncases cases x ${DURATION} s; results in $RESULTS"
bench_matrix
bench_policy
printf 'loadavg_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$META"

# ------------------------------------------------------------------ report
BENCH_DIR="$BENCH" "$PY" - "$META" "$INDEX" "$STATUS" "$RUN/raw" "$RESULTS" <<'EOF'
import json
import os
import sys

sys.path.insert(0, os.environ["BENCH_DIR"])
from results_md import write_section

meta_path, index_path, status_path, raw, results = sys.argv[1:6]
meta = {}
for line in open(meta_path):
    if "\t" in line:
        k, v = line.rstrip("\n").split("\t", 1)
        meta[k] = v
status = {}
for line in open(status_path):
    p = line.rstrip("\n").split("\t")
    if len(p) >= 3:
        status[p[0]] = (p[1], p[2])

SIZE = {"0": "0 B", "1k": "1 KiB", "64k": "64 KiB", "1m": "1 MiB"}
NAME = {"cicap": "c-icap", "portcullis": "Portcullis"}
MODE = {"nopreview": "no preview, Allow: 204", "preview0": "Preview: 0, Allow: 204",
        "echo": "no preview, no Allow: 204 (echo)"}


def load(tag):
    r = {}
    try:
        lines = open(os.path.join(raw, tag + ".json")).read().strip().splitlines()
        r = json.loads(lines[-1]) if lines else {}
    except (OSError, ValueError):
        r = {}
    try:
        r["pm"] = json.load(open(os.path.join(raw, tag + ".procmon.json")))
    except (OSError, ValueError):
        r["pm"] = {}
    return r


cases = []
for line in open(index_path):
    p = line.rstrip("\n").split("\t")
    if len(p) < 9:
        continue
    tag, phase, t, m, mode, size, c, before, attempts = p[:9]
    r = load(tag)
    r.update(tag=tag, phase=phase, target=t, method=m, mode_=mode, size_=size, conns_=int(c),
             rss_before_kb=int(before or 0), attempts=int(attempts))
    cases.append(r)

mat = {(r["target"], r["method"], r["mode_"], r["size_"], r["conns_"]): r
       for r in cases if r["phase"] == "matrix"}
pol = {(r["target"], r["size_"], r["conns_"]): r for r in cases if r["phase"] == "policy"}


def ok(r):
    return bool(r) and r.get("tx", 0) > 0


def num(v, d=0):
    return f"{v:,.{d}f}"


def ms(v):
    return f"{v:.2f}" if v < 100 else f"{v:,.0f}"


def mib(kb):
    return f"{kb / 1024:.1f}"


def errs(r):
    if not r or "tx" not in r:
        return "no result"
    n = r.get("errors", 0)
    s = f"{n:,}"
    if n and r.get("first_error"):
        s += f" ({r['first_error'][:60]})"
    if r.get("reconnects"):
        s += f", {r['reconnects']:,} reconnects"
    return s


def answers(r):
    if not ok(r):
        return "–"
    parts = []
    for k, label in (("s204", "204"), ("s200", "200")):
        if r.get(k):
            parts.append(f"{label} {100.0 * r[k] / r['tx']:.0f}%")
    if r.get("s100"):
        parts.append(f"after 100 {100.0 * r['s100'] / r['tx']:.0f}%")
    return ", ".join(parts) or "–"


L = ["## ICAP: Portcullis against c-icap (echo service)", ""]
L.append("Written by `bench/icap.sh`; see the ICAP section of `bench/README.md` for what each "
         "number means.")
L.append("")
L.append(f"- Date: {meta.get('date', '?')}")
mode_line = ("**quick smoke run** (reduced matrix; numbers check the harness, not the servers)"
             if meta.get("quick") == "1" else "full run")
L.append(f"- Mode: {mode_line}, {meta.get('duration')} s per case after a "
         f"{meta.get('warmup')} s warm-up on the same connections")
L.append(f"- Machine: {meta.get('nproc')} CPUs, {meta.get('cpu')}, kernel {meta.get('kernel')}, "
         f"{meta.get('os')}")
L.append(f"- Placement: {meta.get('placement')}")
L.append(f"- Sockets: the system's TCP congestion control is `{meta.get('tcp_cc')}` and receive "
         f"buffers are autotuned (`tcp_rmem` {meta.get('tcp_rmem')}), as c-icap and the load "
         "generator use them; Portcullis's ICAP listener uses `cubic` and a 1 MiB receive "
         "buffer, its defaults for ICAP listeners (docs/adr/0008-icap-socket-settings.md)")
L.append(f"- Versions: portcullis: {meta.get('version_portcullis')}; "
         f"c-icap: {meta.get('version_cicap')}")
L.append(f"- c-icap: `srv_echo.so` at `/echo`, {meta.get('cicap_servers')} server process × "
         f"{meta.get('cicap_threads')} threads, `MaxKeepAliveRequests 0`, "
         "`MaxMemObject 2097152`, access log on. Portcullis: `workers = 1`, one ICAP listener, "
         "JSON access log on, log store off, no policy (allow everything), `[icap]` defaults, "
         + ("malware scanning on (`[scan]` defaults; c-icap's echo service does not scan)."
            if meta.get("scan") == "1" else
            "malware scanning off (`[scan] enabled = false`: c-icap's echo service does not "
            "scan; `BENCH_ICAP_SCAN=1` turns it on)."))
L.append(f"- Load average (1, 5, 15 min) at start: {meta.get('loadavg_start')}, "
         f"at end: {meta.get('loadavg_end')}")
for t, (st, msg) in sorted(status.items()):
    if st != "ok":
        L.append(f"- **{NAME.get(t, t)} not measured** ({st}): {msg}")
others = [r["pm"].get("other_cpu_pct", 0) for r in cases if r.get("pm")]
if others and max(others) > 10:
    L.append("")
    L.append(f"**Warning: other programs used up to {max(others):.0f}% of a core during the "
             "cases (column *other CPU %*). The numbers of the cases concerned are disturbed; "
             "rerun on an idle machine.**")
L.append("")
L.append("Each case: N persistent connections, each sending the same message back to back "
         "(`bench/icap_load`); the two servers run side by side and each case runs on one "
         "then right after on the other (alternating which goes first). REQMOD: "
         "`GET http://bench.example/path` (with a body: `POST` + `Content-Length`) with Host, "
         "User-Agent, Accept, Accept-Language, and `X-Client-IP`; RESPMOD: the same request "
         "head + `HTTP/1.1 200 OK` (Content-Type, Content-Length) + the body. 0 B is a "
         "null-body message. Bodies are sent chunked in 64 KiB chunks. *answers* gives the "
         "share of 204 and 200 (echo) answers; a 200 counts only with the whole body echoed. "
         "Ratios are Portcullis ÷ c-icap: higher is better for tx/s, lower for p99. CPU % is "
         "the server's process tree as % of one core; RSS its peak during the case; *tx per "
         "CPU-s ratio* compares transactions per second of server CPU (Portcullis ÷ c-icap): "
         "less sensitive to other programs than tx/s, but not a target. "
         f"*other CPU %* is what programs outside the benchmark used meanwhile (both cores): a "
         f"case pair with more than {meta.get('noise')}% was run again, up to "
         f"{meta.get('retries')} times, keeping the least disturbed run (*N runs*).")
L.append("")

verdicts = {"small": [], "large": [], "p99": []}
both = "cicap" in [k[0] for k in mat] and "portcullis" in [k[0] for k in mat]
methods = sorted({k[1] for k in mat}, key=lambda m: m != "REQMOD")
modes = [m for m in ("nopreview", "preview0", "echo") if m in {k[2] for k in mat}]
sizes = [s for s in ("0", "1k", "64k", "1m") if s in {k[3] for k in mat}]
conns = sorted({k[4] for k in mat})
for m in methods:
    for mode in modes:
        rows = [(s, c) for s in sizes for c in conns
                if ("cicap", m, mode, s, c) in mat or ("portcullis", m, mode, s, c) in mat]
        if not rows:
            continue
        L.append(f"### {m}, {MODE[mode]}")
        L.append("")
        L.append("| body × conns | c-icap tx/s | Portcullis tx/s | tx/s ratio | tx per CPU-s ratio | c-icap p99 ms | "
                 "Portcullis p99 ms | p99 ratio | c-icap answers | Portcullis answers | "
                 "CPU % c-icap / Portcullis | RSS MiB c-icap / Portcullis | other CPU % | "
                 "errors c-icap / Portcullis | targets |")
        L.append("|---|--:|--:|--:|--:|--:|--:|--:|---|---|--:|--:|--:|---|---|")
        for s, c in rows:
            a = mat.get(("cicap", m, mode, s, c), {})
            b = mat.get(("portcullis", m, mode, s, c), {})
            name = f"{SIZE[s]} × {c}"
            ratio = p99r = None
            if ok(a) and ok(b):
                ratio = b["tps"] / a["tps"]
                p99r = b["p99_ms"] / a["p99_ms"] if a["p99_ms"] > 0 else None
            effr = None
            if ok(a) and ok(b) and a.get("pm", {}).get("cpu_pct", 0) > 5 and b.get("pm", {}).get("cpu_pct", 0) > 5:
                effr = (b["tps"] / b["pm"]["cpu_pct"]) / (a["tps"] / a["pm"]["cpu_pct"])
            tgt = 1.2 if s in ("0", "1k") else 3.0
            marks = []
            if ratio is not None:
                verdicts["small" if s in ("0", "1k") else "large"].append(
                    (f"{m} {mode} {name}", ratio, ratio >= tgt and b.get("errors", 0) == 0))
                marks.append(f"tx/s ≥ {tgt}×: {'met' if ratio >= tgt else '**not met**'}")
            if p99r is not None:
                verdicts["p99"].append((f"{m} {mode} {name}", p99r, p99r < 1.0))
                marks.append(f"p99: {'met' if p99r < 1.0 else '**not met**'}")
            if ok(b) and b.get("errors"):
                marks.append("**Portcullis errors**")
            cpu = " / ".join(num(x["pm"].get("cpu_pct", 0)) if x.get("pm") else "–" for x in (a, b))
            rss = " / ".join(mib(x["pm"].get("rss_max_kb", 0)) if x.get("pm") else "–" for x in (a, b))
            oth = max([x["pm"].get("other_cpu_pct", 0) for x in (a, b) if x.get("pm")] or [0])
            tries = max([x.get("attempts", 1) for x in (a, b) if x] or [1])
            L.append(
                f"| {name} | {num(a['tps']) if ok(a) else '–'} | {num(b['tps']) if ok(b) else '–'} "
                f"| {f'{ratio:.2f}×' if ratio is not None else '–'} "
                f"| {f'{effr:.2f}×' if effr is not None else '–'} "
                f"| {ms(a['p99_ms']) if ok(a) else '–'} | {ms(b['p99_ms']) if ok(b) else '–'} "
                f"| {f'{p99r:.2f}×' if p99r is not None else '–'} | {answers(a)} | {answers(b)} "
                f"| {cpu} | {rss} | {oth:.0f}{f' ({tries} runs)' if tries > 1 else ''} "
                f"| {errs(a) if a else '–'} / {errs(b) if b else '–'} "
                f"| {'; '.join(marks) or '–'} |")
        L.append("")

# Memory: within each (size, connections) group of cases, the peak RSS of the later cases
# against the first case's (same message size and connection count, other methods and modes).
def memory(t):
    rs = [r for r in cases if r["phase"] == "matrix" and r["target"] == t and r.get("pm")]
    if not rs:
        return None
    groups = {}
    for r in rs:
        groups.setdefault((r["size_"], r["conns_"]), []).append(r)
    worst = None
    for (s, c), g in groups.items():
        base = g[0]["pm"].get("rss_max_kb", 0)
        later = max((x["pm"].get("rss_max_kb", 0) for x in g[1:]), default=base)
        growth = later - base
        allowed = max(4096, 0.10 * base)
        item = (growth / allowed, f"{SIZE[s]} × {c}", growth, base)
        worst = item if worst is None or item > worst else worst
    peak = max(rs, key=lambda r: r["pm"].get("rss_max_kb", 0))
    tx = sum(r.get("tx", 0) for r in rs)
    return dict(start=int(meta.get(f"rss_start_{t}", 0) or 0), end=int(meta.get(f"rss_end_{t}", 0) or 0),
                peak=peak["pm"].get("rss_max_kb", 0),
                peak_case=f"{peak['method']} {peak['mode_']} {SIZE[peak['size_']]} × {peak['conns_']}",
                worst=worst, tx=tx, flat=worst[0] <= 1.0)


mem = {t: memory(t) for t in ("cicap", "portcullis")}
if any(mem.values()):
    L.append("### Memory under load")
    L.append("")
    L.append("The cases run by message size, then connection count; within each such group "
             "(same size and connections, every method and mode) the peak RSS of the later "
             "cases may exceed the first case's by at most max(4 MiB, 10%): *flat*. RSS after "
             "start is after one check transaction per kind and a 1 s warm-up.")
    L.append("")
    L.append("| server | RSS after start MiB | peak RSS MiB (case) | RSS after the matrix MiB "
             "| transactions measured | worst growth within a group | flat |")
    L.append("|---|--:|--:|--:|--:|---|---|")
    for t in ("cicap", "portcullis"):
        x = mem[t]
        if not x:
            continue
        w = x["worst"]
        L.append(f"| {NAME[t]} | {mib(x['start'])} | {mib(x['peak'])} ({x['peak_case']}) | "
                 f"{mib(x['end'])} | {x['tx']:,} | {w[2] / 1024:+.1f} MiB on {mib(w[3])} MiB "
                 f"({w[1]}) | {'yes' if x['flat'] else '**no**'} |")
    L.append("")

# Policy.
L.append("### Portcullis with the full policy (REQMOD, no preview, Allow: 204)")
L.append("")
pstate = meta.get("policy", "off")
if pstate != "ok" or not pol:
    msg = meta.get("policy_msg2") or meta.get("policy_msg") or "no result"
    L.append(f"Not measured: {msg}.")
    L.append("")
    pol_verdict = None
else:
    L.append(f"Two Portcullis processes with the configuration above, one without `[policy]` and "
             f"one with `[policy] file` naming the policy `bench/run.sh` uses "
             f"(`bench/gen_policy.py`: {int(meta.get('policy_rules', 0)):,} rules, a "
             f"{int(meta.get('policy_domains', 0)):,}-domain category database; "
             "`bench/out/policy/`), side by side; each case runs on one then the other, "
             "alternating. Every REQMOD is classified and decided against the whole policy "
             f"(X-Client-IP {meta.get('client_ip')}, no user; `portcullis policy test`: "
             f"{meta.get('policy_decision', '?')}).")
    L.append("")
    L.append(f"- Start to accepting connections: {meta.get('policy_start_without', '?')} s without "
             f"policy, {meta.get('policy_start_with', '?')} s with it")
    L.append(f"- RSS after start and a 1 s warm-up: "
             f"{mib(int(meta.get('policy_rss_without', 0) or 0))} MiB without policy, "
             f"{mib(int(meta.get('policy_rss_with', 0) or 0))} MiB with it")
    L.append("")
    L.append("| case | tx/s without | tx/s with | with ÷ without | p99 ms without | p99 ms with "
             "| CPU % without / with | RSS MiB with | other CPU % | errors with |")
    L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    pol_items = []
    for (s, c) in sorted({(k[1], k[2]) for k in pol}, key=lambda x: (sizes.index(x[0]) if x[0] in sizes else 9, x[1])):
        a = pol.get(("portcullis_nopolicy", s, c), {})
        b = pol.get(("portcullis_policy", s, c), {})
        r = b["tps"] / a["tps"] if ok(a) and ok(b) else None
        if r is not None:
            pol_items.append((f"{SIZE[s]} × {c}", r, r >= 0.9 and b.get("errors", 0) == 0))
        oth = max([x["pm"].get("other_cpu_pct", 0) for x in (a, b) if x.get("pm")] or [0])
        tries = max([x.get("attempts", 1) for x in (a, b) if x] or [1])
        L.append(f"| {SIZE[s]} × {c} | {num(a['tps']) if ok(a) else '–'} | "
                 f"{num(b['tps']) if ok(b) else '–'} | {f'{100 * r:.0f}%' if r is not None else '–'} | "
                 f"{ms(a['p99_ms']) if ok(a) else '–'} | {ms(b['p99_ms']) if ok(b) else '–'} | "
                 f"{num(a['pm'].get('cpu_pct', 0)) if a.get('pm') else '–'} / "
                 f"{num(b['pm'].get('cpu_pct', 0)) if b.get('pm') else '–'} | "
                 f"{mib(b['pm'].get('rss_max_kb', 0)) if b.get('pm') else '–'} | "
                 f"{oth:.0f}{f' ({tries} runs)' if tries > 1 else ''} | "
                 f"{errs(b) if b else '–'} |")
    L.append("")
    pol_verdict = pol_items

# Targets.
L.append("### Targets")
L.append("")


def verdict(label, items, fmt):
    if not items:
        L.append(f"- {label}: **not measured** in this run")
        return
    bad = [i for i in items if not i[2]]
    if bad:
        L.append(f"- {label}: **not met** in {len(bad)} of {len(items)} cases: "
                 + ", ".join(f"{n} {fmt(v)}" for n, v, _ in bad[:12])
                 + (" …" if len(bad) > 12 else ""))
    else:
        key = min if fmt is ratio_fmt else max
        w = key(items, key=lambda i: i[1])
        L.append(f"- {label}: **met** in all {len(items)} cases (worst {w[0]}: {fmt(w[1])})")


def ratio_fmt(v):
    return f"{v:.2f}×"


def pct_fmt(v):
    return f"{100 * v:.0f}%"


verdict("≥ 1.2× c-icap's transactions/s on 0 B and 1 KiB messages (and no errors)",
        verdicts["small"], ratio_fmt)
verdict("≥ 3× c-icap's transactions/s on 64 KiB and 1 MiB bodies (and no errors)",
        verdicts["large"], ratio_fmt)
verdict("lower p99 latency than c-icap in every case", verdicts["p99"], lambda v: f"{v:.2f}×")
x = mem.get("portcullis")
if x:
    w = x["worst"]
    L.append(f"- memory flat under load (Portcullis): **{'met' if x['flat'] else 'not met'}** "
             f"(worst group {w[1]}: {w[2] / 1024:+.1f} MiB; peak {mib(x['peak'])} MiB)")
else:
    L.append("- memory flat under load (Portcullis): **not measured** in this run")
if pol_verdict is None:
    L.append("- with the full policy, small REQMOD rate drops by ≤ 10%: **not measured** in this run")
else:
    bad = [i for i in pol_verdict if not i[2]]
    w = min(pol_verdict, key=lambda i: i[1]) if pol_verdict else None
    if not pol_verdict:
        L.append("- with the full policy, small REQMOD rate drops by ≤ 10%: **not measured**")
    else:
        L.append(f"- with the full policy, small REQMOD rate drops by ≤ 10% (with ÷ without ≥ 90%): "
                 f"**{'met' if not bad else 'not met'}** (worst {w[0]}: {pct_fmt(w[1])})")
if meta.get("quick") == "1":
    L.append("")
    L.append("This was a quick smoke run: verdicts are indicative only.")
L.append("")
write_section(results, "ICAP", "bench/icap.sh", L)
EOF
log "wrote the ICAP section of $RESULTS"
exit 0
}
