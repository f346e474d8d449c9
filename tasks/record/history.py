"""Who ran a release, for its history entry (tasks/decisions/history.py): the running Prefect flow run and the
pipeline that started it (its tags), read from Prefect's run context.
"""

from __future__ import annotations

from prefect.context import FlowRunContext, TagsContext

from prefect_greenlight.tasks.decisions.history import pipeline_of


def current_run() -> tuple[str, str]:
    """(flow run id, name) of the running Prefect flow, or ("", "") outside one."""
    try:
        ctx = FlowRunContext.get()
        if ctx and ctx.flow_run:
            return str(ctx.flow_run.id), ctx.flow_run.name or ""
    except Exception:  # noqa: BLE001
        pass
    return "", ""


def current_pipeline() -> dict[str, str]:
    """The running flow's pipeline tags (see pipeline_of); all "" outside a pipeline."""
    try:
        ctx = FlowRunContext.get()
        tags = list(ctx.flow_run.tags) if ctx and ctx.flow_run else []
        return pipeline_of(tags + sorted(TagsContext.get().current_tags))
    except Exception:  # noqa: BLE001
        return pipeline_of([])
