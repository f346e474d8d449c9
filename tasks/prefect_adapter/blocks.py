"""Loading a Prefect block document by name (a KubernetesClusterConfig, a Secret) with the errors a user can act
on: a missing block is BadInput naming it and how to create it; one that does not validate is BadInput with the
error's type only, since a pydantic ValidationError's text quotes the stored values (a token, a key)."""

from __future__ import annotations

from typing import Any

from prefect_greenlight.tasks.errors import block_not_loaded


def load_block(cls: Any, slug: str, name: str, create: str, kind: str) -> Any:
    """`cls.load(name)`; BadInput "no Prefect block SLUG/NAME (create one with CREATE; ...)" when there is none,
    "... cannot be read as a KIND (ErrorType)" when it does not validate."""
    try:
        return cls.load(name, _sync=True)
    except ValueError as exc:
        raise block_not_loaded(exc, slug, name, create, kind) from None
