#!/usr/bin/env python3
"""How long a server's listening port stays taken after it exits
(docs/backends.md, "Registered files"): starts the server, waits until it
accepts, then either kills it (`kill`, SIGKILL) or lets it exit by itself
(`exit`, for a command with --max-seconds), and tries to bind the port
every 0.5 ms until it can.

    python3 benches/scripts/port_release.py kill PORT target/release/examples/kv_server --addr 127.0.0.1:PORT --appendonly no
    python3 benches/scripts/port_release.py exit PORT target/release/examples/kv_server --addr 127.0.0.1:PORT --appendonly no --max-seconds 1
    python3 benches/scripts/port_release.py kill PORT redis-server --port PORT --save "" --appendonly no
"""

import os
import signal
import socket
import subprocess
import sys
import time

TRIALS = 5


def wait_listening(port):
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.01)
    sys.exit(f"nothing listens on {port}")


def bind_wait_ms(port):
    start = time.monotonic()
    failed = 0
    while True:
        probe = socket.socket()
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.close()
            return 1000 * (time.monotonic() - start), failed
        except OSError:
            probe.close()
            failed += 1
            time.sleep(0.0005)


def main():
    mode, port, command = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    for trial in range(TRIALS):
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if mode == "kill":
            wait_listening(port)
            os.kill(server.pid, signal.SIGKILL)
        server.wait()
        waited_ms, failed = bind_wait_ms(port)
        print(f"trial {trial}: the port binds {waited_ms:.2f} ms after the {mode} ({failed} failed binds)")


if __name__ == "__main__":
    main()
