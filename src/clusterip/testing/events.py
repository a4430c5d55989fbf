"""An `EventRecorder` that keeps what it is given, for the unit tests of the emitters.

    recorder = FakeRecorder()
    controller = DeploymentController(objects, clock=clock, events=recorder)
    ...
    assert recorder.reasons() == ["SuccessfulCreate", "SuccessfulCreate"]
    assert recorder.of("SuccessfulCreate")[0].message == "Created pod: web-abcde"

It validates like the real thing: each event is built with the core (`core.events.new_event`)
and checked by `core.validation` as the API would check it, and one that the API would refuse
(an unknown type, an empty reason or message, an object of a kind clusterip does not serve)
fails the test at once, with the errors, instead of being dropped quietly as the real recorder
drops it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from clusterip.core import events as ev
from clusterip.core import model as m
from clusterip.core import validation

__all__ = ["FakeRecorder", "RecordedEvent"]


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    obj: m.KubeObject
    type: str
    reason: str
    message: str
    field_path: str = ""
    event: m.Event = field(default_factory=m.Event)


@dataclass
class FakeRecorder:
    """Keeps every recorded event in `events`, in order."""

    component: str = "test"
    events: list[RecordedEvent] = field(default_factory=list)

    def record(self, obj: m.KubeObject, type_: str, reason: str, message: str, *,
               field_path: str = "") -> None:
        event = ev.new_event(ev.reference(obj, field_path), type_=type_, reason=reason,
                             message=message, source=m.EventSource(component=self.component),
                             now=0.0)
        named = msgspec.structs.replace(event, metadata=msgspec.structs.replace(
            event.metadata, name=ev.event_name(obj.metadata.name or "event", 1)))
        errors = validation.validate(named)
        if errors:
            raise AssertionError(f"the API would refuse this event: {[str(e) for e in errors]}")
        self.events.append(RecordedEvent(obj, type_, reason, message, field_path, event))

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]

    def of(self, reason: str) -> list[RecordedEvent]:
        return [e for e in self.events if e.reason == reason]

    def messages(self, reason: str | None = None) -> list[str]:
        return [e.message for e in self.events if reason is None or e.reason == reason]
