"""A client pod's UDP load for the proxy tests: one socket, one source port, a datagram every
20 ms to HOST:PORT for SECONDS, stopping early once STOPFILE exists.

    python3 udpclient.py HOST PORT SECONDS STOPFILE

Prints one JSON object: {"port": source port, "replies": [[time.monotonic() of the reply,
"<hostname>"], ...]} (the monotonic clock is the machine's: a test can compare it with its own).
"""

import json
import os
import socket
import sys
import time

host, port, seconds, stopfile = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", 0))
sock.settimeout(0.02)
replies: list[tuple[float, str]] = []
start = time.monotonic()
sent = 0
while time.monotonic() - start < seconds and not os.path.exists(stopfile):
    sent += 1
    try:
        sock.sendto(str(sent).encode(), (host, port))
    except OSError:
        pass
    deadline = time.monotonic() + 0.02
    while time.monotonic() < deadline:
        try:
            data = sock.recv(2048)
        except (TimeoutError, OSError):
            break
        replies.append((time.monotonic(), data.decode().split()[0]))
    time.sleep(max(0.0, deadline - time.monotonic()))
print(json.dumps({"port": sock.getsockname()[1], "replies": replies}))
