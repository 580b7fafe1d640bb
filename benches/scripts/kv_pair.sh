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
# It also measures, for each burst, the server's CPU time (the sum of its
# threads' run time from /proc/PID/task/*/schedstat, in ns) and the
# client's (perf stat's task-clock), each divided by the requests the run
# made (TEST may name several tests: `-t sadd,spop` fills the set SPOP
# pops). Where
# the client is the bottleneck, both servers run at its rate and the
# throughput ratio is 1.0 give or take the machine's noise; the server's
# CPU per request is then the figure that tells them apart. The rate is
# the run's last row (LRANGE_* start with a fill of their own, an LPUSH
# row), and the CPU is the whole run's, fill included, the same for every
# server. Needs perf (linux-tools), redis-benchmark and redis-server.
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
# Below Linux's ephemeral range (32768 and up), where the bursts' own
# connections linger in TIME_WAIT: redis-server's bind then fails.
port=$((20000 + RANDOM % 12000))
for server in "$@"; do
    port=$((port + 1))
    dir="$scratch/$port"
    mkdir -p "$dir"
    if [ "$server" = redis ]; then
        taskset -c 0 redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" "${redis_args[@]}" \
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

# The run time of every live thread of process $1, in ns.
cpu_ns() {
    local total=0 ns _
    for stat in /proc/"$1"/task/*/schedstat; do
        read -r ns _ <"$stat" && total=$((total + ns))
    done
    echo "$total"
}

results="$scratch/results"
csv="$scratch/burst.csv"
perf_out="$scratch/perf.csv"
for round in $(seq "$rounds"); do
    line="round $round:"
    costs=""
    for i in "${!ports[@]}"; do
        port=${ports[$i]}
        before=$(cpu_ns "${pids[$i]}")
        taskset -c 1 timeout 120 perf stat -x, -e task-clock -o "$perf_out" \
            redis-benchmark -p "$port" -t "$test" -n "$requests" -P "${P:-1}" \
            -c "${C:-50}" --csv >"$csv"
        after=$(cpu_ns "${pids[$i]}")
        # The last row: a fill's row, if any, comes first.
        rps=$(awk -F'"' 'NR > 1 { rps = $4 } END { print rps }' "$csv")
        client_ms=$(awk -F, '$3 == "task-clock" { print $1 }' "$perf_out")
        [ -n "$rps" ] && [ -n "$client_ms" ] ||
            { echo "redis-benchmark gave no figure on $port" >&2; exit 1; }
        made=$(( requests * $(awk 'NR > 1' "$csv" | wc -l) ))
        line="$line $rps"
        costs="$costs $(( (after - before) / made )) $(awk -v ms="$client_ms" -v n="$made" \
            'BEGIN { printf "%.0f", ms * 1e6 / n }')"
    done
    echo "$line" | tee -a "$results"
    echo "  CPU per request, ns (server, client):$costs" | tee -a "$results.cpu"
done

python3 - "$results" "$@" <<'EOF'
import statistics, sys
rows = [[float(x) for x in line.split()[2:]] for line in open(sys.argv[1])]
costs = [[float(x) for x in line.split(":")[1].split()] for line in open(sys.argv[1] + ".cpu")]
names = sys.argv[2:]
for i, name in enumerate(names):
    median = statistics.median(row[i] for row in rows)
    ratio = statistics.median(row[i] / row[0] for row in rows)
    server = statistics.median(c[2 * i] for c in costs)
    server_ratio = statistics.median(c[2 * i] / c[0] for c in costs)
    client = statistics.median(c[2 * i + 1] for c in costs)
    print(f"{name}: median {median:,.0f} requests/s, median ratio to {names[0]} {ratio:.3f}; "
          f"server CPU {server:,.0f} ns/request (ratio {server_ratio:.3f}), "
          f"client CPU {client:,.0f} ns/request")
EOF
