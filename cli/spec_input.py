"""Turning command-line arguments into a release spec, shared by every release command: a `--spec` YAML file as
the base, `--manifest FILE` or `--image REF` as the new version, then flags overriding single fields."""

from __future__ import annotations

import argparse
from typing import Any

from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.spec import load_yaml_documents


def set_path(d: dict, path: str, value: Any) -> None:
    """d["a"]["b"] = value for path "a.b"; None leaves the field alone. A spec file whose "a" is not a mapping is
    BadInput naming the field (a flag cannot set a field inside a number or a list)."""
    if value is None:
        return
    *parents, leaf = path.split(".")
    for i, p in enumerate(parents):
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            raise BadInput(f"spec: {'.'.join(parents[:i + 1])}: is a {type(d).__name__}, not a mapping "
                           f"(cannot set {path})")
    d[leaf] = value


def base_spec(args: argparse.Namespace, what: str) -> dict[str, Any]:
    """The spec file's fields with the new version (manifest or image) from the flags."""
    data: dict[str, Any] = {}
    if args.spec:
        docs = load_yaml_documents(args.spec)
        if len(docs) != 1:
            raise BadInput(f"{args.spec}: expected one {what} spec document, found {len(docs)}")
        data = docs[0]
    if args.manifest:
        docs = load_yaml_documents(args.manifest)
        deployments = [d for d in docs if d.get("kind") == "Deployment"]
        if len(deployments) != 1:
            kinds = ", ".join(str(d.get("kind")) for d in docs)
            raise BadInput(f"{args.manifest}: expected exactly one Deployment, found kinds: {kinds}")
        data["manifest"] = deployments[0]
        data.pop("image", None)
    if args.image:
        data["image"] = args.image
        data.pop("manifest", None)
    return data


def port_flag(value: str) -> int | str:
    """--smoke-port and friends: a number stays a number, anything else is a port name (the spec validates it)."""
    return int(value) if value.isdigit() else value
