"""The pure core's one rule that import-linter cannot check: dnspython is allowed in
`clusterip.core` for its pure modules (message, name, rrset, rdata), never for its network I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import clusterip.core

DNS_IO_MODULES = {"dns.query", "dns.asyncquery", "dns.resolver", "dns.asyncresolver"}


def test_core_imports_no_dns_network_module() -> None:
    core = Path(clusterip.core.__file__).parent
    found = []
    for path in sorted(core.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.name}: {n}" for n in names
                      if any(n == m or n.startswith(m + ".") for m in DNS_IO_MODULES)]
    assert not found, found
