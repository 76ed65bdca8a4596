#!/usr/bin/env bash
# Fuzz every target for a bounded time: fuzz/run.sh [SECONDS] [TARGET...]
#
#   SECONDS   per target (default 30), passed to libFuzzer as -max_total_time
#   TARGET    run only these (default: every target `cargo fuzz list` names)
#
# Builds with cargo-fuzz (`cargo install cargo-fuzz`). cargo-fuzz needs
# nightly rustc flags; on a stable toolchain RUSTC_BOOTSTRAP=1 unlocks them.
# Each target starts from its seeds in fuzz/corpus/TARGET (never written to)
# and a dictionary from fuzz/dict/ (JSON for the ingest targets, YAML for the
# loaders), and grows a working corpus in fuzz/work/TARGET (git-ignored). A crash
# (panic, sanitizer report, out-of-memory, or one input taking longer than
# FUZZ_TIMEOUT seconds, default 25) is saved under fuzz/artifacts/TARGET/ and
# makes this script exit 1 after every target has run.
#
# Environment: FUZZ_SANITIZER (address, the default, or none), FUZZ_TIMEOUT,
# FUZZ_MAX_LEN (largest generated input in bytes, default 65536).
set -uo pipefail
cd "$(dirname "$0")"

SECONDS_PER_TARGET="${1:-30}"
shift || true
case "$SECONDS_PER_TARGET" in
  ''|*[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
  exit 2
fi
if ! rustc --version | grep -q nightly; then
  export RUSTC_BOOTSTRAP=1
fi

SANITIZER="${FUZZ_SANITIZER:-address}"
TIMEOUT="${FUZZ_TIMEOUT:-25}"
MAX_LEN="${FUZZ_MAX_LEN:-65536}"

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

echo "== building ${#targets[@]} fuzz targets (sanitizer: $SANITIZER)"
if ! cargo fuzz build --sanitizer "$SANITIZER"; then
  echo "fuzz build failed" >&2
  exit 1
fi

failed=()
summary=()
for t in "${targets[@]}"; do
  mkdir -p "work/$t" "artifacts/$t"
  seeds=()
  [ -d "corpus/$t" ] && seeds=("corpus/$t")
  dict=()
  case "$t" in
    ingest_*) dict=(-dict=dict/json.dict) ;;
    rules_loader|config_loader) dict=(-dict=dict/yaml.dict) ;;
  esac
  log="work/$t.log"
  echo "== $t: ${SECONDS_PER_TARGET}s"
  start=$(date +%s)
  cargo fuzz run --sanitizer "$SANITIZER" "$t" "work/$t" "${seeds[@]}" -- \
    -max_total_time="$SECONDS_PER_TARGET" -timeout="$TIMEOUT" -max_len="$MAX_LEN" \
    -print_final_stats=1 "${dict[@]}" >"$log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+')
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    summary+=("$t: CRASH after ${took}s (exit $rc; see fuzz/$log and fuzz/artifacts/$t/)")
    grep -E 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY|Test unit written' "$log" | head -8 >&2
  else
    summary+=("$t: ok, ${runs:-?} inputs in ${took}s, coverage ${cov:-?}")
  fi
done

echo
echo "== fuzz summary (${SECONDS_PER_TARGET}s per target)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "crashed: ${failed[*]}" >&2
  exit 1
fi
