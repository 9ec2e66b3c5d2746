#!/usr/bin/env bash
# Compares decide()'s latency between two commits: builds policy_bench at each (release
# flags, in build/policy-ab/<commit>), then runs BM_DecisionLatency/classify:0 for each in
# turn, ROUNDS times, one process per run on CPU 0, and prints every run, the medians and the
# median of the rounds' ratios new / base.
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
# Per round: base then new; the same commit twice measures the machine's own spread.
declare -a p50 p99 r50 r99
for ((r = 1; r <= rounds; r++)); do
  for side in 0 1; do
    bin=$bin_base c=$base
    [ $side = 1 ] && bin=$bin_new c=$new
    line=$(PC_POLICY_DIR=$dir taskset -c 0 "$bin" \
      --benchmark_filter='DecisionLatency/classify:0' 2>/dev/null | tail -1)
    a=$(grep -o ' p50_ns=[^ ]*' <<<"$line" | cut -d= -f2 | num)
    b=$(grep -o ' p99_ns=[^ ]*' <<<"$line" | cut -d= -f2 | num)
    echo "run $r $c: p50 $a ns, p99 $b ns"
    p50[side]+="$a "
    p99[side]+="$b "
    if [ $side = 1 ]; then
      r50+=("$(awk -v x="$a" -v y="$last50" 'BEGIN {printf "%.3f", x / y}')")
      r99+=("$(awk -v x="$b" -v y="$last99" 'BEGIN {printf "%.3f", x / y}')")
    fi
    last50=$a last99=$b
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
echo "$base: median p50 $(median <<<"${p50[0]}") ns, median p99 $(median <<<"${p99[0]}") ns"
echo "$new: median p50 $(median <<<"${p50[1]}") ns, median p99 $(median <<<"${p99[1]}") ns"
# The ratio new / base of each round, whose median is the comparison to trust; their spread is
# the machine's (see bench/README.md).
echo "new / base by round: p50 ${r50[*]}; p99 ${r99[*]}"
echo "median ratio: p50 $(median <<<"${r50[*]}"), p99 $(median <<<"${r99[*]}")"
