#!/usr/bin/env bash
# Runs every fuzzer for a short time over a scratch copy of its seed corpus.
# Usage: tests/fuzz/run-smoke.sh BUILD_DIR SECONDS
# BUILD_DIR is a tree configured with -DPC_FUZZ=ON (clang) and built with --target fuzz_all.
# SECONDS is per target; FUZZ_JOBS targets (default: the number of CPUs) run at a time, so the
# wall time is about SECONDS * ceil(targets / FUZZ_JOBS).
# Exits non-zero when a fuzzer is missing or finds a crash (the reproducer is kept in the
# scratch directory, whose path is printed).
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 BUILD_DIR SECONDS" >&2
  exit 2
fi
build_dir=$1
seconds=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/pc-fuzz-smoke.XXXXXX")
failed=0

targets=(
  fuzz_request_head fuzz_response_head fuzz_chunked fuzz_icap fuzz_icap_identity
  fuzz_accept_language fuzz_templates
  fuzz_warn_token fuzz_catdb_import fuzz_policy_load fuzz_regex_literals
  fuzz_filetype fuzz_file_name fuzz_store_query fuzz_syslog_frames fuzz_hosts
)
max_jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
[[ $max_jobs =~ ^[1-9][0-9]*$ ]] || max_jobs=1

# Runs one target; its status goes to $scratch/$target/status.
run_one() {
  local target=$1 bin=$2
  local corpus="$scratch/$target/corpus" artifacts="$scratch/$target/artifacts"
  mkdir -p "$corpus" "$artifacts"
  cp "$here/corpus/$target/"* "$corpus/"
  if "$bin" -max_total_time="$seconds" -seed=1 -rss_limit_mb=2048 -timeout=10 \
      -artifact_prefix="$artifacts/" -print_final_stats=1 "$corpus" \
      >"$scratch/$target/log" 2>&1; then
    echo ok >"$scratch/$target/status"
  else
    echo failed >"$scratch/$target/status"
  fi
}

started=()
for target in "${targets[@]}"; do
  bin=$(find "$build_dir" -type f -name "$target" -perm -u+x | head -n 1)
  if [[ -z "$bin" ]]; then
    echo "$target: not built in $build_dir (cmake --build $build_dir --target fuzz_all)" >&2
    failed=1
    continue
  fi
  while [[ $(jobs -rp | wc -l) -ge $max_jobs ]]; do wait -n || true; done
  echo "== $target for ${seconds}s"
  mkdir -p "$scratch/$target"
  run_one "$target" "$bin" &
  started+=("$target")
done
wait

for target in "${started[@]}"; do
  if [[ $(cat "$scratch/$target/status" 2>/dev/null) != ok ]]; then
    echo "$target: FAILED; log and reproducer under $scratch/$target" >&2
    tail -n 30 "$scratch/$target/log" >&2
    failed=1
    continue
  fi
  echo "$target: $(grep -E '^stat::number_of_executed_units' "$scratch/$target/log" || true)"
done

if [[ $failed -eq 0 ]]; then
  rm -rf "$scratch"
  echo "fuzz smoke: all targets passed"
fi
exit $failed
