"""A client pod's load for the proxy tests: one HTTP GET per new TCP connection, in a loop.

    python3 loadclient.py URL SECONDS [MAX_REQUESTS]

Prints one JSON object: {"answers": {"<server's reply word 2>": count, ...}, "errors":
[[seconds since start, "error"], ...], "requests": n}. Each request has a 2 s timeout; the
loop is bounded by both SECONDS and MAX_REQUESTS (default 100,000).
"""

import http.client
import json
import sys
import time
import urllib.parse

url = urllib.parse.urlsplit(sys.argv[1])
seconds = float(sys.argv[2])
limit = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
answers: dict[str, int] = {}
errors: list[tuple[float, str]] = []
start = time.monotonic()
requests = 0
while time.monotonic() - start < seconds and requests < limit:
    requests += 1
    conn = http.client.HTTPConnection(url.hostname or "", url.port or 80, timeout=2)
    try:
        conn.request("GET", url.path or "/", headers={"Connection": "close"})
        body = conn.getresponse().read().decode().split()
        answers[body[-1]] = answers.get(body[-1], 0) + 1
    except (OSError, http.client.HTTPException) as exc:
        errors.append((round(time.monotonic() - start, 3), repr(exc)))
    finally:
        conn.close()
print(json.dumps({"answers": answers, "errors": errors, "requests": requests}))
