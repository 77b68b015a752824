#!/usr/bin/env bash
# Fuzzes each target with libFuzzer for a given time: fuzz/run.sh SECONDS [TARGET...]
#
# With no TARGET, every target of fuzz/libfuzzer/fuzz_targets runs, one after the other
# (FUZZ_PARALLEL=2 runs two at a time). Each starts from its committed seeds (fuzz/corpus/<t>)
# and past findings (fuzz/regressions/<t>), which it only reads: the inputs it finds go to
# $FUZZ_SCRATCH/corpus/<t>, a crash, timeout or out-of-memory input to
# $FUZZ_SCRATCH/artifacts/<t>/, its log to $FUZZ_SCRATCH/logs/<t>.log (FUZZ_SCRATCH defaults to
# fuzz/libfuzzer/scratch, ignored by git). At the end, one line per target: how long it ran,
# how many inputs it executed, and whether it crashed. Exits 1 when any target crashed.
#
# Runs on the stable toolchain: cargo-fuzz (`cargo install cargo-fuzz --locked`) builds with
# `-s none` (no sanitizer, which would need nightly) and `-O`; RUSTC_BOOTSTRAP=1 lets cargo-fuzz's
# nightly-only checks pass. Extra libFuzzer flags: FUZZ_FLAGS (for example `-dict=...`).
set -euo pipefail
cd "$(dirname "$0")"
fuzz_dir="$PWD"

if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
  echo "usage: fuzz/run.sh SECONDS [TARGET...]" >&2
  exit 2
fi
seconds=$1
shift
if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for file in libfuzzer/fuzz_targets/*.rs; do targets+=("$(basename "$file" .rs)"); done
fi
for target in "${targets[@]}"; do
  if [ ! -f "libfuzzer/fuzz_targets/$target.rs" ]; then
    echo "no target $target (fuzz/libfuzzer/fuzz_targets/$target.rs)" >&2
    exit 2
  fi
done
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
  exit 2
fi

export RUSTC_BOOTSTRAP=1
build=(-O -s none --fuzz-dir "$fuzz_dir/libfuzzer")
scratch="$(realpath -m "${FUZZ_SCRATCH:-$fuzz_dir/libfuzzer/scratch}")"
parallel="${FUZZ_PARALLEL:-1}"
mkdir -p "$scratch/logs"

echo "== building ${#targets[@]} target(s) ($(date +%T))"
# The workspace's locked versions: cargo adds libfuzzer-sys's few crates and drops what is unused.
cp ../Cargo.lock libfuzzer/Cargo.lock
if [ ${#targets[@]} -eq 1 ]; then
  cargo fuzz build "${build[@]}" "${targets[0]}"
else
  cargo fuzz build "${build[@]}"
fi

# Fuzzes one target; writes its summary line to $scratch/logs/<t>.summary.
fuzz_one() {
  local target=$1
  local corpus="$scratch/corpus/$target" artifacts="$scratch/artifacts/$target/" log="$scratch/logs/$target.log"
  mkdir -p "$corpus" "$artifacts"
  local inputs=("$corpus" "$fuzz_dir/corpus/$target")
  [ -d "$fuzz_dir/regressions/$target" ] && inputs+=("$fuzz_dir/regressions/$target")
  local before start end status=0
  before=$(find "$artifacts" -type f | wc -l)
  start=$(date +%s)
  # shellcheck disable=SC2086 # FUZZ_FLAGS is a list of flags.
  cargo fuzz run "${build[@]}" "$target" "${inputs[@]}" -- \
    -max_total_time="$seconds" -artifact_prefix="$artifacts" -timeout=10 -rss_limit_mb=4096 \
    -max_len=131072 -print_final_stats=1 ${FUZZ_FLAGS:-} >"$log" 2>&1 || status=$?
  end=$(date +%s)
  local execs found result
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -n 1)
  found=$(find "$artifacts" -type f | wc -l)
  if [ "$status" -eq 0 ] && [ "$found" -eq "$before" ]; then
    result="no crash"
  else
    result="CRASH (exit $status): $(find "$artifacts" -type f -newermt "@$start" | head -n 3 | xargs -r -n1 basename | paste -sd ' ')"
  fi
  printf '%-28s %6ss %12s execs  %s\n' "$target" "$((end - start))" "${execs:-?}" "$result" >"$scratch/logs/$target.summary"
  cat "$scratch/logs/$target.summary"
}

echo "== fuzzing each target for ${seconds}s, $parallel at a time ($(date +%T)); logs in $scratch/logs"
running=0
for target in "${targets[@]}"; do
  if [ "$running" -ge "$parallel" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  fuzz_one "$target" &
  running=$((running + 1))
done
wait || true

echo
echo "== summary ($(date +%T))"
crashed=0
for target in "${targets[@]}"; do
  cat "$scratch/logs/$target.summary"
  grep -q CRASH "$scratch/logs/$target.summary" && crashed=1
done
if [ "$crashed" -eq 1 ]; then
  echo "crash inputs are in $scratch/artifacts/<target>/; the backtrace is at the end of each log"
  echo "minimise: RUSTC_BOOTSTRAP=1 cargo fuzz tmin -O -s none --fuzz-dir fuzz/libfuzzer TARGET FILE"
fi
exit "$crashed"
