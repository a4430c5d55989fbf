#!/usr/bin/env bash
# Install everything clusterip needs on a Debian machine, as root: system packages, then a
# virtual environment in .venv with clusterip and its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
    python3 python3-venv python3-pip   # the interpreter and venv
    iproute2 nftables                  # network namespaces, veth, bridges; the kernel proxy
    dnsutils curl                      # dig and curl: the real clients the tests use
    dnsperf unbound                    # the DNS benchmark and its reference server
    wrk haproxy iperf3 nginx-light     # the proxy benchmarks: load, reference proxy, server
    etcd-server                        # the distributed store (multi-node mode and its tests)
    sqlite3                            # to look inside the embedded store by hand
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d keeps Debian from starting a system etcd on the default ports.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
echo "installed: $(.venv/bin/clusterip --help | head -1 >/dev/null && echo clusterip) in $(pwd)/.venv"
