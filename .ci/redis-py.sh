#!/usr/bin/env bash
# Makes target/redis-py-venv, a virtual environment with redis-py (the
# `redis` package from PyPI), for tests/kv_server.rs's redis-py test, which
# runs this itself when the environment is missing. Idempotent: an
# environment that already imports redis is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/redis-py-venv
if ! "$venv/bin/python" -c 'import redis' >/dev/null 2>&1; then
    mkdir -p target
    rm -rf "$venv"
    if ! python3 -m venv "$venv"; then
        # Debian's own python3 keeps venv (ensurepip) in a separate package.
        rm -rf "$venv"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install --quiet --disable-pip-version-check redis
fi
"$venv/bin/python" -c 'import redis; print("redis-py", redis.__version__)'
