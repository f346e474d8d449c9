"""The Service-side release history and the journal's pure parts: what is kept, what a patch looks like, which
events end a run."""

from __future__ import annotations

import json

import pytest

from prefect_greenlight.tasks.decisions.endpoints import EndpointCounts
from prefect_greenlight.tasks.decisions.history import HISTORY, HistoryEntry, append, history_patch, read_history
from prefect_greenlight.tasks.record.events import ReleaseEvent, event_name, service_resource
from prefect_greenlight.tasks.record.journal import endpoints_table, final_events, progress_percent


def entry(n: int, **kw) -> HistoryEntry:
    return HistoryEntry(**{"release_id": f"r{n}", "strategy": "blue-green", "outcome": "released",
                           "from_deployment": "blue", "to_deployment": "green", **kw})


def service(history: str | None = None, annotations: bool = True) -> dict:
    meta: dict = {"name": "web", "resourceVersion": "42"}
    if annotations:
        meta["annotations"] = {"other": "x", **({HISTORY: history} if history is not None else {})}
    return {"metadata": meta}


def test_append_keeps_the_newest_entries_in_order():
    text = ""
    for n in range(25):
        text = append(read_history(service(text)), entry(n), limit=20)
    kept = read_history(service(text))
    assert [e.release_id for e in kept] == [f"r{n}" for n in range(5, 25)]


def test_append_replaces_the_same_release_finished_by_a_rerun():
    first = append([], entry(1, outcome="rolled-back"))
    again = append(read_history(service(first)), entry(1, outcome="released"))
    assert [(e.release_id, e.outcome) for e in read_history(service(again))] == [("r1", "released")]
    # a rollback run with the same id is another record
    both = append(read_history(service(again)), entry(1, strategy="rollback", outcome="rolled-back"))
    assert [e.strategy for e in read_history(service(both))] == ["blue-green", "rollback"]


def test_append_drops_the_oldest_entries_beyond_the_byte_budget():
    entries = [entry(n, reason="x" * 400) for n in range(10)]
    text = append(entries[:-1], entries[-1], limit=20, max_bytes=2000)
    kept = read_history(service(text))
    assert len(text) <= 2000 and 1 <= len(kept) < 10 and kept[-1].release_id == "r9"


@pytest.mark.parametrize("raw", ["not json", '{"a": 1}', "[1, 2]", ""])
def test_unreadable_history_reads_as_empty_not_as_an_error(raw):
    assert read_history(service(raw)) == []


def test_unknown_fields_of_newer_versions_are_ignored():
    raw = json.dumps([{"release_id": "r1", "strategy": "canary", "outcome": "released", "from_deployment": "a",
                       "to_deployment": "b", "added_later": True}])
    [e] = read_history(service(raw))
    assert (e.release_id, e.strategy, e.to_deployment) == ("r1", "canary", "b")


def test_history_patch_is_guarded_by_the_resource_version():
    ops = history_patch(service(), "[]")
    assert ops[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "42"}
    assert ops[1] == {"op": "add", "path": "/metadata/annotations/greenlight.io~1history", "value": "[]"}
    bare = history_patch(service(annotations=False), "[]")
    assert bare[1] == {"op": "add", "path": "/metadata/annotations", "value": {HISTORY: "[]"}}


@pytest.mark.parametrize("strategy,outcome,events", [
    ("blue-green", "released", ["completed"]),
    ("blue-green", "rolled-back", ["rolled-back", "failed"]),
    ("blue-green", "rejected", ["rolled-back", "failed"]),
    ("blue-green", "rollback-incomplete", ["failed"]),
    ("canary", "aborted", ["rolled-back", "failed"]),
    ("canary", "released", ["completed"]),
    ("rollback", "rolled-back", ["rolled-back"]),
    ("rollback", "failed", ["failed"]),
    ("abort", "aborted", ["rolled-back"]),
    ("blue-green", "cleanup-failed", ["failed"]),  # released, but not finished: failed, never rolled-back
])
def test_final_events(strategy, outcome, events):
    assert [e.value for e in final_events(strategy, outcome)] == events


def test_event_names_and_resource_are_a_stable_contract():
    assert [event_name(k) for k in ReleaseEvent] == [
        "greenlight.release.started", "greenlight.release.paused", "greenlight.release.switched",
        "greenlight.release.rolled-back", "greenlight.release.completed", "greenlight.release.failed",
        "greenlight.release.refused"]
    assert service_resource("prod", "web") == {
        "prefect.resource.id": "greenlight.service.prod.web", "prefect.resource.name": "web",
        "greenlight.namespace": "prod", "greenlight.service": "web"}


def test_endpoints_table_and_progress():
    table = endpoints_table(EndpointCounts({"green": 3, "blue": 1}, {"green": 1}))
    assert table.splitlines()[2:] == ["| blue | 1 | 0 |", "| green | 3 | 1 |"]
    assert endpoints_table(EndpointCounts()) == "_no endpoints_" and endpoints_table(None) == "_not read_"
    assert [progress_percent(d, 9) for d in (0, 3, 9, 12)] == [0.0, 33.3, 100.0, 100.0]
    assert progress_percent(0, 0) == 100.0
