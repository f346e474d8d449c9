"""Types and sections both release specs share: Kubernetes names, the image reference grammar, durations, the
frozen base model and the deadlines.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

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


class SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Deadlines(SpecModel):
    ready_s: Seconds = Field(300, gt=0, description="Green must be fully ready within this.")
    endpoints_s: Seconds = Field(60, gt=0, description="EndpointSlices must show the switch within this.")
    unschedulable_grace_s: Seconds = Field(60, description="How long a pod may stay Unschedulable.")
    image_pull_grace_s: Seconds = Field(15, description="How long a transient image pull error is tolerated.")
    crash_restarts: int = Field(2, ge=1, le=1000, description="Restarts after which a crash loop is fatal.")
