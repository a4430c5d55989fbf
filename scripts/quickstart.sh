#!/usr/bin/env bash
# Quick start: install what is needed, then run the all-in-one cluster with the example applied.
# The node (its bridge and pods) lives in the network namespace clusterip-node1, which clusterip
# creates and removes again on Ctrl-C; the host network is left as it is.
# Stop it with Ctrl-C; the state stays in .clusterip/ (delete the folder to start afresh).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
exec .venv/bin/clusterip up --data-dir .clusterip --listen 127.0.0.1:7080 \
    --netns clusterip-node1 --apply examples/
