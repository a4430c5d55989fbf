"""A pod's program for the node tests: HTTP on a port, told how to behave by files.

    python3 webserver.py PORT STATE_DIR

Answers GET / with 200 and its hostname (the pod name), or 500 while STATE_DIR/fail-<hostname>
exists (a readiness probe that starts failing). On SIGTERM it writes STATE_DIR/sigterm-<hostname>
and exits 0, so a test can see that a deleted pod was asked to stop.
"""

import http.server
import os
import signal
import socket
import sys
from pathlib import Path

PORT = int(sys.argv[1])
STATE = Path(sys.argv[2])
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
    sys.exit(0)


signal.signal(signal.SIGTERM, on_sigterm)
http.server.ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
