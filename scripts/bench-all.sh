#!/usr/bin/env bash
# Reruns every row of BENCHMARKS.md: the broker (release build) against fanout-reference, side by
# side, alternating A B A B, RUNS runs per row (default 5).
#
#   scripts/bench-all.sh                 # every row, about 15 minutes on a 2-core machine
#   RUNS=3 ROWS="fanout topics" scripts/bench-all.sh
#
# Environment:
#   RUNS        runs per server and row (default 5)
#   ROWS        rows to run, from: fanout topics rate1k rate10k conns10k conns19k (default all)
#   REFERENCE   fanout-reference's Cargo.toml (default ../shared/reference/fanout-reference/Cargo.toml
#               next to the main checkout, /work/shared/... here)
#   OUT         directory for the raw output, one file per row (default a fresh mktemp -d)
#   PORT_A, PORT_B   loopback ports for the broker and the reference (default 18101, 18102)
#
# Bounded: each pubsub-bench call runs under `timeout` and has its own --timeout; both servers are
# stopped (by PID) when the script exits, however it exits. The conns rows restart both servers
# before every run, so each run measures memory from a fresh process (a reused allocator would
# hide the per-connection cost). The broker runs with its default flags and RUST_LOG=warn (at
# info it logs a line per HTTP request, which the reference does not do); the reference with its
# defaults (queue 16384, overflow block: lossless, like the broker's default queue).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
ROWS=${ROWS:-"fanout topics rate1k rate10k conns10k conns19k"}
PORT_A=${PORT_A:-18101}
PORT_B=${PORT_B:-18102}
OUT=${OUT:-$(mktemp -d /tmp/pubsub-bench.XXXXXX)}
mkdir -p "$OUT"
if [ -z "${REFERENCE:-}" ]; then
    for candidate in ../shared/reference/fanout-reference/Cargo.toml \
        ../../shared/reference/fanout-reference/Cargo.toml \
        /work/shared/reference/fanout-reference/Cargo.toml; do
        if [ -f "$candidate" ]; then REFERENCE=$candidate; break; fi
    done
fi
[ -f "${REFERENCE:-}" ] || { echo "fanout-reference not found: set REFERENCE=path/to/Cargo.toml" >&2; exit 2; }

# Both servers and the harness may hold ~19 000 sockets: raise the soft file limit to the hard one.
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 19200 ] || echo "warning: open-file limit $(ulimit -n): conns19k will fail" >&2

echo "building (release)..."
cargo build --release --quiet --bin pubsub --bin pubsub-bench
REF_TARGET=${REF_TARGET:-/tmp/fanout-reference}
CARGO_TARGET_DIR=$REF_TARGET cargo build --release --quiet --manifest-path "$REFERENCE"
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BROKER=$TARGET_DIR/release/pubsub
BENCH=$TARGET_DIR/release/pubsub-bench
REF=$REF_TARGET/release/fanout-reference

PID_A="" PID_B=""
stop_servers() {
    for pid in $PID_A $PID_B; do kill "$pid" 2>/dev/null || true; done
    for pid in $PID_A $PID_B; do wait "$pid" 2>/dev/null || true; done
    PID_A="" PID_B=""
}
trap stop_servers EXIT

wait_listening() { # port
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1 after 10 s" >&2
    exit 1
}

start_servers() {
    stop_servers
    RUST_LOG=warn "$BROKER" --port "$PORT_A" --max-connections 20000 >>"$OUT/broker.log" 2>&1 &
    PID_A=$!
    "$REF" --port "$PORT_B" >>"$OUT/reference.log" 2>&1 &
    PID_B=$!
    wait_listening "$PORT_A"
    wait_listening "$PORT_B"
}

bench() { # row-name runs scenario args...
    local row=$1 runs=$2
    shift 2
    echo "== $row: pubsub-bench $*" | tee -a "$OUT/$row.txt"
    timeout 1800 "$BENCH" --addr "127.0.0.1:$PORT_A" --server-pid "$PID_A" --name pubsub \
        --compare "127.0.0.1:$PORT_B" --compare-pid "$PID_B" --compare-name reference \
        --runs "$runs" --timeout 300 "$@" | tee -a "$OUT/$row.txt" | grep -E '^(ratio|median|  \S|\*\*)|HARNESS|FAILED' || true
}

for row in $ROWS; do
    case $row in
    fanout) start_servers; bench fanout "$RUNS" fanout --subscribers 100 --messages 20000 --bytes 64 --window 64 ;;
    topics) start_servers; bench topics "$RUNS" topics --topics 1000 --messages 50000 ;;
    rate1k) start_servers; bench rate1k "$RUNS" rate --subscribers 100 --rate 1000 --duration 10 ;;
    rate10k) start_servers; bench rate10k "$RUNS" rate --subscribers 100 --rate 10000 --duration 10 ;;
    conns10k | conns19k)
        n=$([ "$row" = conns10k ] && echo 10000 || echo 19000)
        for _ in $(seq "$RUNS"); do
            start_servers
            bench "$row" 1 conns --connections "$n" --topics 100 --settle 2
        done
        ;;
    *) echo "unknown row '$row'" >&2; exit 2 ;;
    esac
done
stop_servers
echo "raw output, with one JSON line per run: $OUT"
