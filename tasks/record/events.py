"""Prefect events a release emits, so automations can react (post to a webhook on `rolled-back`, page someone on
`failed`, start the next stage on `completed`):

    greenlight.release.started | paused | switched | rolled-back | completed | failed | refused

(`refused`: an event-driven release named a Service outside its deployment's allow-list; nothing was changed.)

The primary resource is the Service (`greenlight.service.<namespace>.<name>`, labelled with namespace and name);
Prefect attaches the flow run, flow, deployment and tags as related resources. The payload carries what a
webhook needs without a second lookup. An event that cannot be sent is logged, never a release failure.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any

from prefect.events import emit_event

log = logging.getLogger(__name__)
PREFIX = "greenlight.release."
IMAGE_PUSHED = "greenlight.image.pushed"


class ReleaseEvent(str, Enum):
    STARTED = "started"
    PAUSED = "paused"
    SWITCHED = "switched"
    ROLLED_BACK = "rolled-back"
    COMPLETED = "completed"
    FAILED = "failed"
    REFUSED = "refused"


def service_resource(namespace: str, service: str) -> dict[str, str]:
    return {"prefect.resource.id": f"greenlight.service.{namespace}.{service}",
            "prefect.resource.name": service, "greenlight.namespace": namespace, "greenlight.service": service}


def event_name(kind: ReleaseEvent) -> str:
    return PREFIX + kind.value


def emit(kind: ReleaseEvent, namespace: str, service: str, **payload: Any) -> None:
    """Emit one release event about a Service (a no-op where Prefect cannot send events)."""
    try:
        emit_event(event=event_name(kind), resource=service_resource(namespace, service),
                   payload={k: v for k, v in payload.items() if v is not None})
    except Exception as exc:  # noqa: BLE001 - an event is a notification, not a release step
        log.warning("could not emit %s for %s/%s: %s", event_name(kind), namespace, service, exc)


PIPELINE_PREFIX = "greenlight.pipeline."


class PipelineEvent(str, Enum):
    STARTED = "started"
    STAGE_PASSED = "stage-passed"
    PAUSED = "paused"
    FAILED = "failed"
    COMPLETED = "completed"


def pipeline_resource(pipeline_id: str) -> dict[str, str]:
    return {"prefect.resource.id": f"greenlight.pipeline.{pipeline_id}", "prefect.resource.name": pipeline_id,
            "greenlight.pipeline": pipeline_id}


def emit_pipeline(kind: PipelineEvent, pipeline_id: str, **payload: Any) -> None:
    """Emit one pipeline event (`greenlight.pipeline.<kind>` about `greenlight.pipeline.<id>`); never fails."""
    try:
        emit_event(event=PIPELINE_PREFIX + kind.value, resource=pipeline_resource(pipeline_id),
                   payload={"pipeline_id": pipeline_id, **{k: v for k, v in payload.items() if v is not None}})
    except Exception as exc:  # noqa: BLE001 - an event is a notification, not a release step
        log.warning("could not emit %s for pipeline %s: %s", PIPELINE_PREFIX + kind.value, pipeline_id, exc)
