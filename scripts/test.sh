#!/usr/bin/env bash
# The whole test suite, root tests included, then the static checks (types, layers, lint).
# As root every test runs; CI=true turns a skipped root test into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
[ -x "$BIN/python" ] || BIN=$(dirname "$(command -v python3)")
"$BIN/python" -m pytest -q -p no:cacheprovider "$@"
"$BIN/python" -m mypy
"$BIN/lint-imports"
"$BIN/python" -m ruff check src tests bench
