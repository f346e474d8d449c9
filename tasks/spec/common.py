"""Types and sections both release specs share: Kubernetes names, the image reference grammar, durations, the
frozen base model and the deadlines.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

from prefect_greenlight.tasks.spec.image_ref import IMAGE_REFERENCE, ImageRef, valid_image  # noqa: F401 - re-exported

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# The image reference grammar (distribution/reference, ASCII only) lives in tasks/spec/image_ref.py.

Name = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS1123_LABEL)]
# A port as Kubernetes names one: a number, or an IANA_SVC_NAME (at most 15 characters, a letter, no "--").
_PORT_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def _port_ref(value: Any) -> int | str:
    """A port as Kubernetes names one: a number 1-65535, or an IANA_SVC_NAME (at most 15 characters of a-z, 0-9
    and single hyphens, with at least one letter). One error message either way."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 1 <= value <= 65535:
            return value
        raise ValueError(f"port {value} is not between 1 and 65535")
    if isinstance(value, str) and len(value) <= 15 and _PORT_NAME.fullmatch(value) and \
            any("a" <= ch <= "z" for ch in value):
        return value
    raise ValueError(f"{value!r} is neither a port number (1-65535) nor a port name (at most 15 of a-z, 0-9, '-')")


PortRef = Annotated[Any, PlainValidator(_port_ref), WithJsonSchema(
    {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 65535},
               {"type": "string", "maxLength": 15, "pattern": f"^{_PORT_NAME.pattern}$"}],
     "description": "Port number or name"})]
Seconds = Annotated[float, Field(ge=0, le=86400)]


class SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Deadlines(SpecModel):
    ready_s: Seconds = Field(300, gt=0, description="Green must be fully ready within this.")
    endpoints_s: Seconds = Field(60, gt=0, description="EndpointSlices must show the switch within this.")
    unschedulable_grace_s: Seconds = Field(60, description="How long a pod may stay Unschedulable.")
    image_pull_grace_s: Seconds = Field(15, description="How long a transient image pull error is tolerated.")
    crash_restarts: int = Field(2, ge=1, le=1000, description="Restarts after which a crash loop is fatal.")
