"""The greenlight worker (worker/): releases started as the UI's Run button does run in threads of ONE worker
process; the process worker still works; a worker killed mid-release (SIGKILL) or shut down (SIGTERM, grace over)
leaves its run Crashed and a re-run converges — with no failed request through the ClusterIP throughout.

The session's `greenlight` pool is of type greenlight (tests/e2e/prefect_ops.py), so the other deployment tests
(test_cancel: cancel mid-wait and mid-canary; test_ui_approval: approval in the UI; test_prefect_ops, test_plan,
test_pipeline) run through it as well."""

from __future__ import annotations

from datetime import datetime

import pytest
import yaml

from prefect_greenlight.tasks.kube.client import read
from prefect_greenlight.tasks.kube.waiting import wait_endpoints
from prefect_greenlight.worker.decisions import InfraId
from tests.e2e.prefect_ops import ROOT, Worker, create_pool
from tests.e2e.release_helpers import (
    TUTORIAL1,
    TUTORIAL2,
    given_applied,
    given_ready,
    ready,
    replicas,
    selector,
    tutorial1,
    wait_until,
)
from tests.e2e.sampler import EndpointSampler

SERVICE = "production-svc"
LOGS = ROOT / ".cache" / "test-logs"


def _spec(namespace: str, **extra) -> dict:
    return {"namespace": namespace, "service": SERVICE, "cleanup": {"delay_s": 1},
            "manifest": yaml.safe_load((TUTORIAL1 / "green-dep.yaml").read_text()), **extra}


def _seconds(run: dict, a: str, b: str) -> float:
    return (datetime.fromisoformat(run[b]) - datetime.fromisoformat(run[a])).total_seconds()


def _pickup(prefect_ops, run_id: str) -> float:
    """Seconds from the run's creation (the UI's Run) to its start (the engine's Running)."""
    return _seconds(prefect_ops.flow_run(run_id), "created", "start_time")


@pytest.mark.both_ends
def test_releases_run_in_threads_of_one_worker_process(prefect_ops, kube, namespace, kubectl):
    """A blue-green release and then a canary, both deployment runs: the same worker process ran both (its pid in
    their infrastructure id), and each started within seconds of its creation."""
    tutorial1(kubectl, kube, namespace)
    given_applied(kubectl, TUTORIAL2 / "v1-deployment.yaml", TUTORIAL2 / "canary-service.yaml")
    given_ready(kube, namespace, "my-app-v1")
    canary = {"namespace": namespace, "service": "my-app-service", "stable": "my-app-v1", "pause_s": 0,
              "manifest": yaml.safe_load((TUTORIAL2 / "v2-canary-deployment.yaml").read_text())}
    owners = []
    with EndpointSampler(kube, namespace, SERVICE) as bg, EndpointSampler(kube, namespace, "my-app-service") as cn:
        for deployment, params in (("blue-green", {"spec": _spec(namespace)}), ("canary", {"spec": canary})):
            run = prefect_ops.run(deployment, params)
            assert prefect_ops.wait_state(run, {"COMPLETED"}, 240) == "COMPLETED"
            owners.append(InfraId.parse(prefect_ops.flow_run(run)["infrastructure_pid"]))
            print(f"{deployment}: created -> Running {_pickup(prefect_ops, run):.2f} s")
    assert selector(kube, namespace, SERVICE) == {"target": "green-dep"}
    assert wait_endpoints(kube, namespace, "my-app-service", "my-app-v2", 10, 30).ok
    assert None not in owners, owners
    assert owners[0].pid == owners[1].pid and owners[0].instance == owners[1].instance, owners
    assert bg.zero_ready_instants() == 0 and cn.zero_ready_instants() == 0


def test_the_process_worker_still_runs_releases(prefect_ops, prefect_api, cluster, kube, namespace, kubectl):
    """The same deployment on a work pool of type process, run by `prefect worker start --type process`."""
    create_pool(prefect_api, "process-pool", "process")
    deployment = prefect_ops.copy_to_pool("blue-green", "process-pool")
    worker = Worker(prefect_api, cluster.kubeconfig, LOGS / "worker-process.log", kind="process", pool="process-pool")
    try:
        tutorial1(kubectl, kube, namespace)
        with EndpointSampler(kube, namespace, SERVICE) as sampler:
            run = prefect_ops.run(deployment, {"spec": _spec(namespace)})
            assert prefect_ops.wait_state(run, {"COMPLETED"}, 240) == "COMPLETED", worker.log()[-3000:]
        infra = prefect_ops.flow_run(run)["infrastructure_pid"]
        assert InfraId.parse(infra) is None and infra.isdigit(), infra  # a process of its own
        assert selector(kube, namespace, SERVICE) == {"target": "green-dep"}
        assert sampler.zero_ready_instants() == 0
    finally:
        worker.stop()


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_a_worker_gone_mid_release_leaves_its_run_crashed_and_a_rerun_converges(
        how, prefect_ops, prefect_api, cluster, kube, namespace, kubectl):
    """Killed (SIGKILL: the next greenlight worker on this host marks the run Crashed) or shut down (SIGTERM with
    a 2 s grace: it hands the release over, marked Crashed). Green serves, the release half done; the same
    release run again converges: released, blue scaled to 0 (the default clean-up), the Lease gone."""
    pool = f"greenlight-{how}"
    create_pool(prefect_api, pool, "greenlight")
    deployment = prefect_ops.copy_to_pool("blue-green", pool)
    env = {"GREENLIGHT_WORKER_SHUTDOWN_GRACE_S": "2"}
    first = Worker(prefect_api, cluster.kubeconfig, LOGS / f"worker-{how}-1.log", pool=pool, env=env)
    second = None
    tutorial1(kubectl, kube, namespace)
    spec = _spec(namespace, post_switch={"window_s": 300, "interval_s": 1})
    try:
        with EndpointSampler(kube, namespace, SERVICE) as sampler:
            run = prefect_ops.run(deployment, {"spec": spec})
            wait_until("the post-switch window", lambda: "post-switch round 1:" in prefect_ops.logs(run), 180, 0.5)
            if how == "sigkill":
                first.kill()
                assert prefect_ops.state(run) == "RUNNING"  # nothing of the worker ran after the kill
                second = Worker(prefect_api, cluster.kubeconfig, LOGS / f"worker-{how}-2.log", pool=pool)
            else:
                first.stop()
                assert "greenlight worker: stopping" in first.log(), first.log()[-2000:]
            assert prefect_ops.wait_state(run, {"CRASHED"}, 60) == "CRASHED"
            message = prefect_ops.flow_run(run)["state"]["message"]
            assert ("is gone" if how == "sigkill" else "handed over") in message, message
            # half done: green serves, blue still there (nothing is lost), the dead release's Lease left behind
            assert selector(kube, namespace, SERVICE) == {"target": "green-dep"}
            assert ready(kube, namespace, "blue-dep") == 3
            second = second or Worker(prefect_api, cluster.kubeconfig, LOGS / f"worker-{how}-2.log", pool=pool)
            rerun = prefect_ops.run(deployment, {"spec": _spec(namespace, lock_wait_s=60)})
            assert prefect_ops.wait_state(rerun, {"COMPLETED"}, 240) == "COMPLETED", prefect_ops.logs(rerun)[-3000:]
        assert selector(kube, namespace, SERVICE) == {"target": "green-dep"}
        assert wait_endpoints(kube, namespace, SERVICE, "green-dep", 3, 30).ok
        wait_until("blue scaled to 0", lambda: replicas(kube, namespace, "blue-dep") == 0, 60, 0.5)  # kept, at 0
        assert read(kube, "Lease", namespace, f"greenlight-{SERVICE}") is None
        assert sampler.zero_ready_instants() == 0, sampler.describe()
        print(f"worker {how}: {sampler.requests.summary()}")
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()


def test_a_deployment_run_takes_its_credentials_from_a_cluster_block(prefect_ops, prefect_api, cluster, kube,
                                                                     namespace, kubectl, tmp_path):
    """The UI's Run with `cluster_config` naming a KubernetesClusterConfig block (the ServiceAccount token
    kubeconfig of deployments/rbac.yaml): the greenlight worker's release uses the block, and the token is in none
    of what Prefect recorded of the run."""
    from tests.e2e.prefect_dump import record_of
    from tests.e2e.test_secrets import leaks, needles_of_token, save_cluster_block, token_kubeconfig

    tutorial1(kubectl, kube, namespace)
    token_cfg, token = token_kubeconfig(cluster, kubectl, tmp_path)
    block = f"w-{namespace}"[:60].rstrip("-")
    save_cluster_block(prefect_api, block, token_cfg)
    with EndpointSampler(kube, namespace, SERVICE) as sampler:
        run = prefect_ops.run("blue-green", {"spec": _spec(namespace), "cluster_config": block})
        assert prefect_ops.wait_state(run, {"COMPLETED"}, 240) == "COMPLETED", prefect_ops.logs(run)[-3000:]
    assert selector(kube, namespace, SERVICE) == {"target": "green-dep"}
    assert sampler.zero_ready_instants() == 0
    # the block, not the worker's own $KUBECONFIG: a block pointing at no apiserver fails the run, nothing changed
    doc = yaml.safe_load(open(token_cfg))
    doc["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"  # nothing listens on the discard port
    broken = tmp_path / "broken.kubeconfig"
    broken.write_text(yaml.safe_dump(doc))
    save_cluster_block(prefect_api, f"{block}-broken"[:60], str(broken))
    before = read(kube, "Service", namespace, SERVICE)["metadata"]["resourceVersion"]
    failed = prefect_ops.run("blue-green", {"spec": _spec(namespace), "cluster_config": f"{block}-broken"[:60]})
    assert prefect_ops.wait_state(failed, {"FAILED"}, 240) == "FAILED"
    assert read(kube, "Service", namespace, SERVICE)["metadata"]["resourceVersion"] == before
    prefect_ops.logs_with(run, "released: Service")
    record = record_of(prefect_api, run)
    for part in ("flow_run", "task_runs", "logs", "artifacts", "events"):
        assert not leaks(getattr(record, part), needles_of_token(token)), part


def test_a_run_the_worker_cannot_run_is_crashed_naming_why(prefect_ops):
    """A deployment on a greenlight pool whose entrypoint is not one of greenlight's flows: the worker runs no
    foreign code; the run is Crashed with the reason, and the worker goes on serving."""
    name = prefect_ops.copy_to_pool("blue-green", "greenlight", entrypoint="my_flows.py:etl", name="foreign-flow")
    run = prefect_ops.run(name, {"spec": {"namespace": "default", "service": "none", "image": "app:1"}})
    assert prefect_ops.wait_state(run, {"CRASHED"}, 60) == "CRASHED"
    message = prefect_ops.flow_run(run)["state"]["message"]
    assert "my_flows.py:etl" in message and "not one of greenlight's flows" in message, message
