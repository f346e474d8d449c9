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
from prefect_greenlight.tasks.spec.gateway import (
    CanaryScale,
    GatewayRoute,
    RouteMatch,
    TrafficMode,
    check_gateway_pairing,
)
from prefect_greenlight.tasks.spec.hooks import CANARY_POINTS, Hook, check_hooks
from prefect_greenlight.tasks.spec.judge import JudgeSpec
from prefect_greenlight.tasks.spec.manifest_param import Manifest

DEFAULT_STEPS = (10, 30, 50, 100)
TRACK_LABEL = "greenlight.io/track"
STEP_KINDS = ("set_weight", "pause", "analysis", "judge", "set_canary_scale", "match")
GATEWAY_KINDS = ("set_canary_scale", "match")  # step kinds only `traffic: gateway` has


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
    timeout_s: float = Field(10.0, gt=0, le=300, description="Timeout of one query.")


class AnalysisWindow(SpecModel):
    """How long one analysis watches the canary: `count` rounds of every provider, `interval_s` apart (Argo
    Rollouts' interval and count; Flagger's interval x iterations). The defaults, 3 rounds 5 s apart, look at a
    pod for at least 10 s: one that turns bad 8 s after it starts is caught before traffic moves on."""

    interval_s: float = Field(5.0, gt=0, le=3600, description="Seconds between two rounds of probes and queries.")
    count: int = Field(3, ge=1, le=1000, description="Rounds per analysis; the first Failed round ends it.")

    @property
    def window_s(self) -> float:
        return self.interval_s * (self.count - 1)

    def describe(self) -> str:
        if self.count == 1:
            return "1 round"
        return f"{self.count} rounds {self.interval_s:g} s apart (a {self.window_s:g} s window)"


class Analysis(AnalysisWindow):
    http: HttpAnalysis | None = Field(default_factory=HttpAnalysis, description="None: no HTTP probes.")
    prometheus: list[PrometheusAnalysis] = Field(default_factory=list, description="Prometheus queries, each "
                                                 "compared with its threshold.")
    failure_limit: int = Field(0, ge=0, le=100, description="Failed analyses tolerated; one more aborts.")
    inconclusive_timeout_s: Seconds = Field(3600, gt=0, description="Wait for a human after an inconclusive one.")


class PauseFor(SpecModel):
    """A pause in the step list: for `duration_s` (then it goes on by itself; `promote` ends it early), or, with
    no duration, until a human approves (no answer within `approval_timeout_s` aborts)."""

    duration_s: Seconds | None = Field(None, gt=0, description="Seconds to wait; none: until approved.")

    @property
    def kind(self) -> str:
        return "approval" if self.duration_s is None else "timed"


class JudgeWindow(SpecModel):
    """A `judge` step's own window (the spec's `judge` settings where it sets none)."""

    interval_s: float | None = Field(None, gt=0, le=3600, description="Seconds between two rounds of samples.")
    count: int | None = Field(None, ge=1, le=1000, description="Rounds of samples.")


class CanaryStep(SpecModel):
    """One entry of a written step list (Argo Rollouts' `steps:`): exactly one of `set_weight`, `pause`,
    `analysis`, `judge`, and with `traffic: gateway` also `set_canary_scale` and `match`. A bare number in the
    list is a `set_weight`."""

    set_weight: int | None = Field(None, ge=0, le=100, description="Move the canary to this percentage (0 only "
                                   "with `traffic: gateway`).")
    pause: PauseFor | None = Field(None, description="Pause: `{}` until approved, `{duration_s: 60}` timed.")
    analysis: AnalysisWindow | None = Field(None, description="Analyse over a window (the spec's `analysis` "
                                            "providers; `{}` takes its window too).")
    judge: JudgeWindow | None = Field(None, description="Judge the canary against the baseline over a window "
                                      "(needs `baseline: true`; `{}` takes the spec's `judge` window).")
    set_canary_scale: CanaryScale | None = Field(None, description="`traffic: gateway`: set the canary's pods "
                                                 "apart from the weight (`{replicas: N}`, `{share_of_stable: P}`, "
                                                 "`{match_traffic_weight: true}`); holds until the next one.")
    match: list[RouteMatch] | None = Field(None, max_length=16, description="`traffic: gateway`: requests "
                                           "matching all of these headers/cookies go to the canary only (a rule "
                                           "added before the weighted one); holds until the next `match` "
                                           "(`[]` removes it).")

    @model_validator(mode="after")
    def _one_kind(self) -> "CanaryStep":
        given = [k for k in STEP_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a step is exactly one of {', '.join(STEP_KINDS)}; got {given or 'none'}")
        names = [(m.header or "cookie").lower() for m in self.match or []]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"a match step names header(s) {twice} more than once (a cookie is a Cookie header "
                             "match: at most one cookie per step)")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in STEP_KINDS if getattr(self, k) is not None)

    def describe(self) -> str:
        if self.set_weight is not None:
            return f"set_weight {self.set_weight}"
        if self.pause is not None:
            return "pause until approved" if self.pause.duration_s is None else f"pause {self.pause.duration_s:g} s"
        if self.judge is not None:
            return f"judge against the baseline, {self.judge.count} rounds {self.judge.interval_s:g} s apart"
        if self.set_canary_scale is not None:
            return f"set_canary_scale: {self.set_canary_scale.describe()}"
        if self.match is not None:
            return "match: " + (" and ".join(m.describe() for m in self.match) or "none (removed)")
        return f"analysis, {self.analysis.describe()}"


class StableCleanup(str, Enum):
    DELETE = "delete"  # the tutorial: `kubectl delete deployment my-app-v1`
    SCALE_TO_ZERO = "scale-to-zero"


class CanarySpec(SpecModel):
    """One canary release: traffic moved by replica counts under a Service selecting both versions (`traffic:
    replicas`, the default), or by the weights of an HTTPRoute (`traffic: gateway` with a `gateway` block)."""

    namespace: Name = Field("default", description="Namespace of the Service and both Deployments.")
    service: Name = Field(..., description="Service selecting both versions (e.g. only `app: my-app`).")
    stable: Name = Field(..., description="The Deployment serving now.")
    manifest: Manifest | None = Field(None, description="Canary Deployment manifest (tutorial style); a large "
                                      "one travels packed (tasks/spec/manifest_param.py).")
    image: ImageRef | None = Field(None, description="New image: the canary is derived from stable.")
    container: str | None = Field(None, description="Image mode: container to update (default: the first).")
    canary_name: Name | None = Field(None, description="Image mode: canary name (default: <stable>-canary).")
    total: int | None = Field(None, ge=1, le=10000, description="Pods of both versions; default: stable's replicas.")
    steps: list[int | CanaryStep] = Field(list(DEFAULT_STEPS), description=(
        "The canary's steps. Percentages only (`[10, 30, 50, 100]`) are shorthand: each weight, then an analysis "
        "(unless there is none), then a pause (`approve_steps`, `pause_s`). A list with a step object is taken as "
        "written: `set_weight`, `pause`, `analysis` (Argo Rollouts' `steps:`). Weights rise; a last one below 100 "
        "is followed by 100."))
    pause_s: Seconds = Field(0, description="Shorthand: pause after each step but the last (promote/abort may end it "
                             "early).")
    approve_steps: list[int] = Field(default_factory=list, description="Shorthand: steps after which a human must "
                                     "approve.")
    approval_timeout_s: Seconds = Field(3600, gt=0, description="No answer within this counts as a rejection.")
    analysis: Analysis = Field(default_factory=Analysis, description="The providers and thresholds of every "
                               "analysis step.")
    baseline: bool = Field(False, description="Start a baseline beside the canary: stable's pod template, as many "
                           "pods as the canary (at most the rest of the total), moved and removed with it.")
    judge: JudgeSpec | None = Field(None, description="Judge the canary against the baseline (needs baseline): "
                                    "with percentages, a judge step after every weight below 100; written steps "
                                    "say where with `judge` steps.")
    cleanup: StableCleanup = Field(StableCleanup.DELETE, description="What happens to the old stable at 100 %.")
    deadlines: Deadlines = Field(default_factory=Deadlines, description="How long each wait may take.")
    release_id: str | None = Field(None, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                                   description="Identifies the release; default: generated.")
    lock_wait_s: Seconds = Field(0, description="Wait this long for another release's lock (0: fail at once).")
    hooks: list[Hook] = Field(default_factory=list, description="Jobs and webhook gates at pre-release, "
                              "before-first-step, between-steps, after-last-step, on-rollback.")
    traffic: TrafficMode = Field(TrafficMode.REPLICAS, description="How traffic moves: `replicas` (the Service "
                                 "selects both versions; the replica ratio is the split) or `gateway` (the "
                                 "`gateway` block's HTTPRoute weights; stable keeps its replicas).")
    gateway: GatewayRoute | None = Field(None, description="With `traffic: gateway`: the HTTPRoute, its rule and "
                                         "the canary Service.")

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list[int | CanaryStep]) -> list[int | CanaryStep]:
        if not v:
            raise ValueError("give at least one step")
        weights = [s if isinstance(s, int) else s.set_weight for s in v]
        weights = [w for w in weights if w is not None]
        bad = [w for w in weights if not 0 <= w <= 100]
        if bad:
            raise ValueError(f"steps must be percentages 0..100, got {bad}")
        if not isinstance(v[0], int) and v[0].set_weight is None:
            raise ValueError("the first step must set a weight (a percentage or `set_weight`)")
        if any(b <= a for a, b in zip(weights, weights[1:])):
            raise ValueError(f"steps must be strictly increasing in weight, got {weights}")
        if all(isinstance(s, int) for s in v) and weights[-1] != 100:
            raise ValueError(f"the last step must be 100, got {weights[-1]}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "CanarySpec":
        check_hooks(self.hooks, CANARY_POINTS, "canary")
        if (self.manifest is None) == (self.image is None):
            raise ValueError("give exactly one of manifest (a canary Deployment) or image (derive it from stable)")
        if self.written and (self.approve_steps or self.pause_s):
            raise ValueError("approve_steps and pause_s are shorthand for a list of percentages; with written "
                             "steps put `pause` steps in the list instead")
        unknown = sorted(set(self.approve_steps) - set(self.weights))
        if unknown:
            raise ValueError(f"approve_steps {unknown} are not among the steps {self.weights}")
        if self.canary_name is not None and self.canary_name == self.stable:
            raise ValueError("canary_name must differ from stable")
        self._check_judge()
        self._check_traffic()
        return self

    def _check_traffic(self) -> None:
        """`traffic: gateway` needs its `gateway` block and nothing replica-only; the gateway step kinds and weight
        0 need `traffic: gateway`."""
        gateway = self.traffic is TrafficMode.GATEWAY
        check_gateway_pairing(gateway, self.gateway, "replicas, moves traffic by replica counts")
        used = sorted({s.kind for s in self.steps if isinstance(s, CanaryStep) and s.kind in GATEWAY_KINDS})
        if used and not gateway:
            raise ValueError(f"step kind(s) {used} need `traffic: gateway`")
        if 0 in self.weights and not gateway:
            raise ValueError(f"steps must be percentages 1..100, got {[w for w in self.weights if w == 0]} (weight 0 "
                             "only with `traffic: gateway`)")
        if gateway and (self.baseline or self.judge is not None):
            raise ValueError("baseline and judge are not supported with traffic: gateway")
        if gateway and self.total is not None:
            raise ValueError("total is for traffic: replicas; with traffic: gateway stable keeps its replicas and "
                             "the canary's pods follow the weight or set_canary_scale")
        if gateway and self.gateway.canary_service == self.service:
            raise ValueError(f"gateway.canary_service must differ from service {self.service!r}")

    @property
    def canary_service(self) -> str:
        """`traffic: gateway`: the canary Service's name (the `gateway` block's, default `<service>-canary`)."""
        given = self.gateway.canary_service if self.gateway else None
        return given or f"{self.service}-canary"[:63].rstrip("-")

    def _check_judge(self) -> None:
        judged = [s for s in self.steps if isinstance(s, CanaryStep) and s.judge is not None]
        if (self.judge is not None or judged) and not self.baseline:
            raise ValueError("the judge compares the canary with a baseline: set `baseline: true`")
        if judged and self.judge is None:
            raise ValueError(f"{len(judged)} judge step(s) but no `judge` settings (give `judge: {{}}` for the "
                             "defaults)")
        weight = 0
        for s in self.step_list():
            weight = s.set_weight or weight
            if s.judge is not None and weight >= 100:
                raise ValueError("a judge step after set_weight 100 has no baseline to compare with (the baseline "
                                 "is gone at 100 %)")

    @property
    def written(self) -> bool:
        """Whether the steps are a written list (any step object), not percentages to expand."""
        return any(isinstance(s, CanaryStep) for s in self.steps)

    @property
    def weights(self) -> list[int]:
        """The traffic steps' percentages, in order, ending at 100."""
        out = [s if isinstance(s, int) else s.set_weight for s in self.step_list()]
        return [w for w in out if w is not None]

    def step_list(self) -> tuple[CanaryStep, ...]:
        """The steps as written, or the shorthand expanded: each weight, its analysis (when there are providers),
        then its pause (an approval at approve_steps, else `pause_s` after every step but the last). Ends at 100."""
        if self.written:
            out = [CanaryStep(set_weight=s) if isinstance(s, int) else self._resolved(s) for s in self.steps]
            last = [s.set_weight for s in out if s.set_weight is not None][-1]
            return tuple(out + ([CanaryStep(set_weight=100)] if last != 100 else []))
        analysed = bool(self.analysis.http or self.analysis.prometheus)
        out = []
        for p in self.steps:
            out.append(CanaryStep(set_weight=p))
            out += [self._resolved(CanaryStep(analysis=AnalysisWindow()))] if analysed else []
            out += [self._resolved(CanaryStep(judge=JudgeWindow()))] if self.judge is not None and p < 100 else []
            if p in self.approve_steps:
                out.append(CanaryStep(pause=PauseFor()))
            elif self.pause_s > 0 and p != 100:
                out.append(CanaryStep(pause=PauseFor(duration_s=self.pause_s)))
        return tuple(out)

    def _resolved(self, step: CanaryStep) -> CanaryStep:
        """An analysis or judge step with the spec's window wherever the step does not set its own."""
        if step.judge is not None and self.judge is not None:
            return CanaryStep(judge=JudgeWindow(interval_s=step.judge.interval_s or self.judge.interval_s,
                                                count=step.judge.count or self.judge.count))
        if step.analysis is None:
            return step
        given = step.analysis.model_dump(include=step.analysis.model_fields_set)
        window = AnalysisWindow(**{"interval_s": self.analysis.interval_s, "count": self.analysis.count, **given})
        return CanaryStep(analysis=window)

    @property
    def canary_name_or_default(self) -> str:
        return self.canary_name or f"{self.stable}-canary"[:63].rstrip("-")

    @property
    def baseline_name(self) -> str:
        return baseline_name(self.stable)


def baseline_name(stable: str) -> str:
    """The baseline Deployment of a canary of `stable` (one per stable, so a re-run finds the same one)."""
    return f"{stable}-baseline"[:63].rstrip("-")
