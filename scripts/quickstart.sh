#!/usr/bin/env bash
# Quick start: install what is needed, then run the all-in-one cluster with the example applied.
# Stop it with Ctrl-C; the state stays in .clusterip/ (delete the folder to start afresh).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
exec .venv/bin/clusterip up --data-dir .clusterip --listen 127.0.0.1:7080 --apply examples/
