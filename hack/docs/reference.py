"""The documentation's reference pages, generated from the code so they cannot go stale: every CLI command and
flag (from argparse), every spec field (from the pydantic models' JSON schemas). Events, annotations, exit codes
and the `--json` output are in records.py. Pure: each function returns markdown or data; hack/docs/hooks.py puts
the pages into the MkDocs build and tests/unit/test_docs_reference.py compares them with the code.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Iterator

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from prefect_greenlight.cli.main import build_parser
from prefect_greenlight.tasks.spec import BlueGreenSpec, blue_green, canary, common, hooks, pipeline
from prefect_greenlight.tasks.spec.canary import CanarySpec
from prefect_greenlight.tasks.spec.pipeline import PipelineSpec

SPECS: tuple[tuple[str, type[BaseModel], str], ...] = (
    ("blue-green", BlueGreenSpec, "`greenlight blue-green --spec FILE`, the `blue-green` deployment's `spec`"),
    ("canary", CanarySpec, "`greenlight canary --spec FILE`, the `canary` deployment's `spec`"),
    ("pipeline", PipelineSpec, "`greenlight pipeline run --spec FILE`, the `pipeline` deployment's `spec`"),
)


# -- the CLI ---------------------------------------------------------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


def cli_commands(parser: argparse.ArgumentParser | None = None, path: tuple[str, ...] = (),
                 help_text: str = "") -> Iterator[tuple[tuple[str, ...], str, argparse.ArgumentParser]]:
    """Every leaf command: (its words, its help, its parser), depth first in the parser's order."""
    parser = parser or build_parser()
    subs = _subparsers(parser)
    if not subs:
        yield path, help_text, parser
        return
    helps = _helps(parser)
    for name, sub in subs.items():
        yield from cli_commands(sub, (*path, name), helps.get(name, ""))


def flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """A command's options and positionals, without -h/--help."""
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


def flag_name(action: argparse.Action) -> str:
    return ", ".join(action.option_strings) if action.option_strings else action.dest


def _flag_value(action: argparse.Action) -> str:
    if action.choices:
        return " \\| ".join(f"`{c}`" for c in action.choices)
    if action.nargs == 0:
        return "—"
    return f"`{action.metavar or action.dest.upper()}`"


def _flag_default(action: argparse.Action) -> str:
    if action.required:
        return "required"
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
        return ""
    if action.dest == "approver":  # os.environ["USER"] on the machine that built the docs
        return "`$USER`"
    return f"`{action.default}`" if action.default != "" else '`""`'


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def cli_markdown() -> str:
    parser = build_parser()
    out = ["# Command line", "",
           "Generated from `greenlight`'s argparse parser (`cli/`) at build time. `greenlight COMMAND --help` "
           "prints the same.", "", f"{parser.description}", ""]
    for words, help_text, sub in cli_commands(parser):
        name = " ".join(words)
        out += [f"## `greenlight {name}`", "", f"{help_text[:1].upper()}{help_text[1:]}.".replace("%%", "%"), "",
                "```text", sub.format_usage().strip(), "```", "",
                "| flag | value | default | description |", "|---|---|---|---|"]
        for action in flags(sub):
            out.append(f"| `{flag_name(action)}` | {_flag_value(action)} | {_flag_default(action)} | "
                       f"{_cell((action.help or '').replace('%%', '%'))} |")
        out.append("")
    return "\n".join(out)


def cli_flags_without_help() -> list[str]:
    return [f"greenlight {' '.join(words)} {flag_name(a)}" for words, _, sub in cli_commands()
            for a in flags(sub) if not (a.help or "").strip()]


# -- the specs -------------------------------------------------------------------------------------------------
def spec_models() -> dict[str, type[BaseModel]]:
    """Every pydantic model of the spec modules, by class name (the JSON schema's $defs names)."""
    found: dict[str, type[BaseModel]] = {}
    for module in (common, blue_green, canary, hooks, pipeline):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == module.__name__:
                found[value.__name__] = value
    return found


def schema_type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " \\| ".join(schema_type(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {schema_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {schema_type(schema['additionalProperties'])}"
    return str(kind)


def _default(model: type[BaseModel] | None, name: str, schema: dict[str, Any], required: bool) -> str:
    if required:
        return "required"
    field = model.model_fields.get(name) if model else None
    if field is not None:
        value = to_jsonable_python(field.get_default(call_default_factory=True))
    elif "default" in schema:
        value = schema["default"]
    else:
        return ""
    text = json.dumps(value, sort_keys=True)
    return f"`{text}`" if len(text) <= 60 else "see the type"


def model_rows(name: str, schema: dict[str, Any], models: dict[str, type[BaseModel]]) -> Iterator[dict[str, str]]:
    required = set(schema.get("required", []))
    for field, prop in schema.get("properties", {}).items():
        yield {"model": name, "field": field, "type": schema_type(prop),
               "default": _default(models.get(name), field, prop, field in required),
               "description": prop.get("description", "")}


def spec_rows() -> Iterator[dict[str, str]]:
    """One row per field of every spec and every model it uses (the `description` straight from the schema)."""
    models = spec_models()
    seen: set[str] = set()
    for _, model, _ in SPECS:
        schema = model.model_json_schema()
        for name, sub in [(model.__name__, schema), *schema.get("$defs", {}).items()]:
            if name in seen or "properties" not in sub:
                continue
            seen.add(name)
            yield from model_rows(name, sub, models)


def spec_fields_without_description() -> list[str]:
    return [f"{r['model']}.{r['field']}" for r in spec_rows() if not r["description"].strip()]


def _enum_lines(schema: dict[str, Any], seen: set[str]) -> list[str]:
    out = []
    for name, sub in schema.get("$defs", {}).items():
        if "enum" in sub and name not in seen:
            seen.add(name)
            values = "One of: " + ", ".join(f"`{v}`" for v in sub["enum"]) + "."
            out += [f"### {name}", "", f"{_cell(sub.get('description', ''))} {values}".strip(), ""]
    return out


def spec_markdown() -> str:
    rows = list(spec_rows())
    out = ["# Release specs", "",
           "Generated from the pydantic models in `tasks/spec/` (their JSON schemas, the same ones the Prefect UI "
           "renders as the run form) at build time. Defaults are resolved in the models and nowhere else.", ""]
    for title, model, where in SPECS:
        out += [f"- **{title}**: [{model.__name__}](#{model.__name__.lower()}), used by {where}"]
    out.append("")
    for name in dict.fromkeys(r["model"] for r in rows):
        doc = (spec_models().get(name).__doc__ or "") if name in spec_models() else ""
        intro = _cell(doc.split("\n\n")[0])
        out += [f"## {name}", "", *([intro, ""] if intro else []),
                "| field | type | default | description |", "|---|---|---|---|"]
        out += [f"| `{r['field']}` | {r['type']} | {r['default']} | {_cell(r['description'])} |"
                for r in rows if r["model"] == name]
        out.append("")
    out += ["## Enumerations", ""]
    seen: set[str] = set()
    for _, model, _ in SPECS:
        out += _enum_lines(model.model_json_schema(), seen)
    return "\n".join(out)
