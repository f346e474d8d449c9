"""Reference pages about what greenlight leaves behind and answers with, generated from the code: the Prefect
events and their payload keys (found in the code that emits them), the `greenlight.io/*` keys (found in the code;
what each means is written here, and tests/unit/test_docs_reference.py fails when the two lists differ), the exit
codes (the codes `cli/main.py` returns, described here) and the `--json` output (docs/schema/output.schema.json).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any, Iterator

from prefect_greenlight.tasks.canary import steps as canary_steps
from prefect_greenlight.tasks.record.events import (
    IMAGE_PUSHED,
    PIPELINE_PREFIX,
    PREFIX,
    PipelineEvent,
    ReleaseEvent,
)
from prefect_greenlight.tasks.record.journal import final_events

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("flows", "tasks", "cli", "worker")
SCHEMA = ROOT / "docs" / "schema" / "output.schema.json"


def product_modules() -> Iterator[tuple[Path, ast.Module]]:
    for top in PRODUCT:
        for path in sorted((ROOT / top).rglob("*.py")):
            yield path, ast.parse(path.read_text(), str(path))


# -- events ----------------------------------------------------------------------------------------------------
def _kind(node: ast.expr) -> tuple[str, str] | None:
    """`ReleaseEvent.SWITCHED` -> ("release", "switched")."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        enum = {"ReleaseEvent": ReleaseEvent, "PipelineEvent": PipelineEvent}.get(node.value.id)
        if enum is not None and node.attr in enum.__members__:
            return ("release" if enum is ReleaseEvent else "pipeline"), enum[node.attr].value
    return None


def _call_name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def event_payloads() -> dict[str, set[str]]:
    """Each event's name -> the payload keys some call site gives it. Journal.event adds release_id and strategy;
    `journal.started(...)` is the `started` event; `self.event(kind, ...)` in the journal emits the final events;
    emit_pipeline adds pipeline_id."""
    found: dict[str, set[str]] = {PREFIX + e.value: set() for e in ReleaseEvent}
    found.update({PIPELINE_PREFIX + e.value: {"pipeline_id"} for e in PipelineEvent})
    for _, tree in product_modules():
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            name, keys = _call_name(call), {k.arg for k in call.keywords if k.arg}
            kind = _kind(call.args[0]) if call.args else None
            if name in ("emit", "emit_pipeline", "event") and kind:
                events = [(PREFIX if kind[0] == "release" else PIPELINE_PREFIX) + kind[1]]
            elif name == "started" and isinstance(call.func, ast.Attribute):
                events = [PREFIX + ReleaseEvent.STARTED.value]
            elif name == "event" and call.args and isinstance(call.args[0], ast.Name):  # the final events
                events = sorted({PREFIX + e.value for s in ("blue-green", "rollback")
                                 for o in ("released", "cancelled", "rolled-back", "failed") for e in final_events(s, o)})
            else:
                continue
            for event in events:
                extra = {"release_id", "strategy"} if name in ("event", "started") else set()
                found[event] |= keys | extra
    return found


EVENT_MEANING = {
    "started": "a release, rollback or abort began (after its pre-flight)",
    "paused": "waiting for an approval, or a canary's pause",
    "switched": "the Service's selector moved (blue-green), or a canary step's replica counts moved",
    "rolled-back": "the undo was verified: the Service is back on the old version (also a rollback or abort)",
    "completed": "the release finished: the new version serves",
    "failed": "the release failed (after `rolled-back` when the undo was verified)",
    "refused": "an event-driven release named a Service outside the allow-list; nothing changed",
    "stage-passed": "a pipeline stage released every target",
}


def events_markdown() -> str:
    payloads = event_payloads()
    out = ["# Events", "",
           "Generated at build time from the code that emits them (`tasks/record/events.py` and its callers).", "",
           f"Release events are about the resource `greenlight.service.<namespace>.<service>` (labels "
           f"`greenlight.namespace`, `greenlight.service`); pipeline events about `greenlight.pipeline.<id>`. "
           f"Prefect relates the flow run, flow and deployment. A CI system starts an event-driven release "
           f"with `{IMAGE_PUSHED}` (see [Release from events](../how-to/prefect.md#on-an-event)).", "",
           "| event | when | payload keys |", "|---|---|---|"]
    for event, keys in payloads.items():
        short = event.rsplit(".", 1)[-1]
        when = EVENT_MEANING.get(short, "") if event.startswith(PREFIX) or short == "stage-passed" else \
            f"pipeline {short}"
        out.append(f"| `{event}` | {when} | {', '.join(f'`{k}`' for k in sorted(keys))} |")
    return "\n".join(out) + "\n"


# -- greenlight.io/* keys --------------------------------------------------------------------------------------
KEY = re.compile(r"^greenlight\.io/[a-z0-9-]*[a-z0-9]$")
ANNOTATIONS_MODULE = "prefect_greenlight.tasks.decisions.annotations"


def _prefix_of(tree: ast.Module) -> str | None:
    """The module's `PREFIX`: its own string constant, or the release record's imported from annotations."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "PREFIX" for t in node.targets):
            return node.value.value if isinstance(node.value, ast.Constant) else None
        if isinstance(node, ast.ImportFrom) and node.module == ANNOTATIONS_MODULE and \
                any(a.name == "PREFIX" for a in node.names):
            return "greenlight.io/"
    return None


def code_keys() -> dict[str, set[str]]:
    """Every `greenlight.io/*` key the product code writes or reads -> the files naming it: string constants,
    `PREFIX + "name"` where the module's PREFIX is `greenlight.io/...`, and the canary progress KEYS."""
    found: dict[str, set[str]] = {}
    for path, tree in product_modules():
        prefix = _prefix_of(tree) or ""
        for node in ast.walk(tree):
            key = None
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and KEY.match(node.value):
                key = node.value
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and isinstance(node.left, ast.Name) \
                    and node.left.id == "PREFIX" and isinstance(node.right, ast.Constant) \
                    and prefix.startswith("greenlight.io/"):
                key = prefix + node.right.value
            if key:
                found.setdefault(key, set()).add(str(path.relative_to(ROOT)))
    for k in canary_steps.KEYS:
        found.setdefault(canary_steps.PREFIX + k, set()).add("tasks/canary/steps.py")
    return found


# key -> (where it is written, what it means). The test fails when a key in the code is missing here, or one here
# is no longer in the code.
KEYS: dict[str, tuple[str, str]] = {
    "greenlight.io/live-deployment": ("Service annotation", "the Deployment the last switch made live"),
    "greenlight.io/live-color": ("Service annotation", "its color (the selector value), e.g. `green`"),
    "greenlight.io/previous-deployment": ("Service annotation", "the Deployment live before it: "
                                          "`greenlight rollback` goes back there"),
    "greenlight.io/previous-color": ("Service annotation", "that Deployment's color"),
    "greenlight.io/previous-selector": ("Service annotation", "the selector before the switch (JSON)"),
    "greenlight.io/previous-manifest": ("Service annotation", "the previous Deployment's manifest, when clean-up "
                                        "`delete` removed it (rollback re-creates it)"),
    "greenlight.io/previous-hpa": ("Service annotation", "the HPA of the Deployment last taken out of service, "
                                   "re-created exactly by a rollback"),
    "greenlight.io/previous-replicas": ("Service annotation", "the previous Deployment's replica count, which a "
                                        "rollback scales it back to"),
    "greenlight.io/release-id": ("Service annotation; label of hook Jobs; HPA annotation",
                                 "the release that made the switch / created the object"),
    "greenlight.io/switched-at": ("Service annotation", "when the switch happened (UTC)"),
    "greenlight.io/switch-kind": ("Service annotation", "`release` or `rollback`: a second rollback sees it has "
                                  "nothing to do"),
    "greenlight.io/approval": ("Service annotation", "the approval's answer, written with the switch when approved"),
    "greenlight.io/history": ("Service annotation", "the release history, newest 20 entries (JSON; "
                              "`greenlight history`)"),
    "greenlight.io/hooks": ("Service annotation", "which hooks completed, keyed by a fingerprint of what is "
                            "released: a re-run never runs one twice"),
    "greenlight.io/preview-of": ("preview Service annotation", "the Service a preview Service belongs to"),
    "greenlight.io/pod-template-digest": ("green Deployment annotation", "digest of the manifest's pod template "
                                          "(manifest mode): is a re-run the same release?"),
    "greenlight.io/held-min-replicas": ("HPA annotation", "the HPA's own `minReplicas` while greenlight holds it at "
                                        "blue's count until the scale-down delay ends"),
    "greenlight.io/hook": ("hook Job label", "the hook's name"),
    "greenlight.io/hook-point": ("hook Job label", "where in the release it runs (`pre-switch`, ...)"),
    "greenlight.io/hook-key": ("hook Job annotation", "the hook's fingerprint in this release"),
    "greenlight.io/release-key": ("hook Job annotation", "the fingerprint of what is released"),
    "greenlight.io/service": ("hook Job label; Lease annotation", "the Service the object belongs to"),
    "greenlight.io/flow-run-id": ("Lease annotation", "the Prefect flow run holding the Lease "
                                  "`greenlight-<service>`"),
    "greenlight.io/strategy": ("Lease annotation", "the holder's strategy (`canary`)"),
    "greenlight.io/rollback-window": ("Service annotation", "an open rollback window: the release, the warm and "
                                      "the live Deployment, until when, the clean-up mode and the flow run "
                                      "scheduled for its end (JSON)"),
    "greenlight.io/canary-service-of": ("canary Service annotation (`traffic: gateway`)", "the stable Service "
                                        "whose ports and selector the canary Service greenlight created copies"),
    "greenlight.io/route-of": ("HTTPRoute annotation (`traffic: gateway` with `gateway.create`)", "the stable "
                               "Service the HTTPRoute greenlight created sends to at rest"),
    "greenlight.io/green-service-of": ("green Service annotation (blue-green with `traffic: gateway`)", "the "
                                       "Service whose ports the green Service greenlight created for the route "
                                       "switch copies; only such a Service is re-pointed or deleted"),
    "greenlight.io/switch-route": ("Service annotation (blue-green with `traffic: gateway`)", "the HTTPRoute, "
                                   "rule and green Service name the last release switched through (JSON), so "
                                   "`greenlight rollback` goes back through the same route"),
    "greenlight.io/baseline-of": ("baseline Deployment annotation", "the stable Deployment whose pod template "
                                  "the canary judge's baseline runs (`baseline: true`)"),
    "greenlight.io/track": ("canary Deployment label, selector and pod label", "`canary` / `baseline`: "
                            "tells the canary's and the judge's baseline's pods from stable's"),
    "greenlight.io/gzip-base64": ("flow parameter key (not an annotation)", "a manifest over 64 KiB, packed "
                                  "(gzip + base64) inside the `manifest` parameter"),
}
CANARY_MEANING = {
    "stable": "the stable Deployment", "deployment": "the canary Deployment", "total": "the total replicas, "
    "kept across steps and re-runs", "steps": "the percentages, e.g. `10,30,50,100`", "step": "the current step's "
    "index", "percent": "its percentage", "weight": "canary pods / total", "state": "`progressing`, "
    "`paused-…`, `passed`, ...", "release-id": "the canary's release", "run-id": "its Prefect flow run",
    "updated-at": "when the record last changed (UTC)", "route": "`traffic: gateway` only: "
    "`<HTTPRoute>/<rule>/<canary Service>`, which `greenlight abort` routes back to stable first",
}
KEYS.update({canary_steps.PREFIX + k: ("Service annotation", f"canary progress: {v}")
             for k, v in CANARY_MEANING.items()})


def annotations_markdown() -> str:
    out = ["# Annotations and labels", "",
           "Every `greenlight.io/*` key greenlight writes, found in the code at build time. The release record on "
           "the Service is written in the same guarded patch that moves the selector; it is what `greenlight "
           "status`, `greenlight rollback` and a re-run after a crash read, and it survives a lost Prefect "
           "database ([The release record](../concepts/release-record.md)).", "",
           "| key | on | meaning |", "|---|---|---|"]
    for key in sorted(code_keys()):
        where, meaning = KEYS.get(key, ("?", "?"))
        out.append(f"| `{key}` | {where} | {meaning} |")
    return "\n".join(out) + "\n"


# -- exit codes ------------------------------------------------------------------------------------------------
EXIT_MEANING = {
    0: "released, or already live (also: a dry run, a status, an answer given)",
    1: "failed after changing something, and rolled back (the reason is printed); or released with a failed "
       "clean-up (`released; clean-up failed: …`: run the release again to finish it); or an approval that "
       "found nothing to answer",
    2: "bad input, or a Prefect server that refused the credentials: nothing changed",
    130: "interrupted (Ctrl-C)",
}


def _code(node: ast.expr, names: dict[str, int]) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return names.get(node.id) if isinstance(node, ast.Name) else None


def exit_codes() -> dict[int, list[str]]:
    """Each exit code `greenlight` returns -> what leads to it: the exception handlers of cli/main.py's main()
    (with the error types they catch), and `return` in the commands."""
    module = ast.parse((ROOT / "cli" / "main.py").read_text())
    names = {t.id: v.value for n in module.body if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Tuple)
             for t, v in zip(n.targets[0].elts, n.value.elts) if isinstance(t, ast.Name)}
    codes: dict[int, list[str]] = {}
    main = next(n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "main")
    for handler in (h for t in ast.walk(main) if isinstance(t, ast.Try) for h in t.handlers):
        for ret in (r for r in ast.walk(handler) if isinstance(r, ast.Return) and r.value is not None):
            code = _code(ret.value, names)
            if code is not None:
                codes.setdefault(code, []).append(ast.unparse(handler.type) if handler.type else "any error")
    handled = {id(r) for h in ast.walk(main) if isinstance(h, ast.ExceptHandler) for r in ast.walk(h)}
    for path in sorted((ROOT / "cli").glob("*.py")):
        tree = module if path.name == "main.py" else ast.parse(path.read_text())
        for ret in (r for r in ast.walk(tree) if isinstance(r, ast.Return) and r.value and id(r) not in handled):
            code = _code(ret.value, names)
            if code is not None:
                codes.setdefault(code, []).append("the command's end")
    return {c: sorted(set(v)) for c, v in sorted(codes.items())}


def exit_codes_markdown() -> str:
    out = ["# Exit codes", "", "Generated at build time from `cli/main.py` (what each exception handler returns). "
           "The same for every command.", "", "| code | meaning | raised by |", "|---|---|---|"]
    for code, causes in exit_codes().items():
        out.append(f"| **{code}** | {EXIT_MEANING.get(code, '?')} | {', '.join(f'`{c}`' for c in causes)} |")
    return "\n".join(out) + "\n"


# -- the --json output -----------------------------------------------------------------------------------------
def output_schema() -> dict[str, Any]:
    return json.loads(SCHEMA.read_text())


def _json_type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.replace('_', '-')})"
    if "oneOf" in schema:
        return " or ".join(_json_type(s) for s in schema["oneOf"])
    if "enum" in schema or "const" in schema:
        return " \\| ".join(f"`{v}`" for v in schema.get("enum", [schema.get("const")]))
    if schema.get("type") == "array":
        return f"list of {_json_type(schema.get('items', {}))}"
    kind = schema.get("type", "any")
    return " or ".join(kind) if isinstance(kind, list) else kind


def json_markdown() -> str:
    schema = output_schema()
    out = ["# `--json` output", "",
           f"Schema version **{schema['version']}**: [output.schema.json](../schema/output.schema.json) (JSON "
           "Schema 2020-12, `$id` " f"`{schema['$id']}`). {schema['description']}", "",
           "Generated at build time from that file; `tests/unit/test_json_output.py` validates real outputs "
           "against it.", ""]
    for name, sub in schema["$defs"].items():
        out += [f"## {name.replace('_', '-')}", "", sub.get("description", ""), ""]
        if sub.get("type") == "array":
            out += [f"A list of {_json_type(sub['items'])}.", ""]
            continue
        required = set(sub.get("required", []))
        out += ["| key | type | always | description |", "|---|---|---|---|"]
        out += [f"| `{k}` | {_json_type(v)} | {'yes' if k in required else ''} | {v.get('description', '')} |"
                for k, v in sub.get("properties", {}).items()]
        out.append("")
    return "\n".join(out)
