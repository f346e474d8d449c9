"""The `--json` output's JSON Schema (docs/schema/output.schema.json) for the tests: validate one command's output
against the definition that command follows (the schema's `x-commands`)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import jsonschema

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "docs" / "schema" / "output.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text())


@lru_cache(maxsize=None)
def validator(definition: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{definition}"})


def assert_output(command: str, output: object) -> None:
    """`command` as `x-commands` names it ("blue-green", "pipeline run", ...); output: what --json printed, parsed."""
    errors = sorted(validator(SCHEMA["x-commands"][command]).iter_errors(output), key=lambda e: list(e.path))
    assert not errors, f"`greenlight {command} --json` does not follow {SCHEMA_PATH.name} v{SCHEMA['version']}:\n" + \
        "\n".join(f"- {'/'.join(map(str, e.path)) or '(top)'}: {e.message[:300]}" for e in errors[:10])
