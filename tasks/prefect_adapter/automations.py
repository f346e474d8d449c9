"""`greenlight webhook --url URL [--on rolled-back] [--on failed]`: one Prefect automation that POSTs to a webhook
whenever a release event of that kind is emitted (Slack, a pager, a chat bridge, your own service).

It creates (or replaces, by name) a Webhook block holding the URL and an automation
`trigger: greenlight.release.<kind> about any greenlight.service.*` → `action: call-webhook` with a JSON body
rendered from the event. The same can be clicked together in the UI (Automations → New); this keeps it in code.

`--header-secret HEADER=BLOCK` sends HEADER with the value of a Prefect Secret block (an `Authorization` for the
receiver). Prefect's CallWebhook action sends the Webhook block's own `headers` and resolves no reference to
another block, so the value is copied into them: a SecretDict, obfuscated whenever the block is read without
`include_secrets`. A rotated Secret needs `greenlight webhook` run again. Every block is loaded before anything is
created: a missing one is BadInput naming it (exit 2, nothing created).
"""

from __future__ import annotations

import json
from typing import Iterable

from prefect.blocks.webhook import Webhook
from prefect.client.orchestration import get_client
from prefect.events.actions import CallWebhook
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.prefect_adapter.secrets import SecretLoader, load_secret, secret_headers
from prefect_greenlight.tasks.record.events import PREFIX, ReleaseEvent
from prefect_greenlight.tasks.spec.hooks import header_name_problem, secret_block_problem

# Rendered by the Prefect server for each matching event (Jinja; `event` is the triggering event).
PAYLOAD_TEMPLATE = json.dumps({
    "text": "greenlight: {{ event.event }} for Service {{ event.resource['greenlight.namespace'] }}/"
            "{{ event.resource['greenlight.service'] }}",
    "event": "{{ event.event }}",
    "namespace": "{{ event.resource['greenlight.namespace'] }}",
    "service": "{{ event.resource['greenlight.service'] }}",
    "release_id": "{{ event.payload.release_id }}",
    "strategy": "{{ event.payload.strategy }}",
    "deployment": "{{ event.payload.deployment }}",
    "reason": "{{ event.payload.reason }}",
    "occurred": "{{ event.occurred }}",
})


def event_kinds(names: Iterable[str]) -> list[ReleaseEvent]:
    kinds = []
    for name in names:
        try:
            kinds.append(ReleaseEvent(name.removeprefix(PREFIX)))
        except ValueError:
            raise BadInput(f"--on {name!r}: not a release event; one of "
                           f"{', '.join(k.value for k in ReleaseEvent)}") from None
    return kinds


def notification_headers(wanted: dict[str, str], load: SecretLoader = load_secret) -> dict[str, str]:
    """The Webhook block's headers: JSON, and each `--header-secret` header with its Secret block's value;
    BadInput naming every bad header name or block (never a value)."""
    problems = [p for h, b in wanted.items() for p in (header_name_problem(h), secret_block_problem(b)) if p]
    if problems:
        raise BadInput([f"--header-secret: {p}" for p in problems])
    try:
        loaded = secret_headers(wanted, load)
    except BadInput as exc:
        raise BadInput([f"--header-secret {p}" for p in exc.problems]) from None
    return {"Content-Type": "application/json", **loaded.values}


def install_webhook(url: str, kinds: list[ReleaseEvent], name: str, header_secrets: dict[str, str] | None = None,
                    load: SecretLoader = load_secret) -> dict:
    """Create or replace the Webhook block and the automation called `name`; returns their ids (and the secret
    headers by block name)."""
    if not url.startswith(("http://", "https://")):
        raise BadInput(f"--url {url!r}: must be an http:// or https:// URL")
    headers = notification_headers(header_secrets or {}, load)
    block_id = Webhook(method="POST", url=url, headers=headers).save(name, overwrite=True)
    automation = AutomationCore(
        name=name, description=f"POST to a webhook on {', '.join(k.value for k in kinds)} (greenlight)",
        trigger=EventTrigger(expect={PREFIX + k.value for k in kinds},
                             match={"prefect.resource.id": "greenlight.service.*"},
                             posture=Posture.Reactive, threshold=1, within=0),
        actions=[CallWebhook(block_document_id=block_id, payload=PAYLOAD_TEMPLATE)])
    with get_client(sync_client=True) as client:
        for existing in client.read_automations_by_name(name):
            client.delete_automation(existing.id)
        automation_id = client.create_automation(automation)
    return {"automation_id": str(automation_id), "block_document_id": str(block_id), "name": name,
            "events": [PREFIX + k.value for k in kinds], "header_secrets": dict(header_secrets or {})}
