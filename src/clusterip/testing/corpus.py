"""The bad-manifest corpus (tests/data/bad_manifests/): each file holds exactly one fault.

Every file starts with three header lines, in this order::

    # fault: <one line description>
    # expect: <text every error message must contain, normally the field path>
    # value: <the offending value as the message shows it, or - if none>

and then an otherwise valid manifest. `load_corpus(directory)` reads them; the core suite runs
each through the write pipeline, the end-to-end suite through the API and the CLI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BadManifest", "load_corpus"]

_HEADER = re.compile(r"^# fault: (?P<fault>.+)\n# expect: (?P<expect>.+)\n# value: (?P<value>.+)\n")
_NAME = re.compile(r"^\d{2}-[a-z0-9]+(-[a-z0-9]+)*\.yaml$")


@dataclass(frozen=True)
class BadManifest:
    """One corpus file: its text and what its single fault must produce."""

    path: Path
    fault: str
    expect: str
    value: str | None  # None when the header says "-"
    text: str

    @property
    def id(self) -> str:
        return self.path.stem


def load_corpus(directory: Path) -> list[BadManifest]:
    """Every corpus file, in name order, with its header parsed.

    Raises:
        ValueError: a file does not start with the three header lines.
    """
    out = []
    for path in sorted(directory.glob("*.yaml")):
        text = path.read_text()
        header = _HEADER.match(text)
        if header is None:
            raise ValueError(f"{path.name}: missing '# fault:/# expect:/# value:' header")
        value = header["value"].strip()
        out.append(BadManifest(path, header["fault"].strip(), header["expect"].strip(),
                               None if value == "-" else value, text))
    return out
