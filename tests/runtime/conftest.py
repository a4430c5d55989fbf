"""Fixtures for the runtime tests, most of which need root (network namespaces).

Rules these fixtures enforce (see "Network safety" in DESIGN.md):

- `host_network_snapshot` (autouse): the host namespace is never touched. It records
  ``ip -o link``, ``ip -4 route show table all`` and ``nft list ruleset`` before each test and
  fails the test if any of them differs afterwards.
- `node_netns`: a name no other run uses, ``cipt-<6 hex>``. The test creates whatever it needs
  under that name or names that start with it (the node, ``<name>-<pod id>`` pods, ...); at the
  end, pass or fail, every namespace whose name starts with it is deleted, with its
  ``/etc/netns/<name>`` folder. (Deleting a namespace deletes the interfaces in it; a veth goes
  with its peer.)

Tests that need root are marked ``@pytest.mark.root`` and skipped, with a reason, when not root;
under CI a skipped root test fails the run (tests/conftest.py).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from clusterip.runtime import netlink
from clusterip.runtime.podnet import ETC_NETNS_DIR

NETNS_PREFIX = "cipt-"


def _run(argv: list[str]) -> tuple[int, str, str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError as e:
        return -1, "", str(e)
    return done.returncode, done.stdout, done.stderr


def host_network_state() -> dict[str, tuple[int, str, str]]:
    """What the host namespace looks like now: links, IPv4 routes, the nftables ruleset."""
    return {
        "ip -o link": _run(["ip", "-o", "link"]),
        "ip -4 route show table all": _run(["ip", "-4", "route", "show", "table", "all"]),
        "nft list ruleset": _run(["nft", "list", "ruleset"]),
    }


@pytest.fixture(autouse=True)
def host_network_snapshot() -> Iterator[dict[str, tuple[int, str, str]]]:
    """Fails the test if the host namespace's links, routes or nft rules changed during it."""
    before = host_network_state()
    yield before
    after = host_network_state()
    for what, state in before.items():
        assert after[what] == state, f"the host namespace changed: {what}"


def remove_namespaces(prefix: str) -> list[str]:
    """Delete every named namespace starting with `prefix` (and its /etc/netns folder)."""
    assert prefix.startswith(NETNS_PREFIX), "only ever clean up names this suite made"
    removed = []
    for name in netlink.list_netns():
        if name.startswith(prefix):
            netlink.delete_netns(name)
            removed.append(name)
    if ETC_NETNS_DIR.is_dir():
        for folder in ETC_NETNS_DIR.iterdir():
            if folder.name.startswith(prefix):
                shutil.rmtree(folder, ignore_errors=True)
    return removed


@pytest.fixture
def node_netns() -> Iterator[str]:
    """A unique namespace name for the test's node; it and every name it prefixes are
    deleted at the end, pass or fail."""
    name = f"{NETNS_PREFIX}{secrets.token_hex(3)}"
    try:
        yield name
    finally:
        if os.geteuid() == 0:
            remove_namespaces(name)
