"""Loading a Prefect block document by name (a KubernetesClusterConfig, a Secret) with the errors a user can act
on: a missing block is BadInput naming it and how to create it; one that does not validate is BadInput with the
error's type only, since a pydantic ValidationError's text quotes the stored values (a token, a key)."""

from __future__ import annotations

from typing import Any

from prefect_greenlight.tasks.errors import BadInput


def load_block(cls: Any, slug: str, name: str, create: str, kind: str) -> Any:
    """`cls.load(name)`; BadInput "no Prefect block SLUG/NAME (create one with CREATE; ...)" when there is none,
    "... cannot be read as a KIND (ErrorType)" when it does not validate."""
    try:
        return cls.load(name, _sync=True)
    except ValueError as exc:
        if "Unable to find block document" in str(exc):
            raise BadInput(f"no Prefect block {slug}/{name} (create one with {create}; list them with "
                           "`prefect block ls`)") from None
        raise BadInput(f"Prefect block {slug}/{name} cannot be read as a {kind} ({type(exc).__name__})") from None
