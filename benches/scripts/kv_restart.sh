#!/usr/bin/env bash
# kv_server restart time against live data size, with compaction off and on
# (issue 13). For each KEYS:OVERWRITES pair, with real redis-benchmark SETs
# of 32-byte values over KEYS random keys, on a data directory under
# $TMPDIR (default /dev/shm):
#
#   off      compaction off (--compact-bytes 0): the log holds the whole
#            history; restart replays all of it.
#   live     then BGREWRITEAOF, kill -9: the directory holds a snapshot of
#            exactly the live keyspace and an empty log. Its restart is "the
#            time to read the live data": one read and rebuild of it.
#   S/4      then KEYS/4 more overwrites with compaction off: a log a
#            quarter of the snapshot's size, the most the trigger
#            (log >= snapshot / 4) leaves before it compacts; the bound's
#            worst case.
#   S/2, S   KEYS/4, then KEYS/2 more: the logs other triggers would allow.
#   2S       KEYS more: the most the old trigger (log >= 2 x snapshot) left.
#   on 1MiB  a fresh load of the same history with --compact-bytes 1048576
#            (compacting once the log reaches a quarter of the snapshot).
#   on 64MiB the same with the default --compact-bytes.
#
# Each restart is timed by the server itself: the CPU time of its thread
# from exec to serving (its "ready (CPU time ...)" line; on a machine
# shared with other work, the steadier measure), and the wall time of
# recovery (its "recovered in" line: snapshot and log read and replayed).
# The median of RESTARTS runs by CPU time; the server is killed with
# SIGKILL each time.
#
#   cargo build --release --example kv_server
#   bash benches/scripts/kv_restart.sh [KEYS:OVERWRITES ...]
#
# Default pairs: 200000:1200000 50000:1200000 200000:200000 500000:1200000.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${BIN:-target/release/examples/kv_server}
PORT=${PORT:-6391}
RESTARTS=${RESTARTS:-3}
WORK=${TMPDIR:-/dev/shm}/kv_restart.$$
[ -x "$BIN" ] || { echo "build it first: cargo build --release --example kv_server" >&2; exit 2; }
command -v redis-benchmark >/dev/null || { echo "redis-benchmark is missing" >&2; exit 2; }
mkdir -p "$WORK"
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

server_pid=
port=$PORT
# start DIR COMPACT_BYTES: starts the server, waits until it answers. Each
# start takes the next port: right after kill -9 the dead server's ring
# still holds its listening socket until the kernel's asynchronous
# teardown (tens of milliseconds; docs/backends.md, "Registered files"),
# which kv_server's start waits out, and a fresh port keeps that wait out
# of the measurement.
start() {
    port=$((port + 1))
    "$BIN" --dir "$1" --addr 127.0.0.1:$port --fsync no --compact-bytes "$2" \
        >/dev/null 2>"$WORK/server.err" &
    server_pid=$!
    for _ in $(seq 1 600); do
        if redis-cli -p $port ping >/dev/null 2>&1; then return; fi
        sleep 0.05
    done
    cat "$WORK/server.err" >&2
    exit 1
}

stop() {
    kill -9 "$server_pid"
    wait "$server_pid" 2>/dev/null || true
}

# load N KEYS: N SETs over KEYS random keys.
load() {
    redis-benchmark -p $port -t set -n "$1" -r "$2" -P 16 -d 32 -q >/dev/null 2>&1
}

# restart DIR COMPACT_BYTES: prints "cpu_ms wall_ms snapshot_bytes
# log_bytes", the median of RESTARTS restarts by CPU time.
restart() {
    for _ in $(seq 1 "$RESTARTS"); do
        start "$1" "$2"
        # The ready line comes after the loop's next 100 ms slice.
        for _ in $(seq 1 100); do
            grep -q 'ready (CPU' "$WORK/server.err" && break
            sleep 0.05
        done
        stop
        cpu=$(grep -o 'ready (CPU time since start: [0-9.]* ms)' "$WORK/server.err" | awk '{print $6}')
        grep -o 'recovered in [0-9.]* ms: read [0-9]* snapshot bytes and [0-9]* log bytes' \
            "$WORK/server.err" | awk -v cpu="$cpu" '{print cpu, $3, $6, $10}'
    done | sort -n | awk -v n="$RESTARTS" 'NR == int((n + 1) / 2)'
}

# row LABEL "cpu_ms wall_ms snapshot log" "LIVE_CPU_MS LIVE_WALL_MS"
row() {
    read -r cpu wall snapshot log <<<"$2"
    read -r live_cpu live_wall <<<"$3"
    awk -v label="$1" -v cpu="$cpu" -v wall="$wall" -v s="$snapshot" -v l="$log" \
        -v live_cpu="$live_cpu" -v live_wall="$live_wall" -v k="$keys" -v n="$overwrites" \
        'BEGIN { printf "| %d | %d | %s | %.1f MB | %.1f MB | %.0f | %.2fx | %.0f | %.2fx |\n",
                 k, n, label, s / 1e6, l / 1e6, cpu, cpu / live_cpu, wall, wall / live_wall }'
}

echo "| keys | overwrites | data directory | snapshot | log | restart CPU (ms) | / live | restart wall (ms) | / live |"
echo "|---:|---:|---|---:|---:|---:|---:|---:|---:|"
for pair in "${@:-200000:1200000 50000:1200000 200000:200000 500000:1200000}"; do
    for pair in $pair; do
        keys=${pair%%:*}
        overwrites=${pair##*:}
        dir=$WORK/data
        rm -rf "$dir"
        start "$dir" 0
        load "$overwrites" "$keys"
        stop
        off=$(restart "$dir" 0)
        start "$dir" 0
        redis-cli -p $port bgrewriteaof >/dev/null
        for _ in $(seq 1 600); do
            grep -q compacted "$WORK/server.err" && break
            sleep 0.05
        done
        stop
        live=$(restart "$dir" 0)
        read -r live_cpu live_wall _ <<<"$live"
        live_ms="$live_cpu $live_wall"
        row "compaction off: the whole history" "$off" "$live_ms"
        row "live: snapshot only (after BGREWRITEAOF)" "$live" "$live_ms"
        # Overwrites of KEYS/4, KEYS/4, KEYS/2 and KEYS more keys grow the
        # log to about S/4, S/2, S and 2S: each logged SET is as long as
        # its snapshot record.
        for step in "$((keys / 4)):S/4 (the trigger's worst case)" "$((keys / 4)):S/2" \
            "$((keys / 2)):S" "$keys:2S (the old trigger's worst case)"; do
            start "$dir" 0
            load "${step%%:*}" "$keys"
            stop
            row "snapshot + log of ${step#*:}" "$(restart "$dir" 0)" "$live_ms"
        done
        for compact in 1048576 67108864; do
            rm -rf "$dir"
            start "$dir" $compact
            load "$overwrites" "$keys"
            stop
            # Restarted with compaction off, so that no restart compacts.
            row "compaction on, --compact-bytes $compact" "$(restart "$dir" 0)" "$live_ms"
        done
    done
done
