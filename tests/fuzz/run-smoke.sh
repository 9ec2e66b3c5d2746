#!/usr/bin/env bash
# Runs every wire fuzzer for a short time over a scratch copy of its seed corpus.
# Usage: tests/fuzz/run-smoke.sh BUILD_DIR SECONDS
# BUILD_DIR is a tree configured with -DPC_FUZZ=ON (clang) and built with --target fuzz_all.
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

for target in fuzz_request_head fuzz_response_head fuzz_chunked fuzz_icap; do
  bin=$(find "$build_dir" -type f -name "$target" -perm -u+x | head -n 1)
  if [[ -z "$bin" ]]; then
    echo "$target: not built in $build_dir (cmake --build $build_dir --target fuzz_all)" >&2
    failed=1
    continue
  fi
  corpus="$scratch/$target/corpus"
  artifacts="$scratch/$target/artifacts"
  mkdir -p "$corpus" "$artifacts"
  cp "$here/corpus/$target/"* "$corpus/"
  echo "== $target for ${seconds}s"
  if ! "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
      -artifact_prefix="$artifacts/" -print_final_stats=1 "$corpus" \
      >"$scratch/$target/log" 2>&1; then
    echo "$target: FAILED; log and reproducer under $scratch/$target" >&2
    tail -n 30 "$scratch/$target/log" >&2
    failed=1
    continue
  fi
  grep -E '^stat::number_of_executed_units|^Done' "$scratch/$target/log" || true
done

if [[ $failed -eq 0 ]]; then
  rm -rf "$scratch"
  echo "fuzz smoke: all targets passed"
fi
exit $failed
