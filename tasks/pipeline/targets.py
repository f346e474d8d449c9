"""A pipeline's reads of its targets' clusters (flows/pipeline.py): one client per cluster (kubeconfig context or
cluster block), the pre-flight of every target before anything changes anywhere, each Service's history and what
it serves now, and the soak gate's checks. Nothing here writes to a cluster.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kubernetes import config

from prefect_greenlight.tasks.bluegreen.preflight import preflight as bluegreen_preflight
from prefect_greenlight.tasks.bluegreen.smoke import check_pod
from prefect_greenlight.tasks.canary.preflight import preflight as canary_preflight
from prefect_greenlight.tasks.decisions.history import HistoryEntry, read_history
from prefect_greenlight.tasks.decisions.smoke import summarize
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.kube.client import Kube, connect, read
from prefect_greenlight.tasks.kube.observe import selected_deployment, serving_pods
from prefect_greenlight.tasks.spec import SmokeCheck
from prefect_greenlight.tasks.spec.pipeline import PipelineSpec, Stage, Strategy, Target, release_spec, target_name


@dataclass(frozen=True)
class PipelineTarget:
    """One target with everything a run needs: its stage, name, cluster client and release spec."""

    stage_index: int
    stage: Stage
    target: Target
    name: str
    kube: Kube
    spec: object  # BlueGreenSpec | CanarySpec

    @property
    def where(self) -> str:
        return f"{self.target.cluster}:{self.target.namespace}/{self.target.service}"


def contexts_of(kubeconfig: str | None) -> set[str]:
    try:
        contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
    except Exception as exc:  # no kubeconfig, unreadable: named in the BadInput
        raise BadInput(f"cannot read the kubeconfig's contexts ({kubeconfig or '$KUBECONFIG'}): {exc}") from exc
    return {c["name"] for c in contexts or []}


def target_credentials(target: Target, kubeconfig: str | None) -> tuple[str | None, str | None, str | None]:
    """(kubeconfig, context, cluster_config) for a target: its block, else the pipeline's kubeconfig."""
    if target.cluster_block is not None:
        return None, target.context, target.cluster_block
    return kubeconfig, target.context, None


def resolve(spec: PipelineSpec, pipeline_id: str, kubeconfig: str | None) -> list[list[PipelineTarget]]:
    """Every target of every stage with its client and release spec; BadInput listing every unknown context and
    invalid release option at once."""
    by_context = [t for stage in spec.stages for t in stage.targets if t.cluster_block is None]
    known = contexts_of(kubeconfig) if by_context else set()  # a pipeline of blocks needs no kubeconfig
    problems: list[str] = []
    clients: dict[str, Kube] = {}
    stages: list[list[PipelineTarget]] = []
    for i, stage in enumerate(spec.stages):
        row = []
        for target in stage.targets:
            name = target_name(stage, target)
            if target.cluster_block is None and target.context not in known:
                problems.append(f"stage {stage.name}, target {name}: unknown kubeconfig context "
                                f"{target.context!r} (known: {', '.join(sorted(known)) or 'none'})")
                continue
            try:
                release = release_spec(spec, stage, target, pipeline_id)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            if target.cluster not in clients:
                clients[target.cluster] = connect(*target_credentials(target, kubeconfig))
            row.append(PipelineTarget(i, stage, target, name, clients[target.cluster], release))
        stages.append(row)
    if problems:
        raise BadInput(problems)
    return stages


def preflight_all(stages: list[list[PipelineTarget]]) -> list[str]:
    """Each target's own release pre-flight (read-only: reads, server-side dry runs, access reviews), all before
    the first change in any cluster. BadInput listing every target that would be refused; else the warnings."""
    problems: list[str] = []
    warnings: list[str] = []
    for t in (t for row in stages for t in row):
        check = canary_preflight if t.target.strategy is Strategy.CANARY else bluegreen_preflight
        try:
            plan = check(t.kube, t.spec, t.spec.release_id)
            warnings += [f"{t.name}: {w}" for w in getattr(plan, "warnings", ())]
        except BadInput as exc:
            problems.append(f"stage {t.stage.name}, target {t.name} ({t.where}): {exc}")
    if problems:
        raise BadInput(problems)
    return warnings


def history_of(t: PipelineTarget) -> list[HistoryEntry]:
    svc = read(t.kube, "Service", t.target.namespace, t.target.service)
    return read_history(svc) if svc else []


def serving_now(t: PipelineTarget) -> str:
    """`<Deployment> (<image>)` the Service selects now, read from the cluster; "?" when it cannot be read."""
    try:
        live = selected_deployment(t.kube, t.target.namespace, t.target.service)
    except Exception:  # noqa: BLE001 - a report cell, not a step
        return "?"
    return "?" if live is None else f"{live[0]} ({live[1]})"


def soak_problems(targets: list[PipelineTarget]) -> dict[str, str]:
    """One round of the soak gate's checks, the post-switch window's model: the pods each Service really routes to
    (its EndpointSlices' ready endpoints) must exist and pass the target's smoke checks through port-forward.
    Returns target name -> what failed."""
    problems = {}
    for t in targets:
        pods, _ = serving_pods(t.kube, t.target.namespace, t.target.service)
        if not pods:
            problems[t.name] = f"Service {t.where} has no ready endpoints"
            continue
        svc = read(t.kube, "Service", t.target.namespace, t.target.service) or {}
        ports = tuple((svc.get("spec") or {}).get("ports") or ())
        checks = getattr(t.spec, "smoke", None) or [SmokeCheck()]
        results = [check_pod(t.kube, pod, check, ports) for check in checks for pod in pods[:check.pods or None]]
        if not all(r.ok for r in results):
            problems[t.name] = f"{t.where}: {summarize(results)}"
    return problems


class SoakFailed(RuntimeError):
    """A soak round failed; `targets` names the targets whose checks failed."""

    def __init__(self, rounds: int, problems: dict[str, str]):
        self.targets = sorted(problems)
        super().__init__(f"soak round {rounds} failed: {'; '.join(problems.values())}")


def soak(targets: list[PipelineTarget], soak_s: float, interval_s: float, say) -> str:
    """Repeat the checks for `soak_s`; SoakFailed at the first round that fails."""
    deadline, rounds = time.monotonic() + soak_s, 0
    while True:
        rounds += 1
        if problems := soak_problems(targets):
            raise SoakFailed(rounds, problems)
        if time.monotonic() + interval_s > deadline:
            break
        time.sleep(interval_s)
    say(f"soak passed: {rounds} round(s) over {soak_s:.0f} s on {len(targets)} Service(s)")
    return f"{rounds} rounds passed"
