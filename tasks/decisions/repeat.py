"""Is a blue-green re-run the same release again? Pure functions.

A release re-run whose green already serves (the Service's record says greenlight switched it there) is either
unfinished (killed after the switch: resume verification and clean-up) or finished (nothing to do: "already
live"), but only when green still has the pod template the re-run asks for. Green serving with another template
under the same name is refused: the re-run would otherwise pass off the old pods as the new release.

"Same pod template": in manifest mode greenlight records a digest of the manifest's pod template on green when it
applies it, so a field removed from the manifest shows too; without a digest (image mode, where green is the live
Deployment with an image set, or a green applied before the digest existed) every field the desired template sets
must equal the live one's, since the apiserver's defaults only add fields.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from prefect_greenlight.tasks.decisions.annotations import PREFIX, ReleaseRecord
from prefect_greenlight.tasks.decisions.history import HistoryEntry

TEMPLATE_DIGEST = PREFIX + "pod-template-digest"  # on green's metadata.annotations (never in its pod template)
_SHOWN = 3  # differences named in a message


class RepeatAction(str, Enum):
    RELEASE = "release"  # green does not serve yet: the whole release
    RESUME = "resume"  # switched by greenlight, not finished (killed after the switch): verify, clean up
    ALREADY_LIVE = "already-live"  # switched and finished: change nothing
    REFUSE = "refuse"  # green serves with another pod template: bad input


@dataclass(frozen=True)
class TemplateComparison:
    same: bool
    differences: tuple[str, ...] = ()  # field paths, e.g. "spec.containers[0].image: 'a' != 'b'"
    by: str = "fields"  # "digest" when greenlight's recorded digest decided

    def describe(self) -> str:
        shown = "; ".join(self.differences[:_SHOWN])
        more = len(self.differences) - _SHOWN
        return shown + (f" (and {more} more)" if more > 0 else "")


@dataclass(frozen=True)
class RepeatDecision:
    action: RepeatAction
    message: str


def template_digest(template: dict) -> str:
    canonical = json.dumps(template or {}, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _scalar_equal(a: Any, b: Any) -> bool:
    return a == b or (not isinstance(a, (dict, list)) and not isinstance(b, (dict, list)) and str(a) == str(b))


def _differences(desired: Any, live: Any, path: str) -> list[str]:
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return [f"{path}: {desired!r} != {live!r}"]
        out: list[str] = []
        for k in sorted(desired):
            if desired[k] in (None, {}, []) and k not in live:
                continue  # an empty field the apiserver drops
            out += _differences(desired[k], live.get(k), f"{path}.{k}" if path else k)
        return out
    if isinstance(desired, list):
        if not isinstance(live, list) or len(desired) != len(live):
            return [f"{path}: {len(desired)} item(s) != {len(live) if isinstance(live, list) else live!r}"]
        return [d for i, (a, b) in enumerate(zip(desired, live)) for d in _differences(a, b, f"{path}[{i}]")]
    return [] if _scalar_equal(desired, live) else [f"{path}: {live!r} != wanted {desired!r}"]


def same_pod_template(desired_template: dict, live: dict, use_digest: bool = True) -> TemplateComparison:
    """Does the live Deployment run `desired_template`? By greenlight's recorded digest when `live` has one (and
    `use_digest`: not in image mode, whose desired template is the live one's copy), else field by field."""
    recorded = ((live.get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_DIGEST, "") if use_digest else ""
    if recorded:
        wanted = template_digest(desired_template)
        if recorded == wanted:
            return TemplateComparison(True, by="digest")
        diffs = _differences(desired_template, ((live.get("spec") or {}).get("template") or {}), "template")
        removed = f"pod template digest {recorded} != wanted {wanted} (a field was removed or added)"
        return TemplateComparison(False, tuple(diffs) or (removed,), by="digest")
    diffs = _differences(desired_template, ((live.get("spec") or {}).get("template") or {}), "template")
    return TemplateComparison(not diffs, tuple(diffs))


def with_digest(manifest: dict) -> dict:
    """A copy of a green manifest carrying the digest of its pod template (a metadata annotation: no rollout)."""
    out = copy.deepcopy(manifest)
    template = (out.get("spec") or {}).get("template") or {}
    out.setdefault("metadata", {}).setdefault("annotations", {})[TEMPLATE_DIGEST] = template_digest(template)
    return out


def as_green(live: dict) -> dict:
    """The live Deployment as the green manifest of a re-run that found it already serving (image mode)."""
    meta = live.get("metadata") or {}
    keep = {k: meta[k] for k in ("name", "namespace", "labels") if meta.get(k)}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": keep, "spec": copy.deepcopy(live["spec"])}


def release_finished(history: list[HistoryEntry], record: ReleaseRecord) -> bool:
    """Did the release that switched the Service to its recorded live Deployment finish (clean-up included)?
    The newest history entry is then that blue-green release, "released", from the recorded previous."""
    if not history:
        return False
    newest = max(history, key=lambda h: h.finished_at or h.started_at)
    return (newest.strategy == "blue-green" and newest.outcome == "released"
            and newest.to_deployment == record.live_deployment
            and newest.from_deployment == record.previous_deployment)


def decide_repeat(already_live: bool, template: TemplateComparison | None, finished: bool, service: str,
                  green: str, record: ReleaseRecord) -> RepeatDecision:
    """What a blue-green run does, given whether the Service already selects green (ColorPlan.already_live)."""
    if not already_live:
        return RepeatDecision(RepeatAction.RELEASE, f"releasing {green}")
    if template is not None and not template.same:
        return RepeatDecision(RepeatAction.REFUSE, f"Deployment {green} already serves Service {service!r} with "
                              f"another pod template ({template.describe()}): release the change as a Deployment "
                              "of another name, or roll back first")
    if finished:
        return RepeatDecision(RepeatAction.ALREADY_LIVE, f"already live: Deployment {green} serves Service "
                              f"{service} with the same pod template (released by {record.release_id or '?'}"
                              f"{' at ' + record.switched_at if record.switched_at else ''}); nothing changed")
    return RepeatDecision(RepeatAction.RESUME, f"Service {service} already selects {green}: resuming after the "
                          "switch")
