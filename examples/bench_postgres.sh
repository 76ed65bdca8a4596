#!/usr/bin/env bash
# One gateway on SQLite, Alertmanager, and one and two gateways on one
# PostgreSQL, under the same load from the load tool, one after another in
# one sitting (README "Scale beyond one machine").
#
#   examples/bench_postgres.sh [SCENARIO] [FINGERPRINTS] [SECONDS]
#
# SCENARIO distinct (default) or duplicate; FINGERPRINTS default 10000;
# SECONDS default 15. PG is the PostgreSQL server the gateways' fresh
# database is made on (default the local one as user postgres). Needs
# `cargo build --release --bin alertgate --example loadgen`, Debian's
# prometheus-alertmanager, and a running PostgreSQL. Prints the load
# tool's report of each run; OUT (default /tmp/alertgate-bench-postgres)
# keeps them.
set -euo pipefail
SCENARIO=${1:-distinct}
FPS=${2:-10000}
SECS=${3:-15}
PG=${PG:-postgres://postgres@127.0.0.1:5432/postgres}
B=${B:-target/release/alertgate}
L=${L:-target/release/examples/loadgen}
OUT=${OUT:-/tmp/alertgate-bench-postgres}
mkdir -p "$OUT"
common=(--spawn-alertgate "$B" --format v2 --scenario "$SCENARIO" --fingerprints "$FPS" --duration "$SECS")

echo "== SQLite, beside Alertmanager"
"$L" "${common[@]}" --compare-alertmanager | tee "$OUT/sqlite-and-alertmanager.txt"
for n in 1 2; do
  echo "== $n gateway(s) on PostgreSQL"
  "$L" "${common[@]}" --postgres "$PG" --gateways "$n" | tee "$OUT/postgres-$n.txt"
done
