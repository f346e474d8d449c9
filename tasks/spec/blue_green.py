"""The blue-green release spec: a typed pydantic model that is both the flow parameter (the Prefect UI renders it
as a form and rejects invalid input before a run starts) and loadable from YAML (`greenlight blue-green --spec
FILE`).

Defaults are resolved here and nowhere else.
"""

from __future__ import annotations

import re
from enum import Enum

from pydantic import Field, field_validator, model_validator

from prefect_greenlight.tasks.spec.common import Deadlines, ImageRef, Name, PortRef, Seconds, SpecModel
from prefect_greenlight.tasks.spec.gateway import BlueGreenTraffic, SwitchRoute, check_gateway_pairing
from prefect_greenlight.tasks.spec.hooks import BLUE_GREEN_POINTS, Hook, check_hooks
from prefect_greenlight.tasks.spec.manifest_param import Manifest


class SmokeCheck(SpecModel):
    """An HTTP check run against each green pod through a port-forward before any traffic moves."""

    port: PortRef | None = Field(None, description="Container port, number or name; default: the Service port's "
                                 "targetPort, resolved on each pod.")
    service_port: PortRef | None = Field(None, description="Service port (number or name) whose targetPort is "
                                         "checked; default: the Service's first port.")
    path: str = Field("/", pattern=r"^/", description="Request path.")
    expect_status: int = Field(200, ge=100, le=599, description="Expected HTTP status.")
    body_contains: str | None = Field(None, description="Text the body must contain.")
    body_regex: str | None = Field(None, description="Regular expression the body must match.")
    max_latency_ms: float | None = Field(None, gt=0, description="Slowest acceptable answer.")
    attempts: int = Field(3, ge=1, le=100, description="Tries per pod before it counts as failed.")
    interval_s: Seconds = Field(1.0, description="Pause between tries.")
    timeout_s: float = Field(5.0, gt=0, le=300, description="Timeout of one request.")
    pods: int | None = Field(None, ge=1, description="How many green pods to check; default: all.")

    @field_validator("body_regex")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except (re.error, OverflowError, RecursionError) as exc:  # "a{9999999999}", "(" * 5000
                raise ValueError(f"invalid regular expression: {str(exc)[:200]}") from None
        return v


class ApprovalMode(str, Enum):
    AUTO = "auto"  # no pause
    MANUAL = "manual"  # pause until a human answers; timeout counts as rejection
    TIMED = "timed"  # pause; approve automatically after auto_after_s unless a human rejects first


class Approval(SpecModel):
    mode: ApprovalMode = Field(ApprovalMode.AUTO, description="auto | manual | timed")
    timeout_s: Seconds = Field(3600, gt=0, description="manual: how long to wait before counting it a rejection.")
    auto_after_s: Seconds = Field(60, gt=0, description="timed: approve after this long unless rejected.")


class CleanupMode(str, Enum):
    KEEP = "keep"
    SCALE_TO_ZERO = "scale-to-zero"
    DELETE = "delete"


class Cleanup(SpecModel):
    mode: CleanupMode = Field(CleanupMode.SCALE_TO_ZERO, description="What happens to blue once green is verified.")
    delay_s: Seconds = Field(30, description="Wait after the switch before touching blue (open connections drain).")


class PostSwitch(SpecModel):
    window_s: Seconds = Field(0, description="Keep smoke-checking green through the Service's pods this long.")
    interval_s: float = Field(2.0, gt=0, le=3600, description="Between two rounds of checks.")


class RollbackGreen(str, Enum):
    DELETE = "delete"
    SCALE_TO_ZERO = "scale-to-zero"


class BlueGreenSpec(SpecModel):
    """One blue-green release of a Service: green from a manifest, or from the live Deployment with a new image."""

    namespace: Name = Field("default", description="Namespace of the Service and both Deployments.")
    service: Name = Field(..., description="The Service whose selector decides which color is live.")
    manifest: Manifest | None = Field(None, description="Green Deployment manifest (tutorial style); a large "
                                      "one travels packed (tasks/spec/manifest_param.py).")
    image: ImageRef | None = Field(None, description="New image: green is derived from the live Deployment.")
    container: str | None = Field(None, description="Image mode: container to update (default: the first).")
    color_key: str | None = Field(None, description="Image mode: selector key telling colors apart (detected).")
    green_value: str | None = Field(None, description="Image mode: its value for green (default: blue<->green).")
    smoke: list[SmokeCheck] = Field(default_factory=lambda: [SmokeCheck()], description="Pre-switch checks.")
    preview_service: Name | None = Field(None, description="Create/point this Service at green before the switch.")
    approval: Approval = Field(default_factory=Approval, description="Whether a human (or a timer) approves the "
                               "switch; default: no pause.")
    post_switch: PostSwitch = Field(default_factory=PostSwitch, description="Checks after the switch; default: "
                                    "none.")
    cleanup: Cleanup = Field(default_factory=Cleanup, description="What happens to blue, and when.")
    rollback_window_s: Seconds = Field(0, description="After the switch (and the scale-down delay's checks), "
                                       "keep blue scaled and ready this long, without traffic and its HPA held: "
                                       "a rollback inside the window is a selector switch only. Its clean-up "
                                       "(cleanup.mode) is then a Prefect flow run scheduled for the window's end "
                                       "(deployment blue-green-window-cleanup/window-cleanup). 0: no window.")
    on_failure: RollbackGreen = Field(RollbackGreen.DELETE, description="What rollback does to a green it created.")
    deadlines: Deadlines = Field(default_factory=Deadlines, description="How long each wait may take.")
    release_id: str | None = Field(None, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                                   description="Identifies the release; default: generated.")
    lock_wait_s: Seconds = Field(0, description="Wait this long for another release's lock (0: fail at once).")
    hooks: list[Hook] = Field(default_factory=list, description="Jobs and webhook gates at pre-release, "
                              "pre-switch, post-switch, on-rollback.")
    traffic: BlueGreenTraffic = Field(BlueGreenTraffic.SELECTOR, description="How the switch moves traffic: "
                                      "`selector` (the Service's selector, blue -> green) or `gateway` (the "
                                      "`gateway` block's HTTPRoute: its backendRef moves to green's Service, "
                                      "then the Service's selector, then the route back to the Service).")
    gateway: SwitchRoute | None = Field(None, description="With `traffic: gateway`: the HTTPRoute, its rule and "
                                        "green's Service.")

    @model_validator(mode="after")
    def _one_source(self) -> "BlueGreenSpec":
        check_hooks(self.hooks, BLUE_GREEN_POINTS, "blue-green")
        if (self.manifest is None) == (self.image is None):
            raise ValueError("give exactly one of manifest (a green Deployment) or image (derive green from blue)")
        if 0 < self.rollback_window_s < self.cleanup.delay_s:
            raise ValueError(f"rollback_window_s ({self.rollback_window_s:g}) must be 0 or at least cleanup.delay_s "
                             f"({self.cleanup.delay_s:g}): blue is never taken out of service before the delay")
        if self.preview_service is not None and self.preview_service == self.service:
            raise ValueError("preview_service must differ from service")
        self._check_traffic()
        return self

    def _check_traffic(self) -> None:
        gateway = self.traffic is BlueGreenTraffic.GATEWAY
        check_gateway_pairing(gateway, self.gateway, "selector, moves the Service's selector")
        if gateway and self.green_service in (self.service, self.preview_service):
            raise ValueError(f"gateway.green_service {self.green_service!r} must differ from service and "
                             "preview_service")

    @property
    def green_service(self) -> str | None:
        """`traffic: gateway`: green's Service (the `gateway` block's, default `<service>-next`)."""
        if self.gateway is None:
            return None
        return self.gateway.green_service or f"{self.service[:58]}-next"
