#!/usr/bin/env bash
# Reruns every row of BENCHMARKS.md: the broker against fanout-reference (both binaries of this
# crate), side by side, RUNS runs of each per row, in pairs whose order alternates (A B, B A,
# A B, ...). Keeps every run's JSON line in $RAW/ROW.jsonl (committed: bench/raw/) and then
# regenerates the generated section of BENCHMARKS.md from all of them (`pubsub-bench tables`).
#
#   scripts/bench-all.sh                              # every row, 5 runs each, on a quiet machine
#   RUNS=7 ROWS="fanout topics" scripts/bench-all.sh  # some rows (the others' raw files stay)
#   QUICK=1 RUNS=1 PROFILE=debug RAW=/tmp/raw DOC=/tmp/B.md scripts/bench-all.sh
#                                                     # checks the tooling in a minute; no results
#
# Environment:
#   RUNS         runs per server and row (default 5)
#   ROWS         rows to run, from: fanout fanout-full topics rate1k rate10k conns10k conns19k (fanout-full:
#                fanout with subscribers that parse every frame as JSON), and the Redis
#                engine's redis-fanout redis-topics redis-rate1k (default all). A redis-* row runs
#                its scenario against two nodes on one Redis (subscribers spread over both, the
#                publisher on the first) side by side with one node on the memory engine, and
#                reports Redis's CPU per publish too; it needs redis-server (PORT_R, PORT_C)
#   QUICK        1: tiny rows of a few seconds each, to check the tooling (never results)
#   MIN_SECONDS  pubsub-bench --min-seconds for fanout, topics and rate (default 2; QUICK: 0.5)
#   PROFILE      cargo profile of the binaries: release (default) or debug (tooling checks only)
#   REFERENCE    a fanout-reference Cargo.toml outside this repository to measure against instead
#                of the in-repo src/bin/fanout-reference (built into $REF_TARGET, default
#                /tmp/fanout-reference)
#   RAW          directory of the raw JSON lines, one file per row (default bench/raw)
#   DOC          document whose generated section is rewritten (default BENCHMARKS.md)
#   OUT          directory for the full output and the servers' logs (default a fresh mktemp -d)
#   PORT_A, PORT_B   loopback ports for the broker and the reference (default 18101, 18102)
#
# Bounded: each pubsub-bench call runs under `timeout` and has its own --timeout; both servers
# are stopped (by PID) when the script exits, however it exits. A run that fails stays in the
# raw file with "ok": false and is left out of the medians (the tables count it as dropped, as
# they do runs that never reported). The conns rows restart both servers before every run, so
# each run measures memory from a fresh process (a reused allocator would hide the
# per-connection cost), and pass --first-run so that their order alternates too. The broker runs
# with its default flags, --max-connections 20000 and RUST_LOG=warn (at info it logs a line per
# HTTP request, which the reference does not do); the reference with its defaults (queue 16384,
# overflow block: lossless, like the broker's default queue).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
ROWS=${ROWS:-"fanout fanout-full topics rate1k rate10k conns10k conns19k redis-fanout redis-topics redis-rate1k"}
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then MIN_SECONDS=${MIN_SECONDS:-0.5}; else MIN_SECONDS=${MIN_SECONDS:-2}; fi
PROFILE=${PROFILE:-release}
PORT_A=${PORT_A:-18101}
PORT_B=${PORT_B:-18102}
PORT_C=${PORT_C:-18103}
PORT_R=${PORT_R:-18104}
RAW=${RAW:-bench/raw}
DOC=${DOC:-BENCHMARKS.md}
OUT=${OUT:-$(mktemp -d /tmp/pubsub-bench.XXXXXX)}
mkdir -p "$OUT" "$RAW"

# The command line of each row (after the flags every row shares).
row_args() { # row
    case $1 in redis-*) row_args "${1#redis-}"; return ;; esac
    if [ "$QUICK" = 1 ]; then
        case $1 in
        fanout) echo "fanout --subscribers 10 --messages 2000 --bytes 64 --window 64" ;;
        fanout-full) echo "--parse full $(row_args fanout)" ;;
        topics) echo "topics --topics 20 --messages 2000" ;;
        rate1k) echo "rate --subscribers 10 --rate 200 --duration 1" ;;
        rate10k) echo "rate --subscribers 10 --rate 1000 --duration 1" ;;
        conns10k) echo "conns --connections 200 --topics 10 --settle 0.2" ;;
        conns19k) echo "conns --connections 400 --topics 10 --settle 0.2" ;;
        *) return 1 ;;
        esac
        return
    fi
    case $1 in
    fanout) echo "fanout --subscribers 100 --messages 20000 --bytes 64 --window 64" ;;
    fanout-full) echo "--parse full $(row_args fanout)" ;;
    topics) echo "topics --topics 1000 --messages 50000" ;;
    rate1k) echo "rate --subscribers 100 --rate 1000 --duration 10" ;;
    rate10k) echo "rate --subscribers 100 --rate 10000 --duration 10" ;;
    conns10k) echo "conns --connections 10000 --topics 100 --settle 2" ;;
    conns19k) echo "conns --connections 19000 --topics 100 --settle 2" ;;
    *) return 1 ;;
    esac
}
for row in $ROWS; do
    row_args "$row" >/dev/null || { echo "unknown row '$row'" >&2; exit 2; }
done

# Both servers and the harness may hold ~19 000 sockets: raise the soft file limit to the hard one.
ulimit -n "$(ulimit -Hn)"
[ "$QUICK" = 1 ] || [ "$(ulimit -n)" -ge 19200 ] || echo "warning: open-file limit $(ulimit -n): conns19k will fail" >&2

echo "building ($PROFILE)..."
case $PROFILE in
release) cargo build --release --quiet --bin pubsub --bin pubsub-bench --bin fanout-reference ;;
debug) cargo build --quiet --bin pubsub --bin pubsub-bench --bin fanout-reference ;;
*) echo "PROFILE must be release or debug" >&2; exit 2 ;;
esac
BIN=${CARGO_TARGET_DIR:-target}/$PROFILE
BROKER=$BIN/pubsub
BENCH=$BIN/pubsub-bench
if [ -n "${REFERENCE:-}" ]; then
    REF_TARGET=${REF_TARGET:-/tmp/fanout-reference}
    CARGO_TARGET_DIR=$REF_TARGET cargo build --release --quiet --manifest-path "$REFERENCE"
    REF=$REF_TARGET/release/fanout-reference
    REF_DESC="outside: $REFERENCE"
else
    REF=$BIN/fanout-reference
    REF_DESC="in-repo src/bin/fanout-reference"
fi

PID_A="" PID_B="" PID_C="" PID_R=""
stop_servers() {
    for pid in $PID_A $PID_B $PID_C $PID_R; do kill "$pid" 2>/dev/null || true; done
    for pid in $PID_A $PID_B $PID_C $PID_R; do wait "$pid" 2>/dev/null || true; done
    PID_A="" PID_B="" PID_C="" PID_R=""
}
trap stop_servers EXIT

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_listening() { # port pid
    for _ in $(seq 100); do
        kill -0 "$2" 2>/dev/null || { echo "the server for port $1 exited; see $OUT/*.log" >&2; exit 1; }
        listening "$1" && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1 after 10 s" >&2
    exit 1
}

# Flags the broker gets for a row beyond the shared ones. fanout-full: its subscribers parse every
# frame and cannot keep up with the publisher, so both servers must buffer to stay lossless. The
# reference blocks its publisher when a subscriber's queue (16 384 frames) is full; the broker never
# slows a publisher for a slow subscriber (it disconnects one 1 MiB behind, by default), so here it
# gets a queue deep enough for the whole run (64 MiB per subscriber) and the row compares how fast
# each server's frames reach subscribers that parse them, both lossless.
broker_row_flags() { # row
    case $1 in
    fanout-full) echo "--subscriber-queue-bytes 67108864" ;;
    esac
}

start_servers() { # row
    stop_servers
    for port in "$PORT_A" "$PORT_B"; do
        if listening "$port"; then
            echo "port $port is already in use: set PORT_A / PORT_B" >&2
            exit 1
        fi
    done
    # shellcheck disable=SC2046 # the row's flags are words
    RUST_LOG=warn "$BROKER" --port "$PORT_A" --max-connections 20000 $(broker_row_flags "$1") \
        >>"$OUT/broker.log" 2>&1 &
    PID_A=$!
    "$REF" --port "$PORT_B" >>"$OUT/reference.log" 2>&1 &
    PID_B=$!
    wait_listening "$PORT_A" "$PID_A"
    wait_listening "$PORT_B" "$PID_B"
}

# For a redis-* row: a Redis of the script's own (nothing on disk), two nodes on it (A and C) and
# one node on the memory engine (B).
start_redis_servers() {
    stop_servers
    for port in "$PORT_A" "$PORT_B" "$PORT_C" "$PORT_R"; do
        if listening "$port"; then
            echo "port $port is already in use: set PORT_A / PORT_B / PORT_C / PORT_R" >&2
            exit 1
        fi
    done
    mkdir -p "$OUT/redis"
    redis-server --port "$PORT_R" --bind 127.0.0.1 --save "" --appendonly no --dir "$OUT/redis" \
        >>"$OUT/redis.log" 2>&1 &
    PID_R=$!
    wait_listening "$PORT_R" "$PID_R"
    local redis=(--engine redis --redis-url "redis://127.0.0.1:$PORT_R/0")
    RUST_LOG=warn "$BROKER" --port "$PORT_A" --max-connections 20000 "${redis[@]}" >>"$OUT/broker.log" 2>&1 &
    PID_A=$!
    RUST_LOG=warn "$BROKER" --port "$PORT_C" --max-connections 20000 "${redis[@]}" >>"$OUT/broker-c.log" 2>&1 &
    PID_C=$!
    RUST_LOG=warn "$BROKER" --port "$PORT_B" --max-connections 20000 >>"$OUT/memory.log" 2>&1 &
    PID_B=$!
    wait_listening "$PORT_A" "$PID_A"
    wait_listening "$PORT_C" "$PID_C"
    wait_listening "$PORT_B" "$PID_B"
}

json_str() { # text -> a JSON string
    local s=${1//\\/\\\\}
    printf '"%s"' "${s//\"/\\\"}"
}

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || COMMIT="$COMMIT+changes"
MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
MACHINE="$(nproc) CPUs ${MODEL:-unknown}, Linux $(uname -r)"

# Starts a row's raw file with the line that describes it.
begin_raw() { # row command [a b]
    printf '{"meta":{"row":%s,"command":%s,"runs":%s,"a":%s,"b":%s,"reference":%s,"commit":%s,"date":%s,"machine":%s,"min_seconds":%s,"profile":%s,"quick":%s}}\n' \
        "$(json_str "$1")" "$(json_str "$2")" "$RUNS" "$(json_str "${3:-pubsub}")" "$(json_str "${4:-reference}")" \
        "$(json_str "$REF_DESC")" "$(json_str "$COMMIT")" \
        "$(json_str "$(date -u +%Y-%m-%d)")" "$(json_str "$MACHINE")" "$MIN_SECONDS" "$(json_str "$PROFILE")" \
        "$([ "$QUICK" = 1 ] && echo true || echo false)" >"$RAW/$1.jsonl"
}

bench() { # row first-run runs args...
    local row=$1 first=$2 runs=$3 status=0
    shift 3
    local servers=(--addr "127.0.0.1:$PORT_A" --server-pid "$PID_A" --name pubsub
        --compare "127.0.0.1:$PORT_B" --compare-pid "$PID_B" --compare-name reference)
    case $row in redis-*)
        servers=(--addr "127.0.0.1:$PORT_A,127.0.0.1:$PORT_C" --server-pid "$PID_A,$PID_C"
            --redis-pid "$PID_R" --name redis-2-nodes
            --compare "127.0.0.1:$PORT_B" --compare-pid "$PID_B" --compare-name memory) ;;
    esac
    echo "== $row: pubsub-bench --runs $runs --first-run $first $*" | tee -a "$OUT/$row.txt"
    timeout 1800 "$BENCH" "${servers[@]}" \
        --cpu --min-seconds "$MIN_SECONDS" --runs "$runs" --first-run "$first" --timeout 300 "$@" \
        >"$OUT/$row.part" 2>&1 || status=$?
    cat "$OUT/$row.part" >>"$OUT/$row.txt"
    # Every run's JSON line (not the summary and ratio lines) goes to the raw file.
    grep -E '^\{.*"run":[0-9]' "$OUT/$row.part" >>"$RAW/$row.jsonl" || true
    # On the terminal: the ratios, and whatever went wrong.
    grep -E '^(ratio |median ratio|\S+ run [0-9]+ on .*FAILED|  note: |    \*\*)|^pubsub-bench: error' "$OUT/$row.part" || true
    [ "$status" = 0 ] || echo "   (pubsub-bench exited with $status: failed runs are kept as failed, missing ones counted)"
}

for row in $ROWS; do
    # shellcheck disable=SC2207 # the row's arguments are words without spaces
    args=($(row_args "$row"))
    : >"$OUT/$row.txt"
    case $row in
    redis-*) begin_raw "$row" "${args[*]}" redis-2-nodes memory ;;
    *) begin_raw "$row" "${args[*]}" ;;
    esac
    case $row in
    redis-*)
        start_redis_servers
        bench "$row" 1 "$RUNS" "${args[@]}"
        ;;
    conns*)
        for i in $(seq "$RUNS"); do
            start_servers "$row"
            bench "$row" "$i" 1 "${args[@]}"
        done
        ;;
    *)
        start_servers "$row"
        bench "$row" 1 "$RUNS" "${args[@]}"
        ;;
    esac
done
stop_servers
"$BENCH" tables --raw "$RAW" --doc "$DOC"
echo "raw JSON lines: $RAW/*.jsonl; full output and server logs: $OUT"
