"""Prefect Variables read at run time (public API: `prefect.variables.Variable`), so a value changed in the UI or
with `prefect variable set` applies to the next run without a redeploy. Used for the image-pushed trigger's
allow-list (tasks/decisions/allow.py decides; this module only reads)."""

from __future__ import annotations

from prefect.variables import Variable

from prefect_greenlight.tasks.errors import TemporaryError


def read_variable(name: str) -> object:
    """The value of the Prefect Variable `name` (str, number, bool, list or dict), None when it is unset.
    Raises TemporaryError when the API cannot answer: the caller then refuses to act, and a retry may succeed."""
    try:
        return Variable.get(name, default=None)
    except Exception as exc:  # noqa: BLE001 - any failure to read is "not known now", never "allowed"
        raise TemporaryError(f"could not read the Prefect Variable {name!r}: {type(exc).__name__}: {exc}") from exc
