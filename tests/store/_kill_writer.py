"""Child process of test_sqlite's kill -9 test: create keys and print each acknowledged one.

Usage: python _kill_writer.py DB_FILE LIMIT CONCURRENCY

Prints `KEY REVISION` (flushed) after each create returns, from CONCURRENCY concurrent writers so
that acknowledgements come out of group commits, until LIMIT keys are written. The test kills it
with SIGKILL long before that; LIMIT only bounds a run that nobody kills.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

from clusterip.store.sqlite import SqliteStore


async def main(path: str, limit: int, concurrency: int) -> None:
    store = await SqliteStore.open(path)
    numbers: Iterator[int] = iter(range(limit))

    async def writer() -> None:
        for number in numbers:
            key = f"/kill/{number:07d}"
            revision = await store.create(key, key.encode())
            print(key, revision, flush=True)

    await asyncio.gather(*(writer() for _ in range(concurrency)))
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
