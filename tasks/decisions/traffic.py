"""Moving a Service's selector, as a guarded JSON patch: `test` ops assert the selector still names the color we
expect (422 if someone else moved it), `replace` ops move it, and the release record annotations travel in the
same patch, so the record can never disagree with the selector.
"""

from __future__ import annotations


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def selector_patch(service: dict, from_selector: dict[str, str], to_selector: dict[str, str],
                   annotations: dict[str, str]) -> list[dict]:
    """JSON patch moving the selector from `from_selector` to `to_selector` (only differing keys; keys only in
    `to_selector` are added, keys only in `from_selector` removed). Empty when the selector is already there."""
    current = service.get("spec", {}).get("selector") or {}
    if current == to_selector:
        return []
    ops: list[dict] = []
    for key, value in sorted(from_selector.items()):
        ops.append({"op": "test", "path": f"/spec/selector/{_pointer(key)}", "value": value})
    for key, value in sorted(to_selector.items()):
        if from_selector.get(key) != value:
            op = "replace" if key in from_selector else "add"
            ops.append({"op": op, "path": f"/spec/selector/{_pointer(key)}", "value": value})
    for key in sorted(set(from_selector) - set(to_selector)):
        ops.append({"op": "remove", "path": f"/spec/selector/{_pointer(key)}"})
    if annotations:
        if not service.get("metadata", {}).get("annotations"):
            ops.append({"op": "add", "path": "/metadata/annotations", "value": dict(annotations)})
        else:
            for key, value in sorted(annotations.items()):
                ops.append({"op": "add", "path": f"/metadata/annotations/{_pointer(key)}", "value": value})
    return ops
