"""A pod's program for the node tests: HTTP on a port, told how to behave by files.

    python3 webserver.py PORT STATE_DIR [DRAIN_SECONDS]

Answers GET / with 200 and its hostname (the pod name), or 500 while STATE_DIR/fail-<hostname>
exists (a readiness probe that starts failing). On SIGTERM it writes STATE_DIR/sigterm-<hostname>
and exits 0, so a test can see that a deleted pod was asked to stop; with DRAIN_SECONDS it
first goes on serving that long, as a graceful server does while the endpoint removal reaches
every proxy (Kubernetes' advice for zero-downtime rollouts).
"""

import http.server
import os
import signal
import socket
import sys
import threading
from pathlib import Path

PORT = int(sys.argv[1])
STATE = Path(sys.argv[2])
DRAIN = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
NAME = os.environ.get("HOSTNAME") or socket.gethostname()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        failing = (STATE / f"fail-{NAME}").exists()
        body = f"{'failing' if failing else 'ok'} {NAME}\n".encode()
        self.send_response(500 if failing else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def on_sigterm(signum: int, frame: object) -> None:
    (STATE / f"sigterm-{NAME}").write_text("SIGTERM\n")
    if DRAIN <= 0:
        sys.exit(0)
    threading.Timer(DRAIN, os._exit, args=(0,)).start()


signal.signal(signal.SIGTERM, on_sigterm)
http.server.ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
