"""Header values from Prefect Secret blocks, for webhook hooks (`secret_headers` in a hook's spec) and for the
`greenlight webhook --header-secret` notification.

The spec names a block; its value is loaded only where a request is built (and at preflight, to refuse a missing
block before anything changes) and goes nowhere else: not into a log line, a report, an event, a parameter or an
exception's text. Every message here names the block, never its value; a loaded set of headers prints as the
header names and their blocks (`SecretHeaders`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prefect.blocks.system import Secret

from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.prefect_adapter.blocks import load_block
from prefect_greenlight.tasks.spec.hooks import HEADER_VALUE

SECRET_BLOCK_TYPE = "secret"
SecretLoader = Callable[[str], object]  # a Secret block's name -> its value (a str, or JSON a user stored)


def load_secret(name: str) -> object:
    """The value of the Prefect Secret block `name` (as stored: `Secret.get()` would turn a string that happens
    to be JSON, "12345", into a number); BadInput naming the block when there is none."""
    block = load_block(Secret, SECRET_BLOCK_TYPE, name, f"Secret(value=...).save({name!r}) or in the UI, Blocks",
                       "Secret")
    return block.value.get_secret_value()


def value_problem(block: str, value: object) -> str | None:
    """Why a Secret's value cannot be a header value (naming the block, never quoting the value); None if it can."""
    if not isinstance(value, str):
        return (f"Prefect block {SECRET_BLOCK_TYPE}/{block} holds a {type(value).__name__}, not a string: a header "
                "value is text (store e.g. 'Bearer <token>')")
    if not HEADER_VALUE.fullmatch(value):
        return (f"Prefect block {SECRET_BLOCK_TYPE}/{block}: its value cannot be an HTTP header value (it must be "
                "visible ASCII with inner spaces: no line break, no leading or trailing space, not empty)")
    return None


@dataclass(frozen=True, repr=False)
class SecretHeaders:
    """Headers whose values came from Secret blocks. repr and str name the headers and blocks, never a value."""

    values: Mapping[str, str]  # header -> the secret value
    blocks: Mapping[str, str]  # header -> the block it came from

    def __repr__(self) -> str:
        named = ", ".join(f"{h} from {SECRET_BLOCK_TYPE}/{b}" for h, b in self.blocks.items())
        return f"SecretHeaders({named})"

    __str__ = __repr__


def secret_headers(wanted: Mapping[str, str], load: SecretLoader = load_secret) -> SecretHeaders:
    """Each header's value loaded from its block; BadInput naming every block that is missing or unusable."""
    values, problems = {}, []
    for header, block in wanted.items():
        try:
            value = load(block)
        except BadInput as exc:
            problems += [f"header {header}: {p}" for p in exc.problems]
            continue
        problem = value_problem(block, value)
        if problem:
            problems.append(f"header {header}: {problem}")
        else:
            values[header] = str(value)
    if problems:
        raise BadInput(problems)
    return SecretHeaders(values, dict(wanted))
