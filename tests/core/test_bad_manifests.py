"""The bad-manifest corpus: each file in tests/data/bad_manifests/ has exactly one fault.

Every file starts with three header lines, in this order::

    # fault: <one line description>
    # expect: <text every error message must contain, normally the field path>
    # value: <the offending value as the message shows it, or - if none>

and then an otherwise valid manifest. Here each file goes through the write pipeline
(`codec.parse_documents` → `codec.decode` → `defaults.apply_defaults` → `validation.validate`
with the default service CIDR); the end-to-end suites reuse `load_corpus` to check that the API
answers 4xx and the CLI exits 2 with the same text.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from clusterip.core import codec, defaults, validation
from clusterip.core.errors import BadInput
from clusterip.testing.corpus import BadManifest, load_corpus

CORPUS = Path(__file__).resolve().parent.parent / "data" / "bad_manifests"
SERVICE_CIDRS = [ipaddress.ip_network("10.96.0.0/12")]
MIN_FILES = 45
_NAME = re.compile(r"^\d{2}-[a-z0-9]+(-[a-z0-9]+)*\.yaml$")

def pipeline_messages(text: str) -> list[str]:
    """What the write pipeline says about `text`: one BadInput message, or every FieldError."""
    try:
        messages = []
        for data in codec.parse_documents(text):
            obj = defaults.apply_defaults(codec.decode(data).obj)
            messages += [str(e) for e in validation.validate(obj, service_cidrs=SERVICE_CIDRS)]
        return messages
    except BadInput as exc:
        return [str(exc)]


CASES = load_corpus(CORPUS)


def test_corpus_is_large_enough_and_every_fault_is_distinct() -> None:
    assert len(CASES) >= MIN_FILES
    faults = [c.fault for c in CASES]
    assert len(set(faults)) == len(faults)
    numbers = [c.path.name[:2] for c in CASES]
    assert len(set(numbers)) == len(numbers)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_file_is_named_and_headed_as_specified(case: BadManifest) -> None:
    assert _NAME.match(case.path.name)
    assert case.expect


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_bad_manifest_is_rejected_with_its_one_fault(case: BadManifest) -> None:
    messages = pipeline_messages(case.text)

    assert len(messages) == 1, f"{case.fault}: expected exactly one finding, got {messages}"
    assert case.expect in messages[0]
    if case.value is not None:
        assert case.value in messages[0]
