"""The rollback window (issue 24): where a window stands (table), its annotation, the HPA hold, the spec rule, the
plan's text, and what the release's clean-up step and the scheduled run do, against an in-memory Service."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from prefect_greenlight.cli.status import window_line, window_row
from prefect_greenlight.tasks.bluegreen import window as bgwindow
from prefect_greenlight.tasks.decisions.annotations import ReleaseRecord
from prefect_greenlight.tasks.decisions.autoscaling import HELD_MIN, hold_ops
from prefect_greenlight.tasks.decisions.window import (
    WINDOW,
    RollbackWindow,
    WindowState,
    cleanup_due,
    clear_window_ops,
    format_time,
    read_window,
    set_window_ops,
    window_end,
    window_state,
)
from prefect_greenlight.tasks.spec import BlueGreenSpec
from tests.unit.builders import service
from tests.unit.test_plan import GREEN_SEL, _plan, _release

NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=timezone.utc)
W = RollbackWindow("r1", "blue-dep", "green-dep", "2026-12-05T12:15:00Z", "scale-to-zero", 3, "run-1")
LIVE = ReleaseRecord(live_deployment="green-dep", previous_deployment="blue-dep", release_id="r1")


@pytest.mark.parametrize("window, record, now, state", [
    (None, LIVE, NOW, WindowState.NONE),
    (W, LIVE, NOW, WindowState.OPEN),
    (W, LIVE, NOW + timedelta(minutes=15), WindowState.ENDED),
    (W, LIVE, NOW + timedelta(hours=2), WindowState.ENDED),
    (W, ReleaseRecord(live_deployment="blue-dep", release_id="rollback-x"), NOW, WindowState.ROLLED_BACK),
    (W, ReleaseRecord(live_deployment="blue-dep", release_id="rollback-x"), NOW + timedelta(hours=1),
     WindowState.ROLLED_BACK),
    (W, ReleaseRecord(live_deployment="v3-dep", release_id="r2"), NOW, WindowState.SUPERSEDED),
    (W, ReleaseRecord(live_deployment="green-dep", release_id="r2"), NOW, WindowState.SUPERSEDED),
])
def test_where_a_window_stands(window, record, now, state):
    verdict = window_state(window, record, now)
    assert verdict.state is state, verdict
    assert verdict.open == (state is WindowState.OPEN)


def test_an_open_window_says_how_long_and_until_when():
    assert window_state(W, LIVE, NOW).reason == "blue-dep is kept warm for 900 s more, until 2026-12-05T12:15:00Z"
    assert "ended at 2026-12-05T12:15:00Z (60 s ago)" in window_state(W, LIVE, NOW + timedelta(minutes=16)).reason


@pytest.mark.parametrize("state_now, force, due", [
    (NOW, False, False), (NOW, True, True), (NOW + timedelta(minutes=20), False, True)])
def test_the_clean_up_is_due_when_the_window_ended_or_a_release_closes_it(state_now, force, due):
    assert cleanup_due(window_state(W, LIVE, state_now), force) is due


def test_never_due_once_rolled_back_or_moved_on_even_forced():
    for record in (ReleaseRecord(live_deployment="blue-dep"), ReleaseRecord(live_deployment="v3", release_id="r2")):
        assert not cleanup_due(window_state(W, record, NOW + timedelta(hours=1)), force=True)


def test_window_end_is_rounded_up_to_the_second_it_is_recorded_with():
    assert format_time(window_end(NOW + timedelta(microseconds=10), 5)) == "2026-12-05T12:00:06Z"
    assert format_time(window_end(NOW, 900)) == "2026-12-05T12:15:00Z"


def test_the_annotation_round_trips_and_is_removed_only_for_its_release():
    svc = service("production-svc", GREEN_SEL)
    svc["metadata"].pop("annotations", None)
    [op] = set_window_ops(svc, W)
    assert op == {"op": "add", "path": "/metadata/annotations", "value": {WINDOW: W.value()}}
    svc["metadata"]["annotations"] = {WINDOW: W.value()}
    assert read_window(svc) == W
    assert clear_window_ops(svc, "r2") == []
    test, remove = clear_window_ops(svc, "r1")
    assert test["op"] == "test" and test["value"] == W.value() and remove["op"] == "remove"
    assert read_window({"metadata": {"annotations": {WINDOW: "{not json"}}}) is None


def _hpa(min_replicas: int | None, annotations: dict | None = None) -> dict:
    return {"metadata": {"name": "blue-dep", "resourceVersion": "7", **({"annotations": annotations}
                                                                         if annotations is not None else {})},
            "spec": {"minReplicas": min_replicas, "maxReplicas": 10}}


def test_the_warm_blues_hpa_is_held_at_its_count_and_its_own_minimum_kept():
    ops = hold_ops(_hpa(1), 3)
    assert ops[1] == {"op": "add", "path": "/spec/minReplicas", "value": 3}
    assert ops[2] == {"op": "add", "path": "/metadata/annotations", "value": {HELD_MIN: "1"}}
    assert hold_ops(_hpa(2, {"a": "b"}), 30)[1]["value"] == 10  # capped by maxReplicas
    assert hold_ops(_hpa(3), 3) is None  # nothing to hold: its own minimum is as high
    assert hold_ops(_hpa(1, {HELD_MIN: "1"}), 3) is None  # already held


def test_a_window_shorter_than_the_scale_down_delay_is_refused():
    with pytest.raises(ValidationError, match=r"rollback_window_s \(10\) must be 0 or at least cleanup.delay_s"):
        BlueGreenSpec(service="s", image="a:1", rollback_window_s=10)
    assert BlueGreenSpec(service="s", image="a:1", rollback_window_s=900).rollback_window_s == 900


def test_the_plan_shows_the_window_and_the_scheduled_clean_up():
    plan = _plan(_release({"rollback_window_s": 900}))
    cleanup = plan.steps[-1]
    assert cleanup.name == "cleanup"
    assert "keep blue-dep scaled (3 replicas) and ready, without traffic, until <time of the switch> + 900 s" \
        in cleanup.change
    assert "blue-green-window-cleanup/window-cleanup" in cleanup.change and "scale blue-dep from 3 to 0" in cleanup.change
    assert "selector switch only" in cleanup.when
    kept = _plan(_release({"rollback_window_s": 900, "cleanup": {"mode": "keep"}})).steps[-1]
    assert "rollback window" not in kept.change  # keep: nothing to clean up, no window


def test_a_release_inside_a_window_closes_it_first():
    prev = dataclasses.replace(W, warm="v1-dep")
    names = _plan(dataclasses.replace(_release(), previous_window=prev)).step_names()
    assert names[:3] == ["preflight", "close-window", "apply"]
    step = _plan(dataclasses.replace(_release(), previous_window=prev)).steps[1]
    assert "scale-to-zero v1-dep now, instead of at the window's end" in step.change
    reused = _plan(dataclasses.replace(_release(), previous_window=dataclasses.replace(W, warm="green-dep")))
    assert "green-dep becomes this release's green" in reused.steps[1].change


class FakeService:
    """One Service in memory: read and json_patch as tasks/kube/client does them (test ops checked)."""

    def __init__(self, selector: dict, annotations: dict):
        self.svc = service("production-svc", selector, annotations=dict(annotations))
        self.svc["metadata"]["namespace"] = "default"
        self.patches: list[list[dict]] = []
        self.removed: list[str] = []
        self.deployments = {"blue-dep": {"metadata": {"name": "blue-dep"}, "spec": {"replicas": 3}}}

    def read(self, kube, kind, namespace, name):
        return json.loads(json.dumps(self.svc)) if kind == "Service" else self.deployments.get(name)

    def json_patch(self, kube, kind, namespace, name, ops):
        self.patches.append(ops)
        ann = self.svc["metadata"].setdefault("annotations", {})
        for op in ops:
            if op["path"] == "/metadata/annotations" and op["op"] == "add":
                ann.update(op["value"])
            elif op["path"].startswith("/metadata/annotations/"):
                key = op["path"].rsplit("/", 1)[1].replace("~1", "/")
                if op["op"] == "add":
                    ann[key] = op["value"]
                elif op["op"] == "remove":
                    ann.pop(key)

    def take_out(self, kube, namespace, service_name, name, how, replicas=0):
        self.removed.append(f"{how} {name}")
        return f"scaled Deployment {name} to 0"


@pytest.fixture
def fake(monkeypatch) -> FakeService:
    f = FakeService(GREEN_SEL, {"greenlight.io/live-deployment": "green-dep", "greenlight.io/release-id": "r1"})
    for name, value in (("read", f.read), ("json_patch", f.json_patch), ("take_out_of_service", f.take_out),
                        ("hold", lambda *a: None), ("release_hold", lambda *a: None),
                        ("settle_autoscaler", lambda *a: None), ("retire_autoscaler", lambda *a: None),
                        ("say", lambda m: None)):
        monkeypatch.setattr(bgwindow, name, value)
    return f


def test_the_release_records_the_window_and_schedules_its_end_without_waiting(fake):
    scheduled = []

    def schedule(deployment, params, at, name):
        scheduled.append((deployment, params, at, name))
        return "run-42"

    release = _release({"rollback_window_s": 60, "cleanup": {"delay_s": 5}})
    msg = bgwindow.open_window(None, release, {"kubeconfig": "/k", "context": None}, now=NOW, schedule=schedule)
    [(deployment, params, at, _)] = scheduled
    assert deployment == "blue-green-window-cleanup/window-cleanup" and at == NOW + timedelta(seconds=60)
    assert params == {"namespace": "default", "service": "production-svc", "release_id": "r1", "kubeconfig": "/k"}
    window = read_window(fake.svc)
    assert window == RollbackWindow("r1", "blue-dep", "green-dep", "2026-12-05T12:01:00Z", "scale-to-zero", 3,
                                    "run-42")
    assert all(p[0] == {"op": "test", "path": "/spec/selector/target", "value": "green-dep"} for p in fake.patches)
    assert "until 2026-12-05T12:01:00Z (60 s)" in msg and "run-42" in msg and fake.removed == []


def _with_window(fake: FakeService, until: datetime, live: str = "green-dep") -> None:
    fake.svc["metadata"]["annotations"][WINDOW] = dataclasses.replace(W, until=format_time(until)).value()
    fake.svc["metadata"]["annotations"]["greenlight.io/live-deployment"] = live


def test_the_scheduled_run_takes_blue_out_of_service_once_the_window_ended(fake):
    _with_window(fake, datetime.now(timezone.utc) - timedelta(seconds=1))
    msg = bgwindow.close_window(None, "default", "production-svc", "r1")
    assert fake.removed == ["scale-to-zero blue-dep"] and read_window(fake.svc) is None
    assert msg == "rollback window of release r1 closed: scaled Deployment blue-dep to 0"


def test_a_run_started_a_little_early_waits_for_the_end_then_cleans_up(fake):
    _with_window(fake, datetime.now(timezone.utc) + timedelta(seconds=2))
    slept = []

    def sleep(s):
        slept.append(s)
        _with_window(fake, datetime.now(timezone.utc) - timedelta(seconds=1))

    bgwindow.close_window(None, "default", "production-svc", "r1", sleep=sleep)
    assert len(slept) == 1 and 0 < slept[0] <= 2 and fake.removed == ["scale-to-zero blue-dep"]


def test_after_a_rollback_inside_the_window_nothing_is_taken_out_of_service(fake):
    _with_window(fake, datetime.now(timezone.utc) - timedelta(seconds=1), live="blue-dep")
    msg = bgwindow.close_window(None, "default", "production-svc", "r1")
    assert fake.removed == [] and read_window(fake.svc) is None
    assert msg.startswith("nothing taken out of service: the Service serves blue-dep again")


def test_a_window_of_another_release_is_left_alone(fake):
    _with_window(fake, datetime.now(timezone.utc) - timedelta(seconds=1))
    assert "nothing to do" in bgwindow.close_window(None, "default", "production-svc", "r0")
    assert fake.removed == [] and read_window(fake.svc) is not None


def test_a_new_release_in_the_window_retires_the_warm_version_first(fake):
    _with_window(fake, datetime.now(timezone.utc) + timedelta(minutes=10))
    release = dataclasses.replace(_release(), previous_window=read_window(fake.svc))
    release = dataclasses.replace(release, colors=dataclasses.replace(release.colors, blue="green-dep",
                                                                      green="v3-dep"))
    bgwindow.close_previous_window(None, release)
    assert fake.removed == ["scale-to-zero blue-dep"] and read_window(fake.svc) is None


def test_a_new_release_reusing_the_warm_deployment_as_green_only_forgets_the_window(fake):
    _with_window(fake, datetime.now(timezone.utc) + timedelta(minutes=10))
    release = dataclasses.replace(_release(), previous_window=read_window(fake.svc))
    release = dataclasses.replace(release, colors=dataclasses.replace(release.colors, blue="green-dep",
                                                                      green="blue-dep"))
    assert "becomes this release's green" in bgwindow.close_previous_window(None, release)
    assert fake.removed == [] and read_window(fake.svc) is None


def test_status_line_says_until_when():
    row = window_row(window_state(W, LIVE, NOW))
    assert window_line(row).startswith("  rollback window: open until 2026-12-05T12:15:00Z: blue-dep kept warm")
    assert window_row(window_state(None, LIVE, NOW)) == {} and window_line({}) == ""
