#!/usr/bin/env bash
# The whole test suite, root tests included, then the static checks (types, layers, lint).
# As root every test runs; CI=true turns a skipped root test into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
"$PY" -m pytest -q -p no:cacheprovider "$@"
"$PY" -m mypy
"$PY" -m importlinter.cli lint-imports --config .importlinter 2>/dev/null \
    || "$(dirname "$PY")/lint-imports" --config .importlinter
"$PY" -m ruff check src tests bench
