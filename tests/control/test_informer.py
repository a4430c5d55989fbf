"""control.informer: list+watch into a cache, handlers, indexes, relists, stale-cache bookkeeping.

Covered: the first list (has_synced, add handlers), watch events (add/update/delete with old and
new), indexes kept current through relabels and deletes, a namespace-scoped informer, relist on
Expired after the store was compacted under a running watch (deletes found by the diff), relist
when a watch ends, retry after a failed list, a failing handler not stopping the others,
`wait_for_revision` and `Expectations`. Every informer runs inside `running(...)`, which cancels
and awaits it at the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from clusterip.control.informer import Expectations, Informer, by_namespace, key_of, split_key
from clusterip.core import model as m
from clusterip.core.errors import Unavailable
from clusterip.registry.objects import ObjectEvent, ObjectStore
from clusterip.store.memory import MemoryStore
from clusterip.testing.builders import make_pod, make_service

pytestmark = pytest.mark.anyio

Call = tuple[str, str | None, str | None]


class Recorder:
    """A handler that records (key, old resourceVersion, new resourceVersion)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def __call__(self, key: str, old: Any, new: Any) -> None:
        self.calls.append((
            key,
            old.metadata.resource_version if old is not None else None,
            new.metadata.resource_version if new is not None else None,
        ))

    def keys(self, kind: str) -> list[str]:
        """Keys of adds ("add"), updates ("update") or deletes ("delete"), in order."""
        old_new = {"add": (False, True), "update": (True, True), "delete": (True, False)}[kind]
        return [c[0] for c in self.calls if (c[1] is not None, c[2] is not None) == old_new]


def relabel(pod: m.Pod, labels: dict[str, str]) -> m.Pod:
    return msgspec.structs.replace(
        pod, metadata=msgspec.structs.replace(pod.metadata, labels=labels)
    )


def test_keys() -> None:
    assert key_of(make_service("web", namespace="prod")) == "prod/web"
    assert key_of(m.Namespace(metadata=m.ObjectMeta(name="prod"))) == "prod"
    assert split_key("prod/web") == ("prod", "web")
    assert split_key("prod") == ("", "prod")


async def test_list_then_watch_calls_handlers_with_old_and_new(
    objects: ObjectStore, running: Any, eventually: Any
) -> None:
    a = await objects.create(make_service("a"))
    await objects.create(make_service("b", namespace="prod"))
    informer = Informer(objects, m.Service)
    seen = Recorder()
    informer.add_handler(seen)
    async with running(informer.run):
        await eventually(informer.has_synced.is_set)
        assert sorted(informer) == ["default/a", "prod/b"]
        assert sorted(seen.keys("add")) == ["default/a", "prod/b"]

        c = await objects.create(make_service("c"))
        changed = await objects.update(msgspec.structs.replace(
            a, spec=msgspec.structs.replace(a.spec, session_affinity="ClientIP")))
        deleted = await objects.delete(m.Service, "prod", "b")
        await eventually(lambda: informer.revision >= int(deleted.metadata.resource_version))

    assert seen.calls[2:] == [
        ("default/c", None, c.metadata.resource_version),
        ("default/a", a.metadata.resource_version, changed.metadata.resource_version),
        ("prod/b", "2", None),
    ]
    got = informer.get("default/a")
    assert got is not None and got.spec.session_affinity == "ClientIP"
    assert "prod/b" not in informer
    assert len(informer) == 2
    assert informer.lists == 1


async def test_indexes_follow_relabels_and_deletes(
    objects: ObjectStore, running: Any, eventually: Any
) -> None:
    def by_app(pod: m.Pod) -> list[str]:
        app = (pod.metadata.labels or {}).get("app")
        return [f"{pod.metadata.namespace}/{app}"] if app else []

    informer = Informer(objects, m.Pod, indexers={"namespace": by_namespace, "app": by_app})
    web1 = await objects.create(make_pod("web-1", labels={"app": "web"}))
    await objects.create(make_pod("web-2", labels={"app": "web"}))
    await objects.create(make_pod("db-1", namespace="prod", labels={"app": "db"}))
    async with running(informer.run):
        await eventually(informer.has_synced.is_set)
        assert set(informer.index("app", "default/web")) == {"default/web-1", "default/web-2"}
        assert set(informer.index("namespace", "prod")) == {"prod/db-1"}
        assert informer.index("app", "default/nothing") == frozenset()

        await objects.update(relabel(web1, {"app": "api"}))
        await eventually(lambda: "default/web-1" in informer.index("app", "default/api"))
        assert set(informer.index("app", "default/web")) == {"default/web-2"}

        await objects.delete(m.Pod, "default", "web-2")
        await eventually(lambda: not informer.index("app", "default/web"))
        assert [p.metadata.name for p in informer.by_index("namespace", "default")] == ["web-1"]


async def test_namespace_scoped_informer_sees_only_its_namespace(
    objects: ObjectStore, running: Any, eventually: Any
) -> None:
    informer = Informer(objects, m.Service, namespace="prod")
    await objects.create(make_service("a"))
    await objects.create(make_service("b", namespace="prod"))
    async with running(informer.run):
        await eventually(informer.has_synced.is_set)
        await objects.create(make_service("c"))
        last = await objects.create(make_service("d", namespace="prod"))
        await eventually(lambda: informer.revision >= int(last.metadata.resource_version))
        assert sorted(informer) == ["prod/b", "prod/d"]


async def test_relist_on_expired_finds_what_happened_meanwhile(
    objects: ObjectStore, memory: MemoryStore, running: Any, eventually: Any
) -> None:
    await objects.create(make_service("keep"))
    await objects.create(make_service("gone"))
    informer = Informer(objects, m.Service)
    seen = Recorder()
    informer.add_handler(seen)
    async with running(informer.run):
        await eventually(informer.has_synced.is_set)
        probe = await objects.create(make_service("probe"))  # the watch is running...
        await eventually(lambda: "default/probe" in informer)  # ...and past this revision
        # No await below yields to the loop: the watch sees none of it before the compaction.
        await objects.create(make_service("new"))
        await objects.delete(m.Service, "default", "gone")
        await memory.compact(await memory.revision())

        await eventually(lambda: informer.lists == 2, message="relist after Expired")
        assert sorted(informer) == ["default/keep", "default/new", "default/probe"]
        assert seen.keys("delete") == ["default/gone"]  # found by the relist's diff
        assert seen.keys("add")[-1] == "default/new"
        # The watch goes on from the relist's revision.
        await objects.create(make_service("after"))
        await eventually(lambda: "default/after" in informer)
    assert int(probe.metadata.resource_version) < informer.revision


class WatchEndsAfter:
    """A Client whose watches end after `limit` events; counts lists."""

    def __init__(self, inner: ObjectStore, limit: int) -> None:
        self.inner = inner
        self.limit = limit
        self.fail_lists = 0

    async def list(self, type_: Any, namespace: str | None = None, *,
                   transform: Any = None) -> Any:
        if self.fail_lists:
            self.fail_lists -= 1
            raise Unavailable("store is closed")
        return await self.inner.list(type_, namespace, transform=transform)

    async def watch(self, type_: Any, namespace: str | None, since: int
                    ) -> AsyncIterator[ObjectEvent]:
        count = 0
        async for event in self.inner.watch(type_, namespace, since):
            yield event
            count += 1
            if count >= self.limit:
                return


async def test_relist_when_the_watch_ends(
    objects: ObjectStore, running: Any, eventually: Any
) -> None:
    client = WatchEndsAfter(objects, limit=1)
    informer = Informer(client, m.Service, min_backoff=0.001)  # type: ignore[arg-type]
    async with running(informer.run):
        await eventually(informer.has_synced.is_set)
        for name in ("a", "b", "c"):
            await objects.create(make_service(name))
        await eventually(lambda: len(informer) == 3)
        await objects.delete(m.Service, "default", "b")
        await eventually(lambda: sorted(informer) == ["default/a", "default/c"])
        assert informer.lists >= 2


async def test_failed_list_is_retried_after_a_backoff(
    objects: ObjectStore, running: Any, eventually: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = WatchEndsAfter(objects, limit=1000)
    client.fail_lists = 2
    await objects.create(make_service("a"))
    informer = Informer(client, m.Service, min_backoff=0.001)  # type: ignore[arg-type]
    async with running(informer.run):
        await eventually(informer.has_synced.is_set)
        assert sorted(informer) == ["default/a"]
    assert client.fail_lists == 0
    assert "list/watch failed" in caplog.text


async def test_a_failing_handler_does_not_stop_the_others(
    objects: ObjectStore, running: Any, eventually: Any
) -> None:
    def broken(key: str, old: Any, new: Any) -> None:
        raise RuntimeError("bug")

    informer = Informer(objects, m.Service)
    seen = Recorder()
    informer.add_handler(broken)
    informer.add_handler(seen)
    async with running(informer.run):
        await eventually(informer.has_synced.is_set)
        await objects.create(make_service("a"))
        await eventually(lambda: seen.keys("add") == ["default/a"])


async def test_wait_for_revision(objects: ObjectStore, running: Any, eventually: Any) -> None:
    informer = Informer(objects, m.Service)
    async with running(informer.run):
        await eventually(informer.has_synced.is_set)
        assert await informer.wait_for_revision(informer.revision, 0.1)
        created = await objects.create(make_service("a"))
        assert await informer.wait_for_revision(int(created.metadata.resource_version), 1.0)
        assert not await informer.wait_for_revision(informer.revision + 100, 0.005)


def test_expectations() -> None:
    e = Expectations()
    assert e.pending("a", 0) == 0
    e.expect("a", 7)
    e.expect("a", 5)  # lower: ignored
    assert e.pending("a", 6) == 7
    assert len(e) == 1
    assert e.pending("a", 7) == 0  # satisfied and forgotten
    assert len(e) == 0
    e.expect("b", 3)
    e.forget("b")
    assert e.pending("b", 0) == 0
