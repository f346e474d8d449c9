"""Release windows and freezes at run time: the policy is the Prefect Variable `greenlight_release_policy` (JSON,
editable in the UI's Variables page or with `prefect variable set`), read when each release starts, so a freeze
set now applies to the next run without a redeploy. The decision is pure (tasks/decisions/policy.py); here the
Variable is read and a refusal is made visible: exit 2 / run Failed before anything changed, and a
`greenlight.release.refused` event naming the rule. An override (`--override-freeze REASON`) lets the release
through; the caller records it in the history and the started event. A rollback never comes here."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

from prefect_greenlight.tasks.decisions.policy import POLICY_VARIABLE, PolicyRefusal, check_policy, parse_policy
from prefect_greenlight.tasks.errors import BadInput, PermanentError
from prefect_greenlight.tasks.prefect_adapter.variables import read_variable
from prefect_greenlight.tasks.record.events import ReleaseEvent, emit
from prefect_greenlight.tasks.record.report import say


def check_release_policy(namespace: str, service: str, strategy: str, override: str | None = None,
                         now: datetime | None = None, variable: str = POLICY_VARIABLE) -> str:
    """Refuse (BadInput, with the refused event) a release the policy does not allow now. Returns "" when the
    policy allows it, or the override's record ("freeze year-end overridden: <reason>") when one let it through."""
    try:
        policy = parse_policy(read_variable(variable))
    except ValueError as exc:
        reason = f"the Prefect Variable {variable} is not a valid release policy: {exc}; nothing was changed"
        emit(ReleaseEvent.REFUSED, namespace, service, reason=reason, rule=variable, refusal="invalid-policy",
             strategy=strategy, variable=variable)
        raise BadInput(f"refused: {reason}") from None
    verdict = check_policy(policy, namespace, service, now or datetime.now(timezone.utc), (override or "").strip())
    if verdict.refusal is PolicyRefusal.NONE:
        return ""
    if verdict.allowed:
        note = f"{verdict.refusal.value} {verdict.rule} overridden: {verdict.override}"
        say(f"release policy: {verdict.reason.removesuffix('; nothing was changed')}; {note}")
        return note
    emit(ReleaseEvent.REFUSED, namespace, service, reason=verdict.reason, rule=verdict.rule,
         refusal=verdict.refusal.value, strategy=strategy, variable=variable,
         next_open=verdict.next_open.isoformat() if verdict.next_open else None,
         how="wait, change the policy Variable, or pass --override-freeze REASON (recorded)")
    raise BadInput(f"refused by the release policy ({verdict.refusal.value} {verdict.rule}): {verdict.reason}")


def policy_summary(namespace: str, service: str, override: str | None = None) -> str:
    """What the release policy says of releasing `namespace/service` now, in one line (the dry run's plan facts
    and its printed line); reads the Variable, changes nothing."""
    try:
        policy = parse_policy(read_variable(POLICY_VARIABLE))
    except ValueError as exc:
        return f"the Prefect Variable {POLICY_VARIABLE} is invalid ({exc}): the release would be refused"
    verdict = check_policy(policy, namespace, service, datetime.now(timezone.utc), (override or "").strip())
    if verdict.refusal is PolicyRefusal.NONE:
        return (f"{len(policy.windows)} window(s), {len(policy.freezes)} freeze(s); {namespace}/{service} may "
                "release now")
    return (f"the release would be {'let through (override)' if verdict.allowed else 'refused'}: "
            f"{verdict.reason.removesuffix('; nothing was changed')}")


def policy_gate(namespace: str, service: str, strategy: str, override: str | None, dry_run: bool) -> str:
    """A release flow's first check: a dry run only says what the policy would do (it changes nothing anyway;
    its plan's facts say it too); a release is refused or let through (`check_release_policy`)."""
    if not dry_run:
        return check_release_policy(namespace, service, strategy, override)
    say(f"release policy: {policy_summary(namespace, service, override)}")
    return ""


RECHECK_S = 60.0  # a waiting gate reads the policy again at least this often (it may be changed in the UI)


def wait_until_allowed(targets: list[tuple[str, str]], max_wait_s: float, sleep: Callable[[float], None] = time.sleep,
                       clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> str:
    """A pipeline gate asked to wait for the next window: block until the policy lets every `(namespace, service)`
    release (re-read at least every RECHECK_S), at most `max_wait_s`; PermanentError naming the rule when the wait
    would be longer (or no window opens within the policy's look-ahead)."""
    start = clock()
    while True:
        policy, now = parse_policy(read_variable(POLICY_VARIABLE)), clock()
        blocked = [(f"{ns}/{svc}", v) for ns, svc in targets
                   if not (v := check_policy(policy, ns, svc, now)).allowed]
        waited = (now - start).total_seconds()
        if not blocked:
            return f"release policy: every target may release (waited {waited:.0f} s)"
        opens = [v.next_open for _, v in blocked]
        latest = max(opens) if all(opens) else None
        if latest is None or (latest - start).total_seconds() > max_wait_s:
            rules = ", ".join(f"{target}: {v.refusal.value} {v.rule}" for target, v in blocked)
            raise PermanentError(f"release policy: {len(blocked)} target(s) may not release within "
                                 f"{max_wait_s:g} s ({rules}; opens {latest.isoformat() if latest else 'not within 8 days'})")
        say(f"release policy: waiting until {latest.isoformat()} for {len(blocked)} target(s): "
            f"{', '.join(f'{target} ({v.refusal.value} {v.rule})' for target, v in blocked)}")
        sleep(max(0.5, min(RECHECK_S, (latest - now).total_seconds())))
