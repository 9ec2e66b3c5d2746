# shellcheck shell=bash disable=SC2034  # PC_STATE, PC_MSG, LAST_PID: read by the sourcing script
# Shell helpers shared by bench/run.sh, bench/icap.sh and bench/scan.sh. Sourced, not run.
# The sourcing script sets BENCH_TAG (the prefix of its messages), RUN (its work folder,
# where start_bg writes each process's output) and PIDS=() (every process start_bg starts is
# added; the script's exit trap stops them).

die() { echo "$BENCH_TAG: $*" >&2; exit 1; }
log() { printf '[%s %(%H:%M:%S)T] %s\n' "$BENCH_TAG" -1 "$*" >&2; }

int_in() { # value min max
  [[ "$1" =~ ^[0-9]+$ ]] && (($1 >= $2 && $1 <= $3))
}

alive() { # pid -> true while running (a zombie counts as gone)
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [[ "${st:0:1}" != "Z" ]]
}
stop_pid() { # pid [seconds]: TERM, bounded wait, then KILL
  local pid=$1 limit=$((${2:-10} * 10)) i
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < limit; i++)); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}
# c-icap forks its servers; they leave with their parent, but make sure of it.
stop_tree() { # pid [seconds]
  local kids
  kids=$(ps -o pid= --ppid "$1" 2>/dev/null | tr -s ' \n' ' ') || true
  stop_pid "$1" "${2:-10}"
  for k in $kids; do
    if alive "$k"; then kill -KILL "$k" 2>/dev/null || true; fi
  done
}

start_bg() { # name cmd... : runs cmd in the background, stdout/stderr to RUN/name.{out,err}
  local name=$1
  shift
  "$@" >"$RUN/$name.out" 2>"$RUN/$name.err" &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { # from -> first port with no listener on it
  local p=$1 i
  for ((i = 0; i < 200; i++, p++)); do
    # Local address :PORT in state 0A (LISTEN), or anything answering a connect.
    if ! port_open "$p" &&
      ! awk -v p=":$(printf '%04X' "$p")" '$2 ~ p"$" && $4 == "0A" { f = 1 } END { exit !f }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  die "no free port from $1"
}
wait_port() { # port pid seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    alive "$2" || return 1
    port_open "$1" && return 0
    sleep 0.1
  done
  return 1
}

# Builds Portcullis with the release preset (configured first if needed; incremental) unless
# BENCH_PORTCULLIS names a binary or BENCH_BUILD=0, and checks the binary. Sets PC_STATE (ok |
# skipped) and PC_MSG (why, or a warning). Uses BUILD, PORTCULLIS and ROOT.
build_portcullis() { # log-file target...
  local blog=$1
  shift
  local targets=()
  for t in "$@"; do targets+=(--target "$t"); done
  PC_STATE=ok
  PC_MSG=""
  if [[ -z "${BENCH_PORTCULLIS:-}" && "$BUILD" != "0" ]]; then
    log "building Portcullis (release preset${*:+, $*})"
    if (cd "$ROOT" &&
      { [[ -f build/release/build.ninja ]] || timeout 900 cmake --preset release; } &&
      timeout 3600 cmake --build --preset release "${targets[@]}") >"$blog" 2>&1; then
      :
    else
      log "Portcullis build failed: see $blog"
      PC_MSG="the release build failed (${blog#"$ROOT/"})"
    fi
  fi
  if [[ ! -x "$PORTCULLIS" ]]; then
    PC_STATE=skipped
    PC_MSG="${PC_MSG:+$PC_MSG; }no binary at ${PORTCULLIS#"$ROOT/"}"
  elif [[ -n "$PC_MSG" ]]; then
    PC_MSG="$PC_MSG; measured the existing binary, which may be stale"
  fi
}

# Replaces the part of RESULTS between the lines BEGIN and END (markers included) with the
# file SECTION, or appends it when the markers are absent; the rest is left as it is.
replace_section() { # results NAME writer section-file: see bench/results_md.py
  BENCH_DIR="$BENCH" "${PY:-python3}" - "$@" <<'EOF'
import os, sys
sys.path.insert(0, os.environ["BENCH_DIR"])
from results_md import write_section
results, name, writer, section_file = sys.argv[1:5]
write_section(results, name, writer, open(section_file).read().rstrip("\n").split("\n"))
EOF
}

write_nginx_conf() { # dir port root [extra server lines]: the origin every benchmark uses
  local dir=$1 port=$2 root=$3 extra=${4:-}
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile ${NOFILE:-20000};
events {
    worker_connections 20000;
}
http {
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    server {
        listen 127.0.0.1:$port backlog=4096;
        root $root;
        location / { }
$extra
    }
}
EOF
}

gateway_config_tail() { # dir: the end of every benchmark gateway's configuration
  cat <<EOF
[access_log]
path = "$1/access.log"
format = "json"

# The peers keep no log database: the local log store (a thread of its own, about 7 us of
# CPU a record) is measured on its own (bench/store_bench); here it would share the one core.
[log_store]
enabled = false

# Two gateways may run side by side: neither opens the monitoring listener.
[monitoring]
enabled = false

[log]
level = "info"
EOF
}

# Sets POLICY_STATE (off | skipped | ok | failed) and POLICY_MSG for the with-policy case:
# generates the policy (bench/gen_policy.py reuses what it made before) when BENCH_POLICY=1
# and portcullis is among the targets. Reads POLICY, PC_STATE, PC_MSG, POLICY_RULES,
# POLICY_DOMAINS, POLICY_DIR and RUN.
prepare_policy() { # targets list-variable-name
  POLICY_STATE=off
  POLICY_MSG="not run (BENCH_POLICY=0, the default in quick mode)"
  if [[ "$POLICY" == 1 && " $1 " == *" portcullis "* ]]; then
    if [[ "$PC_STATE" != ok ]]; then
      POLICY_STATE=skipped
      POLICY_MSG="Portcullis is not measured: $PC_MSG"
      return
    fi
    log "policy: $POLICY_RULES rules, $POLICY_DOMAINS-domain database in ${POLICY_DIR#"$ROOT/"}" \
      "(generated once, then reused)"
    if timeout 1800 "$PY" "$BENCH/gen_policy.py" --out "$POLICY_DIR" --domains "$POLICY_DOMAINS" \
      --rules "$POLICY_RULES" >"$RUN/policy-gen.log" 2>&1; then
      POLICY_STATE=ok
      POLICY_MSG=""
    else
      POLICY_STATE=failed
      POLICY_MSG="bench/gen_policy.py failed (${RUN#"$ROOT/"}/policy-gen.log)"
      log "policy: $POLICY_MSG"
    fi
  elif [[ "$POLICY" == 1 ]]; then
    POLICY_MSG="not run (portcullis is not in $2)"
  fi
}
