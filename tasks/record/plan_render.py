"""The plan (`--dry-run`) as people read it: numbered text for the terminal, markdown for the Prefect artifact.
`--json` prints `Plan.as_dict()` (tasks/decisions/plan.py) itself; all three show the same steps.
"""

from __future__ import annotations

import json

from prefect_greenlight.tasks.decisions.plan import NO_UNDO, Plan, PlanStep
from prefect_greenlight.tasks.record.report import artifact_key, markdown_artifact


def _step_lines(number: int, step: PlanStep) -> list[str]:
    lines = [f"{number:>2}. {step.name}" + (f"  [{step.touches}]" if step.touches else ""),
             f"      {step.change}"]
    lines += [f"        - {d}" for d in step.details]
    if step.when:
        lines.append(f"      when: {step.when}")
    if step.gate:
        lines.append(f"      gate: {step.gate}")
    if step.undo != NO_UNDO:
        lines.append(f"      undo: {step.undo}")
    return lines


def _fact_lines(plan: Plan) -> list[str]:
    f = plan.facts
    lines = ["preflight facts:",
             f"  permissions checked ({len(f.permissions)}, all granted): {', '.join(f.permissions) or '-'}",
             f"  lease greenlight-{plan.service}: {f.lease}",
             f"  HorizontalPodAutoscalers in {plan.namespace}: {', '.join(f.autoscalers) or 'none'}",
             "  hooks:" + ("" if f.hooks else " none")]
    lines += [f"    - {h}" for h in f.hooks]
    lines += [f"  release policy: {f.policy}"] if f.policy else []
    lines += [f"  warning: {w}" for w in f.warnings] or ["  warnings: none"]
    return lines


def plan_text(plan: Plan) -> str:
    head = [f"plan ({plan.strategy}, {len(plan.steps)} steps): {plan.summary}; nothing changed by this dry run"]
    body = [line for i, s in enumerate(plan.steps, 1) for line in _step_lines(i, s)]
    return "\n".join(head + body + _fact_lines(plan))


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def plan_markdown(plan: Plan) -> str:
    f = plan.facts
    rows = ["| # | step | touches | change | gate | undo if a later step fails |", "|---:|---|---|---|---|---|"]
    rows += [f"| {i} | `{s.name}` | {_md_cell(s.touches) or '-'} | {_md_cell(s.change)}"
             f"{' (' + _md_cell(s.when) + ')' if s.when else ''} | {_md_cell(s.gate) or '-'} | "
             f"{'-' if s.undo == NO_UNDO else _md_cell(s.undo)} |" for i, s in enumerate(plan.steps, 1)]
    details = [f"**{i}. {s.name}**\n\n" + "\n".join(f"- `{_md_cell(d)}`" for d in s.details)
               for i, s in enumerate(plan.steps, 1) if s.details]
    patches = [f"**{s.name}: JSON patch**\n\n```json\n{json.dumps(list(s.patch), indent=1)}\n```"
               for s in plan.steps if s.patch]
    facts = [f"- permissions checked ({len(f.permissions)}, all granted): {', '.join(f.permissions) or '-'}",
             f"- Lease `greenlight-{plan.service}`: {f.lease}",
             f"- HorizontalPodAutoscalers: {', '.join(f.autoscalers) or 'none'}",
             f"- hooks: {'; '.join(_md_cell(h) for h in f.hooks) or 'none'}",
             *([f"- release policy: {_md_cell(f.policy)}"] if f.policy else []),
             *[f"- warning: {w}" for w in f.warnings]]
    return "\n\n".join([f"## Plan: {plan.strategy} of Service `{plan.service}` in `{plan.namespace}`",
                        f"{plan.summary}. Nothing was changed to make this plan.", "\n".join(rows),
                        *details, *patches, "### Preflight facts\n\n" + "\n".join(facts)])


def publish_plan(plan: Plan, release_id: str) -> str:
    """The plan as a markdown artifact of the run (skipped outside a flow run); returns its key."""
    key = artifact_key("plan", plan.service, release_id)
    markdown_artifact(key, plan_markdown(plan), f"plan of {plan.strategy} release {release_id}: "
                                                f"{len(plan.steps)} steps")
    return key


def pipeline_plan_text(plan: Plan) -> str:
    """A pipeline's plan: its stages and gates (each target's own plan is its release's dry run, printed apart)."""
    head = [f"plan ({plan.strategy} {plan.service}, {len(plan.steps)} steps): {plan.summary}; nothing changed by "
            "this dry run"]
    body = [line for i, s in enumerate(plan.steps, 1) for line in _step_lines(i, s)]
    return "\n".join(head + body + [f"warning: {w}" for w in plan.facts.warnings])
