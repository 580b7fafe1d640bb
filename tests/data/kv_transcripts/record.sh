#!/usr/bin/env bash
# Records what redis-server 7.0.15 replies to each transcript in this
# directory, through redis-cli --no-raw, in RESP2 and in RESP3 (-3):
# NAME.txt gives NAME.resp2 and NAME.resp3. tests/kv_server.rs replays the
# same commands against kv_server and compares, line by line.
#
#   bash tests/data/kv_transcripts/record.sh
#
# redis-server runs as the benchmark runs it with persistence, so CONFIG GET
# of save, appendonly and appendfsync reads as kv_server's does.
set -euo pipefail
cd "$(dirname "$0")"
version=$(redis-server --version)
case "$version" in
*v=7.0.15*) ;;
*) echo "need redis-server 7.0.15, found: $version" >&2; exit 1 ;;
esac
port=$((20000 + RANDOM % 20000))
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly yes \
    --appendfsync always --dir "$dir" --daemonize no >/dev/null &
server=$!
trap 'kill $server; rm -rf "$dir"' EXIT
for _ in $(seq 50); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
done
for transcript in *.txt; do
    name=${transcript%.txt}
    redis-cli -p "$port" flushall >/dev/null
    redis-cli -p "$port" --no-raw <"$transcript" >"$name.resp2"
    redis-cli -p "$port" flushall >/dev/null
    redis-cli -p "$port" -3 --no-raw <"$transcript" >"$name.resp3"
done
# Every command's COMMAND DOCS group, one "name group" a line, sorted: the
# groups kv_server reports are checked against it.
redis-cli -p "$port" -3 --json command docs | python3 -c '
import json, sys
docs = json.load(sys.stdin)
for name in sorted(docs):
    print(name, docs[name]["group"])
' >command_groups
# The names of INFO everything's sections and fields, one a line, values
# cut off (they differ from kv_server's); the lines that depend on what ran
# (cmdstat_, latency_percentiles_usec_, errorstat_, db0) are left out.
redis-cli -p "$port" flushall >/dev/null
redis-cli -p "$port" info everything | tr -d '\r' | cut -d: -f1 |
    grep -Ev '^(cmdstat_|latency_percentiles_usec_|errorstat_|db0)' >info_fields
echo "recorded $(ls *.txt | wc -l) transcripts and $(wc -l <command_groups) command groups against $version"
