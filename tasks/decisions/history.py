"""Release history kept on the Service itself (annotation `greenlight.io/history`): one entry per release that
changed something — released, rolled back, rejected, aborted, failed — newest last, the last MAX_ENTRIES kept.
It lives in the cluster, so `greenlight history` answers after the Prefect database is gone; the Prefect flow
run id in each entry leads back to logs and artifacts while they exist.

Pure: the entry, its annotation value (`append`) and the guarded patch writing it (`history_patch`); the write
itself is tasks/kube/history.py, who ran a release (the Prefect flow run, its pipeline) tasks/record/history.py.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from prefect_greenlight.tasks.decisions.annotations import PREFIX

HISTORY = PREFIX + "history"
MAX_ENTRIES = 20
MAX_BYTES = 64 * 1024  # well inside the 256 KiB every annotation of an object must share


@dataclass(frozen=True)
class HistoryEntry:
    release_id: str
    strategy: str  # blue-green | canary | rollback | abort
    outcome: str  # released | rolled-back | rejected | aborted | cancelled | failed | rollback-incomplete |
    #                cleanup-failed
    from_deployment: str
    to_deployment: str
    images: list[str] = field(default_factory=list)
    started_at: str = ""
    finished_at: str = ""
    seconds: float = 0.0
    approval: str = ""
    reason: str = ""
    flow_run_id: str = ""
    flow_run_name: str = ""
    pipeline_id: str = ""  # set when a pipeline (flows/pipeline.py) ran this release: its id, stage and target
    pipeline_stage: str = ""
    pipeline_target: str = ""
    asked_by: str = ""  # who or what asked, when not a person at a terminal: an alert's event (issue 24)
    override: str = ""  # a release policy's freeze or window overridden, and the reason given

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HistoryEntry":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**{"release_id": "", "strategy": "", "outcome": "", "from_deployment": "",
                       "to_deployment": "", **known})


def read_history(service: dict) -> list[HistoryEntry]:
    raw = ((service.get("metadata") or {}).get("annotations") or {}).get(HISTORY, "")
    try:
        items = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [HistoryEntry.from_dict(i) for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def append(entries: list[HistoryEntry], entry: HistoryEntry, limit: int = MAX_ENTRIES,
           max_bytes: int = MAX_BYTES) -> str:
    """The annotation value after adding `entry`: the newest `limit` entries, fewer if they exceed `max_bytes`;
    an entry with the same release id and strategy is replaced (a re-run after a crash finishes the same
    release)."""
    kept = [e for e in entries if (e.release_id, e.strategy) != (entry.release_id, entry.strategy)] + [entry]
    kept = kept[-limit:]
    while True:
        text = json.dumps([asdict(e) for e in kept], separators=(",", ":"), sort_keys=True)
        if len(text) <= max_bytes or len(kept) == 1:
            return text
        kept = kept[1:]


def history_patch(service: dict, value: str) -> list[dict]:
    """JSON patch writing the history annotation, guarded by the Service's resourceVersion."""
    ops: list[dict] = [{"op": "test", "path": "/metadata/resourceVersion",
                        "value": service["metadata"]["resourceVersion"]}]
    if not (service.get("metadata") or {}).get("annotations"):
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {HISTORY: value}})
    else:
        ops.append({"op": "add", "path": "/metadata/annotations/" + HISTORY.replace("/", "~1"), "value": value})
    return ops


PIPELINE_TAGS = ("greenlight.pipeline:", "greenlight.stage:", "greenlight.target:")


def pipeline_tags(pipeline_id: str, stage: str, target: str) -> list[str]:
    """The tags a pipeline gives each target's child flow run (filterable in the UI); the release reads them back
    into its history entry (`current_pipeline`)."""
    return [f"{prefix}{value}" for prefix, value in zip(PIPELINE_TAGS, (pipeline_id, stage, target))]


def pipeline_of(tags: list[str]) -> dict[str, str]:
    """{pipeline_id, pipeline_stage, pipeline_target} from a flow run's tags ("" for each one missing)."""
    out = {}
    for key, prefix in zip(("pipeline_id", "pipeline_stage", "pipeline_target"), PIPELINE_TAGS):
        out[key] = next((t[len(prefix):] for t in tags if t.startswith(prefix)), "")
    return out
