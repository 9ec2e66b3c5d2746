#!/usr/bin/env bash
# Compares decide()'s latency between two commits: builds policy_bench at each (release
# flags, in build/policy-ab/<commit>), then runs BM_DecisionLatency/classify:0 for each in
# turn, ROUNDS times, one process per run on CPU 0, and prints every run and the medians.
# Runs alternate so that a slow spell of the machine falls on both builds alike.
#
#   bench/policy_ab.sh BASE [NEW] [ROUNDS]     (NEW: HEAD; ROUNDS: 5)
#
# Needs an idle machine and the policy run.sh generates (bench/out/policy; made if absent).
set -euo pipefail
cd "$(dirname "$0")/.."
base=$(git rev-parse --short "${1:?usage: bench/policy_ab.sh BASE [NEW] [ROUNDS]}")
new=$(git rev-parse --short "${2:-HEAD}")
rounds=${3:-5}
dir=${PC_POLICY_DIR:-bench/out/policy}
[ -f "$dir/STAMP" ] || python3 bench/gen_policy.py --out "$dir" --domains 5000000 --rules 10000

build() {  # commit -> path of its policy_bench
  local commit=$1 src=build/policy-ab/src-$1 out=build/policy-ab/$1
  if [ ! -x "$out/bench/policy_bench" ]; then
    rm -rf "$src"
    mkdir -p "$src"
    git archive "$commit" | tar -x -C "$src"
    cmake -S "$src" -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$out" -j "$(nproc)" --target policy_bench >/dev/null
  fi
  echo "$out/bench/policy_bench"
}
bin_base=$(build "$base")
bin_new=$(build "$new")

num() { sed 's/k$/e3/' | awk '{printf "%.0f", $1}'; }  # "2.744k" -> 2744
declare -A p50 p99
for ((r = 1; r <= rounds; r++)); do
  for c in "$base" "$new"; do
    bin=$bin_base
    [ "$c" = "$new" ] && bin=$bin_new
    line=$(PC_POLICY_DIR=$dir taskset -c 0 "$bin" \
      --benchmark_filter='DecisionLatency/classify:0' 2>/dev/null | tail -1)
    a=$(grep -o ' p50_ns=[^ ]*' <<<"$line" | cut -d= -f2 | num)
    b=$(grep -o ' p99_ns=[^ ]*' <<<"$line" | cut -d= -f2 | num)
    echo "run $r $c: p50 $a ns, p99 $b ns"
    p50[$c]+="$a "
    p99[$c]+="$b "
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
for c in "$base" "$new"; do
  echo "$c: median p50 $(median <<<"${p50[$c]}") ns, median p99 $(median <<<"${p99[$c]}") ns"
done
