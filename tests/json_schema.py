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


def command_of(args: tuple[str, ...] | list[str]) -> str | None:
    """The command words of a `greenlight ARGS` call as `x-commands` names them, or None (no such output)."""
    words = [a for a in args if not a.startswith("-")][:2]
    for candidate in (" ".join(words), words[0] if words else ""):
        if candidate in SCHEMA["x-commands"]:
            return candidate
    return None


def check_cli_json(args: tuple[str, ...] | list[str], stdout: str) -> None:
    """After `greenlight ARGS` ran (the e2e helpers call this): when ARGS asked for --json and the command printed
    a JSON document (a failed release prints none), it must follow the schema. Lines before the document (none
    expected) and text after it are ignored."""
    command = command_of(args)
    if "--json" not in args or command is None:
        return
    start = next((i for i, line in enumerate(stdout.splitlines(keepends=True)) if line[:1] in "{["), None)
    if start is None:
        return
    text = "".join(stdout.splitlines(keepends=True)[start:])
    document, _ = json.JSONDecoder().raw_decode(text)
    assert_output(command, document)
