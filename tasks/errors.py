"""Error types that say what the caller should do: retry, give up and roll back, or reject the input.

The CLI maps them to exit codes: BadInput -> 2 (nothing changed), ReleaseFailed -> 1 (rolled back), else 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class GreenlightError(Exception):
    """Base class. `retryable` tells a caller whether the same call may succeed later."""

    retryable: bool = False


class BadInput(GreenlightError):
    """The release spec or the cluster state it names is wrong; nothing was changed. Exit code 2."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


def block_not_loaded(exc: ValueError, slug: str, name: str, create: str, kind: str) -> BadInput:
    """What a user is told when Prefect block SLUG/NAME cannot be loaded: "no Prefect block ... (create one with
    CREATE; ...)" when there is none, "... cannot be read as a KIND (ErrorType)" when it does not validate (a
    pydantic ValidationError's text quotes the stored values: a token, a key)."""
    if "Unable to find block document" in str(exc):
        return BadInput(f"no Prefect block {slug}/{name} (create one with {create}; list them with "
                        "`prefect block ls`)")
    return BadInput(f"Prefect block {slug}/{name} cannot be read as a {kind} ({type(exc).__name__})")


class TemporaryError(GreenlightError):
    """A transient condition (apiserver unreachable, conflict, 5xx): the same call may succeed if retried."""

    retryable = True


class PermanentError(GreenlightError):
    """Retrying cannot help (e.g. the new version will never become ready)."""


class LockHeld(GreenlightError):
    """Another release holds the Service's lease."""

    def __init__(self, service: str, holder: str, expires_in_s: float):
        self.holder = holder
        super().__init__(
            f"another release holds the lock on Service {service!r}: {holder} "
            f"(lease expires in {max(expires_in_s, 0):.0f} s unless renewed)")


class GuardFailed(PermanentError):
    """A guarded write found the object not in the state the release expected (someone else changed it)."""


class Rejected(PermanentError):
    """A human rejected the promotion, or the approval timed out."""


class CancelRequested(PermanentError):
    """The flow run was cancelled from Prefect (the UI's Cancel, `prefect flow-run cancel`): undo, end Cancelled."""


@dataclass(frozen=True)
class UndoOutcome:
    step: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{'ok' if self.ok else 'FAILED'}: {self.step} ({self.detail})"


@dataclass
class ReleaseFailed(GreenlightError):
    """The release failed after changing the cluster; what was undone is listed in `undo`."""

    reason: str
    phase: str
    undo: list[UndoOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # reported after the undo, never part of it (on-rollback hooks)
    cancelled: bool = False  # cancelled from Prefect (UI / `prefect flow-run cancel`), not failed

    def __post_init__(self) -> None:
        super().__init__(str(self))

    @property
    def rolled_back(self) -> bool:
        return all(u.ok for u in self.undo)

    def __str__(self) -> str:
        head = f"release {'cancelled' if self.cancelled else 'failed'} during {self.phase}: {self.reason}"
        notes = "".join(f"\n  - {n}" for n in self.notes)
        notes = f"\nafter the rollback:{notes}" if notes else ""
        if not self.undo:
            return head + " (nothing to undo)" + notes
        return head + "\nrollback:\n" + "\n".join(f"  - {u}" for u in self.undo) + notes


class CleanupFailed(GreenlightError):
    """The release switched and verified (the new version serves) but taking the old one out of service failed:
    nothing is rolled back; running the same release again finishes the clean-up. Exit code 1."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"released; clean-up failed: {reason}")


class PipelineFailed(GreenlightError):
    """A pipeline stopped: a target failed (and the failure policy's rollbacks ran) or a gate said no. `result`
    is the pipeline's result (stages × targets) for the CLI to print. Exit code 1."""

    def __init__(self, message: str, result: dict):
        self.result = result
        super().__init__(message)
