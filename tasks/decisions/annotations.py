"""The release record kept on the Service itself, as annotations written in the same guarded patch that moves
the selector: which Deployment is live, which was live before (and its selector), which release did it, when.
It is what `greenlight status`, `greenlight rollback` and a re-run after a crash read, and it survives a lost
Prefect database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

PREFIX = "greenlight.io/"
LIVE_DEPLOYMENT = PREFIX + "live-deployment"
LIVE_COLOR = PREFIX + "live-color"
PREVIOUS_DEPLOYMENT = PREFIX + "previous-deployment"
PREVIOUS_COLOR = PREFIX + "previous-color"
PREVIOUS_SELECTOR = PREFIX + "previous-selector"
PREVIOUS_MANIFEST = PREFIX + "previous-manifest"
PREVIOUS_HPA = PREFIX + "previous-hpa"  # the HPA of the Deployment last taken out of service, to re-create
RELEASE_ID = PREFIX + "release-id"
SWITCHED_AT = PREFIX + "switched-at"
SWITCH_KIND = PREFIX + "switch-kind"  # release | rollback: was the live Deployment released, or gone back to?


@dataclass(frozen=True)
class ReleaseRecord:
    live_deployment: str = ""
    live_color: str = ""
    previous_deployment: str = ""
    previous_color: str = ""
    previous_selector: dict[str, str] = field(default_factory=dict)
    previous_manifest: dict | None = None
    previous_hpa: dict | None = None
    release_id: str = ""
    switched_at: str = ""
    switch_kind: str = ""  # "" on Services switched before the annotation existed (see switch_kind_of)


def read_record(service: dict) -> ReleaseRecord:
    ann = service.get("metadata", {}).get("annotations") or {}

    def js(key: str):
        try:
            return json.loads(ann[key]) if ann.get(key) else None
        except ValueError:
            return None

    return ReleaseRecord(
        live_deployment=ann.get(LIVE_DEPLOYMENT, ""), live_color=ann.get(LIVE_COLOR, ""),
        previous_deployment=ann.get(PREVIOUS_DEPLOYMENT, ""), previous_color=ann.get(PREVIOUS_COLOR, ""),
        previous_selector=js(PREVIOUS_SELECTOR) or {}, previous_manifest=js(PREVIOUS_MANIFEST),
        previous_hpa=js(PREVIOUS_HPA),
        release_id=ann.get(RELEASE_ID, ""), switched_at=ann.get(SWITCHED_AT, ""),
        switch_kind=ann.get(SWITCH_KIND, ""))


def switch_annotations(*, live_deployment: str, live_color: str, previous_deployment: str, previous_color: str,
                       previous_selector: dict[str, str], release_id: str, switched_at: str,
                       kind: str = "release") -> dict[str, str]:
    """`kind`: "release" when the live Deployment is a new version, "rollback" when it is one gone back to (a
    rollback, or a failed release's switch back), so a second rollback knows it has nothing to do."""
    return {
        LIVE_DEPLOYMENT: live_deployment, LIVE_COLOR: live_color,
        PREVIOUS_DEPLOYMENT: previous_deployment, PREVIOUS_COLOR: previous_color,
        PREVIOUS_SELECTOR: json.dumps(previous_selector, sort_keys=True, separators=(",", ":")),
        RELEASE_ID: release_id, SWITCHED_AT: switched_at, SWITCH_KIND: kind,
    }
