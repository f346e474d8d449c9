"""The pipeline spec (issue 16): one new version promoted through ordered stages (staging -> prod-a/prod-b ...),
each stage one or more targets in any cluster of the kubeconfig. Typed like the release specs: the Prefect UI
renders it as the `pipeline` deployment's form, `greenlight pipeline run --spec FILE` loads it from YAML.

Each target becomes an ordinary release spec (`release_spec`: a BlueGreenSpec or CanarySpec, built and validated
here, so a bad option in any target is refused before anything changes in any cluster). Defaults are resolved here
and nowhere else.
"""

from __future__ import annotations

import hashlib
from enum import Enum
from typing import Any

from pydantic import Field, ValidationError, model_validator

from prefect_greenlight.tasks.spec.blue_green import BlueGreenSpec
from prefect_greenlight.tasks.spec.canary import CanarySpec
from prefect_greenlight.tasks.spec.common import ImageRef, Name, Seconds, SpecModel
from prefect_greenlight.tasks.spec.manifest_param import Manifest

PIPELINE_ID = r"^[a-z0-9][a-z0-9-]{0,39}$"


class Strategy(str, Enum):
    BLUE_GREEN = "blue-green"
    CANARY = "canary"


class GateMode(str, Enum):
    AUTO = "auto"  # the next stage starts at once
    MANUAL = "manual"  # the pipeline pauses with a form (the stage's results) until a human answers
    SOAK = "soak"  # the stage's Services are checked repeatedly for soak_s; any failing check fails the stage


class Gate(SpecModel):
    """What must happen between this stage passing and the next one starting (ignored after the last stage)."""

    mode: GateMode = Field(GateMode.AUTO, description="auto | manual | soak")
    timeout_s: Seconds = Field(3600, gt=0, description="manual: no answer within this counts as a rejection.")
    soak_s: Seconds = Field(60, description="soak: how long the stage's Services are checked.")
    interval_s: float = Field(5.0, gt=0, le=3600, description="soak: between two rounds of checks.")
    wait_for_window_s: Seconds = Field(0, description="After the gate's answer, wait (at most this long) until every "
                                       "target of the next stage may release under the release policy (the Prefect "
                                       "Variable greenlight_release_policy: its window opens, its freeze ends), "
                                       "instead of starting releases the policy would refuse. 0: do not wait.")


class FailurePolicy(str, Enum):
    TARGET = "target"  # roll back the failed target only (its release does that itself), stop the pipeline
    STAGE = "stage"  # also roll back the stage's other targets that released
    ATOMIC = "atomic"  # roll back every target released by this pipeline so far, newest stage first


class Target(SpecModel):
    """One Service in one cluster, released with the pipeline's new version."""

    name: Name | None = Field(None, description="Unique in the pipeline; default: the cluster's name (context or "
                              "block; one target per cluster) or <cluster>-<service>.")
    context: str | None = Field(None, min_length=1, description="kubeconfig context of the target's cluster (with "
                                "cluster_block: a context of the block's kubeconfig).")
    cluster_block: Name | None = Field(None, description="Name of a Prefect KubernetesClusterConfig block holding "
                                       "the target cluster's kubeconfig (instead of a context of the pipeline's "
                                       "kubeconfig; prefect-greenlight[blocks]).")
    namespace: Name = Field("default", description="Namespace of the Service.")
    service: Name = Field(..., description="The Service released.")
    strategy: Strategy = Field(Strategy.BLUE_GREEN, description="blue-green | canary")
    image: ImageRef | None = Field(None, description="Image for this target (default: the pipeline's image).")
    manifest: Manifest | None = Field(None, description="This target's green/canary Deployment manifest.")
    release: dict[str, Any] = Field(default_factory=dict, description="Further fields of the release spec "
                                    "(smoke, cleanup, deadlines, stable, steps, ...).")


    @model_validator(mode="after")
    def _one_cluster(self) -> Target:
        if self.context is None and self.cluster_block is None:
            raise ValueError(f"target {self.name or self.service!r}: needs a context or a cluster_block")
        return self

    @property
    def cluster(self) -> str:
        """The target's cluster in names and reports: its context, or its block (and the block's context)."""
        if self.cluster_block is None:
            return str(self.context)
        return self.cluster_block + (f"-{self.context}" if self.context else "")


class Stage(SpecModel):
    name: Name = Field(..., description="Stage name, unique in the pipeline (e.g. staging, prod).")
    targets: list[Target] = Field(..., min_length=1, description="Released in parallel up to max_parallel.")
    max_parallel: int = Field(1, ge=1, le=50, description="Targets released at the same time.")
    gate: Gate = Field(default_factory=Gate, description="Before the next stage.")
    on_failure: FailurePolicy = Field(FailurePolicy.TARGET, description="target | stage | atomic")


class PipelineSpec(SpecModel):
    """Ordered stages of targets, all released with the same new version."""

    pipeline_id: str | None = Field(None, pattern=PIPELINE_ID, description="Identifies the pipeline (its "
                                    "history entries, tags, events); a re-run with the same id resumes. "
                                    "Default: generated.")
    image: ImageRef | None = Field(None, description="The new version, for every target without its own.")
    stages: list[Stage] = Field(..., min_length=1, description="In order; a stage starts once the one before "
                                "passed its gate.")

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSpec:
        problems: list[str] = []
        seen_stages: set[str] = set()
        seen_names: dict[str, str] = {}
        seen_services: dict[tuple[str, str, str], str] = {}
        for stage in self.stages:
            if stage.name in seen_stages:
                problems.append(f"stage {stage.name!r} appears twice")
            seen_stages.add(stage.name)
            for target in stage.targets:
                name = target_name(stage, target)
                if name in seen_names:
                    problems.append(f"target {name!r} appears twice (stages {seen_names[name]} and {stage.name})")
                seen_names[name] = stage.name
                key = (target.cluster, target.namespace, target.service)
                if key in seen_services:
                    where = "context" if target.cluster_block is None else "cluster block"
                    problems.append(f"duplicate target: Service {target.namespace}/{target.service} in {where} "
                                    f"{target.cluster} is already target {seen_services[key]!r}")
                seen_services[key] = name
                if target.image is None and target.manifest is None and self.image is None:
                    problems.append(f"target {name!r}: no image or manifest (and the pipeline has no image)")
                if target.strategy is Strategy.CANARY and stage.on_failure is not FailurePolicy.TARGET:
                    problems.append(f"target {name!r}: a finished canary cannot be rolled back (its old stable is "
                                    f"gone); stage {stage.name} needs on_failure: target")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def target_name(stage: Stage, target: Target) -> str:
    """The target's name: given, or its cluster (context or block) when the stage has one target there."""
    if target.name:
        return target.name
    same_cluster = [t for t in stage.targets if t.cluster == target.cluster]
    return target.cluster if len(same_cluster) == 1 else f"{target.cluster}-{target.service}"[:63].rstrip("-")


def release_id(pipeline_id: str, stage: Stage, target: Target) -> str:
    """Deterministic per (pipeline, stage, target): a re-run of the pipeline re-runs the same release, which the
    release itself recognises (already live, or resume after the switch)."""
    digest = hashlib.sha256(f"{stage.name}/{target_name(stage, target)}".encode()).hexdigest()[:8]
    return f"{pipeline_id}-{digest}"


def release_spec(spec: PipelineSpec, stage: Stage, target: Target, pipeline_id: str) -> BlueGreenSpec | CanarySpec:
    """The target's release spec; ValueError naming the target and field when it is not a valid one."""
    data: dict[str, Any] = {**target.release, "namespace": target.namespace, "service": target.service,
                            "release_id": release_id(pipeline_id, stage, target)}
    if target.manifest is not None:
        data["manifest"] = target.manifest
    else:
        data["image"] = target.image or spec.image
    model = CanarySpec if target.strategy is Strategy.CANARY else BlueGreenSpec
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"stage {stage.name}, target {target_name(stage, target)}: {fields}") from None
