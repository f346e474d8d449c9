"""Promotion pipelines (issue 16) on three local clusters side by side (tests/cluster/multi.py): staging, prod-a
and prod-b, one kubeconfig with a context each. The session fixture starts them (unless they are up) and stops
them at the end (unless GREENLIGHT_KEEP_CLUSTER). Every test gives each cluster a fresh namespace with the first
tutorial's blue-dep (1 replica) behind production-svc, and samples all three Services' EndpointSlices with
ClusterIP traffic inside each cluster's own network namespace.

- every stage passes, with an API approval between staging and prod;
- prod-b's target fails (a fault image only there): prod-b rolls itself back, and with `atomic` prod-a and
  staging are rolled back too, newest first, each verified (EndpointSlices and traffic);
- bad pipeline specs exit 2 with nothing changed in any cluster;
- a pipeline killed at its gate, re-run: staging is not released twice, the pipeline resumes and completes;
- the dry run describes the same list of steps, then every target's plan, and changes nothing.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from prefect_greenlight.tasks.decisions.history import read_history
from prefect_greenlight.tasks.kube.client import Kube, connect, read
from tests.conftest import ClusterInfo
from tests.e2e.prefect_ops import api_call
from tests.e2e.release_helpers import (
    TUTORIAL1,
    given_ready,
    greenlight,
    greenlight_bg,
    paused_run_id,
    resource_versions,
    selector,
    wait_until,
)
from tests.e2e.sampler import EndpointSampler

NAMES = ("staging", "prod-a", "prod-b")
NEW = "scubakiz/servicedemo:2.0"
OLD = "scubakiz/servicedemo:1.0"


@dataclass(frozen=True)
class Clusters:
    kubeconfig: str  # the merged one: a context per cluster
    kubectl: str
    own: dict[str, tuple[str, str]]  # name -> (its own kubeconfig, its network namespace)
    kubes: dict[str, Kube]


@pytest.fixture(scope="session")
def clusters() -> Clusters:
    from tests.cluster import multi

    states = multi.status() if multi.BASE.exists() else {}
    started_here = not (set(NAMES) <= set(states) and all(states[n]["up"] for n in NAMES))
    try:
        info = multi.up(len(NAMES))
    except BaseException as exc:  # noqa: BLE001 - unreachable clusters are a failure, never a skip
        pytest.fail(f"could not start the three local test clusters: {exc}", pytrace=False)
    own = {n: (c["kubeconfig"], c["netns"]) for n, c in info["clusters"].items()}
    try:
        yield Clusters(info["kubeconfig"], info["kubectl"], own,
                       {n: connect(info["kubeconfig"], n) for n in NAMES})
    finally:
        if started_here and not os.environ.get("GREENLIGHT_KEEP_CLUSTER"):
            multi.down()


@pytest.fixture(scope="session")
def staging(clusters) -> ClusterInfo:
    """The staging cluster as a ClusterInfo, for the CLI helpers. (Not named `cluster`: overriding the session's
    fixture bound session fixtures created first in this module — kube, prefect_ops — to staging.)"""
    return ClusterInfo(clusters.own["staging"][0], clusters.kubectl, local=True)


@pytest.fixture
def ns(clusters, request) -> str:
    """A fresh namespace in every cluster with blue-dep (1 replica) behind production-svc."""
    name = f"t-pipeline-{uuid.uuid4().hex[:6]}"
    blue = yaml.safe_load((TUTORIAL1 / "blue-dep.yaml").read_text())
    blue["spec"]["replicas"] = 1
    svc = yaml.safe_load((TUTORIAL1 / "production-svc-blue.yaml").read_text())
    svc["spec"]["type"] = "ClusterIP"
    for kube in clusters.kubes.values():
        kube.core.create_namespace({"metadata": {"name": name, "labels": {"greenlight-test": "true"}}})
        wait_until("the default ServiceAccount", lambda k=kube: k.core.list_namespaced_service_account(name).items,
                   30, 0.1)
        kube.apps.create_namespaced_deployment(name, blue)
        kube.core.create_namespaced_service(name, svc)
    for kube in clusters.kubes.values():
        given_ready(kube, name, "blue-dep")
    yield name
    for kube in clusters.kubes.values():
        kube.core.delete_namespace(name, propagation_policy="Background")


def pipeline_file(tmp_path: Path, ns: str, pipeline_id: str, *, gate: str = "auto", on_failure: str = "target",
                  prod_b_image: str | None = None) -> Path:
    release = {"cleanup": {"delay_s": 3}, "deadlines": {"ready_s": 60}}

    def target(context: str, image: str | None = None) -> dict:
        return {"context": context, "namespace": ns, "service": "production-svc", "release": release,
                **({"image": image} if image else {})}
    spec = {"pipeline_id": pipeline_id, "image": NEW, "stages": [
        {"name": "staging", "targets": [target("staging")], "gate": {"mode": gate, "timeout_s": 300}},
        {"name": "prod", "max_parallel": 2, "on_failure": on_failure,
         "targets": [target("prod-a"), target("prod-b", prod_b_image)]}]}
    path = tmp_path / f"{pipeline_id}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def samplers(clusters: Clusters, ns: str, stack: ExitStack) -> dict[str, EndpointSampler]:
    return {n: stack.enter_context(EndpointSampler(clusters.kubes[n], ns, "production-svc",
                                                   traffic_context=(clusters.own[n][1], clusters.own[n][0])))
            for n in NAMES}


def serving(clusters: Clusters, ns: str) -> dict[str, tuple[str, str]]:
    """cluster -> (Deployment the Service selects, its image)."""
    out = {}
    for n, kube in clusters.kubes.items():
        live = selector(kube, ns, "production-svc")["target"]
        dep = read(kube, "Deployment", ns, live)
        out[n] = (live, dep["spec"]["template"]["spec"]["containers"][0]["image"])
    return out


def newest_history(clusters: Clusters, ns: str) -> dict[str, object]:
    return {n: read_history(read(k, "Service", ns, "production-svc"))[-1] for n, k in clusters.kubes.items()}


def flow_runs(api: str, *tags: str) -> list[dict]:
    resp = api_call("POST", f"{api}/flow_runs/filter", json={"flow_runs": {"tags": {"all_": list(tags)}}})
    resp.raise_for_status()
    return resp.json()


def pipeline_events(api: str, pipeline_id: str) -> list[str]:
    body = {"filter": {"event": {"prefix": ["greenlight.pipeline."]}, "order": "ASC",
                       "resource": {"id": [f"greenlight.pipeline.{pipeline_id}"]}}, "limit": 50}
    resp = api_call("POST", f"{api}/events/filter", json=body)
    resp.raise_for_status()
    return [e["event"] for e in resp.json()["events"]]


def test_every_stage_passes_with_an_api_approval_between_staging_and_prod(clusters, ns, prefect_api, tmp_path,
                                                                          staging):
    pid = f"pass-{uuid.uuid4().hex[:6]}"
    spec = pipeline_file(tmp_path, ns, pid, gate="manual")
    log = tmp_path / "pipeline.log"
    with ExitStack() as stack:
        sampled = samplers(clusters, ns, stack)
        proc = greenlight_bg(staging, prefect_api, "pipeline", "run", "--spec", str(spec), "--kubeconfig",
                             clusters.kubeconfig, "--json", log=log)
        run_id = paused_run_id(log, proc, timeout=180, api=prefect_api)
        # paused at the gate: staging is released, prod untouched
        assert serving(clusters, ns) == {"staging": ("green-dep", NEW), "prod-a": ("blue-dep", OLD),
                                         "prod-b": ("blue-dep", OLD)}
        answer = greenlight(staging, prefect_api, "approve", run_id, "--reason", "staging looks good")
        assert answer.returncode == 0, answer.stderr
        assert proc.wait(240) == 0, log.read_text()[-4000:]
    assert serving(clusters, ns) == {n: ("green-dep", NEW) for n in NAMES}
    for n, s in sampled.items():
        assert s.zero_ready_instants() == 0, f"{n}: {s.describe()}"
        print(f"{n}: {s.requests.sent()} ClusterIP requests, {len(s.requests.failed())} failed")
    entries = newest_history(clusters, ns)
    assert {n: (e.pipeline_id, e.pipeline_stage, e.pipeline_target, e.outcome) for n, e in entries.items()} == {
        "staging": (pid, "staging", "staging", "released"), "prod-a": (pid, "prod", "prod-a", "released"),
        "prod-b": (pid, "prod", "prod-b", "released")}
    children = [r for r in flow_runs(prefect_api, f"greenlight.pipeline:{pid}")
                if any(t.startswith("greenlight.target:") for t in r["tags"])]
    assert sorted(r["name"] for r in children) == [f"{pid}-{n}" for n in ("prod-a", "prod-b", "staging")]
    assert all(r["parent_task_run_id"] for r in children)  # subflows of the pipeline's run
    status = greenlight(staging, prefect_api, "pipeline", "status", pid, "--kubeconfig", clusters.kubeconfig,
                        "--json")
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert state["state"] == "COMPLETED" and all(t["released"] for t in state["targets"])
    assert state["next"] == "every stage already passed"
    events = wait_until("the pipeline's events", lambda: (e := pipeline_events(prefect_api, pid))
                        and "greenlight.pipeline.completed" in e and e, 30, 0.5)
    assert events == ["greenlight.pipeline.started", "greenlight.pipeline.stage-passed",
                      "greenlight.pipeline.paused", "greenlight.pipeline.stage-passed",
                      "greenlight.pipeline.completed"]


def test_a_pipeline_rejected_at_its_gate_says_who_and_why(clusters, ns, prefect_api, tmp_path, staging):
    """The gate is the one pause of every release: a rejection's who and why reach the pipeline's result, its
    failed event and `greenlight pipeline status`; prod stays untouched."""
    pid = f"reject-{uuid.uuid4().hex[:6]}"
    spec = pipeline_file(tmp_path, ns, pid, gate="manual")
    log = tmp_path / "pipeline.log"
    proc = greenlight_bg(staging, prefect_api, "pipeline", "run", "--spec", str(spec), "--kubeconfig",
                         clusters.kubeconfig, "--json", log=log)
    run_id = paused_run_id(log, proc, timeout=180, api=prefect_api)
    answer = greenlight(staging, prefect_api, "reject", run_id, "--reason", "error budget spent", "--approver", "ana")
    assert answer.returncode == 0, answer.stderr
    assert proc.wait(120) == 1, log.read_text()[-4000:]
    note = "rejected by ana (human): error budget spent"
    assert f"promotion to stage prod {note}" in log.read_text()
    assert serving(clusters, ns)["prod-a"] == ("blue-dep", OLD) and serving(clusters, ns)["prod-b"] == ("blue-dep", OLD)
    status = greenlight(staging, prefect_api, "pipeline", "status", pid, "--kubeconfig", clusters.kubeconfig)
    assert status.returncode == 0, status.stderr
    assert "FAILED" in status.stdout and note in status.stdout, status.stdout


@pytest.mark.parametrize("policy", ["target", "atomic"])
def test_a_fault_in_prod_b_rolls_back_by_policy(clusters, ns, prefect_api, tmp_path, staging, policy):
    pid = f"fail-{policy}-{uuid.uuid4().hex[:6]}"
    spec = pipeline_file(tmp_path, ns, pid, on_failure=policy, prod_b_image="scubakiz/servicedemo:fault-crashloop")
    with ExitStack() as stack:
        sampled = samplers(clusters, ns, stack)
        run = greenlight(staging, prefect_api, "pipeline", "run", "--spec", str(spec), "--kubeconfig",
                         clusters.kubeconfig, "--json", timeout=300)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    rows = {r["target"]: r for r in json.loads(run.stdout[:run.stdout.rindex("}") + 1])["targets"]}
    assert rows["prod-b"]["outcome"] == "failed" and "CrashLoopBackOff" in rows["prod-b"]["reason"]
    entries = newest_history(clusters, ns)
    assert (entries["prod-b"].strategy, entries["prod-b"].outcome) == ("blue-green", "rolled-back")
    assert serving(clusters, ns)["prod-b"] == ("blue-dep", OLD)
    assert sampled["prod-b"].instants_serving({"green-dep"}) == 0
    if policy == "atomic":
        assert serving(clusters, ns) == {n: ("blue-dep", OLD) for n in NAMES}
        for n in ("staging", "prod-a"):
            assert rows[n]["outcome"] == "rolled-back"
            assert (entries[n].strategy, entries[n].outcome, entries[n].pipeline_id) == ("rollback", "rolled-back",
                                                                                         pid)
        # newest stage first: prod-a's rollback finished before staging's
        assert entries["prod-a"].finished_at <= entries["staging"].finished_at
    else:
        assert serving(clusters, ns) == {"staging": ("green-dep", NEW), "prod-a": ("green-dep", NEW),
                                         "prod-b": ("blue-dep", OLD)}
    for n, s in sampled.items():
        assert s.zero_ready_instants() == 0, f"{n}: {s.describe()}"
        print(f"{policy} {n}: {s.requests.sent()} ClusterIP requests, {len(s.requests.failed())} failed")


def test_the_dry_run_describes_the_pipelines_steps_and_every_targets_plan(clusters, ns, prefect_api, tmp_path,
                                                                          staging):
    """`--dry-run`: the list of steps the run executes (stage-…, gate-…), described, then each target's own plan
    (its release's dry run, a child flow run); nothing changes in any cluster."""
    spec = pipeline_file(tmp_path, ns, f"plan-{uuid.uuid4().hex[:6]}", gate="manual", on_failure="atomic")
    before = {n: resource_versions(k, ns) for n, k in clusters.kubes.items()}
    run = greenlight(staging, prefect_api, "pipeline", "run", "--spec", str(spec), "--kubeconfig",
                     clusters.kubeconfig, "--dry-run", "--json")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(run.stdout[:run.stdout.rindex("}") + 1])
    assert result["outcome"] == "dry-run"
    assert result["plan"]["step_names"] == ["stage-staging", "gate-staging", "stage-prod"]
    assert "approval form" in result["plan_text"] and "rolled back, newest stage first" in result["plan_text"]
    assert [(p["target"], p["plan"]["step_names"][:2]) for p in result["plans"]] == [
        (n, ["preflight", "apply"]) for n in NAMES]
    assert {n: resource_versions(k, ns) for n, k in clusters.kubes.items()} == before


BAD = {
    "unknown-context": (lambda d: d["stages"][1]["targets"][1].update(context="prod-z"),
                        "unknown kubeconfig context 'prod-z'"),
    "duplicate-target": (lambda d: d["stages"][1]["targets"].append({**d["stages"][0]["targets"][0],
                                                                      "name": "again"}),
                         "duplicate target: Service"),
    "empty-stage": (lambda d: d["stages"].append({"name": "later", "targets": []}), "stages.2.targets"),
    "missing-service": (lambda d: d["stages"][1]["targets"][1].update(service="no-such-svc"),
                        "target prod-b (prod-b:"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_pipeline_spec_exits_2_with_nothing_changed_in_any_cluster(clusters, ns, prefect_api, tmp_path,
                                                                         staging, case):
    change, message = BAD[case]
    data = yaml.safe_load(pipeline_file(tmp_path, ns, f"bad-{uuid.uuid4().hex[:6]}").read_text())
    change(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    before = {n: resource_versions(k, ns) for n, k in clusters.kubes.items()}
    run = greenlight(staging, prefect_api, "pipeline", "run", "--spec", str(path), "--kubeconfig",
                     clusters.kubeconfig)
    assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
    assert message in run.stderr and "Traceback" not in run.stderr
    assert {n: resource_versions(k, ns) for n, k in clusters.kubes.items()} == before


def test_a_pipeline_killed_at_its_gate_resumes_without_releasing_staging_twice(clusters, ns, prefect_api, tmp_path,
                                                                              staging):
    pid = f"resume-{uuid.uuid4().hex[:6]}"
    spec = pipeline_file(tmp_path, ns, pid, gate="manual")
    first = greenlight_bg(staging, prefect_api, "pipeline", "run", "--spec", str(spec), "--kubeconfig",
                          clusters.kubeconfig, log=tmp_path / "first.log")
    paused_run_id(tmp_path / "first.log", first, timeout=180, api=prefect_api)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    staged = read(clusters.kubes["staging"], "Service", ns, "production-svc")["metadata"]["resourceVersion"]
    second = greenlight_bg(staging, prefect_api, "pipeline", "run", "--spec", str(spec), "--kubeconfig",
                           clusters.kubeconfig, log=tmp_path / "second.log")
    run_id = paused_run_id(tmp_path / "second.log", second, timeout=180, api=prefect_api)
    assert "resuming at stage prod (passed before: staging; its gate is asked again)" in \
        (tmp_path / "second.log").read_text()
    assert greenlight(staging, prefect_api, "approve", run_id).returncode == 0
    assert second.wait(240) == 0, (tmp_path / "second.log").read_text()[-4000:]
    assert serving(clusters, ns) == {n: ("green-dep", NEW) for n in NAMES}
    # staging was released once: one child run, and its Service untouched by the re-run
    assert len(flow_runs(prefect_api, f"greenlight.pipeline:{pid}", "greenlight.target:staging")) == 1
    assert read(clusters.kubes["staging"], "Service", ns, "production-svc")["metadata"]["resourceVersion"] == staged


def test_a_soak_gate_that_fails_rolls_back_the_soaked_target_and_stops(clusters, ns, prefect_api, tmp_path,
                                                                      staging):
    """staging's new pods answer 500 from 25 s after they start (`fault-failafter-25`): the release's own smoke
    test passes, the soak after staging catches it, staging is rolled back and prod is never touched."""
    pid = f"soak-{uuid.uuid4().hex[:6]}"
    spec = yaml.safe_load(pipeline_file(tmp_path, ns, pid).read_text())
    spec["stages"][0]["targets"][0]["image"] = "scubakiz/servicedemo:fault-failafter-25"
    spec["stages"][0]["gate"] = {"mode": "soak", "soak_s": 90, "interval_s": 2}
    path = tmp_path / "soak.yaml"
    path.write_text(yaml.safe_dump(spec))
    before = {n: resource_versions(clusters.kubes[n], ns) for n in ("prod-a", "prod-b")}
    with EndpointSampler(clusters.kubes["staging"], ns, "production-svc", expect_failures=True,
                         traffic_context=(clusters.own["staging"][1], clusters.own["staging"][0])) as sampler:
        run = greenlight(staging, prefect_api, "pipeline", "run", "--spec", str(path), "--kubeconfig",
                         clusters.kubeconfig, "--json", timeout=300)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    rows = {r["target"]: r for r in json.loads(run.stdout[:run.stdout.rindex("}") + 1])["targets"]}
    assert rows["staging"]["outcome"] == "rolled-back" and "soak round" in rows["staging"]["reason"]
    assert rows["prod-a"]["outcome"] == rows["prod-b"]["outcome"] == "not-started"
    assert serving(clusters, ns)["staging"] == ("blue-dep", OLD)
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    assert {n: resource_versions(clusters.kubes[n], ns) for n in ("prod-a", "prod-b")} == before
    entry = read_history(read(clusters.kubes["staging"], "Service", ns, "production-svc"))[-1]
    assert (entry.strategy, entry.outcome, entry.pipeline_id) == ("rollback", "rolled-back", pid)
    print(f"soak staging: {sampler.requests.sent()} ClusterIP requests, {len(sampler.requests.failed())} failed "
          "(the fault image answers 500 once 25 s old)")


def test_a_pipeline_started_from_its_deployment_pauses_with_a_form_and_completes(clusters, ns, prefect_api,
                                                                                prefect_ops, tmp_path, staging):
    """As the UI does it: a run of the `pipeline` deployment (picked up by the process worker), paused at the
    gate with the approval form whose description is the stage's table, answered through the API; the report
    artifact is the table of stages × targets."""
    from prefect_greenlight.cli.pipeline import load_pipeline_spec

    pid = f"ui-{uuid.uuid4().hex[:6]}"
    spec = load_pipeline_spec(str(pipeline_file(tmp_path, ns, pid, gate="manual")))
    run_id = prefect_ops.run("pipeline", {"spec": spec.model_dump(mode="json"), "kubeconfig": clusters.kubeconfig})
    prefect_ops.wait_state(run_id, {"PAUSED"}, timeout=240)
    form = api_call("GET", f"{prefect_api}/flow_runs/{run_id}").json()["state"]["state_details"]
    assert form.get("run_input_keyset"), form  # the pause waits for the approval form's input
    assert serving(clusters, ns)["prod-a"] == ("blue-dep", OLD)
    assert greenlight(staging, prefect_api, "approve", run_id, "--reason", "from the API").returncode == 0
    prefect_ops.wait_state(run_id, {"COMPLETED"}, timeout=240)
    assert serving(clusters, ns) == {n: ("green-dep", NEW) for n in NAMES}
    report = [a for a in prefect_ops.artifacts(run_id) if a.get("key") == f"pipeline-{pid}"]
    assert report and "| prod | prod-b | prod-b |" in report[0]["data"] and "green-dep" in report[0]["data"]
    tags = api_call("GET", f"{prefect_api}/flow_runs/{run_id}").json()["tags"]
    assert f"greenlight.pipeline:{pid}" in tags


def test_a_pipeline_cancelled_at_its_gate_rolls_back_what_it_released(clusters, ns, prefect_api, prefect_ops,
                                                                      tmp_path, staging):
    """The UI's Cancel is an abort everywhere, at a pipeline's gate too: staging, released and verified, is rolled
    back (a verified child rollback) and the run ends Cancelled; prod was never touched. (Reject at the gate
    stops the promotion and keeps what is released.)"""
    from prefect_greenlight.cli.pipeline import load_pipeline_spec

    pid = f"cancel-{uuid.uuid4().hex[:6]}"
    spec = load_pipeline_spec(str(pipeline_file(tmp_path, ns, pid, gate="manual")))
    run_id = prefect_ops.run("pipeline", {"spec": spec.model_dump(mode="json"), "kubeconfig": clusters.kubeconfig})
    prefect_ops.wait_state(run_id, {"PAUSED"}, timeout=240)
    assert serving(clusters, ns)["staging"] == ("green-dep", NEW)
    prefect_ops.cancel(run_id)
    assert prefect_ops.wait_state(run_id, {"CANCELLED"}, timeout=180) == "CANCELLED"
    assert serving(clusters, ns) == {n: ("blue-dep", OLD) for n in NAMES}
    prefect_ops.logs_with(run_id, f"pipeline {pid}: rolling back staging", "cancelled")
