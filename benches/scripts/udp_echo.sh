#!/usr/bin/env bash
# UDP echo round trips: ringio echo_server (io_uring, epoll) against tokio,
# the same udp_ping client, alternating rounds; servers on core 0, client on core 1.
set -euo pipefail
T=target/release/examples
run() { # name port cmd...
  local name=$1 port=$2; shift 2
  taskset -c 0 "$@" >/dev/null 2>&1 & local pid=$!
  sleep 0.5
  local out
  out=$(taskset -c 1 $T/udp_ping --addr 127.0.0.1:$port --count 200000 --window "$WINDOW" | tail -1)
  kill $pid; wait $pid 2>/dev/null || true
  echo "$name window=$WINDOW $out"
}
for WINDOW in 1 16; do
for round in 1 2 3; do
  run ringio-uring 17901 $T/echo_server --proto udp --addr 127.0.0.1:17901
  run ringio-epoll 17902 $T/echo_server --proto udp --addr 127.0.0.1:17902 --backend epoll
  run tokio 17903 $T/bench_tokio_udp_echo --addr 127.0.0.1:17903
done
done
