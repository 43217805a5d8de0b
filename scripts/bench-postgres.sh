#!/usr/bin/env bash
# Check-in benchmark of both backends in one run (issue 12): nird-loadgen
# against SQLite, then against a fresh PostgreSQL with one server process,
# then with two. PostgreSQL is Debian's (scripts/install-deps.sh), a
# throwaway cluster in a temporary directory, run as nobody when this runs
# as root, with its default durability (fsync, synchronous_commit on) and
# the settings ARCHITECTURE.md recommends for a deployment (memory, WAL
# size between checkpoints).
#
#   scripts/bench-postgres.sh [MACHINES] [DURATION_SECS] [RUNS]
#
# RUNS: which runs, comma-separated, among sqlite, pg1, pg2 (default all).
# NIRD_BENCH_PROFILE: the cargo profile of the load generator (and so of
# the server it runs): bench-fast (default: release without LTO, a much
# shorter build, the same code) or release.
# NIRD_LOADGEN_ARGS: more options for every run, e.g. changed inventories:
#   NIRD_LOADGEN_ARGS="--inventory-packages 2500 --connections 16" \
#     scripts/bench-postgres.sh 1000 15
#
# Prints loadgen's lines for each run; BENCHMARKS.md holds the results.
set -euo pipefail
machines=${1:-100000}
duration=${2:-30}
runs=",${3:-sqlite,pg1,pg2},"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
profile=${NIRD_BENCH_PROFILE:-bench-fast}
read -r -a extra <<<"${NIRD_LOADGEN_ARGS:-}"
loadgen="$here/target/$profile/nird-loadgen"
cargo build --profile "$profile" -p nird-loadgen --manifest-path "$here/Cargo.toml" >&2

dir=$(mktemp -d /tmp/nird-bench-pg.XXXXXX)
as_owner=()
if [ "$(id -u)" = 0 ]; then
  chown 65534:65534 "$dir"
  as_owner=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi
"${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U nird --auth=trust -E UTF8 --no-locale >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${as_owner[@]}" "$bin/postgres" -D "$dir/data" -k "$dir" -p "$port" \
  -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=1GB \
  -c max_wal_size=4GB -c checkpoint_timeout=15min \
  >"$dir/log" 2>&1 &
pg=$!
trap 'kill -INT $pg 2>/dev/null; wait $pg 2>/dev/null; rm -rf "$dir"' EXIT
until "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; do sleep 0.2; done
psql() { "$bin/psql" -h 127.0.0.1 -p "$port" -U nird -At "$@"; }

if [[ $runs == *,sqlite,* ]]; then
  echo "== uptime: $(uptime)"
  echo "== SQLite, one server process"
  "$loadgen" --machines "$machines" --duration "$duration" "${extra[@]}"
fi
for servers in 1 2; do
  [[ $runs == *,pg$servers,* ]] || continue
  db="bench$servers"
  psql -d postgres -c "CREATE DATABASE $db" >/dev/null
  echo "== uptime: $(uptime)"
  echo "== PostgreSQL, $servers server process(es)"
  "$loadgen" --machines "$machines" --duration "$duration" --servers "$servers" \
    --database "postgres://nird@127.0.0.1:$port/$db" --postgres-pid "$pg" "${extra[@]}"
  echo "database size: $(psql -d "$db" -c "SELECT pg_size_pretty(pg_database_size('$db'))")"
done
