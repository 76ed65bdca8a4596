#!/usr/bin/env bash
# Where an alert's cost goes: run alertgate under a profiler with a fixed
# load from the load tool, and split the profile into the buckets of
# README "Where the time goes".
#
#   examples/profile.sh LOAD TOOL [OUT]
#
# LOAD   new     100,000 distinct alerts, each new (a fresh store)
#        resend  100,000 stored alerts sent again (after a first pass), 3 times
#        dup     repeats of 100 stored alerts (loadgen --scenario duplicate)
# TOOL   callgrind  instructions per alert (valgrind; ~50x slower, one run)
#        perf       CPU share per bucket (perf record --call-graph dwarf)
#        plain      no profiler: CPU per thread, time in fsync (perf trace)
#
# RUNS=N repeats the run with a fresh gateway (default 3 for `new` under
# perf, whose 100,000 alerts take only a few seconds; else 1); REQUESTS
# overrides the measured requests of `resend` and `dup`; FREQ the perf
# sampling rate. Needs `cargo build --release --bin alertgate --example
# loadgen`, valgrind, perf, curl and python3. Everything goes to OUT
# (default /tmp/alertgate-profile/LOAD-TOOL), the summary to OUT/report.txt.
set -euo pipefail
LOAD=${1:?LOAD: new, resend or dup}
TOOL=${2:?TOOL: callgrind, perf or plain}
OUT=${3:-/tmp/alertgate-profile/$LOAD-$TOOL}
HERE=$(cd "$(dirname "$0")" && pwd)
B=${B:-target/release/alertgate}
L=${L:-target/release/examples/loadgen}
PORT=${PORT:-18300}
URL=http://127.0.0.1:$PORT
FREQ=${FREQ:-999}

if [ "$TOOL" = callgrind ]; then
  RUNS=1
  RESEND_REQUESTS=${REQUESTS:-1000}
  DUP_REQUESTS=${REQUESTS:-300}
else
  RESEND_REQUESTS=${REQUESTS:-3000}
  DUP_REQUESTS=${REQUESTS:-6000}
fi
if [ "$LOAD" = new ] && [ "$TOOL" = perf ]; then RUNS=${RUNS:-3}; else RUNS=${RUNS:-1}; fi
DISTINCT=(--scenario distinct --fingerprints 100000)
case $LOAD in
  new)    WARM=(); MEASURE=("${DISTINCT[@]}" --requests 1000) ;;
  resend) WARM=("${DISTINCT[@]}" --requests 1000); MEASURE=("${DISTINCT[@]}" --requests "$RESEND_REQUESTS") ;;
  dup)    WARM=(--scenario duplicate --requests 10); MEASURE=(--scenario duplicate --requests "$DUP_REQUESTS") ;;
  *) echo "unknown load $LOAD" >&2; exit 2 ;;
esac

run_once() { # one gateway, warmed up, measured under $TOOL; its files in $1
  local dir=$1 pid toolpid=
  mkdir -p "$dir/data"
  local serve=("$B" serve --listen "127.0.0.1:$PORT" --data-dir "$dir/data" --rules rules)
  if [ "$TOOL" = callgrind ]; then
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$dir/callgrind.out" \
      "${serve[@]}" >"$dir/gateway.out" 2>"$dir/gateway.log" &
  else
    "${serve[@]}" >"$dir/gateway.out" 2>"$dir/gateway.log" &
  fi
  pid=$!
  trap 'kill -TERM '"$pid"' 2>/dev/null || true' EXIT
  for _ in $(seq 600); do
    curl -sf "$URL/healthz" >/dev/null 2>&1 && break
    sleep 0.5
  done
  if [ ${#WARM[@]} -gt 0 ]; then
    "$L" --target "$URL" --format v2 "${WARM[@]}" >"$dir/warmup.txt" 2>&1
  fi
  threads() { # each thread's on-CPU and run-queue ns (/proc/PID/task/*/schedstat)
    for t in /proc/$pid/task/*; do
      echo "$(basename "$t") $(tr ' ' '_' <"$t/comm") $(cat "$t/schedstat")"
    done >"$dir/threads.$1"
    date +%s.%N >"$dir/time.$1"
  }
  metrics() { # the store's transactions: how many, how long, how many requests in each
    curl -sf "$URL/metrics" | grep -E '^alertgate_store_commit_(duration_seconds|batch_requests)_(sum|count)' >"$dir/metrics.$1"
  }
  metrics before
  case $TOOL in
    callgrind) callgrind_control -z "$pid" >/dev/null ;;
    perf) perf record -q -e cpu-clock -F "$FREQ" --call-graph dwarf,24576 -p "$pid" -o "$dir/perf.data" 2>"$dir/perf.log" &
          toolpid=$! ; sleep 1 ;;
    plain) perf trace -s -e fsync,fdatasync -p "$pid" -o "$dir/fsync.txt" 2>"$dir/trace.log" &
          toolpid=$! ; sleep 1 ;;
  esac
  threads before
  "$L" --target "$URL" --pid "$pid" --format v2 "${MEASURE[@]}" >"$dir/loadgen.txt" 2>&1
  threads after
  case $TOOL in
    callgrind) callgrind_control -d "$pid" >/dev/null ;;
    perf|plain) kill -INT "$toolpid"; wait "$toolpid" || true ;;
  esac
  metrics after
  kill -TERM "$pid"; wait "$pid" || true
  trap - EXIT
}

alerts_of() { sed -n 's/.*(.* req\/s, \([0-9]*\) alerts in .*/\1/p' "$1/loadgen.txt" | tail -1; }

rm -rf "$OUT"
for i in $(seq "$RUNS"); do run_once "$OUT/$i"; done

{
  echo "== $LOAD under $TOOL, $RUNS run(s); $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  total=0
  for i in $(seq "$RUNS"); do
    d=$OUT/$i
    echo "-- run $i"
    grep -E 'accepted  |server CPU|latency|loadgen CPU' "$d/loadgen.txt" || true
    python3 "$HERE/profile_buckets.py" threads --alerts "$(alerts_of "$d")" "$d"
    [ "$TOOL" = plain ] && { grep -E '^ [^ ].*\(|fsync|fdatasync' "$d/fsync.txt" || true; }
    total=$((total + $(alerts_of "$d")))
  done
  case $TOOL in
    callgrind) python3 "$HERE/profile_buckets.py" callgrind --alerts "$total" --top "${TOP:-0}" "$OUT"/1/callgrind.out.1-* ;;
    perf)
      cpu_us=$(cat "$OUT"/*/loadgen.txt | sed -n 's/.*server CPU *\([0-9.]*\) s .*/\1/p' | awk -v n="$total" '{s+=$1} END {print s*1e6/n}')
      for i in $(seq "$RUNS"); do perf script -i "$OUT/$i/perf.data" -F comm,tid,period,ip,sym,dso 2>/dev/null; done |
        python3 "$HERE/profile_buckets.py" perf --alerts "$total" --cpu-us "$cpu_us" - ;;
  esac
} | tee "$OUT/report.txt"
