"""Every manifest of the bad-manifest corpus, applied with the CLI to a running server: exit code
2, a message naming the field and the value, and a store that is byte-for-byte unchanged."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from clusterip.cli import main
from clusterip.testing.corpus import BadManifest, load_corpus
from clusterip.testing.process import ServerProcess

CORPUS = load_corpus(Path(__file__).resolve().parent.parent / "data" / "bad_manifests")


def store_bytes(data_dir: Path) -> dict[str, str]:
    """SHA-256 of every file of the store except SQLite's shared-memory index (which readers
    touch by design; it holds no data)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(data_dir.iterdir()) if not p.name.endswith("-shm")
    }


def test_every_bad_manifest_is_refused_and_the_store_is_unchanged(server: ServerProcess) -> None:
    before = store_bytes(server.data_dir)
    revision = server.get("/api/v1/namespaces")["metadata"]["resourceVersion"]
    runner = CliRunner()
    failures = []
    for case in CORPUS:
        result = runner.invoke(main, ["--server", server.url, "apply", "-f", str(case.path)])
        problem = _check(case, result.exit_code, result.output)
        if problem:
            failures.append(f"{case.id}: {problem}")
    assert not failures, "\n".join(failures)
    assert server.get("/api/v1/namespaces")["metadata"]["resourceVersion"] == revision
    assert store_bytes(server.data_dir) == before


def _check(case: BadManifest, exit_code: int, output: str) -> str:
    if exit_code != 2:
        return f"exit code {exit_code}, not 2: {output.strip()}"
    if case.expect not in output:
        return f"message does not contain {case.expect!r}: {output.strip()}"
    if case.value is not None and case.value not in output:
        return f"message does not contain the value {case.value!r}: {output.strip()}"
    return ""


@pytest.mark.parametrize("case", CORPUS[:3], ids=lambda c: c.id)
def test_a_bad_manifest_through_the_installed_command(server: ServerProcess,
                                                      case: BadManifest) -> None:
    result = server.cli("apply", "-f", str(case.path))
    assert result.returncode == 2
    assert case.expect in result.stderr
