"""Everything the session's Prefect server recorded about some flow runs, as raw JSON text, for tests that must
prove something is NOT in it (credentials): the flow runs themselves (parameters, state messages), their task runs
(inputs, states), every log line, every artifact, and the events that name them. Talks HTTP to the server (an
in-process Prefect client would use the settings captured at import)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from tests.e2e.prefect_ops import api_call


@dataclass(frozen=True)
class RunRecord:
    """What Prefect holds about one flow run, each part as its JSON text."""

    flow_run: str
    task_runs: str
    logs: str
    artifacts: str
    events: str
    log_count: int
    artifact_count: int
    event_count: int

    def everything(self) -> str:
        return "\n".join((self.flow_run, self.task_runs, self.logs, self.artifacts, self.events))


def _post(api: str, path: str, body: dict) -> list | dict:
    resp = api_call("POST", f"{api}{path}", json=body)
    resp.raise_for_status()
    return resp.json()


def flow_runs_of(api: str, flow_name: str, namespace: str) -> list[dict]:
    """Flow runs of `flow_name` whose spec parameter names `namespace`, newest first."""
    runs = _post(api, "/flow_runs/filter", {"flows": {"name": {"any_": [flow_name]}}, "sort": "START_TIME_DESC",
                                            "limit": 200})
    return [r for r in runs if ((r.get("parameters") or {}).get("spec") or {}).get("namespace") == namespace]


def _paged(api: str, path: str, body: dict, page: int = 200) -> list:
    out: list = []
    while True:
        batch = _post(api, path, {**body, "limit": page, "offset": len(out)})
        out += batch
        if len(batch) < page:
            return out


def _events(api: str, event_filter: dict) -> list[dict]:
    """Every matching event (the server pages them 50 at a time)."""
    page = _post(api, "/events/filter", {"filter": event_filter, "limit": 50})
    events = list(page["events"])
    while page.get("next_page"):
        resp = api_call("GET", page["next_page"])
        resp.raise_for_status()
        page = resp.json()
        events += page["events"]
    return events


def events_about(api: str, resource_id: str) -> list[dict]:
    """Every event naming `resource_id` (as its resource or a related one), oldest first."""
    return _events(api, {"any_resource": {"id": [resource_id]}, "order": "ASC"})


def record_of(api: str, run_id: str) -> RunRecord:
    flow_run = api_call("GET", f"{api}/flow_runs/{run_id}")
    flow_run.raise_for_status()
    task_runs = _paged(api, "/task_runs/filter", {"flow_runs": {"id": {"any_": [run_id]}}})
    logs = _paged(api, "/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC"})
    artifacts = _paged(api, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}})
    events = events_about(api, f"prefect.flow-run.{run_id}")
    return RunRecord(flow_run.text, json.dumps(task_runs), json.dumps(logs), json.dumps(artifacts),
                     json.dumps(events), len(logs), len(artifacts), len(events))
