"""Who may release: the allow-list of an event-driven release. The `greenlight.image.pushed` trigger (prefect.yaml)
passes `allowed_services`, a comma-separated list of `namespace/Service` pairs fixed when the deployment was made
(`GREENLIGHT_TRIGGER_ALLOW` at `prefect deploy` time); shell-style wildcards are allowed (`staging/*`). Whoever
emits the event chooses the payload, never the list: a Service outside it is refused before anything is read.

Rule (tested): nothing here imports Prefect or the Kubernetes client."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class AllowVerdict:
    allowed: bool
    reason: str


def parse_allow_list(text: str | None) -> tuple[str, ...] | None:
    """None: no allow-list (a release started by hand). A value the deployment left unrendered (`{{ ... }}`: the
    variable was unset at deploy time) allows nothing."""
    if text is None:
        return None
    if "{{" in text:
        return ()
    return tuple(p.strip() for p in text.split(",") if p.strip())


def check_allowed(namespace: str, service: str, patterns: tuple[str, ...] | None) -> AllowVerdict:
    target = f"{namespace}/{service}"
    if patterns is None:
        return AllowVerdict(True, "no allow-list")
    for pattern in patterns:
        if "/" in pattern and fnmatchcase(target, pattern):
            return AllowVerdict(True, f"{target} allowed by {pattern!r}")
    listed = ", ".join(patterns) if patterns else "nothing (the allow-list is empty)"
    return AllowVerdict(False, f"Service {target} is not in this deployment's allow-list ({listed}); "
                               "nothing was changed")
