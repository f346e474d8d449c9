"""The canary release spec: same conventions as `prefect_greenlight.tasks.spec.BlueGreenSpec` (frozen pydantic models, documented
fields, defaults resolved here and nowhere else, `parse_spec` turns problems into BadInput -> exit 2).

Canary source, one of:
- `manifest`: a canary Deployment manifest used as written (the second tutorial's v2-canary-deployment.yaml).
  Its selector may overlap the stable Deployment's (both `app: my-app`): greenlight warns and goes on, because
  it attributes pods by owner references, never by labels.
- `image`: derived from the stable Deployment by `prefect_greenlight.tasks.canary.preflight.derive_canary`: a copy of stable with
  name `canary_name` (default `<stable>-canary`), the image of one container replaced, and the label
  `greenlight.io/track: canary` added to BOTH the pod template and the selector, so the two Deployments'
  selectors do not overlap (the Service, selecting only the app label, still selects both).
"""

from __future__ import annotations

from enum import Enum

from pydantic import Field, field_validator, model_validator

from prefect_greenlight.tasks.spec.common import Deadlines, ImageRef, Name, PortRef, Seconds, SpecModel
from prefect_greenlight.tasks.spec.hooks import CANARY_POINTS, Hook, check_hooks
from prefect_greenlight.tasks.spec.manifest_param import Manifest

DEFAULT_STEPS = (10, 30, 50, 100)
TRACK_LABEL = "greenlight.io/track"


class HttpAnalysis(SpecModel):
    """Probe canary pods and as many stable pods through port-forward; compare with thresholds and stable."""

    path: str = Field("/", pattern=r"^/", description="Request path.")
    port: PortRef | None = Field(None, description="Container port, number or name; default: the Service port's "
                                 "targetPort, resolved on each pod.")
    service_port: PortRef | None = Field(None, description="Service port (number or name) whose targetPort is "
                                         "probed; default: the Service's first port.")
    requests_per_pod: int = Field(5, ge=1, le=1000, description="Requests sent to each probed pod.")
    max_pods: int = Field(3, ge=1, le=100, description="Pods probed per version (the first N ready, by name).")
    timeout_s: float = Field(5.0, gt=0, le=300, description="Timeout of one request.")
    min_success_rate: float = Field(0.95, ge=0, le=1, description="Share of non-5xx answers the canary needs.")
    max_success_drop: float = Field(0.05, ge=0, le=1, description="How far below stable's rate the canary may be.")
    percentile: float = Field(95, gt=0, le=100, description="Latency percentile compared.")
    max_latency_ms: float = Field(1000, gt=0, description="Canary's latency percentile must not exceed this.")
    max_latency_ratio: float = Field(3.0, ge=1, description="...nor this many times stable's (above the floor).")
    latency_floor_ms: float = Field(200, ge=0, description="Latencies below this are never compared with stable.")


class Comparison(str, Enum):
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


class PrometheusAnalysis(SpecModel):
    """One instant query; `{canary}`, `{stable}`, `{namespace}` in the query are replaced by the names."""

    url: str = Field(..., pattern=r"^https?://", description="Prometheus base URL.")
    query: str = Field(..., min_length=1, description="PromQL returning one scalar or one-sample vector.")
    condition: Comparison = Field(Comparison.LE, description="The value must be <condition> threshold.")
    threshold: float = Field(..., description="Threshold the value is compared with.")
    timeout_s: float = Field(10.0, gt=0, le=300)


class Analysis(SpecModel):
    http: HttpAnalysis | None = Field(default_factory=HttpAnalysis, description="None: no HTTP probes.")
    prometheus: list[PrometheusAnalysis] = Field(default_factory=list)
    failure_limit: int = Field(0, ge=0, le=100, description="Failed analyses tolerated; one more aborts.")
    inconclusive_timeout_s: Seconds = Field(3600, gt=0, description="Wait for a human after an inconclusive one.")


class StableCleanup(str, Enum):
    DELETE = "delete"  # the tutorial: `kubectl delete deployment my-app-v1`
    SCALE_TO_ZERO = "scale-to-zero"


class CanarySpec(SpecModel):
    """One canary release: traffic moved by replica counts under a Service selecting both versions."""

    namespace: Name = Field("default", description="Namespace of the Service and both Deployments.")
    service: Name = Field(..., description="Service selecting both versions (e.g. only `app: my-app`).")
    stable: Name = Field(..., description="The Deployment serving now.")
    manifest: Manifest | None = Field(None, description="Canary Deployment manifest (tutorial style); a large "
                                      "one travels packed (tasks/spec/manifest_param.py).")
    image: ImageRef | None = Field(None, description="New image: the canary is derived from stable.")
    container: str | None = Field(None, description="Image mode: container to update (default: the first).")
    canary_name: Name | None = Field(None, description="Image mode: canary name (default: <stable>-canary).")
    total: int | None = Field(None, ge=1, le=10000, description="Pods of both versions; default: stable's replicas.")
    steps: list[int] = Field(list(DEFAULT_STEPS), description="Canary percentages, increasing, last 100.")
    pause_s: Seconds = Field(0, description="Pause after each step but the last (promote/abort may end it early).")
    approve_steps: list[int] = Field(default_factory=list, description="Steps after which a human must approve.")
    approval_timeout_s: Seconds = Field(3600, gt=0, description="No answer within this counts as a rejection.")
    analysis: Analysis = Field(default_factory=Analysis)
    cleanup: StableCleanup = Field(StableCleanup.DELETE, description="What happens to the old stable at 100 %.")
    deadlines: Deadlines = Field(default_factory=Deadlines)
    release_id: str | None = Field(None, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    lock_wait_s: Seconds = Field(0, description="Wait this long for another release's lock (0: fail at once).")
    hooks: list[Hook] = Field(default_factory=list, description="Jobs and webhook gates at pre-release, "
                              "before-first-step, between-steps, after-last-step, on-rollback.")

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("give at least one step")
        bad = [s for s in v if not 1 <= s <= 100]
        if bad:
            raise ValueError(f"steps must be percentages 1..100, got {bad}")
        if any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"steps must be strictly increasing, got {v}")
        if v[-1] != 100:
            raise ValueError(f"the last step must be 100, got {v[-1]}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "CanarySpec":
        check_hooks(self.hooks, CANARY_POINTS, "canary")
        if (self.manifest is None) == (self.image is None):
            raise ValueError("give exactly one of manifest (a canary Deployment) or image (derive it from stable)")
        unknown = sorted(set(self.approve_steps) - set(self.steps))
        if unknown:
            raise ValueError(f"approve_steps {unknown} are not among the steps {self.steps}")
        if self.canary_name is not None and self.canary_name == self.stable:
            raise ValueError("canary_name must differ from stable")
        return self

    @property
    def canary_name_or_default(self) -> str:
        return self.canary_name or f"{self.stable}-canary"[:63].rstrip("-")
