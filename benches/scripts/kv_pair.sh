#!/usr/bin/env bash
# Paired throughput of kv_server builds (and redis-server), under
# `--fsync always` by default, for changes whose effect is smaller than the drift of
# the disk's fsync latency from one minute to the next.
#
# Every server starts at once (pinned to core 0, each with a fresh data
# directory under $TMPDIR, default /tmp: a real disk, not tmpfs), then
# ROUNDS rounds each run one short redis-benchmark burst (pinned to core
# 1) against every server in turn. A round's bursts are seconds apart, so
# a ratio within a round compares like with like; the median of the
# per-round ratios is the figure. Prints one line per round (requests/s,
# in the order the servers were given), then each server's median and
# its median ratio to the first server.
#
#   bash benches/scripts/kv_pair.sh ROUNDS TEST REQUESTS SERVER...
#
# SERVER is a kv_server binary, or `redis` for redis-server with
# `--appendonly yes --appendfsync always --save ''`. P (pipeline, default 1)
# and C (clients, default 50) set redis-benchmark's -P and -c. PERSIST=none
# runs both without persistence instead (`kv_server --appendonly no`,
# `redis-server --appendonly no --save ''`). Example, the
# journal before and after a change (build the old one from its commit):
#
#   cp target/release/examples/kv_server /tmp/kv_new
#   P=1 C=50 bash benches/scripts/kv_pair.sh 15 incr 10000 /tmp/kv_new /tmp/kv_old redis
set -euo pipefail

if [ $# -lt 4 ]; then
    sed -n "2,24p" "$0"
    exit 2
fi
rounds=$1
test=$2
requests=$3
shift 3
case "${PERSIST:-always}" in
    always)
        kv_args=(--fsync always)
        redis_args=(--appendonly yes --appendfsync always)
        ;;
    none)
        kv_args=(--appendonly no)
        redis_args=(--appendonly no)
        ;;
    *)
        echo "PERSIST is always or none" >&2
        exit 2
        ;;
esac
scratch=$(mktemp -d "${TMPDIR:-/tmp}/kv_pair.XXXXXX")
pids=()
ports=()
cleanup() {
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$scratch"
}
trap cleanup EXIT

# A random base: an io_uring server killed with kill -9 leaves its
# listening socket to the kernel's asynchronous teardown of its ring, for
# some tens of milliseconds, so a port reused at once may still be taken
# (docs/backends.md, "Registered files").
port=$((20000 + RANDOM % 20000))
for server in "$@"; do
    port=$((port + 1))
    dir="$scratch/$port"
    mkdir -p "$dir"
    if [ "$server" = redis ]; then
        taskset -c 0 redis-server --port "$port" --dir "$dir" "${redis_args[@]}" \
            --save '' >"$dir.log" 2>&1 &
    else
        taskset -c 0 "$server" --addr "127.0.0.1:$port" --dir "$dir" \
            "${kv_args[@]}" >"$dir.log" 2>&1 &
    fi
    pids+=($!)
    ports+=("$port")
done
for port in "${ports[@]}"; do
    for _ in $(seq 100); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    redis-cli -p "$port" ping >/dev/null || { echo "nothing answers on $port" >&2; exit 1; }
done

results="$scratch/results"
for round in $(seq "$rounds"); do
    line="round $round:"
    for port in "${ports[@]}"; do
        rps=$(taskset -c 1 timeout 120 redis-benchmark -p "$port" -t "$test" \
            -n "$requests" -P "${P:-1}" -c "${C:-50}" --csv |
            awk -F'"' 'NR == 2 { print $4 }')
        [ -n "$rps" ] || { echo "redis-benchmark gave no figure on $port" >&2; exit 1; }
        line="$line $rps"
    done
    echo "$line" | tee -a "$results"
done

python3 - "$results" "$@" <<'EOF'
import statistics, sys
rows = [[float(x) for x in line.split()[2:]] for line in open(sys.argv[1])]
names = sys.argv[2:]
for i, name in enumerate(names):
    median = statistics.median(row[i] for row in rows)
    ratio = statistics.median(row[i] / row[0] for row in rows)
    print(f"{name}: median {median:,.0f} requests/s, median ratio to {names[0]} {ratio:.3f}")
EOF
