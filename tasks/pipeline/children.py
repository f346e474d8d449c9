"""A pipeline's Prefect flow runs: each target's release (or its rollback) as a child flow run, tagged with the
pipeline, stage and target (the release writes them into the Service's history entry), and the tag of the
pipeline's own run. The release flows are given by flows/pipeline.py (tasks never import flows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import tags
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext

from prefect_greenlight.tasks.decisions.history import pipeline_tags
from prefect_greenlight.tasks.pipeline.targets import PipelineTarget, target_credentials
from prefect_greenlight.tasks.record.report import say
from prefect_greenlight.tasks.spec.pipeline import Strategy


@dataclass(frozen=True)
class ChildFlows:
    """The flows a pipeline runs as its children: the two releases and the rollback."""

    blue_green: Any
    canary: Any
    rollback: Any


@dataclass(frozen=True)
class Children:
    """Starts a target's child flow run of pipeline `pipeline_id` with the target's credentials."""

    flows: ChildFlows
    pipeline_id: str
    kubeconfig: str | None

    def release(self, t: PipelineTarget, dry_run: bool = False) -> dict:
        """The target's release (its plan with `dry_run`), a child flow run `<pipeline id>-<target>`."""
        kubeconfig, context, block = target_credentials(t.target, self.kubeconfig)
        release = self.flows.canary if t.target.strategy is Strategy.CANARY else self.flows.blue_green
        with tags(*pipeline_tags(self.pipeline_id, t.stage.name, t.name)):
            return release.with_options(flow_run_name=f"{self.pipeline_id}-{t.name}")(
                spec=t.spec, kubeconfig=kubeconfig, context=context, cluster_config=block, dry_run=dry_run)

    def roll_back(self, t: PipelineTarget) -> dict:
        """The target's rollback (verified), a child flow run `<pipeline id>-<target>-rollback`."""
        kubeconfig, context, block = target_credentials(t.target, self.kubeconfig)
        with tags(*pipeline_tags(self.pipeline_id, t.stage.name, t.name)):
            return self.flows.rollback.with_options(flow_run_name=f"{self.pipeline_id}-{t.name}-rollback")(
                namespace=t.target.namespace, service=t.target.service, cleanup=t.spec.cleanup,
                deadlines=t.spec.deadlines, kubeconfig=kubeconfig, context=context, cluster_config=block)


def tag_own_run(pipeline_id: str) -> None:
    """Tag this flow run `greenlight.pipeline:<id>` (however it was started: CLI, UI, schedule), so `greenlight
    pipeline status ID` finds it and the UI filters by it."""
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    tag = f"greenlight.pipeline:{pipeline_id}"
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(ctx.flow_run.id, tags=sorted({*ctx.flow_run.tags, tag}))
    except Exception as exc:  # noqa: BLE001 - a label, not a step
        say(f"warning: could not tag the pipeline's flow run: {exc}")
