"""The release spec: a typed pydantic model that is both the flow parameter (the Prefect UI renders it as a form
and rejects invalid input before a run starts) and loadable from YAML (`greenlight blue-green --spec FILE`).

Defaults are resolved here and nowhere else.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator, model_validator,
)

from tasks.errors import BadInput

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# The distribution reference grammar (docker/distribution reference.go), anchored: [domain/]path[:tag][@digest].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)"
# Digest: sha256 is exactly 64 lowercase hex digits (kubelet: InvalidImageName otherwise); other algorithms >= 32.
_DIGEST = r"(?:sha256:[0-9a-f]{64}|(?!sha256:)[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})"
IMAGE_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?(?:@{_DIGEST})?"
)

Name = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS1123_LABEL)]
Seconds = Annotated[float, Field(ge=0, le=86400)]


def valid_image(ref: str) -> bool:
    """The distribution reference grammar, whole string (no surrounding whitespace). Like upstream, a first
    component without a dot or port is a repository path, so "UPPER/case" passes as host UPPER + repo case."""
    return len(ref) <= 4096 and bool(IMAGE_REFERENCE.fullmatch(ref))


def _check_image(ref: str) -> str:
    if not valid_image(ref):
        raise ValueError(f"{ref!r} is not a valid image reference")
    return ref


# The JSON schema carries the grammar too, so the Prefect server (and the UI's form) refuse a bad image before a
# flow run exists.
ImageRef = Annotated[str, AfterValidator(_check_image), WithJsonSchema(
    {"type": "string", "maxLength": 4096, "pattern": f"^{IMAGE_REFERENCE.pattern}$",
     "description": "Image reference: [registry/]repository[:tag][@digest]"})]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SmokeCheck(_Model):
    """An HTTP check run against each green pod through a port-forward before any traffic moves."""

    port: int | None = Field(None, ge=1, le=65535, description="Container port; default: the first declared one.")
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
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from exc
        return v


class ApprovalMode(str, Enum):
    AUTO = "auto"  # no pause
    MANUAL = "manual"  # pause until a human answers; timeout counts as rejection
    TIMED = "timed"  # pause; approve automatically after auto_after_s unless a human rejects first


class Approval(_Model):
    mode: ApprovalMode = Field(ApprovalMode.AUTO, description="auto | manual | timed")
    timeout_s: Seconds = Field(3600, gt=0, description="manual: how long to wait before counting it a rejection.")
    auto_after_s: Seconds = Field(60, gt=0, description="timed: approve after this long unless rejected.")


class CleanupMode(str, Enum):
    KEEP = "keep"
    SCALE_TO_ZERO = "scale-to-zero"
    DELETE = "delete"


class Cleanup(_Model):
    mode: CleanupMode = Field(CleanupMode.SCALE_TO_ZERO, description="What happens to blue once green is verified.")
    delay_s: Seconds = Field(30, description="Wait after the switch before touching blue (open connections drain).")


class PostSwitch(_Model):
    window_s: Seconds = Field(0, description="Keep smoke-checking green through the Service's pods this long.")
    interval_s: float = Field(2.0, gt=0, le=3600, description="Between two rounds of checks.")


class Deadlines(_Model):
    ready_s: Seconds = Field(300, gt=0, description="Green must be fully ready within this.")
    endpoints_s: Seconds = Field(60, gt=0, description="EndpointSlices must show the switch within this.")
    unschedulable_grace_s: Seconds = Field(60, description="How long a pod may stay Unschedulable.")
    image_pull_grace_s: Seconds = Field(15, description="How long a transient image pull error is tolerated.")
    crash_restarts: int = Field(2, ge=1, le=1000, description="Restarts after which a crash loop is fatal.")


class RollbackGreen(str, Enum):
    DELETE = "delete"
    SCALE_TO_ZERO = "scale-to-zero"


class BlueGreenSpec(_Model):
    """One blue-green release of a Service: green from a manifest, or from the live Deployment with a new image."""

    namespace: Name = Field("default", description="Namespace of the Service and both Deployments.")
    service: Name = Field(..., description="The Service whose selector decides which color is live.")
    manifest: dict[str, Any] | None = Field(None, description="Green Deployment manifest (tutorial style).")
    image: ImageRef | None = Field(None, description="New image: green is derived from the live Deployment.")
    container: str | None = Field(None, description="Image mode: container to update (default: the first).")
    color_key: str | None = Field(None, description="Image mode: selector key telling colors apart (detected).")
    green_value: str | None = Field(None, description="Image mode: its value for green (default: blue<->green).")
    smoke: list[SmokeCheck] = Field(default_factory=lambda: [SmokeCheck()], description="Pre-switch checks.")
    preview_service: Name | None = Field(None, description="Create/point this Service at green before the switch.")
    approval: Approval = Field(default_factory=Approval)
    post_switch: PostSwitch = Field(default_factory=PostSwitch)
    cleanup: Cleanup = Field(default_factory=Cleanup)
    on_failure: RollbackGreen = Field(RollbackGreen.DELETE, description="What rollback does to a green it created.")
    deadlines: Deadlines = Field(default_factory=Deadlines)
    release_id: str | None = Field(None, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                                   description="Identifies the release; default: generated.")
    lock_wait_s: Seconds = Field(0, description="Wait this long for another release's lock (0: fail at once).")

    @model_validator(mode="after")
    def _one_source(self) -> "BlueGreenSpec":
        if (self.manifest is None) == (self.image is None):
            raise ValueError("give exactly one of manifest (a green Deployment) or image (derive green from blue)")
        if self.preview_service is not None and self.preview_service == self.service:
            raise ValueError("preview_service must differ from service")
        return self


def load_yaml_documents(path: str | Path) -> list[dict[str, Any]]:
    """All YAML documents of a file, as dicts; a clear BadInput for unreadable or malformed files."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from exc
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise BadInput(f"{path} is not valid YAML: {exc}") from exc
    if not docs:
        raise BadInput(f"{path} holds no YAML document")
    bad = [i for i, d in enumerate(docs) if not isinstance(d, dict)]
    if bad:
        raise BadInput(f"{path}: document {bad[0] + 1} is a {type(docs[bad[0]]).__name__}, not a mapping")
    return docs


def parse_spec(model: type[_Model], data: dict[str, Any], source: str = "spec") -> Any:
    """Validate `data` as `model`; every problem is named by its field path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadInput([f"{source}: {'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()])
